//! A resource's state: its status, what it runs, its pods, its history, and why things ran
//! (`Cause`).

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use serde::Serialize;

use super::hold::Hold;
use super::json::{as_ms, ms};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Pending,
    Building,
    /// A live update puts changed files into its running containers.
    Syncing,
    Deploying,
    Waiting,
    Ready,
    Error,
}

/// What every view shows of a resource (the page, `devenv status`, the terminal): its
/// status, except that a manual resource never triggered is `idle`, one held by a failure is
/// `blocked`, and a local resource whose command runs is `running`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DisplayStatus {
    #[default]
    Pending,
    Idle,
    Blocked,
    Building,
    Running,
    Syncing,
    Deploying,
    Waiting,
    Ready,
    Error,
}

#[derive(Debug, Clone, Serialize)]
pub struct ResourceState {
    pub status: Status,
    /// What the views show (computed with its hold, from the status, `idle` and `blocked`).
    pub display: DisplayStatus,
    pub last_error: Option<String>,
    /// The image references its running deployment uses.
    pub deployed: BTreeMap<String, String>,
    /// Manual resources: sources changed since the last build.
    pub changed_since_build: bool,
    #[serde(rename = "last_deploy_at_ms", serialize_with = "as_ms")]
    pub last_deploy_at: Option<Duration>,
    /// Deploys started so far.
    pub deploys: u32,
    /// Local resources: the run in flight, by generation.
    pub running: Option<u64>,
    /// Local resources: runs started so far.
    pub runs: u32,
    /// Why it waits, while it waits (like Tilt's hold reasons): "waiting for the cluster",
    /// "waiting for `backend` to be ready", "`gen` failed". Shown as text.
    pub held: Option<Hold>,
    /// The resource it waits for, if it waits for one (the page links to it).
    pub held_by: Option<String>,
    /// Manual and never triggered: it waits for the user, not for anything else (the one
    /// definition the terminal, the summary and the page read).
    pub idle: bool,
    /// Held by a failure (of a dependency, or of what that waits for): it stays as it is
    /// until that is fixed.
    pub blocked: bool,
    /// It was ready at least once.
    #[serde(skip)]
    pub ever_ready: bool,
    /// Its workload's pods of the current revision, as last counted (a watch while `up`
    /// runs, the readiness wait at its end): the page, `status` and the `--ci` summary all
    /// read this one count.
    pub pods: Option<Pods>,
    /// The names of the pods counted (at most ten).
    pub pod_names: Vec<String>,
    /// The last failure following its logs or forwarding its ports, with a hint.
    pub warning: Option<String>,
    /// How long its last readiness wait took, from the wait's start to ready.
    #[serde(rename = "ready_took_ms", serialize_with = "as_ms")]
    pub ready_took: Option<Duration>,
    /// When the readiness wait in flight started.
    #[serde(skip)]
    pub(super) wait_started: Option<Duration>,
    /// Where it is reached from the host, once followed: its port-forwards, its NodePort
    /// and LoadBalancer addresses, and the configured links.
    pub urls: Vec<String>,
    /// When it last took a change: a deploy, a live update or a local run that succeeded.
    #[serde(rename = "updated_at_ms", serialize_with = "as_ms")]
    pub updated_at: Option<Duration>,
    /// Its last [`HISTORY`] builds, live updates, deploys and runs, oldest first.
    pub history: VecDeque<HistoryEntry>,
    /// Why it is deployed again next (a reload, a trigger), when not for a new image.
    #[serde(skip)]
    pub(super) deploy_cause: Option<Cause>,
    /// Local resources: when the run in flight started, and why.
    #[serde(skip)]
    pub(super) run_started: Option<(Duration, Cause)>,
}

impl ResourceState {
    /// What the views show, from the status, `idle` and `blocked` (`local`: a `[[local]]`).
    pub(super) fn shown(&self, local: bool) -> DisplayStatus {
        if self.idle {
            return DisplayStatus::Idle;
        }
        match self.status {
            Status::Pending if self.blocked => DisplayStatus::Blocked,
            Status::Pending => DisplayStatus::Pending,
            Status::Building if local && self.running.is_some() => DisplayStatus::Running,
            Status::Building => DisplayStatus::Building,
            Status::Syncing => DisplayStatus::Syncing,
            Status::Deploying => DisplayStatus::Deploying,
            Status::Waiting => DisplayStatus::Waiting,
            Status::Ready => DisplayStatus::Ready,
            Status::Error => DisplayStatus::Error,
        }
    }

    /// Adds an entry to the history, dropping the oldest past [`HISTORY`].
    pub(super) fn record(&mut self, entry: HistoryEntry) {
        if self.history.len() == HISTORY {
            self.history.pop_front();
        }
        self.history.push_back(entry);
    }

    pub(super) fn new() -> ResourceState {
        ResourceState {
            status: Status::Pending,
            display: DisplayStatus::Pending,
            last_error: None,
            deployed: BTreeMap::new(),
            changed_since_build: false,
            last_deploy_at: None,
            deploys: 0,
            running: None,
            runs: 0,
            held: None,
            held_by: None,
            idle: false,
            blocked: false,
            ever_ready: false,
            pods: None,
            pod_names: Vec::new(),
            warning: None,
            ready_took: None,
            wait_started: None,
            urls: Vec::new(),
            updated_at: None,
            history: VecDeque::new(),
            deploy_cause: None,
            run_started: None,
        }
    }
}

/// How many entries each resource's history keeps.
pub const HISTORY: usize = 20;

/// A workload's pods: ready, all, and their containers' restarts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Pods {
    pub ready: usize,
    pub total: usize,
    pub restarts: u32,
}

/// How many session notes the state keeps.
pub const NOTES: usize = 20;

/// Something the session did that is no resource's (`reloaded`, `pruned`, `kept`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Note {
    #[serde(rename = "at_ms", serialize_with = "ms")]
    pub at: Duration,
    pub kind: String,
    pub text: String,
}

/// One build, live update, deploy or run, as the status page's history shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HistoryEntry {
    /// `build`, `sync`, `deploy` or `run`.
    pub kind: &'static str,
    /// The image built or synced.
    pub image: Option<String>,
    /// What started it: `first start`, `app/main.py changed`, `manual trigger`, `config
    /// reload`, or why a live update became a build.
    pub trigger: String,
    #[serde(rename = "started_ms", serialize_with = "ms")]
    pub started: Duration,
    #[serde(rename = "took_ms", serialize_with = "ms")]
    pub took: Duration,
    /// The failure's first lines; none when it succeeded.
    pub error: Option<String>,
}

impl HistoryEntry {
    /// What ended at `now`, started at `started` for `cause`, with its result.
    pub(super) fn ended<T>(
        kind: &'static str,
        image: Option<&str>,
        cause: &Cause,
        started: Duration,
        now: Duration,
        result: &Result<T, String>,
    ) -> HistoryEntry {
        HistoryEntry {
            kind,
            image: image.map(str::to_owned),
            trigger: cause.to_string(),
            started,
            took: now.saturating_sub(started),
            error: result.as_ref().err().map(|e| first_lines(e)),
        }
    }
}

/// Why something runs: what the history says started it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cause {
    Start,
    /// Files changed: a few of them, and how many in all.
    Files(Vec<String>, usize),
    Manual,
    Reload,
    /// Anything else, said as is (`live update failed`).
    Other(String),
}

/// Changed files a cause names, at most.
pub(super) const CAUSE_FILES: usize = 5;

impl Cause {
    /// `self`, then `later`: changed files add up, anything else is replaced.
    pub(super) fn then(self, later: Cause) -> Cause {
        match (self, later) {
            (Cause::Files(mut a, n), Cause::Files(b, m)) => {
                let both = b.iter().filter(|f| a.contains(f)).count();
                for f in b {
                    if !a.contains(&f) && a.len() < CAUSE_FILES {
                        a.push(f);
                    }
                }
                let total = (n + m).saturating_sub(both).max(a.len());
                Cause::Files(a, total)
            }
            (_, later) => later,
        }
    }

    pub(super) fn merge(earlier: Option<Cause>, later: Cause) -> Cause {
        match earlier {
            Some(e) => e.then(later),
            None => later,
        }
    }
}

impl std::fmt::Display for Cause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Cause::Start => f.write_str("first start"),
            Cause::Files(shown, total) => {
                let more = total.saturating_sub(shown.len());
                if shown.is_empty() {
                    write!(
                        f,
                        "{total} file{} changed",
                        if *total == 1 { "" } else { "s" }
                    )
                } else if more == 0 {
                    write!(f, "{} changed", shown.join(", "))
                } else {
                    write!(f, "{} and {more} more changed", shown.join(", "))
                }
            }
            Cause::Manual => f.write_str("manual trigger"),
            Cause::Reload => f.write_str("config reload"),
            Cause::Other(s) => f.write_str(s),
        }
    }
}

/// The first lines of an error, for the history (the whole one is the resource's error).
fn first_lines(e: &str) -> String {
    const LINES: usize = 3;
    const WIDTH: usize = 240;
    let mut out: Vec<String> = Vec::new();
    for l in e.lines().filter(|l| !l.trim().is_empty()).take(LINES) {
        let mut l = l.to_owned();
        super::log::cut(&mut l, WIDTH);
        out.push(l);
    }
    out.join("\n")
}
