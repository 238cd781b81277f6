//! Bringing the cluster to the state devenv.toml asks for (`up`), and taking devenv's
//! workloads out of it again (`down`). Both check the context before any write.

use std::path::PathBuf;
use std::time::Duration;

use super::kube::{self as k, KubeError, Target};
use super::minikube::{Action, ImageStore, Minikube, MinikubeError};
use crate::config::{Config, Image, Provider};
use crate::exec::{self, Cmd};

/// Deadline of minikube's short queries.
const QUERY_TIMEOUT: Duration = Duration::from_secs(60);
/// Deadline of a helm uninstall or kubectl delete.
const TEARDOWN_TIMEOUT: Duration = Duration::from_secs(300);

#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    #[error(transparent)]
    Minikube(#[from] MinikubeError),
    #[error(transparent)]
    Kube(#[from] KubeError),
    /// A helm or kubectl command failed.
    #[error("`{command}` failed: {detail}")]
    Command { command: String, detail: String },
    #[error(transparent)]
    Exec(#[from] exec::ExecError),
}

/// What `bring_up` established.
pub struct Ready {
    pub target: Target,
    /// Set for Minikube when a build needs its image store.
    pub image_store: Option<ImageStore>,
    pub action: Option<Action>,
    pub addons_enabled: Vec<String>,
    pub namespaces_created: Vec<String>,
}

/// Blocking part: Minikube's profile, addons and image store.
pub fn minikube_up(
    cfg: &Config,
    recreate: bool,
    progress: &mut dyn FnMut(&str),
) -> Result<(Action, Vec<String>, Option<ImageStore>), MinikubeError> {
    let mk = Minikube {
        cfg,
        query_timeout: QUERY_TIMEOUT,
    };
    let action = mk.ensure(recreate, progress)?;
    let addons = mk.ensure_addons()?;
    // Read after the (re)start: with the docker driver the daemon's port changes.
    let store = if cfg.images.iter().any(Image::uses_docker_daemon) {
        Some(mk.image_store()?)
    } else {
        None
    };
    Ok((action, addons, store))
}

/// Brings the cluster up: Minikube (when configured), then the guarded client and the
/// namespaces (those in `chart_namespaces`, which a Helm chart renders, made for its release:
/// `(namespace, release)`).
pub async fn bring_up(
    cfg: &Config,
    kubeconfig: &[PathBuf],
    recreate: bool,
    chart_namespaces: &[(String, String)],
    progress: &mut (dyn FnMut(&str) + Send),
    waiting: &mut (dyn FnMut(&str) + Send),
) -> Result<Ready, BootstrapError> {
    let (action, addons_enabled, image_store) = match cfg.cluster.provider {
        Provider::Minikube => {
            let (a, e, s) = tokio::task::block_in_place(|| minikube_up(cfg, recreate, progress))?;
            (Some(a), e, s)
        }
        Provider::Existing => (None, Vec::new(), None),
    };
    let target = k::connect(cfg, kubeconfig).await?;
    let mut namespaces_created = Vec::new();
    for ns in cfg.namespaces() {
        // Just deleted (`devenv down` a moment ago): it goes first, then is made anew.
        k::wait_terminating(&target, &ns, &mut || waiting(&ns)).await?;
        // A namespace the chart renders is Helm's: made here (the release record and the
        // Secrets must live in it before Helm runs) with the metadata Helm adopts.
        let owner = chart_namespaces
            .iter()
            .find(|(n, _)| *n == ns)
            .and_then(|(_, release)| cfg.release(release));
        let created = match owner {
            Some(h) => k::ensure_namespace_for_helm(&target, &ns, &h.release, &h.namespace).await?,
            None => k::ensure_namespace(&target, &ns).await?,
        };
        if created {
            namespaces_created.push(ns);
        }
    }
    Ok(Ready {
        target,
        image_store,
        action,
        addons_enabled,
        namespaces_created,
    })
}

/// What `tear_down` removed, and what it kept that devenv's deploys left.
#[derive(Debug, Default)]
pub struct Removed {
    pub helm_releases: Vec<String>,
    pub secrets: Vec<String>,
    pub cluster_stopped: bool,
    /// Namespaces devenv made: kept (deleting one deletes whatever else is in it).
    pub kept_namespaces: Vec<String>,
    /// `(namespace, claim)`: volume claims (a StatefulSet's), kept with their data.
    pub kept_claims: Vec<(String, String)>,
}

fn run_checked(cmd: &Cmd, tolerate: &[&str]) -> Result<bool, BootstrapError> {
    let f = exec::run(cmd)?;
    if f.code == Some(0) {
        return Ok(true);
    }
    let out = format!("{}{}", f.stdout, f.stderr);
    if tolerate.iter().any(|t| out.contains(t)) {
        return Ok(false);
    }
    Err(BootstrapError::Command {
        command: cmd.display(),
        detail: out
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("no output")
            .trim()
            .to_owned(),
    })
}

/// Uninstalls the Helm releases that are installed, the last first; the names of those that
/// were. The first half of `down` (the manifests' objects go next, from deploy).
pub async fn uninstall_releases(
    cfg: &Config,
    target: &Target,
) -> Result<Vec<String>, BootstrapError> {
    let mut removed = Vec::new();
    for h in cfg.deploy.helm.iter().rev() {
        let cmd = Cmd::new("helm")
            .args([
                "uninstall",
                &h.release,
                "--namespace",
                &h.namespace,
                "--kube-context",
                &target.context,
            ])
            .timeout(TEARDOWN_TIMEOUT);
        if tokio::task::block_in_place(|| run_checked(&cmd, &["not found"]))? {
            removed.push(h.release.clone());
        }
    }
    Ok(removed)
}

/// The rest of `down`: the Secrets devenv made, and with `stop_cluster` the Minikube
/// profile stopped (never deleted). The cluster keeps running otherwise.
pub async fn tear_down(
    cfg: &Config,
    target: &Target,
    stop_cluster: bool,
    helm_releases: Vec<String>,
) -> Result<Removed, BootstrapError> {
    let mut removed = Removed {
        helm_releases,
        ..Removed::default()
    };
    for s in &cfg.secrets {
        if k::delete_secret(target, &s.namespace, &s.name).await? {
            removed.secrets.push(s.name.clone());
        }
    }
    for ns in cfg.namespaces() {
        for c in k::volume_claims(target, &ns).await? {
            removed.kept_claims.push((ns.clone(), c));
        }
        if k::made_by_devenv(target, &ns).await? {
            removed.kept_namespaces.push(ns);
        }
    }
    if stop_cluster && cfg.cluster.provider == Provider::Minikube {
        let mk = Minikube {
            cfg,
            query_timeout: QUERY_TIMEOUT,
        };
        tokio::task::block_in_place(|| mk.stop())?;
        removed.cluster_stopped = true;
    }
    Ok(removed)
}
