//! Readiness: whether a resource's workload has rolled out, and if not, why not.
//!
//! The judgement is pure ([`progress`], [`pod_problem`], [`event_problem`], [`assess`]) and
//! works on the objects as the API server returns them. [`wait_ready`] feeds it from the
//! resource's reflectors ([`super::pods`]): the workload, its pods and ReplicaSets and the
//! Warning events about them; it never polls and never sleeps except for the timeout.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::{Event as KubeEvent, Pod};
use kube::Api;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind, LogParams};
use serde::Serialize;
use serde_json::Value;

use crate::config::WorkloadKind;

/// How far a workload's rollout has come, from its own object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    Waiting(String),
    Complete,
    /// It will not get there by itself (a failed Job, a Deployment past its deadline).
    Failed(String),
}

/// Something wrong that Kubernetes reports about a resource's pods.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// Kubernetes' own word for it: `ImagePullBackOff`, `CrashLoopBackOff`, `Unhealthy`...
    pub reason: String,
    pub pod: Option<String>,
    pub container: Option<String>,
    pub message: String,
    pub hint: Option<String>,
    /// The last lines the crashed container wrote, for crash loops.
    pub logs: Vec<String>,
    /// Why those lines could not be read, when they could not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub logs_unreadable: Option<String>,
}

impl Problem {
    /// Whether waiting longer cannot help without a change from the user: a CI run stops
    /// here rather than at the timeout.
    pub fn is_fatal(&self) -> bool {
        matches!(
            self.reason.as_str(),
            "ErrImageNeverPull"
                | "InvalidImageName"
                | "ImagePullBackOff"
                | "ErrImagePull"
                | "CrashLoopBackOff"
                | "OOMKilled"
                | "CreateContainerConfigError"
                | "RunContainerError"
                | "Failed"
        )
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.reason)?;
        match (&self.pod, &self.container) {
            (Some(p), Some(c)) => write!(f, " (pod {p}, container {c})")?,
            (Some(p), None) => write!(f, " (pod {p})")?,
            _ => {}
        }
        if !self.message.is_empty() {
            write!(f, ": {}", self.message)?;
        }
        if !self.logs.is_empty() {
            write!(f, "\n  last log lines:")?;
            for l in &self.logs {
                write!(f, "\n    {l}")?;
            }
        }
        if let Some(why) = &self.logs_unreadable {
            write!(f, "\n  the crashed container's logs cannot be read: {why}")?;
        }
        if let Some(h) = &self.hint {
            write!(f, "\n  hint: {h}")?;
        }
        Ok(())
    }
}

/// A resource's readiness, as the user sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Health {
    Waiting(String),
    Problem(Problem),
    Ready,
    Failed(Problem),
}

/// Pods behind a resource, for the status line: ready/total and container restarts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct PodCounts {
    pub ready: usize,
    pub total: usize,
    pub restarts: u32,
}

fn int(v: &Value) -> i64 {
    v.as_i64().unwrap_or(0)
}

fn condition<'a>(obj: &'a Value, kind: &str) -> Option<&'a Value> {
    obj["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == kind)
}

/// The rollout state of a workload object (as JSON), by the rules `kubectl rollout status`
/// applies: the controller must have seen the newest spec, then every replica must be
/// updated, old ones gone, and the updated ones available.
pub fn progress(kind: WorkloadKind, obj: &Value) -> Progress {
    let generation = int(&obj["metadata"]["generation"]);
    let observed = int(&obj["status"]["observedGeneration"]);
    let s = &obj["status"];
    if kind != WorkloadKind::Job && observed < generation {
        return Progress::Waiting("waiting for the controller to see the new spec".into());
    }
    match kind {
        WorkloadKind::Deployment => {
            if let Some(c) = condition(obj, "Progressing")
                && c["reason"] == "ProgressDeadlineExceeded"
            {
                return Progress::Failed(format!(
                    "the rollout exceeded its progress deadline: {}",
                    c["message"].as_str().unwrap_or("")
                ));
            }
            let want = obj["spec"]["replicas"].as_i64().unwrap_or(1);
            let (updated, replicas, available) = (
                int(&s["updatedReplicas"]),
                int(&s["replicas"]),
                int(&s["availableReplicas"]),
            );
            if updated < want {
                Progress::Waiting(format!("{updated} of {want} replicas updated"))
            } else if replicas > updated {
                Progress::Waiting(format!(
                    "{} old replica(s) still terminating",
                    replicas - updated
                ))
            } else if available < updated {
                Progress::Waiting(format!(
                    "{available} of {updated} updated replicas available"
                ))
            } else {
                Progress::Complete
            }
        }
        WorkloadKind::StatefulSet => {
            let want = obj["spec"]["replicas"].as_i64().unwrap_or(1);
            let ready = int(&s["readyReplicas"]);
            let partition = int(&obj["spec"]["updateStrategy"]["rollingUpdate"]["partition"]);
            if ready < want {
                Progress::Waiting(format!("{ready} of {want} replicas ready"))
            } else if partition == 0
                && s["updateRevision"].is_string()
                && s["currentRevision"] != s["updateRevision"]
            {
                Progress::Waiting(format!(
                    "{} of {want} replicas on the new revision",
                    int(&s["updatedReplicas"])
                ))
            } else {
                Progress::Complete
            }
        }
        WorkloadKind::DaemonSet => {
            let want = int(&s["desiredNumberScheduled"]);
            let updated = int(&s["updatedNumberScheduled"]);
            let available = int(&s["numberAvailable"]);
            if updated < want {
                Progress::Waiting(format!("{updated} of {want} pods updated"))
            } else if available < want {
                Progress::Waiting(format!("{available} of {want} pods available"))
            } else {
                Progress::Complete
            }
        }
        WorkloadKind::Job => {
            if condition(obj, "Complete").is_some_and(|c| c["status"] == "True") {
                Progress::Complete
            } else if let Some(c) = condition(obj, "Failed").filter(|c| c["status"] == "True") {
                Progress::Failed(format!(
                    "the job failed ({}): {}",
                    c["reason"].as_str().unwrap_or("?"),
                    c["message"].as_str().unwrap_or("")
                ))
            } else {
                let want = obj["spec"]["completions"].as_i64().unwrap_or(1);
                Progress::Waiting(format!(
                    "{} of {want} completions ({} running)",
                    int(&s["succeeded"]),
                    int(&s["active"])
                ))
            }
        }
    }
}

/// The label selector (`k=v,k2 in (a,b)`) of a workload's `spec.selector`.
pub fn label_selector(obj: &Value) -> Option<String> {
    let sel = &obj["spec"]["selector"];
    let mut terms: Vec<String> = sel["matchLabels"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                .collect()
        })
        .unwrap_or_default();
    for e in sel["matchExpressions"].as_array().into_iter().flatten() {
        let key = e["key"].as_str().unwrap_or("");
        let values = || {
            e["values"]
                .as_array()
                .map(|vs| {
                    vs.iter()
                        .filter_map(Value::as_str)
                        .collect::<Vec<_>>()
                        .join(",")
                })
                .unwrap_or_default()
        };
        terms.push(match e["operator"].as_str().unwrap_or("") {
            "In" => format!("{key} in ({})", values()),
            "NotIn" => format!("{key} notin ({})", values()),
            "Exists" => key.to_owned(),
            _ => format!("!{key}"),
        });
    }
    (!terms.is_empty()).then(|| terms.join(","))
}

const IMAGE_HINT: &str = "the image is not in the cluster's image store. devenv builds into Minikube's own Docker daemon (or loads the image into it); check that the resource's `images` and the chart's image values name what devenv built, and that `minikube -p <profile> image ls` lists it";

/// Whether `image` (as a pod names it) is one devenv builds: `built` holds their repositories
/// (`web`, `localhost:5000/web`); Docker Hub's implicit prefixes do not count.
fn built_here(image: &str, built: &[String]) -> bool {
    use crate::objects::ImageRef;
    let repo = ImageRef::parse(image).short_repository();
    built
        .iter()
        .any(|b| ImageRef::parse(b).short_repository() == repo)
}

/// The hint for an image the cluster cannot get: devenv's build for what it builds, the
/// registry for what the chart or manifest takes from elsewhere.
fn image_hint(image: &str, built: &[String]) -> String {
    if image.is_empty() || built_here(image, built) {
        IMAGE_HINT.to_owned()
    } else {
        format!(
            "devenv does not build `{image}`: the cluster pulls it from its registry. Check the name and tag, that the cluster can reach the registry (`minikube ssh -- docker pull {image}`), or put the image in the cluster yourself (`minikube image load {image}`)"
        )
    }
}

/// The image a container of `pod` runs, from its spec (the status may not name it yet).
fn image_of(pod: &Pod, container: &str) -> String {
    pod.spec
        .iter()
        .flat_map(|s| {
            s.init_containers
                .iter()
                .flatten()
                .chain(s.containers.iter())
        })
        .find(|c| c.name == container)
        .and_then(|c| c.image.clone())
        .unwrap_or_default()
}

/// What is wrong with one pod, if anything: a container that cannot start or keeps
/// crashing, or a pod that cannot be scheduled. `built` holds the repositories devenv builds
/// (for the hint of an image the cluster cannot get).
///
/// A crash loop is one problem through all its phases: waiting in `CrashLoopBackOff`, the
/// moment it is terminated again, and running again not yet ready after a crash; so it is
/// told once and updated, not told anew in other words on every back-off.
pub fn pod_problem(pod: &Pod, built: &[String]) -> Option<Problem> {
    let name = pod.metadata.name.clone();
    let status = pod.status.as_ref()?;
    let statuses = status
        .init_container_statuses
        .iter()
        .flatten()
        .chain(status.container_statuses.iter().flatten());
    for cs in statuses {
        let waiting = cs.state.as_ref().and_then(|s| s.waiting.as_ref());
        let last_terminated = cs.last_state.as_ref().and_then(|s| s.terminated.as_ref());
        let now_terminated = cs.state.as_ref().and_then(|s| s.terminated.as_ref());
        let reason = waiting.and_then(|w| w.reason.clone()).unwrap_or_default();
        let message = waiting.and_then(|w| w.message.clone()).unwrap_or_default();
        let problem = |reason: &str, message: String, hint: Option<String>| Problem {
            reason: reason.to_owned(),
            pod: name.clone(),
            container: Some(cs.name.clone()),
            message,
            hint,
            logs: Vec::new(),
            logs_unreadable: None,
        };
        match reason.as_str() {
            "ImagePullBackOff" | "ErrImagePull" | "ErrImageNeverPull" => {
                let image = if cs.image.is_empty() {
                    image_of(pod, &cs.name)
                } else {
                    cs.image.clone()
                };
                return Some(problem(
                    &reason,
                    if message.is_empty() {
                        format!("cannot get image {image}")
                    } else {
                        message
                    },
                    Some(image_hint(&image, built)),
                ));
            }
            "InvalidImageName"
            | "CreateContainerConfigError"
            | "CreateContainerError"
            | "RunContainerError" => return Some(problem(&reason, message, None)),
            _ => {}
        }
        // Exited with a failure and restarted at least once, and not serving: a crash loop,
        // whichever phase of it the container is in now.
        let failed_exit = |t: &k8s_openapi::api::core::v1::ContainerStateTerminated| {
            t.exit_code != 0 || t.reason.as_deref() == Some("OOMKilled")
        };
        // A container that restarts (any restartPolicy but Never) and has just exited with a
        // failure is in it from its first exit: a probe that fails meanwhile is its effect.
        let restarts = pod.spec.as_ref().and_then(|s| s.restart_policy.as_deref()) != Some("Never");
        let crashing = reason == "CrashLoopBackOff"
            || (cs.restart_count >= 1
                && !cs.ready
                && last_terminated.is_some_and(failed_exit)
                && waiting.is_none())
            || (restarts && now_terminated.is_some_and(failed_exit));
        if !crashing {
            continue;
        }
        let last = now_terminated.or(last_terminated);
        if last.is_some_and(|t| t.reason.as_deref() == Some("OOMKilled")) {
            return Some(problem(
                "OOMKilled",
                format!(
                    "the container ran out of memory and was killed ({} restarts)",
                    cs.restart_count
                ),
                Some("raise the container's resources.limits.memory, or use less memory".into()),
            ));
        }
        let code = last.map_or(String::new(), |t| {
            format!(", last exit code {}", t.exit_code)
        });
        return Some(problem(
            "CrashLoopBackOff",
            format!(
                "the container keeps exiting ({} restarts{code})",
                cs.restart_count
            ),
            Some(format!(
                "the container exits soon after it starts; its own last lines say why (`kubectl logs --previous -n {} {} -c {}`)",
                pod.metadata.namespace.as_deref().unwrap_or("default"),
                name.as_deref().unwrap_or("POD"),
                cs.name
            )),
        ));
    }
    let unschedulable = status.conditions.iter().flatten().find(|c| {
        c.type_ == "PodScheduled"
            && c.status == "False"
            && c.reason.as_deref() == Some("Unschedulable")
    });
    unschedulable.map(|c| {
        let message = c.message.clone().unwrap_or_default();
        let hint = if message.contains("unbound") && message.contains("PersistentVolumeClaim") {
            unbound_claims_hint(pod)
        } else {
            "the cluster lacks room for the pod's requests; lower them or give Minikube more CPUs/memory in [cluster]".into()
        };
        Problem {
            reason: "Unschedulable".into(),
            pod: name,
            container: None,
            message,
            hint: Some(hint),
            logs: Vec::new(),
            logs_unreadable: None,
        }
    })
}

/// The hint for a pod that waits for its PersistentVolumeClaims to be bound: no room is
/// missing, a volume is (issue 28 point 24: it was told as "the cluster lacks room").
fn unbound_claims_hint(pod: &Pod) -> String {
    let claims: Vec<String> = pod
        .spec
        .iter()
        .flat_map(|s| s.volumes.iter().flatten())
        .filter_map(|v| v.persistent_volume_claim.as_ref())
        .map(|c| format!("`{}`", c.claim_name))
        .collect();
    let which = if claims.is_empty() {
        "its PersistentVolumeClaims are".to_owned()
    } else {
        format!(
            "PersistentVolumeClaim{} {} {}",
            if claims.len() == 1 { "" } else { "s" },
            claims.join(", "),
            if claims.len() == 1 { "is" } else { "are" }
        )
    };
    format!(
        "{which} not bound to a volume: check the claim's storageClassName against `kubectl get storageclass` (Minikube provisions volumes with its storage-provisioner and default-storageclass addons: add them to [cluster] addons), or create a PersistentVolume that matches it"
    )
}

/// How many times in a row a probe must have failed before it is a problem: Kubernetes' own
/// default failureThreshold. A first failure while the server starts is the normal start of
/// almost every pod, not a problem.
const PROBE_FAILURES: i32 = 3;

/// A Warning event worth showing: failing readiness and liveness probes (once they failed
/// [`PROBE_FAILURES`] times; a startup probe's failures never on their own),
/// scheduling and mount failures. What the pod's own status tells while it lasts (an image the
/// cluster cannot get, a crash loop's back-off) is left to [`pod_problem`], so that it ends
/// when the pod moves on instead of lingering as the last event.
pub fn event_problem(ev: &KubeEvent) -> Option<Problem> {
    if ev.type_.as_deref() != Some("Warning") {
        return None;
    }
    let reason = ev.reason.clone()?;
    let message = ev.message.clone().unwrap_or_default();
    let hint = match reason.as_str() {
        "Unhealthy" => {
            // A startup probe fails by design until the server is up; past its threshold the
            // kubelet restarts the container, and the pod's status tells that.
            if ev.count.unwrap_or(1) < PROBE_FAILURES || message.starts_with("Startup probe") {
                return None;
            }
            Some("a probe fails: check the probe's path and port against what the container serves, and its initialDelaySeconds".to_owned())
        }
        "FailedScheduling" => Some("the cluster lacks room for the pod's requests; lower them or give Minikube more CPUs/memory in [cluster]".to_owned()),
        "FailedMount" => Some("a volume's source (Secret, ConfigMap, claim) is missing".to_owned()),
        "ErrImageNeverPull" | "ErrImagePull" | "ImagePullBackOff" | "BackOff" => return None,
        "Failed"
            if ["pull", "image"]
                .iter()
                .any(|w| message.to_ascii_lowercase().contains(w)) =>
        {
            return None;
        }
        _ => None,
    };
    Some(Problem {
        reason,
        pod: ev.involved_object.name.clone(),
        container: None,
        message,
        hint,
        logs: Vec::new(),
        logs_unreadable: None,
    })
}

/// The health of a resource from its workload, its pods and the warnings about them
/// (newest last). A finished rollout is ready whatever old pods did.
pub fn assess(
    kind: WorkloadKind,
    workload: Option<&Value>,
    pods: &[&Pod],
    warnings: &[Problem],
    built: &[String],
) -> Health {
    let Some(obj) = workload else {
        return Health::Waiting("waiting for the workload to exist".into());
    };
    match progress(kind, obj) {
        Progress::Complete => Health::Ready,
        Progress::Failed(message) => {
            let mut p = pods
                .iter()
                .find_map(|p| pod_problem(p, built))
                .unwrap_or(Problem {
                    reason: "Failed".into(),
                    pod: None,
                    container: None,
                    message: String::new(),
                    hint: None,
                    logs: Vec::new(),
                    logs_unreadable: None,
                });
            p.message = if p.message.is_empty() {
                message
            } else {
                format!("{message}; {}", p.message)
            };
            p.reason = "Failed".into();
            Health::Failed(p)
        }
        Progress::Waiting(msg) => {
            if let Some(p) = pods.iter().find_map(|p| pod_problem(p, built)) {
                return Health::Problem(p);
            }
            let names: BTreeSet<&str> = pods
                .iter()
                .filter_map(|p| p.metadata.name.as_deref())
                .collect();
            match warnings
                .iter()
                .rev()
                .find(|w| w.pod.as_deref().is_some_and(|n| names.contains(n)))
            {
                Some(w) => Health::Problem(w.clone()),
                None => Health::Waiting(msg),
            }
        }
    }
}

/// The ReplicaSet a Deployment runs now: of those it owns, the one of its newest revision.
/// Its `pod-template-hash` label names its pods.
pub fn current_template_hash<'a>(
    deployment_uid: Option<&str>,
    replicasets: impl IntoIterator<Item = &'a ReplicaSet>,
) -> Option<String> {
    let revision = |rs: &ReplicaSet| {
        rs.metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get("deployment.kubernetes.io/revision"))
            .and_then(|r| r.parse::<u64>().ok())
            .unwrap_or(0)
    };
    replicasets
        .into_iter()
        .filter(|rs| {
            deployment_uid.is_none_or(|uid| {
                rs.metadata
                    .owner_references
                    .iter()
                    .flatten()
                    .any(|o| o.uid == uid && o.controller == Some(true))
            })
        })
        .max_by_key(|rs| revision(rs))
        .and_then(|rs| {
            rs.metadata
                .labels
                .as_ref()?
                .get("pod-template-hash")
                .cloned()
        })
}

/// The pods that count for a resource, as `kubectl get` counts a workload's: not being
/// deleted, and, when the current ReplicaSet is known (`template_hash`), only its pods (the
/// old ones a rolling update leaves for a moment are not the Deployment's any more).
pub fn current_pods<'a>(pods: &[&'a Pod], template_hash: Option<&str>) -> Vec<&'a Pod> {
    pods.iter()
        .copied()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .filter(|p| {
            template_hash.is_none_or(|h| {
                p.metadata
                    .labels
                    .as_ref()
                    .and_then(|l| l.get("pod-template-hash"))
                    .is_some_and(|ph| ph == h)
            })
        })
        .collect()
}

/// Ready/total pods and restarts.
pub fn pod_counts(pods: &[&Pod]) -> PodCounts {
    let mut c = PodCounts {
        total: pods.len(),
        ..PodCounts::default()
    };
    for p in pods {
        let Some(st) = &p.status else { continue };
        if st
            .conditions
            .iter()
            .flatten()
            .any(|c| c.type_ == "Ready" && c.status == "True")
        {
            c.ready += 1;
        }
        c.restarts += st
            .container_statuses
            .iter()
            .flatten()
            .map(|s| u32::try_from(s.restart_count).unwrap_or(0))
            .sum::<u32>();
    }
    c
}

#[derive(Debug, thiserror::Error)]
pub enum RolloutError {
    #[error("{workload} in {namespace} is not ready after {}s: {last}", .after.as_secs())]
    TimedOut {
        workload: String,
        namespace: String,
        after: Duration,
        last: String,
    },
    #[error("{workload} in {namespace} failed: {problem}")]
    Failed {
        workload: String,
        namespace: String,
        problem: Problem,
    },
}

/// The API resource of a workload kind.
pub fn api_resource(kind: WorkloadKind) -> ApiResource {
    let (group, k, plural) = match kind {
        WorkloadKind::Deployment => ("apps", "Deployment", "deployments"),
        WorkloadKind::StatefulSet => ("apps", "StatefulSet", "statefulsets"),
        WorkloadKind::DaemonSet => ("apps", "DaemonSet", "daemonsets"),
        WorkloadKind::Job => ("batch", "Job", "jobs"),
    };
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, "v1", k), plural)
}

/// What [`wait_ready`] reports on every change.
pub struct Update<'a> {
    pub health: &'a Health,
    pub pods: PodCounts,
}

/// Whether a Deployment's controller has seen its latest spec (so its newest ReplicaSet is
/// the one of that spec).
fn observed(obj: &Value) -> bool {
    let generation = obj["metadata"]["generation"].as_i64().unwrap_or(0);
    obj["status"]["observedGeneration"].as_i64().unwrap_or(-1) >= generation
}

/// The pods a rollout is judged by: for a Deployment, those of the ReplicaSet of its latest
/// spec, and none until that ReplicaSet is known (until then the pods at hand are the old
/// rollout's, whose problems and events are not this one's).
fn rollout_pods<'a>(
    kind: WorkloadKind,
    obj: Option<&Value>,
    all: &[&'a Pod],
    hash: Option<&str>,
) -> Vec<&'a Pod> {
    if kind == WorkloadKind::Deployment && (hash.is_none() || !obj.is_some_and(observed)) {
        return Vec::new();
    }
    current_pods(all, hash)
}

/// Waits until the workload `pods` follows is ready, reporting each change of health. With
/// `fail_fast`, a [fatal](Problem::is_fatal) problem ends the wait at once; otherwise only
/// the timeout does (Kubernetes may yet recover, e.g. once a dependency is up). `built`: the
/// repositories devenv builds (for the hints). It reads the resource's reflectors, woken by
/// each change; the workload is first read once from the API, so that a view from before
/// the deploy is not taken for its outcome.
pub async fn wait_ready(
    pods: &super::pods::Pods,
    timeout: Duration,
    fail_fast: bool,
    built: &[String],
    on_update: &mut (dyn FnMut(Update<'_>) + Send),
) -> Result<(), RolloutError> {
    let (workload, namespace) = (&pods.workload, pods.namespace.as_str());
    let shown = workload.to_string();
    let deadline = tokio::time::sleep(timeout);
    tokio::pin!(deadline);
    let wl_api: Api<DynamicObject> =
        Api::namespaced_with(pods.client.clone(), namespace, &api_resource(workload.kind));
    // The spec the deploy left: the reflector's view must have reached it.
    let wanted = tokio::select! {
        got = wl_api.get_opt(&workload.name) => got.ok().flatten().map(|o| {
            (o.metadata.uid.unwrap_or_default(), o.metadata.generation.unwrap_or(0))
        }),
        () = &mut deadline => None,
    };
    let mut changed = pods.changed.clone();
    let mut crash_logs: BTreeMap<(String, String, i32), Result<Vec<String>, String>> =
        BTreeMap::new();
    let mut last: Option<(Health, PodCounts)> = None;
    loop {
        let seen = pods.object();
        let is_seen = seen.is_some();
        // Only a view that has reached what the deploy left counts.
        let obj = seen.filter(|o| {
            wanted.as_ref().is_none_or(|(uid, generation)| {
                o["metadata"]["uid"].as_str() == Some(uid)
                    && o["metadata"]["generation"].as_i64().unwrap_or(0) >= *generation
            })
        });
        let all = pods.store.state();
        let all: Vec<&Pod> = all.iter().map(AsRef::as_ref).collect();
        let rs = pods
            .replicasets
            .as_ref()
            .map(kube::runtime::reflector::Store::state)
            .unwrap_or_default();
        let hash = current_template_hash(
            obj.as_ref().and_then(|o| o["metadata"]["uid"].as_str()),
            rs.iter().map(AsRef::as_ref),
        );
        let current = rollout_pods(workload.kind, obj.as_ref(), &all, hash.as_deref());
        // The namespace's events about this workload's pods only.
        let names: std::collections::BTreeSet<&str> = all
            .iter()
            .filter_map(|p| p.metadata.name.as_deref())
            .collect();
        let events: Vec<std::sync::Arc<KubeEvent>> = pods
            .events
            .state()
            .into_iter()
            .filter(|e| {
                e.involved_object
                    .name
                    .as_deref()
                    .is_some_and(|n| names.contains(n))
            })
            .collect();
        let warnings = warnings(&events);
        let mut health = if obj.is_none() && is_seen {
            Health::Waiting("waiting for the cluster's view of the new spec".into())
        } else {
            assess(workload.kind, obj.as_ref(), &current, &warnings, built)
        };
        if let Health::Problem(p) | Health::Failed(p) = &mut health
            && p.reason == "CrashLoopBackOff"
        {
            attach_crash_logs(&pods.api, &current, p, &mut crash_logs).await;
        }
        let counts = pod_counts(&current);
        if last.as_ref() != Some(&(health.clone(), counts)) {
            on_update(Update {
                health: &health,
                pods: counts,
            });
            last = Some((health.clone(), counts));
        }
        match health {
            // Ready once every reflector has listed, so that the counts are true.
            Health::Ready if pods.listed() => return Ok(()),
            Health::Failed(problem) => {
                return Err(RolloutError::Failed {
                    workload: shown,
                    namespace: namespace.to_owned(),
                    problem,
                });
            }
            Health::Problem(problem) if fail_fast && problem.is_fatal() => {
                return Err(RolloutError::Failed {
                    workload: shown,
                    namespace: namespace.to_owned(),
                    problem,
                });
            }
            _ => {}
        }
        tokio::select! {
            r = changed.changed() => {
                if r.is_err() {
                    // The reflectors ended (devenv is stopping): only the timeout is left.
                    (&mut deadline).await;
                }
            }
            () = &mut deadline => {
                let mut last = last.map_or_else(|| "nothing reported yet".to_owned(), |(h, _)| describe(&h));
                if let Some(e) = pods.error.borrow().as_ref() {
                    last.push_str(&format!(" (last watch error: {e})"));
                }
                return Err(RolloutError::TimedOut {
                    workload: shown.clone(),
                    namespace: namespace.to_owned(),
                    after: timeout,
                    last,
                });
            }
        }
    }
}

/// The Warning events' problems, oldest first.
fn warnings(events: &[std::sync::Arc<KubeEvent>]) -> Vec<Problem> {
    let mut out: Vec<(String, Problem)> = events
        .iter()
        .filter_map(|e| {
            let when = e
                .last_timestamp
                .as_ref()
                .map(|t| t.0.to_string())
                .or_else(|| e.event_time.as_ref().map(|t| t.0.to_string()))
                .unwrap_or_default();
            event_problem(e).map(|p| (when, p))
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out.into_iter().map(|(_, p)| p).collect()
}

/// The last lines the crashed container wrote before its latest restart (fetched once per
/// restart).
async fn attach_crash_logs(
    api: &Api<Pod>,
    pods: &[&Pod],
    problem: &mut Problem,
    cache: &mut BTreeMap<(String, String, i32), Result<Vec<String>, String>>,
) {
    let (Some(pod), Some(container)) = (problem.pod.clone(), problem.container.clone()) else {
        return;
    };
    let status = pods
        .iter()
        .find(|p| p.metadata.name.as_deref() == Some(pod.as_str()))
        .and_then(|p| p.status.as_ref())
        .and_then(|s| s.container_statuses.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.name == container));
    let restarts = status.map_or(0, |c| c.restart_count);
    // A container that has just exited and not restarted yet: its lines are its current
    // ones (there is no previous container before the first restart).
    let exited = status
        .and_then(|c| c.state.as_ref())
        .is_some_and(|s| s.terminated.is_some());
    let key = (
        pod.clone(),
        container.clone(),
        restarts * 2 + i32::from(exited),
    );
    if !cache.contains_key(&key) {
        let params = LogParams {
            container: Some(container),
            previous: !exited,
            tail_lines: Some(20),
            ..LogParams::default()
        };
        let lines = match api.logs(&pod, &params).await {
            Ok(text) => Ok(text.lines().map(str::to_owned).collect()),
            Err(e) => Err(crate::cluster::kube::explain(&e).0),
        };
        cache.insert(key.clone(), lines);
    }
    match cache.get(&key) {
        Some(Ok(lines)) => problem.logs.clone_from(lines),
        Some(Err(why)) => problem.logs_unreadable = Some(why.clone()),
        None => {}
    }
}

/// One line for a health state.
pub fn describe(h: &Health) -> String {
    match h {
        Health::Waiting(m) => m.clone(),
        Health::Ready => "ready".into(),
        Health::Problem(p) | Health::Failed(p) => p.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deployment(generation: i64, status: Value) -> Value {
        json!({"metadata": {"name": "web", "generation": generation},
               "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}}},
               "status": status})
    }

    #[test]
    fn a_deployment_is_complete_only_when_every_count_says_so() {
        let d = WorkloadKind::Deployment;
        let w = |s| match progress(d, &deployment(3, s)) {
            Progress::Waiting(m) => m,
            other => format!("{other:?}"),
        };
        assert_eq!(
            w(
                json!({"observedGeneration": 2, "updatedReplicas": 2, "replicas": 2, "availableReplicas": 2})
            ),
            "waiting for the controller to see the new spec"
        );
        assert_eq!(
            w(
                json!({"observedGeneration": 3, "updatedReplicas": 1, "replicas": 3, "availableReplicas": 2})
            ),
            "1 of 2 replicas updated"
        );
        assert_eq!(
            w(
                json!({"observedGeneration": 3, "updatedReplicas": 2, "replicas": 3, "availableReplicas": 2})
            ),
            "1 old replica(s) still terminating"
        );
        assert_eq!(
            w(
                json!({"observedGeneration": 3, "updatedReplicas": 2, "replicas": 2, "availableReplicas": 1})
            ),
            "1 of 2 updated replicas available"
        );
        assert_eq!(
            progress(
                d,
                &deployment(
                    3,
                    json!({"observedGeneration": 3, "updatedReplicas": 2, "replicas": 2, "availableReplicas": 2})
                )
            ),
            Progress::Complete
        );
        let stuck = deployment(
            3,
            json!({"observedGeneration": 3, "conditions": [{"type": "Progressing", "status": "False",
                "reason": "ProgressDeadlineExceeded", "message": "ReplicaSet \"web-1\" has timed out progressing."}]}),
        );
        assert!(
            matches!(progress(d, &stuck), Progress::Failed(m) if m.contains("timed out progressing"))
        );
    }

    #[test]
    fn statefulsets_daemonsets_and_jobs_have_their_own_rules() {
        let sts = json!({"metadata": {"generation": 1}, "spec": {"replicas": 2},
            "status": {"observedGeneration": 1, "readyReplicas": 2, "updatedReplicas": 1,
                       "currentRevision": "a", "updateRevision": "b"}});
        assert_eq!(
            progress(WorkloadKind::StatefulSet, &sts),
            Progress::Waiting("1 of 2 replicas on the new revision".into())
        );
        let ds = json!({"metadata": {"generation": 1}, "status": {"observedGeneration": 1,
            "desiredNumberScheduled": 1, "updatedNumberScheduled": 1, "numberAvailable": 1}});
        assert_eq!(progress(WorkloadKind::DaemonSet, &ds), Progress::Complete);
        let job = json!({"metadata": {"generation": 1}, "status": {"conditions": [
            {"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded", "message": "Job has reached the specified backoff limit"}]}});
        assert!(
            matches!(progress(WorkloadKind::Job, &job), Progress::Failed(m) if m.contains("BackoffLimitExceeded"))
        );
    }

    #[test]
    fn selectors_cover_labels_and_expressions() {
        let d = json!({"spec": {"selector": {"matchLabels": {"app": "web", "tier": "fe"},
            "matchExpressions": [{"key": "env", "operator": "In", "values": ["dev", "ci"]},
                                 {"key": "canary", "operator": "DoesNotExist"}]}}});
        assert_eq!(
            label_selector(&d).as_deref(),
            Some("app=web,tier=fe,env in (dev,ci),!canary")
        );
        assert_eq!(label_selector(&json!({"spec": {}})), None);
    }

    fn pod(status: Value) -> Pod {
        serde_json::from_value(json!({"metadata": {"name": "web-1"}, "spec": {"containers": [{"name": "app", "image": "web:devenv-1"}]}, "status": status}))
            .unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn pod_problems_name_the_reason_and_a_hint() {
        let never = pod(
            json!({"containerStatuses": [{"name": "app", "image": "web:devenv-1", "imageID": "", "ready": false, "restartCount": 0,
            "state": {"waiting": {"reason": "ErrImageNeverPull", "message": "Container image \"web:devenv-1\" is not present with pull policy of Never"}}}]}),
        );
        let p = pod_problem(&never, &["web".to_owned()]).unwrap_or_else(|| panic!("no problem"));
        assert_eq!(p.reason, "ErrImageNeverPull");
        assert!(p.hint.as_deref().unwrap_or("").contains("image store"));
        assert!(p.is_fatal());

        let oom = pod(
            json!({"containerStatuses": [{"name": "app", "image": "x", "imageID": "", "ready": false, "restartCount": 3,
            "state": {"waiting": {"reason": "CrashLoopBackOff"}},
            "lastState": {"terminated": {"reason": "OOMKilled", "exitCode": 137}}}]}),
        );
        assert_eq!(
            pod_problem(&oom, &[]).map(|p| p.reason),
            Some("OOMKilled".into())
        );

        let crash = pod(
            json!({"containerStatuses": [{"name": "app", "image": "x", "imageID": "", "ready": false, "restartCount": 2,
            "state": {"waiting": {"reason": "CrashLoopBackOff"}},
            "lastState": {"terminated": {"reason": "Error", "exitCode": 1}}}]}),
        );
        let p = pod_problem(&crash, &[]).unwrap_or_else(|| panic!("no problem"));
        assert_eq!(
            p.message,
            "the container keeps exiting (2 restarts, last exit code 1)"
        );

        let pending = pod(
            json!({"conditions": [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
            "message": "0/1 nodes are available: 1 Insufficient memory."}]}),
        );
        let p = pod_problem(&pending, &[]).unwrap_or_else(|| panic!("no problem"));
        assert_eq!(p.reason, "Unschedulable");
        assert!(!p.is_fatal());

        let fine = pod(
            json!({"containerStatuses": [{"name": "app", "image": "x", "imageID": "", "ready": true, "restartCount": 0,
            "state": {"running": {}}}]}),
        );
        assert_eq!(pod_problem(&fine, &[]), None);
    }

    #[test]
    fn a_complete_rollout_is_ready_whatever_old_pods_do_and_warnings_show_while_waiting() {
        let crash = pod(
            json!({"containerStatuses": [{"name": "app", "image": "x", "imageID": "", "ready": false, "restartCount": 2,
            "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]}),
        );
        let done = deployment(
            1,
            json!({"observedGeneration": 1, "updatedReplicas": 2, "replicas": 2, "availableReplicas": 2}),
        );
        assert_eq!(
            assess(WorkloadKind::Deployment, Some(&done), &[&crash], &[], &[]),
            Health::Ready
        );
        let waiting = deployment(
            1,
            json!({"observedGeneration": 1, "updatedReplicas": 2, "replicas": 2, "availableReplicas": 0}),
        );
        let running = pod(
            json!({"containerStatuses": [{"name": "app", "image": "x", "imageID": "", "ready": false, "restartCount": 0, "state": {"running": {}}}]}),
        );
        let probe = Problem {
            reason: "Unhealthy".into(),
            pod: Some("web-1".into()),
            container: None,
            message: "Readiness probe failed: HTTP probe failed with statuscode: 503".into(),
            hint: None,
            logs: vec![],
            logs_unreadable: None,
        };
        let other_pod = Problem {
            pod: Some("web-0".into()),
            ..probe.clone()
        };
        assert_eq!(
            assess(
                WorkloadKind::Deployment,
                Some(&waiting),
                &[&running],
                &[probe.clone(), other_pod.clone()],
                &[]
            ),
            Health::Problem(probe)
        );
        assert_eq!(
            assess(
                WorkloadKind::Deployment,
                Some(&waiting),
                &[&running],
                &[other_pod],
                &[]
            ),
            Health::Waiting("0 of 2 updated replicas available".into())
        );
        assert_eq!(
            assess(WorkloadKind::Deployment, None, &[], &[], &[]),
            Health::Waiting("waiting for the workload to exist".into())
        );
    }

    /// Issue 24 point 6: the hint for an image the cluster cannot get blamed devenv's build
    /// for `busybox:1.36`, an image the chart takes from a registry.
    #[test]
    fn an_image_devenv_does_not_build_gets_the_registry_hint() {
        let pulled = pod(
            json!({"containerStatuses": [{"name": "app", "image": "busybox:1.36", "imageID": "", "ready": false, "restartCount": 0,
            "state": {"waiting": {"reason": "ErrImagePull", "message": "failed to pull and unpack image \"docker.io/library/busybox:1.36\""}}}]}),
        );
        let built = vec!["web".to_owned(), "localhost:5000/api".to_owned()];
        let hint = pod_problem(&pulled, &built)
            .and_then(|p| p.hint)
            .unwrap_or_default();
        assert!(
            hint.starts_with(
                "devenv does not build `busybox:1.36`: the cluster pulls it from its registry"
            ),
            "{hint}"
        );
        assert!(!hint.contains("devenv builds into"), "{hint}");
        for image in [
            "web:devenv-1",
            "docker.io/library/web:devenv-1",
            "localhost:5000/api:devenv-2",
        ] {
            assert!(built_here(image, &built), "{image}");
        }
        assert!(!built_here("docker.io/library/webby:1", &built));
    }

    /// Issue 24 point 5: a crash loop alternated between three problems (the pod's
    /// CrashLoopBackOff, the BackOff event, a probe failure while it ran again). Every phase
    /// of it is the one CrashLoopBackOff problem, and the BackOff event is no problem of its own.
    #[test]
    fn every_phase_of_a_crash_loop_is_one_problem() {
        let last = json!({"terminated": {"reason": "Error", "exitCode": 3}});
        let phases = [
            json!({"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 20s"}}),
            json!({"running": {"startedAt": "2026-12-05T10:00:00Z"}}),
            json!({"terminated": {"reason": "Error", "exitCode": 3}}),
        ];
        for state in phases {
            let p = pod(
                json!({"containerStatuses": [{"name": "app", "image": "x", "imageID": "", "ready": false, "restartCount": 2,
                "state": state, "lastState": last}]}),
            );
            let problem = pod_problem(&p, &[]).unwrap_or_else(|| panic!("no problem in {state}"));
            assert_eq!(problem.reason, "CrashLoopBackOff", "{state}");
            assert_eq!(
                problem.message,
                "the container keeps exiting (2 restarts, last exit code 3)"
            );
        }
        // Its first exit, before any restart: already the crash (a readiness probe failing
        // meanwhile is its effect, not a problem of its own).
        let first = pod(
            json!({"containerStatuses": [{"name": "app", "image": "x", "imageID": "", "ready": false, "restartCount": 0,
            "state": {"terminated": {"reason": "Error", "exitCode": 3}}}]}),
        );
        assert_eq!(
            pod_problem(&first, &[]).map(|p| (p.reason, p.message)),
            Some((
                "CrashLoopBackOff".to_owned(),
                "the container keeps exiting (0 restarts, last exit code 3)".to_owned()
            ))
        );
        // Running again and ready: it recovered.
        let ok = pod(
            json!({"containerStatuses": [{"name": "app", "image": "x", "imageID": "", "ready": true, "restartCount": 2,
            "state": {"running": {}}, "lastState": last}]}),
        );
        assert_eq!(pod_problem(&ok, &[]), None);
        // Exited 0 and restarted (a sidecar that ends): no crash.
        let clean = pod(
            json!({"containerStatuses": [{"name": "app", "image": "x", "imageID": "", "ready": false, "restartCount": 1,
            "state": {"running": {}}, "lastState": {"terminated": {"reason": "Completed", "exitCode": 0}}}]}),
        );
        assert_eq!(pod_problem(&clean, &[]), None);
    }

    fn event(reason: &str, message: &str, count: i32) -> KubeEvent {
        serde_json::from_value(
            json!({"metadata": {"name": "e"}, "involvedObject": {"kind": "Pod", "name": "web-1"},
            "type": "Warning", "reason": reason, "message": message, "count": count}),
        )
        .unwrap_or_else(|e| panic!("{e}"))
    }

    /// Issue 24 point 4: old Warning events were shown as current problems: `ErrImagePull`
    /// after the image arrived (the pod's status says it while it lasts), a first probe
    /// failure while the server starts (17 of 19 rollouts of pods ready a second later).
    #[test]
    fn events_the_pod_status_tells_and_a_first_probe_failure_are_no_problems() {
        for (reason, message) in [
            ("Failed", "Failed to pull image \"web:1\": not found"),
            ("Failed", "Error: ErrImagePull"),
            (
                "ErrImageNeverPull",
                "Container image \"web:1\" is not present",
            ),
            ("BackOff", "Back-off restarting failed container app"),
            ("BackOff", "Back-off pulling image \"web:1\""),
        ] {
            assert_eq!(
                event_problem(&event(reason, message, 5)),
                None,
                "{reason}: {message}"
            );
        }
        let probe =
            "Readiness probe failed: Get \"http://10.244.0.8:8080/\": connect: connection refused";
        assert_eq!(event_problem(&event("Unhealthy", probe, 1)), None);
        assert_eq!(event_problem(&event("Unhealthy", probe, 2)), None);
        let p =
            event_problem(&event("Unhealthy", probe, 3)).unwrap_or_else(|| panic!("no problem"));
        assert_eq!(p.reason, "Unhealthy");
        assert!(event_problem(&event("FailedMount", "secret \"x\" not found", 1)).is_some());
    }

    /// A startup probe fails while the server starts until its own failureThreshold (the
    /// todo chart's: 30 tries, 2 s apart, while `next dev` compiled the page on the real node
    /// a "problem" with the probe hint was told); past it the kubelet restarts the container,
    /// which the pod's status tells.
    #[test]
    fn a_failing_startup_probe_is_no_problem_on_its_own() {
        let startup = "Startup probe failed: Get \"http://10.244.0.3:3000/\": context deadline exceeded (Client.Timeout exceeded while awaiting headers)";
        assert_eq!(event_problem(&event("Unhealthy", startup, 3)), None);
        assert_eq!(event_problem(&event("Unhealthy", startup, 29)), None);
        let liveness = "Liveness probe failed: HTTP probe failed with statuscode: 500";
        assert!(event_problem(&event("Unhealthy", liveness, 3)).is_some());
    }

    /// Issue 24 point 4: until the Deployment's controller has made the ReplicaSet of its new
    /// spec, the pods at hand are the old rollout's, and their problems are not this one's.
    #[test]
    fn a_deployment_has_no_rollout_pods_until_its_new_replicaset_is_known() {
        let old = pod(json!({}));
        let spec_unseen = deployment(2, json!({"observedGeneration": 1}));
        let seen = deployment(2, json!({"observedGeneration": 2}));
        assert!(
            rollout_pods(
                WorkloadKind::Deployment,
                Some(&spec_unseen),
                &[&old],
                Some("abc")
            )
            .is_empty()
        );
        assert!(rollout_pods(WorkloadKind::Deployment, Some(&seen), &[&old], None).is_empty());
        let mut current = pod(json!({}));
        current.metadata.labels = Some([("pod-template-hash".to_owned(), "abc".to_owned())].into());
        assert_eq!(
            rollout_pods(
                WorkloadKind::Deployment,
                Some(&seen),
                &[&old, &current],
                Some("abc")
            )
            .len(),
            1
        );
        assert_eq!(
            rollout_pods(WorkloadKind::StatefulSet, None, &[&old], None).len(),
            1
        );
    }

    /// Issue 28 point 24: a pod waiting for an unbound PersistentVolumeClaim was told as
    /// "the cluster lacks room"; the hint names the claim and the provisioner to check.
    #[test]
    fn an_unbound_claim_is_no_lack_of_room() {
        let mut p = pod(
            json!({"conditions": [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
            "message": "0/1 nodes are available: pod has unbound immediate PersistentVolumeClaims. preemption: 0/1 nodes are available: 1 Preemption is not helpful for scheduling."}]}),
        );
        if let Some(spec) = p.spec.as_mut() {
            spec.volumes = Some(vec![
                serde_json::from_value(
                    json!({"name": "data", "persistentVolumeClaim": {"claimName": "db-data"}}),
                )
                .unwrap_or_else(|e| panic!("{e}")),
            ]);
        }
        let hint = pod_problem(&p, &[])
            .and_then(|p| p.hint)
            .unwrap_or_default();
        assert!(
            hint.starts_with("PersistentVolumeClaim `db-data` is not bound to a volume"),
            "{hint}"
        );
        assert!(hint.contains("storage-provisioner"), "{hint}");
        assert!(!hint.contains("lacks room"), "{hint}");
    }
}
