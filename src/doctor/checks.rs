//! The individual checks. Each job returns one or more rows; jobs run on their own threads.

use std::path::{Path, PathBuf};

use super::parse::{self, DaemonState, Version};
use super::{Check, ConfigState, Env, Fix, Needs, Platform};
use crate::cluster::{self, kubeconfig};
use crate::config::MINIKUBE_MIN_MEMORY_MB;
use crate::config::{
    Config, DEFAULT_CPUS, DEFAULT_MEMORY_MB, DEFAULT_PROFILE, DEFAULT_WEB_PORT, Provider,
};
use crate::exec::{self, Cmd, ExecError};

pub type Job<'a> = Box<dyn FnOnce() -> Vec<Check> + Send + 'a>;

/// minikube's default disk size for a new profile.
const MINIKUBE_DEFAULT_DISK_MB: u64 = 20_000;

struct Tool {
    name: &'static str,
    title: &'static str,
    version_args: &'static [&'static str],
    parse: fn(&str) -> Option<Version>,
    min: Version,
    install: fn() -> Fix,
}

fn install_docker() -> Fix {
    Fix::new("install Docker")
        .run(Platform::Debian, "sudo apt-get install -y docker.io")
        .run(
            Platform::Fedora,
            "sudo dnf install -y moby-engine docker-cli",
        )
        .run(Platform::Macos, "brew install --cask docker")
}

fn install_minikube() -> Fix {
    Fix::new("install minikube (https://minikube.sigs.k8s.io/docs/start/)")
        .run(
            Platform::Debian,
            "curl -LO https://storage.googleapis.com/minikube/releases/latest/minikube_latest_amd64.deb && sudo dpkg -i minikube_latest_amd64.deb",
        )
        .run(
            Platform::Fedora,
            "curl -LO https://storage.googleapis.com/minikube/releases/latest/minikube-latest.x86_64.rpm && sudo rpm -Uvh minikube-latest.x86_64.rpm",
        )
        .run(Platform::Macos, "brew install minikube")
}

fn install_kubectl() -> Fix {
    Fix::new("install kubectl (https://kubernetes.io/docs/tasks/tools/)")
        .run(
            Platform::Debian,
            "sudo apt-get install -y kubectl  # from the Kubernetes apt repository",
        )
        .run(Platform::Fedora, "sudo dnf install -y kubectl")
        .run(Platform::Macos, "brew install kubectl")
}

fn install_helm() -> Fix {
    Fix::new("install Helm (https://helm.sh/docs/intro/install/)")
        .run(Platform::Debian, "sudo snap install helm --classic")
        .run(Platform::Fedora, "sudo dnf install -y helm")
        .run(Platform::Macos, "brew install helm")
}

fn install_buildah() -> Fix {
    Fix::new("install buildah, or build with builder = \"docker\"")
        .run(Platform::Debian, "sudo apt-get install -y buildah")
        .run(Platform::Fedora, "sudo dnf install -y buildah")
}

fn install_podman() -> Fix {
    Fix::new("install podman, or build with builder = \"docker\"")
        .run(Platform::Debian, "sudo apt-get install -y podman")
        .run(Platform::Fedora, "sudo dnf install -y podman")
        .run(Platform::Macos, "brew install podman")
}

const TOOLS: [Tool; 6] = [
    Tool {
        name: "docker",
        title: "docker client",
        version_args: &["--version"],
        parse: parse::docker_client_version,
        min: Version::new(20, 10, 0),
        install: install_docker,
    },
    Tool {
        name: "minikube",
        title: "minikube",
        version_args: &["version", "--short"],
        parse: parse::minikube_version,
        min: Version::new(1, 30, 0),
        install: install_minikube,
    },
    Tool {
        name: "kubectl",
        title: "kubectl",
        version_args: &["version", "--client", "-o", "json"],
        parse: parse::kubectl_version,
        min: Version::new(1, 27, 0),
        install: install_kubectl,
    },
    Tool {
        name: "helm",
        title: "helm",
        version_args: &["version", "--template", "{{.Version}}"],
        parse: parse::helm_version,
        min: Version::new(3, 12, 0),
        install: install_helm,
    },
    Tool {
        name: "buildah",
        title: "buildah",
        version_args: &["version", "--json"],
        parse: parse::buildah_version,
        min: Version::new(1, 28, 0),
        install: install_buildah,
    },
    Tool {
        name: "podman",
        title: "podman",
        version_args: &["version", "--format", "json"],
        parse: parse::podman_version,
        min: Version::new(4, 3, 0),
        install: install_podman,
    },
];

fn first_line(s: &str) -> &str {
    s.lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("(no output)")
}

fn timed_out_fix(command: &str) -> Fix {
    Fix::new(format!(
        "run `{command}` in a terminal: a tool that hangs usually waits for a stuck daemon or VM"
    ))
}

fn tool_check(t: &Tool, needed: Option<&str>, env: &Env) -> Check {
    let c = Check::new(format!("tool.{}", t.name), t.title)
        .required(format!("{} >= {}", t.name, t.min));
    if let Some(why) = needed {
        return c.skipped(why);
    }
    let Ok(path) = which::which(t.name) else {
        return c.fail(format!("{} is not on PATH", t.name), (t.install)());
    };
    let cmd = Cmd::new(t.name)
        .args(t.version_args.iter().copied())
        .timeout(env.command_timeout);
    match exec::run(&cmd) {
        Err(ExecError::TimedOut { after, .. }) => c.fail(
            format!(
                "`{}` did not answer within {}s (timeout)",
                cmd.display(),
                after.as_secs_f32()
            ),
            timed_out_fix(&cmd.display()),
        ),
        Err(e) => c.fail(e.to_string(), (t.install)()),
        Ok(f) => match (t.parse)(&f.stdout).or_else(|| (t.parse)(&f.stderr)) {
            None => c.warn(
                format!(
                    "cannot read a version from `{}`: {}",
                    cmd.display(),
                    first_line(&format!("{}{}", f.stdout, f.stderr))
                ),
                Fix::new(format!(
                    "run `{}` and check that {} works",
                    cmd.display(),
                    t.name
                )),
            ),
            Some(v) if v < t.min => {
                let mut fix = (t.install)();
                fix.summary = format!("upgrade {} to {} or newer", t.name, t.min);
                c.fail(
                    format!("{} {v} at {} is too old", t.name, path.display()),
                    fix,
                )
            }
            Some(v) => c.ok(format!("{} {v} ({})", t.name, path.display())),
        },
    }
}

fn config_check(state: &ConfigState<'_>) -> Check {
    let c = Check::new("config", "devenv.toml").required("a valid devenv.toml");
    match state {
        ConfigState::Valid { shown, warnings, .. } => c.ok(match warnings {
            0 => format!("{shown} is valid"),
            n => format!("{shown} is valid ({n} warning{})", if *n == 1 { "" } else { "s" }),
        }),
        ConfigState::Missing => c.skipped(
            "no devenv.toml found: checking what the default setup needs (Minikube, Docker, kubectl, helm)",
        ),
        ConfigState::Invalid { shown, first_error, errors } => c.fail(
            match errors {
                1 => format!("{shown}: {first_error}"),
                n => format!("{shown}: {first_error} (and {} more)", n - 1),
            },
            Fix::new("run `devenv config check`: it shows every error with its line, column and a hint"),
        ),
    }
}

fn docker_daemon_check(cfg: Option<&Config>, needs: &Needs, env: &Env) -> Check {
    let c = Check::new("docker.daemon", "Docker daemon")
        .required("a running Docker daemon you may use");
    if !needs.cluster {
        return c.skipped(needs.no_cluster_reason.clone());
    }
    if !needs.docker_daemon {
        let why = match cfg.and_then(|c| c.cluster.driver.as_deref()) {
            Some(d) if needs.minikube => {
                format!(
                    "the minikube driver `{d}` brings its own Docker daemon (in its VM or container)"
                )
            }
            _ => "no image is built with the host's Docker daemon".to_owned(),
        };
        return c.skipped(why);
    }
    if which::which("docker").is_err() {
        return c.fail(
            "no docker client: the daemon cannot be reached without it",
            install_docker(),
        );
    }
    let cmd = Cmd::new("docker")
        .args(["version", "--format", "{{json .}}"])
        .timeout(env.command_timeout);
    let host = std::env::var("DOCKER_HOST").ok().filter(|h| !h.is_empty());
    let at = host
        .as_ref()
        .map_or(String::new(), |h| format!(" at DOCKER_HOST={h}"));
    match exec::run(&cmd) {
        Err(ExecError::TimedOut { after, .. }) => c.fail(
            format!(
                "the daemon{at} did not answer within {}s (timeout)",
                after.as_secs_f32()
            ),
            Fix::new("restart Docker")
                .run(Platform::Debian, "sudo systemctl restart docker")
                .run(Platform::Fedora, "sudo systemctl restart docker")
                .run(Platform::Macos, "restart Docker Desktop"),
        ),
        Err(e) => c.fail(e.to_string(), install_docker()),
        Ok(f) => match parse::docker_daemon(&f.stdout, &f.stderr) {
            DaemonState::Running { version, api } => {
                c.ok(format!("daemon {version} (API {api}) is running{at}"))
            }
            DaemonState::NotRunning { detail } => c.fail(
                format!("daemon not running{at}: {detail}"),
                Fix::new("start the Docker daemon")
                    .run(Platform::Debian, "sudo systemctl start docker")
                    .run(Platform::Fedora, "sudo systemctl start docker")
                    .run(Platform::Macos, "open -a Docker"),
            ),
            DaemonState::PermissionDenied { detail } => c.fail(
                format!(
                    "permission denied{at}: your user may not use the Docker socket ({detail})"
                ),
                Fix::new("add yourself to the docker group, then log out and in again").run(
                    Platform::Any,
                    "sudo usermod -aG docker \"$USER\" && newgrp docker",
                ),
            ),
            DaemonState::Other { detail } => c.fail(
                format!("the daemon{at} did not answer: {detail}"),
                Fix::new("run `docker version` and fix what it reports"),
            ),
        },
    }
}

fn cluster_size(cfg: Option<&Config>) -> (u32, u64) {
    cfg.map_or((DEFAULT_CPUS, DEFAULT_MEMORY_MB), |c| {
        (c.cluster.cpus, c.cluster.memory_mb)
    })
}

fn host_cpu_check(cfg: Option<&Config>, needs: &Needs, env: &Env) -> Check {
    let (cpus, _) = cluster_size(cfg);
    let c = Check::new("host.cpu", "CPUs").required(format!(
        "{cpus} CPUs for the cluster, plus one for the host"
    ));
    if !needs.minikube {
        return c.skipped(skip_reason(
            needs,
            "an existing cluster brings its own CPUs",
        ));
    }
    let from_proc = std::fs::read_to_string(env.proc_root.join("cpuinfo"))
        .map(|t| parse::cpuinfo_cpus(&t))
        .unwrap_or(0);
    let host = if from_proc > 0 {
        from_proc
    } else {
        std::thread::available_parallelism().map_or(0, |n| n.get())
    } as u32;
    // minikube needs 2 CPUs: advice never names the value devenv.toml already has.
    let fewer = host.saturating_sub(1).max(2);
    if host < cpus {
        let fix = if host < 2 {
            Fix::new("minikube needs at least 2 CPUs: use a machine with more")
        } else {
            Fix::new(format!(
                "set cpus = {} in [cluster] of devenv.toml (minikube needs at least 2), or use a machine with more CPUs",
                host.min(fewer)
            ))
        };
        c.fail(
            format!("this machine has {host} logical CPUs; devenv.toml asks for {cpus}"),
            fix,
        )
    } else if host == cpus {
        let fix = if fewer < cpus {
            Fix::new(format!("set cpus = {fewer} in [cluster] of devenv.toml"))
        } else {
            Fix::new(
                "minikube needs at least 2 CPUs, so only a machine with more leaves one for the host; builds will be slower meanwhile",
            )
        };
        c.warn(
            format!("{host} logical CPUs: all of them would go to the cluster, none to your builds and editor"),
            fix,
        )
    } else {
        c.ok(format!("{host} logical CPUs for a {cpus}-CPU cluster"))
    }
}

fn skip_reason(needs: &Needs, existing: &str) -> String {
    if needs.cluster {
        existing.to_owned()
    } else {
        needs.no_cluster_reason.clone()
    }
}

fn host_memory_check(cfg: Option<&Config>, needs: &Needs, env: &Env) -> Check {
    let (_, memory) = cluster_size(cfg);
    let c = Check::new("host.memory", "memory").required(format!(
        "{memory} MB for the cluster, plus about 2 GB for the host"
    ));
    if !needs.minikube {
        return c.skipped(skip_reason(
            needs,
            "an existing cluster brings its own memory",
        ));
    }
    let (total, available) = std::fs::read_to_string(env.proc_root.join("meminfo"))
        .map(|t| parse::meminfo_mb(&t))
        .unwrap_or((None, None));
    let Some(total) = total else {
        return c.skipped("cannot read /proc/meminfo on this system");
    };
    if total < memory + 1024 {
        let suggest = total.saturating_sub(2048).max(MINIKUBE_MIN_MEMORY_MB);
        let fix = if suggest < memory {
            Fix::new(format!(
                "set memory = \"{suggest}mb\" in [cluster] of devenv.toml"
            ))
        } else {
            Fix::new(format!(
                "minikube needs at least {MINIKUBE_MIN_MEMORY_MB} MB, and the host about 1 GB more: use a machine with more memory"
            ))
        };
        return c.fail(
            format!("{total} MB in total; devenv.toml asks for {memory} MB for the cluster"),
            fix,
        );
    }
    match available {
        Some(avail) if avail < memory + 2048 => c.warn(
            format!("{avail} MB available now (of {total} MB); the cluster takes {memory} MB"),
            Fix::new("close memory-hungry programs, or lower `memory` in [cluster] of devenv.toml"),
        ),
        Some(avail) => c.ok(format!(
            "{avail} MB available of {total} MB; the cluster takes {memory} MB"
        )),
        None => c.ok(format!(
            "{total} MB in total; the cluster takes {memory} MB"
        )),
    }
}

#[cfg(unix)]
fn free_mb(path: &Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    // SAFETY: statvfs writes into the zeroed struct we own; the path is a valid C string.
    let mut s: libc::statvfs = unsafe { std::mem::zeroed() };
    let r = unsafe { libc::statvfs(c.as_ptr(), &mut s) };
    (r == 0).then(|| (s.f_bavail as u64).saturating_mul(s.f_frsize as u64) / (1024 * 1024))
}

#[cfg(not(unix))]
fn free_mb(_path: &Path) -> Option<u64> {
    None
}

fn host_disk_check(cfg: Option<&Config>, needs: &Needs, env: &Env) -> Check {
    let disk = cfg
        .and_then(|c| c.cluster.disk_mb)
        .unwrap_or(MINIKUBE_DEFAULT_DISK_MB);
    let c = Check::new("host.disk", "disk space")
        .required(format!("{disk} MB free where minikube keeps its machines"));
    if !needs.minikube {
        return c.skipped(skip_reason(
            needs,
            "an existing cluster brings its own disk",
        ));
    }
    let dir = env
        .minikube_home
        .clone()
        .or_else(|| env.home.as_ref().map(|h| h.join(".minikube")))
        .unwrap_or_else(|| PathBuf::from("."));
    let existing = dir
        .ancestors()
        .find(|p| p.exists())
        .unwrap_or(Path::new("/"));
    match free_mb(existing) {
        None => c.skipped(format!("cannot read the free space of {}", existing.display())),
        Some(free) if free < disk => c.fail(
            format!("{free} MB free at {}; a new profile may use up to {disk} MB", existing.display()),
            Fix::new("free some disk space, or set a smaller `disk` in [cluster] of devenv.toml (e.g. disk = \"10g\")"),
        ),
        Some(free) => c.ok(format!("{free} MB free at {}", existing.display())),
    }
}

fn minikube_profile_check(cfg: Option<&Config>, needs: &Needs, env: &Env) -> Check {
    let profile = cfg.map_or(DEFAULT_PROFILE, |c| c.cluster.profile.as_str());
    let (cpus, memory) = cluster_size(cfg);
    let want_driver = cfg.and_then(|c| c.cluster.driver.clone());
    let c = Check::new("minikube.profile", format!("minikube profile {profile}")).required(
        format!("absent, or {cpus} CPUs and {memory} MB as devenv.toml asks"),
    );
    if !needs.minikube {
        return c.skipped(skip_reason(
            needs,
            "provider = \"existing\": devenv does not use minikube",
        ));
    }
    if which::which("minikube").is_err() {
        return c.skipped("minikube is not installed (see tool.minikube)");
    }
    let cmd = Cmd::new("minikube")
        .args(["profile", "list", "-o", "json"])
        .timeout(env.command_timeout * 2);
    let out = match exec::run(&cmd) {
        Err(ExecError::TimedOut { after, .. }) => {
            return c.fail(
                format!(
                    "`{}` did not answer within {}s (timeout)",
                    cmd.display(),
                    after.as_secs_f32()
                ),
                timed_out_fix(&cmd.display()),
            );
        }
        Err(e) => return c.fail(e.to_string(), install_minikube()),
        Ok(f) => f,
    };
    let profiles = match crate::cluster::minikube::minikube_profiles(&out.stdout) {
        Ok(p) => p,
        Err(e) => {
            return c.warn(
                e,
                Fix::new("run `minikube profile list` and fix what it reports"),
            );
        }
    };
    let Some(p) = profiles.iter().find(|p| p.name == profile) else {
        return c.ok(format!(
            "profile `{profile}` does not exist yet: `devenv up` creates it with {cpus} CPUs and {memory} MB"
        ));
    };
    if !p.valid {
        return c.fail(
            format!("profile `{profile}` is invalid: minikube cannot read its configuration"),
            Fix::new(
                "delete it; `devenv up` then creates it afresh (this removes the workloads in it)",
            )
            .run(Platform::Any, format!("minikube delete -p {profile}")),
        );
    }
    let has = format!(
        "{} CPUs and {} MB{}",
        p.cpus.map_or("?".to_owned(), |v| v.to_string()),
        p.memory_mb.map_or("?".to_owned(), |v| v.to_string()),
        p.driver
            .as_ref()
            .map_or(String::new(), |d| format!(", driver {d}"))
    );
    let size_differs =
        p.cpus.is_some_and(|v| v != u64::from(cpus)) || p.memory_mb.is_some_and(|v| v != memory);
    let driver_differs = matches!((&want_driver, &p.driver), (Some(w), Some(h)) if w != h);
    if size_differs || driver_differs {
        // Only what differs is named: advice never repeats a value that already matches.
        let mut keys = Vec::new();
        if let Some(pc) = p.cpus.filter(|v| *v != u64::from(cpus)) {
            keys.push(format!("cpus = {pc}"));
        }
        if let Some(pm) = p.memory_mb.filter(|v| *v != memory) {
            keys.push(format!("memory = \"{pm}mb\""));
        }
        if driver_differs && let Some(d) = &p.driver {
            keys.push(format!("driver = \"{d}\""));
        }
        let keep = if keys.is_empty() {
            "or keep the profile: make [cluster] of devenv.toml match it".to_owned()
        } else {
            format!(
                "or keep the profile: set {} in [cluster] of devenv.toml",
                keys.join(" and ")
            )
        };
        let mut fix = Fix::new(
            "minikube keeps a profile's size when it starts again, so pick one: recreate the profile (this deletes its workloads), or make devenv.toml match it",
        )
        .run(Platform::Any, format!("minikube delete -p {profile} && devenv up"))
        .run(Platform::Any, keep);
        if driver_differs {
            fix.summary = format!(
                "the profile uses another driver than devenv.toml's `{}`; {}",
                want_driver.as_deref().unwrap_or(""),
                fix.summary
            );
        }
        return c.fail(format!("profile `{profile}` ({}) has {has}", p.status), fix);
    }
    match p.status.as_str() {
        "Running" => c.ok(format!("profile `{profile}` is running with {has}")),
        "Stopped" => c.ok(format!(
            "profile `{profile}` is stopped ({has}): `devenv up` starts it"
        )),
        "Paused" => c.warn(
            format!("profile `{profile}` is paused"),
            Fix::new("unpause it").run(Platform::Any, format!("minikube unpause -p {profile}")),
        ),
        other => c.warn(
            format!("profile `{profile}` reports status `{other}`"),
            Fix::new("ask minikube what is wrong")
                .run(Platform::Any, format!("minikube status -p {profile}"))
                .run(
                    Platform::Any,
                    format!("minikube logs -p {profile} | tail -50"),
                ),
        ),
    }
}

fn kube_context_check(cfg: Option<&Config>, needs: &Needs, env: &Env) -> Check {
    let c = Check::new("kube.context", "kube context")
        .required("a local context, or one listed in allowed_contexts");
    if !needs.cluster {
        return c.skipped(needs.no_cluster_reason.clone());
    }
    let paths = kubeconfig::default_paths(env.kubeconfig.as_deref(), env.home.as_deref());
    let kc = match kubeconfig::load(&paths) {
        Ok(k) => k,
        Err(e) => {
            return c.fail(
                e,
                Fix::new("repair or move the file; `kubectl config view` shows what kubectl reads"),
            );
        }
    };
    let (ours, provider) = cfg.map_or((DEFAULT_PROFILE.to_owned(), Provider::Minikube), |c| {
        (c.cluster.context.clone(), c.cluster.provider)
    });
    let server = kc.context(&ours).and_then(|x| x.server.clone());
    if provider == Provider::Existing {
        if kc.context(&ours).is_none() {
            return c.fail(
                format!("context `{ours}` is not in your kubeconfig"),
                Fix::new(
                    "list the contexts you have, and set `context` in [cluster] to one of them",
                )
                .run(Platform::Any, "kubectl config get-contexts"),
            );
        }
        if let Some(cfg) = cfg
            && let Err(refusal) = cluster::check_context(cfg, &ours, server.as_deref())
        {
            return c.fail(refusal.to_string(), Fix::new(refusal.hint()));
        }
    }
    let current = kc.current_context.clone();
    if let Some(cur) = &current
        && *cur != ours
    {
        let cur_server = kc.context(cur).and_then(|x| x.server.clone());
        if !cluster::is_local_context(cur, cur_server.as_deref()) {
            return c.warn(
                format!(
                    "kubectl's current context is `{cur}`{}, which is not local: devenv writes to `{ours}` only, but your own kubectl commands go to `{cur}`",
                    cur_server.map_or(String::new(), |s| format!(" ({s})"))
                ),
                Fix::new("switch kubectl to the development cluster").run(Platform::Any, format!("kubectl config use-context {ours}")),
            );
        }
    }
    let exists = if kc.context(&ours).is_some() {
        String::new()
    } else {
        " (minikube creates it on start)".to_owned()
    };
    c.ok(format!(
        "devenv uses `{ours}`{exists}; kubectl's current context is {}",
        current.map_or("unset".to_owned(), |c| format!("`{c}`"))
    ))
}

fn inotify_check(cfg: Option<&Config>, env: &Env) -> Check {
    let c = Check::new("inotify", "inotify limits");
    if !cfg!(target_os = "linux") {
        return c.skipped("inotify limits apply to Linux only");
    }
    let read = |name: &str| {
        std::fs::read_to_string(env.proc_root.join("sys/fs/inotify").join(name))
            .ok()
            .and_then(|t| t.trim().parse::<u64>().ok())
    };
    let (Some(watches), Some(instances)) = (read("max_user_watches"), read("max_user_instances"))
    else {
        return c.skipped("cannot read fs.inotify limits from /proc/sys");
    };
    let dirs = match cfg.map(crate::watch::directories) {
        Some(Ok(d)) => d.len() as u64,
        Some(Err(e)) => {
            return c.warn(
                format!("cannot count the directories to watch: {e}"),
                Fix::new("fix the file named above"),
            );
        }
        None => 0,
    };
    let c = c.required(format!(
        "max_user_watches >= {dirs} (directories devenv watches) plus room for other programs"
    ));
    let want = (dirs * 2).next_power_of_two().max(524_288);
    let fix = || {
        Fix::new("raise the limits now, and keep them after a reboot")
            .run(Platform::Any, format!("sudo sysctl fs.inotify.max_user_watches={want} fs.inotify.max_user_instances=512"))
            .run(
                Platform::Any,
                format!("printf 'fs.inotify.max_user_watches={want}\\nfs.inotify.max_user_instances=512\\n' | sudo tee /etc/sysctl.d/60-devenv-inotify.conf"),
            )
    };
    let found = format!(
        "max_user_watches {watches}, max_user_instances {instances}; devenv watches {dirs} directories"
    );
    if watches < dirs || instances == 0 {
        c.fail(found, fix())
    } else if watches < dirs + 8192 || instances < 16 {
        c.warn(
            format!("{found}: little room left for editors and other watchers"),
            fix(),
        )
    } else {
        c.ok(found)
    }
}

fn port_checks(cfg: Option<&Config>, env: &Env) -> Vec<Check> {
    let mut ports: Vec<(u16, String)> = vec![(
        env.web_port
            .unwrap_or_else(|| cfg.map_or(DEFAULT_WEB_PORT, |c| c.web.port)),
        "the status page ([web] port)".to_owned(),
    )];
    for r in cfg.map(|c| c.resources.as_slice()).unwrap_or_default() {
        for pf in &r.port_forwards {
            ports.push((
                pf.local,
                format!("{}'s port forward {}:{}", r.name, pf.local, pf.remote),
            ));
        }
    }
    ports
        .into_iter()
        .map(|(port, what)| {
            let c = Check::new(format!("port.{port}"), format!("port {port}")).required(format!("127.0.0.1:{port} free for {what}"));
            match std::net::TcpListener::bind(("127.0.0.1", port)) {
                Ok(_) => c.ok(format!("127.0.0.1:{port} is free for {what}")),
                Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
                    let holder = crate::host::port_holder(&env.proc_root, port);
                    if holder
                        .as_ref()
                        .is_some_and(|(pid, _)| *pid == std::process::id())
                    {
                        // `up` opens its page before the doctor's checks run.
                        return c.ok(format!("127.0.0.1:{port} is this devenv's: {what}"));
                    }
                    let by = holder.as_ref().map_or("another process".to_owned(), |(pid, comm)| format!("`{comm}` (pid {pid})"));
                    let mut fix = Fix::new(format!(
                        "stop {by}, or give {what} another local port in devenv.toml"
                    ));
                    if let Some((pid, _)) = &holder {
                        fix = fix.run(Platform::Any, format!("kill {pid}"));
                    }
                    if holder.as_ref().is_some_and(|(_, comm)| comm == "devenv") {
                        return c.warn(
                            format!("127.0.0.1:{port} is in use by devenv itself (pid {}): is `devenv up` already running?", holder.as_ref().map_or(0, |h| h.0)),
                            Fix::new("see what it runs with `devenv status`"),
                        );
                    }
                    c.fail(format!("127.0.0.1:{port} is in use by {by}"), fix)
                }
                Err(e) => c.fail(
                    format!("cannot listen on 127.0.0.1:{port}: {e}"),
                    Fix::new("pick a port above 1023 in devenv.toml"),
                ),
            }
        })
        .collect()
}

/// Every job, in the order their rows are reported.
pub fn all<'a>(
    state: &'a ConfigState<'a>,
    cfg: Option<&'a Config>,
    needs: &'a Needs,
    env: &'a Env,
) -> Vec<Job<'a>> {
    let mut jobs: Vec<Job<'a>> = vec![Box::new(move || vec![config_check(state)])];
    for t in &TOOLS {
        let skip: Option<String> = match t.name {
            "docker" if !needs.docker_client => Some(if needs.cluster {
                "no image is built with docker".to_owned()
            } else {
                needs.no_cluster_reason.clone()
            }),
            "minikube" if !needs.minikube => Some(skip_reason(
                needs,
                "provider = \"existing\": devenv does not use minikube",
            )),
            "kubectl" if !needs.cluster => Some(needs.no_cluster_reason.clone()),
            "helm" if !needs.helm => {
                Some(skip_reason(needs, "the config does not deploy with Helm"))
            }
            "buildah" if !needs.buildah => Some("no image uses builder = \"buildah\"".to_owned()),
            "podman" if !needs.podman => Some("no image uses builder = \"podman\"".to_owned()),
            _ => None,
        };
        jobs.push(Box::new(move || vec![tool_check(t, skip.as_deref(), env)]));
    }
    jobs.push(Box::new(move || vec![docker_daemon_check(cfg, needs, env)]));
    jobs.push(Box::new(move || vec![host_cpu_check(cfg, needs, env)]));
    jobs.push(Box::new(move || vec![host_memory_check(cfg, needs, env)]));
    jobs.push(Box::new(move || vec![host_disk_check(cfg, needs, env)]));
    jobs.push(Box::new(move || {
        vec![minikube_profile_check(cfg, needs, env)]
    }));
    jobs.push(Box::new(move || vec![kube_context_check(cfg, needs, env)]));
    jobs.push(Box::new(move || vec![inotify_check(cfg, env)]));
    jobs.push(Box::new(move || port_checks(cfg, env)));
    jobs
}
