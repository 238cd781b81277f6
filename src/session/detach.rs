//! A daemon in the background: `devenv up --detach` starts the same `up` detached from the
//! terminal (its own session, its output in a log file of the state directory) and returns
//! once its page answers and the doctor's checks passed; `devenv stop` ends a running `up` as
//! SIGTERM would, and waits until it is gone.

use std::ffi::OsString;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};

use super::daemon;
use crate::config::Config;
use crate::web::client;

/// Set in the detached `up`: it was started by `up --detach`. Its value is the file the
/// daemon's output goes to until it holds the project's lock (see [`rotating_output`]).
pub const DETACHED_ENV: &str = "DEVENV_DETACHED";

/// Whether this process is a daemon `up --detach` started.
pub fn is_detached() -> bool {
    std::env::var_os(DETACHED_ENV).is_some()
}

/// The file `up --detach` gave this daemon for its first output, if it was given one.
fn first_output() -> Option<PathBuf> {
    std::env::var_os(DETACHED_ENV)
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
}

/// How long `up --detach` waits for the page and the doctor's checks.
const START_WAIT: Duration = Duration::from_secs(120);
/// How long `devenv stop` waits for the daemon to end before it kills it.
const STOP_WAIT: Duration = Duration::from_secs(10);

/// Where a detached `up` writes its output.
pub fn log_path(cfg: &Config) -> Option<PathBuf> {
    daemon::project_dir(cfg).map(|d| d.join("up.log"))
}

/// How large `up.log` grows before it becomes `up.log.1` (replacing the one before) and a
/// new one starts: a chatty command cannot fill the disk.
pub const MAX_LOG: u64 = 8 << 20;

/// The detached daemon's output, through a pipe of its own into `up.log`, rotated at
/// [`MAX_LOG`]. Dropped at the end of `up`: what was written before reaches the file.
pub struct LogOutput {
    thread: Option<std::thread::JoinHandle<()>>,
}

/// In the detached daemon, once it holds the project's lock (so no other start can touch
/// the log): the last run's `up.log` becomes `up.log.1`, the file `up --detach` gave it for
/// its first output becomes `up.log`, and its stdout and stderr go through a pipe to a
/// thread that writes `log` and rotates it. `None` when the pipe cannot be set up (the
/// output then goes to the file as it was, unbounded, and a line says so).
pub fn rotating_output(log: &Path) -> Option<LogOutput> {
    use std::io::{Read as _, Write as _};
    use std::os::fd::AsRawFd as _;
    if let Some(first) = first_output() {
        let _ = std::fs::rename(log, log.with_extension("log.1"));
        if let Err(e) = std::fs::rename(&first, log) {
            eprintln!(
                "warning    cannot move {} to {}: {e}",
                first.display(),
                log.display()
            );
        }
        remove_orphaned_starts(log);
    }
    let (mut reader, writer) = match os_pipe_pair() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("warning    up.log is not bounded: no pipe ({e})");
            return None;
        }
    };
    let _ = std::io::stdout().flush();
    // SAFETY: dup2(2) onto the process's own stdout and stderr descriptors.
    unsafe {
        libc::dup2(writer.as_raw_fd(), 1);
        libc::dup2(writer.as_raw_fd(), 2);
    }
    drop(writer);
    let log = log.to_path_buf();
    let thread = std::thread::spawn(move || {
        // Made here when there is none (the first output could not become it).
        let mut file = {
            use std::os::unix::fs::OpenOptionsExt as _;
            std::fs::OpenOptions::new()
                .append(true)
                .create(true)
                .mode(0o600)
                .open(&log)
                .ok()
        };
        let mut written = file
            .as_ref()
            .and_then(|f| f.metadata().ok())
            .map_or(0, |m| m.len());
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => break,
            };
            if written + n as u64 > MAX_LOG {
                // Cut at the last line end, so each file holds whole lines.
                let cut = buf[..n]
                    .iter()
                    .rposition(|b| *b == b'\n')
                    .map_or(0, |i| i + 1);
                if let Some(f) = file.as_mut() {
                    let _ = f.write_all(&buf[..cut]);
                }
                let _ = std::fs::rename(&log, log.with_extension("log.1"));
                file = crate::host::private_file(&log).ok();
                written = 0;
                if let Some(f) = file.as_mut() {
                    let _ = f.write_all(&buf[cut..n]);
                }
                written += (n - cut) as u64;
                continue;
            }
            if let Some(f) = file.as_mut() {
                let _ = f.write_all(&buf[..n]);
            }
            written += n as u64;
        }
    });
    Some(LogOutput {
        thread: Some(thread),
    })
}

/// Removes the first-output files of starts whose `up --detach` is gone (it was killed while
/// it waited, and its daemon never took the lock): nothing will read them. A start still
/// waiting keeps its own.
fn remove_orphaned_starts(log: &Path) {
    let (Some(dir), Some(name)) = (log.parent(), log.file_name()) else {
        return;
    };
    let prefix = format!("{}.start-", name.to_string_lossy());
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let file = e.file_name().to_string_lossy().into_owned();
        let Some(pid) = file
            .strip_prefix(&prefix)
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if !alive(pid) {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

fn os_pipe_pair() -> std::io::Result<(std::fs::File, std::fs::File)> {
    use std::os::fd::FromRawFd as _;
    let mut fds = [0i32; 2];
    // SAFETY: pipe2(2) writes two new descriptors into the array we own.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: both descriptors are new and ours alone.
    Ok(unsafe {
        (
            std::fs::File::from_raw_fd(fds[0]),
            std::fs::File::from_raw_fd(fds[1]),
        )
    })
}

impl Drop for LogOutput {
    fn drop(&mut self) {
        use std::io::Write as _;
        let _ = std::io::stdout().flush();
        let _ = std::io::stderr().flush();
        // The pipe's last writers are stdout and stderr: pointing them at /dev/null ends the
        // thread's reading, after everything written before.
        if let Ok(null) = std::fs::OpenOptions::new().write(true).open("/dev/null") {
            use std::os::fd::AsRawFd as _;
            // SAFETY: dup2(2) onto the process's own stdout and stderr descriptors.
            unsafe {
                libc::dup2(null.as_raw_fd(), 1);
                libc::dup2(null.as_raw_fd(), 2);
            }
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The last `n` lines of a file, for a daemon that ended early.
fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// `devenv up --detach`: `args` are this process's arguments without `--detach`.
pub fn detach(cfg: &Config, args: Vec<OsString>) -> Result<ExitCode> {
    if let Some(info) = daemon::running(cfg) {
        return Err(daemon::already_running(cfg, Some(&info)));
    }
    let Some(log) = log_path(cfg) else {
        anyhow::bail!("no state directory: set DEVENV_STATE_DIR or HOME");
    };
    // The daemon's first output goes to a file of this start's own: only the daemon that
    // gets the project's lock makes it up.log (the last run's becoming up.log.1), so a
    // start that finds another running touches no log. Both are the owner's only (0600 in
    // a 0700 directory): the output names what the project runs.
    let first = log.with_extension(format!("log.start-{}", std::process::id()));
    let out = crate::host::private_file(&first)
        .with_context(|| format!("cannot write {}", first.display()))?;
    let err = out.try_clone()?;
    let exe = std::env::current_exe().context("cannot find devenv's own executable")?;
    let mut cmd = Command::new(exe);
    cmd.args(args)
        .env(DETACHED_ENV, &first)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err);
    // SAFETY: setsid(2) between fork and exec touches no memory of the parent; it makes the
    // daemon a session of its own, so the terminal's Ctrl-C and hang-up never reach it.
    unsafe {
        cmd.pre_exec(|| {
            if libc::setsid() == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().context("cannot start the detached devenv")?;
    let pid = child.id();
    let dir = daemon::project_dir(cfg).unwrap_or_default();
    let started = Instant::now();
    while started.elapsed() < START_WAIT {
        if let Ok(Some(status)) = child.try_wait() {
            // Its output is still in the first file when it ended before the lock.
            let adopted = !first.exists();
            let shown = if adopted { &log } else { &first };
            eprintln!("{}", crate::out::printable(&tail(shown, 30)));
            if adopted {
                anyhow::bail!(
                    "the detached devenv ended ({status}) before its page answered; its output is above and in {}",
                    log.display()
                );
            }
            let _ = std::fs::remove_file(&first);
            anyhow::bail!(
                "the detached devenv ended ({status}) before it started; its output is above"
            );
        }
        if let Some(info) = daemon::read_info(&dir).filter(|i| i.pid == pid)
            && let Some(port) = info.port().filter(|p| *p != 0)
            && let Ok(r) = client::request(port, "GET", "/api/status", &[])
            && r.status == 200
        {
            let v: serde_json::Value = serde_json::from_str(&r.body).unwrap_or_default();
            let doctor = v["steps"]
                .as_array()
                .and_then(|s| s.iter().find(|s| s["name"] == "doctor"));
            if doctor.is_some_and(|d| d["status"] == "done") {
                let token = std::fs::read_to_string(dir.join("token")).unwrap_or_default();
                println!("page       http://127.0.0.1:{port}/?token={}", token.trim());
                println!(
                    "detached   pid {pid}; its output goes to {}; `devenv stop` ends it",
                    log.display()
                );
                return Ok(ExitCode::SUCCESS);
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    anyhow::bail!(
        "the detached devenv (pid {pid}) did not answer within {} s; its output is in {}\n  hint: `devenv stop` ends it",
        START_WAIT.as_secs(),
        if first.exists() { &first } else { &log }.display()
    )
}

/// Whether process `pid` exists.
fn alive(pid: u32) -> bool {
    let Ok(pid) = i32::try_from(pid) else {
        return false;
    };
    // SAFETY: kill(2) with signal 0 only checks that the process exists.
    unsafe { libc::kill(pid, 0) == 0 }
}

fn signal(pid: u32, sig: i32) {
    if let Ok(pid) = i32::try_from(pid) {
        // SAFETY: kill(2) on the pid the daemon's own record names.
        unsafe {
            libc::kill(pid, sig);
        }
    }
}

/// `devenv stop`: SIGTERM to the running `up` of the project whose config is `file`, then
/// waits until it is gone.
pub fn stop(file: &Path) -> Result<ExitCode> {
    let (info, _) = daemon::find(file)?;
    signal(info.pid, libc::SIGTERM);
    let started = Instant::now();
    while started.elapsed() < STOP_WAIT {
        if !alive(info.pid) {
            println!(
                "stopped    `devenv up` (pid {}) for {}; the cluster and the workloads are left running",
                info.pid,
                info.config.display()
            );
            return Ok(ExitCode::SUCCESS);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    signal(info.pid, libc::SIGKILL);
    println!(
        "killed     `devenv up` (pid {}) did not end within {} s; the next `devenv up` stops what it left running",
        info.pid,
        STOP_WAIT.as_secs()
    );
    Ok(ExitCode::FAILURE)
}
