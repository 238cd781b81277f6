//! Live updates for the engine: a sync plan carried into every ready container that runs the
//! image, and the ledger of what was synced since the image was last built, so that a pod
//! that starts later (a restart, a scale-up, a replaced pod) gets the same files before it is
//! counted as caught up; when it cannot, the image is built with them instead.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;

use crate::config::Config;
use crate::deploy::pods::Pods;
use crate::deploy::sync::{self, Container, Push};
use crate::engine::driver::Logs;
use crate::engine::state::{Event, SyncPlan};
use crate::host::lock;
use crate::out;

/// What live updates put into an image's containers since it was last built.
#[derive(Debug, Default, Clone)]
pub struct Ledger {
    pub plan: Option<SyncPlan>,
    /// The containers that have it all: `(pod uid, container)`.
    pub done: BTreeSet<(String, String)>,
}

/// Image -> its ledger.
pub type Ledgers = Arc<Mutex<BTreeMap<String, Ledger>>>;

/// The transport's form of a plan: local paths made absolute.
fn push_of(cfg: &Config, image: &str, plan: &SyncPlan) -> Push {
    let context = cfg
        .images
        .iter()
        .find(|i| i.name == image)
        .map(|i| i.context.clone())
        .unwrap_or_else(|| cfg.root.clone());
    Push {
        context: context.clone(),
        copies: plan
            .copies
            .iter()
            .map(|(local, remote, chown)| (context.join(local), remote.clone(), chown.clone()))
            .collect(),
        deletes: plan.deletes.clone(),
        runs: plan.runs.clone(),
        workdir: plan.workdir.clone(),
    }
}

/// Carries `plan` into every ready container of `users` that runs `image`.
/// Why a live update failed, and whether that will pass.
pub struct Failure {
    pub why: String,
    /// The image cannot take live updates (it has no `tar`).
    pub lasting: bool,
}

impl From<String> for Failure {
    fn from(why: String) -> Failure {
        Failure {
            why,
            lasting: false,
        }
    }
}

#[allow(clippy::too_many_arguments)]
pub async fn sync(
    cfg: Arc<Config>,
    image: String,
    plan: SyncPlan,
    users: Vec<String>,
    pods: BTreeMap<String, Pods>,
    ledgers: Ledgers,
    sessions: sync::Sessions,
    logs: Logs,
) -> Result<String, Failure> {
    let Some(img) = cfg.images.iter().find(|i| i.name == image) else {
        return Err(format!("no image `{image}` in the config").into());
    };
    let repo = crate::image::repository(&cfg, img);
    let mut targets: Vec<(Pods, Vec<Container>)> = Vec::new();
    for u in &users {
        let Some(p) = pods.get(u).cloned() else {
            return Err(format!("`{u}` is not followed yet: its pods are not known").into());
        };
        let c = p.ready_containers(&repo);
        if !c.is_empty() {
            targets.push((p, c));
        }
    }
    if targets.is_empty() {
        return Err(format!("no ready container runs `{repo}`").into());
    }
    let push = push_of(&cfg, &image, &plan);
    let say = |line: &str| {
        for u in &users {
            logs.push(u, "sync", line);
        }
    };
    let mut report: Option<sync::Report> = None;
    for (p, containers) in &targets {
        let r = sync::push_all(&p.api, containers, &push, &sessions, &say)
            .await
            .map_err(|e| Failure {
                lasting: e.lasting(),
                why: e.to_string(),
            })?;
        report = Some(match report {
            None => r,
            Some(mut acc) => {
                acc.containers += r.containers;
                acc.took += r.took;
                acc
            }
        });
    }
    let report = report.map_or_else(String::new, |r| r.to_string());
    {
        let mut l = lock(&ledgers);
        let ledger = l.entry(image.clone()).or_default();
        ledger.plan = Some(match ledger.plan.take() {
            Some(earlier) => earlier.then(plan),
            None => plan,
        });
        for (_, cs) in &targets {
            ledger
                .done
                .extend(cs.iter().map(|c| (c.uid.clone(), c.container.clone())));
        }
    }
    out::say_for("synced", &image, &report);
    say(&report);
    Ok(report)
}

/// Keeps the containers of `resource` that start later up to date with the ledgers of the
/// images it runs; runs until the pods' watch ends (the follow task is aborted).
#[allow(clippy::too_many_arguments)]
pub async fn catch_up(
    cfg: Arc<Config>,
    resource: String,
    images: Vec<String>,
    pods: Pods,
    ledgers: Ledgers,
    sessions: sync::Sessions,
    logs: Logs,
    events: mpsc::UnboundedSender<Event>,
) {
    let mut changed = pods.changed.clone();
    while changed.changed().await.is_ok() {
        for image in &images {
            let Some(ledger) = lock(&ledgers).get(image).cloned() else {
                continue;
            };
            let Some(plan) = ledger.plan else {
                continue;
            };
            let Some(img) = cfg.images.iter().find(|i| &i.name == image) else {
                continue;
            };
            let repo = crate::image::repository(&cfg, img);
            let behind: Vec<Container> = pods
                .ready_containers(&repo)
                .into_iter()
                .filter(|c| !ledger.done.contains(&(c.uid.clone(), c.container.clone())))
                .collect();
            if behind.is_empty() {
                continue;
            }
            let push = push_of(&cfg, image, &plan);
            let say = |line: &str| logs.push(&resource, "sync", line);
            match sync::push_all(&pods.api, &behind, &push, &sessions, &say).await {
                Ok(r) => {
                    let pods_told: Vec<&str> = behind.iter().map(|c| c.pod.as_str()).collect();
                    let text = format!(
                        "{r} (new pod {}: the files of earlier live updates)",
                        pods_told.join(", ")
                    );
                    out::say_for("synced", image, &text);
                    logs.push(&resource, "sync", &text);
                    let mut l = lock(&ledgers);
                    if let Some(ledger) = l.get_mut(image) {
                        ledger
                            .done
                            .extend(behind.iter().map(|c| (c.uid.clone(), c.container.clone())));
                    }
                }
                Err(e) => {
                    let why = format!("a new pod could not get the live-updated files: {e}");
                    out::say_for("rebuild", image, &why);
                    let _ = events.send(Event::SyncLost {
                        image: image.clone(),
                        why,
                    });
                    lock(&ledgers).remove(image);
                }
            }
        }
    }
}
