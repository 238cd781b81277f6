//! File watching: which directories need a watch, and (with the dev loop) the notify watcher
//! itself; the only user of notify.
//!
//! Owns what counts as a change. A path that a build never sees (its context's
//! `.dockerignore`), editor noise, and `[watch] ignore` must never trigger anything, and a
//! directory that an ignore rule covers entirely is not watched at all. Must not decide what a
//! change rebuilds: the engine does that.

use std::path::{Path, PathBuf};

use crate::build::context::{ContextError, ignore_patterns};
use crate::config::Config;
use crate::pattern::{Pattern, PatternSet};

/// Directory names that are never watched: version-control internals.
pub const ALWAYS_IGNORED_DIRS: [&str; 3] = [".git", ".hg", ".svn"];

/// Rules for one watched tree.
struct Root {
    path: PathBuf,
    /// Patterns relative to `path` (an image context's `.dockerignore`), if any.
    local: PatternSet,
}

fn project_ignores(cfg: &Config) -> PatternSet {
    let mut set = PatternSet::default();
    for p in &cfg.watch.ignore {
        if let Ok(Some(p)) = Pattern::parse(p) {
            set.push(p);
        }
    }
    set
}

fn rel(base: &Path, p: &Path) -> Option<String> {
    p.strip_prefix(base)
        .ok()
        .map(|r| r.to_string_lossy().replace('\\', "/"))
}

/// Every directory devenv watches for `cfg`, after ignores, sorted and without duplicates.
pub fn directories(cfg: &Config) -> Result<Vec<PathBuf>, ContextError> {
    let mut roots = Vec::new();
    for img in &cfg.images {
        let (set, _) = ignore_patterns(img)?;
        roots.push(Root {
            path: img.context.clone(),
            local: set,
        });
        for w in &img.watch {
            roots.push(Root {
                path: w.clone(),
                local: PatternSet::default(),
            });
        }
    }
    for l in &cfg.locals {
        for d in &l.deps {
            roots.push(Root {
                path: d.clone(),
                local: PatternSet::default(),
            });
        }
    }
    let project = project_ignores(cfg);
    let mut out = Vec::new();
    for root in roots {
        let start = if root.path.is_dir() {
            root.path.clone()
        } else {
            // A single file is watched through its directory.
            match root.path.parent() {
                Some(p) => p.to_path_buf(),
                None => continue,
            }
        };
        let mut stack = vec![start];
        while let Some(dir) = stack.pop() {
            out.push(dir.clone());
            if !root.path.is_dir() {
                continue;
            }
            let Ok(rd) = std::fs::read_dir(&dir) else {
                continue;
            };
            for e in rd.flatten() {
                // Not followed: a symlinked directory is watched where it really lives, if at all.
                let Ok(ft) = e.file_type() else { continue };
                if !ft.is_dir() {
                    continue;
                }
                let p = e.path();
                let name = e.file_name();
                if ALWAYS_IGNORED_DIRS.iter().any(|n| name == *n) {
                    continue;
                }
                let skip_local =
                    rel(&root.path, &p).is_some_and(|r| root.local.excludes_whole_dir(&r));
                let skip_project =
                    rel(&cfg.root, &p).is_some_and(|r| project.excludes_whole_dir(&r));
                if !skip_local && !skip_project {
                    stack.push(p);
                }
            }
        }
    }
    out.sort();
    out.dedup();
    Ok(out)
}
