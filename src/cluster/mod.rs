//! The cluster: Minikube's lifecycle and docker-env, the kube client for the selected
//! context, and the guard every write passes.
//!
//! Owns every decision about *where* devenv writes. Must not build or deploy anything itself.

pub mod bootstrap;
pub mod kube;
pub mod kubeconfig;
pub mod minikube;

use crate::config::{Config, Provider};

/// Context names that tools for local clusters create.
const LOCAL_CONTEXT_NAMES: [&str; 7] = [
    "minikube",
    "docker-desktop",
    "docker-for-desktop",
    "rancher-desktop",
    "orbstack",
    "colima",
    "microk8s",
];
const LOCAL_CONTEXT_PREFIXES: [&str; 3] = ["kind-", "k3d-", "colima-"];

/// Whether a context looks like a cluster on this machine: by the name local tools give it, or
/// by an API server on a loopback address.
pub fn is_local_context(name: &str, server: Option<&str>) -> bool {
    if LOCAL_CONTEXT_NAMES.contains(&name)
        || LOCAL_CONTEXT_PREFIXES.iter().any(|p| name.starts_with(p))
    {
        return true;
    }
    server.is_some_and(|s| {
        let host = s
            .split("://")
            .nth(1)
            .unwrap_or(s)
            .split('/')
            .next()
            .unwrap_or("");
        let host = host.rsplit_once(':').map_or(host, |(h, port)| {
            if port.chars().all(|c| c.is_ascii_digit()) {
                h
            } else {
                host
            }
        });
        matches!(host, "localhost" | "127.0.0.1" | "[::1]" | "::1") || host.starts_with("127.")
    })
}

/// Why devenv refuses to write to a context.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ContextRefusal {
    /// The context is remote and not listed in `allowed_contexts`.
    #[error(
        "refusing to write to kube context `{context}`{}: it is not a local cluster and devenv.toml does not allow it",
        server.as_ref().map_or(String::new(), |s| format!(" ({s})"))
    )]
    NotAllowed {
        context: String,
        server: Option<String>,
    },
    /// devenv was about to use another context than the one the config names.
    #[error("refusing to write to kube context `{context}`: devenv.toml selects `{expected}`")]
    NotSelected { context: String, expected: String },
}

impl ContextRefusal {
    pub fn hint(&self) -> String {
        match self {
            ContextRefusal::NotAllowed { context, .. } => format!(
                "if you really mean to deploy there, add allowed_contexts = [\"{context}\"] to [cluster]"
            ),
            ContextRefusal::NotSelected { expected, .. } => {
                format!("devenv only writes to `{expected}`; check [cluster] in devenv.toml")
            }
        }
    }
}

/// The guard every write passes: `context` must be the one the config selects, and it must
/// be the Minikube profile's, a local cluster's, or listed in `allowed_contexts`.
pub fn check_context(
    cfg: &Config,
    context: &str,
    server: Option<&str>,
) -> Result<(), ContextRefusal> {
    if context != cfg.cluster.context {
        return Err(ContextRefusal::NotSelected {
            context: context.to_owned(),
            expected: cfg.cluster.context.clone(),
        });
    }
    let profile_context =
        cfg.cluster.provider == Provider::Minikube && context == cfg.cluster.profile;
    if profile_context
        || cfg.cluster.allowed_contexts.iter().any(|a| a == context)
        || is_local_context(context, server)
    {
        Ok(())
    } else {
        Err(ContextRefusal::NotAllowed {
            context: context.to_owned(),
            server: server.map(str::to_owned),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_contexts_by_name_or_loopback_server() {
        assert!(is_local_context("minikube", None));
        assert!(is_local_context("kind-dev", None));
        assert!(is_local_context("docker-desktop", None));
        assert!(is_local_context("lab", Some("https://127.0.0.1:6443")));
        assert!(is_local_context("lab", Some("https://localhost:6443")));
        assert!(is_local_context("lab", Some("https://[::1]:6443")));
        assert!(!is_local_context(
            "prod",
            Some("https://api.prod.example.com:443")
        ));
        assert!(!is_local_context(
            "arn:aws:eks:eu-west-1:1:cluster/prod",
            Some("https://ABC.gr7.eu-west-1.eks.amazonaws.com")
        ));
        assert!(!is_local_context("lab", Some("https://10.0.0.5:6443")));
    }
}
