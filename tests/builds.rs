//! Real image builds of examples/hello (FROM busybox:1.36, read from the base images'
//! store, see common::Storage), no Docker engine needed:
//!
//! - the real `buildah` (chroot isolation, vfs storage in a private root), its image handed
//!   to Minikube as an archive (`minikube image load`, played by tests/fixtures/fake-minikube,
//!   which reads the archive's manifest for the tag it loads);
//! - the real `docker` client against `podman system service` on a unix socket, as with
//!   Minikube's `none` driver, where builds go to the host's daemon.
//!
//! Each checks: the image exists afterwards under its content tag; a second run builds
//! nothing; touching a file listed in .dockerignore builds nothing; editing a real source
//! file builds once, with a new tag.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};
use std::time::{Duration, Instant};

use common::{FakeBin, Project, Storage, stderr, stdout};

fn fake_minikube(bin: &FakeBin, state_dir: &Path, driver: &str) {
    bin.minikube();
    std::fs::create_dir_all(state_dir).unwrap_or_else(|e| panic!("{e}"));
    for (f, v) in [
        ("state", "running"),
        ("cpus", "4"),
        ("memory", "8192"),
        ("driver", driver),
    ] {
        std::fs::write(state_dir.join(f), v).unwrap_or_else(|e| panic!("{e}"));
    }
}

fn path_with(bin: &FakeBin) -> String {
    format!(
        "{}:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin",
        bin.path().display()
    )
}

/// The reference of the single `built` or `present` line, and which it was.
fn outcome(out: &Output) -> (String, String) {
    let text = stdout(out);
    assert!(
        out.status.success(),
        "devenv build failed:\n{text}\n{}",
        stderr(out)
    );
    let line = text
        .lines()
        .find(|l| l.starts_with("built") || l.starts_with("present"))
        .unwrap_or_else(|| panic!("{text}"));
    let mut parts = line.split_whitespace();
    let what = parts.next().unwrap_or("").to_owned();
    let reference = parts.next().unwrap_or("").to_owned();
    (what, reference)
}

/// Runs the scenario shared by both builders; `exists` asks the builder's own store.
fn scenario(run: &dyn Fn() -> Output, p: &Project, exists: &dyn Fn(&str) -> bool) {
    let (what, first) = outcome(&run());
    assert_eq!(what, "built");
    assert!(
        first.starts_with("hello:devenv-") && first.len() == "hello:devenv-".len() + 12,
        "{first}"
    );
    assert!(exists(&first), "{first} is not in the image store");

    assert_eq!(
        outcome(&run()),
        ("present".to_owned(), first.clone()),
        "a second run builds nothing"
    );

    p.write(
        "notes/README.txt",
        "edited notes: listed in .dockerignore\n",
    );
    p.write("scratch.tmp", "a temp file: *.tmp is in .dockerignore\n");
    assert_eq!(
        outcome(&run()),
        ("present".to_owned(), first.clone()),
        "ignored files build nothing"
    );

    p.write("hello.txt", "hello again from devenv\n");
    let (what, second) = outcome(&run());
    assert_eq!(what, "built");
    assert_ne!(second, first, "a real edit gives a new tag");
    assert!(exists(&second));
    assert_eq!(
        outcome(&run()),
        ("present".to_owned(), second),
        "and is built once"
    );
}

/// `devenv build --builder buildah` in `p`, with a private storage root and fake Minikube.
fn buildah_build(p: &Project, storage: &Storage, fakes: &Path, bin: &FakeBin, mk: &Path) -> Output {
    Command::new(common::devenv_bin())
        .args(["build", "--builder", "buildah"])
        .current_dir(p.path())
        .env("PATH", path_with(bin))
        .env("HOME", fakes)
        .env("CONTAINERS_STORAGE_CONF", storage.conf())
        .env("BUILDAH_ISOLATION", "chroot")
        .env("FAKE_MINIKUBE_DIR", mk)
        .output()
        .unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn real_buildah_builds_hello_into_minikube_only_when_its_content_changes() {
    if !common::base_images("real_buildah_builds_hello_into_minikube_only_when_its_content_changes")
    {
        return;
    }
    let p = Project::example("hello");
    let storage = Storage::new();
    let fakes = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let bin = FakeBin::new();
    let mk = fakes.path().join("minikube");
    fake_minikube(&bin, &mk, "docker");
    let run = || buildah_build(&p, &storage, fakes.path(), &bin, &mk);
    let exists = |reference: &str| {
        let in_buildah = Command::new("buildah")
            .args(["inspect", "--type", "image", reference])
            .env("CONTAINERS_STORAGE_CONF", storage.conf())
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false);
        let loaded = std::fs::read_to_string(mk.join("images")).unwrap_or_default();
        in_buildah && loaded.lines().any(|l| l == reference)
    };
    scenario(&run, &p, &exists);
    // The archive used for the hand-off is removed afterwards.
    let images = fakes.path().join(".cache/devenv/images");
    let left: Vec<_> = std::fs::read_dir(&images)
        .map(|d| d.flatten().collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "archives left behind: {left:?}");
}

struct PodmanService {
    child: Child,
    socket: PathBuf,
}

impl PodmanService {
    fn start(storage: &Storage) -> PodmanService {
        let socket = storage.dir().join("podman.sock");
        let child = Command::new("podman")
            .args([
                "system",
                "service",
                "--time=0",
                &format!("unix://{}", socket.display()),
            ])
            .env("CONTAINERS_STORAGE_CONF", storage.conf())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "podman is not installed (scripts/install-test-tools.sh --with-builders): {e}"
                )
            });
        let deadline = Instant::now() + Duration::from_secs(30);
        while !socket.exists() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        assert!(
            socket.exists(),
            "podman system service did not create its socket"
        );
        PodmanService { child, socket }
    }

    fn docker_host(&self) -> String {
        format!("unix://{}", self.socket.display())
    }
}

impl Drop for PodmanService {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn real_docker_client_against_podman_builds_hello_only_when_its_content_changes() {
    if !common::base_images(
        "real_docker_client_against_podman_builds_hello_only_when_its_content_changes",
    ) {
        return;
    }
    let p = Project::example("hello");
    let storage = Storage::new();
    let service = PodmanService::start(&storage);
    let fakes = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let bin = FakeBin::new();
    bin.real("docker");
    let mk = fakes.path().join("minikube");
    // The `none` driver: Minikube runs on the host's daemon, which is where builds go.
    fake_minikube(&bin, &mk, "none");
    let run = || {
        Command::new(common::devenv_bin())
            .arg("build")
            .current_dir(p.path())
            .env("PATH", path_with(&bin))
            .env("HOME", fakes.path())
            .env("DOCKER_HOST", service.docker_host())
            .env("FAKE_MINIKUBE_DIR", &mk)
            .output()
            .unwrap_or_else(|e| panic!("{e}"))
    };
    let exists = |reference: &str| {
        Command::new("docker")
            .args(["image", "inspect", "--format", "{{.Id}}", reference])
            .env("DOCKER_HOST", service.docker_host())
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false)
    };
    scenario(&run, &p, &exists);
}

#[test]
fn a_failed_build_names_the_dockerfile_step_and_shows_the_last_lines() {
    let p = Project::example("hello");
    p.write(
        "Dockerfile",
        "FROM scratch\nCOPY hello.txt /hello.txt\nCOPY missing.txt /missing.txt\n",
    );
    let storage = Storage::new();
    let fakes = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let bin = FakeBin::new();
    let mk = fakes.path().join("minikube");
    fake_minikube(&bin, &mk, "docker");
    let out = buildah_build(&p, &storage, fakes.path(), &bin, &mk);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("error: image `hello`: `buildah bud --layers -t hello:devenv-"),
        "{err}"
    );
    assert!(
        err.contains("at step: STEP 3/3: COPY missing.txt /missing.txt"),
        "{err}"
    );
    assert!(
        err.contains("  | Error: building at STEP \"COPY missing.txt /missing.txt\""),
        "{err}"
    );
    // Builder output is streamed with the image's name in front.
    assert!(err.contains("  hello | STEP 1/3: FROM scratch"), "{err}");
}

/// Two custom builds that each wait (at most 8 s) to see the other one running: they can
/// only both succeed when they run at the same time, which `--jobs 2` allows and `--jobs 1`
/// does not.
#[test]
fn builds_of_different_images_run_in_parallel_up_to_the_limit() {
    let p = Project::new();
    let meet = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let cmd = |me: &str, other: &str| {
        format!(
            "touch {dir}/{me}; i=0; while [ ! -e {dir}/{other} ]; do i=$((i+1)); [ $i -gt 160 ] && exit 1; sleep 0.05; done; docker tag scratch $DEVENV_IMAGE",
            dir = meet.path().display()
        )
    };
    p.write("a/Dockerfile", "FROM scratch\n")
        .write("b/Dockerfile", "FROM scratch\n")
        .write(
            "devenv.toml",
            &format!(
                "[[image]]\nname = \"a\"\ncontext = \"a\"\nbuilder = \"custom\"\ncommand = \"{}\"\n\n[[image]]\nname = \"b\"\ncontext = \"b\"\nbuilder = \"custom\"\ncommand = \"{}\"\n\n[[local]]\nname = \"x\"\ncmd = \"true\"\n",
                cmd("a", "b"),
                cmd("b", "a")
            ),
        );
    let fakes = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let bin = FakeBin::new();
    let mk = fakes.path().join("minikube");
    fake_minikube(&bin, &mk, "none");
    bin.tool(
        "docker",
        "case \"$1\" in image) exit 1 ;; tag) exit 0 ;; esac",
    );
    let run = |jobs: &str| {
        let mut args = vec!["build"];
        if !jobs.is_empty() {
            args.extend(["--jobs", jobs]);
        }
        Command::new(common::devenv_bin())
            .args(&args)
            .current_dir(p.path())
            .env("PATH", path_with(&bin))
            .env("HOME", fakes.path())
            .env("FAKE_MINIKUBE_DIR", &mk)
            .output()
            .unwrap_or_else(|e| panic!("{e}"))
    };
    let out = run("2");
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let text = stdout(&out);
    let a = text.find("built      a:devenv-").unwrap_or(usize::MAX);
    let b = text.find("built      b:devenv-").unwrap_or(0);
    assert!(a < b, "results come in config order: {text}");

    for f in ["a", "b"] {
        let _ = std::fs::remove_file(meet.path().join(f));
    }
    p.write("a/x.txt", "new content, new tag\n");
    p.write("b/x.txt", "new content, new tag\n");
    let out = run("1");
    assert_eq!(
        out.status.code(),
        Some(1),
        "one at a time, the first build waits for the second in vain"
    );

    // By default two builds run at once whatever the CPUs (issue 24 point 10: on 2 CPUs
    // they ran one after the other, and a fast image's deploy waited for a slow one's build).
    for f in ["a", "b"] {
        let _ = std::fs::remove_file(meet.path().join(f));
    }
    p.write("a/x.txt", "newer content\n");
    p.write("b/x.txt", "newer content\n");
    let out = run("");
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
}
