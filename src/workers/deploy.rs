//! Deploys for the engine: one helm upgrade for the release, server-side applies of the
//! manifests' objects (with devenv's images in place), prune of what left the manifests, and
//! the chart's checks before anything is touched.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::time::Duration;

use anyhow::{Context as _, Result};
use serde_norway::Value;

use crate::cluster::kube::Target;
use crate::config;
use crate::deploy;
use crate::exec;
use crate::host::lock;
use crate::out;
use crate::plan;

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

/// The images each resource runs: as configured, else those its manifest objects name, else
/// (with Helm) every image injected into the chart.
pub fn resource_images(
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

/// The cluster resources whose workload the Helm release renders (those no manifest object
/// is the workload of).
pub fn released(cfg: &config::Config, docs: &[Doc]) -> BTreeSet<String> {
    if cfg.deploy.helm.is_none() {
        return BTreeSet::new();
    }
    cfg.resources
        .iter()
        .filter(|r| !docs.iter().any(|d| d.owner.as_deref() == Some(&r.name)))
        .map(|r| r.name.clone())
        .collect()
}

/// How the project's resources are deployed, read from the config and the manifest files
/// before anything is built: the manifests' objects, the images each resource runs, and the
/// resources the Helm release deploys.
pub struct Shape {
    pub docs: Vec<Doc>,
    pub resource_images: BTreeMap<String, Vec<String>>,
    pub released: BTreeSet<String>,
}

/// Reads the shape of `cfg`'s deploy (the manifests are parsed, no cluster is needed).
pub fn shape(cfg: &config::Config) -> Result<Shape> {
    let placeholders = placeholders(cfg);
    let docs = if cfg.needs_cluster() {
        load_manifests(cfg, &placeholders, false)?
    } else {
        Vec::new()
    };
    Ok(Shape {
        resource_images: resource_images(cfg, &docs, &placeholders),
        released: released(cfg, &docs),
        docs,
    })
}

/// Image -> the resources that run it.
pub fn users(resource_images: &BTreeMap<String, Vec<String>>) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (r, images) in resource_images {
        for i in images {
            out.entry(i.clone()).or_default().push(r.clone());
        }
    }
    out
}

/// A reference for every image before it is built: enough to read which objects run which.
pub fn placeholders(cfg: &config::Config) -> BTreeMap<String, String> {
    cfg.images
        .iter()
        .map(|i| (i.name.clone(), format!("{}:devenv-unbuilt", i.name)))
        .collect()
}

/// One manifest object with devenv's images in place, and the resource whose workload it is.
pub struct Doc {
    pub file: String,
    pub doc: Value,
    pub owner: Option<String>,
}

/// Reads every manifest file, rewrites images to the built references, and assigns each
/// object to the resource whose workload it is (if any).
pub fn load_manifests(
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
pub fn prune(
    rt: &tokio::runtime::Handle,
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
/// warnings are said, errors stop; returns the namespaces the chart renders.
pub fn check_before(cfg: &config::Config, plan: &plan::Plan, when: Check) -> Result<Vec<String>> {
    let found = crate::check::check(cfg, plan);
    for d in found.diagnostics.iter().filter(|d| !d.is_error()) {
        eprintln!("{d}");
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
    for ns in found
        .own_namespaces
        .iter()
        .filter(|_| when == Check::BringUp)
    {
        out::say(
            "namespace",
            format!("`{ns}` is rendered by the chart: it is made for Helm to own"),
        );
    }
    Ok(found.own_namespaces)
}

/// Renders the chart with the values `up` would give it now and checks it, after an edit of
/// a values file, the chart or devenv.toml.
pub fn check_chart(cfg: &config::Config, shown: &str) -> Result<()> {
    let Some(h) = &cfg.deploy.helm else {
        return Ok(());
    };
    chart_dependencies(cfg, h, Check::Reload)?;
    let plan = plan::compute(cfg, shown)?;
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

/// One deploy of `resources` with `references`: one helm upgrade when the release renders one
/// of them, the manifest objects that are their workloads, and every object of `files` (a
/// manifest that changed; what left it is pruned).
#[allow(clippy::too_many_arguments)]
pub fn deploy_resources(
    cfg: &config::Config,
    handle: &tokio::runtime::Handle,
    target: Option<&Target>,
    discovery: Option<&kube::discovery::Discovery>,
    resources: &[String],
    references: &BTreeMap<String, String>,
    files: &[String],
    shared_applied: &Mutex<bool>,
) -> Result<()> {
    // The first deploy says how each image was rewritten.
    let first = !*lock(shared_applied);
    let docs = if cfg.deploy.manifests.is_empty() {
        Vec::new()
    } else {
        load_manifests(cfg, references, first)?
    };
    let cluster = || -> Result<(&Target, &kube::discovery::Discovery)> {
        match (target, discovery) {
            (Some(t), Some(d)) => Ok((t, d)),
            _ => anyhow::bail!("no cluster to apply the manifests to"),
        }
    };
    // The first deploy puts in what is no resource's workload first: Services, ConfigMaps...
    {
        let mut applied = lock(shared_applied);
        if !*applied && docs.iter().any(|d| d.owner.is_none()) {
            let (target, discovery) = cluster()?;
            apply_docs(
                handle,
                target,
                discovery,
                cfg,
                docs.iter().filter(|d| d.owner.is_none()),
            )?;
        }
        *applied = true;
    }
    let released = released(cfg, &docs);
    if let Some(h) = &cfg.deploy.helm
        && resources.iter().any(|r| released.contains(r))
    {
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
            format!("helm release `{}` in {}", h.release, cfg.deploy.namespace),
        );
    }
    let wanted: BTreeSet<&str> = resources.iter().map(String::as_str).collect();
    let mine: Vec<&Doc> = docs
        .iter()
        .filter(|d| {
            files.contains(&d.file) || d.owner.as_deref().is_some_and(|o| wanted.contains(o))
        })
        .collect();
    if !mine.is_empty() {
        let (target, discovery) = cluster()?;
        apply_docs(handle, target, discovery, cfg, mine.into_iter())?;
    }
    if !files.is_empty()
        && let Ok((target, discovery)) = cluster()
    {
        // What left the changed files goes, as on the next `up`.
        let inventory = crate::host::state_dir()
            .map(|s| deploy::apply::inventory_path(&s, &cfg.root, &target.context));
        if let Some(path) = inventory {
            let previous = deploy::apply::load_inventory(&path);
            prune(handle, target, discovery, cfg, &docs, &previous, &path)?;
        }
    }
    if !resources.is_empty() {
        out::say("deployed", deployed_with(&resources.join(", "), references));
    }
    Ok(())
}
