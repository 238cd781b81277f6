//! The status page and the daemon's API: the only user of axum.
//!
//! Owns what leaves the daemon over HTTP and who may ask. It binds 127.0.0.1 only. Every
//! request must name this server in its Host header (a DNS-rebinding page cannot). A request
//! that changes state must also come from the page's own origin, if it has an Origin, and
//! carry the daemon's token, so another site open in the same browser cannot drive devenv.
//! Must not change the engine's state except by sending it events; serves only what the
//! engine publishes, and no secret value is ever in it.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use axum::extract::{Path, Query, Request, State as AxState};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, watch};

pub mod client;

use crate::engine::driver::{Logs, Snapshot};
use crate::engine::log::ReadFrom;
use crate::engine::state::Event;
use crate::workers::ResourceInfo;

const INDEX: &str = include_str!("../../web/index.html");
const APP_JS: &str = include_str!("../../web/app.js");
const STYLE: &str = include_str!("../../web/style.css");

/// The header that carries the daemon's token.
pub const TOKEN_HEADER: &str = "x-devenv-token";

/// What the page's header shows about the project and its cluster.
#[derive(Debug, Clone, Serialize)]
pub struct Header {
    pub project: String,
    pub config: String,
    /// `minikube`, `existing`, or `none` for a local-only project.
    pub provider: String,
    pub profile: Option<String>,
    pub context: Option<String>,
    pub cpus: Option<u32>,
    pub memory_mb: Option<u64>,
}

/// Everything the server needs.
#[derive(Clone)]
pub struct Shared {
    pub snapshots: watch::Receiver<Snapshot>,
    pub logs: Logs,
    pub events: mpsc::UnboundedSender<Event>,
    pub header: Header,
    /// Every resource of the config now (a reload changes them).
    pub resources: watch::Receiver<Vec<ResourceInfo>>,
    /// The doctor report `up` ran, as JSON (null until it ran: the page starts first).
    pub doctor: watch::Receiver<serde_json::Value>,
    /// The daemon's token: the CLI sends it in [`TOKEN_HEADER`]; the sign-in address
    /// (`/?token=…`, printed in the terminal) trades it for the page's session cookie.
    pub token: String,
    /// The page's session secret, in an HttpOnly, SameSite=Strict cookie: never in the page,
    /// so another local user who can fetch the page cannot read it.
    pub session: String,
    pub port: u16,
    /// The long-lived streams open now, by kind.
    pub streams: Streams,
}

/// The most streams of one kind (the page's status events; log followers) open at once.
pub const MAX_STREAMS_PER_KIND: usize = 32;

/// The places for long-lived streams, each kind capped apart and well below the connection
/// limit: streams can never take the slots `devenv status`, `trigger` and the page's own
/// requests need, and one past its kind's cap is refused at once with a 503 that says why.
#[derive(Clone)]
pub struct Streams {
    events: std::sync::Arc<tokio::sync::Semaphore>,
    logs: std::sync::Arc<tokio::sync::Semaphore>,
    cap: usize,
}

impl Default for Streams {
    fn default() -> Streams {
        let cap = MAX_STREAMS_PER_KIND.min(connection_limit() / 4).max(1);
        Streams {
            events: std::sync::Arc::new(tokio::sync::Semaphore::new(cap)),
            logs: std::sync::Arc::new(tokio::sync::Semaphore::new(cap)),
            cap,
        }
    }
}

impl Streams {
    /// A place for a stream of `kind`, held until the stream ends; or the refusal.
    fn take(&self, kind: &str) -> Result<tokio::sync::OwnedSemaphorePermit, Box<Response>> {
        let slots = if kind == "events" {
            &self.events
        } else {
            &self.logs
        };
        slots.clone().try_acquire_owned().map_err(|_| {
            Box::new(refuse(
                StatusCode::SERVICE_UNAVAILABLE,
                &format!(
                    "too many open streams of {kind}: {} at once at most; close a page or a `devenv logs -f`, then try again",
                    self.cap
                ),
            ))
        })
    }
}

impl Shared {
    /// A page's shared state with a new token and session secret, its port not yet bound,
    /// and no stream open.
    pub fn new(
        snapshots: watch::Receiver<Snapshot>,
        logs: Logs,
        events: mpsc::UnboundedSender<Event>,
        header: Header,
        resources: watch::Receiver<Vec<ResourceInfo>>,
        doctor: watch::Receiver<serde_json::Value>,
    ) -> Shared {
        Shared {
            snapshots,
            logs,
            events,
            header,
            resources,
            doctor,
            token: new_token(),
            session: new_token(),
            port: 0,
            streams: Streams::default(),
        }
    }

    /// The name of this daemon's session cookie (cookies do not tell ports apart).
    fn cookie_name(&self) -> String {
        format!("devenv_session_{}", self.port)
    }

    /// Whether a request carries the session cookie.
    fn has_session(&self, headers: &HeaderMap) -> bool {
        let name = self.cookie_name();
        headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|c| c.trim().split_once('='))
            .any(|(k, v)| k == name && v == self.session)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum WebError {
    #[error("port {port} on 127.0.0.1 is taken{}", holder.as_ref().map_or(String::new(), |(pid, name)| format!(" by `{name}` (pid {pid})")))]
    Busy {
        port: u16,
        holder: Option<(u32, String)>,
    },
    #[error("cannot listen on 127.0.0.1:{port}: {source}")]
    Bind {
        port: u16,
        #[source]
        source: std::io::Error,
    },
}

impl WebError {
    pub fn hint(&self) -> String {
        match self {
            WebError::Busy { .. } => {
                "stop that process, or set another `[web] port` in devenv.toml".into()
            }
            WebError::Bind { .. } => "set another `[web] port` in devenv.toml".into(),
        }
    }
}

/// Binds the page's port on loopback.
pub async fn listen(
    port: u16,
    proc_root: &std::path::Path,
) -> Result<tokio::net::TcpListener, WebError> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    tokio::net::TcpListener::bind(addr).await.map_err(|e| {
        if e.kind() == std::io::ErrorKind::AddrInUse {
            WebError::Busy {
                port,
                holder: crate::host::port_holder(proc_root, port),
            }
        } else {
            WebError::Bind { port, source: e }
        }
    })
}

/// A fresh random token for this daemon.
pub fn new_token() -> String {
    let mut bytes = [0u8; 24];
    let seeded = std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut bytes));
    if seeded.is_err() {
        // No /dev/urandom: hash what differs between runs.
        let fallback = format!(
            "{}-{}-{}",
            std::process::id(),
            crate::engine::log::now_ms(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.subsec_nanos())
        );
        bytes.copy_from_slice(&blake3::hash(fallback.as_bytes()).as_bytes()[..24]);
    }
    blake3::hash(&bytes).to_hex()[..32].to_owned()
}

/// Serves until the task is aborted.
/// How long a client may take to send a request's headers, and how long a kept-alive
/// connection may sit idle before its next request: a connection that sends nothing is
/// closed, so idle clients cannot hold the server's slots.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(5);
/// The same when most slots are taken: idle connections make room sooner.
const BUSY_HEADER_TIMEOUT: Duration = Duration::from_secs(1);
/// The most a connection may buffer of a request (the API's requests are small).
const MAX_BUF: usize = 64 * 1024;
/// File descriptors kept for the dev loop whatever the page's clients do: its commands'
/// pipes, its watches, its cluster connections.
const FD_RESERVE: u64 = 128;
/// Connections served at once, at most (the page, `devenv status`/`logs`, SSE clients).
const MAX_CONNECTIONS: u64 = 256;

/// How many connections may be open at once: [`MAX_CONNECTIONS`], fewer when the process's
/// file descriptor limit leaves less than that beside [`FD_RESERVE`] (a limit of 256 gives
/// 64: the next file change can still start its command).
pub fn connection_limit() -> usize {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit(2) writes into the struct we own.
    let soft = if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } == 0 {
        lim.rlim_cur
    } else {
        1024
    };
    let usable = soft.saturating_sub(FD_RESERVE) / 2;
    usize::try_from(usable.clamp(8, MAX_CONNECTIONS)).unwrap_or(8)
}

/// Gives freed heap back to the system (glibc keeps it otherwise): after many connections
/// closed, the daemon's memory goes back to what it was.
fn trim_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim(3) only releases free memory at the top of glibc's heaps.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Serves the page and the API on `listener` until the task is dropped. At most
/// [`connection_limit`] connections are served at once (the rest wait in the kernel's
/// backlog, costing no descriptor); each must send its headers within [`HEADER_TIMEOUT`]
/// ([`BUSY_HEADER_TIMEOUT`] while three quarters of the slots are taken). Ends by itself
/// only when the listening socket cannot accept any more (it was closed or destroyed from
/// outside), saying why.
pub async fn serve(listener: tokio::net::TcpListener, shared: Shared) -> Result<(), String> {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let app = router(shared);
    let limit = connection_limit();
    let slots = std::sync::Arc::new(tokio::sync::Semaphore::new(limit));
    let open = std::sync::Arc::new(AtomicUsize::new(0));
    let peak = std::sync::Arc::new(AtomicUsize::new(0));
    loop {
        let Ok(permit) = slots.clone().acquire_owned().await else {
            return Ok(());
        };
        let stream = match listener.accept().await {
            Ok((s, _)) => s,
            Err(e) if listener_gone(&e) => {
                return Err(format!(
                    "its listening socket no longer accepts connections ({})",
                    e.kind()
                ));
            }
            Err(e) => {
                // Out of descriptors (or another passing failure): wait, never spin.
                tracing::debug!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        // Small writes (an event, a log line) go out at once, not after the client's ACK.
        let _ = stream.set_nodelay(true);
        let busy = slots.available_permits() < limit / 4;
        let service = hyper_util::service::TowerToHyperService::new(app.clone());
        let (open, peak) = (open.clone(), peak.clone());
        let now = open.fetch_add(1, Ordering::Relaxed) + 1;
        peak.fetch_max(now, Ordering::Relaxed);
        tokio::spawn(async move {
            let mut b = hyper::server::conn::http1::Builder::new();
            b.timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(if busy {
                    BUSY_HEADER_TIMEOUT
                } else {
                    HEADER_TIMEOUT
                })
                .max_buf_size(MAX_BUF);
            let conn = b.serve_connection(hyper_util::rt::TokioIo::new(stream), service);
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "connection ended");
            }
            drop(permit);
            // Most of many connections gone: their memory goes back too.
            let left = open.fetch_sub(1, Ordering::Relaxed) - 1;
            let was = peak.load(Ordering::Relaxed);
            if was > 16 && left * 2 < was {
                peak.store(left, Ordering::Relaxed);
                trim_heap();
            }
        });
    }
}

/// Whether an accept error means the listening socket itself is gone (closed, destroyed
/// with `ss -K`, not a socket), rather than a passing shortage (descriptors, memory) or a
/// connection that was aborted before it was taken.
fn listener_gone(e: &std::io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EINVAL | libc::EBADF | libc::ENOTSOCK | libc::EOPNOTSUPP)
    )
}

pub fn router(shared: Shared) -> Router {
    Router::new()
        .route("/", get(index))
        .route(
            "/app.js",
            get(|| async { asset("text/javascript", APP_JS) }),
        )
        .route("/style.css", get(|| async { asset("text/css", STYLE) }))
        .route("/api/status", get(status))
        .route("/api/events", get(events))
        .route("/api/logs", get(all_logs))
        .route("/api/logs/{resource}", get(logs))
        .route("/api/trigger/{resource}", post(trigger))
        .route("/api/doctor", get(doctor))
        .layer(middleware::from_fn_with_state(shared.clone(), guard))
        .with_state(shared)
}

fn asset(kind: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, kind),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

#[derive(Serialize)]
struct ApiError {
    error: String,
}

fn refuse(code: StatusCode, why: &str) -> Response {
    (
        code,
        Json(ApiError {
            error: why.to_owned(),
        }),
    )
        .into_response()
}

/// Whether `host` (a Host header) names this server: localhost or 127.0.0.1, on our port.
fn host_ok(host: &str, port: u16) -> bool {
    let (name, p) = match host.rsplit_once(':') {
        Some((n, p)) => (n, p.parse::<u16>().ok()),
        None => (host, None),
    };
    matches!(name, "127.0.0.1" | "localhost") && p == Some(port)
}

fn origin_ok(origin: &str, port: u16) -> bool {
    origin == format!("http://127.0.0.1:{port}") || origin == format!("http://localhost:{port}")
}

/// Host check on every request; Origin and token on anything that is not a read.
async fn guard(AxState(s): AxState<Shared>, req: Request, next: Next) -> Response {
    let headers = req.headers();
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    if !host_ok(host, s.port) {
        return refuse(
            StatusCode::MISDIRECTED_REQUEST,
            "this server answers only to 127.0.0.1 or localhost on its own port",
        );
    }
    if !matches!(*req.method(), Method::GET | Method::HEAD) {
        if let Some(origin) = headers.get(header::ORIGIN) {
            let ok = origin.to_str().is_ok_and(|o| origin_ok(o, s.port));
            if !ok {
                return refuse(
                    StatusCode::FORBIDDEN,
                    "cross-origin requests may not change anything",
                );
            }
        }
        let token = headers.get(TOKEN_HEADER).and_then(|t| t.to_str().ok());
        if token != Some(s.token.as_str()) && !s.has_session(headers) {
            return refuse(
                StatusCode::UNAUTHORIZED,
                "not signed in: open the page through the address `devenv up` printed (it ends in ?token=…); `devenv trigger` sends the daemon's token itself",
            );
        }
    }
    next.run(req).await
}

#[derive(Deserialize)]
struct SignIn {
    token: Option<String>,
}

async fn index(AxState(s): AxState<Shared>, Query(q): Query<SignIn>) -> Response {
    // The sign-in address: the right token buys the session cookie, and the token leaves the
    // address bar at once. The page itself never carries a credential.
    if let Some(t) = q.token {
        if t != s.token {
            return refuse(
                StatusCode::UNAUTHORIZED,
                "a wrong token: use the address `devenv up` printed",
            );
        }
        let cookie = format!(
            "{}={}; HttpOnly; SameSite=Strict; Path=/",
            s.cookie_name(),
            s.session
        );
        let mut r = (StatusCode::SEE_OTHER, [(header::LOCATION, "/")]).into_response();
        if let Ok(v) = HeaderValue::from_str(&cookie) {
            r.headers_mut().insert(header::SET_COOKIE, v);
        }
        r.headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        return r;
    }
    let html = INDEX;
    let mut r = (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        html,
    )
        .into_response();
    r.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; connect-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
        ),
    );
    r
}

/// The JSON of `GET /api/status`.
#[derive(Serialize)]
pub struct Status {
    pub header: Header,
    pub seq: u64,
    pub at_ms: u64,
    pub resources: Vec<ResourceStatus>,
    pub images: serde_json::Value,
    /// The bring-up steps that gate the resources, in order (the engine's list: `doctor`,
    /// `cluster`), each with its name, status (`pending`, `running`, `done`, `failed`,
    /// `skipped`), message and notes.
    pub steps: Vec<NamedStep>,
    /// Why the last edit of the config (or a values file, the chart, a manifest) was not
    /// taken; the last good one runs on.
    pub config_error: Option<String>,
    /// What the session did that is no resource's: configs reloaded, objects pruned.
    pub notes: serde_json::Value,
    /// Parts of the session that stopped before `up` (the file watcher), and why.
    pub stopped_parts: std::collections::BTreeMap<String, String>,
}

#[derive(Serialize)]
pub struct ResourceStatus {
    #[serde(flatten)]
    pub info: ResourceInfo,
    #[serde(flatten)]
    pub state: serde_json::Value,
    /// Milliseconds of the last build of this resource's images, if any.
    pub build_ms: Option<u64>,
    /// What the last live update of its images did, since they were last built
    /// (`synced 3 files to 2 containers in 140 ms`), if any.
    pub last_sync: Option<String>,
}

/// A bring-up step with its name, as the status API lists it.
#[derive(Debug, Clone, Serialize)]
pub struct NamedStep {
    pub name: &'static str,
    #[serde(flatten)]
    pub step: crate::engine::state::Step,
}

fn status_of(s: &Shared) -> Status {
    let snap = s.snapshots.borrow().clone();
    let infos = s.resources.borrow().clone();
    let resources = infos
        .iter()
        .map(|info| {
            let state = snap
                .state
                .resources
                .get(&info.name)
                .and_then(|r| serde_json::to_value(r).ok())
                .unwrap_or(serde_json::Value::Null);
            let build_ms = info
                .images
                .iter()
                .filter_map(|i| snap.state.images.get(i))
                .filter_map(|i| i.last_build_took)
                .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
                .max();
            let last_sync = info
                .images
                .iter()
                .filter_map(|i| snap.state.images.get(i))
                .find_map(|i| i.last_sync.clone());
            ResourceStatus {
                info: info.clone(),
                state,
                build_ms,
                last_sync,
            }
        })
        .collect();
    Status {
        header: s.header.clone(),
        seq: snap.seq,
        at_ms: snap.at_ms,
        resources,
        images: serde_json::to_value(&snap.state.images).unwrap_or_default(),
        steps: snap
            .state
            .steps()
            .into_iter()
            .map(|(name, step)| NamedStep {
                name,
                step: step.clone(),
            })
            .collect(),
        config_error: snap.state.config_error.clone(),
        notes: serde_json::to_value(&snap.state.notes).unwrap_or_default(),
        stopped_parts: snap.state.stopped_parts.clone(),
    }
}

async fn status(AxState(s): AxState<Shared>) -> Json<Status> {
    Json(status_of(&s))
}

async fn doctor(AxState(s): AxState<Shared>) -> Json<serde_json::Value> {
    Json(s.doctor.borrow().clone())
}

/// `GET /api/events`: the status now (with `id` = its sequence number), then again after
/// every change of state. A reconnecting client gets the current status at once, so it
/// never misses where things are.
async fn events(AxState(s): AxState<Shared>) -> Response {
    let permit = match s.streams.take("events") {
        Ok(p) => p,
        Err(refused) => return *refused,
    };
    let rx = s.snapshots.clone();
    let stream = futures::stream::unfold((s, rx, true), |(s, mut rx, first)| async move {
        // A change of state (pod counts and warnings included).
        if !first && rx.changed().await.is_err() {
            return None;
        }
        rx.borrow_and_update();
        let st = status_of(&s);
        let ev = SseEvent::default()
            .event("status")
            .id(st.seq.to_string())
            .json_data(&st)
            .unwrap_or_else(|_| SseEvent::default().comment("unserializable"));
        Some((Ok::<_, Infallible>(ev), (s, rx, false)))
    });
    use futures::StreamExt;
    // The place goes with the stream.
    let stream = stream.map(move |e| {
        let _held = &permit;
        e
    });
    Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response()
}

#[derive(Deserialize)]
struct LogQuery {
    tail: Option<usize>,
    follow: Option<String>,
}

#[derive(Serialize)]
struct LogLine<'a> {
    seq: u64,
    time_ms: u64,
    /// The resource (in the all-resources stream).
    #[serde(skip_serializing_if = "Option::is_none")]
    resource: Option<&'a str>,
    source: &'a str,
    /// On devenv's own account of what it did (`building`, `built`, `failed`, …).
    #[serde(skip_serializing_if = "Option::is_none")]
    verb: Option<&'static str>,
    text: &'a str,
}

/// Reads what a log stream sends next: at most `limit` lines from a place, as events;
/// where the next read goes on from; and the position of the newest line kept.
type ReadLines = Box<
    dyn Fn(ReadFrom, usize, Option<u64>) -> (Vec<SseEvent>, ReadFrom, Option<u64>) + Send + Sync,
>;

/// The most lines a log stream's `tail` gives (a larger one is taken as this).
pub const MAX_TAIL: usize = 10_000;
/// A log stream is made this many lines at a time, each batch when the reader has taken
/// the one before: a reader of a long history holds one batch of it in memory, not all.
const BATCH: usize = 500;

/// A log stream: from `resume` (`Last-Event-ID`) or the newest `tail` lines, in batches;
/// without `follow` it ends at the line that was newest when it was asked for, with it it
/// waits for each new line (woken by the log, never polled).
fn log_stream(
    s: &Shared,
    follow: bool,
    resume: Option<u64>,
    tail: usize,
    read: ReadLines,
) -> Response {
    // A follower holds a place; a read of the tail ends by itself.
    let permit = if follow {
        match s.streams.take("log followers") {
            Ok(p) => Some(p),
            Err(refused) => return *refused,
        }
    } else {
        None
    };
    let mut pushed = s.logs.subscribe();
    pushed.borrow_and_update();
    let from = match resume {
        Some(r) => ReadFrom::After(r),
        None => ReadFrom::Tail(tail.min(MAX_TAIL)),
    };
    struct Reading {
        pushed: tokio::sync::watch::Receiver<u64>,
        read: ReadLines,
        from: ReadFrom,
        /// Without follow: the newest line when the stream was asked for (unknown before
        /// the first read), past which it ends.
        end: Option<Option<u64>>,
        follow: bool,
    }
    let state = Reading {
        pushed,
        read,
        from,
        end: None,
        follow,
    };
    let batches = futures::stream::unfold(state, |mut st| async move {
        loop {
            let until = if st.follow { None } else { st.end.flatten() };
            let (events, next, newest) = (st.read)(st.from, BATCH, until);
            if st.end.is_none() {
                st.end = Some(newest);
            }
            st.from = next;
            if !events.is_empty() {
                return Some((
                    futures::stream::iter(events.into_iter().map(Ok::<_, Infallible>)),
                    st,
                ));
            }
            if !st.follow {
                return None;
            }
            st.pushed.changed().await.ok()?;
        }
    });
    use futures::StreamExt;
    let sse = Sse::new(batches.flatten().map(move |e| {
        let _held = &permit;
        e
    }));
    if follow {
        sse.keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
            .into_response()
    } else {
        sse.into_response()
    }
}

fn resume_of(headers: &HeaderMap) -> Option<u64> {
    headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
}

/// `GET /api/logs/{resource}?tail=N&follow=1`: the last N lines (default 200), then, with
/// follow, each new line as it comes. `Last-Event-ID` resumes after that line.
async fn logs(
    AxState(s): AxState<Shared>,
    Path(resource): Path<String>,
    Query(q): Query<LogQuery>,
    headers: HeaderMap,
) -> Response {
    if !s.resources.borrow().iter().any(|r| r.name == resource) {
        return refuse(StatusCode::NOT_FOUND, &format!("no resource `{resource}`"));
    }
    let follow = matches!(q.follow.as_deref(), Some("1" | "true" | "yes"));
    let tail = q.tail.unwrap_or(200);
    let logs = s.logs.clone();
    let read: ReadLines = Box::new(move |from: ReadFrom, limit: usize, until: Option<u64>| {
        logs.with(&resource, |b| {
            let (lines, next, newest) = b.page(from, limit);
            (
                lines
                    .iter()
                    .filter(|l| until.is_none_or(|u| l.seq <= u))
                    .map(|l| line_event(l, None, l.seq))
                    .collect(),
                next,
                newest,
            )
        })
    });
    log_stream(&s, follow, resume_of(&headers), tail, read)
}

/// `GET /api/logs?tail=N&follow=1`: every resource's lines in the order they came (each
/// with its resource), as for one resource; ids are positions among all lines.
async fn all_logs(
    AxState(s): AxState<Shared>,
    Query(q): Query<LogQuery>,
    headers: HeaderMap,
) -> Response {
    let follow = matches!(q.follow.as_deref(), Some("1" | "true" | "yes"));
    let tail = q.tail.unwrap_or(200);
    let logs = s.logs.clone();
    let read: ReadLines = Box::new(move |from: ReadFrom, limit: usize, until: Option<u64>| {
        let (lines, next, newest) = logs.all(from, limit);
        (
            lines
                .iter()
                .filter(|(_, l)| until.is_none_or(|u| l.global <= u))
                .map(|(r, l)| line_event(l, Some(r), l.global))
                .collect(),
            next,
            newest,
        )
    });
    log_stream(&s, follow, resume_of(&headers), tail, read)
}

fn line_event(l: &crate::engine::log::Line, resource: Option<&str>, seq: u64) -> SseEvent {
    let body = LogLine {
        seq,
        time_ms: l.time_ms,
        resource,
        source: &l.source,
        verb: l.verb.map(crate::engine::log::Verb::word),
        text: &l.text,
    };
    SseEvent::default()
        .event("log")
        .id(seq.to_string())
        .json_data(&body)
        .unwrap_or_else(|_| SseEvent::default().comment("unserializable"))
}

#[derive(Serialize)]
struct Triggered {
    triggered: String,
}

/// `POST /api/trigger/{resource}`: rebuild (or rerun) it now.
async fn trigger(AxState(s): AxState<Shared>, Path(resource): Path<String>) -> Response {
    if !s.resources.borrow().iter().any(|r| r.name == resource) {
        return refuse(StatusCode::NOT_FOUND, &format!("no resource `{resource}`"));
    }
    if s.events
        .send(Event::Trigger {
            resource: resource.clone(),
        })
        .is_err()
    {
        return refuse(StatusCode::SERVICE_UNAVAILABLE, "the engine has stopped");
    }
    (
        StatusCode::ACCEPTED,
        Json(Triggered {
            triggered: resource,
        }),
    )
        .into_response()
}

#[cfg(test)]
mod tests;
