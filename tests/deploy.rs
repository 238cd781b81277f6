//! Readiness, dependency order and failure reasons through the real binary (`devenv up --ci`).
//!
//! The Kubernetes API is `common::fake_kube`, a fake server speaking the real wire protocol
//! (lists, watches with bookmarks and 410 Gone, pod logs); kube-rs is not mocked. The fake
//! runs no controllers: each test plays the Deployment controller and kubelet by writing pods,
//! workload status and Events, and sees devenv react through its watches. Minikube and the
//! Docker daemon are the fakes of tests/cluster.rs.

mod common;

use std::process::{Child, Output};
use std::time::{Duration, Instant};

use common::fake_kube::FakeKube;
use common::running::Running;
use common::world::World;
use common::{Project, stdout};
use serde_json::{Value, json};

/// Polls `cond` (for up to 30 s) while devenv runs; panics with `what` if it never holds.
fn wait_until(what: &str, child: &mut Child, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if cond() {
            return;
        }
        if let Ok(Some(status)) = child.try_wait() {
            let out = finish(child);
            panic!(
                "devenv exited ({status}) before {what}:\n{}\n{}",
                stdout(&out),
                common::stderr(&out)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let out = finish(child);
    panic!(
        "timed out waiting for {what}:\n{}\n{}",
        stdout(&out),
        common::stderr(&out)
    );
}

fn finish(child: &mut Child) -> Output {
    let mut out = String::new();
    let mut err = String::new();
    use std::io::Read;
    if let Some(mut s) = child.stdout.take() {
        let _ = s.read_to_string(&mut out);
    }
    if let Some(mut s) = child.stderr.take() {
        let _ = s.read_to_string(&mut err);
    }
    let status = child.wait().unwrap_or_else(|e| panic!("{e}"));
    Output {
        status,
        stdout: out.into_bytes(),
        stderr: err.into_bytes(),
    }
}

fn deployment_path(ns: &str, name: &str) -> String {
    format!("/apis/apps/v1/namespaces/{ns}/deployments/{name}")
}

fn pod_path(ns: &str, name: &str) -> String {
    format!("/api/v1/namespaces/{ns}/pods/{name}")
}

/// A pod of deployment `name` as the kubelet reports it, with `containers` statuses.
/// A pod of `deployment`'s current ReplicaSet (made as its controller would, with the
/// pod-template-hash the pod's name carries: `hello-abc-1` is of `hello-abc`).
fn pod(api: &FakeKube, ns: &str, deployment: &str, pod: &str, status: Value) {
    let d = api
        .object(&deployment_path(ns, deployment))
        .unwrap_or_else(|| panic!("no deployment {deployment}"));
    let hash = pod
        .strip_prefix(&format!("{deployment}-"))
        .and_then(|rest| rest.split('-').next())
        .unwrap_or("abc");
    let mut labels = d["spec"]["template"]["metadata"]["labels"].clone();
    labels["pod-template-hash"] = json!(hash);
    api.insert(
        &format!("/apis/apps/v1/namespaces/{ns}/replicasets/{deployment}-{hash}"),
        json!({"apiVersion": "apps/v1", "kind": "ReplicaSet",
               "metadata": {"name": format!("{deployment}-{hash}"), "namespace": ns, "labels": labels,
                   "annotations": {"deployment.kubernetes.io/revision": "1"},
                   "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment",
                       "name": deployment, "uid": d["metadata"]["uid"], "controller": true}]},
               "spec": {"selector": d["spec"]["selector"], "template": d["spec"]["template"]}}),
    );
    api.insert(
        &pod_path(ns, pod),
        json!({"apiVersion": "v1", "kind": "Pod",
               "metadata": {"name": pod, "namespace": ns, "labels": labels},
               "spec": d["spec"]["template"]["spec"],
               "status": status}),
    );
}

fn container(name: &str, ready: bool, state: Value, restarts: u32, last: Value) -> Value {
    json!({"name": name, "image": "hello:x", "imageID": "", "ready": ready,
           "restartCount": restarts, "state": state, "lastState": last})
}

fn running_pod(ready: bool) -> Value {
    json!({"phase": "Running",
           "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}],
           "containerStatuses": [container("hello", ready, json!({"running": {}}), 0, json!({}))]})
}

/// Sets a Deployment's status as its controller would.
fn deployment_status(api: &FakeKube, ns: &str, name: &str, updated: u32, available: u32) {
    api.modify(&deployment_path(ns, name), |d| {
        let generation = d["metadata"]["generation"].clone();
        d["status"] = json!({"observedGeneration": generation, "replicas": updated,
            "updatedReplicas": updated, "readyReplicas": available, "availableReplicas": available});
    });
}

/// The Deployment at `path` (named `name`) has exceeded its progress deadline.
fn past_deadline(api: &FakeKube, path: &str, name: &str) {
    api.modify(path, |d| {
        let generation = d["metadata"]["generation"].clone();
        d["status"] = json!({"observedGeneration": generation, "conditions": [{"type": "Progressing",
            "status": "False", "reason": "ProgressDeadlineExceeded",
            "message": format!("ReplicaSet \"{name}-7d9\" has timed out progressing.")}]});
    });
}

/// examples/hello with `up --ci` running and its Deployment applied (nothing else done).
fn hello_up(timeout: &str) -> (World, Child) {
    let w = hello(timeout);
    let mut child = w.spawn(&["up", "--ci"], &[]);
    let d = deployment_path("hello", "hello");
    wait_until("the deployment is applied", &mut child, || {
        w.api.object(&d).is_some()
    });
    (w, child)
}

/// examples/hello with a short readiness timeout.
fn hello(timeout: &str) -> World {
    let p = Project::example("hello");
    let cfg = p.read("devenv.toml");
    p.write(
        "devenv.toml",
        &format!("{cfg}readiness_timeout = \"{timeout}\"\n"),
    );
    World::new(p)
}

#[test]
fn up_waits_for_the_rollout_through_watches_and_reports_ready() {
    let (w, mut child) = hello_up("60s");
    let d = deployment_path("hello", "hello");
    // The controller sees the spec, the pod starts but is not ready yet.
    deployment_status(&w.api, "hello", "hello", 1, 0);
    pod(&w.api, "hello", "hello", "hello-abc-1", running_pod(false));
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        child.try_wait().ok().flatten().is_none(),
        "devenv must still be waiting"
    );
    // History is compacted meanwhile: a watch resuming from an old version gets 410 Gone.
    w.api.compact();
    pod(&w.api, "hello", "hello", "hello-abc-1", running_pod(true));
    deployment_status(&w.api, "hello", "hello", 1, 1);
    let out = finish(&mut child);
    let text = stdout(&out);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{text}\n{}",
        common::stderr(&out)
    );
    assert!(
        text.contains("waiting    hello: 0 of 1 updated replicas available"),
        "{text}"
    );
    assert!(
        text.contains("ready      hello (deployment/hello, "),
        "{text}"
    );
    assert!(text.contains("hello     deployment/hello  ready"), "{text}");
    // Watches, not polling: every read of the deployment is a list or a watch.
    let reqs = w.api.requests();
    let on_deployments: Vec<_> = reqs
        .iter()
        .filter(|r| r.method == "GET" && r.path == "/apis/apps/v1/namespaces/hello/deployments")
        .collect();
    assert!(
        on_deployments
            .iter()
            .any(|r| r.query.contains("watch=true")),
        "{on_deployments:?}"
    );
    assert!(
        on_deployments
            .iter()
            .all(|r| r.query.contains("fieldSelector=metadata.name%3Dhello")),
        "{on_deployments:?}"
    );
    // The object itself is read once by the wait (what the deploy left, so that a view from
    // before it is not taken for its outcome), never polled.
    assert!(
        reqs.iter()
            .filter(|r| r.method == "GET" && r.path == d)
            .count()
            <= 1,
        "no polling of the object itself"
    );
    assert!(
        reqs.iter()
            .any(|r| r.path == "/api/v1/namespaces/hello/pods"
                && r.query.contains("labelSelector=app%3Dhello")),
        "pods are watched by the deployment's selector"
    );
}

#[test]
fn an_image_that_is_not_in_the_cluster_fails_ci_at_once_with_the_hint() {
    let (w, mut child) = hello_up("60s");
    deployment_status(&w.api, "hello", "hello", 1, 0);
    pod(
        &w.api,
        "hello",
        "hello",
        "hello-abc-1",
        json!({"phase": "Pending", "containerStatuses": [container("hello", false,
            json!({"waiting": {"reason": "ErrImageNeverPull",
                "message": "Container image \"hello:devenv-0\" is not present with pull policy of Never"}}),
            0, json!({}))]}),
    );
    let out = finish(&mut child);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("failed     hello: deployment/hello in hello failed: ErrImageNeverPull (pod hello-abc-1, container hello): Container image \"hello:devenv-0\" is not present with pull policy of Never"),
        "{text}"
    );
    assert!(
        text.contains("hint: the image is not in the cluster's image store"),
        "{text}"
    );
    assert!(
        text.contains("hello     deployment/hello  failed"),
        "{text}"
    );
}

#[test]
fn a_crash_loop_shows_the_crashed_containers_last_log_lines() {
    let (w, mut child) = hello_up("60s");
    for line in [
        "starting hello",
        "Traceback (most recent call last):",
        "KeyError: 'DATABASE_URL'",
    ] {
        w.api.log("hello", "hello-abc-1", "hello", true, line);
    }
    deployment_status(&w.api, "hello", "hello", 1, 0);
    pod(
        &w.api,
        "hello",
        "hello",
        "hello-abc-1",
        json!({"phase": "Running", "containerStatuses": [container("hello", false,
            json!({"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 20s restarting failed container"}}),
            3, json!({"terminated": {"reason": "Error", "exitCode": 1}}))]}),
    );
    let out = finish(&mut child);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("CrashLoopBackOff (pod hello-abc-1, container hello): the container keeps exiting (3 restarts, last exit code 1)"),
        "{text}"
    );
    assert!(
        text.contains("  last log lines:\n    starting hello\n    Traceback (most recent call last):\n    KeyError: 'DATABASE_URL'"),
        "{text}"
    );
    assert!(
        w.api.requests().iter().any(
            |r| r.path == "/api/v1/namespaces/hello/pods/hello-abc-1/log"
                && r.query.contains("previous=true")
        ),
        "the previous instance's log is read"
    );
}

#[test]
fn a_failing_probe_is_shown_from_events_and_the_timeout_ends_the_wait() {
    let (w, mut child) = hello_up("2s");
    deployment_status(&w.api, "hello", "hello", 1, 0);
    pod(&w.api, "hello", "hello", "hello-abc-1", running_pod(false));
    w.api.insert(
        "/api/v1/namespaces/hello/events/hello-abc-1.17f",
        json!({"apiVersion": "v1", "kind": "Event",
               "metadata": {"name": "hello-abc-1.17f", "namespace": "hello"},
               "involvedObject": {"kind": "Pod", "name": "hello-abc-1", "namespace": "hello"},
               "reason": "Unhealthy", "type": "Warning",
               "message": "Readiness probe failed: Get \"http://10.244.0.9:8080/healthz\": dial tcp 10.244.0.9:8080: connect: connection refused",
               // The kubelet's third failure in a row (one is a server's first second).
               "count": 3, "lastTimestamp": "2026-01-01T00:00:05Z"}),
    );
    let out = finish(&mut child);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("problem    hello: Unhealthy (pod hello-abc-1): Readiness probe failed: Get \"http://10.244.0.9:8080/healthz\""),
        "{text}"
    );
    assert!(
        text.contains(
            "failed     hello: deployment/hello in hello is not ready after 2s: Unhealthy"
        ),
        "{text}"
    );
    assert!(
        w.api
            .requests()
            .iter()
            .any(|r| r.path == "/api/v1/namespaces/hello/events"
                && r.query
                    .contains("fieldSelector=involvedObject.kind%3DPod%2Ctype%3DWarning")),
        "events are watched"
    );
}

/// Two resources from plain manifests: `web` depends on `api`.
fn two_tier() -> World {
    let p = Project::example("hello");
    let cfg = p.read("devenv.toml").replace(
        "[[resource]]\nname = \"hello\"\nworkload = \"deployment/hello\"\nimages = [\"hello\"]\nport_forwards = [\"8080:8080\"]\n",
        "[[resource]]\nname = \"web\"\nworkload = \"deployment/web\"\ndepends_on = [\"api\"]\nreadiness_timeout = \"60s\"\n\n[[resource]]\nname = \"api\"\nworkload = \"deployment/api\"\nimages = [\"hello\"]\nreadiness_timeout = \"60s\"\n",
    );
    p.write("devenv.toml", &cfg);
    let deployment = p.read("k8s/deployment.yaml");
    p.write(
        "k8s/deployment.yaml",
        &format!(
            "{}---\n{}---\napiVersion: v1\nkind: Service\nmetadata:\n  name: api\nspec:\n  selector:\n    app: api\n  ports:\n    - port: 8080\n",
            deployment.replace("hello", "api").replace("image: api", "image: hello"),
            deployment.replace("hello", "web").replace("image: web", "image: hello"),
        ),
    );
    World::new(p)
}

#[test]
fn a_resource_deploys_only_after_what_it_depends_on_is_ready() {
    let w = two_tier();
    let mut child = w.spawn(&["up", "--ci"], &[]);
    let (api, web) = (
        deployment_path("hello", "api"),
        deployment_path("hello", "web"),
    );
    wait_until("api is applied", &mut child, || {
        w.api.object(&api).is_some()
    });
    assert!(
        w.api
            .object("/api/v1/namespaces/hello/services/api")
            .is_some(),
        "objects that are no resource's workload go first"
    );
    std::thread::sleep(Duration::from_millis(300));
    assert!(w.api.object(&web).is_none(), "web waits for api");
    pod(&w.api, "hello", "api", "api-1", running_pod(true));
    deployment_status(&w.api, "hello", "api", 1, 1);
    wait_until("web is applied", &mut child, || {
        w.api.object(&web).is_some()
    });
    pod(&w.api, "hello", "web", "web-1", running_pod(true));
    deployment_status(&w.api, "hello", "web", 1, 1);
    let out = finish(&mut child);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    let api_ready = text.find("ready      api").unwrap_or(usize::MAX);
    let web_applied = text.find("applied    Deployment/web").unwrap_or(0);
    assert!(api_ready < web_applied, "{text}");
}

#[test]
fn a_dependent_of_a_failed_resource_is_not_deployed() {
    let w = two_tier();
    let mut child = w.spawn(&["up", "--ci"], &[]);
    let api = deployment_path("hello", "api");
    wait_until("api is applied", &mut child, || {
        w.api.object(&api).is_some()
    });
    past_deadline(&w.api, &api, "api");
    let out = finish(&mut child);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("skipped    web: not started: `api` failed"),
        "{text}"
    );
    assert!(
        text.contains("web: not deployed, because `api` failed"),
        "{text}"
    );
    assert!(w.api.object(&deployment_path("hello", "web")).is_none());
}

/// Sends `msg` through the forward and returns what came back.
fn through_forward(port: u16, msg: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap_or_else(|e| panic!("{e}"));
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap_or_else(|e| panic!("{e}"));
    s.write_all(msg.as_bytes())
        .unwrap_or_else(|e| panic!("{e}"));
    let mut buf = [0u8; 256];
    let n = s.read(&mut buf).unwrap_or_else(|e| panic!("{e}"));
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

#[test]
fn forwards_follow_the_pod_logs_stream_and_sigterm_stops_cleanly() {
    let p = Project::example("hello");
    let port = common::free_port();
    let cfg = p.read("devenv.toml").replace(
        "port_forwards = [\"8080:8080\"]",
        &format!("port_forwards = [\"{port}:8080\"]"),
    );
    p.write("devenv.toml", &cfg);
    let deployment = p.read("k8s/deployment.yaml");
    p.write(
        "k8s/deployment.yaml",
        &format!("{deployment}---\napiVersion: v1\nkind: Service\nmetadata:\n  name: hello\nspec:\n  type: NodePort\n  selector:\n    app: hello\n  ports:\n    - port: 8080\n      nodePort: 30080\n"),
    );
    let w = World::new(p);
    w.api.auto_rollout();
    let mut up = Running::start(&w, &["up"]);
    up.wait_for("running    Ctrl-C stops devenv");
    // Said by the task that follows the pods, beside the readiness wait.
    up.wait_for(&format!(
        "forward    hello: http://127.0.0.1:{port} -> deployment/hello:8080"
    ));
    // The NodePort Service's address, as `minikube service --url` gives it (asked for
    // beside the readiness wait, so it may come after `running`).
    up.wait_for("url        hello: http://192.168.49.2:30080");
    // The forward reaches the running pod, through pods/portforward.
    assert_eq!(through_forward(port, "ping"), "hello-1-0:8080 ping");
    w.api
        .log("hello", "hello-1-0", "hello", false, "GET /healthz 200");
    up.wait_for("  hello | hello-1-0/hello GET /healthz 200");

    // The pod is replaced: the forward and the logs move to the new one by themselves. A
    // connection made while no pod is ready waits for one, instead of being closed at once
    // (issue 24 point 12: a connection at `up` was closed before readiness was confirmed).
    let old = pod_path("hello", "hello-1-0");
    let mut replacement = w.api.object(&old).unwrap_or_else(|| panic!("no pod"));
    replacement["metadata"]["name"] = json!("hello-2-0");
    replacement["metadata"]["uid"] = Value::Null;
    w.api.remove(&old);
    let early = std::thread::spawn(move || through_forward(port, "early"));
    // Time for the connection to reach devenv while no pod is there (it waits either way).
    std::thread::sleep(Duration::from_millis(300));
    w.api.insert(&pod_path("hello", "hello-2-0"), replacement);
    assert_eq!(
        early.join().unwrap_or_default(),
        "hello-2-0:8080 early",
        "served by the new pod once it is ready"
    );
    w.api
        .log("hello", "hello-2-0", "hello", false, "started again");
    up.wait_for("  hello | hello-2-0/hello started again");
    // The daemon's status counts the pods (the page shows them).
    let status = w.run(&["status", "--json"], &[]);
    let v: Value = serde_json::from_slice(&status.stdout).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(v["resources"][0]["name"], "hello");
    assert_eq!(v["resources"][0]["pods"]["ready"], 1, "{v}");
    assert_eq!(v["resources"][0]["pods"]["total"], 1, "{v}");
    // Where it is reached, in the engine's state for the page and the API, not only in the
    // terminal (issue 26 point 3).
    assert_eq!(
        v["resources"][0]["urls"],
        json!([
            format!("http://127.0.0.1:{port}"),
            "http://192.168.49.2:30080"
        ]),
        "{v}"
    );
    assert_eq!(through_forward(port, "pong"), "hello-2-0:8080 pong");
    assert!(w.api.requests().iter().any(|r| r.path
        == "/api/v1/namespaces/hello/pods/hello-2-0/portforward"
        && r.query.contains("ports=8080")));

    // SIGTERM: devenv stops at once and says what it leaves running.
    let stopped_at = Instant::now();
    up.signal(libc::SIGTERM);
    let status = up.child.wait().unwrap_or_else(|e| panic!("{e}"));
    assert!(stopped_at.elapsed() < Duration::from_secs(10));
    assert_eq!(status.code(), Some(0), "{}", up.text());
    std::thread::sleep(Duration::from_millis(100));
    assert!(
        up.text()
            .contains("stopping   watchers, commands, port-forwards and log streams closed"),
        "{}",
        up.text()
    );
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "the forward is closed"
    );
    assert!(w.api.object(&deployment_path("hello", "hello")).is_some());
}

#[test]
fn a_busy_forward_port_is_a_clear_error() {
    let p = Project::example("hello");
    let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
    let port = held
        .local_addr()
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("{e}"));
    let cfg = p.read("devenv.toml").replace(
        "port_forwards = [\"8080:8080\"]",
        &format!("port_forwards = [\"{port}:8080\"]"),
    );
    p.write("devenv.toml", &cfg);
    let w = World::new(p);
    w.api.auto_rollout();
    let out = w.run(&["up"], &[]);
    let err = common::stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains(&format!("127.0.0.1:{port}")), "{err}");
    drop(held);
}

/// Issue 14 point 4: one `helm upgrade` creates both workloads of examples/todo, so
/// `depends_on = ["backend"]` cannot hold the frontend back. When the backend fails, the
/// `--ci` summary says what the cluster holds (the frontend is ready) instead of "not
/// deployed", and there is one helm upgrade, not two. (Fake API server; the helm stand-in
/// renders with the real helm and applies with the real kubectl.)
#[test]
fn a_dependent_in_the_same_helm_release_is_reported_as_the_cluster_runs_it() {
    let p = Project::example("todo");
    p.write(".env", "SECRET_KEY=x\nDATABASE_URL=y\n");
    let cfg = p.read("devenv.toml").replace(
        "port_forwards = [\"3000:3000\"]\n",
        "port_forwards = [\"3000:3000\"]\ndepends_on = [\"backend\"]\n",
    );
    assert!(cfg.contains("depends_on = [\"backend\"]"), "{cfg}");
    p.write("devenv.toml", &cfg);
    let w = World::new(p);
    w.profile("running", 4, 8192);
    w.fake_helm();
    let mut child = w.spawn(&["up", "--ci"], &[]);
    let (backend, frontend) = (
        deployment_path("todo", "todo-backend"),
        deployment_path("todo", "todo-frontend"),
    );
    wait_until("the release is applied", &mut child, || {
        w.api.object(&backend).is_some() && w.api.object(&frontend).is_some()
    });
    pod(
        &w.api,
        "todo",
        "todo-frontend",
        "frontend-1",
        running_pod(true),
    );
    deployment_status(&w.api, "todo", "todo-frontend", 1, 1);
    past_deadline(&w.api, &backend, "todo-backend");
    let out = finish(&mut child);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("backend   deployment/todo-backend   failed"),
        "{text}"
    );
    assert!(
        text.contains("frontend  deployment/todo-frontend  ready"),
        "{text}"
    );
    assert!(!text.contains("not deployed"), "{text}");
    let upgrades = w
        .helm_calls()
        .iter()
        .filter(|c| c.starts_with("upgrade"))
        .count();
    assert_eq!(upgrades, 1, "{:?}", w.helm_calls());
}

/// Issue 25 point 8: when the bring-up failed on a Secret (a `.env` that cannot be parsed),
/// each resource said `not started: the cluster could not be brought up`; it names the part
/// that failed (since issue 28 item 18, the checks, which read the .env files before anything
/// is touched).
#[test]
fn a_secret_that_cannot_be_made_is_the_cause_each_resource_names() {
    let w = hello("60s");
    w.p.write(".env", "KEY=\"s3cr3tvalue\n");
    w.p.write(
        "devenv.toml",
        &format!(
            "{}\n[[secret]]\nname = \"settings\"\nenv_files = [\".env\"]\n",
            w.p.read("devenv.toml")
        ),
    );
    let out = w.run(&["up", "--ci"], &[]);
    let text = format!("{}{}", stdout(&out), common::stderr(&out));
    assert_eq!(out.status.code(), Some(1), "{text}");
    // An .env that does not parse is found by the checks, before anything is touched
    // (issue 28, item 18); the cause each resource names says so.
    assert!(
        text.contains("skipped    hello: not started: the checks of the chart, the manifests and the .env files did not pass"),
        "{text}"
    );
    assert!(
        text.contains(".env:1: the double quote that opens this line's value is never closed"),
        "{text}"
    );
    assert!(
        !text.contains("the cluster could not be brought up"),
        "{text}"
    );
    assert!(!text.contains("s3cr3tvalue"), "no value is shown:\n{text}");
}
