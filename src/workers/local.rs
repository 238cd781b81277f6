//! `[[local]]` resources: their command, then their supervised serve command, with output to
//! the terminal and the resource's log.

use std::time::Duration;

use tokio::sync::mpsc;

use super::{RUN_TIMEOUT, SERVE_TIMEOUT};
use crate::config;
use crate::engine::driver::Logs;
use crate::engine::state::Event;
use crate::exec::{self, Cancel, Cmd};
use crate::out;

/// Runs `local`'s command, reports it, then runs its serve command (if any) until `serve`
/// is cancelled or it ends (an end is reported as unhealthy).
pub fn run_and_serve(
    local: &config::LocalResource,
    generation: u64,
    cancel: &Cancel,
    serve: &Cancel,
    logs: &Logs,
    tx: &mpsc::UnboundedSender<Event>,
) {
    let result = match &local.cmd {
        Some(cmd) => run_local(local, cmd, RUN_TIMEOUT, cancel, logs),
        None => Ok(()),
    };
    let serve = match (&result, &local.serve_cmd) {
        (Ok(()), Some(s)) if !cancel.is_cancelled() && !serve.is_cancelled() => {
            Some((s.clone(), serve.clone()))
        }
        _ => None,
    };
    let _ = tx.send(Event::RunDone {
        resource: local.name.clone(),
        generation,
        result,
    });
    if let Some((serve_cmd, sc)) = serve {
        out::say_for("serving", &local.name, &serve_cmd);
        let ended = run_local(local, &serve_cmd, SERVE_TIMEOUT, &sc, logs);
        if !sc.is_cancelled() {
            let message = match ended {
                Ok(()) => format!("`{serve_cmd}` exited"),
                Err(e) => e,
            };
            let _ = tx.send(Event::Unhealthy {
                resource: local.name.clone(),
                message,
            });
        }
    }
}

/// Runs a local resource's command line with `sh -c` in its workdir and environment,
/// output to the terminal and its log. The error says how it ended, with its last lines.
fn run_local(
    local: &config::LocalResource,
    line: &str,
    timeout: Duration,
    cancel: &Cancel,
    logs: &Logs,
) -> Result<(), String> {
    let mut cmd = Cmd::new("/bin/sh")
        .args(["-c", line])
        .timeout(timeout)
        .cancel(cancel);
    cmd.dir = Some(local.workdir.clone());
    cmd.env = local
        .env
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let f = exec::run_lines(&cmd, |l| {
        out::output(&local.name, "", l);
        logs.push(&local.name, "cmd", l);
    })
    .map_err(|e| e.to_string())?;
    match f.code {
        Some(0) => Ok(()),
        code => {
            let lines: Vec<&str> = f.stdout.lines().collect();
            let last = lines[lines.len().saturating_sub(5)..].join("\n  | ");
            Err(format!(
                "`{line}` exited with {}{}",
                code.map_or("a signal".to_owned(), |c| format!("code {c}")),
                if last.is_empty() {
                    String::new()
                } else {
                    format!(":\n  | {last}")
                }
            ))
        }
    }
}
