//! Applying plain manifests: each object, with devenv's images and labels in place, goes to
//! the API server by server-side apply (field manager `devenv`), at the resource the server's
//! discovery names for its kind.

use std::path::{Path, PathBuf};

use kube::Api;
use kube::api::{ApiResource, DeleteParams, DynamicObject, GroupVersionKind, Patch, PatchParams};
use kube::discovery::{Discovery, Scope};
use serde::{Deserialize, Serialize};
use serde_norway::Value;

use super::manifests::PROJECT_LABEL;

use crate::cluster::kube::{FIELD_MANAGER, KubeError, Target};

#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// An object lacks apiVersion, kind or metadata.name.
    #[error("{file}: an object has no {what}")]
    Incomplete { file: String, what: &'static str },
    /// The server does not know the object's kind.
    #[error(
        "{file}: the cluster does not know {api_version} {kind}\n  hint: is its CRD installed? `kubectl api-resources` lists what the cluster serves"
    )]
    UnknownKind {
        file: String,
        api_version: String,
        kind: String,
    },
    /// A manifest file is not YAML devenv can read.
    #[error("{file}: {error}")]
    Unreadable { file: String, error: String },
    /// The inventory of applied objects could not be written.
    #[error("cannot write {file}: {error}")]
    Inventory { file: String, error: String },
    #[error(transparent)]
    Kube(#[from] KubeError),
}

/// One object of the manifests, as the API server names it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ObjectRef {
    pub api_version: String,
    pub kind: String,
    /// None for cluster-scoped objects.
    pub namespace: Option<String>,
    pub name: String,
}

impl std::fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.kind, self.name)
    }
}

fn incomplete(file: &str, what: &'static str) -> ApplyError {
    ApplyError::Incomplete {
        file: file.to_owned(),
        what,
    }
}

/// Where `doc` lives: its kind's API resource (from discovery) and its reference.
fn locate(
    discovery: &Discovery,
    file: &str,
    doc: &Value,
    namespace: &str,
) -> Result<(ApiResource, ObjectRef), ApplyError> {
    let field = |k: &str| doc.get(k).and_then(Value::as_str).map(str::to_owned);
    let api_version = field("apiVersion").ok_or_else(|| incomplete(file, "apiVersion"))?;
    let kind = field("kind").ok_or_else(|| incomplete(file, "kind"))?;
    let meta = |k: &str| {
        doc.get("metadata")
            .and_then(|m| m.get(k))
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    let name = meta("name").ok_or_else(|| incomplete(file, "metadata.name"))?;
    let (group, version) = api_version.split_once('/').unwrap_or(("", &api_version));
    let gvk = GroupVersionKind::gvk(group, version, &kind);
    let Some((resource, caps)) = discovery.resolve_gvk(&gvk) else {
        return Err(ApplyError::UnknownKind {
            file: file.to_owned(),
            api_version,
            kind,
        });
    };
    let namespace = match caps.scope {
        Scope::Namespaced => Some(meta("namespace").unwrap_or_else(|| namespace.to_owned())),
        Scope::Cluster => None,
    };
    Ok((
        resource,
        ObjectRef {
            api_version,
            kind,
            namespace,
            name,
        },
    ))
}

fn api_for(t: &Target, resource: &ApiResource, at: &ObjectRef) -> Api<DynamicObject> {
    match &at.namespace {
        Some(ns) => Api::namespaced_with(t.client.clone(), ns, resource),
        None => Api::all_with(t.client.clone(), resource),
    }
}

/// The references of `docs` (for the inventory), without applying anything.
pub fn refs(
    discovery: &Discovery,
    file: &str,
    docs: &[Value],
    namespace: &str,
) -> Result<Vec<ObjectRef>, ApplyError> {
    docs.iter()
        .map(|d| locate(discovery, file, d, namespace).map(|(_, r)| r))
        .collect()
}

/// Applies `docs` (from `file`, for messages); namespaced objects without a namespace go to
/// `namespace`. Returns `Kind/name` of each applied object.
pub async fn apply(
    t: &Target,
    discovery: &Discovery,
    file: &str,
    docs: &[Value],
    namespace: &str,
) -> Result<Vec<String>, ApplyError> {
    let mut applied = Vec::new();
    for doc in docs {
        let (resource, at) = locate(discovery, file, doc, namespace)?;
        let body = serde_json::to_value(doc).map_err(|e| KubeError::Api {
            what: at.to_string(),
            source: kube::Error::SerdeError(e).into(),
        })?;
        api_for(t, &resource, &at)
            .patch(
                &at.name,
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(&body),
            )
            .await
            .map_err(|e| KubeError::Api {
                what: format!("applying {at} from {file}"),
                source: e.into(),
            })?;
        applied.push(at.to_string());
    }
    Ok(applied)
}

/// What pruning did with one object that left the manifests.
#[derive(Debug, PartialEq, Eq)]
pub enum Pruned {
    Deleted(ObjectRef),
    /// Still there, but no longer labelled as this project's: someone else owns it now.
    Kept(ObjectRef),
}

/// Deletes the objects devenv applied before (`stale`: in the last inventory, no longer in
/// the manifests), each only while it still carries this project's label. Objects already
/// gone, or of kinds the server no longer serves, are skipped.
pub async fn prune(
    t: &Target,
    discovery: &Discovery,
    stale: &[ObjectRef],
    project: &str,
) -> Result<Vec<Pruned>, KubeError> {
    let mut out = Vec::new();
    for at in stale {
        let (group, version) = at
            .api_version
            .split_once('/')
            .unwrap_or(("", &at.api_version));
        let Some((resource, _)) =
            discovery.resolve_gvk(&GroupVersionKind::gvk(group, version, &at.kind))
        else {
            continue;
        };
        let api = api_for(t, &resource, at);
        let live = api.get_opt(&at.name).await.map_err(|e| KubeError::Api {
            what: format!("reading {at}"),
            source: e.into(),
        })?;
        let Some(live) = live else { continue };
        let ours = live
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(PROJECT_LABEL))
            .is_some_and(|p| p == project);
        if !ours {
            out.push(Pruned::Kept(at.clone()));
            continue;
        }
        api.delete(&at.name, &DeleteParams::background())
            .await
            .map_err(|e| KubeError::Api {
                what: format!("pruning {at}"),
                source: e.into(),
            })?;
        out.push(Pruned::Deleted(at.clone()));
    }
    Ok(out)
}

/// What `down` removes of the plain manifests' objects: everything the inventory says devenv
/// applied (a file deleted since is no excuse to leave its objects behind) and everything
/// today's files name, each only while it carries this project's label. The inventory is
/// emptied of what was removed.
pub async fn remove_applied(
    t: &Target,
    cfg: &crate::config::Config,
    inventory: Option<&Path>,
) -> Result<Vec<Pruned>, ApplyError> {
    let recorded = inventory.map(load_inventory).unwrap_or_default();
    if recorded.is_empty() && cfg.deploy.manifests.is_empty() {
        return Ok(Vec::new());
    }
    let discovery = discover(t).await?;
    let mut wanted = recorded.clone();
    for file in &cfg.deploy.manifests {
        let shown = cfg.rel(file);
        // A file that is gone or unreadable now still had its objects in the inventory.
        let Ok(text) = crate::tree::read_capped(file, crate::tree::MAX_MANIFEST) else {
            continue;
        };
        let docs = super::manifests::rewrite(&text, &Default::default(), &cfg.project)
            .map_err(|e| ApplyError::Unreadable {
                file: shown.clone(),
                error: e,
            })?
            .docs;
        wanted.extend(refs(&discovery, &shown, &docs, &cfg.deploy.namespace)?);
    }
    wanted.sort();
    wanted.dedup();
    let done = prune(t, &discovery, &wanted, &cfg.project).await?;
    if let Some(path) = inventory {
        let left: Vec<ObjectRef> = recorded
            .into_iter()
            .filter(|r| {
                !done
                    .iter()
                    .any(|p| matches!(p, Pruned::Deleted(d) if d == r))
            })
            .collect();
        save_inventory(path, &left).map_err(|e| ApplyError::Inventory {
            file: path.display().to_string(),
            error: e.to_string(),
        })?;
    }
    Ok(done)
}

/// Where the inventory of what devenv applied for this project and context is kept.
pub fn inventory_path(state: &Path, root: &Path, context: &str) -> PathBuf {
    let key = blake3::hash(format!("{}\n{context}", root.display()).as_bytes()).to_hex();
    state.join("inventory").join(format!("{}.json", &key[..16]))
}

pub fn load_inventory(path: &Path) -> Vec<ObjectRef> {
    std::fs::read(path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

pub fn save_inventory(path: &Path, refs: &[ObjectRef]) -> std::io::Result<()> {
    let tmp = path.with_extension("json.tmp");
    std::io::Write::write_all(
        &mut crate::host::private_file(&tmp)?,
        &serde_json::to_vec_pretty(refs).unwrap_or_default(),
    )?;
    std::fs::rename(tmp, path)
}

/// Asks the server which resources it serves.
pub async fn discover(t: &Target) -> Result<Discovery, KubeError> {
    Discovery::new(t.client.clone())
        .run()
        .await
        .map_err(|e| KubeError::Api {
            what: format!("API discovery on `{}`", t.context),
            source: e.into(),
        })
}
