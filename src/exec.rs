//! Running external commands: the only user of duct.
//!
//! Every command runs in a process group of its own, is logged when it starts and ends, has a
//! deadline, and is registered while it runs, so a timeout or a shutdown kills the whole group
//! (grandchildren included) and no orphan survives devenv. Must not interpret any tool's
//! output: callers do that.

use std::collections::HashSet;
use std::io::{self, BufRead};
use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// A command to run.
#[derive(Debug, Clone)]
pub struct Cmd {
    pub program: String,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    pub dir: Option<PathBuf>,
    pub timeout: Duration,
}

impl Cmd {
    pub fn new(program: impl Into<String>) -> Cmd {
        Cmd {
            program: program.into(),
            args: Vec::new(),
            env: Vec::new(),
            dir: None,
            timeout: Duration::from_secs(60),
        }
    }

    pub fn args<I, S>(mut self, args: I) -> Cmd
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    pub fn timeout(mut self, t: Duration) -> Cmd {
        self.timeout = t;
        self
    }

    /// The command line for messages and logs.
    pub fn display(&self) -> String {
        std::iter::once(self.program.as_str())
            .chain(self.args.iter().map(String::as_str))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// A command that ran to its end (whatever its exit code).
#[derive(Debug, Clone)]
pub struct Finished {
    /// The exit code; `None` when a signal ended the process.
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    /// The program is not installed or not on PATH.
    #[error("`{program}` was not found on PATH")]
    NotFound { program: String },
    /// The program exists but could not be started.
    #[error("cannot start `{command}`: {source}")]
    Spawn {
        command: String,
        #[source]
        source: io::Error,
    },
    /// The command outran its deadline; its process group was killed.
    #[error("`{command}` did not finish within {}s and was stopped", after.as_secs_f32())]
    TimedOut { command: String, after: Duration },
    /// Waiting for the command failed.
    #[error("waiting for `{command}` failed: {source}")]
    Wait {
        command: String,
        #[source]
        source: io::Error,
    },
}

fn live_groups() -> &'static Mutex<HashSet<i32>> {
    static GROUPS: OnceLock<Mutex<HashSet<i32>>> = OnceLock::new();
    GROUPS.get_or_init(|| Mutex::new(HashSet::new()))
}

fn register(pgid: i32, live: bool) {
    if let Ok(mut g) = live_groups().lock() {
        if live {
            g.insert(pgid);
        } else {
            g.remove(&pgid);
        }
    }
}

/// Sends SIGKILL to a whole process group.
#[cfg(unix)]
fn kill_group(pgid: i32) {
    if pgid > 0 {
        // SAFETY: kill(2) with a negative pid signals the process group; no memory is shared.
        unsafe {
            libc::kill(-pgid, libc::SIGKILL);
        }
    }
}

#[cfg(not(unix))]
fn kill_group(_pgid: i32) {}

/// Kills every process group started through this module that is still running. Called on
/// shutdown so that no child outlives devenv.
pub fn kill_all() {
    let groups: Vec<i32> = live_groups()
        .lock()
        .map(|g| g.iter().copied().collect())
        .unwrap_or_default();
    for g in groups {
        tracing::debug!(pgid = g, "killing process group");
        kill_group(g);
    }
}

/// How a command's output is collected. duct applies the innermost redirect, so the choice
/// is made here, once, rather than layered on afterwards.
#[derive(Clone, Copy)]
enum Output {
    /// stdout and stderr captured apart.
    Capture,
    /// stderr merged into stdout, read as a stream.
    Merged,
}

fn expression(cmd: &Cmd, output: Output) -> duct::Expression {
    let mut e = duct::cmd(&cmd.program, &cmd.args).stdin_null().unchecked();
    e = match output {
        Output::Capture => e.stdout_capture().stderr_capture(),
        Output::Merged => e.stderr_to_stdout(),
    };
    for (k, v) in &cmd.env {
        e = e.env(k, v);
    }
    if let Some(d) = &cmd.dir {
        e = e.dir(d);
    }
    #[cfg(unix)]
    {
        e = e.before_spawn(|c| {
            use std::os::unix::process::CommandExt;
            c.process_group(0);
            Ok(())
        });
    }
    e
}

/// A program that is not there is told apart from one that would not start.
fn spawn_error(cmd: &Cmd, source: io::Error) -> ExecError {
    if source.kind() == io::ErrorKind::NotFound {
        ExecError::NotFound {
            program: cmd.program.clone(),
        }
    } else {
        ExecError::Spawn {
            command: cmd.display(),
            source,
        }
    }
}

/// Runs `cmd` to completion or to its deadline, capturing stdout and stderr.
pub fn run(cmd: &Cmd) -> Result<Finished, ExecError> {
    let command = cmd.display();
    let started = Instant::now();
    tracing::debug!(%command, "run");
    let handle = expression(cmd, Output::Capture)
        .start()
        .map_err(|source| spawn_error(cmd, source))?;
    // With process_group(0) the group id is the child's pid.
    let pgid = handle.pids().first().map_or(0, |p| *p as i32);
    register(pgid, true);
    let waited = handle.wait_timeout(cmd.timeout);
    let result = match waited {
        Ok(Some(out)) => Ok(Finished {
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            elapsed: started.elapsed(),
        }),
        Ok(None) => {
            kill_group(pgid);
            let _ = handle.kill();
            let _ = handle.wait();
            Err(ExecError::TimedOut {
                command: command.clone(),
                after: cmd.timeout,
            })
        }
        Err(source) => {
            kill_group(pgid);
            Err(ExecError::Wait {
                command: command.clone(),
                source,
            })
        }
    };
    // Anything the command left behind in its group goes with it.
    kill_group(pgid);
    register(pgid, false);
    match &result {
        Ok(f) => {
            tracing::debug!(%command, code = ?f.code, ms = f.elapsed.as_millis() as u64, "finished")
        }
        Err(e) => tracing::debug!(%command, error = %e, "failed"),
    }
    result
}

/// Runs `cmd` with stdout and stderr merged, handing each line to `on_line` as it arrives
/// (for progress output such as `minikube start`'s). The returned `stdout` holds every line.
pub fn run_lines(cmd: &Cmd, mut on_line: impl FnMut(&str)) -> Result<Finished, ExecError> {
    let command = cmd.display();
    let started = Instant::now();
    tracing::debug!(%command, "run (streaming)");
    let reader = expression(cmd, Output::Merged)
        .reader()
        .map_err(|source| spawn_error(cmd, source))?;
    let pgid = reader.pids().first().map_or(0, |p| *p as i32);
    register(pgid, true);
    // A watchdog kills the group at the deadline, which ends the read loop below.
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    let timeout = cmd.timeout;
    let watchdog = std::thread::spawn(move || {
        let fired = matches!(
            done_rx.recv_timeout(timeout),
            Err(std::sync::mpsc::RecvTimeoutError::Timeout)
        );
        if fired {
            kill_group(pgid);
        }
        fired
    });
    let mut all = String::new();
    let mut lines = io::BufReader::new(&reader);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match lines.read_until(b'\n', &mut buf) {
            Ok(0) => break,
            Ok(_) => {
                let line = String::from_utf8_lossy(&buf);
                let line = line.trim_end_matches(['\n', '\r']);
                on_line(line);
                all.push_str(line);
                all.push('\n');
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                tracing::debug!(%command, error = %e, "reading output failed");
                break;
            }
        }
    }
    // The exit status, once the child is reaped (duct reaps it at EOF; after a read error,
    // give it until the deadline).
    let deadline = started + cmd.timeout;
    let status = loop {
        match reader.try_wait() {
            Ok(Some(o)) => break Some(o.status),
            Ok(None) if Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(10))
            }
            _ => break None,
        }
    };
    let _ = done_tx.send(());
    let timed_out = watchdog.join().unwrap_or(false);
    let _ = reader.kill();
    kill_group(pgid);
    register(pgid, false);
    if timed_out {
        tracing::debug!(%command, "timed out");
        return Err(ExecError::TimedOut {
            command,
            after: cmd.timeout,
        });
    }
    let finished = Finished {
        code: status.and_then(|s| s.code()),
        stdout: all,
        stderr: String::new(),
        elapsed: started.elapsed(),
    };
    tracing::debug!(%command, code = ?finished.code, ms = finished.elapsed.as_millis() as u64, "finished");
    Ok(finished)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn captures_output_and_exit_code() {
        let f = run(&Cmd::new("sh").args(["-c", "echo out; echo err >&2; exit 3"]));
        let f = f.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(f.code, Some(3));
        assert_eq!(f.stdout, "out\n");
        assert_eq!(f.stderr, "err\n");
    }

    #[test]
    fn lines_arrive_one_by_one_with_the_exit_code() {
        let mut seen = Vec::new();
        let f = run_lines(
            &Cmd::new("sh").args(["-c", "echo one; echo two >&2; echo three; exit 4"]),
            |l| seen.push(l.to_owned()),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(seen, ["one", "two", "three"]);
        assert_eq!(f.code, Some(4));
        assert_eq!(f.stdout, "one\ntwo\nthree\n");
    }

    #[test]
    fn a_streaming_command_past_its_deadline_is_stopped() {
        let mut seen = Vec::new();
        let e = run_lines(
            &Cmd::new("sh")
                .args(["-c", "echo started; sleep 300"])
                .timeout(Duration::from_millis(500)),
            |l| seen.push(l.to_owned()),
        );
        assert!(matches!(e, Err(ExecError::TimedOut { .. })), "{e:?}");
        assert_eq!(seen, ["started"]);
    }

    #[test]
    fn a_missing_program_is_not_found() {
        let e = run(&Cmd::new("devenv-no-such-tool-xyz"));
        assert!(matches!(e, Err(ExecError::NotFound { .. })), "{e:?}");
    }

    /// A command that outlives its deadline is killed together with its own children.
    #[cfg(target_os = "linux")]
    #[test]
    fn a_timeout_kills_the_whole_process_group() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let pidfile = dir.path().join("grandchild.pid");
        let script = format!("sleep 300 & echo $! > {}; wait", pidfile.display());
        let e = run(&Cmd::new("sh")
            .args(["-c", &script])
            .timeout(Duration::from_millis(500)));
        assert!(matches!(e, Err(ExecError::TimedOut { .. })), "{e:?}");
        let pid = std::fs::read_to_string(&pidfile).unwrap_or_default();
        let pid = pid.trim();
        assert!(!pid.is_empty());
        // The grandchild is gone (or a zombie, waiting for init to reap it).
        let alive = || {
            let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
            let state = status
                .lines()
                .find(|l| l.starts_with("State:"))
                .unwrap_or("")
                .to_owned();
            (!status.is_empty() && !state.contains('Z')).then_some(state)
        };
        let deadline = Instant::now() + Duration::from_secs(5);
        while alive().is_some() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(alive(), None, "the grandchild survived");
    }
}
