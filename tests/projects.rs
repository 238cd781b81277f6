//! Real projects as they are (issue 15): one fixture project per shape that public
//! FastAPI/Next.js and Tilt example projects have and devenv once broke on
//! (tests/fixtures/projects/), each run through the binary: `config check` and `up
//! --dry-run` render the chart with the real helm (no cluster needed), and where it matters
//! `up --ci` deploys to the real control plane (`../shared/kubeapi`, see common::real; the
//! Minikube and the Docker daemon are the fakes of common::world, so builds are recorded).

mod common;

use common::real::RealCluster;
use common::world::World;
use common::{Project, copy_dir, repo_root, stderr, stdout};
use serde_json::Value;

/// A copy of tests/fixtures/projects/`name`.
fn fixture(name: &str) -> Project {
    let p = Project::new();
    copy_dir(
        &repo_root().join("tests/fixtures/projects").join(name),
        p.path(),
    );
    p
}

fn text(o: &std::process::Output) -> String {
    format!("{}{}", stdout(o), stderr(o))
}

/// A finished devenv run that must have exited with `code`: its stdout and stderr.
#[track_caller]
fn expect(out: std::process::Output, code: i32) -> String {
    let t = text(&out);
    assert_eq!(out.status.code(), Some(code), "{t}");
    t
}

/// The fixture on the real control plane, in a namespace of the test's own.
fn on_real(rc: &RealCluster, p: Project, ns_in_file: &str, base: &str) -> (World, String) {
    let ns = rc.namespace(base);
    let cfg = p.read("devenv.toml").replace(
        &format!("namespace = \"{ns_in_file}\""),
        &format!("namespace = \"{ns}\""),
    );
    p.write("devenv.toml", &cfg);
    let w = World::new(p);
    w.use_real(rc);
    w.bin.real("helm");
    (w, ns)
}

fn image_of(d: &Value) -> String {
    d["spec"]["template"]["spec"]["containers"][0]["image"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// Issue 15, point 1: one image run by two workloads, each with its own values keys. Before,
/// `config check` refused the second `[[deploy.helm.images]]` entry for the image ("duplicate
/// helm image entry", its hint reading "entry fors"); with one entry, the worker ran
/// `web:latest`, which the check now says before anything starts.
#[test]
fn one_image_feeds_two_workloads_through_two_entries() {
    let p = fixture("shared-image");
    expect(p.devenv(&["config", "check"]), 0);
    let plan = p.devenv(&["up", "--dry-run"]);
    let plan_text = stdout(&plan);
    assert!(
        plan_text.contains("--set api.image.tag=devenv-"),
        "{plan_text}"
    );
    assert!(
        plan_text.contains("--set worker.image.tag=devenv-"),
        "{plan_text}"
    );

    // A values key set by two entries is the error now, at its place.
    let twice = p
        .read("devenv.toml")
        .replace("tag = \"worker.image.tag\"", "tag = \"api.image.tag\"");
    p.write("devenv.toml", &twice);
    let t = expect(p.devenv(&["config", "check"]), 1);
    assert!(
        t.contains("values key `api.image.tag` is set by two [[deploy.helm.images]] entries"),
        "{t}"
    );
    assert!(!t.contains("entry fors"), "{t}");

    // With the worker's entry left out, the check says what the worker would run.
    let one: String = p
        .read("devenv.toml")
        .split("[[deploy.helm.images]]")
        .take(2)
        .collect::<Vec<_>>()
        .join("[[deploy.helm.images]]")
        .replace("tag = \"api.image.tag\"\n\n", "tag = \"api.image.tag\"\n\n[[resource]]\nname = \"api\"\nworkload = \"deployment/api\"\n\n[[resource]]\nname = \"worker\"\nworkload = \"deployment/worker\"\n");
    p.write("devenv.toml", &one);
    let t = expect(p.devenv(&["config", "check"]), 1);
    assert!(
        t.contains("Deployment/worker (from shared-image/templates/worker.yaml) container `worker` runs `web:latest`, not devenv's `web:devenv-"),
        "{t}"
    );
}

/// Issue 15, point 1, deployed: both workloads run the one image's content tag.
#[test]
fn one_image_feeds_two_workloads_on_a_real_cluster() {
    let Some(rc) = RealCluster::get("one_image_two_workloads") else {
        return;
    };
    let (w, ns) = on_real(&rc, fixture("shared-image"), "shared", "shared");
    let t = expect(w.run(&["up", "--ci"], &[]), 0);
    assert_eq!(t.matches("built      web:").count(), 1, "built once:\n{t}");
    let api = rc
        .get_json("deployment", Some(&ns), "api")
        .unwrap_or_default();
    let worker = rc
        .get_json("deployment", Some(&ns), "worker")
        .unwrap_or_default();
    assert!(image_of(&api).starts_with("web:devenv-"), "{api:#}");
    assert_eq!(image_of(&api), image_of(&worker));
}

/// Issue 15, point 2: a Dockerfile `target` the Dockerfile lacks, a tag key the chart
/// ignores and a `workload` nothing renders were all accepted by `config check` and `up
/// --dry-run`, and failed only inside `up`. Now each is an error with its place; and the
/// dry-run of a chart that renders its own Namespace says `up` makes it for Helm.
#[test]
fn config_check_renders_the_chart_and_finds_what_up_would_fail_on() {
    let p = fixture("checks-before-up");
    let t = expect(p.devenv(&["config", "check"]), 1);
    assert!(
        t.contains("target `runner` is not a stage of backend/Dockerfile"),
        "{t}"
    );
    assert!(t.contains("--> devenv.toml:12:10"), "{t}");
    assert!(t.contains("did you mean `runtime`?"), "{t}");
    let dry = p.devenv(&["up", "--dry-run"]);
    assert_eq!(dry.status.code(), Some(1), "{}", text(&dry));

    p.write(
        "devenv.toml",
        &p.read("devenv.toml")
            .replace("target = \"runner\"", "target = \"runtime\""),
    );
    let t = expect(p.devenv(&["config", "check"]), 1);
    assert!(
        t.contains("Deployment/backend (from checks/templates/backend.yaml) container `backend` runs `backend:v3`, not devenv's `backend:devenv-"),
        "{t}"
    );
    assert!(
        t.contains("the chart does not take the tag from `backend.image.tag`"),
        "{t}"
    );
    assert!(
        t.contains("resource `backend`: no deployment/backnd is rendered or in the manifests"),
        "{t}"
    );
    assert!(
        t.contains("did you mean `deployment/backend` (from checks/templates/backend.yaml)?"),
        "{t}"
    );
    assert!(
        t.contains(
            "2 errors found by rendering the chart and reading the manifests; nothing was started"
        ),
        "{t}"
    );
    let dry = p.devenv(&["up", "--dry-run"]);
    assert_eq!(dry.status.code(), Some(1), "{}", text(&dry));

    // Fixed: the template takes the tag, the workload is spelled right.
    p.write(
        "chart/templates/backend.yaml",
        &p.read("chart/templates/backend.yaml")
            .replace(":v3\"", ":{{ .Values.backend.image.tag }}\""),
    );
    p.write(
        "devenv.toml",
        &p.read("devenv.toml")
            .replace("deployment/backnd", "deployment/backend"),
    );
    expect(p.devenv(&["config", "check"]), 0);
    let dry = p.devenv(&["up", "--dry-run"]);
    let plan = stdout(&dry);
    assert_eq!(dry.status.code(), Some(0), "{}", text(&dry));
    assert!(
        plan.contains("namespace  create `checks` for Helm if missing"),
        "{plan}"
    );
    assert!(!plan.contains("create `checks` if missing"), "{plan}");
}

/// Issue 15, point 3: a chart that reads Secret keys the .env lacks (`database-url`,
/// `API_TOKEN`) and takes a secret as a value (`secret.jwtSecret`, required). Before, devenv
/// said nothing and the pod failed with CreateContainerConfigError; there was no way to
/// rename a key or pass a .env value to the chart. Now the check names the .env file, the
/// key and the template; `keys` renames, `values_from_env` passes the value in a file that
/// no command line shows.
#[test]
fn secret_keys_are_checked_and_can_be_renamed_and_passed_as_values() {
    let p = fixture("secret-keys");
    p.write(".env", &p.read(".env.example"));
    let t = expect(p.devenv(&["config", "check"]), 1);
    assert!(t.contains("the chart does not render"), "{t}");
    assert!(t.contains("secret.jwtSecret is required"), "{t}");

    let with_value = p.read("devenv.toml").replace(
        "release = \"app\"",
        "release = \"app\"\nenv_files = [\".env\"]\nvalues_from_env = { \"secret.jwtSecret\" = \"JWT_SECRET\" }",
    );
    p.write("devenv.toml", &with_value);
    let t = expect(p.devenv(&["config", "check"]), 1);
    assert!(
        t.contains("Deployment/api (from secret-keys/templates/api.yaml) reads key `database-url` of Secret `app-secrets`, which .env does not have"),
        "{t}"
    );
    assert!(
        t.contains("keys = { \"database-url\" = \"DATABASE_URL\" }"),
        "the hint names the near key: {t}"
    );
    assert!(
        t.contains("reads key `API_TOKEN` of Secret `app-secrets`, which .env does not have"),
        "{t}"
    );
    for secret in ["hunter2", "change-me-jwt-value"] {
        assert!(!t.contains(secret), "a secret value was printed:\n{t}");
    }

    p.write(
        "devenv.toml",
        &p.read("devenv.toml").replace(
            "env_files = [\".env\"]\n\n[deploy]",
            "env_files = [\".env\"]\nkeys = { \"database-url\" = \"DATABASE_URL\" }\n\n[deploy]",
        ),
    );
    p.write(".env", &format!("{}API_TOKEN=tok-123456\n", p.read(".env")));
    expect(p.devenv(&["config", "check"]), 0);
    let dry = p.devenv(&["up", "--dry-run"]);
    let plan = text(&dry);
    assert!(plan.contains("helm-values-from-env."), "{plan}");
    assert!(!plan.contains("change-me-jwt-value"), "{plan}");
}

/// Issue 15, point 3, deployed: the Secret has the renamed key, the chart got the value, and
/// no value was printed nor given on a command line.
#[test]
fn secret_keys_and_values_from_env_on_a_real_cluster() {
    let Some(rc) = RealCluster::get("secret_keys") else {
        return;
    };
    let p = fixture("secret-keys");
    p.write(
        ".env",
        &format!("{}API_TOKEN=tok-123456\n", p.read(".env.example")),
    );
    p.write(
        "devenv.toml",
        &p.read("devenv.toml")
            .replace(
                "env_files = [\".env\"]\n\n[deploy]",
                "env_files = [\".env\"]\nkeys = { \"database-url\" = \"DATABASE_URL\" }\n\n[deploy]",
            )
            .replace(
                "release = \"app\"",
                "release = \"app\"\nenv_files = [\".env\"]\nvalues_from_env = { \"secret.jwtSecret\" = \"JWT_SECRET\" }",
            ),
    );
    let (w, ns) = on_real(&rc, p, "secrets", "secrets");
    let t = expect(w.run(&["up", "--ci"], &[]), 0);
    for secret in ["hunter2", "change-me-jwt-value", "tok-123456"] {
        assert!(!t.contains(secret), "a secret value was printed:\n{t}");
    }
    let s = rc
        .get_json("secret", Some(&ns), "app-secrets")
        .unwrap_or_default();
    let keys: Vec<&str> = s["data"]
        .as_object()
        .map(|m| m.keys().map(String::as_str).collect())
        .unwrap_or_default();
    assert!(
        keys.contains(&"database-url") && keys.contains(&"DATABASE_URL"),
        "{keys:?}"
    );
    let jwt = rc.get_json("secret", Some(&ns), "jwt").unwrap_or_default();
    // base64 of `change-me-jwt-value`.
    assert_eq!(
        jwt["data"]["jwt"], "Y2hhbmdlLW1lLWp3dC12YWx1ZQ==",
        "{jwt:#}"
    );
    // The values file is gone once helm ran.
    let state = w.fakes.path().join(".local/state/devenv/projects");
    let left: Vec<String> = walk(&state)
        .into_iter()
        .filter(|f| f.contains("helm-values-from-env"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

fn walk(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p.display().to_string());
        }
    }
    out
}

/// Issue 15, point 4: a template that writes a key twice (`accessModes` in a PVC) is YAML
/// Helm and kubectl accept (the last one counts). Before, `up` stopped with `duplicate entry
/// with key "accessModes" at line 8 column 3`, naming neither the template nor a file.
#[test]
fn a_key_written_twice_in_a_template_is_a_warning_naming_it() {
    let p = fixture("duplicate-keys");
    let t = expect(p.devenv(&["config", "check"]), 0);
    assert!(
        t.contains("dupkeys/templates/pvc.yaml: key `spec.accessModes` is written twice (lines 6 and 11); the last one is used, as Helm and kubectl do"),
        "{t}"
    );
}

/// Issue 15, point 4, deployed: the release goes in with the last `accessModes`.
#[test]
fn a_key_written_twice_deploys_on_a_real_cluster() {
    let Some(rc) = RealCluster::get("duplicate_keys") else {
        return;
    };
    let (w, ns) = on_real(&rc, fixture("duplicate-keys"), "dupkeys", "dupkeys");
    let t = expect(w.run(&["up", "--ci"], &[]), 0);
    assert!(t.contains("is written twice"), "{t}");
    let pvc = rc
        .get_json("persistentvolumeclaim", Some(&ns), "data")
        .unwrap_or_default();
    assert_eq!(pvc["spec"]["accessModes"][0], "ReadWriteMany", "{pvc:#}");
}

/// `devenv build` in `p` with `args`, buildah's store in `storage`, and no minikube on PATH
/// (this machine has none: the case of issue 15, point 8).
fn build_without_minikube(
    p: &Project,
    storage: &common::Storage,
    args: &[&str],
) -> std::process::Output {
    std::process::Command::new(common::devenv_bin())
        .arg("build")
        .args(args)
        .current_dir(p.path())
        .env("PATH", "/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin")
        .env("HOME", storage.dir())
        .env("CONTAINERS_STORAGE_CONF", storage.conf())
        .env_remove("BUILDAH_ISOLATION")
        .output()
        .unwrap_or_else(|e| panic!("{e}"))
}

/// Issue 15, point 8: builder settings reach every command of the builder (the plan shows
/// `buildah --storage-driver vfs bud … --label …` and BUILDAH_ISOLATION), and `devenv build
/// --builder buildah` needs no cluster: before, it failed with only "`minikube` was not
/// found on PATH".
#[test]
fn devenv_build_with_buildah_needs_no_cluster_and_takes_the_builders_settings() {
    let p = fixture("builders");
    let plan = p.devenv(&["up", "--dry-run"]);
    let plan_text = stdout(&plan);
    assert!(
        plan_text.contains("buildah --storage-driver vfs bud --layers -t app:devenv-"),
        "{}",
        text(&plan)
    );
    assert!(
        plan_text.contains("--label devenv.fixture=builders app"),
        "{plan_text}"
    );
    assert!(
        plan_text.contains("env: BUILDAH_ISOLATION=chroot"),
        "{plan_text}"
    );

    let storage = common::Storage::new();
    let out = build_without_minikube(&p, &storage, &["--builder", "buildah"]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(0), "{t}");
    let reference = stdout(&out)
        .lines()
        .find_map(|l| l.strip_prefix("built      "))
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or_else(|| panic!("{t}"))
        .to_owned();
    assert!(
        t.contains(&format!("local      {reference} is in buildah's own store only, loaded into no cluster: minikube is not available here")),
        "{t}"
    );
    assert!(t.contains("`devenv up` loads what it runs"), "{t}");
    let inspect = std::process::Command::new("buildah")
        .args([
            "--storage-driver",
            "vfs",
            "inspect",
            "--type",
            "image",
            &reference,
        ])
        .env("CONTAINERS_STORAGE_CONF", storage.conf())
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(inspect.status.success(), "{}", text(&inspect));
    assert!(
        stdout(&inspect).contains("\"devenv.fixture\": \"builders\""),
        "the builder's own argument reached it"
    );
    // Its own store says it is there: nothing is built again.
    let again = build_without_minikube(&p, &storage, &["--builder", "buildah"]);
    assert!(
        stdout(&again).contains(&format!("present    {reference}")),
        "{}",
        text(&again)
    );
    // docker builds go into Minikube's daemon: without one, the error says what works.
    let docker = build_without_minikube(&p, &storage, &["--builder", "docker"]);
    let t = text(&docker);
    assert_eq!(docker.status.code(), Some(1), "{t}");
    assert!(
        t.contains("build with --builder buildah (or podman), which needs no cluster"),
        "{t}"
    );
}

/// Issue 15, point 5: a multi-stage build that fails in its last stage names the stage and
/// the step (before: only `failed (exit 125)`, the line being prefixed `[2/2] STEP 3/3:`).
#[test]
fn a_multistage_build_failure_names_the_stage_and_the_step() {
    let p = fixture("multistage");
    let storage = common::Storage::new();
    let out = build_without_minikube(&p, &storage, &["--builder", "buildah"]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(
        t.contains("at step: stage 2/2 `runner`, STEP 3/3: COPY public ./public"),
        "{t}"
    );
}

/// Issue 15, point 6: `memory = "8Gi"` and `"4096Mi"` were refused.
#[test]
fn kubernetes_sizes_are_accepted() {
    let p = fixture("sizes");
    // Local resources only: no cluster is needed, whatever [cluster] says.
    let t = expect(p.devenv(&["config", "check"]), 0);
    assert!(t.contains("cluster    none"), "{t}");
    // With a cluster to start, the sizes reach `minikube start` as megabytes.
    p.write("app/Dockerfile", "FROM scratch\nCOPY . /\n");
    p.write(
        "devenv.toml",
        &format!(
            "{}\n[[image]]\nname = \"app\"\ncontext = \"app\"\n[deploy]\nmanifests = [\"k8s.yaml\"]\n",
            p.read("devenv.toml")
        ),
    );
    p.write("k8s.yaml", "apiVersion: v1\nkind: Pod\nmetadata:\n  name: app\nspec:\n  containers:\n  - name: app\n    image: app\n");
    let t = expect(p.devenv(&["config", "check"]), 0);
    assert!(t.contains("4 CPUs, 8192 MB"), "{t}");
    let plan = p.devenv(&["up", "--dry-run"]);
    assert!(
        stdout(&plan).contains("--memory=8192 --disk-size=40960mb"),
        "{}",
        text(&plan)
    );
}

/// Issue 15, point 9: a missing .env's hint looked only beside the config (deploy/), while
/// `.env.example` sat at the repository's root.
#[test]
fn a_missing_env_file_points_at_the_example_at_the_repository_root() {
    let p = fixture("env-at-root");
    std::fs::create_dir_all(p.path().join(".git")).unwrap_or_else(|e| panic!("{e}"));
    let out = std::process::Command::new(common::devenv_bin())
        .args(["--config", "deploy/devenv.toml", "config", "check"])
        .current_dir(p.path())
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(t.contains("env file `.env` not found"), "{t}");
    assert!(
        t.contains("hint: copy the example and fill it in: cp .env.example deploy/.env"),
        "{t}"
    );
    // The hint works: after it, the config is valid.
    std::fs::copy(p.path().join(".env.example"), p.path().join("deploy/.env"))
        .unwrap_or_else(|e| panic!("{e}"));
    let out = std::process::Command::new(common::devenv_bin())
        .args(["--config", "deploy/devenv.toml", "config", "check"])
        .current_dir(p.path())
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
}

/// The registry fixture pointed at `registry`'s port, with its image built by `builder`.
fn registry_project(registry: &common::registry::Registry, builder: &str) -> Project {
    let p = fixture("registry");
    p.write(
        "devenv.toml",
        &p.read("devenv.toml")
            .replace("REGISTRY_PORT", &registry.port.to_string())
            .replace("builder = \"buildah\"", &format!("builder = \"{builder}\"")),
    );
    p
}

/// Issue 15, point 7: buildah and podman push to a registry on 127.0.0.1 over plain HTTP
/// (before: the push tried https:// and failed, with no setting to change it).
#[test]
fn buildah_and_podman_push_to_a_loopback_registry_over_plain_http() {
    let Some(registry) = common::registry::Registry::start() else {
        return;
    };
    for builder in ["buildah", "podman"] {
        let p = registry_project(&registry, builder);
        let storage = common::Storage::new();
        let out = build_without_minikube(&p, &storage, &[]);
        let t = text(&out);
        assert_eq!(out.status.code(), Some(0), "{builder}: {t}");
        let reference = stdout(&out)
            .lines()
            .find_map(|l| l.strip_prefix("built      "))
            .and_then(|l| l.split_whitespace().next())
            .unwrap_or_else(|| panic!("{t}"))
            .to_owned();
        assert!(
            reference.starts_with(&format!("127.0.0.1:{}/team/app:devenv-", registry.port)),
            "{reference}"
        );
        let tag = reference.rsplit_once(':').map_or("", |(_, t)| t);
        let (status, tags) = registry.get("/v2/team/app/tags/list");
        assert_eq!(status, 200, "{tags}");
        assert!(tags.contains(tag), "{builder}: {tag} not in {tags}");
    }
}

/// Issue 15, point 7, with `up`: the existing cluster (the real control plane) runs what
/// was pushed to the registry, and a second `up` finds the tag present and builds nothing.
#[test]
fn up_pushes_to_the_registry_and_a_second_up_builds_nothing() {
    let Some(rc) = RealCluster::get("registry_up") else {
        return;
    };
    let Some(registry) = common::registry::Registry::start() else {
        return;
    };
    let ns = rc.namespace("registry");
    let p = registry_project(&registry, "buildah");
    p.write(
        "devenv.toml",
        &p.read("devenv.toml")
            .replace("namespace = \"registry\"", &format!("namespace = \"{ns}\"")),
    );
    let w = World::new(p);
    w.bin.real("buildah");
    rc.kubeconfig_as(&w.kubeconfig(), "kubeapi");
    let storage = common::Storage::new();
    let conf = storage.conf().display().to_string();
    let path = format!("{}:/usr/local/bin:/usr/bin:/bin", w.bin.path().display());
    let env = [
        ("CONTAINERS_STORAGE_CONF", conf.as_str()),
        ("PATH", path.as_str()),
    ];
    let out = w.run(&["up", "--ci"], &env);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(0), "{t}");
    let reference = stdout(&out)
        .lines()
        .find_map(|l| l.strip_prefix("built      "))
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or_else(|| panic!("{t}"))
        .to_owned();
    let d = rc
        .get_json("deployment", Some(&ns), "app")
        .unwrap_or_default();
    assert_eq!(image_of(&d), reference, "{d:#}");
    let tag = reference.rsplit_once(':').map_or("", |(_, t)| t);
    assert!(registry.get("/v2/team/app/tags/list").1.contains(tag));
    let again = w.run(&["up", "--ci"], &env);
    let t = text(&again);
    assert_eq!(again.status.code(), Some(0), "{t}");
    assert!(t.contains(&format!("present    {reference}")), "{t}");
    assert!(!t.contains("built      "), "nothing built:\n{t}");
}

/// Issue 17: `dev_command` is the command of the image built for development; the project's
/// Dockerfile is untouched, and the command is part of the content tag. Issue 27, shape 7: it
/// replaces the ENTRYPOINT and the CMD (an ENTRYPOINT took it as arguments, so it never
/// ran), in the stage built (`target`), not the Dockerfile's last.
#[test]
fn dev_command_is_the_built_images_cmd() {
    let p = fixture("dev-command");
    let dockerfile = p.read("app/Dockerfile");
    let storage = common::Storage::new();
    let out = build_without_minikube(&p, &storage, &[]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(0), "{t}");
    let reference = stdout(&out)
        .lines()
        .find_map(|l| l.strip_prefix("built      "))
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or_else(|| panic!("{t}"))
        .to_owned();
    let inspect = std::process::Command::new("buildah")
        .args(["inspect", "--type", "image", &reference])
        .env("CONTAINERS_STORAGE_CONF", storage.conf())
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    let v: Value = serde_json::from_slice(&inspect.stdout).unwrap_or_default();
    assert_eq!(
        v["OCIv1"]["config"]["Entrypoint"],
        serde_json::json!(["/app/serve", "--reload"]),
        "{}",
        text(&inspect)
    );
    assert!(
        v["OCIv1"]["config"]["Cmd"]
            .as_array()
            .is_none_or(Vec::is_empty),
        "{}",
        text(&inspect)
    );
    assert_eq!(
        p.read("app/Dockerfile"),
        dockerfile,
        "the project's Dockerfile is untouched"
    );
    // Another command is another image.
    p.write(
        "devenv.toml",
        &p.read("devenv.toml")
            .replace("\"--reload\"]", "\"--reload\", \"--debug\"]"),
    );
    let again = build_without_minikube(&p, &storage, &[]);
    let t = text(&again);
    assert!(t.contains("built      app:devenv-"), "{t}");
    assert!(!t.contains(&reference), "a new tag: {t}");
}
