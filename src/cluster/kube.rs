//! The kube client, built for exactly the context devenv.toml selects (never "whatever
//! current-context is"), and only after the context guard has allowed it. Every write devenv
//! makes to a cluster goes through a [`Target`], so none can reach a context the guard refused.

use std::path::PathBuf;

use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::api::{DeleteParams, Patch, PatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client};

use super::ContextRefusal;
use crate::config::Config;

/// The field manager of every server-side apply devenv makes.
pub const FIELD_MANAGER: &str = "devenv";
/// The label on every object devenv creates itself.
pub const MANAGED_BY: (&str, &str) = ("app.kubernetes.io/managed-by", "devenv");

#[derive(Debug, thiserror::Error)]
pub enum KubeError {
    /// None of the kubeconfig files exists.
    #[error("no kubeconfig found (looked at: {})", files.iter().map(|f| f.display().to_string()).collect::<Vec<_>>().join(", "))]
    NoKubeconfig { files: Vec<PathBuf> },
    /// A kubeconfig file is unreadable or invalid.
    #[error("kubeconfig {}: {source}", file.display())]
    Kubeconfig {
        file: PathBuf,
        #[source]
        source: kube::config::KubeconfigError,
    },
    /// The selected context is not in the kubeconfig.
    #[error(
        "kube context `{context}` is not in your kubeconfig\n  hint: `kubectl config get-contexts` lists the contexts you have"
    )]
    ContextMissing { context: String },
    /// The guard refused the context.
    #[error("{refusal}\n  hint: {}", refusal.hint())]
    Refused { refusal: ContextRefusal },
    /// The client could not be configured from the kubeconfig.
    #[error("cannot use kube context `{context}`: {source}")]
    Config {
        context: String,
        #[source]
        source: kube::config::KubeconfigError,
    },
    /// The client could not be built.
    #[error("cannot build a kube client for `{context}`: {source}")]
    Client {
        context: String,
        #[source]
        source: kube::Error,
    },
    /// A request to the API server failed.
    #[error("{what}: {source}")]
    Api {
        what: String,
        #[source]
        source: kube::Error,
    },
}

/// A cluster devenv may write to: the client and the context it was checked for.
#[derive(Clone)]
pub struct Target {
    pub client: Client,
    pub context: String,
    pub server: Option<String>,
}

/// Reads and merges the kubeconfig files (first one wins, as kubectl does).
pub fn read_kubeconfig(files: &[PathBuf]) -> Result<Kubeconfig, KubeError> {
    let mut merged: Option<Kubeconfig> = None;
    for f in files.iter().filter(|f| f.is_file()) {
        let kc = Kubeconfig::read_from(f).map_err(|source| KubeError::Kubeconfig {
            file: f.clone(),
            source,
        })?;
        merged = Some(match merged {
            None => kc,
            Some(m) => m.merge(kc).map_err(|source| KubeError::Kubeconfig {
                file: f.clone(),
                source,
            })?,
        });
    }
    merged.ok_or_else(|| KubeError::NoKubeconfig {
        files: files.to_vec(),
    })
}

/// Builds the client for the config's context, after the guard allowed it.
pub async fn connect(cfg: &Config, files: &[PathBuf]) -> Result<Target, KubeError> {
    let kc = read_kubeconfig(files)?;
    let context = cfg.cluster.context.clone();
    let named = kc
        .contexts
        .iter()
        .find(|c| c.name == context)
        .ok_or_else(|| KubeError::ContextMissing {
            context: context.clone(),
        })?;
    let cluster_name = named
        .context
        .as_ref()
        .map(|c| c.cluster.clone())
        .unwrap_or_default();
    let server = kc
        .clusters
        .iter()
        .find(|c| c.name == cluster_name)
        .and_then(|c| c.cluster.as_ref())
        .and_then(|c| c.server.clone());
    super::check_context(cfg, &context, server.as_deref())
        .map_err(|refusal| KubeError::Refused { refusal })?;
    let options = KubeConfigOptions {
        context: Some(context.clone()),
        cluster: None,
        user: None,
    };
    let config = kube::Config::from_custom_kubeconfig(kc, &options)
        .await
        .map_err(|source| KubeError::Config {
            context: context.clone(),
            source,
        })?;
    let client = Client::try_from(config).map_err(|source| KubeError::Client {
        context: context.clone(),
        source,
    })?;
    Ok(Target {
        client,
        context,
        server,
    })
}

/// Creates the namespace when it is missing; true when it was created.
pub async fn ensure_namespace(t: &Target, name: &str) -> Result<bool, KubeError> {
    let api: Api<Namespace> = Api::all(t.client.clone());
    let what = || format!("namespace `{name}` in context `{}`", t.context);
    if api
        .get_opt(name)
        .await
        .map_err(|source| KubeError::Api {
            what: what(),
            source,
        })?
        .is_some()
    {
        return Ok(false);
    }
    let ns = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": { "name": name, "labels": { MANAGED_BY.0: MANAGED_BY.1 } }
    });
    api.patch(name, &PatchParams::apply(FIELD_MANAGER), &Patch::Apply(&ns))
        .await
        .map_err(|source| KubeError::Api {
            what: what(),
            source,
        })?;
    Ok(true)
}

/// Deletes a Secret devenv made; a missing one is fine.
pub async fn delete_secret(t: &Target, namespace: &str, name: &str) -> Result<bool, KubeError> {
    let api: Api<Secret> = Api::namespaced(t.client.clone(), namespace);
    match api.delete(name, &DeleteParams::default()).await {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(false),
        Err(source) => Err(KubeError::Api {
            what: format!("deleting secret `{name}` in `{namespace}`"),
            source,
        }),
    }
}
