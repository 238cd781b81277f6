//! What `init` reads from a Helm chart: its development values file, what it renders, and
//! which values keys carry each container's image. The keys are found by rendering, not by
//! their names: every string of the values gets a sentinel of its own, the chart is rendered
//! once, and each container's image says which sentinels reached it.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_norway::{Mapping, Value};

use crate::exec::{self, Cmd};

/// Values files meant for a local cluster, most specific first.
const DEV_VALUES: &[&str] = &[
    "values-minikube",
    "values.minikube",
    "minikube-values",
    "values-local",
    "values.local",
    "local-values",
    "values-dev",
    "values.dev",
    "dev-values",
    "values-development",
    "values.development",
];

const RENDER_TIMEOUT: Duration = Duration::from_secs(60);

/// The development values file beside the chart (in its directory or the one above), if
/// any, with what was looked for.
pub fn dev_values(chart: &Path, root: &Path) -> Option<PathBuf> {
    let mut dirs = vec![chart.to_path_buf()];
    if let Some(parent) = chart.parent().filter(|p| p.starts_with(root)) {
        dirs.push(parent.to_path_buf());
    }
    for name in DEV_VALUES {
        for dir in &dirs {
            for ext in ["yaml", "yml"] {
                let p = dir.join(format!("{name}.{ext}"));
                if p.is_file() {
                    return Some(p);
                }
            }
        }
    }
    None
}

/// The chart's name, from its Chart.yaml.
pub fn name(chart: &Path) -> Option<String> {
    let text = crate::tree::read_text(&chart.join("Chart.yaml"))?;
    let v: Value = serde_norway::from_str(&text).ok()?;
    v.get("name").and_then(Value::as_str).map(str::to_owned)
}

/// A path into the values: map keys and list indexes.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Seg {
    Key(String),
    Index(usize),
}

/// The path as `--set` takes it (`backend.image.tag`, `images[0].name`, `a\.b`).
pub fn set_key(path: &[Seg]) -> String {
    let mut out = String::new();
    for s in path {
        match s {
            Seg::Key(k) => {
                if !out.is_empty() {
                    out.push('.');
                }
                for c in k.chars() {
                    if matches!(c, '.' | ',' | '=' | '[' | '\\') {
                        out.push('\\');
                    }
                    out.push(c);
                }
            }
            Seg::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    out
}

/// `over` laid onto `base` as Helm merges values files: maps key by key, anything else
/// replaced.
fn merge(base: &mut Value, over: Value) {
    match (base, over) {
        (Value::Mapping(b), Value::Mapping(o)) => {
            for (k, v) in o {
                match b.get_mut(&k) {
                    Some(slot) => merge(slot, v),
                    None => {
                        b.insert(k, v);
                    }
                }
            }
        }
        (slot, v) => *slot = v,
    }
}

/// The values the chart renders with: its values.yaml, then each of `files`.
pub fn values(chart: &Path, files: &[PathBuf]) -> Value {
    let mut v = Value::Mapping(Mapping::new());
    for f in std::iter::once(chart.join("values.yaml")).chain(files.iter().cloned()) {
        if let Some(text) = crate::tree::read_text(&f)
            && let Ok(more) = serde_norway::from_str::<Value>(&text)
            && !more.is_null()
        {
            merge(&mut v, more);
        }
    }
    v
}

/// One string of the values, replaced by a sentinel.
#[derive(Debug, Clone)]
pub struct Leaf {
    pub path: Vec<Seg>,
    pub value: String,
}

fn sentinel(n: usize) -> String {
    format!("devenvinit{n}z")
}

/// Puts a sentinel in place of each string `keep` accepts; the leaves, by sentinel number.
fn plant(
    v: &mut Value,
    path: &mut Vec<Seg>,
    keep: &dyn Fn(&[Seg], &str) -> bool,
    out: &mut Vec<Leaf>,
) {
    match v {
        Value::Mapping(m) => {
            for (k, child) in m.iter_mut() {
                let key = match k {
                    Value::String(s) => s.clone(),
                    Value::Number(n) => n.to_string(),
                    Value::Bool(b) => b.to_string(),
                    _ => continue,
                };
                path.push(Seg::Key(key));
                plant(child, path, keep, out);
                path.pop();
            }
        }
        Value::Sequence(items) => {
            for (i, child) in items.iter_mut().enumerate() {
                path.push(Seg::Index(i));
                plant(child, path, keep, out);
                path.pop();
            }
        }
        Value::String(s) if keep(path, s) => {
            out.push(Leaf {
                path: path.clone(),
                value: s.clone(),
            });
            *s = sentinel(out.len() - 1);
        }
        Value::Tagged(t) => plant(&mut t.value, path, keep, out),
        _ => {}
    }
}

/// Whether a leaf may carry (part of) an image reference.
fn image_like(path: &[Seg], value: &str) -> bool {
    let named = path.iter().any(|s| match s {
        Seg::Key(k) => {
            let k = k.to_ascii_lowercase();
            ["image", "repo", "tag", "registry", "version", "name"]
                .iter()
                .any(|w| k.contains(w))
        }
        Seg::Index(_) => false,
    });
    named
        || value.is_empty()
        || value.len() < 200
            && value
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "./:-_@".contains(c))
}

/// `helm template` of the chart; the rendered text, or what helm said.
pub fn render(
    root: &Path,
    release: &str,
    chart: &Path,
    namespace: &str,
    files: &[PathBuf],
) -> Result<String, String> {
    let mut args: Vec<String> = vec![
        "template".into(),
        release.into(),
        chart.display().to_string(),
        "--namespace".into(),
        namespace.into(),
    ];
    for f in files {
        args.push("-f".into());
        args.push(f.display().to_string());
    }
    let cmd = Cmd {
        dir: Some(root.to_path_buf()),
        ..Cmd::new("helm").args(args).timeout(RENDER_TIMEOUT)
    };
    // exec's errors name the command.
    let f = exec::run(&cmd).map_err(|e| e.to_string())?;
    if f.stdout_cut > 0 {
        return Err(format!(
            "`{}` printed more than {} MiB",
            cmd.display(),
            exec::MAX_CAPTURE >> 20
        ));
    }
    if f.code == Some(0) {
        Ok(f.stdout)
    } else {
        let err = exec::last_lines(&f.stderr, 3);
        let err: Vec<&str> = err.lines().map(str::trim).collect();
        Err(format!("`{}` failed: {}", cmd.display(), err.join(" / ")))
    }
}

/// Which values keys give an image.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Keys {
    RepositoryAndTag { repository: String, tag: String },
    Reference(String),
}

/// A container whose image comes from the values.
#[derive(Debug, Clone)]
pub struct KeyUse {
    pub keys: Keys,
    /// `Kind/name` of the object, its kind and name apart.
    pub kind: String,
    pub object: String,
    pub container: String,
    /// The repository the values give it now (`todo-backend`).
    pub repository: String,
    /// The ports it listens on: its `containerPort`s and its probes' numbered ports.
    pub ports: Vec<u16>,
}

/// A value of the chart's that goes into a Secret the chart makes (what a project's deploy
/// script passes with `--set secret.x=$X` from its .env).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretValue {
    /// The Secret's name, as the chart renders it with its own values.
    pub secret: String,
    /// The Secret's key the value goes into.
    pub key: String,
    /// The values key (`secret.databaseUrl`).
    pub values_key: String,
    /// The last name of the values key's path (`databaseUrl`).
    pub name: String,
}

/// What rendering with markers found: the images' keys, the images devenv cannot set, the
/// values that go into Secrets.
#[derive(Debug, Clone, Default)]
pub struct Marked {
    pub uses: Vec<KeyUse>,
    pub unsettable: Vec<Unsettable>,
    pub secret_values: Vec<SecretValue>,
}

/// The values that reached the Secrets among `docs` (their `data`, decoded, and their
/// `stringData`), in the order the Secrets and their keys come.
fn secret_values(
    docs: &[Value],
    plain: &[Value],
    leaves: &[Leaf],
    re: &regex::Regex,
) -> Vec<SecretValue> {
    let mut out = Vec::new();
    for (i, d) in docs.iter().enumerate() {
        if d.get("kind").and_then(Value::as_str) != Some("Secret") {
            continue;
        }
        let Ok(json) = serde_json::to_value(d) else {
            continue;
        };
        // Decodes `data` (base64) as the API server would; a value that does not decode is
        // no value of the chart's.
        let Ok(secret) = serde_json::from_value::<k8s_openapi::api::core::v1::Secret>(json) else {
            continue;
        };
        let name = secret.metadata.name.clone().unwrap_or_default();
        let name = real_name(&name, "Secret", plain.get(i), leaves, re);
        let data = secret
            .data
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (k, String::from_utf8_lossy(&v.0).into_owned()));
        let strings = secret.string_data.unwrap_or_default().into_iter();
        for (key, text) in data.chain(strings) {
            for c in re.captures_iter(&text) {
                let Some(leaf) = c[1].parse::<usize>().ok().and_then(|n| leaves.get(n)) else {
                    continue;
                };
                let Some(Seg::Key(last)) = leaf.path.last() else {
                    continue;
                };
                out.push(SecretValue {
                    secret: name.clone(),
                    key: key.clone(),
                    values_key: set_key(&leaf.path),
                    name: last.clone(),
                });
            }
        }
    }
    out
}

/// An image that takes values but that devenv cannot set whole.
#[derive(Debug, Clone)]
pub struct Unsettable {
    pub object: String,
    pub container: String,
    pub why: String,
}

/// Reads which sentinels an image reference holds, and how.
fn parse_image(image: &str, leaves: &[Leaf], re: &regex::Regex) -> Result<Option<Keys>, String> {
    let hits: Vec<(usize, usize, usize)> = re
        .captures_iter(image)
        .filter_map(|c| {
            let m = c.get(0)?;
            Some((m.start(), m.end(), c[1].parse::<usize>().ok()?))
        })
        .filter(|(_, _, n)| *n < leaves.len())
        .collect();
    if hits.is_empty() {
        return Ok(None);
    }
    // A sentinel in place of an empty value is an optional prefix (a registry) that the
    // real values leave out: it is dropped with what joins it to the rest.
    let mut rest = image.to_owned();
    for (start, end, n) in hits.iter().rev() {
        if leaves[*n].value.is_empty() && *start == 0 {
            let mut cut = *end;
            if rest[cut..].starts_with('/') {
                cut += 1;
            }
            rest.replace_range(*start..cut, "");
        }
    }
    let only = |s: &str| -> Option<usize> {
        let c = re.captures(s)?;
        (c.get(0)?.as_str() == s)
            .then(|| c[1].parse().ok())
            .flatten()
    };
    let fixed = || "its image is put together from several values and fixed text".to_owned();
    let reference = crate::objects::ImageRef::parse(&rest);
    // A digest would take the place of the tag devenv sets: only an empty one may stay.
    if let Some(digest) = reference.digest {
        match only(digest) {
            Some(n) if leaves[n].value.is_empty() => {}
            Some(n) => {
                return Err(format!(
                    "its image is pinned by the digest in `{}`, which the kubelet pulls in place of the tag devenv sets; empty that value",
                    set_key(&leaves[n].path)
                ));
            }
            None => {
                return Err(format!(
                    "its digest is fixed by the chart (`{digest}`), so the image devenv builds would never run"
                ));
            }
        }
    }
    match reference.tag {
        Some(tag) => match (only(reference.repository), only(tag)) {
            (Some(r), Some(t)) => Ok(Some(Keys::RepositoryAndTag {
                repository: set_key(&leaves[r].path),
                tag: set_key(&leaves[t].path),
            })),
            (Some(r), None) => Err(format!(
                "its tag is fixed by the chart (`{tag}`), not taken from the values; only `{}` is",
                set_key(&leaves[r].path)
            )),
            _ => Err(fixed()),
        },
        None => match only(reference.repository) {
            Some(n) => Ok(Some(Keys::Reference(set_key(&leaves[n].path)))),
            None => Err(fixed()),
        },
    }
}

/// A container of a rendered object.
#[derive(Debug, Clone)]
pub struct Rendered {
    /// The object's place among the rendered documents.
    pub doc: usize,
    pub kind: String,
    pub name: String,
    pub container: String,
    pub image: String,
    /// The ports it listens on (`workloads::listens_on`).
    pub ports: Vec<u16>,
}

/// The objects' containers that name an image.
pub fn containers(docs: &[Value]) -> Vec<Rendered> {
    let mut out = Vec::new();
    for (doc, d) in docs.iter().enumerate() {
        let kind = d.get("kind").and_then(Value::as_str).unwrap_or("?");
        let name = d
            .get("metadata")
            .and_then(|m| m.get("name"))
            .and_then(Value::as_str)
            .unwrap_or("?");
        for c in crate::objects::container_specs(d) {
            if let Some(image) = c.get("image").and_then(Value::as_str) {
                let cname = c.get("name").and_then(Value::as_str).unwrap_or_default();
                out.push(Rendered {
                    doc,
                    kind: kind.to_owned(),
                    name: name.to_owned(),
                    container: cname.to_owned(),
                    image: image.to_owned(),
                    ports: super::workloads::listens_on(c),
                });
            }
        }
    }
    out
}

/// Parses rendered text into its objects.
pub fn objects(text: &str) -> Result<Vec<Value>, String> {
    crate::objects::documents(text)
        .map(|docs| docs.into_iter().map(|d| d.value).collect())
        .map_err(|e| format!("the chart renders YAML that does not parse: {e}"))
}

/// Finds the values keys of each container's image by rendering the chart with sentinels.
/// Tries every string of the values first; when the chart cannot render with them (a schema,
/// a version compared), only the strings that may be images. `plain` is the chart rendered
/// with its own values: the objects' real names where a marker reached a name
/// (`fullnameOverride: ""` makes the name when it is set).
pub fn image_keys(
    root: &Path,
    release: &str,
    chart: &Path,
    namespace: &str,
    files: &[PathBuf],
    scratch: &Path,
    plain: &[Value],
) -> Result<Marked, String> {
    // `chart` and `files` are relative to `root` (helm runs there), not to this process's
    // working directory.
    let in_root: Vec<PathBuf> = files.iter().map(|f| root.join(f)).collect();
    let merged = values(&root.join(chart), &in_root);
    let re = regex::Regex::new(r"devenvinit([0-9]+)z").map_err(|e| e.to_string())?;
    let all: &dyn Fn(&[Seg], &str) -> bool = &|_, _| true;
    let narrow: &dyn Fn(&[Seg], &str) -> bool = &image_like;
    let mut last_error = String::new();
    for keep in [all, narrow] {
        let mut planted = merged.clone();
        let mut leaves = Vec::new();
        plant(&mut planted, &mut Vec::new(), keep, &mut leaves);
        let file = scratch.join("sentinel-values.yaml");
        let text = serde_norway::to_string(&planted).map_err(|e| e.to_string())?;
        std::fs::write(&file, text).map_err(|e| format!("cannot write {}: {e}", file.display()))?;
        let mut with = files.to_vec();
        with.push(file);
        let rendered = match render(root, release, chart, namespace, &with) {
            Ok(r) => r,
            Err(e) => {
                last_error = e;
                continue;
            }
        };
        let docs = objects(&rendered)?;
        let mut uses = Vec::new();
        let mut unsettable = Vec::new();
        for c in containers(&docs) {
            let Rendered {
                doc,
                kind,
                name,
                container,
                image,
                ports,
            } = c;
            let name = real_name(&name, &kind, plain.get(doc), &leaves, &re);
            let object = format!("{kind}/{name}");
            match parse_image(&image, &leaves, &re) {
                Ok(Some(keys)) => {
                    let repository = match &keys {
                        Keys::RepositoryAndTag { repository, .. } => leaves
                            .iter()
                            .find(|l| &set_key(&l.path) == repository)
                            .map(|l| l.value.clone())
                            .unwrap_or_default(),
                        Keys::Reference(k) => leaves
                            .iter()
                            .find(|l| &set_key(&l.path) == k)
                            .map(|l| crate::objects::repository_of(&l.value).to_owned())
                            .unwrap_or_default(),
                    };
                    uses.push(KeyUse {
                        keys,
                        kind,
                        object,
                        container,
                        repository,
                        ports,
                    });
                }
                Ok(None) => {}
                Err(why) => unsettable.push(Unsettable {
                    object,
                    container,
                    why,
                }),
            }
        }
        let secret_values = secret_values(&docs, plain, &leaves, &re);
        return Ok(Marked {
            uses,
            unsettable,
            secret_values,
        });
    }
    Err(last_error)
}

/// An object's name as the chart renders it with its own values: `name` when no marker
/// reached it; else the name of the object at the same place of the plain render (`plain`,
/// of the same kind); else the markers put back to their values.
fn real_name(
    name: &str,
    kind: &str,
    plain: Option<&Value>,
    leaves: &[Leaf],
    re: &regex::Regex,
) -> String {
    if !re.is_match(name) {
        return name.to_owned();
    }
    if let Some(p) = plain
        && p.get("kind").and_then(Value::as_str) == Some(kind)
        && let Some(n) = p
            .get("metadata")
            .and_then(|m| m.get("name"))
            .and_then(Value::as_str)
    {
        return n.to_owned();
    }
    re.replace_all(name, |c: &regex::Captures<'_>| {
        c[1].parse::<usize>()
            .ok()
            .and_then(|n| leaves.get(n))
            .map_or_else(String::new, |l| l.value.clone())
    })
    .into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaves(values: &[(&str, &str)]) -> Vec<Leaf> {
        values
            .iter()
            .map(|(k, v)| Leaf {
                path: k.split('.').map(|s| Seg::Key(s.to_owned())).collect(),
                value: (*v).to_owned(),
            })
            .collect()
    }

    #[test]
    fn an_image_names_its_keys_and_an_empty_registry_is_left_out() {
        let re = regex::Regex::new(r"devenvinit([0-9]+)z").unwrap_or_else(|e| panic!("{e}"));
        let l = leaves(&[
            ("api.image.repository", "acme/api"),
            ("api.image.tag", ""),
            ("global.registry", ""),
            ("waitImage", "busybox:1.36"),
            ("pinned", "x"),
        ]);
        assert_eq!(
            parse_image("devenvinit0z:devenvinit1z", &l, &re),
            Ok(Some(Keys::RepositoryAndTag {
                repository: "api.image.repository".into(),
                tag: "api.image.tag".into()
            }))
        );
        assert_eq!(
            parse_image("devenvinit2z/devenvinit0z:devenvinit1z", &l, &re),
            parse_image("devenvinit0z:devenvinit1z", &l, &re)
        );
        assert_eq!(
            parse_image("devenvinit3z", &l, &re),
            Ok(Some(Keys::Reference("waitImage".into())))
        );
        assert_eq!(parse_image("postgres:16", &l, &re), Ok(None));
        assert!(
            parse_image("devenvinit4z:1.0", &l, &re)
                .is_err_and(|e| e.contains("tag is fixed by the chart (`1.0`)"))
        );
    }

    /// A chart that may pin its image by digest (`repo:tag@digest`, the digest empty in the
    /// values) is set by its repository and tag; a digest the values fill in would take the
    /// place of the tag devenv sets, so that chart is refused, naming the key to empty.
    #[test]
    fn a_digest_part_is_read_as_a_digest_not_as_the_tag() {
        let re = regex::Regex::new(r"devenvinit([0-9]+)z").unwrap_or_else(|e| panic!("{e}"));
        let l = leaves(&[
            ("image.repository", "acme/api"),
            ("image.tag", "1.0"),
            ("image.digest", ""),
            ("pinned.digest", "sha256:0123"),
        ]);
        assert_eq!(
            parse_image("devenvinit0z:devenvinit1z@devenvinit2z", &l, &re),
            Ok(Some(Keys::RepositoryAndTag {
                repository: "image.repository".into(),
                tag: "image.tag".into()
            }))
        );
        assert!(
            parse_image("devenvinit0z:devenvinit1z@devenvinit3z", &l, &re)
                .is_err_and(|e| e.contains("`pinned.digest`") && e.contains("digest")),
        );
        assert!(
            parse_image("devenvinit0z:devenvinit1z@sha256:99", &l, &re)
                .is_err_and(|e| e.contains("digest is fixed by the chart")),
        );
    }

    #[test]
    fn set_keys_escape_dots_and_index_lists() {
        let p = vec![
            Seg::Key("images".into()),
            Seg::Index(1),
            Seg::Key("app.kubernetes.io/name".into()),
        ];
        assert_eq!(set_key(&p), "images[1].app\\.kubernetes\\.io/name");
    }

    #[test]
    fn values_files_merge_maps_and_replace_the_rest() {
        let mut base: Value = serde_norway::from_str("a: {b: 1, c: [1, 2]}\nd: x\n")
            .unwrap_or_else(|e| panic!("{e}"));
        let over: Value =
            serde_norway::from_str("a: {c: [3]}\nd: y\n").unwrap_or_else(|e| panic!("{e}"));
        merge(&mut base, over);
        assert_eq!(base["a"]["b"], 1);
        assert_eq!(base["a"]["c"].as_sequence().map(Vec::len), Some(1));
        assert_eq!(base["d"], "y");
    }
}
