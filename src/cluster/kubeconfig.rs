//! Reading kubeconfig files the way kubectl does: `$KUBECONFIG` (a list of files, merged, the
//! first file to set a value wins) or `~/.kube/config`. Only what devenv needs: contexts,
//! their clusters' servers, and the current context.

use std::path::{Path, PathBuf};

use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
struct RawKubeconfig {
    #[serde(rename = "current-context", default)]
    current_context: Option<String>,
    #[serde(default)]
    contexts: Vec<NamedContext>,
    #[serde(default)]
    clusters: Vec<NamedCluster>,
}

#[derive(Debug, Deserialize)]
struct NamedContext {
    name: String,
    context: ContextBody,
}

#[derive(Debug, Deserialize)]
struct ContextBody {
    cluster: String,
    #[serde(default)]
    namespace: Option<String>,
}

#[derive(Debug, Deserialize)]
struct NamedCluster {
    name: String,
    cluster: ClusterBody,
}

#[derive(Debug, Deserialize)]
struct ClusterBody {
    #[serde(default)]
    server: Option<String>,
}

/// One context, resolved to its cluster's server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Context {
    pub name: String,
    pub cluster: String,
    pub server: Option<String>,
    pub namespace: Option<String>,
}

/// The merged view of the kubeconfig files.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Kubeconfig {
    pub files: Vec<PathBuf>,
    pub current_context: Option<String>,
    pub contexts: Vec<Context>,
}

impl Kubeconfig {
    pub fn context(&self, name: &str) -> Option<&Context> {
        self.contexts.iter().find(|c| c.name == name)
    }
}

/// The files kubectl would read: `$KUBECONFIG` entries, else `~/.kube/config`.
pub fn default_paths(kubeconfig_env: Option<&str>, home: Option<&Path>) -> Vec<PathBuf> {
    match kubeconfig_env {
        Some(v) if !v.is_empty() => std::env::split_paths(v)
            .filter(|p| !p.as_os_str().is_empty())
            .collect(),
        _ => home
            .map(|h| vec![h.join(".kube").join("config")])
            .unwrap_or_default(),
    }
}

/// The largest kubeconfig devenv reads (one with many clusters and inline certificates is
/// well under a MiB).
pub const MAX_KUBECONFIG: u64 = 16 * 1024 * 1024;

/// Reads and merges the files that exist. A file that cannot be parsed is an error naming it.
pub fn load(paths: &[PathBuf]) -> Result<Kubeconfig, String> {
    let mut merged = Kubeconfig::default();
    let mut clusters: Vec<NamedCluster> = Vec::new();
    let mut contexts: Vec<NamedContext> = Vec::new();
    for p in paths {
        // A regular file of bounded size: KUBECONFIG=/dev/zero took the machine's memory.
        let text = match crate::tree::read_capped(p, MAX_KUBECONFIG) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(format!("cannot read {}: {e}", p.display())),
        };
        let raw: RawKubeconfig = if text.trim().is_empty() {
            RawKubeconfig::default()
        } else {
            serde_norway::from_str(&text)
                .map_err(|e| format!("{} is not a valid kubeconfig: {e}", p.display()))?
        };
        merged.files.push(p.clone());
        if merged.current_context.is_none() {
            merged.current_context = raw.current_context.filter(|c| !c.is_empty());
        }
        for c in raw.contexts {
            if !contexts.iter().any(|x| x.name == c.name) {
                contexts.push(c);
            }
        }
        for c in raw.clusters {
            if !clusters.iter().any(|x| x.name == c.name) {
                clusters.push(c);
            }
        }
    }
    merged.contexts = contexts
        .into_iter()
        .map(|c| Context {
            server: clusters
                .iter()
                .find(|k| k.name == c.context.cluster)
                .and_then(|k| k.cluster.server.clone()),
            name: c.name,
            cluster: c.context.cluster,
            namespace: c.context.namespace,
        })
        .collect();
    Ok(merged)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIKUBE: &str = "apiVersion: v1\nkind: Config\ncurrent-context: minikube\nclusters:\n- cluster:\n    certificate-authority: /home/u/.minikube/ca.crt\n    server: https://192.168.49.2:8443\n  name: minikube\ncontexts:\n- context:\n    cluster: minikube\n    namespace: default\n    user: minikube\n  name: minikube\nusers:\n- name: minikube\n  user:\n    client-certificate: /home/u/.minikube/profiles/minikube/client.crt\n";
    const PROD: &str = "apiVersion: v1\nkind: Config\ncurrent-context: prod\nclusters:\n- cluster:\n    server: https://api.prod.example.com\n  name: prod-cluster\ncontexts:\n- context:\n    cluster: prod-cluster\n    user: admin\n  name: prod\n";

    #[test]
    fn merges_files_first_one_wins() -> Result<(), std::io::Error> {
        let dir = tempfile::tempdir()?;
        let a = dir.path().join("a");
        let b = dir.path().join("b");
        std::fs::write(&a, MINIKUBE)?;
        std::fs::write(&b, PROD)?;
        let kc = load(&[a.clone(), b.clone(), dir.path().join("missing")])
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(kc.current_context.as_deref(), Some("minikube"));
        assert_eq!(kc.files, vec![a, b]);
        let prod = kc.context("prod").unwrap_or_else(|| panic!("no prod"));
        assert_eq!(prod.server.as_deref(), Some("https://api.prod.example.com"));
        assert_eq!(
            kc.context("minikube").and_then(|c| c.namespace.as_deref()),
            Some("default")
        );
        Ok(())
    }

    #[test]
    fn paths_follow_kubeconfig_or_home() {
        let home = Path::new("/home/u");
        assert_eq!(
            default_paths(None, Some(home)),
            vec![PathBuf::from("/home/u/.kube/config")]
        );
        assert_eq!(
            default_paths(Some("/a:/b"), Some(home)),
            vec![PathBuf::from("/a"), PathBuf::from("/b")]
        );
    }

    #[test]
    fn a_broken_file_is_named() -> Result<(), std::io::Error> {
        let dir = tempfile::tempdir()?;
        let a = dir.path().join("config");
        std::fs::write(&a, "contexts: [")?;
        let e = load(&[a]).err().unwrap_or_default();
        assert!(e.contains("is not a valid kubeconfig"), "{e}");
        Ok(())
    }
}
