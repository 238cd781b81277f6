//! `devenv init`: a devenv.toml for an existing repository, from what it holds. Reads the
//! Dockerfiles (contexts, stages, how the app reloads), the Helm chart (rendered: which
//! values keys carry each image, what the workloads are called, which Secrets and ports
//! they use) or the plain manifests, and the .env files; writes the config with comments
//! that say where each part came from, and checks it as `devenv config check` would.
//!
//! Owns the proposal and its text. Reads the repository and runs `helm template` (through
//! `exec`); writes only devenv.toml (keeping a replaced one as a backup) and a `.env` made
//! from its example when the pods need one and none exists. Never touches a cluster.

mod chart;
mod evidence;
mod images;
use crate::tree as scan;
mod workloads;
mod write;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde_norway::Value;

pub use chart::Keys;
use workloads::Objects;

/// What the user asked for.
#[derive(Debug, Clone)]
pub struct Options {
    pub dir: PathBuf,
    /// Print the config instead of writing it.
    pub print: bool,
    /// Replace an existing devenv.toml (kept as a backup).
    pub force: bool,
    /// Add `[[local]]` test commands.
    pub with_tests: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum InitError {
    #[error("{} is not a directory", .0.display())]
    NotADirectory(PathBuf),
    #[error("{} exists; devenv init does not replace it", .0.display())]
    Exists(PathBuf),
    #[error("cannot write {}: {source}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("helm is not installed here, and the chart {0} can only be read by rendering it")]
    NoHelm(String),
    #[error("the chart {chart} does not render: {why}")]
    Render { chart: String, why: String },
    #[error("found nothing to run: no Dockerfile, no Helm chart and no manifests under {}", .0.display())]
    Nothing(PathBuf),
    /// The config model would not serialise (a bug of devenv's, said rather than hidden).
    #[error("cannot write the config as TOML: {0}")]
    Serialise(String),
}

impl InitError {
    pub fn hint(&self) -> Option<String> {
        match self {
            InitError::Exists(_) => Some(
                "`devenv init --print` shows what it would write; --force replaces the file and keeps the old one as devenv.toml.bak".into(),
            ),
            InitError::NoHelm(_) => Some("`devenv doctor` says how to install helm".into()),
            InitError::Render { .. } => Some(
                "fix the chart (or run `helm dependency build` for its dependencies) and run devenv init again".into(),
            ),
            InitError::Nothing(_) => Some(
                "run devenv init in the repository's root, or write devenv.toml by hand (docs/config.md)".into(),
            ),
            _ => None,
        }
    }
}

/// One line of what init found, guessed or did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    pub kind: &'static str,
    pub text: String,
}

/// What init did.
#[derive(Debug)]
pub struct Outcome {
    pub text: String,
    pub path: PathBuf,
    pub notes: Vec<Note>,
    /// `config check`'s findings on the text, and how many are errors.
    pub check: Vec<String>,
    pub errors: usize,
    pub written: bool,
}

/// An image to build.
#[derive(Debug, Clone)]
pub struct ImageOut {
    pub name: String,
    pub found: images::Found,
    /// How its name was chosen, when not from its directory.
    pub name_why: Option<String>,
}

#[derive(Debug, Clone)]
pub struct HelmOut {
    pub chart: PathBuf,
    pub chart_name: String,
    pub release: String,
    pub values: Vec<PathBuf>,
    /// `(image, keys, where the keys were seen)`.
    pub entries: Vec<(String, Keys, Vec<String>)>,
    pub from_env: Option<FromEnv>,
}

/// Chart values that go into the Secrets the chart makes, taken from a .env file.
#[derive(Debug, Clone)]
pub struct FromEnv {
    /// The .env file (made from `example` when it is not there).
    pub env_file: PathBuf,
    pub example: Option<PathBuf>,
    /// `(values key, .env key)`, in the order the Secrets take them.
    pub keys: Vec<(String, String)>,
    /// The Secrets they go into.
    pub secrets: Vec<String>,
}

#[derive(Debug, Clone)]
pub enum DeployOut {
    /// The charts, each its own release.
    Helm(Vec<HelmOut>),
    Manifests(Vec<String>),
}

#[derive(Debug, Clone)]
pub struct SecretOut {
    pub name: String,
    pub env_file: PathBuf,
    pub keys: BTreeMap<String, String>,
    pub readers: Vec<String>,
    pub example: Option<PathBuf>,
}

#[derive(Debug, Clone)]
pub struct ResourceOut {
    pub name: String,
    pub workload: String,
    pub namespace: Option<String>,
    pub images: Vec<String>,
    pub forwards: Vec<(u16, u16)>,
    pub depends_on: Vec<String>,
    /// The Helm release that renders it, when there are several.
    pub release: Option<String>,
    /// Those of `depends_on` a Tiltfile's `resource_deps` name.
    pub said_deps: Vec<String>,
    /// The workloads it waits for that share its Helm release (no depends_on needed).
    pub waits_in_release: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct LocalOut {
    pub name: String,
    pub cmd: Option<String>,
    pub serve_cmd: Option<String>,
    pub workdir: PathBuf,
    pub deps: Vec<PathBuf>,
    pub depends_on: Vec<String>,
    /// Run only when triggered (the test commands).
    pub manual: bool,
    /// Where the repository says it: `Tiltfile:3 local_resource('gen', …)`.
    pub from: Option<String>,
}

/// Everything the written file says.
#[derive(Debug, Clone)]
pub struct Proposal {
    pub root: PathBuf,
    pub project: String,
    pub namespace: String,
    pub namespace_why: String,
    pub images: Vec<ImageOut>,
    pub secrets: Vec<SecretOut>,
    pub deploy: Option<DeployOut>,
    pub resources: Vec<ResourceOut>,
    pub locals: Vec<LocalOut>,
    pub web_port: Option<u16>,
}

impl Proposal {
    /// The .env files init makes from their examples (for `[[secret]]`s and chart values),
    /// each once: `(file, example)`.
    pub fn env_to_make(&self) -> Vec<(&Path, &Path)> {
        let helm: Vec<&FromEnv> = match &self.deploy {
            Some(DeployOut::Helm(h)) => h.iter().filter_map(|h| h.from_env.as_ref()).collect(),
            _ => Vec::new(),
        };
        let mut out: Vec<(&Path, &Path)> = Vec::new();
        let all = self
            .secrets
            .iter()
            .filter_map(|s| Some((s.env_file.as_path(), s.example.as_deref()?)))
            .chain(
                helm.into_iter()
                    .filter_map(|f| Some((f.env_file.as_path(), f.example.as_deref()?))),
            );
        for (file, example) in all {
            if !out.iter().any(|(f, _)| *f == file) {
                out.push((file, example));
            }
        }
        out
    }
}

/// The default `[web] port`.
const WEB_PORT: u16 = crate::config::DEFAULT_WEB_PORT;

/// The project's name: its directory's, with the parent's in front when the directory's alone
/// names nothing of its own (`3-recommended`, `app`, `example`), so that sibling examples
/// (`python/3-recommended`, `go/3-recommended`) do not share a name, a namespace and a Helm
/// release, each `up` replacing the other's objects.
fn project_name(root: &Path) -> String {
    const GENERIC: &[&str] = &[
        "app",
        "src",
        "code",
        "example",
        "examples",
        "demo",
        "project",
        "sample",
        "workspace",
    ];
    let leaf = |p: &Path| {
        p.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    };
    let name = leaf(root);
    let generic = !name.starts_with(|c: char| c.is_ascii_alphabetic())
        || GENERIC.contains(&name.to_ascii_lowercase().as_str());
    match root.parent().map(leaf).filter(|p| !p.is_empty()) {
        Some(parent) if generic => label(&format!("{parent}-{name}")),
        _ => label(&name),
    }
}

/// A DNS label from a directory's name: lower case, `-` for anything else.
fn label(name: &str) -> String {
    let mut out = String::new();
    for c in name.chars() {
        let c = c.to_ascii_lowercase();
        if c.is_ascii_alphanumeric() {
            out.push(c);
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    let out: String = out.trim_matches('-').chars().take(40).collect();
    let out = out.trim_end_matches('-').to_owned();
    if out.is_empty() || !out.starts_with(|c: char| c.is_ascii_alphabetic()) {
        format!("app{}", if out.is_empty() { "" } else { "-" }) + &out
    } else {
        out
    }
}

/// `p` relative to `root`, with `/` (`.` for the root itself).
pub fn rel(root: &Path, p: &Path) -> String {
    match p.strip_prefix(root) {
        Ok(r) if r.as_os_str().is_empty() => ".".to_owned(),
        Ok(r) => r
            .components()
            .map(|c| c.as_os_str().to_string_lossy())
            .collect::<Vec<_>>()
            .join("/"),
        Err(_) => p.display().to_string(),
    }
}

/// The last path component of a repository, lower case (`acme/todo-api` -> `todo-api`).
fn repo_name(repository: &str) -> String {
    crate::objects::repository_of(repository)
        .rsplit('/')
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase()
}

/// Whether `word` is one of the `-`/`_`-separated parts of `text`, or all of it.
fn has_part(text: &str, word: &str) -> bool {
    !word.is_empty() && (text == word || text.split(['-', '_', '.', '/']).any(|p| p == word))
}

/// How well a container (its image's repository, its name, its object's name, its values
/// keys) fits an image; 0 for not at all.
fn fit(img: &ImageOut, repository: &str, container: &str, object: &str, keys: &str) -> u32 {
    let svc = img.found.service.as_str();
    let repo = repo_name(repository);
    let by_repo = if repo == img.name || repo == svc || repository == img.name {
        4
    } else if has_part(&repo, svc) {
        3
    } else {
        0
    };
    let by_name = if container == svc || has_part(object, svc) {
        2
    } else {
        0
    };
    let by_keys = if keys.split(['.', '[']).any(|k| k.eq_ignore_ascii_case(svc)) {
        2
    } else {
        0
    };
    // A repository named otherwise (`busybox` in a frontend's init container) is another
    // image, unless both the names and the keys say this one (a placeholder repository).
    if by_repo == 0 && !repo.is_empty() && (by_name == 0 || by_keys == 0 && !keys.is_empty()) {
        return 0;
    }
    by_repo + by_name + by_keys
}

/// The images (not among `taken`) whose Dockerfile EXPOSEs one of `ports`, with the port.
fn by_port(images: &[ImageOut], taken: &BTreeSet<usize>, ports: &[u16]) -> Vec<(usize, u16)> {
    images
        .iter()
        .enumerate()
        .filter(|(i, _)| !taken.contains(i))
        .filter_map(|(i, img)| {
            let port = img.found.exposes.iter().find(|p| ports.contains(p))?;
            Some((i, *port))
        })
        .collect()
}

/// The image each container belongs to, by best fit (ties to the first image).
fn best_fit(images: &[ImageOut], score: impl Fn(&ImageOut) -> u32) -> Option<(usize, u32)> {
    let mut best: Option<(usize, u32)> = None;
    for (i, img) in images.iter().enumerate() {
        let s = score(img);
        if s > 0 && best.is_none_or(|(_, b)| s > b) {
            best = Some((i, s));
        }
    }
    best
}

/// A removed-on-drop directory for the sentinel values.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> std::io::Result<Scratch> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let p = std::env::temp_dir().join(format!("devenv-init-{}-{nanos}", std::process::id()));
        std::fs::create_dir(&p)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o700))?;
        }
        Ok(Scratch(p))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Whether 127.0.0.1:`port` can be bound now.
fn port_free(port: u16) -> bool {
    std::net::TcpListener::bind(("127.0.0.1", port)).is_ok()
}

/// A free local port for `remote`: the same number when it is 1024 or above, else 8000 more
/// (80 -> 8080), the next one up while taken.
fn local_port(remote: u16, used: &BTreeSet<u16>, free: &dyn Fn(u16) -> bool) -> Option<u16> {
    let start = if remote >= 1024 {
        remote
    } else {
        remote.saturating_add(8000)
    };
    (start..=u16::MAX)
        .take(200)
        .find(|p| !used.contains(p) && *p != WEB_PORT && free(*p))
}

/// Reads the repository under `root` and proposes its config; `free` says whether a local
/// port can be bound.
pub fn propose(
    root: &Path,
    with_tests: bool,
    free: &dyn Fn(u16) -> bool,
    notes: &mut Vec<Note>,
) -> Result<Proposal, InitError> {
    let mut note = |kind: &'static str, text: String| notes.push(Note { kind, text });
    let project = project_name(root);
    let tree = scan::scan(root);
    if tree.cut {
        note(
            "warning",
            format!(
                "the repository has more than {} entries; what lies past them was not read",
                tree.entries - 1
            ),
        );
    }
    for d in &tree.linked_dirs {
        note(
            "left out",
            format!(
                "{}: a symbolic link to a directory, not followed (it may lead out of the repository)",
                rel(root, d)
            ),
        );
    }
    for (d, why) in &tree.unreadable {
        note(
            "left out",
            format!("{}: a directory that cannot be read ({why})", rel(root, d)),
        );
    }
    // What the repository says of itself (a Tiltfile, compose, skaffold, build scripts).
    let ev = evidence::read(&tree);
    for n in &ev.not_carried {
        note("left out", n.clone());
    }
    // Images, one per Dockerfile kept.
    let (chosen, left) = images::chosen(&tree);
    for (f, why) in &left {
        note("left out", format!("{}: {why}", rel(root, f)));
    }
    let mut images: Vec<ImageOut> = Vec::new();
    for f in &chosen {
        if crate::tree::read_in(root, f).is_none() {
            note(
                "left out",
                format!(
                    "{}: not a regular file of the repository of at most 1 MiB (a link, a FIFO or a device)",
                    rel(root, f)
                ),
            );
            continue;
        }
        let mut found = images::read(&tree, f, &project);
        // The repository's own name for it comes first.
        let said = ev
            .build_of(&found.dockerfile)
            .filter(|b| crate::config::units::check_image_name(&b.image).is_ok());
        let base = match said {
            Some(b) => b.image.clone(),
            None if found.service == project => project.clone(),
            None => format!("{project}-{}", label(&found.service)),
        };
        let mut name = base.clone();
        let mut n = 2;
        while images.iter().any(|i| i.name == name) {
            name = format!("{base}-{n}");
            n += 1;
        }
        let mut name_why = None;
        if let Some(b) = said {
            if b.context != found.context && b.context.starts_with(root) && b.context.is_dir() {
                found.context.clone_from(&b.context);
                found.context_why = format!("as {} says", b.from);
            }
            if !b.entrypoint.is_empty() {
                found.dev_command.clone_from(&b.entrypoint);
                found.live_why = format!(
                    "{} runs `{}` in place of its ENTRYPOINT and CMD: dev_command",
                    b.from,
                    b.entrypoint.join(" ")
                );
            }
            if b.live_update {
                found.live_update = true;
                found.live_why.push_str(&format!(
                    "{}{} gives it live_update steps; devenv syncs what the Dockerfile's COPY lines put in",
                    if found.live_why.is_empty() { "" } else { ". " },
                    b.from
                ));
            }
            name_why = Some(format!("{} builds it as `{}`", b.from, b.image));
            note(
                "found",
                format!(
                    "{}: image `{name}` from {}",
                    b.from,
                    rel(root, &found.dockerfile)
                ),
            );
        }
        images.push(ImageOut {
            name,
            found,
            name_why,
        });
    }
    // The deploy: a chart, else manifests.
    let mut charts = tree.charts.clone();
    // helm reads the chart's files itself (following links): each one init gives it is a
    // regular file of the repository, or the chart is left out (a FIFO would hang helm, a
    // link to /dev/zero would fill it).
    charts.retain(|c| {
        let files = [c.join("Chart.yaml"), c.join("values.yaml")]
            .into_iter()
            .chain(chart::dev_values(c, root));
        for f in files {
            if f.symlink_metadata().is_err() {
                continue;
            }
            let inside = std::fs::canonicalize(&f).is_ok_and(|p| p.starts_with(root));
            let regular = std::fs::metadata(&f)
                .is_ok_and(|m| m.is_file() && m.len() <= crate::tree::MAX_FILE);
            if !inside || !regular {
                note(
                    "left out",
                    format!(
                        "chart {}: {} is not a regular file of the repository of at most 1 MiB (a FIFO, a device, or a link out of it)",
                        rel(root, c),
                        rel(root, &f)
                    ),
                );
                return false;
            }
        }
        true
    });
    charts.sort_by_key(|c| {
        let by_name = chart::name(c).is_some_and(|n| label(&n) == project);
        (!by_name, c.components().count(), c.clone())
    });
    let mut namespace = project.clone();
    let mut namespace_why = "the project's name".to_owned();
    let mut deploy = None;
    let mut objects = Objects::default();
    // Which image each workload runs: workload reference -> image names.
    let mut runs: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut release_scoped = false;
    let release = project.clone();
    // The release that renders each workload (workload reference -> release name).
    let mut released_by: BTreeMap<String, String> = BTreeMap::new();
    if !charts.is_empty() {
        if which::which("helm").is_err() {
            return Err(InitError::NoHelm(rel(root, &charts[0])));
        }
        // One chart is released under the project's name; several each under their own.
        let mut releases: Vec<String> = Vec::new();
        for c in &charts {
            let mut name = if charts.len() == 1 {
                release.clone()
            } else {
                release_name(
                    &project,
                    &chart::name(c).unwrap_or_else(|| label(&rel(root, c))),
                )
            };
            let base = name.clone();
            let mut n = 2;
            while releases.contains(&name) {
                name = format!("{}-{n}", base.chars().take(50).collect::<String>());
                n += 1;
            }
            releases.push(name);
        }
        let mut outs = Vec::new();
        for (c, release) in charts.iter().zip(&releases) {
            let (out, found) = chart_release(
                root,
                &tree,
                c,
                release,
                &mut namespace,
                &mut namespace_why,
                &images,
                &mut runs,
                &mut note,
            )?;
            for w in &found.workloads {
                released_by.insert(w.reference(), release.clone());
            }
            objects.extend(found);
            outs.push(out);
        }
        release_scoped = true;
        deploy = Some(DeployOut::Helm(outs));
    } else if let Some((files, docs)) = manifest_objects(root, &tree, &mut note) {
        objects = workloads::read(&docs);
        let spaces: BTreeSet<&str> = objects
            .workloads
            .iter()
            .filter_map(|w| w.namespace.as_deref())
            .collect();
        if let [ns] = spaces.iter().copied().collect::<Vec<_>>().as_slice() {
            namespace = (*ns).to_owned();
            namespace_why = "the namespace the manifests name".into();
        } else if let [ns] = objects.namespaces.as_slice() {
            namespace.clone_from(ns);
            namespace_why = "the Namespace the manifests make".into();
        }
        // An image built here takes the repository the manifests name, so that devenv
        // puts its builds there.
        let mut named: BTreeMap<usize, (String, u32)> = BTreeMap::new();
        let mut repos_of: Vec<(String, String)> = Vec::new();
        for w in &objects.workloads {
            for c in w.containers.iter().chain(&w.init_containers) {
                let repo = crate::objects::repository_of(&c.image).to_owned();
                repos_of.push((w.reference(), repo.clone()));
                if let Some((i, s)) = best_fit(&images, |img| fit(img, &repo, &c.name, &w.name, ""))
                    && named.get(&i).is_none_or(|(_, b)| s > *b)
                {
                    named.insert(i, (repo, s));
                }
            }
        }
        let distinct: BTreeSet<&str> = repos_of.iter().map(|(_, r)| r.as_str()).collect();
        if named.is_empty() && images.len() == 1 && distinct.len() == 1 {
            let repo = distinct
                .iter()
                .next()
                .map(|r| (*r).to_owned())
                .unwrap_or_default();
            note(
                "guessed",
                format!("the manifests run `{repo}`; the only image built here stands for it"),
            );
            named.insert(0, (repo, 1));
        }
        for (i, (repo, _)) in &named {
            if crate::config::units::check_image_name(repo).is_ok() && images[*i].name != *repo {
                images[*i].name_why = Some(format!("the manifests run `{repo}`"));
                images[*i].name.clone_from(repo);
            }
        }
        for (w, repo) in &repos_of {
            if let Some(img) = images.iter().find(|i| i.name == *repo) {
                runs.entry(w.clone()).or_default().insert(img.name.clone());
            }
        }
        deploy = Some(DeployOut::Manifests(manifest_patterns(root, &files)));
    }
    if deploy.is_none() && images.is_empty() {
        return Err(InitError::Nothing(root.to_path_buf()));
    }
    // Images nothing deploys are left out: devenv would build them for nothing.
    if deploy.is_some() {
        let used: BTreeSet<&String> = runs.values().flatten().collect();
        let (keep, drop): (Vec<ImageOut>, Vec<ImageOut>) =
            images.into_iter().partition(|i| used.contains(&i.name));
        for d in drop {
            let twin = keep
                .iter()
                .find(|k| k.found.service == d.found.service)
                .map(|k| {
                    format!(
                        "another Dockerfile of `{}`, {}, builds the image its workloads run{}",
                        d.found.service,
                        rel(root, &k.found.dockerfile),
                        if k.found.exposes.is_empty() {
                            String::new()
                        } else {
                            format!(
                                " (it EXPOSEs {}, the port they listen on)",
                                k.found
                                    .exposes
                                    .iter()
                                    .map(u16::to_string)
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            )
                        }
                    )
                });
            note(
                "left out",
                format!(
                    "{}: {}",
                    rel(root, &d.found.dockerfile),
                    twin.unwrap_or_else(|| "no workload runs its image".to_owned())
                ),
            );
        }
        images = keep;
    }
    // Resources: every workload.
    let mut resources: Vec<ResourceOut> = Vec::new();
    let mut used_ports: BTreeSet<u16> = BTreeSet::new();
    let web_port = if free(WEB_PORT) {
        None
    } else {
        let p = (WEB_PORT + 1..WEB_PORT + 200).find(|p| free(*p));
        if let Some(p) = p {
            note(
                "guessed",
                format!("port {WEB_PORT} is taken here: the status page gets {p}"),
            );
        }
        p
    };
    if let Some(p) = web_port {
        used_ports.insert(p);
    }
    let mut names: BTreeMap<String, String> = BTreeMap::new();
    let several = matches!(&deploy, Some(DeployOut::Helm(c)) if c.len() > 1);
    for w in &objects.workloads {
        let short = released_by
            .get(&w.reference())
            .and_then(|rel| w.name.strip_prefix(&format!("{rel}-")))
            .filter(|s| release_scoped && !s.is_empty())
            .unwrap_or(&w.name);
        let mut name = short.to_owned();
        let mut n = 2;
        while names.values().any(|v| *v == name) {
            name = format!("{short}-{n}");
            n += 1;
        }
        names.insert(w.reference(), name);
    }
    for w in &objects.workloads {
        let mut forwards = Vec::new();
        for remote in objects.ports_of(w).into_iter().take(5) {
            match local_port(remote, &used_ports, free) {
                Some(local) => {
                    used_ports.insert(local);
                    forwards.push((local, remote));
                }
                None => note(
                    "problem",
                    format!("{}: no free local port for {remote}", w.reference()),
                ),
            }
        }
        // What its init containers wait for: in its own release, the chart orders them; in
        // another release (or manifests), devenv does (depends_on).
        let mut waits: Vec<String> = Vec::new();
        let mut depends_on: Vec<String> = Vec::new();
        for o in objects.waited_for(w) {
            let Some(x) = objects.workloads.iter().find(|x| x.name == o) else {
                continue;
            };
            let Some(name) = names.get(&x.reference()).cloned() else {
                continue;
            };
            let same = release_scoped
                && released_by.get(&x.reference()) == released_by.get(&w.reference());
            if same {
                waits.push(name);
            } else {
                depends_on.push(name);
            }
        }
        // What the Tiltfile says it waits for (a local step, another workload) comes first.
        let mut said: Vec<String> = Vec::new();
        for d in ev.resource_deps.get(&w.name).into_iter().flatten() {
            let dep = if ev.locals.iter().any(|l| l.name == *d) {
                Some(d.clone())
            } else {
                objects
                    .workloads
                    .iter()
                    .find(|x| x.name == *d)
                    .and_then(|x| names.get(&x.reference()).cloned())
            };
            if let Some(dep) = dep.filter(|dep| !said.contains(dep)) {
                said.push(dep);
            }
        }
        depends_on.retain(|d| !said.contains(d));
        let said_deps = said.clone();
        said.append(&mut depends_on);
        let depends_on = said;
        let ns = w.namespace.clone().filter(|n| *n != namespace);
        resources.push(ResourceOut {
            name: names.get(&w.reference()).cloned().unwrap_or_default(),
            workload: w.reference(),
            namespace: ns,
            images: images
                .iter()
                .filter(|i| {
                    runs.get(&w.reference())
                        .is_some_and(|r| r.contains(&i.name))
                })
                .map(|i| i.name.clone())
                .collect(),
            forwards,
            depends_on,
            said_deps,
            release: released_by.get(&w.reference()).filter(|_| several).cloned(),
            waits_in_release: waits,
        });
    }
    // Secrets the pods read that nothing here makes.
    let secrets = secrets(root, &tree, &objects, &images, &runs, &mut note);
    let mut locals: Vec<LocalOut> = ev
        .locals
        .iter()
        .filter(|l| l.workdir.starts_with(root))
        .map(|l| {
            note("found", format!("{}: [[local]] `{}`", l.from, l.name));
            LocalOut {
                name: l.name.clone(),
                cmd: l.cmd.clone(),
                serve_cmd: l.serve_cmd.clone(),
                workdir: l.workdir.clone(),
                deps: l
                    .deps
                    .iter()
                    .filter(|d| d.starts_with(root) && d.exists())
                    .cloned()
                    .collect(),
                depends_on: ev
                    .resource_deps
                    .get(&l.name)
                    .into_iter()
                    .flatten()
                    .filter(|d| ev.locals.iter().any(|o| o.name == **d))
                    .cloned()
                    .collect(),
                manual: false,
                from: Some(l.from.clone()),
            }
        })
        .collect();
    if with_tests {
        for t in locals_for_tests(root, &tree) {
            if !locals.iter().any(|l| l.name == t.name) {
                locals.push(t);
            }
        }
    }
    Ok(Proposal {
        root: root.to_path_buf(),
        project,
        namespace,
        namespace_why,
        images,
        secrets,
        deploy,
        resources,
        locals,
        web_port,
    })
}

/// A release name for a chart among several: the chart's name, with the project's in front
/// when it does not start with it (`todo` + `backend` -> `todo-backend`), at most 53
/// characters (Helm's limit).
fn release_name(project: &str, chart: &str) -> String {
    let chart = label(chart);
    let name = if chart == project || chart.starts_with(&format!("{project}-")) {
        chart
    } else {
        format!("{project}-{chart}")
    };
    name.chars()
        .take(53)
        .collect::<String>()
        .trim_end_matches('-')
        .to_owned()
}

/// Reads one chart: renders it, finds which values keys carry each container's image and
/// which values go into its Secrets. The release init writes for it, and its objects.
#[allow(clippy::too_many_arguments)]
fn chart_release(
    root: &Path,
    tree: &scan::Tree,
    c: &Path,
    release: &str,
    namespace: &mut String,
    namespace_why: &mut String,
    images: &[ImageOut],
    runs: &mut BTreeMap<String, BTreeSet<String>>,
    note: &mut dyn FnMut(&'static str, String),
) -> Result<(HelmOut, Objects), InitError> {
    let values: Vec<PathBuf> = chart::dev_values(c, root).into_iter().collect();
    let chart_rel = PathBuf::from(rel(root, c));
    let values_rel: Vec<PathBuf> = values.iter().map(|v| PathBuf::from(rel(root, v))).collect();
    let render_err = |why: String| InitError::Render {
        chart: rel(root, c),
        why,
    };
    let text =
        chart::render(root, release, &chart_rel, namespace, &values_rel).map_err(render_err)?;
    let docs = chart::objects(&text).map_err(render_err)?;
    let objects = workloads::read(&docs);
    if let [ns] = objects.namespaces.as_slice() {
        namespace.clone_from(ns);
        *namespace_why = "the Namespace the chart renders".into();
    }
    let scratch = Scratch::new().map_err(|source| InitError::Write {
        path: std::env::temp_dir(),
        source,
    })?;
    let chart::Marked {
        uses,
        unsettable,
        secret_values,
    } = chart::image_keys(
        root,
        release,
        &chart_rel,
        namespace,
        &values_rel,
        &scratch.0,
        &docs,
    )
    .map_err(render_err)?;
    for u in &unsettable {
        note(
            "problem",
            format!(
                "{} container `{}`: {}; devenv cannot give it its builds",
                u.object, u.container, u.why
            ),
        );
    }
    // Each container taking its image from the values goes to the image it fits best.
    let mut entries: Vec<(String, Keys, Vec<String>)> = Vec::new();
    // The repositories the values give now: when there is one and one image is built
    // here, that image stands for it (however the chart calls it).
    let distinct: BTreeSet<&str> = uses
        .iter()
        .map(|u| u.repository.as_str())
        .filter(|r| !r.is_empty())
        .collect();
    let keys_text = |u: &chart::KeyUse| match &u.keys {
        Keys::RepositoryAndTag { repository, .. } => repository.clone(),
        Keys::Reference(k) => k.clone(),
    };
    // Of images that fit by name alike (two Dockerfiles of one service), the one that
    // EXPOSEs a port the container listens on.
    let by_name = |u: &chart::KeyUse| {
        best_fit(images, |img| {
            let s = fit(img, &u.repository, &u.container, &u.object, &keys_text(u));
            let port = img.found.exposes.iter().any(|p| u.ports.contains(p));
            2 * s + u32::from(s > 0 && port)
        })
        .map(|(i, _)| i)
    };
    // Images no container fits by name may still pair by port: the one Dockerfile that
    // EXPOSEs a port the container listens on.
    let named_images: BTreeSet<usize> = uses.iter().filter_map(by_name).collect();
    for u in &uses {
        let mut pick = by_name(u);
        if pick.is_none()
            && let [(i, port)] = by_port(images, &named_images, &u.ports).as_slice()
        {
            pick = Some(*i);
            note(
                "guessed",
                format!(
                    "{} container `{}` listens on port {port}, which {} EXPOSEs: it runs that image",
                    u.object,
                    u.container,
                    rel(root, &images[*i].found.dockerfile)
                ),
            );
        }
        if pick.is_none() && images.len() == 1 && distinct.len() == 1 {
            pick = Some(0);
            note(
                "guessed",
                format!(
                    "{} container `{}` runs `{}` from the values; the only image built here stands for it",
                    u.object, u.container, u.repository
                ),
            );
        }
        let Some(i) = pick else {
            continue;
        };
        let seen = format!("{} container `{}`", u.object, u.container);
        runs.entry(workload_ref(&u.kind, &u.object))
            .or_default()
            .insert(images[i].name.clone());
        match entries
            .iter_mut()
            .find(|(img, k, _)| *img == images[i].name && *k == u.keys)
        {
            Some(e) => e.2.push(seen),
            None => entries.push((images[i].name.clone(), u.keys.clone(), vec![seen])),
        }
    }
    // A values key is set by one entry only.
    let mut taken: BTreeMap<String, String> = BTreeMap::new();
    entries.retain(|(img, keys, _)| {
        let ks = match keys {
            Keys::RepositoryAndTag { repository, tag } => vec![repository.clone(), tag.clone()],
            Keys::Reference(k) => vec![k.clone()],
        };
        if let Some(owner) = ks.iter().find_map(|k| taken.get(k)) {
            note(
                "problem",
                format!(
                    "`{}` feeds both {owner} and {img}; it is given to {owner}",
                    ks[0]
                ),
            );
            return false;
        }
        for k in ks {
            taken.insert(k, img.clone());
        }
        true
    });
    let order = |name: &str| images.iter().position(|i| i.name == name);
    entries.sort_by(|a, b| (order(&a.0), &a.1).cmp(&(order(&b.0), &b.1)));
    let from_env = values_from_env(root, tree, c, &secret_values, note);
    Ok((
        HelmOut {
            chart: c.to_path_buf(),
            chart_name: chart::name(c).unwrap_or_default(),
            release: release.to_owned(),
            values,
            entries,
            from_env,
        },
        objects,
    ))
}

/// `kind` and `Kind/name` as a `[[resource]] workload` (`deployment/name`).
fn workload_ref(kind: &str, object: &str) -> String {
    let name = object.split_once('/').map_or(object, |(_, n)| n);
    format!("{}/{name}", kind.to_ascii_lowercase())
}

/// The manifest files as patterns: `dir/*.yaml` for a directory whose YAML files are all
/// kept, else the files.
fn manifest_patterns(root: &Path, files: &[String]) -> Vec<String> {
    let mut by_dir: BTreeMap<String, Vec<&String>> = BTreeMap::new();
    for f in files {
        let dir = f.rsplit_once('/').map_or(".", |(d, _)| d).to_owned();
        by_dir.entry(dir).or_default().push(f);
    }
    let mut out = Vec::new();
    for (dir, kept) in by_dir {
        let all: Vec<String> = std::fs::read_dir(root.join(&dir))
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".yaml") || n.ends_with(".yml"))
            .collect();
        let exts: BTreeSet<&str> = kept
            .iter()
            .map(|f| if f.ends_with(".yml") { "yml" } else { "yaml" })
            .collect();
        if kept.len() == all.len() && kept.len() > 1 {
            for e in exts {
                out.push(if dir == "." {
                    format!("*.{e}")
                } else {
                    format!("{dir}/*.{e}")
                });
            }
        } else {
            out.extend(kept.into_iter().cloned());
        }
    }
    out
}

/// Writes `content` to `path`, which must not exist (`O_EXCL`; a symbolic link there is not
/// followed), with `mode`.
fn new_file(path: &Path, content: &[u8], mode: u32) -> std::io::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)?;
    f.write_all(content)
}

/// The manifest files and their Kubernetes objects: every YAML file under a manifest
/// directory (each one left out is said, with why), and every other YAML file of the
/// repository that holds Kubernetes objects (the rest, a compose or CI file say, are not
/// manifests and go unsaid). None when there are none.
fn manifest_objects(
    root: &Path,
    tree: &scan::Tree,
    note: &mut impl FnMut(&'static str, String),
) -> Option<(Vec<String>, Vec<Value>)> {
    let mut candidates: Vec<(&PathBuf, bool)> = tree
        .manifests
        .iter()
        .map(|f| (f, true))
        .chain(tree.other_yaml.iter().map(|f| (f, false)))
        .collect();
    candidates.sort();
    let mut files = Vec::new();
    let mut docs: Vec<Value> = Vec::new();
    for (f, loud) in candidates {
        let text = repo_file(root, f).map(|b| String::from_utf8_lossy(&b).into_owned());
        let Some(parsed) = text.and_then(|t| crate::objects::documents(&t).ok()) else {
            if loud {
                note(
                    "left out",
                    format!(
                        "{}: not YAML devenv can read (or not a regular file of at most 1 MiB)",
                        rel(root, f)
                    ),
                );
            }
            continue;
        };
        let objs: Vec<Value> = parsed
            .into_iter()
            .map(|d| d.value)
            .filter(is_kubernetes_object)
            .collect();
        let kustomize = objs
            .iter()
            .any(|v| v.get("kind").and_then(Value::as_str) == Some("Kustomization"));
        if objs.is_empty() || kustomize {
            if loud || kustomize {
                note(
                    "left out",
                    format!(
                        "{}: {}",
                        rel(root, f),
                        if kustomize {
                            "a kustomization (devenv applies plain manifests)"
                        } else {
                            "holds no Kubernetes objects"
                        }
                    ),
                );
            }
            continue;
        }
        files.push(rel(root, f));
        docs.extend(objs);
    }
    (!tree.manifests.is_empty() || !files.is_empty()).then_some((files, docs))
}

/// A Kubernetes object: a string `apiVersion` and `kind`, and not another tool's config that
/// borrows their shape (skaffold.yaml's `skaffold/v4`, a Kind or k3d cluster file).
fn is_kubernetes_object(v: &Value) -> bool {
    let (Some(api), Some(_)) = (
        v.get("apiVersion").and_then(Value::as_str),
        v.get("kind").and_then(Value::as_str),
    ) else {
        return false;
    };
    let foreign = ["skaffold/", "kind.x-k8s.io/", "k3d.io/", "ctlptl.dev/"];
    !foreign.iter().any(|f| api.starts_with(f))
}

use crate::tree::read_in as repo_file;

/// Upper-case, `_`-separated: how a .env spells a key (`database-url` -> `DATABASE_URL`).
fn env_spelling(k: &str) -> String {
    k.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect()
}

/// A key as its letters and digits alone, in lower case: `databaseUrl`, `DATABASE_URL` and
/// `database-url` are one key.
fn squashed(k: &str) -> String {
    k.chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

/// The .env file for what lies at one of `near` (the contexts of a Secret's readers, a
/// chart): the repository root's, else the one in the deepest folder above one of them,
/// else the only one.
struct EnvFile {
    /// The .env file (which may not exist yet).
    file: PathBuf,
    /// Its example, to make it from, when the file is not there.
    example: Option<PathBuf>,
    /// The keys the file (or else its example) has.
    keys: BTreeSet<String>,
}

fn env_near(root: &Path, tree: &scan::Tree, near: &[&Path]) -> Option<EnvFile> {
    let dirs: BTreeSet<&Path> = tree.env_files.iter().filter_map(|f| f.parent()).collect();
    let dir = if dirs.contains(root) {
        root
    } else {
        match dirs
            .iter()
            .filter(|d| near.iter().any(|n| n.starts_with(d)))
            .max_by_key(|d| d.components().count())
        {
            Some(d) => d,
            None if dirs.len() == 1 => dirs.first()?,
            None => return None,
        }
    };
    let file = dir.join(".env");
    let present = file.is_file();
    let example = if present {
        None
    } else {
        tree.env_files
            .iter()
            .find(|f| f.parent() == Some(dir) && f.file_name().is_some_and(|n| n != ".env"))
            .cloned()
    };
    let keys = if present {
        Some(&file)
    } else {
        example.as_ref()
    }
    .and_then(|s| repo_file(root, s))
    .and_then(|b| String::from_utf8(b).ok())
    .and_then(|t| crate::deploy::dotenv::parse(&t).ok())
    .map(|p| p.values.0.into_keys().collect())
    .unwrap_or_default();
    Some(EnvFile {
        file,
        example,
        keys,
    })
}

/// The chart values that go into the Secrets the chart makes, each matched to the .env key
/// of the same name (the Secret's key's, else the value's own; case and style aside).
fn values_from_env(
    root: &Path,
    tree: &scan::Tree,
    chart: &Path,
    found: &[chart::SecretValue],
    note: &mut dyn FnMut(&'static str, String),
) -> Option<FromEnv> {
    if found.is_empty() {
        return None;
    }
    let Some(EnvFile {
        file: env_file,
        example,
        keys: have,
    }) = env_near(root, tree, &[chart])
    else {
        let secrets: BTreeSet<&str> = found.iter().map(|v| v.secret.as_str()).collect();
        note(
            "problem",
            format!(
                "the chart makes Secret{} {} from its values, and no .env file was found for them: write one and name its keys in [deploy.helm] values_from_env",
                if secrets.len() == 1 { "" } else { "s" },
                secrets
                    .iter()
                    .map(|s| format!("`{s}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        );
        return None;
    };
    let env_name = rel(root, example.as_deref().unwrap_or(&env_file));
    let mut keys: Vec<(String, String)> = Vec::new();
    let mut secrets: Vec<String> = Vec::new();
    for v in found {
        if keys.iter().any(|(k, _)| *k == v.values_key) {
            continue;
        }
        let matched = [&v.key, &v.name]
            .into_iter()
            .find_map(|want| have.iter().find(|h| squashed(h) == squashed(want)).cloned());
        match matched {
            Some(h) => {
                keys.push((v.values_key.clone(), h));
                if !secrets.contains(&v.secret) {
                    secrets.push(v.secret.clone());
                }
            }
            None => note(
                "problem",
                format!(
                    "Secret `{}` key `{}` takes the chart value `{}`, and {env_name} has no key for it: add one and name it in [deploy.helm] values_from_env",
                    v.secret, v.key, v.values_key
                ),
            ),
        }
    }
    if keys.is_empty() {
        return None;
    }
    note(
        "found",
        format!(
            "Secret{} {} take{} {} from {env_name}",
            if secrets.len() == 1 { "" } else { "s" },
            secrets
                .iter()
                .map(|s| format!("`{s}`"))
                .collect::<Vec<_>>()
                .join(", "),
            if secrets.len() == 1 { "s" } else { "" },
            keys.iter()
                .map(|(_, e)| e.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    );
    Some(FromEnv {
        example,
        env_file,
        keys,
        secrets,
    })
}

/// The `[[secret]]`s: each Secret the pods read that the objects do not make, from the .env
/// nearest to what reads it (the repository's root first).
fn secrets(
    root: &Path,
    tree: &scan::Tree,
    objects: &Objects,
    images: &[ImageOut],
    runs: &BTreeMap<String, BTreeSet<String>>,
    note: &mut dyn FnMut(&'static str, String),
) -> Vec<SecretOut> {
    // secret -> (keys read, readers)
    let mut wanted: BTreeMap<String, (BTreeSet<String>, BTreeSet<String>)> = BTreeMap::new();
    for w in &objects.workloads {
        for (s, key) in &w.secrets {
            if objects.secrets.contains(s) {
                continue;
            }
            let e = wanted.entry(s.clone()).or_default();
            e.1.insert(w.reference());
            if let Some(k) = key {
                e.0.insert(k.clone());
            }
        }
    }
    let mut out = Vec::new();
    for (secret, (keys, readers)) in wanted {
        // The contexts of the images its readers run: a .env there (or above) is theirs.
        let contexts: Vec<&Path> = readers
            .iter()
            .flat_map(|r| runs.get(r).into_iter().flatten())
            .filter_map(|n| images.iter().find(|i| i.name == *n))
            .map(|i| i.found.context.as_path())
            .collect();
        let Some(EnvFile {
            file: env,
            example,
            keys: have,
        }) = env_near(root, tree, &contexts)
        else {
            note(
                "problem",
                format!(
                    "{} read{} Secret `{secret}`, and no .env file was found for it: write one and name it in [[secret]] env_files",
                    readers.iter().cloned().collect::<Vec<_>>().join(", "),
                    if readers.len() == 1 { "s" } else { "" }
                ),
            );
            continue;
        };
        let mut renames = BTreeMap::new();
        for k in &keys {
            if have.contains(k) {
                continue;
            }
            match have.iter().find(|h| **h == env_spelling(k)) {
                Some(h) => {
                    renames.insert(k.clone(), h.clone());
                }
                None => note(
                    "problem",
                    format!(
                        "Secret `{secret}` needs key `{k}`, which {} does not have: add it",
                        rel(root, &env)
                    ),
                ),
            }
        }
        out.push(SecretOut {
            name: secret,
            env_file: env.clone(),
            keys: renames,
            readers: readers.into_iter().collect(),
            example,
        });
    }
    out
}

/// Test commands: pytest where Python tests are, `npm test` where package.json has one.
fn locals_for_tests(root: &Path, tree: &scan::Tree) -> Vec<LocalOut> {
    let mut out: Vec<LocalOut> = Vec::new();
    let py_dirs = |d: &Path| -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = std::fs::read_dir(d)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                p.is_dir()
                    && !p
                        .file_name()
                        .is_some_and(|n| n.to_string_lossy().starts_with('.'))
                    && std::fs::read_dir(p)
                        .into_iter()
                        .flatten()
                        .flatten()
                        .any(|e| e.file_name().to_string_lossy().ends_with(".py"))
            })
            .collect();
        v.sort();
        v
    };
    let mentions_pytest = |d: &Path| {
        ["pytest.ini", "conftest.py"]
            .iter()
            .any(|f| d.join(f).is_file())
            || std::fs::read_dir(d)
                .into_iter()
                .flatten()
                .flatten()
                .any(|e| {
                    let n = e.file_name().to_string_lossy().into_owned();
                    (n.starts_with("requirements") && n.ends_with(".txt")
                        || n == "pyproject.toml"
                        || n == "setup.cfg"
                        || n == "tox.ini")
                        && crate::tree::read_text(&e.path()).is_some_and(|t| t.contains("pytest"))
                })
    };
    for d in &tree.test_dirs {
        let name = d.file_name().map(|n| n.to_string_lossy().into_owned());
        // `tests/` itself is run from its parent.
        if name.as_deref().is_some_and(|n| n == "tests" || n == "test")
            && d.parent()
                .is_some_and(|p| tree.test_dirs.iter().any(|t| t == p))
        {
            continue;
        }
        let svc = if d == root {
            String::new()
        } else {
            label(name.as_deref().unwrap_or_default())
        };
        let named = |what: &str| {
            if svc.is_empty() {
                what.to_owned()
            } else {
                format!("{svc}-{what}")
            }
        };
        let has_tests_dir = d.join("tests").is_dir();
        if mentions_pytest(d) {
            let mut deps = py_dirs(d);
            if deps.is_empty() {
                deps.push(d.clone());
            }
            out.push(LocalOut {
                name: named("tests"),
                cmd: Some(if has_tests_dir {
                    "python3 -m pytest -q tests".into()
                } else {
                    "python3 -m pytest -q".into()
                }),
                serve_cmd: None,
                workdir: d.clone(),
                deps,
                depends_on: Vec::new(),
                manual: true,
                from: None,
            });
        }
        if let Some(text) = crate::tree::read_text(&d.join("package.json"))
            && let Ok(v) = serde_json::from_str::<serde_json::Value>(&text)
            && let Some(t) = v["scripts"]["test"].as_str()
            && !t.contains("no test specified")
        {
            let deps: Vec<PathBuf> = ["src", "app", "lib", "test", "tests", "__tests__"]
                .iter()
                .map(|s| d.join(s))
                .filter(|p| p.is_dir())
                .collect();
            let name = if out.iter().any(|l| l.name == named("tests")) {
                named("npm-tests")
            } else {
                named("tests")
            };
            out.push(LocalOut {
                name,
                cmd: Some("npm test".into()),
                serve_cmd: None,
                workdir: d.clone(),
                deps: if deps.is_empty() {
                    vec![d.clone()]
                } else {
                    deps
                },
                depends_on: Vec::new(),
                manual: true,
                from: None,
            });
        }
    }
    out
}

/// Runs init: proposes, writes (or not, with `print`) and checks.
pub fn init(opts: &Options) -> Result<Outcome, InitError> {
    let root = std::fs::canonicalize(&opts.dir)
        .ok()
        .filter(|p| p.is_dir())
        .ok_or_else(|| InitError::NotADirectory(opts.dir.clone()))?;
    let path = root.join("devenv.toml");
    // Anything there, a dangling symbolic link included, is the user's.
    let taken = |p: &Path| p.symlink_metadata().is_ok();
    if taken(&path) && !opts.force && !opts.print {
        return Err(InitError::Exists(path));
    }
    let mut notes = Vec::new();
    let proposal = propose(&root, opts.with_tests, &port_free, &mut notes)?;
    let text = write::toml(&proposal).map_err(InitError::Serialise)?;
    let mut written = false;
    if !opts.print {
        for (env_file, ex) in proposal.env_to_make() {
            if taken(env_file) {
                if env_file.is_symlink() {
                    notes.push(Note {
                        kind: "skipped",
                        text: format!(
                            "{} is a symbolic link: nothing is written through it",
                            rel(&root, env_file)
                        ),
                    });
                }
                continue;
            }
            // The example is read only as a regular file of the repository, never through a
            // link out of it (a private key beside it would be copied in).
            let Some(example) = repo_file(&root, ex) else {
                notes.push(Note {
                    kind: "skipped",
                    text: format!(
                        "{} not made: {} is not a regular file of the repository (a symbolic link, or too large)",
                        rel(&root, env_file),
                        rel(&root, ex)
                    ),
                });
                continue;
            };
            new_file(env_file, &example, 0o600).map_err(|source| InitError::Write {
                path: env_file.to_path_buf(),
                source,
            })?;
            notes.push(Note {
                kind: "created",
                text: format!(
                    "{} from {}: put your own values in it{}",
                    rel(&root, env_file),
                    rel(&root, ex),
                    ignored_hint(&root, env_file)
                ),
            });
        }
        if taken(&path) {
            let backup = backup_path(&path);
            std::fs::rename(&path, &backup).map_err(|source| InitError::Write {
                path: backup.clone(),
                source,
            })?;
            notes.push(Note {
                kind: "kept",
                text: format!("the old devenv.toml as {}", rel(&root, &backup)),
            });
        }
        // Made new and exclusively (never through whatever a repository put at that name),
        // then renamed over devenv.toml.
        let tmp = root.join(format!(
            ".devenv.toml.init.{}.{}",
            std::process::id(),
            crate::host::now_ms()
        ));
        new_file(&tmp, text.as_bytes(), 0o644)
            .and_then(|()| std::fs::rename(&tmp, &path))
            .map_err(|source| {
                let _ = std::fs::remove_file(&tmp);
                InitError::Write {
                    path: path.clone(),
                    source,
                }
            })?;
        written = true;
    } else {
        for (env_file, ex) in proposal.env_to_make() {
            notes.push(Note {
                kind: "would",
                text: format!("create {} from {}", rel(&root, env_file), rel(&root, ex)),
            });
        }
    }
    let (mut check, mut errors) = check_text(&root, &path, &text);
    if opts.print {
        // The .env files init would make from their examples are not there yet.
        let would: Vec<String> = proposal
            .env_to_make()
            .into_iter()
            .filter(|(f, _)| !f.exists())
            .map(|(f, _)| format!("error: env file `{}` not found", rel(&root, f)))
            .collect();
        check.retain(|d| {
            let skip = would.iter().any(|w| d.starts_with(w.as_str()));
            if skip {
                errors -= 1;
            }
            !skip
        });
    }
    Ok(Outcome {
        text,
        path,
        notes,
        check,
        errors,
        written,
    })
}

/// `devenv.toml.bak`, or the first `devenv.toml.bak.N` not taken.
fn backup_path(path: &Path) -> PathBuf {
    let first = path.with_extension("toml.bak");
    if !first.exists() {
        return first;
    }
    (2..)
        .map(|n| path.with_extension(format!("toml.bak.{n}")))
        .find(|p| !p.exists())
        .unwrap_or(first)
}

/// "; add it to .gitignore" when the repository's .gitignore does not name the file.
fn ignored_hint(root: &Path, file: &Path) -> String {
    let name = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let listed = crate::tree::read_text(&root.join(".gitignore")).is_some_and(|t| {
        t.lines().any(|l| {
            let l = l.trim().trim_start_matches('/');
            l == name || l == format!("**/{name}") || l == rel(root, file)
        })
    });
    if listed || !root.join(".git").exists() && !root.join(".gitignore").exists() {
        String::new()
    } else {
        format!(" (and add {name} to .gitignore)")
    }
}

/// `config check` on `text` as if it were `path`: the findings, and how many are errors.
fn check_text(root: &Path, path: &Path, text: &str) -> (Vec<String>, usize) {
    let shown = Path::new("devenv.toml");
    let loaded = match crate::config::parse(shown, path, text) {
        Ok(l) => l,
        Err(crate::config::ConfigError::Invalid { diagnostics }) => {
            let errors = diagnostics.iter().filter(|d| d.is_error()).count();
            return (
                diagnostics.iter().map(ToString::to_string).collect(),
                errors,
            );
        }
        Err(e) => return (vec![e.to_string()], 1),
    };
    let _ = root;
    let mut out: Vec<String> = loaded.warnings.iter().map(ToString::to_string).collect();
    match crate::plan::compute(&loaded.config, "devenv.toml") {
        Ok(plan) => {
            let f = crate::check::check(&loaded.config, &plan);
            let errors = f.errors();
            out.extend(f.diagnostics.iter().map(ToString::to_string));
            (out, errors)
        }
        Err(e) => {
            out.push(e.to_string());
            (out, 1)
        }
    }
}

#[cfg(test)]
mod tests;
