//! Helm releases: the exact `helm upgrade --install` command devenv runs, with the project's
//! images injected through `--set`. No `--wait`: devenv watches readiness itself, per resource.

use std::collections::BTreeMap;

use crate::config::{Config, Helm, HelmImageKeys};

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
