//! The real-cluster tier: devenv through the real binary against a real Kubernetes control
//! plane (`../shared/kubeapi`: kube-apiserver, kube-controller-manager, kube-scheduler and
//! etcd v1.36, with a stand-in kubelet that makes pods Ready; no container runs). The real
//! helm and kubectl are used; Minikube and the Docker daemon stay the fakes of tests/cluster.rs
//! (`World`), so builds are recorded rather than run.
//!
//! What the control plane cannot do here (pod logs, exec and port-forward reach no kubelet:
//! the API server answers 500) is what the fake API server in tests/common covers; here it
//! is the failure devenv must explain.
//!
//! `scripts/test.sh` starts the control plane when `../shared/kubeapi` exists; without it each
//! test says it was skipped (see common::real). Each test works in namespaces of its own.

mod common;

use std::time::{Duration, Instant};

use common::real::RealCluster;
use common::running::Running;
use common::world::World;
use common::{Project, stderr, stdout};
use serde_json::Value;

/// No Debug dump of a Rust value, nor a raw tracing line, reaches the user.
fn assert_readable(text: &str) {
    for bad in [
        "Status {",
        "Some(",
        "ListMeta",
        "ERROR failed",
        "ServiceError",
        "ApiError",
    ] {
        assert!(
            !text.contains(bad),
            "`{bad}` in what devenv printed:\n{text}"
        );
    }
}

/// examples/hello in namespace `ns`, with a free port for its forward.
fn hello(ns: &str) -> Project {
    let p = Project::example("hello");
    let cfg = p
        .read("devenv.toml")
        .replace("namespace = \"hello\"", &format!("namespace = \"{ns}\""))
        .replace("8080:8080", &format!("{}:8080", common::free_port()));
    p.write("devenv.toml", &cfg);
    p
}

/// examples/todo in namespace `ns`: its .env, free forward ports, the real helm.
fn todo(rc: &RealCluster, base: &str) -> (World, String) {
    let ns = rc.namespace(base);
    let p = Project::todo(&ns, node_port());
    let w = World::new(p);
    w.use_real(rc);
    w.bin.real("helm");
    (w, ns)
}

/// A NodePort of this test's own (30000-32767), from its process id and a counter.
fn node_port() -> u32 {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    30000 + (std::process::id() * 7 + n) % 2768
}

fn helm(w: &World, rc: &RealCluster, args: &[&str]) -> (bool, String) {
    let out = std::process::Command::new("helm")
        .args(args)
        .env("KUBECONFIG", &rc.admin)
        .env("HOME", w.fakes.path())
        .output()
        .unwrap_or_else(|e| panic!("helm: {e}"));
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

fn image_of(d: &Value) -> String {
    d["spec"]["template"]["spec"]["containers"][0]["image"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// The tag a `built      NAME:TAG (…)` or `present    NAME:TAG …` line names.
fn built_tags(text: &str, image: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| {
            l.strip_prefix("built      ")
                .or(l.strip_prefix("present    "))
        })
        .filter(|l| l.starts_with(&format!("{image}:")))
        .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
        .collect()
}

fn configmap(name: &str) -> String {
    format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\ndata:\n  a: b\n")
}

/// examples/hello by plain manifests: server-side apply with devenv's labels and field
/// manager, readiness from the real controllers, an edit that rebuilds once and rolls the
/// Deployment to the new tag, and pod counts that count the current pods (right after the
/// rolling update a 1-replica Deployment showed `2/2`).
#[test]
fn hello_via_manifests_applies_waits_and_an_edit_rolls_out_the_new_tag() {
    let Some(rc) = RealCluster::get("hello_via_manifests") else {
        return;
    };
    let ns = rc.namespace("hello");
    let w = World::new(hello(&ns));
    w.use_real(&rc);

    let mut up = Running::start(&w, &["up"]);
    up.wait_for("running    Ctrl-C stops devenv");
    let first = built_tags(&up.text(), "hello");
    assert_eq!(first.len(), 1, "{}", up.text());
    assert!(
        up.text()
            .contains("ready      hello (deployment/hello, 1/1 pods"),
        "{}",
        up.text()
    );
    let d = rc
        .get_json("deployment", Some(&ns), "hello")
        .unwrap_or_else(|| panic!("no Deployment"));
    assert_eq!(image_of(&d), first[0]);
    assert_eq!(
        d["metadata"]["labels"]["devenv.dev/project"], "hello",
        "{d:#}"
    );
    let managers: Vec<&str> = d["metadata"]["managedFields"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|m| m["operation"] == "Apply")
        .filter_map(|m| m["manager"].as_str())
        .collect();
    assert_eq!(managers, ["devenv"], "{d:#}");

    // One edit: one rebuild, one redeploy, and the real rollout to the new tag.
    w.p.write("hello.txt", "hello, edited while devenv runs\n");
    up.wait_for_n("ready      hello (", 2);
    let text = up.text();
    let tags = built_tags(&text, "hello");
    assert_eq!(
        tags.len(),
        2,
        "one build at start, one after the edit:\n{text}"
    );
    assert_ne!(tags[0], tags[1]);
    assert_eq!(
        up.count("deployed   hello with"),
        2,
        "first deploy and the edit's:\n{text}"
    );
    let d = rc
        .get_json("deployment", Some(&ns), "hello")
        .unwrap_or_else(|| panic!("no Deployment"));
    assert_eq!(image_of(&d), tags[1]);
    // A 1-replica Deployment right after its rolling update has one pod, not two.
    let again = text
        .lines()
        .filter(|l| l.starts_with("ready      hello ("))
        .nth(1)
        .unwrap_or_default();
    assert!(again.contains(", 1/1 pods"), "{again}\n{text}");
    up.signal(libc::SIGTERM);
    let _ = up.child.wait();
    assert_readable(&up.text());
}

/// Defects seen on real runs: a second `up --ci` reported `0/0 pods` for a Deployment that
/// runs 1/1; `down` left the objects of a manifest file deleted since they were applied.
/// Also: prune of a file that left the manifests.
#[test]
fn a_second_up_counts_the_pods_prune_follows_the_files_and_down_follows_the_inventory() {
    let Some(rc) = RealCluster::get("second_up_prune_down") else {
        return;
    };
    let ns = rc.namespace("inventory");
    let p = hello(&ns);
    p.write("k8s/extra-a.yaml", &configmap("extra-a"));
    p.write("k8s/extra-b.yaml", &configmap("extra-b"));
    let w = World::new(p);
    w.use_real(&rc);
    let out = w.run(&["up", "--ci"], &[]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );

    // A second `up --ci` builds nothing and counts the pod that runs.
    let out = w.run(&["up", "--ci"], &[]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}{}", stderr(&out));
    assert!(text.contains("present    hello:"), "{text}");
    assert!(
        text.contains("hello     deployment/hello  ready     1/1"),
        "{text}"
    );

    // A file that left the manifests: its object is pruned by the next `up`.
    std::fs::remove_file(w.p.path().join("k8s/extra-a.yaml")).unwrap_or_else(|e| panic!("{e}"));
    let out = w.run(&["up", "--ci"], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    assert!(
        stdout(&out).contains("pruned     ConfigMap/extra-a"),
        "{}",
        stdout(&out)
    );
    assert!(rc.get_json("configmap", Some(&ns), "extra-a").is_none());
    assert!(rc.get_json("configmap", Some(&ns), "extra-b").is_some());

    // `down` after another file was deleted still removes what devenv applied from it.
    std::fs::remove_file(w.p.path().join("k8s/extra-b.yaml")).unwrap_or_else(|e| panic!("{e}"));
    let out = w.run(&["down"], &[]);
    let text = format!("{}{}", stdout(&out), stderr(&out));
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert_readable(&text);
    rc.wait_until("the ConfigMap and the Deployment are gone", |rc| {
        rc.get_json("configmap", Some(&ns), "extra-b").is_none()
            && rc
                .get_json("deployment", Some(&ns), "hello")
                .is_none_or(|d| d["metadata"]["deletionTimestamp"].is_string())
    });
    assert!(text.contains("removed    ConfigMap/extra-b"), "{text}");
    assert!(text.contains("removed    Deployment/hello"), "{text}");
}

/// examples/todo through its Helm chart with the real helm: a real release whose values
/// carry the content tags, the Secret from .env with its keys (never its values), and `down`
/// removing the release and the Secret.
#[test]
fn todo_via_its_chart_is_a_real_release_with_the_content_tags_and_down_removes_it() {
    let Some(rc) = RealCluster::get("todo_via_its_chart") else {
        return;
    };
    let (w, ns) = todo(&rc, "todo");
    let out = w.run(&["up", "--ci"], &[]);
    let text = format!("{}{}", stdout(&out), stderr(&out));
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert_readable(&text);
    let backend = built_tags(&text, "todo-backend");
    let frontend = built_tags(&text, "todo-frontend");
    assert_eq!((backend.len(), frontend.len()), (1, 1), "{text}");

    let (ok, values) = helm(&w, &rc, &["get", "values", "todo", "-n", &ns, "-o", "json"]);
    assert!(ok, "{values}");
    let values: Value = serde_json::from_str(&values).unwrap_or_else(|e| panic!("{e}: {values}"));
    let tag = |i: &str| {
        i.rsplit_once(':')
            .map(|(_, t)| t.to_owned())
            .unwrap_or_default()
    };
    assert_eq!(
        values["backend"]["image"]["tag"],
        tag(&backend[0]),
        "{values:#}"
    );
    assert_eq!(
        values["frontend"]["image"]["tag"],
        tag(&frontend[0]),
        "{values:#}"
    );
    let d = rc
        .get_json("deployment", Some(&ns), "todo-backend")
        .unwrap_or_else(|| panic!("no backend Deployment"));
    assert_eq!(image_of(&d), backend[0]);

    let s = rc
        .get_json("secret", Some(&ns), "todo-secrets")
        .unwrap_or_else(|| panic!("no Secret"));
    let mut keys: Vec<&str> = s["data"]
        .as_object()
        .map(|m| m.keys().map(String::as_str).collect())
        .unwrap_or_default();
    keys.sort_unstable();
    let mut want: Vec<String> =
        w.p.read(".env")
            .lines()
            .filter(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
            .filter_map(|l| {
                l.split_once('=')
                    .map(|(k, _)| k.trim().trim_start_matches("export ").to_owned())
            })
            .collect();
    want.sort();
    assert_eq!(keys, want);
    for line in w.p.read(".env").lines() {
        if let Some((_, v)) = line.split_once('=')
            && v.len() > 3
        {
            assert!(
                !text.contains(v.trim()),
                "a secret value was printed:\n{text}"
            );
        }
    }

    let out = w.run(&["down"], &[]);
    let text = format!("{}{}", stdout(&out), stderr(&out));
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("removed    helm release `todo`"), "{text}");
    let (ok, _) = helm(&w, &rc, &["status", "todo", "-n", &ns]);
    assert!(!ok, "the release is gone");
    assert!(rc.get_json("secret", Some(&ns), "todo-secrets").is_none());
}

/// A chart that renders the Namespace it is installed into (a common shape): the release
/// installs, the `[[secret]]` in that namespace is applied, and Helm owns the namespace (so
/// `down` takes it away with the release).
#[test]
fn a_chart_that_renders_its_release_namespace_deploys_with_its_secret() {
    let Some(rc) = RealCluster::get("chart_renders_its_namespace") else {
        return;
    };
    let (w, ns) = todo(&rc, "ownns");
    w.p.write(
        "helm/todo-app/templates/namespace.yaml",
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {{ .Release.Namespace }}\n  labels:\n    team: todo\n",
    );
    let out = w.run(&["up", "--ci"], &[]);
    let text = format!("{}{}", stdout(&out), stderr(&out));
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert_readable(&text);
    let n = rc
        .get_json("namespace", None, &ns)
        .unwrap_or_else(|| panic!("no namespace"));
    assert_eq!(n["metadata"]["labels"]["team"], "todo", "{n:#}");
    assert_eq!(
        n["metadata"]["labels"]["app.kubernetes.io/managed-by"], "Helm",
        "{n:#}"
    );
    assert_eq!(
        n["metadata"]["annotations"]["meta.helm.sh/release-name"], "todo",
        "{n:#}"
    );
    assert!(rc.get_json("secret", Some(&ns), "todo-secrets").is_some());
    let (ok, manifest) = helm(&w, &rc, &["get", "manifest", "todo", "-n", &ns]);
    assert!(ok && manifest.contains("kind: Namespace"), "{manifest}");
    // A second up upgrades the same release.
    let out = w.run(&["up", "--ci"], &[]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
}

/// Failures injected through the stand-in kubelet: a crash loop and an image the cluster
/// does not have, each reported with Kubernetes' reason and a hint, `--ci` exiting 1; the
/// crashed container's logs, which this cluster cannot serve, are explained in one sentence.
#[test]
fn a_crash_loop_and_a_missing_image_are_reported_with_reason_and_hint() {
    let Some(rc) = RealCluster::get("crash_loop_and_missing_image") else {
        return;
    };
    for (image, reason, hint) in [
        ("crashloop", "CrashLoopBackOff", "hint: the container exits"),
        (
            "neverpull",
            "ErrImageNeverPull",
            "hint: the image is not in the cluster",
        ),
    ] {
        let ns = rc.namespace(image);
        let p = hello(&ns);
        let cfg = p
            .read("devenv.toml")
            .replace(
                "name = \"hello\"\ncontext",
                &format!("name = \"{image}\"\ncontext"),
            )
            .replace("images = [\"hello\"]", &format!("images = [\"{image}\"]"));
        p.write(
            "devenv.toml",
            &format!("{cfg}readiness_timeout = \"60s\"\n"),
        );
        p.write(
            "k8s/deployment.yaml",
            &p.read("k8s/deployment.yaml")
                .replace("image: hello", &format!("image: {image}")),
        );
        let w = World::new(p);
        w.use_real(&rc);
        let started = Instant::now();
        let out = w.run(&["up", "--ci"], &[]);
        let text = format!("{}{}", stdout(&out), stderr(&out));
        assert_eq!(out.status.code(), Some(1), "{text}");
        assert!(
            started.elapsed() < Duration::from_secs(50),
            "it failed fast: {text}"
        );
        assert!(
            text.contains(&format!(
                "failed     hello: deployment/hello in {ns} failed: {reason}"
            )),
            "{text}"
        );
        assert!(text.contains(hint), "{text}");
        assert!(
            text.contains("hello     deployment/hello  failed"),
            "{text}"
        );
        assert_readable(&text);
        if image == "crashloop" {
            assert!(
                text.contains("the crashed container's logs cannot be read: the API server cannot reach the node's kubelet"),
                "{text}"
            );
        }
    }
}

/// Pod logs and port-forwards cannot reach this cluster's pods: devenv says why, once per
/// resource, in the terminal, in the resource's log (`devenv logs`, the page) and in the
/// status API, instead of a bare 500 or a Debug dump.
#[test]
fn a_failing_log_stream_and_port_forward_say_why_once() {
    let Some(rc) = RealCluster::get("failing_log_stream_and_forward") else {
        return;
    };
    let ns = rc.namespace("streams");
    let w = World::new(hello(&ns));
    w.use_real(&rc);
    let mut up = Running::start(&w, &["up"]);
    up.wait_for("running    Ctrl-C stops devenv");
    up.wait_for("logs       hello: cannot follow");
    let cfg = w.p.read("devenv.toml");
    let port: u16 = cfg
        .split("port_forwards = [\"")
        .nth(1)
        .and_then(|s| s.split(':').next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no port in {cfg}"));
    for _ in 0..3 {
        if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) {
            use std::io::{Read, Write};
            let _ = s.write_all(b"GET / HTTP/1.0\r\n\r\n");
            let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
            let mut buf = Vec::new();
            let _ = s.read_to_end(&mut buf);
        }
    }
    up.wait_for("forward    hello: cannot forward");
    let logs = w.run(&["logs", "hello"], &[]);
    let logs = stdout(&logs);
    assert!(
        logs.contains("cannot follow the logs of pod hello-"),
        "{logs}"
    );
    assert!(logs.contains("cannot forward"), "{logs}");
    let status = w.run(&["status", "--json"], &[]);
    let status: Value = serde_json::from_slice(&status.stdout).unwrap_or_else(|e| panic!("{e}"));
    let warning = status["resources"][0]["warning"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(warning.contains("cannot forward"), "{status:#}");
    up.signal(libc::SIGTERM);
    let _ = up.child.wait();
    let text = up.text();
    assert_eq!(
        up.count("logs       hello: cannot follow"),
        1,
        "once:\n{text}"
    );
    assert_eq!(
        up.count("forward    hello: cannot forward"),
        1,
        "once:\n{text}"
    );
    assert!(text.contains("hint: "), "{text}");
    assert_readable(&text);
    assert_readable(&logs);
}

/// A control plane of this test's own (its API server is killed and restarted): the watches
/// of a running `up` recover, and the next edit is built, deployed and rolled out.
#[test]
fn watches_recover_after_an_api_server_restart_and_the_next_edit_deploys() {
    let Some(rc) = RealCluster::get("api_server_restart") else {
        return;
    };
    let own = common::real::OwnControlPlane::start();
    let ns = rc.namespace("outage");
    let w = World::new(hello(&ns));
    w.profile("running", 4, 8192);
    own.cluster.kubeconfig_as(&w.kubeconfig(), "minikube");
    let mut up = Running::start(&w, &["up"]);
    up.wait_for("running    Ctrl-C stops devenv");
    own.outage(3);
    w.p.write("hello.txt", "hello after the outage\n");
    up.wait_for_n("ready      hello (", 2);
    let tags = built_tags(&up.text(), "hello");
    assert_eq!(tags.len(), 2, "{}", up.text());
    let d = own
        .cluster
        .get_json("deployment", Some(&ns), "hello")
        .unwrap_or_else(|| panic!("no Deployment"));
    assert_eq!(image_of(&d), tags[1]);
    up.signal(libc::SIGTERM);
    let _ = up.child.wait();
    assert_readable(&up.text());
}

/// Issue 14 point 1: a crash-looping first rollout blocks nothing. The page and the API
/// answer from the start, the resource shows its reason while it is still waited for, the
/// other resource comes up with its forward, and an edit made meanwhile is built and rolled
/// out. (The stand-in kubelet crash-loops images named `crashloop`.)
#[test]
fn a_crash_looping_first_rollout_blocks_nothing_else() {
    let Some(rc) = RealCluster::get("crash_looping_first_rollout") else {
        return;
    };
    let ns = rc.namespace("crashfirst");
    let p = hello(&ns);
    p.write(
        "devenv.toml",
        &format!(
            "{}\n[[image]]\nname = \"crashloop\"\ncontext = \"crash\"\n\n[[resource]]\nname = \"crash\"\nworkload = \"deployment/crash\"\nimages = [\"crashloop\"]\n",
            p.read("devenv.toml")
        ),
    );
    p.write("crash/Dockerfile", "FROM scratch\nCOPY c.txt /c.txt\n");
    p.write("crash/c.txt", "crash\n");
    p.write(
        "k8s/crash.yaml",
        &p.read("k8s/deployment.yaml")
            .replace("hello", "crash")
            .replace("image: crash", "image: crashloop"),
    );
    let w = World::new(p);
    w.use_real(&rc);
    let mut up = Running::start(&w, &["up"]);
    up.wait_for("context    ");
    // The page line comes before the cluster side of bring-up.
    let text = up.text();
    assert!(
        text.find("page       ").unwrap_or(usize::MAX) < text.find("context    ").unwrap_or(0),
        "{text}"
    );
    up.wait_for("ready      hello (");
    up.wait_for("forward    hello: http://127.0.0.1:");
    up.wait_for("problem    crash: CrashLoopBackOff");
    let status = w.run(&["status", "--json"], &[]);
    let json = String::from_utf8_lossy(&status.stdout).to_string();
    assert_eq!(status.status.code(), Some(0), "{json}");
    let v: serde_json::Value = serde_json::from_str(&json).unwrap_or_else(|e| panic!("{e}"));
    let crash = v["resources"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|r| r["name"] == "crash")
        .cloned()
        .unwrap_or_else(|| panic!("{json}"));
    assert_eq!(crash["status"], "waiting", "{json}");
    assert!(
        crash["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("CrashLoopBackOff")),
        "{json}"
    );
    // An edit while crash is still waited for: built and rolled out.
    w.p.write("hello.txt", "edited while crash loops\n");
    up.wait_for_n("ready      hello (", 2);
    let text = up.text();
    assert_eq!(built_tags(&text, "hello").len(), 2, "{text}");
    assert!(!text.contains("ready      crash"), "{text}");
}

/// The release's revision now.
fn revision(w: &World, rc: &RealCluster, ns: &str) -> u64 {
    let (ok, out) = helm(w, rc, &["history", "todo", "-n", ns, "-o", "json"]);
    assert!(ok, "{out}");
    let v: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    v.as_array()
        .and_then(|a| a.last())
        .and_then(|r| r["revision"].as_u64())
        .unwrap_or_default()
}

/// Waits until `f` holds, for up to 60 s.
fn eventually(what: &str, up: &Running, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !f() {
        assert!(Instant::now() < deadline, "never {what}:\n{}", up.text());
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Issue 14, point 6, on a real release: an edit of a values file gives exactly one helm
/// upgrade, and the cluster has the new value; an edit of devenv.toml that leaves the Helm
/// settings alone upgrades nothing; a broken devenv.toml is said (terminal and status API)
/// while everything runs on, and the fixed file resumes.
#[test]
fn a_values_edit_is_one_helm_upgrade_and_a_broken_config_stops_nothing() {
    let Some(rc) = RealCluster::get("values_edit") else {
        return;
    };
    let (w, ns) = todo(&rc, "reload");
    let mut up = Running::start(&w, &["up"]);
    up.wait_for("running    Ctrl-C stops devenv");
    assert_eq!(revision(&w, &rc, &ns), 1);
    let config = |rc: &RealCluster| {
        rc.get_json("configmap", Some(&ns), "todo-config").map(|c| {
            c["data"]["LOG_LEVEL"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
    };
    assert_eq!(config(&rc).as_deref(), Some("debug"));

    w.p.write(
        "helm/values-dev.yaml",
        &w.p.read("helm/values-dev.yaml")
            .replace("LOG_LEVEL: debug", "LOG_LEVEL: warning"),
    );
    up.wait_for("changed    1 file (helm/values-dev.yaml) -> helm upgrade");
    eventually("upgraded", &up, || {
        config(&rc).as_deref() == Some("warning")
    });
    up.wait_for_n("ready      backend (", 2);
    up.wait_for_n("ready      frontend (", 2);
    assert_eq!(
        revision(&w, &rc, &ns),
        2,
        "exactly one upgrade:\n{}",
        up.text()
    );
    assert_eq!(
        up.count("deployed   helm release `todo`"),
        2,
        "{}",
        up.text()
    );

    // A broken devenv.toml: said with its position, and nothing stops.
    let good = w.p.read("devenv.toml");
    w.p.write(
        "devenv.toml",
        &good.replace("[deploy]\n", "[deploy]\nnamespaces = 1\n"),
    );
    up.wait_for("error      devenv.toml was not reloaded: unknown key `namespaces`");
    let status = w.run(&["status", "--json"], &[]);
    let v: Value = serde_json::from_slice(&status.stdout).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        v["config_error"]
            .as_str()
            .is_some_and(|e| e.contains("devenv.toml:")),
        "{v}"
    );
    assert!(
        v["resources"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|r| r["kind"] == "cluster")
            .all(|r| r["status"] == "ready"),
        "{v}"
    );
    // Fixed, with a link added: backend is followed again, nothing is upgraded, the error
    // is gone.
    w.p.write(
        "devenv.toml",
        &good.replace(
            "links = [\"http://localhost:8000/docs\"]",
            "links = [\"http://localhost:8000/docs\", \"http://localhost:8000/health\"]",
        ),
    );
    up.wait_for("reloaded   devenv.toml: follow again backend");
    up.wait_for("link       backend: http://localhost:8000/health");
    let status = w.run(&["status", "--json"], &[]);
    let v: Value = serde_json::from_slice(&status.stdout).unwrap_or_else(|e| panic!("{e}"));
    assert!(v["config_error"].is_null(), "{v}");
    assert_eq!(revision(&w, &rc, &ns), 2, "no upgrade:\n{}", up.text());
    up.signal(libc::SIGTERM);
    let _ = up.child.wait();
    assert_readable(&up.text());
}

/// Issue 14, point 6, by plain manifests: an edit of a manifest applies that file once (the
/// cluster has the change, and nothing is rebuilt).
#[test]
fn a_manifest_edit_applies_that_file_once() {
    let Some(rc) = RealCluster::get("manifest_edit") else {
        return;
    };
    let ns = rc.namespace("hello-edit");
    let p = hello(&ns);
    p.write("k8s/config.yaml", &configmap("hello-config"));
    // The manifests are no part of the image (else an edit is a change of its context too).
    p.write(
        ".dockerignore",
        &format!("{}k8s\n", p.read(".dockerignore")),
    );
    let w = World::new(p);
    w.use_real(&rc);
    let mut up = Running::start(&w, &["up"]);
    up.wait_for("running    Ctrl-C stops devenv");
    let builds = up.count("built      hello:") + up.count("present    hello:");

    w.p.write(
        "k8s/deployment.yaml",
        &w.p.read("k8s/deployment.yaml")
            .replace("replicas: 1", "replicas: 2"),
    );
    up.wait_for("changed    1 file (k8s/deployment.yaml) -> apply k8s/deployment.yaml");
    up.wait_for("ready      hello (deployment/hello, 2/2 pods");
    let d = rc
        .get_json("deployment", Some(&ns), "hello")
        .unwrap_or_else(|| panic!("no Deployment"));
    assert_eq!(d["spec"]["replicas"], 2, "{d:#}");
    assert_eq!(
        up.count("from k8s/deployment.yaml"),
        2,
        "applied at start and once after the edit:\n{}",
        up.text()
    );
    assert_eq!(up.count("from k8s/config.yaml"), 1, "{}", up.text());
    assert_eq!(
        up.count("built      hello:") + up.count("present    hello:"),
        builds,
        "nothing rebuilt:\n{}",
        up.text()
    );

    // A manifest of no resource's workload: applied alone.
    w.p.write(
        "k8s/config.yaml",
        &configmap("hello-config").replace("a: b", "a: c"),
    );
    eventually("applied", &up, || {
        rc.get_json("configmap", Some(&ns), "hello-config")
            .is_some_and(|c| c["data"]["a"] == "c")
    });
    assert_eq!(up.count("from k8s/config.yaml"), 2, "{}", up.text());
    up.signal(libc::SIGTERM);
    let _ = up.child.wait();
    assert_readable(&up.text());
}

/// The engine commands `devenv up --dry-run` says `up` issues, and those `up --ci` issued
/// (its debug log of the engine's commands), for the project of `w`. `up`'s exit code too.
fn planned_and_issued(w: &World) -> (Vec<String>, Vec<String>, Option<i32>, String) {
    let out = w.run(&["up", "--dry-run", "--json"], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let plan: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}"));
    let planned: Vec<String> = plan["commands"]
        .as_array()
        .unwrap_or_else(|| panic!("no commands in the plan: {plan}"))
        .iter()
        .map(|c| c.as_str().unwrap_or_default().to_owned())
        .collect();
    let out = w.run(
        &["up", "--ci"],
        &[("RUST_LOG", "devenv::engine::driver=debug")],
    );
    let text = format!("{}{}", stdout(&out), stderr(&out));
    let issued: Vec<String> = text
        .lines()
        .filter_map(|l| {
            l.split_once("engine command command=")
                .map(|(_, c)| c.to_owned())
        })
        .filter(|c| c != "stop")
        .collect();
    (planned, issued, out.status.code(), text)
}

/// Issue 25: the dry-run is a run of the engine's own reducer, so the commands it lists are
/// those `up` issues, in order: examples/hello, examples/todo (one Helm release, a manual
/// local that does not run), and hello's manifests with no resource table.
#[test]
fn the_dry_run_lists_the_commands_up_issues_in_order() {
    let Some(rc) = RealCluster::get("dry_run_commands") else {
        return;
    };
    let ns = rc.namespace("dryhello");
    let w = World::new(hello(&ns));
    w.use_real(&rc);
    let (planned, issued, code, text) = planned_and_issued(&w);
    assert_eq!(code, Some(0), "{text}");
    assert_eq!(
        planned,
        [
            "doctor",
            "prepare cluster",
            "build hello",
            "deploy hello",
            "wait hello"
        ],
        "{text}"
    );
    assert_eq!(issued, planned, "{text}");

    let ns = rc.namespace("drybare");
    let p = hello(&ns);
    let cfg = p.read("devenv.toml");
    p.write(
        "devenv.toml",
        &cfg[..cfg.find("[[resource]]").unwrap_or(cfg.len())],
    );
    let w = World::new(p);
    w.use_real(&rc);
    let (planned, issued, code, text) = planned_and_issued(&w);
    assert_eq!(code, Some(0), "{text}");
    assert!(planned.contains(&"wait hello".to_owned()), "{planned:?}");
    assert_eq!(issued, planned, "{text}");

    let (w, _) = todo(&rc, "drytodo");
    let (planned, issued, code, text) = planned_and_issued(&w);
    assert_eq!(code, Some(0), "{text}");
    assert!(
        !planned.iter().any(|c| c.contains("backend-tests")),
        "{planned:?}"
    );
    assert_eq!(issued, planned, "{text}");
}

/// Issue 25 point 1: manifests and no `[[resource]]` (examples/hello without its resource
/// table): the Deployment was never applied, and `up --ci` exited 0. Its workload is now a
/// resource of its own, as Tilt makes one of each workload of `k8s_yaml`: applied with the
/// built tag, waited for, reported ready.
#[test]
fn manifests_without_a_resource_table_are_applied_and_waited_for() {
    let Some(rc) = RealCluster::get("manifests_without_resources") else {
        return;
    };
    let ns = rc.namespace("bare");
    let p = hello(&ns);
    let cfg = p.read("devenv.toml");
    let cfg = &cfg[..cfg.find("[[resource]]").unwrap_or(cfg.len())];
    p.write("devenv.toml", cfg);
    let w = World::new(p);
    w.use_real(&rc);
    let out = w.run(&["up", "--ci"], &[]);
    let text = format!("{}{}", stdout(&out), stderr(&out));
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(
        text.contains("ready      hello (deployment/hello"),
        "{text}"
    );
    let built = built_tags(&text, "hello");
    assert_eq!(built.len(), 1, "{text}");
    let d = rc
        .get_json("deployment", Some(&ns), "hello")
        .unwrap_or_else(|| panic!("no Deployment:\n{text}"));
    assert_eq!(image_of(&d), built[0]);
}

/// Issue 25 point 2: a run that deploys nothing, or builds an image that nothing runs, was a
/// success: `up --ci` exited 0 and a CI gate passed with nothing running. Manifests with no
/// workload (a ConfigMap) are applied all the same, and the image they do not use fails the
/// run with its reason; an image and no deploy at all fails it as "nothing was deployed".
#[test]
fn up_ci_fails_when_nothing_was_deployed_or_a_built_image_runs_nowhere() {
    let Some(rc) = RealCluster::get("nothing_deployed") else {
        return;
    };
    let ns = rc.namespace("unused");
    let p = Project::new();
    p.write("Dockerfile", "FROM scratch\nCOPY a /a\n")
        .write("a", "a\n")
        .write(
            "k8s.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n  mode: dev\n",
        )
        .write(
            "devenv.toml",
            &format!(
                "[project]\nname = \"unused\"\n\n[[image]]\nname = \"demo\"\ncontext = \".\"\n\n[deploy]\nnamespace = \"{ns}\"\nmanifests = [\"k8s.yaml\"]\n"
            ),
        );
    let w = World::new(p);
    w.use_real(&rc);
    let out = w.run(&["up", "--ci"], &[]);
    let text = format!("{}{}", stdout(&out), stderr(&out));
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("failed     image `demo` was built, but nothing deployed runs it"),
        "{text}"
    );
    assert!(
        rc.get_json("configmap", Some(&ns), "settings").is_some(),
        "the ConfigMap was applied:\n{text}"
    );

    w.p.write(
        "devenv.toml",
        "[project]\nname = \"unused\"\n\n[[image]]\nname = \"demo\"\ncontext = \".\"\n",
    );
    let out = w.run(&["up", "--ci"], &[]);
    let text = format!("{}{}", stdout(&out), stderr(&out));
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains(
            "failed     nothing was deployed: no resource and no manifest reached the cluster"
        ),
        "{text}"
    );
}

/// Issue 25 point 7: a deploy of images devenv does not build printed
/// `deployed   web with ` (an empty list after "with").
#[test]
fn a_deploy_of_images_devenv_does_not_build_says_no_empty_with() {
    let Some(rc) = RealCluster::get("deployed_with_nothing") else {
        return;
    };
    let ns = rc.namespace("pulled");
    let p = Project::new();
    p.write(
        "k8s.yaml",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  selector:\n    matchLabels:\n      app: web\n  template:\n    metadata:\n      labels:\n        app: web\n    spec:\n      containers:\n        - name: web\n          image: busybox:1.36\n",
    )
    .write(
        "devenv.toml",
        &format!(
            "[project]\nname = \"pulled\"\n\n[deploy]\nnamespace = \"{ns}\"\nmanifests = [\"k8s.yaml\"]\n"
        ),
    );
    let w = World::new(p);
    w.use_real(&rc);
    let out = w.run(&["up", "--ci"], &[]);
    let text = format!("{}{}", stdout(&out), stderr(&out));
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.lines().any(|l| l == "deployed   web"), "{text}");
    assert!(!text.contains(" with \n"), "{text}");
}

/// Issue 27's acceptance: each fixture repository of a shape init once got wrong, as a new
/// user runs it (`devenv init`, then `devenv up --ci`, nothing edited), deploys every
/// workload on the real control plane with devenv's content tags (no `:latest` or pinned tag
/// is left on an image built here), and `down` leaves no Deployment and no Helm release.
/// Each copy lies in a folder named after a namespace of this test's own, which init takes
/// as the project's name and namespace.
#[test]
fn each_init_fixture_deploys_unaided_with_content_tags_and_down_leaves_nothing() {
    let Some(rc) = RealCluster::get("init_fixtures_deploy_unaided") else {
        return;
    };
    for fixture in [
        "yaml-beside",
        "unlike-names",
        "two-dockerfiles",
        "secret-values",
        "two-charts",
        "name-override",
        "tilt-local",
    ] {
        let ns = rc.namespace(&fixture.replace('-', ""));
        let p = Project::new();
        common::copy_dir(
            &common::repo_root()
                .join("tests/fixtures/init")
                .join(fixture),
            &p.path().join(&ns),
        );
        let w = World::new(p);
        w.use_real(&rc);
        w.bin.real("helm");
        let out = w.run(&["init", &ns], &[]);
        assert!(out.status.success(), "{fixture}: {}", stderr(&out));
        let config = format!("{ns}/devenv.toml");
        let cfg = w.p.read(&config);
        let built: Vec<String> = cfg
            .lines()
            .collect::<Vec<_>>()
            .windows(2)
            .filter(|l| l[0] == "[[image]]")
            .filter_map(|l| l[1].strip_prefix("name = "))
            .map(|n| n.trim_matches('"').to_owned())
            .collect();
        assert!(!built.is_empty(), "{fixture}: {cfg}");
        // A local step of the project's own (tilt-local's generator) needs the system's
        // tools besides the fakes.
        let path = format!("{}:/usr/bin:/bin", w.bin.path().display());
        let out = w.run(&["--config", &config, "up", "--ci"], &[("PATH", &path)]);
        let text = format!("{}{}", stdout(&out), stderr(&out));
        assert_eq!(out.status.code(), Some(0), "{fixture}:\n{cfg}\n{text}");
        let deployments = rc.kubectl(&["get", "deployments", "-n", &ns, "-o", "json"]);
        let deployments: Value =
            serde_json::from_str(&deployments).unwrap_or_else(|e| panic!("{e}"));
        let items = deployments["items"].as_array().cloned().unwrap_or_default();
        assert!(!items.is_empty(), "{fixture}: nothing deployed\n{text}");
        let mut running: Vec<String> = Vec::new();
        for d in &items {
            for c in d["spec"]["template"]["spec"]["containers"]
                .as_array()
                .into_iter()
                .flatten()
            {
                let image = c["image"].as_str().unwrap_or_default();
                let (repo, tag) = image.rsplit_once(':').unwrap_or((image, ""));
                if built.iter().any(|b| b == repo) {
                    assert!(
                        tag.starts_with("devenv-"),
                        "{fixture}: {} runs {image}\n{cfg}",
                        d["metadata"]["name"]
                    );
                    running.push(repo.to_owned());
                } else {
                    assert!(
                        !built.iter().any(|b| repo.ends_with(b.as_str())),
                        "{fixture}: {image} is not devenv's build of it\n{cfg}"
                    );
                }
            }
        }
        for b in &built {
            assert!(
                running.contains(b),
                "{fixture}: no workload runs {b}\n{cfg}\n{text}"
            );
        }
        let out = w.run(&["--config", &config, "down"], &[]);
        let text = format!("{}{}", stdout(&out), stderr(&out));
        assert_eq!(out.status.code(), Some(0), "{fixture}: {text}");
        let left = rc.kubectl(&["get", "deployments", "-n", &ns, "-o", "name"]);
        assert!(left.trim().is_empty(), "{fixture}: left {left}");
        let (ok, releases) = helm(&w, &rc, &["list", "-n", &ns, "-q"]);
        assert!(
            ok && releases.trim().is_empty(),
            "{fixture}: releases left: {releases}"
        );
    }
}

/// Issue 27's acceptance for shape 9: two example projects in sibling folders with the same
/// leaf name (`3-recommended`) each get a project, namespace and release of their own from
/// `devenv init`, so `up --ci` of the second leaves the first one's workload running (each
/// pruned the other's before), and `down` of one leaves the other.
#[test]
fn sibling_examples_initialised_deploy_side_by_side() {
    let Some(rc) = RealCluster::get("init_siblings_side_by_side") else {
        return;
    };
    let base = rc.namespace("sib");
    let p = Project::new();
    let mut configs = Vec::new();
    for lang in ["python", "go"] {
        let dir = format!("{base}-{lang}/3-recommended");
        common::copy_dir(
            &common::repo_root().join("tests/fixtures/init/yaml-beside"),
            &p.path().join(&dir),
        );
        rc.remove_later(&format!("{base}-{lang}-3-recommended"));
        configs.push((format!("{base}-{lang}-3-recommended"), dir));
    }
    let w = World::new(p);
    w.use_real(&rc);
    w.bin.real("helm");
    let running = |ns: &str| {
        rc.kubectl(&["get", "deployments", "-n", ns, "-o", "name"])
            .trim()
            .to_owned()
    };
    for (ns, dir) in &configs {
        let out = w.run(&["init", dir], &[]);
        assert!(out.status.success(), "{dir}: {}", stderr(&out));
        let cfg = w.p.read(&format!("{dir}/devenv.toml"));
        assert!(cfg.contains(&format!("namespace = \"{ns}\"")), "{cfg}");
        let out = w.run(
            &["--config", &format!("{dir}/devenv.toml"), "up", "--ci"],
            &[],
        );
        let text = format!("{}{}", stdout(&out), stderr(&out));
        assert_eq!(out.status.code(), Some(0), "{dir}:\n{cfg}\n{text}");
        assert!(!running(ns).is_empty(), "{dir}: nothing deployed\n{text}");
    }
    // The first one's workload outlived the second one's up.
    let (first, second) = (&configs[0], &configs[1]);
    assert!(
        !running(&first.0).is_empty(),
        "the second up pruned the first"
    );
    let out = w.run(
        &["--config", &format!("{}/devenv.toml", second.1), "down"],
        &[],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        running(&second.0).is_empty(),
        "down left {}",
        running(&second.0)
    );
    assert!(
        !running(&first.0).is_empty(),
        "down of one removed the other"
    );
    let out = w.run(
        &["--config", &format!("{}/devenv.toml", first.1), "down"],
        &[],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        running(&first.0).is_empty(),
        "down left {}",
        running(&first.0)
    );
}

/// Issue 28, item 14 (soak, not timed): 100 resources in one namespace took the daemon from
/// 66 to 844 MB, because each resource's view kept a copy of every Pod Warning event of the
/// namespace. One reflector of the namespace's events is shared by its resources now: with
/// 40 workloads and 3,000 Warning events (of 1 KiB each) waiting in their namespace, `up
/// --ci`'s peak memory stays far below 40 copies of them (120 MB).
#[test]
fn many_resources_share_one_copy_of_their_namespaces_warning_events() {
    use std::fmt::Write as _;
    let Some(rc) = RealCluster::get("many_resources_one_copy_of_events") else {
        return;
    };
    let ns = rc.namespace("events");
    rc.kubectl(&["create", "namespace", &ns]);
    let mut list = String::from("apiVersion: v1\nkind: List\nitems:\n");
    let message = "x".repeat(1024);
    for i in 0..3000 {
        let _ = write!(
            list,
            "- apiVersion: v1\n  kind: Event\n  metadata:\n    name: noise-{i}\n    namespace: {ns}\n  involvedObject:\n    kind: Pod\n    name: gone-{i}\n    namespace: {ns}\n  reason: BackOff\n  type: Warning\n  message: \"{message}\"\n"
        );
    }
    let p = Project::new();
    p.write("events.yaml", &list);
    let (ok, out, err) = rc.kubectl_result(&[
        "create",
        "-f",
        &p.path().join("events.yaml").display().to_string(),
    ]);
    assert!(ok, "{out}{err}");
    let mut manifests = String::new();
    for i in 0..40 {
        let _ = write!(
            manifests,
            "---\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: w{i}\nspec:\n  selector:\n    matchLabels: {{ app: w{i} }}\n  template:\n    metadata:\n      labels: {{ app: w{i} }}\n    spec:\n      containers:\n        - name: app\n          image: busybox:1.36\n"
        );
    }
    p.write("k8s.yaml", &manifests).write(
        "devenv.toml",
        &format!("[project]\nname = \"events\"\n\n[deploy]\nnamespace = \"{ns}\"\nmanifests = [\"k8s.yaml\"]\n"),
    );
    let w = World::new(p);
    w.use_real(&rc);
    #[allow(
        clippy::zombie_processes,
        reason = "reaped by wait4(2) below, for its peak memory"
    )]
    let mut child = w
        .command(&["up", "--ci"], &[])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{e}"));
    let pid = i32::try_from(child.id()).unwrap_or_else(|e| panic!("{e}"));
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value for wait4(2) to fill.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: wait4(2) on our own child, into values we own.
    let waited = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(waited, pid);
    let mut err = String::new();
    if let Some(mut e) = child.stderr.take() {
        use std::io::Read as _;
        let _ = e.read_to_string(&mut err);
    }
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "{err}"
    );
    let peak_mb = usage.ru_maxrss / 1024;
    eprintln!("peak RSS of `up --ci` with 40 resources and 3,000 events: {peak_mb} MB");
    assert!(peak_mb < 120, "peak RSS {peak_mb} MB");
}

/// Issue 28, item 23: `down` then `up` at once: the namespace was still Terminating, and `up`
/// did not wait (it failed, blaming permissions). `up` now waits for a namespace that is being
/// deleted to go, says so, and then makes it anew. (The namespace is held in Terminating by a
/// finalizer on a ConfigMap in it, released a moment after `up` starts.)
#[test]
fn up_waits_for_its_namespace_to_finish_terminating() {
    let Some(rc) = RealCluster::get("up_waits_for_a_terminating_namespace") else {
        return;
    };
    let ns = rc.namespace("terminating");
    rc.kubectl(&["create", "namespace", &ns]);
    let p = hello(&ns);
    p.write(
        "held.yaml",
        &format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: held\n  namespace: {ns}\n  finalizers: [\"devenv.test/hold\"]\n"),
    );
    let (ok, out, err) = rc.kubectl_result(&[
        "create",
        "-f",
        &p.path().join("held.yaml").display().to_string(),
    ]);
    assert!(ok, "{out}{err}");
    rc.kubectl(&["delete", "namespace", &ns, "--wait=false"]);
    rc.wait_until("the namespace to be Terminating", |rc| {
        rc.get_json("namespace", None, &ns)
            .is_some_and(|n| n["status"]["phase"] == "Terminating")
    });
    let w = World::new(p);
    w.use_real(&rc);
    let mut up = Running::spawn(w.command(&["up", "--ci"], &[]));
    up.wait_for(&format!("namespace  `{ns}` is being deleted"));
    rc.kubectl(&[
        "patch",
        "configmap",
        "held",
        "-n",
        &ns,
        "--type=merge",
        "-p",
        "{\"metadata\":{\"finalizers\":null}}",
    ]);
    let status = up.child.wait().unwrap_or_else(|e| panic!("{e}"));
    let text = up.text();
    assert!(status.success(), "{text}");
    assert!(
        text.contains(&format!("namespace  `{ns}` created")),
        "{text}"
    );
    assert!(text.contains("ready      hello ("), "{text}");
}

/// Issue 28, item 23, second half: `down` left the namespace devenv made and a StatefulSet's
/// volume claims without a word. It keeps them (deleting a namespace deletes whatever else is
/// in it; a claim holds data), and says so, with the command that removes each.
#[test]
fn down_says_which_namespace_and_volume_claims_it_keeps() {
    let Some(rc) = RealCluster::get("down_says_what_it_keeps") else {
        return;
    };
    let ns = rc.namespace("keeps");
    let p = Project::new();
    p.write(
        "k8s/db.yaml",
        "apiVersion: apps/v1\nkind: StatefulSet\nmetadata:\n  name: db\nspec:\n  serviceName: db\n  replicas: 1\n  selector:\n    matchLabels: { app: db }\n  template:\n    metadata:\n      labels: { app: db }\n    spec:\n      containers:\n        - name: db\n          image: busybox:1.36\n          volumeMounts:\n            - { name: data, mountPath: /data }\n  volumeClaimTemplates:\n    - metadata:\n        name: data\n      spec:\n        accessModes: [ReadWriteOnce]\n        resources:\n          requests:\n            storage: 1Gi\n",
    )
    .write(
        "devenv.toml",
        &format!("[project]\nname = \"keeps\"\n\n[deploy]\nnamespace = \"{ns}\"\nmanifests = [\"k8s/db.yaml\"]\n\n[[resource]]\nname = \"db\"\nworkload = \"statefulset/db\"\nreadiness_timeout = \"3s\"\n"),
    );
    let w = World::new(p);
    w.use_real(&rc);
    // The claim is made by the StatefulSet's controller whether or not the pod gets ready.
    let _ = w.run(&["up", "--ci"], &[]);
    rc.wait_until("the StatefulSet's claim", |rc| {
        rc.get_json("pvc", Some(&ns), "data-db-0").is_some()
    });
    let out = w.run(&["down"], &[]);
    let text = format!("{}{}", stdout(&out), stderr(&out));
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(
        text.contains(&format!(
            "kept       PersistentVolumeClaim `data-db-0` in {ns} (its data stays; `kubectl delete pvc data-db-0 -n {ns}` removes it)"
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "kept       namespace `{ns}`, which devenv made (`kubectl delete namespace {ns}` removes it and all in it)"
        )),
        "{text}"
    );
    assert!(
        rc.get_json("pvc", Some(&ns), "data-db-0").is_some(),
        "the claim is kept"
    );
}
