//! Readiness waits: one per resource, its health said once per change, its end reported to
//! the engine.

use std::collections::BTreeSet;
use std::time::Duration;

use tokio::sync::mpsc;

use crate::config;
use crate::deploy::pods::Pods;
use crate::deploy::rollout::{self, Health, PodCounts};
use crate::engine::state::Event;
use crate::out;

/// Waits until `r` is ready (or fails), saying problems as they come. `built`: the
/// repositories of the images devenv builds.
pub async fn wait(
    r: config::Resource,
    built: Vec<String>,
    observed: Pods,
    ci: bool,
    tx: mpsc::UnboundedSender<Event>,
) {
    let started = std::time::Instant::now();
    let mut health = HealthLines::new(&r.name);
    let mut pods = PodCounts::default();
    let n = r.name.clone();
    let res = rollout::wait_ready(
        &observed,
        r.readiness_timeout,
        // --ci fails at once on what will not heal by itself.
        ci,
        &built,
        &mut |u| {
            pods = u.pods;
            if let Some(message) = health.show(u.health) {
                let _ = tx.send(Event::Problem {
                    resource: n.clone(),
                    message,
                });
            }
        },
    )
    .await;
    let took = started.elapsed();
    // The count at the end of the wait: the one the `--ci` summary and the page read.
    let _ = tx.send(Event::Pods {
        resource: r.name.clone(),
        pods: super::pods_of(pods),
        names: None,
    });
    match res {
        Ok(()) => {
            say_ready(&r, pods, took);
            let _ = tx.send(Event::Ready { resource: r.name });
        }
        Err(e) => {
            out::say("failed", format!("{}: {e}", r.name));
            let _ = tx.send(Event::Unhealthy {
                resource: r.name,
                message: e.to_string(),
            });
        }
    }
}

/// `ready      name (workload, x/y pods, Ns)`.
fn say_ready(r: &config::Resource, pods: PodCounts, took: Duration) {
    out::say(
        "ready",
        format!(
            "{} ({}, {}/{} pods, {:.1}s)",
            r.name,
            r.workload,
            pods.ready,
            pods.total,
            took.as_secs_f64()
        ),
    );
}

/// Prints a resource's health while it is waited for: a `waiting` line per change, and each
/// problem once per pod and reason (a crash loop's next back-off, with its restart count and
/// its latest lines, updates the resource's status instead of printing a new block).
struct HealthLines {
    name: String,
    shown: Option<Health>,
    /// `(pod, reason)` of the problems printed.
    told: BTreeSet<(Option<String>, String)>,
}

impl HealthLines {
    fn new(name: &str) -> HealthLines {
        HealthLines {
            name: name.to_owned(),
            shown: None,
            told: BTreeSet::new(),
        }
    }

    /// Prints `health` if it differs from the last shown (problems once per pod and reason);
    /// returns what the resource's status should now say as its problem when that changed
    /// (printed or not; `Some(None)`: it ended).
    fn show(&mut self, health: &Health) -> Option<Option<String>> {
        if self.shown.as_ref() == Some(health) {
            return None;
        }
        let had_problem = matches!(self.shown, Some(Health::Problem(_)));
        self.shown = Some(health.clone());
        match health {
            Health::Waiting(m) => {
                out::say_for("waiting", &self.name, m);
                had_problem.then_some(None)
            }
            Health::Problem(p) => {
                let text = p.to_string();
                if self
                    .told
                    .insert((p.pod.clone(), family(&p.reason).to_owned()))
                {
                    out::say_for("problem", &self.name, &text);
                }
                Some(Some(text))
            }
            Health::Ready | Health::Failed(_) => None,
        }
    }
}

/// Reasons that are phases of one problem: an image pull that fails and its back-off.
fn family(reason: &str) -> &str {
    match reason {
        "ImagePullBackOff" | "ErrImagePull" => "ErrImagePull",
        r => r,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deploy::rollout::Problem;

    fn problem(pod: &str, reason: &str, message: &str) -> Health {
        Health::Problem(Problem {
            reason: reason.into(),
            pod: Some(pod.into()),
            container: Some("app".into()),
            message: message.into(),
            hint: None,
            logs: Vec::new(),
            logs_unreadable: None,
        })
    }

    /// Issue 24 point 5: a crash loop printed a new problem block on every back-off. It is
    /// told once per pod and reason; its updates reach the status; its end clears it.
    #[test]
    fn a_problem_is_told_once_per_pod_and_reason_updated_and_cleared() {
        let mut h = HealthLines::new("web");
        let first = problem("web-1", "CrashLoopBackOff", "(1 restarts)");
        assert_eq!(h.show(&first), Some(Some(first_text(&first))));
        assert_eq!(h.told.len(), 1);
        assert_eq!(h.show(&first), None, "the same health says nothing");
        let next = problem("web-1", "CrashLoopBackOff", "(2 restarts)");
        assert_eq!(h.show(&next), Some(Some(first_text(&next))));
        assert_eq!(h.told.len(), 1, "not told again");
        assert_eq!(
            h.show(&Health::Waiting("0 of 1 available".into())),
            Some(None)
        );
        let other_pod = problem("web-2", "CrashLoopBackOff", "(1 restarts)");
        h.show(&other_pod);
        assert_eq!(h.told.len(), 2);
        // A failed pull and its back-off are one problem.
        h.show(&problem("web-2", "ErrImagePull", "not found"));
        h.show(&problem("web-2", "ImagePullBackOff", "Back-off pulling"));
        assert_eq!(h.told.len(), 3);
    }

    fn first_text(h: &Health) -> String {
        match h {
            Health::Problem(p) => p.to_string(),
            _ => String::new(),
        }
    }
}
