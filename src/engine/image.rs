//! An image's state: its last good build, the build or live update in flight, and what live
//! updates owe its containers.

use std::time::Duration;

use serde::Serialize;

use super::json::{as_ms, build_generation, generation_of, is_some};
use super::live::ContainerId;
use super::resource::Cause;

#[derive(Debug, Clone, Default, Serialize)]
pub struct ImageState {
    /// The build in flight (the API shows its generation).
    #[serde(serialize_with = "build_generation")]
    pub building: Option<BuildOp>,
    /// When the last build started (kept after it ends).
    #[serde(rename = "build_started_ms", serialize_with = "as_ms")]
    pub build_started: Option<Duration>,
    /// The last good reference (`name:tag`).
    pub reference: Option<String>,
    pub last_error: Option<String>,
    #[serde(rename = "last_build_ms", serialize_with = "as_ms")]
    pub last_build_took: Option<Duration>,
    /// A build wanted but held (by the cluster, or a local step it waits for), and why it
    /// is wanted (the API shows whether there is one).
    #[serde(serialize_with = "is_some")]
    pub queued: Option<Cause>,
    /// The live update in flight (the API shows its generation).
    #[serde(serialize_with = "generation_of")]
    pub syncing: Option<SyncOp>,
    /// What the last live update did (`synced 3 files to 2 containers in 140 ms`).
    pub last_sync: Option<String>,
    /// Why live update is off until the next build (a new pod could not catch up, say).
    pub live_off: Option<String>,
    /// Why live update is off for good (the image has no `tar`).
    pub live_never: Option<String>,
    /// Files changed while a live update ran, and why: synced after it.
    #[serde(skip)]
    pub next_sync: Option<(SyncPlan, Cause)>,
    /// Why the running image was built (its deploys say the same).
    #[serde(skip)]
    pub(super) built_cause: Option<Cause>,
    /// What live updates owe the image's containers since it was built.
    #[serde(skip)]
    pub ledger: super::live::Ledger,
}

/// A build in flight: its generation and why it runs.
#[derive(Debug, Clone)]
pub struct BuildOp {
    pub generation: u64,
    pub cause: Cause,
}

/// A live update in flight: its generation, what it carries (the ledger takes it when it
/// ends), when it started and why.
#[derive(Debug, Clone)]
pub struct SyncOp {
    pub generation: u64,
    pub plan: SyncPlan,
    pub started: Duration,
    pub cause: Cause,
}

/// How a live update ended (`Event::SyncDone`).
pub(super) struct SyncEnd {
    pub(super) result: Result<String, String>,
    pub(super) lasting: bool,
    pub(super) reached: Vec<ContainerId>,
}

/// A live update of one image: files put into its running containers, files removed there,
/// then commands run there. Worked out outside the engine (from the Dockerfile's sync map).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncPlan {
    /// `(path relative to the context, path in the container, chown)`.
    pub copies: Vec<(String, String, Option<String>)>,
    /// Paths in the container.
    pub deletes: Vec<String>,
    pub runs: Vec<String>,
    /// Where the commands run.
    pub workdir: String,
}

impl SyncPlan {
    /// This plan, then `later`: a file's last copy or deletion counts.
    pub fn then(mut self, later: SyncPlan) -> SyncPlan {
        for c in later.copies {
            self.deletes.retain(|d| d != &c.1);
            self.copies.retain(|o| o.1 != c.1);
            self.copies.push(c);
        }
        for d in later.deletes {
            self.copies.retain(|o| o.1 != d);
            if !self.deletes.contains(&d) {
                self.deletes.push(d);
            }
        }
        for r in later.runs {
            if !self.runs.contains(&r) {
                self.runs.push(r);
            }
        }
        self.workdir = later.workdir;
        self
    }
}
