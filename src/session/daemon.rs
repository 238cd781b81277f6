//! One daemon per project: a lock in the state directory held for the life of `up`, with a
//! small record of who holds it (pid, page) for a second `up` and for the CLI clients, and
//! the list of process groups that `up` runs, so that the next `up` after a crash or kill -9
//! can kill what was left.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use serde::{Deserialize, Serialize};

use crate::config::Config;

/// Who runs the project's daemon.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Info {
    pub pid: u32,
    pub config: PathBuf,
    /// The status page.
    pub url: String,
    pub started_ms: u64,
    /// The kernel's start time of `pid` (see [`crate::host::start_ticks`]): with the pid, it
    /// names the daemon's process for good, where a pid alone may be reused by another
    /// program.
    #[serde(default)]
    pub start_ticks: u64,
}

impl Info {
    /// Whether the process this record names still runs: its pid, started when the record
    /// says (a record a crashed daemon left, whose pid another program now has, is stale).
    pub fn alive(&self) -> bool {
        self.start_ticks != 0 && crate::host::start_ticks(self.pid) == Some(self.start_ticks)
    }
}

/// The project's state directory: one per config file.
pub fn project_dir(cfg: &Config) -> Option<PathBuf> {
    project_dir_of(&cfg.file)
}

/// The state directory of the project whose config is `file` (absolute): the CLI clients
/// find the daemon through it even while the file does not parse.
pub fn project_dir_of(file: &Path) -> Option<PathBuf> {
    crate::host::project_state_dir(file)
}

/// The lock, released when dropped (or when the process dies, however it dies).
pub struct Lock {
    _file: File,
    dir: PathBuf,
}

impl Lock {
    /// Where the process groups of this daemon are listed.
    pub fn groups_file(&self) -> PathBuf {
        self.dir.join("groups")
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

/// Records where the page really is (once its port is bound) and the token (a file only the
/// user can read) for `devenv status`, `logs` and `trigger`.
pub fn publish(dir: &Path, cfg: &Config, port: u16, token: &str) -> Result<()> {
    let info = Info {
        pid: std::process::id(),
        config: cfg.file.clone(),
        url: format!("http://127.0.0.1:{port}/"),
        started_ms: crate::host::now_ms(),
        start_ticks: crate::host::start_ticks(std::process::id()).unwrap_or(0),
    };
    write_token(&dir.join("token"), token)?;
    write_info(dir, &info)
}

fn write_token(path: &Path, token: &str) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let _ = std::fs::remove_file(path);
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    f.write_all(token.as_bytes())?;
    Ok(())
}

fn write_info(dir: &Path, info: &Info) -> Result<()> {
    let tmp = dir.join("daemon.json.tmp");
    crate::host::write_private(&tmp, serde_json::to_string_pretty(info)?)
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, dir.join("daemon.json"))?;
    Ok(())
}

/// The running daemon of the project whose config is `file`: its record and token. An
/// error says that none runs.
pub fn find(file: &Path) -> Result<(Info, String)> {
    let none = || {
        anyhow::anyhow!(
            "no `devenv up` is running for {}\n  hint: start one with `devenv up`",
            file.display()
        )
    };
    let dir = project_dir_of(file).ok_or_else(none)?;
    // The record is checked against the process it names, never by taking the daemon's
    // lock: a probe holding the lock for a moment made a starting `up` say "already
    // running", and two probes at once took a crashed daemon's record, whose pid another
    // program had, for a running daemon.
    let info = read_info(&dir).filter(Info::alive).ok_or_else(none)?;
    let token = std::fs::read_to_string(dir.join("token")).unwrap_or_default();
    Ok((info, token.trim().to_owned()))
}

impl Info {
    /// The page's port.
    pub fn port(&self) -> Option<u16> {
        self.url
            .trim_end_matches('/')
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(self.dir.join("daemon.json"));
        let _ = std::fs::remove_file(self.dir.join("token"));
    }
}

/// Takes the exclusive lock on `file` if no one holds it; it lasts as long as the file is open.
fn try_lock(file: &File) -> bool {
    // SAFETY: flock(2) on a descriptor `file` owns.
    unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) == 0 }
}

/// Takes the project's lock, or says which `up` holds it and where its page is.
pub fn acquire(cfg: &Config) -> Result<Lock> {
    let Some(dir) = project_dir(cfg) else {
        anyhow::bail!("no state directory: set DEVENV_STATE_DIR or HOME");
    };
    crate::host::private_dir(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let path = dir.join("lock");
    let file = {
        use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
        let f = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(&path)
            .with_context(|| format!("cannot open {}", path.display()))?;
        // One an earlier devenv made 0644 is narrowed.
        let _ = f.set_permissions(std::fs::Permissions::from_mode(0o600));
        f
    };
    if !try_lock(&file) {
        return Err(already_running(cfg, read_info(&dir).as_ref()));
    }
    let info = Info {
        pid: std::process::id(),
        config: cfg.file.clone(),
        url: format!("http://127.0.0.1:{}/", cfg.web.port),
        started_ms: crate::host::now_ms(),
        start_ticks: crate::host::start_ticks(std::process::id()).unwrap_or(0),
    };
    write_info(&dir, &info)?;
    Ok(Lock { _file: file, dir })
}

/// The error for a second `up`: which one runs, where its page is, and how to stop it.
pub fn already_running(cfg: &Config, holder: Option<&Info>) -> anyhow::Error {
    let who = match holder {
        // Its page's port is known once it is bound (`:0` asks for any free one).
        Some(i) if i.port() == Some(0) => format!(
            "`devenv up` is already running for {} (pid {}); its page is not up yet",
            i.config.display(),
            i.pid
        ),
        Some(i) => format!(
            "`devenv up` is already running for {} (pid {}); its page: {}",
            i.config.display(),
            i.pid,
            i.url
        ),
        None => format!("`devenv up` is already running for {}", cfg.file.display()),
    };
    anyhow::anyhow!(
        "{who}\n  hint: use that one (`devenv status` asks it), or stop it (`devenv stop`, or Ctrl-C in its terminal) before starting another"
    )
}

/// The project's running daemon, if one runs.
pub fn running(cfg: &Config) -> Option<Info> {
    find(&cfg.file).ok().map(|(info, _)| info)
}

/// The record of the daemon running in `dir`, if one wrote it.
pub fn read_info(dir: &Path) -> Option<Info> {
    let text = std::fs::read_to_string(dir.join("daemon.json")).ok()?;
    serde_json::from_str(&text).ok()
}
