//! The Minikube provider: bring the configured profile to the state devenv.toml asks for,
//! idempotently, and find how builds reach its image store.
//!
//! Never deletes or resizes a profile unless the user asked for it (`--recreate-cluster`):
//! `minikube start` on an existing profile with another size only warns and keeps the old
//! size, so devenv compares sizes itself and stops with both honest fixes.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::config::Config;
use crate::exec::{self, Cmd, ExecError};

/// `minikube status` exits 85 for a profile that does not exist.
const EXIT_PROFILE_NOT_FOUND: i32 = 85;
/// `minikube docker-env` exits 51 for the `none` driver: the cluster uses the host's daemon.
const EXIT_DOCKER_ENV_NONE_DRIVER: i32 = 51;

/// The state of a profile, from `minikube status -p P -o json` and its exit code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProfileState {
    Absent,
    Running,
    Stopped,
    Paused,
    /// The host runs but a component does not (e.g. the API server or kubelet stopped).
    Broken {
        detail: String,
    },
}

impl ProfileState {
    /// The state in words, for messages.
    pub fn describe(&self) -> String {
        match self {
            ProfileState::Absent => "it does not exist".into(),
            ProfileState::Running => "running".into(),
            ProfileState::Stopped => "stopped".into(),
            ProfileState::Paused => "paused".into(),
            ProfileState::Broken { detail } => format!("not healthy: {detail}"),
        }
    }
}

/// Parses `minikube status -o json`: one object for a single node, an array for several.
/// The exit code's bits say what is not running (1 host, 2 cluster, 4 kubeconfig).
pub fn parse_status(stdout: &str, code: Option<i32>) -> ProfileState {
    if code == Some(EXIT_PROFILE_NOT_FOUND) {
        return ProfileState::Absent;
    }
    let start = stdout.find(['{', '[']);
    let nodes: Vec<serde_json::Value> = match start.and_then(|s| {
        serde_json::Deserializer::from_str(&stdout[s..])
            .into_iter::<serde_json::Value>()
            .next()
            .and_then(Result::ok)
    }) {
        Some(serde_json::Value::Array(a)) => a,
        Some(v @ serde_json::Value::Object(_)) => vec![v],
        _ => Vec::new(),
    };
    let field = |n: &serde_json::Value, k: &str| n[k].as_str().unwrap_or("").to_owned();
    let Some(control) = nodes.first() else {
        // No JSON at all: fall back on the exit code's bits.
        return match code {
            Some(0) => ProfileState::Running,
            Some(c) if c & 1 != 0 => ProfileState::Stopped,
            _ => ProfileState::Broken {
                detail: format!(
                    "`minikube status` said: {}",
                    stdout.lines().next().unwrap_or("nothing")
                ),
            },
        };
    };
    let host = field(control, "Host");
    let apiserver = field(control, "APIServer");
    let kubelet = field(control, "Kubelet");
    if host == "Nonexistent" {
        return ProfileState::Absent;
    }
    if host == "Stopped" {
        return ProfileState::Stopped;
    }
    if apiserver == "Paused" {
        return ProfileState::Paused;
    }
    if host == "Running" && apiserver == "Running" && kubelet == "Running" {
        let bad_node = nodes
            .iter()
            .skip(1)
            .find(|n| field(n, "Host") != "Running" || field(n, "Kubelet") != "Running");
        return match bad_node {
            None => ProfileState::Running,
            Some(n) => ProfileState::Broken {
                detail: format!(
                    "node {} has host {} and kubelet {}",
                    field(n, "Name"),
                    field(n, "Host"),
                    field(n, "Kubelet")
                ),
            },
        };
    }
    ProfileState::Broken {
        detail: format!("host {host}, kubelet {kubelet}, apiserver {apiserver}"),
    }
}

/// Addons and whether each is enabled, from `minikube addons list -p P -o json`:
/// `{"ingress": {"Profile": "minikube", "Status": "disabled"}, ...}`.
pub fn parse_addons(stdout: &str) -> BTreeMap<String, bool> {
    json_object(stdout)
        .and_then(|v| v.as_object().cloned())
        .map(|m| {
            m.into_iter()
                .map(|(k, v)| (k, v["Status"].as_str() == Some("enabled")))
                .collect()
        })
        .unwrap_or_default()
}

/// How builds reach the cluster's image store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageStore {
    /// Minikube's Docker daemon: these variables go to build processes only.
    DockerEnv(BTreeMap<String, String>),
    /// The `none` driver: the cluster runs on the host's Docker daemon, so builds go there.
    HostDaemon,
    /// A containerd (or CRI-O) runtime: no Docker daemon inside, so docker builds become
    /// `minikube image build`, and other builders' images are loaded with `minikube image load`.
    MinikubeImageBuild { runtime: String },
}

/// Interprets `minikube docker-env --shell none -o json`. Anything unexpected is an error:
/// falling back to the host daemon silently is how images end up where the cluster cannot
/// find them (ErrImageNeverPull).
pub fn parse_docker_env(stdout: &str, code: Option<i32>) -> Result<ImageStore, String> {
    if code == Some(EXIT_DOCKER_ENV_NONE_DRIVER) {
        return Ok(ImageStore::HostDaemon);
    }
    let lower = stdout.to_ascii_lowercase();
    if lower.contains("only compatible with the \"docker\" runtime")
        || lower.contains("only compatible with the docker runtime")
    {
        let runtime = ["containerd", "cri-o", "crio"]
            .into_iter()
            .find(|r| lower.contains(&format!("\"{r}\"")))
            .unwrap_or("containerd");
        return Ok(ImageStore::MinikubeImageBuild {
            runtime: runtime.to_owned(),
        });
    }
    if code != Some(0) {
        return Err(format!(
            "`minikube docker-env` failed (exit {}): {}",
            code.map_or("signal".to_owned(), |c| c.to_string()),
            error_lines(stdout).join(" / ")
        ));
    }
    let map: BTreeMap<String, String> = json_object(stdout)
        .and_then(|v| v.as_object().cloned())
        .map(|m| {
            m.into_iter()
                .filter_map(|(k, v)| v.as_str().map(|s| (k, s.to_owned())))
                .collect()
        })
        .unwrap_or_default();
    if !map.contains_key("DOCKER_HOST") {
        return Err(format!(
            "`minikube docker-env` printed no DOCKER_HOST: {}",
            stdout.lines().next().unwrap_or("(nothing)")
        ));
    }
    Ok(ImageStore::DockerEnv(map))
}

/// The lines of minikube's output that explain a failure (its `X`/`❌` lines, "Exiting due
/// to ..."), or the last lines when it marked none.
pub fn error_lines(output: &str) -> Vec<String> {
    let marked: Vec<String> = output
        .lines()
        .map(str::trim)
        .filter(|l| {
            l.starts_with("X ")
                || l.starts_with('❌')
                || l.starts_with("💣")
                || l.contains("Exiting due to")
                || l.starts_with("! ")
        })
        .map(str::to_owned)
        .collect();
    if !marked.is_empty() {
        return marked;
    }
    let lines: Vec<&str> = output
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    lines[lines.len().saturating_sub(5)..]
        .iter()
        .map(|l| (*l).to_owned())
        .collect()
}

#[derive(Debug, thiserror::Error)]
pub enum MinikubeError {
    /// A running or stopped profile has another size than the config asks for.
    #[error(
        "minikube profile `{profile}` has {has}, but devenv.toml asks for {wants}; minikube would keep the old size\n  fix: recreate it at the configured size (deletes its workloads): devenv up --recreate-cluster   (or: minikube delete -p {profile} && devenv up)\n  fix: or keep it: set {keep} in [cluster] of devenv.toml"
    )]
    SizeMismatch {
        profile: String,
        has: String,
        wants: String,
        keep: String,
    },
    /// The profile is paused.
    #[error("minikube profile `{profile}` is paused\n  fix: minikube unpause -p {profile}")]
    Paused { profile: String },
    /// Host up, components down.
    #[error(
        "minikube profile `{profile}` is not healthy ({detail})\n  fix: minikube start -p {profile}   (restarts the stopped components)\n  fix: if that fails, look at: minikube logs -p {profile}"
    )]
    Broken { profile: String, detail: String },
    /// `minikube start` failed; its own error lines are shown.
    #[error("`{command}` failed (exit {code}):\n{}", lines.iter().map(|l| format!("  {l}")).collect::<Vec<_>>().join("\n"))]
    StartFailed {
        command: String,
        code: String,
        lines: Vec<String>,
    },
    /// A minikube command could not run, or outran its deadline.
    #[error(transparent)]
    Exec(#[from] ExecError),
    /// Minikube's docker-env could not be read.
    #[error(
        "{0}\n  hint: devenv never falls back to the host's Docker daemon on its own: images built there are invisible to the cluster"
    )]
    DockerEnv(String),
    /// A command exited non-zero.
    #[error("`{command}` failed: {detail}")]
    Command { command: String, detail: String },
}

/// What `ensure` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    AlreadyRunning,
    Created,
    Started,
    Recreated,
}

pub struct Minikube<'a> {
    pub cfg: &'a Config,
    /// Deadline of the short queries (status, profile list, addons, docker-env).
    pub query_timeout: Duration,
}

impl Minikube<'_> {
    fn profile(&self) -> &str {
        &self.cfg.cluster.profile
    }

    fn cmd(&self, args: &[&str]) -> Cmd {
        Cmd::new("minikube")
            .args(args.iter().copied())
            .timeout(self.query_timeout)
    }

    pub fn state(&self) -> Result<ProfileState, MinikubeError> {
        let f = exec::run(&self.cmd(&["status", "-p", self.profile(), "-o", "json"]))?;
        Ok(parse_status(&f.stdout, f.code))
    }

    fn listed(&self) -> Result<Option<Profile>, MinikubeError> {
        let cmd = self.cmd(&["profile", "list", "-o", "json"]);
        let f = exec::run(&cmd)?;
        let profiles = minikube_profiles(&f.stdout).map_err(|detail| MinikubeError::Command {
            command: cmd.display(),
            detail,
        })?;
        Ok(profiles.into_iter().find(|p| p.name == self.profile()))
    }

    fn size_mismatch(&self, p: &Profile) -> Option<MinikubeError> {
        let c = &self.cfg.cluster;
        let cpus_differ = p.cpus.is_some_and(|v| v != u64::from(c.cpus));
        let memory_differs = p.memory_mb.is_some_and(|v| v != c.memory_mb);
        let driver_differs = matches!((&c.driver, &p.driver), (Some(w), Some(h)) if w != h);
        if !(cpus_differ || memory_differs || driver_differs) {
            return None;
        }
        let show = |cpus: Option<u64>, mem: Option<u64>, driver: Option<&str>| {
            let mut s = format!(
                "{} CPUs and {} MB",
                cpus.map_or("?".to_owned(), |v| v.to_string()),
                mem.map_or("?".to_owned(), |v| v.to_string())
            );
            if let Some(d) = driver {
                s.push_str(&format!(" (driver {d})"));
            }
            s
        };
        Some(MinikubeError::SizeMismatch {
            profile: self.profile().to_owned(),
            has: show(
                p.cpus,
                p.memory_mb,
                driver_differs.then_some(p.driver.as_deref()).flatten(),
            ),
            wants: show(
                Some(u64::from(c.cpus)),
                Some(c.memory_mb),
                driver_differs.then_some(c.driver.as_deref()).flatten(),
            ),
            keep: match (p.cpus, p.memory_mb) {
                (Some(pc), Some(pm)) => format!("cpus = {pc} and memory = \"{pm}mb\""),
                _ => "cpus and memory to the profile's size".to_owned(),
            },
        })
    }

    fn start(
        &self,
        argv: Vec<String>,
        progress: &mut dyn FnMut(&str),
    ) -> Result<(), MinikubeError> {
        let cmd = Cmd::new("minikube")
            .args(argv.into_iter().skip(1))
            .timeout(self.cfg.cluster.start_timeout);
        let f = exec::run_lines(&cmd, |l| progress(l))?;
        if f.code == Some(0) {
            Ok(())
        } else {
            Err(MinikubeError::StartFailed {
                command: cmd.display(),
                code: f.code.map_or("signal".to_owned(), |c| c.to_string()),
                lines: error_lines(&f.stdout),
            })
        }
    }

    /// Brings the profile up at the configured size. `recreate` allows deleting a profile of
    /// the wrong size first.
    pub fn ensure(
        &self,
        recreate: bool,
        progress: &mut dyn FnMut(&str),
    ) -> Result<Action, MinikubeError> {
        let profile = self.profile().to_owned();
        let state = self.state()?;
        let full_start = start_command(self.cfg);
        match state {
            ProfileState::Absent => {
                self.start(full_start, progress)?;
                Ok(Action::Created)
            }
            ProfileState::Paused => Err(MinikubeError::Paused { profile }),
            ProfileState::Broken { detail } => Err(MinikubeError::Broken { profile, detail }),
            ProfileState::Running | ProfileState::Stopped => {
                if let Some(mismatch) = self.listed()?.and_then(|p| self.size_mismatch(&p)) {
                    if !recreate {
                        return Err(mismatch);
                    }
                    progress(&format!(
                        "deleting profile `{profile}` to recreate it at the configured size (--recreate-cluster)"
                    ));
                    let del = Cmd::new("minikube")
                        .args(["delete", "-p", &profile])
                        .timeout(self.cfg.cluster.start_timeout);
                    let f = exec::run_lines(&del, |l| progress(l))?;
                    if f.code != Some(0) {
                        return Err(MinikubeError::Command {
                            command: del.display(),
                            detail: error_lines(&f.stdout).join(" / "),
                        });
                    }
                    self.start(full_start, progress)?;
                    return Ok(Action::Recreated);
                }
                if state == ProfileState::Running {
                    return Ok(Action::AlreadyRunning);
                }
                // A stopped profile starts as it is: its size was checked above.
                self.start(
                    vec!["minikube".into(), "start".into(), "-p".into(), profile],
                    progress,
                )?;
                Ok(Action::Started)
            }
        }
    }

    /// Enables the configured addons that are off; returns those it enabled.
    pub fn ensure_addons(&self) -> Result<Vec<String>, MinikubeError> {
        if self.cfg.cluster.addons.is_empty() {
            return Ok(Vec::new());
        }
        let f = exec::run(&self.cmd(&["addons", "list", "-p", self.profile(), "-o", "json"]))?;
        let known = parse_addons(&f.stdout);
        let mut enabled = Vec::new();
        for addon in &self.cfg.cluster.addons {
            if known.get(addon) == Some(&true) {
                continue;
            }
            let cmd = Cmd::new("minikube")
                .args(["addons", "enable", addon, "-p", self.profile()])
                .timeout(self.cfg.cluster.start_timeout);
            let f = exec::run(&cmd)?;
            if f.code != Some(0) {
                return Err(MinikubeError::Command {
                    command: cmd.display(),
                    detail: error_lines(&format!("{}{}", f.stdout, f.stderr)).join(" / "),
                });
            }
            enabled.push(addon.clone());
        }
        Ok(enabled)
    }

    /// Reads how builds reach the cluster. Call again after every restart of the cluster: with
    /// the docker driver, the daemon's port changes.
    pub fn image_store(&self) -> Result<ImageStore, MinikubeError> {
        let f = exec::run(&self.cmd(&[
            "-p",
            self.profile(),
            "docker-env",
            "--shell",
            "none",
            "-o",
            "json",
        ]))?;
        parse_docker_env(&format!("{}{}", f.stdout, f.stderr), f.code)
            .map_err(MinikubeError::DockerEnv)
    }

    /// The cluster node's address as the host reaches it (for NodePort URLs).
    pub fn ip(&self) -> Result<String, MinikubeError> {
        let cmd = self.cmd(&["ip", "-p", self.profile()]);
        let f = exec::run(&cmd)?;
        match f.stdout.lines().map(str::trim).find(|l| !l.is_empty()) {
            Some(ip) if f.code == Some(0) => Ok(ip.to_owned()),
            _ => Err(MinikubeError::Command {
                command: cmd.display(),
                detail: error_lines(&format!("{}{}", f.stdout, f.stderr)).join(" / "),
            }),
        }
    }

    pub fn stop(&self) -> Result<(), MinikubeError> {
        let cmd = Cmd::new("minikube")
            .args(["stop", "-p", self.profile()])
            .timeout(self.cfg.cluster.start_timeout);
        let f = exec::run(&cmd)?;
        if f.code == Some(0) {
            Ok(())
        } else {
            Err(MinikubeError::Command {
                command: cmd.display(),
                detail: error_lines(&format!("{}{}", f.stdout, f.stderr)).join(" / "),
            })
        }
    }
}

/// The `minikube start` command line for the configured profile.
pub fn start_command(cfg: &Config) -> Vec<String> {
    let c = &cfg.cluster;
    let mut argv: Vec<String> = vec![
        "minikube".into(),
        "start".into(),
        "-p".into(),
        c.profile.clone(),
        format!("--cpus={}", c.cpus),
        format!("--memory={}", c.memory_mb),
    ];
    if let Some(d) = c.disk_mb {
        argv.push(format!("--disk-size={d}mb"));
    }
    if let Some(d) = &c.driver {
        argv.push(format!("--driver={d}"));
    }
    if let Some(v) = &c.kubernetes_version {
        argv.push(format!("--kubernetes-version={v}"));
    }
    if let Some(r) = &c.container_runtime {
        argv.push(format!("--container-runtime={r}"));
    }
    argv.extend(c.start_flags.iter().cloned());
    argv
}

/// The first JSON object in a tool's output: tools print notices before or after it.
pub fn json_object(text: &str) -> Option<serde_json::Value> {
    let start = text.find('{')?;
    let mut stream =
        serde_json::Deserializer::from_str(&text[start..]).into_iter::<serde_json::Value>();
    match stream.next() {
        Some(Ok(v @ serde_json::Value::Object(_))) => Some(v),
        _ => text[start + 1..]
            .find('{')
            .and_then(|i| json_object(&text[start + 1 + i..])),
    }
}

/// One profile from `minikube profile list -o json`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Profile {
    pub name: String,
    pub status: String,
    pub cpus: Option<u64>,
    pub memory_mb: Option<u64>,
    pub driver: Option<String>,
    pub valid: bool,
}

#[derive(Debug, serde::Deserialize)]
struct RawProfiles {
    #[serde(default)]
    valid: Option<Vec<serde_json::Value>>,
    #[serde(default)]
    invalid: Option<Vec<serde_json::Value>>,
    #[serde(default)]
    error: Option<serde_json::Value>,
}

/// Parses `minikube profile list -o json`: `{"invalid": [...], "valid": [{"Name", "Status",
/// "Config": {"CPUs", "Memory", "Driver", ...}}]}`, or `{"error": {...}}` when minikube could
/// not read its profiles.
pub fn minikube_profiles(out: &str) -> Result<Vec<Profile>, String> {
    let v = json_object(out).ok_or_else(|| {
        format!(
            "no JSON in the output: {}",
            out.lines().next().unwrap_or("(empty)")
        )
    })?;
    let raw: RawProfiles = serde_json::from_value(v).map_err(|e| e.to_string())?;
    if let Some(err) = raw.error {
        return Err(format!("minikube could not list profiles: {err}"));
    }
    let one = |p: &serde_json::Value, valid: bool| Profile {
        name: p["Name"].as_str().unwrap_or_default().to_owned(),
        status: p["Status"].as_str().unwrap_or("Unknown").to_owned(),
        cpus: p["Config"]["CPUs"].as_u64(),
        memory_mb: p["Config"]["Memory"].as_u64(),
        driver: p["Config"]["Driver"].as_str().map(str::to_owned),
        valid,
    };
    let mut out = Vec::new();
    out.extend(raw.valid.unwrap_or_default().iter().map(|p| one(p, true)));
    out.extend(
        raw.invalid
            .unwrap_or_default()
            .iter()
            .map(|p| one(p, false)),
    );
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minikube_profile_list() {
        let out = r#"{"invalid":[{"Name":"old","Status":"","Config":null}],"valid":[{"Name":"minikube","Status":"Running","Config":{"Name":"minikube","Memory":4000,"CPUs":2,"DiskSize":20000,"Driver":"docker","KubernetesConfig":{"KubernetesVersion":"v1.32.0"}},"Active":true}]}"#;
        let ps = minikube_profiles(out).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(ps.len(), 2);
        assert_eq!(
            ps[0],
            Profile {
                name: "minikube".into(),
                status: "Running".into(),
                cpus: Some(2),
                memory_mb: Some(4000),
                driver: Some("docker".into()),
                valid: true
            }
        );
        assert!(!ps[1].valid);
        assert_eq!(
            minikube_profiles(r#"{"invalid":[],"valid":[]}"#),
            Ok(vec![])
        );
        // A notice line before the JSON, as some releases print.
        assert_eq!(
            minikube_profiles(
                "! Executing \"docker container inspect\" took an unusually long time\n{\"invalid\":[],\"valid\":[]}\n"
            ),
            Ok(vec![])
        );
        assert!(
            minikube_profiles(
                r#"{"error":{"Op":"open","Path":"/root/.minikube/profiles","Err":13}}"#
            )
            .is_err()
        );
        assert!(minikube_profiles("").is_err());
    }

    /// `minikube status -o json` as several releases print it.
    #[test]
    fn status_in_the_formats_of_several_releases() {
        let running = r#"{"Name":"minikube","Host":"Running","Kubelet":"Running","APIServer":"Running","Kubeconfig":"Configured","Worker":false}"#;
        assert_eq!(parse_status(running, Some(0)), ProfileState::Running);
        // v1.3x adds fields (TimeToStop, DockerEnv) and may print a notice first.
        let newer = "* minikube 1.36.0 is available!\n{\"Name\":\"minikube\",\"Host\":\"Running\",\"Kubelet\":\"Running\",\"APIServer\":\"Running\",\"Kubeconfig\":\"Configured\",\"Worker\":false,\"TimeToStop\":\"Nonexistent\",\"DockerEnv\":\"in-use\"}";
        assert_eq!(parse_status(newer, Some(0)), ProfileState::Running);
        let stopped = r#"{"Name":"minikube","Host":"Stopped","Kubelet":"Stopped","APIServer":"Stopped","Kubeconfig":"Stopped","Worker":false}"#;
        assert_eq!(parse_status(stopped, Some(7)), ProfileState::Stopped);
        let paused = r#"{"Name":"minikube","Host":"Running","Kubelet":"Stopped","APIServer":"Paused","Kubeconfig":"Configured","Worker":false}"#;
        assert_eq!(parse_status(paused, Some(2)), ProfileState::Paused);
        let apiserver_down = r#"{"Name":"minikube","Host":"Running","Kubelet":"Running","APIServer":"Stopped","Kubeconfig":"Configured","Worker":false}"#;
        assert!(matches!(
            parse_status(apiserver_down, Some(2)),
            ProfileState::Broken { .. }
        ));
        let absent = r#"{"Name":"dev","Host":"Nonexistent","Kubelet":"Nonexistent","APIServer":"Nonexistent","Kubeconfig":"Nonexistent","Worker":false}"#;
        assert_eq!(parse_status(absent, Some(85)), ProfileState::Absent);
        assert_eq!(
            parse_status(
                "* Profile \"dev\" not found. Run \"minikube profile list\" to view all profiles.\n",
                Some(85)
            ),
            ProfileState::Absent
        );
        // Multi-node: an array; a worker that is down makes the profile unhealthy.
        let multi = r#"[{"Name":"minikube","Host":"Running","Kubelet":"Running","APIServer":"Running","Kubeconfig":"Configured","Worker":false},{"Name":"minikube-m02","Host":"Stopped","Kubelet":"Stopped","APIServer":"Irrelevant","Kubeconfig":"Irrelevant","Worker":true}]"#;
        assert_eq!(
            parse_status(multi, Some(1)),
            ProfileState::Broken {
                detail: "node minikube-m02 has host Stopped and kubelet Stopped".into()
            }
        );
        // Older releases printed text, not JSON: the exit code's bits still tell.
        assert_eq!(
            parse_status("host: Stopped\nkubelet: Stopped\n", Some(7)),
            ProfileState::Stopped
        );
    }

    #[test]
    fn addons_list() {
        let out = r#"{"dashboard":{"Profile":"minikube","Status":"disabled"},"ingress":{"Profile":"minikube","Status":"enabled"},"metrics-server":{"Profile":"minikube","Status":"disabled"}}"#;
        let a = parse_addons(out);
        assert_eq!(a.get("ingress"), Some(&true));
        assert_eq!(a.get("metrics-server"), Some(&false));
    }

    #[test]
    fn docker_env_outcomes() {
        let json = r#"{"DOCKER_CERT_PATH":"/home/u/.minikube/certs","DOCKER_HOST":"tcp://127.0.0.1:32771","DOCKER_TLS_VERIFY":"1","MINIKUBE_ACTIVE_DOCKERD":"minikube"}"#;
        match parse_docker_env(json, Some(0)) {
            Ok(ImageStore::DockerEnv(m)) => {
                assert_eq!(
                    m.get("DOCKER_HOST").map(String::as_str),
                    Some("tcp://127.0.0.1:32771")
                );
                assert_eq!(m.len(), 4);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            parse_docker_env(
                "X Exiting due to MK_USAGE: The none driver is not compatible with docker-env\n",
                Some(51)
            ),
            Ok(ImageStore::HostDaemon)
        );
        let containerd = "X Exiting due to MK_USAGE: The docker-env command is only compatible with the \"docker\" runtime, but this cluster was configured to use the \"containerd\" runtime.\n";
        assert_eq!(
            parse_docker_env(containerd, Some(14)),
            Ok(ImageStore::MinikubeImageBuild {
                runtime: "containerd".into()
            })
        );
        let e = parse_docker_env(
            "X Exiting due to GUEST_STATUS: state: unknown state \"minikube\"\n",
            Some(80),
        );
        assert!(
            matches!(&e, Err(m) if m.contains("exit 80") && m.contains("GUEST_STATUS")),
            "{e:?}"
        );
    }

    #[test]
    fn error_lines_prefer_minikubes_own_markers() {
        let out = "😄  minikube v1.35.0 on Debian 12\n✨  Using the docker driver\nX Exiting due to RSRC_INSUFFICIENT_CORES: Requested cpu count 4 is greater than the available cpus of 2\n";
        assert_eq!(
            error_lines(out),
            [
                "X Exiting due to RSRC_INSUFFICIENT_CORES: Requested cpu count 4 is greater than the available cpus of 2"
            ]
        );
        assert_eq!(error_lines("a\nb\n"), ["a", "b"]);
    }
}
