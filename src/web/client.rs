//! A small HTTP/1.1 client for the daemon's own API on 127.0.0.1, used by `devenv status`,
//! `logs` and `trigger` (and the tests): plain requests, and Server-Sent Events read line by
//! line through chunked transfer encoding.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub body: String,
    /// The `Set-Cookie` header, if the answer had one (the CLI signs in with the token, so
    /// only the sign-in tests read it).
    #[cfg_attr(not(test), allow(dead_code))]
    pub set_cookie: Option<String>,
    /// The `Location` header, if the answer had one.
    #[cfg_attr(not(test), allow(dead_code))]
    pub location: Option<String>,
}

/// The status line and the headers devenv's clients look at.
struct Head {
    status: u16,
    chunked: bool,
    set_cookie: Option<String>,
    location: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot reach the daemon on 127.0.0.1:{port}: {source}")]
    Connect {
        port: u16,
        #[source]
        source: std::io::Error,
    },
    #[error("the daemon's answer could not be read: {0}")]
    Read(String),
}

fn open(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> Result<BufReader<TcpStream>, ClientError> {
    let mut s = TcpStream::connect(("127.0.0.1", port))
        .map_err(|source| ClientError::Connect { port, source })?;
    let _ = s.set_read_timeout(Some(Duration::from_secs(30)));
    let mut req = format!("{method} {path} HTTP/1.1\r\nConnection: close\r\nContent-Length: 0\r\n");
    if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
        req.push_str(&format!("Host: 127.0.0.1:{port}\r\n"));
    }
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes())
        .map_err(|e| ClientError::Read(e.to_string()))?;
    Ok(BufReader::new(s))
}

/// Reads the status line and headers.
fn head(r: &mut BufReader<TcpStream>) -> Result<Head, ClientError> {
    let mut line = String::new();
    r.read_line(&mut line)
        .map_err(|e| ClientError::Read(e.to_string()))?;
    let status = line
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| ClientError::Read(format!("bad status line `{}`", line.trim_end())))?;
    let mut chunked = false;
    let (mut set_cookie, mut location) = (None, None);
    loop {
        line.clear();
        r.read_line(&mut line)
            .map_err(|e| ClientError::Read(e.to_string()))?;
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        if let Some((k, v)) = l.split_once(':') {
            let v = v.trim();
            if k.eq_ignore_ascii_case("transfer-encoding") && v.eq_ignore_ascii_case("chunked") {
                chunked = true;
            } else if k.eq_ignore_ascii_case("set-cookie") {
                set_cookie = Some(v.to_owned());
            } else if k.eq_ignore_ascii_case("location") {
                location = Some(v.to_owned());
            }
        }
    }
    Ok(Head {
        status,
        chunked,
        set_cookie,
        location,
    })
}

/// The body as it arrives, de-chunked.
struct Body {
    r: BufReader<TcpStream>,
    chunked: bool,
    left: usize,
    done: bool,
}

impl Read for Body {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if !self.chunked {
            return self.r.read(buf);
        }
        if self.done {
            return Ok(0);
        }
        if self.left == 0 {
            let mut size = String::new();
            self.r.read_line(&mut size)?;
            if size.trim().is_empty() {
                size.clear();
                self.r.read_line(&mut size)?;
            }
            let n = usize::from_str_radix(size.trim().split(';').next().unwrap_or(""), 16)
                .map_err(|e| {
                    std::io::Error::other(format!("bad chunk size `{}`: {e}", size.trim_end()))
                })?;
            if n == 0 {
                self.done = true;
                return Ok(0);
            }
            self.left = n;
        }
        let want = buf.len().min(self.left);
        let got = self.r.read(&mut buf[..want])?;
        self.left -= got;
        if self.left == 0 {
            let mut crlf = [0u8; 2];
            self.r.read_exact(&mut crlf)?;
        }
        Ok(got)
    }
}

/// One request; the whole body.
pub fn request(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> Result<Response, ClientError> {
    let mut r = open(port, method, path, headers)?;
    let h = head(&mut r)?;
    let mut body = String::new();
    Body {
        r,
        chunked: h.chunked,
        left: 0,
        done: false,
    }
    .read_to_string(&mut body)
    .map_err(|e| ClientError::Read(e.to_string()))?;
    Ok(Response {
        status: h.status,
        body,
        set_cookie: h.set_cookie,
        location: h.location,
    })
}

/// One Server-Sent Event.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SseEvent {
    pub event: String,
    pub id: Option<String>,
    pub data: String,
}

/// Reads a Server-Sent Events stream, calling `on_event` for each event until it returns
/// false or the stream ends. Returns the status code.
pub fn events(
    port: u16,
    path: &str,
    headers: &[(&str, &str)],
    mut on_event: impl FnMut(SseEvent) -> bool,
) -> Result<u16, ClientError> {
    let mut r = open(port, "GET", path, headers)?;
    let _ = r.get_ref().set_read_timeout(None);
    let Head {
        status, chunked, ..
    } = head(&mut r)?;
    if status != 200 {
        return Ok(status);
    }
    let body = BufReader::new(Body {
        r,
        chunked,
        left: 0,
        done: false,
    });
    let mut ev = SseEvent::default();
    for line in body.lines() {
        let line = line.map_err(|e| ClientError::Read(e.to_string()))?;
        if line.is_empty() {
            if (!ev.data.is_empty() || !ev.event.is_empty()) && !on_event(std::mem::take(&mut ev)) {
                return Ok(status);
            }
            continue;
        }
        let (field, value) = line.split_once(':').unwrap_or((&line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match field {
            "event" => ev.event = value.to_owned(),
            "id" => ev.id = Some(value.to_owned()),
            "data" => {
                if !ev.data.is_empty() {
                    ev.data.push('\n');
                }
                ev.data.push_str(value);
            }
            _ => {}
        }
    }
    Ok(status)
}
