//! An image's state: its last good build, the build or live update in flight, and what live
//! updates owe its containers.

use std::time::Duration;

use serde::Serialize;

use super::json::as_ms;
use super::live::ContainerId;
use super::resource::Cause;

#[derive(Debug, Clone, Default, Serialize)]
pub struct ImageState {
    /// What it is doing: nothing, waiting to be built, building, or live-updating (the API
    /// shows `building` and `syncing` as generations, and `queued`).
    #[serde(flatten)]
    pub phase: Phase,
    /// When the last build started (kept after it ends).
    #[serde(rename = "build_started_ms", serialize_with = "as_ms")]
    pub build_started: Option<Duration>,
    /// The last good reference (`name:tag`).
    pub reference: Option<String>,
    pub last_error: Option<String>,
    #[serde(rename = "last_build_ms", serialize_with = "as_ms")]
    pub last_build_took: Option<Duration>,
    /// What the last live update did (`synced 3 files to 2 containers in 140 ms`).
    pub last_sync: Option<String>,
    /// Why live update is off until the next build (a new pod could not catch up, say).
    pub live_off: Option<String>,
    /// Why live update is off for good (the image has no `tar`).
    pub live_never: Option<String>,
    /// Why the running image was built (its deploys say the same).
    #[serde(skip)]
    pub(super) built_cause: Option<Cause>,
    /// What live updates owe the image's containers since it was built.
    #[serde(skip)]
    pub ledger: super::live::Ledger,
}

/// What an image is doing. One at a time: a build never runs beside a live update of the
/// same image (a build wanted during a live update waits for its end).
#[derive(Debug, Clone, Default)]
pub enum Phase {
    #[default]
    Idle,
    /// A build is wanted but held (by the cluster, or a local step it waits for), and why.
    Queued(Cause),
    /// A build in flight; `queued`, a newer one wanted meanwhile but held (it replaces this
    /// one once nothing holds it).
    Building { op: BuildOp, queued: Option<Cause> },
    /// A live update in flight, and what comes once it ends.
    Syncing { op: SyncOp, next: AfterSync },
}

/// What follows the live update in flight.
#[derive(Debug, Clone, Default)]
pub enum AfterSync {
    #[default]
    Nothing,
    /// Files that changed meanwhile, and why: synced after it, in one go.
    Sync(SyncPlan, Cause),
    /// A change that needs a build: built after it, with everything synced meanwhile.
    Build(Cause),
}

impl AfterSync {
    /// Adds a change live update can carry.
    pub fn sync(self, plan: SyncPlan, cause: Cause) -> AfterSync {
        match self {
            AfterSync::Nothing => AfterSync::Sync(plan, cause),
            AfterSync::Sync(earlier, why) => AfterSync::Sync(earlier.then(plan), why.then(cause)),
            AfterSync::Build(why) => AfterSync::Build(why.then(cause)),
        }
    }

    /// Adds a change that needs a build: the build carries what was to be synced too.
    pub fn build(self, cause: Cause) -> AfterSync {
        AfterSync::Build(Cause::merge(self.cause(), cause))
    }

    /// Why it was wanted, if anything was.
    pub fn cause(self) -> Option<Cause> {
        match self {
            AfterSync::Nothing => None,
            AfterSync::Sync(_, c) | AfterSync::Build(c) => Some(c),
        }
    }
}

impl Phase {
    /// The build in flight.
    pub fn build(&self) -> Option<&BuildOp> {
        match self {
            Phase::Building { op, .. } => Some(op),
            _ => None,
        }
    }

    /// The live update in flight.
    pub fn sync(&self) -> Option<&SyncOp> {
        match self {
            Phase::Syncing { op, .. } => Some(op),
            _ => None,
        }
    }

    /// A build is wanted and not running yet (held, or after the live update in flight).
    pub fn build_wanted(&self) -> bool {
        matches!(
            self,
            Phase::Queued(_)
                | Phase::Building {
                    queued: Some(_),
                    ..
                }
                | Phase::Syncing {
                    next: AfterSync::Build(_),
                    ..
                }
        )
    }

    /// A build runs or will: what deploys of the image wait for.
    pub fn build_pending(&self) -> bool {
        self.build().is_some() || self.build_wanted()
    }

    /// A build is wanted that may start once nothing holds it (not one that waits for a
    /// live update's end).
    pub fn startable(&self) -> bool {
        matches!(
            self,
            Phase::Queued(_)
                | Phase::Building {
                    queued: Some(_),
                    ..
                }
        )
    }
}

impl ImageState {
    /// Ends the build in flight if it is `generation` (else it was cancelled: a newer one
    /// runs or ran); a build wanted meanwhile stays queued.
    pub(super) fn end_build(&mut self, generation: Option<u64>) -> Option<BuildOp> {
        match std::mem::take(&mut self.phase) {
            Phase::Building { op, queued } if generation.is_none_or(|g| g == op.generation) => {
                self.phase = queued.map_or(Phase::Idle, Phase::Queued);
                Some(op)
            }
            other => {
                self.phase = other;
                None
            }
        }
    }

    /// Ends the live update in flight if it is `generation`: it, and what comes after it.
    pub(super) fn end_sync(&mut self, generation: u64) -> Option<(SyncOp, AfterSync)> {
        match std::mem::take(&mut self.phase) {
            Phase::Syncing { op, next } if op.generation == generation => Some((op, next)),
            other => {
                self.phase = other;
                None
            }
        }
    }
}

impl Serialize for Phase {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(Some(3))?;
        m.serialize_entry("building", &self.build().map(|o| o.generation))?;
        m.serialize_entry("queued", &self.build_wanted())?;
        m.serialize_entry("syncing", &self.sync().map(|o| o.generation))?;
        m.end()
    }
}

/// A build in flight: its generation, when it started and why it runs.
#[derive(Debug, Clone)]
pub struct BuildOp {
    pub generation: u64,
    pub started: Duration,
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
