//! Plain Kubernetes manifests: reading their YAML documents and finding the images they run.

use serde::Deserialize;
use serde_norway::Value;

/// Keys under which a pod spec lists containers.
const CONTAINER_LISTS: [&str; 3] = ["containers", "initContainers", "ephemeralContainers"];

/// Every container and init-container image referenced in a (multi-document) YAML text.
pub fn image_references(text: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    for doc in serde_norway::Deserializer::from_str(text) {
        let value = Value::deserialize(doc).map_err(|e| e.to_string())?;
        collect_images(&value, &mut out);
    }
    Ok(out)
}

fn collect_images(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Mapping(m) => {
            for (k, child) in m {
                let is_list = k.as_str().is_some_and(|k| CONTAINER_LISTS.contains(&k));
                if let (true, Value::Sequence(items)) = (is_list, child) {
                    for item in items {
                        if let Some(img) = item.get("image").and_then(Value::as_str) {
                            out.push(img.to_owned());
                        }
                    }
                }
                collect_images(child, out);
            }
        }
        Value::Sequence(items) => items.iter().for_each(|i| collect_images(i, out)),
        Value::Tagged(t) => collect_images(&t.value, out),
        _ => {}
    }
}

/// The repository part of an image reference: no tag, no digest.
/// `localhost:5000/app:1.2` -> `localhost:5000/app`.
pub fn repository_of(reference: &str) -> &str {
    let no_digest = reference.split('@').next().unwrap_or(reference);
    let last_slash = no_digest.rfind('/').map_or(0, |i| i + 1);
    match no_digest[last_slash..].rfind(':') {
        Some(i) => &no_digest[..last_slash + i],
        None => no_digest,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
