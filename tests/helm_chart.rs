//! The todo sample's chart through the real `helm` (v4, installed by
//! scripts/install-test-tools.sh): lint it and render it with exactly the values the plan
//! injects, and check the rendered Deployments run the plan's content tags.

mod common;

use std::process::Command;

use common::{Project, stderr};
use serde::Deserialize;

fn plan(p: &Project) -> serde_json::Value {
    let out = p.devenv(&["up", "--dry-run", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}"))
}

fn strings(v: &serde_json::Value) -> Vec<String> {
    v.as_array()
        .into_iter()
        .flatten()
        .map(|s| s.as_str().unwrap_or_default().to_owned())
        .collect()
}

fn run(p: &Project, argv: &[String]) -> String {
    let out = Command::new(&argv[0])
        .args(&argv[1..])
        .current_dir(p.path())
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run {} (run scripts/install-test-tools.sh): {e}",
                argv[0]
            )
        });
    assert!(out.status.success(), "{argv:?} failed:\n{}", stderr(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn real_helm_lints_and_renders_the_chart_with_the_planned_images() {
    let p = Project::example("todo");
    p.write(".env", &p.read(".env.example"));
    let plan = plan(&p);
    let steps = plan["steps"].as_array().cloned().unwrap_or_default();
    let tag = |image: &str| {
        steps
            .iter()
            .find(|s| s["step"] == "build" && s["image"] == image)
            .and_then(|s| s["tag"].as_str())
            .unwrap_or_else(|| panic!("no build of {image}"))
            .to_owned()
    };
    let (backend_tag, frontend_tag) = (tag("todo-backend"), tag("todo-frontend"));
    let helm = steps
        .iter()
        .find(|s| s["step"] == "helm")
        .unwrap_or_else(|| panic!("no helm step"));

    // The exact command devenv runs to deploy.
    let upgrade = strings(&helm["command"]);
    let expected: Vec<String> = [
        "helm",
        "upgrade",
        "--install",
        "todo",
        "helm/todo-app",
        "--kube-context",
        "minikube",
        "--namespace",
        "todo",
        "-f",
        "helm/values-dev.yaml",
        "--set",
        "backend.image.repository=todo-backend",
        "--set",
        &format!("backend.image.tag={backend_tag}"),
        "--set",
        "frontend.image.repository=todo-frontend",
        "--set",
        &format!("frontend.image.tag={frontend_tag}"),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    assert_eq!(upgrade, expected);
    assert!(
        !upgrade.iter().any(|a| a == "--wait"),
        "devenv waits for readiness itself"
    );

    // helm lint with the same values.
    let render = strings(&helm["render"]);
    assert_eq!(&render[..4], ["helm", "template", "todo", "helm/todo-app"]);
    let mut lint = vec![
        "helm".to_owned(),
        "lint".to_owned(),
        "helm/todo-app".to_owned(),
        "--strict".to_owned(),
    ];
    lint.extend(render[4..].iter().cloned());
    let lint_out = run(&p, &lint);
    assert!(lint_out.contains("0 chart(s) failed"), "{lint_out}");

    // helm template: the Deployments run exactly the planned tags.
    let rendered = run(&p, &render);
    let mut images = Vec::new();
    let mut kinds = Vec::new();
    for doc in serde_norway::Deserializer::from_str(&rendered) {
        let v = serde_norway::Value::deserialize(doc).unwrap_or_else(|e| panic!("{e}"));
        let kind = v["kind"].as_str().unwrap_or_default().to_owned();
        if kind == "Deployment" {
            let name = v["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            let spec = &v["spec"]["template"]["spec"];
            for list in ["initContainers", "containers"] {
                for c in spec[list].as_sequence().into_iter().flatten() {
                    images.push((
                        name.clone(),
                        c["image"].as_str().unwrap_or_default().to_owned(),
                    ));
                }
            }
            assert_eq!(
                spec["containers"][0]["imagePullPolicy"].as_str(),
                Some("IfNotPresent")
            );
        }
        kinds.push(kind);
    }
    assert_eq!(
        images,
        vec![
            (
                "todo-backend".to_owned(),
                format!("todo-backend:{backend_tag}")
            ),
            ("todo-frontend".to_owned(), "busybox:1.36".to_owned()),
            (
                "todo-frontend".to_owned(),
                format!("todo-frontend:{frontend_tag}")
            ),
        ]
    );
    for k in ["ConfigMap", "Service", "Deployment"] {
        assert!(kinds.iter().any(|x| x == k), "no {k} in {kinds:?}");
    }
    assert!(
        !kinds.iter().any(|k| k == "Namespace" || k == "Secret"),
        "{kinds:?}"
    );
    assert!(
        rendered.contains("name: todo-secrets"),
        "the backend reads the Secret devenv makes"
    );
}

/// The sample's config and chart pass every check `up` makes before it starts, warnings
/// included: its development values keep the root filesystem writable for live update,
/// and each injected tag reaches its containers.
#[test]
fn the_sample_passes_the_checks_before_up_without_a_warning() {
    let p = Project::example("todo");
    p.write(".env", &p.read(".env.example"));
    let out = p.devenv(&["config", "check"]);
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(!err.contains("warning"), "{err}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("devenv.toml: valid"),
        "{err}"
    );
    // The chart's own default (read-only) would be told at live_update.
    p.write(
        "helm/values-dev.yaml",
        &p.read("helm/values-dev.yaml").replace(
            "readOnlyRootFilesystem: false",
            "readOnlyRootFilesystem: true",
        ),
    );
    let err = stderr(&p.devenv(&["config", "check"]));
    assert_eq!(
        err.matches("has readOnlyRootFilesystem: true, so live update cannot write into it")
            .count(),
        2,
        "{err}"
    );
}
