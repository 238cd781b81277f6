//! The kube client, built for exactly the context devenv.toml selects (never "whatever
//! current-context is"), and only after the context guard has allowed it. Every write devenv
//! makes to a cluster goes through a [`Target`], so none can reach a context the guard refused.

use std::path::PathBuf;

use k8s_openapi::api::core::v1::{Namespace, PersistentVolumeClaim, Secret};
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
    /// A kubeconfig file larger than any kubeconfig (a wrong path in KUBECONFIG).
    #[error("kubeconfig {}: it is {size} bytes, larger than a kubeconfig ({} MiB at most)", file.display(), super::kubeconfig::MAX_KUBECONFIG >> 20)]
    KubeconfigTooLarge { file: PathBuf, size: u64 },
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
    #[error("{what}: {source}{}", source.trouble().hint_line())]
    Api { what: String, source: ApiFailure },
    /// A namespace devenv deploys into is still being deleted.
    #[error(
        "namespace `{namespace}` is still being deleted after {}s\n  hint: something holds it (a finalizer): `kubectl get namespace {namespace} -o yaml` shows its conditions; once it is gone, `devenv up` makes it anew",
        waited.as_secs()
    )]
    Terminating {
        namespace: String,
        waited: std::time::Duration,
    },
    /// The API server did not answer at all.
    #[error("cannot reach the API server of kube context `{context}`{}: {detail}\n  hint: {hint}", server.as_ref().map_or(String::new(), |s| format!(" at {s}")))]
    Unreachable {
        context: String,
        server: Option<String>,
        detail: String,
        hint: String,
    },
}

/// What kind of trouble a request to the API server ran into.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Trouble {
    /// No answer: nothing listens, DNS, TLS, a timeout.
    Unreachable,
    /// The API server answered, but could not reach the node's kubelet, which serves pod
    /// logs, exec and port-forward.
    KubeletUnreachable,
    Unauthorized,
    Forbidden,
    /// Refused because the namespace is being deleted (a 403 that is no lack of permission).
    NamespaceTerminating,
    NotFound,
    /// Any other answer.
    Other,
}

/// A kube-rs error as a user reads it: one sentence with the API server's own message, and
/// never a Debug dump of its Status (kube-rs's own Display has one). It ends the cause chain.
#[derive(Debug)]
pub struct ApiFailure(pub kube::Error);

impl From<kube::Error> for ApiFailure {
    fn from(e: kube::Error) -> Self {
        ApiFailure(e)
    }
}

impl std::error::Error for ApiFailure {}

impl std::fmt::Display for ApiFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&explain(&self.0).0)
    }
}

impl ApiFailure {
    pub fn trouble(&self) -> Trouble {
        explain(&self.0).1
    }
}

impl Trouble {
    /// The hint as a line to put under a message (`\n  hint: …`), or nothing.
    pub fn hint_line(self) -> String {
        self.hint()
            .map_or(String::new(), |h| format!("\n  hint: {h}"))
    }

    /// What to do about it, where there is something to say that does not depend on the
    /// context (the caller adds context-specific hints, such as the unreachable server's).
    pub fn hint(self) -> Option<&'static str> {
        match self {
            Trouble::KubeletUnreachable => Some(
                "pod logs, exec and port-forward go from the API server to the node's kubelet; check that the node is Ready and reachable (`kubectl get nodes -o wide`)",
            ),
            Trouble::Unauthorized => Some(
                "the cluster refused the kubeconfig's credentials; refresh them (for Minikube: `minikube update-context`)",
            ),
            Trouble::Forbidden => Some(
                "the context's user may not do this; `kubectl auth can-i --list` shows what it may do",
            ),
            Trouble::Unreachable => Some(
                "check that the cluster is running (`minikube status`) and that the kube context points at it",
            ),
            Trouble::NamespaceTerminating => Some(
                "the namespace is being deleted (a `devenv down` a moment ago?); run `devenv up` again once it is gone",
            ),
            Trouble::NotFound | Trouble::Other => None,
        }
    }
}

/// The sentence for a status the API server sent.
fn explain_status(s: &kube::core::Status) -> (String, Trouble) {
    let message = if s.message.is_empty() {
        s.reason.clone()
    } else {
        s.message.clone()
    };
    let to_kubelet = [
        ":10250",
        "dialing backend",
        "egress",
        "containerLogs",
        "kubelet",
    ];
    let trouble = match s.code {
        401 => Trouble::Unauthorized,
        403 if message.contains("because it is being terminated") => Trouble::NamespaceTerminating,
        403 => Trouble::Forbidden,
        404 => Trouble::NotFound,
        500..=504 if to_kubelet.iter().any(|k| message.contains(k)) => Trouble::KubeletUnreachable,
        _ => Trouble::Other,
    };
    let code = if s.code == 0 {
        String::new()
    } else {
        format!(" (HTTP {})", s.code)
    };
    let text = match trouble {
        Trouble::KubeletUnreachable => {
            format!("the API server cannot reach the node's kubelet{code}: {message}")
        }
        _ if message.is_empty() => format!("the API server refused the request{code}"),
        _ => format!("{message}{code}"),
    };
    (text, trouble)
}

/// The deepest cause of an error, as a sentence fragment (`connection refused`).
fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    let text = cur.to_string();
    let text = match text.rfind(" (os error ") {
        Some(i) if text.ends_with(')') => text[..i].to_owned(),
        _ => text,
    };
    let mut chars = text.chars();
    match chars.next() {
        Some(c) => c.to_lowercase().chain(chars).collect(),
        None => text,
    }
}

/// A kube-rs error as one sentence, and what kind of trouble it is.
pub fn explain(e: &kube::Error) -> (String, Trouble) {
    match e {
        kube::Error::Api(status) => explain_status(status),
        kube::Error::HyperError(_) | kube::Error::Service(_) => (
            format!("no answer from the API server: {}", root_cause(e)),
            Trouble::Unreachable,
        ),
        kube::Error::SerdeError(s) => (
            format!("an answer of the API server could not be read: {s}"),
            Trouble::Other,
        ),
        other => (root_cause(other), Trouble::Other),
    }
}

/// A watch's error as one sentence, and what kind of trouble it is.
pub fn explain_watch(e: &kube::runtime::watcher::Error) -> (String, Trouble) {
    use kube::runtime::watcher::Error as W;
    match e {
        W::InitialListFailed(k) | W::WatchStartFailed(k) | W::WatchFailed(k) => explain(k),
        W::WatchError(status) => explain_status(status),
        W::NoResourceVersion => (
            "the API server sent no resourceVersion, so the list cannot be watched".into(),
            Trouble::Other,
        ),
    }
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
        // Regular (above) and of bounded size: kube reads it whole.
        let size = std::fs::metadata(f).map_or(0, |m| m.len());
        if size > super::kubeconfig::MAX_KUBECONFIG {
            return Err(KubeError::KubeconfigTooLarge {
                file: f.clone(),
                size,
            });
        }
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
    let client = client_of(config).map_err(|source| KubeError::Client {
        context: context.clone(),
        source,
    })?;
    // One cheap request first, so an API server that does not answer is told once, with
    // its address, before anything else tries.
    if let Err(e) = client.apiserver_version().await {
        let failure = ApiFailure(e);
        if failure.trouble() != Trouble::Unreachable {
            return Err(KubeError::Api {
                what: format!("the API server of kube context `{context}`"),
                source: failure,
            });
        }
        let hint = if cfg.cluster.provider == crate::config::Provider::Minikube {
            format!(
                "is the cluster running? `minikube status -p {p}` tells, and `devenv up` starts it; if it runs, the context's address may be stale: `minikube update-context -p {p}`",
                p = cfg.cluster.profile
            )
        } else {
            format!(
                "check that the cluster is up and that context `{context}` points at it: `kubectl --context {context} cluster-info`"
            )
        };
        return Err(KubeError::Unreachable {
            context,
            server,
            detail: root_cause(&failure.0),
            hint,
        });
    }
    Ok(Target {
        client,
        context,
        server,
    })
}

/// How long `up` waits for a namespace that is being deleted (a `devenv down` a moment ago)
/// to go, before it makes it anew.
pub const TERMINATING_WAIT: std::time::Duration = std::time::Duration::from_secs(120);

/// Waits while namespace `name` is being deleted (its phase is Terminating), at most
/// [`TERMINATING_WAIT`]; `on_wait` is told once when there is something to wait for. An
/// error when it is still there after that, naming what to look at.
pub async fn wait_terminating(
    t: &Target,
    name: &str,
    on_wait: &mut (dyn FnMut() + Send),
) -> Result<(), KubeError> {
    let api: Api<Namespace> = Api::all(t.client.clone());
    let what = || format!("namespace `{name}` in context `{}`", t.context);
    let deadline = tokio::time::Instant::now() + TERMINATING_WAIT;
    let mut told = false;
    loop {
        let ns = api.get_opt(name).await.map_err(|e| KubeError::Api {
            what: what(),
            source: e.into(),
        })?;
        let terminating = ns.is_some_and(|n| {
            n.metadata.deletion_timestamp.is_some()
                || n.status.and_then(|s| s.phase).as_deref() == Some("Terminating")
        });
        if !terminating {
            return Ok(());
        }
        if !told {
            on_wait();
            told = true;
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(KubeError::Terminating {
                namespace: name.to_owned(),
                waited: TERMINATING_WAIT,
            });
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
}

/// Creates the namespace when it is missing; true when it was created.
pub async fn ensure_namespace(t: &Target, name: &str) -> Result<bool, KubeError> {
    let api: Api<Namespace> = Api::all(t.client.clone());
    let what = || format!("namespace `{name}` in context `{}`", t.context);
    if api
        .get_opt(name)
        .await
        .map_err(|e| KubeError::Api {
            what: what(),
            source: e.into(),
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
        .map_err(|e| KubeError::Api {
            what: what(),
            source: e.into(),
        })?;
    Ok(true)
}

/// Creates a namespace the Helm chart renders itself, for Helm to adopt: Helm keeps its
/// release record in the release's namespace before it creates anything, so the namespace
/// must exist first, and it must carry Helm's ownership metadata or Helm refuses to take it
/// over. One devenv made earlier gets that metadata too; one that exists otherwise is left
/// alone (Helm then says whose it is). True when it was created.
pub async fn ensure_namespace_for_helm(
    t: &Target,
    name: &str,
    release: &str,
    release_namespace: &str,
) -> Result<bool, KubeError> {
    let api: Api<Namespace> = Api::all(t.client.clone());
    let what = || format!("namespace `{name}` in context `{}`", t.context);
    let existing = api.get_opt(name).await.map_err(|e| KubeError::Api {
        what: what(),
        source: e.into(),
    })?;
    let devenvs = existing
        .as_ref()
        .is_some_and(|ns| labelled_by_devenv(&ns.metadata));
    if existing.is_some() && !devenvs {
        return Ok(false);
    }
    let ns = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {
            "name": name,
            "labels": { MANAGED_BY.0: "Helm" },
            "annotations": {
                "meta.helm.sh/release-name": release,
                "meta.helm.sh/release-namespace": release_namespace,
            },
        }
    });
    api.patch(
        name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&ns),
    )
    .await
    .map_err(|e| KubeError::Api {
        what: what(),
        source: e.into(),
    })?;
    Ok(existing.is_none())
}

/// Whether namespace `name` exists and devenv made it (its managed-by label).
pub async fn made_by_devenv(t: &Target, name: &str) -> Result<bool, KubeError> {
    let api: Api<Namespace> = Api::all(t.client.clone());
    let ns = api.get_opt(name).await.map_err(|e| KubeError::Api {
        what: format!("namespace `{name}` in context `{}`", t.context),
        source: e.into(),
    })?;
    Ok(ns.is_some_and(|n| {
        n.metadata.deletion_timestamp.is_none() && labelled_by_devenv(&n.metadata)
    }))
}

/// Whether an object carries devenv's managed-by label ([`MANAGED_BY`]).
fn labelled_by_devenv(meta: &kube::api::ObjectMeta) -> bool {
    meta.labels
        .as_ref()
        .and_then(|l| l.get(MANAGED_BY.0))
        .is_some_and(|v| v == MANAGED_BY.1)
}

/// The names of the PersistentVolumeClaims in `namespace` (at most 50).
pub async fn volume_claims(t: &Target, namespace: &str) -> Result<Vec<String>, KubeError> {
    let api: Api<PersistentVolumeClaim> = Api::namespaced(t.client.clone(), namespace);
    let list = api
        .list(&kube::api::ListParams::default().limit(50))
        .await
        .map_err(|e| KubeError::Api {
            what: format!("the volume claims of namespace `{namespace}`"),
            source: e.into(),
        })?;
    Ok(list
        .items
        .into_iter()
        .filter(|c| c.metadata.deletion_timestamp.is_none())
        .filter_map(|c| c.metadata.name)
        .collect())
}

/// Deletes a Secret devenv made; a missing one is fine.
pub async fn delete_secret(t: &Target, namespace: &str, name: &str) -> Result<bool, KubeError> {
    let api: Api<Secret> = Api::namespaced(t.client.clone(), namespace);
    match api.delete(name, &DeleteParams::default()).await {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(false),
        Err(e) => Err(KubeError::Api {
            what: format!("deleting secret `{name}` in `{namespace}`"),
            source: e.into(),
        }),
    }
}

/// The client kube-rs would build from `config` (its TLS, timeouts, retries of 429/503/504,
/// credentials and headers), with TCP_NODELAY on its connections: the frames of an exec or
/// a port-forward (small writes, one after another) go out at once instead of waiting for
/// the server's delayed ACK, 40 ms each on Linux (a live update of one file into two
/// containers took 89 ms with it, 5 ms without).
fn client_of(config: kube::Config) -> Result<Client, kube::Error> {
    use kube::client::ConfigExt as _;
    let mut http = hyper_util::client::legacy::connect::HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    let https = config.rustls_https_connector_with_connector(http)?;
    let mut connector = hyper_timeout::TimeoutConnector::new(https);
    connector.set_connect_timeout(config.connect_timeout);
    connector.set_read_timeout(config.read_timeout);
    connector.set_write_timeout(config.write_timeout);
    connector.set_reset_reader_on_write(config.reset_reader_on_write);
    let hyper_client: hyper_util::client::legacy::Client<_, kube::client::Body> =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build(connector);
    let service = tower::ServiceBuilder::new()
        .layer(config.base_uri_layer())
        .option_layer(
            config
                .default_retry
                .then_some(tower::retry::RetryLayer::new(
                    kube::client::retry::RetryPolicy::server_retry(),
                )),
        )
        .option_layer(config.auth_layer()?)
        .layer(config.extra_headers_layer()?)
        .map_err(
            |e: hyper_util::client::legacy::Error| -> Box<dyn std::error::Error + Send + Sync> {
                Box::new(e)
            },
        )
        .service(hyper_client);
    Ok(Client::new(service, config.default_namespace))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 28, item 23: a create refused because the namespace is being deleted was told
    /// as a lack of permission ("the context's user may not do this").
    #[test]
    fn a_refusal_in_a_terminating_namespace_is_no_lack_of_permission() {
        let terminating = kube::core::Status::failure(
            "deployments.apps \"hello\" is forbidden: unable to create new content in namespace x because it is being terminated",
            "Forbidden",
        )
        .with_code(403);
        assert_eq!(
            explain_status(&terminating).1,
            Trouble::NamespaceTerminating
        );
        let denied = kube::core::Status::failure(
            "deployments.apps is forbidden: User \"dev\" cannot create resource",
            "Forbidden",
        )
        .with_code(403);
        assert_eq!(explain_status(&denied).1, Trouble::Forbidden);
    }
}
