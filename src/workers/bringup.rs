//! The bring-up steps that gate the resources: the doctor's checks (nothing is touched on a
//! machine that cannot run the project) and the cluster (profile, namespaces, Secrets, the
//! chart's checks, forward ports, prune of what left the manifests).

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use tokio::sync::watch;

use super::deploy as deploy_w;
use crate::cluster::bootstrap;
use crate::cluster::kube::Target;
use crate::cluster::kubeconfig;
use crate::cluster::minikube::{Action, ImageStore};
use crate::config::{self, Config};
use crate::engine::state::BringUpStage;
use crate::exec::Cancel;
use crate::{deploy, doctor, out, plan};

/// A forward's local port taken early: `(local, remote, listener)`.
pub type Bound = (u16, u16, tokio::net::TcpListener);

/// What the cluster step leaves for the other workers: the guarded cluster, where images go,
/// the API's resource kinds.
pub struct Prepared {
    pub target: Target,
    pub store: Option<ImageStore>,
    pub discovery: Option<Arc<kube::discovery::Discovery>>,
    pub node_ip: Option<String>,
    /// Where /proc is (to name a port's holder).
    pub proc_root: PathBuf,
}

/// Resource -> its forward listeners, bound at bring-up so that a busy port stops `up`
/// before anything is deployed; each is handed to the resource's follow task.
pub type Forwards = BTreeMap<String, Vec<Bound>>;

/// What the bring-up steps are told by the session.
pub struct Inputs {
    /// The config file as the user named it.
    pub shown: String,
    /// How many warnings the config had (the doctor's config row says so).
    pub warnings: usize,
    /// `--recreate-cluster`: a profile of the wrong size is recreated, not refused.
    pub recreate_cluster: bool,
    /// The doctor's report, for the page and the API.
    pub report: watch::Sender<serde_json::Value>,
}

/// The kubeconfig files, as kubectl finds them.
pub fn kubeconfig_files() -> Vec<PathBuf> {
    let home = directories::BaseDirs::new().map(|d| d.home_dir().to_path_buf());
    kubeconfig::default_paths(std::env::var("KUBECONFIG").ok().as_deref(), home.as_deref())
}

/// Runs the doctor's checks against `cfg`. A failure prints the failed checks with their
/// fixes and is the step's error.
/// `page_error` is why the status page could not start (its port is taken): said after the
/// doctor's report, which names the port's holder with everything else that is wrong.
pub fn doctor(cfg: &Config, inputs: &Inputs, page_error: Option<String>) -> Result<(), String> {
    let state = doctor::ConfigState::Valid {
        config: cfg,
        shown: inputs.shown.clone(),
        warnings: inputs.warnings,
    };
    let mut report = doctor::run(&state, &doctor::Env::from_process());
    if inputs.recreate_cluster {
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
    inputs
        .report
        .send_replace(serde_json::to_value(&report).unwrap_or_default());
    if report.failed() {
        let color = doctor::use_color(std::io::stderr().is_terminal());
        eprintln!("devenv up: the machine is not ready; nothing was started.\n");
        eprint!("{}", doctor::render(&report, color, true));
        eprintln!(
            "\n{}  (`devenv doctor` shows every check)",
            doctor::summary_line(&report)
        );
        return Err(doctor::summary_line(&report));
    }
    if let Some(e) = page_error {
        eprintln!("error: {}", out::printable(&e.to_string()));
        return Err(e);
    }
    Ok(())
}

/// Says what the cluster's bring-up did: the profile, addons, where images are built, the
/// context, the namespaces made.
fn say_cluster(cfg: &Config, ready: &bootstrap::Ready) {
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
}

/// Makes each Secret of `[[secret]]` from its .env files and applies it (values never said).
fn apply_secrets(rt: &tokio::runtime::Handle, cfg: &Config, target: &Target) -> Result<()> {
    for secret in &cfg.secrets {
        let prepared = deploy::secrets::prepare(secret, &|f| cfg.rel(f))?;
        for w in &prepared.warnings {
            eprintln!("warning: {}", out::printable(&w.to_string()));
        }
        rt.block_on(deploy::secrets::apply(target, cfg, &prepared))?;
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
    Ok(())
}

/// Binds every forward's local port, by resource.
fn take_ports(
    rt: &tokio::runtime::Handle,
    cfg: &Config,
    proc_root: &std::path::Path,
) -> Result<BTreeMap<String, Vec<Bound>>> {
    let mut forwards = BTreeMap::new();
    for r in &cfg.resources {
        let mut bound = Vec::new();
        for pf in &r.port_forwards {
            let listener = rt
                .block_on(deploy::forward::listen(pf.local, proc_root))
                .map_err(|e| anyhow::anyhow!("{}: {e}\n  hint: {}", r.name, e.hint()))?;
            bound.push((pf.local, pf.remote, listener));
        }
        forwards.insert(r.name.clone(), bound);
    }
    Ok(forwards)
}

/// A bring-up step stopped because devenv is stopping: no failure to report.
#[derive(Debug, thiserror::Error)]
#[error("cancelled: devenv is stopping")]
pub struct Stopping;

impl Stopping {
    /// Whether `e` is a step that stopped because devenv is stopping.
    pub fn is(e: &anyhow::Error) -> bool {
        e.chain().any(|c| {
            c.is::<Stopping>()
                || matches!(
                    c.downcast_ref::<crate::exec::ExecError>(),
                    Some(crate::exec::ExecError::Cancelled { .. })
                )
        })
    }
}

/// Fails once the step was cancelled (devenv is stopping).
fn checkpoint(cancel: &Cancel) -> Result<()> {
    if cancel.is_cancelled() {
        return Err(Stopping.into());
    }
    Ok(())
}

/// The cluster side of bring-up, before any build or deploy: chart dependencies and checks,
/// the cluster, namespaces, secrets, the forward ports, and prune of what left the
/// manifests. `plan` is the one `up` computed before it started, if it is for `cfg`.
/// `progress` is told each part as it starts.
pub fn prepare(
    rt: &tokio::runtime::Handle,
    cfg: &Config,
    inputs: &Inputs,
    plan: Option<plan::Plan>,
    ci: bool,
    cancel: &Cancel,
    progress: &dyn Fn(&str),
) -> Result<(Prepared, Forwards), (BringUpStage, anyhow::Error)> {
    let mut stage = BringUpStage::Checks;
    prepare_stages(rt, cfg, inputs, plan, ci, cancel, progress, &mut stage).map_err(|e| (stage, e))
}

/// [`prepare`]'s steps; `stage` says which part runs, so that a failure is told as such.
#[allow(clippy::too_many_arguments)]
fn prepare_stages(
    rt: &tokio::runtime::Handle,
    cfg: &Config,
    inputs: &Inputs,
    plan: Option<plan::Plan>,
    ci: bool,
    cancel: &Cancel,
    progress: &dyn Fn(&str),
    stage: &mut BringUpStage,
) -> Result<(Prepared, Forwards)> {
    progress("checking the chart");
    let computed = plan.filter(|p| p.config == inputs.shown && p.project == cfg.project);
    let plan = match computed {
        Some(p) => p,
        None => plan::compute(cfg, &inputs.shown)?,
    };
    let docs = &plan.shape.docs;
    for h in &cfg.deploy.helm {
        deploy_w::chart_dependencies(cfg, h, deploy_w::Check::BringUp)?;
    }
    // The chart is rendered and checked before anything is touched: what it does decides
    // what devenv does.
    let own_namespaces = deploy_w::check_before(cfg, &plan, deploy_w::Check::BringUp)?;
    checkpoint(cancel)?;
    *stage = BringUpStage::Cluster;
    progress(match cfg.cluster.provider {
        config::Provider::Minikube => "starting the minikube profile",
        config::Provider::Existing => "connecting to the cluster",
    });
    let ready = rt.block_on(bootstrap::bring_up(
        cfg,
        &kubeconfig_files(),
        inputs.recreate_cluster,
        &own_namespaces,
        &mut |line| {
            out::tool("minikube", line);
        },
        &mut |ns| {
            out::say(
                "namespace",
                format!("`{ns}` is being deleted: waiting for it to go, then it is made anew"),
            );
        },
    ))?;
    checkpoint(cancel)?;
    *stage = BringUpStage::Secrets;
    progress("secrets");
    say_cluster(cfg, &ready);
    apply_secrets(rt, cfg, &ready.target)?;
    checkpoint(cancel)?;
    *stage = BringUpStage::Ports;
    // Forward ports are taken now: a busy one stops `up` before anything is deployed.
    let proc_root = doctor::Env::from_process().proc_root;
    let forwards = if ci {
        BTreeMap::new()
    } else {
        take_ports(rt, cfg, &proc_root)?
    };
    *stage = BringUpStage::Prune;
    progress("pruning what left the manifests");
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
        // Said in the cluster step's notes too (the page, the status API).
        let note = |kind: &str, text: &str| progress(&format!("{kind} {text}"));
        deploy_w::prune(rt, &ready.target, d, cfg, docs, path, &note)?;
    }
    let node_ip = match cfg.cluster.provider {
        config::Provider::Minikube if !ci => crate::cluster::minikube::Minikube {
            cfg,
            query_timeout: Duration::from_secs(30),
        }
        .ip()
        .map_err(|e| {
            eprintln!(
                "warning: no NodePort URLs: {}",
                out::printable(&e.to_string())
            )
        })
        .ok(),
        _ => None,
    };
    let prepared = Prepared {
        target: ready.target.clone(),
        store: ready.image_store.clone(),
        discovery: discovery.map(Arc::new),
        node_ip,
        proc_root,
    };
    Ok((prepared, forwards))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 26 point 7: a step cancelled by the stop was told apart from a failure by its
    /// message starting with "cancelled". Now by type, through any context added on the way.
    #[test]
    fn a_stop_is_told_apart_from_a_failure_by_type() {
        let stopped = anyhow::Error::from(Stopping).context("starting the minikube profile");
        assert!(Stopping::is(&stopped));
        let killed = anyhow::Error::from(crate::exec::ExecError::Cancelled {
            command: "minikube start".into(),
        })
        .context("the cluster");
        assert!(Stopping::is(&killed));
        // A failure whose text happens to start with the word is still a failure.
        let failed = anyhow::anyhow!("cancelled by the API server: quota");
        assert!(!Stopping::is(&failed));
    }
}
