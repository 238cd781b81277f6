//! The world a `devenv up` test runs in: fake minikube, a fake Docker daemon, the real
//! kubectl, a fake API server, a fake /proc, and a HOME outside the project.

use std::path::PathBuf;
use std::process::{Command, Output};

use super::fake_kube::FakeKube;
use super::{FakeBin, Project};

pub struct World {
    pub p: Project,
    /// The fakes' state, outside the project: the project is a build context.
    pub fakes: tempfile::TempDir,
    pub bin: FakeBin,
    pub proc_root: tempfile::TempDir,
    pub api: FakeKube,
    pub mk: PathBuf,
}

/// The examples forward fixed local ports (8080, 8000, 3000): tests running side by side,
/// or a developer's own `devenv up`, would hold them. Each world's config gets free ones.
fn free_example_ports(p: &Project) {
    let file = p.path().join("devenv.toml");
    let Ok(cfg) = std::fs::read_to_string(&file) else {
        return;
    };
    let rewritten: Vec<String> = cfg
        .lines()
        .map(|l| {
            if !l.trim_start().starts_with("port_forwards") {
                return l.to_owned();
            }
            let mut l = l.to_owned();
            for fixed in ["\"8080:", "\"8000:", "\"3000:"] {
                while l.contains(fixed) {
                    l = l.replacen(fixed, &format!("\"{}:", super::free_port()), 1);
                }
            }
            l
        })
        .collect();
    std::fs::write(&file, rewritten.join("\n") + "\n").unwrap_or_else(|e| panic!("{e}"));
}

impl World {
    /// A project with fake minikube (stateful), a fake docker daemon, the real kubectl and a
    /// fresh fake API server.
    pub fn new(p: Project) -> World {
        free_example_ports(&p);
        let bin = FakeBin::new();
        bin.minikube();
        let fakes = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let docker_dir = fakes.path().join("docker");
        bin.tool(
        "docker",
        &format!(
            r##"PATH="/usr/bin:/bin:$PATH"
d={dir}
mkdir -p "$d"; touch "$d/images"
echo "$* | DOCKER_HOST=${{DOCKER_HOST:-}} DOCKER_TLS_VERIFY=${{DOCKER_TLS_VERIFY:-}} DOCKER_CERT_PATH=${{DOCKER_CERT_PATH:-}} MINIKUBE_ACTIVE_DOCKERD=${{MINIKUBE_ACTIVE_DOCKERD:-}}" >> "$d/log"
case "$1" in
  --version) echo "Docker version 27.4.1, build b9d17ea" ;;
  version) echo '{{"Client":{{"Version":"27.4.1","ApiVersion":"1.47"}},"Server":{{"Version":"27.4.1","ApiVersion":"1.47"}}}}' ;;
  image)
    for ref; do :; done
    if grep -qx "$ref" "$d/images"; then echo "sha256:4a2f8e1b9c0d"; else echo "Error response from daemon: No such image: $ref" >&2; exit 1; fi ;;
  push) echo "The push refers to repository [${{2%:*}}]"; echo "${{2##*:}}: digest: sha256:4a2f8e1b9c0d size: 528" ;;
  build)
    prev=""; for a; do [ "$prev" = "-t" ] && tag="$a"; prev="$a"; done
    echo "#1 [internal] load build definition from Dockerfile"
    echo "#5 naming to docker.io/library/$tag done"
    echo "$tag" >> "$d/images" ;;
esac"##,
            dir = docker_dir.display()
        ),
    );
        bin.real("kubectl");
        let mk = fakes.path().join("minikube");
        World {
            p,
            fakes,
            bin,
            proc_root: super::fake_proc(8, 32768, 30000, 524288, 512),
            api: FakeKube::start(),
            mk,
        }
    }

    pub fn kubeconfig(&self) -> PathBuf {
        self.fakes.path().join("kubeconfig")
    }

    /// Puts the fake profile in `state` with a size, and a kubeconfig as minikube leaves it.
    pub fn profile(&self, state: &str, cpus: u32, memory: u32) {
        std::fs::create_dir_all(&self.mk).unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(self.mk.join("state"), state).unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(self.mk.join("cpus"), cpus.to_string()).unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(self.mk.join("memory"), memory.to_string())
            .unwrap_or_else(|e| panic!("{e}"));
        self.write_kubeconfig(&[("minikube", &self.api.url())], "minikube");
    }

    /// Points devenv at the real control plane instead of the fake API server: a running
    /// (fake) Minikube profile whose context is the real cluster's.
    pub fn use_real(&self, cluster: &super::real::RealCluster) {
        self.profile("running", 4, 8192);
        cluster.kubeconfig_as(&self.kubeconfig(), "minikube");
    }

    pub fn write_kubeconfig(&self, contexts: &[(&str, &str)], current: &str) {
        let mut text = String::from("apiVersion: v1\nkind: Config\nclusters:\n");
        for (name, server) in contexts {
            text.push_str(&format!(
                "- cluster:\n    server: {server}\n  name: {name}\n"
            ));
        }
        text.push_str("contexts:\n");
        for (name, _) in contexts {
            text.push_str(&format!(
                "- context:\n    cluster: {name}\n    user: {name}\n  name: {name}\n"
            ));
        }
        text.push_str("users:\n");
        for (name, _) in contexts {
            text.push_str(&format!("- name: {name}\n  user: {{}}\n"));
        }
        text.push_str(&format!("current-context: {current}\n"));
        std::fs::write(self.kubeconfig(), text).unwrap_or_else(|e| panic!("{e}"));
    }

    pub fn run(&self, args: &[&str], extra: &[(&str, &str)]) -> Output {
        self.command(args, extra)
            .output()
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// Starts devenv in the background, its output captured, for tests that act while it runs.
    pub fn spawn(&self, args: &[&str], extra: &[(&str, &str)]) -> std::process::Child {
        self.command(args, extra)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// devenv with the fakes in its environment (and minikube's call log emptied).
    pub fn command(&self, args: &[&str], extra: &[(&str, &str)]) -> Command {
        let _ = std::fs::remove_file(self.mk.join("log"));
        let mut cmd = Command::new(super::devenv_bin());
        cmd.args(args)
            .current_dir(self.p.path())
            .env("PATH", self.bin.path())
            .env("HOME", self.fakes.path())
            .env("KUBECONFIG", self.kubeconfig())
            .env("FAKE_API_SERVER", self.api.url())
            .env("FAKE_MINIKUBE_DIR", &self.mk)
            .env("DEVENV_PROC_ROOT", self.proc_root.path())
            // Tests run side by side: each daemon's page takes any free port.
            .env("DEVENV_WEB_PORT", "0")
            .env_remove("DOCKER_HOST")
            .env_remove("MINIKUBE_HOME");
        for (k, v) in extra {
            cmd.env(k, v);
        }
        cmd
    }

    /// The minikube calls of the last run, without doctor's two queries (which come first).
    pub fn up_calls(&self) -> Vec<String> {
        let log = std::fs::read_to_string(self.mk.join("log")).unwrap_or_default();
        let lines: Vec<String> = log.lines().map(str::to_owned).collect();
        let (doctor, rest) = lines.split_at(lines.len().min(2));
        let mut doctor = doctor.to_vec();
        doctor.sort();
        assert_eq!(
            doctor,
            ["profile list -o json", "version --short"],
            "doctor's queries come first: {lines:?}"
        );
        rest.to_vec()
    }

    /// A `helm` that renders with the real helm and records `upgrade`/`uninstall` calls; an
    /// upgrade applies the rendered chart with the real kubectl (the fake API server does not
    /// serve what a real release install needs: release Secrets, full OpenAPI).
    pub fn fake_helm(&self) {
        let real = super::which("helm")
            .unwrap_or_else(|| panic!("helm is not installed: run scripts/install-test-tools.sh"));
        self.bin.tool(
            "helm",
            &format!(
                r#"case "$1" in template|lint|version|dependency) exec {real} "$@" ;; esac
echo "$*" >> {log}
if [ "$1" = upgrade ]; then
  shift; [ "$1" = --install ] && shift
  prev=""; ns=default; ctx=""
  for a; do
    case "$prev" in -n|--namespace) ns="$a" ;; --kube-context) ctx="$a" ;; esac; prev="$a"
  done
  {real} template "$@" | {kubectl} --context "$ctx" apply --server-side --validate=false --field-manager helm -n "$ns" -f - >/dev/null || exit 1
fi
echo "Release \"todo\" has been upgraded. Happy Helming!""#,
                real = real.display(),
                kubectl = super::which("kubectl").unwrap_or_else(|| panic!("kubectl is not installed")).display(),
                log = self.fakes.path().join("helm.log").display()
            ),
        );
    }

    pub fn helm_calls(&self) -> Vec<String> {
        std::fs::read_to_string(self.fakes.path().join("helm.log"))
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    pub fn state(&self) -> String {
        std::fs::read_to_string(self.mk.join("state"))
            .map_or_else(|_| "absent".to_owned(), |s| s.trim().to_owned())
    }
}
