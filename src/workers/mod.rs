//! The engine's hands: the only implementation of its `Workers` trait. Each command becomes a
//! call into a domain module (doctor, cluster, build, deploy, exec) on a task of its own, and
//! its outcome goes back to the engine as an event. Output goes to the terminal (`out`) and
//! to the resources' logs.
//!
//! Owns the doctor and cluster steps of bring-up, builds, deploys, readiness waits, local
//! commands and what follows a deployed resource (forwards, URLs, pod counts, logs). Must not
//! decide what runs next: that is the engine's reducer. Reads the config through a watch
//! channel, so a reload reaches every command dispatched after it.

pub mod bringup;
mod build;
pub mod deploy;
mod follow;
mod live;
mod local;
pub mod narrate;
mod wait;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tokio::sync::{mpsc, watch};

use crate::config::{self, Config};
use crate::deploy::pods::Pods;
use crate::deploy::rollout::PodCounts;
use crate::engine::driver::{self, Logs};
use crate::engine::log::Verb;
use crate::engine::state::{Command, Event};
use crate::exec::{self, Cancel};
use crate::out;

pub use bringup::Prepared;

/// A local command may run long (a code generator, a test suite), but not forever.
const RUN_TIMEOUT: Duration = Duration::from_secs(3600);
/// A serve command runs until devenv stops or its inputs change.
const SERVE_TIMEOUT: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

/// The engine's count of pods from the cluster's.
pub fn pods_of(c: PodCounts) -> crate::engine::state::Pods {
    crate::engine::state::Pods {
        ready: c.ready,
        total: c.total,
        restarts: c.restarts,
    }
}

/// A resource as the page and `devenv status` see it, besides the engine's state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ResourceInfo {
    pub name: String,
    /// `cluster` or `local`.
    pub kind: String,
    pub workload: Option<String>,
    pub namespace: Option<String>,
    pub images: Vec<String>,
    pub port_forwards: Vec<String>,
    pub links: Vec<String>,
    pub manual: bool,
}

/// What the page shows of each resource besides its state.
pub fn resource_infos(
    cfg: &Config,
    resource_images: &BTreeMap<String, Vec<String>>,
) -> Vec<ResourceInfo> {
    let mut out: Vec<ResourceInfo> = cfg
        .resources
        .iter()
        .map(|r| ResourceInfo {
            name: r.name.clone(),
            kind: "cluster".into(),
            workload: Some(r.workload.to_string()),
            namespace: Some(r.namespace.clone()),
            images: resource_images.get(&r.name).cloned().unwrap_or_default(),
            port_forwards: r
                .port_forwards
                .iter()
                .map(|p| format!("{}:{}", p.local, p.remote))
                .collect(),
            links: r.links.clone(),
            manual: r.trigger == config::TriggerMode::Manual,
        })
        .collect();
    out.extend(cfg.locals.iter().map(|l| ResourceInfo {
        name: l.name.clone(),
        kind: "local".into(),
        workload: None,
        namespace: None,
        images: Vec::new(),
        port_forwards: Vec::new(),
        links: l.links.clone(),
        manual: l.trigger == config::TriggerMode::Manual,
    }));
    out
}

/// The channels that carry what may change while `up` runs: the workers write them when the
/// engine says so ([`Command::Configure`]); the workers, the page and the follow tasks read.
pub struct Current {
    pub cfg: watch::Sender<Arc<Config>>,
    /// Image -> the resources that run it.
    pub users: watch::Sender<BTreeMap<String, Vec<String>>>,
    pub infos: watch::Sender<Vec<ResourceInfo>>,
}

impl Current {
    /// The channels for `cfg` as `shape` reads it, and the page's receiver of the resource
    /// infos.
    pub fn of(
        cfg: &Arc<Config>,
        shape: &crate::project::Shape,
    ) -> (Current, watch::Receiver<Vec<ResourceInfo>>) {
        let (infos, infos_rx) = watch::channel(resource_infos(cfg, &shape.resource_images));
        let current = Current {
            cfg: watch::channel(cfg.clone()).0,
            users: watch::channel(crate::project::users(&shape.resource_images)).0,
            infos,
        };
        (current, infos_rx)
    }
}

/// A config the reloader took, with what its resources run, waiting for the engine's
/// [`Command::Configure`] of its version.
pub struct Published {
    pub version: u64,
    pub cfg: Arc<Config>,
    pub users: BTreeMap<String, Vec<String>>,
    pub infos: Vec<ResourceInfo>,
}

/// What the session gives the workers.
pub struct Setup {
    /// The config now, and what its resources run.
    pub current: Current,
    /// Configs the reloader took, each put in place by the engine's `Configure`.
    pub published: mpsc::UnboundedReceiver<Published>,
    pub ci: bool,
    pub logs: Logs,
    pub bringup: bringup::Inputs,
    /// The plan `up` computed before it started, for the first bring-up.
    pub plan: Option<crate::plan::Plan>,
    /// Why the status page could not start: the doctor's step says it.
    pub page_error: Option<String>,
    /// The engine's events, for what happens outside a command (a new pod behind on live
    /// updates).
    pub events: mpsc::UnboundedSender<Event>,
}

/// What the workers' own tasks hand back to them (read before each command): they own it
/// from then on, with no lock.
enum Handback {
    /// The forward ports bring-up bound.
    Forwards(bringup::Forwards),
    /// A serve command's job ended (or never started: its run failed or was cancelled).
    ServeEnded { resource: String, job: u64 },
}

/// The workers of `up`: each command runs on a task of its own and reports back. What they
/// keep is theirs alone (the engine's `dispatch` has them by `&mut`): the handles of work in
/// flight, and what their tasks handed back.
pub struct Workers {
    current: Current,
    published: mpsc::UnboundedReceiver<Published>,
    cfg: watch::Receiver<Arc<Config>>,
    ci: bool,
    logs: Logs,
    users: watch::Receiver<BTreeMap<String, Vec<String>>>,
    bringup: Arc<bringup::Inputs>,
    /// For the first bring-up only.
    plan: Option<crate::plan::Plan>,
    page_error: Option<String>,
    /// Set once the cluster is up (commands that need it come only after).
    cluster: Arc<std::sync::OnceLock<Prepared>>,
    /// The forward ports bound at bring-up, until each resource's follow task takes its own.
    forwards: bringup::Forwards,
    /// The follow tasks of each deployed resource (forwards, pod counts, logs), from its
    /// first wait on.
    followed: BTreeMap<String, tokio::task::JoinSet<()>>,
    /// The bring-up steps in flight (doctor, cluster), cancelled on stop.
    steps: Cancel,
    builds: HashMap<String, (u64, Cancel)>,
    /// How many builds may run at once (half the CPUs, at least two).
    build_slots: Arc<tokio::sync::Semaphore>,
    runs: HashMap<String, (u64, Cancel)>,
    /// The serve command of each local resource (running, or to start after its run).
    serves: HashMap<String, local::ServeJob>,
    next_serve: u64,
    waits: HashMap<String, tokio::task::JoinHandle<()>>,
    /// Each deployed resource as the cluster has it (its reflectors), from its first wait
    /// on: its readiness waits, follow task and live updates read it.
    pods: BTreeMap<String, Pods>,
    /// The Warning events of each namespace, one reflector for all its resources.
    namespace_events: BTreeMap<String, crate::deploy::pods::NamespaceEvents>,
    /// The shells kept running in containers for live update's archives.
    sessions: crate::deploy::sync::Sessions,
    handback: mpsc::UnboundedSender<Handback>,
    handed: mpsc::UnboundedReceiver<Handback>,
    events: mpsc::UnboundedSender<Event>,
}

impl Workers {
    pub fn new(setup: Setup) -> Workers {
        let (handback, handed) = mpsc::unbounded_channel();
        Workers {
            cfg: setup.current.cfg.subscribe(),
            users: setup.current.users.subscribe(),
            current: setup.current,
            published: setup.published,
            ci: setup.ci,
            logs: setup.logs,
            bringup: Arc::new(setup.bringup),
            plan: setup.plan,
            page_error: setup.page_error,
            cluster: Arc::new(std::sync::OnceLock::new()),
            forwards: BTreeMap::new(),
            followed: BTreeMap::new(),
            steps: Cancel::new(),
            builds: HashMap::new(),
            build_slots: Arc::new(tokio::sync::Semaphore::new(
                crate::image::run::default_parallelism(),
            )),
            runs: HashMap::new(),
            serves: HashMap::new(),
            next_serve: 0,
            waits: HashMap::new(),
            pods: BTreeMap::new(),
            namespace_events: BTreeMap::new(),
            sessions: crate::deploy::sync::Sessions::default(),
            handback,
            handed,
            events: setup.events,
        }
    }

    /// Takes what the workers' tasks handed back since the last command.
    fn take_handed(&mut self) {
        while let Ok(h) = self.handed.try_recv() {
            match h {
                Handback::Forwards(f) => self.forwards.extend(f),
                Handback::ServeEnded { resource, job } => {
                    if self.serves.get(&resource).is_some_and(|s| s.job == job) {
                        self.serves.remove(&resource);
                    }
                }
            }
        }
    }

    /// Brings the cluster up (checks, profile, namespaces, Secrets, ports, prune).
    fn prepare_cluster(&mut self, tx: mpsc::UnboundedSender<Event>) {
        let cfg = self.config();
        let inputs = self.bringup.clone();
        let plan = self.plan.take();
        let cluster = self.cluster.clone();
        let cancel = self.steps.clone();
        let handle = tokio::runtime::Handle::current();
        let ci = self.ci;
        let handback = self.handback.clone();
        tokio::task::spawn_blocking(move || {
            let progress = |m: &str| {
                let _ = tx.send(Event::ClusterProgress {
                    message: m.to_owned(),
                });
            };
            match bringup::prepare(&handle, &cfg, &inputs, plan, ci, &cancel, &progress) {
                Ok((p, forwards)) => {
                    let _ = cluster.set(p);
                    // Handed back before the engine hears of it: every command after has it.
                    let _ = handback.send(Handback::Forwards(forwards));
                    let _ = tx.send(Event::ClusterReady);
                }
                // Cancelled because devenv stops: the engine expects no end.
                Err((_, e)) if bringup::Stopping::is(&e) => {}
                Err((stage, e)) => {
                    // `up` ends with this error; the page shows it meanwhile.
                    let _ = tx.send(Event::ClusterFailed {
                        stage,
                        message: format!("{e:#}"),
                    });
                }
            }
        });
    }

    /// Builds an image into the cluster's store (or pushes it), one build slot each.
    fn build(&mut self, image: String, generation: u64, tx: mpsc::UnboundedSender<Event>) {
        let cancel = Cancel::new();
        self.builds
            .insert(image.clone(), (generation, cancel.clone()));
        let cfg = self.config();
        let store = self.cluster.get().and_then(|p| p.store.clone());
        let logs = self.logs.clone();
        let users = self.users.borrow().get(&image).cloned().unwrap_or_default();
        let slots = self.build_slots.clone();
        tokio::spawn(async move {
            // Builds of different images run side by side, up to the limit.
            let permit = slots.acquire_owned().await;
            let result = tokio::task::spawn_blocking(move || {
                let r = build::build_image(&cfg, &image, store.as_ref(), &cancel, &logs, &users);
                drop(permit);
                (image, r)
            })
            .await;
            let Ok((image, result)) = result else {
                return;
            };
            let result = match result {
                Ok(reference) => Ok(reference),
                // The engine cancelled it for a newer build or a stop: it expects no end.
                Err(build::Failure::Cancelled) => return,
                Err(build::Failure::Failed(e)) => Err(e),
            };
            let _ = tx.send(Event::BuildDone {
                image,
                generation,
                result,
            });
        });
    }

    /// Puts changed files into the running containers of an image (live update).
    fn sync(
        &mut self,
        image: String,
        generation: u64,
        plan: crate::engine::state::SyncPlan,
        tx: mpsc::UnboundedSender<Event>,
    ) {
        let cfg = self.config();
        let users = self.users.borrow().get(&image).cloned().unwrap_or_default();
        let pods: BTreeMap<String, Pods> = users
            .iter()
            .filter_map(|u| self.pods.get(u).map(|p| (u.clone(), p.clone())))
            .collect();
        let (sessions, logs) = (self.sessions.clone(), self.logs.clone());
        tokio::spawn(async move {
            let result = live::sync(
                cfg,
                image.clone(),
                plan,
                users.clone(),
                pods,
                sessions,
                logs.clone(),
            )
            .await;
            let lasting = result.as_ref().err().is_some_and(|f| f.lasting);
            if let Err(f) = &result {
                let text = format!(
                    "live update failed ({}); building it{}",
                    f.why,
                    if f.lasting {
                        ", and every change from now on"
                    } else {
                        ""
                    }
                );
                narrate::tell(
                    &logs,
                    &users,
                    narrate::Told {
                        verb: Verb::Rebuild,
                        subject: &image,
                        text: &text,
                        source: "sync",
                    },
                );
            }
            let (result, reached) = match result {
                Ok((report, reached)) => (Ok(report), reached),
                Err(f) => (Err(f.why), Vec::new()),
            };
            let _ = tx.send(Event::SyncDone {
                image,
                generation,
                result,
                lasting,
                reached,
            });
        });
    }

    /// Gives containers that are behind on an image's live updates everything they put in.
    fn catch_up(
        &mut self,
        image: String,
        c: crate::engine::live::CatchUp,
        tx: mpsc::UnboundedSender<Event>,
    ) {
        let cfg = self.config();
        let pods = self.pods.get(&c.resource).cloned();
        let (sessions, logs) = (self.sessions.clone(), self.logs.clone());
        tokio::spawn(async move {
            let result = live::catch_up(cfg, &image, &c, pods, &sessions, &logs).await;
            if let Err(why) = &result {
                narrate::tell(
                    &logs,
                    std::slice::from_ref(&c.resource),
                    narrate::Told {
                        verb: Verb::Rebuild,
                        subject: &image,
                        text: &format!("a new pod could not get the live-updated files: {why}"),
                        source: "sync",
                    },
                );
            }
            let _ = tx.send(Event::CaughtUp {
                image,
                resource: c.resource,
                version: c.version,
                result,
            });
        });
    }

    /// Deploys resources (one helm upgrade, the manifests' objects) and follows them.
    fn deploy(&mut self, generation: u64, batch: deploy::Batch, tx: mpsc::UnboundedSender<Event>) {
        let cfg = self.config();
        let cluster = self.cluster.clone();
        let logs = self.logs.clone();
        let handle = tokio::runtime::Handle::current();
        tokio::task::spawn_blocking(move || {
            let prepared = cluster.get();
            let result = deploy::deploy_resources(
                &cfg,
                &handle,
                prepared.map(|p| &p.target),
                prepared.and_then(|p| p.discovery.as_deref()),
                &batch,
                &|kind, text| {
                    let _ = tx.send(Event::Note {
                        kind: kind.to_owned(),
                        text: text.to_owned(),
                    });
                },
            );
            let deploy::Batch {
                resources,
                references,
                files,
                ..
            } = batch;
            let what = if resources.is_empty() {
                files.join(", ")
            } else {
                resources.join(", ")
            };
            let told = match &result {
                Ok(()) => (
                    Verb::Deployed,
                    String::new(),
                    deploy::deployed_with(&what, &references),
                ),
                Err(e) => (Verb::Failed, what, format!("deploy: {e}")),
            };
            // A deploy of changed files alone (no resource of its own) is told when it fails.
            if !resources.is_empty() || result.is_err() {
                let (verb, subject, text) = &told;
                narrate::tell(
                    &logs,
                    &resources,
                    narrate::Told {
                        verb: *verb,
                        subject,
                        text,
                        source: "deploy",
                    },
                );
            }
            let _ = tx.send(Event::DeployDone {
                generation,
                result: result.map_err(|e| format!("{e:#}")),
            });
        });
    }

    /// Waits for resources to be ready, and follows each from its first wait on (its
    /// forwards, URLs, pod counts and logs).
    fn wait(&mut self, resources: Vec<String>, tx: mpsc::UnboundedSender<Event>) {
        if self.cluster.get().is_none() {
            return;
        }
        let cfg = self.config();
        for name in resources {
            let Some(r) = cfg.resources.iter().find(|r| r.name == name).cloned() else {
                continue;
            };
            if let Some(old) = self.waits.remove(&name) {
                old.abort();
            }
            // Whether devenv builds an image the pods cannot get decides the hint.
            let built: Vec<String> = cfg
                .images
                .iter()
                .map(|i| crate::image::repository(&cfg, i))
                .collect();
            let Some(pods) = self.observe(&r) else {
                continue;
            };
            let task = tokio::spawn(wait::wait(r, built, pods, self.ci, tx.clone()));
            self.waits.insert(name.clone(), task);
            self.follow(&name);
        }
    }

    /// Runs a local resource's command, then its serve command.
    fn run(&mut self, resource: String, generation: u64, tx: mpsc::UnboundedSender<Event>) {
        let cancel = Cancel::new();
        self.runs
            .insert(resource.clone(), (generation, cancel.clone()));
        let cfg = self.config();
        let Some(local) = cfg.locals.iter().find(|l| l.name == resource).cloned() else {
            return;
        };
        // The serve command restarts with the run, unless it is never restarted while it runs.
        let keep = local.restart == config::Restart::Never && self.serves.contains_key(&resource);
        let serve = match (&local.serve_cmd, keep) {
            (Some(_), false) => {
                if let Some(old) = self.serves.remove(&resource) {
                    old.cancel.cancel();
                }
                self.next_serve += 1;
                let job = local::ServeJob {
                    job: self.next_serve,
                    cancel: Cancel::new(),
                };
                self.serves.insert(resource, job.clone());
                Some(job)
            }
            _ => None,
        };
        let logs = self.logs.clone();
        let handback = self.handback.clone();
        tokio::task::spawn_blocking(move || {
            let ended = |job: u64| {
                let _ = handback.send(Handback::ServeEnded {
                    resource: local.name.clone(),
                    job,
                });
            };
            local::run_and_serve(&local, generation, &cancel, serve, &logs, &tx, &ended);
        });
    }

    /// Stops everything of a resource that left the config.
    fn forget(&mut self, resource: String) {
        if let Some(mut set) = self.followed.remove(&resource) {
            set.abort_all();
        }
        self.pods.remove(&resource);
        self.forwards.remove(&resource);
        if let Some(w) = self.waits.remove(&resource) {
            w.abort();
        }
        if let Some((_, c)) = self.runs.remove(&resource) {
            c.cancel();
        }
        if let Some(s) = self.serves.remove(&resource) {
            s.cancel.cancel();
        }
        self.logs
            .push(&resource, "reload", "removed from the config");
        out::say_for("removed", &resource, "no longer in the config");
    }

    fn config(&self) -> Arc<Config> {
        self.cfg.borrow().clone()
    }

    /// Puts config `version` in place (and what its resources run): the commands dispatched
    /// from now on run under it. Older ones the reloader sent are passed over.
    fn configure(&mut self, version: u64) {
        while let Ok(p) = self.published.try_recv() {
            if p.version != version {
                continue;
            }
            self.current.cfg.send_replace(p.cfg);
            self.current.users.send_replace(p.users);
            self.current.infos.send_replace(p.infos);
            return;
        }
        tracing::warn!(
            version,
            "the engine asked for a config the reloader never sent"
        );
    }
}

impl driver::Workers for Workers {
    fn dispatch(&mut self, cmd: Command, events: &mpsc::UnboundedSender<Event>) {
        self.take_handed();
        let tx = events.clone();
        match cmd {
            Command::Configure { version } => self.configure(version),
            Command::Doctor => {
                let cfg = self.config();
                let inputs = self.bringup.clone();
                let page_error = self.page_error.take();
                tokio::task::spawn_blocking(move || {
                    let result = bringup::doctor(&cfg, &inputs, page_error);
                    let _ = tx.send(Event::DoctorDone { result });
                });
            }
            Command::PrepareCluster => self.prepare_cluster(tx),
            Command::Build { image, generation } => self.build(image, generation, tx),
            Command::Sync {
                image,
                generation,
                plan,
            } => self.sync(image, generation, plan, tx),
            Command::CatchUp { image, owed } => self.catch_up(image, owed, tx),
            Command::Cancel { image, generation } => {
                if let Some((g, c)) = self.builds.get(&image)
                    && *g == generation
                {
                    out::say_for("cancelled", &image, "a newer change supersedes this build");
                    c.cancel();
                }
            }
            Command::Deploy {
                generation,
                resources,
                references,
                files,
                shared,
            } => self.deploy(
                generation,
                deploy::Batch {
                    resources,
                    references,
                    files,
                    shared,
                },
                tx,
            ),
            Command::Wait { resources } => self.wait(resources, tx),
            Command::Run {
                resource,
                generation,
            } => self.run(resource, generation, tx),
            Command::CancelRun {
                resource,
                generation,
            } => {
                if let Some((g, c)) = self.runs.get(&resource)
                    && *g == generation
                {
                    c.cancel();
                }
            }
            Command::Forget { resource } => self.forget(resource),
            Command::Refollow { resource } => {
                if let Some(mut set) = self.followed.remove(&resource) {
                    // Its old listeners close as its tasks end; the new ones wait them out.
                    // Its workload may be another now: it is observed afresh.
                    set.abort_all();
                    self.pods.remove(&resource);
                    self.follow(&resource);
                }
            }
            Command::Stop => {
                self.steps.cancel();
                for (_, c) in self.builds.values().chain(self.runs.values()) {
                    c.cancel();
                }
                for s in self.serves.values() {
                    s.cancel.cancel();
                }
                for w in self.waits.values() {
                    w.abort();
                }
                for set in self.followed.values_mut() {
                    set.abort_all();
                }
                exec::kill_all();
            }
        }
    }
}

impl Workers {
    /// Follows `name`'s forwards, URLs, pods and logs, unless it is followed already (or
    /// with `--ci`, which follows nothing).
    fn follow(&mut self, name: &str) {
        if self.ci || self.followed.contains_key(name) {
            return;
        }
        let cfg = self.config();
        let Some(r) = cfg.resources.iter().find(|r| r.name == name).cloned() else {
            return;
        };
        // The images of this resource that live update reaches: their new containers catch up.
        let live_images: Vec<String> = self
            .users
            .borrow()
            .iter()
            .filter(|(_, rs)| rs.iter().any(|x| x == name))
            .map(|(i, _)| i.clone())
            .filter(|i| {
                cfg.images
                    .iter()
                    .any(|img| &img.name == i && img.live_update.is_some())
            })
            .collect();
        let keep = follow::Keep {
            events: self.events.clone(),
            cfg: cfg.clone(),
            live_images,
        };
        let Some(pods) = self.observe(&r) else {
            return;
        };
        let bound = self.forwards.remove(name);
        let (cluster, logs) = (self.cluster.clone(), self.logs.clone());
        let mut set = tokio::task::JoinSet::new();
        set.spawn(async move {
            if let Some(p) = cluster.get() {
                follow::follow_one(r, p, bound, pods, logs, keep).await;
            }
        });
        self.followed.insert(name.to_owned(), set);
    }

    /// `r` as the cluster has it: its reflectors, started now if they were not (none before
    /// the cluster is up).
    fn observe(&mut self, r: &config::Resource) -> Option<Pods> {
        if let Some(p) = self.pods.get(&r.name) {
            return Some(p.clone());
        }
        let client = self.cluster.get()?.target.client.clone();
        let events = self
            .namespace_events
            .entry(r.namespace.clone())
            .or_insert_with(|| crate::deploy::pods::namespace_events(&client, &r.namespace))
            .clone();
        let pods = crate::deploy::pods::start(&client, &r.namespace, &r.workload, &events);
        self.pods.insert(r.name.clone(), pods.clone());
        Some(pods)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::driver::Workers as _;

    fn config(dir: &std::path::Path, text: &str) -> Arc<Config> {
        let file = dir.join("devenv.toml");
        std::fs::write(&file, text).unwrap_or_else(|e| panic!("{e}"));
        let loaded = crate::config::parse(&file, &file, text).unwrap_or_else(|e| panic!("{e}"));
        Arc::new(loaded.config)
    }

    fn workers(cfg: Arc<Config>) -> (Workers, mpsc::UnboundedSender<Published>) {
        let (publish, published) = mpsc::unbounded_channel();
        let (events, _) = mpsc::unbounded_channel();
        let w = Workers::new(Setup {
            current: Current {
                cfg: watch::channel(cfg).0,
                users: watch::channel(BTreeMap::new()).0,
                infos: watch::channel(Vec::new()).0,
            },
            published,
            ci: true,
            logs: Logs::new(1 << 20),
            bringup: bringup::Inputs {
                shown: "devenv.toml".into(),
                warnings: 0,
                recreate_cluster: false,
                report: watch::channel(serde_json::Value::Null).0,
            },
            plan: None,
            page_error: None,
            events,
        });
        (w, publish)
    }

    /// Issue 26 point 7: serve commands are jobs with a restart policy. A run restarts the
    /// serve command (`on-change`), or leaves a running one alone (`never`). The commands
    /// are real (`sh`).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_run_restarts_the_serve_command_unless_it_is_never_restarted() {
        for (restart, restarted) in [("on-change", true), ("never", false)] {
            let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
            let cfg = config(
                dir.path(),
                &format!(
                    "[project]\nname = \"r\"\n\n[[local]]\nname = \"web\"\ncmd = \"true\"\nserve_cmd = \"exec sleep 30\"\nrestart = \"{restart}\"\n"
                ),
            );
            let (mut w, _publish) = workers(cfg);
            let (tx, mut rx) = mpsc::unbounded_channel();
            let mut job = Vec::new();
            for generation in [1, 2] {
                w.dispatch(
                    Command::Run {
                        resource: "web".into(),
                        generation,
                    },
                    &tx,
                );
                job.push(w.serves.get("web").map(|s| s.job));
                // Its run ended (and its serve command started) before the next one.
                loop {
                    match tokio::time::timeout(Duration::from_secs(30), rx.recv()).await {
                        Ok(Some(Event::RunDone { generation: g, .. })) if g == generation => break,
                        Ok(Some(_)) => {}
                        _ => panic!("no RunDone"),
                    }
                }
            }
            assert_eq!(job[0] != job[1], restarted, "{restart}: {job:?}");
            w.dispatch(Command::Stop, &tx);
        }
    }

    /// Issue 26 point 4: the reloader handed the new config to the workers before the engine
    /// heard of it, so a command decided under the old config ran under the new one (a `Run`
    /// of a local the edit removed found nothing and never reported back). Now a config is
    /// put in place only by the engine's `Configure`, which comes before every command
    /// decided under it: what was dispatched before runs under the config it was decided
    /// under. The real local runner runs the command (`sh`).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_command_decided_before_a_reload_runs_under_its_own_config() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let old = config(
            dir.path(),
            "[project]\nname = \"r\"\n\n[[local]]\nname = \"gen\"\ncmd = \"echo one > out.txt\"\n",
        );
        let new = config(
            dir.path(),
            "[project]\nname = \"r\"\n\n[[local]]\nname = \"other\"\ncmd = \"true\"\n",
        );
        let (mut w, publish) = workers(old);
        // The reloader took the edit (gen removed) before the engine reduced the reload.
        let _ = publish.send(Published {
            version: 1,
            cfg: new,
            users: BTreeMap::new(),
            infos: Vec::new(),
        });
        let (tx, mut rx) = mpsc::unbounded_channel();
        // Decided under the old config: it runs, and says so.
        w.dispatch(
            Command::Run {
                resource: "gen".into(),
                generation: 1,
            },
            &tx,
        );
        let done = tokio::time::timeout(Duration::from_secs(30), async {
            loop {
                match rx.recv().await {
                    Some(Event::RunDone {
                        resource, result, ..
                    }) => break (resource, result),
                    Some(_) => {}
                    None => panic!("no RunDone"),
                }
            }
        })
        .await
        .unwrap_or_else(|_| panic!("gen never reported back"));
        assert_eq!(done, ("gen".to_owned(), Ok(())));
        assert_eq!(
            std::fs::read_to_string(dir.path().join("out.txt")).unwrap_or_default(),
            "one\n"
        );
        // The engine's Configure puts the new config in place.
        assert_eq!(w.config().locals[0].name, "gen");
        w.dispatch(Command::Configure { version: 1 }, &tx);
        assert_eq!(w.config().locals[0].name, "other");
    }
}
