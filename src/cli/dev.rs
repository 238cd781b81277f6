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

/// What bring-up leaves for the dev loop.
pub struct Setup {
    pub cfg: Arc<Config>,
    /// The cluster, when the project has one.
    pub target: Option<Target>,
    pub store: Option<ImageStore>,
    pub discovery: Option<Arc<kube::discovery::Discovery>>,
    /// The cluster resources that were deployed (not skipped): forwards and logs follow them.
    pub deployed: Vec<config::Resource>,
    pub node_ip: Option<String>,
    /// Image name -> the reference bring-up built or found.
    pub references: BTreeMap<String, String>,
    /// Cluster resource -> how bring-up left it.
    pub statuses: BTreeMap<String, (Status, Option<String>)>,
    /// Cluster resource -> the images it runs.
    pub resource_images: BTreeMap<String, Vec<String>>,
    pub ci: bool,
    /// Bring-up's build output: `(image, time_ms, line)`.
    pub build_lines: Vec<(String, u64, String)>,
    /// The file watcher, started before bring-up so that a save during its builds is seen.
    pub watch: Option<Watching>,
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
pub fn graph(cfg: &Config, resource_images: &BTreeMap<String, Vec<String>>) -> Graph {
    let mut resources: Vec<Node> = cfg
        .resources
        .iter()
        .map(|r| Node {
            name: r.name.clone(),
            images: resource_images.get(&r.name).cloned().unwrap_or_default(),
            depends_on: r.depends_on.clone(),
            manual: r.trigger == config::TriggerMode::Manual,
            local: false,
        })
        .collect();
    resources.extend(cfg.locals.iter().map(|l| Node {
        name: l.name.clone(),
        images: Vec::new(),
        depends_on: l.depends_on.clone(),
        manual: l.trigger == config::TriggerMode::Manual,
        local: true,
    }));
    Graph {
        images: cfg.images.iter().map(|i| i.name.clone()).collect(),
        resources,
    }
}

/// Runs the dev loop to its end. `state_dir` is the project's state directory (the daemon's
/// lock, record and token); `doctor` the report `up` ran, for the page and the API.
pub async fn session(
    mut setup: Setup,
    state_dir: &std::path::Path,
    doctor: serde_json::Value,
) -> Result<ExitCode> {
    let cfg = setup.cfg.clone();
    let logs = Logs::new(cfg.web.log_buffer);
    // Bring-up's builds start the logs of the resources that run their images.
    let image_users = users(&setup.resource_images);
    for (image, time_ms, line) in &setup.build_lines {
        for r in image_users.get(image).into_iter().flatten() {
            logs.with(r, |b| {
                b.push(*time_ms, "build", line);
            });
        }
    }
    let mut tasks = tokio::task::JoinSet::new();
    let (live_tx, live_rx) = watch::channel(BTreeMap::new());
    let live_tx = Arc::new(live_tx);
    if let (Some(target), false) = (&setup.target, setup.ci) {
        follow_cluster(&cfg, target, &setup, &logs, &live_tx, &mut tasks).await?;
    }

    let mut state = State::new(graph(&cfg, &setup.resource_images));
    for (image, reference) in &setup.references {
        state.seed_image(image, reference);
    }
    for (name, (status, error)) in &setup.statuses {
        state.seed_resource(name, *status, error.clone());
    }
    let (tx, rx) = mpsc::unbounded_channel();
    let (snap_tx, snap_rx) = watch::channel(driver::initial(&state));

    // Without --ci, file changes feed the engine.
    let watcher = if setup.ci {
        None
    } else {
        let (w, mut batches) = match setup.watch.take() {
            Some(started) => started,
            None => start_watching(&cfg)?,
        };
        let tx = tx.clone();
        let root = cfg.root.clone();
        tasks.spawn(async move {
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
        });
        Some(w)
    };
    // The view starts from the state before anything ran (taken now, not when its task first
    // runs: a fast change would already be in the snapshot and never printed).
    let first: BTreeMap<String, Status> = state
        .resources
        .iter()
        .map(|(n, r)| (n.clone(), r.status))
        .collect();
    let view_task = tokio::spawn(view(snap_rx.clone(), cfg.clone(), first));
    // The status page and the API (not with --ci).
    if !setup.ci {
        let proc_root = doctor::Env::from_process().proc_root;
        let listener = web::listen(cfg.web.port, &proc_root)
            .await
            .map_err(|e| anyhow::anyhow!("the status page: {e}\n  hint: {}", e.hint()))?;
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
            context: setup.target.as_ref().map(|t| t.context.clone()),
            cpus: cfg.needs_cluster().then_some(cfg.cluster.cpus),
            memory_mb: cfg.needs_cluster().then_some(cfg.cluster.memory_mb),
        };
        tasks.spawn(web::serve(
            listener,
            web::Shared {
                snapshots: snap_rx.clone(),
                live: live_rx.clone(),
                logs: logs.clone(),
                events: tx.clone(),
                header,
                resources: resource_infos(&cfg, &setup.resource_images),
                doctor,
                token: token.clone(),
                session,
                port,
            },
        ));
        // The address signs the browser in (the page carries no credential of its own).
        out::say("page", format!("http://127.0.0.1:{port}/?token={token}"));
    }

    let mut workers = ClusterWorkers {
        cfg: cfg.clone(),
        target: setup.target.clone(),
        store: setup.store.clone(),
        discovery: setup.discovery.clone(),
        logs: logs.clone(),
        users: image_users,
        builds: HashMap::new(),
        build_slots: Arc::new(tokio::sync::Semaphore::new(
            build::run::default_parallelism(),
        )),
        runs: HashMap::new(),
        serves: Arc::new(Mutex::new(HashMap::new())),
        waits: HashMap::new(),
    };
    let _ = tx.send(Event::Start);
    if !setup.ci {
        out::say(
            "running",
            "Ctrl-C stops devenv; the cluster and the workloads stay up",
        );
    }
    let stopper = {
        let tx = tx.clone();
        let mut snaps = snap_rx.clone();
        let ci = setup.ci;
        tokio::spawn(async move {
            if ci {
                // --ci: stop once nothing is in flight any more.
                loop {
                    if snaps.changed().await.is_err() {
                        return;
                    }
                    if settled(&snaps.borrow().state) {
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
    };
    let end = driver::run(state, rx, tx.clone(), &mut workers, &snap_tx).await;
    // The view prints the last changes before it ends.
    drop(snap_tx);
    let _ = tokio::time::timeout(Duration::from_millis(300), view_task).await;
    out::set_progress("");
    stopper.abort();
    drop(watcher);
    tasks.abort_all();
    exec::kill_all();
    if setup.ci {
        summary_of_locals(&cfg, &end);
        // A manual local resource that nobody triggered is not a failure.
        let ok = end.resources.iter().all(|(n, r)| {
            r.status == Status::Ready
                || cfg.locals.iter().any(|l| &l.name == n && untriggered(l, r))
        });
        return Ok(if ok {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        });
    }
    Ok(ExitCode::SUCCESS)
}

/// Nothing builds, deploys, waits or runs.
fn settled(s: &State) -> bool {
    s.images.values().all(|i| i.building.is_none())
        && s.resources.values().all(|r| {
            r.running.is_none()
                && !matches!(
                    r.status,
                    Status::Building | Status::Deploying | Status::Waiting
                )
        })
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
    mut last: BTreeMap<String, Status>,
) {
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    let started = tokio::time::Instant::now();
    let mut show = |snap: &Snapshot| {
        for (name, r) in &snap.state.resources {
            if last.get(name) == Some(&r.status) {
                continue;
            }
            last.insert(name.clone(), r.status);
            let local = cfg.locals.iter().any(|l| &l.name == name);
            match r.status {
                Status::Building if local => out::say_for("running", name, ""),
                Status::Deploying => out::say_for("deploying", name, ""),
                Status::Ready if local => out::say_for("ready", name, ""),
                Status::Error => {
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

/// Port-forwards, NodePort URLs, links and log following for every deployed resource.
async fn follow_cluster(
    cfg: &Arc<Config>,
    target: &Target,
    setup: &Setup,
    logs: &Logs,
    live: &Arc<watch::Sender<BTreeMap<String, web::Live>>>,
    tasks: &mut tokio::task::JoinSet<()>,
) -> Result<()> {
    let proc_root = doctor::Env::from_process().proc_root;
    // Services per namespace, listed once, for NodePort URLs.
    let mut services: BTreeMap<String, Vec<k8s_openapi::api::core::v1::Service>> = BTreeMap::new();
    for r in &setup.deployed {
        let pods = deploy::pods::watch(&target.client, &r.namespace, &r.workload).await?;
        for pf in &r.port_forwards {
            let listener = deploy::forward::listen(pf.local, &proc_root)
                .await
                .map_err(|e| anyhow::anyhow!("{}: {e}\n  hint: {}", r.name, e.hint()))?;
            out::say(
                "forward",
                format!(
                    "{}: http://127.0.0.1:{} -> {}:{}",
                    r.name, pf.local, r.workload, pf.remote
                ),
            );
            tasks.spawn(deploy::forward::serve(
                listener,
                pods.clone(),
                pf.remote,
                warn(&r.name, "forward", logs, live),
            ));
        }
        if let Some(ip) = &setup.node_ip {
            if !services.contains_key(&r.namespace) {
                let api: kube::Api<k8s_openapi::api::core::v1::Service> =
                    kube::Api::namespaced(target.client.clone(), &r.namespace);
                let listed = api.list(&Default::default()).await.map(|l| l.items);
                if let Err(e) = &listed {
                    eprintln!("warning: cannot list the Services in {}: {e}", r.namespace);
                }
                services.insert(r.namespace.clone(), listed.unwrap_or_default());
            }
            let in_ns = services.get(&r.namespace).map_or(&[][..], Vec::as_slice);
            for url in deploy::forward::node_urls(in_ns, &pods.template_labels, ip) {
                out::say("url", format!("{}: {url}", r.name));
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
            tasks.spawn(async move {
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
        let report = warn(&r.name, "logs", logs, live);
        let logs = logs.clone();
        tasks.spawn(deploy::logs::follow(
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
    for l in &cfg.locals {
        for link in &l.links {
            out::say("link", format!("{}: {link}", l.name));
        }
    }
    Ok(())
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
    target: Option<Target>,
    store: Option<ImageStore>,
    discovery: Option<Arc<kube::discovery::Discovery>>,
    logs: Logs,
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

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

impl Workers for ClusterWorkers {
    fn dispatch(&mut self, cmd: Command, events: &mpsc::UnboundedSender<Event>) {
        let tx = events.clone();
        match cmd {
            Command::Build { image, generation } => {
                let cancel = Cancel::new();
                self.builds
                    .insert(image.clone(), (generation, cancel.clone()));
                let cfg = self.cfg.clone();
                let store = self.store.clone();
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
                let target = self.target.clone();
                let discovery = self.discovery.clone();
                let logs = self.logs.clone();
                let handle = tokio::runtime::Handle::current();
                tokio::task::spawn_blocking(move || {
                    let result = deploy_resources(
                        &cfg,
                        &handle,
                        target.as_ref(),
                        discovery.as_deref(),
                        &resources,
                        &references,
                    );
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
                let Some(target) = self.target.clone() else {
                    return;
                };
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
                            false,
                            &mut |u| {
                                pods = u.pods;
                                if let Some(message) = health.show(u.health) {
                                    let _ = tx2.send(Event::Unhealthy {
                                        resource: n.clone(),
                                        message,
                                    });
                                }
                            },
                        )
                        .await;
                        match res {
                            Ok(()) => {
                                super::up::say_ready(&r, pods, started.elapsed());
                                let _ = tx.send(Event::Ready { resource: r.name });
                            }
                            Err(e) => {
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
                    format!("{} ({:.1}s)", b.reference, b.duration.as_secs_f64())
                }
                build::run::Outcome::Present => format!("{} (already present)", b.reference),
            };
            out::say("built", &text);
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
) -> Result<()> {
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
    }
    if !cfg.deploy.manifests.is_empty() {
        let (Some(target), Some(discovery)) = (target, discovery) else {
            anyhow::bail!("no cluster to apply the manifests to");
        };
        let wanted: BTreeSet<&str> = resources.iter().map(String::as_str).collect();
        let docs = super::up::load_manifests(cfg, references)?;
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
