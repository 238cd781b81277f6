//! Watch rules on real trees, the debounce with paused time, and the real notify watcher on
//! temporary directories.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::sync::mpsc;

use super::*;

fn write(p: &Path, text: &str) {
    if let Some(d) = p.parent() {
        std::fs::create_dir_all(d).unwrap_or_else(|e| panic!("{e}"));
    }
    std::fs::write(p, text).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
}

/// A project with an image `api` (context api/, .dockerignore covering node_modules and
/// *.log), an image `web` whose Dockerfile lives outside its context, and a local resource
/// `gen` depending on scripts/.
fn project(extra: &str) -> (tempfile::TempDir, Config) {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let root = dir.path();
    write(&root.join("api/Dockerfile"), "FROM scratch\n");
    write(
        &root.join("api/.dockerignore"),
        "node_modules\n*.log\n!keep.log\n",
    );
    write(&root.join("api/app/main.py"), "print()\n");
    write(&root.join("api/node_modules/x/index.js"), "x\n");
    write(&root.join("web/src/page.js"), "x\n");
    write(&root.join("docker/web.Dockerfile"), "FROM scratch\n");
    write(&root.join("scripts/gen.sh"), "true\n");
    write(&root.join("scripts/out/generated.txt"), "x\n");
    let toml = format!(
        r#"[project]
name = "w"
[[image]]
name = "api"
context = "api"
builder = "buildah"
[[image]]
name = "web"
context = "web"
dockerfile = "docker/web.Dockerfile"
builder = "buildah"
[[local]]
name = "gen"
cmd = "true"
deps = ["scripts"]
{extra}"#
    );
    write(&root.join("devenv.toml"), &toml);
    let loaded = crate::config::load(
        &root.join("devenv.toml"),
        root,
        crate::config::Origin::Found,
    )
    .unwrap_or_else(|e| panic!("{e:?}"));
    (dir, loaded.config)
}

fn touched(rules: &Rules, root: &Path, rel: &str) -> Targets {
    let mut t = Targets::default();
    rules.affected(&root.join(rel), &mut t);
    t
}

fn names(s: &BTreeSet<String>) -> Vec<&str> {
    s.iter().map(String::as_str).collect()
}

#[test]
fn a_path_touches_only_what_sees_it() {
    let (dir, cfg) = project("[watch]\nignore = [\"scripts/out\"]\n");
    let rules = Rules::new(&cfg).unwrap_or_else(|e| panic!("{e}"));
    let root = cfg.root.clone();
    let _ = dir;
    assert_eq!(
        names(&touched(&rules, &root, "api/app/main.py").images),
        ["api"]
    );
    // What the build never sees never triggers it; a re-included file does.
    assert!(touched(&rules, &root, "api/node_modules/x/index.js").is_empty());
    assert!(touched(&rules, &root, "api/debug.log").is_empty());
    assert_eq!(
        names(&touched(&rules, &root, "api/keep.log").images),
        ["api"]
    );
    // The Dockerfile and the ignore file always count, inside or outside the context.
    assert_eq!(
        names(&touched(&rules, &root, "api/.dockerignore").images),
        ["api"]
    );
    assert_eq!(
        names(&touched(&rules, &root, "docker/web.Dockerfile").images),
        ["web"]
    );
    assert!(touched(&rules, &root, "docker/other.Dockerfile").is_empty());
    // Editor noise and version control.
    for noise in [
        "api/app/.main.py.swp",
        "api/app/main.py~",
        "api/app/4913",
        "api/app/.#main.py",
        "api/app/#main.py#",
        "api/.git/index",
    ] {
        assert!(touched(&rules, &root, noise).is_empty(), "{noise}");
    }
    assert_eq!(
        names(&touched(&rules, &root, "scripts/gen.sh").locals),
        ["gen"]
    );
    assert!(touched(&rules, &root, "scripts/out/generated.txt").is_empty());
    assert!(touched(&rules, &root, "README.md").is_empty());
    // The config file is read again when it changes.
    assert_eq!(
        touched(&rules, &root, "devenv.toml").reload,
        [crate::watch::Reload::Config].into()
    );
}

#[test]
fn ignored_directories_get_no_watch() {
    let (_dir, cfg) = project("[watch]\nignore = [\"scripts/out\"]\n");
    std::fs::create_dir_all(cfg.root.join("api/.git/objects")).unwrap_or_else(|e| panic!("{e}"));
    let dirs: Vec<String> = directories(&cfg)
        .unwrap_or_else(|e| panic!("{e}"))
        .iter()
        .map(|d| cfg.rel(d))
        .collect();
    // The root holds devenv.toml, watched for reload (that directory alone, not below).
    assert_eq!(
        dirs,
        [".", "api", "api/app", "docker", "scripts", "web", "web/src"],
        "node_modules, .git and scripts/out are not watched"
    );
}

#[test]
fn the_inotify_limit_comes_with_the_sysctl_fix() {
    let e = live::classify_for_test(notify::Error::new(notify::ErrorKind::MaxFilesWatch));
    assert!(matches!(e, WatchError::Limit { dirs: 1100, .. }), "{e:?}");
    let hint = e.hint().unwrap_or_default();
    assert!(
        hint.contains("sudo sysctl fs.inotify.max_user_watches=524288"),
        "{hint}"
    );
    let e = live::classify_for_test(notify::Error::io(std::io::Error::from_raw_os_error(
        libc::ENOSPC,
    )));
    assert!(matches!(e, WatchError::Limit { .. }), "{e:?}");
}

async fn collect(rx: &mut mpsc::UnboundedReceiver<BTreeSet<PathBuf>>) -> Vec<BTreeSet<PathBuf>> {
    let mut out = Vec::new();
    while let Ok(s) = rx.try_recv() {
        out.push(s);
    }
    out
}

/// A debounce of 50 ms with a 2 s cap: paths in, batches out.
fn debouncer() -> (
    mpsc::UnboundedSender<PathBuf>,
    mpsc::UnboundedReceiver<BTreeSet<PathBuf>>,
) {
    let (ptx, prx) = mpsc::unbounded_channel();
    let (stx, srx) = mpsc::unbounded_channel();
    tokio::spawn(debounce(
        prx,
        Duration::from_millis(50),
        Duration::from_secs(2),
        stx,
    ));
    (ptx, srx)
}

#[tokio::test(start_paused = true)]
async fn a_burst_becomes_one_batch_and_a_pause_splits_batches() {
    let (ptx, mut srx) = debouncer();
    for i in 0..10_000 {
        let _ = ptx.send(PathBuf::from(format!("f{i}")));
        if i % 1000 == 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    // A pause longer than the debounce inside a bulk change does not split it: 10,000 paths
    // wait 250 ms + 50 ms per thousand = 750 ms for quiet (a loaded machine's writer stalls).
    tokio::time::sleep(Duration::from_millis(700)).await;
    let _ = ptx.send(PathBuf::from("f-after-a-stall"));
    tokio::time::sleep(Duration::from_millis(749)).await;
    assert!(
        collect(&mut srx).await.is_empty(),
        "closed before the quiet period"
    );
    tokio::time::sleep(Duration::from_millis(10)).await;
    let batches = collect(&mut srx).await;
    assert_eq!(batches.len(), 1);
    assert_eq!(batches[0].len(), 10_001);
    // A single save is flushed after the plain debounce.
    let _ = ptx.send(PathBuf::from("later"));
    tokio::time::sleep(Duration::from_millis(49)).await;
    assert!(collect(&mut srx).await.is_empty());
    tokio::time::sleep(Duration::from_millis(2)).await;
    assert_eq!(
        collect(&mut srx).await,
        [BTreeSet::from([PathBuf::from("later")])]
    );
}

#[tokio::test(start_paused = true)]
async fn an_endless_stream_still_flushes_at_the_cap() {
    let (ptx, mut srx) = debouncer();
    for i in 0..100 {
        let _ = ptx.send(PathBuf::from(format!("f{i}")));
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    // 3 s of writes 30 ms apart, with a 2 s cap: one batch closed in the middle.
    let batches = collect(&mut srx).await;
    assert_eq!(batches.len(), 1, "{batches:?}");
    assert!(
        (60..=70).contains(&batches[0].len()),
        "{}",
        batches[0].len()
    );
}

/// Waits for the next batch, or `None` after `within`.
async fn next(
    rx: &mut mpsc::UnboundedReceiver<Result<Batch, WatchError>>,
    within: Duration,
) -> Option<Batch> {
    match tokio::time::timeout(within, rx.recv()).await {
        Ok(Some(Ok(b))) => Some(b),
        Ok(Some(Err(e))) => panic!("watch error: {e}"),
        _ => None,
    }
}

/// The real inotify watcher: a 10,000-file burst in one context is one batch naming that
/// image only; writes under ignored paths produce nothing; a new subdirectory is watched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_real_watcher_batches_bursts_and_follows_new_directories() {
    let (_dir, cfg) = project("");
    let (watcher, mut rx) = Watcher::start(&cfg).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        watcher.dirs, 8,
        "the root (devenv.toml), api, api/app, docker, scripts, scripts/out, web, web/src"
    );
    let root = cfg.root.clone();
    let burst = root.join("api/app/burst");
    std::fs::create_dir_all(&burst).unwrap_or_else(|e| panic!("{e}"));
    for i in 0..10_000 {
        std::fs::write(burst.join(format!("f{i}.py")), "x").unwrap_or_else(|e| panic!("{e}"));
    }
    let first = next(&mut rx, Duration::from_secs(10)).await;
    let first = first.unwrap_or_else(|| panic!("no batch"));
    assert_eq!(names(&first.targets.images), ["api"]);
    assert!(first.targets.locals.is_empty());
    // Anything left of the burst (10,000 files and their directory) would show up as a
    // second batch: it is waited for until every path was seen, however late it comes.
    let mut seen = first.paths;
    let mut extra = Vec::new();
    while seen < 10_001 {
        let Some(b) = next(&mut rx, Duration::from_secs(10)).await else {
            break;
        };
        seen += b.paths;
        extra.push(b);
    }
    assert!(extra.is_empty(), "more than one batch: {extra:?}");
    assert_eq!(seen, 10_001, "every file of the burst, and its directory");

    // Ignored: node_modules (not even watched), *.log at the context root, editor noise.
    std::fs::write(root.join("api/node_modules/x/new.js"), "x").unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(root.join("api/trace.log"), "x").unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(root.join("api/app/.main.py.swp"), "x").unwrap_or_else(|e| panic!("{e}"));
    let ignored = next(&mut rx, Duration::from_millis(500)).await;
    assert!(ignored.is_none(), "{ignored:?}");

    // A directory made now is watched: a file written into it later is seen.
    let fresh = root.join("scripts/lib/deep");
    std::fs::create_dir_all(&fresh).unwrap_or_else(|e| panic!("{e}"));
    let b = next(&mut rx, Duration::from_secs(5)).await;
    assert_eq!(
        b.map(|b| b.targets.locals),
        Some(BTreeSet::from(["gen".to_owned()]))
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    std::fs::write(fresh.join("util.sh"), "x").unwrap_or_else(|e| panic!("{e}"));
    let b = next(&mut rx, Duration::from_secs(5)).await;
    assert_eq!(
        b.map(|b| b.targets.locals),
        Some(BTreeSet::from(["gen".to_owned()]))
    );
    drop(watcher);
}

/// Issue 16, point 1: a symlink to a directory made while devenv watches is not followed:
/// `ln -s / x` must not watch the machine, nor `ln -s .. up` loop.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_symlink_made_while_watching_is_not_followed() {
    let (_dir, cfg) = project("");
    let outside = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    std::fs::create_dir_all(outside.path().join("deep")).unwrap_or_else(|e| panic!("{e}"));
    let (watcher, mut rx) = Watcher::start(&cfg).unwrap_or_else(|e| panic!("{e}"));
    let root = cfg.root.clone();
    std::os::unix::fs::symlink(outside.path(), root.join("api/app/elsewhere"))
        .unwrap_or_else(|e| panic!("{e}"));
    std::os::unix::fs::symlink("..", root.join("api/app/up")).unwrap_or_else(|e| panic!("{e}"));
    // The links themselves are changes in the context.
    let b = next(&mut rx, Duration::from_secs(5)).await;
    assert_eq!(
        b.map(|b| b.targets.images),
        Some(BTreeSet::from(["api".to_owned()]))
    );
    while next(&mut rx, Duration::from_millis(500)).await.is_some() {}
    // What happens behind a link is not watched.
    std::fs::write(outside.path().join("deep/f.py"), "x").unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(outside.path().join("g.py"), "x").unwrap_or_else(|e| panic!("{e}"));
    assert!(next(&mut rx, Duration::from_millis(800)).await.is_none());
    drop(watcher);
}

/// A bulk change written slowly (10,000 paths over 8 s, a loaded machine) stays one batch:
/// a big batch may stay open a millisecond per path, past the usual cap.
#[tokio::test(start_paused = true)]
async fn a_slowly_written_bulk_change_is_still_one_batch() {
    let (ptx, mut srx) = debouncer();
    for i in 0..10_000 {
        let _ = ptx.send(PathBuf::from(format!("f{i}")));
        if i >= 100 && i % 100 == 0 {
            tokio::time::sleep(Duration::from_millis(80)).await;
        }
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let batches = collect(&mut srx).await;
    assert_eq!(
        batches.iter().map(BTreeSet::len).collect::<Vec<_>>(),
        [10_000]
    );
    // Slower still, as seen beside two CPU hogs (the batch was cut at 5 s, 4,285 paths in):
    // 100 paths every 200 ms, 20 s for the 10,000.
    for i in 0..10_000 {
        let _ = ptx.send(PathBuf::from(format!("g{i}")));
        if i >= 100 && i % 100 == 0 {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let batches = collect(&mut srx).await;
    assert_eq!(
        batches.iter().map(BTreeSet::len).collect::<Vec<_>>(),
        [10_000]
    );
}

/// Issue 24 point 12: an editor's temporary file (written, then renamed over the file or
/// removed, within one batch) made live update run `rm` of it in the container. A path made
/// and gone again within a batch changed nothing; a file that was there and is removed does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_made_and_gone_within_a_batch_is_no_change() {
    let (_dir, cfg) = project("");
    let (watcher, mut rx) = Watcher::start(&cfg).unwrap_or_else(|e| panic!("{e}"));
    let app = cfg.root.join("api/app");
    // Saved by way of a temporary file renamed over the real one.
    std::fs::write(app.join("main.py.tmp123"), "new").unwrap_or_else(|e| panic!("{e}"));
    std::fs::rename(app.join("main.py.tmp123"), app.join("main.py"))
        .unwrap_or_else(|e| panic!("{e}"));
    // A lock file made and removed.
    std::fs::write(app.join("lockfile"), "x").unwrap_or_else(|e| panic!("{e}"));
    std::fs::remove_file(app.join("lockfile")).unwrap_or_else(|e| panic!("{e}"));
    let b = next(&mut rx, Duration::from_secs(5))
        .await
        .unwrap_or_else(|| panic!("no batch"));
    let paths: Vec<PathBuf> = b
        .targets
        .image_paths
        .get("api")
        .map(|p| p.iter().cloned().collect())
        .unwrap_or_default();
    assert_eq!(paths, [app.join("main.py")], "{b:?}");
    // Made and gone, alone: no batch at all.
    std::fs::write(app.join("x.swap"), "x").unwrap_or_else(|e| panic!("{e}"));
    std::fs::remove_file(app.join("x.swap")).unwrap_or_else(|e| panic!("{e}"));
    assert!(next(&mut rx, Duration::from_millis(500)).await.is_none());
    // A file that was there, removed: a change.
    std::fs::write(app.join("old.py"), "x").unwrap_or_else(|e| panic!("{e}"));
    let _ = next(&mut rx, Duration::from_secs(5)).await;
    std::fs::remove_file(app.join("old.py")).unwrap_or_else(|e| panic!("{e}"));
    let b = next(&mut rx, Duration::from_secs(5))
        .await
        .unwrap_or_else(|| panic!("no batch for the removal"));
    assert_eq!(
        b.targets.image_paths.get("api").map(|p| p.len()),
        Some(1),
        "{b:?}"
    );
    drop(watcher);
}
