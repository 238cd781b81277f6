//! A fake Kubernetes API server for tests; it is a fake, not a cluster.
//!
//! It speaks the real wire protocol for what devenv uses, so the real kube-rs client and the
//! real kubectl talk to it unchanged:
//! - `GET /version` and legacy API discovery (`/api`, `/apis`, `/api/v1`, `/apis/GROUP/VERSION`);
//! - GET, server-side-apply PATCH (`application/apply-patch+yaml` with `fieldManager`; the
//!   object's `status` is kept and `metadata.generation` goes up when `spec` changes) and
//!   DELETE on single objects at their REST paths, with `Status` bodies for errors;
//! - lists of a collection (namespaced or across namespaces) with `labelSelector`
//!   (`k=v`, `k!=v`, `k`, `!k`, `k in (a,b)`, `k notin (a,b)`) and `fieldSelector` (`a.b=v`,
//!   `a.b!=v`) and the list's `metadata.resourceVersion`;
//! - watches (`watch=true`) from a `resourceVersion`, replaying the change history after it,
//!   with `BOOKMARK` events when `allowWatchBookmarks` is set and `410 Expired` as an `ERROR`
//!   event once [`FakeKube::compact`] has dropped the history the client asks for;
//!   `timeoutSeconds` ends the stream;
//! - `pods/NAME/log` (`container`, `tailLines`, `previous`, `timestamps`, `follow`: a followed
//!   log stays open, streams lines the test appends, and ends when the pod is deleted);
//! - `pods/NAME/portforward` over WebSocket (`v4.channel.k8s.io`): each port gets its data and
//!   error channels with the port-number preamble; the "pod" answers every chunk it receives
//!   with `<pod>:<port> <chunk>`, so a test can see which pod a connection reached.
//! - `pods/NAME/exec` over WebSocket (`v5.channel.k8s.io`, `v4.channel.k8s.io` when that is
//!   all the client offers): stdin on channel 0 (and v5's close signal on 255), stdout and
//!   stderr on 1 and 2, the `Status` on 3. Each container has a directory of its own
//!   ([`FakeKube::container_dir`]) that stands for its filesystem: `tar -x -f - -C /`
//!   unpacks stdin there (the archive ends at its end-of-archive blocks), `rm -rf -- PATHS`
//!   removes there, `sh -c LINE` is recorded in `<dir>.runs` (tar reads whole 10240-byte
//!   records, as GNU tar does, before it answers). A container whose image's name
//!   holds `notar` has no tar, as a distroless image: every exec fails as the runtime says.
//!   One whose image's name holds `noanswer` closes every exec's stream without an answer.
//!   One whose image's name holds `readonly` runs with `readOnlyRootFilesystem`: tar reads
//!   its stdin and exits 2 with GNU tar's "Read-only file system" line on stderr.
//!
//! It leaves out: controllers (tests play the Deployment controller and kubelet by writing
//! objects and status themselves), list pagination (everything comes in one page), POST/PUT,
//! strategic-merge and JSON patches, admission, field ownership and conflicts, and
//! authentication. Every request is recorded for assertions.

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path as UrlPath, RawQuery};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};

#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub query: String,
    pub content_type: String,
    pub body: String,
}

/// One entry of the change history that watches replay.
struct Change {
    rv: u64,
    path: String,
    kind: &'static str,
    object: Value,
}

#[derive(Default)]
struct State {
    objects: BTreeMap<String, Value>,
    history: VecDeque<Change>,
    /// Watches from a resourceVersion below this get `410 Expired`.
    compacted: u64,
    requests: Vec<Recorded>,
    next_rv: u64,
    /// `ns/pod/container` (plus `/previous`) -> time-stamped lines.
    logs: BTreeMap<String, Vec<String>>,
    log_clock: u64,
    /// Play the Deployment controller and kubelet: see [`FakeKube::auto_rollout`].
    auto_rollout: bool,
    /// Where containers' files go (see [`FakeKube::container_dir`]).
    exec_root: Option<std::path::PathBuf>,
    /// Speak only v4.channel.k8s.io on exec (an API server before v5: no close signal for
    /// stdin).
    exec_v4_only: bool,
}

struct Shared {
    state: Mutex<State>,
    /// Bumped on every change, to wake watches and followed logs.
    changed: tokio::sync::watch::Sender<u64>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        match self.state.lock() {
            Ok(s) => s,
            Err(p) => p.into_inner(),
        }
    }

    fn notify(&self, rv: u64) {
        self.changed.send_replace(rv);
    }
}

pub struct FakeKube {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

fn status(code: u16, reason: &str, message: String) -> Response {
    let code_status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (
        code_status,
        axum::Json(status_object(code, reason, message)),
    )
        .into_response()
}

fn status_object(code: u16, reason: &str, message: String) -> Value {
    json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {},
        "status": if code < 400 { "Success" } else { "Failure" },
        "message": message, "reason": reason, "code": code
    })
}

/// A REST path taken apart.
#[derive(Debug, Clone, PartialEq)]
struct Key {
    /// `/api/v1` or `/apis/GROUP/VERSION`.
    prefix: String,
    namespace: Option<String>,
    plural: String,
    name: Option<String>,
    sub: Option<String>,
}

fn parse_path(path: &str) -> Option<Key> {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (prefix, rest) = match segs.as_slice() {
        ["api", v, rest @ ..] => (format!("/api/{v}"), rest),
        ["apis", g, v, rest @ ..] => (format!("/apis/{g}/{v}"), rest),
        _ => return None,
    };
    let (namespace, rest) = match rest {
        ["namespaces", ns, tail @ ..] if !tail.is_empty() => (Some((*ns).to_owned()), tail),
        _ => (None, rest),
    };
    let plural = (*rest.first()?).to_owned();
    Some(Key {
        prefix,
        namespace,
        plural,
        name: rest.get(1).map(|s| (*s).to_owned()),
        sub: rest.get(2).map(|s| (*s).to_owned()),
    })
}

fn query_map(query: &str) -> BTreeMap<String, String> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(k), decode(v))
        })
        .collect()
}

fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match u8::from_str_radix(&s[i + 1..i + 3], 16) {
                Ok(b) => {
                    out.push(b);
                    i += 2;
                }
                Err(_) => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The value at a dotted path (`metadata.name`, `involvedObject.kind`), as a string.
fn field(obj: &Value, dotted: &str) -> String {
    let mut v = obj;
    for part in dotted.split('.') {
        v = &v[part];
    }
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn fields_match(obj: &Value, selector: &str) -> bool {
    selector.split(',').filter(|s| !s.is_empty()).all(|term| {
        if let Some((k, v)) = term.split_once("!=") {
            field(obj, k) != v
        } else if let Some((k, v)) = term.split_once("==").or_else(|| term.split_once('=')) {
            field(obj, k) == v
        } else {
            false
        }
    })
}

/// Splits a label selector at the commas that are not inside `( )`.
fn selector_terms(selector: &str) -> Vec<String> {
    let mut terms = Vec::new();
    let mut depth = 0;
    let mut cur = String::new();
    for c in selector.chars() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                terms.push(std::mem::take(&mut cur));
                continue;
            }
            _ => {}
        }
        cur.push(c);
    }
    terms.push(cur);
    terms
        .into_iter()
        .map(|t| t.trim().to_owned())
        .filter(|t| !t.is_empty())
        .collect()
}

fn labels_match(obj: &Value, selector: &str) -> bool {
    let labels = &obj["metadata"]["labels"];
    let get = |k: &str| labels[k.trim()].as_str().map(str::to_owned);
    let set = |s: &str| -> Vec<String> {
        s.trim()
            .trim_start_matches('(')
            .trim_end_matches(')')
            .split(',')
            .map(|v| v.trim().to_owned())
            .collect()
    };
    selector_terms(selector).iter().all(|term| {
        if let Some((k, vs)) = term.split_once(" notin ") {
            get(k).is_none_or(|v| !set(vs).contains(&v))
        } else if let Some((k, vs)) = term.split_once(" in ") {
            get(k).is_some_and(|v| set(vs).contains(&v))
        } else if let Some((k, v)) = term.split_once("!=") {
            get(k).as_deref() != Some(v.trim())
        } else if let Some((k, v)) = term.split_once("==").or_else(|| term.split_once('=')) {
            get(k).as_deref() == Some(v.trim())
        } else if let Some(k) = term.strip_prefix('!') {
            get(k).is_none()
        } else {
            get(term).is_some()
        }
    })
}

/// Whether the object at `path` belongs to the collection `coll` and passes its selectors.
fn in_collection(coll: &Key, path: &str, obj: &Value, q: &BTreeMap<String, String>) -> bool {
    let Some(k) = parse_path(path) else {
        return false;
    };
    k.prefix == coll.prefix
        && k.plural == coll.plural
        && k.sub.is_none()
        && (coll.namespace.is_none() || coll.namespace == k.namespace)
        && q.get("labelSelector").is_none_or(|s| labels_match(obj, s))
        && q.get("fieldSelector").is_none_or(|s| fields_match(obj, s))
}

fn kind_of(key: &Key) -> String {
    RESOURCES
        .iter()
        .flat_map(|(_, rs)| rs.iter())
        .find(|(plural, _, _)| *plural == key.plural)
        .map_or_else(|| "Unknown".to_owned(), |(_, kind, _)| (*kind).to_owned())
}

fn api_version_of(key: &Key) -> String {
    key.prefix
        .trim_start_matches("/apis/")
        .trim_start_matches("/api/")
        .to_owned()
}

impl State {
    /// Stores (or, with `None`, deletes) the object at `path`, stamping a new
    /// resourceVersion and recording the change for watches. Returns the new version.
    fn commit(&mut self, path: &str, obj: Option<Value>) -> u64 {
        self.next_rv += 1;
        let rv = self.next_rv;
        let (kind, object) = match obj {
            Some(mut o) => {
                let existed = self.objects.contains_key(path);
                o["metadata"]["resourceVersion"] = json!(rv.to_string());
                if o["metadata"]["uid"].is_null() {
                    o["metadata"]["uid"] = json!(format!("uid-{rv}"));
                }
                if o["metadata"]["creationTimestamp"].is_null() {
                    o["metadata"]["creationTimestamp"] = json!("2026-01-01T00:00:00Z");
                }
                self.objects.insert(path.to_owned(), o.clone());
                (if existed { "MODIFIED" } else { "ADDED" }, o)
            }
            None => match self.objects.remove(path) {
                Some(mut o) => {
                    o["metadata"]["resourceVersion"] = json!(rv.to_string());
                    ("DELETED", o)
                }
                None => return rv,
            },
        };
        self.history.push_back(Change {
            rv,
            path: path.to_owned(),
            kind,
            object,
        });
        rv
    }
}

impl State {
    /// What the Deployment controller and kubelet would do, instantly and successfully: the
    /// old pods go, `spec.replicas` new ones run and are ready, and the status says so.
    fn roll_out(&mut self, key: &Key, deployment: &Value) -> u64 {
        let ns = key.namespace.clone().unwrap_or_default();
        let name = key.name.clone().unwrap_or_default();
        let generation = deployment["metadata"]["generation"].as_u64().unwrap_or(1);
        let replicas = deployment["spec"]["replicas"].as_u64().unwrap_or(1);
        let template = &deployment["spec"]["template"];
        let prefix = format!("/api/v1/namespaces/{ns}/pods/{name}-");
        let old: Vec<String> = self
            .objects
            .keys()
            .filter(|p| p.starts_with(&prefix))
            .cloned()
            .collect();
        for p in old {
            self.commit(&p, None);
        }
        let statuses: Vec<Value> = template["spec"]["containers"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| {
                json!({"name": c["name"], "image": c["image"], "imageID": "", "ready": true,
                            "restartCount": 0, "started": true,
                            "state": {"running": {"startedAt": "2026-01-01T00:00:00Z"}}})
            })
            .collect();
        for i in 0..replicas {
            let pod_name = format!("{name}-{generation}-{i}");
            let mut labels = template["metadata"]["labels"].clone();
            labels["pod-template-hash"] = json!(generation.to_string());
            let pod = json!({
                "apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": pod_name, "namespace": ns, "labels": labels},
                "spec": template["spec"],
                "status": {"phase": "Running", "podIP": "10.244.0.9",
                    "conditions": [{"type": "Ready", "status": "True"},
                                   {"type": "PodScheduled", "status": "True"}],
                    "containerStatuses": statuses}
            });
            self.commit(
                &format!("/api/v1/namespaces/{ns}/pods/{pod_name}"),
                Some(pod),
            );
        }
        // The ReplicaSet of this revision, as the Deployment controller keeps it: owned by
        // the Deployment, its pods named by its pod-template-hash.
        let mut rs_labels = template["metadata"]["labels"].clone();
        rs_labels["pod-template-hash"] = json!(generation.to_string());
        self.commit(
            &format!("/apis/apps/v1/namespaces/{ns}/replicasets/{name}-{generation}"),
            Some(json!({
                "apiVersion": "apps/v1", "kind": "ReplicaSet",
                "metadata": {"name": format!("{name}-{generation}"), "namespace": ns,
                    "labels": rs_labels,
                    "annotations": {"deployment.kubernetes.io/revision": generation.to_string()},
                    "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment",
                        "name": name, "uid": deployment["metadata"]["uid"], "controller": true}]},
                "spec": {"replicas": replicas, "selector": deployment["spec"]["selector"],
                    "template": template},
                "status": {"replicas": replicas, "readyReplicas": replicas}
            })),
        );
        let path = format!("/apis/apps/v1/namespaces/{ns}/deployments/{name}");
        let mut d = deployment.clone();
        d["status"] = json!({"observedGeneration": generation, "replicas": replicas,
            "updatedReplicas": replicas, "readyReplicas": replicas, "availableReplicas": replicas});
        self.commit(&path, Some(d))
    }
}

async fn handle(
    shared: Arc<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().trim_end_matches('/').to_owned();
    let query = uri.query().unwrap_or("").to_owned();
    let content_type = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    shared.lock().requests.push(Recorded {
        method: method.to_string(),
        path: path.clone(),
        query: query.clone(),
        content_type: content_type.clone(),
        body: String::from_utf8_lossy(&body).into_owned(),
    });
    if path == "/version" {
        return axum::Json(json!({
            "major": "1", "minor": "32", "gitVersion": "v1.32.0", "gitCommit": "fake",
            "gitTreeState": "clean", "buildDate": "2024-12-11T00:00:00Z", "goVersion": "go1.23.3",
            "compiler": "gc", "platform": "linux/amd64"
        }))
        .into_response();
    }
    if let Some(doc) = discovery(&path, uri.authority().map_or("127.0.0.1", |a| a.as_str())) {
        return axum::Json(doc).into_response();
    }
    let Some(key) = parse_path(&path) else {
        return status(404, "NotFound", format!("the server could not find {path}"));
    };
    let q = query_map(&query);
    let name = key.name.clone().unwrap_or_default();
    let plural = key.plural.clone();
    match (&method, &key.name, key.sub.as_deref()) {
        (&Method::GET, Some(_), Some("log")) => log(&shared, &key, &q).await,
        (&Method::GET, None, _)
            if matches!(q.get("watch").map(String::as_str), Some("true" | "1")) =>
        {
            watch(shared, key, q)
        }
        (&Method::GET, None, _) => {
            let st = shared.lock();
            let items: Vec<Value> = st
                .objects
                .iter()
                .filter(|(p, o)| in_collection(&key, p, o, &q))
                .map(|(_, o)| o.clone())
                .collect();
            axum::Json(json!({
                "kind": format!("{}List", kind_of(&key)),
                "apiVersion": api_version_of(&key),
                "metadata": {"resourceVersion": st.next_rv.to_string()},
                "items": items
            }))
            .into_response()
        }
        (&Method::GET, Some(_), _) => match shared.lock().objects.get(&path) {
            Some(o) => axum::Json(o.clone()).into_response(),
            None => status(404, "NotFound", format!("{plural} \"{name}\" not found")),
        },
        (&Method::PATCH, Some(_), None) => {
            if content_type != "application/apply-patch+yaml" {
                return status(
                    415,
                    "UnsupportedMediaType",
                    format!("the fake only supports server-side apply, not {content_type}"),
                );
            }
            if !q.contains_key("fieldManager") {
                return status(
                    422,
                    "Invalid",
                    "fieldManager is required for apply patch".into(),
                );
            }
            let Ok(mut obj) = serde_json::from_slice::<Value>(&body)
                .or_else(|_| serde_norway::from_slice::<Value>(&body))
            else {
                return status(400, "BadRequest", "body is neither JSON nor YAML".into());
            };
            let mut st = shared.lock();
            let old = st.objects.get(&path).cloned();
            let created = old.is_none();
            let old_gen = old
                .as_ref()
                .and_then(|o| o["metadata"]["generation"].as_u64())
                .unwrap_or(0);
            let spec_changed = old.as_ref().is_none_or(|o| o["spec"] != obj["spec"]);
            obj["metadata"]["generation"] = json!(old_gen + u64::from(spec_changed));
            if let Some(o) = &old {
                obj["metadata"]["uid"] = o["metadata"]["uid"].clone();
                obj["metadata"]["creationTimestamp"] = o["metadata"]["creationTimestamp"].clone();
                if !o["status"].is_null() {
                    obj["status"] = o["status"].clone();
                }
            }
            let mut rv = st.commit(&path, Some(obj));
            let stored = st.objects.get(&path).cloned().unwrap_or_default();
            if st.auto_rollout && key.plural == "deployments" && key.prefix == "/apis/apps/v1" {
                rv = st.roll_out(&key, &stored);
            }
            drop(st);
            shared.notify(rv);
            let code = if created {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            };
            (code, axum::Json(stored)).into_response()
        }
        (&Method::DELETE, Some(_), None) => {
            let mut st = shared.lock();
            if !st.objects.contains_key(&path) {
                return status(404, "NotFound", format!("{plural} \"{name}\" not found"));
            }
            let rv = st.commit(&path, None);
            drop(st);
            shared.notify(rv);
            status(200, "", format!("{plural} \"{name}\" deleted"))
        }
        _ => status(
            405,
            "MethodNotAllowed",
            format!("{method} {path} is not supported by the fake"),
        ),
    }
}

/// A watch on the collection `key`: history after the client's resourceVersion, then live
/// changes, as newline-separated JSON events.
fn watch(shared: Arc<Shared>, key: Key, q: BTreeMap<String, String>) -> Response {
    let bookmarks = q.get("allowWatchBookmarks").is_some_and(|v| v == "true");
    let timeout = q
        .get("timeoutSeconds")
        .and_then(|s| s.parse::<u64>().ok())
        .unwrap_or(290);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(timeout);
    let start = q.get("resourceVersion").cloned().unwrap_or_default();
    let mut pending: VecDeque<Value> = VecDeque::new();
    let cursor = {
        let st = shared.lock();
        match start.parse::<u64>() {
            Ok(rv) if rv > 0 => rv,
            _ => {
                // No version (or "0"): every current object as ADDED, then what follows.
                for (p, o) in &st.objects {
                    if in_collection(&key, p, o, &q) {
                        pending.push_back(json!({"type": "ADDED", "object": o}));
                    }
                }
                st.next_rv
            }
        }
    };
    let rx = shared.changed.subscribe();
    struct W {
        shared: Arc<Shared>,
        key: Key,
        q: BTreeMap<String, String>,
        cursor: u64,
        pending: VecDeque<Value>,
        rx: tokio::sync::watch::Receiver<u64>,
        done: bool,
    }
    let w = W {
        shared,
        key,
        q,
        cursor,
        pending,
        rx,
        done: false,
    };
    let stream = futures::stream::unfold(w, move |mut w| async move {
        loop {
            if let Some(ev) = w.pending.pop_front() {
                let mut line = serde_json::to_vec(&ev).unwrap_or_default();
                line.push(b'\n');
                return Some((Ok::<_, std::io::Error>(Bytes::from(line)), w));
            }
            if w.done {
                return None;
            }
            {
                let st = w.shared.lock();
                if w.cursor < st.compacted {
                    let msg = format!("too old resource version: {} ({})", w.cursor, st.compacted);
                    w.pending.push_back(
                        json!({"type": "ERROR", "object": status_object(410, "Expired", msg)}),
                    );
                    w.done = true;
                    continue;
                }
                for c in st.history.iter().filter(|c| c.rv > w.cursor) {
                    if in_collection(&w.key, &c.path, &c.object, &w.q) {
                        w.pending
                            .push_back(json!({"type": c.kind, "object": c.object}));
                    }
                }
                if st.next_rv > w.cursor {
                    if w.pending.is_empty() && bookmarks {
                        w.pending.push_back(json!({"type": "BOOKMARK", "object": {
                            "kind": kind_of(&w.key), "apiVersion": api_version_of(&w.key),
                            "metadata": {"resourceVersion": st.next_rv.to_string()}
                        }}));
                    }
                    w.cursor = st.next_rv;
                }
            }
            if !w.pending.is_empty() {
                continue;
            }
            tokio::select! {
                r = w.rx.changed() => if r.is_err() { return None; },
                () = tokio::time::sleep_until(deadline) => return None,
            }
        }
    });
    Response::builder()
        .header("content-type", "application/json")
        .body(Body::from_stream(stream))
        .unwrap_or_else(|e| status(500, "InternalError", e.to_string()))
}

/// `pods/NAME/log`: the stored lines, and with `follow` the ones appended later, until the
/// pod is deleted.
async fn log(shared: &Arc<Shared>, key: &Key, q: &BTreeMap<String, String>) -> Response {
    let ns = key.namespace.clone().unwrap_or_default();
    let pod = key.name.clone().unwrap_or_default();
    let pod_path = format!("/api/v1/namespaces/{ns}/pods/{pod}");
    let container = {
        let st = shared.lock();
        let Some(obj) = st.objects.get(&pod_path) else {
            return status(404, "NotFound", format!("pods \"{pod}\" not found"));
        };
        let names: Vec<String> = obj["spec"]["containers"]
            .as_array()
            .map(|cs| {
                cs.iter()
                    .filter_map(|c| c["name"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        match q.get("container") {
            Some(c) if names.contains(c) => c.clone(),
            Some(c) => {
                return status(
                    400,
                    "BadRequest",
                    format!("container {c} is not valid for pod {pod}"),
                );
            }
            None if names.len() == 1 => names[0].clone(),
            None => {
                return status(
                    400,
                    "BadRequest",
                    format!(
                        "a container name must be specified for pod {pod}, choose one of: [{}]",
                        names.join(" ")
                    ),
                );
            }
        }
    };
    let previous = q.get("previous").is_some_and(|v| v == "true");
    let log_key = format!(
        "{ns}/{pod}/{container}{}",
        if previous { "/previous" } else { "" }
    );
    let timestamps = q.get("timestamps").is_some_and(|v| v == "true");
    let follow = q.get("follow").is_some_and(|v| v == "true") && !previous;
    let tail = q.get("tailLines").and_then(|t| t.parse::<usize>().ok());
    let start = {
        let st = shared.lock();
        let n = st.logs.get(&log_key).map_or(0, Vec::len);
        tail.map_or(0, |t| n.saturating_sub(t))
    };
    let rx = shared.changed.subscribe();
    let shared = shared.clone();
    let stream =
        futures::stream::unfold((start, rx, false), move |(mut next, mut rx, mut done)| {
            let shared = shared.clone();
            let log_key = log_key.clone();
            let pod_path = pod_path.clone();
            async move {
                loop {
                    let (chunk, gone) = {
                        let st = shared.lock();
                        let lines = st.logs.get(&log_key).map_or(&[][..], Vec::as_slice);
                        let mut out = String::new();
                        for l in lines.iter().skip(next) {
                            let text = if timestamps {
                                l.as_str()
                            } else {
                                l.split_once(' ').map_or(l.as_str(), |(_, t)| t)
                            };
                            out.push_str(text);
                            out.push('\n');
                        }
                        next = lines.len();
                        (out, !st.objects.contains_key(&pod_path))
                    };
                    if !chunk.is_empty() {
                        return Some((
                            Ok::<_, std::io::Error>(Bytes::from(chunk)),
                            (next, rx, done),
                        ));
                    }
                    if done || !follow || gone {
                        return None;
                    }
                    if rx.changed().await.is_err() {
                        done = true;
                    }
                }
            }
        });
    Response::builder()
        .header("content-type", "text/plain")
        .body(Body::from_stream(stream))
        .unwrap_or_else(|e| status(500, "InternalError", e.to_string()))
}

/// `pods/NAME/portforward`: a WebSocket on `v4.channel.k8s.io` whose "pod" echoes.
async fn portforward(
    shared: Arc<Shared>,
    UrlPath((ns, pod)): UrlPath<(String, String)>,
    RawQuery(query): RawQuery,
    ws: WebSocketUpgrade,
) -> Response {
    let query = query.unwrap_or_default();
    let path = format!("/api/v1/namespaces/{ns}/pods/{pod}");
    let running = {
        let mut st = shared.lock();
        st.requests.push(Recorded {
            method: "GET".into(),
            path: format!("{path}/portforward"),
            query: query.clone(),
            content_type: String::new(),
            body: String::new(),
        });
        st.objects
            .get(&path)
            .map(|o| o["status"]["phase"] == "Running")
    };
    match running {
        None => return status(404, "NotFound", format!("pods \"{pod}\" not found")),
        Some(false) => {
            return status(
                400,
                "BadRequest",
                format!("pod {pod} is not running and cannot be port-forwarded"),
            );
        }
        Some(true) => {}
    }
    let ports: Vec<u16> = query_map(&query)
        .get("ports")
        .map(|p| p.split(',').filter_map(|s| s.parse().ok()).collect())
        .unwrap_or_default();
    ws.protocols(["v4.channel.k8s.io"])
        .on_upgrade(move |socket| serve_portforward(socket, pod, ports))
}

async fn serve_portforward(socket: WebSocket, pod: String, ports: Vec<u16>) {
    let (mut tx, mut rx) = socket.split();
    for (i, port) in ports.iter().enumerate() {
        for ch in [2 * i as u8, 2 * i as u8 + 1] {
            let mut frame = vec![ch];
            frame.extend_from_slice(&port.to_le_bytes());
            if tx.send(Message::Binary(frame.into())).await.is_err() {
                return;
            }
        }
    }
    while let Some(Ok(msg)) = rx.next().await {
        let Message::Binary(data) = msg else {
            if matches!(msg, Message::Close(_)) {
                return;
            }
            continue;
        };
        let Some((&ch, payload)) = data.split_first() else {
            continue;
        };
        let port = ports.get(usize::from(ch / 2)).copied().unwrap_or(0);
        let mut reply = vec![ch];
        reply.extend_from_slice(format!("{pod}:{port} ").as_bytes());
        reply.extend_from_slice(payload);
        if tx.send(Message::Binary(reply.into())).await.is_err() {
            return;
        }
    }
}

/// `pods/NAME/exec`: see the module's doc.
async fn exec(
    shared: Arc<Shared>,
    UrlPath((ns, pod)): UrlPath<(String, String)>,
    RawQuery(query): RawQuery,
    ws: WebSocketUpgrade,
) -> Response {
    let query = query.unwrap_or_default();
    let path = format!("/api/v1/namespaces/{ns}/pods/{pod}");
    let mut command = Vec::new();
    let mut container = String::new();
    for pair in query.split('&') {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        match k {
            "command" => command.push(decode(v)),
            "container" => container = decode(v),
            _ => {}
        }
    }
    let (image, dir, v4_only) = {
        let mut st = shared.lock();
        st.requests.push(Recorded {
            method: "GET".into(),
            path: format!("{path}/exec"),
            query: query.clone(),
            content_type: String::new(),
            body: command.join(" "),
        });
        let image = st.objects.get(&path).and_then(|o| {
            o["spec"]["containers"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|c| c["name"] == container.as_str())
                .and_then(|c| c["image"].as_str().map(str::to_owned))
        });
        let dir = st
            .exec_root
            .as_ref()
            .map(|r| r.join(&ns).join(&pod).join(&container));
        (image, dir, st.exec_v4_only)
    };
    let Some(image) = image else {
        return status(
            404,
            "NotFound",
            format!("container {container} of pod {pod} not found"),
        );
    };
    let Some(dir) = dir else {
        return status(
            500,
            "InternalError",
            "the test gave the fake no exec root".into(),
        );
    };
    let protocols: &[&'static str] = if v4_only {
        &["v4.channel.k8s.io"]
    } else {
        &["v5.channel.k8s.io", "v4.channel.k8s.io"]
    };
    ws.protocols(protocols.iter().copied())
        .on_upgrade(move |socket| serve_exec(socket, command, image, dir))
}

/// Whether a tar stream holds a whole archive (up to its end-of-archive block).
fn whole_archive(data: &[u8]) -> bool {
    let mut at = 0;
    while at + 512 <= data.len() {
        let block = &data[at..at + 512];
        if block.iter().all(|b| *b == 0) {
            return true;
        }
        let size_field = String::from_utf8_lossy(&block[124..136]);
        let size = u64::from_str_radix(size_field.trim_matches(|c: char| c == '\0' || c == ' '), 8)
            .unwrap_or(0);
        let blocks = usize::try_from(size.div_ceil(512)).unwrap_or(0);
        at += 512 * (1 + blocks);
    }
    false
}

async fn serve_exec(
    socket: WebSocket,
    command: Vec<String>,
    image: String,
    dir: std::path::PathBuf,
) {
    let (mut tx, mut rx) = socket.split();
    let send_status = |ok: Result<(), (String, String)>| {
        let body = match ok {
            Ok(()) => json!({"metadata": {}, "status": "Success"}),
            Err((reason, message)) => json!({
                "metadata": {}, "status": "Failure", "reason": reason, "message": message,
                "details": {"causes": [{"reason": "ExitCode", "message": "1"}]}
            }),
        };
        let mut frame = vec![3u8];
        frame.extend_from_slice(body.to_string().as_bytes());
        frame
    };
    let program = command.first().cloned().unwrap_or_default();
    if image.contains("noanswer") {
        // The stream breaks before any answer (a node that went away).
        let _ = tx.send(Message::Close(None)).await;
        return;
    }
    if image.contains("notar") {
        let frame = send_status(Err((
            "InternalError".into(),
            format!(
                "OCI runtime exec failed: exec failed: unable to start container process: exec: \"{program}\": executable file not found in $PATH: unknown"
            ),
        )));
        let _ = tx.send(Message::Binary(frame.into())).await;
        let _ = tx.send(Message::Close(None)).await;
        return;
    }
    let script = command.get(2).cloned().unwrap_or_default();
    if program == "sh" && script.starts_with("while IFS= read -r n; do head -c") {
        serve_session(&mut tx, &mut rx, &script, &image, &dir).await;
        let _ = tx.send(Message::Binary(send_status(Ok(())).into())).await;
        let _ = tx.send(Message::Close(None)).await;
        return;
    }
    let result: Result<(), (String, String)> = match program.as_str() {
        "tar" => {
            let mut data = Vec::new();
            // As GNU tar: whole 10240-byte records are read, up to the one holding the
            // end-of-archive blocks (or until stdin ends).
            while !(whole_archive(&data) && data.len() % 10240 == 0) {
                match rx.next().await {
                    Some(Ok(Message::Binary(b))) => match b.first() {
                        Some(0) => data.extend_from_slice(&b[1..]),
                        // v5: stdin closed.
                        Some(255) => break,
                        _ => {}
                    },
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                    Some(Ok(_)) => {}
                }
            }
            if image.contains("readonly") {
                let mut err = vec![2u8];
                err.extend_from_slice(read_only_tar(&data).as_bytes());
                let _ = tx.send(Message::Binary(err.into())).await;
                Err(("NonZeroExitCode".into(), "command terminated with non-zero exit code: error executing command [tar -x -f - -C /], exit code 2".into()))
            } else {
                let _ = std::fs::create_dir_all(&dir);
                tar::Archive::new(data.as_slice())
                    .unpack(&dir)
                    .map_err(|e| ("InternalError".to_owned(), format!("tar: {e}")))
            }
        }
        "rm" => {
            for p in command.iter().skip_while(|a| *a != "--").skip(1) {
                let at = dir.join(p.trim_start_matches('/'));
                let _ = std::fs::remove_file(&at).or_else(|_| std::fs::remove_dir_all(&at));
            }
            Ok(())
        }
        "sh" => {
            let line = command.get(2).cloned().unwrap_or_default();
            let runs = std::path::PathBuf::from(format!("{}.runs", dir.display()));
            if let Some(parent) = runs.parent() {
                let _ = std::fs::create_dir_all(parent);
            }
            let mut old = std::fs::read_to_string(&runs).unwrap_or_default();
            old.push_str(&line);
            old.push('\n');
            let _ = std::fs::write(&runs, old);
            let mut out = vec![1u8];
            out.extend_from_slice(b"ran\n");
            let _ = tx.send(Message::Binary(out.into())).await;
            if line.contains("exit 3") {
                Err(("NonZeroExitCode".into(), "command terminated with non-zero exit code: error executing command [sh -c ...], exit code 3".into()))
            } else {
                Ok(())
            }
        }
        other => Err((
            "InternalError".into(),
            format!("exec: \"{other}\": the fake runs tar, rm and sh only"),
        )),
    };
    let _ = tx.send(Message::Binary(send_status(result).into())).await;
    let _ = tx.send(Message::Close(None)).await;
}

/// What GNU tar says when the container's root filesystem is read-only: it cannot open the
/// archive's first file.
fn read_only_tar(archive: &[u8]) -> String {
    let name = tar::Archive::new(archive)
        .entries()
        .ok()
        .and_then(|mut e| e.next())
        .and_then(Result::ok)
        .and_then(|e| e.path().ok().map(|p| p.display().to_string()))
        .unwrap_or_default();
    format!(
        "tar: {name}: Cannot open: Read-only file system\ntar: Exiting with failure status due to previous errors\n"
    )
}

/// devenv's unpacking shell (`while IFS= read -r n; do head -c "$n" | tar -x … 2>&1; echo
/// "MARK $?"; done`), as a shell in the container runs it: a length line, that many bytes
/// unpacked under the container's root, tar's output and the marker line with its code;
/// until stdin ends. A `readonly` image's tar fails as GNU tar does on a read-only root.
async fn serve_session<T, R>(
    tx: &mut T,
    rx: &mut R,
    script: &str,
    image: &str,
    dir: &std::path::Path,
) where
    T: futures::Sink<Message> + Unpin,
    R: futures::Stream<Item = Result<Message, axum::Error>> + Unpin,
{
    let mark = script
        .split("echo \"")
        .nth(1)
        .and_then(|r| r.split(" $?").next())
        .unwrap_or("MARK")
        .to_owned();
    let mut buf: Vec<u8> = Vec::new();
    loop {
        // The length line, then its bytes.
        let request = loop {
            if let Some(nl) = buf.iter().position(|b| *b == b'\n') {
                let n: usize = String::from_utf8_lossy(&buf[..nl])
                    .trim()
                    .parse()
                    .unwrap_or(0);
                if buf.len() > nl + n {
                    let data = buf[nl + 1..nl + 1 + n].to_vec();
                    buf.drain(..nl + 1 + n);
                    break Some(data);
                }
            }
            match rx.next().await {
                Some(Ok(Message::Binary(b))) => match b.first() {
                    Some(0) => buf.extend_from_slice(&b[1..]),
                    Some(255) => break None,
                    _ => {}
                },
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break None,
                Some(Ok(_)) => {}
            }
        };
        let Some(data) = request else { return };
        let (output, code) = if image.contains("readonly") {
            (read_only_tar(&data), 2)
        } else {
            let _ = std::fs::create_dir_all(dir);
            match tar::Archive::new(data.as_slice()).unpack(dir) {
                Ok(()) => (String::new(), 0),
                Err(e) => (format!("tar: {e}\n"), 2),
            }
        };
        let mut frame = vec![1u8];
        frame.extend_from_slice(format!("{output}{mark} {code}\n").as_bytes());
        if tx.send(Message::Binary(frame.into())).await.is_err() {
            return;
        }
    }
}

/// A resource the fake serves: (plural, kind, namespaced).
type Resource = (&'static str, &'static str, bool);

/// The group versions the fake serves and their resources.
const RESOURCES: [(&str, &[Resource]); 3] = [
    (
        "v1",
        &[
            ("namespaces", "Namespace", false),
            ("secrets", "Secret", true),
            ("configmaps", "ConfigMap", true),
            ("services", "Service", true),
            ("pods", "Pod", true),
            ("events", "Event", true),
        ],
    ),
    (
        "apps/v1",
        &[
            ("deployments", "Deployment", true),
            ("statefulsets", "StatefulSet", true),
            ("daemonsets", "DaemonSet", true),
            ("replicasets", "ReplicaSet", true),
        ],
    ),
    (
        "batch/v1",
        &[("jobs", "Job", true), ("cronjobs", "CronJob", true)],
    ),
];

/// Legacy discovery documents (APIVersions, APIGroupList, APIResourceList).
fn discovery(path: &str, authority: &str) -> Option<Value> {
    let verbs = json!([
        "create", "delete", "get", "list", "patch", "update", "watch"
    ]);
    let resources = |gv: &str| {
        RESOURCES.iter().find(|(g, _)| *g == gv).map(|(g, rs)| {
            json!({
                "kind": "APIResourceList", "apiVersion": "v1", "groupVersion": g,
                "resources": rs.iter().map(|(plural, kind, namespaced)| json!({
                    "name": plural, "singularName": kind.to_lowercase(), "namespaced": namespaced,
                    "kind": kind, "verbs": verbs
                })).collect::<Vec<_>>()
            })
        })
    };
    match path {
        "/api" => Some(json!({
            "kind": "APIVersions", "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": authority}]
        })),
        "/apis" => Some(json!({
            "kind": "APIGroupList", "apiVersion": "v1",
            "groups": RESOURCES.iter().filter(|(g, _)| g.contains('/')).map(|(g, _)| {
                let (name, version) = g.split_once('/').unwrap_or((g, "v1"));
                json!({
                    "name": name,
                    "versions": [{"groupVersion": g, "version": version}],
                    "preferredVersion": {"groupVersion": g, "version": version}
                })
            }).collect::<Vec<_>>()
        })),
        "/api/v1" => resources("v1"),
        p => p
            .strip_prefix("/apis/")
            .filter(|gv| gv.matches('/').count() == 1)
            .and_then(resources),
    }
}

impl FakeKube {
    /// Starts the server on 127.0.0.1 and a free port, in a thread of its own.
    pub fn start() -> FakeKube {
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            changed: tokio::sync::watch::Sender::new(0),
        });
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
        listener
            .set_nonblocking(true)
            .unwrap_or_else(|e| panic!("{e}"));
        let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let sh = shared.clone();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap_or_else(|e| panic!("{e}"));
            rt.block_on(async move {
                let listener =
                    tokio::net::TcpListener::from_std(listener).unwrap_or_else(|e| panic!("{e}"));
                let pf = sh.clone();
                let ex = sh.clone();
                let app = axum::Router::new()
                    .route(
                        "/api/v1/namespaces/{ns}/pods/{name}/portforward",
                        axum::routing::any(move |p, q, ws| portforward(pf.clone(), p, q, ws)),
                    )
                    .route(
                        "/api/v1/namespaces/{ns}/pods/{name}/exec",
                        axum::routing::any(move |p, q, ws| exec(ex.clone(), p, q, ws)),
                    )
                    .fallback(
                        move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
                            handle(sh.clone(), method, uri, headers, body)
                        },
                    );
                // Every connection without Nagle's delay, as the real API server's (Go sets
                // TCP_NODELAY by default): a small frame after another (an exec's status, then
                // its close) would otherwise wait for the client's delayed ACK, 40 ms.
                let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
                    let _ = tcp.set_nodelay(true);
                });
                // No graceful shutdown: open watches and followed logs would hold it up.
                tokio::select! {
                    _ = axum::serve(listener, app) => {}
                    _ = rx => {}
                }
            });
            rt.shutdown_timeout(Duration::from_millis(100));
        });
        FakeKube {
            addr,
            shared,
            stop: Some(tx),
            thread: Some(thread),
        }
    }

    /// From now on, play the Deployment controller and kubelet: every applied Deployment
    /// rolls out at once, its pods running and ready. Tests about readiness leave this off
    /// and write pods and status themselves.
    pub fn auto_rollout(&self) -> &FakeKube {
        self.shared.lock().auto_rollout = true;
        self
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// From now on, `pods/NAME/exec` works, each container's files under `root`.
    pub fn exec_into(&self, root: &std::path::Path) -> &FakeKube {
        self.shared.lock().exec_root = Some(root.to_path_buf());
        self
    }

    /// From now on, exec speaks only the v4 subprotocol (no close signal for stdin).
    pub fn exec_v4_only(&self) -> &FakeKube {
        self.shared.lock().exec_v4_only = true;
        self
    }

    /// The directory that stands for a container's filesystem.
    pub fn container_dir(&self, ns: &str, pod: &str, container: &str) -> std::path::PathBuf {
        let root = self.shared.lock().exec_root.clone().unwrap_or_default();
        root.join(ns).join(pod).join(container)
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.shared.lock().requests.clone()
    }

    /// Requests that change something (everything but GET).
    pub fn writes(&self) -> Vec<Recorded> {
        self.requests()
            .into_iter()
            .filter(|r| r.method != "GET")
            .collect()
    }

    pub fn object(&self, path: &str) -> Option<Value> {
        self.shared.lock().objects.get(path).cloned()
    }

    /// Paths of the stored objects under `prefix`.
    pub fn paths(&self, prefix: &str) -> Vec<String> {
        self.shared
            .lock()
            .objects
            .keys()
            .filter(|p| p.starts_with(prefix))
            .cloned()
            .collect()
    }

    /// Creates or replaces the object at `path`, as a controller would (watches see it).
    pub fn insert(&self, path: &str, obj: Value) {
        let rv = self.shared.lock().commit(path, Some(obj));
        self.shared.notify(rv);
    }

    /// Changes the stored object at `path` in place (watches see a MODIFIED event).
    /// Returns false when there is no such object.
    pub fn modify(&self, path: &str, f: impl FnOnce(&mut Value)) -> bool {
        let mut st = self.shared.lock();
        let Some(mut obj) = st.objects.get(path).cloned() else {
            return false;
        };
        f(&mut obj);
        let rv = st.commit(path, Some(obj));
        drop(st);
        self.shared.notify(rv);
        true
    }

    /// Deletes the object at `path` (watches see a DELETED event).
    pub fn remove(&self, path: &str) {
        let rv = self.shared.lock().commit(path, None);
        self.shared.notify(rv);
    }

    /// Forgets the change history, as etcd compaction does: watches resuming from an
    /// older resourceVersion get `410 Expired` and must list again.
    pub fn compact(&self) {
        let mut st = self.shared.lock();
        st.history.clear();
        st.compacted = st.next_rv + 1;
        st.next_rv += 1;
        let rv = st.next_rv;
        drop(st);
        self.shared.notify(rv);
    }

    /// Appends a line to a container's log (`previous` for the last terminated instance).
    pub fn log(&self, ns: &str, pod: &str, container: &str, previous: bool, line: &str) {
        let mut st = self.shared.lock();
        st.log_clock += 1;
        let t = st.log_clock;
        let stamp = format!(
            "2026-01-01T{:02}:{:02}:{:02}.000000000Z",
            t / 3600 % 24,
            t / 60 % 60,
            t % 60
        );
        let key = format!(
            "{ns}/{pod}/{container}{}",
            if previous { "/previous" } else { "" }
        );
        st.logs
            .entry(key)
            .or_default()
            .push(format!("{stamp} {line}"));
        let rv = st.next_rv;
        drop(st);
        self.shared.notify(rv);
    }
}

impl Drop for FakeKube {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
