//! The chart-aware check shared by `config check`, `up --dry-run` and `up`: the chart is
//! rendered with the values `up` would give it (`helm template` needs no cluster) and read
//! with the manifests, and everything that would fail later is told now, each with the place
//! in devenv.toml and the template (Helm's `# Source:` line) or manifest file:
//! - a tag devenv injects that the chart ignores (a workload still runs `api:v3`), an image
//!   that no container runs;
//! - a resource's `workload` that nothing renders, an image it lists that its workload does
//!   not run;
//! - a key of a devenv-managed Secret that a pod reads (`secretKeyRef`) and the .env files
//!   lack (the pod would sit in CreateContainerConfigError);
//! - keys written twice in a rendered document (the last one counts, as in Helm).
//!
//! It also says which namespaces the chart renders itself (`up` leaves them to Helm).
//! Owns these rules; must not touch the cluster or write anything but the values file of
//! `values_from_env` (for the one `helm template` run).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde_norway::Value;

use crate::config::{Config, Diagnostic, Helm, HelmImageKeys};
use crate::deploy::{helm, secrets};
use crate::exec::{self, Cmd};
use crate::objects::{self, Document};
use crate::plan::{Plan, Step};

/// What the check found.
#[derive(Debug, Default)]
pub struct Findings {
    /// Errors (that stop `up`) and warnings, each with its place.
    pub diagnostics: Vec<Diagnostic>,
    /// Namespaces the charts render, each with the release that renders it: made for Helm
    /// to own, not by devenv.
    pub own_namespaces: Vec<(String, String)>,
    /// Whether every chart was rendered (helm ran), when there is one.
    pub rendered: bool,
}

impl Findings {
    pub fn errors(&self) -> usize {
        self.diagnostics.iter().filter(|d| d.is_error()).count()
    }
}

/// An object to check, and where it came from (a template or a manifest file).
struct Object {
    origin: String,
    /// The namespace it goes into when it names none: its Helm release's, or `[deploy]
    /// namespace` for a manifest's.
    home: String,
    /// What sets `home`, as the user reads it: `[deploy] namespace`, or a release's.
    home_is: String,
    doc: Document,
}

impl Object {
    fn kind(&self) -> &str {
        self.doc
            .value
            .get("kind")
            .and_then(Value::as_str)
            .unwrap_or("")
    }

    fn name(&self) -> &str {
        self.doc
            .value
            .get("metadata")
            .and_then(|m| m.get("name"))
            .and_then(Value::as_str)
            .unwrap_or("")
    }

    fn namespace<'a>(&'a self, default: &'a str) -> &'a str {
        self.doc
            .value
            .get("metadata")
            .and_then(|m| m.get("namespace"))
            .and_then(Value::as_str)
            .unwrap_or(default)
    }

    /// `Kind/name (from origin)`.
    fn told(&self) -> String {
        format!("{} (from {})", self.doc.object(), self.origin)
    }
}

/// How long `helm template` may take.
const RENDER_TIMEOUT: Duration = Duration::from_secs(120);

/// Renders release `n`'s chart with the plan's values; the objects, or None after saying
/// what stopped it.
fn render(cfg: &Config, n: usize, argv: &[String], out: &mut Findings) -> Option<Vec<Object>> {
    let h = cfg.deploy.helm.get(n)?;
    let at = Helm::place(n, "chart");
    if which::which(&argv[0]).is_err() {
        out.diagnostics.push(
            cfg.error_at(
                &at,
                "helm is not installed here: the chart was not rendered, so what it runs is checked only when `devenv up` starts",
            )
            .hint("`devenv doctor` says how to install helm")
            .warning(),
        );
        return None;
    }
    let env = match helm::write_env_values(cfg, h) {
        Ok(e) => e,
        Err(e) => {
            out.diagnostics
                .push(cfg.error_at(&at, e).hint("add the key to the .env file"));
            return None;
        }
    };
    let cmd = Cmd {
        dir: Some(cfg.root.clone()),
        ..Cmd::new(argv[0].clone())
            .args(argv[1..].iter().cloned())
            .timeout(RENDER_TIMEOUT)
    };
    let result = exec::run(&cmd);
    drop(env);
    let f = match result {
        Ok(f) => f,
        Err(e) => {
            out.diagnostics
                .push(cfg.error_at(&at, format!("the chart was not rendered: {e}")));
            return None;
        }
    };
    if f.code != Some(0) {
        out.diagnostics.push(
            cfg.error_at(
                &at,
                format!(
                    "the chart does not render: `{}` failed:\n{}",
                    cmd.display(),
                    exec::last_lines(&f.stderr, 10)
                ),
            )
            .hint("fix the template, or the values devenv gives it ([deploy.helm] values, set, images)"),
        );
        return None;
    }
    if f.stdout_cut > 0 {
        out.diagnostics.push(cfg.error_at(
            &at,
            format!(
                "`{}` printed more than {} MiB: the chart was not checked",
                cmd.display(),
                exec::MAX_CAPTURE >> 20
            ),
        ));
        return None;
    }
    match objects::documents(&f.stdout) {
        Ok(docs) => Some(
            docs.into_iter()
                .map(|doc| Object {
                    origin: doc.source.clone().unwrap_or_else(|| cfg.rel(&h.chart)),
                    home: h.namespace.clone(),
                    home_is: if h.namespace == cfg.deploy.namespace {
                        "[deploy] namespace".to_owned()
                    } else {
                        format!("Helm release `{}`'s namespace", h.release)
                    },
                    doc,
                })
                .collect(),
        ),
        Err(e) => {
            out.diagnostics.push(cfg.error_at(
                &at,
                format!("the chart renders YAML that does not parse: {e}"),
            ));
            None
        }
    }
}

/// The manifest files' objects, as the plan read them.
fn manifests(cfg: &Config, plan: &Plan) -> Vec<Object> {
    plan.shape
        .sources
        .iter()
        .map(|s| Object {
            origin: s.file.clone(),
            home: cfg.deploy.namespace.clone(),
            home_is: "[deploy] namespace".to_owned(),
            doc: s.doc.clone(),
        })
        .collect()
}

/// Checks `cfg` as `plan` would run it: the rendered chart and the manifests.
pub fn check(cfg: &Config, plan: &Plan) -> Findings {
    let mut out = Findings::default();
    // repository -> tag, of each image built.
    let built: BTreeMap<String, (String, String)> = plan
        .steps
        .iter()
        .filter_map(|s| match s {
            Step::Build {
                image,
                reference,
                tag,
                ..
            } => Some((
                image.clone(),
                (
                    objects::ImageRef::parse(reference).repository.to_owned(),
                    tag.clone(),
                ),
            )),
            _ => None,
        })
        .collect();
    // Each release the plan deploys, rendered as it would be.
    let mut charts: Vec<(usize, Vec<Object>)> = Vec::new();
    let mut all_rendered = true;
    for s in &plan.steps {
        let Step::Helm {
            release,
            render: argv,
            ..
        } = s
        else {
            continue;
        };
        let Some(n) = cfg.deploy.helm.iter().position(|h| h.release == *release) else {
            continue;
        };
        if charts.iter().any(|(m, _)| *m == n) {
            continue;
        }
        match render(cfg, n, argv, &mut out) {
            Some(objects) => charts.push((n, objects)),
            None => all_rendered = false,
        }
    }
    out.rendered = all_rendered && !charts.is_empty();
    let found = analyze(cfg, &built, charts, all_rendered, manifests(cfg, plan));
    out.diagnostics.extend(found.diagnostics);
    out.own_namespaces = found.own_namespaces;
    out
}

/// The checks on what was read: `charts` are the rendered releases' objects (by the
/// release's number), `all_rendered` whether every release the plan deploys rendered,
/// `manifests` the manifest files' objects.
fn analyze(
    cfg: &Config,
    built: &BTreeMap<String, (String, String)>,
    charts: Vec<(usize, Vec<Object>)>,
    all_rendered: bool,
    manifests: Vec<Object>,
) -> Findings {
    let mut out = Findings::default();
    let chart_objects: Vec<&Object> = charts.iter().flat_map(|(_, o)| o).collect();
    for (n, objects) in &charts {
        let h = &cfg.deploy.helm[*n];
        for o in objects {
            for w in &o.doc.warnings {
                out.diagnostics.push(
                    cfg.error_at(&Helm::place(*n, "chart"), format!("{}: {w}", o.origin))
                        .warning(),
                );
            }
            if o.kind() == "Namespace" {
                out.own_namespaces
                    .push((o.name().to_owned(), h.release.clone()));
            }
        }
        check_injected(cfg, *n, built, objects, &mut out);
        check_secret_refs(cfg, *n, objects, &chart_objects, &mut out);
    }
    check_releases(cfg, &charts, &mut out);
    let mut objects = chart_objects;
    objects.extend(manifests.iter());
    // The charts' objects are only known when they rendered.
    if all_rendered {
        check_workloads(cfg, built, &objects, &mut out);
    }
    check_unbuilt(cfg, built, &objects, &mut out);
    check_secret_keys(cfg, &objects, &mut out);
    check_live_update(cfg, built, &objects, &mut out);
    out
}

/// A workload that runs an image no `[[image]]` builds, while a Dockerfile of the project
/// not in the config could build it (its folder is named like the image: `frontend/` for
/// `todo-frontend`): the cluster runs whatever that tag is, not this code. The repository
/// is looked through only when some workload runs such an image.
fn check_unbuilt(
    cfg: &Config,
    built: &BTreeMap<String, (String, String)>,
    objects: &[&Object],
    out: &mut Findings,
) {
    let ours: Vec<&str> = built
        .values()
        .map(|(r, _)| r.as_str())
        .chain(cfg.images.iter().map(|i| i.name.as_str()))
        .collect();
    let mut others: Vec<(&Object, String, String)> = Vec::new();
    for o in objects {
        let mut containers = Vec::new();
        objects::collect_containers(&o.doc.value, &mut containers);
        for (container, image, _) in containers {
            let repo = objects::repository_of(&image);
            // Built here, or from a registry host (`ghcr.io/...`): not this case.
            let hosted = repo
                .split_once('/')
                .is_some_and(|(host, _)| host.contains(['.', ':']) || host == "localhost");
            if !ours.contains(&repo) && !hosted {
                others.push((o, container, image));
            }
        }
    }
    if others.is_empty() {
        return;
    }
    let tree = crate::tree::scan(&cfg.root);
    let configured: Vec<&std::path::Path> =
        cfg.images.iter().map(|i| i.dockerfile.as_path()).collect();
    let candidates: Vec<(&std::path::PathBuf, String)> = tree
        .dockerfiles
        .iter()
        .filter(|f| !configured.contains(&f.as_path()))
        .map(|f| (f, crate::tree::service(f, &cfg.root, &cfg.project)))
        .collect();
    for (o, container, image) in others {
        let repo = objects::repository_of(&image);
        let last = repo.rsplit('/').next().unwrap_or(repo).to_lowercase();
        let Some((file, _)) = candidates.iter().find(|(_, s)| {
            last == *s || last.ends_with(&format!("-{s}")) || last.ends_with(&format!("_{s}"))
        }) else {
            continue;
        };
        let place = cfg
            .resources
            .iter()
            .find(|r| {
                r.workload.kind.as_str().eq_ignore_ascii_case(o.kind())
                    && r.workload.name == o.name()
            })
            .map_or_else(
                || Helm::place(0, "chart"),
                |r| format!("resource.{}.workload", r.name),
            );
        out.diagnostics.push(
            cfg.error_at(
                &place,
                format!(
                    "{} container `{container}` runs `{image}`, which no [[image]] builds, and {} looks like its source: the cluster runs whatever that tag holds, not this code",
                    o.told(),
                    cfg.rel(file)
                ),
            )
            .hint(format!(
                "add an [[image]] for {} and give the workload its name (a [[deploy.helm.images]] entry, or the manifest's `image:`); `devenv init --print` shows one",
                cfg.rel(file)
            ))
            .warning(),
        );
    }
}

/// A resource that names its release is rendered by that release's chart (devenv runs only
/// that release's upgrade for it).
fn check_releases(cfg: &Config, charts: &[(usize, Vec<Object>)], out: &mut Findings) {
    for r in &cfg.resources {
        let Some(name) = &r.release else { continue };
        let Some((_, objects)) = charts
            .iter()
            .find(|(n, _)| cfg.deploy.helm[*n].release == *name)
        else {
            continue;
        };
        let renders = |objects: &[Object]| {
            objects.iter().any(|o| {
                o.kind().eq_ignore_ascii_case(r.workload.kind.as_str())
                    && o.name() == r.workload.name
            })
        };
        if renders(objects) {
            continue;
        }
        let other = charts
            .iter()
            .find(|(_, objects)| renders(objects))
            .map(|(n, _)| cfg.deploy.helm[*n].release.clone());
        let mut d = cfg.error_at(
            &format!("resource.{}.workload", r.name),
            format!(
                "resource `{}`: Helm release `{name}` does not render {}",
                r.name, r.workload
            ),
        );
        d = match other {
            Some(o) => d.hint(format!("release `{o}` renders it: set release = \"{o}\"")),
            None => {
                d.hint("check the workload's name against what the chart renders (`helm template`)")
            }
        };
        out.diagnostics.push(d);
    }
}

/// Live update writes into the containers: one whose root filesystem is read-only would
/// turn every save into a failed sync and a build.
fn check_live_update(
    cfg: &Config,
    built: &BTreeMap<String, (String, String)>,
    objects: &[&Object],
    out: &mut Findings,
) {
    for img in cfg.images.iter().filter(|i| i.live_update.is_some()) {
        let Some((repo, _)) = built.get(&img.name) else {
            continue;
        };
        for o in objects {
            for c in objects::container_specs(&o.doc.value) {
                let runs = c
                    .get("image")
                    .and_then(Value::as_str)
                    .is_some_and(|i| objects::repository_of(i) == repo);
                let read_only = c
                    .get("securityContext")
                    .and_then(|s| s.get("readOnlyRootFilesystem"))
                    .and_then(Value::as_bool)
                    == Some(true);
                if runs && read_only {
                    let name = c.get("name").and_then(Value::as_str).unwrap_or_default();
                    out.diagnostics.push(
                        cfg.error_at(
                            &format!("image.{}.live_update", img.name),
                            format!(
                                "{} container `{name}` has readOnlyRootFilesystem: true, so live update cannot write into it: its first sync would fail, and from then on every save would build `{}`",
                                o.told(),
                                img.name
                            ),
                        )
                        .hint("set securityContext.readOnlyRootFilesystem to false in the development values (or mount a writable volume where the files go)")
                        .warning(),
                    );
                }
            }
        }
    }
}

/// Secrets the chart's pods use that nothing makes: neither the chart nor a `[[secret]]`.
fn check_secret_refs(
    cfg: &Config,
    release: usize,
    objects: &[Object],
    all: &[&Object],
    out: &mut Findings,
) {
    let rendered: Vec<&str> = all
        .iter()
        .filter(|o| o.kind() == "Secret")
        .map(|o| o.name())
        .collect();
    let mut used: Vec<(String, String)> = Vec::new();
    for o in objects {
        // An optional Secret that nothing makes is no problem: the pod starts without it.
        used.extend(
            objects::secret_references(&o.doc.value)
                .into_iter()
                .filter(|r| !r.optional)
                .map(|r| (r.name, o.told())),
        );
    }
    used.sort();
    used.dedup_by(|a, b| a.0 == b.0);
    for (s, by) in used {
        if !rendered.contains(&s.as_str()) && !cfg.secrets.iter().any(|x| x.name == s) {
            out.diagnostics.push(
                cfg.error_at(
                    &Helm::place(release, "chart"),
                    format!(
                        "{by} uses Secret `{s}`, which the chart does not make and devenv.toml has no [[secret]] for; its pods will wait until it exists"
                    ),
                )
                .hint(format!("add a [[secret]] named `{s}` with its .env file"))
                .warning(),
            );
        }
    }
}

/// Each tag devenv injects reaches the containers of its repository, and some container
/// runs each injected image.
fn check_injected(
    cfg: &Config,
    release: usize,
    built: &BTreeMap<String, (String, String)>,
    objects: &[Object],
    out: &mut Findings,
) {
    let h = &cfg.deploy.helm[release];
    for (n, hi) in h.images.iter().enumerate() {
        // One report per image, at its first entry.
        if h.images[..n].iter().any(|o| o.image == hi.image) {
            continue;
        }
        let Some((repo, tag)) = built.get(&hi.image) else {
            continue;
        };
        let keys: Vec<String> = h
            .images
            .iter()
            .filter(|o| o.image == hi.image)
            .map(|o| match &o.keys {
                HelmImageKeys::RepositoryAndTag { tag, .. } => format!("`{tag}`"),
                HelmImageKeys::Reference { value } => format!("`{value}`"),
            })
            .collect();
        let place = match &hi.keys {
            HelmImageKeys::RepositoryAndTag { .. } => {
                Helm::place(release, &format!("image.{n}.tag"))
            }
            HelmImageKeys::Reference { .. } => Helm::place(release, &format!("image.{n}.value")),
        };
        let mut runs = false;
        for o in objects {
            let mut containers = Vec::new();
            objects::collect_containers(&o.doc.value, &mut containers);
            for (container, image, policy) in containers {
                if objects::repository_of(&image) != repo {
                    continue;
                }
                runs = true;
                if policy.as_deref() == Some("Always") {
                    out.diagnostics.push(
                        cfg.error_at(
                            &Helm::place(release, &format!("image.{n}")),
                            format!(
                                "{} container `{container}` has imagePullPolicy: Always, so Kubernetes would try to pull `{repo}:{tag}`, which exists only in the cluster's image store",
                                o.told()
                            ),
                        )
                        .hint("set it to IfNotPresent for development")
                        .warning(),
                    );
                }
                if image != format!("{repo}:{tag}") {
                    out.diagnostics.push(
                        cfg.error_at(
                            &place,
                            format!(
                                "{} container `{container}` runs `{image}`, not devenv's `{repo}:{tag}`: the chart does not take the tag from {}",
                                o.told(),
                                keys.join(" or ")
                            ),
                        )
                        .hint("find the values key the template reads the image from (its `image:` line), and name it here; one image may have an entry per workload"),
                    );
                }
            }
        }
        if !runs {
            out.diagnostics.push(
                cfg.error_at(
                    &Helm::place(release, &format!("image.{n}")),
                    format!(
                        "no container of the rendered chart runs `{repo}` (image `{}`)",
                        hi.image
                    ),
                )
                .hint("check the values keys of this entry against the chart's values.yaml"),
            );
        }
    }
}

/// Each resource's workload is an object the chart or the manifests make, and runs the
/// images the resource lists.
fn check_workloads(
    cfg: &Config,
    built: &BTreeMap<String, (String, String)>,
    objects: &[&Object],
    out: &mut Findings,
) {
    for r in &cfg.resources {
        let kind = r.workload.kind.as_str();
        let place = format!("resource.{}.workload", r.name);
        // An object that names no namespace goes where the deploy puts it: [deploy]
        // namespace (helm --namespace, and the manifests' default), whatever the resource says.
        let same =
            |o: &&&Object| o.kind().eq_ignore_ascii_case(kind) && o.name() == r.workload.name;
        let found = objects
            .iter()
            .filter(same)
            .find(|o| o.namespace(&o.home) == r.namespace);
        if found.is_none()
            && let Some(o) = objects.iter().find(same)
        {
            let ns = o.namespace(&o.home);
            let why = if o.namespace("") != ns {
                format!(
                    "it names no namespace, so it is deployed into {} `{ns}`",
                    o.home_is
                )
            } else {
                format!("its metadata.namespace is `{ns}`")
            };
            out.diagnostics.push(
                cfg.error_at(
                    &place,
                    format!(
                        "resource `{}`: {} (from {}) is not in namespace `{}`: {why}",
                        r.name, r.workload, o.origin, r.namespace
                    ),
                )
                .hint(format!(
                    "set the resource's namespace to `{ns}`, or give the object metadata.namespace: {}",
                    r.namespace
                )),
            );
            continue;
        }
        let Some(o) = found else {
            let same_kind: Vec<&Object> = objects
                .iter()
                .copied()
                .filter(|o| o.kind().eq_ignore_ascii_case(kind))
                .collect();
            let names: Vec<&str> = same_kind.iter().map(|o| o.name()).collect();
            let mut d = cfg.error_at(
                &place,
                format!(
                    "resource `{}`: no {} is rendered or in the manifests",
                    r.name, r.workload
                ),
            );
            d = match crate::config::did_you_mean(&r.workload.name, &names) {
                Some(s) => {
                    let from = same_kind
                        .iter()
                        .find(|o| o.name() == s)
                        .map(|o| o.origin.clone())
                        .unwrap_or_default();
                    d.hint(format!("did you mean `{kind}/{s}` (from {from})?"))
                }
                None if names.is_empty() => d.hint(format!(
                    "nothing makes a {kind}: check the kind, and the chart's values that turn it on"
                )),
                None => d.hint(format!(
                    "the {kind}s there: {}",
                    names.iter().take(8).copied().collect::<Vec<_>>().join(", ")
                )),
            };
            out.diagnostics.push(d);
            continue;
        };
        let Some(images) = &r.images else {
            continue;
        };
        let mut containers = Vec::new();
        objects::collect_containers(&o.doc.value, &mut containers);
        let repos: BTreeSet<&str> = containers
            .iter()
            .map(|(_, i, _)| objects::repository_of(i))
            .collect();
        for i in images {
            let Some((repo, _)) = built.get(i) else {
                continue;
            };
            // A chart runs the injected repository; a manifest names the image (devenv
            // rewrites `hello`, `docker.io/library/hello` to the built reference).
            let named = |r: &&str| objects::ImageRef::parse(r).short_repository() == i;
            if !repos.contains(repo.as_str()) && !repos.iter().any(named) {
                out.diagnostics.push(
                    cfg.error_at(
                        &place,
                        format!(
                            "resource `{}` lists image `{i}`, but {} runs only {}",
                            r.name,
                            o.told(),
                            containers
                                .iter()
                                .map(|(_, i, _)| format!("`{i}`"))
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    )
                    .hint("with Helm, give the image a [[deploy.helm.images]] entry for the keys this workload reads"),
                );
            }
        }
    }
}

/// Every key a pod reads from a Secret devenv makes is in that Secret's .env files (or its
/// `keys`): a missing one leaves the pod in CreateContainerConfigError.
fn check_secret_keys(cfg: &Config, objects: &[&Object], out: &mut Findings) {
    let mut keys_of: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
    for s in &cfg.secrets {
        // A missing .env file is a config error already; one that cannot be read or parsed
        // is one here (`up` would stop on it).
        match secrets::prepare(s, &|f| cfg.rel(f)) {
            Ok(p) => {
                keys_of.insert(&s.name, p.values.0.into_keys().collect());
            }
            Err(secrets::SecretError::MissingKey { key, .. }) => {
                out.diagnostics.push(
                    cfg.error_at(
                        &format!("secret.{}.keys.{key}", s.name),
                        secrets::prepare(s, &|f| cfg.rel(f))
                            .err()
                            .map(|e| e.to_string())
                            .unwrap_or_default(),
                    )
                    .hint("add it to the .env file, or name a key it has"),
                );
            }
            Err(e @ (secrets::SecretError::Parse { .. } | secrets::SecretError::Read { .. })) => {
                out.diagnostics.push(
                    cfg.error_at(&format!("secret.{}", s.name), e.to_string())
                        .hint("fix that line of the .env file (its text is not shown: it may be secret)"),
                );
            }
            Err(_) => {}
        }
    }
    for o in objects {
        let refs = objects::secret_references(&o.doc.value)
            .into_iter()
            .filter_map(|r| r.key.map(|k| (r.name, k, r.optional)));
        for (secret, key, optional) in refs {
            let Some(keys) = keys_of.get(secret.as_str()) else {
                continue;
            };
            if optional || keys.contains(&key) {
                continue;
            }
            let Some(s) = cfg.secrets.iter().find(|s| s.name == secret) else {
                continue;
            };
            let files: Vec<String> = s.env_files.iter().map(|f| cfg.rel(f)).collect();
            let similar: Vec<&str> = keys.iter().map(String::as_str).collect();
            let near = crate::config::did_you_mean(&key, &similar).or_else(|| {
                let norm = |k: &str| k.to_ascii_lowercase().replace(['-', '.'], "_");
                similar.iter().copied().find(|k| norm(k) == norm(&key))
            });
            out.diagnostics.push(
                cfg.error_at(
                    &format!("secret.{secret}"),
                    format!(
                        "{} reads key `{key}` of Secret `{secret}`, which {} does not have",
                        o.told(),
                        files.join(", ")
                    ),
                )
                .hint(match near {
                    Some(n) => format!(
                        "add `{key}=…` to {}, or give the Secret the key from `{n}`: keys = {{ \"{key}\" = \"{n}\" }}",
                        files.first().map_or(".env", String::as_str)
                    ),
                    None => format!(
                        "add `{key}=…` to {}, or take it from another .env key with keys = {{ \"{key}\" = \"NAME\" }}",
                        files.first().map_or(".env", String::as_str)
                    ),
                }),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    /// A project with one image, a chart directory and an .env, and its config.
    fn project(extra: &str) -> (tempfile::TempDir, Config) {
        project_with("", extra)
    }

    /// As [`project`], with `image_keys` in the image's table.
    fn project_with(image_keys: &str, extra: &str) -> (tempfile::TempDir, Config) {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let root = dir.path();
        for (f, text) in [
            ("backend/Dockerfile", "FROM scratch\nCOPY . /\n"),
            (
                "chart/Chart.yaml",
                "apiVersion: v2\nname: todo\nversion: 0.1.0\n",
            ),
            (".env", "DATABASE_URL=postgres://u:p@db/x\nJWT_SECRET=abc\n"),
        ] {
            let p = root.join(f);
            std::fs::create_dir_all(p.parent().unwrap_or(root)).unwrap_or_else(|e| panic!("{e}"));
            std::fs::write(p, text).unwrap_or_else(|e| panic!("{e}"));
        }
        let text = format!(
            "[project]\nname = \"todo\"\n[[image]]\nname = \"todo-backend\"\ncontext = \"backend\"\n{image_keys}[[secret]]\nname = \"todo-secrets\"\nenv_files = [\".env\"]\n[deploy.helm]\nchart = \"chart\"\n[[deploy.helm.images]]\nimage = \"todo-backend\"\nrepository = \"backend.image.repository\"\ntag = \"backend.image.tag\"\n[[resource]]\nname = \"backend\"\nworkload = \"deployment/todo-backend\"\n{extra}"
        );
        let file = root.join("devenv.toml");
        std::fs::write(&file, &text).unwrap_or_else(|e| panic!("{e}"));
        let cfg = crate::config::parse(Path::new("devenv.toml"), &file, &text)
            .unwrap_or_else(|e| panic!("{e}"))
            .config;
        (dir, cfg)
    }

    fn built() -> BTreeMap<String, (String, String)> {
        BTreeMap::from([(
            "todo-backend".to_owned(),
            ("todo-backend".to_owned(), "devenv-aaa".to_owned()),
        )])
    }

    fn rendered(text: &str) -> Vec<Object> {
        objects::documents(text)
            .unwrap_or_else(|e| panic!("{e}"))
            .into_iter()
            .map(|doc| Object {
                origin: doc.source.clone().unwrap_or_else(|| "chart".into()),
                home: "default".into(),
                home_is: "[deploy] namespace".into(),
                doc,
            })
            .collect()
    }

    const DEPLOY: &str = "---\n# Source: todo/templates/backend.yaml\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: todo-backend\nspec:\n  template:\n    spec:\n      containers:\n      - name: backend\n        image: IMAGE\n        POLICY\n        env:\n        - name: DB\n          valueFrom:\n            secretKeyRef:\n              name: todo-secrets\n              key: KEY\n";

    fn deploy(image: &str, policy: &str, key: &str) -> String {
        DEPLOY
            .replace("IMAGE", image)
            .replace("POLICY", policy)
            .replace("KEY", key)
    }

    fn run(cfg: &Config, text: &str) -> Findings {
        analyze(cfg, &built(), vec![(0, rendered(text))], true, Vec::new())
    }

    fn messages(f: &Findings) -> Vec<String> {
        f.diagnostics.iter().map(ToString::to_string).collect()
    }

    /// Issue 25: `config check` judges the manifests the plan read, not a second read of
    /// the files: a file changed between the two cannot make them disagree.
    #[test]
    fn the_check_reads_the_manifests_the_plan_read() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let root = dir.path();
        let manifest = |name: &str| {
            format!(
                "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {name}\nspec:\n  template:\n    spec:\n      containers:\n      - name: api\n        image: api\n"
            )
        };
        std::fs::create_dir_all(root.join("api")).unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(root.join("api/Dockerfile"), "FROM scratch\n")
            .unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(root.join("k8s.yaml"), manifest("api")).unwrap_or_else(|e| panic!("{e}"));
        let text = "[project]\nname = \"demo\"\n[[image]]\nname = \"api\"\ncontext = \"api\"\n[deploy]\nmanifests = [\"k8s.yaml\"]\n[[resource]]\nname = \"api\"\nworkload = \"deployment/api\"\n";
        let file = root.join("devenv.toml");
        std::fs::write(&file, text).unwrap_or_else(|e| panic!("{e}"));
        let cfg = crate::config::parse(Path::new("devenv.toml"), &file, text)
            .unwrap_or_else(|e| panic!("{e}"))
            .config;
        let plan = crate::plan::compute(&cfg, "devenv.toml").unwrap_or_else(|e| panic!("{e}"));
        assert!(check(&cfg, &plan).diagnostics.is_empty());
        std::fs::write(root.join("k8s.yaml"), manifest("renamed"))
            .unwrap_or_else(|e| panic!("{e}"));
        let f = check(&cfg, &plan);
        assert!(f.diagnostics.is_empty(), "{:?}", messages(&f));
    }

    #[test]
    fn a_chart_that_takes_the_tag_and_reads_known_keys_is_fine() {
        let (_d, cfg) = project("");
        let f = run(
            &cfg,
            &deploy(
                "todo-backend:devenv-aaa",
                "imagePullPolicy: IfNotPresent",
                "DATABASE_URL",
            ),
        );
        assert!(f.diagnostics.is_empty(), "{:?}", messages(&f));
    }

    /// Issue 15, point 2: a pinned tag (the chart ignores the tag key) is an error at the
    /// `tag` key of devenv.toml, naming the template.
    #[test]
    fn a_pinned_tag_is_an_error_at_the_tag_key_naming_the_template() {
        let (_d, cfg) = project("");
        let f = run(
            &cfg,
            &deploy(
                "todo-backend:v3",
                "imagePullPolicy: IfNotPresent",
                "DATABASE_URL",
            ),
        );
        assert_eq!(f.errors(), 1, "{:?}", messages(&f));
        let d = &f.diagnostics[0];
        assert_eq!(
            (d.line, d.file.display().to_string()),
            (14, "devenv.toml".into())
        );
        assert!(d.message.starts_with("Deployment/todo-backend (from todo/templates/backend.yaml) container `backend` runs `todo-backend:v3`, not devenv's `todo-backend:devenv-aaa`: the chart does not take the tag from `backend.image.tag`"), "{}", d.message);
    }

    #[test]
    fn an_image_no_container_runs_is_an_error() {
        let (_d, cfg) = project("");
        let f = run(
            &cfg,
            &deploy("other:1", "imagePullPolicy: IfNotPresent", "DATABASE_URL"),
        );
        assert!(
            messages(&f)
                .iter()
                .any(|m| m.contains("no container of the rendered chart runs `todo-backend`")),
            "{:?}",
            messages(&f)
        );
    }

    #[test]
    fn pull_policy_always_warns() {
        let (_d, cfg) = project("");
        let f = run(
            &cfg,
            &deploy(
                "todo-backend:devenv-aaa",
                "imagePullPolicy: Always",
                "DATABASE_URL",
            ),
        );
        assert_eq!(f.errors(), 0);
        assert!(
            messages(&f)[0].contains("imagePullPolicy: Always"),
            "{:?}",
            messages(&f)
        );
    }

    /// Issue 27: a workload that runs a tag of an image nothing here builds, while a
    /// Dockerfile of the project (`frontend/`, for `todo-frontend`) could build it, runs
    /// whatever the cluster has, not the project's code: `config check` says so (it was
    /// silent), naming the Dockerfile. An image from elsewhere (busybox) is no such case.
    #[test]
    fn a_workload_running_an_image_a_dockerfile_here_could_build_warns() {
        let (d, cfg) = project("");
        std::fs::create_dir_all(d.path().join("frontend")).unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(d.path().join("frontend/Dockerfile"), "FROM scratch\n")
            .unwrap_or_else(|e| panic!("{e}"));
        let web = "---\n# Source: todo/templates/frontend.yaml\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: todo-frontend\nspec:\n  template:\n    spec:\n      initContainers:\n      - name: wait\n        image: busybox:1.36\n      containers:\n      - name: web\n        image: todo-frontend:fixed3\n";
        let text = format!(
            "{}{web}",
            deploy("todo-backend:devenv-aaa", "", "DATABASE_URL")
        );
        let f = run(&cfg, &text);
        let m = messages(&f);
        let said: Vec<&String> = m
            .iter()
            .filter(|m| m.contains("no [[image]] builds"))
            .collect();
        assert_eq!(said.len(), 1, "{m:?}");
        assert!(said[0].starts_with("warning: "), "{m:?}");
        assert!(
            said[0].contains("Deployment/todo-frontend (from todo/templates/frontend.yaml) container `web` runs `todo-frontend:fixed3`")
                && said[0].contains("frontend/Dockerfile"),
            "{m:?}"
        );
    }

    /// Live update cannot write into a read-only root filesystem: a warning at `live_update`.
    #[test]
    fn live_update_into_a_read_only_root_filesystem_warns_at_the_key() {
        let (_d, cfg) = project_with("live_update = true\n", "");
        let ro = deploy("todo-backend:devenv-aaa", "", "DATABASE_URL").replace(
            "        env:\n",
            "        securityContext:\n          readOnlyRootFilesystem: true\n        env:\n",
        );
        let f = run(&cfg, &ro);
        let m = messages(&f);
        let hit: Vec<&String> = m
            .iter()
            .filter(|m| m.contains("readOnlyRootFilesystem: true"))
            .collect();
        assert_eq!(hit.len(), 1, "{m:#?}");
        assert!(
            hit[0].contains("devenv.toml:6:")
                && hit[0].contains(
                    "Deployment/todo-backend (from todo/templates/backend.yaml) container `backend`"
                )
                && hit[0].contains("set securityContext.readOnlyRootFilesystem to false"),
            "{}",
            hit[0]
        );
        assert_eq!(f.errors(), 0, "a warning, not an error: {m:#?}");
        // A writable one, or no live update, says nothing.
        let rw = ro.replace(
            "readOnlyRootFilesystem: true",
            "readOnlyRootFilesystem: false",
        );
        assert!(
            !messages(&run(&cfg, &rw))
                .iter()
                .any(|m| m.contains("readOnlyRoot"))
        );
        let (_d2, plain) = project("");
        assert!(
            !messages(&run(&plain, &ro))
                .iter()
                .any(|m| m.contains("readOnlyRoot"))
        );
    }

    /// Issue 15, point 2: a `workload` nothing renders (a typo) is an error at its key, with
    /// the rendered name as the hint.
    #[test]
    fn a_workload_nothing_renders_is_an_error_with_the_near_name() {
        let (_d, cfg) =
            project("[[resource]]\nname = \"api\"\nworkload = \"deployment/todo-backnd\"\n");
        let f = run(
            &cfg,
            &deploy(
                "todo-backend:devenv-aaa",
                "imagePullPolicy: IfNotPresent",
                "DATABASE_URL",
            ),
        );
        let m = messages(&f);
        assert_eq!(f.errors(), 1, "{m:?}");
        assert!(
            m[0].contains(
                "resource `api`: no deployment/todo-backnd is rendered or in the manifests"
            ),
            "{m:?}"
        );
        assert!(
            m[0].contains(
                "did you mean `deployment/todo-backend` (from todo/templates/backend.yaml)?"
            ),
            "{m:?}"
        );
        assert!(m[0].contains("devenv.toml:20:12"), "{m:?}");
    }

    /// Issue 15, point 3: a key a pod reads from a devenv-managed Secret that the .env
    /// lacks is an error naming the .env file, the key and the template; `keys` fixes it.
    #[test]
    fn a_secret_key_the_env_lacks_is_an_error_and_keys_can_rename() {
        let (_d, cfg) = project("");
        let f = run(
            &cfg,
            &deploy(
                "todo-backend:devenv-aaa",
                "imagePullPolicy: IfNotPresent",
                "database-url",
            ),
        );
        let m = messages(&f);
        assert_eq!(f.errors(), 1, "{m:?}");
        assert!(m[0].contains("Deployment/todo-backend (from todo/templates/backend.yaml) reads key `database-url` of Secret `todo-secrets`, which .env does not have"), "{m:?}");
        assert!(
            m[0].contains("keys = { \"database-url\" = \"DATABASE_URL\" }"),
            "{m:?}"
        );
        assert!(!m[0].contains("postgres://"), "no value is shown: {m:?}");
        // With the rename, the Secret has the key.
        let (_d, cfg) = project("");
        let text = std::fs::read_to_string(&cfg.file)
            .unwrap_or_default()
            .replace(
                "env_files = [\".env\"]",
                "env_files = [\".env\"]\nkeys = { \"database-url\" = \"DATABASE_URL\" }",
            );
        let cfg = crate::config::parse(Path::new("devenv.toml"), &cfg.file, &text)
            .unwrap_or_else(|e| panic!("{e}"))
            .config;
        let f = run(
            &cfg,
            &deploy(
                "todo-backend:devenv-aaa",
                "imagePullPolicy: IfNotPresent",
                "database-url",
            ),
        );
        assert!(f.diagnostics.is_empty(), "{:?}", messages(&f));
    }

    /// Issue 25 point 5: this check's own walker took an optional Secret for a required
    /// one; the pod starts without it, so nothing is said.
    #[test]
    fn an_optional_secret_nothing_makes_is_no_warning() {
        let (_d, cfg) = project("");
        let text = format!(
            "{}---\napiVersion: v1\nkind: Pod\nmetadata:\n  name: p\nspec:\n  containers:\n  - name: c\n    image: todo-backend:devenv-aaa\n    envFrom:\n    - secretRef:\n        name: elsewhere\n        optional: true\n",
            deploy(
                "todo-backend:devenv-aaa",
                "imagePullPolicy: IfNotPresent",
                "DATABASE_URL"
            )
        );
        let f = run(&cfg, &text);
        let m = messages(&f);
        assert!(!m.iter().any(|m| m.contains("elsewhere")), "{m:?}");
    }

    #[test]
    fn the_charts_own_namespace_and_secrets_nothing_makes_are_noticed() {
        let (_d, cfg) = project("");
        let text = format!(
            "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: todo\n{}---\napiVersion: v1\nkind: Pod\nmetadata:\n  name: p\nspec:\n  containers:\n  - name: c\n    image: todo-backend:devenv-aaa\n    envFrom:\n    - secretRef:\n        name: elsewhere\n",
            deploy(
                "todo-backend:devenv-aaa",
                "imagePullPolicy: IfNotPresent",
                "DATABASE_URL"
            )
        );
        let f = run(&cfg, &text);
        assert_eq!(f.own_namespaces, [("todo".to_owned(), "todo".to_owned())]);
        let m = messages(&f);
        assert_eq!(f.errors(), 0, "{m:?}");
        assert!(
            m.iter()
                .any(|m| m.contains("uses Secret `elsewhere`, which the chart does not make")),
            "{m:?}"
        );
    }
}
