//! What devenv believes about a project, read once per config version from the config and
//! the manifest files: the manifests' objects and the resource each is the workload of, the
//! images each resource runs, the resources the Helm release deploys, and the engine's graph
//! built from them. `up`, the reloader, the dry-run, `config check` and `init`'s validation
//! all read it from here (the plan carries the shape it was computed from), so the plan is
//! what `up` does and the check judges what `up` applies.
//!
//! Reads the manifest files (no cluster, no process); imports no layer above the domain
//! modules.

use std::collections::BTreeMap;

use serde_norway::Value;

use crate::config;
use crate::deploy;
use crate::engine::state::{Graph, Node};
use crate::out;

/// Why the project could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ProjectError {
    #[error("cannot read {file}: {source}")]
    Read {
        file: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{file}: {message}")]
    Manifest { file: String, message: String },
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
                        && let Some(h) = release_of(cfg, r)
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

/// Which Helm release renders each resource's workload: resource name -> release name.
pub type Released = BTreeMap<String, String>;

/// The release a resource says renders it, else the only release there is.
fn release_of<'a>(cfg: &'a config::Config, r: &config::Resource) -> Option<&'a config::Helm> {
    match (&r.release, cfg.deploy.helm.as_slice()) {
        (Some(name), _) => cfg.release(name),
        (None, [only]) => Some(only),
        (None, _) => None,
    }
}

/// The cluster resources whose workload a Helm release renders (those no manifest object is
/// the workload of), each with its release.
pub fn released(cfg: &config::Config, docs: &[Doc]) -> Released {
    cfg.resources
        .iter()
        .filter(|r| !docs.iter().any(|d| d.owner.as_deref() == Some(&r.name)))
        .filter_map(|r| Some((r.name.clone(), release_of(cfg, r)?.release.clone())))
        .collect()
}

/// How the project's resources are deployed, read from the config and the manifest files
/// before anything is built: the manifests' objects, the images each resource runs, and the
/// resources the Helm release deploys.
#[derive(Debug, Default)]
pub struct Shape {
    pub docs: Vec<Doc>,
    /// The manifest files' documents as written (with their lines and warnings), for
    /// `config check`.
    pub sources: Vec<Source>,
    pub resource_images: BTreeMap<String, Vec<String>>,
    pub released: Released,
}

/// One document of a manifest file, as written.
#[derive(Debug)]
pub struct Source {
    pub file: String,
    pub doc: crate::objects::Document,
}

/// Reads the shape of `cfg`'s deploy (the manifests are parsed, no cluster is needed).
pub fn shape(cfg: &config::Config) -> Result<Shape, ProjectError> {
    let placeholders = placeholders(cfg);
    let mut sources = Vec::new();
    let docs = if cfg.needs_cluster() {
        read_manifests(cfg, &placeholders, false, Some(&mut sources))?
    } else {
        Vec::new()
    };
    Ok(Shape {
        resource_images: resource_images(cfg, &docs, &placeholders),
        released: released(cfg, &docs),
        docs,
        sources,
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
#[derive(Debug)]
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
) -> Result<Vec<Doc>, ProjectError> {
    read_manifests(cfg, references, say, None)
}

/// [`load_manifests`], keeping each document as written in `sources` when given.
fn read_manifests(
    cfg: &config::Config,
    references: &BTreeMap<String, String>,
    say: bool,
    mut sources: Option<&mut Vec<Source>>,
) -> Result<Vec<Doc>, ProjectError> {
    let mut out = Vec::new();
    for file in &cfg.deploy.manifests {
        let shown = cfg.rel(file);
        let text = crate::tree::read_capped(file, crate::tree::MAX_MANIFEST).map_err(|source| {
            ProjectError::Read {
                file: shown.clone(),
                source,
            }
        })?;
        let parsed = crate::objects::documents(&text).map_err(|e| ProjectError::Manifest {
            file: shown.clone(),
            message: e.to_string(),
        })?;
        if let Some(sources) = sources.as_deref_mut() {
            sources.extend(parsed.iter().map(|doc| Source {
                file: shown.clone(),
                doc: doc.clone(),
            }));
        }
        let rewritten = deploy::manifests::rewrite_documents(parsed, references, &cfg.project);
        for w in rewritten.warnings.iter().filter(|_| say) {
            eprintln!("{}", out::printable(&format!("warning: {shown}: {w}")));
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

/// What one deploy applies, in order: the objects that are no resource's workload (with the
/// first deploy only), then the Helm release (when it renders one of the resources), then
/// the resources' own objects and those of the changed manifest files. `up` carries it out
/// and the dry-run prints it: one rule for both.
pub struct DeployParts<'a> {
    pub shared: Vec<&'a Doc>,
    /// The Helm releases that render any of the resources, in the config's order.
    pub releases: Vec<&'a config::Helm>,
    pub own: Vec<&'a Doc>,
}

/// The parts of a deploy of `resources` and the changed `files`; `first` when the objects
/// that are no resource's workload have not gone in yet.
pub fn deploy_parts<'a>(
    cfg: &'a config::Config,
    docs: &'a [Doc],
    released: &Released,
    resources: &[String],
    files: &[String],
    first: bool,
) -> DeployParts<'a> {
    let shared: Vec<&Doc> = if first {
        docs.iter().filter(|d| d.owner.is_none()).collect()
    } else {
        Vec::new()
    };
    let own = docs
        .iter()
        .filter(|d| match &d.owner {
            Some(o) => resources.contains(o) || files.contains(&d.file),
            // Put in with the shared ones, when they go now.
            None => shared.is_empty() && files.contains(&d.file),
        })
        .collect();
    let releases = cfg
        .deploy
        .helm
        .iter()
        .filter(|h| {
            resources
                .iter()
                .any(|r| released.get(r) == Some(&h.release))
        })
        .collect();
    DeployParts {
        releases,
        shared,
        own,
    }
}

/// The engine's view of the project. `released` names the cluster resources whose workload
/// the Helm release renders.
pub fn graph(
    cfg: &config::Config,
    resource_images: &BTreeMap<String, Vec<String>>,
    released: &Released,
) -> Graph {
    let mut resources: Vec<Node> = cfg
        .resources
        .iter()
        .map(|r| Node {
            name: r.name.clone(),
            images: resource_images.get(&r.name).cloned().unwrap_or_default(),
            depends_on: r.depends_on.clone(),
            manual: r.trigger == config::TriggerMode::Manual,
            local: false,
            release: released.get(&r.name).cloned(),
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
        doctor: true,
        cluster: cfg.needs_cluster(),
        // Minikube's image store is where builds go (with an existing cluster, a registry).
        builds_need_cluster: cfg.needs_cluster()
            && cfg.cluster.provider == config::Provider::Minikube,
        manifests: cfg.deploy.manifests.iter().map(|m| cfg.rel(m)).collect(),
    }
}
