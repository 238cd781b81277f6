//! The pods behind a resource, kept current by one kube-rs watcher (a reflector store) that
//! port-forwards and log following share.

use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::DynamicObject;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client};

use super::rollout::{api_resource, label_selector};
use crate::config::Workload;

#[derive(Debug, thiserror::Error)]
pub enum PodsError {
    #[error("reading {workload} in {namespace}: {source}")]
    Read {
        workload: String,
        namespace: String,
        #[source]
        source: kube::Error,
    },
    #[error("{workload} in {namespace} has no spec.selector: devenv finds its pods by it")]
    NoSelector { workload: String, namespace: String },
}

/// A live view of a workload's pods.
#[derive(Clone)]
pub struct Pods {
    pub api: Api<Pod>,
    pub store: Store<Pod>,
    /// Bumped whenever a pod is added, changed or removed.
    pub changed: tokio::sync::watch::Receiver<u64>,
    pub selector: String,
    /// The labels the workload gives its pods (Services select them).
    pub template_labels: std::collections::BTreeMap<String, String>,
}

/// Starts watching the pods of `workload` (found by its own label selector). The watch runs
/// on its own task until every [`Pods`] handle is gone.
pub async fn watch(
    client: &Client,
    namespace: &str,
    workload: &Workload,
) -> Result<Pods, PodsError> {
    let wl: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), namespace, &api_resource(workload.kind));
    let obj = wl
        .get(&workload.name)
        .await
        .map_err(|source| PodsError::Read {
            workload: workload.to_string(),
            namespace: namespace.to_owned(),
            source,
        })?;
    let value = serde_json::to_value(&obj).unwrap_or_default();
    let selector = label_selector(&value).ok_or_else(|| PodsError::NoSelector {
        workload: workload.to_string(),
        namespace: namespace.to_owned(),
    })?;
    let template_labels = value["spec"]["template"]["metadata"]["labels"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_owned()))
                .collect()
        })
        .unwrap_or_default();
    let api: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let (store, writer) = reflector::store();
    let (tx, changed) = tokio::sync::watch::channel(0u64);
    let stream = watcher::watcher(api.clone(), watcher::Config::default().labels(&selector))
        .default_backoff()
        .reflect(writer);
    tokio::spawn(async move {
        futures::pin_mut!(stream);
        let mut n = 0u64;
        while let Some(ev) = stream.next().await {
            if let Err(e) = ev {
                tracing::debug!("watching pods: {e}");
                continue;
            }
            n += 1;
            if tx.send(n).is_err() {
                break;
            }
        }
    });
    Ok(Pods {
        api,
        store,
        changed,
        selector,
        template_labels,
    })
}

fn is_ready(p: &Pod) -> bool {
    p.metadata.deletion_timestamp.is_none()
        && p.status.as_ref().is_some_and(|s| {
            s.phase.as_deref() == Some("Running")
                && s.conditions
                    .iter()
                    .flatten()
                    .any(|c| c.type_ == "Ready" && c.status == "True")
        })
}

impl Pods {
    /// The newest ready pod, if any.
    pub fn ready_pod(&self) -> Option<Arc<Pod>> {
        self.store
            .state()
            .into_iter()
            .filter(|p| is_ready(p))
            .max_by(|a, b| {
                let t = |p: &Pod| p.metadata.creation_timestamp.as_ref().map(|t| t.0);
                t(a).cmp(&t(b))
                    .then_with(|| a.metadata.name.cmp(&b.metadata.name))
            })
    }
}
