//! `devenv doctor` through the real binary. Tools that cannot run on this machine (minikube, a
//! Docker daemon) are played by fake executables on a temporary PATH that print the real tools'
//! output formats (docker's `--version` line and `version --format '{{json .}}'` object,
//! minikube's `version --short` and `profile list -o json`). Tools that exist here (the docker
//! client with no daemon, kubectl, helm) are run for real. /proc is faked through
//! DEVENV_PROC_ROOT where a test needs other CPU, memory or inotify figures.

mod common;

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::{FakeBin, Project, stderr, stdout};
use serde_json::Value;

const HELLO_LIKE: &str = r#"[[image]]
name = "app"
context = "app"

[deploy]
namespace = "dev"
manifests = ["k8s"]

[[resource]]
name = "app"
workload = "deployment/app"
"#;

fn project(config: &str) -> Project {
    let p = Project::new();
    p.write("app/Dockerfile", "FROM scratch\nCOPY . /\n")
        .write("app/src/main.py", "print(1)\n")
        .write("app/node_modules/x/y/index.js", "x\n")
        .write("app/.dockerignore", "node_modules\n")
        .write(
            "k8s/app.yaml",
            "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: app\nspec:\n  template:\n    spec:\n      containers:\n      - name: app\n        image: app\n",
        )
        .write("devenv.toml", config);
    p
}

struct Run {
    out: Output,
    json: Value,
    /// The status page's port this run checked (a free one: a developer's own `devenv up`
    /// may hold 10350).
    web_port: u16,
}

impl Run {
    fn row(&self, id: &str) -> &Value {
        self.json["checks"]
            .as_array()
            .and_then(|a| a.iter().find(|c| c["id"] == id))
            .unwrap_or_else(|| panic!("no row {id} in {}", self.json))
    }

    fn status(&self, id: &str) -> String {
        self.row(id)["status"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    fn found(&self, id: &str) -> String {
        self.row(id)["found"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    fn fix_text(&self, id: &str) -> String {
        let fix = &self.row(id)["fix"];
        let mut s = fix["summary"].as_str().unwrap_or_default().to_owned();
        for c in fix["commands"].as_array().into_iter().flatten() {
            s.push('\n');
            s.push_str(c["command"].as_str().unwrap_or_default());
        }
        s
    }
}

/// Runs `devenv doctor --json` in `dir` with `path` as the whole PATH.
fn doctor(dir: &Path, path: &Path, proc_root: Option<&Path>, extra_env: &[(&str, &str)]) -> Run {
    let mut cmd = Command::new(common::devenv_bin());
    cmd.args(["doctor", "--json"])
        .current_dir(dir)
        .env("PATH", path)
        .env("HOME", dir)
        .env_remove("KUBECONFIG")
        .env_remove("DOCKER_HOST")
        .env_remove("MINIKUBE_HOME");
    if let Some(p) = proc_root {
        cmd.env("DEVENV_PROC_ROOT", p);
    }
    let web_port = common::free_port();
    cmd.env("DEVENV_WEB_PORT", web_port.to_string());
    for (k, v) in extra_env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap_or_else(|e| panic!("{e}"));
    let json = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "doctor --json printed no JSON ({e}):\n{}\n{}",
            stdout(&out),
            stderr(&out)
        )
    });
    Run {
        out,
        json,
        web_port,
    }
}

fn docker_running(bin: &FakeBin) {
    bin.tool(
        "docker",
        r#"case "$1" in
  --version) echo "Docker version 27.4.1, build b9d17ea" ;;
  version) echo '{"Client":{"Version":"27.4.1","ApiVersion":"1.47","Os":"linux","Arch":"amd64"},"Server":{"Platform":{"Name":"Docker Engine - Community"},"Version":"27.4.1","ApiVersion":"1.47","MinAPIVersion":"1.24","Os":"linux","Arch":"amd64"}}' ;;
esac"#,
    );
}

/// `minikube profile list -o json` as minikube prints it (keys sorted: "invalid", "valid").
fn minikube_with(bin: &FakeBin, profiles_json: &str) {
    bin.tool(
        "minikube",
        &format!(
            r#"case "$1 $2" in
  "version --short") echo "v1.35.0" ;;
  "profile list") echo '{profiles_json}' ;;
  *) echo "unexpected minikube call: $*" >&2; exit 64 ;;
esac"#
        ),
    );
}

fn profile(name: &str, status: &str, cpus: u32, memory: u32) -> String {
    format!(
        r#"{{"Name":"{name}","Status":"{status}","Config":{{"Name":"{name}","KeepContext":false,"EmbedCerts":false,"MinikubeISO":"","KicBaseImage":"gcr.io/k8s-minikube/kicbase:v0.0.46","Memory":{memory},"CPUs":{cpus},"DiskSize":20000,"Driver":"docker","KubernetesConfig":{{"KubernetesVersion":"v1.32.0","ClusterName":"{name}","ContainerRuntime":"docker"}},"Nodes":[{{"Name":"","IP":"192.168.49.2","Port":8443,"KubernetesVersion":"v1.32.0","ContainerRuntime":"docker","ControlPlane":true,"Worker":true}}]}},"Active":false,"ActiveKubeContext":true}}"#
    )
}

/// A machine where everything the hello-like project needs is fine.
fn healthy(bin: &FakeBin) {
    docker_running(bin);
    minikube_with(bin, r#"{"invalid":[],"valid":[]}"#);
    bin.real("kubectl");
}

#[test]
fn real_tools_on_this_machine_report_their_real_versions_and_no_daemon() {
    let p = project(HELLO_LIKE);
    let bin = FakeBin::new();
    bin.real("docker").real("kubectl").real("helm");
    let proc_root = common::fake_proc(8, 32768, 30000, 524288, 512);
    let r = doctor(p.path(), bin.path(), Some(proc_root.path()), &[]);

    let real_version = |argv: &[&str]| {
        let o = Command::new(argv[0])
            .args(&argv[1..])
            .output()
            .unwrap_or_else(|e| panic!("{e}"));
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let docker_v = real_version(&["docker", "--version"]);
    let docker_v = docker_v
        .split_whitespace()
        .nth(2)
        .unwrap_or("")
        .trim_end_matches(',');
    assert_eq!(r.status("tool.docker"), "ok");
    assert!(
        r.found("tool.docker")
            .starts_with(&format!("docker {docker_v} (")),
        "{}",
        r.found("tool.docker")
    );
    assert_eq!(r.status("docker.daemon"), "fail");
    assert!(
        r.found("docker.daemon")
            .starts_with("daemon not running: Cannot connect to the Docker daemon"),
        "{}",
        r.found("docker.daemon")
    );
    assert!(
        r.fix_text("docker.daemon")
            .contains("sudo systemctl start docker")
    );

    let kubectl: Value = serde_json::from_str(&real_version(&[
        "kubectl", "version", "--client", "-o", "json",
    ]))
    .unwrap_or_else(|e| panic!("{e}"));
    let kv = kubectl["clientVersion"]["gitVersion"]
        .as_str()
        .unwrap_or("")
        .trim_start_matches('v')
        .to_owned();
    assert_eq!(r.status("tool.kubectl"), "ok");
    assert!(
        r.found("tool.kubectl")
            .starts_with(&format!("kubectl {kv} (")),
        "{}",
        r.found("tool.kubectl")
    );
    // The project deploys with manifests, so helm is not needed and is skipped with the reason.
    assert_eq!(r.status("tool.helm"), "skipped");
    assert_eq!(r.found("tool.helm"), "the config does not deploy with Helm");
    assert_eq!(r.status("tool.minikube"), "fail");
    assert!(
        r.fix_text("tool.minikube")
            .contains("brew install minikube")
    );
    assert_eq!(r.out.status.code(), Some(1));
}

#[test]
fn real_helm_version_is_reported_when_the_config_uses_helm() {
    let p = Project::example("todo");
    p.write(".env", "SECRET_KEY=x\n");
    let bin = FakeBin::new();
    bin.real("helm");
    let r = doctor(p.path(), bin.path(), None, &[]);
    let o = Command::new("helm")
        .args(["version", "--template", "{{.Version}}"])
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    let v = String::from_utf8_lossy(&o.stdout)
        .trim()
        .trim_start_matches('v')
        .to_owned();
    assert_eq!(r.status("tool.helm"), "ok");
    assert!(
        r.found("tool.helm").starts_with(&format!("helm {v} (")),
        "{}",
        r.found("tool.helm")
    );
}

#[test]
fn a_healthy_machine_passes_with_exit_zero() {
    let p = project(HELLO_LIKE);
    let bin = FakeBin::new();
    healthy(&bin);
    let proc_root = common::fake_proc(8, 32768, 30000, 524288, 512);
    let r = doctor(p.path(), bin.path(), Some(proc_root.path()), &[]);
    assert_eq!(r.json["summary"]["fail"], 0, "{}", r.json);
    assert_eq!(r.json["summary"]["warn"], 0, "{}", r.json);
    assert_eq!(r.out.status.code(), Some(0));
    assert_eq!(r.status("docker.daemon"), "ok");
    assert_eq!(
        r.found("docker.daemon"),
        "daemon 27.4.1 (API 1.47) is running"
    );
    assert_eq!(
        r.found("tool.minikube").split(" (").next(),
        Some("minikube 1.35.0")
    );
    assert!(
        r.found("minikube.profile")
            .contains("does not exist yet: `devenv up` creates it with 4 CPUs and 8192 MB")
    );
    assert_eq!(r.status("host.cpu"), "ok");
    assert_eq!(r.status("host.memory"), "ok");
}

#[test]
fn docker_permission_denied_is_told_apart_from_not_running() {
    let p = project(HELLO_LIKE);
    let bin = FakeBin::new();
    healthy(&bin);
    bin.tool(
        "docker",
        r#"case "$1" in
  --version) echo "Docker version 27.4.1, build b9d17ea" ;;
  version) echo '{"Client":{"Version":"27.4.1","ApiVersion":"1.47"},"Server":null}'
    echo 'permission denied while trying to connect to the Docker daemon socket at unix:///var/run/docker.sock: Get "http://%2Fvar%2Frun%2Fdocker.sock/v1.47/version": dial unix /var/run/docker.sock: connect: permission denied' >&2
    exit 1 ;;
esac"#,
    );
    let r = doctor(p.path(), bin.path(), None, &[]);
    assert_eq!(r.status("docker.daemon"), "fail");
    assert!(
        r.found("docker.daemon").starts_with("permission denied"),
        "{}",
        r.found("docker.daemon")
    );
    assert!(r.fix_text("docker.daemon").contains("usermod -aG docker"));
}

#[test]
fn no_docker_client_at_all() {
    let p = project(HELLO_LIKE);
    let bin = FakeBin::new();
    minikube_with(&bin, r#"{"invalid":[],"valid":[]}"#);
    let r = doctor(p.path(), bin.path(), None, &[]);
    assert_eq!(r.status("tool.docker"), "fail");
    assert_eq!(r.found("tool.docker"), "docker is not on PATH");
    assert!(
        r.fix_text("tool.docker")
            .contains("sudo apt-get install -y docker.io")
    );
    assert_eq!(
        r.found("docker.daemon"),
        "no docker client: the daemon cannot be reached without it"
    );
}

#[test]
fn a_too_old_tool_fails_with_an_upgrade_fix() {
    let p = project(HELLO_LIKE);
    let bin = FakeBin::new();
    healthy(&bin);
    bin.tool("minikube", r#"case "$1 $2" in "version --short") echo "v1.26.1" ;; "profile list") echo '{"invalid":[],"valid":[]}' ;; esac"#);
    let r = doctor(p.path(), bin.path(), None, &[]);
    assert_eq!(r.status("tool.minikube"), "fail");
    assert!(
        r.found("tool.minikube").starts_with("minikube 1.26.1 at"),
        "{}",
        r.found("tool.minikube")
    );
    assert!(
        r.fix_text("tool.minikube")
            .starts_with("upgrade minikube to 1.30.0 or newer")
    );
}

#[test]
fn a_version_that_cannot_be_read_is_a_warning() {
    let p = project(HELLO_LIKE);
    let bin = FakeBin::new();
    healthy(&bin);
    bin.tool("minikube", r#"case "$1 $2" in "version --short") echo "garbage" ;; "profile list") echo '{"invalid":[],"valid":[]}' ;; esac"#);
    let r = doctor(p.path(), bin.path(), None, &[]);
    assert_eq!(r.status("tool.minikube"), "warn");
    assert!(
        r.found("tool.minikube")
            .contains("cannot read a version from `minikube version --short`: garbage")
    );
}

#[test]
fn a_running_profile_with_other_cpus_fails_with_both_honest_fixes() {
    let p = project(HELLO_LIKE);
    let bin = FakeBin::new();
    healthy(&bin);
    minikube_with(
        &bin,
        &format!(
            r#"{{"invalid":[],"valid":[{}]}}"#,
            profile("minikube", "Running", 2, 4000)
        ),
    );
    let r = doctor(p.path(), bin.path(), None, &[]);
    assert_eq!(r.status("minikube.profile"), "fail");
    assert_eq!(
        r.found("minikube.profile"),
        "profile `minikube` (Running) has 2 CPUs and 4000 MB, driver docker"
    );
    let fix = r.fix_text("minikube.profile");
    assert!(
        fix.contains("minikube delete -p minikube && devenv up"),
        "{fix}"
    );
    assert!(
        fix.contains("set cpus = 2 and memory = \"4000mb\" in [cluster]"),
        "{fix}"
    );
    assert_eq!(r.out.status.code(), Some(1));
}

#[test]
fn profile_states_running_stopped_paused_invalid() {
    let p = project(HELLO_LIKE);
    let bin = FakeBin::new();
    healthy(&bin);
    let cases = [
        (
            profile("minikube", "Running", 4, 8192),
            "ok",
            "profile `minikube` is running with 4 CPUs and 8192 MB, driver docker",
        ),
        (
            profile("minikube", "Stopped", 4, 8192),
            "ok",
            "profile `minikube` is stopped (4 CPUs and 8192 MB, driver docker): `devenv up` starts it",
        ),
        (
            profile("minikube", "Paused", 4, 8192),
            "warn",
            "profile `minikube` is paused",
        ),
        (
            profile("other", "Running", 2, 2200),
            "ok",
            "profile `minikube` does not exist yet: `devenv up` creates it with 4 CPUs and 8192 MB",
        ),
    ];
    for (json, status, found) in cases {
        minikube_with(&bin, &format!(r#"{{"invalid":[],"valid":[{json}]}}"#));
        let r = doctor(p.path(), bin.path(), None, &[]);
        assert_eq!(r.status("minikube.profile"), status, "{found}");
        assert_eq!(r.found("minikube.profile"), found);
    }
    minikube_with(
        &bin,
        r#"{"invalid":[{"Name":"minikube","Status":"","Config":null,"Active":false}],"valid":[]}"#,
    );
    let r = doctor(p.path(), bin.path(), None, &[]);
    assert_eq!(r.status("minikube.profile"), "fail");
    assert!(
        r.fix_text("minikube.profile")
            .contains("minikube delete -p minikube")
    );
    minikube_with(
        &bin,
        &format!(
            r#"{{"invalid":[],"valid":[{}]}}"#,
            profile("minikube", "Paused", 4, 8192)
        ),
    );
    let r = doctor(p.path(), bin.path(), None, &[]);
    assert!(
        r.fix_text("minikube.profile")
            .contains("minikube unpause -p minikube")
    );
}

#[test]
fn a_hung_tool_is_a_timeout_and_doctor_still_finishes_and_kills_it() {
    let p = project(HELLO_LIKE);
    let bin = FakeBin::new();
    healthy(&bin);
    let pidfile = p.path().join("hung.pid");
    bin.tool(
        "minikube",
        &format!("echo $$ > {}\nexec /bin/sleep 300", pidfile.display()),
    );
    let started = Instant::now();
    let r = doctor(
        p.path(),
        bin.path(),
        None,
        &[("DEVENV_DOCTOR_TIMEOUT_MS", "1500")],
    );
    // The hung tool sleeps for 300 s; doctor answers long before that.
    assert!(
        started.elapsed() < Duration::from_secs(120),
        "doctor waited for the hung tool"
    );
    assert_eq!(r.status("tool.minikube"), "fail");
    assert_eq!(
        r.found("tool.minikube"),
        "`minikube version --short` did not answer within 1.5s (timeout)"
    );
    let pid = std::fs::read_to_string(&pidfile).unwrap_or_default();
    let pid = pid.trim();
    assert!(!pid.is_empty(), "the fake never ran");
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    assert!(
        status.is_empty()
            || status
                .lines()
                .any(|l| l.starts_with("State:") && l.contains('Z')),
        "the hung tool is still running: {status}"
    );
}

#[test]
fn a_busy_port_names_the_process_holding_it() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
    let port = listener.local_addr().map(|a| a.port()).unwrap_or(0);
    let cfg = format!("{HELLO_LIKE}port_forwards = [\"{port}:80\"]\n");
    let p = project(&cfg);
    let bin = FakeBin::new();
    healthy(&bin);
    let r = doctor(p.path(), bin.path(), None, &[]);
    let id = format!("port.{port}");
    assert_eq!(r.status(&id), "fail");
    let found = r.found(&id);
    assert!(
        found.starts_with(&format!("127.0.0.1:{port} is in use by `")),
        "{found}"
    );
    assert!(
        found.ends_with(&format!("(pid {})", std::process::id())),
        "{found}"
    );
    let fix = r.fix_text(&id);
    assert!(
        fix.contains("another local port in devenv.toml")
            && fix.contains(&format!("kill {}", std::process::id())),
        "{fix}"
    );
    assert_eq!(r.status(&format!("port.{}", r.web_port)), "ok");
    drop(listener);
}

#[test]
fn low_inotify_limits_fail_with_the_sysctl_fix_and_ignored_dirs_do_not_count() {
    let p = project(HELLO_LIKE);
    let bin = FakeBin::new();
    healthy(&bin);
    // app, app/src, and for reload the directories of devenv.toml (the root) and of the
    // manifest (k8s): node_modules is in .dockerignore and is not watched.
    let proc_root = common::fake_proc(8, 32768, 30000, 1, 128);
    let r = doctor(p.path(), bin.path(), Some(proc_root.path()), &[]);
    assert_eq!(r.status("inotify"), "fail");
    assert_eq!(
        r.found("inotify"),
        "max_user_watches 1, max_user_instances 128; devenv watches 4 directories"
    );
    let fix = r.fix_text("inotify");
    assert!(
        fix.contains(
            "sudo sysctl fs.inotify.max_user_watches=524288 fs.inotify.max_user_instances=512"
        ),
        "{fix}"
    );
    assert!(
        fix.contains("/etc/sysctl.d/60-devenv-inotify.conf"),
        "{fix}"
    );

    let proc_root = common::fake_proc(8, 32768, 30000, 4000, 128);
    let r = doctor(p.path(), bin.path(), Some(proc_root.path()), &[]);
    assert_eq!(r.status("inotify"), "warn");
}

#[test]
fn host_resources_against_the_configured_size() {
    let p = project(&format!(
        "[cluster]\ncpus = 4\nmemory = \"8g\"\n\n{HELLO_LIKE}"
    ));
    let bin = FakeBin::new();
    healthy(&bin);
    let small = common::fake_proc(2, 4096, 3000, 524288, 512);
    let r = doctor(p.path(), bin.path(), Some(small.path()), &[]);
    assert_eq!(r.status("host.cpu"), "fail");
    assert_eq!(
        r.found("host.cpu"),
        "this machine has 2 logical CPUs; devenv.toml asks for 4"
    );
    assert!(r.fix_text("host.cpu").contains("set cpus = 2 in [cluster]"));
    assert_eq!(r.status("host.memory"), "fail");
    assert_eq!(
        r.found("host.memory"),
        "4096 MB in total; devenv.toml asks for 8192 MB for the cluster"
    );
    assert!(
        r.fix_text("host.memory")
            .contains("set memory = \"2048mb\"")
    );

    let exact = common::fake_proc(4, 16384, 9000, 524288, 512);
    let r = doctor(p.path(), bin.path(), Some(exact.path()), &[]);
    assert_eq!(r.status("host.cpu"), "warn", "no CPU left for the host");
    assert_eq!(
        r.status("host.memory"),
        "warn",
        "9000 MB available is too tight for 8192 + headroom"
    );
}

#[test]
fn a_local_only_project_needs_no_cluster_tools() {
    let p = Project::new();
    p.write("src/app.txt", "x\n").write(
        "devenv.toml",
        "[[local]]\nname = \"gen\"\ncmd = \"echo hi\"\ndeps = [\"src\"]\n\n[web]\nport = 0\n"
            .replace("port = 0", "port = 18371")
            .as_str(),
    );
    let bin = FakeBin::new();
    let proc_root = common::fake_proc(2, 2048, 1024, 524288, 512);
    let r = doctor(p.path(), bin.path(), Some(proc_root.path()), &[]);
    let reason = "the config has only [[local]] resources: no cluster is needed";
    for id in [
        "tool.docker",
        "tool.kubectl",
        "docker.daemon",
        "host.cpu",
        "host.memory",
        "host.disk",
        "minikube.profile",
        "kube.context",
        "tool.minikube",
        "tool.helm",
    ] {
        assert_eq!(r.status(id), "skipped", "{id}");
        assert_eq!(r.found(id), reason, "{id}");
    }
    assert_eq!(r.json["summary"]["fail"], 0, "{}", r.json);
    assert_eq!(r.out.status.code(), Some(0));
}

#[test]
fn existing_cluster_contexts_are_guarded_and_a_remote_current_context_warns() {
    let kubeconfig = "apiVersion: v1\nkind: Config\ncurrent-context: prod\nclusters:\n- cluster:\n    server: https://api.prod.example.com:443\n  name: prod\n- cluster:\n    server: https://127.0.0.1:6443\n  name: lab\ncontexts:\n- context:\n    cluster: prod\n    user: admin\n  name: prod\n- context:\n    cluster: lab\n    user: me\n  name: lab\n";
    let existing = |context: &str, allowed: &str| {
        format!(
            "[cluster]\nprovider = \"existing\"\ncontext = \"{context}\"\nregistry = \"registry.example.com/team\"\n{allowed}\n{HELLO_LIKE}"
        )
    };
    let bin = FakeBin::new();
    healthy(&bin);
    // Doctor on a project with `config`, and the kubeconfig above as KUBECONFIG.
    let run = |config: &str| {
        let p = project(config);
        p.write("kubeconfig", kubeconfig);
        let kc = p.path().join("kubeconfig");
        doctor(
            p.path(),
            bin.path(),
            None,
            &[("KUBECONFIG", kc.to_str().unwrap_or_default())],
        )
    };

    let r = run(&existing("prod", ""));
    assert_eq!(r.status("kube.context"), "fail");
    assert_eq!(
        r.found("kube.context"),
        "refusing to write to kube context `prod` (https://api.prod.example.com:443): it is not a local cluster and devenv.toml does not allow it"
    );
    assert!(
        r.fix_text("kube.context")
            .contains("allowed_contexts = [\"prod\"]")
    );
    // Minikube is not used with an existing cluster.
    assert_eq!(r.status("tool.minikube"), "skipped");

    let r = run(&existing("prod", "allowed_contexts = [\"prod\"]"));
    assert_eq!(
        r.status("kube.context"),
        "ok",
        "{}",
        r.found("kube.context")
    );

    // A loopback cluster is local, so the guard lets devenv write; kubectl itself still points
    // at production, which is worth a warning.
    let r = run(&existing("lab", ""));
    assert_eq!(
        r.status("kube.context"),
        "warn",
        "{}",
        r.found("kube.context")
    );
    assert!(
        !r.found("kube.context").contains("refusing"),
        "{}",
        r.found("kube.context")
    );

    let r = run(&existing("nope", ""));
    assert_eq!(
        r.found("kube.context"),
        "context `nope` is not in your kubeconfig"
    );

    // Minikube project, but kubectl points at production: devenv is safe, the user is warned.
    let r = run(HELLO_LIKE);
    assert_eq!(r.status("kube.context"), "warn");
    assert!(r.found("kube.context").starts_with(
        "kubectl's current context is `prod` (https://api.prod.example.com:443), which is not local"
    ));
    assert!(
        r.fix_text("kube.context")
            .contains("kubectl config use-context minikube")
    );
}

#[test]
fn without_a_config_doctor_checks_the_default_setup() {
    let p = Project::new();
    let bin = FakeBin::new();
    healthy(&bin);
    let r = doctor(p.path(), bin.path(), None, &[]);
    assert_eq!(r.json["config"], Value::Null);
    assert_eq!(r.status("config"), "skipped");
    assert_eq!(
        r.status("tool.helm"),
        "fail",
        "the default setup deploys with helm, which this PATH lacks"
    );
    assert_eq!(r.status("tool.minikube"), "ok");
    assert!(
        r.row(&format!("port.{}", r.web_port))["found"]
            .as_str()
            .unwrap_or("")
            .contains("free")
    );
    // Without DEVENV_WEB_PORT the default page port is checked (free or not: a developer's
    // own daemon may hold it).
    let r = doctor(p.path(), bin.path(), None, &[("DEVENV_WEB_PORT", "")]);
    assert!(
        r.row("port.10350")["required"]
            .as_str()
            .is_some_and(|s| s.contains("10350")),
        "{}",
        r.json
    );
}

#[test]
fn an_invalid_config_fails_the_config_row_and_an_unreadable_one_exits_2() {
    let p = project(&HELLO_LIKE.replace("context = \"app\"", "contxt = \"app\""));
    let bin = FakeBin::new();
    healthy(&bin);
    let r = doctor(p.path(), bin.path(), None, &[]);
    assert_eq!(r.status("config"), "fail");
    assert_eq!(
        r.found("config"),
        "devenv.toml:3:1: unknown key `contxt` in [[image]]"
    );
    assert!(r.fix_text("config").contains("devenv config check"));
    assert_eq!(r.out.status.code(), Some(1));

    let out = Command::new(common::devenv_bin())
        .args(["doctor", "--config", "/nonexistent/devenv.toml"])
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("cannot read /nonexistent/devenv.toml"));
}

/// A small JSON Schema checker for the subset docs/doctor.schema.json uses: type (one or a
/// list), enum, required, properties, additionalProperties: false, items.
fn conforms(value: &Value, schema: &Value, at: &str, errors: &mut Vec<String>) {
    if let Some(t) = schema.get("type") {
        let types: Vec<&str> = match t {
            Value::String(s) => vec![s.as_str()],
            Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
            _ => vec![],
        };
        let actual = match value {
            Value::Null => "null",
            Value::Bool(_) => "boolean",
            Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
            Value::Number(_) => "number",
            Value::String(_) => "string",
            Value::Array(_) => "array",
            Value::Object(_) => "object",
        };
        if !types.contains(&actual) {
            errors.push(format!("{at}: {actual} is not one of {types:?}"));
            return;
        }
    }
    if let Some(allowed) = schema.get("enum").and_then(Value::as_array)
        && !allowed.contains(value)
    {
        errors.push(format!("{at}: {value} is not in {allowed:?}"));
    }
    if let Value::Object(map) = value {
        let props = schema.get("properties").and_then(Value::as_object);
        for r in schema
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(k) = r.as_str()
                && !map.contains_key(k)
            {
                errors.push(format!("{at}: missing {k}"));
            }
        }
        for (k, v) in map {
            match props.and_then(|p| p.get(k)) {
                Some(s) => conforms(v, s, &format!("{at}.{k}"), errors),
                None if schema.get("additionalProperties") == Some(&Value::Bool(false)) => {
                    errors.push(format!("{at}: unexpected key {k}"));
                }
                None => {}
            }
        }
    }
    if let (Value::Array(items), Some(s)) = (value, schema.get("items")) {
        for (i, item) in items.iter().enumerate() {
            conforms(item, s, &format!("{at}[{i}]"), errors);
        }
    }
}

#[test]
fn json_output_follows_the_documented_schema() {
    let schema: Value = serde_json::from_str(
        &std::fs::read_to_string(common::repo_root().join("docs/doctor.schema.json"))
            .unwrap_or_else(|e| panic!("{e}")),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let p = project(HELLO_LIKE);
    let bin = FakeBin::new();
    bin.real("docker");
    minikube_with(
        &bin,
        &format!(
            r#"{{"invalid":[],"valid":[{}]}}"#,
            profile("minikube", "Running", 2, 4000)
        ),
    );
    let r = doctor(p.path(), bin.path(), None, &[]);
    let mut errors = Vec::new();
    conforms(&r.json, &schema, "$", &mut errors);
    assert!(errors.is_empty(), "{errors:#?}");
    // The schema checker itself catches violations.
    let mut broken = r.json.clone();
    broken["checks"][0]["status"] = Value::String("great".into());
    broken["extra"] = Value::Bool(true);
    let mut errors = Vec::new();
    conforms(&broken, &schema, "$", &mut errors);
    assert_eq!(errors.len(), 2, "{errors:?}");
    // Every id is unique and every non-ok row says what to do.
    let checks = r.json["checks"].as_array().cloned().unwrap_or_default();
    let mut ids: Vec<&str> = checks.iter().filter_map(|c| c["id"].as_str()).collect();
    let n = ids.len();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), n);
    for c in &checks {
        if c["status"] == "fail" || c["status"] == "warn" {
            assert!(c["fix"].is_object(), "{c}");
        }
    }
}

/// `devenv <command>` as a user would run it (no --json), with `bin` as the whole PATH.
fn plain(p: &Project, bin: &FakeBin, command: &str) -> Output {
    Command::new(common::devenv_bin())
        .arg(command)
        .current_dir(p.path())
        .env("PATH", bin.path())
        .env("HOME", p.path())
        .output()
        .unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn the_table_has_a_row_per_check_a_summary_and_no_colour_off_a_terminal() {
    let p = project(HELLO_LIKE);
    let bin = FakeBin::new();
    healthy(&bin);
    let out = plain(&p, &bin, "doctor");
    let text = stdout(&out);
    assert!(
        text.starts_with("devenv doctor (config: devenv.toml)\n"),
        "{text}"
    );
    assert!(
        text.contains("  ok      docker.daemon     daemon 27.4.1 (API 1.47) is running\n"),
        "{text}"
    );
    assert!(
        text.lines().last().unwrap_or("").starts_with("doctor: "),
        "{text}"
    );
    assert!(
        !text.contains('\x1b'),
        "no colour codes when stdout is not a terminal"
    );
}

#[test]
fn up_refuses_to_start_when_doctor_fails_and_prints_the_failed_rows() {
    let p = project(HELLO_LIKE);
    let bin = FakeBin::new();
    docker_running(&bin);
    let out = plain(&p, &bin, "up");
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("devenv up: the machine is not ready; nothing was started."),
        "{err}"
    );
    assert!(err.contains("FAIL    tool.minikube"), "{err}");
    assert!(
        !err.contains("ok      docker.daemon"),
        "only failed rows: {err}"
    );
}

#[test]
fn buildah_and_podman_are_checked_only_when_an_image_uses_them() {
    let cfg = HELLO_LIKE.replace(
        "context = \"app\"",
        "context = \"app\"\nbuilder = \"buildah\"",
    ) + "\n[[image]]\nname = \"worker\"\ncontext = \"app\"\nbuilder = \"podman\"\n";
    let p = project(&cfg);
    let bin = FakeBin::new();
    healthy(&bin);
    // Without them on PATH: both fail with install hints.
    let r = doctor(p.path(), bin.path(), None, &[]);
    assert_eq!(r.status("tool.buildah"), "fail");
    assert!(
        r.fix_text("tool.buildah")
            .contains("sudo apt-get install -y buildah")
    );
    assert_eq!(r.status("tool.podman"), "fail");
    // With them (their real `--json` formats): ok, versions read.
    bin.tool(
        "buildah",
        r#"[ "$1 $2" = "version --json" ] && printf '{\n    "version": "1.28.2",\n    "goVersion": "go1.19.8",\n    "imageSpec": "1.1.0-rc2",\n    "runtimeSpec": "1.0.2-dev",\n    "osArch": "linux/amd64"\n}\n'"#,
    );
    bin.tool(
        "podman",
        r#"[ "$1" = "version" ] && echo '{"Client":{"APIVersion":"4.3.1","Version":"4.3.1","GoVersion":"go1.19.8","GitCommit":"","BuiltTime":"Thu Jan  1 00:00:00 1970","Built":0,"OsArch":"linux/amd64","Os":"linux"}}'"#,
    );
    let r = doctor(p.path(), bin.path(), None, &[]);
    assert_eq!(
        r.status("tool.buildah"),
        "ok",
        "{}",
        r.found("tool.buildah")
    );
    assert!(r.found("tool.buildah").starts_with("buildah 1.28.2 ("));
    assert_eq!(r.status("tool.podman"), "ok", "{}", r.found("tool.podman"));
    assert!(r.found("tool.podman").starts_with("podman 4.3.1 ("));
}

#[test]
fn too_little_disk_for_a_new_profile_fails() {
    // 1000 GiB: within what a config may say (1 TiB), beyond this machine's free disk.
    let p = project(&format!("[cluster]\ndisk = \"1000g\"\n\n{HELLO_LIKE}"));
    let bin = FakeBin::new();
    healthy(&bin);
    let r = doctor(p.path(), bin.path(), None, &[]);
    assert_eq!(r.status("host.disk"), "fail");
    assert!(
        r.found("host.disk")
            .contains("a new profile may use up to 1024000 MB"),
        "{}",
        r.found("host.disk")
    );
    assert!(r.fix_text("host.disk").contains("set a smaller `disk`"));
}

/// Issue 15, point 10 (tests/fixtures/projects/doctor-advice): advice never names the value
/// devenv.toml already has. On a 2-CPU machine with `cpus = 2`, the warning said "set cpus =
/// 2"; a profile on another driver (same size) got "set cpus = 2 and memory = …".
#[test]
fn doctor_advice_never_loops_back_to_the_current_value() {
    let p = Project::new();
    common::copy_dir(
        &common::repo_root().join("tests/fixtures/projects/doctor-advice"),
        p.path(),
    );
    let bin = FakeBin::new();
    docker_running(&bin);
    let listed = profile("minikube", "Running", 2, 4096);
    minikube_with(&bin, &format!(r#"{{"invalid":[],"valid":[{listed}]}}"#));
    bin.real("kubectl");
    let two = common::fake_proc(2, 32768, 30000, 524288, 512);
    let r = doctor(p.path(), bin.path(), Some(two.path()), &[]);
    assert_eq!(r.status("host.cpu"), "warn", "{}", r.json);
    let fix = r.fix_text("host.cpu");
    assert!(!fix.contains("set cpus = 2"), "{fix}");
    assert!(fix.contains("minikube needs at least 2 CPUs"), "{fix}");
    assert_eq!(r.status("minikube.profile"), "fail", "{}", r.json);
    let fix = r.fix_text("minikube.profile");
    assert!(
        fix.contains("set driver = \"docker\" in [cluster]"),
        "{fix}"
    );
    assert!(
        !fix.contains("cpus =") && !fix.contains("memory ="),
        "{fix}"
    );
}

/// Issue 24 point 12: the doctor said the `none` driver "brings its own Docker daemon". It
/// does not: Minikube then runs on the host, and builds go to the host's daemon, which is
/// checked. A VM driver (kvm2) does bring one.
#[test]
fn the_none_driver_uses_the_hosts_docker_daemon_and_a_vm_driver_brings_its_own() {
    for (driver, checked) in [("none", true), ("kvm2", false)] {
        let p = project(&format!("[cluster]\ndriver = \"{driver}\"\n\n{HELLO_LIKE}"));
        let bin = FakeBin::new();
        bin.real("docker").real("kubectl").real("helm");
        minikube_with(&bin, r#"{"invalid":[],"valid":[]}"#);
        let proc_root = common::fake_proc(8, 32768, 30000, 524288, 512);
        let r = doctor(p.path(), bin.path(), Some(proc_root.path()), &[]);
        if checked {
            // The real docker client, no daemon here: the host's daemon is asked, and absent.
            assert_eq!(
                r.status("docker.daemon"),
                "fail",
                "{}",
                r.found("docker.daemon")
            );
            assert!(
                r.found("docker.daemon").starts_with("daemon not running"),
                "{}",
                r.found("docker.daemon")
            );
        } else {
            assert_eq!(r.status("docker.daemon"), "skipped");
            assert_eq!(
                r.found("docker.daemon"),
                "the minikube driver `kvm2` brings its own Docker daemon (in its VM or container)"
            );
        }
    }
}

/// A KUBECONFIG that is no kubeconfig (a device, a FIFO, a huge file: a wrong path in the
/// variable) is named with what it is. `KUBECONFIG=/dev/zero devenv doctor` grew to 24 GB in
/// 17 s until the kernel killed it, because the file was read whole. The run here is held to
/// 4 GiB of address space, so a regression fails instead of taking the machine.
#[test]
fn a_kubeconfig_that_is_a_device_or_huge_is_named_and_never_read_whole() {
    use std::os::unix::process::CommandExt as _;
    let p = project(HELLO_LIKE);
    let bin = FakeBin::new();
    healthy(&bin);
    let huge = p.path().join("huge-kubeconfig");
    std::fs::File::create(&huge)
        .and_then(|f| f.set_len(1 << 30))
        .unwrap_or_else(|e| panic!("{e}"));
    for (file, says) in [
        (
            "/dev/zero".to_owned(),
            "cannot read /dev/zero: it is not a regular file",
        ),
        (huge.display().to_string(), "it is larger than 16 MiB"),
    ] {
        let mut cmd = Command::new(common::devenv_bin());
        cmd.args(["doctor", "--json"])
            .current_dir(p.path())
            .env("PATH", bin.path())
            .env("HOME", p.path())
            .env("KUBECONFIG", &file)
            .env("DEVENV_WEB_PORT", common::free_port().to_string());
        // SAFETY: setrlimit(2) in the child before exec touches no memory of the parent.
        unsafe {
            cmd.pre_exec(|| {
                let limit = libc::rlimit {
                    rlim_cur: 4 << 30,
                    rlim_max: 4 << 30,
                };
                if libc::setrlimit(libc::RLIMIT_AS, &limit) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let out = common::output_within(cmd, Duration::from_secs(60))
            .unwrap_or_else(|| panic!("doctor did not end with KUBECONFIG={file}"));
        let json: Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{file}: no JSON ({e}): {}", stderr(&out)));
        let row = json["checks"]
            .as_array()
            .and_then(|a| a.iter().find(|c| c["id"] == "kube.context"))
            .unwrap_or_else(|| panic!("no kube.context row: {json}"));
        assert_eq!(row["status"], "fail", "{row}");
        assert!(
            row["found"].as_str().is_some_and(|f| f.contains(says)),
            "{file}: {row}"
        );
    }
}
