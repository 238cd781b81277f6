//! `devenv doctor`: proves the machine can run the environment the config describes, and
//! says exactly what to fix.
//!
//! Owns the checks and their report. Checks run concurrently, each bounded by the timeouts of
//! the commands it runs, so one hung tool cannot hang doctor. Doctor reads and asks; it never
//! changes, starts or deletes anything.

mod checks;
pub mod parse;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::config::{BuilderKind, Config, Provider};

/// Version of the `--json` schema (docs/doctor.md).
pub const SCHEMA_VERSION: u32 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Warn,
    Fail,
    Skipped,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Platform {
    /// Works everywhere.
    Any,
    Debian,
    Fedora,
    Macos,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FixCommand {
    pub platform: Platform,
    pub command: String,
}

/// What to do about a warning or failure: a sentence, and commands to run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Fix {
    pub summary: String,
    pub commands: Vec<FixCommand>,
}

impl Fix {
    pub fn new(summary: impl Into<String>) -> Fix {
        Fix {
            summary: summary.into(),
            commands: Vec::new(),
        }
    }

    pub fn run(mut self, platform: Platform, command: impl Into<String>) -> Fix {
        self.commands.push(FixCommand {
            platform,
            command: command.into(),
        });
        self
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    pub id: String,
    pub title: String,
    pub status: Status,
    pub found: String,
    pub required: String,
    pub fix: Option<Fix>,
    pub duration_ms: u64,
}

impl Check {
    pub fn new(id: impl Into<String>, title: impl Into<String>) -> Check {
        Check {
            id: id.into(),
            title: title.into(),
            status: Status::Ok,
            found: String::new(),
            required: String::new(),
            fix: None,
            duration_ms: 0,
        }
    }

    pub fn ok(mut self, found: impl Into<String>) -> Check {
        self.status = Status::Ok;
        self.found = found.into();
        self
    }

    pub fn warn(mut self, found: impl Into<String>, fix: Fix) -> Check {
        self.status = Status::Warn;
        self.found = found.into();
        self.fix = Some(fix);
        self
    }

    pub fn fail(mut self, found: impl Into<String>, fix: Fix) -> Check {
        self.status = Status::Fail;
        self.found = found.into();
        self.fix = Some(fix);
        self
    }

    pub fn skipped(mut self, why: impl Into<String>) -> Check {
        self.status = Status::Skipped;
        self.found = why.into();
        self
    }

    pub fn required(mut self, r: impl Into<String>) -> Check {
        self.required = r.into();
        self
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub ok: usize,
    pub warn: usize,
    pub fail: usize,
    pub skipped: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub schema_version: u32,
    /// The config file checked, or null when doctor checked the default setup.
    pub config: Option<String>,
    pub checks: Vec<Check>,
    pub summary: Summary,
    pub duration_ms: u64,
}

impl Report {
    pub fn failed(&self) -> bool {
        self.summary.fail > 0
    }
}

/// What doctor was told about the config.
#[derive(Debug)]
pub enum ConfigState<'a> {
    Valid {
        config: &'a Config,
        shown: String,
        warnings: usize,
    },
    /// No devenv.toml: check what the default setup needs.
    Missing,
    /// The config has errors; the first is shown, and the default setup is checked.
    Invalid {
        shown: String,
        first_error: String,
        errors: usize,
    },
}

/// The machine doctor looks at. Everything a test needs to fake is here.
#[derive(Debug, Clone)]
pub struct Env {
    /// Where /proc is (tests point it at a fake tree).
    pub proc_root: PathBuf,
    pub home: Option<PathBuf>,
    pub kubeconfig: Option<String>,
    pub minikube_home: Option<PathBuf>,
    /// The deadline of each command doctor runs.
    pub command_timeout: Duration,
    /// The status page's port when it is not the config's: `devenv doctor` takes
    /// `DEVENV_WEB_PORT` as `up` does (`up` puts its own choice into the config it checks).
    pub web_port: Option<u16>,
}

impl Env {
    /// The real machine, with `DEVENV_PROC_ROOT` and `DEVENV_DOCTOR_TIMEOUT_MS` as overrides.
    pub fn from_process() -> Env {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        Env {
            proc_root: var("DEVENV_PROC_ROOT")
                .map_or_else(|| PathBuf::from("/proc"), PathBuf::from),
            home: directories::BaseDirs::new().map(|d| d.home_dir().to_path_buf()),
            kubeconfig: var("KUBECONFIG"),
            minikube_home: var("MINIKUBE_HOME").map(PathBuf::from),
            command_timeout: var("DEVENV_DOCTOR_TIMEOUT_MS")
                .and_then(|v| v.parse().ok())
                .map_or(Duration::from_secs(8), Duration::from_millis),
            web_port: None,
        }
    }
}

/// What the project needs from the machine.
#[derive(Debug, Clone)]
pub struct Needs {
    pub cluster: bool,
    pub minikube: bool,
    pub docker_client: bool,
    /// A Docker daemon on the host (Minikube's docker driver, or docker builds for an
    /// existing cluster).
    pub docker_daemon: bool,
    pub helm: bool,
    pub buildah: bool,
    pub podman: bool,
    /// Why cluster checks are skipped, when they are.
    pub no_cluster_reason: String,
}

impl Needs {
    pub fn of(cfg: Option<&Config>) -> Needs {
        let Some(cfg) = cfg else {
            return Needs {
                cluster: true,
                minikube: true,
                docker_client: true,
                docker_daemon: true,
                helm: true,
                buildah: false,
                podman: false,
                no_cluster_reason: String::new(),
            };
        };
        let cluster = cfg.needs_cluster();
        let minikube = cluster && cfg.cluster.provider == Provider::Minikube;
        let uses = |b: BuilderKind| cfg.images.iter().any(|i| i.builder == b);
        // The docker driver runs Minikube in the host's daemon; `none` runs it on the host,
        // where builds go to the host's daemon too. Other drivers bring a daemon of their
        // own (in their VM or container).
        let docker_driver = matches!(
            cfg.cluster.driver.as_deref(),
            None | Some("docker" | "none")
        );
        let docker_daemon =
            cluster && ((minikube && docker_driver) || (!minikube && uses(BuilderKind::Docker)));
        Needs {
            cluster,
            minikube,
            docker_client: docker_daemon
                || (minikube
                    && cfg
                        .images
                        .iter()
                        .any(crate::config::Image::uses_docker_daemon)),
            docker_daemon,
            helm: cluster && !cfg.deploy.helm.is_empty(),
            buildah: cluster && uses(BuilderKind::Buildah),
            podman: cluster && uses(BuilderKind::Podman),
            no_cluster_reason: "the config has only [[local]] resources: no cluster is needed"
                .to_owned(),
        }
    }
}

/// Runs every check concurrently and collects the report in a stable order.
pub fn run(state: &ConfigState<'_>, env: &Env) -> Report {
    let started = Instant::now();
    let cfg = match state {
        ConfigState::Valid { config, .. } => Some(*config),
        _ => None,
    };
    let needs = Needs::of(cfg);
    let jobs = checks::all(state, cfg, &needs, env);
    let checks: Vec<Check> = std::thread::scope(|s| {
        let handles: Vec<_> = jobs
            .into_iter()
            .map(|job| {
                s.spawn(move || {
                    let t = Instant::now();
                    let mut rows = job();
                    let ms = t.elapsed().as_millis() as u64;
                    for r in &mut rows {
                        r.duration_ms = ms;
                    }
                    rows
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| {
                h.join().unwrap_or_else(|_| {
                    vec![Check::new("doctor", "doctor itself").fail(
                        "a check crashed",
                        Fix::new("please report this with the output of `devenv doctor -vv`"),
                    )]
                })
            })
            .collect()
    });
    let mut summary = Summary::default();
    for c in &checks {
        match c.status {
            Status::Ok => summary.ok += 1,
            Status::Warn => summary.warn += 1,
            Status::Fail => summary.fail += 1,
            Status::Skipped => summary.skipped += 1,
        }
    }
    Report {
        schema_version: SCHEMA_VERSION,
        config: match state {
            ConfigState::Valid { shown, .. } | ConfigState::Invalid { shown, .. } => {
                Some(shown.clone())
            }
            ConfigState::Missing => None,
        },
        checks,
        summary,
        duration_ms: started.elapsed().as_millis() as u64,
    }
}

/// Whether to colour output: only on a terminal, and never with NO_COLOR set.
pub fn use_color(stream_is_tty: bool) -> bool {
    stream_is_tty && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

fn paint(text: &str, code: &str, color: bool) -> String {
    if color {
        format!("\x1b[{code}m{text}\x1b[0m")
    } else {
        text.to_owned()
    }
}

fn platform_label(p: Platform) -> &'static str {
    match p {
        Platform::Any => "",
        Platform::Debian => "Debian/Ubuntu: ",
        Platform::Fedora => "Fedora: ",
        Platform::Macos => "macOS: ",
    }
}

/// Renders rows as a compact table. `only_failed` keeps the failures (for `devenv up`).
pub fn render(report: &Report, color: bool, only_failed: bool) -> String {
    let rows: Vec<&Check> = report
        .checks
        .iter()
        .filter(|c| !only_failed || c.status == Status::Fail)
        .collect();
    let id_width = rows.iter().map(|c| c.id.len()).max().unwrap_or(0).max(8);
    let indent = " ".repeat(2 + 6 + 2 + id_width + 2);
    let mut out = String::new();
    for c in rows {
        let (label, code) = match c.status {
            Status::Ok => ("ok", "32"),
            Status::Warn => ("warn", "33"),
            Status::Fail => ("FAIL", "1;31"),
            Status::Skipped => ("skip", "2"),
        };
        let label = paint(&format!("{label:<6}"), code, color);
        // What a check found is partly what a tool printed.
        let found = crate::out::printable(&c.found);
        out.push_str(&format!("  {label}  {:<id_width$}  {found}\n", c.id));
        if !c.required.is_empty() && c.status != Status::Ok && c.status != Status::Skipped {
            out.push_str(&format!("{indent}needs: {}\n", c.required));
        }
        if let Some(fix) = &c.fix {
            out.push_str(&format!("{indent}fix: {}\n", fix.summary));
            for cmd in &fix.commands {
                out.push_str(&format!(
                    "{indent}  {}{}\n",
                    platform_label(cmd.platform),
                    cmd.command
                ));
            }
        }
    }
    out
}

pub fn summary_line(report: &Report) -> String {
    let s = &report.summary;
    format!(
        "doctor: {} ok, {} warning{}, {} failed, {} skipped",
        s.ok,
        s.warn,
        if s.warn == 1 { "" } else { "s" },
        s.fail,
        s.skipped
    )
}

/// Whether stdout is a terminal.
pub fn stdout_is_tty() -> bool {
    std::io::stdout().is_terminal()
}
