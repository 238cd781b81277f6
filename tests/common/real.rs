//! The real control plane (`../shared/kubeapi`: kube-apiserver, controller-manager, scheduler,
//! etcd and a stand-in kubelet) that `scripts/test.sh` starts for the real-cluster tier.
//!
//! `scripts/test.sh` exports `DEVENV_KUBEAPI_HOME` (the directory start.sh ran in; its
//! `kubeconfig` is the admin's). A test asks [`RealCluster::get`] for it: where it is absent
//! (`cargo test` run by hand, or a clone without `../shared/kubeapi`) the test says that it was
//! skipped and why, and returns. Under `CI=true` with `../shared/kubeapi` present, an absent
//! control plane is a failure, not a skip: CI must run this tier.
//!
//! Every test works in namespaces of its own ([`RealCluster::namespace`]), so the tests run
//! side by side on one control plane; they are deleted when the handle is dropped.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::Value;

/// Images whose name matches these (from the stand-in kubelet's failure injection) crash or
/// cannot be pulled; every test uses the same lines, so tests may write them side by side.
pub const INJECTIONS: &str =
    "CRASH_IMAGES=(^|/)crashloop[^/]*:\nNEVER_PULL_IMAGES=(^|/)neverpull[^/]*:\n";

pub struct RealCluster {
    pub home: PathBuf,
    /// The admin kubeconfig (context `local`).
    pub admin: PathBuf,
    namespaces: Mutex<Vec<String>>,
}

impl RealCluster {
    /// The running control plane, or None after printing why `test` is skipped.
    pub fn get(test: &str) -> Option<RealCluster> {
        Self::from_env(test, "DEVENV_KUBEAPI_HOME", "the real control plane")
    }

    /// The control plane with a real node (`REAL_NODE=1`: a real kubelet on containerd, with
    /// Services and cluster DNS) that `scripts/test.sh` starts beside the other, or None after
    /// printing why `test` is skipped.
    pub fn node(test: &str) -> Option<RealCluster> {
        Self::from_env(test, "DEVENV_NODE_HOME", "the real node")
    }

    /// A real node with Minikube's docker runtime (`REAL_NODE=docker`: the kubelet runs pods
    /// through the node's own dockerd) that `scripts/test.sh` starts after the other node has
    /// stopped (one real node per machine), or None after printing why `test` is skipped.
    pub fn docker_node(test: &str) -> Option<RealCluster> {
        Self::from_env(
            test,
            "DEVENV_DOCKER_NODE_HOME",
            "a real node with the docker runtime",
        )
    }

    fn from_env(test: &str, var: &str, what: &str) -> Option<RealCluster> {
        let shared = super::repo_root().join("../shared/kubeapi");
        let Some(home) = std::env::var_os(var).map(PathBuf::from) else {
            if std::env::var("CI").is_ok_and(|v| v == "true") && shared.is_dir() {
                panic!(
                    "{test}: CI=true and {} exists, but {var} is not set: run the suite through scripts/test.sh",
                    shared.display()
                );
            }
            eprintln!(
                "skipped: {test} needs {what} (scripts/test.sh starts it from ../shared/kubeapi when that exists and sets {var})"
            );
            return None;
        };
        let admin = home.join("kubeconfig");
        assert!(
            admin.is_file(),
            "{var}={} has no kubeconfig",
            home.display()
        );
        let tmp = home.join(format!("kubelet.env.{}", std::process::id()));
        std::fs::write(&tmp, INJECTIONS).unwrap_or_else(|e| panic!("{e}"));
        std::fs::rename(&tmp, home.join("kubelet.env")).unwrap_or_else(|e| panic!("{e}"));
        Some(RealCluster {
            home,
            admin,
            namespaces: Mutex::new(Vec::new()),
        })
    }

    /// `load-image.sh` of ../shared/kubeapi (for a real node's image store).
    pub fn load_image_script() -> PathBuf {
        super::repo_root().join("../shared/kubeapi/load-image.sh")
    }

    /// Puts `image` from the shared base images into the node's image store, as a cluster
    /// pulls an image a chart takes from a registry (nothing is pulled here).
    pub fn load_base_image(&self, image: &str) {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let archive = dir.path().join("image.tar");
        let saved = Command::new("buildah")
            .args(["--storage-driver", "vfs", "push", image])
            .arg(format!("docker-archive:{}:{image}", archive.display()))
            .env("CONTAINERS_STORAGE_CONF", "/dev/null")
            .output()
            .unwrap_or_else(|e| panic!("buildah push: {e}"));
        assert!(
            saved.status.success(),
            "buildah push {image}: {}",
            String::from_utf8_lossy(&saved.stderr)
        );
        let loaded = Command::new("bash")
            .arg(Self::load_image_script())
            .arg(&archive)
            .env("KUBEAPI_HOME", &self.home)
            .output()
            .unwrap_or_else(|e| panic!("load-image.sh: {e}"));
        assert!(
            loaded.status.success(),
            "load-image.sh {image}: {}",
            String::from_utf8_lossy(&loaded.stderr)
        );
    }

    /// A namespace name of this test's own (`<base>-<pid>-<n>`); deleted on drop.
    pub fn namespace(&self, base: &str) -> String {
        let mut list = self.namespaces.lock().unwrap_or_else(|p| p.into_inner());
        let ns = format!("{base}-{}-{}", std::process::id(), list.len());
        list.push(ns.clone());
        ns
    }

    /// Deletes namespace `ns` with this test's own when the test ends: one that a config
    /// names after its folder (`devenv init`), not made by [`RealCluster::namespace`].
    pub fn remove_later(&self, ns: &str) {
        let mut list = self.namespaces.lock().unwrap_or_else(|p| p.into_inner());
        list.push(ns.to_owned());
    }

    /// Writes a kubeconfig for devenv: the admin's, with its context named `context` (as
    /// minikube names a profile's context).
    pub fn kubeconfig_as(&self, file: &Path, context: &str) {
        std::fs::copy(&self.admin, file).unwrap_or_else(|e| panic!("{e}"));
        let out = Command::new("kubectl")
            .args(["config", "rename-context", "local", context])
            .env("KUBECONFIG", file)
            .output()
            .unwrap_or_else(|e| panic!("kubectl: {e}"));
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Runs the real kubectl as the admin; returns stdout, panics when it fails.
    pub fn kubectl(&self, args: &[&str]) -> String {
        let (ok, out, err) = self.kubectl_result(args);
        assert!(ok, "kubectl {}: {err}", args.join(" "));
        out
    }

    /// Runs the real kubectl as the admin: (succeeded, stdout, stderr).
    pub fn kubectl_result(&self, args: &[&str]) -> (bool, String, String) {
        let out = Command::new("kubectl")
            .args(args)
            .env("KUBECONFIG", &self.admin)
            .output()
            .unwrap_or_else(|e| panic!("kubectl: {e}"));
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// An object as JSON, or None when it does not exist.
    pub fn get_json(&self, kind: &str, namespace: Option<&str>, name: &str) -> Option<Value> {
        let mut args = vec!["get", kind, name, "-o", "json", "--show-managed-fields"];
        if let Some(ns) = namespace {
            args.extend(["-n", ns]);
        }
        let (ok, out, err) = self.kubectl_result(&args);
        if !ok {
            assert!(err.contains("NotFound"), "kubectl get {kind} {name}: {err}");
            return None;
        }
        Some(serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}")))
    }

    /// Polls the API server (through kubectl) until `cond` holds, for up to 60 s.
    pub fn wait_until(&self, what: &str, mut cond: impl FnMut(&RealCluster) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if cond(self) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("the cluster never reached: {what}");
    }
}

impl Drop for RealCluster {
    fn drop(&mut self) {
        let list = self.namespaces.lock().unwrap_or_else(|p| p.into_inner());
        for ns in list.iter() {
            let _ = Command::new("kubectl")
                .args([
                    "delete",
                    "namespace",
                    ns,
                    "--ignore-not-found",
                    "--wait=false",
                ])
                .env("KUBECONFIG", &self.admin)
                .output();
        }
    }
}

/// A control plane of one test's own, for what would disturb the others (an API server
/// outage): started with `../shared/kubeapi/start.sh` in a directory of its own (about 15 s),
/// stopped and wiped by PID on drop.
pub struct OwnControlPlane {
    pub cluster: RealCluster,
    scripts: PathBuf,
    _dir: tempfile::TempDir,
}

impl OwnControlPlane {
    pub fn start() -> OwnControlPlane {
        let scripts = super::repo_root().join("../shared/kubeapi");
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let home = dir.path().join("kubeapi");
        let out = Command::new("bash")
            .arg(scripts.join("start.sh"))
            .env("KUBEAPI_HOME", &home)
            .output()
            .unwrap_or_else(|e| panic!("start.sh: {e}"));
        let me = OwnControlPlane {
            cluster: RealCluster {
                admin: home.join("kubeconfig"),
                home,
                namespaces: Mutex::new(Vec::new()),
            },
            scripts,
            _dir: dir,
        };
        assert!(
            out.status.success(),
            "start.sh failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        me
    }

    /// Kills the API server, waits `seconds`, and starts it again on the same port and data.
    pub fn outage(&self, seconds: u32) {
        let out = Command::new("bash")
            .arg(self.scripts.join("outage.sh"))
            .arg(seconds.to_string())
            .env("KUBEAPI_HOME", &self.cluster.home)
            .output()
            .unwrap_or_else(|e| panic!("outage.sh: {e}"));
        assert!(
            out.status.success(),
            "outage.sh failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for OwnControlPlane {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(self.scripts.join("stop.sh"))
            .arg("--wipe")
            .env("KUBEAPI_HOME", &self.cluster.home)
            .output();
    }
}
