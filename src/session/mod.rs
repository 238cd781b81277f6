//! One run of `devenv up`, from the first instant to the last: the project's lock, the
//! signal handlers, the status page (before anything else, so bring-up is watched live), the
//! engine with its workers, the file watcher and the reload of what `up` was set up from,
//! and the terminal view. `--ci` is the same session with an exit rule.
//!
//! Owns the life of the daemon and the wiring between its parts. Must not build, deploy or
//! decide anything itself: the engine decides, the workers do, the views print.

pub mod build;
pub mod daemon;
pub mod detach;
pub mod down;
mod reloader;
mod supervise;

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result};
use tokio::sync::{mpsc, watch};

use crate::config::{self, Config, Loaded};
use crate::engine::driver::{self, Logs};
use crate::engine::state::{Event, State, StepStatus};
use crate::workers::{self, bringup};
use crate::{exec, out, views, web};

#[derive(Debug, Clone)]
pub struct Options {
    pub recreate_cluster: bool,
    pub ci: bool,
    /// `--port` (or DEVENV_WEB_PORT): the page's port instead of `[web] port`. The config
    /// given to [`up`] has it already; every reload of the file keeps it.
    pub port: Option<u16>,
    /// The plan `up` computed for this config before it started: the first bring-up checks
    /// the chart with it instead of hashing every context again.
    pub plan: Option<crate::plan::Plan>,
}

/// The async runtime every part of a session runs on.
pub fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// `devenv up`: one engine from the first second. The page answers first; the doctor's
/// checks, the cluster, builds, deploys, readiness waits and the dev loop are the engine's
/// steps. With `--ci`, a summary and an exit code once everything settled.
pub fn up(loaded: &Loaded, shown: String, cwd: &Path, opts: Options) -> Result<ExitCode> {
    let cfg = &loaded.config;
    // One daemon per project; what a crashed one left running goes first.
    let lock = daemon::acquire(cfg)?;
    // A detached daemon's output is its log file, kept within its bound.
    let _log = if detach::is_detached() {
        detach::log_path(cfg).and_then(|l| detach::rotating_output(&l))
    } else {
        None
    };
    let leftovers = exec::kill_leftovers(&lock.groups_file());
    if leftovers > 0 {
        out::say(
            "cleaned",
            format!(
                "{leftovers} process group(s) left running by an earlier devenv that did not stop cleanly"
            ),
        );
    }
    exec::record_groups(&lock.groups_file());
    let rt = runtime()?;
    let result = rt.block_on(run(loaded, shown, cwd, opts, lock.dir()));
    // Forwards, log streams and watches end with the runtime; the cluster stays as it is.
    rt.shutdown_timeout(Duration::from_millis(500));
    drop(lock);
    result
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn wait_for_stop() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => futures::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = term => {}
    }
}

/// What the page's header shows of the project.
fn header(cfg: &Config) -> web::Header {
    let cluster = cfg.needs_cluster();
    web::Header {
        project: cfg.project.clone(),
        config: cfg.file.display().to_string(),
        provider: if cluster {
            match cfg.cluster.provider {
                config::Provider::Minikube => "minikube".into(),
                config::Provider::Existing => "existing".into(),
            }
        } else {
            "none".into()
        },
        profile: cluster.then(|| cfg.cluster.profile.clone()),
        context: cluster.then(|| cfg.cluster.context.clone()),
        cpus: cluster.then_some(cfg.cluster.cpus),
        memory_mb: cluster.then_some(cfg.cluster.memory_mb),
    }
}

/// The shape the CLI's plan read (the manifests read once), else read now.
fn shape_of(opts: &Options, cfg: &Config) -> Result<Arc<crate::project::Shape>> {
    Ok(match &opts.plan {
        Some(p) => p.shape.clone(),
        None => Arc::new(crate::project::shape(cfg)?),
    })
}

async fn run(
    loaded: &Loaded,
    shown: String,
    cwd: &Path,
    mut opts: Options,
    state_dir: &Path,
) -> Result<ExitCode> {
    let (tx, rx) = mpsc::unbounded_channel();
    // Ctrl-C or SIGTERM from the first instant: the engine cancels whatever runs (a doctor
    // check, minikube, a build, a wait), its workers kill every process group, and it ends.
    let signals = tokio::spawn(stop_on_signal(tx.clone()));
    let engine_tx = tx.clone();
    let cfg = Arc::new(loaded.config.clone());
    let shape = shape_of(&opts, &cfg)?;
    let state = State::new(crate::project::graph(
        &cfg,
        &shape.resource_images,
        &shape.released,
    ));
    let logs = Logs::new(cfg.web.log_buffer);
    let (snap_tx, snap_rx) = watch::channel(driver::initial(&state));
    let (report_tx, report_rx) = watch::channel(serde_json::Value::Null);
    let (current, infos_rx) = workers::Current::of(&cfg, &shape);
    // The reloader's configs go to the workers, put in place when the engine says so.
    let (publish_tx, publish_rx) = mpsc::unbounded_channel();
    let mut tasks = tokio::task::JoinSet::new();
    // The page's server and the file watcher: watched, said when they stop early.
    let mut parts = supervise::Parts::default();
    let page_error = if opts.ci {
        None
    } else {
        start_page(
            &cfg,
            state_dir,
            web::Shared::new(
                snap_rx.clone(),
                logs.clone(),
                tx.clone(),
                header(&cfg),
                infos_rx,
                report_rx,
            ),
            &mut parts,
        )
        .await?
    };
    let mut workers = workers::Workers::new(workers::Setup {
        current,
        published: publish_rx,
        ci: opts.ci,
        logs: logs.clone(),
        bringup: bringup::Inputs {
            shown: shown.clone(),
            warnings: loaded.warnings.len(),
            recreate_cluster: opts.recreate_cluster,
            report: report_tx,
        },
        plan: opts.plan.take(),
        page_error,
        events: tx.clone(),
    });
    // Without --ci, file changes feed the engine from the start, so a save during the
    // first builds is built after them; an edit of what `up` was set up from is reloaded.
    if !opts.ci {
        let w = reloader::Reloader::start(
            cfg.clone(),
            publish_tx,
            tx.clone(),
            cwd.to_path_buf(),
            opts.port,
        )?;
        parts.start(
            "file watching",
            WATCHING_STOPPED,
            tokio::spawn(async move {
                w.run().await;
                Ok(())
            }),
            tx.clone(),
        );
    }
    let view = tokio::spawn(views::view(snap_rx.clone(), views::shown_of(&state)));
    let engine = tokio::spawn(async move {
        let end = driver::run(state, rx, engine_tx, &mut workers, &snap_tx).await;
        // The last command was Stop: the workers have ended everything.
        drop(workers);
        end
    });
    let _ = tx.send(Event::Start);
    tasks.spawn(when_settled(snap_rx.clone(), tx.clone(), opts.ci));
    let end = engine.await?;
    // The view prints the last changes before it ends.
    let _ = tokio::time::timeout(Duration::from_millis(300), view).await;
    out::set_progress("");
    signals.abort();
    parts.stop();
    tasks.abort_all();
    exec::kill_all();
    outcome(loaded, &end, opts.ci)
}

/// What `up` does without its file watcher.
const WATCHING_STOPPED: &str =
    "saved files and config edits are no longer seen until devenv restarts";

/// Ctrl-C or SIGTERM: says what stops and what stays, and shuts the engine down.
async fn stop_on_signal(tx: mpsc::UnboundedSender<Event>) {
    wait_for_stop().await;
    out::say(
        "stopping",
        "watchers, commands, port-forwards and log streams closed; the cluster and workloads are left running",
    );
    let _ = tx.send(Event::Shutdown);
}

/// Starts the status page on `[web] port` (its server a watched part) and says its sign-in
/// address; `shared` is completed with the port taken. A busy port is no error here: it is
/// returned, said after the doctor's checks, whose report names its holder with everything
/// else that is wrong.
async fn start_page(
    cfg: &Config,
    state_dir: &Path,
    mut shared: web::Shared,
    parts: &mut supervise::Parts,
) -> Result<Option<String>> {
    let proc_root = crate::doctor::Env::from_process().proc_root;
    let listener = match web::listen(cfg.web.port, &proc_root).await {
        Ok(l) => l,
        Err(e) => return Ok(Some(format!("the status page: {e}\n  hint: {}", e.hint()))),
    };
    let port = listener.local_addr().map_or(cfg.web.port, |a| a.port());
    let token = shared.token.clone();
    shared.port = port;
    daemon::publish(state_dir, cfg, port, &token)?;
    let events = shared.events.clone();
    parts.start(
        "the status page",
        "the page, `devenv status`, `logs` and `trigger` do not answer until devenv restarts",
        tokio::spawn(web::serve(listener, shared)),
        events,
    );
    // The address signs the browser in (the page carries no credential). A detached `up`
    // writes to a log file: there the address goes without its token (`up --detach` prints
    // the sign-in address itself).
    if detach::is_detached() {
        out::say(
            "page",
            format!("http://127.0.0.1:{port}/ (`up --detach` printed the sign-in address)"),
        );
    } else {
        out::say("page", format!("http://127.0.0.1:{port}/?token={token}"));
    }
    Ok(None)
}

/// Once the first start settled, the dev loop is all that runs: says so, or with `--ci`
/// (nothing more will happen by itself) ends the session.
async fn when_settled(
    mut snaps: watch::Receiver<driver::Snapshot>,
    tx: mpsc::UnboundedSender<Event>,
    ci: bool,
) {
    // Once the first start settled, the dev loop is all that runs (or, with --ci,
    // nothing more will happen by itself).
    while snaps.changed().await.is_ok() {
        let settled = snaps.borrow().state.settled();
        if settled {
            if ci {
                let _ = tx.send(Event::Shutdown);
            } else {
                out::say(
                    "running",
                    "Ctrl-C stops devenv; the cluster and the workloads stay up",
                );
            }
            break;
        }
    }
}

/// How `up` ends, from the engine's last state: the doctor's or the cluster's failure, or
/// with `--ci` the summary and its exit rule (nothing deployed, an image that runs nowhere,
/// a resource not ready all fail it).
fn outcome(loaded: &Loaded, end: &State, ci: bool) -> Result<ExitCode> {
    if end.doctor.status == StepStatus::Failed {
        // The report (or the page's port) was said.
        return Ok(ExitCode::FAILURE);
    }
    if end.cluster.status == StepStatus::Failed && end.doctor.status == StepStatus::Done {
        // A step cancelled by the stop sends no failure (typed: `bringup::Stopping`).
        anyhow::bail!("{}", end.cluster.message.clone().unwrap_or_default());
    }
    if ci {
        // --ci reads no edit: it ends with the config it started with.
        let cfg = &loaded.config;
        views::print_summary(cfg, end);
        views::summary_of_locals(cfg, end);
        // A manual local resource that nobody triggered is not a failure.
        let mut ok = end
            .resources
            .values()
            .all(|r| r.status == crate::engine::state::Status::Ready || r.idle);
        // A run that deployed nothing, or built an image that nothing runs, is no success
        // (a CI gate passed with nothing running).
        let deploys_something = !cfg.images.is_empty()
            || !cfg.deploy.manifests.is_empty()
            || !cfg.deploy.helm.is_empty();
        if ok && deploys_something && end.deploys_done == 0 {
            out::say(
                "failed",
                "nothing was deployed: no resource and no manifest reached the cluster (see `devenv config check`)",
            );
            ok = false;
        }
        for (image, state) in &end.images {
            if state.reference.is_some() && cfg.undeployed_images.contains(image) {
                out::say(
                    "failed",
                    format!(
                        "image `{image}` was built, but nothing deployed runs it: use it in a manifest's `image:` or a [[deploy.helm.images]] entry, or remove it"
                    ),
                );
                ok = false;
            }
        }
        return Ok(if ok {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        });
    }
    Ok(ExitCode::SUCCESS)
}
