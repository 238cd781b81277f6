//! Live update through the binary (issue 17): saved files go into the running containers
//! through the API server's `pods/exec`, with no build and no deploy. The fake API server
//! (tests/common/fake_kube.rs) speaks the real websocket subprotocol (v5.channel.k8s.io) and
//! unpacks what it receives into a directory per container; Minikube and the Docker daemon
//! are the fakes of common::world (builds are recorded, not run). scripts/e2e-minikube.sh runs
//! the same on a machine with Minikube.

mod common;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::Project;
use common::running::Running;
use common::world::World;

/// hello with a Python-shaped Dockerfile (requirements copied and installed before the
/// code), live update on, `extra` appended to its [[image]].
fn live_project(image: &str, extra: &str) -> Project {
    let p = Project::example("hello");
    p.write(
        "Dockerfile",
        "FROM scratch\nWORKDIR /app\nCOPY requirements.txt .\nRUN pip install -r requirements.txt\nCOPY . .\nCMD [\"python\", \"app.py\"]\n",
    );
    p.write("requirements.txt", "fastapi\n");
    p.write("app.py", "print('one')\n");
    let port = common::free_port();
    let cfg = p
        .read("devenv.toml")
        .replace(
            "[[image]]\nname = \"hello\"\ncontext = \".\"",
            &format!("[[image]]\nname = \"{image}\"\ncontext = \".\"\nlive_update = true\n{extra}"),
        )
        .replace("images = [\"hello\"]", &format!("images = [\"{image}\"]"))
        .replace("\"8080:8080\"", &format!("\"{port}:8080\""));
    p.write("devenv.toml", &cfg);
    p.write(
        "k8s/deployment.yaml",
        &p.read("k8s/deployment.yaml")
            .replace("image: hello", &format!("image: {image}"))
            .replace("replicas: 1", &format!("replicas: {}", replicas())),
    );
    p
}

/// Two pods, so that "every container" means more than one.
fn replicas() -> u32 {
    2
}

struct Live {
    w: World,
    up: Running,
    _exec: tempfile::TempDir,
}

fn start(p: Project) -> Live {
    start_with(p, false)
}

fn start_with(p: Project, v4_only: bool) -> Live {
    let w = World::new(p);
    w.api.auto_rollout();
    if v4_only {
        w.api.exec_v4_only();
    }
    let exec = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    w.api.exec_into(exec.path());
    w.profile("running", 4, 8192);
    let mut up = Running::start(&w, &["up"]);
    up.wait_for("running    Ctrl-C stops devenv");
    Live { w, up, _exec: exec }
}

/// A file in the container's directory, once it holds `want`.
fn wait_file(l: &Live, pod: &str, path: &str, want: &str) {
    let file: PathBuf = l.w.api.container_dir("hello", pod, "hello").join(path);
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::fs::read_to_string(&file).unwrap_or_default() != want {
        assert!(
            Instant::now() < deadline,
            "{} never held {want:?}:\n{}",
            file.display(),
            l.up.text()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn builds(l: &Live) -> usize {
    l.up.count("built      ")
}

/// The commands devenv ran in containers; devenv's unpacking shell (kept running for a
/// container's archives) as `unpacking shell`.
fn execs(l: &Live) -> Vec<String> {
    l.w.api
        .requests()
        .into_iter()
        .filter(|r| r.path.ends_with("/exec"))
        .map(|r| {
            if r.body.starts_with("sh -c while IFS= read -r n; do head -c") {
                "unpacking shell".to_owned()
            } else {
                r.body
            }
        })
        .collect()
}

/// An edit of a synced file reaches the container, and nothing is built or deployed; the
/// terminal and `devenv status` say what was synced.
#[test]
fn an_edit_is_synced_into_the_container_and_nothing_is_built() {
    let mut l = start(live_project("hello", ""));
    let (built, deployed) = (builds(&l), l.up.count("deployed   hello with"));
    l.w.p.write("app.py", "print('two')\n");
    l.up.wait_for("synced     hello: synced 1 file to 2 containers in ");
    // Into every running container of the image.
    wait_file(&l, "hello-1-0", "app/app.py", "print('two')\n");
    wait_file(&l, "hello-1-1", "app/app.py", "print('two')\n");
    assert_eq!(builds(&l), built, "no build:\n{}", l.up.text());
    assert_eq!(l.up.count("deployed   hello with"), deployed, "no deploy");
    // One shell per container, kept for the next saves.
    assert_eq!(execs(&l), ["unpacking shell", "unpacking shell"]);
    l.w.p.write("app.py", "print('three')\n");
    l.up.wait_for_n("synced     hello: synced 1 file to 2 containers in ", 2);
    wait_file(&l, "hello-1-0", "app/app.py", "print('three')\n");
    wait_file(&l, "hello-1-1", "app/app.py", "print('three')\n");
    assert_eq!(
        execs(&l),
        ["unpacking shell", "unpacking shell"],
        "the second save needs no new exec"
    );
    let status = l.w.run(&["status", "--json"], &[]);
    let v: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap_or_default();
    assert!(
        v["images"]["hello"]["last_sync"]
            .as_str()
            .is_some_and(|s| s.starts_with("synced 1 file to 2 containers")),
        "{v}"
    );
    // A file deleted from the context is removed in the container.
    std::fs::remove_file(l.w.p.path().join("app.py")).unwrap_or_else(|e| panic!("{e}"));
    l.up.wait_for_n("synced     hello: synced 0 files (and removed 1)", 1);
    let gone =
        l.w.api
            .container_dir("hello", "hello-1-0", "hello")
            .join("app/app.py");
    assert!(!gone.exists(), "{}", l.up.text());
    assert_eq!(builds(&l), built);
    l.up.signal(libc::SIGTERM);
    let _ = l.up.child.wait();
}

/// An API server that speaks only the v4 subprotocol (no close signal for stdin): the sync
/// still ends with the container's answer (tar stops at the archive's end).
#[test]
fn an_edit_is_synced_over_the_v4_subprotocol_too() {
    let mut l = start_with(live_project("hello", ""), true);
    l.w.p.write("app.py", "print('v4')\n");
    l.up.wait_for("synced     hello: synced 1 file to 2 containers in ");
    wait_file(&l, "hello-1-0", "app/app.py", "print('v4')\n");
    l.up.signal(libc::SIGTERM);
    let _ = l.up.child.wait();
}

/// requirements.txt is copied before `RUN pip install`: an edit is a build, and the terminal
/// says why; with a `run` rule, it is synced and the command runs in the container instead.
#[test]
fn requirements_rebuild_or_run_their_step_as_configured() {
    let mut l = start(live_project("hello", ""));
    let built = builds(&l);
    l.w.p.write("requirements.txt", "fastapi\nuvicorn\n");
    l.up.wait_for("rebuild    hello: live update cannot carry requirements.txt: it is copied (Dockerfile line 3) before `RUN pip install -r requirements.txt` (line 4)");
    l.up.wait_for_n("built      hello:", built + 1);
    l.up.signal(libc::SIGTERM);
    let _ = l.up.child.wait();

    let mut l = start(live_project(
        "hello",
        "run = [{ cmd = \"pip install -r requirements.txt\", on = [\"requirements.txt\"] }]\n",
    ));
    let built = builds(&l);
    l.w.p.write("requirements.txt", "fastapi\nuvicorn\n");
    l.up.wait_for("synced     hello: synced 1 file to 2 containers");
    wait_file(
        &l,
        "hello-1-0",
        "app/requirements.txt",
        "fastapi\nuvicorn\n",
    );
    let runs = std::fs::read_to_string(format!(
        "{}.runs",
        l.w.api
            .container_dir("hello", "hello-1-0", "hello")
            .display()
    ))
    .unwrap_or_default();
    assert_eq!(runs, "cd '/app' && pip install -r requirements.txt\n");
    assert_eq!(builds(&l), built, "{}", l.up.text());
    l.up.signal(libc::SIGTERM);
    let _ = l.up.child.wait();
}

/// An edit of the Dockerfile is a build.
#[test]
fn a_dockerfile_edit_rebuilds() {
    let mut l = start(live_project("hello", ""));
    let built = builds(&l);
    l.w.p.write(
        "Dockerfile",
        &format!("{}# a comment\n", l.w.p.read("Dockerfile")),
    );
    l.up.wait_for("rebuild    hello: live update cannot carry Dockerfile: the Dockerfile (or its .dockerignore) changed");
    l.up.wait_for_n("built      hello:", built + 1);
    assert!(execs(&l).is_empty());
    l.up.signal(libc::SIGTERM);
    let _ = l.up.child.wait();
}

/// A pod that starts after a live update (a restart, a replaced pod) gets the synced files.
#[test]
fn a_new_pod_receives_the_synced_files() {
    let mut l = start(live_project("hello", ""));
    l.w.p.write("app.py", "print('synced')\n");
    l.up.wait_for("synced     hello: synced 1 file to 2 containers");
    // The pod is replaced (its node went away, say): a new one of the same image.
    let old = "/api/v1/namespaces/hello/pods/hello-1-0";
    let mut pod = l.w.api.object(old).unwrap_or_else(|| panic!("no pod"));
    pod["metadata"]["name"] = serde_json::json!("hello-1-x");
    pod["metadata"]["uid"] = serde_json::Value::Null;
    l.w.api.remove(old);
    l.w.api
        .insert("/api/v1/namespaces/hello/pods/hello-1-x", pod);
    l.up.wait_for("(new pod hello-1-x: the files of earlier live updates)");
    wait_file(&l, "hello-1-x", "app/app.py", "print('synced')\n");
    l.up.signal(libc::SIGTERM);
    let _ = l.up.child.wait();
}

/// An image without tar (distroless, scratch): the first sync fails, the image is built
/// instead, and from then on every change is built without trying again.
#[test]
fn an_image_without_tar_falls_back_once() {
    let mut l = start(live_project("hello-notar", ""));
    let built = builds(&l);
    l.w.p.write("app.py", "print('two')\n");
    // Either pod may be the first one ready (and so the first one tried).
    l.up.wait_for_line(&[
        "rebuild    hello-notar: live update failed (pod hello-1-",
        ", container hello: the image has no `tar`, which live update needs in the container); building it, and every change from now on",
    ]);
    l.up.wait_for_n("built      hello-notar:", built + 1);
    l.up.wait_for_n("ready      hello (", 2);
    // The tar, and when the container closed the stream before its answer came (it may, as
    // it fails at once while the archive is being sent), one `tar --help` that asks again.
    // The shell (no sh either), then the tar, and when the container closed the stream
    // before its answer came, one `tar --help` that asks again.
    let tried = execs(&l);
    assert!(
        tried == ["unpacking shell", "tar -x --overwrite -f - -C /"]
            || tried
                == [
                    "unpacking shell",
                    "tar -x --overwrite -f - -C /",
                    "tar --help"
                ],
        "{tried:?}"
    );
    l.w.p.write("app.py", "print('three')\n");
    l.up.wait_for_n("built      hello-notar:", built + 2);
    assert_eq!(execs(&l), tried, "tried once:\n{}", l.up.text());
    l.up.signal(libc::SIGTERM);
    let _ = l.up.child.wait();
}

/// A container whose root filesystem is read-only (the chart's securityContext): tar
/// cannot write, the image is built instead, and live update is not tried again.
#[test]
fn a_read_only_root_filesystem_falls_back_once() {
    let mut l = start(live_project("hello-readonly", ""));
    let built = builds(&l);
    l.w.p.write("app.py", "print('two')\n");
    l.up.wait_for_line(&[
        "rebuild    hello-readonly: live update failed (pod hello-1-",
        ", container hello: its root filesystem is read-only (securityContext.readOnlyRootFilesystem), so live update cannot write into it); building it, and every change from now on",
    ]);
    l.up.wait_for_n("built      hello-readonly:", built + 1);
    l.up.wait_for_n("ready      hello (", 2);
    l.w.p.write("app.py", "print('three')\n");
    l.up.wait_for_n("built      hello-readonly:", built + 2);
    assert_eq!(execs(&l).len(), 1, "tried once:\n{}", l.up.text());
    l.up.signal(libc::SIGTERM);
    let _ = l.up.child.wait();
}

/// An exec whose stream ends without the container's answer is a failed sync (the image is
/// built instead), not a success, and the next save tries live update again.
#[test]
fn an_exec_without_an_answer_builds_and_the_next_save_syncs_again() {
    let mut l = start(live_project("hello-noanswer", ""));
    let built = builds(&l);
    l.w.p.write("app.py", "print('two')\n");
    l.up.wait_for_line(&[
        "rebuild    hello-noanswer: live update failed (pod hello-1-",
        ", container hello: tar -x failed: no answer from the container (",
        "); building it",
    ]);
    l.up.wait_for_n("built      hello-noanswer:", built + 1);
    l.up.wait_for_n("ready      hello (", 2);
    let tried = execs(&l).len();
    l.w.p.write("app.py", "print('three')\n");
    l.up.wait_for_n("built      hello-noanswer:", built + 2);
    assert!(execs(&l).len() > tried, "tried again:\n{}", l.up.text());
    l.up.signal(libc::SIGTERM);
    let _ = l.up.child.wait();
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Save -> the file in the container, 50 times, by live update and by the full build path
/// (build, deploy, rollout), in one run. Not a test: `scripts/bench.sh live` runs it and
/// prints the figures for docs/performance.md.
#[test]
#[ignore = "a benchmark: scripts/bench.sh live"]
fn measure_save_to_running() {
    let mut l = start(live_project("hello", ""));
    let mut synced = Vec::new();
    for i in 0..50 {
        let text = format!("print({i})\n");
        let started = Instant::now();
        l.w.p.write("app.py", &text);
        wait_file(&l, "hello-1-0", "app/app.py", &text);
        synced.push(started.elapsed());
        // Past the debounce, so each save is a batch of its own.
        std::thread::sleep(Duration::from_millis(150));
    }
    l.up.signal(libc::SIGTERM);
    let _ = l.up.child.wait();

    // The same saves without live update: a build, a deploy, a rollout to the new tag.
    let p = live_project("hello", "");
    p.write(
        "devenv.toml",
        &p.read("devenv.toml").replace("live_update = true\n", ""),
    );
    let mut l = start(p);
    let mut rebuilt = Vec::new();
    for i in 0..50 {
        let started = Instant::now();
        l.w.p.write("app.py", &format!("print({i})\n"));
        l.up.wait_for_n("ready      hello (", i + 2);
        rebuilt.push(started.elapsed());
        std::thread::sleep(Duration::from_millis(150));
    }
    l.up.signal(libc::SIGTERM);
    let _ = l.up.child.wait();
    for (what, mut v) in [("live update", synced), ("full build path", rebuilt)] {
        v.sort();
        println!(
            "{what}: save -> running: p50 {} ms, p99 {} ms (min {} ms, max {} ms, {} saves)",
            percentile(&v, 0.5).as_millis(),
            percentile(&v, 0.99).as_millis(),
            v[0].as_millis(),
            v[v.len() - 1].as_millis(),
            v.len()
        );
    }
}

/// Issue 28, item 11: a FIFO made in a build context while `up` runs, then removed. At
/// aff3886 hashing the context read the FIFO, which blocked for ever, and the image stayed
/// stuck after the FIFO was gone. Now live update refuses to send it (not a regular file)
/// and builds instead (the builder's context counts it by its kind, never reads it); its
/// removal is synced, and the next save is synced as before.
#[test]
fn a_fifo_in_the_context_while_up_runs_is_built_past_and_its_removal_synced() {
    let mut l = start(live_project("hello", ""));
    let built = builds(&l);
    let fifo = l.w.p.path().join("pipe");
    common::mkfifo(&fifo);
    l.up.wait_for("is not sent into containers: it is not a regular file (a FIFO, a socket or a device)); building it");
    l.up.wait_for_n("built      hello:", built + 1);
    l.up.wait_for_n("deployed   hello with", 2);
    std::fs::remove_file(&fifo).unwrap_or_else(|e| panic!("{e}"));
    l.up.wait_for("synced     hello: synced 0 files (and removed 1) to 2 containers");
    l.w.p.write("app.py", "print('after')\n");
    l.up.wait_for("synced     hello: synced 1 file to 2 containers");
    wait_file(&l, "hello-2-0", "app/app.py", "print('after')\n");
    wait_file(&l, "hello-2-1", "app/app.py", "print('after')\n");
    assert_eq!(builds(&l), built + 1, "{}", l.up.text());
    l.up.signal(libc::SIGTERM);
    let _ = l.up.child.wait();
}
