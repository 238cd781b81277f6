//! The API over real HTTP on 127.0.0.1, through the same client the CLI uses: every
//! endpoint, SSE with reconnection, and the refusals with their status codes.

use super::client::{self, SseEvent};
use super::*;
use crate::engine::driver;
use crate::engine::state::{Graph, Node, State};

struct Server {
    port: u16,
    token: String,
    snaps: watch::Sender<Snapshot>,
    state: State,
    events: mpsc::UnboundedReceiver<Event>,
    logs: Logs,
    _rt: tokio::runtime::Runtime,
}

fn server() -> Server {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    let state = State::new(Graph {
        images: vec!["api".into()],
        resources: vec![
            Node {
                name: "backend".into(),
                images: vec!["api".into()],
                depends_on: vec![],
                manual: false,
                local: false,
                release: None,
            },
            Node {
                name: "tests".into(),
                images: vec![],
                depends_on: vec![],
                manual: true,
                local: true,
                release: None,
            },
        ],
        ..Graph::default()
    });
    // The pods are engine state, fed by an event like any other.
    let mut state = state;
    state.reduce(
        std::time::Duration::ZERO,
        Event::Pods {
            resource: "backend".into(),
            pods: crate::engine::state::Pods {
                ready: 1,
                total: 2,
                restarts: 3,
            },
            names: Some(vec![
                "backend-7d9f-abcde".into(),
                "backend-7d9f-fghij".into(),
            ]),
        },
    );
    let (snaps, rx) = watch::channel(driver::initial(&state));
    let (tx, events) = mpsc::unbounded_channel();
    let logs = Logs::new(1 << 20);
    let token = new_token();
    let listener = rt
        .block_on(listen(0, std::path::Path::new("/proc")))
        .unwrap_or_else(|e| panic!("{e}"));
    let port = listener.local_addr().map(|a| a.port()).unwrap_or(0);
    let info = |name: &str, kind: &str| ResourceInfo {
        name: name.into(),
        kind: kind.into(),
        workload: None,
        namespace: None,
        images: if kind == "cluster" {
            vec!["api".into()]
        } else {
            vec![]
        },
        port_forwards: vec!["8000:8000".into()],
        links: vec![],
        manual: kind == "local",
    };
    let shared = Shared {
        snapshots: rx,
        logs: logs.clone(),
        events: tx,
        header: Header {
            project: "todo".into(),
            config: "devenv.toml".into(),
            provider: "minikube".into(),
            profile: Some("minikube".into()),
            context: Some("minikube".into()),
            cpus: Some(4),
            memory_mb: Some(8192),
        },
        resources: watch::channel(vec![info("backend", "cluster"), info("tests", "local")]).1,
        doctor: tokio::sync::watch::channel(
            serde_json::json!({"summary": {"ok": 9, "warn": 1, "fail": 0, "skipped": 2}}),
        )
        .1,
        token: token.clone(),
        session: new_token(),
        port,
        streams: Streams::default(),
    };
    rt.spawn(serve(listener, shared));
    Server {
        port,
        token,
        snaps,
        state,
        events,
        logs,
        _rt: rt,
    }
}

impl Server {
    fn publish(&mut self, ev: Event, seq: u64) {
        self.state.reduce(Duration::from_millis(seq * 10), ev);
        self.snaps.send_replace(Snapshot {
            seq,
            at_ms: seq * 10,
            state: self.state.clone(),
        });
    }

    fn get(&self, path: &str, headers: &[(&str, &str)]) -> client::Response {
        client::request(self.port, "GET", path, headers).unwrap_or_else(|e| panic!("{e}"))
    }

    fn post(&self, path: &str, headers: &[(&str, &str)]) -> client::Response {
        client::request(self.port, "POST", path, headers).unwrap_or_else(|e| panic!("{e}"))
    }
}

fn json(r: &client::Response) -> serde_json::Value {
    serde_json::from_str(&r.body).unwrap_or_else(|e| panic!("{e}: {}", r.body))
}

#[test]
fn status_lists_every_resource_with_stable_fields() {
    let mut s = server();
    s.publish(Event::Start, 1);
    let r = s.get("/api/status", &[]);
    assert_eq!(r.status, 200, "{}", r.body);
    let v = json(&r);
    assert_eq!(v["header"]["project"], "todo");
    assert_eq!(v["header"]["cpus"], 4);
    assert_eq!(v["seq"], 1);
    let backend = &v["resources"][0];
    assert_eq!(backend["name"], "backend");
    assert_eq!(backend["kind"], "cluster");
    assert_eq!(backend["status"], "building");
    assert_eq!(backend["port_forwards"][0], "8000:8000");
    assert!(backend["last_deploy_at_ms"].is_null());
    assert_eq!(
        backend["pods"],
        serde_json::json!({"ready": 1, "total": 2, "restarts": 3})
    );
    assert_eq!(
        backend["pod_names"],
        serde_json::json!(["backend-7d9f-abcde", "backend-7d9f-fghij"])
    );
    assert_eq!(v["resources"][1]["status"], "pending");
    assert!(v["resources"][1]["pods"].is_null());
    assert_eq!(v["images"]["api"]["build_started_ms"], 10);
    // A build in flight and a wanted one are values in the engine; the API shows the
    // generation and whether one is wanted.
    assert_eq!(v["images"]["api"]["building"], 1);
    assert_eq!(v["images"]["api"]["queued"], false);
    assert!(v["images"]["api"]["syncing"].is_null());
    // The history (empty until something ends) and when it last took a change.
    s.publish(
        Event::BuildDone {
            image: "api".into(),
            generation: 1,
            result: Err("step 2 failed".into()),
        },
        2,
    );
    let v = json(&s.get("/api/status", &[]));
    let backend = &v["resources"][0];
    assert_eq!(
        backend["history"],
        serde_json::json!([{"kind": "build", "image": "api", "trigger": "first start",
            "started_ms": 10, "took_ms": 10, "error": "step 2 failed"}])
    );
    assert!(backend["updated_at_ms"].is_null());
    assert_eq!(v["steps"][0]["name"], "doctor");
    assert_eq!(v["steps"][1]["name"], "cluster");
    assert_eq!(v["steps"][1]["notes"], serde_json::json!([]));
}

#[test]
fn the_doctor_report_and_the_page_are_served() {
    let s = server();
    assert_eq!(json(&s.get("/api/doctor", &[]))["summary"]["ok"], 9);
    let page = s.get("/", &[]);
    assert_eq!(page.status, 200);
    assert!(
        !page.body.contains(&s.token),
        "the page carries no credential: another local user can fetch it"
    );
    assert!(!page.body.contains("https://"), "no CDN");
    // The page stays small: its HTML, CSS and script together.
    let size = INDEX.len() + APP_JS.len() + STYLE.len();
    assert!(size < 60 * 1024, "the page is {size} bytes");
    assert_eq!(s.get("/app.js", &[]).status, 200);
    assert_eq!(s.get("/style.css", &[]).status, 200);
    assert_eq!(s.get("/api/logs/nope", &[]).status, 404);
}

#[test]
fn a_foreign_host_is_refused_everywhere() {
    let s = server();
    for path in ["/", "/api/status", "/api/doctor"] {
        let r = s.get(path, &[("Host", "evil.example:80")]);
        assert_eq!(r.status, 421, "{path}: {}", r.body);
        assert!(!r.body.contains(&s.token));
    }
    // A rebinding page names its own host with our port: still refused.
    let r = s.get("/", &[("Host", &format!("attacker.test:{}", s.port))]);
    assert_eq!(r.status, 421);
    let ok = s.get("/api/status", &[("Host", &format!("localhost:{}", s.port))]);
    assert_eq!(ok.status, 200);
}

#[test]
fn a_trigger_needs_the_token_and_the_page_s_origin() {
    let mut s = server();
    let path = "/api/trigger/tests";
    assert_eq!(s.post(path, &[]).status, 401, "no token");
    assert_eq!(s.post(path, &[(TOKEN_HEADER, "wrong")]).status, 401);
    let cross = s.post(
        path,
        &[(TOKEN_HEADER, &s.token), ("Origin", "https://evil.example")],
    );
    assert_eq!(cross.status, 403, "{}", cross.body);
    assert!(s.events.try_recv().is_err(), "nothing reached the engine");
    let origin = format!("http://127.0.0.1:{}", s.port);
    let ok = s.post(path, &[(TOKEN_HEADER, &s.token), ("Origin", &origin)]);
    assert_eq!(ok.status, 202, "{}", ok.body);
    assert_eq!(json(&ok)["triggered"], "tests");
    assert_eq!(
        s.events.try_recv().ok(),
        Some(Event::Trigger {
            resource: "tests".into()
        })
    );
    // The CLI sends no Origin, only the token.
    assert_eq!(s.post(path, &[(TOKEN_HEADER, &s.token)]).status, 202);
    assert_eq!(
        s.post("/api/trigger/nope", &[(TOKEN_HEADER, &s.token)])
            .status,
        404
    );
}

/// Issue 16, point 6: the token is never served to whoever asks. The sign-in address trades
/// it for an HttpOnly, SameSite=Strict session cookie (and leaves the address bar); a
/// trigger is signed by that cookie or by the token header, never by a fetch of the page.
#[test]
fn the_page_signs_in_with_a_cookie_and_never_serves_a_credential() {
    let mut s = server();
    assert_eq!(s.get("/?token=wrong", &[]).status, 401);
    let signed = s.get(&format!("/?token={}", s.token), &[]);
    assert_eq!(signed.status, 303, "{}", signed.body);
    assert_eq!(signed.location.as_deref(), Some("/"));
    let cookie = signed
        .set_cookie
        .clone()
        .unwrap_or_else(|| panic!("no cookie"));
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    assert!(
        !cookie.contains(&s.token),
        "the cookie is a session of its own: {cookie}"
    );
    let pair = cookie.split(';').next().unwrap_or_default().to_owned();
    let origin = format!("http://127.0.0.1:{}", s.port);
    let path = "/api/trigger/tests";
    let page = s.get("/", &[("Cookie", &pair)]);
    assert!(!page.body.contains(&s.token));
    assert!(!page.body.contains(pair.split('=').nth(1).unwrap_or("-")));
    let ok = s.post(path, &[("Cookie", &pair), ("Origin", &origin)]);
    assert_eq!(ok.status, 202, "{}", ok.body);
    assert!(s.events.try_recv().is_ok());
    let name = pair.split('=').next().unwrap_or_default();
    let wrong = format!("{name}=guess");
    assert_eq!(
        s.post(path, &[("Cookie", &wrong), ("Origin", &origin)])
            .status,
        401
    );
    let cross = s.post(
        path,
        &[("Cookie", &pair), ("Origin", "https://evil.example")],
    );
    assert_eq!(cross.status, 403);
    assert!(
        s.events.try_recv().is_err(),
        "nothing else reached the engine"
    );
}

/// Reads events until `n` arrived.
fn take_events(port: u16, path: &str, headers: &[(&str, &str)], n: usize) -> Vec<SseEvent> {
    let mut got = Vec::new();
    let status = client::events(port, path, headers, |e| {
        got.push(e);
        got.len() < n
    })
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(status, 200);
    got
}

#[test]
fn events_send_a_snapshot_on_connect_then_every_change_and_resume_on_reconnect() {
    let mut s = server();
    let port = s.port;
    let reader = std::thread::spawn(move || take_events(port, "/api/events", &[], 3));
    std::thread::sleep(Duration::from_millis(300));
    s.publish(Event::Start, 1);
    std::thread::sleep(Duration::from_millis(100));
    s.publish(
        Event::BuildDone {
            image: "api".into(),
            generation: 1,
            result: Ok("api:devenv-1".into()),
        },
        2,
    );
    let got = reader.join().unwrap_or_else(|_| panic!("reader panicked"));
    let ids: Vec<Option<&str>> = got.iter().map(|e| e.id.as_deref()).collect();
    assert_eq!(ids, [Some("0"), Some("1"), Some("2")]);
    assert!(got.iter().all(|e| e.event == "status"));
    let last: serde_json::Value =
        serde_json::from_str(&got[2].data).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(last["resources"][0]["status"], "deploying");
    // A client that reconnects (EventSource sends Last-Event-ID) is told where things are now.
    let again = take_events(port, "/api/events", &[("Last-Event-ID", "1")], 1);
    assert_eq!(again[0].id.as_deref(), Some("2"));
}

#[test]
fn logs_give_the_tail_then_follow_and_resume_after_the_last_seen_line() {
    let s = server();
    for i in 0..5 {
        s.logs.push("backend", "pod/app", &format!("line {i}"));
    }
    let texts = |evs: &[SseEvent]| -> Vec<String> {
        evs.iter()
            .map(|e| {
                let v: serde_json::Value =
                    serde_json::from_str(&e.data).unwrap_or_else(|err| panic!("{err}"));
                v["text"].as_str().unwrap_or_default().to_owned()
            })
            .collect()
    };
    let tail = take_events(s.port, "/api/logs/backend?tail=2", &[], 10);
    assert_eq!(texts(&tail), ["line 3", "line 4"]);
    assert_eq!(tail[1].id.as_deref(), Some("4"));

    let port = s.port;
    let follower =
        std::thread::spawn(move || take_events(port, "/api/logs/backend?tail=1&follow=1", &[], 3));
    std::thread::sleep(Duration::from_millis(300));
    s.logs.push("backend", "build", "line 5");
    s.logs.push("backend", "build", "line 6");
    let followed = follower
        .join()
        .unwrap_or_else(|_| panic!("follower panicked"));
    assert_eq!(texts(&followed), ["line 4", "line 5", "line 6"]);

    let resumed = take_events(
        s.port,
        "/api/logs/backend?follow=1",
        &[("Last-Event-ID", "5")],
        1,
    );
    assert_eq!(texts(&resumed), ["line 6"]);
}

#[test]
fn all_logs_interleave_resources_in_order_follow_and_resume() {
    let s = server();
    s.logs.push("backend", "build", "b0");
    s.logs.push("tests", "cmd", "t0");
    s.logs.push("backend", "pod/app", "b1");
    s.logs.push("tests", "cmd", "t1");
    let lines = |evs: &[SseEvent]| -> Vec<String> {
        evs.iter()
            .map(|e| {
                let v: serde_json::Value =
                    serde_json::from_str(&e.data).unwrap_or_else(|err| panic!("{err}"));
                format!(
                    "{} {} {} {}",
                    e.id.as_deref().unwrap_or("-"),
                    v["resource"].as_str().unwrap_or("-"),
                    v["source"].as_str().unwrap_or("-"),
                    v["text"].as_str().unwrap_or("-")
                )
            })
            .collect()
    };
    let all = take_events(s.port, "/api/logs", &[], 4);
    assert_eq!(
        lines(&all),
        [
            "0 backend build b0",
            "1 tests cmd t0",
            "2 backend pod/app b1",
            "3 tests cmd t1"
        ]
    );
    let tail = take_events(s.port, "/api/logs?tail=3", &[], 3);
    assert_eq!(lines(&tail)[0], "1 tests cmd t0");
    // Following from where a reader was (Last-Event-ID): whatever comes, from any resource,
    // in order; the reader is woken by the lines, not by a timer.
    let port = s.port;
    let follower = std::thread::spawn(move || {
        take_events(port, "/api/logs?follow=1", &[("Last-Event-ID", "2")], 4)
    });
    s.logs.push("tests", "cmd", "t2");
    s.logs.push("backend", "pod/app", "b2");
    s.logs.push("backend", "pod/app", "b3");
    let followed = follower
        .join()
        .unwrap_or_else(|_| panic!("follower panicked"));
    assert_eq!(
        lines(&followed),
        [
            "3 tests cmd t1",
            "4 tests cmd t2",
            "5 backend pod/app b2",
            "6 backend pod/app b3"
        ]
    );
    // The per-resource stream keeps numbering within the resource.
    let one = take_events(s.port, "/api/logs/backend?tail=1", &[], 1);
    assert_eq!(lines(&one), ["3 - pod/app b3"]);
}

/// Issue 28, item 13: 256 open SSE streams from any local user shut out `devenv status`,
/// `trigger` and the page (status failed after 32 s). Streams are capped per kind (the
/// page's events, log followers) well below the connection limit: one past its kind's cap
/// is refused at once with a 503 that says why, and the API's short requests are served
/// whatever the streams hold.
#[test]
fn open_streams_are_capped_per_kind_and_never_shut_out_status_or_trigger() {
    use std::io::{Read as _, Write as _};
    let s = server();
    let open = |path: &str| -> (std::net::TcpStream, String) {
        let mut c =
            std::net::TcpStream::connect(("127.0.0.1", s.port)).unwrap_or_else(|e| panic!("{e}"));
        write!(
            c,
            "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\n\r\n",
            s.port
        )
        .unwrap_or_else(|e| panic!("{e}"));
        c.set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap_or_else(|e| panic!("{e}"));
        let mut head = [0u8; 512];
        let n = c.read(&mut head).unwrap_or(0);
        (c, String::from_utf8_lossy(&head[..n]).into_owned())
    };
    let mut held = Vec::new();
    let mut refused = 0;
    for i in 0..256 {
        let path = if i % 2 == 0 {
            "/api/events"
        } else {
            "/api/logs?follow=1"
        };
        let (c, head) = open(path);
        if head.starts_with("HTTP/1.1 200") {
            held.push(c);
        } else {
            assert!(head.starts_with("HTTP/1.1 503"), "{head}");
            assert!(head.contains("open streams"), "{head}");
            refused += 1;
        }
    }
    assert!(refused > 0, "no stream was refused");
    assert!(
        held.len() <= 2 * MAX_STREAMS_PER_KIND,
        "{} streams held",
        held.len()
    );
    let started = std::time::Instant::now();
    assert_eq!(s.get("/api/status", &[]).status, 200);
    let t = s.post(
        "/api/trigger/tests",
        &[(crate::web::TOKEN_HEADER, s.token.as_str())],
    );
    assert_eq!(t.status, 202, "{}", t.body);
    assert!(started.elapsed() < Duration::from_secs(5));
    // Closed streams free their places.
    drop(held);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (_c, head) = open("/api/events");
        if head.starts_with("HTTP/1.1 200") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{head}");
        std::thread::sleep(Duration::from_millis(50));
    }
}
