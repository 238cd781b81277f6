//! The notify watcher: one non-recursive inotify watch per watched directory (so ignored trees
//! cost nothing), new directories picked up as they appear, and a debounce that turns a burst
//! of events into one batch.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use notify::{EventKind, RecursiveMode, Watcher as _};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::{Owner, Rules, Targets};
use crate::config::Config;
use crate::image::context::ContextError;

/// How long a stream of changes may keep a batch open at most.
const MAX_BATCH_WAIT: Duration = Duration::from_secs(5);
/// How many paths' first events are kept between batches (a burst past it is taken whole).
const MAX_BORN: usize = 100_000;
/// A batch this big is a bulk change (a checkout, a generator, an unpacked archive)...
const BULK: usize = 100;
/// ...and waits this long for quiet, at least, so a writer that stalls for a moment does not
/// split it...
const BULK_QUIET: Duration = Duration::from_millis(250);
/// ...plus this much for every further thousand paths, up to [`BULK_QUIET_MAX`]: the bigger
/// the change, the likelier its writer stalls (a checkout on a loaded machine), and the less
/// a little more waiting costs next to the build it starts.
const BULK_QUIET_PER_1000: Duration = Duration::from_millis(50);
const BULK_QUIET_MAX: Duration = Duration::from_secs(1);

/// How long a batch of `n` paths may stay open: `max`, or 3 ms per path for a bulk change
/// written slowly, up to 30 s. So a stream of at least one path per 3 ms is one batch however
/// long it takes (10,000 files written beside two CPU hogs took over 5 s, at about a path per
/// millisecond, and were cut in two at 5 s); a stream that never goes quiet is still cut.
fn open_at_most(n: usize, max: Duration) -> Duration {
    let per_path = Duration::from_millis(u64::try_from(n).unwrap_or(u64::MAX).saturating_mul(3));
    max.max(per_path.min(Duration::from_secs(30)))
}

/// How long a batch of `n` paths waits for quiet.
fn quiet_for(n: usize, quiet: Duration) -> Duration {
    if n < BULK {
        return quiet;
    }
    let extra = BULK_QUIET_PER_1000 * u32::try_from(n / 1000).unwrap_or(u32::MAX);
    quiet.max((BULK_QUIET + extra).min(BULK_QUIET_MAX))
}

/// A debounced set of changes and what they touch.
#[derive(Debug, Clone)]
pub struct Batch {
    pub targets: Targets,
    /// How many paths changed.
    pub paths: usize,
    /// A few of the changed paths, for the terminal and the page.
    pub sample: Vec<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    #[error(
        "out of inotify watches while watching {path} (devenv needs one per watched directory, {dirs} here)"
    )]
    Limit { path: PathBuf, dirs: usize },
    #[error("out of inotify instances: too many programs are watching files")]
    Instances,
    #[error("cannot watch {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot watch files: {0}")]
    Notify(String),
    /// A watched directory was removed: not an error, said so the user knows.
    #[error("{} was removed: it is watched again when it comes back", path.display())]
    Gone { path: PathBuf },
    /// A removed watched directory is back, and watched again.
    #[error("{} is back: watched again", path.display())]
    Back { path: PathBuf },
    #[error(transparent)]
    Context(#[from] ContextError),
}

impl WatchError {
    /// Whether this is news rather than a failure (a watched directory gone, or back).
    pub fn is_notice(&self) -> bool {
        matches!(self, WatchError::Gone { .. } | WatchError::Back { .. })
    }

    /// What to do about it.
    pub fn hint(&self) -> Option<String> {
        match self {
            WatchError::Limit { dirs, .. } => {
                let want = (*dirs as u64 * 2).next_power_of_two().max(524_288);
                Some(format!(
                    "raise the limit: `sudo sysctl fs.inotify.max_user_watches={want}` (and put `fs.inotify.max_user_watches={want}` in /etc/sysctl.d/60-devenv-inotify.conf to keep it), or ignore big generated directories in .dockerignore or [watch] ignore; `devenv doctor` checks this"
                ))
            }
            WatchError::Instances => Some(
                "raise the limit: `sudo sysctl fs.inotify.max_user_instances=512`, or stop other file watchers"
                    .into(),
            ),
            _ => None,
        }
    }
}

/// Maps a notify error to what it means for the user.
fn classify(e: notify::Error, path: &Path, dirs: usize) -> WatchError {
    match e.kind {
        notify::ErrorKind::MaxFilesWatch => WatchError::Limit {
            path: path.to_path_buf(),
            dirs,
        },
        notify::ErrorKind::Io(io) => match io.raw_os_error() {
            Some(libc::ENOSPC) => WatchError::Limit {
                path: path.to_path_buf(),
                dirs,
            },
            Some(libc::EMFILE) => WatchError::Instances,
            _ => WatchError::Io {
                path: path.to_path_buf(),
                source: io,
            },
        },
        notify::ErrorKind::PathNotFound => WatchError::Io {
            path: path.to_path_buf(),
            source: std::io::ErrorKind::NotFound.into(),
        },
        notify::ErrorKind::Generic(m) => WatchError::Notify(m),
        notify::ErrorKind::WatchNotFound => WatchError::Notify("no such watch".into()),
        notify::ErrorKind::InvalidConfig(_) => {
            WatchError::Notify("the watcher's configuration is invalid".into())
        }
    }
}

#[cfg(test)]
pub(super) fn classify_for_test(e: notify::Error) -> WatchError {
    classify(e, Path::new("/project/x"), 1100)
}

/// A running watcher. Dropping it stops watching.
pub struct Watcher {
    _inner: Arc<Mutex<notify::RecommendedWatcher>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    /// How many directories are watched.
    pub dirs: usize,
}

impl Drop for Watcher {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

use crate::host::lock;

/// Adds a watch on each of `dirs`; a directory that vanished meanwhile is skipped.
fn add_watches(
    w: &mut notify::RecommendedWatcher,
    dirs: &[PathBuf],
    total: usize,
) -> Result<usize, WatchError> {
    let mut added = 0;
    for d in dirs {
        match w.watch(d, RecursiveMode::NonRecursive) {
            Ok(()) => added += 1,
            Err(e) => match classify(e, d, total) {
                WatchError::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {}
                other => return Err(other),
            },
        }
    }
    Ok(added)
}

impl Watcher {
    /// Watches everything `cfg` names. Batches (debounced by `[watch] debounce`) arrive on the
    /// receiver; so do errors met later (a new directory beyond the inotify limit). Must be
    /// called inside a tokio runtime.
    pub fn start(
        cfg: &Config,
    ) -> Result<(Watcher, mpsc::UnboundedReceiver<Result<Batch, WatchError>>), WatchError> {
        let rules = Rules::new(cfg)?;
        let dirs = rules.directories();
        let (raw_tx, mut raw_rx) = mpsc::unbounded_channel::<notify::Result<notify::Event>>();
        let inner = notify::recommended_watcher(move |res| {
            let _ = raw_tx.send(res);
        })
        .map_err(|e| classify(e, &cfg.root, dirs.len()))?;
        let inner = Arc::new(Mutex::new(inner));
        let count = add_watches(&mut lock(&inner), &dirs, dirs.len())?;
        tracing::debug!(dirs = count, "watching");

        let rules = Arc::new(Mutex::new(rules));
        let (out_tx, out_rx) = mpsc::unbounded_channel();
        let (path_tx, path_rx) = mpsc::unbounded_channel::<PathBuf>();
        let (set_tx, mut set_rx) = mpsc::unbounded_channel::<BTreeSet<PathBuf>>();

        // Raw events -> paths; new directories get watches, and their files count as changed
        // (they may have been written before the watch was in place).
        // Watched root directories that were removed, until they come back.
        let missing: Arc<Mutex<BTreeSet<PathBuf>>> = Arc::new(Mutex::new(BTreeSet::new()));
        // Whether each path's first event since its last batch was its creation: a path made
        // and gone again within one batch (an editor's temporary file) changed nothing.
        let born: Arc<Mutex<std::collections::HashMap<PathBuf, bool>>> =
            Arc::new(Mutex::new(std::collections::HashMap::new()));
        let expand = {
            let born = born.clone();
            let inner = inner.clone();
            let rules = rules.clone();
            let out_tx = out_tx.clone();
            let total = Arc::new(std::sync::atomic::AtomicUsize::new(count));
            tokio::spawn(async move {
                while let Some(res) = raw_rx.recv().await {
                    let ev = match res {
                        Ok(ev) => ev,
                        Err(e) => {
                            let n = total.load(std::sync::atomic::Ordering::Relaxed);
                            let p = e.paths.first().cloned().unwrap_or_default();
                            let _ = out_tx.send(Err(classify(e, &p, n)));
                            continue;
                        }
                    };
                    if ev.need_rescan() {
                        // The kernel dropped events: everything may have changed.
                        let _ = path_tx.send(PathBuf::new());
                        continue;
                    }
                    if matches!(ev.kind, EventKind::Access(_)) {
                        continue;
                    }
                    {
                        let mut born = lock(&born);
                        // Bounded: past the cap nothing is known, and nothing is skipped.
                        if born.len() > MAX_BORN {
                            born.clear();
                        }
                        for p in &ev.paths {
                            born.entry(p.clone())
                                .or_insert(matches!(ev.kind, EventKind::Create(_)));
                        }
                    }
                    for p in ev.paths {
                        // A watched root directory removed (a `rm -rf gen && mkdir gen`, a
                        // branch switch): its watches went with it. Its nearest existing
                        // ancestor is watched meanwhile, to see it come back.
                        if matches!(ev.kind, EventKind::Remove(_))
                            && !p.exists()
                            && lock(&rules).is_root_dir(&p)
                            && !lock(&missing).contains(&p)
                        {
                            lock(&missing).insert(p.clone());
                            if let Some(a) = p.ancestors().skip(1).find(|a| a.is_dir()) {
                                let _ = lock(&inner).watch(a, RecursiveMode::NonRecursive);
                            }
                            let _ = out_tx.send(Err(WatchError::Gone { path: p.clone() }));
                        }
                        // A symlink is never followed, to a directory least of all: `ln -s / x`
                        // in a watched directory would watch the whole machine.
                        let real_dir = p.symlink_metadata().is_ok_and(|m| m.is_dir());
                        if matches!(ev.kind, EventKind::Create(_)) && real_dir {
                            let back: Vec<PathBuf> = lock(&missing)
                                .iter()
                                .filter(|m| m.starts_with(&p))
                                .cloned()
                                .collect();
                            for m in back {
                                if m.is_dir() {
                                    lock(&missing).remove(&m);
                                    let dirs = lock(&rules).dirs_under(&m);
                                    let n = total.fetch_add(
                                        dirs.len(),
                                        std::sync::atomic::Ordering::Relaxed,
                                    );
                                    if let Err(e) =
                                        add_watches(&mut lock(&inner), &dirs, n + dirs.len())
                                    {
                                        let _ = out_tx.send(Err(e));
                                    }
                                    let _ = out_tx.send(Err(WatchError::Back { path: m.clone() }));
                                    // What it holds now counts as changed.
                                    for d in &dirs {
                                        for e in
                                            std::fs::read_dir(d).into_iter().flatten().flatten()
                                        {
                                            let _ = path_tx.send(e.path());
                                        }
                                    }
                                } else {
                                    // An ancestor came back first (`mkdir -p`): watch it too.
                                    let _ = lock(&inner).watch(&p, RecursiveMode::NonRecursive);
                                }
                            }
                        }
                        if matches!(ev.kind, EventKind::Create(_)) && real_dir {
                            // Walked again after the watches are in place: a directory made
                            // inside while the first walk ran is no event of a watch.
                            let mut new: Vec<PathBuf> = Vec::new();
                            loop {
                                let more: Vec<PathBuf> = lock(&rules)
                                    .dirs_under(&p)
                                    .into_iter()
                                    .filter(|d| !new.contains(d))
                                    .collect();
                                if more.is_empty() {
                                    break;
                                }
                                let n = total
                                    .fetch_add(more.len(), std::sync::atomic::Ordering::Relaxed);
                                if let Err(e) =
                                    add_watches(&mut lock(&inner), &more, n + more.len())
                                {
                                    let _ = out_tx.send(Err(e));
                                    break;
                                }
                                new.extend(more);
                            }
                            for d in &new {
                                if let Ok(rd) = std::fs::read_dir(d) {
                                    for e in rd.flatten() {
                                        let _ = path_tx.send(e.path());
                                    }
                                }
                            }
                        }
                        let _ = path_tx.send(p);
                    }
                }
            })
        };
        let debounce_task = tokio::spawn(debounce(
            path_rx,
            cfg.watch.debounce,
            MAX_BATCH_WAIT,
            set_tx,
        ));
        let cfg = cfg.clone();
        let map = tokio::spawn(async move {
            while let Some(mut set) = set_rx.recv().await {
                {
                    let mut born = lock(&born);
                    if set.contains(&PathBuf::new()) {
                        born.clear();
                    }
                    set.retain(|p| {
                        let made_here = born.remove(p) == Some(true);
                        !(made_here && p.symlink_metadata().is_err())
                    });
                }
                if set.is_empty() {
                    continue;
                }
                if set.iter().any(|p| lock(&rules).is_ignore_file(p)) {
                    match Rules::new(&cfg) {
                        Ok(r) => *lock(&rules) = r,
                        Err(e) => {
                            let _ = out_tx.send(Err(e.into()));
                        }
                    }
                }
                let mut targets = Targets::default();
                // The paths that touched something: the terminal names them, not every file
                // written beside a watched one.
                let mut relevant: Vec<&PathBuf> = Vec::new();
                if set.contains(&PathBuf::new()) {
                    for r in &lock(&rules).roots {
                        // Everything may have changed; what `up` was set up from is read
                        // again only when it really did (a rescan is no edit).
                        if !matches!(r.owner, Owner::Reload(_)) {
                            targets.add(&r.owner);
                        }
                    }
                } else {
                    let rules = lock(&rules);
                    for p in &set {
                        let mut one = Targets::default();
                        rules.affected(p, &mut one);
                        if !one.is_empty() {
                            relevant.push(p);
                            targets.images.extend(one.images);
                            targets.locals.extend(one.locals);
                            targets.reload.extend(one.reload);
                            for (image, paths) in one.image_paths {
                                targets.image_paths.entry(image).or_default().extend(paths);
                            }
                        }
                    }
                }
                if targets.is_empty() {
                    continue;
                }
                targets
                    .image_paths
                    .retain(|_, paths| paths.len() <= super::MAX_SYNC_PATHS);
                let batch = Batch {
                    targets,
                    paths: if relevant.is_empty() {
                        set.len()
                    } else {
                        relevant.len()
                    },
                    sample: if relevant.is_empty() {
                        set.iter().take(3).cloned().collect()
                    } else {
                        relevant.iter().take(3).map(|p| (*p).clone()).collect()
                    },
                };
                if out_tx.send(Ok(batch)).is_err() {
                    break;
                }
            }
        });
        Ok((
            Watcher {
                _inner: inner,
                tasks: vec![expand, debounce_task, map],
                dirs: count,
            },
            out_rx,
        ))
    }
}

/// Collects paths into batches: a batch closes once `quiet` passes with no new path (at least
/// [`BULK_QUIET`] and more, see [`quiet_for`], once it holds [`BULK`] paths), or `max` after its first path, whichever
/// comes first. Ends when `rx` closes.
pub async fn debounce(
    mut rx: mpsc::UnboundedReceiver<PathBuf>,
    quiet: Duration,
    max: Duration,
    tx: mpsc::UnboundedSender<BTreeSet<PathBuf>>,
) {
    while let Some(first) = rx.recv().await {
        let mut set = BTreeSet::from([first]);
        let opened = Instant::now();
        let mut open = true;
        while open {
            let wait = quiet_for(set.len(), quiet);
            let until = (Instant::now() + wait).min(opened + open_at_most(set.len(), max));
            match tokio::time::timeout_at(until, rx.recv()).await {
                Ok(Some(p)) => {
                    set.insert(p);
                }
                Ok(None) => open = false,
                Err(_) => break,
            }
        }
        if tx.send(set).is_err() || !open {
            return;
        }
    }
}
