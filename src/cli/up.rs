//! `devenv up`: opens the engine's session (the page first), runs the doctor gate and the
//! cluster side of bring-up (cluster, namespaces, secrets, forward ports, prune), then lets
//! the engine build, deploy and wait in dependency order, and run the dev loop.

use std::collections::{BTreeMap, BTreeSet};
use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context as _, Result};
use serde_norway::Value;

use super::{daemon, dev, out};
use crate::cluster::bootstrap;
use crate::cluster::kube::Target;
use crate::cluster::minikube::{Action, ImageStore};
use crate::config::{self, Loaded};
use crate::deploy::rollout::{Health, PodCounts};
use crate::{deploy, doctor, exec, plan};

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
    // Ctrl-C or SIGTERM while the cluster side is brought up (doctor, the cluster, secrets):
    // every process group devenv started is killed, then devenv ends.
    let guard = rt.spawn(async {
        dev::wait_for_stop().await;
        out::say(
            "stopping",
            "interrupted during bring-up: every command devenv started is stopped; the cluster is left as it is",
        );
        exec::kill_all();
        std::process::exit(1);
    });
    // The graph comes from the config and the manifest files: no cluster needed, so the
    // page answers before doctor runs.
    let placeholders: BTreeMap<String, String> = cfg
        .images
        .iter()
        .map(|i| (i.name.clone(), format!("{}:devenv-unbuilt", i.name)))
        .collect();
    let docs = if cfg.needs_cluster() {
        load_manifests(cfg, &placeholders, false)?
    } else {
        Vec::new()
    };
    let resource_images = resource_images(cfg, &docs, &placeholders);
    let released: BTreeSet<String> = if cfg.deploy.helm.is_some() {
        cfg.resources
            .iter()
            .filter(|r| !docs.iter().any(|d| d.owner.as_deref() == Some(&r.name)))
            .map(|r| r.name.clone())
            .collect()
    } else {
        BTreeSet::new()
    };
    let mut session = rt.block_on(dev::Session::open(
        std::sync::Arc::new(cfg.clone()),
        resource_images,
        &released,
        lock.dir(),
        opts.ci,
    ))?;
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
    if let Some(e) = session.page_error() {
        return Err(e);
    }
    session.set_doctor(serde_json::to_value(&report).unwrap_or_default());
    {
        let _in_runtime = rt.enter();
        session.start()?;
    }
    if cfg.needs_cluster() {
        match prepare(&rt, cfg, plan, opts, &docs) {
            Ok(prepared) => session.cluster_ready(prepared),
            Err(e) => {
                rt.block_on(session.abort());
                return Err(e);
            }
        }
    }
    // The engine stops cleanly on its own from here.
    guard.abort();
    let code = rt.block_on(session.finish())?;
    // Forwards, log streams and watches end with the runtime; the cluster stays as it is.
    rt.shutdown_timeout(Duration::from_millis(500));
    drop(lock);
    Ok(code)
}

/// The cluster side of bring-up, before any build or deploy: chart dependencies and checks,
/// the cluster, namespaces, secrets, the forward ports, and prune of what left the
/// manifests. `docs` are the manifest objects (their images not built yet).
fn prepare(
    rt: &tokio::runtime::Runtime,
    cfg: &config::Config,
    plan: &plan::Plan,
    opts: Options,
    docs: &[Doc],
) -> Result<dev::Prepared> {
    let recreate_cluster = opts.recreate_cluster;
    let helm_step = plan.steps.iter().find_map(|s| match s {
        plan::Step::Helm { render, .. } => Some(render.clone()),
        _ => None,
    });
    if let Some(h) = &cfg.deploy.helm {
        chart_dependencies(cfg, h)?;
    }
    // The chart is rendered before anything is touched: what it does decides what devenv does.
    let own_namespaces = match &helm_step {
        Some(render) => inspect_chart(cfg, plan, render)?,
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
    // Forward ports are taken now: a busy one stops `up` before anything is deployed.
    let mut forwards = BTreeMap::new();
    if !opts.ci {
        let proc_root = doctor::Env::from_process().proc_root;
        for r in &cfg.resources {
            let mut bound = Vec::new();
            for pf in &r.port_forwards {
                let listener = rt
                    .block_on(deploy::forward::listen(pf.local, &proc_root))
                    .map_err(|e| anyhow::anyhow!("{}: {e}\n  hint: {}", r.name, e.hint()))?;
                bound.push((pf.local, pf.remote, listener));
            }
            forwards.insert(r.name.clone(), bound);
        }
    }
    let inventory = crate::host::state_dir()
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
    if let (Some(d), Some(path)) = (&discovery, &inventory) {
        prune(rt, &ready.target, d, cfg, docs, &previous, path)?;
    }
    let node_ip = match cfg.cluster.provider {
        config::Provider::Minikube if !opts.ci => crate::cluster::minikube::Minikube {
            cfg,
            query_timeout: Duration::from_secs(30),
        }
        .ip()
        .map_err(|e| eprintln!("warning: no NodePort URLs: {e}"))
        .ok(),
        _ => None,
    };
    Ok(dev::Prepared {
        target: ready.target.clone(),
        store: ready.image_store.clone(),
        discovery: discovery.map(std::sync::Arc::new),
        node_ip,
        forwards: std::sync::Mutex::new(forwards),
    })
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
    say: bool,
) -> Result<Vec<Doc>> {
    let mut out = Vec::new();
    for file in &cfg.deploy.manifests {
        let shown = cfg.rel(file);
        let text = std::fs::read_to_string(file).with_context(|| format!("cannot read {shown}"))?;
        let rewritten = deploy::manifests::rewrite(&text, references, &cfg.project)
            .map_err(|e| anyhow::anyhow!("{shown}: {e}"))?;
        for w in rewritten.warnings.iter().filter(|_| say) {
            eprintln!("warning: {shown}: {w}");
        }
        for r in rewritten.replacements.iter().filter(|_| say) {
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
