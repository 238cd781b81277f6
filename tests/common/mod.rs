//! Helpers shared by the integration tests: temporary projects and running the real binary.
#![allow(dead_code)]

pub mod fake_kube;
pub mod real;
pub mod registry;
pub mod running;
pub mod world;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn devenv_bin() -> &'static str {
    env!("CARGO_BIN_EXE_devenv")
}

/// `devenv up` in `p` with nothing but the system's tools on PATH (no minikube, docker or
/// kubectl is needed by a local-only project), `home` as HOME, and any free page port.
pub fn local_up(p: &Project, home: &Path, extra: &[&str]) -> Command {
    let mut cmd = Command::new(devenv_bin());
    cmd.arg("up")
        .args(extra)
        .current_dir(p.path())
        .env("PATH", "/usr/bin:/bin")
        .env("HOME", home)
        .env("DEVENV_WEB_PORT", "0")
        .env_remove("KUBECONFIG")
        .env_remove("DOCKER_HOST");
    cmd
}

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A throwaway project directory.
pub struct Project {
    pub dir: tempfile::TempDir,
}

impl Project {
    pub fn new() -> Project {
        match tempfile::tempdir() {
            Ok(dir) => Project { dir },
            Err(e) => panic!("cannot create a temp dir: {e}"),
        }
    }

    /// A copy of `examples/<name>`.
    pub fn example(name: &str) -> Project {
        let p = Project::new();
        copy_dir(&repo_root().join("examples").join(name), p.path());
        p
    }

    /// examples/todo in namespace `ns`, with free forward ports, its frontend's NodePort set
    /// to `node_port` (NodePorts are cluster-wide; 0 lets the cluster choose one) and a .env
    /// from its .env.example.
    pub fn todo(ns: &str, node_port: u32) -> Project {
        let p = Project::example("todo");
        let cfg = p
            .read("devenv.toml")
            .replace("namespace = \"todo\"", &format!("namespace = \"{ns}\""))
            .replace("8000:8000", &format!("{}:8000", free_port()))
            .replace("3000:3000", &format!("{}:3000", free_port()))
            .replace(
                "values = [\"helm/values-dev.yaml\"]\n",
                &format!(
                    "values = [\"helm/values-dev.yaml\"]\nset = {{ \"frontend.nodePort\" = {node_port} }}\n"
                ),
            );
        p.write("devenv.toml", &cfg);
        p.write(".env", &p.read(".env.example"));
        p
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn write(&self, rel: &str, content: &str) -> &Project {
        let p = self.path().join(rel);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).unwrap_or_else(|e| panic!("mkdir {parent:?}: {e}"));
        }
        std::fs::write(&p, content).unwrap_or_else(|e| panic!("write {p:?}: {e}"));
        self
    }

    pub fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.path().join(rel)).unwrap_or_else(|e| panic!("read {rel}: {e}"))
    }

    /// Runs devenv with `args` in the project directory.
    pub fn devenv(&self, args: &[&str]) -> Output {
        Command::new(devenv_bin())
            .args(args)
            .current_dir(self.path())
            .env_remove("DEVENV_CONFIG")
            .env("NO_COLOR", "1")
            .output()
            .unwrap_or_else(|e| panic!("cannot run devenv: {e}"))
    }
}

/// Copies a tree of the repository's, leaving out what the repository's .gitignore keeps out
/// of it: a developer's own `.env` (the README's run step makes examples/todo/.env), which
/// no test may depend on (issue 28 point 22: its presence failed an init test).
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap_or_else(|e| panic!("mkdir {to:?}: {e}"));
    let entries = std::fs::read_dir(from).unwrap_or_else(|e| panic!("read {from:?}: {e}"));
    for e in entries.flatten() {
        if e.file_name() == ".env" {
            continue;
        }
        let target = to.join(e.file_name());
        let is_dir = e.file_type().map(|t| t.is_dir()).unwrap_or(false);
        if is_dir {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), &target)
                .unwrap_or_else(|err| panic!("copy {:?}: {err}", e.path()));
        }
    }
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A directory of fake executables standing in for tools that cannot run here. Each fake is a
/// shell script printing the real tool's documented output format.
pub struct FakeBin {
    pub dir: tempfile::TempDir,
}

impl FakeBin {
    pub fn new() -> FakeBin {
        FakeBin {
            dir: tempfile::tempdir().unwrap_or_else(|e| panic!("{e}")),
        }
    }

    /// Adds `name` with a `/bin/sh` script body.
    pub fn tool(&self, name: &str, body: &str) -> &FakeBin {
        let p = self.dir.path().join(name);
        std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap_or_else(|e| panic!("{e}"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755))
                .unwrap_or_else(|e| panic!("{e}"));
        }
        self
    }

    /// Makes a real tool from the machine's PATH available under its own name (in place of
    /// the fake of that name, if there is one).
    pub fn real(&self, name: &str) -> &FakeBin {
        let real = which(name).unwrap_or_else(|| {
            panic!("{name} is not installed: run scripts/install-test-tools.sh")
        });
        let _ = std::fs::remove_file(self.dir.path().join(name));
        #[cfg(unix)]
        std::os::unix::fs::symlink(&real, self.dir.path().join(name))
            .unwrap_or_else(|e| panic!("{e}"));
        self
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

/// The full path of `name` on this process's PATH.
pub fn which(name: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// A fake /proc with the given CPUs, memory (MB) and inotify limits.
pub fn fake_proc(
    cpus: usize,
    total_mb: u64,
    avail_mb: u64,
    watches: u64,
    instances: u64,
) -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let cpuinfo: String = (0..cpus)
        .map(|i| format!("processor\t: {i}\nmodel name\t: Fake CPU\n\n"))
        .collect();
    std::fs::write(d.path().join("cpuinfo"), cpuinfo).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(
        d.path().join("meminfo"),
        format!(
            "MemTotal:       {} kB\nMemFree:        1024 kB\nMemAvailable:   {} kB\n",
            total_mb * 1024,
            avail_mb * 1024
        ),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let ino = d.path().join("sys/fs/inotify");
    std::fs::create_dir_all(&ino).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(ino.join("max_user_watches"), format!("{watches}\n"))
        .unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(ino.join("max_user_instances"), format!("{instances}\n"))
        .unwrap_or_else(|e| panic!("{e}"));
    d
}

impl FakeBin {
    /// Installs tests/fixtures/fake-minikube as `minikube` (state in $FAKE_MINIKUBE_DIR).
    pub fn minikube(&self) -> &FakeBin {
        let fixture = std::fs::read_to_string(repo_root().join("tests/fixtures/fake-minikube"))
            .unwrap_or_else(|e| panic!("{e}"));
        self.tool("minikube", fixture.trim_start_matches("#!/bin/sh\n"))
    }
}

/// A port on 127.0.0.1 that nothing listens on right now, for a listener devenv itself opens
/// (a port-forward), so the test cannot hold it.
///
/// It is not one the OS hands out for port 0: those come from the ephemeral range, where every
/// fake API server, status page and outgoing connection of the tests running side by side
/// gets its port, and one could take this port between the check and devenv's bind. A port
/// below that range is picked at random (by process, time and a counter), then checked free.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let low: u32 = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(32768);
    let (start, span) = (10000u32, low.saturating_sub(10000).max(1000));
    let seed = std::process::id()
        ^ std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
    for _ in 0..1000 {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = start + seed.wrapping_add(n.wrapping_mul(7919)) % span;
        let Ok(port) = u16::try_from(port) else {
            continue;
        };
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port below the ephemeral range");
}

/// A containers-storage root of its own (vfs), so tests never share or pollute images.
pub struct Storage {
    dir: tempfile::TempDir,
}

/// Where `../shared/images/make-base-images.sh` (which `scripts/test.sh` runs) leaves the base
/// images (busybox:1.36, python:3.11-slim, node:18/20) that the examples build FROM: the
/// system's buildah/podman store, vfs driver.
pub const BASE_STORE: &str = "/var/lib/containers/storage";

/// Whether the base images are there; where they are not, says why `test` is skipped (or,
/// under CI=true with ../shared/images present, fails: CI must run it).
pub fn base_images(test: &str) -> bool {
    let found = Command::new("buildah")
        .args([
            "--storage-driver",
            "vfs",
            "inspect",
            "--type",
            "image",
            "busybox:1.36",
        ])
        .env("CONTAINERS_STORAGE_CONF", "/dev/null")
        .output()
        .is_ok_and(|o| o.status.success());
    if found {
        return true;
    }
    let shared = repo_root().join("../shared/images");
    if std::env::var("CI").is_ok_and(|v| v == "true") && shared.is_dir() {
        panic!(
            "{test}: CI=true and {} exists, but the base images are not in {BASE_STORE}: run the suite through scripts/test.sh",
            shared.display()
        );
    }
    eprintln!(
        "skipped: {test} needs the base images (scripts/test.sh makes them with ../shared/images/make-base-images.sh when it exists)"
    );
    false
}

impl Storage {
    /// A store of the test's own, which reads the base images from [`BASE_STORE`] (an
    /// additional, read-only image store) and writes only under its temporary directory.
    pub fn new() -> Storage {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let mut conf = format!(
            "[storage]\ndriver = \"vfs\"\nrunroot = \"{0}/run\"\ngraphroot = \"{0}/graph\"\n",
            dir.path().display()
        );
        if Path::new(BASE_STORE).join("vfs-images").is_dir() {
            conf.push_str(&format!(
                "[storage.options]\nadditionalimagestores = [\"{BASE_STORE}\"]\n"
            ));
        }
        std::fs::write(dir.path().join("storage.conf"), conf).unwrap_or_else(|e| panic!("{e}"));
        Storage { dir }
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The file to give buildah and podman as CONTAINERS_STORAGE_CONF.
    pub fn conf(&self) -> PathBuf {
        self.dir.path().join("storage.conf")
    }
}

/// Makes a FIFO at `path` (a hostile repository's file that a read would wait on forever).
pub fn mkfifo(path: &Path) {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes())
        .unwrap_or_else(|e| panic!("{e}"));
    // SAFETY: mkfifo(3) on a path of the test's own temporary directory.
    assert_eq!(
        unsafe { libc::mkfifo(c.as_ptr(), 0o644) },
        0,
        "mkfifo {}",
        path.display()
    );
}

/// Runs `cmd` (its output captured) for at most `within`: its output, or `None` when it had
/// to be killed (it hung).
pub fn output_within(mut cmd: Command, within: std::time::Duration) -> Option<Output> {
    let mut child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{e}"));
    let deadline = std::time::Instant::now() + within;
    loop {
        if let Ok(Some(_)) = child.try_wait() {
            return Some(child.wait_with_output().unwrap_or_else(|e| panic!("{e}")));
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// A command that runs `program` as another local user: nobody (uid and gid 65534, no
/// supplementary groups), by `setpriv` (util-linux), which must be installed.
pub fn as_other_user(program: impl AsRef<std::ffi::OsStr>) -> Command {
    let setpriv = which("setpriv").unwrap_or_else(|| panic!("setpriv (util-linux)"));
    let mut cmd = Command::new(setpriv);
    cmd.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(program);
    cmd
}

/// The permission bits of `path` (`0o600`).
pub fn mode_of(path: &Path) -> u32 {
    std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(path)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
            .permissions(),
    ) & 0o777
}
