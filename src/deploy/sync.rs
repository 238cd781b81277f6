//! Live update's transport: files into running containers through the API server only
//! (`pods/exec` over the kube client's websocket; no kubectl, no docker cp). One exec of
//! `tar -x` per container receives a tar stream of the files (padded to whole tar records,
//! so tar ends at the archive's end without waiting for the stream to close: the exit status
//! comes back on both the v5 and the v4 subprotocol); files gone from the context are removed
//! with `rm -rf`; then each `run` step runs with `sh -c` in the stage's WORKDIR.

use std::io::Write as _;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::AttachParams;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// How long one exec may take (a `run` step installing packages may take a while).
const EXEC_TIMEOUT: Duration = Duration::from_secs(600);
/// tar reads whole records of 20 blocks: an archive padded to them ends where it ends.
const RECORD: usize = 20 * 512;

/// What to put into a container.
#[derive(Debug, Clone, Default)]
pub struct Push {
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
    #[error("pod {pod}, container {container}: {what} failed: {message}")]
    Exec {
        pod: String,
        container: String,
        what: String,
        message: String,
    },
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The tar stream of `copies`, padded to whole records.
pub fn archive(copies: &[(PathBuf, String, Option<String>)]) -> Result<Vec<u8>, SyncError> {
    let mut b = tar::Builder::new(Vec::new());
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    for (local, remote, chown) in copies {
        let read = |source| SyncError::Read {
            path: local.clone(),
            source,
        };
        let data = std::fs::read(local).map_err(read)?;
        let meta = std::fs::metadata(local).map_err(read)?;
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            h.set_mode(meta.permissions().mode() & 0o7777);
        }
        h.set_mtime(now);
        if let Some((user, group)) = chown
            .as_deref()
            .map(|c| c.split_once(':').unwrap_or((c, c)))
        {
            let _ = h.set_username(user);
            let _ = h.set_groupname(group);
        }
        b.append_data(&mut h, remote.trim_start_matches('/'), data.as_slice())
            .map_err(read)?;
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

/// Whether an exec's failure says the program is not in the image.
fn missing_program(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    m.contains("executable file not found")
        || m.contains("no such file or directory") && m.contains("exec")
}

/// How a failure without the container's answer begins.
const NO_ANSWER: &str = "no answer from the container";

/// How long stdout and stderr may still be read once the exec's answer came.
const GRACE: Duration = Duration::from_secs(1);

/// Reads `r` (at most 64 KiB) into `buf` until it ends, or until `done` and then [`GRACE`].
async fn drain(
    r: Option<impl tokio::io::AsyncRead + Unpin>,
    buf: &mut Vec<u8>,
    mut done: tokio::sync::watch::Receiver<bool>,
) {
    let Some(r) = r else {
        return;
    };
    let mut r = r.take(64 * 1024);
    tokio::select! {
        _ = r.read_to_end(buf) => {}
        () = async {
            let _ = done.wait_for(|d| *d).await;
            tokio::time::sleep(GRACE).await;
        } => {}
    }
}

/// Runs `command` in the container, with `stdin` when given; its failure as a message.
async fn exec(
    api: &Api<Pod>,
    c: &Container,
    command: Vec<String>,
    stdin: Option<&[u8]>,
    what: &str,
) -> Result<(), SyncError> {
    let program = command.first().cloned().unwrap_or_default();
    let fail = |message: String| {
        if missing_program(&message) {
            SyncError::Missing {
                pod: c.pod.clone(),
                container: c.container.clone(),
                program: program.clone(),
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
    };
    let params = AttachParams::default()
        .container(c.container.clone())
        .stdin(stdin.is_some())
        .stdout(true)
        .stderr(true);
    let run = async {
        tracing::debug!(pod = %c.pod, container = %c.container, %what, "exec");
        let mut p = api
            .exec(&c.pod, command.clone(), &params)
            .await
            .map_err(|e| fail(crate::cluster::kube::explain(&e).0))?;
        tracing::debug!(pod = %c.pod, %what, "exec connected");
        let status = p.take_status();
        let out = p.stdout();
        let err = p.stderr();
        // The writer stays open until the status came: with subprotocol v4, closing stdin
        // closes the whole stream, status included (tar ends on its own at the archive's end).
        // It is written while the status is waited for: a container that fails at once
        // (no tar) answers before it reads anything.
        let mut writer = p.stdin();
        let write = async {
            if let (Some(w), Some(data)) = (writer.as_mut(), stdin) {
                if w.write_all(data).await.is_ok() {
                    let _ = w.flush().await;
                }
            }
            futures::future::pending::<()>().await;
        };
        // Once the answer came (or the connection ended without one), what is still to be
        // read of stdout and stderr gets a moment: kube-rs ends the streams after the status,
        // but leaves them open when its loop stops on an error.
        let (answered, done) = tokio::sync::watch::channel(false);
        let mut text = Vec::new();
        let mut etext = Vec::new();
        let st = async {
            let s = tokio::select! {
                s = async {
                    match status {
                        Some(s) => s.await,
                        None => None,
                    }
                } => s,
                () = write => None,
            };
            let _ = answered.send(true);
            s
        };
        let (status, (), ()) = tokio::join!(
            st,
            drain(out, &mut text, done.clone()),
            drain(err, &mut etext, done)
        );
        drop(writer);
        tracing::debug!(pod = %c.pod, %what, answered = status.is_some(), "exec ended");
        match status {
            Some(s) if s.status.as_deref() == Some("Success") => Ok(()),
            Some(s) => {
                let mut m = s.message.unwrap_or_else(|| "failed".into());
                let tail = String::from_utf8_lossy(&etext);
                let tail = tail.trim();
                // GNU tar ends with "Exiting with failure status…": the line before says why.
                let why = tail
                    .lines()
                    .rev()
                    .find(|l| !l.contains("Exiting with failure status"))
                    .or_else(|| tail.lines().last());
                if let Some(why) = why {
                    m = format!("{m}: {why}");
                }
                Err(fail(m))
            }
            // No answer: the connection broke (a container that failed at once may close it
            // while its stdin is still being sent). Whether it ran is not known.
            None => {
                let why = match tokio::time::timeout(GRACE, p.join()).await {
                    Ok(Err(e)) => e.to_string(),
                    _ => "the connection ended".to_owned(),
                };
                Err(fail(format!("{NO_ANSWER} ({why})")))
            }
        }
    };
    tokio::time::timeout(EXEC_TIMEOUT, run)
        .await
        .map_err(|_| fail(format!("no answer within {} s", EXEC_TIMEOUT.as_secs())))?
}

/// Puts `push` into one container: the files, the deletions, then the `run` steps.
pub async fn push_to(
    api: &Api<Pod>,
    c: &Container,
    push: &Push,
    tar: &[u8],
    on_output: &(dyn Fn(&str) + Sync),
) -> Result<(), SyncError> {
    if !push.copies.is_empty() {
        let sent = exec(
            api,
            c,
            ["tar", "-x", "-f", "-", "-C", "/"].map(String::from).into(),
            Some(tar),
            "tar -x",
        )
        .await;
        if let Err(SyncError::Exec { message, .. }) = &sent
            && message.starts_with(NO_ANSWER)
        {
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
            .or_else(|e| match e {
                SyncError::Missing { .. } => Err(e),
                _ => Ok(()),
            })?;
        }
        sent?;
    }
    if !push.deletes.is_empty() {
        let mut argv: Vec<String> = ["rm", "-rf", "--"].map(String::from).into();
        argv.extend(push.deletes.iter().cloned());
        exec(api, c, argv, None, "rm -rf").await?;
    }
    for r in &push.runs {
        on_output(&format!("run in {}/{}: {r}", c.pod, c.container));
        let line = format!("cd {} && {r}", shell_quote(&push.workdir));
        exec(api, c, vec!["sh".into(), "-c".into(), line], None, r).await?;
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
    on_output: &(dyn Fn(&str) + Sync),
) -> Result<Report, SyncError> {
    let started = Instant::now();
    let tar = archive(&push.copies)?;
    for c in containers {
        push_to(api, c, push, &tar, on_output).await?;
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
        let data = archive(&[(f, "/app/main.py".into(), Some("app:app".into()))])
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
        assert!(missing_program(
            "OCI runtime exec failed: exec failed: unable to start container process: exec: \"tar\": executable file not found in $PATH: unknown"
        ));
        assert!(!missing_program(
            "command terminated with non-zero exit code: 2"
        ));
    }
}
