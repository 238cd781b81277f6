//! Plain Kubernetes manifests: reading their YAML documents, finding the images they run, and
//! rewriting those images to devenv's content tags before they are applied.

use std::collections::BTreeMap;

use serde_norway::{Mapping, Value};

pub use crate::objects::{CONTAINER_LISTS, collect_containers, repository_of};

/// The label every object devenv applies carries, and the one naming its project (for pruning
/// objects that disappeared from the manifests).
pub const PROJECT_LABEL: &str = "devenv.dev/project";

/// `hello`, `docker.io/hello` and `docker.io/library/hello` name the same repository.
fn normalized(repo: &str) -> &str {
    crate::objects::ImageRef::parse(repo).short_repository()
}

/// One image replaced in one container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replacement {
    /// `Kind/name` of the object.
    pub object: String,
    pub container: String,
    pub from: String,
    pub to: String,
}

/// Manifests with devenv's images and labels in place.
#[derive(Debug, Clone)]
pub struct Rewritten {
    pub docs: Vec<Value>,
    pub replacements: Vec<Replacement>,
    pub warnings: Vec<String>,
}

fn rewrite_containers(
    v: &mut Value,
    object: &str,
    images: &BTreeMap<String, String>,
    out: &mut Vec<Replacement>,
    warnings: &mut Vec<String>,
) {
    match v {
        Value::Mapping(m) => {
            for (k, child) in m.iter_mut() {
                let is_list = k.as_str().is_some_and(|k| CONTAINER_LISTS.contains(&k));
                if let (true, Value::Sequence(items)) = (is_list, &mut *child) {
                    for item in items.iter_mut() {
                        let Some(image) =
                            item.get("image").and_then(Value::as_str).map(str::to_owned)
                        else {
                            continue;
                        };
                        let repo = normalized(repository_of(&image));
                        let Some(to) = images
                            .iter()
                            .find(|(name, _)| normalized(name) == repo)
                            .map(|(_, r)| r.clone())
                        else {
                            continue;
                        };
                        let container = item
                            .get("name")
                            .and_then(Value::as_str)
                            .unwrap_or("?")
                            .to_owned();
                        if item.get("imagePullPolicy").and_then(Value::as_str) == Some("Always") {
                            warnings.push(format!(
                                "{object}: container `{container}` has imagePullPolicy: Always, so Kubernetes would try to pull {to}, which exists only in the cluster's image store; remove the line or use IfNotPresent"
                            ));
                        }
                        if let Some(m) = item.as_mapping_mut() {
                            m.insert(Value::from("image"), Value::from(to.clone()));
                        }
                        out.push(Replacement {
                            object: object.to_owned(),
                            container,
                            from: image,
                            to,
                        });
                    }
                }
                rewrite_containers(child, object, images, out, warnings);
            }
        }
        Value::Sequence(items) => {
            for i in items {
                rewrite_containers(i, object, images, out, warnings);
            }
        }
        _ => {}
    }
}

/// Rewrites every container and init-container image whose repository is one of `images`
/// (repository -> `name:tag` reference) and labels each object as devenv's, for `project`.
/// An untagged image means `:latest` (pulled Always by default); after the rewrite it has a
/// content tag, so the default pull policy no longer pulls.
pub fn rewrite(
    text: &str,
    images: &BTreeMap<String, String>,
    project: &str,
) -> Result<Rewritten, String> {
    let parsed = crate::objects::documents(text).map_err(|e| e.to_string())?;
    Ok(rewrite_documents(parsed, images, project))
}

/// [`rewrite`] on documents already parsed.
pub fn rewrite_documents(
    parsed: Vec<crate::objects::Document>,
    images: &BTreeMap<String, String>,
    project: &str,
) -> Rewritten {
    let mut docs = Vec::new();
    let mut replacements = Vec::new();
    let mut warnings = Vec::new();
    for doc in parsed {
        warnings.extend(doc.warnings);
        let mut v = doc.value;
        let kind = v
            .get("kind")
            .and_then(Value::as_str)
            .unwrap_or("?")
            .to_owned();
        let name = v
            .get("metadata")
            .and_then(|m| m.get("name"))
            .and_then(Value::as_str)
            .unwrap_or("?")
            .to_owned();
        let object = format!("{kind}/{name}");
        rewrite_containers(&mut v, &object, images, &mut replacements, &mut warnings);
        if let Some(meta) = v.get_mut("metadata").and_then(Value::as_mapping_mut) {
            let labels = meta
                .entry(Value::from("labels"))
                .or_insert_with(|| Value::Mapping(Mapping::new()));
            if let Some(l) = labels.as_mapping_mut() {
                l.insert(
                    Value::from("app.kubernetes.io/managed-by"),
                    Value::from("devenv"),
                );
                l.insert(Value::from(PROJECT_LABEL), Value::from(project));
            }
        }
        docs.push(v);
    }
    Rewritten {
        docs,
        replacements,
        warnings,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::objects::{collect_images, image_references};

    fn rewritten(text: &str) -> Rewritten {
        let images = BTreeMap::from([
            ("hello".to_owned(), "hello:devenv-0123456789ab".to_owned()),
            ("api".to_owned(), "api:devenv-ba9876543210".to_owned()),
        ]);
        rewrite(text, &images, "demo").unwrap_or_else(|e| panic!("{e}"))
    }

    fn pod_spec(containers: &str) -> String {
        format!("spec:\n      containers:\n{containers}")
    }

    #[test]
    fn every_workload_kind_and_init_containers_are_rewritten() {
        let c = "      - name: app\n        image: hello\n";
        let text = format!(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: d\nspec:\n  template:\n    {spec}\n---\napiVersion: apps/v1\nkind: StatefulSet\nmetadata:\n  name: s\nspec:\n  template:\n    {spec}\n---\napiVersion: apps/v1\nkind: DaemonSet\nmetadata:\n  name: ds\nspec:\n  template:\n    {spec}\n---\napiVersion: batch/v1\nkind: Job\nmetadata:\n  name: j\nspec:\n  template:\n    {spec}\n---\napiVersion: batch/v1\nkind: CronJob\nmetadata:\n  name: cj\nspec:\n  schedule: \"* * * * *\"\n  jobTemplate:\n    spec:\n      template:\n        spec:\n          initContainers:\n          - name: migrate\n            image: api:1.0\n          containers:\n          - name: app\n            image: docker.io/library/hello:latest\n",
            spec = pod_spec(c)
        );
        let r = rewritten(&text);
        let objects: Vec<(&str, &str, &str)> = r
            .replacements
            .iter()
            .map(|x| (x.object.as_str(), x.from.as_str(), x.to.as_str()))
            .collect();
        assert_eq!(
            objects,
            [
                ("Deployment/d", "hello", "hello:devenv-0123456789ab"),
                ("StatefulSet/s", "hello", "hello:devenv-0123456789ab"),
                ("DaemonSet/ds", "hello", "hello:devenv-0123456789ab"),
                ("Job/j", "hello", "hello:devenv-0123456789ab"),
                ("CronJob/cj", "api:1.0", "api:devenv-ba9876543210"),
                (
                    "CronJob/cj",
                    "docker.io/library/hello:latest",
                    "hello:devenv-0123456789ab"
                ),
            ]
        );
        // The documents themselves carry the new images and devenv's labels.
        let images = r.docs.iter().flat_map(|d| {
            let mut out = Vec::new();
            collect_images(d, &mut out);
            out
        });
        assert!(
            images.clone().all(|i| i.contains(":devenv-")),
            "{:?}",
            images.collect::<Vec<_>>()
        );
        for d in &r.docs {
            assert_eq!(
                d["metadata"]["labels"]["app.kubernetes.io/managed-by"],
                Value::from("devenv")
            );
            assert_eq!(d["metadata"]["labels"][PROJECT_LABEL], Value::from("demo"));
        }
    }

    #[test]
    fn images_that_merely_share_a_prefix_are_left_alone() {
        let c = "      - name: a\n        image: hello-world\n      - name: b\n        image: myorg/hello:1\n      - name: c\n        image: hello/sidecar\n      - name: d\n        image: registry.example.com/hello\n      - name: e\n        image: apiserver:2\n";
        let text = format!(
            "kind: Pod\nmetadata:\n  name: p\n{}",
            pod_spec(c)
                .replace("      ", "  ")
                .replacen("spec:\n  ", "spec:\n", 1)
        );
        assert_eq!(
            image_references(&text).map(|v| v.len()),
            Ok(5),
            "the pod holds all five images: {text}"
        );
        let r = rewritten(&text);
        assert!(r.replacements.is_empty(), "{:?}", r.replacements);
    }

    #[test]
    fn a_digest_pinned_or_tagged_reference_to_our_image_is_replaced() {
        let text = "kind: Pod\nmetadata:\n  name: p\nspec:\n  containers:\n  - name: a\n    image: hello@sha256:abcd\n  - name: b\n    image: hello:2.0\n";
        let r = rewritten(text);
        assert_eq!(r.replacements.len(), 2);
    }

    #[test]
    fn pull_policy_always_on_a_local_image_warns() {
        let text = "kind: Pod\nmetadata:\n  name: p\nspec:\n  containers:\n  - name: a\n    image: hello\n    imagePullPolicy: Always\n";
        let r = rewritten(text);
        assert_eq!(r.warnings.len(), 1);
        assert!(
            r.warnings[0].starts_with("Pod/p: container `a` has imagePullPolicy: Always"),
            "{:?}",
            r.warnings
        );
    }

    #[test]
    fn empty_documents_are_skipped_and_bad_yaml_is_an_error() {
        assert_eq!(
            rewritten("---\n---\nkind: ConfigMap\nmetadata:\n  name: c\n")
                .docs
                .len(),
            1
        );
        assert!(rewrite("a: [", &BTreeMap::new(), "p").is_err());
    }

    #[test]
    fn repository_strips_tag_and_digest_but_not_registry_port() {
        assert_eq!(repository_of("app"), "app");
        assert_eq!(repository_of("app:1.0"), "app");
        assert_eq!(
            repository_of("localhost:5000/app:1.2"),
            "localhost:5000/app"
        );
        assert_eq!(repository_of("localhost:5000/app"), "localhost:5000/app");
        assert_eq!(repository_of("ghcr.io/a/b@sha256:abcd"), "ghcr.io/a/b");
    }

    #[test]
    fn images_in_containers_and_init_containers_of_all_documents() {
        let text = "apiVersion: apps/v1\nkind: Deployment\nspec:\n  template:\n    spec:\n      initContainers:\n      - name: wait\n        image: busybox:1.36\n      containers:\n      - name: app\n        image: hello\n---\napiVersion: batch/v1\nkind: CronJob\nspec:\n  jobTemplate:\n    spec:\n      template:\n        spec:\n          containers:\n          - name: c\n            image: cron-img:2\n";
        assert_eq!(
            image_references(text),
            Ok(vec![
                "busybox:1.36".into(),
                "hello".into(),
                "cron-img:2".into()
            ])
        );
        assert!(image_references("a: [").is_err());
    }
}
