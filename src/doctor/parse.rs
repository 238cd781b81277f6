//! Pure parsers for what the real tools print. Each one tolerates what releases add around
//! their output (warning and tip lines, update notices) and is tested against captured
//! samples of the real formats.

use std::fmt;

use crate::cluster::minikube::json_object;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Version {
    pub major: u64,
    pub minor: u64,
    pub patch: u64,
}

impl Version {
    pub const fn new(major: u64, minor: u64, patch: u64) -> Version {
        Version {
            major,
            minor,
            patch,
        }
    }

    /// The first `X.Y[.Z]` in `text` (`v1.35.0`, `28.2.2,`, `v4.1.4+g05fa379`) that stands
    /// on its own or after a lone `v`; `go1.19.8` is no version of the tool.
    pub fn find(text: &str) -> Option<Version> {
        let chars: Vec<char> = text.chars().collect();
        let boundary =
            |i: usize| i == 0 || !(chars[i - 1].is_alphanumeric() || chars[i - 1] == '.');
        let mut i = 0;
        while i < chars.len() {
            let starts = chars[i].is_ascii_digit()
                && (boundary(i) || (chars[i - 1] == 'v' && boundary(i - 1)));
            let end = (i..chars.len())
                .find(|&j| !(chars[j].is_ascii_digit() || chars[j] == '.'))
                .unwrap_or(chars.len());
            if starts {
                let run: String = chars[i..end].iter().collect();
                let parts: Vec<&str> = run.trim_end_matches('.').split('.').collect();
                if parts.len() >= 2 && parts.iter().all(|p| !p.is_empty()) {
                    let n = |k: usize| parts.get(k).and_then(|p| p.parse().ok()).unwrap_or(0);
                    return Some(Version::new(n(0), n(1), n(2)));
                }
            }
            i = if end > i { end } else { i + 1 };
        }
        None
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

/// `docker --version`: `Docker version 28.2.2, build e6534b4`.
pub fn docker_client_version(out: &str) -> Option<Version> {
    out.lines()
        .find(|l| l.starts_with("Docker version"))
        .and_then(Version::find)
}

/// `minikube version --short`: `v1.35.0` (older releases: `minikube version: v1.35.0`).
pub fn minikube_version(out: &str) -> Option<Version> {
    out.lines()
        .map(str::trim)
        .find(|l| l.starts_with('v') || l.starts_with("minikube version"))
        .and_then(Version::find)
}

/// `kubectl version --client -o json`: `{"clientVersion": {"gitVersion": "v1.34.5", ...}}`.
pub fn kubectl_version(out: &str) -> Option<Version> {
    let v = json_object(out)?;
    v["clientVersion"]["gitVersion"]
        .as_str()
        .and_then(Version::find)
}

/// `helm version --template '{{.Version}}'`: `v4.1.4` (or `--short`: `v3.14.0+g3fc9f4b`).
pub fn helm_version(out: &str) -> Option<Version> {
    out.lines()
        .map(str::trim)
        .find(|l| l.starts_with('v'))
        .and_then(Version::find)
}

/// `buildah version --json`: `{"version": "1.28.2", ...}`.
pub fn buildah_version(out: &str) -> Option<Version> {
    json_object(out)?["version"]
        .as_str()
        .and_then(Version::find)
}

/// `podman version --format json`: `{"Client": {"Version": "4.3.1", ...}}`.
pub fn podman_version(out: &str) -> Option<Version> {
    json_object(out)?["Client"]["Version"]
        .as_str()
        .and_then(Version::find)
}

/// What `docker version --format '{{json .}}'` says about the daemon.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DaemonState {
    Running { version: String, api: String },
    NotRunning { detail: String },
    PermissionDenied { detail: String },
    Other { detail: String },
}

/// Classifies the daemon from the JSON on stdout and the error on stderr.
pub fn docker_daemon(stdout: &str, stderr: &str) -> DaemonState {
    if let Some(server) = json_object(stdout).map(|v| v["Server"].clone())
        && let Some(version) = server["Version"].as_str()
    {
        return DaemonState::Running {
            version: version.to_owned(),
            api: server["ApiVersion"].as_str().unwrap_or("?").to_owned(),
        };
    }
    let detail = stderr
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("the daemon did not answer")
        .to_owned();
    let lower = stderr.to_ascii_lowercase();
    if lower.contains("permission denied") {
        DaemonState::PermissionDenied { detail }
    } else if lower.contains("cannot connect to the docker daemon")
        || lower.contains("is the docker daemon running")
        || lower.contains("connection refused")
        || lower.contains("no such file or directory")
        || lower.contains("error during connect")
    {
        DaemonState::NotRunning { detail }
    } else {
        DaemonState::Other { detail }
    }
}

/// Counts `processor` lines of /proc/cpuinfo.
pub fn cpuinfo_cpus(text: &str) -> usize {
    text.lines().filter(|l| l.starts_with("processor")).count()
}

/// `(MemTotal, MemAvailable)` in MB from /proc/meminfo.
pub fn meminfo_mb(text: &str) -> (Option<u64>, Option<u64>) {
    let field = |name: &str| {
        text.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<u64>().ok())
            .map(|kb| kb / 1024)
    };
    (field("MemTotal:"), field("MemAvailable:"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_files() {
        assert_eq!(
            cpuinfo_cpus("processor\t: 0\nmodel name\t: x\n\nprocessor\t: 1\n"),
            2
        );
        assert_eq!(
            meminfo_mb(
                "MemTotal:       24576000 kB\nMemFree:         1000 kB\nMemAvailable:   20480000 kB\n"
            ),
            (Some(24000), Some(20000))
        );
    }

    #[test]
    fn versions_in_real_outputs() {
        let v = Version::new;
        assert_eq!(
            docker_client_version("Docker version 28.2.2, build e6534b4\n"),
            Some(v(28, 2, 2))
        );
        assert_eq!(minikube_version("v1.35.0\n"), Some(v(1, 35, 0)));
        assert_eq!(
            minikube_version("minikube version: v1.26.1\ncommit: 62e108c\n"),
            Some(v(1, 26, 1))
        );
        assert_eq!(
            minikube_version("* minikube 1.36.0 is available! Download it: https://x\nv1.35.0\n"),
            Some(v(1, 35, 0))
        );
        let kubectl = r#"{
  "clientVersion": {"major": "1", "minor": "34", "gitVersion": "v1.34.5", "platform": "linux/amd64"},
  "kustomizeVersion": "v5.7.1"
}"#;
        assert_eq!(kubectl_version(kubectl), Some(v(1, 34, 5)));
        assert_eq!(helm_version("v4.1.4"), Some(v(4, 1, 4)));
        assert_eq!(helm_version("v3.14.0+g3fc9f4b\n"), Some(v(3, 14, 0)));
        assert_eq!(
            buildah_version("{\n    \"version\": \"1.28.2\",\n    \"goVersion\": \"go1.19.8\"\n}"),
            Some(v(1, 28, 2))
        );
        assert_eq!(
            podman_version(
                r#"{"Client":{"APIVersion":"4.3.1","Version":"4.3.1","GoVersion":"go1.19.8"}}"#
            ),
            Some(v(4, 3, 1))
        );
        assert_eq!(Version::find("no digits here"), None);
        assert_eq!(
            Version::find("go1.19.8"),
            None,
            "a version glued to letters is not the tool's"
        );
        assert!(v(1, 30, 0) > v(1, 29, 9));
    }

    #[test]
    fn docker_daemon_states() {
        let client_only = r#"{"Client":{"Version":"28.2.2","ApiVersion":"1.50"},"Server":null}"#;
        assert_eq!(
            docker_daemon(
                client_only,
                "Cannot connect to the Docker daemon at unix:///var/run/docker.sock. Is the docker daemon running?\n"
            ),
            DaemonState::NotRunning {
                detail: "Cannot connect to the Docker daemon at unix:///var/run/docker.sock. Is the docker daemon running?".into()
            }
        );
        assert!(matches!(
            docker_daemon(
                client_only,
                "permission denied while trying to connect to the Docker daemon socket at unix:///var/run/docker.sock: Get \"http://%2Fvar%2Frun%2Fdocker.sock/v1.50/version\": dial unix /var/run/docker.sock: connect: permission denied\n"
            ),
            DaemonState::PermissionDenied { .. }
        ));
        let running = r#"{"Client":{"Version":"28.2.2"},"Server":{"Version":"27.4.1","ApiVersion":"1.47","Components":[]}}"#;
        assert_eq!(
            docker_daemon(running, ""),
            DaemonState::Running {
                version: "27.4.1".into(),
                api: "1.47".into()
            }
        );
        assert!(matches!(
            docker_daemon("", "something odd\n"),
            DaemonState::Other { .. }
        ));
    }
}
