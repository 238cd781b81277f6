//! Applying plain manifests: each object, with devenv's images and labels in place, goes to
//! the API server by server-side apply (field manager `devenv`), at the resource the server's
//! discovery names for its kind.

use kube::Api;
use kube::api::{DynamicObject, GroupVersionKind, Patch, PatchParams};
use kube::discovery::{Discovery, Scope};
use serde_norway::Value;

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
    #[error(transparent)]
    Kube(#[from] KubeError),
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
        let field = |k: &str| doc.get(k).and_then(Value::as_str).map(str::to_owned);
        let api_version = field("apiVersion").ok_or(ApplyError::Incomplete {
            file: file.to_owned(),
            what: "apiVersion",
        })?;
        let kind = field("kind").ok_or(ApplyError::Incomplete {
            file: file.to_owned(),
            what: "kind",
        })?;
        let name = doc
            .get("metadata")
            .and_then(|m| m.get("name"))
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or(ApplyError::Incomplete {
                file: file.to_owned(),
                what: "metadata.name",
            })?;
        let (group, version) = api_version.split_once('/').unwrap_or(("", &api_version));
        let gvk = GroupVersionKind::gvk(group, version, &kind);
        let Some((resource, caps)) = discovery.resolve_gvk(&gvk) else {
            return Err(ApplyError::UnknownKind {
                file: file.to_owned(),
                api_version,
                kind,
            });
        };
        let api: Api<DynamicObject> = match caps.scope {
            Scope::Namespaced => {
                let ns = doc
                    .get("metadata")
                    .and_then(|m| m.get("namespace"))
                    .and_then(Value::as_str)
                    .unwrap_or(namespace);
                Api::namespaced_with(t.client.clone(), ns, &resource)
            }
            Scope::Cluster => Api::all_with(t.client.clone(), &resource),
        };
        let body = serde_json::to_value(doc).map_err(|e| KubeError::Api {
            what: format!("{kind}/{name}"),
            source: kube::Error::SerdeError(e),
        })?;
        api.patch(
            &name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&body),
        )
        .await
        .map_err(|source| KubeError::Api {
            what: format!("applying {kind}/{name} from {file}"),
            source,
        })?;
        applied.push(format!("{kind}/{name}"));
    }
    Ok(applied)
}

/// Asks the server which resources it serves.
pub async fn discover(t: &Target) -> Result<Discovery, KubeError> {
    Discovery::new(t.client.clone())
        .run()
        .await
        .map_err(|source| KubeError::Api {
            what: format!("API discovery on `{}`", t.context),
            source,
        })
}
