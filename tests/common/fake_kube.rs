//! A fake Kubernetes API server for tests; it is a fake, not a cluster.
//!
//! It speaks the real wire protocol for what devenv uses so far: `GET /version`, legacy API
//! discovery (`/api`, `/apis`, `/api/v1`, `/apis/GROUP/VERSION`, as kubectl reads it), and GET,
//! server-side-apply PATCH (`application/apply-patch+yaml`, with `fieldManager`) and DELETE
//! on single objects at their REST paths (`/api/v1/namespaces/NAME`,
//! `/api/v1/namespaces/NS/secrets/NAME`, `/apis/GROUP/VERSION/...`), with `Status` bodies
//! for 404s. It leaves out: lists, watches, strategic-merge and JSON patches, admission,
//! field ownership and conflicts, authentication. Every request is recorded for assertions.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub query: String,
    pub content_type: String,
    pub body: String,
}

#[derive(Default)]
struct State {
    objects: BTreeMap<String, Value>,
    requests: Vec<Recorded>,
    next_rv: u64,
}

pub struct FakeKube {
    pub addr: SocketAddr,
    state: Arc<Mutex<State>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

fn status(code: u16, reason: &str, message: String) -> Response {
    let body = json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {},
        "status": if code < 400 { "Success" } else { "Failure" },
        "message": message, "reason": reason, "code": code
    });
    (
        StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        axum::Json(body),
    )
        .into_response()
}

fn handle(
    state: &Mutex<State>,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &Bytes,
) -> Response {
    let path = uri.path().trim_end_matches('/').to_owned();
    let content_type = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let mut st = match state.lock() {
        Ok(s) => s,
        Err(p) => p.into_inner(),
    };
    st.requests.push(Recorded {
        method: method.to_string(),
        path: path.clone(),
        query: uri.query().unwrap_or("").to_owned(),
        content_type: content_type.clone(),
        body: String::from_utf8_lossy(body).into_owned(),
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
    let name = path.rsplit('/').next().unwrap_or("").to_owned();
    let kind_plural = path.rsplit('/').nth(1).unwrap_or("").to_owned();
    match *method {
        Method::GET => match st.objects.get(&path) {
            Some(o) => axum::Json(o.clone()).into_response(),
            None => status(
                404,
                "NotFound",
                format!("{kind_plural} \"{name}\" not found"),
            ),
        },
        Method::PATCH => {
            if content_type != "application/apply-patch+yaml" {
                return status(
                    415,
                    "UnsupportedMediaType",
                    format!("the fake only supports server-side apply, not {content_type}"),
                );
            }
            if !uri.query().unwrap_or("").contains("fieldManager=") {
                return status(
                    422,
                    "Invalid",
                    "fieldManager is required for apply patch".into(),
                );
            }
            let Ok(mut obj) = serde_json::from_slice::<Value>(body)
                .or_else(|_| serde_norway::from_slice::<Value>(body))
            else {
                return status(400, "BadRequest", "body is neither JSON nor YAML".into());
            };
            st.next_rv += 1;
            let rv = st.next_rv.to_string();
            let created = !st.objects.contains_key(&path);
            let uid = st
                .objects
                .get(&path)
                .and_then(|o| o["metadata"]["uid"].as_str().map(str::to_owned))
                .unwrap_or_else(|| format!("uid-{rv}"));
            obj["metadata"]["resourceVersion"] = json!(rv);
            obj["metadata"]["uid"] = json!(uid);
            obj["metadata"]["creationTimestamp"] = json!("2026-01-01T00:00:00Z");
            st.objects.insert(path, obj.clone());
            (
                if created {
                    StatusCode::CREATED
                } else {
                    StatusCode::OK
                },
                axum::Json(obj),
            )
                .into_response()
        }
        Method::DELETE => match st.objects.remove(&path) {
            Some(_) => status(200, "", format!("{kind_plural} \"{name}\" deleted")),
            None => status(
                404,
                "NotFound",
                format!("{kind_plural} \"{name}\" not found"),
            ),
        },
        _ => status(
            405,
            "MethodNotAllowed",
            format!("{method} is not supported by the fake"),
        ),
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
        let state = Arc::new(Mutex::new(State::default()));
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
        listener
            .set_nonblocking(true)
            .unwrap_or_else(|e| panic!("{e}"));
        let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let st = state.clone();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap_or_else(|e| panic!("{e}"));
            rt.block_on(async move {
                let listener =
                    tokio::net::TcpListener::from_std(listener).unwrap_or_else(|e| panic!("{e}"));
                let app = axum::Router::new().fallback(
                    move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
                        let st = st.clone();
                        async move { handle(&st, &method, &uri, &headers, &body) }
                    },
                );
                let _ = axum::serve(listener, app)
                    .with_graceful_shutdown(async {
                        let _ = rx.await;
                    })
                    .await;
            });
        });
        FakeKube {
            addr,
            state,
            stop: Some(tx),
            thread: Some(thread),
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.state
            .lock()
            .map(|s| s.requests.clone())
            .unwrap_or_default()
    }

    /// Requests that change something (everything but GET).
    pub fn writes(&self) -> Vec<Recorded> {
        self.requests()
            .into_iter()
            .filter(|r| r.method != "GET")
            .collect()
    }

    pub fn object(&self, path: &str) -> Option<Value> {
        self.state
            .lock()
            .ok()
            .and_then(|s| s.objects.get(path).cloned())
    }

    pub fn insert(&self, path: &str, obj: Value) {
        if let Ok(mut s) = self.state.lock() {
            s.objects.insert(path.to_owned(), obj);
        }
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
