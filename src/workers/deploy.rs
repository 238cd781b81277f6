//! Deploys for the engine: one helm upgrade for the release, server-side applies of the
//! manifests' objects (with devenv's images in place), prune of what left the manifests, and
//! the chart's checks before anything is touched.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context as _, Result};
use serde_norway::Value;

use crate::cluster::kube::Target;
use crate::config;
use crate::deploy;
use crate::exec;
use crate::out;
use crate::plan;
use crate::project::{Doc, deploy_parts, load_manifests, released};

fn refs_text(references: &BTreeMap<String, String>) -> String {
    references.values().cloned().collect::<Vec<_>>().join(", ")
}

/// `what` and, when images were built, ` with` the references it was deployed with (no
/// dangling "with" for a deploy of images devenv does not build).
pub fn deployed_with(what: &str, references: &BTreeMap<String, String>) -> String {
    if references.is_empty() {
        what.to_owned()
    } else {
        format!("{what} with {}", refs_text(references))
    }
}

/// Deletes what devenv applied last time and the manifests no longer have (only objects
/// still labelled as this project's), then records the current set.
pub fn prune(
    rt: &tokio::runtime::Handle,
    target: &Target,
    discovery: &kube::discovery::Discovery,
    cfg: &config::Config,
    docs: &[Doc],
    inventory: &std::path::Path,
    note: &dyn Fn(&str, &str),
) -> Result<()> {
    let previous = deploy::apply::load_inventory(inventory);
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
        let (kind, text) = match p {
            deploy::apply::Pruned::Deleted(r) => {
                ("pruned", format!("{r}: no longer in the manifests"))
            }
            deploy::apply::Pruned::Kept(r) => (
                "kept",
                format!(
                    "{r}: no longer in the manifests, but it is not labelled as {}'s any more",
                    cfg.project
                ),
            ),
        };
        note(kind, &text);
        out::say(kind, text);
    }
    deploy::apply::save_inventory(inventory, &current)
        .with_context(|| format!("cannot write {}", inventory.display()))
}

/// Applies `docs`, file by file, printing what was applied.
pub fn apply_docs<'a>(
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

/// When the chart is checked: before anything is touched, or after an edit (the release keeps
/// what runs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    BringUp,
    Reload,
}

impl Check {
    /// What a failed check means, for the error.
    fn consequence(self) -> &'static str {
        match self {
            Check::BringUp => "nothing was started",
            Check::Reload => "the release was not upgraded and runs on as it was",
        }
    }
}

/// Renders the chart with the planned values and reads the manifests (see `check`): the
/// warnings are said, errors stop; returns the namespaces the charts render, with their
/// releases.
pub fn check_before(
    cfg: &config::Config,
    plan: &plan::Plan,
    when: Check,
) -> Result<Vec<(String, String)>> {
    let found = crate::check::check(cfg, plan);
    for d in found.diagnostics.iter().filter(|d| !d.is_error()) {
        eprintln!("{}", out::printable(&d.to_string()));
    }
    let errors: Vec<String> = found
        .diagnostics
        .iter()
        .filter(|d| d.is_error())
        .map(ToString::to_string)
        .collect();
    if !errors.is_empty() {
        anyhow::bail!(
            "rendering the chart and reading the manifests found {} error{}; {}:\n{}",
            errors.len(),
            if errors.len() == 1 { "" } else { "s" },
            when.consequence(),
            errors.join("\n")
        );
    }
    for (ns, release) in found
        .own_namespaces
        .iter()
        .filter(|_| when == Check::BringUp)
    {
        let by = if cfg.deploy.helm.len() == 1 {
            "the chart".to_owned()
        } else {
            format!("the chart of release `{release}`")
        };
        out::say(
            "namespace",
            format!("`{ns}` is rendered by {by}: it is made for Helm to own"),
        );
    }
    Ok(found.own_namespaces)
}

/// Renders the chart with the values `up` would give it now and checks it, after an edit of
/// a values file, the chart or devenv.toml.
pub fn check_chart(
    cfg: &config::Config,
    shown: &str,
    shape: std::sync::Arc<crate::project::Shape>,
) -> Result<()> {
    if cfg.deploy.helm.is_empty() {
        return Ok(());
    }
    for h in &cfg.deploy.helm {
        chart_dependencies(cfg, h, Check::Reload)?;
    }
    let plan = plan::compute_with(cfg, shown, shape)?;
    check_before(cfg, &plan, Check::Reload)?;
    Ok(())
}

/// Runs `helm dependency build` when the chart's dependencies are missing from charts/;
/// refuses (with the command to run) when Chart.lock is out of date, a file the user owns.
pub fn chart_dependencies(cfg: &config::Config, helm: &config::Helm, when: Check) -> Result<()> {
    let chart = cfg.rel(&helm.chart);
    match deploy::helm::dependencies(&helm.chart).map_err(|e| anyhow::anyhow!("{chart}/{e}"))? {
        deploy::helm::Dependencies::Ready => Ok(()),
        deploy::helm::Dependencies::OutOfSync { reason } => anyhow::bail!(
            "chart {chart}: {reason}; {}\n  hint: run `helm dependency update {chart}` to rewrite Chart.lock (devenv leaves that file to you)",
            when.consequence()
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
pub fn run_helm(cfg: &config::Config, argv: &[String], timeout: Duration) -> Result<()> {
    let cmd = exec::Cmd {
        dir: Some(cfg.root.clone()),
        ..exec::Cmd::new(argv[0].clone())
            .args(argv[1..].iter().cloned())
            .timeout(timeout)
    };
    let f = exec::run_lines(&cmd, |l| out::tool("helm", l))?;
    if f.code != Some(0) {
        anyhow::bail!(
            "`{}` failed:\n{}",
            cmd.display(),
            exec::last_lines(&f.stdout, 10)
        );
    }
    Ok(())
}

/// What one deploy carries out (the engine's `Command::Deploy`).
pub struct Batch {
    pub resources: Vec<String>,
    pub references: BTreeMap<String, String>,
    /// Manifest files that changed: every object of theirs goes, what left them is pruned.
    pub files: Vec<String>,
    /// The manifests' objects that are no resource's workload go first (until a deploy put
    /// them in).
    pub shared: bool,
}

/// One deploy of a batch: one helm upgrade for each release that renders one of its resources,
/// the manifest objects that are their workloads, and every object of its changed files.
pub fn deploy_resources(
    cfg: &config::Config,
    handle: &tokio::runtime::Handle,
    target: Option<&Target>,
    discovery: Option<&kube::discovery::Discovery>,
    batch: &Batch,
    note: &dyn Fn(&str, &str),
) -> Result<()> {
    let Batch {
        resources,
        references,
        files,
        shared,
    } = batch;
    // The deploy that puts the shared objects in says how each image was rewritten.
    let docs = if cfg.deploy.manifests.is_empty() {
        Vec::new()
    } else {
        load_manifests(cfg, references, *shared)?
    };
    let cluster = || -> Result<(&Target, &kube::discovery::Discovery)> {
        match (target, discovery) {
            (Some(t), Some(d)) => Ok((t, d)),
            _ => anyhow::bail!("no cluster to apply the manifests to"),
        }
    };
    let released = released(cfg, &docs);
    // What is no resource's workload goes first: Services, ConfigMaps...
    let parts = deploy_parts(cfg, &docs, &released, resources, files, *shared);
    if !parts.shared.is_empty() {
        let (target, discovery) = cluster()?;
        apply_docs(handle, target, discovery, cfg, parts.shared.iter().copied())?;
    }
    for h in &parts.releases {
        let images: BTreeMap<String, (String, String)> = references
            .iter()
            .filter_map(|(n, r)| {
                let r = crate::objects::ImageRef::parse(r);
                r.tag
                    .map(|tag| (n.clone(), (r.repository.to_owned(), tag.to_owned())))
            })
            .collect();
        let argv = deploy::helm::upgrade_command(cfg, h, &images);
        // Values from .env go in a file only the user can read, for this command only.
        let _env = deploy::helm::write_env_values(cfg, h).map_err(anyhow::Error::msg)?;
        run_helm(cfg, &argv, Duration::from_secs(600))?;
        out::say(
            "deployed",
            format!("helm release `{}` in {}", h.release, h.namespace),
        );
    }
    if !parts.own.is_empty() {
        let (target, discovery) = cluster()?;
        apply_docs(handle, target, discovery, cfg, parts.own.iter().copied())?;
    }
    if !files.is_empty()
        && let Ok((target, discovery)) = cluster()
    {
        // What left the changed files goes, as on the next `up`.
        let inventory = crate::host::state_dir()
            .map(|s| deploy::apply::inventory_path(&s, &cfg.root, &target.context));
        if let Some(path) = inventory {
            prune(handle, target, discovery, cfg, &docs, &path, note)?;
        }
    }
    Ok(())
}
