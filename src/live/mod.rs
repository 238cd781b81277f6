//! Live update: a saved file goes into the running containers instead of a new image.
//!
//! Owns the rules, and nothing that runs: the sync map read from the Dockerfile's final stage
//! ([`infer`]), and the decision for a batch of changed files ([`decide`]): the files to copy
//! into the containers and the commands to run there, or a full build and the reason. The
//! transport (a tar stream through `pods/exec`) is `deploy::sync`'s; when to do which is the
//! engine's. Pure: no I/O, every rule tested with Dockerfile text.

mod infer;

pub use infer::{SyncMap, infer};

use std::collections::BTreeSet;

use crate::pattern::{Pattern, PatternSet};

/// A command to run in the container after files were synced: when one of `on` changed
/// (patterns relative to the context), `cmd` runs with `sh -c` in the stage's WORKDIR.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunStep {
    pub cmd: String,
    pub on: Vec<String>,
}

/// What the config says of live update for one image, besides the Dockerfile.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rules {
    /// Explicit `local -> remote` pairs (local relative to the context). When given, they
    /// replace the inferred copies.
    pub sync: Vec<(String, String)>,
    pub run: Vec<RunStep>,
    /// Patterns (relative to the context) whose change always means a full build.
    pub fall_back_on: Vec<String>,
}

/// One file to put into the containers.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Copy {
    /// Relative to the context.
    pub local: String,
    /// Absolute, in the container.
    pub remote: String,
    /// `--chown` of the COPY that put it there (`user:group`), if any.
    pub chown: Option<String>,
}

/// What to do with a batch of changed files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Copy these into every running container of the image (a file gone from the context is
    /// removed there), then run these commands.
    Sync {
        copies: Vec<Copy>,
        deletes: Vec<String>,
        runs: Vec<String>,
        /// The stage's WORKDIR, where the commands run.
        workdir: String,
    },
    /// A full build: `file` cannot be carried into the running container, for `why`.
    Rebuild { file: String, why: String },
}

fn set(patterns: &[String]) -> PatternSet {
    let mut s = PatternSet::default();
    for p in patterns {
        if let Ok(Some(p)) = Pattern::parse(p) {
            s.push(p);
        }
    }
    s
}

/// Decides for `changed` (paths relative to the context, each with whether it still
/// exists) given the image's sync map and rules.
pub fn decide(map: &SyncMap, rules: &Rules, changed: &[(String, bool)]) -> Decision {
    let fall_back = set(&rules.fall_back_on);
    let mut copies: BTreeSet<Copy> = BTreeSet::new();
    let mut deletes: BTreeSet<String> = BTreeSet::new();
    let mut runs: Vec<String> = Vec::new();
    for (path, exists) in changed {
        if fall_back.is_excluded(path) {
            return Decision::Rebuild {
                file: path.clone(),
                why: "it matches `fall_back_on`".into(),
            };
        }
        let run: Vec<&RunStep> = rules
            .run
            .iter()
            .filter(|r| set(&r.on).is_excluded(path))
            .collect();
        let targets = if rules.sync.is_empty() {
            match map.targets(path) {
                Ok(t) => t,
                // A `run` step stands for the RUN that reads the file: it is synced and the
                // step runs, instead of a build.
                Err(why) if !run.is_empty() && why.rerunnable => map.plain_targets(path),
                Err(why) => {
                    return Decision::Rebuild {
                        file: path.clone(),
                        why: why.text,
                    };
                }
            }
        } else {
            explicit_targets(&rules.sync, path)
        };
        if targets.is_empty() {
            return Decision::Rebuild {
                file: path.clone(),
                why: "no COPY of the running stage puts it into the image (it is outside the sync map)".into(),
            };
        }
        for t in targets {
            if *exists {
                copies.insert(Copy {
                    local: path.clone(),
                    remote: t.0,
                    chown: t.1,
                });
            } else {
                deletes.insert(t.0);
            }
        }
        for r in run {
            if !runs.contains(&r.cmd) {
                runs.push(r.cmd.clone());
            }
        }
    }
    Decision::Sync {
        copies: copies.into_iter().collect(),
        deletes: deletes.into_iter().collect(),
        runs,
        workdir: map.workdir.clone(),
    }
}

/// Targets of `path` under explicit `local -> remote` pairs: a file, or a directory and
/// what is under it.
fn explicit_targets(sync: &[(String, String)], path: &str) -> Vec<(String, Option<String>)> {
    let mut out = Vec::new();
    for (local, remote) in sync {
        let local = local.trim_end_matches('/');
        if local == "." || local.is_empty() {
            out.push((infer::join(remote, path), None));
        } else if path == local {
            out.push((remote.clone(), None));
        } else if let Some(rest) = path.strip_prefix(&format!("{local}/")) {
            out.push((infer::join(remote, rest), None));
        }
    }
    out
}

#[cfg(test)]
mod tests;
