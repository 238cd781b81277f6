//! Running external commands: the only user of duct.
//!
//! Every command runs in a process group of its own, is logged when it starts and ends, has a
//! deadline, and is registered while it runs, so a timeout or a shutdown kills the whole group
//! (grandchildren included) and no orphan survives devenv. Must not interpret any tool's
//! output: callers do that.

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// A command to run.
#[derive(Debug, Clone)]
pub struct Cmd {
    pub program: String,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    pub dir: Option<PathBuf>,
    pub timeout: Duration,
    /// Stops the command early when cancelled.
    pub cancel: Option<Cancel>,
}

/// A way to stop commands before they end on their own: once cancelled, it kills the process
/// group of every command it was given to, and those not started yet do not start.
#[derive(Debug, Clone, Default)]
pub struct Cancel(Arc<CancelInner>);

#[derive(Debug, Default)]
struct CancelInner {
    cancelled: AtomicBool,
    groups: Mutex<Vec<i32>>,
    /// Told when it is cancelled (for [`Cancel::sleep`]).
    told: std::sync::Condvar,
}

impl Cancel {
    pub fn new() -> Cancel {
        Cancel::default()
    }

    /// Kills the running commands' process groups (they are reaped by their callers).
    pub fn cancel(&self) {
        let groups = crate::host::lock(&self.0.groups);
        self.0.cancelled.store(true, Ordering::SeqCst);
        for g in groups.iter() {
            kill_group(*g);
        }
        self.0.told.notify_all();
    }

    /// Waits `d`, or less when cancelled meanwhile; whether it was cancelled.
    pub fn sleep(&self, d: Duration) -> bool {
        let groups = crate::host::lock(&self.0.groups);
        let (_groups, _) = self
            .0
            .told
            .wait_timeout_while(groups, d, |_| !self.is_cancelled())
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        self.is_cancelled()
    }

    pub fn is_cancelled(&self) -> bool {
        self.0.cancelled.load(Ordering::SeqCst)
    }

    /// Follows a started command; one started after the cancel is killed at once.
    fn attach(&self, pgid: i32) {
        let mut groups = crate::host::lock(&self.0.groups);
        groups.push(pgid);
        if self.is_cancelled() {
            kill_group(pgid);
        }
    }

    fn detach(&self, pgid: i32) {
        if let Ok(mut g) = self.0.groups.lock() {
            g.retain(|x| *x != pgid);
        }
    }
}

impl Cmd {
    pub fn new(program: impl Into<String>) -> Cmd {
        Cmd {
            program: program.into(),
            args: Vec::new(),
            env: Vec::new(),
            dir: None,
            timeout: Duration::from_secs(60),
            cancel: None,
        }
    }

    pub fn cancel(mut self, c: &Cancel) -> Cmd {
        self.cancel = Some(c.clone());
        self
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
    /// Bytes dropped from the middle of a captured stdout or stderr longer than
    /// [`MAX_CAPTURE`] + [`KEPT_OUTPUT`] (0: whole). The text says where.
    pub stdout_cut: u64,
    pub stderr_cut: u64,
    pub elapsed: Duration,
}

/// The longest line of a tool's output an error message shows.
pub const SHOWN_LINE: usize = 1024;

/// A tool's output as an error message shows it: its last `n` lines that are not blank,
/// each cut at [`SHOWN_LINE`] bytes (saying how much more there was), indented. A 99 KB
/// single-line error is shown as its first kilobyte.
pub fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(n)..]
        .iter()
        .map(|l| {
            if l.len() <= SHOWN_LINE {
                return format!("  {l}");
            }
            let mut at = SHOWN_LINE;
            while !l.is_char_boundary(at) {
                at -= 1;
            }
            format!("  {} … ({} more bytes)", &l[..at], l.len() - at)
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// How much of the start of a captured stream is kept (with its last [`KEPT_OUTPUT`] bytes):
/// a tool that never stops talking cannot grow devenv.
pub const MAX_CAPTURE: usize = 16 * 1024 * 1024;

/// A captured stream: its first [`MAX_CAPTURE`] bytes, its last [`KEPT_OUTPUT`], and how
/// many were dropped between them.
#[derive(Default)]
struct Capped {
    head: Vec<u8>,
    tail: std::collections::VecDeque<u8>,
    dropped: u64,
}

impl Capped {
    fn push(&mut self, mut bytes: &[u8]) {
        let room = MAX_CAPTURE - self.head.len();
        if room > 0 {
            let n = room.min(bytes.len());
            self.head.extend_from_slice(&bytes[..n]);
            bytes = &bytes[n..];
        }
        self.tail.extend(bytes);
        let over = self.tail.len().saturating_sub(KEPT_OUTPUT);
        if over > 0 {
            self.tail.drain(..over);
            self.dropped += over as u64;
        }
    }

    /// Reads `r` to its end.
    fn read_all(mut r: impl io::Read) -> Capped {
        let mut c = Capped::default();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match r.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => c.push(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
        c
    }

    fn text(self) -> (String, u64) {
        let mut out = String::from_utf8_lossy(&self.head).into_owned();
        if self.dropped > 0 {
            out.push_str(&format!(
                "\n[… {} bytes of output dropped here]\n",
                self.dropped
            ));
        }
        out.push_str(&String::from_utf8_lossy(&Vec::from(self.tail)));
        (out, self.dropped)
    }
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
    /// The command was cancelled (a newer change, or shutdown); its process group was killed.
    #[error("`{command}` was cancelled")]
    Cancelled { command: String },
    /// Waiting for the command failed.
    #[error("waiting for `{command}` failed: {source}")]
    Wait {
        command: String,
        #[source]
        source: io::Error,
    },
}

/// Live process groups, with their leader's start time (from /proc) when known.
fn live_groups() -> &'static Mutex<HashMap<i32, Option<u64>>> {
    static GROUPS: OnceLock<Mutex<HashMap<i32, Option<u64>>>> = OnceLock::new();
    GROUPS.get_or_init(|| Mutex::new(HashMap::new()))
}

/// Where the live groups are written down, so that the next run can kill what a crash left.
fn record_file() -> &'static Mutex<Option<PathBuf>> {
    static FILE: OnceLock<Mutex<Option<PathBuf>>> = OnceLock::new();
    FILE.get_or_init(|| Mutex::new(None))
}

/// A process's start time in clock ticks since boot ([`crate::host::start_ticks`]).
fn start_time(pid: i32) -> Option<u64> {
    crate::host::start_ticks(u32::try_from(pid).ok()?)
}

/// Whether a process of group `pgid` is running (not a zombie). Where /proc cannot be read,
/// any member counts.
fn has_running_member(pgid: i32) -> bool {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return true;
    };
    dir.flatten().any(|e| {
        let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) else {
            return false;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            return false;
        };
        let Some(close) = stat.rfind(')') else {
            return false;
        };
        // After the command: state, ppid, pgrp.
        let mut f = stat[close + 1..].split_whitespace();
        let state = f.next();
        let pgrp = f.nth(1).and_then(|g| g.parse::<i32>().ok());
        pgrp == Some(pgid) && state != Some("Z") && state != Some("X")
    })
}

fn register(pgid: i32, live: bool) {
    let Ok(mut g) = live_groups().lock() else {
        return;
    };
    if live {
        g.insert(pgid, start_time(pgid));
    } else {
        g.remove(&pgid);
    }
    if let Ok(file) = record_file().lock()
        && let Some(path) = file.as_ref()
    {
        let text: String = g
            .iter()
            .map(|(p, t)| format!("{p} {}\n", t.map_or("-".to_owned(), |t| t.to_string())))
            .collect();
        // Written whole and renamed into place: a kill -9 between a truncate and a write
        // would leave an empty list, and the next run would kill nothing.
        let tmp = path.with_extension("tmp");
        if let Err(e) =
            crate::host::write_private(&tmp, text).and_then(|()| std::fs::rename(&tmp, path))
        {
            tracing::debug!(path = %path.display(), error = %e, "cannot record process groups");
        }
    }
}

/// Kills the process groups that a previous run listed in `path` (see [`record_groups`]) and
/// left behind after a crash or kill -9; returns how many. A listed group whose leader is a
/// different process now (its start time differs) is left alone.
pub fn kill_leftovers(path: &Path) -> usize {
    let mut killed = 0;
    if let Ok(text) = std::fs::read_to_string(path) {
        for line in text.lines() {
            let mut parts = line.split_whitespace();
            let Some(pgid) = parts.next().and_then(|p| p.parse::<i32>().ok()) else {
                continue;
            };
            let recorded = parts.next().and_then(|t| t.parse::<u64>().ok());
            let now = start_time(pgid);
            // A live leader that started at another time is someone else's process.
            if now.is_some() && recorded.is_some() && now != recorded {
                continue;
            }
            if pgid > 0 {
                // kill(2) succeeds on a group of unreaped zombies too (an init that never
                // reaps): only a group with a process still running counts.
                let running = has_running_member(pgid);
                // SAFETY: kill(2) on a process group; no memory is shared.
                let r = unsafe { libc::kill(-pgid, libc::SIGKILL) };
                if r == 0 && running {
                    tracing::info!(pgid, "killed a process group left by an earlier run");
                    killed += 1;
                }
            }
        }
    }
    killed
}

/// From now on, keeps `path` listing the process groups that are running.
pub fn record_groups(path: &Path) {
    if let Ok(mut f) = record_file().lock() {
        *f = Some(path.to_path_buf());
    }
    register(0, false);
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
        .map(|g| g.keys().copied().collect())
        .unwrap_or_default();
    for g in groups {
        tracing::debug!(pgid = g, "killing process group");
        kill_group(g);
    }
}

/// How a command's output is collected. duct applies the innermost redirect, so the choice
/// is made here, once, rather than layered on afterwards.
enum Output {
    /// stdout and stderr into pipes of their own, read apart (and bounded) by the caller.
    Pipes(os_pipe::PipeWriter, os_pipe::PipeWriter),
    /// stderr merged into stdout, read as a stream.
    Merged,
}

fn expression(cmd: &Cmd, output: Output) -> duct::Expression {
    let mut e = duct::cmd(&cmd.program, &cmd.args).stdin_null().unchecked();
    e = match output {
        Output::Pipes(out, err) => e.stdout_file(out).stderr_file(err),
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
            // If devenv dies without cleaning up (kill -9), the child is killed with it.
            // SAFETY: prctl(2) is async-signal-safe and touches no memory of the parent.
            #[cfg(target_os = "linux")]
            unsafe {
                c.pre_exec(|| {
                    libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                    Ok(())
                });
            }
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
    if cmd.cancel.as_ref().is_some_and(Cancel::is_cancelled) {
        return Err(ExecError::Cancelled { command });
    }
    let pipe = |what| {
        os_pipe::pipe().map_err(|source| ExecError::Spawn {
            command: format!("{command} ({what} pipe)"),
            source,
        })
    };
    let (out_r, out_w) = pipe("stdout")?;
    let (err_r, err_w) = pipe("stderr")?;
    let expr = expression(cmd, Output::Pipes(out_w, err_w));
    let handle = expr.start().map_err(|source| spawn_error(cmd, source))?;
    // Our ends of the writers go with the expression: the readers see the end when the
    // command's group is gone.
    drop(expr);
    let readers = [out_r, err_r].map(|r| std::thread::spawn(move || Capped::read_all(r)));
    // With process_group(0) the group id is the child's pid.
    let pgid = handle.pids().first().map_or(0, |p| *p as i32);
    register(pgid, true);
    if let Some(c) = &cmd.cancel {
        c.attach(pgid);
    }
    let waited = handle.wait_timeout(cmd.timeout);
    let result = match waited {
        Ok(Some(out)) => Ok(Finished {
            code: out.status.code(),
            stdout: String::new(),
            stderr: String::new(),
            stdout_cut: 0,
            stderr_cut: 0,
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
    // Anything the command left behind in its group goes with it (and with it, the last
    // holders of its pipes).
    kill_group(pgid);
    register(pgid, false);
    let [out, err] = readers.map(|t| t.join().unwrap_or_default().text());
    let result = result.map(|mut f| {
        (f.stdout, f.stdout_cut) = out;
        (f.stderr, f.stderr_cut) = err;
        f
    });
    let result = match &cmd.cancel {
        Some(c) => {
            c.detach(pgid);
            if c.is_cancelled() {
                Err(ExecError::Cancelled {
                    command: command.clone(),
                })
            } else {
                result
            }
        }
        None => result,
    };
    match &result {
        Ok(f) => {
            tracing::debug!(%command, code = f.code, ms = f.elapsed.as_millis() as u64, "finished")
        }
        Err(e) => tracing::debug!(%command, error = %e, "failed"),
    }
    result
}

/// How much of a streamed command's output is kept for its caller (its last lines): a serve
/// command that logs for days must not grow devenv.
pub const KEPT_OUTPUT: usize = 256 * 1024;
/// The longest output line kept whole: the rest of a longer one is dropped (and said so), so
/// a command that prints without newlines cannot grow devenv.
pub const MAX_LINE: usize = 64 * 1024;

/// Reads one line (up to and without its `\n`) into `buf`, keeping at most `cap` bytes of
/// it; returns the bytes read (0 at the end) and how many of the line's were dropped.
fn read_line_capped(
    r: &mut impl io::BufRead,
    buf: &mut Vec<u8>,
    cap: usize,
) -> io::Result<(usize, usize)> {
    let (mut read, mut dropped) = (0, 0);
    loop {
        let available = match r.fill_buf() {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if available.is_empty() {
            return Ok((read, dropped));
        }
        let (chunk, done) = match available.iter().position(|&b| b == b'\n') {
            Some(i) => (&available[..i], Some(i + 1)),
            None => (available, None),
        };
        let room = cap.saturating_sub(buf.len());
        buf.extend_from_slice(&chunk[..chunk.len().min(room)]);
        dropped += chunk.len().saturating_sub(room);
        let used = done.unwrap_or(available.len());
        r.consume(used);
        read += used;
        if done.is_some() {
            return Ok((read, dropped));
        }
    }
}

/// Runs `cmd` with stdout and stderr merged, handing each line to `on_line` as it arrives
/// (for progress output such as `minikube start`'s). The returned `stdout` holds the last
/// lines, up to [`KEPT_OUTPUT`] bytes.
pub fn run_lines(cmd: &Cmd, mut on_line: impl FnMut(&str)) -> Result<Finished, ExecError> {
    let command = cmd.display();
    let started = Instant::now();
    tracing::debug!(%command, "run (streaming)");
    if cmd.cancel.as_ref().is_some_and(Cancel::is_cancelled) {
        return Err(ExecError::Cancelled { command });
    }
    let reader = expression(cmd, Output::Merged)
        .reader()
        .map_err(|source| spawn_error(cmd, source))?;
    let pgid = reader.pids().first().map_or(0, |p| *p as i32);
    register(pgid, true);
    if let Some(c) = &cmd.cancel {
        c.attach(pgid);
    }
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
    let mut kept: std::collections::VecDeque<String> = std::collections::VecDeque::new();
    let mut kept_bytes = 0;
    let mut lines = io::BufReader::new(&reader);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match read_line_capped(&mut lines, &mut buf, MAX_LINE) {
            Ok((0, _)) => break,
            Ok((_, dropped)) => {
                let text = String::from_utf8_lossy(&buf);
                let mut line = text.trim_end_matches(['\n', '\r']).to_owned();
                if dropped > 0 {
                    line.push_str(&format!(" … [{dropped} more bytes of this line dropped]"));
                }
                let line = line.as_str();
                on_line(line);
                kept_bytes += line.len() + 1;
                kept.push_back(line.to_owned());
                while kept_bytes > KEPT_OUTPUT {
                    match kept.pop_front() {
                        Some(old) => kept_bytes -= old.len() + 1,
                        None => break,
                    }
                }
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
    if let Some(c) = &cmd.cancel {
        c.detach(pgid);
        if c.is_cancelled() {
            tracing::debug!(%command, "cancelled");
            return Err(ExecError::Cancelled { command });
        }
    }
    if timed_out {
        tracing::debug!(%command, "timed out");
        return Err(ExecError::TimedOut {
            command,
            after: cmd.timeout,
        });
    }
    let mut all = String::with_capacity(kept_bytes);
    for l in kept {
        all.push_str(&l);
        all.push('\n');
    }
    let finished = Finished {
        code: status.and_then(|s| s.code()),
        stdout: all,
        stderr: String::new(),
        stdout_cut: 0,
        stderr_cut: 0,
        elapsed: started.elapsed(),
    };
    tracing::debug!(%command, code = finished.code, ms = finished.elapsed.as_millis() as u64, "finished");
    Ok(finished)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The list of live groups is never seen half-written: a run killed with -9 while it
    /// rewrote the list (a command ended) left it empty, and the next run killed nothing
    /// (seen as a flaky kill -9 test on a loaded machine).
    #[test]
    fn the_recorded_groups_are_never_seen_half_written() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("groups");
        record_groups(&path);
        register(999_999, true);
        let writer = std::thread::spawn(|| {
            for _ in 0..3000 {
                register(999_998, true);
                register(999_998, false);
            }
        });
        let mut reads = 0;
        while !writer.is_finished() {
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            assert!(text.contains("999999 "), "read {reads}: {text:?}");
            reads += 1;
        }
        let _ = writer.join();
    }

    /// A recorded group whose processes have all exited is not counted as left running,
    /// even when its leader is still an unreaped zombie (an init that never reaps, as in
    /// some containers: the CI run counted two groups where one was running). Failed before:
    /// kill(2) succeeds on a zombie, so it was counted.
    #[cfg(target_os = "linux")]
    #[test]
    fn a_group_of_zombies_is_not_counted_as_left_running() {
        use std::os::unix::process::CommandExt;
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let mut zombie = std::process::Command::new("true")
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("{e}"));
        let mut running = std::process::Command::new("sleep")
            .arg("300")
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("{e}"));
        let (z, r) = (zombie.id() as i32, running.id() as i32);
        // Wait for `true` to exit without reaping it: its stat says Z.
        let state = |pid: i32| {
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|s| s.rfind(')').map(|i| s[i + 1..].trim_start().chars().next()))
                .flatten()
        };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while state(z) != Some('Z') && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert_eq!(state(z), Some('Z'));
        let file = dir.path().join("groups");
        std::fs::write(
            &file,
            format!(
                "{z} {}\n{r} {}\n",
                start_time(z).unwrap_or(0),
                start_time(r).unwrap_or(0)
            ),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(kill_leftovers(&file), 1);
        let _ = running.wait();
        let _ = zombie.wait();
    }

    /// Issue 16, point 3: one output line without an end is not held whole.
    #[test]
    fn an_overlong_line_is_cut_and_the_rest_dropped() {
        let mut seen = Vec::new();
        let f = run_lines(
            &Cmd::new("sh").args([
                "-c",
                "head -c 5000000 /dev/zero | tr '\\0' a; echo; echo next",
            ]),
            |l| seen.push(l.to_owned()),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(f.code, Some(0));
        assert_eq!(
            seen.len(),
            2,
            "{:?}",
            seen.iter().map(String::len).collect::<Vec<_>>()
        );
        assert!(seen[0].starts_with(&"a".repeat(MAX_LINE)));
        assert!(
            seen[0].ends_with(&format!(
                " … [{} more bytes of this line dropped]",
                5_000_000 - MAX_LINE
            )),
            "{}",
            &seen[0][MAX_LINE..]
        );
        assert_eq!(seen[1], "next");
        assert!(
            f.stdout.len() < KEPT_OUTPUT + MAX_LINE,
            "{}",
            f.stdout.len()
        );
    }

    /// Issue 28, item 12: a captured command's output was kept whole (a `helm` that never
    /// stopped talking took `doctor` to 4.2 GB). Each stream keeps its first
    /// [`MAX_CAPTURE`] bytes and its last [`KEPT_OUTPUT`], says how much it dropped between
    /// them, and is still read to its end (the command is not blocked on a full pipe).
    #[test]
    fn a_captured_flood_keeps_its_head_and_tail_and_says_what_it_dropped() {
        let f = run(&Cmd::new("sh").args([
            "-c",
            "echo first; head -c 50000000 /dev/zero | tr '\\0' a; echo; echo last >&1; echo err >&2; exit 2",
        ]))
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(f.code, Some(2));
        assert!(f.stdout.starts_with("first\n"), "{}", &f.stdout[..20]);
        assert!(f.stdout.ends_with("last\n"), "the end is kept");
        assert!(
            f.stdout.len() <= MAX_CAPTURE + KEPT_OUTPUT + 100,
            "{} bytes kept",
            f.stdout.len()
        );
        assert!(f.stdout.contains(" bytes of output dropped here]"), "said");
        assert!(f.stdout_cut > 0);
        assert_eq!(f.stderr, "err\n");
        assert_eq!(f.stderr_cut, 0);
    }

    /// Issue 28, item 20: a 99 KB single-line helm error was printed whole.
    #[test]
    fn an_error_shows_the_last_lines_each_cut_at_a_kilobyte() {
        let long = "é".repeat(50_000);
        let text = format!("one\n\n{long}\nthree\n");
        let shown = last_lines(&text, 2);
        let lines: Vec<&str> = shown.lines().collect();
        assert_eq!(lines.len(), 2, "{shown}");
        assert!(lines[0].len() < SHOWN_LINE + 40, "{}", lines[0].len());
        assert!(
            lines[0].ends_with(&format!("… ({} more bytes)", 100_000 - SHOWN_LINE)),
            "{}",
            &lines[0][SHOWN_LINE - 10..]
        );
        assert_eq!(lines[1], "  three");
    }

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
    fn a_streaming_command_keeps_only_its_last_output() {
        let mut seen = 0;
        let f = run_lines(
            &Cmd::new("sh").args(["-c", "seq 100000 | sed 's/^/line /'"]),
            |_| seen += 1,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(seen, 100_000, "every line is handed over");
        assert!(f.stdout.len() <= KEPT_OUTPUT, "{}", f.stdout.len());
        assert!(f.stdout.ends_with("line 99999\nline 100000\n"));
        assert!(!f.stdout.starts_with("line 1\n"));
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

    /// Cancelling a running command kills its whole group at once, grandchildren included,
    /// and a cancelled token starts nothing more.
    #[cfg(target_os = "linux")]
    #[test]
    fn a_cancelled_command_is_stopped_with_its_group() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let pidfile = dir.path().join("grandchild.pid");
        let script = format!(
            "sleep 300 & echo $! > {}; echo started; wait",
            pidfile.display()
        );
        let cancel = Cancel::new();
        let c2 = cancel.clone();
        let t = std::thread::spawn(move || {
            run_lines(
                &Cmd::new("sh")
                    .args(["-c", &script])
                    .timeout(Duration::from_secs(300))
                    .cancel(&c2),
                |_| {},
            )
        });
        // The file is made before the pid is written into it: wait for the pid.
        let written = || {
            std::fs::read_to_string(&pidfile)
                .is_ok_and(|p| p.trim().parse::<i32>().is_ok_and(|p| p > 0))
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while !written() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        cancel.cancel();
        let r = t.join().unwrap_or_else(|_| panic!("the runner panicked"));
        assert!(matches!(r, Err(ExecError::Cancelled { .. })), "{r:?}");
        let pid = std::fs::read_to_string(&pidfile).unwrap_or_default();
        let pid: i32 = pid.trim().parse().unwrap_or(0);
        assert!(pid > 0);
        let deadline = Instant::now() + Duration::from_secs(5);
        while start_time(pid).is_some() && !zombie(pid) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(
            start_time(pid).is_none() || zombie(pid),
            "the grandchild survived"
        );
        let again = run(&Cmd::new("true").cancel(&cancel));
        assert!(
            matches!(again, Err(ExecError::Cancelled { .. })),
            "{again:?}"
        );
    }

    fn zombie(pid: i32) -> bool {
        std::fs::read_to_string(format!("/proc/{pid}/status")).is_ok_and(|s| {
            s.lines()
                .any(|l| l.starts_with("State:") && l.contains('Z'))
        })
    }

    /// Groups recorded by an earlier run that are still alive are killed by the next one.
    #[cfg(target_os = "linux")]
    #[test]
    fn leftover_groups_from_a_crashed_run_are_killed() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let mut child = {
            use std::os::unix::process::CommandExt;
            std::process::Command::new("sleep")
                .arg("300")
                .process_group(0)
                .spawn()
                .unwrap_or_else(|e| panic!("{e}"))
        };
        let pid = child.id() as i32;
        let file = dir.path().join("groups");
        // A leftover, and a recorded group whose leader is now another process.
        let me = std::process::id() as i32;
        std::fs::write(
            &file,
            format!("{pid} {}\n{me} 1\n", start_time(pid).unwrap_or(0)),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(kill_leftovers(&file), 1);
        let status = child.wait().unwrap_or_else(|e| panic!("{e}"));
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(status.signal(), Some(libc::SIGKILL));
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
