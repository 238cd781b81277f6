//! One command in one container through the API server's `pods/exec` WebSocket, spoken here
//! rather than through kube-rs's `AttachedProcess`.
//!
//! Owns the channel protocol of an exec: stdin on channel 0, stdout 1, stderr 2, the answer (a
//! `Status`) on 3, and the v5 subprotocol's close signal (255, 0) that ends the container's
//! stdin while the answer can still come. Two things need the protocol in hand: a program
//! that reads its input to the end before it exits (busybox's `tar` drains it after the
//! archive) must see stdin close, and the answer must be read whatever happens to stdin (a
//! container that fails at once stops reading it). On the v4 subprotocol (API servers before
//! 1.30) stdin cannot be closed without closing the stream, so it stays open until the answer.

use std::time::Duration;

use futures::{SinkExt as _, StreamExt as _};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Status;
use kube::Api;
use kube::api::AttachParams;
use tokio_tungstenite::tungstenite::Message;

const STDIN: u8 = 0;
const STDOUT: u8 = 1;
const STDERR: u8 = 2;
const STATUS: u8 = 3;
const CLOSE: u8 = 255;
/// Stdin goes in frames of this size.
const FRAME: usize = 64 * 1024;
/// What is kept of stdout and of stderr.
const KEEP: usize = 64 * 1024;

/// What the container answered.
#[derive(Debug, Clone)]
pub struct Answer {
    /// `Success`, or `Failure` with the runtime's message (a missing program, an exit code).
    pub status: Status,
    pub stdout: String,
    pub stderr: String,
}

impl Answer {
    pub fn success(&self) -> bool {
        self.status.status.as_deref() == Some("Success")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    /// The API server refused the exec or could not reach the container.
    #[error("{0}")]
    Refused(String),
    /// The stream ended before the container's answer: whether the command ran is not known.
    #[error("no answer from the container ({0})")]
    NoAnswer(String),
    /// No answer within the time given.
    #[error("no answer within {} s", .0.as_secs())]
    Timeout(Duration),
}

/// Opens the `pods/exec` WebSocket of `command` in `container` of `pod` (stdout and stderr
/// always, stdin when asked).
async fn connect(
    api: &Api<Pod>,
    pod: &str,
    container: &str,
    command: Vec<String>,
    stdin: bool,
) -> Result<kube::client::Connection, ExecError> {
    let params = AttachParams::default()
        .container(container)
        .stdin(stdin)
        .stdout(true)
        .stderr(true);
    let mut req = kube::core::Request::new(api.resource_url())
        .exec(pod, command, &params)
        .map_err(|e| ExecError::Refused(e.to_string()))?;
    req.extensions_mut().insert("exec");
    let client: kube::Client = api.clone().into();
    client
        .connect(req)
        .await
        .map_err(|e| ExecError::Refused(crate::cluster::kube::explain(&e).0))
}

/// Runs `command` in `container` of `pod`, with `stdin` when given (closed once sent where the
/// subprotocol allows), and returns its answer. Bounded by `timeout`.
pub async fn run(
    api: &Api<Pod>,
    pod: &str,
    container: &str,
    command: Vec<String>,
    stdin: Option<&[u8]>,
    timeout: Duration,
) -> Result<Answer, ExecError> {
    tokio::time::timeout(timeout, exchange(api, pod, container, command, stdin))
        .await
        .map_err(|_| ExecError::Timeout(timeout))?
}

async fn exchange(
    api: &Api<Pod>,
    pod: &str,
    container: &str,
    command: Vec<String>,
    stdin: Option<&[u8]>,
) -> Result<Answer, ExecError> {
    let conn = connect(api, pod, container, command, stdin.is_some()).await?;
    let closes = conn.supports_stream_close();
    let (mut tx, mut rx) = conn.into_stream().split();
    let write = async {
        if let Some(data) = stdin {
            for chunk in data.chunks(FRAME) {
                let mut frame = Vec::with_capacity(chunk.len() + 1);
                frame.push(STDIN);
                frame.extend_from_slice(chunk);
                if tx.send(Message::binary(frame)).await.is_err() {
                    // The container stopped reading (it failed at once): its answer says why.
                    return futures::future::pending().await;
                }
            }
            if closes {
                let _ = tx.send(Message::binary(vec![CLOSE, STDIN])).await;
            }
        }
        futures::future::pending::<()>().await
    };
    let read = async {
        let mut out = Vec::new();
        let mut err = Vec::new();
        loop {
            match rx.next().await {
                Some(Ok(Message::Binary(b))) if b.len() > 1 => {
                    let keep = |buf: &mut Vec<u8>| {
                        let room = KEEP.saturating_sub(buf.len());
                        buf.extend_from_slice(&b[1..b.len().min(room + 1)]);
                    };
                    match b[0] {
                        STDOUT => keep(&mut out),
                        STDERR => keep(&mut err),
                        STATUS => {
                            let status: Status = serde_json::from_slice(&b[1..]).map_err(|e| {
                                ExecError::NoAnswer(format!("an unreadable answer: {e}"))
                            })?;
                            return Ok(Answer {
                                status,
                                stdout: String::from_utf8_lossy(&out).into_owned(),
                                stderr: String::from_utf8_lossy(&err).into_owned(),
                            });
                        }
                        _ => {}
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(ExecError::NoAnswer(e.to_string())),
                None => return Err(ExecError::NoAnswer("the connection ended".into())),
            }
        }
    };
    let answer = tokio::select! {
        a = read => a,
        () = write => unreachable_write(),
    };
    // The answer is in: the stream is done with (dropping it closes the connection).
    answer
}

/// The writer never ends by itself (it waits forever once stdin is sent).
fn unreachable_write() -> Result<Answer, ExecError> {
    Err(ExecError::NoAnswer("the writer ended".into()))
}

/// What a [`Session`] says of one archive: tar's exit code and what it wrote.
#[derive(Debug, Clone)]
pub struct Unpacked {
    pub code: i32,
    pub output: String,
}

/// A shell kept running in one container that unpacks one archive per request: a length
/// line, then that many bytes, which `head -c` hands to `tar -x --overwrite`; it answers
/// with tar's output and a line of its own with the exit code. A save then costs one
/// WebSocket round trip and a tar, not a new exec (API server, kubelet, runtime: about
/// 50 ms on a real node). The shell ends when the stream closes (devenv ends, the pod goes).
pub struct Session {
    requests: tokio::sync::mpsc::Sender<Request>,
    task: tokio::task::JoinHandle<()>,
}

struct Request {
    archive: Vec<u8>,
    reply: tokio::sync::oneshot::Sender<Result<Unpacked, ExecError>>,
}

/// The line that ends each answer (random, so no file name can look like it).
fn marker() -> String {
    format!(
        "devenv-unpacked-{:016x}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64)
            ^ u64::from(std::process::id())
    )
}

impl Session {
    /// Starts the shell in `container` of `pod`. Fails when the container has no `sh`
    /// (then each archive goes by its own exec).
    pub async fn open(api: &Api<Pod>, pod: &str, container: &str) -> Result<Session, ExecError> {
        let mark = marker();
        let script = format!(
            "while IFS= read -r n; do head -c \"$n\" | tar -x --overwrite -f - -C / 2>&1; echo \"{mark} $?\"; done"
        );
        let command = ["sh", "-c", &script].map(String::from).into();
        let conn = connect(api, pod, container, command, true).await?;
        let (requests, rx) = tokio::sync::mpsc::channel::<Request>(4);
        let task = tokio::spawn(serve(conn.into_stream(), rx, mark));
        Ok(Session { requests, task })
    }

    /// Whether the shell may still answer (its stream has not ended).
    pub fn alive(&self) -> bool {
        !self.task.is_finished()
    }

    /// Unpacks `archive` (a tar stream) at / in the container.
    pub async fn unpack(&self, archive: Vec<u8>, timeout: Duration) -> Result<Unpacked, ExecError> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.requests
            .send(Request { archive, reply })
            .await
            .map_err(|_| ExecError::NoAnswer("the container's shell ended".into()))?;
        tokio::time::timeout(timeout, answer)
            .await
            .map_err(|_| ExecError::Timeout(timeout))?
            .map_err(|_| ExecError::NoAnswer("the container's shell ended".into()))?
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The session's side of the stream: one request at a time, its answer read up to the
/// marker line. Ends when the stream does (the shell exited: its status came, or the
/// connection closed), failing the request in hand.
async fn serve<S>(ws: S, mut requests: tokio::sync::mpsc::Receiver<Request>, mark: String)
where
    S: futures::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>>
        + futures::Sink<Message>
        + Unpin,
{
    let (mut tx, mut rx) = ws.split();
    let mut pending: Option<tokio::sync::oneshot::Sender<Result<Unpacked, ExecError>>> = None;
    let mut output: Vec<u8> = Vec::new();
    let end = |pending: Option<tokio::sync::oneshot::Sender<_>>, why: String| {
        if let Some(p) = pending {
            let _ = p.send(Err(ExecError::NoAnswer(why)));
        }
    };
    loop {
        tokio::select! {
            r = requests.recv(), if pending.is_none() => {
                let Some(r) = r else { return };
                // The length line, then the archive: what the shell's `read` and `head -c` take.
                let line = format!("{}\n", r.archive.len()).into_bytes();
                let mut sent = true;
                for chunk in std::iter::once(&line[..]).chain(r.archive.chunks(FRAME)) {
                    let mut frame = Vec::with_capacity(chunk.len() + 1);
                    frame.push(STDIN);
                    frame.extend_from_slice(chunk);
                    if tx.send(Message::binary(frame)).await.is_err() {
                        sent = false;
                        break;
                    }
                }
                if !sent {
                    let _ = r.reply.send(Err(ExecError::NoAnswer("the stream to the container's shell broke".into())));
                    return;
                }
                output.clear();
                pending = Some(r.reply);
            }
            m = rx.next() => match m {
                Some(Ok(Message::Binary(b))) if b.len() > 1 && (b[0] == STDOUT || b[0] == STDERR) => {
                    if output.len() < KEEP {
                        output.extend_from_slice(&b[1..]);
                    }
                    let text = String::from_utf8_lossy(&output).into_owned();
                    let Some(at) = text.find(&mark) else { continue };
                    let code = text[at + mark.len()..]
                        .split_whitespace()
                        .next()
                        .and_then(|c| c.parse().ok())
                        .unwrap_or(-1);
                    if let Some(p) = pending.take() {
                        let _ = p.send(Ok(Unpacked { code, output: text[..at].to_owned() }));
                    }
                    output.clear();
                }
                Some(Ok(Message::Binary(b))) if b.len() > 1 && b[0] == STATUS => {
                    let why = serde_json::from_slice::<Status>(&b[1..])
                        .ok()
                        .and_then(|s| s.message)
                        .unwrap_or_else(|| "the container's shell ended".into());
                    end(pending.take(), why);
                    return;
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => { end(pending.take(), e.to_string()); return; }
                None => { end(pending.take(), "the connection ended".into()); return; }
            }
        }
    }
}
