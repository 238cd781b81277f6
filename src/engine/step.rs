//! A bring-up step (the doctor's checks, the cluster): its status, timing and progress notes.

use std::collections::VecDeque;
use std::time::Duration;

use serde::Serialize;

use super::json::as_ms;

/// A bring-up step that gates the resources: the doctor's checks, the cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StepStatus {
    Pending,
    Running,
    Done,
    Failed,
    /// Not part of this project (a project without a cluster has no cluster step).
    Skipped,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Step {
    pub status: StepStatus,
    /// What it does now, or why it failed.
    pub message: Option<String>,
    #[serde(rename = "started_ms", serialize_with = "as_ms")]
    pub started: Option<Duration>,
    #[serde(rename = "took_ms", serialize_with = "as_ms")]
    pub took: Option<Duration>,
    /// What it did, step by step, as it went: `(milliseconds since the engine started,
    /// message)`, at most [`STEP_NOTES`] (the newest).
    pub notes: VecDeque<(u64, String)>,
}

/// How many progress messages a bring-up step keeps.
pub const STEP_NOTES: usize = 30;

impl Step {
    pub(super) fn new(wanted: bool) -> Step {
        Step {
            status: if wanted {
                StepStatus::Pending
            } else {
                StepStatus::Skipped
            },
            message: None,
            started: None,
            took: None,
            notes: VecDeque::new(),
        }
    }

    /// Done, or not part of the project.
    pub fn passed(&self) -> bool {
        matches!(self.status, StepStatus::Done | StepStatus::Skipped)
    }

    pub(super) fn start(&mut self, now: Duration) {
        self.status = StepStatus::Running;
        self.started = Some(now);
    }

    pub(super) fn end(&mut self, now: Duration, result: Result<(), String>) {
        self.took = self.started.map(|s| now.saturating_sub(s));
        match result {
            Ok(()) => {
                self.status = StepStatus::Done;
                self.message = None;
            }
            Err(e) => {
                self.status = StepStatus::Failed;
                self.message = Some(e);
            }
        }
    }
}
