//! Watching while `up` runs. Batches of file changes go to the engine. An edit of what `up`
//! was set up from (devenv.toml, the chart and its values files, a manifest) is read again
//! and checked; a good one sends the engine the difference (one helm upgrade for a values
//! file, that file applied for a manifest, what changed for devenv.toml), an invalid one is
//! shown in the terminal and on the page while the last good config runs on.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Result;
use tokio::sync::mpsc;

use crate::config::{self, Config};
use crate::engine::state::{Event, Reload, SyncPlan};
use crate::watch::{self as files, Reload as Edit};
use crate::workers::{self, deploy as deploy_w};
use crate::{live, out, reload};

type Batches = mpsc::UnboundedReceiver<Result<files::Batch, files::WatchError>>;

pub struct Reloader {
    /// The last good config: what runs.
    cfg: Arc<Config>,
    /// Each config taken goes to the workers, put in place by the engine's `Configure`.
    publish: mpsc::UnboundedSender<workers::Published>,
    /// The version of the last config published.
    version: u64,
    tx: mpsc::UnboundedSender<Event>,
    cwd: PathBuf,
    /// `--port`: it stands for `[web] port` in every config read.
    port: Option<u16>,
    watcher: files::Watcher,
    batches: Batches,
}

/// Starts the file watcher (inside a tokio runtime), saying what it watches.
fn start_watching(cfg: &Config) -> Result<(files::Watcher, Batches)> {
    let (w, batches) = files::Watcher::start(cfg).map_err(|e| match e.hint() {
        Some(h) => anyhow::anyhow!("{e}\n  hint: {h}"),
        None => anyhow::anyhow!("{e}"),
    })?;
    out::say(
        "watching",
        format!(
            "{} director{} (debounce {} ms)",
            w.dirs,
            if w.dirs == 1 { "y" } else { "ies" },
            cfg.watch.debounce.as_millis()
        ),
    );
    Ok((w, batches))
}

/// A config error as the user reads it: each diagnostic with its file, line and column.
fn config_error(shown: &str, e: &config::ConfigError) -> String {
    let what = match e {
        config::ConfigError::Invalid { diagnostics } => diagnostics
            .iter()
            .filter(|d| d.is_error())
            .map(|d| {
                let text = d.to_string();
                text.strip_prefix("error: ").unwrap_or(&text).to_owned()
            })
            .collect::<Vec<_>>()
            .join("\n"),
        other => other.to_string(),
    };
    format!("{shown} was not reloaded: {what}")
}

impl Reloader {
    pub fn start(
        cfg: Arc<Config>,
        publish: mpsc::UnboundedSender<workers::Published>,
        tx: mpsc::UnboundedSender<Event>,
        cwd: PathBuf,
        port: Option<u16>,
    ) -> Result<Reloader> {
        let (watcher, batches) = start_watching(&cfg)?;
        Ok(Reloader {
            cfg,
            publish,
            version: 0,
            tx,
            cwd,
            port,
            watcher,
            batches,
        })
    }

    fn shown(&self) -> String {
        self.cfg.rel(&self.cfg.file)
    }

    pub async fn run(mut self) {
        while let Some(b) = self.batches.recv().await {
            let b = match b {
                Ok(b) => b,
                Err(e) if e.is_notice() => {
                    let text = e.to_string();
                    let root = self.cfg.root.display().to_string();
                    out::say("watching", text.replace(&format!("{root}/"), ""));
                    continue;
                }
                Err(e) => {
                    let text = match e.hint() {
                        Some(h) => format!("{e}\n  hint: {h}"),
                        None => e.to_string(),
                    };
                    // On the page too, not only the terminal.
                    let _ = self.tx.send(Event::Note {
                        kind: "error".into(),
                        text: text.clone(),
                    });
                    out::say("error", text);
                    continue;
                }
            };
            let root = &self.cfg.root;
            let sample: Vec<String> = b
                .sample
                .iter()
                .map(|p| p.strip_prefix(root).unwrap_or(p).display().to_string())
                .collect();
            let what: Vec<String> = b
                .targets
                .images
                .iter()
                .chain(&b.targets.locals)
                .cloned()
                .chain(b.targets.reload.iter().map(|r| match r {
                    Edit::Config => "reload devenv.toml".to_owned(),
                    Edit::Release(r) => format!("helm upgrade {r}"),
                    Edit::Manifest(m) => format!("apply {}", self.cfg.rel(m)),
                }))
                .collect();
            out::say(
                "changed",
                format!(
                    "{} file{} ({}{}) -> {}",
                    b.paths,
                    if b.paths == 1 { "" } else { "s" },
                    sample.join(", "),
                    if b.paths > sample.len() { ", …" } else { "" },
                    what.join(", ")
                ),
            );
            // A manifest or values file inside a build context changes the image too: the
            // engine hears of the build first, so the deploy the edit asks for waits for it
            // and goes out once, with the new tag (it rolled out twice, the old tag first).
            // An edit of devenv.toml may change the images themselves: it is read first.
            let config_first = b.targets.reload.contains(&Edit::Config);
            if config_first && !b.targets.reload.is_empty() {
                self.reload(&b.targets.reload).await;
            }
            if !b.targets.images.is_empty() || !b.targets.locals.is_empty() {
                let sync = sync_plans(&self.cfg, &b.targets);
                let _ = self.tx.send(Event::Changed {
                    images: b.targets.images,
                    locals: b.targets.locals,
                    sync,
                    files: sample,
                    paths: b.paths,
                });
            }
            if !config_first && !b.targets.reload.is_empty() {
                self.reload(&b.targets.reload).await;
            }
        }
    }

    /// Reads the edited files again and sends the engine what changed, or the error.
    async fn reload(&mut self, edits: &BTreeSet<Edit>) {
        let result = if edits.contains(&Edit::Config) {
            // The config names the chart and the manifests: all of them are read again.
            self.reload_config().await
        } else {
            self.reload_files(edits).await
        };
        if let Err(message) = result {
            let _ = self.tx.send(Event::ReloadFailed { message });
        }
    }

    /// devenv.toml changed: read and check it, and apply the difference.
    async fn reload_config(&mut self) -> Result<(), String> {
        let (file, cwd) = (self.cfg.file.clone(), self.cwd.clone());
        let shown = self.shown();
        let loaded =
            tokio::task::spawn_blocking(move || config::load(&file, &cwd, config::Origin::Found))
                .await
                .map_err(|e| e.to_string())?
                .map_err(|e| config_error(&shown, &e))?;
        for w in &loaded.warnings {
            out::say("warning", w);
        }
        let old = self.cfg.clone();
        let mut new = loaded.config;
        if let Some(p) = self.port {
            new.web.port = p;
        }
        let d0 = reload::diff(&old, &new, &BTreeMap::new());
        for what in &d0.restart {
            out::say(
                "reload",
                format!("{what} changed: it takes effect on the next `devenv up`"),
            );
        }
        // What only a new `up` can take keeps its running value.
        new.cluster = old.cluster.clone();
        new.web = old.web.clone();
        new.secrets = old.secrets.clone();
        new.project = old.project.clone();
        let new = Arc::new(new);
        let shown = self.shown();
        let checked = new.clone();
        let shape = tokio::task::spawn_blocking(move || {
            let shape = Arc::new(crate::project::shape(&checked)?);
            if !checked.deploy.helm.is_empty() {
                deploy_w::check_chart(&checked, &shown, shape.clone())?;
            }
            anyhow::Ok(shape)
        })
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("{} was not reloaded: {e:#}", self.shown()))?;
        let d = reload::diff(&old, &new, &shape.released);
        // The watcher follows the new paths (a new context, a new values file).
        match start_watching(&new) {
            Ok((w, b)) => {
                self.watcher = w;
                self.batches = b;
            }
            Err(e) => out::say("error", format!("{e:#}")),
        }
        let version = self.publish(&new, &shape);
        let files: BTreeSet<String> = if d.manifests {
            new.deploy.manifests.iter().map(|m| new.rel(m)).collect()
        } else {
            BTreeSet::new()
        };
        let summary = summary(&d);
        self.cfg = new.clone();
        let _ = self.tx.send(Event::Reload(Box::new(Reload {
            version,
            graph: crate::project::graph(&new, &shape.resource_images, &shape.released),
            images: d.images,
            locals: d.locals,
            resources: d.redeploy,
            replaced: d.replaced,
            refollow: d.refollow,
            files,
        })));
        let text = format!("{}: {summary}", self.shown());
        let _ = self.tx.send(Event::Note {
            kind: "reloaded".into(),
            text: text.clone(),
        });
        out::say("reloaded", text);
        Ok(())
    }

    /// A values file, the chart or a manifest changed: check it, then deploy what it
    /// changes (one helm upgrade of the release; the manifest applied whole).
    async fn reload_files(&mut self, edits: &BTreeSet<Edit>) -> Result<(), String> {
        let cfg = self.cfg.clone();
        let shown = self.shown();
        let releases: BTreeSet<String> = edits
            .iter()
            .filter_map(|e| match e {
                Edit::Release(r) => Some(r.clone()),
                _ => None,
            })
            .collect();
        let release = !releases.is_empty();
        let shape = tokio::task::spawn_blocking(move || {
            let shape = Arc::new(crate::project::shape(&cfg)?);
            if release {
                deploy_w::check_chart(&cfg, &shown, shape.clone())?;
            }
            anyhow::Ok(shape)
        })
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("not deployed: {e:#}"))?;
        let mut resources: BTreeSet<String> = BTreeSet::new();
        let mut files: BTreeSet<String> = BTreeSet::new();
        if release {
            resources.extend(
                shape
                    .released
                    .iter()
                    .filter(|(_, r)| releases.contains(*r))
                    .map(|(name, _)| name.clone()),
            );
        }
        for e in edits {
            if let Edit::Manifest(m) = e {
                let rel = self.cfg.rel(m);
                resources.extend(
                    shape
                        .docs
                        .iter()
                        .filter(|d| d.file == rel)
                        .filter_map(|d| d.owner.clone()),
                );
                files.insert(rel);
            }
        }
        let cfg = self.cfg.clone();
        let version = self.publish(&cfg, &shape);
        // A manifest may run other images now: the graph follows.
        let _ = self.tx.send(Event::Reload(Box::new(Reload {
            version,
            graph: crate::project::graph(&cfg, &shape.resource_images, &shape.released),
            resources,
            files,
            ..Reload::default()
        })));
        Ok(())
    }

    /// The new config and what its resources run, for the workers and the page: put in
    /// place when the engine, having heard of it, says so. Returns its version.
    fn publish(&mut self, cfg: &Arc<Config>, shape: &crate::project::Shape) -> u64 {
        self.version += 1;
        let _ = self.publish.send(workers::Published {
            version: self.version,
            cfg: cfg.clone(),
            users: crate::project::users(&shape.resource_images),
            infos: workers::resource_infos(cfg, &shape.resource_images),
        });
        self.version
    }
}

/// The live updates a batch allows: for each image with `live_update` whose changed files
/// the sync map carries. The others are built; why is said here.
fn sync_plans(cfg: &Config, targets: &files::Targets) -> BTreeMap<String, SyncPlan> {
    let mut out = BTreeMap::new();
    for image in &targets.images {
        let Some(img) = cfg.images.iter().find(|i| &i.name == image) else {
            continue;
        };
        let Some(lu) = &img.live_update else {
            continue;
        };
        let Some(paths) = targets.image_paths.get(image) else {
            out::say_for(
                "rebuild",
                image,
                "live update: too many files changed at once to sync; building it",
            );
            continue;
        };
        let rel = |p: &std::path::Path| {
            p.strip_prefix(&img.context)
                .ok()
                .map(|r| r.to_string_lossy().replace('\\', "/"))
        };
        let changed: Vec<(String, bool)> = paths
            .iter()
            .map(|p| match rel(p) {
                Some(r) => (r, p.exists()),
                // Outside the context (a Dockerfile elsewhere, a `watch` path).
                None => (cfg.rel(p), p.exists()),
            })
            .collect();
        let mut build_files = Vec::new();
        for f in [
            img.dockerfile.clone(),
            img.context.join(".dockerignore"),
            std::path::PathBuf::from(format!("{}.dockerignore", img.dockerfile.display())),
        ] {
            if let Some(r) = rel(&f) {
                build_files.push(r);
            }
        }
        if paths.iter().any(|p| {
            rel(p).is_none()
                && (p == &img.dockerfile || p.extension().is_some_and(|e| e == "dockerignore"))
        }) {
            out::say_for(
                "rebuild",
                image,
                "live update: the Dockerfile changed; building it",
            );
            continue;
        }
        let text =
            crate::tree::read_capped(&img.dockerfile, crate::tree::MAX_FILE).unwrap_or_default();
        let map = live::infer(&text, img.target.as_deref(), &img.build_args, build_files);
        let rules = live::Rules {
            sync: lu.sync.clone(),
            run: lu
                .run
                .iter()
                .map(|(cmd, on)| live::RunStep {
                    cmd: cmd.clone(),
                    on: on.clone(),
                })
                .collect(),
            fall_back_on: lu.fall_back_on.clone(),
        };
        match live::decide(&map, &rules, &changed) {
            live::Decision::Sync {
                copies,
                deletes,
                runs,
                workdir,
            } => {
                out.insert(
                    image.clone(),
                    SyncPlan {
                        copies: copies
                            .into_iter()
                            .map(|c| (c.local, c.remote, c.chown))
                            .collect(),
                        deletes,
                        runs,
                        workdir,
                    },
                );
            }
            live::Decision::Rebuild { file, why } => out::say_for(
                "rebuild",
                image,
                &format!("live update cannot carry {file}: {why}; building it"),
            ),
        }
    }
    out
}

/// What a reload does, in a few words.
fn summary(d: &reload::Diff) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut list = |what: &str, set: &BTreeSet<String>| {
        if !set.is_empty() {
            parts.push(format!(
                "{what} {}",
                set.iter().cloned().collect::<Vec<_>>().join(", ")
            ));
        }
    };
    list("rebuild", &d.images);
    list("rerun", &d.locals);
    list("redeploy", &d.redeploy);
    list("bring up again", &d.replaced);
    list("follow again", &d.refollow);
    list("start", &d.added);
    list("remove", &d.removed);
    if d.manifests {
        parts.push("apply the manifests".into());
    }
    if d.is_empty() {
        "nothing to run again".into()
    } else {
        parts.join("; ")
    }
}
