//! What `up` prints about the engine's state: each resource's changes of status, the live
//! progress line with every hold reason, the bring-up steps, and the `--ci` summary. It only
//! observes snapshots; the workers print what they do themselves.

use std::collections::BTreeMap;
use std::time::Duration;

use tokio::sync::watch;

use crate::config::Config;
use crate::engine::driver::Snapshot;
use crate::engine::state::{DisplayStatus, State, Status, StepStatus};
use crate::out;

/// The `--ci` summary of the cluster resources, from the engine's final state: what the
/// cluster really holds, and why the rest is not there.
pub fn print_summary(cfg: &Config, end: &State) {
    if cfg.resources.is_empty() {
        return;
    }
    let mut notes = Vec::new();
    let rows: Vec<[String; 5]> = cfg
        .resources
        .iter()
        .map(|r| {
            let s = end.resources.get(&r.name);
            // The engine's state is the one source: the page and `status` read the same.
            let pods = s
                .and_then(|s| s.pods)
                .map_or("-".to_owned(), |p| format!("{}/{}", p.ready, p.total));
            let (status, time) = match s.map(|s| s.status) {
                Some(Status::Ready) => (
                    "ready",
                    s.and_then(|s| s.ready_took)
                        .map_or("-".to_owned(), |t| format!("{:.1}s", t.as_secs_f64())),
                ),
                Some(Status::Error) => {
                    if let Some(e) = s.and_then(|s| s.last_error.clone()) {
                        notes.push((r.name.clone(), e));
                    }
                    ("failed", "-".to_owned())
                }
                Some(Status::Pending) if s.is_some_and(|s| s.deploys == 0) => {
                    let why = s
                        .and_then(|s| s.held.as_ref())
                        .map(ToString::to_string)
                        .unwrap_or_default();
                    notes.push((r.name.clone(), format!("not deployed, because {why}")));
                    ("skipped", "-".to_owned())
                }
                _ => ("-", "-".to_owned()),
            };
            [
                r.name.clone(),
                r.workload.to_string(),
                status.to_owned(),
                pods,
                time,
            ]
        })
        .collect();
    for [name, workload, status, pods, time] in &rows {
        let why = notes
            .iter()
            .find(|(n, _)| n == name)
            .map_or("", |(_, w)| w.as_str());
        out::record(&[
            ("event", "summary"),
            ("resource", name),
            ("workload", workload),
            ("status", status),
            ("pods", pods),
            ("time", time),
            ("error", why),
        ]);
    }
    let width = rows.iter().map(|r| r[0].len()).max().unwrap_or(0).max(8);
    let wl_width = rows.iter().map(|r| r[1].len()).max().unwrap_or(0).max(8);
    out::plain("");
    out::plain(&format!(
        "{:width$}  {:wl_width$}  {:8}  {:5}  time",
        "resource", "workload", "status", "pods"
    ));
    for [name, workload, status, pods, time] in &rows {
        out::plain(&format!(
            "{name:width$}  {workload:wl_width$}  {status:8}  {pods:5}  {time}"
        ));
    }
    for (name, why) in &notes {
        out::plain(&format!("\n{name}: {why}"));
    }
}

pub fn summary_of_locals(cfg: &Config, s: &State) {
    for l in &cfg.locals {
        if let Some(r) = s.resources.get(&l.name) {
            let status = match r.display {
                DisplayStatus::Ready => "ready",
                DisplayStatus::Error => "failed",
                DisplayStatus::Idle => "manual (not triggered)",
                DisplayStatus::Blocked => "blocked",
                _ => "not run",
            };
            out::plain(&format!("{:20}  local     {status}", l.name));
            if let Some(e) = &r.last_error {
                out::plain(&format!("\n{}: {e}", l.name));
            }
        }
    }
}

/// What the view last printed of each resource: its status and whether it was blocked.
pub type Shown = BTreeMap<String, (Status, bool)>;

/// What the view last printed, taken from the state before anything ran (taken when the
/// engine starts, not when the view's task first runs: a fast change would already be in
/// the snapshot and never printed).
pub fn shown_of(state: &State) -> Shown {
    state
        .resources
        .iter()
        .map(|(n, r)| (n.clone(), (r.status, r.blocked)))
        .collect()
}

/// Prints each resource's changes of status, the bring-up steps and reload errors, and keeps
/// the live progress line (TTY only).
pub async fn view(mut snaps: watch::Receiver<Snapshot>, mut last: Shown) {
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    let started = tokio::time::Instant::now();
    let mut steps = (StepStatus::Pending, StepStatus::Pending);
    let mut config_error: Option<String> = None;
    let mut show = |snap: &Snapshot| {
        let s = &snap.state;
        if s.doctor.status != steps.0 {
            steps.0 = s.doctor.status;
            if s.doctor.status == StepStatus::Done {
                out::say("doctor", "the machine can run the project");
            }
        }
        if s.cluster.status != steps.1 {
            steps.1 = s.cluster.status;
        }
        if s.config_error != config_error {
            config_error.clone_from(&s.config_error);
            if let Some(e) = &config_error {
                out::say(
                    "error",
                    format!(
                        "{e}\n  everything keeps running as it was; a fixed file is read again"
                    ),
                );
            }
        }
        for (name, r) in &s.resources {
            if last.get(name) == Some(&(r.status, r.blocked)) {
                continue;
            }
            last.insert(name.clone(), (r.status, r.blocked));
            let local = s
                .graph()
                .resources
                .iter()
                .any(|n| &n.name == name && n.local);
            if r.blocked {
                let why = r
                    .held
                    .as_ref()
                    .map_or_else(|| "a dependency failed".to_owned(), ToString::to_string);
                out::say_for("skipped", name, &format!("not started: {why}"));
                continue;
            }
            match r.status {
                Status::Building if local => out::say_for("running", name, ""),
                Status::Deploying => out::say_for("deploying", name, ""),
                Status::Ready if local => out::say_for("ready", name, ""),
                // Cluster resources' failures are said where they happen (build, deploy, wait).
                Status::Error if local => {
                    out::say_for("error", name, r.last_error.as_deref().unwrap_or("failed"))
                }
                _ => {}
            }
        }
    };
    loop {
        tokio::select! {
            changed = snaps.changed() => {
                let snap = snaps.borrow_and_update().clone();
                show(&snap);
                if changed.is_err() {
                    break;
                }
            }
            _ = tick.tick() => {
                let line = progress_line(&snaps.borrow().state);
                if line.is_empty() {
                    out::set_progress("");
                } else {
                    let secs = started.elapsed().as_secs();
                    out::set_progress(&format!("… {line} ({secs}s)"));
                }
            }
        }
    }
}

/// What runs and why the rest waits, in one line: resources held for the same reason are
/// named together (`waiting for the cluster: api, web`).
pub fn progress_line(s: &State) -> String {
    let mut parts: Vec<String> = Vec::new();
    if s.doctor.status == StepStatus::Running {
        parts.push("doctor's checks".to_owned());
    }
    if s.cluster.status == StepStatus::Running {
        parts.push(match &s.cluster.message {
            Some(m) => format!("cluster: {m}"),
            None => "cluster".to_owned(),
        });
    }
    parts.extend(
        s.images
            .iter()
            .filter(|(_, i)| i.phase.build().is_some())
            .map(|(n, _)| format!("building {n}")),
    );
    let mut held: BTreeMap<String, Vec<&str>> = BTreeMap::new();
    for (n, r) in &s.resources {
        if r.blocked {
            continue;
        }
        match (&r.held, r.status) {
            (Some(h), _) => held.entry(h.to_string()).or_default().push(n),
            (None, Status::Deploying) => parts.push(format!("deploying {n}")),
            (None, Status::Waiting) => parts.push(format!("waiting for {n}")),
            (None, Status::Building) if r.running.is_some() => parts.push(format!("running {n}")),
            _ => {}
        }
    }
    for (why, names) in held {
        parts.push(format!("{why}: {}", names.join(", ")));
    }
    parts.join(" · ")
}
