//! Command-line parsing and dispatch: turns arguments into calls on the other modules and
//! their results into output and exit codes. Owns no logic of its own beyond presentation.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context as _, Result};
use clap::{CommandFactory, Parser, Subcommand};

use crate::config::{self, Loaded};
use crate::{doctor, out, plan, session};

mod client;

#[derive(Debug, Parser)]
#[command(
    name = "devenv",
    version,
    about = "Bootstraps and runs a local Kubernetes development environment",
    long_about = "Bootstraps and runs a local Kubernetes development environment: checks the machine, \
                  starts Minikube, builds images straight into its Docker daemon, deploys with Helm or \
                  kubectl, waits for readiness, forwards ports, and rebuilds on every save."
)]
pub struct Cli {
    /// Path to devenv.toml (default: ./devenv.toml, else the nearest parent directory's)
    #[arg(
        long,
        short = 'c',
        global = true,
        env = "DEVENV_CONFIG",
        value_name = "PATH"
    )]
    pub config: Option<PathBuf>,

    /// More log output (-v: debug, -vv: trace); RUST_LOG overrides
    #[arg(long, short = 'v', global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Bring the environment up and keep it in sync with the source
    Up {
        /// Print the ordered plan `up` would carry out, and change nothing
        #[arg(long)]
        dry_run: bool,
        /// With --dry-run: print the plan as JSON
        #[arg(long, requires = "dry_run")]
        json: bool,
        /// Delete and recreate a Minikube profile whose size differs from devenv.toml
        #[arg(long)]
        recreate_cluster: bool,
        /// Bring everything up once, wait until every resource is ready or one fails, print a
        /// summary and exit 0 or 1 (for CI; like `tilt ci`)
        #[arg(long, conflicts_with = "dry_run")]
        ci: bool,
        /// Print only problems and the summary (no build, command or pod output)
        #[arg(long, short = 'q', conflicts_with = "json_logs")]
        quiet: bool,
        /// Print every event and output line as one JSON object per line, for scripts
        #[arg(long)]
        json_logs: bool,
        /// Serve the status page on this port instead of `[web] port` (0: any free port)
        #[arg(long, env = "DEVENV_WEB_PORT", value_name = "PORT")]
        port: Option<u16>,
        /// Run in the background: return once the page answers and the doctor's checks
        /// passed; its output goes to a log file; `devenv stop` ends it
        #[arg(long, short = 'd', conflicts_with_all = ["dry_run", "ci"])]
        detach: bool,
    },
    /// Stop the running `devenv up` of this project (as Ctrl-C would); the cluster stays up
    Stop,
    /// Show the resources of the running `devenv up` of this project
    Status {
        /// Print the daemon's status as JSON (the API's `GET /api/status`)
        #[arg(long)]
        json: bool,
    },
    /// Print a resource's log from the running `devenv up` (builds, commands, pods), or
    /// every resource's, in the order the lines came
    Logs {
        /// The resource (all of them when left out)
        name: Option<String>,
        /// Keep printing new lines as they come
        #[arg(long, short = 'f')]
        follow: bool,
        /// How many of the last lines to print first
        #[arg(long, default_value_t = 200)]
        tail: usize,
    },
    /// Rebuild (or rerun) a resource now in the running `devenv up`
    Trigger {
        /// The resource
        name: String,
    },
    /// Build the configured images once (all, or those named) and print name:tag
    Build {
        /// Images to build (default: all)
        names: Vec<String>,
        /// Build with this builder instead of each image's own
        #[arg(long, value_enum)]
        builder: Option<BuilderArg>,
        /// How many builds run at once (default: half the CPUs, at least 2)
        #[arg(long, short = 'j', value_name = "N")]
        jobs: Option<usize>,
    },
    /// Remove what devenv deployed; the cluster keeps running
    Down {
        /// Also stop the Minikube profile (it is never deleted)
        #[arg(long)]
        stop_cluster: bool,
    },
    /// Write a devenv.toml for the repository from its Dockerfiles, chart or manifests and
    /// .env files, saying what it found and what it guessed
    Init {
        /// The repository's root (default: the current directory)
        dir: Option<PathBuf>,
        /// Print the config instead of writing it
        #[arg(long)]
        print: bool,
        /// Replace an existing devenv.toml (the old one is kept as devenv.toml.bak)
        #[arg(long)]
        force: bool,
        /// Add the test commands found (pytest, npm test) as manual [[local]] steps
        #[arg(long)]
        with_tests: bool,
    },
    /// Check that this machine can run the environment, and say what to fix
    Doctor {
        /// Print the report as JSON (schema: docs/doctor.md)
        #[arg(long)]
        json: bool,
    },
    /// Work with devenv.toml
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Print shell completions
    Completions {
        /// The shell to generate completions for
        shell: clap_complete::Shell,
    },
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum BuilderArg {
    Docker,
    Buildah,
    Podman,
    Minikube,
}

impl From<BuilderArg> for config::BuilderKind {
    fn from(b: BuilderArg) -> Self {
        match b {
            BuilderArg::Docker => config::BuilderKind::Docker,
            BuilderArg::Buildah => config::BuilderKind::Buildah,
            BuilderArg::Podman => config::BuilderKind::Podman,
            BuilderArg::Minikube => config::BuilderKind::Minikube,
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Validate devenv.toml and print a one-screen summary
    Check,
}

fn init_logging(verbose: u8) {
    // Without -v, only devenv's own warnings: a library's log line (kube-rs logs every
    // failed request at ERROR) is no message for the user; devenv says what failed itself.
    let default = match verbose {
        0 => "devenv=warn",
        1 => "devenv=debug,info",
        _ => "devenv=trace,debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(doctor::use_color(std::io::stderr().is_terminal()))
        .with_target(false)
        .try_init();
}

pub fn run() -> Result<ExitCode> {
    let cli = Cli::parse();
    init_logging(cli.verbose);
    let cwd = std::env::current_dir().context("cannot read the current directory")?;
    match cli.command {
        Command::Completions { shell } => {
            let mut cmd = Cli::command();
            clap_complete::generate(shell, &mut cmd, "devenv", &mut std::io::stdout());
            Ok(ExitCode::SUCCESS)
        }
        Command::Config {
            command: ConfigCommand::Check,
        } => {
            let loaded = load(cli.config.as_deref(), &cwd)?;
            print_warnings(&loaded);
            let shown = shown_path(&loaded.config.file, &cwd);
            let mut plan = plan::compute(&loaded.config, &shown)?;
            if !print_findings(&loaded.config, &mut plan) {
                return Ok(ExitCode::FAILURE);
            }
            print!("{}", summary(&loaded.config, &cwd));
            Ok(ExitCode::SUCCESS)
        }
        Command::Doctor { json } => doctor(cli.config.as_deref(), &cwd, json),
        Command::Init {
            dir,
            print,
            force,
            with_tests,
        } => init(&crate::init::Options {
            dir: dir.unwrap_or_else(|| cwd.clone()),
            print,
            force,
            with_tests,
        }),
        Command::Status { json } => {
            client::status(&config_file(cli.config.as_deref(), &cwd)?, json)
        }
        Command::Logs { name, follow, tail } => client::logs(
            &config_file(cli.config.as_deref(), &cwd)?,
            name.as_deref(),
            follow,
            tail,
        ),
        Command::Trigger { name } => {
            client::trigger(&config_file(cli.config.as_deref(), &cwd)?, &name)
        }
        Command::Stop => session::detach::stop(&config_file(cli.config.as_deref(), &cwd)?),
        Command::Up {
            dry_run,
            json,
            recreate_cluster,
            ci,
            quiet,
            json_logs,
            port,
            detach,
        } => {
            out::set_mode(if json_logs {
                out::Mode::Json
            } else if quiet {
                out::Mode::Quiet
            } else {
                let tty = std::io::stdout().is_terminal();
                out::Mode::Plain {
                    color: tty && std::env::var_os("NO_COLOR").is_none(),
                    progress: tty,
                }
            });
            let mut loaded = load(cli.config.as_deref(), &cwd)?;
            if let Some(p) = port {
                // The plan and doctor say the page's real port.
                loaded.config.web.port = p;
            }
            print_warnings(&loaded);
            let shown = shown_path(&loaded.config.file, &cwd);
            let mut plan = plan::compute(&loaded.config, &shown)?;
            if dry_run {
                // The plan is what `up` will really do: the chart is rendered and checked.
                if !print_findings(&loaded.config, &mut plan) {
                    return Ok(ExitCode::FAILURE);
                }
                let mut out = std::io::stdout().lock();
                if json {
                    serde_json::to_writer_pretty(&mut out, &plan)?;
                    writeln!(out)?;
                } else {
                    write!(out, "{}", plan.render())?;
                }
                return Ok(ExitCode::SUCCESS);
            }
            if detach {
                // The same command, without --detach, in the background.
                let args: Vec<std::ffi::OsString> = std::env::args_os()
                    .skip(1)
                    .filter(|a| a != "--detach" && a != "-d")
                    .collect();
                return session::detach::detach(&loaded.config, args);
            }
            session::up(
                &loaded,
                shown,
                &cwd,
                session::Options {
                    recreate_cluster,
                    ci,
                    port,
                    plan: Some(plan),
                },
            )
        }
        Command::Build {
            names,
            builder,
            jobs,
        } => {
            let loaded = load(cli.config.as_deref(), &cwd)?;
            print_warnings(&loaded);
            let mut cfg = loaded.config.clone();
            if let Some(b) = builder {
                for img in &mut cfg.images {
                    img.builder = b.into();
                }
            }
            session::build::run(&cfg, &names, jobs)
        }
        Command::Down { stop_cluster } => {
            let loaded = load(cli.config.as_deref(), &cwd)?;
            session::down::run(&loaded.config, stop_cluster)
        }
    }
}

/// `devenv init`: the config (printed, or written with what was found said), then what
/// `config check` says of it; exit 1 when it does not pass yet.
fn init(opts: &crate::init::Options) -> Result<ExitCode> {
    let outcome = match crate::init::init(opts) {
        Ok(o) => o,
        Err(e) => {
            return Err(match e.hint() {
                Some(h) => anyhow::anyhow!("{e}\n  hint: {h}"),
                None => anyhow::anyhow!("{e}"),
            });
        }
    };
    // Notes name what the repository holds (files, rendered objects): printed as text only.
    let say = |kind: &str, text: &str| {
        let text = crate::out::printable(text);
        if opts.print {
            eprintln!("{kind:<10} {text}");
        } else {
            println!("{kind:<10} {text}");
        }
    };
    for n in &outcome.notes {
        say(n.kind, &n.text);
    }
    if opts.print {
        print!("{}", outcome.text);
    }
    for d in &outcome.check {
        eprintln!("{}", crate::out::printable(&d.to_string()));
    }
    if outcome.errors > 0 {
        let what = if outcome.written {
            "was written but"
        } else {
            "as printed"
        };
        eprintln!(
            "{} {what} does not pass `devenv config check` yet: {} error{} above",
            outcome.path.display(),
            outcome.errors,
            if outcome.errors == 1 { "" } else { "s" }
        );
        return Ok(ExitCode::FAILURE);
    }
    if outcome.written {
        say(
            "wrote",
            &format!(
                "{} (it passes `devenv config check`)",
                outcome.path.display()
            ),
        );
        say("next", "devenv up");
    }
    Ok(ExitCode::SUCCESS)
}

/// `devenv doctor`: exit 0 when nothing failed, 1 when a check failed, 2 when doctor itself
/// could not run.
fn doctor(explicit: Option<&Path>, cwd: &Path, json: bool) -> Result<ExitCode> {
    let loaded = match config::locate(explicit, cwd) {
        Ok(path) => match config::load(&path, cwd, origin(explicit)) {
            Ok(l) => Some(Ok(l)),
            Err(config::ConfigError::Invalid { diagnostics }) => {
                Some(Err((shown_path(&path, cwd), diagnostics)))
            }
            Err(e) => {
                eprintln!("error: {e}");
                return Ok(ExitCode::from(2));
            }
        },
        Err(config::ConfigError::NotFound { .. }) => None,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(ExitCode::from(2));
        }
    };
    let state = match &loaded {
        Some(Ok(l)) => doctor::ConfigState::Valid {
            config: &l.config,
            shown: shown_path(&l.config.file, cwd),
            warnings: l.warnings.len(),
        },
        Some(Err((shown, diags))) => {
            let errors: Vec<_> = diags.iter().filter(|d| d.is_error()).collect();
            doctor::ConfigState::Invalid {
                shown: match errors.first() {
                    Some(d) if d.line > 0 => format!("{shown}:{}:{}", d.line, d.column),
                    _ => shown.clone(),
                },
                first_error: errors.first().map_or(String::new(), |d| d.message.clone()),
                errors: errors.len(),
            }
        }
        None => doctor::ConfigState::Missing,
    };
    let env = doctor::Env {
        web_port: std::env::var("DEVENV_WEB_PORT")
            .ok()
            .and_then(|p| p.parse().ok()),
        ..doctor::Env::from_process()
    };
    let report = doctor::run(&state, &env);
    let mut out = std::io::stdout().lock();
    if json {
        serde_json::to_writer_pretty(&mut out, &report)?;
        writeln!(out)?;
    } else {
        let color = doctor::use_color(doctor::stdout_is_tty());
        match &report.config {
            Some(c) => writeln!(out, "devenv doctor (config: {c})\n")?,
            None => writeln!(
                out,
                "devenv doctor (no devenv.toml: checking the default setup)\n"
            )?,
        }
        write!(out, "{}", doctor::render(&report, color, false))?;
        writeln!(out, "\n{}", doctor::summary_line(&report))?;
    }
    Ok(if report.failed() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// The config file's absolute path, without reading it: the CLI clients find the running
/// daemon by it even while an edit left the file broken.
fn config_file(explicit: Option<&Path>, cwd: &Path) -> Result<PathBuf, config::ConfigError> {
    Ok(config::normalize(&config::locate(explicit, cwd)?))
}

fn load(explicit: Option<&Path>, cwd: &Path) -> Result<Loaded, config::ConfigError> {
    let path = config::locate(explicit, cwd)?;
    config::load(&path, cwd, origin(explicit))
}

/// Whether the config's path came from `--config` or from the search.
fn origin(explicit: Option<&Path>) -> config::Origin {
    match explicit {
        Some(_) => config::Origin::Given,
        None => config::Origin::Found,
    }
}

/// Renders the chart and reads the manifests (see `check`), prints what that found, and
/// marks the namespaces the chart renders in `plan`; false when it found errors.
fn print_findings(cfg: &config::Config, plan: &mut plan::Plan) -> bool {
    let found = crate::check::check(cfg, plan);
    plan.namespaces_for_helm(&found.own_namespaces);
    for d in &found.diagnostics {
        eprintln!("{}", crate::out::printable(&d.to_string()));
    }
    let errors = found.errors();
    if errors > 0 {
        eprintln!(
            "{errors} error{} found by rendering the chart and reading the manifests; nothing was started",
            if errors == 1 { "" } else { "s" }
        );
    }
    errors == 0
}

fn print_warnings(loaded: &Loaded) {
    for w in &loaded.warnings {
        eprintln!("{}", crate::out::printable(&w.to_string()));
    }
}

fn shown_path(p: &Path, cwd: &Path) -> String {
    p.strip_prefix(cwd)
        .map_or_else(|_| p.display().to_string(), |r| r.display().to_string())
}

/// The one-screen summary `devenv config check` prints.
fn summary(cfg: &config::Config, cwd: &Path) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    let _ = writeln!(s, "{}: valid", shown_path(&cfg.file, cwd));
    let _ = writeln!(s, "project    {}", cfg.project);
    let c = &cfg.cluster;
    match c.provider {
        _ if !cfg.needs_cluster() => {
            let _ = writeln!(s, "cluster    none: the config runs local resources only");
        }
        config::Provider::Minikube => {
            let _ = writeln!(
                s,
                "cluster    minikube profile `{}`: {} CPUs, {} MB{}{}",
                c.profile,
                c.cpus,
                c.memory_mb,
                c.driver
                    .as_ref()
                    .map_or(String::new(), |d| format!(", driver {d}")),
                if c.addons.is_empty() {
                    String::new()
                } else {
                    format!(", addons {}", c.addons.join(", "))
                }
            );
        }
        config::Provider::Existing => {
            let _ = writeln!(
                s,
                "cluster    existing context `{}`, registry {}",
                c.context,
                c.registry.as_deref().unwrap_or("-")
            );
        }
    }
    for i in &cfg.images {
        let _ = writeln!(
            s,
            "image      {} <- {} (context {}, builder {})",
            i.name,
            cfg.rel(&i.dockerfile),
            cfg.rel(&i.context),
            i.builder.as_str()
        );
    }
    for sec in &cfg.secrets {
        let files: Vec<String> = sec.env_files.iter().map(|f| cfg.rel(f)).collect();
        let _ = writeln!(
            s,
            "secret     {} in {} <- {}",
            sec.name,
            sec.namespace,
            files.join(", ")
        );
    }
    for h in &cfg.deploy.helm {
        let _ = writeln!(
            s,
            "deploy     helm release `{}` from {} in {}",
            h.release,
            cfg.rel(&h.chart),
            h.namespace
        );
    }
    if !cfg.deploy.manifests.is_empty() {
        let _ = writeln!(
            s,
            "deploy     {} manifest file(s) in {}",
            cfg.deploy.manifests.len(),
            cfg.deploy.namespace
        );
    }
    for r in &cfg.resources {
        let ports: Vec<String> = r
            .port_forwards
            .iter()
            .map(|p| format!("{}:{}", p.local, p.remote))
            .collect();
        let _ = writeln!(
            s,
            "resource   {} = {}{}{}",
            r.name,
            r.workload,
            if ports.is_empty() {
                String::new()
            } else {
                format!(", ports {}", ports.join(" "))
            },
            if r.depends_on.is_empty() {
                String::new()
            } else {
                format!(", after {}", r.depends_on.join(", "))
            }
        );
    }
    for l in &cfg.locals {
        let _ = writeln!(
            s,
            "local      {} = {}",
            l.name,
            l.cmd.as_deref().or(l.serve_cmd.as_deref()).unwrap_or("")
        );
    }
    let _ = writeln!(s, "web        http://127.0.0.1:{}/", cfg.web.port);
    s
}
