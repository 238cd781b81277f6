//! Facts of the machine every layer may ask for: where devenv keeps its state, which process
//! holds a port (from /proc), the wall clock in milliseconds, and a lock that survives a
//! panicked holder. Owns no policy; must not import any other module of the crate.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::SystemTime;

/// Where devenv keeps state between runs: `$DEVENV_STATE_DIR`, else the platform's state
/// directory (`~/.local/state/devenv` on Linux).
pub fn state_dir() -> Option<PathBuf> {
    if let Some(d) = std::env::var_os("DEVENV_STATE_DIR").filter(|d| !d.is_empty()) {
        return Some(PathBuf::from(d));
    }
    let dirs = directories::ProjectDirs::from("", "", "devenv")?;
    Some(
        dirs.state_dir()
            .unwrap_or_else(|| dirs.data_local_dir())
            .to_path_buf(),
    )
}

/// The state directory of the project whose config is `file` (absolute): one per config
/// file, under [`state_dir`].
pub fn project_state_dir(file: &Path) -> Option<PathBuf> {
    let base = state_dir()?;
    let key = blake3::hash(file.to_string_lossy().as_bytes()).to_hex();
    Some(base.join("projects").join(&key.as_str()[..16]))
}

/// Creates `dir` and its missing parents for devenv's own state and caches: directories 0700,
/// so another local user can neither list nor read what is inside (logs, inventories, the
/// token). Directories an earlier devenv made 0755 under the state directory are narrowed.
pub fn private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt as _, PermissionsExt as _};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    if let Some(base) = state_dir()
        && dir.starts_with(&base)
    {
        for d in dir.ancestors().take_while(|d| d.starts_with(&base)) {
            std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o700))?;
        }
    }
    Ok(())
}

/// Opens `path` for writing, created or emptied, readable and writable by its owner only
/// (0600, an existing file narrowed too), in a directory made with [`private_dir`].
pub fn private_file(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
    if let Some(dir) = path.parent() {
        private_dir(dir)?;
    }
    let f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    Ok(f)
}

/// Writes `bytes` to `path` as the owner's only file (0600, in a 0700 directory), as every
/// file of devenv's state is: they name what a project runs.
pub fn write_private(path: &Path, bytes: impl AsRef<[u8]>) -> std::io::Result<()> {
    use std::io::Write as _;
    private_file(path)?.write_all(bytes.as_ref())
}

/// The start time of process `pid`, in clock ticks since boot (the 22nd field of
/// /proc/PID/stat); `None` when no such process runs. With the pid it names a process for
/// good, where a pid alone may be reused by another program.
pub fn start_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command's name (the 2nd field) is in parentheses and may hold spaces.
    let rest = stat.rsplit_once(')')?.1;
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Locks `m`, taking the value over from a holder that panicked (the data stays usable: each
/// of devenv's locks guards a value that is whole between statements).
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

/// The process listening on `port`, from /proc: `(pid, command name)`.
pub fn port_holder(proc_root: &Path, port: u16) -> Option<(u32, String)> {
    let mut inodes = Vec::new();
    for table in ["net/tcp", "net/tcp6"] {
        if let Ok(t) = std::fs::read_to_string(proc_root.join(table)) {
            inodes.extend(listening_inodes(&t, port));
        }
    }
    if inodes.is_empty() {
        return None;
    }
    let wanted: Vec<String> = inodes.iter().map(|i| format!("socket:[{i}]")).collect();
    for e in std::fs::read_dir(proc_root).ok()?.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(fds) = std::fs::read_dir(e.path().join("fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            if let Ok(target) = std::fs::read_link(fd.path())
                && wanted.iter().any(|w| target.as_os_str() == w.as_str())
            {
                let comm = std::fs::read_to_string(e.path().join("comm")).unwrap_or_default();
                return Some((pid, comm.trim().to_owned()));
            }
        }
    }
    None
}

/// Inodes of sockets listening on `port` (IPv4 or IPv6 table of /proc/net/tcp*).
pub fn listening_inodes(proc_net_tcp: &str, port: u16) -> Vec<u64> {
    proc_net_tcp
        .lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let local = f.get(1)?;
            let state = f.get(3)?;
            let p = u16::from_str_radix(local.rsplit(':').next()?, 16).ok()?;
            (p == port && *state == "0A")
                .then(|| f.get(9)?.parse().ok())
                .flatten()
        })
        .collect()
}

/// Makes a FIFO at `path`, for tests of what devenv does with one in place of a file.
#[cfg(test)]
pub fn mkfifo(path: &Path) {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes())
        .unwrap_or_else(|e| panic!("{e}"));
    // SAFETY: mkfifo(3) with a NUL-terminated path the test owns.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listening_sockets_from_proc_net_tcp() {
        let tcp = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n   0: 0100007F:1F40 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 12345 1 0000000000000000 100 0 0 10 0\n   1: 0100007F:1F41 0100007F:9C40 01 00000000:00000000 00:00000000 00000000     0        0 999 1\n";
        assert_eq!(listening_inodes(tcp, 8000), vec![12345]);
        assert_eq!(
            listening_inodes(tcp, 8001),
            Vec::<u64>::new(),
            "not listening"
        );
    }
}
