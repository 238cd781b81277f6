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
    let out = p.devenv(&["config", "check"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
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
    let out = p.devenv(&["config", "check"]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
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
    let out = p.devenv(&["config", "check"]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
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
    let out = w.run(&["up", "--ci"], &[]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(0), "{t}");
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
    let out = p.devenv(&["config", "check"]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
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
    let out = p.devenv(&["config", "check"]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
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
    let out = p.devenv(&["config", "check"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
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
    let out = p.devenv(&["config", "check"]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(t.contains("the chart does not render"), "{t}");
    assert!(t.contains("secret.jwtSecret is required"), "{t}");

    let with_value = p.read("devenv.toml").replace(
        "release = \"app\"",
        "release = \"app\"\nenv_files = [\".env\"]\nvalues_from_env = { \"secret.jwtSecret\" = \"JWT_SECRET\" }",
    );
    p.write("devenv.toml", &with_value);
    let out = p.devenv(&["config", "check"]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
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
    let out = p.devenv(&["config", "check"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let dry = p.devenv(&["up", "--dry-run"]);
    let plan = text(&dry);
    assert!(plan.contains("helm-values-from-env.yaml"), "{plan}");
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
    let out = w.run(&["up", "--ci"], &[]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(0), "{t}");
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
        .filter(|f| f.ends_with("helm-values-from-env.yaml"))
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
    let out = p.devenv(&["config", "check"]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(0), "{t}");
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
    let out = w.run(&["up", "--ci"], &[]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(0), "{t}");
    assert!(t.contains("is written twice"), "{t}");
    let pvc = rc
        .get_json("persistentvolumeclaim", Some(&ns), "data")
        .unwrap_or_default();
    assert_eq!(pvc["spec"]["accessModes"][0], "ReadWriteMany", "{pvc:#}");
}
