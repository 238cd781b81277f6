//! The pods behind a resource, kept current by one kube-rs watcher (a reflector store) that
//! port-forwards and log following share.

use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::Pod;
use kube::api::DynamicObject;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client};

use super::rollout::{
    PodCounts, api_resource, current_pods, current_template_hash, label_selector, pod_counts,
};
use crate::config::{Workload, WorkloadKind};

#[derive(Debug, thiserror::Error)]
pub enum PodsError {
    #[error("reading {workload} in {namespace}: {source}")]
    Read {
        workload: String,
        namespace: String,
        source: crate::cluster::kube::ApiFailure,
    },
    #[error("{workload} in {namespace} has no spec.selector: devenv finds its pods by it")]
    NoSelector { workload: String, namespace: String },
}

/// A live view of a workload's pods.
#[derive(Clone)]
pub struct Pods {
    pub api: Api<Pod>,
    pub store: Store<Pod>,
    /// A Deployment's ReplicaSets, to tell its current pods from old ones.
    pub replicasets: Option<Store<ReplicaSet>>,
    /// The workload's uid (its ReplicaSets name it as their owner).
    pub owner_uid: Option<String>,
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
    let obj = wl.get(&workload.name).await.map_err(|e| PodsError::Read {
        workload: workload.to_string(),
        namespace: namespace.to_owned(),
        source: e.into(),
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
    let (tx, changed) = tokio::sync::watch::channel(0u64);
    let tx = Arc::new(tx);
    let store = reflect(api.clone(), &selector, tx.clone());
    // A Deployment's pods are those of its newest ReplicaSet.
    let replicasets = (workload.kind == WorkloadKind::Deployment).then(|| {
        let rs: Api<ReplicaSet> = Api::namespaced(client.clone(), namespace);
        reflect(rs, &selector, tx)
    });
    Ok(Pods {
        api,
        store,
        replicasets,
        owner_uid: obj.metadata.uid.clone(),
        changed,
        selector,
        template_labels,
    })
}

/// A reflector store of the objects `selector` picks, kept current on a task of its own
/// (until every reader is gone); each change bumps `changed`.
fn reflect<K>(
    api: Api<K>,
    selector: &str,
    changed: Arc<tokio::sync::watch::Sender<u64>>,
) -> Store<K>
where
    K: kube::Resource<DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    let (store, writer) = reflector::store();
    let stream = watcher::watcher(api, watcher::Config::default().labels(selector))
        .default_backoff()
        .reflect(writer);
    tokio::spawn(async move {
        futures::pin_mut!(stream);
        while let Some(ev) = stream.next().await {
            if let Err(e) = ev {
                tracing::debug!("watching: {}", crate::cluster::kube::explain_watch(&e).0);
                continue;
            }
            changed.send_modify(|n| *n += 1);
            if changed.is_closed() {
                break;
            }
        }
    });
    store
}

/// Pod names the page is told of, at most (a workload of many replicas is counted, not listed).
pub const MAX_NAMES: usize = 10;

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
    /// Runs `f` on the pods of the workload's current revision (a Deployment's newest
    /// ReplicaSet; pods being deleted left out).
    fn with_current<R>(&self, f: impl FnOnce(&[&Pod]) -> R) -> R {
        let all = self.store.state();
        let refs: Vec<&Pod> = all.iter().map(AsRef::as_ref).collect();
        let hash = self.replicasets.as_ref().and_then(|rs| {
            let list = rs.state();
            current_template_hash(self.owner_uid.as_deref(), list.iter().map(AsRef::as_ref))
        });
        f(&current_pods(&refs, hash.as_deref()))
    }

    /// Ready/total pods and restarts of the workload's current revision, and the names of
    /// its pods (sorted, at most [`MAX_NAMES`]).
    pub fn counts(&self) -> (PodCounts, Vec<String>) {
        self.with_current(|current| {
            let mut names: Vec<String> = current
                .iter()
                .filter_map(|p| p.metadata.name.clone())
                .collect();
            names.sort();
            names.truncate(MAX_NAMES);
            (pod_counts(current), names)
        })
    }

    /// The containers of the current revision's ready pods that run an image of `repo`
    /// (live update puts files into these).
    pub fn ready_containers(&self, repo: &str) -> Vec<super::sync::Container> {
        let mut out = Vec::new();
        self.with_current(|current| {
            for p in current {
                if !is_ready(p) {
                    continue;
                }
                let (Some(name), Some(uid)) = (&p.metadata.name, &p.metadata.uid) else {
                    continue;
                };
                for c in p.spec.iter().flat_map(|s| &s.containers) {
                    let image = c.image.as_deref().unwrap_or("");
                    if crate::objects::repository_of(image) == repo {
                        out.push(super::sync::Container {
                            pod: name.clone(),
                            uid: uid.clone(),
                            container: c.name.clone(),
                        });
                    }
                }
            }
        });
        out.sort();
        out
    }

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
