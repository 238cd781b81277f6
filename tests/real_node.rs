//! The real-node tier: devenv through the real binary against a real Kubernetes node
//! (`../shared/kubeapi` with `REAL_NODE=1`: kube-apiserver, controller-manager and scheduler
//! v1.36 with a real kubelet on containerd, kube-proxy and CoreDNS). Containers really run:
//! logs, exec, port-forward, probes, restarts and back-off are the kubelet's own.
//!
//! Images are built by the real buildah (chroot isolation, a vfs store of the test's own that
//! reads the base images from ../shared/images) and handed to the node as minikube does: a
//! docker archive through `minikube image load`, which tests/fixtures/fake-minikube carries out
//! with the node's own load-image.sh (nothing is pulled). Minikube itself cannot run here; the
//! fake plays only its CLI, the node is real.
//!
//! `scripts/test.sh` starts the node when `../shared/kubeapi` exists and exports
//! `DEVENV_NODE_HOME`; without it each test says it was skipped (see common::real). Each test
//! works in namespaces of its own.

mod common;

use std::time::{Duration, Instant};

use common::real::RealCluster;
use common::running::Running;
use common::world::World;
use common::{Project, Storage, stderr, stdout};

/// A project on the real node: its World (fake minikube whose image store is the node's,
/// the node's kubeconfig as the profile's context), and the buildah store it builds in.
struct OnNode {
    w: World,
    storage: Storage,
}

impl OnNode {
    fn new(rc: &RealCluster, p: Project) -> OnNode {
        let w = World::new(p);
        w.use_real(rc);
        std::fs::write(w.mk.join("runtime"), "containerd").unwrap_or_else(|e| panic!("{e}"));
        w.bin.real("buildah");
        OnNode {
            w,
            storage: Storage::new(),
        }
    }

    fn env(&self, rc: &RealCluster) -> Vec<(String, String)> {
        vec![
            (
                "PATH".into(),
                format!(
                    "{}:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin",
                    self.w.bin.path().display()
                ),
            ),
            (
                "CONTAINERS_STORAGE_CONF".into(),
                self.storage.conf().display().to_string(),
            ),
            ("BUILDAH_ISOLATION".into(), "chroot".into()),
            (
                "FAKE_MINIKUBE_NODE_HOME".into(),
                rc.home.display().to_string(),
            ),
            (
                "FAKE_MINIKUBE_LOAD_IMAGE".into(),
                RealCluster::load_image_script().display().to_string(),
            ),
        ]
    }

    fn command(&self, rc: &RealCluster, args: &[&str]) -> std::process::Command {
        let env = self.env(rc);
        let pairs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        self.w.command(args, &pairs)
    }

    fn up(&self, rc: &RealCluster) -> Running {
        Running::spawn(self.command(rc, &["up"]))
    }

    fn run(&self, rc: &RealCluster, args: &[&str]) -> std::process::Output {
        self.command(rc, args)
            .output()
            .unwrap_or_else(|e| panic!("{e}"))
    }
}

/// Whether the real node and the base images are both here; says why a test is skipped.
fn node(test: &str) -> Option<RealCluster> {
    let rc = RealCluster::node(test)?;
    common::base_images(test).then_some(rc)
}

/// An HTTP GET of `path` on 127.0.0.1:`port`: the body, or None when nothing answered 200.
fn get(port: u16, path: &str) -> Option<String> {
    use std::io::{Read as _, Write as _};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let (head, body) = text.split_once("\r\n\r\n")?;
    head.starts_with("HTTP/1.")
        .then_some(())
        .filter(|()| head.split_whitespace().nth(1) == Some("200"))?;
    Some(body.to_owned())
}

/// Waits (up to 60 s) until GET `path` on `port` answers with a body holding `want`.
fn wait_served(port: u16, path: &str, want: &str) -> Duration {
    let started = Instant::now();
    let deadline = started + Duration::from_secs(60);
    let mut last = None;
    while Instant::now() < deadline {
        last = get(port, path);
        if last.as_deref().is_some_and(|b| b.contains(want)) {
            return started.elapsed();
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("127.0.0.1:{port}{path} never served `{want}` (last answer: {last:?})");
}

/// The local port of `resource`'s forward, from its `forward    NAME: http://127.0.0.1:P` line.
fn forward_port(up: &mut Running, resource: &str) -> u16 {
    let marker = format!("forward    {resource}: http://127.0.0.1:");
    up.wait_for(&marker);
    let text = up.text();
    let at = text.find(&marker).map_or(0, |i| i + marker.len());
    text[at..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect::<String>()
        .parse()
        .unwrap_or_else(|e| panic!("{e}: {text}"))
}

/// examples/hello in namespace `ns`.
fn hello(ns: &str) -> Project {
    let p = Project::example("hello");
    let cfg = p
        .read("devenv.toml")
        .replace("namespace = \"hello\"", &format!("namespace = \"{ns}\""))
        .replace("8080:8080", &format!("{}:8080", common::free_port()))
        .replace(
            "context = \".\"\n",
            "context = \".\"\nbuilder = \"buildah\"\n",
        );
    p.write("devenv.toml", &cfg);
    p
}

fn pods_of(rc: &RealCluster, ns: &str, app: &str) -> Vec<serde_json::Value> {
    let text = rc.kubectl(&[
        "get",
        "pods",
        "-n",
        ns,
        "-l",
        &format!("app={app}"),
        "-o",
        "json",
    ]);
    let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}"));
    v["items"].as_array().cloned().unwrap_or_default()
}

/// examples/hello end to end on the real node: buildah builds it, the node loads it, the real
/// rollout and the real readiness probe make it ready, devenv's port-forward serves the page,
/// `devenv logs` shows the container's own lines (httpd's), an edit gives one rebuild and a
/// new pod that the forward follows, and `down` removes what devenv applied.
#[test]
fn hello_runs_on_the_real_node_serves_through_the_forward_and_an_edit_gives_a_new_pod() {
    let Some(rc) = node("hello_on_the_real_node") else {
        return;
    };
    let ns = rc.namespace("hello");
    let on = OnNode::new(&rc, hello(&ns));
    let mut up = on.up(&rc);
    up.wait_for("ready      hello (deployment/hello, 1/1 pods");
    let port = forward_port(&mut up, "hello");
    wait_served(port, "/", "hello from devenv");

    // The pod really runs the built tag, and is ready by its probe.
    let pods = pods_of(&rc, &ns, "hello");
    assert_eq!(pods.len(), 1, "{pods:#?}");
    let first_pod = pods[0]["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let status = &pods[0]["status"]["containerStatuses"][0];
    assert_eq!(status["ready"], true, "{status:#}");
    assert!(
        status["image"]
            .as_str()
            .is_some_and(|i| i.contains("hello:devenv-")),
        "{status:#}"
    );

    // The container's own log lines (busybox httpd -v logs each request).
    let deadline = Instant::now() + Duration::from_secs(30);
    let logs = loop {
        let out = on.run(&rc, &["logs", "hello", "--tail", "100"]);
        let text = stdout(&out);
        if text.contains("response:200") || Instant::now() > deadline {
            break text;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(logs.contains("response:200"), "devenv logs hello:\n{logs}");

    // One edit: one rebuild, a new pod, and the forward follows it.
    on.w.p
        .write("hello.txt", "hello, edited while devenv runs\n");
    up.wait_for_n("ready      hello (", 2);
    wait_served(port, "/", "hello, edited while devenv runs");
    let text = up.text();
    assert_eq!(
        text.lines()
            .filter(|l| l.starts_with("built      hello:"))
            .count(),
        2,
        "{text}"
    );
    rc.wait_until("the first pod is gone", |rc| {
        pods_of(rc, &ns, "hello")
            .iter()
            .all(|p| p["metadata"]["name"] != first_pod.as_str())
    });

    up.signal(libc::SIGTERM);
    let _ = up.child.wait();
    let out = on.run(&rc, &["down"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    rc.wait_until("the Deployment is gone", |rc| {
        rc.get_json("deployment", Some(&ns), "hello")
            .is_none_or(|d| d["metadata"]["deletionTimestamp"].is_string())
    });
}
