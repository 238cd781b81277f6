//! Live update's transport: files into running containers through the API server only
//! (`pods/exec`, spoken by [`super::exec`]; no kubectl, no docker cp). One exec of
//! `tar -x --overwrite` per container receives a tar stream of the files (padded to whole tar
//! records, so GNU tar ends at the archive's end; stdin is closed once sent, so busybox's tar,
//! which reads to the end of its input, ends too). `--overwrite` writes an existing file in
//! place instead of replacing it, so a container that runs as a non-root user updates the
//! files it owns in a directory it does not; files gone from the context are removed with
//! `rm -rf`; then each `run` step runs with `sh -c` in the stage's WORKDIR.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use kube::Api;

/// How long one exec may take (a `run` step installing packages may take a while).
const EXEC_TIMEOUT: Duration = Duration::from_secs(600);
/// tar reads whole records of 20 blocks: an archive padded to them ends where it ends.
const RECORD: usize = 20 * 512;

/// What to put into a container.
#[derive(Debug, Clone, Default)]
pub struct Push {
    /// The build context the local files lie in: nothing outside it is sent.
    pub context: PathBuf,
    /// `(local file, path in the container, chown)`.
    pub copies: Vec<(PathBuf, String, Option<String>)>,
    pub deletes: Vec<String>,
    pub runs: Vec<String>,
    pub workdir: String,
}

/// One container of one pod.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Container {
    pub pod: String,
    pub uid: String,
    pub container: String,
}

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// The image has no `tar` (distroless, scratch): live update cannot reach it.
    #[error(
        "pod {pod}, container {container}: the image has no `{program}`, which live update needs in the container"
    )]
    Missing {
        pod: String,
        container: String,
        program: String,
    },
    /// The container's root filesystem is read-only (`readOnlyRootFilesystem: true`).
    #[error(
        "pod {pod}, container {container}: its root filesystem is read-only (securityContext.readOnlyRootFilesystem), so live update cannot write into it"
    )]
    ReadOnly { pod: String, container: String },
    /// The container's user may not write a path (a root-owned file or directory in a
    /// container that runs as another user).
    #[error(
        "pod {pod}, container {container}: the container's user may not write {path}; give the files live update changes to the user the container runs as (COPY --chown=USER in the Dockerfile, or a directory it owns)"
    )]
    Denied {
        pod: String,
        container: String,
        path: String,
    },
    /// The stream ended before the container's answer: whether the command ran is not known.
    #[error("pod {pod}, container {container}: {what} failed: {message}")]
    NoAnswer {
        pod: String,
        container: String,
        what: String,
        message: String,
    },
    #[error("pod {pod}, container {container}: {what} failed: {message}")]
    Exec {
        pod: String,
        container: String,
        what: String,
        message: String,
    },
    /// A file live update does not send: not a regular file, too large, or outside the
    /// build context through a link.
    #[error("{} is not sent into containers: {why}", path.display())]
    Unsendable { path: PathBuf, why: String },
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The largest file live update sends (a bigger one is built into the image instead).
const MAX_FILE: u64 = 64 * 1024 * 1024;

/// One entry of the archive, as `COPY` would put it in the image.
enum Entry {
    File {
        data: Vec<u8>,
        mode: u32,
    },
    /// A symbolic link goes in as the link (never what it points at).
    Link(PathBuf),
}

/// Reads `local` for the archive without following a link out of `context`: a symbolic
/// link is sent as a link, a regular file of at most [`MAX_FILE`] bytes as its content;
/// anything else (a FIFO, a device, a file reached through a linked directory outside the
/// context) is refused, never waited on or read without end.
fn entry(local: &Path, context: &Path) -> Result<Entry, SyncError> {
    use std::io::Read as _;
    use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
    let refuse = |why: &str| SyncError::Unsendable {
        path: local.to_path_buf(),
        why: why.to_owned(),
    };
    let read = |source| SyncError::Read {
        path: local.to_path_buf(),
        source,
    };
    let not_regular = || refuse("it is not a regular file (a FIFO, a socket or a device)");
    let too_large = || refuse(&format!("it is larger than {} MiB", MAX_FILE / 1024 / 1024));
    let inside = local
        .parent()
        .and_then(|d| d.canonicalize().ok())
        .zip(context.canonicalize().ok())
        .is_some_and(|(d, c)| d.starts_with(c));
    if !inside {
        return Err(refuse(
            "it lies outside the build context (through a linked directory)",
        ));
    }
    let meta = local.symlink_metadata().map_err(read)?;
    if meta.file_type().is_symlink() {
        return Ok(Entry::Link(std::fs::read_link(local).map_err(read)?));
    }
    if !meta.is_file() {
        return Err(not_regular());
    }
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(local)
        .map_err(read)?;
    let meta = f.metadata().map_err(read)?;
    if !meta.is_file() {
        return Err(not_regular());
    }
    if meta.len() > MAX_FILE {
        return Err(too_large());
    }
    let mut data = Vec::new();
    f.take(MAX_FILE + 1).read_to_end(&mut data).map_err(read)?;
    if data.len() as u64 > MAX_FILE {
        return Err(too_large());
    }
    Ok(Entry::File {
        data,
        mode: meta.permissions().mode() & 0o7777,
    })
}

/// The tar stream of `copies` (files of `context`), padded to whole records.
pub fn archive(
    context: &Path,
    copies: &[(PathBuf, String, Option<String>)],
) -> Result<Vec<u8>, SyncError> {
    let mut b = tar::Builder::new(Vec::new());
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    for (local, remote, chown) in copies {
        let read = |source| SyncError::Read {
            path: local.clone(),
            source,
        };
        let mut h = tar::Header::new_gnu();
        h.set_mtime(now);
        if let Some((user, group)) = chown
            .as_deref()
            .map(|c| c.split_once(':').unwrap_or((c, c)))
        {
            let _ = h.set_username(user);
            let _ = h.set_groupname(group);
        }
        let at = remote.trim_start_matches('/');
        match entry(local, context)? {
            Entry::File { data, mode } => {
                h.set_size(data.len() as u64);
                h.set_mode(mode);
                b.append_data(&mut h, at, data.as_slice()).map_err(read)?;
            }
            Entry::Link(target) => {
                h.set_entry_type(tar::EntryType::Symlink);
                h.set_size(0);
                h.set_mode(0o777);
                b.append_link(&mut h, at, &target).map_err(read)?;
            }
        }
    }
    let mut out = b.into_inner().map_err(|source| SyncError::Read {
        path: PathBuf::from("(archive)"),
        source,
    })?;
    let pad = (RECORD - out.len() % RECORD) % RECORD;
    out.extend(std::iter::repeat_n(0u8, pad));
    Ok(out)
}

impl SyncError {
    /// Whether trying again cannot help: the image or the pod spec rules live update out.
    pub fn lasting(&self) -> bool {
        matches!(self, Self::Missing { .. } | Self::ReadOnly { .. })
    }
}

/// Whether an exec's failure says `program` is not in the image. The runtimes say so in their
/// own words (runc: `exec: "tar": executable file not found in $PATH`, or `stat /bin/tar: no
/// such file or directory` for a path; crun: ``executable file `tar` not found``; a shell:
/// `tar: not found`); a "no such file or directory" about anything else (a kubelet socket that
/// is not there) is not about the program.
fn missing_program(message: &str, program: &str) -> bool {
    let m = message.to_ascii_lowercase();
    let p = program.to_ascii_lowercase();
    let base = p.rsplit('/').next().unwrap_or(&p).to_owned();
    m.contains("executable file not found")
        || m.contains(&format!("executable file `{base}` not found"))
        || m.contains(&format!("exec: \"{p}\"")) && m.contains("no such file or directory")
        || m.contains(&format!("stat {p}: no such file or directory"))
        || m.contains(&format!("{base}: not found"))
}

/// The path a `tar -x` could not write because the container's user may not (`Cannot open:
/// Permission denied` from GNU tar, `can't open 'x': Permission denied` from busybox's).
fn denied_path(stderr: &str) -> Option<String> {
    stderr.lines().find_map(|l| {
        let l = l.trim();
        if !l.contains("Permission denied") {
            return None;
        }
        let l = l.strip_prefix("tar: ")?;
        if let Some((path, _)) = l.split_once(": Cannot ") {
            return Some(format!("/{}", path.trim_start_matches('/')));
        }
        let (_, rest) = l.split_once(" open '")?;
        let (quoted, _) = rest.split_once('\'')?;
        Some(format!("/{}", quoted.trim_start_matches('/')))
    })
}

/// A failure told by its message: a missing program, a read-only root filesystem, or else
/// the message as it is.
fn failure(c: &Container, program: &str, what: &str, message: String) -> SyncError {
    if missing_program(&message, program) {
        SyncError::Missing {
            pod: c.pod.clone(),
            container: c.container.clone(),
            program: program.to_owned(),
        }
    } else if message.contains("Read-only file system") {
        SyncError::ReadOnly {
            pod: c.pod.clone(),
            container: c.container.clone(),
        }
    } else {
        SyncError::Exec {
            pod: c.pod.clone(),
            container: c.container.clone(),
            what: what.to_owned(),
            message,
        }
    }
}

/// A command that ran and failed: `status` (the runtime's word for it) and what it wrote
/// (`output`), whose own words say why (a path the user may not write, its last line).
fn failed_run(c: &Container, program: &str, what: &str, status: String, output: &str) -> SyncError {
    if let Some(path) = denied_path(output) {
        return SyncError::Denied {
            pod: c.pod.clone(),
            container: c.container.clone(),
            path,
        };
    }
    let tail = output.trim();
    // GNU tar ends with "Exiting with failure status…": the line before says why.
    let why = tail
        .lines()
        .rev()
        .find(|l| !l.contains("Exiting with failure status"))
        .or_else(|| tail.lines().last());
    let message = match why {
        Some(why) => format!("{status}: {why}"),
        None => status,
    };
    failure(c, program, what, message)
}

/// Runs `command` in the container, with `stdin` when given: its output (stdout then stderr),
/// or its failure as a message.
async fn exec(
    api: &Api<Pod>,
    c: &Container,
    command: Vec<String>,
    stdin: Option<&[u8]>,
    what: &str,
) -> Result<String, SyncError> {
    let program = command.first().cloned().unwrap_or_default();
    tracing::debug!(pod = %c.pod, container = %c.container, %what, "exec");
    let answer = super::exec::run(
        api,
        &c.pod,
        &c.container,
        command.clone(),
        stdin,
        EXEC_TIMEOUT,
    )
    .await
    .map_err(|e| match e {
        super::exec::ExecError::NoAnswer(_) => SyncError::NoAnswer {
            pod: c.pod.clone(),
            container: c.container.clone(),
            what: what.to_owned(),
            message: e.to_string(),
        },
        e => failure(c, &program, what, e.to_string()),
    })?;
    tracing::debug!(pod = %c.pod, %what, ok = answer.success(), "exec ended");
    if answer.success() {
        return Ok(answer.stdout + &answer.stderr);
    }
    let status = answer.status.message.unwrap_or_else(|| "failed".into());
    Err(failed_run(c, &program, what, status, &answer.stderr))
}

/// The shells kept running for archives, by container (`(pod uid, container)`); `None` where
/// a container cannot keep one (no `sh` or `head`), so its archives go by their own exec.
#[derive(Clone, Default)]
pub struct Sessions(Arc<tokio::sync::Mutex<BTreeMap<(String, String), Kept>>>);

/// A container's session, or `None` where it cannot keep one.
type Kept = Option<Arc<super::exec::Session>>;

impl Sessions {
    /// The container's session: the one kept, or a new one; `None` where it cannot have one.
    async fn of(&self, api: &Api<Pod>, c: &Container) -> Kept {
        let key = (c.uid.clone(), c.container.clone());
        let mut all = self.0.lock().await;
        // Sessions of pods that went away ended with their streams: forget them.
        all.retain(|_, s| s.as_ref().is_none_or(|s| s.alive()));
        if let Some(kept) = all.get(&key) {
            return kept.clone();
        }
        let opened = super::exec::Session::open(api, &c.pod, &c.container)
            .await
            .ok()
            .map(Arc::new);
        all.insert(key, opened.clone());
        opened
    }

    async fn forget(&self, c: &Container, for_good: bool) {
        let key = (c.uid.clone(), c.container.clone());
        let mut all = self.0.lock().await;
        if for_good {
            all.insert(key, None);
        } else {
            all.remove(&key);
        }
    }
}

/// Whether a shell's output says a program it needs is not there.
fn shell_lacks(output: &str, program: &str) -> bool {
    output.lines().any(|l| {
        l.contains(&format!("{program}: not found"))
            || l.contains(&format!("{program}: command not found"))
    })
}

/// Unpacks `tar` through the container's session. `None`: the container keeps no session
/// (or it broke before answering), and the archive goes by its own exec instead.
async fn unpack_in_session(
    api: &Api<Pod>,
    c: &Container,
    tar: &[u8],
    sessions: &Sessions,
) -> Option<Result<(), SyncError>> {
    let session = sessions.of(api, c).await?;
    match session.unpack(tar.to_vec(), EXEC_TIMEOUT).await {
        Ok(u) if u.code == 0 => Some(Ok(())),
        Ok(u) if shell_lacks(&u.output, "head") => {
            sessions.forget(c, true).await;
            None
        }
        Ok(u) if shell_lacks(&u.output, "tar") => Some(Err(failure(
            c,
            "tar",
            "tar -x",
            "sh: tar: not found".into(),
        ))),
        Ok(u) => Some(Err(failed_run(
            c,
            "tar",
            "tar -x",
            format!("tar -x ended with exit code {}", u.code),
            &u.output,
        ))),
        Err(e) => {
            // No sh in the image, or the stream broke (the pod went): not kept.
            let no_sh = missing_program(&e.to_string(), "sh");
            tracing::debug!(pod = %c.pod, error = %e, no_sh, "unpack session");
            sessions.forget(c, no_sh).await;
            None
        }
    }
}

/// Unpacks `tar` with an exec of its own (a container that keeps no session).
async fn unpack_by_exec(api: &Api<Pod>, c: &Container, tar: &[u8]) -> Result<(), SyncError> {
    let sent = exec(
        api,
        c,
        ["tar", "-x", "--overwrite", "-f", "-", "-C", "/"]
            .map(String::from)
            .into(),
        Some(tar),
        "tar -x",
    )
    .await;
    if let Err(SyncError::NoAnswer { .. }) = &sent {
        // A container without tar fails at once and may close the stream while the
        // archive is still being sent, taking its answer along: asked again with nothing
        // to send, it says whether tar is there.
        exec(
            api,
            c,
            ["tar", "--help"].map(String::from).into(),
            None,
            "tar --help",
        )
        .await
        .map(drop)
        .or_else(|e| match e {
            SyncError::Missing { .. } => Err(e),
            _ => Ok(()),
        })?;
    }
    sent.map(drop)
}

/// Puts `push` into one container: the files, the deletions, then the `run` steps.
pub async fn push_to(
    api: &Api<Pod>,
    c: &Container,
    push: &Push,
    tar: &[u8],
    sessions: &Sessions,
    on_output: &(dyn Fn(&str) + Sync),
) -> Result<(), SyncError> {
    if !push.copies.is_empty() {
        match unpack_in_session(api, c, tar, sessions).await {
            Some(sent) => sent?,
            None => unpack_by_exec(api, c, tar).await?,
        }
    }
    if !push.deletes.is_empty() {
        let mut argv: Vec<String> = ["rm", "-rf", "--"].map(String::from).into();
        argv.extend(push.deletes.iter().cloned());
        exec(api, c, argv, None, "rm -rf").await?;
    }
    for r in &push.runs {
        on_output(&format!("run in {}/{}: {r}", c.pod, c.container));
        let line = format!("cd {} && {r}", shell_quote(&push.workdir));
        let said = exec(api, c, vec!["sh".into(), "-c".into(), line], None, r).await?;
        said.lines().for_each(on_output);
    }
    Ok(())
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// What a sync did, for the terminal and the page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub files: usize,
    pub deletes: usize,
    pub containers: usize,
    pub took: Duration,
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "synced {} file{}{} to {} container{} in {} ms",
            self.files,
            if self.files == 1 { "" } else { "s" },
            if self.deletes > 0 {
                format!(" (and removed {})", self.deletes)
            } else {
                String::new()
            },
            self.containers,
            if self.containers == 1 { "" } else { "s" },
            self.took.as_millis()
        )
    }
}

/// Puts `push` into every one of `containers`, one after the other.
pub async fn push_all(
    api: &Api<Pod>,
    containers: &[Container],
    push: &Push,
    sessions: &Sessions,
    on_output: &(dyn Fn(&str) + Sync),
) -> Result<Report, SyncError> {
    let started = Instant::now();
    let tar = archive(&push.context, &push.copies)?;
    for c in containers {
        push_to(api, c, push, &tar, sessions, on_output).await?;
    }
    let _ = std::io::sink().flush();
    Ok(Report {
        files: push.copies.len(),
        deletes: push.deletes.len(),
        containers: containers.len(),
        took: started.elapsed(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_archive_holds_the_files_at_their_container_paths_padded_to_records() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let f = dir.path().join("main.py");
        std::fs::write(&f, "print(1)\n").unwrap_or_else(|e| panic!("{e}"));
        let data = archive(
            dir.path(),
            &[(f, "/app/main.py".into(), Some("app:app".into()))],
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(data.len() % RECORD, 0);
        let mut a = tar::Archive::new(data.as_slice());
        let entries: Vec<(String, String, Option<String>)> = a
            .entries()
            .unwrap_or_else(|e| panic!("{e}"))
            .filter_map(Result::ok)
            .map(|mut e| {
                let path = e
                    .path()
                    .map(|p| p.display().to_string())
                    .unwrap_or_default();
                let user = e.header().username().ok().flatten().map(str::to_owned);
                let mut s = String::new();
                let _ = std::io::Read::read_to_string(&mut e, &mut s);
                (path, s, user)
            })
            .collect();
        assert_eq!(
            entries,
            [(
                "app/main.py".to_owned(),
                "print(1)\n".to_owned(),
                Some("app".to_owned())
            )]
        );
    }

    #[test]
    fn a_missing_program_is_told_from_other_failures() {
        for (message, program) in [
            (
                "OCI runtime exec failed: exec failed: unable to start container process: exec: \"tar\": executable file not found in $PATH: unknown",
                "tar",
            ),
            (
                "failed to exec in container: exec: \"/bin/tar\": stat /bin/tar: no such file or directory",
                "/bin/tar",
            ),
            (
                "executable file `tar` not found in $PATH: No such file or directory",
                "tar",
            ),
            ("sh: tar: not found", "tar"),
        ] {
            assert!(missing_program(message, program), "{message}");
        }
        for message in [
            "command terminated with non-zero exit code: 2",
            // An unreachable kubelet or runtime socket: not about the program at all.
            "error dialing backend: dial unix /run/containerd/containerd.sock: connect: no such file or directory",
            "unable to upgrade connection: error executing exec: open /var/lib/kubelet/pods: no such file or directory",
        ] {
            assert!(!missing_program(message, "tar"), "{message}");
        }
    }

    #[test]
    fn a_path_the_user_may_not_write_is_named() {
        assert_eq!(
            denied_path("tar: app/main.py: Cannot open: Permission denied\ntar: Exiting with failure status due to previous errors\n").as_deref(),
            Some("/app/main.py")
        );
        assert_eq!(
            denied_path("tar: can't open 'site/index.html': Permission denied\n").as_deref(),
            Some("/site/index.html")
        );
        assert_eq!(denied_path("tar: app/f: Cannot open: File exists\n"), None);
    }

    /// Issue 28 point 7: live update followed symbolic links in the build context: a link to
    /// /dev/zero grew the daemon to 1 GB, a link to a file outside would have been sent into
    /// every container. A link goes in as the link; a FIFO or a device is refused at once (no
    /// wait, no endless read); so is a file reached through a linked directory out of the
    /// context.
    #[test]
    fn links_go_in_as_links_and_what_is_no_regular_file_of_the_context_is_refused() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let ctx = dir.path().join("ctx");
        let outside = dir.path().join("outside");
        std::fs::create_dir_all(&ctx).unwrap_or_else(|e| panic!("{e}"));
        std::fs::create_dir_all(&outside).unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(outside.join("secret"), "key\n").unwrap_or_else(|e| panic!("{e}"));
        let link = |target: &Path, at: &Path| {
            std::os::unix::fs::symlink(target, at).unwrap_or_else(|e| panic!("{e}"));
        };
        link(Path::new("/dev/zero"), &ctx.join("zero"));
        link(&outside.join("secret"), &ctx.join("secret"));
        link(&outside, &ctx.join("linked"));
        let fifo = ctx.join("fifo");
        crate::host::mkfifo(&fifo);

        let data = archive(
            &ctx,
            &[
                (ctx.join("zero"), "/app/zero".into(), None),
                (ctx.join("secret"), "/app/secret".into(), None),
            ],
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert!(
            data.len() <= 2 * RECORD,
            "no content read: {} bytes",
            data.len()
        );
        let mut a = tar::Archive::new(data.as_slice());
        let entries: Vec<(String, tar::EntryType, Option<String>)> = a
            .entries()
            .unwrap_or_else(|e| panic!("{e}"))
            .filter_map(Result::ok)
            .map(|e| {
                (
                    e.path()
                        .map(|p| p.display().to_string())
                        .unwrap_or_default(),
                    e.header().entry_type(),
                    e.link_name()
                        .ok()
                        .flatten()
                        .map(|l| l.display().to_string()),
                )
            })
            .collect();
        assert_eq!(
            entries,
            [
                (
                    "app/zero".to_owned(),
                    tar::EntryType::Symlink,
                    Some("/dev/zero".to_owned())
                ),
                (
                    "app/secret".to_owned(),
                    tar::EntryType::Symlink,
                    Some(outside.join("secret").display().to_string())
                ),
            ]
        );
        for (path, why) in [
            (fifo, "it is not a regular file"),
            (
                ctx.join("linked/secret"),
                "it lies outside the build context",
            ),
        ] {
            let e = archive(&ctx, &[(path.clone(), "/app/x".into(), None)])
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(e.contains(why), "{}: {e}", path.display());
        }
    }
}
