//! `devenv up`: the whole bring-up, from the doctor gate to ready resources.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use serde_norway::Value;

use super::{daemon, dev, out};
use crate::cluster::bootstrap;
use crate::cluster::kube::Target;
use crate::cluster::minikube::{Action, ImageStore};
use crate::config::{self, Loaded};
use crate::deploy::rollout::{self, Health, PodCounts};
use crate::{build, deploy, doctor, engine, exec, plan};

#[derive(Debug, Clone, Copy)]
pub struct Options {
    pub recreate_cluster: bool,
    pub ci: bool,
}

/// `devenv up`: doctor, the cluster, secrets, builds, deploys in dependency order and
/// readiness; with `--ci` a summary and an exit code.
pub fn up(loaded: &Loaded, shown: String, plan: &plan::Plan, opts: Options) -> Result<ExitCode> {
    let recreate_cluster = opts.recreate_cluster;
    let cfg = &loaded.config;
    // One daemon per project; what a crashed one left running goes first.
    let lock = daemon::acquire(cfg)?;
    let leftovers = exec::kill_leftovers(&lock.groups_file());
    if leftovers > 0 {
        out::say(
            "cleaned",
            format!(
                "{leftovers} process group(s) left running by an earlier devenv that did not stop cleanly"
            ),
        );
    }
    exec::record_groups(&lock.groups_file());
    let rt = super::runtime()?;
    // Ctrl-C or SIGTERM before the dev loop takes over (doctor, the cluster, the first
    // builds, readiness): every process group devenv started is killed, then devenv ends.
    let guard = rt.spawn(async {
        dev::wait_for_stop().await;
        out::say(
            "stopping",
            "interrupted during bring-up: every command devenv started is stopped; the cluster is left as it is",
        );
        exec::kill_all();
        std::process::exit(1);
    });
    // Nothing is touched unless the machine can run the plan.
    let state = doctor::ConfigState::Valid {
        config: cfg,
        shown,
        warnings: loaded.warnings.len(),
    };
    let mut report = doctor::run(&state, &doctor::Env::from_process());
    if recreate_cluster {
        // A profile of the wrong size is what --recreate-cluster is for.
        for c in report
            .checks
            .iter_mut()
            .filter(|c| c.id == "minikube.profile")
        {
            if c.status == doctor::Status::Fail {
                c.status = doctor::Status::Warn;
                report.summary.fail -= 1;
                report.summary.warn += 1;
            }
        }
    }
    if report.failed() {
        let color = doctor::use_color(std::io::stderr().is_terminal());
        eprintln!("devenv up: the machine is not ready; nothing was started.\n");
        eprint!("{}", doctor::render(&report, color, true));
        eprintln!(
            "\n{}  (`devenv doctor` shows every check)",
            doctor::summary_line(&report)
        );
        return Ok(ExitCode::FAILURE);
    }
    let setup = if cfg.needs_cluster() {
        // Watching starts before the first builds: a save while they run is built after them.
        let watching = if opts.ci {
            None
        } else {
            let _in_runtime = rt.enter();
            Some(dev::start_watching(cfg)?)
        };
        match bring_up(&rt, cfg, plan, opts)? {
            Ok(setup) => dev::Setup {
                watch: watching,
                ..setup
            },
            Err(code) => return Ok(code),
        }
    } else {
        // Only [[local]] resources: no cluster, no Docker, no Minikube.
        dev::Setup {
            cfg: std::sync::Arc::new(cfg.clone()),
            target: None,
            store: None,
            discovery: None,
            deployed: Vec::new(),
            node_ip: None,
            references: BTreeMap::new(),
            statuses: BTreeMap::new(),
            resource_images: BTreeMap::new(),
            ci: opts.ci,
            build_lines: Vec::new(),
            watch: None,
        }
    };
    let doctor_json = serde_json::to_value(&report).unwrap_or_default();
    // The dev loop stops cleanly on its own.
    guard.abort();
    let code = rt.block_on(dev::session(setup, lock.dir(), doctor_json))?;
    // Forwards, log streams and watches end with the runtime; the cluster stays as it is.
    rt.shutdown_timeout(Duration::from_millis(500));
    drop(lock);
    Ok(code)
}

/// Brings the cluster side up: cluster, secrets, builds, deploys in dependency order,
/// readiness, prune and the summary. Returns what the dev loop needs, or the exit code when
/// `up` ends here (`--ci` with nothing local to run, or a failure).
fn bring_up(
    rt: &tokio::runtime::Runtime,
    cfg: &config::Config,
    plan: &plan::Plan,
    opts: Options,
) -> Result<Result<dev::Setup, ExitCode>> {
    let recreate_cluster = opts.recreate_cluster;
    let helm_step = plan.steps.iter().find_map(|s| match s {
        plan::Step::Helm {
            render, command, ..
        } => Some((render.clone(), command.clone())),
        _ => None,
    });
    if let Some(h) = &cfg.deploy.helm {
        chart_dependencies(cfg, h)?;
    }
    // The chart is rendered before anything is touched: what it does decides what devenv does.
    let own_namespaces = match &helm_step {
        Some((render, _)) => inspect_chart(cfg, plan, render)?,
        None => Vec::new(),
    };
    let ready = rt.block_on(bootstrap::bring_up(
        cfg,
        &super::kubeconfig_files(),
        recreate_cluster,
        &own_namespaces,
        &mut |line| {
            out::tool("minikube", line);
        },
    ))?;
    let c = &cfg.cluster;
    if let Some(action) = &ready.action {
        let what = match action {
            Action::AlreadyRunning => "already running",
            Action::Created => "created",
            Action::Started => "started",
            Action::Recreated => "recreated",
        };
        out::say(
            "cluster",
            format!(
                "minikube profile `{}` {what} ({} CPUs, {} MB)",
                c.profile, c.cpus, c.memory_mb
            ),
        );
    }
    for a in &ready.addons_enabled {
        out::say("addon", format!("{a} enabled"));
    }
    match &ready.image_store {
        Some(ImageStore::DockerEnv(env)) => out::say(
            "images",
            format!(
                "built in Minikube's Docker daemon ({})",
                env.get("DOCKER_HOST").map_or("?", String::as_str)
            ),
        ),
        Some(ImageStore::HostDaemon) => out::say(
            "images",
            "built in the host's Docker daemon: the `none` driver runs the cluster there",
        ),
        Some(ImageStore::MinikubeImageBuild { runtime }) => out::say(
            "images",
            format!(
                "built with `minikube image build`: the cluster's runtime is {runtime}, not Docker"
            ),
        ),
        None => {}
    }
    out::say(
        "context",
        format!(
            "`{}`{}",
            ready.target.context,
            ready
                .target
                .server
                .as_ref()
                .map_or(String::new(), |s| format!(" ({s})"))
        ),
    );
    for ns in &ready.namespaces_created {
        out::say("namespace", format!("`{ns}` created"));
    }
    for secret in &cfg.secrets {
        let prepared = deploy::secrets::prepare(secret, &|f| cfg.rel(f))?;
        for w in &prepared.warnings {
            eprintln!("warning: {w}");
        }
        rt.block_on(deploy::secrets::apply(&ready.target, cfg, &prepared))?;
        out::say(
            "secret",
            format!(
                "`{}` in {} ({} key{}, values not shown)",
                prepared.name,
                prepared.namespace,
                prepared.values.0.len(),
                if prepared.values.0.len() == 1 {
                    ""
                } else {
                    "s"
                }
            ),
        );
    }
    let names: Vec<String> = cfg.images.iter().map(|i| i.name.clone()).collect();
    let build_lines = super::BuildLines::default();
    let Some(references) = super::run_builds(
        cfg,
        &names,
        ready.image_store.as_ref(),
        build::run::default_parallelism(),
        Some(&build_lines),
    ) else {
        return Ok(Err(ExitCode::FAILURE));
    };
    let docs = load_manifests(cfg, &references)?;
    let inventory = build::context::state_dir()
        .map(|s| deploy::apply::inventory_path(&s, &cfg.root, &ready.target.context));
    let previous = inventory
        .as_deref()
        .map(deploy::apply::load_inventory)
        .unwrap_or_default();
    let discovery = if docs.is_empty() && previous.is_empty() {
        None
    } else {
        Some(rt.block_on(deploy::apply::discover(&ready.target))?)
    };
    // Everything that is not a resource's workload goes first: Services, ConfigMaps...
    if let Some(d) = &discovery {
        apply_docs(
            rt.handle(),
            &ready.target,
            d,
            cfg,
            docs.iter().filter(|m| m.owner.is_none()),
        )?;
    }
    if let Some((_, upgrade)) = &helm_step {
        helm_upgrade(cfg, upgrade)?;
    }
    let mut results: BTreeMap<String, Outcome> = BTreeMap::new();
    for wave in plan::waves(cfg) {
        let mut waiting = Vec::new();
        for name in wave {
            let Some(r) = cfg.resources.iter().find(|r| r.name == name) else {
                continue;
            };
            if let Some(dep) = r.depends_on.iter().find(|d| {
                results
                    .get(*d)
                    .is_some_and(|o| !matches!(o, Outcome::Ready { .. }))
            }) {
                out::say("skipped", format!("{}: `{dep}` is not ready", r.name));
                results.insert(r.name.clone(), Outcome::Skipped(dep.clone()));
                continue;
            }
            if let Some(d) = &discovery {
                let owned = docs.iter().filter(|m| m.owner.as_deref() == Some(&r.name));
                apply_docs(rt.handle(), &ready.target, d, cfg, owned)?;
            }
            waiting.push(r);
        }
        let outcomes = rt.block_on(futures::future::join_all(
            waiting.iter().map(|r| wait_one(&ready.target, r, opts.ci)),
        ));
        for (r, o) in waiting.iter().zip(outcomes) {
            results.insert(r.name.clone(), o);
        }
    }
    if let (Some(d), Some(path)) = (&discovery, &inventory) {
        prune(rt, &ready.target, d, cfg, &docs, &previous, path)?;
    }
    print_summary(cfg, &results);
    let all_ready = results.values().all(|o| matches!(o, Outcome::Ready { .. }));
    if opts.ci && (cfg.locals.is_empty() || !all_ready) {
        return Ok(Err(if all_ready {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        }));
    }
    let deployed: Vec<config::Resource> = cfg
        .resources
        .iter()
        .filter(|r| !matches!(results.get(&r.name), Some(Outcome::Skipped(_)) | None))
        .cloned()
        .collect();
    let node_ip = match cfg.cluster.provider {
        config::Provider::Minikube => crate::cluster::minikube::Minikube {
            cfg,
            query_timeout: Duration::from_secs(30),
        }
        .ip()
        .map_err(|e| eprintln!("warning: no NodePort URLs: {e}"))
        .ok(),
        config::Provider::Existing => None,
    };
    let statuses = results
        .iter()
        .map(|(name, o)| {
            let s = match o {
                Outcome::Ready { .. } => (engine::state::Status::Ready, None),
                Outcome::Failed { error, .. } => {
                    (engine::state::Status::Error, Some(error.clone()))
                }
                Outcome::Skipped(dep) => (
                    engine::state::Status::Pending,
                    Some(format!("not deployed: `{dep}` is not ready")),
                ),
            };
            (name.clone(), s)
        })
        .collect();
    let resource_images = resource_images(cfg, &docs, &references);
    Ok(Ok(dev::Setup {
        cfg: std::sync::Arc::new(cfg.clone()),
        target: Some(ready.target.clone()),
        store: ready.image_store.clone(),
        discovery: discovery.map(std::sync::Arc::new),
        deployed,
        node_ip,
        references,
        statuses,
        resource_images,
        ci: opts.ci,
        build_lines: build_lines.into_inner().unwrap_or_default(),
        watch: None,
    }))
}

/// The images each resource runs: as configured, else those its manifest objects name, else
/// (with Helm) every image injected into the chart.
fn resource_images(
    cfg: &config::Config,
    docs: &[Doc],
    references: &BTreeMap<String, String>,
) -> BTreeMap<String, Vec<String>> {
    let by_reference: BTreeMap<&str, &str> = references
        .iter()
        .map(|(n, r)| (r.as_str(), n.as_str()))
        .collect();
    cfg.resources
        .iter()
        .map(|r| {
            let images = match &r.images {
                Some(list) => list.clone(),
                None => {
                    let mut found = Vec::new();
                    for d in docs.iter().filter(|d| d.owner.as_deref() == Some(&r.name)) {
                        let mut containers = Vec::new();
                        deploy::manifests::collect_containers(&d.doc, &mut containers);
                        for (_, image, _) in containers {
                            if let Some(n) = by_reference.get(image.as_str()) {
                                found.push((*n).to_owned());
                            }
                        }
                    }
                    if found.is_empty()
                        && let Some(h) = &cfg.deploy.helm
                    {
                        found = h.images.iter().map(|i| i.image.clone()).collect();
                    }
                    found.sort();
                    found.dedup();
                    found
                }
            };
            (r.name.clone(), images)
        })
        .collect()
}

/// `ready      name (workload, x/y pods, Ns)`.
pub(super) fn say_ready(r: &config::Resource, pods: PodCounts, took: Duration) {
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
pub(super) struct HealthLines {
    name: String,
    shown: Option<Health>,
}

impl HealthLines {
    pub(super) fn new(name: &str) -> HealthLines {
        HealthLines {
            name: name.to_owned(),
            shown: None,
        }
    }

    /// Prints `health` if it differs from the last shown; returns the problem when that is
    /// what is new.
    pub(super) fn show(&mut self, health: &Health) -> Option<String> {
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

/// How a resource's bring-up ended.
#[derive(Debug)]
enum Outcome {
    Ready {
        took: Duration,
        pods: PodCounts,
    },
    Failed {
        pods: PodCounts,
        error: String,
    },
    /// Not deployed: the named dependency is not ready.
    Skipped(String),
}

/// Waits for one resource, printing each change of its health.
async fn wait_one(target: &Target, r: &config::Resource, fail_fast: bool) -> Outcome {
    let started = Instant::now();
    let mut pods = PodCounts::default();
    let mut health = HealthLines::new(&r.name);
    let mut on_update = |u: rollout::Update<'_>| {
        pods = u.pods;
        health.show(u.health);
    };
    let res = rollout::wait_ready(
        &target.client,
        &r.namespace,
        &r.workload,
        r.readiness_timeout,
        fail_fast,
        &mut on_update,
    )
    .await;
    match res {
        Ok(()) => {
            let took = started.elapsed();
            say_ready(r, pods, took);
            Outcome::Ready { took, pods }
        }
        Err(e) => {
            out::say("failed", format!("{}: {e}", r.name));
            Outcome::Failed {
                pods,
                error: e.to_string(),
            }
        }
    }
}

fn print_summary(cfg: &config::Config, results: &BTreeMap<String, Outcome>) {
    if cfg.resources.is_empty() {
        return;
    }
    let rows: Vec<[String; 5]> = cfg
        .resources
        .iter()
        .map(|r| {
            let (status, pods, time) = match results.get(&r.name) {
                Some(Outcome::Ready { took, pods }) => (
                    "ready".to_owned(),
                    format!("{}/{}", pods.ready, pods.total),
                    format!("{:.1}s", took.as_secs_f64()),
                ),
                Some(Outcome::Failed { pods, .. }) => (
                    "failed".to_owned(),
                    format!("{}/{}", pods.ready, pods.total),
                    "-".to_owned(),
                ),
                Some(Outcome::Skipped(_)) => ("skipped".to_owned(), "-".into(), "-".into()),
                None => ("-".to_owned(), "-".into(), "-".into()),
            };
            [r.name.clone(), r.workload.to_string(), status, pods, time]
        })
        .collect();
    for [name, workload, status, pods, time] in &rows {
        let why = match results.get(name) {
            Some(Outcome::Failed { error, .. }) => error.clone(),
            Some(Outcome::Skipped(dep)) => format!("not deployed, because `{dep}` is not ready"),
            _ => String::new(),
        };
        out::record(&[
            ("event", "summary"),
            ("resource", name),
            ("workload", workload),
            ("status", status),
            ("pods", pods),
            ("time", time),
            ("error", &why),
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
    for (name, o) in results {
        match o {
            Outcome::Failed { error, .. } => out::plain(&format!("\n{name}: {error}")),
            Outcome::Skipped(dep) => out::plain(&format!(
                "\n{name}: not deployed, because `{dep}` is not ready"
            )),
            Outcome::Ready { .. } => {}
        }
    }
}

/// One manifest object with devenv's images in place, and the resource whose workload it is.
pub(super) struct Doc {
    pub file: String,
    pub doc: Value,
    pub owner: Option<String>,
}

/// Reads every manifest file, rewrites images to the built references, and assigns each
/// object to the resource whose workload it is (if any).
pub(super) fn load_manifests(
    cfg: &config::Config,
    references: &BTreeMap<String, String>,
) -> Result<Vec<Doc>> {
    let mut out = Vec::new();
    for file in &cfg.deploy.manifests {
        let shown = cfg.rel(file);
        let text = std::fs::read_to_string(file).with_context(|| format!("cannot read {shown}"))?;
        let rewritten = deploy::manifests::rewrite(&text, references, &cfg.project)
            .map_err(|e| anyhow::anyhow!("{shown}: {e}"))?;
        for w in &rewritten.warnings {
            eprintln!("warning: {shown}: {w}");
        }
        for r in &rewritten.replacements {
            out::say(
                "image",
                format!("{} `{}`: {} -> {}", r.object, r.container, r.from, r.to),
            );
        }
        for doc in rewritten.docs {
            let kind = doc.get("kind").and_then(Value::as_str).unwrap_or("");
            let meta = doc.get("metadata");
            let name = meta.and_then(|m| m.get("name")).and_then(Value::as_str);
            let ns = meta
                .and_then(|m| m.get("namespace"))
                .and_then(Value::as_str)
                .unwrap_or(&cfg.deploy.namespace);
            let owner = cfg
                .resources
                .iter()
                .find(|r| {
                    r.workload.kind.as_str().eq_ignore_ascii_case(kind)
                        && Some(r.workload.name.as_str()) == name
                        && r.namespace == ns
                })
                .map(|r| r.name.clone());
            out.push(Doc {
                file: shown.clone(),
                doc,
                owner,
            });
        }
    }
    Ok(out)
}

/// Deletes what devenv applied last time and the manifests no longer have (only objects
/// still labelled as this project's), then records the current set.
fn prune(
    rt: &tokio::runtime::Runtime,
    target: &Target,
    discovery: &kube::discovery::Discovery,
    cfg: &config::Config,
    docs: &[Doc],
    previous: &[deploy::apply::ObjectRef],
    inventory: &std::path::Path,
) -> Result<()> {
    let mut current = Vec::new();
    for d in docs {
        current.extend(deploy::apply::refs(
            discovery,
            &d.file,
            std::slice::from_ref(&d.doc),
            &cfg.deploy.namespace,
        )?);
    }
    let stale: Vec<_> = previous
        .iter()
        .filter(|r| !current.contains(r))
        .cloned()
        .collect();
    for p in rt.block_on(deploy::apply::prune(
        target,
        discovery,
        &stale,
        &cfg.project,
    ))? {
        match p {
            deploy::apply::Pruned::Deleted(r) => {
                out::say("pruned", format!("{r}: no longer in the manifests"))
            }
            deploy::apply::Pruned::Kept(r) => out::say(
                "kept",
                format!(
                    "{r}: no longer in the manifests, but it is not labelled as {}'s any more",
                    cfg.project
                ),
            ),
        }
    }
    deploy::apply::save_inventory(inventory, &current)
        .with_context(|| format!("cannot write {}", inventory.display()))
}

/// Applies `docs`, file by file, printing what was applied.
pub(super) fn apply_docs<'a>(
    rt: &tokio::runtime::Handle,
    target: &Target,
    discovery: &kube::discovery::Discovery,
    cfg: &config::Config,
    docs: impl Iterator<Item = &'a Doc>,
) -> Result<()> {
    let mut by_file: Vec<(&str, Vec<Value>)> = Vec::new();
    for d in docs {
        match by_file.iter_mut().find(|(f, _)| *f == d.file) {
            Some((_, v)) => v.push(d.doc.clone()),
            None => by_file.push((&d.file, vec![d.doc.clone()])),
        }
    }
    for (file, docs) in by_file {
        let applied = rt.block_on(deploy::apply::apply(
            target,
            discovery,
            file,
            &docs,
            &cfg.deploy.namespace,
        ))?;
        out::say("applied", format!("{} from {file}", applied.join(", ")));
    }
    Ok(())
}

/// Renders the chart with the planned values and checks it; returns the namespaces it creates.
fn inspect_chart(
    cfg: &config::Config,
    plan: &plan::Plan,
    render: &[String],
) -> Result<Vec<String>> {
    let Some(helm) = &cfg.deploy.helm else {
        return Ok(Vec::new());
    };
    let cmd = exec::Cmd::new(render[0].clone())
        .args(render[1..].iter().cloned())
        .timeout(std::time::Duration::from_secs(120));
    let cmd = exec::Cmd {
        dir: Some(cfg.root.clone()),
        ..cmd
    };
    let f = exec::run(&cmd)?;
    if f.code != Some(0) {
        anyhow::bail!("`{}` failed:\n{}", cmd.display(), f.stderr.trim_end());
    }
    // repository -> tag of every image the chart should run.
    let injected: BTreeMap<String, String> = plan
        .steps
        .iter()
        .filter_map(|s| match s {
            plan::Step::Build {
                image,
                reference,
                tag,
                ..
            } if helm.images.iter().any(|h| &h.image == image) => {
                let repo = reference
                    .strip_suffix(&format!(":{tag}"))
                    .unwrap_or(reference);
                Some((repo.to_owned(), tag.clone()))
            }
            _ => None,
        })
        .collect();
    let secrets: Vec<String> = cfg.secrets.iter().map(|s| s.name.clone()).collect();
    let found =
        deploy::helm::inspect(&f.stdout, &injected, &secrets).map_err(anyhow::Error::msg)?;
    for w in &found.warnings {
        eprintln!("warning: chart {}: {w}", cfg.rel(&helm.chart));
    }
    if !found.errors.is_empty() {
        anyhow::bail!(
            "the chart {} does not run devenv's images; nothing was started:\n{}",
            cfg.rel(&helm.chart),
            found
                .errors
                .iter()
                .map(|e| format!("  {e}"))
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
    for ns in &found.own_namespaces {
        out::say(
            "namespace",
            format!("`{ns}` is rendered by the chart: it is made for Helm to own"),
        );
    }
    Ok(found.own_namespaces)
}

/// Runs `helm dependency build` when the chart's dependencies are missing from charts/;
/// refuses (with the command to run) when Chart.lock is out of date, a file the user owns.
fn chart_dependencies(cfg: &config::Config, helm: &config::Helm) -> Result<()> {
    let chart = cfg.rel(&helm.chart);
    match deploy::helm::dependencies(&helm.chart).map_err(|e| anyhow::anyhow!("{chart}/{e}"))? {
        deploy::helm::Dependencies::Ready => Ok(()),
        deploy::helm::Dependencies::OutOfSync { reason } => anyhow::bail!(
            "chart {chart}: {reason}; nothing was started\n  hint: run `helm dependency update {chart}` to rewrite Chart.lock (devenv leaves that file to you)"
        ),
        deploy::helm::Dependencies::Build { reason } => {
            out::say(
                "chart",
                format!("{chart}: {reason}; running `helm dependency build`"),
            );
            let argv = ["helm", "dependency", "build", chart.as_str()].map(str::to_owned);
            run_helm(cfg, &argv, Duration::from_secs(300))
        }
    }
}

/// Runs a helm command line from the project root with helm's output streamed; when it fails,
/// the error says which command and shows helm's last lines.
pub(super) fn run_helm(cfg: &config::Config, argv: &[String], timeout: Duration) -> Result<()> {
    let cmd = exec::Cmd {
        dir: Some(cfg.root.clone()),
        ..exec::Cmd::new(argv[0].clone())
            .args(argv[1..].iter().cloned())
            .timeout(timeout)
    };
    let f = exec::run_lines(&cmd, |l| out::tool("helm", l))?;
    if f.code != Some(0) {
        let lines: Vec<&str> = f.stdout.lines().filter(|l| !l.trim().is_empty()).collect();
        anyhow::bail!(
            "`{}` failed:\n{}",
            cmd.display(),
            lines[lines.len().saturating_sub(10)..]
                .iter()
                .map(|l| format!("  {l}"))
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
    Ok(())
}

/// `helm upgrade --install` with the built tags.
fn helm_upgrade(cfg: &config::Config, argv: &[String]) -> Result<()> {
    run_helm(cfg, argv, Duration::from_secs(600))?;
    if let Some(h) = &cfg.deploy.helm {
        out::say(
            "deployed",
            format!("helm release `{}` in {}", h.release, cfg.deploy.namespace),
        );
    }
    Ok(())
}
