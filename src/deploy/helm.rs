//! Helm releases: the exact `helm upgrade --install` command devenv runs, with the project's
//! images injected through `--set`. No `--wait`: devenv watches readiness itself, per resource.

use std::collections::BTreeMap;
use std::path::Path;

use crate::config::{Config, Helm, HelmImageKeys};

/// Whether a chart's dependencies (`dependencies:` in Chart.yaml) are in place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dependencies {
    /// The chart has none, or every locked one is in `charts/`.
    Ready,
    /// `helm dependency build` fetches them, per Chart.lock (or creates the lock first).
    Build { reason: String },
    /// Chart.lock no longer matches Chart.yaml: only the user should rewrite the lock.
    OutOfSync { reason: String },
}

/// `(name, repository, version)` of each entry of a `dependencies:` list.
fn dependency_list(doc: &serde_norway::Value) -> Vec<(String, String, String)> {
    doc.get("dependencies")
        .and_then(serde_norway::Value::as_sequence)
        .map(|deps| {
            deps.iter()
                .map(|d| {
                    let f = |k: &str| {
                        d.get(k)
                            .and_then(serde_norway::Value::as_str)
                            .unwrap_or("")
                            .to_owned()
                    };
                    (f("name"), f("repository"), f("version"))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Checks the chart directory's Chart.yaml, Chart.lock and charts/ the way `helm dependency
/// build` would need them.
pub fn dependencies(chart_dir: &Path) -> Result<Dependencies, String> {
    let read = |f: &str| std::fs::read_to_string(chart_dir.join(f));
    let chart: serde_norway::Value = match read("Chart.yaml") {
        Ok(t) => serde_norway::from_str(&t).map_err(|e| format!("Chart.yaml: {e}"))?,
        // A packaged chart (.tgz) carries its dependencies inside.
        Err(_) => return Ok(Dependencies::Ready),
    };
    let wanted = dependency_list(&chart);
    if wanted.is_empty() {
        return Ok(Dependencies::Ready);
    }
    let Ok(lock_text) = read("Chart.lock") else {
        return Ok(Dependencies::Build {
            reason: "Chart.yaml has dependencies and there is no Chart.lock yet".into(),
        });
    };
    let lock: serde_norway::Value =
        serde_norway::from_str(&lock_text).map_err(|e| format!("Chart.lock: {e}"))?;
    let locked = dependency_list(&lock);
    let key = |l: &[(String, String, String)]| {
        let mut k: Vec<(String, String)> =
            l.iter().map(|(n, r, _)| (n.clone(), r.clone())).collect();
        k.sort();
        k
    };
    if key(&wanted) != key(&locked) {
        return Ok(Dependencies::OutOfSync {
            reason: "the dependencies in Chart.yaml differ from those in Chart.lock".into(),
        });
    }
    for (name, _, version) in &locked {
        let archive = chart_dir
            .join("charts")
            .join(format!("{name}-{version}.tgz"));
        let unpacked = chart_dir.join("charts").join(name).join("Chart.yaml");
        if !archive.is_file() && !unpacked.is_file() {
            return Ok(Dependencies::Build {
                reason: format!("charts/{name}-{version}.tgz is missing"),
            });
        }
    }
    Ok(Dependencies::Ready)
}

/// Escapes a `--set` value: Helm splits on unescaped commas.
fn set_value(v: &str) -> String {
    v.replace('\\', "\\\\").replace(',', "\\,")
}

/// The `--set` pairs that inject images, given each image's (repository, tag).
pub fn image_sets(
    helm: &Helm,
    images: &BTreeMap<String, (String, String)>,
) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for hi in &helm.images {
        let Some((repo, tag)) = images.get(&hi.image) else {
            continue;
        };
        match &hi.keys {
            HelmImageKeys::RepositoryAndTag {
                repository,
                tag: tag_key,
            } => {
                out.push((repository.clone(), repo.clone()));
                out.push((tag_key.clone(), tag.clone()));
            }
            HelmImageKeys::Reference { value } => {
                out.push((value.clone(), format!("{repo}:{tag}")))
            }
        }
    }
    out
}

/// Flags shared by `helm upgrade` and `helm template`: namespace, values files and `--set`s.
/// The user's `set` entries come first so devenv's image values win over them.
pub fn value_args(
    cfg: &Config,
    helm: &Helm,
    images: &BTreeMap<String, (String, String)>,
) -> Vec<String> {
    let mut argv = vec!["--namespace".to_owned(), cfg.deploy.namespace.clone()];
    for v in &helm.values {
        argv.extend(["-f".to_owned(), cfg.rel(v)]);
    }
    for (k, v) in &helm.set {
        argv.extend(["--set".to_owned(), format!("{k}={}", set_value(v))]);
    }
    for (k, v) in image_sets(helm, images) {
        argv.extend(["--set".to_owned(), format!("{k}={}", set_value(&v))]);
    }
    argv
}

/// `helm <verb...> <release> <chart> [extra...]` followed by the shared value flags.
fn helm_command(
    cfg: &Config,
    helm: &Helm,
    images: &BTreeMap<String, (String, String)>,
    verb: &[&str],
    extra: &[&str],
) -> Vec<String> {
    let mut argv: Vec<String> = std::iter::once("helm")
        .chain(verb.iter().copied())
        .map(str::to_owned)
        .collect();
    argv.extend([helm.release.clone(), cfg.rel(&helm.chart)]);
    argv.extend(extra.iter().map(|s| (*s).to_owned()));
    argv.extend(value_args(cfg, helm, images));
    argv
}

/// `helm upgrade --install` for the release, against the kube context devenv chose.
pub fn upgrade_command(
    cfg: &Config,
    helm: &Helm,
    images: &BTreeMap<String, (String, String)>,
) -> Vec<String> {
    helm_command(
        cfg,
        helm,
        images,
        &["upgrade", "--install"],
        &["--kube-context", &cfg.cluster.context],
    )
}

/// `helm template` with the same values, to see what the release will contain.
pub fn template_command(
    cfg: &Config,
    helm: &Helm,
    images: &BTreeMap<String, (String, String)>,
) -> Vec<String> {
    helm_command(cfg, helm, images, &["template"], &[])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commas_and_backslashes_are_escaped_for_set() {
        assert_eq!(set_value("a,b"), "a\\,b");
        assert_eq!(set_value("c:\\x"), "c:\\\\x");
        assert_eq!(set_value("plain"), "plain");
    }
}

/// What the rendered chart does that devenv must act on.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Inspection {
    /// Namespaces the chart creates itself: devenv must not create them first, or Helm refuses
    /// to adopt them ("exists and cannot be imported into the current release").
    pub own_namespaces: Vec<String>,
    /// Problems that stop the deploy (an image that did not get devenv's tag).
    pub errors: Vec<String>,
    pub warnings: Vec<String>,
}

fn secret_refs(v: &serde_norway::Value, out: &mut Vec<String>) {
    use serde_norway::Value;
    match v {
        Value::Mapping(m) => {
            for (k, child) in m {
                match k.as_str() {
                    Some("secretRef") | Some("secretKeyRef") => {
                        if let Some(n) = child.get("name").and_then(Value::as_str) {
                            out.push(n.to_owned());
                        }
                    }
                    Some("secret") => {
                        if let Some(n) = child.get("secretName").and_then(Value::as_str) {
                            out.push(n.to_owned());
                        }
                    }
                    _ => {}
                }
                secret_refs(child, out);
            }
        }
        Value::Sequence(items) => items.iter().for_each(|i| secret_refs(i, out)),
        _ => {}
    }
}

/// Looks at `helm template`'s output. `images` maps each injected image's repository to the
/// tag devenv set; `secrets` are the Secrets devenv makes.
pub fn inspect(
    rendered: &str,
    images: &BTreeMap<String, String>,
    secrets: &[String],
) -> Result<Inspection, String> {
    use serde::Deserialize;
    use serde_norway::Value;
    let mut out = Inspection::default();
    let mut rendered_secrets = Vec::new();
    let mut referenced = Vec::new();
    let mut seen_repos = Vec::new();
    for doc in serde_norway::Deserializer::from_str(rendered) {
        let v = Value::deserialize(doc)
            .map_err(|e| format!("helm template printed invalid YAML: {e}"))?;
        let kind = v.get("kind").and_then(Value::as_str).unwrap_or("");
        let name = v
            .get("metadata")
            .and_then(|m| m.get("name"))
            .and_then(Value::as_str)
            .unwrap_or("");
        match kind {
            "Namespace" => out.own_namespaces.push(name.to_owned()),
            "Secret" => rendered_secrets.push(name.to_owned()),
            _ => {}
        }
        secret_refs(&v, &mut referenced);
        let mut containers = Vec::new();
        super::manifests::collect_containers(&v, &mut containers);
        for (container, image, policy) in containers {
            let repo = super::manifests::repository_of(&image);
            let Some(tag) = images.get(repo) else {
                continue;
            };
            seen_repos.push(repo.to_owned());
            if image != format!("{repo}:{tag}") {
                out.errors.push(format!(
                    "{kind}/{name} container `{container}` runs `{image}`, not devenv's `{repo}:{tag}`: the chart does not take the tag from the values keys in [[deploy.helm.images]] (is the image value nested under other keys, or built from other values?)"
                ));
            }
            if policy.as_deref() == Some("Always") {
                out.warnings.push(format!(
                    "{kind}/{name} container `{container}` has imagePullPolicy: Always, so Kubernetes would try to pull `{repo}:{tag}`, which exists only in the cluster's image store; set it to IfNotPresent for development"
                ));
            }
        }
    }
    for repo in images.keys() {
        if !seen_repos.contains(repo) {
            out.errors.push(format!(
                "no container in the rendered chart runs `{repo}`: check the values keys in its [[deploy.helm.images]] entry"
            ));
        }
    }
    referenced.sort();
    referenced.dedup();
    for s in referenced {
        if !secrets.contains(&s) && !rendered_secrets.contains(&s) {
            out.warnings.push(format!(
                "the chart uses Secret `{s}`, which it does not create and devenv.toml has no [[secret]] for; pods will wait for it until it exists"
            ));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod inspect_tests {
    use super::*;

    fn images() -> BTreeMap<String, String> {
        BTreeMap::from([("todo-backend".to_owned(), "devenv-aaa".to_owned())])
    }

    const DEPLOY: &str = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: todo-backend\nspec:\n  template:\n    spec:\n      containers:\n      - name: backend\n        image: IMAGE\n        POLICY\n        envFrom:\n        - secretRef:\n            name: todo-secrets\n";

    fn deploy(image: &str, policy: &str) -> String {
        DEPLOY.replace("IMAGE", image).replace("POLICY", policy)
    }

    #[test]
    fn a_chart_that_takes_the_tag_is_fine() {
        let r = inspect(
            &deploy("todo-backend:devenv-aaa", "imagePullPolicy: IfNotPresent"),
            &images(),
            &["todo-secrets".into()],
        );
        assert_eq!(r, Ok(Inspection::default()));
    }

    #[test]
    fn a_pinned_or_ignored_tag_is_an_error() {
        let r = inspect(
            &deploy("todo-backend:1.4.2", "imagePullPolicy: IfNotPresent"),
            &images(),
            &["todo-secrets".into()],
        )
        .unwrap_or_default();
        assert_eq!(r.errors.len(), 1, "{r:?}");
        assert!(r.errors[0].starts_with("Deployment/todo-backend container `backend` runs `todo-backend:1.4.2`, not devenv's `todo-backend:devenv-aaa`"), "{r:?}");
    }

    #[test]
    fn an_image_no_container_runs_is_an_error() {
        let r = inspect(
            &deploy("other:1", "imagePullPolicy: IfNotPresent"),
            &images(),
            &["todo-secrets".into()],
        )
        .unwrap_or_default();
        assert_eq!(
            r.errors,
            [
                "no container in the rendered chart runs `todo-backend`: check the values keys in its [[deploy.helm.images]] entry"
            ]
        );
    }

    #[test]
    fn pull_policy_always_warns() {
        let r = inspect(
            &deploy("todo-backend:devenv-aaa", "imagePullPolicy: Always"),
            &images(),
            &["todo-secrets".into()],
        )
        .unwrap_or_default();
        assert_eq!(r.warnings.len(), 1);
        assert!(r.warnings[0].contains("imagePullPolicy: Always"), "{r:?}");
    }

    #[test]
    fn the_charts_own_namespace_and_expected_secrets_are_noticed() {
        let text = format!(
            "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: todo\n---\n{}",
            deploy("todo-backend:devenv-aaa", "imagePullPolicy: IfNotPresent")
        );
        let r = inspect(&text, &images(), &[]).unwrap_or_default();
        assert_eq!(r.own_namespaces, ["todo"]);
        assert_eq!(r.warnings.len(), 1);
        assert!(
            r.warnings[0]
                .starts_with("the chart uses Secret `todo-secrets`, which it does not create"),
            "{r:?}"
        );
        // A Secret the chart renders itself is not missing.
        let with_secret =
            format!("{text}---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: todo-secrets\n");
        assert!(
            inspect(&with_secret, &images(), &[])
                .unwrap_or_default()
                .warnings
                .is_empty()
        );
    }
}
