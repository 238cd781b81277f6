//! File watching: which directories need a watch, what a changed path affects, and the notify
//! watcher with its debounce; the only user of notify.
//!
//! Owns what counts as a change. A path that a build never sees (its context's
//! `.dockerignore`), editor noise, and `[watch] ignore` must never trigger anything, and a
//! directory that an ignore rule covers entirely is not watched at all. Must not decide what a
//! change rebuilds or redeploys: it names the images and local resources whose inputs changed,
//! and the engine does the rest.

mod live;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

#[cfg(test)]
use live::debounce;
pub use live::{Batch, WatchError, Watcher};

use crate::config::Config;
use crate::image::context::{ContextError, ignore_patterns};
use crate::pattern::{Pattern, PatternSet};

/// Directory names that are never watched: version-control internals.
pub const ALWAYS_IGNORED_DIRS: [&str; 3] = [".git", ".hg", ".svn"];

/// Whether a file name is editor noise: swap files, backups, lock files, and the `4913` file
/// vim writes to probe a directory.
pub fn is_noise(name: &str) -> bool {
    name.ends_with(".swp")
        || name.ends_with(".swx")
        || name.ends_with(".swo")
        || name.ends_with('~')
        || name == "4913"
        || name.starts_with(".#")
        || (name.starts_with('#') && name.ends_with('#') && name.len() > 1)
}

/// Whose input a watched tree is.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Owner {
    Image(String),
    Local(String),
    /// What `up` itself was set up from: the config, the chart, a manifest.
    Reload(Reload),
}

/// A file `up` was set up from, changed: it is read again and the difference applied.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Reload {
    /// devenv.toml.
    Config,
    /// A values file or a file of a release's chart (named): the release is upgraded.
    Release(String),
    /// A manifest file: its objects are applied.
    Manifest(PathBuf),
}

/// Rules for one watched tree (a directory, or a single file).
#[derive(Debug, Clone)]
struct Root {
    path: PathBuf,
    is_dir: bool,
    owner: Owner,
    /// Patterns relative to `path` (an image context's `.dockerignore`), if any.
    local: PatternSet,
    /// Files that count even when `local` excludes them, which Docker always sends: the
    /// Dockerfile first, then the two places its ignore file can be.
    always: Vec<PathBuf>,
}

/// The images, local resources and set-up files a batch of changes touches.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Targets {
    pub images: BTreeSet<String>,
    pub locals: BTreeSet<String>,
    pub reload: BTreeSet<Reload>,
    /// The changed paths of each image (for live update); an image in `images` but not here
    /// changed as a whole (a rescan), or in too many paths to list.
    pub image_paths: std::collections::BTreeMap<String, BTreeSet<PathBuf>>,
}

/// More changed paths of one image than live update takes in one batch: it is built.
pub const MAX_SYNC_PATHS: usize = 1000;

impl Targets {
    pub fn is_empty(&self) -> bool {
        self.images.is_empty() && self.locals.is_empty() && self.reload.is_empty()
    }

    fn add(&mut self, owner: &Owner) {
        match owner {
            Owner::Image(n) => self.images.insert(n.clone()),
            Owner::Local(n) => self.locals.insert(n.clone()),
            Owner::Reload(r) => self.reload.insert(r.clone()),
        };
    }
}

/// What is watched for a config, and what each path means.
#[derive(Debug, Clone)]
pub struct Rules {
    roots: Vec<Root>,
    project_root: PathBuf,
    project: PatternSet,
}

fn rel(base: &Path, p: &Path) -> Option<String> {
    p.strip_prefix(base)
        .ok()
        .map(|r| r.to_string_lossy().replace('\\', "/"))
}

impl Rules {
    /// The rules for `cfg`; fails when an ignore file cannot be read or parsed.
    pub fn new(cfg: &Config) -> Result<Rules, ContextError> {
        let mut roots = Vec::new();
        for img in &cfg.images {
            let (set, _) = ignore_patterns(img)?;
            let owner = Owner::Image(img.name.clone());
            let mut always = vec![img.dockerfile.clone()];
            always.push(img.context.join(".dockerignore"));
            always.push(PathBuf::from(format!(
                "{}.dockerignore",
                img.dockerfile.display()
            )));
            roots.push(Root {
                path: img.context.clone(),
                is_dir: true,
                owner: owner.clone(),
                local: set,
                always: always.clone(),
            });
            // A Dockerfile (or its ignore file) outside the context is watched on its own.
            for f in always {
                if !f.starts_with(&img.context) {
                    roots.push(Root {
                        path: f,
                        is_dir: false,
                        owner: owner.clone(),
                        local: PatternSet::default(),
                        always: Vec::new(),
                    });
                }
            }
            for w in &img.watch {
                roots.push(Root {
                    path: w.clone(),
                    is_dir: w.is_dir(),
                    owner: owner.clone(),
                    local: PatternSet::default(),
                    always: Vec::new(),
                });
            }
        }
        for l in &cfg.locals {
            for d in &l.deps {
                roots.push(Root {
                    path: d.clone(),
                    is_dir: d.is_dir(),
                    owner: Owner::Local(l.name.clone()),
                    local: PatternSet::default(),
                    always: Vec::new(),
                });
            }
        }
        // What `up` was set up from: an edit is read again and applied (Tilt reloads too).
        let file = |path: &PathBuf, r: Reload| Root {
            path: path.clone(),
            is_dir: false,
            owner: Owner::Reload(r),
            local: PatternSet::default(),
            always: Vec::new(),
        };
        roots.push(file(&cfg.file, Reload::Config));
        for h in &cfg.deploy.helm {
            roots.push(Root {
                is_dir: h.chart.is_dir(),
                ..file(&h.chart, Reload::Release(h.release.clone()))
            });
            for v in &h.values {
                roots.push(file(v, Reload::Release(h.release.clone())));
            }
        }
        for m in &cfg.deploy.manifests {
            roots.push(file(m, Reload::Manifest(m.clone())));
        }
        let mut project = PatternSet::default();
        for p in &cfg.watch.ignore {
            if let Ok(Some(p)) = Pattern::parse(p) {
                project.push(p);
            }
        }
        Ok(Rules {
            roots,
            project_root: cfg.root.clone(),
            project,
        })
    }

    /// Whether `path` is a watched tree's root directory (an image's context, a `deps` or
    /// `watch` directory).
    pub fn is_root_dir(&self, path: &Path) -> bool {
        self.roots.iter().any(|r| r.is_dir && r.path == path)
    }

    /// Whether `root` (a directory root) skips directory `dir` below it entirely.
    fn skips_dir(&self, root: &Root, dir: &Path) -> bool {
        if dir
            .file_name()
            .is_some_and(|n| ALWAYS_IGNORED_DIRS.iter().any(|i| n == *i))
        {
            return true;
        }
        rel(&root.path, dir).is_some_and(|r| !r.is_empty() && root.local.excludes_whole_dir(&r))
            || rel(&self.project_root, dir)
                .is_some_and(|r| !r.is_empty() && self.project.excludes_whole_dir(&r))
    }

    /// Whether some root watches directory `dir` itself (it lies in a root's tree and no
    /// ignore rule of that root covers it or a directory above it).
    fn watches_dir(&self, dir: &Path) -> bool {
        self.roots.iter().any(|root| {
            if !root.is_dir {
                return root.path.parent() == Some(dir);
            }
            let Ok(below) = dir.strip_prefix(&root.path) else {
                return false;
            };
            let mut at = root.path.clone();
            for c in below.components() {
                at.push(c);
                if self.skips_dir(root, &at) {
                    return false;
                }
            }
            true
        })
    }

    /// `start` (when watched) and every directory below it that is watched, sorted.
    pub fn dirs_under(&self, start: &Path) -> Vec<PathBuf> {
        let mut out = Vec::new();
        if !start.is_dir() || !self.watches_dir(start) {
            return out;
        }
        let mut stack = vec![start.to_path_buf()];
        while let Some(dir) = stack.pop() {
            let Ok(rd) = std::fs::read_dir(&dir) else {
                continue;
            };
            out.push(dir);
            for e in rd.flatten() {
                // Not followed: a symlinked directory is watched where it really lives, if at all.
                let Ok(ft) = e.file_type() else { continue };
                if ft.is_dir() && self.watches_dir(&e.path()) {
                    stack.push(e.path());
                }
            }
        }
        out.sort();
        out
    }

    /// What is watched, as the user named it: each image's context and `watch` paths, a
    /// Dockerfile (or its ignore file) outside its context, each local's `deps`, the config,
    /// the chart, its values files and the manifests. Only paths that exist; sorted, without
    /// duplicates or a path inside another.
    pub fn paths(&self) -> Vec<PathBuf> {
        let mut out: Vec<PathBuf> = self
            .roots
            .iter()
            .map(|r| r.path.clone())
            .filter(|p| p.exists())
            .collect();
        out.sort();
        out.dedup();
        let all = out.clone();
        out.retain(|p| !all.iter().any(|q| q != p && q.is_dir() && p.starts_with(q)));
        out
    }

    /// Every directory to watch, sorted and without duplicates.
    pub fn directories(&self) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for root in &self.roots {
            if root.is_dir {
                out.extend(self.dirs_under(&root.path));
            } else if let Some(parent) = root.path.parent()
                && parent.is_dir()
            {
                // A single file is watched through its directory.
                out.push(parent.to_path_buf());
            }
        }
        out.sort();
        out.dedup();
        out
    }

    /// Whether `dir` is an ignore file's directory whose rules may have changed, so the rules
    /// must be read again.
    pub fn is_ignore_file(&self, path: &Path) -> bool {
        self.roots
            .iter()
            .any(|r| r.always.iter().skip(1).any(|a| a == path))
    }

    /// What a change at `path` touches.
    pub fn affected(&self, path: &Path, out: &mut Targets) {
        let Some(name) = path.file_name().map(|n| n.to_string_lossy()) else {
            return;
        };
        if is_noise(&name) {
            return;
        }
        for root in &self.roots {
            let counts = if root.always.iter().any(|a| a == path) {
                true
            } else if !root.is_dir {
                root.path == path
            } else {
                match rel(&root.path, path) {
                    None => false,
                    Some(r) if r.is_empty() => false,
                    Some(r) => {
                        !r.split('/').any(|c| ALWAYS_IGNORED_DIRS.contains(&c))
                            && !root.local.is_excluded(&r)
                            && !rel(&self.project_root, path)
                                .is_some_and(|p| self.project.is_excluded(&p))
                    }
                }
            };
            if counts {
                out.add(&root.owner);
                if let Owner::Image(n) = &root.owner {
                    out.image_paths
                        .entry(n.clone())
                        .or_default()
                        .insert(path.to_path_buf());
                }
            }
        }
    }
}

/// Every directory devenv watches for `cfg`, after ignores, sorted and without duplicates.
pub fn directories(cfg: &Config) -> Result<Vec<PathBuf>, ContextError> {
    Ok(Rules::new(cfg)?.directories())
}

#[cfg(test)]
mod tests;
