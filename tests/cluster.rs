//! Cluster bootstrap through the real binary (`devenv up`, `devenv down`).
//!
//! Minikube cannot run here: `tests/fixtures/fake-minikube` plays it. It is stateful, prints
//! the real tool's output formats and exit codes, and logs every argv. The Kubernetes API is
//! `common::fake_kube`, a fake server speaking the real wire protocol; kube-rs is not mocked.
//! The Docker daemon is a fake `docker` that answers like a running one. kubectl is the real one.

mod common;

use std::process::{Command, Output};

use common::FakeBin;
use common::fake_kube::FakeKube;
use common::world::World;
use common::{Project, stderr, stdout};

/// examples/hello: one docker-built image, manifests, namespace `hello`; the fake API server
/// rolls Deployments out at once.
fn world() -> World {
    let w = World::new(Project::example("hello"));
    w.api.auto_rollout();
    w
}

fn world_with(p: Project) -> World {
    let w = World::new(p);
    w.api.auto_rollout();
    w
}

/// `up --ci` brought everything up and every resource is ready.
fn assert_cluster_ready(out: &Output) {
    let (o, err) = (stdout(out), stderr(out));
    assert_eq!(out.status.code(), Some(0), "{o}\n{err}");
    assert!(o.contains("\nresource "), "a summary table: {o}");
    assert!(!o.contains("failed") && !o.contains("skipped"), "{o}");
}

#[test]
fn an_absent_profile_is_created_at_the_configured_size_and_a_second_up_starts_nothing() {
    let w = world();
    let out = w.run(&["up", "--ci"], &[]);
    assert_cluster_ready(&out);
    assert_eq!(
        w.up_calls(),
        [
            "status -p minikube -o json",
            "start -p minikube --cpus=4 --memory=8192",
            "-p minikube docker-env --shell none -o json",
        ]
    );
    let text = stdout(&out);
    assert!(
        text.contains("cluster    minikube profile `minikube` created (4 CPUs, 8192 MB)"),
        "{text}"
    );
    assert!(
        text.contains("images     built in Minikube's Docker daemon (tcp://127.0.0.1:32771)"),
        "{text}"
    );
    assert!(text.contains("namespace  `hello` created"), "{text}");
    // minikube's progress lines are streamed to the user.
    assert!(
        stderr(&out)
            .contains("  minikube | * Done! kubectl is now configured to use \"minikube\" cluster"),
        "{}",
        stderr(&out)
    );
    // The namespace was applied server-side, as devenv's, on the profile's context.
    let ns = w
        .api
        .object("/api/v1/namespaces/hello")
        .unwrap_or_else(|| panic!("no namespace"));
    assert_eq!(
        ns["metadata"]["labels"]["app.kubernetes.io/managed-by"],
        "devenv"
    );
    let patch = w
        .api
        .writes()
        .into_iter()
        .find(|r| r.path == "/api/v1/namespaces/hello")
        .unwrap_or_else(|| panic!("no write"));
    assert_eq!(patch.method, "PATCH");
    assert_eq!(patch.content_type, "application/apply-patch+yaml");
    assert!(
        patch.query.contains("fieldManager=devenv"),
        "{}",
        patch.query
    );

    let writes_before = w.api.writes().len();
    let again = w.run(&["up", "--ci"], &[]);
    assert_cluster_ready(&again);
    assert_eq!(
        w.up_calls(),
        [
            "status -p minikube -o json",
            "profile list -o json",
            "-p minikube docker-env --shell none -o json"
        ]
    );
    assert!(
        stdout(&again).contains("cluster    minikube profile `minikube` already running"),
        "{}",
        stdout(&again)
    );
    let namespace_writes = w
        .api
        .writes()
        .into_iter()
        .filter(|r| r.path == "/api/v1/namespaces/hello")
        .count();
    assert_eq!(
        namespace_writes, 1,
        "the namespace exists: it is not written again"
    );
    assert!(
        w.api.writes().len() > writes_before,
        "the manifests are applied again (idempotent)"
    );
}

#[test]
fn a_stopped_profile_is_started_as_it_is() {
    let w = world();
    w.profile("stopped", 4, 8192);
    let out = w.run(&["up", "--ci"], &[]);
    assert_cluster_ready(&out);
    assert_eq!(
        w.up_calls(),
        [
            "status -p minikube -o json",
            "profile list -o json",
            "start -p minikube",
            "-p minikube docker-env --shell none -o json"
        ]
    );
    assert!(
        stdout(&out).contains("minikube profile `minikube` started"),
        "{}",
        stdout(&out)
    );
    assert_eq!(w.state(), "running");
    let again = w.run(&["up", "--ci"], &[]);
    assert_cluster_ready(&again);
    assert!(
        !w.up_calls().iter().any(|c| c.starts_with("start")),
        "a second up starts nothing"
    );
}

#[test]
fn a_running_profile_of_the_right_size_is_left_alone() {
    let w = world();
    w.profile("running", 4, 8192);
    let out = w.run(&["up", "--ci"], &[]);
    assert_cluster_ready(&out);
    assert_eq!(
        w.up_calls(),
        [
            "status -p minikube -o json",
            "profile list -o json",
            "-p minikube docker-env --shell none -o json"
        ]
    );
}

#[test]
fn a_running_profile_with_2_cpus_stops_up_with_both_fixes_and_recreate_is_explicit() {
    let w = world();
    w.profile("running", 2, 4000);
    let out = w.run(&["up", "--ci"], &[]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("devenv up: the machine is not ready; nothing was started."),
        "{err}"
    );
    assert!(
        err.contains("profile `minikube` (Running) has 2 CPUs and 4000 MB"),
        "{err}"
    );
    assert!(
        err.contains("minikube delete -p minikube && devenv up"),
        "{err}"
    );
    assert!(
        err.contains("set cpus = 2 and memory = \"4000mb\" in [cluster]"),
        "{err}"
    );
    assert_eq!(
        w.up_calls(),
        Vec::<String>::new(),
        "nothing but doctor's queries ran"
    );
    assert_eq!(w.state(), "running");

    let out = w.run(&["up", "--ci", "--recreate-cluster"], &[]);
    assert_cluster_ready(&out);
    assert_eq!(
        w.up_calls(),
        [
            "status -p minikube -o json",
            "profile list -o json",
            "delete -p minikube",
            "start -p minikube --cpus=4 --memory=8192",
            "-p minikube docker-env --shell none -o json",
        ]
    );
    assert!(stdout(&out).contains("minikube profile `minikube` recreated (4 CPUs, 8192 MB)"));
    let again = w.run(&["up", "--ci"], &[]);
    assert_cluster_ready(&again);
    assert_eq!(
        w.up_calls(),
        [
            "status -p minikube -o json",
            "profile list -o json",
            "-p minikube docker-env --shell none -o json"
        ]
    );
}

#[test]
fn the_none_driver_builds_on_the_host_daemon_and_says_so() {
    let w = world();
    w.profile("running", 4, 8192);
    std::fs::write(w.mk.join("driver"), "none").unwrap_or_else(|e| panic!("{e}"));
    let out = w.run(&["up", "--ci"], &[]);
    assert_cluster_ready(&out);
    assert!(
        stdout(&out).contains(
            "images     built in the host's Docker daemon: the `none` driver runs the cluster there"
        ),
        "{}",
        stdout(&out)
    );
    let docker = std::fs::read_to_string(w.fakes.path().join("docker/log")).unwrap_or_default();
    assert!(
        docker.lines().any(|l| l.starts_with("build ")
            && l.ends_with(
                "| DOCKER_HOST= DOCKER_TLS_VERIFY= DOCKER_CERT_PATH= MINIKUBE_ACTIVE_DOCKERD="
            )),
        "{docker}"
    );
}

#[test]
fn a_failed_start_shows_minikubes_own_error_lines() {
    let w = world();
    let out = w.run(&["up", "--ci"], &[("FAKE_MINIKUBE_START_FAIL", "memory")]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(
            "error: `minikube start -p minikube --cpus=4 --memory=8192` failed (exit 29):"
        ),
        "{err}"
    );
    assert!(err.contains("  X Exiting due to RSRC_INSUFFICIENT_CONTAINER_MEMORY: docker only has 3900MiB available"), "{err}");
    assert!(
        !stdout(&out).contains("\nresource "),
        "no summary after a failed start"
    );

    let out = w.run(&["up", "--ci"], &[("FAKE_MINIKUBE_START_FAIL", "driver")]);
    let err = stderr(&out);
    assert!(err.contains("failed (exit 60):"), "{err}");
    assert!(
        err.contains("X Exiting due to PROVIDER_DOCKER_NOT_FOUND"),
        "{err}"
    );
    assert_eq!(w.state(), "absent");
}

#[test]
fn a_paused_profile_is_not_touched_and_the_fix_is_named() {
    let w = world();
    w.profile("paused", 4, 8192);
    let out = w.run(&["up", "--ci"], &[]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("error: minikube profile `minikube` is paused"),
        "{err}"
    );
    assert!(err.contains("fix: minikube unpause -p minikube"), "{err}");
    assert_eq!(w.up_calls(), ["status -p minikube -o json"]);
}

#[test]
fn a_profile_with_its_api_server_down_gets_a_fix() {
    let w = world();
    w.profile("broken", 4, 8192);
    let out = w.run(&["up", "--ci"], &[]);
    let err = stderr(&out);
    assert!(err.contains("minikube profile `minikube` is not healthy (host Running, kubelet Running, apiserver Stopped)"), "{err}");
    assert!(err.contains("fix: minikube start -p minikube"), "{err}");
    assert_eq!(w.up_calls(), ["status -p minikube -o json"]);
}

#[test]
fn only_the_addons_that_are_off_are_enabled() {
    let p = Project::example("hello");
    let cfg = p.read("devenv.toml").replace(
        "[project]\nname = \"hello\"",
        "[project]\nname = \"hello\"\n\n[cluster]\naddons = [\"ingress\", \"metrics-server\"]",
    );
    p.write("devenv.toml", &cfg);
    let w = world_with(p);
    w.profile("running", 4, 8192);
    std::fs::write(w.mk.join("addons"), "ingress\n").unwrap_or_else(|e| panic!("{e}"));
    let out = w.run(&["up", "--ci"], &[]);
    assert_cluster_ready(&out);
    assert_eq!(
        w.up_calls(),
        [
            "status -p minikube -o json",
            "profile list -o json",
            "addons list -p minikube -o json",
            "addons enable metrics-server -p minikube",
            "-p minikube docker-env --shell none -o json",
        ]
    );
    assert!(stdout(&out).contains("addon      metrics-server enabled"));
}

#[test]
fn a_containerd_cluster_builds_with_minikube_image_build_never_the_host_daemon() {
    let w = world();
    w.profile("running", 4, 8192);
    std::fs::write(w.mk.join("runtime"), "containerd").unwrap_or_else(|e| panic!("{e}"));
    let out = w.run(&["up", "--ci"], &[]);
    assert_cluster_ready(&out);
    assert!(
        stdout(&out).contains("images     built with `minikube image build`: the cluster's runtime is containerd, not Docker"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn the_client_uses_the_profiles_context_by_name_not_the_current_one() {
    let w = world();
    w.profile("running", 4, 8192);
    let other = FakeKube::start();
    // kubectl points at another (local) cluster; devenv must still talk to the profile's.
    w.write_kubeconfig(
        &[("minikube", &w.api.url()), ("kind-other", &other.url())],
        "kind-other",
    );
    let out = w.run(&["up", "--ci"], &[]);
    assert_cluster_ready(&out);
    assert!(w.api.object("/api/v1/namespaces/hello").is_some());
    assert!(
        other.requests().is_empty(),
        "the current context's cluster was contacted: {:?}",
        other.requests()
    );
    assert!(
        stdout(&out).contains(&format!("context    `minikube` ({})", w.api.url())),
        "{}",
        stdout(&out)
    );
}

fn existing_project(context: &str, allowed: &str) -> Project {
    let p = Project::example("hello");
    let cfg = p.read("devenv.toml").replace(
        "[project]\nname = \"hello\"",
        &format!("[project]\nname = \"hello\"\n\n[cluster]\nprovider = \"existing\"\ncontext = \"{context}\"\nregistry = \"registry.example.com/team\"\n{allowed}"),
    );
    p.write("devenv.toml", &cfg);
    p.write(".env", "TOKEN=x\n");
    p
}

#[test]
fn devenv_refuses_to_write_to_a_context_that_is_neither_the_profile_nor_allowed() {
    // `down` goes straight to the guard (no doctor in front of it).
    let w = world_with(existing_project("prod", ""));
    w.write_kubeconfig(&[("prod", "https://api.prod.example.com:6443")], "prod");
    let out = w.run(&["down"], &[]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("refusing to write to kube context `prod` (https://api.prod.example.com:6443): it is not a local cluster and devenv.toml does not allow it"),
        "{err}"
    );
    assert!(err.contains("allowed_contexts = [\"prod\"]"), "{err}");
    // `up` is stopped by doctor's identical check before anything runs.
    let out = w.run(&["up", "--ci"], &[]);
    assert!(
        stderr(&out).contains("FAIL    kube.context"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn an_allowed_existing_context_is_used_without_minikube() {
    let w = world_with(existing_project(
        "staging",
        "allowed_contexts = [\"staging\"]",
    ));
    w.write_kubeconfig(&[("staging", &w.api.url())], "staging");
    let out = w.run(&["up", "--ci"], &[]);
    assert_cluster_ready(&out);
    let log = std::fs::read_to_string(w.mk.join("log")).unwrap_or_default();
    assert!(
        log.is_empty(),
        "minikube must not be called for an existing cluster: {log}"
    );
    assert!(w.api.object("/api/v1/namespaces/hello").is_some());
    // Built on the host's daemon and pushed to the registry under the same content tag.
    let docker = std::fs::read_to_string(w.fakes.path().join("docker/log")).unwrap_or_default();
    let built = stdout(&out);
    let reference = built
        .lines()
        .find_map(|l| l.strip_prefix("built      "))
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or_else(|| panic!("{built}"))
        .to_owned();
    assert!(
        reference.starts_with("registry.example.com/team/hello:devenv-"),
        "{reference}"
    );
    assert!(
        docker.contains(&format!(
            "\nbuild -t {reference} -f Dockerfile . | DOCKER_HOST= "
        )),
        "{docker}"
    );
    assert!(
        docker.contains(&format!("\npush {reference} | DOCKER_HOST= ")),
        "{docker}"
    );
    // Present locally next time, and pushed again in case the registry lacks it.
    let again = w.run(&["up", "--ci"], &[]);
    assert!(
        stdout(&again).contains(&format!("present    {reference}")),
        "{}",
        stdout(&again)
    );
    let docker = std::fs::read_to_string(w.fakes.path().join("docker/log")).unwrap_or_default();
    assert_eq!(
        docker.matches(&format!("\npush {reference} ")).count(),
        2,
        "{docker}"
    );
    assert_eq!(docker.matches("\nbuild ").count(), 1, "{docker}");
}

#[test]
fn down_removes_what_devenv_deployed_and_leaves_the_cluster_running() {
    let p = Project::example("todo");
    p.write(".env", "SECRET_KEY=x\nDATABASE_URL=y\n");
    let w = world_with(p);
    w.profile("running", 4, 8192);
    let calls = w.fakes.path().join("calls.log");
    w.bin
        .tool("helm", &format!("echo \"helm $*\" >> {}", calls.display()));
    w.api.insert(
        "/api/v1/namespaces/todo/secrets/todo-secrets",
        serde_json::json!({"kind": "Secret", "metadata": {"name": "todo-secrets"}}),
    );
    let out = w.run(&["down"], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let helm = std::fs::read_to_string(&calls).unwrap_or_default();
    assert_eq!(
        helm.trim(),
        "helm uninstall todo --namespace todo --kube-context minikube"
    );
    assert!(
        w.api
            .object("/api/v1/namespaces/todo/secrets/todo-secrets")
            .is_none(),
        "the secret is deleted"
    );
    let text = stdout(&out);
    assert!(
        text.contains("removed    helm release `todo` from todo"),
        "{text}"
    );
    assert!(text.contains("removed    secret `todo-secrets`"), "{text}");
    assert!(text.contains("the cluster keeps running"), "{text}");
    assert_eq!(w.state(), "running");
    let log = std::fs::read_to_string(w.mk.join("log")).unwrap_or_default();
    assert!(!log.contains("delete") && !log.contains("stop"), "{log}");

    let out = w.run(&["down", "--stop-cluster"], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        std::fs::read_to_string(w.mk.join("log"))
            .unwrap_or_default()
            .trim(),
        "stop -p minikube"
    );
    assert_eq!(w.state(), "stopped", "stopped, never deleted");
}

#[test]
fn down_deletes_the_objects_of_plain_manifests_that_are_still_devenvs() {
    let w = world();
    w.profile("running", 4, 8192);
    w.api.insert(
        "/apis/apps/v1/namespaces/hello/deployments/hello",
        serde_json::json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "hello", "namespace": "hello", "labels": {"devenv.dev/project": "hello"}}}),
    );
    let out = w.run(&["down"], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let deletes: Vec<String> = w
        .api
        .writes()
        .into_iter()
        .filter(|r| r.method == "DELETE")
        .map(|r| r.path)
        .collect();
    assert_eq!(
        deletes,
        ["/apis/apps/v1/namespaces/hello/deployments/hello"]
    );
    assert!(
        stdout(&out).contains("removed    Deployment/hello"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn docker_env_reaches_the_build_process_and_nothing_else() {
    let w = world();
    let out = w.run(&["up", "--ci"], &[]);
    assert_cluster_ready(&out);
    let log = std::fs::read_to_string(w.fakes.path().join("docker/log")).unwrap_or_default();
    let minikube_env = "DOCKER_HOST=tcp://127.0.0.1:32771 DOCKER_TLS_VERIFY=1 DOCKER_CERT_PATH=/home/dev/.minikube/certs MINIKUBE_ACTIVE_DOCKERD=minikube";
    let host_env = "DOCKER_HOST= DOCKER_TLS_VERIFY= DOCKER_CERT_PATH= MINIKUBE_ACTIVE_DOCKERD=";
    let tag = stdout(&out)
        .lines()
        .find_map(|l| l.strip_prefix("built      hello:"))
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or_else(|| panic!("no build in {}", stdout(&out)))
        .to_owned();
    let mut calls: Vec<&str> = log.lines().collect();
    calls.sort_unstable();
    let mut expected = vec![
        format!("--version | {host_env}"),
        format!("version --format {{{{json .}}}} | {host_env}"),
        format!("image inspect --format {{{{.Id}}}} hello:{tag} | {minikube_env}"),
        format!("build -t hello:{tag} -f Dockerfile . | {minikube_env}"),
    ];
    expected.sort_unstable();
    assert_eq!(
        calls, expected,
        "doctor asks the host's daemon; only the build talks to Minikube's"
    );
    let seen = std::fs::read_to_string(w.mk.join("docker_host_seen")).unwrap_or_default();
    assert!(
        seen.is_empty(),
        "minikube itself received docker-env: {seen}"
    );

    // A warm `up` builds nothing: the tag is already in Minikube's daemon.
    let again = w.run(&["up", "--ci"], &[]);
    assert_cluster_ready(&again);
    assert!(
        stdout(&again).contains(&format!("present    hello:{tag} (nothing to build)")),
        "{}",
        stdout(&again)
    );
    let builds = std::fs::read_to_string(w.fakes.path().join("docker/log"))
        .unwrap_or_default()
        .matches("\nbuild ")
        .count();
    assert_eq!(builds, 1);
}

/// The opt-in end-to-end script needs Minikube and a Docker daemon; where they are missing
/// (as on CI) it must stop at once with exit 77 and say what is missing, never pass.
#[test]
fn the_e2e_script_exits_early_and_clearly_without_minikube() {
    let bin = FakeBin::new();
    bin.real("bash").real("dirname");
    let out = Command::new("bash")
        .arg(common::repo_root().join("scripts/e2e-minikube.sh"))
        .env("PATH", bin.path())
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        out.status.code(),
        Some(77),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    assert_eq!(
        stdout(&out).trim(),
        "e2e-minikube: SKIPPED: minikube is not installed (https://minikube.sigs.k8s.io/docs/start/)"
    );
}

#[test]
fn secrets_are_applied_from_env_files_and_their_values_never_shown() {
    let p = Project::example("todo");
    p.write(
        ".env",
        "# todo secrets\nSECRET_KEY=\"hunter2-secret\"\nexport DATABASE_URL=postgres://u:pw-xyz@db/todo\nSECRET_KEY='last-one-wins-secret'\n",
    );
    let w = world_with(p);
    w.profile("running", 4, 8192);
    w.fake_helm();
    let out = w.run(&["up", "--ci"], &[]);
    assert_cluster_ready(&out);
    let secret = w
        .api
        .object("/api/v1/namespaces/todo/secrets/todo-secrets")
        .unwrap_or_else(|| panic!("no secret applied"));
    assert_eq!(secret["kind"], "Secret");
    assert_eq!(
        secret["metadata"]["labels"]["app.kubernetes.io/managed-by"],
        "devenv"
    );
    // base64 of the values, as the API stores them.
    assert_eq!(secret["data"]["SECRET_KEY"], "bGFzdC1vbmUtd2lucy1zZWNyZXQ=");
    assert_eq!(
        secret["data"]["DATABASE_URL"],
        "cG9zdGdyZXM6Ly91OnB3LXh5ekBkYi90b2Rv"
    );
    let apply = w
        .api
        .writes()
        .into_iter()
        .find(|r| r.path == "/api/v1/namespaces/todo/secrets/todo-secrets")
        .unwrap_or_else(|| panic!("no write"));
    assert!(
        apply.query.contains("fieldManager=devenv") && apply.query.contains("force=true"),
        "{}",
        apply.query
    );

    let all = format!("{}{}", stdout(&out), stderr(&out));
    for value in [
        "hunter2",
        "pw-xyz",
        "last-one-wins",
        "bGFzdC1vbmUtd2lucy1zZWNyZXQ=",
    ] {
        assert!(
            !all.contains(value),
            "a secret value reached the output: {value}\n{all}"
        );
    }
    assert!(
        stdout(&out).contains("secret     `todo-secrets` in todo (2 keys, values not shown)"),
        "{}",
        stdout(&out)
    );
    assert!(
        stderr(&out).contains(
            "warning: .env:4: `SECRET_KEY` is set again (first on line 2); the last value wins"
        ),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_malformed_env_file_names_file_and_line_but_not_the_value() {
    let p = Project::example("todo");
    p.write(".env", "OK=1\nPASSWORD=\"never-shown-secret\n");
    let w = world_with(p);
    w.profile("running", 4, 8192);
    w.fake_helm();
    let out = w.run(&["up", "--ci"], &[]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(
            "error: .env:2: the double quote that opens this line's value is never closed"
        ),
        "{err}"
    );
    assert!(!err.contains("never-shown"), "{err}");
    assert!(
        w.api
            .object("/api/v1/namespaces/todo/secrets/todo-secrets")
            .is_none()
    );
}

#[test]
fn plain_manifests_are_applied_server_side_with_the_content_tag_and_devenvs_labels() {
    let w = world();
    w.profile("running", 4, 8192);
    let out = w.run(&["up", "--ci"], &[]);
    assert_cluster_ready(&out);
    let text = stdout(&out);
    let reference = text
        .lines()
        .find_map(|l| l.strip_prefix("built      "))
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or_else(|| panic!("{text}"))
        .to_owned();
    assert!(
        text.contains(&format!(
            "image      Deployment/hello `hello`: hello -> {reference}"
        )),
        "{text}"
    );
    assert!(
        text.contains("applied    Deployment/hello from k8s/deployment.yaml"),
        "{text}"
    );
    let d = w
        .api
        .object("/apis/apps/v1/namespaces/hello/deployments/hello")
        .unwrap_or_else(|| panic!("the deployment was not applied"));
    assert_eq!(
        d["spec"]["template"]["spec"]["containers"][0]["image"],
        reference.as_str()
    );
    assert_eq!(
        d["metadata"]["labels"]["app.kubernetes.io/managed-by"],
        "devenv"
    );
    assert_eq!(d["metadata"]["labels"]["devenv.dev/project"], "hello");
    let apply = w
        .api
        .writes()
        .into_iter()
        .find(|r| r.path == "/apis/apps/v1/namespaces/hello/deployments/hello")
        .unwrap_or_else(|| panic!("no write"));
    assert_eq!(apply.method, "PATCH");
    assert_eq!(apply.content_type, "application/apply-patch+yaml");
    assert!(
        apply.query.contains("fieldManager=devenv"),
        "{}",
        apply.query
    );
}

fn todo_world() -> World {
    let p = Project::example("todo");
    p.write(".env", "SECRET_KEY=x\nDATABASE_URL=y\n");
    let w = world_with(p);
    w.profile("running", 4, 8192);
    w.fake_helm();
    w
}

fn built_tag(out: &Output, image: &str) -> String {
    stdout(out)
        .lines()
        .find_map(|l| l.strip_prefix(&format!("built      {image}:")))
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or_else(|| panic!("no build of {image}: {}", stdout(out)))
        .to_owned()
}

#[test]
fn helm_upgrade_runs_with_the_built_tags_and_exactly_the_planned_command_line() {
    let w = todo_world();
    let out = w.run(&["up", "--ci"], &[]);
    assert_cluster_ready(&out);
    let (backend, frontend) = (
        built_tag(&out, "todo-backend"),
        built_tag(&out, "todo-frontend"),
    );
    assert_eq!(
        w.helm_calls(),
        [format!(
            "upgrade --install todo helm/todo-app --kube-context minikube --namespace todo -f helm/values-dev.yaml --set backend.image.repository=todo-backend --set backend.image.tag={backend} --set frontend.image.repository=todo-frontend --set frontend.image.tag={frontend}"
        )]
    );
    let text = stdout(&out);
    assert!(
        text.contains("deployed   helm release `todo` in todo"),
        "{text}"
    );
    assert!(
        stderr(&out).contains("  helm | Release \"todo\" has been upgraded. Happy Helming!"),
        "{}",
        stderr(&out)
    );
    // Order: the secret exists before the release that reads it.
    let secret_at = text.find("secret     `todo-secrets`").unwrap_or(usize::MAX);
    let deployed_at = text.find("deployed   helm release").unwrap_or(0);
    assert!(secret_at < deployed_at, "{text}");
    assert!(
        w.api.object("/api/v1/namespaces/todo").is_some(),
        "devenv made the namespace"
    );
}

/// Helm keeps its release record in the release's namespace before it creates anything, so
/// a chart that renders that Namespace needs it to exist first, with Helm's ownership
/// metadata (Helm then adopts it). The real helm against a real API server is in
/// tests/real_cluster.rs; here the fake API server sees what devenv writes.
#[test]
fn a_chart_that_renders_its_own_namespace_gets_it_made_for_helm_to_adopt() {
    let w = todo_world();
    w.p.write(
        "helm/todo-app/templates/namespace.yaml",
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {{ .Release.Namespace }}\n",
    );
    let out = w.run(&["up", "--ci"], &[]);
    assert_cluster_ready(&out);
    assert!(
        stdout(&out)
            .contains("namespace  `todo` is rendered by the chart: it is made for Helm to own"),
        "{}",
        stdout(&out)
    );
    // What devenv wrote (the fake helm's own apply replaces the object after it: the fake
    // API server keeps no field ownership).
    let write = w
        .api
        .writes()
        .into_iter()
        .find(|r| r.path == "/api/v1/namespaces/todo" && r.query.contains("fieldManager=devenv"))
        .unwrap_or_else(|| panic!("devenv did not make the namespace"));
    let ns: serde_json::Value =
        serde_json::from_str(&write.body).unwrap_or_else(|e| panic!("{e}: {}", write.body));
    assert_eq!(
        ns["metadata"]["labels"]["app.kubernetes.io/managed-by"], "Helm",
        "{ns:#}"
    );
    assert_eq!(
        ns["metadata"]["annotations"]["meta.helm.sh/release-name"], "todo",
        "{ns:#}"
    );
    assert_eq!(
        ns["metadata"]["annotations"]["meta.helm.sh/release-namespace"], "todo",
        "{ns:#}"
    );
    // The Secret went into it before the release.
    let text = stdout(&out);
    let secret_at = text.find("secret     `todo-secrets`").unwrap_or(usize::MAX);
    let deployed_at = text.find("deployed   helm release").unwrap_or(0);
    assert!(secret_at < deployed_at, "{text}");
    assert_eq!(w.helm_calls().len(), 1);
}

#[test]
fn a_chart_that_ignores_the_injected_tag_stops_up_before_anything_starts() {
    let w = todo_world();
    let cfg = w.p.read("devenv.toml").replace(
        "tag = \"backend.image.tag\"",
        "tag = \"backend.image.version\"",
    );
    w.p.write("devenv.toml", &cfg);
    let out = w.run(&["up", "--ci"], &[]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(
            "rendering the chart and reading the manifests found 1 error; nothing was started:"
        ),
        "{err}"
    );
    assert!(err.contains("Deployment/todo-backend (from todo-app/templates/backend-deployment.yaml) container `backend` runs `todo-backend:latest`, not devenv's `todo-backend:devenv-"), "{err}");
    assert!(
        err.contains("--> devenv.toml:"),
        "the place in devenv.toml: {err}"
    );
    assert_eq!(
        w.up_calls(),
        Vec::<String>::new(),
        "minikube was not touched"
    );
    assert!(w.helm_calls().is_empty());
    assert!(w.api.requests().is_empty(), "the cluster was not touched");
}

/// The todo chart with a local dependency (`file://../cache`), as charts pull in redis.
fn todo_with_dependency(w: &World) {
    w.p.write(
        "helm/cache/Chart.yaml",
        "apiVersion: v2\nname: cache\nversion: 0.2.0\ntype: application\n",
    );
    w.p.write(
        "helm/cache/templates/configmap.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cache-settings\ndata:\n  size: \"64mb\"\n",
    );
    let chart = w.p.read("helm/todo-app/Chart.yaml");
    w.p.write(
        "helm/todo-app/Chart.yaml",
        &format!("{chart}dependencies:\n  - name: cache\n    version: 0.2.0\n    repository: file://../cache\n"),
    );
}

#[test]
fn missing_chart_dependencies_are_built_by_the_real_helm_and_a_stale_lock_is_left_to_the_user() {
    let w = todo_world();
    todo_with_dependency(&w);
    let out = w.run(&["up", "--ci"], &[]);
    assert_cluster_ready(&out);
    assert!(
        stdout(&out).contains("chart      helm/todo-app: Chart.yaml has dependencies and there is no Chart.lock yet; running `helm dependency build`"),
        "{}",
        stdout(&out)
    );
    assert!(
        w.p.path()
            .join("helm/todo-app/charts/cache-0.2.0.tgz")
            .is_file()
    );
    assert!(
        w.api
            .object("/api/v1/namespaces/todo/configmaps/cache-settings")
            .is_some(),
        "the dependency is part of the release"
    );

    // Built once: the next up builds nothing.
    let again = w.run(&["up", "--ci"], &[]);
    assert_cluster_ready(&again);
    assert!(!stdout(&again).contains("helm dependency build"));

    // A deleted archive is fetched again, by the lock.
    std::fs::remove_file(w.p.path().join("helm/todo-app/charts/cache-0.2.0.tgz"))
        .unwrap_or_else(|e| panic!("{e}"));
    let rebuilt = w.run(&["up", "--ci"], &[]);
    assert_cluster_ready(&rebuilt);
    assert!(
        stdout(&rebuilt)
            .contains("charts/cache-0.2.0.tgz is missing; running `helm dependency build`")
    );

    // Chart.yaml gains a dependency the lock does not have: devenv does not rewrite the lock.
    let lock = w.p.read("helm/todo-app/Chart.lock");
    let chart = w.p.read("helm/todo-app/Chart.yaml");
    w.p.write(
        "helm/todo-app/Chart.yaml",
        &format!("{chart}  - name: other\n    version: 1.0.0\n    repository: file://../other\n"),
    );
    let stale = w.run(&["up", "--ci"], &[]);
    let err = stderr(&stale);
    assert_eq!(stale.status.code(), Some(1), "{err}");
    assert!(
        err.contains("chart helm/todo-app: the dependencies in Chart.yaml differ from those in Chart.lock; nothing was started"),
        "{err}"
    );
    assert!(
        err.contains("hint: run `helm dependency update helm/todo-app`"),
        "{err}"
    );
    assert_eq!(w.p.read("helm/todo-app/Chart.lock"), lock);
}

#[test]
fn objects_that_leave_the_manifests_are_pruned_only_while_labelled_as_devenvs() {
    let w = world();
    let deployment = w.p.read("k8s/deployment.yaml");
    let cm = |name: &str| {
        format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\ndata:\n  a: \"1\"\n")
    };
    w.p.write(
        "k8s/deployment.yaml",
        &format!("{deployment}---\n{}---\n{}", cm("settings"), cm("legacy")),
    );
    assert_cluster_ready(&w.run(&["up", "--ci"], &[]));
    let (settings, legacy) = (
        "/api/v1/namespaces/hello/configmaps/settings",
        "/api/v1/namespaces/hello/configmaps/legacy",
    );
    assert!(w.api.object(settings).is_some() && w.api.object(legacy).is_some());
    // Someone else took `legacy` over: it no longer carries devenv's project label.
    w.api.modify(legacy, |o| {
        o["metadata"]["labels"] = serde_json::json!({"team": "ops"});
    });
    w.p.write("k8s/deployment.yaml", &deployment);
    let out = w.run(&["up", "--ci"], &[]);
    assert_cluster_ready(&out);
    let text = stdout(&out);
    assert!(
        text.contains("pruned     ConfigMap/settings: no longer in the manifests"),
        "{text}"
    );
    assert!(
        text.contains("kept       ConfigMap/legacy: no longer in the manifests, but it is not labelled as hello's any more"),
        "{text}"
    );
    assert!(w.api.object(settings).is_none());
    assert!(w.api.object(legacy).is_some());
    assert!(
        w.api
            .object("/apis/apps/v1/namespaces/hello/deployments/hello")
            .is_some()
    );
    // The inventory now holds only what the manifests have: nothing more to prune.
    let again = w.run(&["up", "--ci"], &[]);
    assert!(!stdout(&again).contains("pruned") && !stdout(&again).contains("kept "));
}

/// An API server that does not answer is named with its address and a hint, once, before
/// anything tries to use it: no library log line, no error chain of transport internals.
#[test]
fn an_unreachable_api_server_is_named_with_its_address_and_a_hint() {
    let w = world();
    w.profile("running", 4, 8192);
    let server = format!("https://127.0.0.1:{}", common::free_port());
    w.write_kubeconfig(&[("minikube", &server)], "minikube");
    for args in [&["up", "--ci"][..], &["down"][..]] {
        let out = w.run(args, &[]);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(
            err.contains(&format!(
                "error: cannot reach the API server of kube context `minikube` at {server}: connection refused\n  hint: is the cluster running? `minikube status -p minikube` tells"
            )),
            "{err}"
        );
        assert_eq!(err.matches("connection refused").count(), 1, "{err}");
        for bad in ["ServiceError", "ERROR", "caused by", "Connect)"] {
            assert!(!err.contains(bad), "`{bad}` in:\n{err}");
        }
    }
}

/// Issue 14, point 8: `up --ci --json-logs` on a cluster project prints only JSON lines on
/// stdout, bring-up's build lines and the summary included.
#[test]
fn up_ci_json_logs_prints_only_json_lines_on_stdout() {
    let w = world();
    w.profile("running", 4, 8192);
    let out = w.run(&["up", "--ci", "--json-logs"], &[]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}{}", stderr(&out));
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}\n{text}")))
        .collect();
    assert!(
        lines.iter().any(|l| l["event"] == "built"
            && l["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("hello:devenv-"))),
        "{text}"
    );
    let summary: Vec<&serde_json::Value> =
        lines.iter().filter(|l| l["event"] == "summary").collect();
    assert_eq!(summary.len(), 1, "{text}");
    assert_eq!(summary[0]["resource"], "hello");
    assert_eq!(summary[0]["status"], "ready");
    assert_eq!(summary[0]["pods"], "1/1");
    // One source (issue 26): the summary's pods and time are the engine's, as the `ready`
    // line and the page say them.
    let ready = lines
        .iter()
        .find(|l| l["event"] == "ready")
        .unwrap_or_else(|| panic!("no ready line: {text}"));
    assert!(
        ready["message"]
            .as_str()
            .is_some_and(|m| m.contains("1/1 pods")),
        "{text}"
    );
    assert_ne!(summary[0]["time"], "-", "{text}");
}

/// Issue 28, item 20: a warning about a manifest's container (imagePullPolicy: Always, which
/// would pull an image only the cluster's store has) printed the container's name raw, so a
/// NUL byte or an escape sequence in the repository's YAML reached the terminal. It is
/// escaped, as everything devenv prints from outside is.
#[test]
fn a_manifest_warning_escapes_control_characters() {
    let w = world();
    w.profile("running", 4, 8192);
    let manifest = w.p.read("k8s/deployment.yaml").replace(
        "        - name: hello\n          image: hello\n",
        "        - name: \"hel\\0lo\\e[31m\"\n          image: hello\n          imagePullPolicy: Always\n",
    );
    w.p.write("k8s/deployment.yaml", &manifest);
    let out = w.run(&["up", "--ci"], &[]);
    let said = format!("{}{}", stdout(&out), stderr(&out));
    assert!(said.contains("has imagePullPolicy: Always"), "{said}");
    assert!(said.contains("hel\\u{0}lo\\u{1b}[31m"), "{said}");
    assert!(!said.contains(['\0', '\x1b']), "{said}");
}
