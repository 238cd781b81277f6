//! Kubernetes objects as YAML text, read as kubectl and Helm read them: the documents of a
//! file, the containers and images of a pod template, and the parts of an image reference.
//! Pure functions, below every other module but `pattern`; `config` checks manifests with
//! them and `deploy` rewrites them.

use serde::Deserialize;
use serde_norway::Value;

/// Keys under which a pod spec lists containers.
pub const CONTAINER_LISTS: [&str; 3] = ["containers", "initContainers", "ephemeralContainers"];

/// Every container and init-container image referenced in a (multi-document) YAML text.
pub fn image_references(text: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    for doc in serde_norway::Deserializer::from_str(text) {
        let value = Value::deserialize(doc).map_err(|e| e.to_string())?;
        collect_images(&value, &mut out);
    }
    Ok(out)
}

pub fn collect_images(v: &Value, out: &mut Vec<String>) {
    let mut containers = Vec::new();
    collect_containers(v, &mut containers);
    out.extend(containers.into_iter().map(|(_, image, _)| image));
}

/// `(container name, image, imagePullPolicy)` of every container and init container in `v`.
pub fn collect_containers(v: &Value, out: &mut Vec<(String, String, Option<String>)>) {
    match v {
        Value::Mapping(m) => {
            for (k, child) in m {
                let is_list = k.as_str().is_some_and(|k| CONTAINER_LISTS.contains(&k));
                if let (true, Value::Sequence(items)) = (is_list, child) {
                    for item in items {
                        if let Some(img) = item.get("image").and_then(Value::as_str) {
                            let field =
                                |k: &str| item.get(k).and_then(Value::as_str).map(str::to_owned);
                            out.push((
                                field("name").unwrap_or_default(),
                                img.to_owned(),
                                field("imagePullPolicy"),
                            ));
                        }
                    }
                }
                collect_containers(child, out);
            }
        }
        Value::Sequence(items) => items.iter().for_each(|i| collect_containers(i, out)),
        Value::Tagged(t) => collect_containers(&t.value, out),
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
