//! The proposal as devenv.toml text. The settings are the config model's own types
//! (`config::model`, the ones `config check` reads), serialised with toml_edit; each table
//! then gets a comment that says where it came from. The same proposal always gives the
//! same text.

use std::fmt::Write as _;
use std::path::Path;

use toml::Spanned;
use toml_edit::{ArrayOfTables, DocumentMut, InlineTable, Item, Table, Value};

use super::{DeployOut, Keys, Proposal, rel};
use crate::config::model::{
    HelmReleases, Megabytes, Provider, RawCluster, RawConfig, RawDeploy, RawHelm, RawHelmImage,
    RawImage, RawLocal, RawProject, RawResource, RawSecret, RawWeb, TriggerMode,
};

/// A value as the model holds it; init writes it, so it has no place in a file yet.
fn s<T>(value: T) -> Spanned<T> {
    Spanned::new(0..0, value)
}

fn strings<I: IntoIterator<Item = String>>(items: I) -> Vec<Spanned<String>> {
    items.into_iter().map(s).collect()
}

/// `Some(list)`, or None for an empty one (an empty list is not written).
fn some_strings<I: IntoIterator<Item = String>>(items: I) -> Option<Vec<Spanned<String>>> {
    Some(strings(items)).filter(|v| !v.is_empty())
}

/// `text` as `#` lines of at most 92 columns.
fn comment(text: &str) -> String {
    let mut out = String::new();
    let mut line = String::from("#");
    for word in text.split_whitespace() {
        if line.len() + 1 + word.len() > 92 && line.len() > 1 {
            out.push_str(&line);
            out.push('\n');
            line = String::from("#");
        }
        line.push(' ');
        line.push_str(word);
    }
    if line.len() > 1 {
        out.push_str(&line);
        out.push('\n');
    }
    out
}

fn r(p: &Proposal, path: &Path) -> String {
    rel(&p.root, path)
}

/// The settings of the proposal, in the config model's types.
fn model(p: &Proposal) -> RawConfig {
    let images = p
        .images
        .iter()
        .map(|img| {
            let f = &img.found;
            RawImage {
                name: s(img.name.clone()),
                context: Some(s(r(p, &f.context))),
                dockerfile: (f.dockerfile != f.context.join("Dockerfile"))
                    .then(|| s(r(p, &f.dockerfile))),
                target: f.target.clone().map(s),
                build_args: None,
                watch: None,
                ignore: None,
                builder: None,
                command: None,
                live_update: f.live_update.then(|| s(true)),
                dev_command: (!f.dev_command.is_empty())
                    .then(|| s(strings(f.dev_command.iter().cloned()))),
                sync: None,
                run: None,
                fall_back_on: None,
            }
        })
        .collect();
    let secrets = p
        .secrets
        .iter()
        .map(|sec| RawSecret {
            name: s(sec.name.clone()),
            env_files: s(strings([r(p, &sec.env_file)])),
            namespace: None,
            keys: (!sec.keys.is_empty()).then(|| {
                sec.keys
                    .iter()
                    .map(|(k, v)| (k.clone(), s(v.clone())))
                    .collect()
            }),
        })
        .collect();
    let mut deploy = RawDeploy {
        namespace: Some(s(p.namespace.clone())),
        ..RawDeploy::default()
    };
    match &p.deploy {
        Some(DeployOut::Helm(charts)) => {
            let releases = charts
                .iter()
                .map(|h| RawHelm {
                    chart: s(r(p, &h.chart)),
                    release: Some(s(h.release.clone())),
                    values: some_strings(h.values.iter().map(|v| r(p, v))),
                    set: None,
                    env_files: h.from_env.as_ref().map(|f| s(strings([r(p, &f.env_file)]))),
                    values_from_env: h.from_env.as_ref().map(|f| {
                        f.keys
                            .iter()
                            .map(|(k, e)| (k.clone(), s(e.clone())))
                            .collect()
                    }),
                    namespace: None,
                    images: h
                        .entries
                        .iter()
                        .map(|(image, keys, _)| {
                            let (repository, tag, value) = match keys {
                                Keys::RepositoryAndTag { repository, tag } => {
                                    (Some(s(repository.clone())), Some(s(tag.clone())), None)
                                }
                                Keys::Reference(k) => (None, None, Some(s(k.clone()))),
                            };
                            s(RawHelmImage {
                                image: s(image.clone()),
                                repository,
                                tag,
                                value,
                            })
                        })
                        .collect(),
                })
                .collect();
            deploy.helm = Some(HelmReleases(releases));
        }
        Some(DeployOut::Manifests(files)) => {
            deploy.manifests = Some(strings(files.iter().cloned()));
        }
        None => {}
    }
    let resources = p
        .resources
        .iter()
        .map(|res| RawResource {
            name: s(res.name.clone()),
            workload: s(res.workload.clone()),
            namespace: res.namespace.clone().map(s),
            release: res.release.clone().map(s),
            images: some_strings(res.images.iter().cloned()),
            port_forwards: some_strings(res.forwards.iter().map(|(l, r)| format!("{l}:{r}"))),
            depends_on: some_strings(res.depends_on.iter().cloned()),
            readiness_timeout: None,
            trigger: None,
            links: None,
        })
        .collect();
    let locals = p
        .locals
        .iter()
        .map(|l| RawLocal {
            name: s(l.name.clone()),
            cmd: l.cmd.clone().map(s),
            serve_cmd: l.serve_cmd.clone().map(s),
            restart: None,
            workdir: Some(s(r(p, &l.workdir))),
            deps: some_strings(l.deps.iter().map(|d| r(p, d))),
            env: None,
            depends_on: some_strings(l.depends_on.iter().cloned()),
            trigger: l.manual.then(|| s(TriggerMode::Manual)),
            links: None,
        })
        .collect();
    RawConfig {
        project: Some(RawProject {
            name: Some(s(p.project.clone())),
            allow_outside: None,
        }),
        cluster: Some(RawCluster {
            provider: Some(s(Provider::Minikube)),
            cpus: Some(s(4)),
            memory: Some(s(Megabytes(8192))),
            ..RawCluster::default()
        }),
        images,
        secrets,
        deploy: Some(deploy),
        resources,
        locals,
        web: p.web_port.map(|port| RawWeb {
            port: Some(s(i64::from(port))),
            ..RawWeb::default()
        }),
        ..RawConfig::default()
    }
}

/// Maps of the model that stay inline (`keys = { … }`); every other table is written as a
/// `[table]` or `[[table]]`.
const INLINE: &[&str] = &["keys", "values_from_env", "build_args", "set", "env"];

/// The serialiser writes every table inline; a config is read as sections.
fn sections(t: &mut Table) {
    let keys: Vec<String> = t.iter().map(|(k, _)| k.to_owned()).collect();
    for k in keys {
        if INLINE.contains(&k.as_str()) {
            continue;
        }
        let Some(item) = t.get_mut(&k) else { continue };
        *item = match std::mem::take(item) {
            Item::Value(Value::InlineTable(it)) => Item::Table(section(it)),
            Item::Value(Value::Array(a))
                if !a.is_empty() && a.iter().all(Value::is_inline_table) =>
            {
                let mut all = ArrayOfTables::new();
                for v in a {
                    if let Value::InlineTable(it) = v {
                        all.push(section(it));
                    }
                }
                Item::ArrayOfTables(all)
            }
            other => other,
        };
    }
}

fn section(inline: InlineTable) -> Table {
    let mut t = inline.into_table();
    sections(&mut t);
    t
}

/// Puts `text` as a comment before table `t`, after a blank line.
fn before(t: &mut Table, text: &str) {
    t.decor_mut().set_prefix(format!("\n{}", comment(text)));
}

/// The `[[name]]` tables of `doc` (or of `parent`), in order.
fn each<'a>(t: &'a mut Table, name: &str) -> Vec<&'a mut Table> {
    t.get_mut(name)
        .and_then(Item::as_array_of_tables_mut)
        .map(|a| a.iter_mut().collect())
        .unwrap_or_default()
}

fn table<'a>(t: &'a mut Table, name: &str) -> Option<&'a mut Table> {
    t.get_mut(name).and_then(Item::as_table_mut)
}

/// The config text.
pub fn toml(p: &Proposal) -> Result<String, String> {
    let mut doc = toml_edit::ser::to_document(&model(p)).map_err(|e| e.to_string())?;
    sections(doc.as_table_mut());
    say_where_from(p, &mut doc);
    Ok(doc.to_string())
}

/// The comments: where each part came from.
fn say_where_from(p: &Proposal, doc: &mut DocumentMut) {
    let root = doc.as_table_mut();
    if let Some(t) = table(root, "project") {
        t.decor_mut().set_prefix(format!(
            "{}\n",
            comment(&format!(
                "devenv.toml for `{}`, written by `devenv init` from what the repository holds. Each part says where it came from; change anything (docs/config.md), then `devenv up`.",
                p.project
            ))
        ));
    }
    if let Some(t) = table(root, "cluster") {
        before(
            t,
            "A local Minikube of devenv's default size; images are built in its Docker daemon, no registry.",
        );
    }
    for (t, img) in each(root, "image").into_iter().zip(&p.images) {
        let f = &img.found;
        let mut why = format!(
            "{}: context `{}` ({}).",
            r(p, &f.dockerfile),
            r(p, &f.context),
            f.context_why
        );
        if !f.stages.is_empty() {
            let _ = write!(why, " Stages {}.", f.stages.join(", "));
        }
        if let (Some(t), Some(w)) = (&f.target, &f.target_why) {
            let _ = write!(why, " Target `{t}`: {w}.");
        }
        if let Some(n) = &img.name_why {
            let _ = write!(why, " Named so because {n}.");
        }
        let _ = write!(
            why,
            " Live update {}: {}.",
            if f.live_update { "on" } else { "off" },
            f.live_why
        );
        before(t, &why);
    }
    for (t, sec) in each(root, "secret").into_iter().zip(&p.secrets) {
        let mut why = format!(
            "{} read{} Secret `{}`, which nothing here makes: devenv makes it from {}",
            sec.readers.join(", "),
            if sec.readers.len() == 1 { "s" } else { "" },
            sec.name,
            r(p, &sec.env_file)
        );
        if let Some(ex) = &sec.example {
            let _ = write!(why, " (made by devenv init from {})", r(p, ex));
        }
        why.push('.');
        if !sec.keys.is_empty() {
            why.push_str(" The pods read keys the .env spells otherwise: `keys` gives them.");
        }
        before(t, &why);
    }
    if let Some(deploy) = table(root, "deploy") {
        say_deploy(p, deploy);
    }
    for (t, res) in each(root, "resource").into_iter().zip(&p.resources) {
        before(t, &resource_why(res));
    }
    for (t, l) in each(root, "local").into_iter().zip(&p.locals) {
        let why = match &l.from {
            Some(from) => format!(
                "{from}: run on the host when its deps change{}.",
                if l.serve_cmd.is_some() {
                    ", and its serve command kept running"
                } else {
                    ""
                }
            ),
            None => format!(
                "Tests in {}, run on demand (the page's button, or `devenv trigger {}`).",
                r(p, &l.workdir),
                l.name
            ),
        };
        before(t, &why);
    }
    if let Some(t) = table(root, "web") {
        before(
            t,
            &format!(
                "Port {} was taken when devenv init ran.",
                crate::config::DEFAULT_WEB_PORT
            ),
        );
    }
}

/// `[deploy]`'s comments: the namespace, each chart, its images and .env values, or the
/// manifests.
fn say_deploy(p: &Proposal, deploy: &mut Table) {
    before(
        deploy,
        &format!("Namespace `{}`: {}.", p.namespace, p.namespace_why),
    );
    if matches!(p.deploy, Some(DeployOut::Manifests(_)))
        && let Some(mut key) = deploy.key_mut("manifests")
    {
        key.leaf_decor_mut().set_prefix(comment(
            "Plain manifests, applied with devenv's builds in place of their images.",
        ));
    }
    let Some(DeployOut::Helm(charts)) = &p.deploy else {
        return;
    };
    // One chart is `[deploy.helm]`; several are `[[deploy.helm]]`, each with the
    // `[[deploy.helm.images]]` that follow it.
    let tables: Vec<&mut Table> = match deploy.get_mut("helm") {
        Some(Item::Table(t)) => vec![t],
        Some(Item::ArrayOfTables(a)) => a.iter_mut().collect(),
        _ => Vec::new(),
    };
    for (t, h) in tables.into_iter().zip(charts) {
        let mut why = format!(
            "The Helm chart `{}` in {}, released as `{}`",
            h.chart_name,
            r(p, &h.chart),
            h.release
        );
        if h.values.is_empty() {
            why.push_str(" with its own values.");
        } else {
            let v: Vec<String> = h.values.iter().map(|v| r(p, v)).collect();
            let _ = write!(why, " with the development values in {}.", v.join(", "));
        }
        before(t, &why);
        if let Some(f) = &h.from_env
            && let Some(mut key) = t.key_mut("env_files")
        {
            key.leaf_decor_mut().set_prefix(comment(&format!(
                "The chart makes {} from these values; each comes from the .env key of its name. devenv gives them to helm in a values file only you can read, never on a command line.",
                f.secrets
                    .iter()
                    .map(|s| format!("Secret `{s}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        for (img, (_, keys, seen)) in each(t, "images").into_iter().zip(&h.entries) {
            before(
                img,
                &format!(
                    "Found by rendering the chart with a marker in each value: {} take{} the image from {}.",
                    seen.join(", "),
                    if seen.len() == 1 { "s" } else { "" },
                    match keys {
                        Keys::RepositoryAndTag { repository, tag } =>
                            format!("`{repository}` and `{tag}`"),
                        Keys::Reference(k) => format!("`{k}`"),
                    }
                ),
            );
        }
    }
}

/// Why a resource is there: what it runs, where it listens, what it waits for.
fn resource_why(res: &super::ResourceOut) -> String {
    let mut why = res.workload.clone();
    if res.images.is_empty() {
        why.push_str(": runs no image built here");
    } else {
        let _ = write!(why, ": runs {}", res.images.join(", "));
    }
    if !res.forwards.is_empty() {
        let ports: Vec<String> = res.forwards.iter().map(|(_, r)| r.to_string()).collect();
        let _ = write!(
            why,
            "; listens on {} (forwarded from free local ports)",
            ports.join(", ")
        );
    }
    why.push('.');
    if !res.waits_in_release.is_empty() {
        let _ = write!(
            why,
            " Its init container waits for {}; one helm upgrade deploys both, and the chart orders them, so no depends_on.",
            res.waits_in_release.join(", ")
        );
    }
    if !res.said_deps.is_empty() {
        let _ = write!(
            why,
            " The Tiltfile's resource_deps: {} first.",
            res.said_deps.join(", ")
        );
    }
    let waits: Vec<&str> = res
        .depends_on
        .iter()
        .filter(|d| !res.said_deps.contains(d))
        .map(String::as_str)
        .collect();
    if !waits.is_empty() {
        let _ = write!(
            why,
            " Its init container waits for {}: depends_on.",
            waits.join(", ")
        );
    }
    why
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::init::{FromEnv, HelmOut, ImageOut, LocalOut, ResourceOut, SecretOut, images};

    /// A proposal whose strings hold what a repository may: quotes, backslashes, a newline,
    /// `#`, dots in keys, non-ASCII text.
    fn awkward() -> Proposal {
        let root = PathBuf::from("/repo");
        let found = images::Found {
            service: "api".into(),
            dockerfile: root.join("api/Dockerfile.dev"),
            context: root.join("api"),
            context_why: "the Dockerfile's folder".into(),
            stages: vec!["base".into(), "dev".into()],
            target: Some("dev".into()),
            target_why: Some("it runs a reloader".into()),
            live_update: true,
            dev_command: vec![
                "sh".into(),
                "-c".into(),
                "echo \"a\\b\" # not a comment\nnext".into(),
            ],
            live_why: "the code is copied last".into(),
            exposes: vec![8000],
        };
        Proposal {
            root: root.clone(),
            project: "café-app".into(),
            namespace: "cafe-app".into(),
            namespace_why: "the project's name".into(),
            images: vec![ImageOut {
                name: "acme/api".into(),
                found,
                name_why: Some("the chart runs `acme/api`".into()),
            }],
            secrets: vec![SecretOut {
                name: "api-secrets".into(),
                env_file: root.join(".env"),
                keys: [("database-url".to_owned(), "DATABASE_URL".to_owned())].into(),
                readers: vec!["Deployment/api".into()],
                example: Some(root.join(".env.example")),
            }],
            deploy: Some(DeployOut::Helm(vec![
                HelmOut {
                    chart: root.join("charts/api"),
                    chart_name: "api".into(),
                    release: "api".into(),
                    values: vec![root.join("charts/api/values-dev.yaml")],
                    entries: vec![(
                        "acme/api".into(),
                        Keys::RepositoryAndTag {
                            repository: "image.repository".into(),
                            tag: "image.tag".into(),
                        },
                        vec!["Deployment/api container `api`".into()],
                    )],
                    from_env: Some(FromEnv {
                        env_file: root.join(".env"),
                        example: None,
                        keys: vec![("secret.\"jwt\".key".into(), "JWT_KEY".into())],
                        secrets: vec!["api".into()],
                    }),
                },
                HelmOut {
                    chart: root.join("charts/web"),
                    chart_name: "web".into(),
                    release: "web".into(),
                    values: Vec::new(),
                    entries: vec![(
                        "acme/web".into(),
                        Keys::Reference("image".into()),
                        vec!["Deployment/web container `web`".into()],
                    )],
                    from_env: None,
                },
            ])),
            resources: vec![ResourceOut {
                name: "api".into(),
                workload: "deployment/api".into(),
                namespace: None,
                images: vec!["acme/api".into()],
                forwards: vec![(8001, 8000)],
                depends_on: vec!["gen".into()],
                release: Some("api".into()),
                said_deps: vec!["gen".into()],
                waits_in_release: Vec::new(),
            }],
            locals: vec![LocalOut {
                name: "gen".into(),
                cmd: Some("python3 tools/gen.py --out 'a b'".into()),
                serve_cmd: None,
                workdir: root.clone(),
                deps: vec![root.join("tools/gen.py")],
                depends_on: Vec::new(),
                manual: true,
                from: Some("Tiltfile:3 local_resource('gen', …)".into()),
            }],
            web_port: Some(10351),
        }
    }

    /// Issue 27: init writes the config model's own types. What it writes is read back, by
    /// the parser `config check` uses, to the very settings it wrote, whatever the strings
    /// hold; the comments stay where they belong.
    #[test]
    fn what_init_writes_reads_back_as_the_same_settings() {
        let p = awkward();
        let text = toml(&p).unwrap_or_else(|e| panic!("{e}"));
        let read: RawConfig = toml::from_str(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        let as_value = |c: &RawConfig| toml::Value::try_from(c).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(as_value(&read), as_value(&model(&p)), "{text}");
        assert!(
            text.starts_with("# devenv.toml for `café-app`, written by `devenv init`"),
            "{text}"
        );
        assert!(text.contains("\n[[deploy.helm]]\n"), "{text}");
        assert!(text.contains("\n[[deploy.helm.images]]\n"), "{text}");
        assert!(
            text.contains("# Tiltfile's resource_deps: gen first.\n[[resource]]\n"),
            "{text}"
        );
        assert!(
            text.contains("# devenv gives them to helm in a values file only you can read, never on a command line.\nenv_files = [\".env\"]\n"),
            "{text}"
        );
        assert!(text.contains("\n[web]\nport = 10351\n"), "{text}");
        // The same proposal, the same text.
        assert_eq!(toml(&awkward()), Ok(text));
    }
}
