//! Readiness waits: one per resource, its health said once per change, its end reported to
//! the engine.

use std::time::Duration;

use tokio::sync::mpsc;

use super::Outcomes;
use crate::cluster::kube::Target;
use crate::config;
use crate::deploy::rollout::{self, Health, PodCounts};
use crate::engine::state::Event;
use crate::host::lock;
use crate::out;

/// Waits until `r` is ready (or fails), saying problems as they come.
pub async fn wait(
    r: config::Resource,
    target: Target,
    ci: bool,
    outcomes: Outcomes,
    tx: mpsc::UnboundedSender<Event>,
) {
    let started = std::time::Instant::now();
    let mut health = HealthLines::new(&r.name);
    let mut pods = PodCounts::default();
    let n = r.name.clone();
    let res = rollout::wait_ready(
        &target.client,
        &r.namespace,
        &r.workload,
        r.readiness_timeout,
        // --ci fails at once on what will not heal by itself.
        ci,
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
    lock(&outcomes).insert(r.name.clone(), (pods, res.is_ok().then_some(took)));
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

/// Prints a resource's health while it is waited for, once per change: `waiting` and
/// `problem` lines.
struct HealthLines {
    name: String,
    shown: Option<Health>,
}

impl HealthLines {
    fn new(name: &str) -> HealthLines {
        HealthLines {
            name: name.to_owned(),
            shown: None,
        }
    }

    /// Prints `health` if it differs from the last shown; returns the problem when that is
    /// what is new.
    fn show(&mut self, health: &Health) -> Option<String> {
        if self.shown.as_ref() == Some(health) {
            return None;
        }
        self.shown = Some(health.clone());
        match health {
            Health::Waiting(m) => out::say_for("waiting", &self.name, m),
            Health::Problem(p) => {
                let p = p.to_string();
                out::say_for("problem", &self.name, &p);
                return Some(p);
            }
            Health::Ready | Health::Failed(_) => {}
        }
        None
    }
}
