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
    let read = |f: &str| crate::tree::read_capped(&chart_dir.join(f), crate::tree::MAX_FILE);
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

/// Where the values taken from .env files (`values_from_env`) are written for helm: the
/// project's state directory, so they are never on a command line nor in the project.
pub fn env_values_path(cfg: &Config, helm: &Helm) -> Option<std::path::PathBuf> {
    crate::host::project_state_dir(&cfg.file)
        .map(|d| d.join(format!("helm-values-from-env.{}.yaml", helm.release)))
}

/// The values file of `values_from_env`, removed when dropped.
pub struct EnvValues(std::path::PathBuf);

impl Drop for EnvValues {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// A values key in `--set` syntax (`a.b`, `a\.b` for a dot inside a key) as its path.
fn key_path(key: &str) -> Vec<String> {
    let mut out = vec![String::new()];
    let mut chars = key.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(n) = chars.next()
                    && let Some(last) = out.last_mut()
                {
                    last.push(n);
                }
            }
            '.' => out.push(String::new()),
            c => {
                if let Some(last) = out.last_mut() {
                    last.push(c);
                }
            }
        }
    }
    out
}

/// The values of `values_from_env` as a values file's YAML: each key nested by its dots.
pub fn env_values_yaml(values: &BTreeMap<String, String>) -> String {
    use serde_norway::{Mapping, Value};
    let mut root = Mapping::new();
    for (key, v) in values {
        let path = key_path(key);
        let mut at = &mut root;
        for (i, part) in path.iter().enumerate() {
            let k = Value::from(part.as_str());
            if i + 1 == path.len() {
                at.insert(k, Value::from(v.as_str()));
                break;
            }
            let child = at
                .entry(k)
                .or_insert_with(|| Value::Mapping(Mapping::new()));
            if !child.is_mapping() {
                *child = Value::Mapping(Mapping::new());
            }
            let Value::Mapping(m) = child else { break };
            at = m;
        }
    }
    serde_norway::to_string(&Value::Mapping(root)).unwrap_or_default()
}

/// Writes the values of `values_from_env` (read from `helm.env_files`) into a file only the
/// user can read, for one helm command; `None` when the chart takes none. The error names
/// the .env key that is missing, never a value.
pub fn write_env_values(cfg: &Config, helm: &Helm) -> Result<Option<EnvValues>, String> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    if helm.values_from_env.is_empty() {
        return Ok(None);
    }
    let mut env = BTreeMap::new();
    for f in &helm.env_files {
        let bytes =
            super::dotenv::read_file(f).map_err(|e| format!("cannot read {}: {e}", cfg.rel(f)))?;
        let parsed = super::dotenv::parse_bytes(&bytes)
            .map_err(|p| format!("{}:{}: {}", cfg.rel(f), p.line, p.message))?;
        env.extend(parsed.values.0);
    }
    let mut values = BTreeMap::new();
    for (key, name) in &helm.values_from_env {
        let Some(v) = env.get(name) else {
            return Err(format!(
                "values_from_env: `{key}` takes `{name}`, which {} does not have",
                helm.env_files
                    .iter()
                    .map(|f| cfg.rel(f))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        };
        values.insert(key.clone(), v.clone());
    }
    let Some(path) = env_values_path(cfg, helm) else {
        return Err(
            "no state directory for the values from .env: set DEVENV_STATE_DIR or HOME".into(),
        );
    };
    if let Some(dir) = path.parent() {
        crate::host::private_dir(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    let _ = std::fs::remove_file(&path);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    f.write_all(env_values_yaml(&values).as_bytes())
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    Ok(Some(EnvValues(path)))
}

/// Flags shared by `helm upgrade` and `helm template`: namespace, values files and `--set`s.
/// The user's `set` entries come first so devenv's image values win over them.
pub fn value_args(
    cfg: &Config,
    helm: &Helm,
    images: &BTreeMap<String, (String, String)>,
) -> Vec<String> {
    let mut argv = vec!["--namespace".to_owned(), helm.namespace.clone()];
    for v in &helm.values {
        argv.extend(["-f".to_owned(), cfg.rel(v)]);
    }
    if !helm.values_from_env.is_empty()
        && let Some(p) = env_values_path(cfg, helm)
    {
        argv.extend(["-f".to_owned(), p.display().to_string()]);
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
    fn values_from_env_nest_by_their_dots() {
        let v = BTreeMap::from([
            ("secret.jwtSecret".to_owned(), "s3cr3t".to_owned()),
            ("secret.db\\.url".to_owned(), "postgres://x".to_owned()),
            ("top".to_owned(), "1".to_owned()),
        ]);
        let y: serde_norway::Value =
            serde_norway::from_str(&env_values_yaml(&v)).unwrap_or_default();
        assert_eq!(y["secret"]["jwtSecret"], "s3cr3t");
        assert_eq!(y["secret"]["db.url"], "postgres://x");
        assert_eq!(y["top"], "1");
    }

    #[test]
    fn commas_and_backslashes_are_escaped_for_set() {
        assert_eq!(set_value("a,b"), "a\\,b");
        assert_eq!(set_value("c:\\x"), "c:\\\\x");
        assert_eq!(set_value("plain"), "plain");
    }
}
