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
        let runtime = if docker_runtime(rc) {
            "docker"
        } else {
            "containerd"
        };
        std::fs::write(w.mk.join("runtime"), runtime).unwrap_or_else(|e| panic!("{e}"));
        w.bin.real("buildah");
        if runtime == "docker" {
            w.bin.real("docker");
        }
        OnNode {
            w,
            storage: Storage::new(),
        }
    }

    fn env(&self, rc: &RealCluster) -> Vec<(String, String)> {
        let mut env = vec![
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
        ];
        if docker_runtime(rc) {
            // Minikube's docker driver runs beside a Docker daemon on the host, which the
            // doctor checks; the node's dockerd plays that one too.
            env.push((
                "DOCKER_HOST".into(),
                format!("unix://{}", rc.home.join("node/docker.sock").display()),
            ));
        }
        env
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

/// Whether the node runs Minikube's docker runtime (`REAL_NODE=docker`: its own dockerd,
/// which `minikube docker-env` gives to docker builds) instead of containerd.
fn docker_runtime(rc: &RealCluster) -> bool {
    rc.home.join("node/docker.sock").exists()
}

/// Whether the real node and the base images are both here; says why a test is skipped.
fn node(test: &str) -> Option<RealCluster> {
    let rc = RealCluster::node(test)?;
    common::base_images(test).then_some(rc)
}

/// An HTTP GET of `path` on 127.0.0.1:`port`: the body, or None when nothing answered 200.
/// The body is read to its Content-Length, as a browser does, not to the connection's end
/// (through a port-forward, the end of the pod's connection reaches the client late).
fn get(port: u16, path: &str) -> Option<String> {
    use std::io::{BufRead as _, Read as _, Write as _};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut r = std::io::BufReader::new(s);
    let mut line = String::new();
    r.read_line(&mut line).ok()?;
    let ok = line.split_whitespace().nth(1) == Some("200");
    let mut length = None;
    let mut chunked = false;
    loop {
        line.clear();
        r.read_line(&mut line).ok()?;
        let l = line.trim();
        if l.is_empty() {
            break;
        }
        if let Some((k, v)) = l.split_once(':')
            && k.eq_ignore_ascii_case("content-length")
        {
            length = v.trim().parse::<usize>().ok();
        }
        if let Some((k, v)) = l.split_once(':')
            && k.eq_ignore_ascii_case("transfer-encoding")
        {
            chunked = v.trim().eq_ignore_ascii_case("chunked");
        }
    }
    let body = match length {
        Some(n) => {
            let mut body = vec![0; n];
            r.read_exact(&mut body).ok()?;
            body
        }
        None if chunked => read_chunks(&mut r)?,
        None => return None,
    };
    ok.then(|| String::from_utf8_lossy(&body).into_owned())
}

/// A chunked body (`Transfer-Encoding: chunked`, as `next dev` answers), read to its last
/// chunk.
fn read_chunks(r: &mut impl std::io::BufRead) -> Option<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let mut line = String::new();
        r.read_line(&mut line).ok()?;
        let size = usize::from_str_radix(line.trim().split(';').next()?, 16).ok()?;
        if size == 0 {
            return Some(body);
        }
        let mut chunk = vec![0; size + 2];
        r.read_exact(&mut chunk).ok()?;
        chunk.truncate(size);
        body.extend(chunk);
    }
}

/// Waits (up to 60 s) until GET `path` on `port` answers with a body holding `want`.
fn wait_served(port: u16, path: &str, want: &str) -> Duration {
    wait_served_within(port, path, want, Duration::from_secs(60))
}

fn wait_served_within(port: u16, path: &str, want: &str, within: Duration) -> Duration {
    let started = Instant::now();
    let deadline = started + within;
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
    // A probe that fails once while httpd starts is no problem (issue 24 point 4).
    assert!(!up.text().contains("problem    hello"), "{}", up.text());

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

    // A manifest edit inside the build context (hello's .dockerignore leaves k8s/ in it)
    // changes the image's tag too: one rollout, with the new tag (issue 24 point 7: it
    // rolled out twice, the old tag first).
    let generation = |rc: &RealCluster| {
        rc.get_json("deployment", Some(&ns), "hello")
            .and_then(|d| d["metadata"]["generation"].as_i64())
            .unwrap_or_default()
    };
    let before = generation(&rc);
    let manifest = on.w.p.read("k8s/deployment.yaml");
    on.w.p.write(
        "k8s/deployment.yaml",
        &manifest.replace(
            "          ports:\n",
            "          env:\n            - name: GREETING\n              value: edited\n          ports:\n",
        ),
    );
    up.wait_for_n("ready      hello (", 3);
    let text = up.text();
    assert_eq!(up.count("deployed   hello with"), 3, "{text}");
    assert_eq!(generation(&rc), before + 1, "one rollout:\n{text}");
    let d = rc
        .get_json("deployment", Some(&ns), "hello")
        .unwrap_or_else(|| panic!("no Deployment"));
    let container = &d["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["env"][0]["value"], "edited", "{d:#}");
    let last_built = text
        .lines()
        .filter_map(|l| l.strip_prefix("built      "))
        .next_back()
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or_default()
        .to_owned();
    assert_eq!(container["image"], last_built.as_str(), "{text}");

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

/// The page each image serves, and what each Dockerfile makes of it.
const PAGE: &str = "<p>first</p>\n";

/// A project of live-updated images on the real node, each served by its own Deployment
/// (an HTTP readiness probe on 8080) with a forward: `(name, Dockerfile)`; each context holds
/// `index.html` (and `site/index.html`).
fn live_project(ns: &str, images: &[(&str, &str)]) -> Project {
    let p = Project::new();
    let mut cfg = format!(
        "[project]\nname = \"{ns}\"\n\n[deploy]\nnamespace = \"{ns}\"\nmanifests = [\"k8s.yaml\"]\n"
    );
    let mut manifests = String::new();
    for (name, dockerfile) in images {
        p.write(&format!("{name}/Dockerfile"), dockerfile)
            .write(&format!("{name}/index.html"), PAGE)
            .write(&format!("{name}/site/index.html"), PAGE);
        cfg.push_str(&format!(
            "\n[[image]]\nname = \"{name}\"\ncontext = \"{name}\"\nbuilder = \"buildah\"\nlive_update = true\n\n[[resource]]\nname = \"{name}\"\nworkload = \"deployment/{name}\"\nimages = [\"{name}\"]\nport_forwards = [\"{}:8080\"]\n",
            common::free_port()
        ));
        manifests.push_str(&format!(
            "---\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {name}\nspec:\n  replicas: 1\n  selector:\n    matchLabels:\n      app: {name}\n  template:\n    metadata:\n      labels:\n        app: {name}\n    spec:\n      containers:\n        - name: {name}\n          image: {name}\n          ports:\n            - containerPort: 8080\n          readinessProbe:\n            httpGet:\n              path: /\n              port: 8080\n            periodSeconds: 1\n"
        ));
    }
    p.write("devenv.toml", &cfg).write("k8s.yaml", &manifests);
    p
}

const BUSYBOX_ROOT: &str = "FROM busybox:1.36\nCOPY index.html /site/index.html\nCMD [\"httpd\", \"-f\", \"-p\", \"8080\", \"-h\", \"/site\"]\n";
/// busybox's tar as a non-root user who owns the file, in a directory root owns.
const BUSYBOX_USER: &str = "FROM busybox:1.36\nCOPY --chown=65534:65534 index.html /site/index.html\nUSER 65534:65534\nCMD [\"httpd\", \"-f\", \"-p\", \"8080\", \"-h\", \"/site\"]\n";
/// GNU tar (Debian's, in the python image) as a non-root user, the files its own
/// (`COPY --chown=10001 site ./site`), WORKDIR root's: the shape the issue saw fail.
const GNU_USER: &str = "FROM python:3.11-slim\nWORKDIR /app\nCOPY --chown=10001 site ./site\nUSER 10001\nCMD [\"python3\", \"-m\", \"http.server\", \"8080\", \"-d\", \"/app/site\"]\n";
/// A non-root user and a file root owns: live update cannot write it.
const NOT_OWNED: &str = "FROM busybox:1.36\nCOPY index.html /site/index.html\nUSER 65534:65534\nCMD [\"httpd\", \"-f\", \"-p\", \"8080\", \"-h\", \"/site\"]\n";
/// No tar in the image: FROM scratch with busybox as one binary named httpd (busybox runs
/// the applet its name says).
const NO_TAR: &str = "FROM busybox:1.36 AS bb\nFROM scratch\nCOPY --from=bb /bin/busybox /bin/httpd\nCOPY index.html /site/index.html\nCMD [\"/bin/httpd\", \"-f\", \"-p\", \"8080\", \"-h\", \"/site\"]\n";

/// Live update into running containers on the real node: busybox's tar (which reads its
/// input to the end: it hung before stdin was closed) as root and as a non-root user, GNU tar
/// as a non-root user whose files lie in a directory root owns (it failed with `Cannot open:
/// File exists` on every save, then rebuilt without a word). Each save is served by the
/// running container with no build and no new pod.
#[test]
fn live_update_reaches_busybox_and_gnu_tar_as_root_and_as_a_non_root_user() {
    let Some(rc) = node("live_update_on_the_real_node") else {
        return;
    };
    let ns = rc.namespace("live");
    let images = [
        ("bbroot", BUSYBOX_ROOT),
        ("bbuser", BUSYBOX_USER),
        ("gnuuser", GNU_USER),
    ];
    let on = OnNode::new(&rc, live_project(&ns, &images));
    let mut up = on.up(&rc);
    for (name, _) in &images {
        up.wait_for(&format!("ready      {name} ("));
    }
    for (i, (name, _)) in images.iter().enumerate() {
        let port = forward_port(&mut up, name);
        wait_served(port, "/", "first");
        let pod = pods_of(&rc, &ns, name)[0]["metadata"]["name"].clone();
        let file = if *name == "gnuuser" {
            "site/index.html"
        } else {
            "index.html"
        };
        let saved = Instant::now();
        on.w.p
            .write(&format!("{name}/{file}"), &format!("<p>saved {i}</p>\n"));
        up.wait_for(&format!(
            "synced     {name}: synced 1 file to 1 container in "
        ));
        let synced = saved.elapsed();
        wait_served(port, "/", &format!("saved {i}"));
        eprintln!(
            "{name}: save -> synced line {} ms, -> served {} ms",
            synced.as_millis(),
            saved.elapsed().as_millis()
        );
        let text = up.text();
        assert_eq!(
            text.lines()
                .filter(|l| l.starts_with(&format!("built      {name}:"))
                    || l.starts_with(&format!("present    {name}:")))
                .count(),
            1,
            "no build after the save:\n{text}"
        );
        assert_eq!(
            pods_of(&rc, &ns, name)[0]["metadata"]["name"],
            pod,
            "the same pod"
        );
    }
    assert!(!up.text().contains("rebuild    "), "{}", up.text());
    up.signal(libc::SIGTERM);
    let _ = up.child.wait();
}

/// httpd as a child of the shell (PID 1), so killing httpd restarts the container.
const BUSYBOX_RESTARTABLE: &str = "FROM busybox:1.36\nCOPY index.html /site/index.html\nCMD [\"sh\", \"-c\", \"httpd -f -p 8080 -h /site; exit 1\"]\n";

/// A container that restarts after a live update starts again from its image, without the
/// live-updated file: devenv sees it ready again and gives it the files of the earlier live
/// updates (a catch-up), with no build, and the same pod serves the saved page again.
#[test]
fn a_container_restarted_after_a_live_update_is_given_its_files_again() {
    let Some(rc) = node("catch_up_on_the_real_node") else {
        return;
    };
    let ns = rc.namespace("catchup");
    let on = OnNode::new(&rc, live_project(&ns, &[("again", BUSYBOX_RESTARTABLE)]));
    let mut up = on.up(&rc);
    up.wait_for("ready      again (");
    let port = forward_port(&mut up, "again");
    wait_served(port, "/", "first");
    on.w.p.write("again/index.html", "<p>saved once</p>\n");
    up.wait_for("synced     again: synced 1 file to 1 container in ");
    wait_served(port, "/", "saved once");
    let pod = pods_of(&rc, &ns, "again")[0]["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    rc.kubectl(&["exec", "-n", &ns, &pod, "--", "killall", "httpd"]);
    up.wait_for(&format!(
        "(new pod {pod}: the files of earlier live updates)"
    ));
    wait_served(port, "/", "saved once");
    let restarts = pods_of(&rc, &ns, "again")[0]["status"]["containerStatuses"][0]["restartCount"]
        .as_u64()
        .unwrap_or_default();
    assert!(restarts >= 1, "the container did not restart");
    let text = up.text();
    assert_eq!(
        text.lines()
            .filter(|l| l.starts_with("built      again:") || l.starts_with("present    again:"))
            .count(),
        1,
        "no build after the save or the restart:\n{text}"
    );
    assert!(!text.contains("rebuild    "), "{text}");
    up.signal(libc::SIGTERM);
    let _ = up.child.wait();
}

/// What live update cannot do on the real node is said, and built instead: a file the
/// container's user may not write (root's, in a container that runs as another user) names
/// the path and the fix, then builds (and tries again next save); an image without `tar`
/// says so and builds every change from then on.
#[test]
fn live_update_says_why_it_builds_a_file_the_user_may_not_write_and_an_image_without_tar() {
    let Some(rc) = node("live_update_fallbacks_on_the_real_node") else {
        return;
    };
    let ns = rc.namespace("fallback");
    let images = [("notowned", NOT_OWNED), ("notar", NO_TAR)];
    let on = OnNode::new(&rc, live_project(&ns, &images));
    let mut up = on.up(&rc);
    for (name, _) in &images {
        up.wait_for(&format!("ready      {name} ("));
    }

    // Content of this run's own: an image built from it is new to the node.
    let nonce = format!("{:?}", std::time::SystemTime::now());
    let port = forward_port(&mut up, "notowned");
    on.w.p
        .write("notowned/index.html", &format!("<p>second</p>{nonce}\n"));
    up.wait_for_line(&[
        "rebuild    notowned: live update failed (pod notowned-",
        "the container's user may not write /site/index.html; give the files live update changes to the user the container runs as",
        "); building it",
    ]);
    up.wait_after("rebuild    notowned:", "built      notowned:");
    wait_served(port, "/", "second");

    let port = forward_port(&mut up, "notar");
    on.w.p
        .write("notar/index.html", &format!("<p>second</p>{nonce}\n"));
    up.wait_for_line(&[
        "rebuild    notar: live update failed (pod notar-",
        "the image has no `tar`, which live update needs in the container); building it, and every change from now on",
    ]);
    up.wait_after("rebuild    notar:", "built      notar:");
    wait_served(port, "/", "second");
    on.w.p
        .write("notar/index.html", &format!("<p>third</p>{nonce}\n"));
    wait_served(port, "/", "third");
    let text = up.text();
    let after = &text[text.find("rebuild    notar:").unwrap_or(0)..];
    assert_eq!(
        after
            .lines()
            .filter(|l| l.starts_with("built      notar:"))
            .count(),
        2,
        "{text}"
    );
    assert!(!text.contains("synced     notar"), "{text}");
    assert_eq!(
        up.count("rebuild    notar: live update failed"),
        1,
        "tried once:\n{}",
        up.text()
    );
    up.signal(libc::SIGTERM);
    let _ = up.child.wait();
}

/// A crash loop, a failing readiness probe and an image from a registry the node cannot
/// reach, on the real kubelet:
/// - the crash loop is one problem with the container's own last lines, told once and then
///   updated (its restart count grows in the status) instead of a new block in other words
///   on every back-off (issue 24 point 5);
/// - the probe is a problem once it failed three times, not at its first failure;
/// - the pulled image's hint is about the registry, not devenv's build (point 6).
#[test]
fn crash_loops_failing_probes_and_pulled_images_are_told_once_with_their_own_words() {
    let Some(rc) = node("problems_on_the_real_node") else {
        return;
    };
    let ns = rc.namespace("problems");
    let crash = "FROM busybox:1.36\nCMD [\"sh\", \"-c\", \"echo starting; echo 'config missing: DATABASE_URL' >&2; exit 3\"]\n";
    let probe = "FROM busybox:1.36\nCOPY index.html /site/index.html\nCMD [\"httpd\", \"-f\", \"-p\", \"8080\", \"-h\", \"/site\"]\n";
    let p = live_project(&ns, &[("crash", crash), ("probe", probe)]);
    // The crash loop's probe starts after a minute (it is never ready before it crashes,
    // and never probed meanwhile); the probe's asks for a path nothing serves.
    let manifests = p
        .read("k8s.yaml")
        .replacen(
            "            periodSeconds: 1\n",
            "            periodSeconds: 1\n            initialDelaySeconds: 60\n",
            1,
        )
        .replace(
            "path: /\n              port: 8080",
            "path: /healthz\n              port: 8080",
        );
    p.write(
        "k8s.yaml",
        &format!(
            "{manifests}---\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: pulled\nspec:\n  selector:\n    matchLabels:\n      app: pulled\n  template:\n    metadata:\n      labels:\n        app: pulled\n    spec:\n      containers:\n        - name: app\n          image: busybox:1.99\n"
        ),
    );
    p.write(
        "devenv.toml",
        &format!(
            "{}\n[[resource]]\nname = \"pulled\"\nworkload = \"deployment/pulled\"\nimages = []\n",
            p.read("devenv.toml")
        ),
    );
    let on = OnNode::new(&rc, p);
    let mut up = on.up(&rc);
    up.wait_for_line(&[
        "problem    crash: CrashLoopBackOff (pod crash-",
        "the container keeps exiting (",
    ]);
    up.wait_after(
        "problem    crash: CrashLoopBackOff",
        "    config missing: DATABASE_URL",
    );
    up.wait_for_line(&[
        "problem    probe: Unhealthy (pod probe-",
        "Readiness probe failed: HTTP probe failed with statuscode: 404",
    ]);
    up.wait_after(
        "problem    pulled: ",
        "hint: devenv does not build `busybox:1.99`: the cluster pulls it from its registry",
    );

    // Two more back-offs later the status says the newer count; the terminal told it once.
    let deadline = Instant::now() + Duration::from_secs(90);
    let status = loop {
        let out = on.run(&rc, &["status", "--json"]);
        let text = stdout(&out);
        if text.contains("(3 restarts") || Instant::now() > deadline {
            break text;
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    assert!(status.contains("(3 restarts"), "{status}");
    assert!(status.contains("config missing: DATABASE_URL"), "{status}");
    let text = up.text();
    for told in [
        "problem    crash: CrashLoopBackOff",
        "problem    probe: Unhealthy",
    ] {
        assert_eq!(
            text.lines().filter(|l| l.starts_with(told)).count(),
            1,
            "`{told}` once:\n{text}"
        );
    }
    for noise in [
        "problem    crash: BackOff",
        "problem    crash: Unhealthy",
        "devenv builds into Minikube's own Docker daemon",
    ] {
        assert!(!text.contains(noise), "`{noise}`:\n{text}");
    }
    up.signal(libc::SIGTERM);
    let _ = up.child.wait();
}

/// examples/todo for real on the node, end to end: the backend (FastAPI under uvicorn
/// --reload) and the frontend (`next dev`, the Dockerfile's dev stage) built by buildah from
/// their Dockerfiles on the shared base images (pip and npm reach their registries through
/// the host's CA bundle, mounted into the build with `[builders.buildah] args`); the Secret
/// from .env (the backend's readiness probe passes only with its values); the frontend's init
/// container waiting for the backend's Service by name (CoreDNS and kube-proxy on the node);
/// the chart's probes passing on the real kubelet as the non-root users the chart prescribes
/// (issue 24 point 2: `next dev` crash-looped on a root-owned /app/.next); the NodePort
/// answering; a saved backend/app/main.py and a saved page served through devenv's forwards by
/// live update and the servers' own reload, with no build. The init container's busybox:1.36
/// is an image a real cluster pulls from Docker Hub; nothing is pulled here, so the test puts
/// the base image into the node first.
#[test]
fn todo_runs_on_the_real_node_end_to_end_and_saves_are_served_by_live_update() {
    let Some(rc) = node("todo_on_the_real_node") else {
        return;
    };
    rc.load_base_image("busybox:1.36");
    let ns = rc.namespace("todo");
    let p = Project::todo(&ns, 0);
    let cfg = p
        .read("devenv.toml")
        .replace(
            "context = \"backend\"\n",
            "context = \"backend\"\nbuilder = \"buildah\"\n",
        )
        .replace(
            "context = \"frontend\"\n",
            "context = \"frontend\"\nbuilder = \"buildah\"\n",
        );
    p.write(
        "devenv.toml",
        &format!(
            "{cfg}\n[builders.buildah]\nargs = [\"--volume\", \"/etc/ssl/certs/ca-certificates.crt:/etc/ssl/certs/ca-certificates.crt:ro\"]\n"
        ),
    );
    let on = OnNode::new(&rc, p);
    on.w.bin.real("helm");
    let started = Instant::now();
    let mut up = on.up(&rc);
    // pip and npm install from the registries: minutes on two cores.
    up.wait_for_within("ready      backend (", Duration::from_secs(900));
    up.wait_for_within("ready      frontend (", Duration::from_secs(300));
    eprintln!(
        "todo: up -> both ready in {} s",
        started.elapsed().as_secs()
    );
    let backend = forward_port(&mut up, "backend");
    let frontend = forward_port(&mut up, "frontend");
    // Ready by its probe, which needs the Secret's values.
    wait_served(backend, "/ready", "\"ready\"");
    // `next dev` compiles the page at its first request.
    wait_served_within(frontend, "/", "<h1>Todo</h1>", Duration::from_secs(180));

    // The init container waited for the backend by its Service's name and ended; the pods run
    // as the chart's non-root users.
    let pods = rc.kubectl(&[
        "get",
        "pods",
        "-n",
        &ns,
        "-l",
        "app.kubernetes.io/component=frontend",
        "-o",
        "json",
    ]);
    let pods: serde_json::Value = serde_json::from_str(&pods).unwrap_or_else(|e| panic!("{e}"));
    let pod = &pods["items"][0];
    assert_eq!(
        pod["status"]["initContainerStatuses"][0]["state"]["terminated"]["reason"], "Completed",
        "{pod:#}"
    );
    assert_eq!(
        pod["spec"]["securityContext"]["runAsNonRoot"], true,
        "{pod:#}"
    );
    assert_eq!(
        pod["status"]["containerStatuses"][0]["restartCount"], 0,
        "no crash loop (issue 24 point 2):\n{pod:#}"
    );

    // The NodePort answers on the node's address, as `minikube ip` would give it.
    let service = rc
        .get_json("service", Some(&ns), "todo-frontend")
        .unwrap_or_else(|| panic!("no frontend Service"));
    let node_port = service["spec"]["ports"][0]["nodePort"]
        .as_u64()
        .and_then(|p| u16::try_from(p).ok())
        .unwrap_or_else(|| panic!("no nodePort: {service:#}"));
    wait_served(node_port, "/", "<h1>Todo</h1>");

    // A saved backend file: synced into the container, uvicorn reloads it.
    let nonce = format!(
        "{}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
    );
    let main = on.w.p.read("backend/app/main.py");
    let saved = Instant::now();
    on.w.p.write(
        "backend/app/main.py",
        &main.replace(
            "return {\"status\": \"ok\"}",
            &format!("return {{\"status\": \"ok\", \"saved\": \"{nonce}\"}}"),
        ),
    );
    wait_served(backend, "/health", &nonce);
    eprintln!(
        "todo: backend/app/main.py saved -> served in {} ms",
        saved.elapsed().as_millis()
    );
    up.wait_for("synced     todo-backend: synced 1 file to 1 container in ");

    // A saved page: synced, `next dev` recompiles it.
    let page = on.w.p.read("frontend/app/page.js");
    let saved = Instant::now();
    on.w.p.write(
        "frontend/app/page.js",
        &page.replace("<h1>Todo</h1>", &format!("<h1>Todo {nonce}</h1>")),
    );
    wait_served(frontend, "/", &format!("<h1>Todo {nonce}</h1>"));
    eprintln!(
        "todo: frontend/app/page.js saved -> served in {} ms",
        saved.elapsed().as_millis()
    );
    up.wait_for("synced     todo-frontend: synced 1 file to 1 container in ");

    let text = up.text();
    // Built once (or found in the node from an earlier run), not again after the saves.
    for image in ["todo-backend", "todo-frontend"] {
        assert_eq!(
            text.lines()
                .filter(|l| l.starts_with(&format!("built      {image}:"))
                    || l.starts_with(&format!("present    {image}:")))
                .count(),
            1,
            "one build of {image}, none after the saves:\n{text}"
        );
    }
    assert!(!text.contains("problem    "), "{text}");
    up.signal(libc::SIGTERM);
    let _ = up.child.wait();
}

/// Minikube's docker runtime on a real node (`REAL_NODE=docker`: the kubelet runs pods
/// through the node's own dockerd, as with Minikube's default runtime): an image with
/// `builder = "docker"` is built by docker with the environment `minikube docker-env` gives,
/// straight into the node's image store (no archive, no `minikube image load`); the pod runs
/// the built tag; an edit rebuilds and rolls out a new pod that serves it. The base image is
/// put into the node's dockerd first (nothing is pulled). scripts/test.sh runs this test
/// alone, on a node of that kind started after the containerd node stopped.
#[test]
fn docker_runtime_builds_go_straight_into_the_node_and_an_edit_rolls_out() {
    let Some(rc) = RealCluster::docker_node("docker_runtime_builds") else {
        return;
    };
    if !common::base_images("docker_runtime_builds") {
        return;
    }
    assert!(docker_runtime(&rc), "{} runs no dockerd", rc.home.display());
    rc.load_base_image("busybox:1.36");
    let ns = rc.namespace("dockerrt");
    let p = hello(&ns);
    p.write(
        "devenv.toml",
        &p.read("devenv.toml")
            .replace("builder = \"buildah\"", "builder = \"docker\""),
    );
    let on = OnNode::new(&rc, p);
    let mut up = on.up(&rc);
    up.wait_for("ready      hello (deployment/hello, 1/1 pods");
    let port = forward_port(&mut up, "hello");
    wait_served(port, "/", "hello from devenv");
    on.w.p
        .write("hello.txt", "hello, edited on the docker runtime\n");
    up.wait_for_n("ready      hello (", 2);
    wait_served(port, "/", "hello, edited on the docker runtime");

    let text = up.text();
    let built: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("built      "))
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert_eq!(built.len(), 2, "{text}");
    // In the node's dockerd, by the tag the Deployment runs; minikube never loaded an archive.
    let d = rc
        .get_json("deployment", Some(&ns), "hello")
        .unwrap_or_else(|| panic!("no Deployment"));
    assert_eq!(
        d["spec"]["template"]["spec"]["containers"][0]["image"], built[1],
        "{d:#}"
    );
    let inspect = std::process::Command::new("docker")
        .args(["image", "inspect", "--format", "{{.Id}}", built[1]])
        .env(
            "DOCKER_HOST",
            format!("unix://{}", rc.home.join("node/docker.sock").display()),
        )
        .output()
        .unwrap_or_else(|e| panic!("docker: {e}"));
    assert!(
        inspect.status.success(),
        "{}",
        String::from_utf8_lossy(&inspect.stderr)
    );
    let calls = std::fs::read_to_string(on.w.mk.join("log")).unwrap_or_default();
    assert!(calls.contains("docker-env"), "{calls}");
    assert!(!calls.contains("image load"), "{calls}");
    up.signal(libc::SIGTERM);
    let _ = up.child.wait();
}

/// The benchmark's apps: two live-updated, two rebuilt on each save.
const APPS: [&str; 4] = ["bbroot", "gnuuser", "hello", "pyapp"];

/// p50 and p90 of `samples`, in ms.
fn percentiles(mut samples: Vec<Duration>) -> (u128, u128) {
    samples.sort();
    let at = |q: f64| {
        let i = ((samples.len() as f64 - 1.0) * q).round() as usize;
        samples.get(i).map_or(0, Duration::as_millis)
    };
    (at(0.5), at(0.9))
}

/// devenv's resident memory, in MB.
fn rss_mb(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

/// `scripts/bench.sh real`: the figures of docs/performance.md on the real node (ignored in
/// the suite; timing targets live in benchmarks, not in tests). Save -> new content served
/// through devenv's forward, by live update (busybox's tar and GNU tar) and by a rebuild
/// (hello, and pyapp on the python base: build, load into the node, rollout, probe); cold
/// `up` (images new to the node) and warm `up` (nothing to build) to ready; devenv's RSS idle
/// with the apps running. On a node with Minikube's docker runtime (`REAL_NODE=docker`,
/// `scripts/bench.sh real docker`) the images are built by docker straight into the node's
/// dockerd, as with `minikube docker-env`.
#[test]
#[ignore = "a benchmark: scripts/bench.sh real"]
fn measure_on_the_real_node() {
    let Some(rc) = node("measure_on_the_real_node") else {
        return;
    };
    let nonce = format!(
        "{}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
    );
    let ns = rc.namespace("bench");
    let images = [("bbroot", BUSYBOX_ROOT), ("gnuuser", GNU_USER)];
    let p = live_project(&ns, &images);
    // hello beside them, without live update: its saves are rebuilds.
    let hello_dir = common::repo_root().join("examples/hello");
    common::copy_dir(&hello_dir, &p.path().join("hello"));
    p.write("hello/hello.txt", &format!("hello {nonce}\n"));
    p.write("bbroot/index.html", &format!("<p>{nonce}</p>\n"));
    p.write("gnuuser/site/index.html", &format!("<p>{nonce}</p>\n"));
    let port = common::free_port();
    p.write(
        "devenv.toml",
        &format!(
            "{}\n[[image]]\nname = \"hello\"\ncontext = \"hello\"\nbuilder = \"buildah\"\n\n[[resource]]\nname = \"hello\"\nworkload = \"deployment/hello\"\nimages = [\"hello\"]\nport_forwards = [\"{port}:8080\"]\n",
            p.read("devenv.toml")
        ),
    );
    p.write(
        "k8s.yaml",
        &format!(
            "{}---\n{}",
            p.read("k8s.yaml"),
            std::fs::read_to_string(hello_dir.join("k8s/deployment.yaml")).unwrap_or_default()
        ),
    );
    // pyapp: the python image of the rebuild figures (a 155 MB base), without live
    // update: its saves are rebuilds too.
    let py = live_project(&ns, &[("pyapp", GNU_USER)]);
    let py_cfg = py.read("devenv.toml");
    let py_cfg = &py_cfg[py_cfg.find("[[image]]").unwrap_or(0)..];
    p.write(
        "devenv.toml",
        &format!(
            "{}\n{}",
            p.read("devenv.toml"),
            py_cfg.replace("live_update = true\n", "")
        ),
    );
    p.write(
        "k8s.yaml",
        &format!("{}{}", p.read("k8s.yaml"), py.read("k8s.yaml")),
    );
    p.write("pyapp/Dockerfile", GNU_USER);
    p.write("pyapp/site/index.html", &format!("<p>{nonce}</p>\n"));
    // On Minikube's docker runtime, images are built by docker with its docker-env, straight
    // into the node's store (no archive, no load); the base images are the node's own.
    let docker = docker_runtime(&rc);
    let node_kind = if docker {
        "real node (docker runtime)"
    } else {
        "real node"
    };
    if docker {
        p.write(
            "devenv.toml",
            &p.read("devenv.toml")
                .replace("builder = \"buildah\"", "builder = \"docker\""),
        );
        for base in ["busybox:1.36", "python:3.11-slim"] {
            rc.load_base_image(base);
        }
    }
    let on = OnNode::new(&rc, p);

    let cold = Instant::now();
    let mut up = on.up(&rc);
    for name in APPS {
        up.wait_for(&format!("ready      {name} ("));
    }
    let cold = cold.elapsed();
    for (name, file) in [("bbroot", "index.html"), ("gnuuser", "site/index.html")] {
        let port = forward_port(&mut up, name);
        wait_served(port, "/", &nonce);
        let mut samples = Vec::new();
        for i in 0..20 {
            let saved = Instant::now();
            on.w.p.write(
                &format!("{name}/{file}"),
                &format!("<p>save {i} {nonce}</p>\n"),
            );
            wait_served(port, "/", &format!("save {i} {nonce}"));
            samples.push(saved.elapsed());
            std::thread::sleep(Duration::from_millis(150));
        }
        let (p50, p90) = percentiles(samples);
        println!(
            "{node_kind}, live update ({name}): save -> served p50 {p50} ms, p90 {p90} ms (20 saves)"
        );
        let marker = format!("synced     {name}: synced 1 file to 1 container in ");
        let syncs: Vec<Duration> = up
            .text()
            .lines()
            .filter_map(|l| l.strip_prefix(&marker))
            .filter_map(|l| l.split_whitespace().next()?.parse().ok())
            .map(Duration::from_millis)
            .collect();
        let n = syncs.len();
        let (p50, p90) = percentiles(syncs);
        println!(
            "{node_kind}, live update ({name}): the sync itself p50 {p50} ms, p90 {p90} ms ({n} syncs; the first opens the container's shell)"
        );
    }
    let mut samples = Vec::new();
    for i in 0..3 {
        let saved = Instant::now();
        on.w.p
            .write("hello/hello.txt", &format!("rebuild {i} {nonce}\n"));
        wait_served(port, "/", &format!("rebuild {i} {nonce}"));
        samples.push(saved.elapsed());
    }
    let (p50, p90) = percentiles(samples);
    println!(
        "{node_kind}, rebuild (hello): save -> new pod serving p50 {p50} ms, p90 {p90} ms (3 saves)"
    );
    let py_port = forward_port(&mut up, "pyapp");
    let mut samples = Vec::new();
    for i in 0..3 {
        let saved = Instant::now();
        on.w.p.write(
            "pyapp/site/index.html",
            &format!("<p>rebuild {i} {nonce}</p>\n"),
        );
        wait_served(py_port, "/", &format!("rebuild {i} {nonce}"));
        samples.push(saved.elapsed());
    }
    let (p50, p90) = percentiles(samples);
    println!(
        "{node_kind}, rebuild (pyapp, python base): save -> new pod serving p50 {p50} ms, p90 {p90} ms (3 saves)"
    );
    std::thread::sleep(Duration::from_secs(5));
    println!(
        "{node_kind}, devenv idle with 4 apps running: RSS {:.1} MB",
        rss_mb(up.child.id())
    );
    up.signal(libc::SIGTERM);
    let _ = up.child.wait();
    println!(
        "{node_kind}, cold up (4 images new to the node) -> all ready: {} ms",
        cold.as_millis()
    );
    // The saves changed the images' content: the next `up` builds them again.
    let again = Instant::now();
    let mut up = on.up(&rc);
    for name in APPS {
        up.wait_for(&format!("ready      {name} ("));
    }
    println!(
        "{node_kind}, up after the saves (bbroot and gnuuser built again) -> all ready: {} ms",
        again.elapsed().as_millis()
    );
    up.signal(libc::SIGTERM);
    let _ = up.child.wait();
    let warm = Instant::now();
    let mut up = on.up(&rc);
    // Each line with when it came, to tell where a warm start spends its time.
    let mut seen = 0;
    let mut timeline = String::new();
    while warm.elapsed() < Duration::from_secs(120) {
        let text = up.text();
        for l in text.lines().skip(seen) {
            timeline.push_str(&format!("  {:>6} ms  {l}\n", warm.elapsed().as_millis()));
            seen += 1;
        }
        if APPS
            .iter()
            .all(|n| text.contains(&format!("ready      {n} (")))
        {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    println!(
        "{node_kind}, warm up (nothing to build) -> all ready: {} ms",
        warm.elapsed().as_millis()
    );
    if std::env::var_os("DEVENV_BENCH_TIMELINE").is_some() {
        println!("{timeline}");
    }
    up.signal(libc::SIGTERM);
    let _ = up.child.wait();
}
