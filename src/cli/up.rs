//! `devenv up`: the whole bring-up, from the doctor gate to ready resources.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use serde_norway::Value;

use crate::cluster::bootstrap;
use crate::cluster::kube::Target;
use crate::cluster::minikube::{Action, ImageStore};
use crate::config::{self, Loaded};
use crate::deploy::rollout::{self, Health, PodCounts};
use crate::{build, deploy, doctor, exec, plan};

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
    if !cfg.needs_cluster() {
        anyhow::bail!("running [[local]] resources is not built yet (see README, \"Status\")");
    }
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
    let rt = super::runtime()?;
    let ready = rt.block_on(bootstrap::bring_up(
        cfg,
        &super::kubeconfig_files(),
        recreate_cluster,
        &own_namespaces,
        &mut |line| {
            eprintln!("  minikube | {line}");
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
        println!(
            "cluster    minikube profile `{}` {what} ({} CPUs, {} MB)",
            c.profile, c.cpus, c.memory_mb
        );
    }
    for a in &ready.addons_enabled {
        println!("addon      {a} enabled");
    }
    match &ready.image_store {
        Some(ImageStore::DockerEnv(env)) => println!(
            "images     built in Minikube's Docker daemon ({})",
            env.get("DOCKER_HOST").map_or("?", String::as_str)
        ),
        Some(ImageStore::HostDaemon) => {
            println!(
                "images     built in the host's Docker daemon: the `none` driver runs the cluster there"
            )
        }
        Some(ImageStore::MinikubeImageBuild { runtime }) => println!(
            "images     built with `minikube image build`: the cluster's runtime is {runtime}, not Docker"
        ),
        None => {}
    }
    println!(
        "context    `{}`{}",
        ready.target.context,
        ready
            .target
            .server
            .as_ref()
            .map_or(String::new(), |s| format!(" ({s})"))
    );
    for ns in &ready.namespaces_created {
        println!("namespace  `{ns}` created");
    }
    for secret in &cfg.secrets {
        let prepared = deploy::secrets::prepare(secret, &|f| cfg.rel(f))?;
        for w in &prepared.warnings {
            eprintln!("warning: {w}");
        }
        rt.block_on(deploy::secrets::apply(&ready.target, cfg, &prepared))?;
        println!(
            "secret     `{}` in {} ({} key{}, values not shown)",
            prepared.name,
            prepared.namespace,
            prepared.values.0.len(),
            if prepared.values.0.len() == 1 {
                ""
            } else {
                "s"
            }
        );
    }
    let names: Vec<String> = cfg.images.iter().map(|i| i.name.clone()).collect();
    let Some(references) = super::run_builds(
        cfg,
        &names,
        ready.image_store.as_ref(),
        build::run::default_parallelism(),
    ) else {
        return Ok(ExitCode::FAILURE);
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
            &rt,
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
                println!("skipped    {}: `{dep}` is not ready", r.name);
                results.insert(r.name.clone(), Outcome::Skipped(dep.clone()));
                continue;
            }
            if let Some(d) = &discovery {
                let owned = docs.iter().filter(|m| m.owner.as_deref() == Some(&r.name));
                apply_docs(&rt, &ready.target, d, cfg, owned)?;
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
        prune(&rt, &ready.target, d, cfg, &docs, &previous, path)?;
    }
    print_summary(cfg, &results);
    let all_ready = results.values().all(|o| matches!(o, Outcome::Ready { .. }));
    if opts.ci {
        return Ok(if all_ready {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        });
    }
    let deployed: Vec<&config::Resource> = cfg
        .resources
        .iter()
        .filter(|r| !matches!(results.get(&r.name), Some(Outcome::Skipped(_)) | None))
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
    let code = rt.block_on(session(cfg, &ready.target, &deployed, node_ip.as_deref()))?;
    // Forwards, log streams and watches end with the runtime; the cluster stays as it is.
    rt.shutdown_timeout(Duration::from_millis(500));
    Ok(code)
}

/// After bring-up: port-forwards, URLs and log following for every deployed resource, until
/// Ctrl-C or SIGTERM.
async fn session(
    cfg: &config::Config,
    target: &Target,
    deployed: &[&config::Resource],
    node_ip: Option<&str>,
) -> Result<ExitCode> {
    let proc_root = doctor::Env::from_process().proc_root;
    let mut tasks = tokio::task::JoinSet::new();
    // Services per namespace, listed once, for NodePort URLs.
    let mut services: BTreeMap<String, Vec<k8s_openapi::api::core::v1::Service>> = BTreeMap::new();
    for r in deployed {
        let pods = deploy::pods::watch(&target.client, &r.namespace, &r.workload).await?;
        for pf in &r.port_forwards {
            let listener = deploy::forward::listen(pf.local, &proc_root)
                .await
                .map_err(|e| anyhow::anyhow!("{}: {e}\n  hint: {}", r.name, e.hint()))?;
            println!(
                "forward    {}: http://127.0.0.1:{} -> {}:{}",
                r.name, pf.local, r.workload, pf.remote
            );
            let name = r.name.clone();
            tasks.spawn(deploy::forward::serve(
                listener,
                pods.clone(),
                pf.remote,
                move |m| println!("forward    {name}: {m}"),
            ));
        }
        if let Some(ip) = node_ip {
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
                println!("url        {}: {url}", r.name);
            }
        }
        for link in &r.links {
            println!("link       {}: {link}", r.name);
        }
        let name = r.name.clone();
        let buffer = std::sync::Arc::new(std::sync::Mutex::new(
            crate::engine::log::LogBuffer::new(cfg.web.log_buffer),
        ));
        tasks.spawn(deploy::logs::follow(pods, move |l| {
            let source = format!("{}/{}", l.pod, l.container);
            println!("  {name} | {source} {}", l.text);
            let mut b = match buffer.lock() {
                Ok(b) => b,
                Err(p) => p.into_inner(),
            };
            b.push(
                l.time_ms.unwrap_or_else(crate::engine::log::now_ms),
                &source,
                &l.text,
            );
        }));
    }
    println!(
        "running    Ctrl-C stops devenv; the cluster and the workloads stay up. Watching files is not built yet: after a change, run `devenv up` again."
    );
    wait_for_stop().await;
    println!(
        "stopping   port-forwards and log streams closed; the cluster and workloads are left running"
    );
    tasks.abort_all();
    Ok(ExitCode::SUCCESS)
}

/// Resolves on Ctrl-C or SIGTERM.
async fn wait_for_stop() {
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
    let name = r.name.clone();
    let mut shown: Option<Health> = None;
    let mut on_update = |u: rollout::Update<'_>| {
        pods = u.pods;
        if shown.as_ref() == Some(u.health) {
            return;
        }
        match u.health {
            Health::Waiting(m) => println!("waiting    {name}: {m}"),
            Health::Problem(p) => println!("problem    {name}: {p}"),
            Health::Ready | Health::Failed(_) => {}
        }
        shown = Some(u.health.clone());
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
            println!(
                "ready      {} ({}, {}/{} pods, {:.1}s)",
                r.name,
                r.workload,
                pods.ready,
                pods.total,
                took.as_secs_f64()
            );
            Outcome::Ready { took, pods }
        }
        Err(e) => {
            println!("failed     {}: {e}", r.name);
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
    let width = cfg
        .resources
        .iter()
        .map(|r| r.name.len())
        .max()
        .unwrap_or(0)
        .max(8);
    let wl_width = cfg
        .resources
        .iter()
        .map(|r| r.workload.to_string().len())
        .max()
        .unwrap_or(0)
        .max(8);
    println!();
    println!(
        "{:width$}  {:wl_width$}  {:8}  {:5}  time",
        "resource", "workload", "status", "pods"
    );
    for r in &cfg.resources {
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
        println!(
            "{:width$}  {:wl_width$}  {status:8}  {pods:5}  {time}",
            r.name,
            r.workload.to_string()
        );
    }
    for (name, o) in results {
        match o {
            Outcome::Failed { error, .. } => println!("\n{name}: {error}"),
            Outcome::Skipped(dep) => {
                println!("\n{name}: not deployed, because `{dep}` is not ready")
            }
            Outcome::Ready { .. } => {}
        }
    }
}

/// One manifest object with devenv's images in place, and the resource whose workload it is.
struct Doc {
    file: String,
    doc: Value,
    owner: Option<String>,
}

/// Reads every manifest file, rewrites images to the built references, and assigns each
/// object to the resource whose workload it is (if any).
fn load_manifests(cfg: &config::Config, references: &BTreeMap<String, String>) -> Result<Vec<Doc>> {
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
            println!(
                "image      {} `{}`: {} -> {}",
                r.object, r.container, r.from, r.to
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
                println!("pruned     {r}: no longer in the manifests")
            }
            deploy::apply::Pruned::Kept(r) => println!(
                "kept       {r}: no longer in the manifests, but it is not labelled as {}'s any more",
                cfg.project
            ),
        }
    }
    deploy::apply::save_inventory(inventory, &current)
        .with_context(|| format!("cannot write {}", inventory.display()))
}

/// Applies `docs`, file by file, printing what was applied.
fn apply_docs<'a>(
    rt: &tokio::runtime::Runtime,
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
        println!("applied    {} from {file}", applied.join(", "));
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
        println!("namespace  `{ns}` is created by the chart itself");
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
            println!("chart      {chart}: {reason}; running `helm dependency build`");
            let argv = ["helm", "dependency", "build", chart.as_str()].map(str::to_owned);
            run_helm(cfg, &argv, Duration::from_secs(300))
        }
    }
}

/// Runs a helm command line from the project root with helm's output streamed; when it fails,
/// the error says which command and shows helm's last lines.
fn run_helm(cfg: &config::Config, argv: &[String], timeout: Duration) -> Result<()> {
    let cmd = exec::Cmd {
        dir: Some(cfg.root.clone()),
        ..exec::Cmd::new(argv[0].clone())
            .args(argv[1..].iter().cloned())
            .timeout(timeout)
    };
    let f = exec::run_lines(&cmd, |l| eprintln!("  helm | {l}"))?;
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
        println!(
            "deployed   helm release `{}` in {}",
            h.release, cfg.deploy.namespace
        );
    }
    Ok(())
}
