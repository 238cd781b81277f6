//! Live updates for the engine: a sync plan carried into every ready container that runs the
//! image, a catch-up carried into the containers the engine's ledger says are behind, and
//! the ready containers of each followed resource, told to the engine as they change.

use std::collections::BTreeMap;
use std::sync::Arc;

use tokio::sync::mpsc;

use super::narrate::{Told, tell};
use crate::config::Config;
use crate::deploy::pods::Pods;
use crate::deploy::sync::{self, Container, Push};
use crate::engine::driver::Logs;
use crate::engine::live::CatchUp;
use crate::engine::log::Verb;
use crate::engine::state::{ContainerId, Event, SyncPlan};

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
    sessions: sync::Sessions,
    logs: Logs,
) -> Result<(String, Vec<ContainerId>), Failure> {
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
    let reached = targets
        .iter()
        .flat_map(|(_, cs)| cs.iter().map(|c| (c.uid.clone(), c.container.clone())))
        .collect();
    tell(
        &logs,
        &users,
        Told {
            verb: Verb::Synced,
            subject: &image,
            text: &report,
            source: "sync",
        },
    );
    Ok((report, reached))
}

/// How long a catch-up that found none of its containers ready waits for the pods to change
/// before it answers (the engine asks again when the containers are still behind).
const NOTHING_REACHED_WAIT: std::time::Duration = std::time::Duration::from_secs(1);

/// Gives the containers of a catch-up (behind on its image's live updates) the whole plan;
/// the containers reached, or why not.
pub async fn catch_up(
    cfg: Arc<Config>,
    image: &str,
    c: &CatchUp,
    pods: Option<Pods>,
    sessions: &sync::Sessions,
    logs: &Logs,
) -> Result<Vec<ContainerId>, String> {
    let CatchUp {
        resource,
        plan,
        containers,
        ..
    } = c;
    let pods =
        pods.ok_or_else(|| format!("`{resource}` is not followed: its pods are not known"))?;
    let img = cfg
        .images
        .iter()
        .find(|i| i.name == image)
        .ok_or_else(|| format!("no image `{image}` in the config"))?;
    let repo = crate::image::repository(&cfg, img);
    let behind: Vec<Container> = pods
        .ready_containers(&repo)
        .into_iter()
        .filter(|c| containers.contains(&(c.uid.clone(), c.container.clone())))
        .collect();
    if behind.is_empty() {
        // They went (or are no longer ready) meanwhile: nothing is owed to them now. The
        // follow task tells the engine of that change; until it does, the engine would ask
        // again at once, so the answer waits for the pods' next change (or a second). A
        // container that is ready again later is told by that task and caught up then.
        let mut changed = pods.changed.clone();
        changed.borrow_and_update();
        let _ = tokio::time::timeout(NOTHING_REACHED_WAIT, changed.changed()).await;
        return Ok(Vec::new());
    }
    let push = push_of(&cfg, image, plan);
    let say = |line: &str| logs.push(resource, "sync", line);
    let r = sync::push_all(&pods.api, &behind, &push, sessions, &say)
        .await
        .map_err(|e| e.to_string())?;
    let told: Vec<&str> = behind.iter().map(|c| c.pod.as_str()).collect();
    let text = format!(
        "{r} (new pod {}: the files of earlier live updates)",
        told.join(", ")
    );
    tell(
        logs,
        std::slice::from_ref(resource),
        Told {
            verb: Verb::Synced,
            subject: image,
            text: &text,
            source: "sync",
        },
    );
    Ok(behind.into_iter().map(|c| (c.uid, c.container)).collect())
}

/// Tells the engine the ready containers of `resource` that run each of `images` (those with
/// live update), each time they change; runs until the pods' watch ends (the follow task is
/// aborted).
pub async fn tell_containers(
    cfg: Arc<Config>,
    resource: String,
    images: Vec<String>,
    pods: Pods,
    events: mpsc::UnboundedSender<Event>,
) {
    let repos: Vec<(String, String)> = images
        .into_iter()
        .filter_map(|i| {
            let img = cfg.images.iter().find(|x| x.name == i)?;
            Some((i, crate::image::repository(&cfg, img)))
        })
        .collect();
    let mut told: BTreeMap<String, Vec<ContainerId>> = BTreeMap::new();
    let mut changed = pods.changed.clone();
    loop {
        for (image, repo) in &repos {
            let ready: Vec<ContainerId> = pods
                .ready_containers(repo)
                .into_iter()
                .map(|c| (c.uid, c.container))
                .collect();
            if told.get(image) != Some(&ready) {
                told.insert(image.clone(), ready.clone());
                let _ = events.send(Event::Containers {
                    resource: resource.clone(),
                    image: image.clone(),
                    ready,
                });
            }
        }
        if changed.changed().await.is_err() {
            break;
        }
    }
}
