//! `devenv down`: removes what devenv deployed (the Helm releases, the Secrets, the objects it
//! applied from the manifests, by its inventory and today's files, each only while it carries
//! the project's label); the cluster keeps running unless asked to stop (never deleted).

use std::process::ExitCode;

use anyhow::Result;

use crate::cluster::bootstrap;
use crate::config::Config;

pub fn run(cfg: &Config, stop_cluster: bool) -> Result<ExitCode> {
    if !cfg.needs_cluster() {
        println!("nothing to remove: the config deploys nothing to a cluster");
        return Ok(ExitCode::SUCCESS);
    }
    let files = crate::workers::bringup::kubeconfig_files();
    let inventory_dir = crate::host::state_dir();
    let (removed, objects) = super::runtime()?.block_on(async {
        let target = crate::cluster::kube::connect(cfg, &files).await?;
        let releases = bootstrap::uninstall_releases(cfg, &target).await?;
        let inventory = inventory_dir
            .as_deref()
            .map(|s| crate::deploy::apply::inventory_path(s, &cfg.root, &target.context));
        let objects =
            crate::deploy::apply::remove_applied(&target, cfg, inventory.as_deref()).await?;
        let removed = bootstrap::tear_down(cfg, &target, stop_cluster, releases).await?;
        anyhow::Ok((removed, objects))
    })?;
    for h in &cfg.deploy.helm {
        if removed.helm_releases.contains(&h.release) {
            println!(
                "removed    helm release `{}` from {}",
                h.release, h.namespace
            );
        } else {
            println!(
                "removed    nothing of helm release `{}`: it was not installed",
                h.release
            );
        }
    }
    for o in &objects {
        match o {
            crate::deploy::apply::Pruned::Deleted(r) => println!("removed    {r}"),
            crate::deploy::apply::Pruned::Kept(r) => println!(
                "kept       {r}: it is not labelled as {}'s any more",
                cfg.project
            ),
        }
    }
    for s in &removed.secrets {
        println!("removed    secret `{s}`");
    }
    // What stays, said: a claim holds data, a namespace may hold more than devenv put there.
    for (ns, c) in &removed.kept_claims {
        println!(
            "kept       PersistentVolumeClaim `{c}` in {ns} (its data stays; `kubectl delete pvc {c} -n {ns}` removes it)"
        );
    }
    for ns in &removed.kept_namespaces {
        println!(
            "kept       namespace `{ns}`, which devenv made (`kubectl delete namespace {ns}` removes it and all in it)"
        );
    }
    if removed.cluster_stopped {
        println!(
            "stopped    minikube profile `{}` (not deleted)",
            cfg.cluster.profile
        );
    } else {
        println!("the cluster keeps running; `devenv down --stop-cluster` also stops it");
    }
    Ok(ExitCode::SUCCESS)
}
