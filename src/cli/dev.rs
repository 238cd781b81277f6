//! The dev loop after bring-up: port-forwards, URLs and pod logs for the deployed resources;
//! the file watcher feeding the engine; the workers that carry out the engine's commands
//! (builds, one deploy per batch, readiness waits, local commands and their serve commands);
//! and the terminal view of the engine's state. Runs until Ctrl-C or SIGTERM (or, with
//! `--ci`, until everything settled).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Result;
use tokio::sync::{mpsc, watch};

use super::out;
use crate::build::run::BuildError;
use crate::cluster::kube::Target;
use crate::cluster::minikube::ImageStore;
use crate::config::{self, Config};
use crate::deploy::rollout;
use crate::engine::driver::{self, Logs, Snapshot, Workers};
use crate::engine::state::{Command, Event, Graph, Node, ResourceState, State, Status};
use crate::exec::{self, Cancel, Cmd, ExecError};
use crate::{build, deploy, doctor, watch as files, web};

/// A local command may run long (a code generator, a test suite), but not forever.
const RUN_TIMEOUT: Duration = Duration::from_secs(3600);
/// A serve command runs until devenv stops or its inputs change.
const SERVE_TIMEOUT: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

/// A forward's local port taken early: `(local, remote, listener)`.
pub type Bound = (u16, u16, tokio::net::TcpListener);

/// What the cluster side of bring-up leaves for the engine's workers: the guarded cluster,
/// where images go, the API's resource kinds, and the forward ports, bound early so that a
/// busy one stops `up` before anything is deployed.
pub struct Prepared {
    pub target: Target,
    pub store: Option<ImageStore>,
    pub discovery: Option<Arc<kube::discovery::Discovery>>,
    pub node_ip: Option<String>,
    /// Resource -> its bound forward listeners, `(local, remote, listener)`.
    pub forwards: Mutex<BTreeMap<String, Vec<Bound>>>,
}

/// A started file watcher and its batches.
pub type Watching = (
    files::Watcher,
    mpsc::UnboundedReceiver<Result<files::Batch, files::WatchError>>,
);

/// Starts the file watcher (inside a tokio runtime), saying what it watches.
pub fn start_watching(cfg: &Config) -> Result<Watching> {
    let (w, batches) = files::Watcher::start(cfg).map_err(|e| match e.hint() {
        Some(h) => anyhow::anyhow!("{e}\n  hint: {h}"),
        None => anyhow::anyhow!("{e}"),
    })?;
    out::say(
        "watching",
        format!(
            "{} director{} (debounce {} ms)",
            w.dirs,
            if w.dirs == 1 { "y" } else { "ies" },
            cfg.watch.debounce.as_millis()
        ),
    );
    Ok((w, batches))
}

/// What the page shows of each resource besides its state.
fn resource_infos(
    cfg: &Config,
    resource_images: &BTreeMap<String, Vec<String>>,
) -> Vec<web::ResourceInfo> {
    let mut out: Vec<web::ResourceInfo> = cfg
        .resources
        .iter()
        .map(|r| web::ResourceInfo {
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
    out.extend(cfg.locals.iter().map(|l| web::ResourceInfo {
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

/// The engine's view of the project.
/// `released` names the cluster resources whose workload the Helm release renders.
pub fn graph(
    cfg: &Config,
    resource_images: &BTreeMap<String, Vec<String>>,
    released: &BTreeSet<String>,
) -> Graph {
    let release = cfg.deploy.helm.as_ref().map(|h| h.release.clone());
    let mut resources: Vec<Node> = cfg
        .resources
        .iter()
        .map(|r| Node {
            name: r.name.clone(),
            images: resource_images.get(&r.name).cloned().unwrap_or_default(),
            depends_on: r.depends_on.clone(),
            manual: r.trigger == config::TriggerMode::Manual,
            local: false,
            release: release.clone().filter(|_| released.contains(&r.name)),
        })
        .collect();
    resources.extend(cfg.locals.iter().map(|l| Node {
        name: l.name.clone(),
        images: Vec::new(),
        depends_on: l.depends_on.clone(),
        manual: l.trigger == config::TriggerMode::Manual,
        local: true,
        release: None,
    }));
    Graph {
        images: cfg.images.iter().map(|i| i.name.clone()).collect(),
        resources,
        cluster: cfg.needs_cluster(),
    }
}

/// One run of `up`: the engine, its workers, the watcher, the page and the terminal view.
/// The page answers from [`Session::open`] on, before doctor and the cluster, so bring-up is
/// watched live; `--ci` is the same engine with an exit rule ([`State::settled`]).
pub struct Session {
    /// Why the page could not start (its port is taken), said once doctor has run.
    page_error: Option<anyhow::Error>,
    cfg: Arc<Config>,
    ci: bool,
    logs: Logs,
    tx: mpsc::UnboundedSender<Event>,
    rx: Option<mpsc::UnboundedReceiver<Event>>,
    state: Option<State>,
    snap_tx: Option<watch::Sender<Snapshot>>,
    snap_rx: watch::Receiver<Snapshot>,
    live_tx: Arc<watch::Sender<BTreeMap<String, web::Live>>>,
    doctor_tx: watch::Sender<serde_json::Value>,
    cluster: Arc<std::sync::OnceLock<Prepared>>,
    outcomes: Outcomes,
    resource_images: BTreeMap<String, Vec<String>>,
    tasks: tokio::task::JoinSet<()>,
    engine: Option<tokio::task::JoinHandle<State>>,
    view: Option<tokio::task::JoinHandle<()>>,
    stopper: Option<tokio::task::JoinHandle<()>>,
    watcher: Option<files::Watcher>,
}

/// How each cluster resource's last readiness wait ended: its pods and how long it took.
pub type Outcomes = Arc<Mutex<BTreeMap<String, (rollout::PodCounts, Option<Duration>)>>>;

impl Session {
    /// The engine's state and channels, and (without `--ci`) the status page and API.
    /// `state_dir` is the project's state directory (the daemon's lock, record and token).
    pub async fn open(
        cfg: Arc<Config>,
        resource_images: BTreeMap<String, Vec<String>>,
        releases: &BTreeSet<String>,
        state_dir: &std::path::Path,
        ci: bool,
    ) -> Result<Session> {
        let logs = Logs::new(cfg.web.log_buffer);
        let (live_tx, live_rx) = watch::channel(BTreeMap::new());
        let live_tx = Arc::new(live_tx);
        let state = State::new(graph(&cfg, &resource_images, releases));
        let (tx, rx) = mpsc::unbounded_channel();
        let (snap_tx, snap_rx) = watch::channel(driver::initial(&state));
        let (doctor_tx, doctor_rx) = watch::channel(serde_json::Value::Null);
        let mut tasks = tokio::task::JoinSet::new();
        let mut page_error = None;
        let listener = if ci {
            None
        } else {
            let proc_root = doctor::Env::from_process().proc_root;
            // A busy port is said after doctor, whose report names it with everything else
            // that is wrong (see Session::page_error).
            match web::listen(cfg.web.port, &proc_root).await {
                Ok(l) => Some(l),
                Err(e) => {
                    page_error = Some(anyhow::anyhow!(
                        "the status page: {e}\n  hint: {}",
                        e.hint()
                    ));
                    None
                }
            }
        };
        if let Some(listener) = listener {
            let port = listener.local_addr().map_or(cfg.web.port, |a| a.port());
            let token = web::new_token();
            let session = web::new_token();
            super::daemon::publish(state_dir, &cfg, port, &token)?;
            let header = web::Header {
                project: cfg.project.clone(),
                config: cfg.file.display().to_string(),
                provider: if cfg.needs_cluster() {
                    match cfg.cluster.provider {
                        config::Provider::Minikube => "minikube".into(),
                        config::Provider::Existing => "existing".into(),
                    }
                } else {
                    "none".into()
                },
                profile: cfg.needs_cluster().then(|| cfg.cluster.profile.clone()),
                context: cfg.needs_cluster().then(|| cfg.cluster.context.clone()),
                cpus: cfg.needs_cluster().then_some(cfg.cluster.cpus),
                memory_mb: cfg.needs_cluster().then_some(cfg.cluster.memory_mb),
            };
            tasks.spawn(web::serve(
                listener,
                web::Shared {
                    snapshots: snap_rx.clone(),
                    live: live_rx,
                    logs: logs.clone(),
                    events: tx.clone(),
                    header,
                    resources: resource_infos(&cfg, &resource_images),
                    doctor: doctor_rx,
                    token: token.clone(),
                    session,
                    port,
                },
            ));
            // The address signs the browser in (the page carries no credential of its own).
            out::say("page", format!("http://127.0.0.1:{port}/?token={token}"));
        }
        Ok(Session {
            page_error,
            cfg,
            ci,
            logs,
            tx,
            rx: Some(rx),
            state: Some(state),
            snap_tx: Some(snap_tx),
            snap_rx,
            live_tx,
            doctor_tx,
            cluster: Arc::new(std::sync::OnceLock::new()),
            outcomes: Arc::new(Mutex::new(BTreeMap::new())),
            resource_images,
            tasks,
            engine: None,
            view: None,
            stopper: None,
            watcher: None,
        })
    }

    /// Why the status page could not start, if it could not.
    pub fn page_error(&mut self) -> Option<anyhow::Error> {
        self.page_error.take()
    }

    /// The doctor report, for the page and the API.
    pub fn set_doctor(&self, report: serde_json::Value) {
        self.doctor_tx.send_replace(report);
    }

    /// Starts the watcher (without `--ci`), the view, the workers and the engine, and sends
    /// `Start`: local commands run at once; builds and cluster resources wait for the cluster
    /// (see [`Session::cluster_ready`]) when the project has one.
    pub fn start(&mut self) -> Result<()> {
        let (Some(state), Some(rx), Some(snap_tx)) =
            (self.state.take(), self.rx.take(), self.snap_tx.take())
        else {
            return Ok(());
        };
        let cfg = self.cfg.clone();
        // Without --ci, file changes feed the engine; watching starts before the first
        // builds, so a save while they run is built after them.
        if !self.ci {
            let (w, batches) = start_watching(&cfg)?;
            self.tasks
                .spawn(forward_batches(batches, self.tx.clone(), cfg.root.clone()));
            self.watcher = Some(w);
        }
        // The view starts from the state before anything ran (taken now, not when its task
        // first runs: a fast change would already be in the snapshot and never printed).
        let first: BTreeMap<String, (Status, bool)> = state
            .resources
            .iter()
            .map(|(n, r)| (n.clone(), (r.status, r.blocked)))
            .collect();
        self.view = Some(tokio::spawn(view(self.snap_rx.clone(), cfg.clone(), first)));
        let image_users = users(&self.resource_images);
        let mut workers = ClusterWorkers {
            cfg: cfg.clone(),
            cluster: self.cluster.clone(),
            ci: self.ci,
            logs: self.logs.clone(),
            live: self.live_tx.clone(),
            outcomes: self.outcomes.clone(),
            users: image_users,
            builds: HashMap::new(),
            build_slots: Arc::new(tokio::sync::Semaphore::new(
                build::run::default_parallelism(),
            )),
            runs: HashMap::new(),
            serves: Arc::new(Mutex::new(HashMap::new())),
            waits: HashMap::new(),
            followed: Arc::new(Mutex::new(BTreeSet::new())),
            shared_applied: Arc::new(Mutex::new(false)),
        };
        let tx = self.tx.clone();
        self.engine = Some(tokio::spawn(async move {
            driver::run(state, rx, tx, &mut workers, &snap_tx).await
        }));
        let _ = self.tx.send(Event::Start);
        if !self.ci {
            // Once the first start settled, the dev loop is all that runs.
            let mut snaps = self.snap_rx.clone();
            self.tasks.spawn(async move {
                while snaps.changed().await.is_ok() {
                    if snaps.borrow().state.settled() {
                        out::say(
                            "running",
                            "Ctrl-C stops devenv; the cluster and the workloads stay up",
                        );
                        break;
                    }
                }
            });
        }
        self.stopper = Some({
            let tx = self.tx.clone();
            let mut snaps = self.snap_rx.clone();
            let ci = self.ci;
            tokio::spawn(async move {
                if ci {
                    // --ci: stop once nothing more will happen by itself.
                    loop {
                        if snaps.changed().await.is_err() {
                            return;
                        }
                        if snaps.borrow().state.settled() {
                            break;
                        }
                    }
                } else {
                    wait_for_stop().await;
                    out::say(
                        "stopping",
                        "watchers, commands, port-forwards and log streams closed; the cluster and workloads are left running",
                    );
                }
                let _ = tx.send(Event::Shutdown);
            })
        });
        Ok(())
    }

    /// The cluster is up: the workers get it, and builds and deploys may start.
    pub fn cluster_ready(&self, prepared: Prepared) {
        let _ = self.cluster.set(prepared);
        let _ = self.tx.send(Event::ClusterReady);
    }

    /// Stops the engine (bring-up failed) and waits for its end.
    pub async fn abort(mut self) {
        let _ = self.tx.send(Event::Shutdown);
        if let Some(e) = self.engine.take() {
            let _ = e.await;
        }
        self.tasks.abort_all();
        exec::kill_all();
    }

    /// Runs the engine to its end; with `--ci`, prints the summary and returns the verdict.
    pub async fn finish(mut self) -> Result<ExitCode> {
        let Some(engine) = self.engine.take() else {
            return Ok(ExitCode::FAILURE);
        };
        let end = engine.await?;
        // The view prints the last changes before it ends.
        if let Some(v) = self.view.take() {
            let _ = tokio::time::timeout(Duration::from_millis(300), v).await;
        }
        out::set_progress("");
        if let Some(s) = self.stopper.take() {
            s.abort();
        }
        drop(self.watcher.take());
        self.tasks.abort_all();
        exec::kill_all();
        if self.ci {
            let outcomes = lock(&self.outcomes).clone();
            print_summary(&self.cfg, &end, &outcomes);
            summary_of_locals(&self.cfg, &end);
            // A manual local resource that nobody triggered is not a failure.
            let ok = end.resources.iter().all(|(n, r)| {
                r.status == Status::Ready
                    || self
                        .cfg
                        .locals
                        .iter()
                        .any(|l| &l.name == n && untriggered(l, r))
            });
            return Ok(if ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            });
        }
        Ok(ExitCode::SUCCESS)
    }
}

/// Sends each batch of file changes to the engine, saying what changed.
async fn forward_batches(
    mut batches: mpsc::UnboundedReceiver<Result<files::Batch, files::WatchError>>,
    tx: mpsc::UnboundedSender<Event>,
    root: std::path::PathBuf,
) {
    while let Some(b) = batches.recv().await {
        match b {
            Ok(b) => {
                let sample: Vec<String> = b
                    .sample
                    .iter()
                    .map(|p| p.strip_prefix(&root).unwrap_or(p).display().to_string())
                    .collect();
                let what: Vec<&str> = b
                    .targets
                    .images
                    .iter()
                    .chain(&b.targets.locals)
                    .map(String::as_str)
                    .collect();
                out::say(
                    "changed",
                    format!(
                        "{} file{} ({}{}) -> {}",
                        b.paths,
                        if b.paths == 1 { "" } else { "s" },
                        sample.join(", "),
                        if b.paths > sample.len() { ", …" } else { "" },
                        what.join(", ")
                    ),
                );
                let _ = tx.send(Event::Changed {
                    images: b.targets.images,
                    locals: b.targets.locals,
                });
            }
            Err(e) => out::say(
                "error",
                match e.hint() {
                    Some(h) => format!("{e}\n  hint: {h}"),
                    None => e.to_string(),
                },
            ),
        }
    }
}

/// The `--ci` summary of the cluster resources, from the engine's final state: what the
/// cluster really holds, and why the rest is not there.
fn print_summary(
    cfg: &Config,
    end: &State,
    outcomes: &BTreeMap<String, (rollout::PodCounts, Option<Duration>)>,
) {
    if cfg.resources.is_empty() {
        return;
    }
    let mut notes = Vec::new();
    let rows: Vec<[String; 5]> = cfg
        .resources
        .iter()
        .map(|r| {
            let s = end.resources.get(&r.name);
            let o = outcomes.get(&r.name);
            let pods = o.map_or("-".to_owned(), |(p, _)| format!("{}/{}", p.ready, p.total));
            let (status, time) = match s.map(|s| s.status) {
                Some(Status::Ready) => (
                    "ready",
                    o.and_then(|(_, t)| *t)
                        .map_or("-".to_owned(), |t| format!("{:.1}s", t.as_secs_f64())),
                ),
                Some(Status::Error) => {
                    if let Some(e) = s.and_then(|s| s.last_error.clone()) {
                        notes.push((r.name.clone(), e));
                    }
                    ("failed", "-".to_owned())
                }
                Some(Status::Pending) if s.is_some_and(|s| s.deploys == 0) => {
                    let why = s.and_then(|s| s.held.clone()).unwrap_or_default();
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

/// A manual local resource that nobody triggered (so it never ran).
fn untriggered(l: &config::LocalResource, r: &ResourceState) -> bool {
    l.trigger == config::TriggerMode::Manual && r.status == Status::Pending
}

fn summary_of_locals(cfg: &Config, s: &State) {
    for l in &cfg.locals {
        if let Some(r) = s.resources.get(&l.name) {
            let status = match r.status {
                Status::Ready => "ready",
                Status::Error => "failed",
                _ if untriggered(l, r) => "manual (not triggered)",
                _ => "not run",
            };
            out::plain(&format!("{:20}  local     {status}", l.name));
            if let Some(e) = &r.last_error {
                out::plain(&format!("\n{}: {e}", l.name));
            }
        }
    }
}

/// Image -> the resources that run it.
fn users(resource_images: &BTreeMap<String, Vec<String>>) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (r, images) in resource_images {
        for i in images {
            out.entry(i.clone()).or_default().push(r.clone());
        }
    }
    out
}

/// Prints each resource's changes of status, and keeps the live progress line (TTY only).
async fn view(
    mut snaps: watch::Receiver<Snapshot>,
    cfg: Arc<Config>,
    mut last: BTreeMap<String, (Status, bool)>,
) {
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    let started = tokio::time::Instant::now();
    let mut show = |snap: &Snapshot| {
        for (name, r) in &snap.state.resources {
            if last.get(name) == Some(&(r.status, r.blocked)) {
                continue;
            }
            last.insert(name.clone(), (r.status, r.blocked));
            let local = cfg.locals.iter().any(|l| &l.name == name);
            if r.blocked {
                let why = r.held.as_deref().unwrap_or("a dependency failed");
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
                let s = &snaps.borrow().state;
                let busy: Vec<String> = s
                    .images
                    .iter()
                    .filter(|(_, i)| i.building.is_some())
                    .map(|(n, _)| format!("building {n}"))
                    .chain(s.resources.iter().filter_map(|(n, r)| match r.status {
                        _ if r.blocked => None,
                        _ if r.held.is_some() => Some(format!("{n}: {}", r.held.as_deref().unwrap_or(""))),
                        Status::Deploying => Some(format!("deploying {n}")),
                        Status::Waiting => Some(format!("waiting for {n}")),
                        Status::Building if r.running.is_some() => Some(format!("running {n}")),
                        _ => None,
                    }))
                    .collect();
                if busy.is_empty() {
                    out::set_progress("");
                } else {
                    let secs = started.elapsed().as_secs();
                    out::set_progress(&format!("… {} ({secs}s)", busy.join(" · ")));
                }
            }
        }
    }
}

/// Port-forwards, NodePort URLs, links, pod counts for the page and log following for one
/// deployed resource; its tasks go to `tasks`. A failure is the resource's warning.
async fn follow_one(
    r: config::Resource,
    prepared: &Prepared,
    logs: Logs,
    live: Arc<watch::Sender<BTreeMap<String, web::Live>>>,
    tasks: Arc<Mutex<tokio::task::JoinSet<()>>>,
) {
    let target = &prepared.target;
    let report = warn(&r.name, "follow", &logs, &live);
    let pods = match deploy::pods::watch(&target.client, &r.namespace, &r.workload).await {
        Ok(p) => p,
        Err(e) => {
            report(format!("cannot watch its pods: {e}"));
            return;
        }
    };
    let listeners = lock(&prepared.forwards).remove(&r.name).unwrap_or_default();
    for (local, remote, listener) in listeners {
        out::say(
            "forward",
            format!(
                "{}: http://127.0.0.1:{local} -> {}:{remote}",
                r.name, r.workload
            ),
        );
        lock(&tasks).spawn(deploy::forward::serve(
            listener,
            pods.clone(),
            remote,
            warn(&r.name, "forward", &logs, &live),
        ));
    }
    if let Some(ip) = &prepared.node_ip {
        let api: kube::Api<k8s_openapi::api::core::v1::Service> =
            kube::Api::namespaced(target.client.clone(), &r.namespace);
        match api.list(&Default::default()).await {
            Ok(l) => {
                for url in deploy::forward::node_urls(&l.items, &pods.template_labels, ip) {
                    out::say("url", format!("{}: {url}", r.name));
                }
            }
            Err(e) => eprintln!("warning: cannot list the Services in {}: {e}", r.namespace),
        }
    }
    for link in &r.links {
        out::say("link", format!("{}: {link}", r.name));
    }
    // Pod counts for the page, kept current.
    {
        let pods = pods.clone();
        let name = r.name.clone();
        let live = live.clone();
        lock(&tasks).spawn(async move {
            let mut changed = pods.changed.clone();
            loop {
                let c = Some(pods.counts());
                live.send_if_modified(|m| {
                    let l = m.entry(name.clone()).or_default();
                    std::mem::replace(&mut l.pods, c) != c
                });
                if changed.changed().await.is_err() {
                    break;
                }
            }
        });
    }
    let name = r.name.clone();
    let report = warn(&r.name, "logs", &logs, &live);
    lock(&tasks).spawn(deploy::logs::follow(
        pods,
        move |l| {
            let source = format!("{}/{}", l.pod, l.container);
            out::output(&name, &source, &l.text);
            logs.with(&name, |b| {
                b.push(
                    l.time_ms.unwrap_or_else(crate::engine::log::now_ms),
                    &source,
                    &l.text,
                );
            });
        },
        report,
    ));
}

/// Where a failure of a resource's log stream or port-forward goes: the terminal (`label`
/// line), the resource's log, and its warning in the status API and on the page.
fn warn(
    resource: &str,
    label: &'static str,
    logs: &Logs,
    live: &Arc<watch::Sender<BTreeMap<String, web::Live>>>,
) -> impl Fn(String) + Send + Sync + Clone + 'static {
    let (name, logs, live) = (resource.to_owned(), logs.clone(), live.clone());
    move |message: String| {
        out::say_for(label, &name, &message);
        for line in message.lines() {
            logs.push(&name, label, line);
        }
        live.send_modify(|m| m.entry(name.clone()).or_default().warning = Some(message));
    }
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn wait_for_stop() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => futures::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = term => {}
    }
}

/// The workers of `up`: each command runs on a task of its own and reports back.
struct ClusterWorkers {
    cfg: Arc<Config>,
    /// Set once the cluster is up (commands that need it come only after).
    cluster: Arc<std::sync::OnceLock<Prepared>>,
    ci: bool,
    logs: Logs,
    live: Arc<watch::Sender<BTreeMap<String, web::Live>>>,
    outcomes: Outcomes,
    /// Resources whose forwards and logs are followed (from their first deploy on).
    followed: Arc<Mutex<BTreeSet<String>>>,
    /// Whether the manifest objects that are no resource's workload went in (first deploy).
    shared_applied: Arc<Mutex<bool>>,
    /// Image -> resources that run it (their logs get the build's output).
    users: BTreeMap<String, Vec<String>>,
    builds: HashMap<String, (u64, Cancel)>,
    /// How many builds may run at once (half the CPUs, at least one).
    build_slots: Arc<tokio::sync::Semaphore>,
    runs: HashMap<String, (u64, Cancel)>,
    /// Serve commands running, by local resource.
    serves: Arc<Mutex<HashMap<String, Cancel>>>,
    waits: HashMap<String, tokio::task::JoinHandle<()>>,
}

/// The follow tasks of every resource, aborted on stop.
fn follow_tasks() -> &'static Arc<Mutex<tokio::task::JoinSet<()>>> {
    static TASKS: std::sync::OnceLock<Arc<Mutex<tokio::task::JoinSet<()>>>> =
        std::sync::OnceLock::new();
    TASKS.get_or_init(|| Arc::new(Mutex::new(tokio::task::JoinSet::new())))
}

use crate::host::lock;

impl Workers for ClusterWorkers {
    fn dispatch(&mut self, cmd: Command, events: &mpsc::UnboundedSender<Event>) {
        let tx = events.clone();
        match cmd {
            Command::Build { image, generation } => {
                let cancel = Cancel::new();
                self.builds
                    .insert(image.clone(), (generation, cancel.clone()));
                let cfg = self.cfg.clone();
                let store = self.cluster.get().and_then(|p| p.store.clone());
                let logs = self.logs.clone();
                let users = self.users.get(&image).cloned().unwrap_or_default();
                let slots = self.build_slots.clone();
                tokio::spawn(async move {
                    // Builds of different images run side by side, up to the limit.
                    let permit = slots.acquire_owned().await;
                    let result = tokio::task::spawn_blocking(move || {
                        let r = build_image(&cfg, &image, store.as_ref(), &cancel, &logs, &users);
                        drop(permit);
                        (image, r)
                    })
                    .await;
                    if let Ok((image, result)) = result {
                        let _ = tx.send(Event::BuildDone {
                            image,
                            generation,
                            result,
                        });
                    }
                });
            }
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
            } => {
                let cfg = self.cfg.clone();
                let cluster = self.cluster.clone();
                let logs = self.logs.clone();
                let handle = tokio::runtime::Handle::current();
                let shared_applied = self.shared_applied.clone();
                let followed = self.followed.clone();
                let (ci, live) = (self.ci, self.live.clone());
                tokio::task::spawn_blocking(move || {
                    let prepared = cluster.get();
                    let result = deploy_resources(
                        &cfg,
                        &handle,
                        prepared.map(|p| &p.target),
                        prepared.and_then(|p| p.discovery.as_deref()),
                        &resources,
                        &references,
                        &shared_applied,
                    );
                    // From its first deploy on, a resource's forwards and logs are followed.
                    if let (Ok(()), Some(_), false) = (&result, prepared, ci) {
                        for name in &resources {
                            if !lock(&followed).insert(name.clone()) {
                                continue;
                            }
                            let Some(r) = cfg.resources.iter().find(|r| &r.name == name).cloned()
                            else {
                                continue;
                            };
                            let (cluster, logs, live) =
                                (cluster.clone(), logs.clone(), live.clone());
                            handle.spawn(async move {
                                if let Some(p) = cluster.get() {
                                    follow_one(r, p, logs, live, follow_tasks().clone()).await;
                                }
                            });
                        }
                    }
                    for r in &resources {
                        let text = match &result {
                            Ok(()) => format!("deployed with {}", refs_text(&references)),
                            Err(e) => format!("deploy failed: {e}"),
                        };
                        logs.push(r, "deploy", &text);
                    }
                    if let Err(e) = &result {
                        out::say_for("failed", &resources.join(", "), &format!("deploy: {e}"));
                    }
                    let _ = tx.send(Event::DeployDone {
                        generation,
                        result: result.map_err(|e| format!("{e:#}")),
                    });
                });
            }
            Command::Wait { resources } => {
                let Some(target) = self.cluster.get().map(|p| p.target.clone()) else {
                    return;
                };
                let ci = self.ci;
                for name in resources {
                    let Some(r) = self.cfg.resources.iter().find(|r| r.name == name).cloned()
                    else {
                        continue;
                    };
                    if let Some(old) = self.waits.remove(&name) {
                        old.abort();
                    }
                    let tx = tx.clone();
                    let target = target.clone();
                    let outcomes = self.outcomes.clone();
                    let task = tokio::spawn(async move {
                        let started = std::time::Instant::now();
                        let mut health = super::up::HealthLines::new(&r.name);
                        let mut pods = rollout::PodCounts::default();
                        let tx2 = tx.clone();
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
                                    let _ = tx2.send(Event::Problem {
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
                                super::up::say_ready(&r, pods, took);
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
                    });
                    self.waits.insert(name, task);
                }
            }
            Command::Run {
                resource,
                generation,
            } => {
                // A change restarts the serve command: the old one goes first.
                if let Some(old) = lock(&self.serves).remove(&resource) {
                    old.cancel();
                }
                let cancel = Cancel::new();
                self.runs
                    .insert(resource.clone(), (generation, cancel.clone()));
                let Some(local) = self.cfg.locals.iter().find(|l| l.name == resource).cloned()
                else {
                    return;
                };
                let logs = self.logs.clone();
                let serves = self.serves.clone();
                tokio::task::spawn_blocking(move || {
                    let result = match &local.cmd {
                        Some(cmd) => run_local(&local, cmd, RUN_TIMEOUT, &cancel, &logs),
                        None => Ok(()),
                    };
                    let serve = match (&result, &local.serve_cmd) {
                        (Ok(()), Some(s)) if !cancel.is_cancelled() => {
                            let sc = Cancel::new();
                            lock(&serves).insert(local.name.clone(), sc.clone());
                            Some((s.clone(), sc))
                        }
                        _ => None,
                    };
                    let _ = tx.send(Event::RunDone {
                        resource: local.name.clone(),
                        generation,
                        result,
                    });
                    if let Some((serve_cmd, sc)) = serve {
                        out::say_for("serving", &local.name, &serve_cmd);
                        let ended = run_local(&local, &serve_cmd, SERVE_TIMEOUT, &sc, &logs);
                        if !sc.is_cancelled() {
                            let message = match ended {
                                Ok(()) => format!("`{serve_cmd}` exited"),
                                Err(e) => e,
                            };
                            let _ = tx.send(Event::Unhealthy {
                                resource: local.name,
                                message,
                            });
                        }
                    }
                });
            }
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
            Command::Stop => {
                for (_, c) in self.builds.values().chain(self.runs.values()) {
                    c.cancel();
                }
                for c in lock(&self.serves).values() {
                    c.cancel();
                }
                for w in self.waits.values() {
                    w.abort();
                }
                lock(follow_tasks()).abort_all();
                exec::kill_all();
            }
        }
    }
}

fn refs_text(references: &BTreeMap<String, String>) -> String {
    references.values().cloned().collect::<Vec<_>>().join(", ")
}

/// One image build for the engine: output to the terminal and to the logs of the resources
/// that run the image.
fn build_image(
    cfg: &Config,
    name: &str,
    store: Option<&ImageStore>,
    cancel: &Cancel,
    logs: &Logs,
    users: &[String],
) -> Result<String, String> {
    let Some(image) = cfg.images.iter().find(|i| i.name == name) else {
        return Err(format!("no image `{name}` in the config"));
    };
    out::say_for("building", name, "");
    let r = build::run::build_one(cfg, image, store, Some(cancel), &mut |l| {
        out::tool(name, l);
        for u in users {
            logs.push(u, "build", l);
        }
    });
    match r {
        Ok(b) => {
            let text = match b.outcome {
                build::run::Outcome::Built => {
                    let text = format!("{} ({:.1}s)", b.reference, b.duration.as_secs_f64());
                    out::say("built", &text);
                    text
                }
                build::run::Outcome::Present => {
                    out::say("present", format!("{} (nothing to build)", b.reference));
                    format!("{} (already present)", b.reference)
                }
            };
            for u in users {
                logs.push(u, "build", &format!("built {text}"));
            }
            Ok(b.reference)
        }
        Err(BuildError::Exec(ExecError::Cancelled { .. })) => Err("cancelled".into()),
        Err(e) => {
            out::say_for("failed", name, &format!("{e}"));
            for u in users {
                for l in e.to_string().lines() {
                    logs.push(u, "build", l);
                }
            }
            Err(e.to_string())
        }
    }
}

/// Runs a local resource's command line with `sh -c` in its workdir and environment,
/// output to the terminal and its log. The error says how it ended, with its last lines.
fn run_local(
    local: &config::LocalResource,
    line: &str,
    timeout: Duration,
    cancel: &Cancel,
    logs: &Logs,
) -> Result<(), String> {
    let mut cmd = Cmd::new("/bin/sh")
        .args(["-c", line])
        .timeout(timeout)
        .cancel(cancel);
    cmd.dir = Some(local.workdir.clone());
    cmd.env = local
        .env
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let f = exec::run_lines(&cmd, |l| {
        out::output(&local.name, "", l);
        logs.push(&local.name, "cmd", l);
    })
    .map_err(|e| e.to_string())?;
    match f.code {
        Some(0) => Ok(()),
        code => {
            let lines: Vec<&str> = f.stdout.lines().collect();
            let last = lines[lines.len().saturating_sub(5)..].join("\n  | ");
            Err(format!(
                "`{line}` exited with {}{}",
                code.map_or("a signal".to_owned(), |c| format!("code {c}")),
                if last.is_empty() {
                    String::new()
                } else {
                    format!(":\n  | {last}")
                }
            ))
        }
    }
}

/// One deploy of `resources` with `references`: one helm upgrade for the release, and the
/// manifest objects that are these resources' workloads.
fn deploy_resources(
    cfg: &Config,
    handle: &tokio::runtime::Handle,
    target: Option<&Target>,
    discovery: Option<&kube::discovery::Discovery>,
    resources: &[String],
    references: &BTreeMap<String, String>,
    shared_applied: &Mutex<bool>,
) -> Result<()> {
    // The first deploy says how each image was rewritten.
    let first = !*lock(shared_applied);
    let docs = if cfg.deploy.manifests.is_empty() {
        Vec::new()
    } else {
        super::up::load_manifests(cfg, references, first)?
    };
    // The first deploy puts in what is no resource's workload first: Services, ConfigMaps...
    {
        let mut applied = lock(shared_applied);
        if !*applied && docs.iter().any(|d| d.owner.is_none()) {
            let (Some(target), Some(discovery)) = (target, discovery) else {
                anyhow::bail!("no cluster to apply the manifests to");
            };
            super::up::apply_docs(
                handle,
                target,
                discovery,
                cfg,
                docs.iter().filter(|d| d.owner.is_none()),
            )?;
        }
        *applied = true;
    }
    if let Some(h) = &cfg.deploy.helm {
        let images: BTreeMap<String, (String, String)> = references
            .iter()
            .filter_map(|(n, r)| {
                r.rsplit_once(':')
                    .map(|(repo, tag)| (n.clone(), (repo.to_owned(), tag.to_owned())))
            })
            .collect();
        let argv = deploy::helm::upgrade_command(cfg, h, &images);
        super::up::run_helm(cfg, &argv, Duration::from_secs(600))?;
        out::say(
            "deployed",
            format!("helm release `{}` in {}", h.release, cfg.deploy.namespace),
        );
    }
    if !cfg.deploy.manifests.is_empty() {
        let (Some(target), Some(discovery)) = (target, discovery) else {
            anyhow::bail!("no cluster to apply the manifests to");
        };
        let wanted: BTreeSet<&str> = resources.iter().map(String::as_str).collect();
        super::up::apply_docs(
            handle,
            target,
            discovery,
            cfg,
            docs.iter()
                .filter(|d| d.owner.as_deref().is_some_and(|o| wanted.contains(o))),
        )?;
    }
    out::say(
        "deployed",
        format!("{} with {}", resources.join(", "), refs_text(references)),
    );
    Ok(())
}
