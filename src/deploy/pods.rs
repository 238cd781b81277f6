//! A deployed resource as the cluster has it, kept current by kube-rs reflectors, one per
//! kind: the workload itself, its pods, a Deployment's ReplicaSets, and the Warning events
//! about pods in its namespace (one reflector per namespace, shared by its resources).
//! Started at the resource's first deploy and shared by its readiness waits, port-forwards,
//! logs, live update and pod counts.

use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::{Event as KubeEvent, Pod};
use kube::api::DynamicObject;
use kube::runtime::reflector::{self, Store, store::Writer};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client};
use serde_json::Value;
use tokio::sync::watch;

use super::rollout::{
    PodCounts, api_resource, current_pods, current_template_hash, label_selector, pod_counts,
};
use crate::config::{Workload, WorkloadKind};

/// A live view of a workload and what belongs to it.
#[derive(Clone)]
pub struct Pods {
    pub client: Client,
    pub namespace: String,
    pub workload: Workload,
    pub api: Api<Pod>,
    wl: Store<DynamicObject>,
    pub store: Store<Pod>,
    /// A Deployment's ReplicaSets, to tell its current pods from old ones.
    pub replicasets: Option<Store<ReplicaSet>>,
    /// The Warning events about pods in the namespace.
    pub events: Store<KubeEvent>,
    /// Bumped whenever any of them changes.
    pub changed: watch::Receiver<u64>,
    /// The last watch error of any of them, until its next event.
    pub error: watch::Receiver<Option<String>>,
    /// The reflectors' tasks, ended when the last handle goes.
    _tasks: Arc<Tasks>,
    /// The namespace's shared events, kept while this view is.
    _events: NamespaceEvents,
}

/// Aborts its tasks when dropped.
struct Tasks(Vec<tokio::task::AbortHandle>);

impl Drop for Tasks {
    fn drop(&mut self) {
        for t in &self.0 {
            t.abort();
        }
    }
}

/// What every reflector tells: a change, or a watch error (kube-rs's watcher retries with
/// back-off by itself).
#[derive(Clone)]
struct Signals {
    changed: Arc<watch::Sender<u64>>,
    error: Arc<watch::Sender<Option<String>>>,
}

/// The Warning events about pods in one namespace: one reflector, shared by every resource
/// there (a reflector per resource held the namespace's events once per resource, and 100
/// resources took the daemon from 66 MB to 844 MB).
#[derive(Clone)]
pub struct NamespaceEvents {
    pub store: Store<KubeEvent>,
    changed: watch::Receiver<u64>,
    error: watch::Receiver<Option<String>>,
    _tasks: Arc<Tasks>,
}

/// Starts the Warning-event reflector of `namespace` (until every handle is gone).
pub fn namespace_events(client: &Client, namespace: &str) -> NamespaceEvents {
    let (changed_tx, changed) = watch::channel(0u64);
    let (error_tx, error) = watch::channel(None);
    let signals = Signals {
        changed: Arc::new(changed_tx),
        error: Arc::new(error_tx),
    };
    let (store, writer) = reflector::store();
    let task = tokio::spawn(reflect(
        Api::<KubeEvent>::namespaced(client.clone(), namespace),
        watcher::Config::default().fields("involvedObject.kind=Pod,type=Warning"),
        writer,
        signals,
    ))
    .abort_handle();
    NamespaceEvents {
        store,
        changed,
        error,
        _tasks: Arc::new(Tasks(vec![task])),
    }
}

/// Starts the reflectors of `workload` in `namespace` (on tasks of their own, until every
/// handle is gone), with the namespace's shared `events`. The pods and ReplicaSets are
/// watched by the workload's own selector, as soon as the workload is seen.
pub fn start(
    client: &Client,
    namespace: &str,
    workload: &Workload,
    events: &NamespaceEvents,
) -> Pods {
    let (changed_tx, changed) = watch::channel(0u64);
    let (error_tx, error) = watch::channel(None);
    let signals = Signals {
        changed: Arc::new(changed_tx),
        error: Arc::new(error_tx),
    };
    let ar = api_resource(workload.kind);
    let wl_writer = Writer::new(ar.clone());
    let wl = wl_writer.as_reader();
    let mut tasks = Vec::new();
    tasks.push(
        tokio::spawn(reflect(
            Api::<DynamicObject>::namespaced_with(client.clone(), namespace, &ar),
            watcher::Config::default().fields(&format!("metadata.name={}", workload.name)),
            wl_writer,
            signals.clone(),
        ))
        .abort_handle(),
    );
    // The shared events' changes and errors are this view's too.
    {
        let (mut changed, mut error, signals) = (
            events.changed.clone(),
            events.error.clone(),
            signals.clone(),
        );
        tasks.push(
            tokio::spawn(async move {
                loop {
                    tokio::select! {
                        r = changed.changed() => {
                            if r.is_err() {
                                return;
                            }
                            signals.changed.send_modify(|n| *n += 1);
                        }
                        r = error.changed() => {
                            if r.is_err() {
                                return;
                            }
                            let e = error.borrow_and_update().clone();
                            signals.error.send_replace(e);
                        }
                    }
                }
            })
            .abort_handle(),
        );
    }
    let shared_events = events.clone();
    let events = events.store.clone();
    let api: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let (store, pod_writer) = reflector::store();
    let (replicasets, rs_writer) = if workload.kind == WorkloadKind::Deployment {
        let (s, w) = reflector::store();
        (Some(s), Some(w))
    } else {
        (None, None)
    };
    {
        let (wl, api, signals) = (wl.clone(), api.clone(), signals.clone());
        let rs_api: Api<ReplicaSet> = Api::namespaced(client.clone(), namespace);
        let mut seen = changed.clone();
        tasks.push(
            tokio::spawn(async move {
                let selector = loop {
                    if let Some(s) = selector_of(&wl) {
                        break s;
                    }
                    if seen.changed().await.is_err() {
                        return;
                    }
                };
                drop(seen);
                let cfg = watcher::Config::default().labels(&selector);
                let pods = reflect(api, cfg.clone(), pod_writer, signals.clone());
                match rs_writer {
                    Some(w) => {
                        futures::join!(pods, reflect(rs_api, cfg, w, signals));
                    }
                    None => pods.await,
                }
            })
            .abort_handle(),
        );
    }
    Pods {
        client: client.clone(),
        namespace: namespace.to_owned(),
        workload: workload.clone(),
        api,
        wl,
        store,
        replicasets,
        events,
        changed,
        error,
        _tasks: Arc::new(Tasks(tasks)),
        _events: shared_events,
    }
}

/// The label selector of the workload in `wl`, once it is there.
fn selector_of(wl: &Store<DynamicObject>) -> Option<String> {
    let obj = wl.state().into_iter().next()?;
    label_selector(&serde_json::to_value(obj.as_ref()).ok()?)
}

/// Keeps `writer`'s store current with the objects `cfg` picks; each change bumps the
/// signal, each watch error is the last error until the next event.
async fn reflect<K>(api: Api<K>, cfg: watcher::Config, writer: Writer<K>, signals: Signals)
where
    K: kube::Resource
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone,
{
    let stream = watcher::watcher(api, cfg).default_backoff().reflect(writer);
    futures::pin_mut!(stream);
    while let Some(ev) = stream.next().await {
        match ev {
            Err(e) => {
                let (why, _) = crate::cluster::kube::explain_watch(&e);
                tracing::debug!("watching: {why}");
                signals.error.send_replace(Some(why));
                continue;
            }
            Ok(_) => {
                if signals.error.borrow().is_some() {
                    signals.error.send_replace(None);
                }
            }
        }
        signals.changed.send_modify(|n| *n += 1);
    }
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
    /// The workload as last seen, as JSON.
    pub fn object(&self) -> Option<Value> {
        let obj = self.wl.state().into_iter().next()?;
        serde_json::to_value(obj.as_ref()).ok()
    }

    /// Returns once the workload is seen (at once when it is).
    pub async fn seen(&self) {
        let mut changed = self.changed.clone();
        while self.object().is_none() {
            if changed.changed().await.is_err() {
                return;
            }
        }
    }

    /// The workload's label selector (`k=v,…`), once it is seen.
    pub fn selector(&self) -> Option<String> {
        selector_of(&self.wl)
    }

    /// The labels the workload gives its pods (Services select them).
    pub fn template_labels(&self) -> std::collections::BTreeMap<String, String> {
        self.object()
            .and_then(|v| {
                v["spec"]["template"]["metadata"]["labels"]
                    .as_object()
                    .map(|m| {
                        m.iter()
                            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_owned()))
                            .collect()
                    })
            })
            .unwrap_or_default()
    }

    /// Whether every reflector has listed its objects once (counts before that are not true).
    pub fn listed(&self) -> bool {
        fn ready<K>(store: &Store<K>) -> bool
        where
            K: kube::runtime::reflector::Lookup + Clone + 'static,
            K::DynamicType: Eq + std::hash::Hash + Clone,
        {
            use futures::FutureExt;
            matches!(store.wait_until_ready().now_or_never(), Some(Ok(())))
        }
        ready(&self.wl) && ready(&self.store) && self.replicasets.as_ref().is_none_or(ready)
    }

    /// Runs `f` on the pods of the workload's current revision (a Deployment's newest
    /// ReplicaSet; pods being deleted left out).
    fn with_current<R>(&self, f: impl FnOnce(&[&Pod]) -> R) -> R {
        let all = self.store.state();
        let refs: Vec<&Pod> = all.iter().map(AsRef::as_ref).collect();
        let owner = self
            .object()
            .and_then(|o| o["metadata"]["uid"].as_str().map(str::to_owned));
        let hash = self.replicasets.as_ref().and_then(|rs| {
            let list = rs.state();
            current_template_hash(owner.as_deref(), list.iter().map(AsRef::as_ref))
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
