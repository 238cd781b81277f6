//! Kubernetes objects as YAML text, read as kubectl and Helm read them: the documents of a
//! file (a key written twice: the last one counts, with a warning, as Helm and kubectl take
//! it), the template each of Helm's rendered documents came from, the containers and images
//! of a pod template, and the parts of an image reference. Pure functions, below every other
//! module but `pattern`; `config` checks manifests with them and `deploy` rewrites them.

use std::collections::HashMap;

use serde_norway::Value;
use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::Marker;

/// One YAML document of a file or of Helm's output.
#[derive(Debug, Clone, PartialEq)]
pub struct Document {
    pub value: Value,
    /// Where Helm says it came from (its `# Source: chart/templates/x.yaml` line), if it says.
    pub source: Option<String>,
    /// The document's first line in the whole text (1-based).
    pub line: usize,
    /// Keys written twice (the last one counts), as sentences.
    pub warnings: Vec<String>,
}

impl Document {
    /// `kind/name` of the object.
    pub fn object(&self) -> String {
        let kind = self
            .value
            .get("kind")
            .and_then(Value::as_str)
            .unwrap_or("?");
        let name = self
            .value
            .get("metadata")
            .and_then(|m| m.get("name"))
            .and_then(Value::as_str)
            .unwrap_or("?");
        format!("{kind}/{name}")
    }
}

/// A document that is not YAML: where, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}line {line}: {message}", template.as_ref().map_or(String::new(), |s| format!("{s} (as rendered), ")))]
pub struct YamlError {
    /// The template it was rendered from, when Helm said.
    pub template: Option<String>,
    /// The line in the whole text (1-based).
    pub line: usize,
    pub message: String,
}

/// The documents of a multi-document YAML text, empty ones left out. A mapping key written
/// twice takes its last value (Helm and kubectl accept such YAML that way) and the document
/// says so in its warnings.
pub fn documents(text: &str) -> Result<Vec<Document>, YamlError> {
    let mut out = Vec::new();
    for (start, part) in split_documents(text) {
        let source = part
            .lines()
            .find_map(|l| l.strip_prefix("# Source: ").map(|s| s.trim().to_owned()));
        // Lines are the file's, or for a rendered template, counted from the line after its
        // `# Source:` comment (1 is the template's first rendered line).
        let base = match part.lines().position(|l| l.starts_with("# Source: ")) {
            Some(i) => -(i64::try_from(i).unwrap_or(0) + 1),
            None => i64::try_from(start).unwrap_or(1) - 1,
        };
        let (value, warnings) = match serde_norway::from_str::<Value>(part) {
            Ok(v) => (v, Vec::new()),
            Err(first) => {
                let (kept, warnings) = last_key_wins(part, base);
                if warnings.is_empty() {
                    return Err(yaml_error(&first, source, base));
                }
                let v = serde_norway::from_str::<Value>(&kept)
                    .map_err(|e| yaml_error(&e, source.clone(), base))?;
                (v, warnings)
            }
        };
        if value.is_null() {
            continue;
        }
        out.push(Document {
            value,
            source,
            line: start,
            warnings,
        });
    }
    Ok(out)
}

/// A line of a document (1-based) as the user counts it: `base` added.
fn shift(line: usize, base: i64) -> usize {
    usize::try_from(i64::try_from(line).unwrap_or(0) + base)
        .unwrap_or(0)
        .max(1)
}

fn yaml_error(e: &serde_norway::Error, template: Option<String>, base: i64) -> YamlError {
    let line = shift(e.location().map_or(1, |l| l.line()), base);
    // serde's message carries its own "at line L column C", counted in the document.
    let mut message = e.to_string();
    while let Some(i) = message.find(" at line ") {
        let rest = &message[i + " at line ".len()..];
        let end = rest
            .find(" column ")
            .map(|c| {
                let after = &rest[c + " column ".len()..];
                c + " column ".len()
                    + after
                        .find(|ch: char| !ch.is_ascii_digit())
                        .unwrap_or(after.len())
            })
            .unwrap_or(0);
        message.replace_range(i..i + " at line ".len() + end, "");
    }
    YamlError {
        template,
        line,
        message,
    }
}

/// `(first line, text)` of each document: split at `---` lines (1-based lines).
fn split_documents(text: &str) -> Vec<(usize, &str)> {
    let mut out = Vec::new();
    let mut start_byte = 0;
    let mut start_line = 1;
    let mut offset = 0;
    for (i, line) in text.split_inclusive('\n').enumerate() {
        let t = line.trim_end();
        if t == "---" || t.starts_with("--- ") {
            out.push((start_line, &text[start_byte..offset]));
            start_byte = offset + line.len();
            start_line = i + 2;
        }
        offset += line.len();
    }
    out.push((start_line, &text[start_byte..]));
    out.retain(|(_, t)| !t.trim().is_empty());
    out
}

/// A container being read, for [`Dupes`].
enum Open {
    Mapping {
        /// Each key seen so far with where it starts (a char index), in order.
        keys: Vec<(String, usize, usize)>,
        /// The next scalar or container is a key.
        want_key: bool,
        /// The path of this mapping, for the warning.
        path: String,
    },
    Sequence {
        path: String,
    },
}

/// Finds keys written twice in one mapping while a document is parsed.
#[derive(Default)]
struct Dupes {
    /// Added to the parser's lines in warnings.
    base: i64,
    stack: Vec<Open>,
    /// `(from, to)` char ranges of the earlier entries to drop.
    drop: Vec<(usize, usize)>,
    warnings: Vec<String>,
    /// The key a nested container sits under.
    pending: Option<String>,
}

impl Dupes {
    fn path_for_child(&self) -> String {
        match self.stack.last() {
            Some(Open::Mapping { path, .. }) => match &self.pending {
                Some(k) if path.is_empty() => k.clone(),
                Some(k) => format!("{path}.{k}"),
                None => path.clone(),
            },
            Some(Open::Sequence { path }) => format!("{path}[]"),
            None => String::new(),
        }
    }

    /// A value (scalar or container start) arrived at `mark`; returns whether it was a key.
    fn value(&mut self, key: Option<&str>, mark: Marker) -> bool {
        if let Some(Open::Mapping { keys, want_key, .. }) = self.stack.last_mut() {
            if *want_key {
                *want_key = false;
                let k = key.unwrap_or("?").to_owned();
                keys.push((k.clone(), mark.index(), mark.line()));
                self.pending = Some(k);
                return true;
            }
            *want_key = true;
        }
        false
    }

    fn close_mapping(&mut self, end: Marker) {
        let Some(Open::Mapping { keys, path, .. }) = self.stack.pop() else {
            return;
        };
        let mut last: HashMap<&str, usize> = HashMap::new();
        for (i, (k, _, _)) in keys.iter().enumerate() {
            last.insert(k, i);
        }
        for (i, (k, at, line)) in keys.iter().enumerate() {
            let winner = last.get(k.as_str()).copied().unwrap_or(i);
            if winner == i {
                continue;
            }
            let next = keys.get(i + 1).map_or(end.index(), |(_, n, _)| *n);
            self.drop.push((*at, next));
            let full = if path.is_empty() {
                k.clone()
            } else {
                format!("{path}.{k}")
            };
            self.warnings.push(format!(
                "key `{full}` is written twice (lines {} and {}); the last one is used, as Helm and kubectl do",
                shift(*line, self.base),
                shift(keys[winner].2, self.base)
            ));
        }
        // This mapping was the value of its parent's key.
        if let Some(Open::Mapping { want_key, .. }) = self.stack.last_mut() {
            *want_key = true;
        }
    }
}

impl MarkedEventReceiver for Dupes {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        match ev {
            Event::Scalar(text, ..) => {
                self.value(Some(&text), mark);
            }
            Event::Alias(_) => {
                self.value(None, mark);
            }
            Event::MappingStart(..) => {
                // A complex key (a mapping used as a key) counts as a key named `?`.
                let is_key = self.value(None, mark);
                let path = self.path_for_child();
                if is_key {
                    self.pending = None;
                }
                self.stack.push(Open::Mapping {
                    keys: Vec::new(),
                    want_key: true,
                    path,
                });
            }
            Event::SequenceStart(..) => {
                self.value(None, mark);
                let path = self.path_for_child();
                self.stack.push(Open::Sequence { path });
            }
            Event::MappingEnd => self.close_mapping(mark),
            Event::SequenceEnd => {
                self.stack.pop();
                if let Some(Open::Mapping { want_key, .. }) = self.stack.last_mut() {
                    *want_key = true;
                }
            }
            _ => {}
        }
    }
}

/// `text` with the earlier entries of each key written twice taken out, and what was taken.
fn last_key_wins(text: &str, base: i64) -> (String, Vec<String>) {
    let mut d = Dupes {
        base,
        ..Dupes::default()
    };
    if Parser::new_from_str(text).load(&mut d, false).is_err() || d.drop.is_empty() {
        return (text.to_owned(), Vec::new());
    }
    let bytes: Vec<usize> = text
        .char_indices()
        .map(|(b, _)| b)
        .chain(std::iter::once(text.len()))
        .collect();
    let at = |c: usize| bytes.get(c).copied().unwrap_or(text.len());
    let line_start = |b: usize| text[..b].rfind('\n').map_or(0, |i| i + 1);
    let mut ranges: Vec<(usize, usize)> = d
        .drop
        .iter()
        .map(|&(from, to)| {
            let (from, to) = (at(from), at(to));
            // A block entry goes whole, with its indentation (but not a list item's `- `
            // before it); a flow entry (`{a: 1, a: 2}`) from its key to the next.
            if text[from..to].contains('\n') {
                let ls = line_start(from);
                let from = if text[ls..from].trim().is_empty() {
                    ls
                } else {
                    from
                };
                (from, line_start(to))
            } else {
                (from, to)
            }
        })
        .collect();
    ranges.sort_unstable();
    let mut kept = String::with_capacity(text.len());
    let mut pos = 0;
    for (from, to) in ranges {
        if from < pos {
            // Inside a range already taken out.
            pos = pos.max(to);
            continue;
        }
        kept.push_str(&text[pos..from]);
        pos = to;
    }
    kept.push_str(&text[pos..]);
    (kept, d.warnings)
}

/// Keys under which a pod spec lists containers.
pub const CONTAINER_LISTS: [&str; 3] = ["containers", "initContainers", "ephemeralContainers"];

/// Every container and init-container image referenced in a (multi-document) YAML text.
#[cfg(test)]
pub fn image_references(text: &str) -> Result<Vec<String>, YamlError> {
    let mut out = Vec::new();
    for doc in documents(text)? {
        collect_images(&doc.value, &mut out);
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
    for item in container_specs(v) {
        if let Some(img) = item.get("image").and_then(Value::as_str) {
            let field = |k: &str| item.get(k).and_then(Value::as_str).map(str::to_owned);
            out.push((
                field("name").unwrap_or_default(),
                img.to_owned(),
                field("imagePullPolicy"),
            ));
        }
    }
}

/// Every container spec (an item of `containers`, `initContainers`, …) anywhere in `v`.
pub fn container_specs(v: &Value) -> Vec<&Value> {
    fn walk<'a>(v: &'a Value, out: &mut Vec<&'a Value>) {
        match v {
            Value::Mapping(m) => {
                for (k, child) in m {
                    let is_list = k.as_str().is_some_and(|k| CONTAINER_LISTS.contains(&k));
                    if let (true, Value::Sequence(items)) = (is_list, child) {
                        out.extend(items.iter());
                    }
                    walk(child, out);
                }
            }
            Value::Sequence(items) => items.iter().for_each(|i| walk(i, out)),
            Value::Tagged(t) => walk(&t.value, out),
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(v, &mut out);
    out
}

/// A Secret a pod spec reads: by `secretKeyRef` (with its key), `envFrom[].secretRef`, a
/// `secret` volume or a projected volume's `secret` source.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct SecretRef {
    pub name: String,
    /// The key a `secretKeyRef` reads; `None` for the whole Secret.
    pub key: Option<String>,
    /// `optional: true`: the pod starts without it.
    pub optional: bool,
}

/// Every Secret reference anywhere under `v` (a pod spec, a workload, a whole object): the
/// one walker of pod specs for Secrets; each caller decides what `optional` means to it.
pub fn secret_references(v: &Value) -> Vec<SecretRef> {
    fn walk(v: &Value, in_projection: bool, out: &mut Vec<SecretRef>) {
        match v {
            Value::Mapping(m) => {
                for (k, child) in m {
                    let optional = child.get("optional").and_then(Value::as_bool) == Some(true);
                    let found = match k.as_str() {
                        Some("secretKeyRef") => child
                            .get("name")
                            .and_then(Value::as_str)
                            .zip(child.get("key").and_then(Value::as_str))
                            .map(|(n, key)| (n, Some(key.to_owned()))),
                        Some("secretRef") => {
                            child.get("name").and_then(Value::as_str).map(|n| (n, None))
                        }
                        // A volume names it `secretName`; a projected volume's source, `name`.
                        Some("secret") => child
                            .get("secretName")
                            .or_else(|| in_projection.then(|| child.get("name")).flatten())
                            .and_then(Value::as_str)
                            .map(|n| (n, None)),
                        _ => None,
                    };
                    if let Some((name, key)) = found {
                        out.push(SecretRef {
                            name: name.to_owned(),
                            key,
                            optional,
                        });
                    }
                    walk(child, in_projection || k.as_str() == Some("projected"), out);
                }
            }
            Value::Sequence(items) => items.iter().for_each(|i| walk(i, in_projection, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(v, false, &mut out);
    out.sort();
    out.dedup();
    out
}

/// An image reference taken apart: `[registry[:port]/]path[:tag][@digest]`. The one parser
/// of references in devenv: a registry's port (`localhost:5000/app`) is no tag, and a digest
/// (`app@sha256:…`) is no tag either.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageRef<'a> {
    /// Everything before the tag and digest: `localhost:5000/app`, `ghcr.io/a/b`, `app`.
    pub repository: &'a str,
    pub tag: Option<&'a str>,
    /// `sha256:…`.
    pub digest: Option<&'a str>,
}

impl<'a> ImageRef<'a> {
    pub fn parse(reference: &'a str) -> ImageRef<'a> {
        let (named, digest) = match reference.split_once('@') {
            Some((n, d)) => (n, Some(d)),
            None => (reference, None),
        };
        let last_slash = named.rfind('/').map_or(0, |i| i + 1);
        let (repository, tag) = match named[last_slash..].rfind(':') {
            Some(i) => (&named[..last_slash + i], Some(&named[last_slash + i + 1..])),
            None => (named, None),
        };
        ImageRef {
            repository,
            tag,
            digest,
        }
    }

    /// The tag, `latest` where none is written (as Docker and Kubernetes read it).
    pub fn tag_or_latest(&self) -> &'a str {
        self.tag.unwrap_or("latest")
    }

    /// The repository as Docker Hub's short form: `docker.io/library/app` and
    /// `docker.io/app` are `app`; other registries stay as written.
    pub fn short_repository(&self) -> &'a str {
        self.repository
            .strip_prefix("docker.io/library/")
            .or_else(|| self.repository.strip_prefix("docker.io/"))
            .unwrap_or(self.repository)
    }

    /// The repository in full, as containerd and `minikube image ls` name it: `app` is
    /// `docker.io/library/app`, `team/app` is `docker.io/team/app`; a registry host (with a
    /// dot or a port, or `localhost`) stays.
    pub fn full_repository(&self) -> String {
        let repo = self.repository;
        let first = repo.split('/').next().unwrap_or("");
        let has_host = repo.contains('/')
            && (first.contains('.') || first.contains(':') || first == "localhost");
        if has_host {
            repo.to_owned()
        } else if repo.contains('/') {
            format!("docker.io/{repo}")
        } else {
            format!("docker.io/library/{repo}")
        }
    }
}

/// The repository part of an image reference: no tag, no digest.
/// `localhost:5000/app:1.2` -> `localhost:5000/app`.
pub fn repository_of(reference: &str) -> &str {
    ImageRef::parse(reference).repository
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 25 point 5: three walkers read pod specs for Secrets, each with its own idea of
    /// `optional` and of where a Secret may be named; one reads them all now.
    #[test]
    fn secret_references_are_read_from_every_place_a_pod_names_one() {
        let v: Value = serde_norway::from_str(
            "spec:
  containers:
  - env:
    - name: A
      valueFrom:
        secretKeyRef: {name: s1, key: k1}
    - name: B
      valueFrom:
        secretKeyRef: {name: s2, key: k2, optional: true}
    envFrom:
    - secretRef: {name: s3}
  volumes:
  - name: v
    secret: {secretName: s4}
  - name: p
    projected:
      sources:
      - secret: {name: s5}
",
        )
        .unwrap_or_default();
        let refs = secret_references(&v);
        let r = |name: &str, key: Option<&str>, optional: bool| SecretRef {
            name: name.into(),
            key: key.map(Into::into),
            optional,
        };
        assert_eq!(
            refs,
            [
                r("s1", Some("k1"), false),
                r("s2", Some("k2"), true),
                r("s3", None, false),
                r("s4", None, false),
                r("s5", None, false),
            ]
        );
    }

    /// Issue 25 point 5: references were split on their last `:` in three places, which takes
    /// a registry's port for a tag (`localhost:5000/app`: repository `localhost`, tag
    /// `5000/app`) and cuts a digest in two.
    #[test]
    fn image_references_are_taken_apart_once_with_ports_and_digests() {
        let r = ImageRef::parse("localhost:5000/app");
        assert_eq!(
            (r.repository, r.tag, r.digest),
            ("localhost:5000/app", None, None)
        );
        assert_eq!(r.tag_or_latest(), "latest");
        assert_eq!(r.full_repository(), "localhost:5000/app");
        let r = ImageRef::parse("localhost:5000/team/app:1.2");
        assert_eq!(
            (r.repository, r.tag),
            ("localhost:5000/team/app", Some("1.2"))
        );
        let r = ImageRef::parse("ghcr.io/a/b@sha256:abcd");
        assert_eq!(
            (r.repository, r.tag, r.digest),
            ("ghcr.io/a/b", None, Some("sha256:abcd"))
        );
        let r = ImageRef::parse("app:devenv-1@sha256:ef");
        assert_eq!(
            (r.repository, r.tag, r.digest),
            ("app", Some("devenv-1"), Some("sha256:ef"))
        );
        assert_eq!(
            ImageRef::parse("app:1").full_repository(),
            "docker.io/library/app"
        );
        assert_eq!(
            ImageRef::parse("team/app").full_repository(),
            "docker.io/team/app"
        );
        assert_eq!(
            ImageRef::parse("docker.io/library/app:1").short_repository(),
            "app"
        );
    }

    /// Issue 15, point 4: a PVC template with `accessModes` written twice, as a real chart
    /// had it. Helm and kubectl take the last one; devenv refused the whole chart.
    #[test]
    fn a_key_written_twice_takes_the_last_value_with_a_warning() {
        let text = "---\n# Source: app/templates/pvc.yaml\napiVersion: v1\nkind: PersistentVolumeClaim\nmetadata:\n  name: data\nspec:\n  accessModes:\n    - ReadWriteOnce\n  resources:\n    requests:\n      storage: 1Gi\n  accessModes:\n    - ReadWriteMany\n---\n# Source: app/templates/cm.yaml\nkind: ConfigMap\ndata: {a: 1, b: 2, a: 3}\n";
        let docs = documents(text).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[0].source.as_deref(), Some("app/templates/pvc.yaml"));
        assert_eq!(docs[0].object(), "PersistentVolumeClaim/data");
        assert_eq!(
            docs[0].value["spec"]["accessModes"],
            serde_norway::from_str::<Value>("[ReadWriteMany]").unwrap_or_default()
        );
        assert_eq!(
            docs[0].value["spec"]["resources"]["requests"]["storage"],
            "1Gi"
        );
        assert_eq!(
            docs[0].warnings,
            [
                "key `spec.accessModes` is written twice (lines 6 and 11); the last one is used, as Helm and kubectl do"
            ]
        );
        assert_eq!(docs[1].value["data"]["a"], 3);
        assert_eq!(docs[1].value["data"]["b"], 2);
        assert_eq!(docs[1].warnings.len(), 1, "{:?}", docs[1].warnings);
        assert!(docs[1].warnings[0].starts_with("key `data.a` is written twice"));
    }

    #[test]
    fn keys_written_twice_at_several_depths_and_in_list_items() {
        let text = "a: 1\nb:\n  c: 1\n  c: 2\n  d: [1, 2]\nlist:\n  - name: x\n    name: y\na: 2\n";
        let docs = documents(text).unwrap_or_else(|e| panic!("{e}"));
        let v = &docs[0].value;
        assert_eq!(v["a"], 2);
        assert_eq!(v["b"]["c"], 2);
        assert_eq!(v["b"]["d"][1], 2);
        assert_eq!(v["list"][0]["name"], "y");
        let mut w = docs[0].warnings.clone();
        w.sort();
        assert_eq!(w.len(), 3, "{w:?}");
        assert!(
            w[0].starts_with("key `a` is written twice (lines 1 and 9)"),
            "{w:?}"
        );
        assert!(w[1].starts_with("key `b.c` is written twice"), "{w:?}");
        assert!(
            w[2].starts_with("key `list[].name` is written twice"),
            "{w:?}"
        );
    }

    #[test]
    fn a_yaml_error_names_the_template_and_its_line() {
        let text = "# Source: app/templates/ok.yaml\nkind: ConfigMap\n---\n# Source: app/templates/bad.yaml\nkind: Service\nspec:\n  ports: [1, 2\n";
        let e = documents(text).err().unwrap_or_else(|| panic!("no error"));
        assert_eq!(e.template.as_deref(), Some("app/templates/bad.yaml"));
        assert_eq!(e.line, 4, "{e}");
        assert!(!e.message.contains("at line"), "{e}");
        assert!(
            e.to_string()
                .starts_with("app/templates/bad.yaml (as rendered), line "),
            "{e}"
        );
    }

    #[test]
    fn empty_documents_and_separators_are_skipped() {
        let docs = documents("---\n---\n# just a comment\n---\nkind: A\n")
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(docs.len(), 1);
        assert_eq!(docs[0].line, 5);
        assert!(documents("").unwrap_or_default().is_empty());
    }
}
