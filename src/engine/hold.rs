//! Hold reasons: why a resource waits, as a value (like Tilt's hold reasons). The scheduler
//! decides with them, the views and the page print them, and `on` names the resource a hold
//! waits for, so the page can link to it.

use std::fmt;

use super::state::BringUpStage;

/// Why a resource waits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hold {
    /// The doctor's checks run.
    Doctor,
    /// The doctor's checks failed.
    DoctorFailed,
    /// The cluster comes up.
    Cluster,
    /// A part of the bring-up failed.
    BringUpFailed(BringUpStage),
    /// A `[[local]]` it waits for runs.
    Running(String),
    /// A resource it waits for is not ready yet.
    NotReady(String),
    /// A resource it waits for failed.
    Failed(String),
    /// A resource it waits for is held by a failure: `root` is that failure (never another
    /// `CannotStart`, so a long chain says the cause once and in constant space).
    CannotStart { on: String, root: Box<Hold> },
    /// Its own image waits to be built.
    BuildQueued { image: String, running: usize },
    /// Its Helm release deploys its workloads together and waits for one of their builds.
    ReleaseBuild { image: String, release: String },
}

impl Hold {
    /// Held by a failure: it stays as it is until that is fixed.
    pub fn is_failure(&self) -> bool {
        matches!(
            self,
            Hold::DoctorFailed
                | Hold::BringUpFailed(_)
                | Hold::Failed(_)
                | Hold::CannotStart { .. }
        )
    }

    /// The resource this waits for, if it waits for one.
    pub fn on(&self) -> Option<&str> {
        match self {
            Hold::Running(n) | Hold::NotReady(n) | Hold::Failed(n) => Some(n),
            Hold::CannotStart { on, .. } => Some(on),
            _ => None,
        }
    }

    /// What a resource waiting for `on` is held by, when `on` is held by `self` (a failure).
    pub fn passed_on(&self, on: &str) -> Hold {
        let root = match self {
            Hold::CannotStart { root, .. } => root.clone(),
            other => Box::new(other.clone()),
        };
        Hold::CannotStart {
            on: on.to_owned(),
            root,
        }
    }
}

impl fmt::Display for Hold {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Hold::Doctor => f.write_str("waiting for the doctor's checks"),
            Hold::DoctorFailed => f.write_str("the doctor's checks failed"),
            Hold::Cluster => f.write_str("waiting for the cluster"),
            Hold::BringUpFailed(stage) => f.write_str(stage.failure()),
            Hold::Running(d) => write!(f, "waiting for `{d}` to finish"),
            Hold::NotReady(d) => write!(f, "waiting for `{d}` to be ready"),
            Hold::Failed(d) => write!(f, "`{d}` failed"),
            Hold::CannotStart { on, root } => write!(f, "`{on}` cannot start: {root}"),
            Hold::BuildQueued { image, running } => write!(
                f,
                "build of `{image}` queued: {running} build{} running",
                if *running == 1 { "" } else { "s" }
            ),
            Hold::ReleaseBuild { image, release } => write!(
                f,
                "deploy queued: waiting for the build of `{image}` (helm release `{release}` deploys its workloads together)"
            ),
        }
    }
}

impl serde::Serialize for Hold {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_passed_down_a_chain_names_its_root_once() {
        let l0 = Hold::Failed("l0".into());
        let l2 = l0.passed_on("l1").passed_on("l2");
        assert_eq!(l2.to_string(), "`l2` cannot start: `l0` failed");
        assert!(l2.is_failure());
        assert_eq!(l2.on(), Some("l2"));
        assert!(!Hold::NotReady("a".into()).is_failure());
    }
}
