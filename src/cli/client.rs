//! `devenv status`, `logs` and `trigger`: clients of the project's running daemon, found
//! through the state directory, speaking its HTTP API.

use std::process::ExitCode;

use anyhow::{Context as _, Result};

use std::path::Path;

use crate::session::daemon;
use crate::web::TOKEN_HEADER;
use crate::web::client::{self, Response};

fn port_of(file: &Path) -> Result<(u16, String)> {
    let (info, token) = daemon::find(file)?;
    let port = info
        .port()
        .with_context(|| format!("the daemon's record has no port: {}", info.url))?;
    Ok((port, token))
}

fn ok(r: Response) -> Result<Response> {
    if (200..300).contains(&r.status) {
        return Ok(r);
    }
    let why = serde_json::from_str::<serde_json::Value>(&r.body)
        .ok()
        .and_then(|v| v["error"].as_str().map(str::to_owned))
        .unwrap_or(r.body.clone());
    anyhow::bail!("the daemon answered {}: {why}", r.status)
}

/// `devenv status [--json]`.
pub fn status(file: &Path, json: bool) -> Result<ExitCode> {
    let (port, _) = port_of(file)?;
    let r = ok(client::request(port, "GET", "/api/status", &[])?)?;
    if json {
        println!("{}", r.body);
        return Ok(ExitCode::SUCCESS);
    }
    let v: serde_json::Value = serde_json::from_str(&r.body).context("the daemon's status")?;
    let empty = Vec::new();
    let rows = v["resources"].as_array().unwrap_or(&empty);
    let width = rows
        .iter()
        .filter_map(|r| r["name"].as_str().map(str::len))
        .max()
        .unwrap_or(0)
        .max(8);
    println!(
        "{:width$}  {:7}  {:9}  {:8}  error",
        "resource", "kind", "status", "build"
    );
    for r in rows {
        let build = r["build_ms"]
            .as_u64()
            .map_or("-".to_owned(), |ms| format!("{:.1}s", ms as f64 / 1000.0));
        let error = r["last_error"]
            .as_str()
            .and_then(|e| e.lines().next())
            .unwrap_or("");
        println!(
            "{:width$}  {:7}  {:9}  {:8}  {error}",
            r["name"].as_str().unwrap_or("?"),
            r["kind"].as_str().unwrap_or("?"),
            r["display"].as_str().unwrap_or("?"),
            build
        );
    }
    println!("\npage: http://127.0.0.1:{port}/");
    Ok(ExitCode::SUCCESS)
}

/// `devenv logs [NAME] [-f] [--tail N]`: one resource's lines (`source | text`), or every
/// resource's (`resource source | text`).
pub fn logs(file: &Path, name: Option<&str>, follow: bool, tail: usize) -> Result<ExitCode> {
    let (port, _) = port_of(file)?;
    let path = format!(
        "/api/logs{}?tail={tail}{}",
        name.map(|n| format!("/{}", segment(n))).unwrap_or_default(),
        if follow { "&follow=1" } else { "" }
    );
    let status = client::events(port, &path, &[], |e| {
        if let Ok(v) = serde_json::from_str::<serde_json::Value>(&e.data) {
            let source = v["source"].as_str().unwrap_or("");
            let text = match v["verb"].as_str() {
                Some(verb) => format!("{verb} {}", v["text"].as_str().unwrap_or("")),
                None => v["text"].as_str().unwrap_or("").to_owned(),
            };
            let text = crate::out::printable(&text);
            match v["resource"].as_str() {
                Some(r) => println!("{r} {source} | {text}"),
                None if source.is_empty() => println!("{text}"),
                None => println!("{source} | {text}"),
            }
        }
        true
    })?;
    if status != 200 {
        let r = client::request(port, "GET", &path.replace("&follow=1", ""), &[])?;
        ok(r)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// `name` as one path segment: every byte but the unreserved ones percent-encoded (a `?` or a
/// `/` in a name must not end or split the path).
fn segment(name: &str) -> String {
    name.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// `devenv trigger NAME`.
pub fn trigger(file: &Path, name: &str) -> Result<ExitCode> {
    let (port, token) = port_of(file)?;
    ok(client::request(
        port,
        "POST",
        &format!("/api/trigger/{}", segment(name)),
        &[(TOKEN_HEADER, &token)],
    )?)?;
    println!("triggered  {name}");
    Ok(ExitCode::SUCCESS)
}
