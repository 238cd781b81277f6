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

/// A serve command's job: cancelled to stop it; `job` tells its end from a later job's.
#[derive(Debug, Clone)]
pub struct ServeJob {
    pub job: u64,
    pub cancel: Cancel,
}

/// The first wait before a serve command that exited is started again (`restart =
/// "always"`); it doubles up to [`MAX_BACKOFF`], and starts over once it ran [`SETTLED`].
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(30);
const SETTLED: Duration = Duration::from_secs(60);

/// Where a serve job is.
enum Phase {
    Starting,
    Running {
        since: std::time::Instant,
    },
    /// It exited on its own; `Restart::Always` starts it again after `wait`.
    Exited {
        why: String,
        ran: Duration,
    },
    BackingOff {
        wait: Duration,
    },
    Stopped,
}

/// Runs `local`'s command, reports it, then runs its serve job (if given) until it is
/// cancelled or ends, as its restart policy says: an exit on its own is reported as
/// unhealthy; with `restart = "always"` it is started again after a back-off. `ended` is
/// told the job's end (also when it never started).
pub fn run_and_serve(
    local: &config::LocalResource,
    generation: u64,
    cancel: &Cancel,
    serve: Option<ServeJob>,
    logs: &Logs,
    tx: &mpsc::UnboundedSender<Event>,
    ended: &dyn Fn(u64),
) {
    let result = match &local.cmd {
        Some(cmd) => run_local(local, cmd, RUN_TIMEOUT, cancel, logs),
        None => Ok(()),
    };
    let start = result.is_ok() && !cancel.is_cancelled();
    let _ = tx.send(Event::RunDone {
        resource: local.name.clone(),
        generation,
        result,
    });
    let (Some(job), Some(serve_cmd)) = (serve, &local.serve_cmd) else {
        return;
    };
    if start {
        serve_job(local, serve_cmd, &job.cancel, logs, tx);
    }
    ended(job.job);
}

/// The serve job's phases, from its first start until it is cancelled or stays down.
fn serve_job(
    local: &config::LocalResource,
    serve_cmd: &str,
    cancel: &Cancel,
    logs: &Logs,
    tx: &mpsc::UnboundedSender<Event>,
) {
    let name = &local.name;
    let mut backoff = FIRST_BACKOFF;
    let mut phase = Phase::Starting;
    loop {
        phase = match phase {
            Phase::Starting => {
                super::narrate::tell(
                    logs,
                    std::slice::from_ref(name),
                    super::narrate::Told {
                        verb: crate::engine::log::Verb::Serving,
                        subject: name,
                        text: serve_cmd,
                        source: "cmd",
                    },
                );
                Phase::Running {
                    since: std::time::Instant::now(),
                }
            }
            Phase::Running { since } => {
                let end = run_local(local, serve_cmd, SERVE_TIMEOUT, cancel, logs);
                if cancel.is_cancelled() {
                    Phase::Stopped
                } else {
                    Phase::Exited {
                        why: match end {
                            Ok(()) => format!("`{serve_cmd}` exited"),
                            Err(e) => e,
                        },
                        ran: since.elapsed(),
                    }
                }
            }
            Phase::Exited { why, ran } => {
                let again = local.restart == config::Restart::Always;
                if ran >= SETTLED {
                    backoff = FIRST_BACKOFF;
                }
                let _ = tx.send(Event::Unhealthy {
                    resource: name.clone(),
                    message: if again {
                        format!("{why}; it starts again in {} s", backoff.as_secs())
                    } else {
                        why
                    },
                });
                if !again {
                    return;
                }
                Phase::BackingOff { wait: backoff }
            }
            Phase::BackingOff { wait } => {
                if cancel.sleep(wait) {
                    Phase::Stopped
                } else {
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    let _ = tx.send(Event::Serving {
                        resource: name.clone(),
                    });
                    Phase::Starting
                }
            }
            Phase::Stopped => return,
        };
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

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn local(
        dir: &std::path::Path,
        serve_cmd: &str,
        restart: config::Restart,
    ) -> config::LocalResource {
        config::LocalResource {
            name: "web".into(),
            cmd: None,
            serve_cmd: Some(serve_cmd.into()),
            restart,
            deps: Vec::new(),
            workdir: dir.to_path_buf(),
            env: BTreeMap::new(),
            depends_on: Vec::new(),
            trigger: config::TriggerMode::Auto,
            links: Vec::new(),
        }
    }

    /// Issue 26 point 7: a serve command that exits is reported; with `restart = "always"`
    /// it is started again after a back-off (said as `Serving`), until it is cancelled;
    /// without, it stays down. The commands are real (`sh`).
    #[test]
    fn an_exited_serve_command_starts_again_only_when_told_to() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let logs = Logs::new(1 << 20);
        for (restart, starts) in [(config::Restart::Always, 2), (config::Restart::OnChange, 1)] {
            let runs = dir.path().join(format!("{restart:?}"));
            let l = local(
                dir.path(),
                &format!("echo x >> '{}'; exit 3", runs.display()),
                restart,
            );
            let (tx, mut rx) = mpsc::unbounded_channel();
            let job = ServeJob {
                job: 1,
                cancel: Cancel::new(),
            };
            let stop = job.cancel.clone();
            let (done_tx, done) = std::sync::mpsc::channel();
            let t = {
                let logs = logs.clone();
                std::thread::spawn(move || {
                    run_and_serve(&l, 1, &Cancel::new(), Some(job), &logs, &tx, &|j| {
                        let _ = done_tx.send(j);
                    });
                })
            };
            let mut seen: Vec<String> = Vec::new();
            while seen.iter().filter(|e| e.starts_with("unhealthy")).count() < starts {
                match rx.blocking_recv() {
                    Some(Event::RunDone { .. }) => seen.push("run".to_owned()),
                    Some(Event::Unhealthy { message, .. }) => {
                        seen.push(format!("unhealthy {message}"))
                    }
                    Some(Event::Serving { .. }) => seen.push("serving".to_owned()),
                    Some(_) => {}
                    None => break,
                }
            }
            stop.cancel();
            t.join()
                .unwrap_or_else(|_| panic!("the serve thread panicked"));
            assert_eq!(done.recv().ok(), Some(1), "its end is told");
            let ran = std::fs::read_to_string(&runs)
                .unwrap_or_default()
                .lines()
                .count();
            assert_eq!(ran, starts, "{restart:?}: {seen:?}");
            if restart == config::Restart::Always {
                assert!(seen.contains(&"serving".to_owned()), "{seen:?}");
                assert!(
                    seen.iter()
                        .any(|e| e.contains("exited with code 3; it starts again in 1 s")),
                    "{seen:?}"
                );
            } else {
                assert!(!seen.contains(&"serving".to_owned()), "{seen:?}");
            }
        }
    }

    /// A serve job whose run failed never starts, and its end is still told (so that a
    /// `restart = "never"` job is started by the next run).
    #[test]
    fn a_failed_run_starts_no_serve_command_and_tells_its_end() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let mut l = local(dir.path(), "touch served", config::Restart::Never);
        l.cmd = Some("exit 1".into());
        let (tx, mut rx) = mpsc::unbounded_channel();
        let told = std::cell::Cell::new(None);
        let job = ServeJob {
            job: 7,
            cancel: Cancel::new(),
        };
        run_and_serve(
            &l,
            1,
            &Cancel::new(),
            Some(job),
            &Logs::new(1 << 20),
            &tx,
            &|j| {
                told.set(Some(j));
            },
        );
        assert_eq!(told.get(), Some(7));
        assert!(matches!(
            rx.try_recv(),
            Ok(Event::RunDone { result: Err(_), .. })
        ));
        assert!(!dir.path().join("served").exists());
    }
}
