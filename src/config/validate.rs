//! Between the two config layers: checks what serde cannot (names, paths, ports, references,
//! cycles) and fills in defaults. Every problem found is collected, each pinned to the line
//! and column of the value at fault, so one run of `devenv config check` shows them all.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::Range;
use std::path::{Component, Path, PathBuf};

use toml::Spanned;

use super::diagnostic::{Diagnostic, did_you_mean};
use super::model::*;
use super::resolved::*;
use super::units;
use crate::objects;
use crate::pattern::Pattern;

struct Checker<'a> {
    file: &'a Path,
    source: &'a str,
    root: &'a Path,
    diags: Vec<Diagnostic>,
    /// The project root and `[project] allow_outside`, symlinks resolved: where built and
    /// watched paths may be.
    allowed: Vec<PathBuf>,
    /// Where each line of the source starts, for line numbers in O(log n) (counting newlines
    /// from the top for every name made checking quadratic).
    line_starts: Vec<usize>,
    /// Where values sit, for the checks made after loading (see [`Places`]).
    places: BTreeMap<String, Range<usize>>,
}

impl Checker<'_> {
    /// Records where a value sits (see [`Places`]).
    fn place(&mut self, key: String, span: Range<usize>) {
        self.places.insert(key, span);
    }

    fn at(&self, span: Range<usize>, message: impl Into<String>) -> Diagnostic {
        Diagnostic::at(self.file, self.source, Some(span), message.into())
    }

    fn push(&mut self, d: Diagnostic) {
        self.diags.push(d);
    }

    fn line_of(&self, span: &Range<usize>) -> usize {
        let at = span.start.min(self.source.len());
        self.line_starts.partition_point(|&s| s <= at)
    }

    /// `rel` resolved against the project root, lexically (no symlinks followed).
    fn path(&self, rel: &str) -> PathBuf {
        normalize(&self.root.join(rel))
    }

    fn shown(&self, p: &Path) -> String {
        match p.strip_prefix(self.root) {
            Ok(r) if r.as_os_str().is_empty() => ".".to_owned(),
            Ok(r) => r.display().to_string(),
            Err(_) => p.display().to_string(),
        }
    }

    /// `p` as the user types it where devenv was started: relative to the directory the
    /// config file is shown from (`deploy/devenv.toml` -> `deploy/…`, `../x`).
    fn typed_from_cwd(&self, p: &Path) -> String {
        let Some(dir) = self.file.parent().filter(|_| self.file.is_relative()) else {
            return p.display().to_string();
        };
        let (base, to): (Vec<_>, Vec<_>) =
            (self.root.components().collect(), p.components().collect());
        let common = base.iter().zip(&to).take_while(|(a, b)| a == b).count();
        let mut rel = PathBuf::new();
        for _ in common..base.len() {
            rel.push("..");
        }
        rel.extend(&to[common..]);
        let shown = normalize(&dir.join(rel));
        if shown.as_os_str().is_empty() {
            ".".to_owned()
        } else {
            shown.display().to_string()
        }
    }

    /// An existing path the config names, or an error at its span.
    fn existing(&mut self, value: &Spanned<String>, what: &str) -> Option<PathBuf> {
        let p = self.path(value.get_ref());
        if p.exists() {
            Some(p)
        } else {
            let d = self
                .at(
                    value.span(),
                    format!("{what} `{}` does not exist", value.get_ref()),
                )
                .hint(format!(
                    "paths are relative to {}; create it or fix the path",
                    self.root.display()
                ));
            self.push(d);
            None
        }
    }

    /// An existing path that is built or watched: it must resolve (symlinks too) inside the
    /// project or a path `[project] allow_outside` names, or `deps = ["/"]` would watch the
    /// whole machine, devenv's own state files included.
    fn inside(&mut self, value: &Spanned<String>, what: &str) -> Option<PathBuf> {
        let p = self.existing(value, what)?;
        self.within(value, p, what)
    }

    /// `p` (the path `value` names, which exists) when it resolves inside the project or a
    /// path `[project] allow_outside` names; else an error at `value`.
    fn within(&mut self, value: &Spanned<String>, p: PathBuf, what: &str) -> Option<PathBuf> {
        let real = std::fs::canonicalize(&p).unwrap_or_else(|_| p.clone());
        if self.allowed.iter().any(|a| real.starts_with(a)) {
            return Some(p);
        }
        let d = self
            .at(
                value.span(),
                format!(
                    "{what} `{}` is outside the project ({}): devenv reads, builds and watches only inside it",
                    value.get_ref(),
                    self.root.display()
                ),
            )
            .hint("move it into the project, or name the outside directory it is in under [project] allow_outside");
        self.push(d);
        None
    }

    fn check<T>(&mut self, span: Range<usize>, r: Result<T, String>) -> Option<T> {
        match r {
            Ok(v) => Some(v),
            Err(e) => {
                let d = self.at(span, e);
                self.push(d);
                None
            }
        }
    }

    fn duplicate(&mut self, seen: &mut HashMap<String, usize>, what: &str, name: &Spanned<String>) {
        let line = self.line_of(&name.span());
        if let Some(first) = seen.get(name.get_ref()) {
            let d = self
                .at(
                    name.span(),
                    format!("duplicate {what} `{}`", name.get_ref()),
                )
                .hint(format!(
                    "first defined on line {first}; each {what} must be unique"
                ));
            self.push(d);
        } else {
            seen.insert(name.get_ref().clone(), line);
        }
    }
}

/// Removes `.` and resolves `..` lexically.
pub fn normalize(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    out.push("..");
                }
            }
            other => out.push(other),
        }
    }
    out
}

fn project_name_from_dir(root: &Path) -> String {
    let base = root
        .file_name()
        .map(|s| s.to_string_lossy().to_lowercase())
        .unwrap_or_default();
    let mut name: String = base
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    name = name.trim_matches('-').chars().take(40).collect();
    if name.is_empty() {
        "devenv".to_owned()
    } else {
        name
    }
}

fn check_resource_name(name: &str) -> Result<(), String> {
    let ok = name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
        && name.len() <= 63;
    if ok {
        Ok(())
    } else {
        Err(format!(
            "invalid resource name \"{name}\": use letters, digits and . _ - (it appears in URLs and commands)"
        ))
    }
}

fn check_link(url: &str) -> Result<(), String> {
    if (url.starts_with("http://") || url.starts_with("https://"))
        && !url.contains(char::is_whitespace)
    {
        Ok(())
    } else {
        Err(format!(
            "invalid link \"{url}\": expected an http:// or https:// URL"
        ))
    }
}

fn parse_workload(text: &str) -> Result<Workload, String> {
    let (kind, name) = text.split_once('/').ok_or_else(|| {
        format!("invalid workload \"{text}\": expected KIND/NAME, like \"deployment/todo-backend\"")
    })?;
    let lower = kind.to_ascii_lowercase();
    let alias = match lower.as_str() {
        "deploy" | "deployments" => "deployment",
        "sts" | "statefulsets" => "statefulset",
        "ds" | "daemonsets" => "daemonset",
        "jobs" => "job",
        other => other,
    };
    let kind = WorkloadKind::ALL
        .iter()
        .find(|(k, _)| *k == alias)
        .map(|(_, k)| *k)
        .ok_or_else(|| {
            let names: Vec<&str> = WorkloadKind::ALL.iter().map(|(k, _)| *k).collect();
            let mut msg = format!(
                "unknown workload kind \"{kind}\" in \"{text}\"; expected one of {}",
                names.join(", ")
            );
            if let Some(s) = did_you_mean(&lower, &names) {
                msg.push_str(&format!(" (did you mean \"{s}\"?)"));
            }
            msg
        })?;
    units::check_dns_subdomain("workload name", name)?;
    Ok(Workload {
        kind,
        name: name.to_owned(),
    })
}

/// The longest command line a `[[local]]` may have: a shell's own limit is far above, but a
/// longer one is a script that belongs in a file (and would fill every error that shows it).
const MAX_COMMAND_BYTES: usize = 16 * 1024;

fn check_command(cmd: &str) -> Result<(), String> {
    if cmd.contains('\0') {
        return Err("the command holds a NUL byte, which no shell can run".into());
    }
    if cmd.len() > MAX_COMMAND_BYTES {
        return Err(format!(
            "the command is {} bytes long; at most {MAX_COMMAND_BYTES} are allowed",
            cmd.len()
        ));
    }
    Ok(())
}

fn check_env(key: &str, value: &str) -> Result<(), String> {
    if key.is_empty() || key.contains(['=', '\0']) || key.chars().any(char::is_whitespace) {
        return Err(format!(
            "`{}` is no environment variable name (empty, or with `=`, a space or a NUL)",
            key.escape_default()
        ));
    }
    if value.contains('\0') {
        return Err(format!("the value of `{key}` holds a NUL byte"));
    }
    Ok(())
}

fn scalars(map: Option<BTreeMap<String, Scalar>>) -> BTreeMap<String, String> {
    map.unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, v.0))
        .collect()
}

fn strings(list: Option<Vec<Spanned<String>>>) -> Vec<String> {
    list.unwrap_or_default()
        .into_iter()
        .map(Spanned::into_inner)
        .collect()
}

/// Expands one `deploy.manifests` entry: a file, a directory (its YAML files), or a glob.
pub fn expand_manifest_entry(root: &Path, entry: &str) -> Result<Vec<PathBuf>, String> {
    let is_yaml = |p: &Path| {
        matches!(
            p.extension().and_then(|e| e.to_str()),
            Some("yaml" | "yml" | "json")
        )
    };
    let direct = normalize(&root.join(entry));
    if direct.is_file() {
        return Ok(vec![direct]);
    }
    if direct.is_dir() {
        let mut files: Vec<PathBuf> = std::fs::read_dir(&direct)
            .map_err(|e| format!("cannot read directory `{entry}`: {}", e.kind()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file() && is_yaml(p))
            .collect();
        files.sort();
        return Ok(files);
    }
    let pattern = Pattern::parse(entry)?.ok_or_else(|| "empty manifest path".to_owned())?;
    let base = root.join(pattern.literal_dir_prefix());
    let mut found = Vec::new();
    let mut stack = vec![base];
    while let Some(dir) = stack.pop() {
        let rd = match std::fs::read_dir(&dir) {
            Ok(rd) => rd,
            // A prefix that does not exist matches nothing, which is said below.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            // Skipped in silence, its manifests would be missing from every deploy.
            Err(e) => {
                let shown = dir.strip_prefix(root).unwrap_or(&dir).display().to_string();
                return Err(format!("cannot read directory `{shown}`: {}", e.kind()));
            }
        };
        for e in rd.flatten() {
            let p = e.path();
            let Ok(rel) = p.strip_prefix(root) else {
                continue;
            };
            let rel = rel.to_string_lossy().replace('\\', "/");
            let Ok(ft) = e.file_type() else { continue };
            if ft.is_dir() {
                if !matches!(e.file_name().to_str(), Some(".git" | "node_modules")) {
                    stack.push(p);
                }
            } else if pattern.matches_exact(&rel) {
                found.push(p);
            }
        }
    }
    found.sort();
    Ok(found)
}

pub fn validate(
    display_file: &Path,
    abs_file: &Path,
    source: &str,
    raw: RawConfig,
) -> (Option<Config>, Vec<Diagnostic>) {
    let root = abs_file.parent().unwrap_or(Path::new("/")).to_path_buf();
    let mut c = Checker {
        file: display_file,
        source,
        root: &root,
        diags: Vec::new(),
        allowed: vec![std::fs::canonicalize(&root).unwrap_or_else(|_| root.clone())],
        line_starts: std::iter::once(0)
            .chain(source.match_indices('\n').map(|(i, _)| i + 1))
            .collect(),
        places: BTreeMap::new(),
    };

    // [project]
    let (name, allow_outside) = match raw.project {
        Some(p) => (p.name, p.allow_outside.unwrap_or_default()),
        None => (None, Vec::new()),
    };
    for a in &allow_outside {
        if let Some(p) = c.existing(a, "allow_outside path") {
            let real = std::fs::canonicalize(&p).unwrap_or(p);
            if real.parent().is_none() {
                let d = c
                    .at(a.span(), "allow_outside may not name `/`: devenv would watch the whole machine")
                    .hint("name the directory outside the project that the build or watch really needs");
                c.push(d);
                continue;
            }
            c.allowed.push(real);
        }
    }
    let project = match name {
        Some(n) => {
            c.check(
                n.span(),
                units::check_dns_label("project name", n.get_ref()),
            );
            n.into_inner()
        }
        None => project_name_from_dir(&root),
    };

    // [web] first: port forwards are checked against its port.
    let (web_port, web_port_line) = match raw.web.as_ref().and_then(|w| w.port.as_ref()) {
        Some(p) => {
            let line = c.line_of(&p.span());
            let port = match u16::try_from(*p.get_ref()) {
                Ok(v) if v > 0 => v,
                _ => {
                    let d = c
                        .at(
                            p.span(),
                            format!("web port {} is outside 1-65535", p.get_ref()),
                        )
                        .hint(format!("the default is {DEFAULT_WEB_PORT}"));
                    c.push(d);
                    DEFAULT_WEB_PORT
                }
            };
            (port, Some(line))
        }
        None => (DEFAULT_WEB_PORT, None),
    };
    let log_buffer_mb = match raw.web.as_ref().and_then(|w| w.log_buffer.as_ref()) {
        Some(b) if (1..=MAX_LOG_BUFFER_MB).contains(&b.get_ref().0) => b.get_ref().0,
        Some(b) => {
            let d = c
                .at(
                    b.span(),
                    format!(
                        "log_buffer of {} MB is outside 1-{MAX_LOG_BUFFER_MB} MB",
                        b.get_ref().0
                    ),
                )
                .hint(format!(
                    "each resource keeps this much log in memory; the default is \"{DEFAULT_LOG_BUFFER_MB}mb\""
                ));
            c.push(d);
            DEFAULT_LOG_BUFFER_MB
        }
        None => DEFAULT_LOG_BUFFER_MB,
    };
    let web = Web {
        port: web_port,
        open_browser: raw.web.and_then(|w| w.open_browser).unwrap_or(false),
        log_buffer: usize::try_from(log_buffer_mb << 20).unwrap_or(usize::MAX),
    };

    let cluster = check_cluster(&mut c, raw.cluster);

    // [deploy] namespace first: secrets and resources default to it.
    let raw_deploy = raw.deploy;
    let namespace = match raw_deploy.as_ref().and_then(|d| d.namespace.as_ref()) {
        Some(ns) => {
            c.check(ns.span(), units::check_dns_label("namespace", ns.get_ref()));
            ns.get_ref().clone()
        }
        None => DEFAULT_NAMESPACE.to_owned(),
    };

    let images = check_images(&mut c, raw.images, cluster.provider, abs_file);
    let image_names: Vec<&str> = images.iter().map(|i| i.name.as_str()).collect();
    let secrets = check_secrets(&mut c, raw.secrets, &namespace);
    let deploy = check_deploy(
        &mut c,
        raw_deploy,
        &project,
        namespace.clone(),
        &image_names,
    );

    // [[resource]] and [[local]] share one name space: both are rows on the status page.
    let mut names: HashMap<String, usize> = HashMap::new();
    let mut ports: HashMap<u16, (String, usize)> = HashMap::new();
    let mut edges: Vec<(Spanned<String>, Vec<Spanned<String>>)> = Vec::new();
    if let Some(l) = web_port_line {
        ports.insert(web_port, ("[web] port".to_owned(), l));
    }

    let has_deploy = !deploy.helm.is_empty() || !deploy.manifests.is_empty();
    let release_names: Vec<&str> = deploy.helm.iter().map(|h| h.release.as_str()).collect();
    // The resources that said no release, with several: checked once the manifests are read.
    let mut unreleased: Vec<Spanned<String>> = Vec::new();
    let mut resources = Vec::new();
    for r in raw.resources {
        c.check(r.name.span(), check_resource_name(r.name.get_ref()));
        c.duplicate(&mut names, "resource name", &r.name);
        if !has_deploy && resources.is_empty() {
            let d = c
                .at(
                    r.name.span(),
                    format!(
                        "resource `{}` names a workload, but [deploy] deploys nothing",
                        r.name.get_ref()
                    ),
                )
                .hint("add [deploy.helm] or `manifests` under [deploy], or make it a [[local]]");
            c.push(d);
        }
        let workload = c.check(r.workload.span(), parse_workload(r.workload.get_ref()));
        c.place(
            format!("resource.{}.workload", r.name.get_ref()),
            r.workload.span(),
        );
        let release = match r.release {
            Some(rel) if release_names.contains(&rel.get_ref().as_str()) => Some(rel.into_inner()),
            Some(rel) => {
                let mut d = c.at(rel.span(), format!("no Helm release `{}`", rel.get_ref()));
                d = match did_you_mean(rel.get_ref(), &release_names) {
                    Some(s) => d.hint(format!("did you mean `{s}`?")),
                    None if release_names.is_empty() => {
                        d.hint("remove `release`: [deploy] has no Helm chart")
                    }
                    None => d.hint(format!(
                        "the releases are {}",
                        release_names
                            .iter()
                            .map(|n| format!("`{n}`"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    )),
                };
                c.push(d);
                None
            }
            None => {
                if deploy.helm.len() > 1 {
                    unreleased.push(r.name.clone());
                }
                None
            }
        };
        let ns = match r.namespace {
            Some(ns) => {
                c.check(ns.span(), units::check_dns_label("namespace", ns.get_ref()));
                ns.into_inner()
            }
            None => release
                .as_deref()
                .and_then(|n| deploy.helm.iter().find(|h| h.release == n))
                .map_or_else(|| namespace.clone(), |h| h.namespace.clone()),
        };
        let imgs = r.images.map(|list| {
            list.into_iter()
                .map(|i| {
                    if !image_names.contains(&i.get_ref().as_str()) {
                        let mut d = c.at(i.span(), format!("unknown image `{}`", i.get_ref()));
                        d = match did_you_mean(i.get_ref(), &image_names) {
                            Some(s) => d.hint(format!("did you mean `{s}`?")),
                            None => d.hint("images are defined by [[image]] tables"),
                        };
                        c.push(d);
                    }
                    i.into_inner()
                })
                .collect()
        });
        let mut forwards = Vec::new();
        for pf in r.port_forwards.unwrap_or_default() {
            let Some(parsed) = c.check(pf.span(), units::parse_port_forward(pf.get_ref())) else {
                continue;
            };
            let line = c.line_of(&pf.span());
            if let Some((owner, first)) = ports.get(&parsed.local) {
                let d = c
                    .at(
                        pf.span(),
                        format!("local port {} is used twice", parsed.local),
                    )
                    .hint(format!(
                        "{owner} (line {first}) already uses it; pick another local port, like \"{}:{}\"",
                        parsed.local.saturating_add(1),
                        parsed.remote
                    ));
                c.push(d);
            } else {
                ports.insert(
                    parsed.local,
                    (format!("resource `{}`", r.name.get_ref()), line),
                );
            }
            forwards.push(parsed);
        }
        let timeout = match r.readiness_timeout {
            Some(t) if t.get_ref().0.is_zero() => {
                let d = c.at(t.span(), "readiness_timeout must be longer than zero");
                c.push(d);
                DEFAULT_READINESS_TIMEOUT
            }
            Some(t) => t.into_inner().0,
            None => DEFAULT_READINESS_TIMEOUT,
        };
        let links = check_links(&mut c, r.links);
        edges.push((r.name.clone(), r.depends_on.clone().unwrap_or_default()));
        if let Some(workload) = workload {
            resources.push(Resource {
                name: r.name.into_inner(),
                workload,
                namespace: ns,
                release,
                images: imgs,
                port_forwards: forwards,
                depends_on: strings(r.depends_on),
                readiness_timeout: timeout,
                trigger: r.trigger.map_or(TriggerMode::Auto, Spanned::into_inner),
                links,
            });
        }
    }

    let mut locals = Vec::new();
    for l in raw.locals {
        c.check(l.name.span(), check_resource_name(l.name.get_ref()));
        c.duplicate(&mut names, "resource name", &l.name);
        if l.cmd.is_none() && l.serve_cmd.is_none() {
            let d = c
                .at(
                    l.name.span(),
                    format!("local resource `{}` has nothing to run", l.name.get_ref()),
                )
                .expected("`cmd`, `serve_cmd` or both")
                .hint("add cmd = \"make generate\" (runs on change) or serve_cmd = \"npm run dev\" (kept running)");
            c.push(d);
        }
        if let (Some(r), None) = (&l.restart, &l.serve_cmd) {
            let d = c
                .at(
                    r.span(),
                    format!(
                        "`restart` is for a serve command, and local resource `{}` has none",
                        l.name.get_ref()
                    ),
                )
                .hint("remove `restart`, or add serve_cmd = \"npm run dev\"");
            c.push(d);
        }
        for cmd in [&l.cmd, &l.serve_cmd].into_iter().flatten() {
            if cmd.get_ref().trim().is_empty() {
                let d = c.at(cmd.span(), "command is empty");
                c.push(d);
            } else if let Err(e) = check_command(cmd.get_ref()) {
                let d = c.at(cmd.span(), e).hint(
                    "put a long script in a file of the project and run that file, like cmd = \"./scripts/gen.sh\"",
                );
                c.push(d);
            }
        }
        let mut env = BTreeMap::new();
        for (k, v) in l.env.unwrap_or_default() {
            if let Err(e) = check_env(&k, &v.get_ref().0) {
                let d = c.at(v.span(), e).hint(
                    "an environment variable's name is letters, digits and `_`; its value cannot hold a NUL byte",
                );
                c.push(d);
            }
            env.insert(k, v.into_inner().0);
        }
        let deps: Vec<PathBuf> = l
            .deps
            .unwrap_or_default()
            .iter()
            .filter_map(|d| c.inside(d, "deps path"))
            .collect();
        let workdir = match &l.workdir {
            Some(w) => c.existing(w, "workdir").unwrap_or_else(|| root.clone()),
            None => root.clone(),
        };
        let links = check_links(&mut c, l.links);
        edges.push((l.name.clone(), l.depends_on.clone().unwrap_or_default()));
        locals.push(LocalResource {
            name: l.name.into_inner(),
            cmd: l.cmd.map(Spanned::into_inner),
            serve_cmd: l.serve_cmd.map(Spanned::into_inner),
            restart: l.restart.map(Spanned::into_inner).unwrap_or_default(),
            deps,
            workdir,
            env,
            depends_on: strings(l.depends_on),
            trigger: l.trigger.map_or(TriggerMode::Auto, Spanned::into_inner),
            links,
        });
    }

    check_dependencies(&mut c, &edges);
    // One helm upgrade creates every workload of the release: `depends_on` between two of
    // them cannot hold one back (with manifests too, which resource the chart renders is
    // known only once it is rendered, so this is said only for a chart alone).
    if !deploy.helm.is_empty() && deploy.manifests.is_empty() {
        // Each resource's release: the one it names, else the only one.
        let release_of = |name: &str| -> Option<&str> {
            let r = resources.iter().find(|r| r.name == name)?;
            match (&r.release, deploy.helm.as_slice()) {
                (Some(rel), _) => Some(rel.as_str()),
                (None, [only]) => Some(only.release.as_str()),
                (None, _) => None,
            }
        };
        for (name, deps) in &edges {
            let Some(release) = release_of(name.get_ref()) else {
                continue;
            };
            for d in deps
                .iter()
                .filter(|d| release_of(d.get_ref()) == Some(release))
            {
                let w = c
                    .at(
                        d.span(),
                        format!(
                            "`{}` depends on `{}`, but both are workloads of the Helm release `{}`: one helm upgrade creates them together, so devenv cannot hold `{}` back (it waits for both and reports each as the cluster runs it)",
                            name.get_ref(),
                            d.get_ref(),
                            release,
                            name.get_ref()
                        ),
                    )
                    .hint(format!(
                        "to order them in the cluster, give `{}`'s pods an init container that waits for `{}` (as examples/todo's chart does), or deploy one of them from plain manifests",
                        name.get_ref(),
                        d.get_ref()
                    ))
                    .warning();
                c.push(w);
            }
        }
    }

    // [watch]
    let builders = check_builders(&mut c, raw.builders.unwrap_or_default());
    let (debounce, raw_ignore) = match raw.watch {
        Some(w) => (w.debounce.map(|d| d.into_inner().0), w.ignore),
        None => (None, None),
    };
    let debounce = debounce.unwrap_or(DEFAULT_DEBOUNCE);
    let mut watch_ignore = Vec::new();
    for p in raw_ignore.unwrap_or_default() {
        c.check(p.span(), Pattern::parse(p.get_ref()).map(|_| ()));
        watch_ignore.push(p.into_inner());
    }

    // Warnings: images nothing deploys.
    let mut deployed: Vec<String> = deploy
        .helm
        .iter()
        .flat_map(|h| h.images.iter().map(|i| i.image.clone()))
        .collect();
    // Each manifest is read and parsed once: for the images it runs, and below for its
    // workloads.
    let mut manifest_docs: Vec<objects::Document> = Vec::new();
    for m in &deploy.manifests {
        match crate::tree::read_capped(m, crate::tree::MAX_MANIFEST)
            .map_err(|e| e.to_string())
            .and_then(|t| objects::documents(&t).map_err(|e| e.to_string()))
        {
            Ok(docs) => {
                let mut refs = Vec::new();
                for d in &docs {
                    objects::collect_images(&d.value, &mut refs);
                }
                deployed.extend(refs.iter().map(|r| objects::repository_of(r).to_owned()));
                manifest_docs.extend(docs);
            }
            Err(e) => {
                let d = Diagnostic::at(
                    display_file,
                    source,
                    None,
                    format!(
                        "manifest `{}` cannot be read as Kubernetes YAML: {e}",
                        c.shown(m)
                    ),
                )
                .hint("fix the YAML, or remove the file from `manifests`");
                c.push(d);
            }
        }
    }
    let undeployed_images: Vec<String> = images
        .iter()
        .filter(|i| !deployed.contains(&i.name))
        .map(|i| i.name.clone())
        .collect();
    for (img, span) in images.iter().zip(image_spans(source, &images)) {
        if undeployed_images.contains(&img.name) {
            let d = Diagnostic::at(
                display_file,
                source,
                span,
                format!("image `{}` is built but nothing deploys it", img.name),
            )
            .hint("add a [[deploy.helm.images]] entry for it, or use it in a manifest's `image:`")
            .warning();
            c.push(d);
        }
    }

    // Workloads of the manifests that no [[resource]] names are resources of their own (as
    // Tilt's k8s_yaml makes them): applied, waited for and shown. Without them a config of
    // manifests and no [[resource]] deployed nothing, and `up --ci` passed.
    let taken: BTreeSet<String> = resources
        .iter()
        .map(|r| r.name.clone())
        .chain(locals.iter().map(|l: &LocalResource| l.name.clone()))
        .collect();
    resources.extend(implicit_resources(
        &manifest_docs,
        &resources,
        &taken,
        &namespace,
    ));

    // With several releases, a resource whose workload no manifest holds says which release
    // renders it: devenv runs only that release's helm upgrade for it.
    for name in &unreleased {
        let Some(r) = resources.iter().find(|r| r.name == *name.get_ref()) else {
            continue;
        };
        let in_manifests = manifest_docs.iter().any(|d| {
            let v = &d.value;
            v.get("kind")
                .and_then(|k| k.as_str())
                .is_some_and(|k| k.eq_ignore_ascii_case(r.workload.kind.as_str()))
                && v.get("metadata")
                    .and_then(|m| m.get("name"))
                    .and_then(|n| n.as_str())
                    == Some(r.workload.name.as_str())
        });
        if !in_manifests {
            let d = c
                .at(
                    name.span(),
                    format!(
                        "resource `{}` does not say which Helm release renders `{}`, and there are {}",
                        name.get_ref(),
                        r.workload,
                        deploy.helm.len()
                    ),
                )
                .hint(format!(
                    "add release = \"{}\" (or the name of the release whose chart renders it)",
                    deploy.helm[0].release
                ));
            c.push(d);
        }
    }

    // devenv deploys a release with its resources: one that no resource names never goes in.
    if deploy.helm.len() > 1 {
        for (n, h) in deploy.helm.iter().enumerate() {
            if resources
                .iter()
                .any(|r| r.release.as_ref() == Some(&h.release))
            {
                continue;
            }
            let place = Helm::place(n, "chart");
            let span = c.places.get(&place).cloned();
            let d = Diagnostic::at(
                display_file,
                source,
                span,
                format!(
                    "no [[resource]] says release = \"{}\", so devenv never deploys that release",
                    h.release
                ),
            )
            .hint(format!(
                "add a [[resource]] for a workload its chart renders, with release = \"{}\"",
                h.release
            ));
            c.push(d);
        }
    }

    if images.is_empty() && resources.is_empty() && locals.is_empty() && !has_deploy {
        let d = Diagnostic::at(
            display_file,
            source,
            None,
            "the config defines nothing to run".to_owned(),
        )
        .hint("add an [[image]] with [deploy], or a [[local]] resource; see docs/config.md");
        c.push(d);
    }

    let errors = c.diags.iter().any(Diagnostic::is_error);
    let places = Places {
        shown: display_file.to_path_buf(),
        source: source.to_owned(),
        spans: std::mem::take(&mut c.places),
    };
    let diags = c.diags;
    if errors {
        return (None, diags);
    }
    let config = Config {
        file: abs_file.to_path_buf(),
        root,
        project,
        cluster,
        images,
        secrets,
        deploy,
        resources,
        locals,
        web,
        watch: Watch {
            debounce,
            ignore: watch_ignore,
        },
        builders,
        undeployed_images,
        places,
    };
    (Some(config), diags)
}

/// Where each image's `name = ` value sits, for warnings raised after the raw model is gone.
fn image_spans(source: &str, images: &[Image]) -> Vec<Option<Range<usize>>> {
    images
        .iter()
        .map(|img| {
            let needle = format!("\"{}\"", img.name);
            source.match_indices(&needle).find_map(|(i, _)| {
                let line_start = source[..i].rfind('\n').map_or(0, |s| s + 1);
                source[line_start..i]
                    .trim_start()
                    .starts_with("name")
                    .then_some(i..i + needle.len())
            })
        })
        .collect()
}

fn check_links(c: &mut Checker, links: Option<Vec<Spanned<String>>>) -> Vec<String> {
    links
        .unwrap_or_default()
        .into_iter()
        .filter_map(|l| {
            c.check(l.span(), check_link(l.get_ref()))
                .map(|_| l.into_inner())
        })
        .collect()
}

const MINIKUBE_ONLY: &str = "only applies with provider = \"minikube\"";

fn check_cluster(c: &mut Checker, raw: Option<RawCluster>) -> Cluster {
    let Some(rc) = raw else {
        return Cluster {
            provider: Provider::Minikube,
            profile: DEFAULT_PROFILE.to_owned(),
            cpus: DEFAULT_CPUS,
            memory_mb: DEFAULT_MEMORY_MB,
            disk_mb: None,
            driver: None,
            kubernetes_version: None,
            container_runtime: None,
            start_flags: Vec::new(),
            addons: Vec::new(),
            start_timeout: DEFAULT_START_TIMEOUT,
            context: DEFAULT_PROFILE.to_owned(),
            allowed_contexts: vec![DEFAULT_PROFILE.to_owned()],
            registry: None,
            insecure_registry: false,
        };
    };
    let provider = rc
        .provider
        .as_ref()
        .map_or(Provider::Minikube, |p| *p.get_ref());
    let provider_span = rc.provider.as_ref().map(Spanned::span);

    if provider == Provider::Existing {
        let minikube_keys: [(&str, Option<Range<usize>>); 10] = [
            ("profile", rc.profile.as_ref().map(Spanned::span)),
            ("cpus", rc.cpus.as_ref().map(Spanned::span)),
            ("memory", rc.memory.as_ref().map(Spanned::span)),
            ("disk", rc.disk.as_ref().map(Spanned::span)),
            ("driver", rc.driver.as_ref().map(Spanned::span)),
            (
                "kubernetes_version",
                rc.kubernetes_version.as_ref().map(Spanned::span),
            ),
            (
                "container_runtime",
                rc.container_runtime.as_ref().map(Spanned::span),
            ),
            (
                "start_flags",
                rc.start_flags
                    .as_ref()
                    .and_then(|v| v.first())
                    .map(Spanned::span),
            ),
            (
                "addons",
                rc.addons
                    .as_ref()
                    .and_then(|v| v.first())
                    .map(Spanned::span),
            ),
            (
                "start_timeout",
                rc.start_timeout.as_ref().map(Spanned::span),
            ),
        ];
        for (key, span) in minikube_keys {
            if let Some(span) = span {
                let d = c
                    .at(span, format!("`{key}` {MINIKUBE_ONLY}"))
                    .hint("remove it: devenv does not size or start an existing cluster");
                c.push(d);
            }
        }
        for (key, hint) in [
            (
                "context",
                "add context = \"NAME\" (see `kubectl config get-contexts`)",
            ),
            (
                "registry",
                "add registry = \"registry.example.com/team\": images are pushed there with their content tags",
            ),
        ] {
            let missing = match key {
                "context" => rc.context.is_none(),
                _ => rc.registry.is_none(),
            };
            if missing {
                let d = c
                    .at(
                        provider_span.clone().unwrap_or(0..0),
                        format!("provider = \"existing\" needs `{key}` in [cluster]"),
                    )
                    .hint(hint);
                c.push(d);
            }
        }
        if let Some(i) = &rc.insecure_registry
            && rc.registry.is_none()
        {
            let d = c
                .at(i.span(), "`insecure_registry` needs a `registry`")
                .hint("add registry = \"host:port\"");
            c.push(d);
        }
    } else {
        if let Some(i) = &rc.insecure_registry {
            let d = c
                .at(
                    i.span(),
                    "`insecure_registry` only applies with provider = \"existing\"",
                )
                .hint(
                    "Minikube needs no registry: images are built straight into its Docker daemon",
                );
            c.push(d);
        }
        for (key, v) in [("context", &rc.context), ("registry", &rc.registry)] {
            if let Some(v) = v {
                let d = c
                    .at(v.span(), format!("`{key}` only applies with provider = \"existing\""))
                    .hint(if key == "context" {
                        "with Minikube the kube context is the profile's name: set `profile` instead"
                    } else {
                        "Minikube needs no registry: images are built straight into its Docker daemon"
                    });
                c.push(d);
            }
        }
    }

    const MAX_CPUS: u32 = 1024;
    let cpus = match &rc.cpus {
        Some(n) if *n.get_ref() < 1 => {
            let d = c
                .at(
                    n.span(),
                    format!("cpus must be at least 1, found {}", n.get_ref()),
                )
                .hint(format!("the default is {DEFAULT_CPUS}"));
            c.push(d);
            DEFAULT_CPUS
        }
        // More than any machine Minikube runs on: a typo, never a size (it was planned as
        // `--cpus=4294967295` from 9223372036854775807).
        Some(n) if *n.get_ref() > i64::from(MAX_CPUS) => {
            let d = c
                .at(
                    n.span(),
                    format!("cpus must be at most {MAX_CPUS}, found {}", n.get_ref()),
                )
                .hint(format!("the default is {DEFAULT_CPUS}"));
            c.push(d);
            DEFAULT_CPUS
        }
        Some(n) => u32::try_from(*n.get_ref()).unwrap_or(DEFAULT_CPUS),
        None => DEFAULT_CPUS,
    };
    let memory_mb = match &rc.memory {
        Some(m) if m.get_ref().0 < MINIKUBE_MIN_MEMORY_MB => {
            let d = c
                .at(
                    m.span(),
                    format!(
                        "memory {} MB is below minikube's minimum of {MINIKUBE_MIN_MEMORY_MB} MB",
                        m.get_ref().0
                    ),
                )
                .hint("use at least \"2g\"; the default is \"8g\"");
            c.push(d);
            DEFAULT_MEMORY_MB
        }
        Some(m) => m.get_ref().0,
        None => DEFAULT_MEMORY_MB,
    };
    let profile = match &rc.profile {
        Some(p) => {
            let ok = p
                .get_ref()
                .starts_with(|ch: char| ch.is_ascii_alphanumeric())
                && p.get_ref()
                    .chars()
                    .all(|ch| ch.is_ascii_alphanumeric() || "._-".contains(ch));
            if !ok {
                let d = c.at(
                    p.span(),
                    format!(
                        "invalid minikube profile \"{}\": use letters, digits and . _ -",
                        p.get_ref()
                    ),
                );
                c.push(d);
            }
            p.get_ref().clone()
        }
        None => DEFAULT_PROFILE.to_owned(),
    };
    let context = match provider {
        Provider::Minikube => profile.clone(),
        Provider::Existing => rc
            .context
            .as_ref()
            .map(|s| s.get_ref().clone())
            .unwrap_or_default(),
    };
    // An existing cluster's context is not allowed by naming it alone: a remote one must also
    // be listed in allowed_contexts (a local one is recognised by the context guard).
    let mut allowed_contexts = match provider {
        Provider::Minikube => vec![context.clone()],
        Provider::Existing => Vec::new(),
    };
    for a in strings(rc.allowed_contexts) {
        if !allowed_contexts.contains(&a) {
            allowed_contexts.push(a);
        }
    }
    Cluster {
        provider,
        profile,
        cpus,
        memory_mb,
        disk_mb: rc.disk.map(|d| d.into_inner().0),
        driver: rc.driver.map(Spanned::into_inner),
        kubernetes_version: rc.kubernetes_version.map(Spanned::into_inner),
        container_runtime: rc.container_runtime.map(Spanned::into_inner),
        start_flags: strings(rc.start_flags),
        addons: strings(rc.addons),
        start_timeout: rc
            .start_timeout
            .map_or(DEFAULT_START_TIMEOUT, |t| t.into_inner().0),
        context,
        allowed_contexts,
        insecure_registry: rc.insecure_registry.as_ref().is_some_and(|b| *b.get_ref())
            || rc
                .registry
                .as_ref()
                .is_some_and(|r| units::is_loopback_registry(r.get_ref())),
        registry: rc.registry.map(Spanned::into_inner),
    }
}

/// `[builders.NAME]`: arguments and environment of each builder.
fn check_builders(c: &mut Checker, raw: RawBuilders) -> Builders {
    let mut one = |name: &str, b: Option<RawBuilder>| -> BuilderSettings {
        let Some(b) = b else {
            return BuilderSettings::default();
        };
        let mut env = BTreeMap::new();
        for (k, v) in b.env.unwrap_or_default() {
            if let Err(e) = check_env(&k, &v.get_ref().0) {
                let d = c.at(v.span(), e);
                c.push(d);
            }
            env.insert(k, v.into_inner().0);
        }
        if let Some(i) = &b.isolation {
            if name != "buildah" {
                let d = c
                    .at(
                        i.span(),
                        format!("`isolation` is buildah's setting, not {name}'s"),
                    )
                    .hint("remove it");
                c.push(d);
            } else if !["oci", "rootless", "chroot"].contains(&i.get_ref().as_str()) {
                let d = c
                    .at(i.span(), format!("unknown isolation `{}`", i.get_ref()))
                    .expected("one of oci, rootless, chroot (buildah's BUILDAH_ISOLATION)");
                c.push(d);
            }
            env.insert("BUILDAH_ISOLATION".into(), i.get_ref().clone());
        }
        if let Some(sd) = &b.storage_driver
            && name == "docker"
        {
            let d = c
                .at(
                    sd.span(),
                    "`storage_driver` is a setting of buildah and podman, not docker's",
                )
                .hint("the Docker daemon's storage driver is set in its own configuration");
            c.push(d);
        }
        BuilderSettings {
            args: strings(b.args),
            env,
            storage_driver: b.storage_driver.map(Spanned::into_inner),
        }
    };
    Builders {
        docker: one("docker", raw.docker),
        buildah: one("buildah", raw.buildah),
        podman: one("podman", raw.podman),
    }
}

fn check_images(
    c: &mut Checker,
    raw: Vec<RawImage>,
    provider: Provider,
    config_file: &Path,
) -> Vec<Image> {
    let mut seen = HashMap::new();
    let mut out = Vec::new();
    for img in raw {
        c.check(img.name.span(), units::check_image_name(img.name.get_ref()));
        c.duplicate(&mut seen, "image name", &img.name);
        let context = match &img.context {
            Some(ctx) => match c.inside(ctx, "build context") {
                Some(p) if !p.is_dir() => {
                    let d = c.at(
                        ctx.span(),
                        format!("build context `{}` is not a directory", ctx.get_ref()),
                    );
                    c.push(d);
                    None
                }
                other => other,
            },
            None => Some(c.root.to_path_buf()),
        };
        let dockerfile = match (&img.dockerfile, &context) {
            (Some(df), _) => {
                let p = c.path(df.get_ref());
                if !p.is_file() {
                    let d = c
                        .at(df.span(), format!("Dockerfile `{}` not found", df.get_ref()))
                        .hint("the path is relative to the config file's directory, not to the build context");
                    c.push(d);
                } else {
                    // Like contexts: a Dockerfile of the project, never a file elsewhere.
                    c.within(df, p.clone(), "dockerfile");
                }
                p
            }
            (None, Some(ctx)) => {
                let p = ctx.join("Dockerfile");
                if !p.is_file() {
                    let span = img.context.as_ref().map_or(img.name.span(), Spanned::span);
                    let d = c
                        .at(span, format!("Dockerfile `{}` not found", c.shown(&p)))
                        .hint("create it, or set `dockerfile` to the file's path");
                    c.push(d);
                }
                p
            }
            (None, None) => PathBuf::new(),
        };
        let builder = img
            .builder
            .as_ref()
            .map_or(BuilderKind::Docker, |b| *b.get_ref());
        match (&img.builder, &img.command) {
            (Some(b), None) if builder == BuilderKind::Custom => {
                let d = c
                    .at(b.span(), "builder = \"custom\" needs `command`")
                    .hint("add command = \"./build.sh\": it must build and tag $DEVENV_IMAGE");
                c.push(d);
            }
            (_, Some(cmd)) if builder != BuilderKind::Custom => {
                let d = c
                    .at(
                        cmd.span(),
                        "`command` only applies with builder = \"custom\"",
                    )
                    .hint("add builder = \"custom\", or remove `command`");
                c.push(d);
            }
            _ => {}
        }
        if let Some(b) = &img.builder
            && builder == BuilderKind::Minikube
            && provider == Provider::Existing
        {
            let d = c
                .at(
                    b.span(),
                    "builder = \"minikube\" needs provider = \"minikube\"",
                )
                .hint("use \"docker\", \"buildah\" or \"podman\" and a registry");
            c.push(d);
        }
        // Read once for the checks below that look into it.
        let dockerfile_text = crate::tree::read_capped(&dockerfile, crate::tree::MAX_FILE).ok();
        let live_update = check_live_update(c, &img, builder);
        if let Some(on) = &img.live_update {
            c.place(
                format!("image.{}.live_update", img.name.get_ref()),
                on.span(),
            );
        }
        if let (Some(lu), Some(on)) = (&live_update, &img.live_update)
            && lu.sync.is_empty()
            && let Some(text) = &dockerfile_text
        {
            let map = crate::live::infer(
                text,
                img.target.as_ref().map(|t| t.get_ref().as_str()),
                &scalars(img.build_args.clone()),
                Vec::new(),
            );
            if !map.syncs_anything() {
                let stage = map
                    .stage
                    .as_deref()
                    .map_or("the last stage".to_owned(), |s| format!("stage `{s}`"));
                let d = c
                    .at(
                        on.span(),
                        format!("live update would build every change: {stage} copies nothing from the context after its last RUN"),
                    )
                    .hint("build a development stage that copies the sources last (target = \"dev\"), or give `sync` rules")
                    .warning();
                c.push(d);
            }
        }
        if let Some(t) = &img.target
            && builder != BuilderKind::Custom
            && let Some(text) = &dockerfile_text
        {
            check_target(c, t, text, &c.shown(&dockerfile));
        }
        let watch: Vec<PathBuf> = img
            .watch
            .unwrap_or_default()
            .iter()
            .filter_map(|w| c.inside(w, "watch path"))
            .collect();
        let mut ignore = Vec::new();
        for p in img.ignore.unwrap_or_default() {
            c.check(p.span(), Pattern::parse(p.get_ref()).map(|_| ()));
            ignore.push(p.into_inner());
        }
        // devenv's own config is no part of the image (a comment in it rebuilt every image
        // whose context holds it) unless the Dockerfile copies it by name.
        if let Some(rel) = context
            .as_deref()
            .and_then(|ctx| config_in_context(config_file, ctx))
            && !dockerfile_text
                .as_deref()
                .is_some_and(|t| copies_by_name(t, &rel))
        {
            ignore.push(rel);
        }
        let dev_command: Vec<String> = match &img.dev_command {
            Some(cmd) if builder == BuilderKind::Custom || builder == BuilderKind::Minikube => {
                let d = c
                    .at(
                        cmd.span(),
                        format!(
                            "`dev_command` needs builder docker, buildah or podman, not {}",
                            builder.as_str()
                        ),
                    )
                    .hint("a custom builder sets the command itself: remove `dev_command`");
                c.push(d);
                Vec::new()
            }
            Some(cmd) if cmd.get_ref().is_empty() => {
                let d = c
                    .at(cmd.span(), "`dev_command` is empty")
                    .expected("the program and its arguments, like [\"uvicorn\", \"app.main:app\", \"--reload\"]");
                c.push(d);
                Vec::new()
            }
            Some(cmd) => cmd.get_ref().iter().map(|a| a.get_ref().clone()).collect(),
            None => Vec::new(),
        };
        out.push(Image {
            name: img.name.into_inner(),
            context: context.unwrap_or_default(),
            dockerfile,
            target: img.target.map(Spanned::into_inner),
            build_args: scalars(img.build_args),
            watch,
            ignore,
            builder,
            command: img.command.map(Spanned::into_inner),
            live_update,
            dev_command,
        });
    }
    out
}

/// The workloads of the manifests' documents `docs` that no resource of `resources` names
/// (by kind and name), each a resource named after it (`kind-name` where that name is taken),
/// in the namespace the deploy puts it in: its own `metadata.namespace`, else `namespace`.
fn implicit_resources(
    docs: &[objects::Document],
    resources: &[Resource],
    taken: &BTreeSet<String>,
    namespace: &str,
) -> Vec<Resource> {
    let mut names = taken.clone();
    let mut out: Vec<Resource> = Vec::new();
    for doc in docs {
        let kind = doc.value.get("kind").and_then(|k| k.as_str()).unwrap_or("");
        let Some((_, kind)) = WorkloadKind::ALL
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(kind))
        else {
            continue;
        };
        let meta = doc.value.get("metadata");
        let Some(name) = meta.and_then(|m| m.get("name")).and_then(|n| n.as_str()) else {
            continue;
        };
        let claimed = resources
            .iter()
            .chain(out.iter())
            .any(|r| r.workload.kind == *kind && r.workload.name == name);
        if claimed {
            continue;
        }
        let ns = meta
            .and_then(|m| m.get("namespace"))
            .and_then(|n| n.as_str())
            .unwrap_or(namespace);
        let short = name.to_owned();
        let long = format!("{}-{name}", kind.as_str());
        let Some(rname) = [short, long]
            .into_iter()
            .find(|n| !names.contains(n) && check_resource_name(n).is_ok())
        else {
            continue;
        };
        names.insert(rname.clone());
        out.push(Resource {
            name: rname,
            workload: Workload {
                kind: *kind,
                name: name.to_owned(),
            },
            namespace: ns.to_owned(),
            release: None,
            images: None,
            port_forwards: Vec::new(),
            depends_on: Vec::new(),
            readiness_timeout: DEFAULT_READINESS_TIMEOUT,
            trigger: TriggerMode::Auto,
            links: Vec::new(),
        });
    }
    out
}

/// The config file's path inside the build context `ctx` (`/`-separated), if it lies there.
fn config_in_context(file: &Path, ctx: &Path) -> Option<String> {
    let real = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    let rel = real(file).strip_prefix(real(ctx)).ok()?.to_path_buf();
    let parts: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    (!parts.is_empty()).then(|| parts.join("/"))
}

/// Whether a `COPY` or `ADD` of `dockerfile` names `rel` (a context path) as a source.
fn copies_by_name(dockerfile: &str, rel: &str) -> bool {
    dockerfile.lines().any(|line| {
        let mut words = line.split_whitespace();
        let is_copy = words
            .next()
            .is_some_and(|w| w.eq_ignore_ascii_case("copy") || w.eq_ignore_ascii_case("add"));
        is_copy
            && words
                .filter(|w| !w.starts_with("--"))
                .map(|w| w.trim_matches(|c| matches!(c, '[' | ']' | '"' | ',')))
                .any(|w| w.trim_start_matches("./").trim_start_matches('/') == rel)
    })
}

/// `live_update` and the keys that refine it (`sync`, `run`, `fall_back_on`), which mean
/// nothing without it.
fn check_live_update(c: &mut Checker, img: &RawImage, builder: BuilderKind) -> Option<LiveUpdate> {
    let on = img.live_update.as_ref().is_some_and(|b| *b.get_ref());
    if !on {
        let extra = img
            .sync
            .as_ref()
            .and_then(|s| s.first().map(Spanned::span))
            .or_else(|| img.run.as_ref().and_then(|r| r.first().map(Spanned::span)))
            .or_else(|| {
                img.fall_back_on
                    .as_ref()
                    .and_then(|f| f.first().map(Spanned::span))
            });
        if let Some(span) = extra {
            let d = c
                .at(span, "`sync`, `run` and `fall_back_on` refine live update, which is off for this image")
                .hint("add live_update = true to the [[image]]");
            c.push(d);
        }
        return None;
    }
    if builder == BuilderKind::Custom
        && img.sync.is_none()
        && let Some(b) = &img.live_update
    {
        let d = c
            .at(
                b.span(),
                "live update reads the sync map from the Dockerfile, and a custom builder has none",
            )
            .hint("give the copies yourself: sync = [{ local = \"src\", remote = \"/app/src\" }]");
        c.push(d);
    }
    let mut lu = LiveUpdate::default();
    for s in img.sync.iter().flatten() {
        let s = s.get_ref();
        if !s.remote.get_ref().starts_with('/') {
            let d = c
                .at(
                    s.remote.span(),
                    format!(
                        "`remote` must be an absolute path in the container, not `{}`",
                        s.remote.get_ref()
                    ),
                )
                .hint("like \"/app/src\"");
            c.push(d);
        }
        lu.sync
            .push((s.local.get_ref().clone(), s.remote.get_ref().clone()));
    }
    for r in img.run.iter().flatten() {
        let r = r.get_ref();
        if let Err(e) = check_command(r.cmd.get_ref()) {
            let d = c.at(r.cmd.span(), e);
            c.push(d);
        }
        let mut on = Vec::new();
        for p in &r.on {
            c.check(p.span(), Pattern::parse(p.get_ref()).map(|_| ()));
            on.push(p.get_ref().clone());
        }
        lu.run.push((r.cmd.get_ref().clone(), on));
    }
    for p in img.fall_back_on.iter().flatten() {
        c.check(p.span(), Pattern::parse(p.get_ref()).map(|_| ()));
        lu.fall_back_on.push(p.get_ref().clone());
    }
    Some(lu)
}

/// A `target` must name a stage of the Dockerfile (`FROM … AS name`), or the build fails.
fn check_target(c: &mut Checker, target: &Spanned<String>, dockerfile: &str, shown: &str) {
    let stages = crate::dockerfile::stages(dockerfile);
    let names: Vec<&str> = stages.iter().filter_map(|s| s.name.as_deref()).collect();
    if names.contains(&target.get_ref().to_ascii_lowercase().as_str()) {
        return;
    }
    let mut d = c.at(
        target.span(),
        format!("target `{}` is not a stage of {shown}", target.get_ref()),
    );
    d = if names.is_empty() {
        d.hint(format!(
            "{shown} names no stage (`FROM image AS name`): remove `target`, or name the stage to build"
        ))
    } else {
        let hint = match did_you_mean(target.get_ref(), &names) {
            Some(s) => format!("did you mean `{s}`? "),
            None => String::new(),
        };
        d.expected(format!("one of its stages: {}", names.join(", ")))
            .hint(format!("{hint}stage names are set by `FROM image AS name`"))
    };
    c.push(d);
}

/// An .env file the config names: it must exist. When it does not, the hint points at an
/// example to copy, looked for beside it and up to the repository's root (where
/// `.env.example` usually sits).
fn env_file(c: &mut Checker, f: &Spanned<String>) -> Option<PathBuf> {
    let p = c.path(f.get_ref());
    if p.is_file() {
        return c.within(f, p, "env file");
    }
    let name = p
        .file_name()
        .map_or(".env".into(), |n| n.to_string_lossy().into_owned());
    let candidates = [
        format!("{name}.example"),
        format!("{name}.sample"),
        format!("{name}.template"),
        ".env.example".to_owned(),
        ".env.sample".to_owned(),
        ".env.template".to_owned(),
    ];
    let mut example = None;
    let mut dir = p.parent().map(Path::to_path_buf);
    while let Some(d) = dir {
        example = candidates.iter().map(|n| d.join(n)).find(|e| e.is_file());
        // The repository's root is as far up as an example of the project can be.
        if example.is_some() || d.join(".git").exists() || d.parent().is_none() {
            break;
        }
        dir = d.parent().map(Path::to_path_buf);
    }
    let hint = match example {
        Some(e) => format!(
            "copy the example and fill it in: cp {} {}",
            c.typed_from_cwd(&e),
            c.typed_from_cwd(&p)
        ),
        None => "create it with one KEY=value per line".to_owned(),
    };
    let d = c
        .at(f.span(), format!("env file `{}` not found", f.get_ref()))
        .hint(hint);
    c.push(d);
    None
}

fn check_secrets(c: &mut Checker, raw: Vec<RawSecret>, namespace: &str) -> Vec<Secret> {
    let mut seen = HashMap::new();
    let mut out = Vec::new();
    for s in raw {
        c.check(
            s.name.span(),
            units::check_dns_subdomain("secret name", s.name.get_ref()),
        );
        c.duplicate(&mut seen, "secret name", &s.name);
        c.place(format!("secret.{}", s.name.get_ref()), s.name.span());
        if s.env_files.get_ref().is_empty() {
            let d = c
                .at(s.env_files.span(), "env_files is empty")
                .expected("at least one .env file, like [\".env\"]");
            c.push(d);
        }
        let files: Vec<PathBuf> = s
            .env_files
            .get_ref()
            .iter()
            .filter_map(|f| env_file(c, f))
            .collect();
        let mut keys = BTreeMap::new();
        for (k, env) in s.keys.unwrap_or_default() {
            c.place(format!("secret.{}.keys.{k}", s.name.get_ref()), env.span());
            if let Err(e) = units::check_secret_key(&k) {
                let d = c.at(env.span(), e);
                c.push(d);
            }
            keys.insert(k, env.into_inner());
        }
        let ns = match s.namespace {
            Some(ns) => {
                c.check(ns.span(), units::check_dns_label("namespace", ns.get_ref()));
                ns.into_inner()
            }
            None => namespace.to_owned(),
        };
        out.push(Secret {
            name: s.name.into_inner(),
            namespace: ns,
            env_files: files,
            keys,
        });
    }
    out
}

fn check_deploy(
    c: &mut Checker,
    raw: Option<RawDeploy>,
    project: &str,
    namespace: String,
    image_names: &[&str],
) -> Deploy {
    let Some(rd) = raw else {
        return Deploy {
            namespace,
            helm: Vec::new(),
            manifests: Vec::new(),
        };
    };
    let several = rd.helm.as_ref().is_some_and(|h| h.0.len() > 1);
    let mut release_lines: HashMap<String, usize> = HashMap::new();
    let mut helm = Vec::new();
    for (n, h) in rd.helm.unwrap_or_default().0.into_iter().enumerate() {
        let place = |what: &str| Helm::place(n, what);
        let chart = c.path(h.chart.get_ref());
        c.place(place("chart"), h.chart.span());
        if !chart.join("Chart.yaml").is_file() {
            let d = c
                .at(
                    h.chart.span(),
                    format!("no Chart.yaml in `{}`", h.chart.get_ref()),
                )
                .hint(
                    "`chart` is the directory that holds Chart.yaml, relative to the config file",
                );
            c.push(d);
        } else if chart.join("values.yaml").symlink_metadata().is_ok()
            && !chart.join("values.yaml").is_file()
        {
            let d = c
                .at(
                    h.chart.span(),
                    format!(
                        "the values.yaml of chart `{}` is not a regular file",
                        h.chart.get_ref()
                    ),
                )
                .hint(
                    "helm reads it whole: a FIFO would stall each deploy, a device would never end",
                );
            c.push(d);
        }
        let release = match h.release {
            Some(r) => {
                let res = units::check_dns_label("release name", r.get_ref()).and_then(|()| {
                    if r.get_ref().len() > 53 {
                        Err(format!(
                            "release name \"{}\" is longer than Helm's 53 characters",
                            r.get_ref()
                        ))
                    } else {
                        Ok(())
                    }
                });
                c.check(r.span(), res);
                c.duplicate(&mut release_lines, "Helm release", &r);
                r.into_inner()
            }
            None if several => {
                let d = c
                    .at(
                        h.chart.span(),
                        format!(
                            "the release of chart `{}` has no name, and there are several releases",
                            h.chart.get_ref()
                        ),
                    )
                    .hint("give each [[deploy.helm]] its own release = \"...\"");
                c.push(d);
                project.chars().take(53).collect()
            }
            None => project.chars().take(53).collect(),
        };
        let release_ns = match h.namespace {
            Some(ns) => {
                c.check(ns.span(), units::check_dns_label("namespace", ns.get_ref()));
                ns.into_inner()
            }
            None => namespace.clone(),
        };
        let values = h
            .values
            .unwrap_or_default()
            .iter()
            .filter_map(|v| {
                let p = c.existing(v, "values file")?;
                // helm reads it whole, following links: a FIFO would stall each deploy, a
                // device would never end.
                if std::fs::metadata(&p).is_ok_and(|m| m.is_file()) {
                    c.within(v, p, "values file")
                } else {
                    let d = c
                        .at(
                            v.span(),
                            format!("values file `{}` is not a regular file", v.get_ref()),
                        )
                        .hint("a values file is a YAML file (not a FIFO, a device or a directory)");
                    c.push(d);
                    None
                }
            })
            .collect();
        // One image may feed several workloads, each with its own values keys (a backend
        // and its worker): what must be unique is the key each entry sets.
        let mut keys_seen: HashMap<String, usize> = HashMap::new();
        let mut images = Vec::new();
        for (m, entry) in h.images.into_iter().enumerate() {
            let span = entry.span();
            let e = entry.into_inner();
            c.place(place(&format!("image.{m}")), e.image.span());
            if !image_names.contains(&e.image.get_ref().as_str()) {
                let mut d = c.at(
                    e.image.span(),
                    format!("unknown image `{}`", e.image.get_ref()),
                );
                d = match did_you_mean(e.image.get_ref(), image_names) {
                    Some(s) => d.hint(format!("did you mean `{s}`?")),
                    None => d.hint("images are defined by [[image]] tables"),
                };
                c.push(d);
            }
            for (what, k) in [
                ("repository", &e.repository),
                ("tag", &e.tag),
                ("value", &e.value),
            ] {
                let Some(k) = k else { continue };
                c.place(place(&format!("image.{m}.{what}")), k.span());
                let line = c.line_of(&k.span());
                if let Some(first) = keys_seen.get(k.get_ref()) {
                    let d = c
                        .at(
                            k.span(),
                            format!(
                                "values key `{}` is set by two [[deploy.helm.images]] entries",
                                k.get_ref()
                            ),
                        )
                        .hint(format!(
                            "the first sets it on line {first}; each values key takes one image"
                        ));
                    c.push(d);
                } else {
                    keys_seen.insert(k.get_ref().clone(), line);
                }
            }
            let keys = match (e.repository, e.tag, e.value) {
                (Some(r), Some(t), None) => Some(HelmImageKeys::RepositoryAndTag {
                    repository: r.into_inner(),
                    tag: t.into_inner(),
                }),
                (None, None, Some(v)) => Some(HelmImageKeys::Reference {
                    value: v.into_inner(),
                }),
                (r, t, v) => {
                    let span = r
                        .as_ref()
                        .or(t.as_ref())
                        .or(v.as_ref())
                        .map_or(span, Spanned::span);
                    let d = c
                        .at(span, format!("helm image `{}` needs `repository` and `tag`, or `value`", e.image.get_ref()))
                        .hint("e.g. repository = \"backend.image.repository\", tag = \"backend.image.tag\"");
                    c.push(d);
                    None
                }
            };
            if let Some(keys) = keys {
                images.push(HelmImage {
                    image: e.image.into_inner(),
                    keys,
                });
            }
        }
        let env_files: Vec<PathBuf> = h
            .env_files
            .as_ref()
            .map(|f| f.get_ref().iter().filter_map(|f| env_file(c, f)).collect())
            .unwrap_or_default();
        let mut values_from_env = BTreeMap::new();
        for (k, env) in h.values_from_env.unwrap_or_default() {
            c.place(place(&format!("values_from_env.{k}")), env.span());
            if h.env_files.is_none() {
                let d = c
                    .at(env.span(), format!("`values_from_env` takes `{}` from .env files, and [deploy.helm] names none", env.get_ref()))
                    .hint("add env_files = [\".env\"] to [deploy.helm]");
                c.push(d);
            }
            values_from_env.insert(k, env.into_inner());
        }
        helm.push(Helm {
            chart,
            release,
            namespace: release_ns,
            values,
            set: scalars(h.set),
            env_files,
            values_from_env,
            images,
        });
    }
    let mut manifests = Vec::new();
    for entry in rd.manifests.unwrap_or_default() {
        match expand_manifest_entry(c.root, entry.get_ref()) {
            Ok(files) if files.is_empty() => {
                let d = c
                    .at(entry.span(), format!("`{}` matches no manifest file", entry.get_ref()))
                    .hint("entries are files, directories of .yaml files, or globs like \"k8s/*.yaml\", relative to the config file");
                c.push(d);
            }
            Ok(files) => {
                for f in files {
                    // A link that leads out of the project is refused as a path out of it is.
                    let real = std::fs::canonicalize(&f).unwrap_or_else(|_| f.clone());
                    if !c.allowed.iter().any(|a| real.starts_with(a)) {
                        let d = c
                            .at(
                                entry.span(),
                                format!(
                                    "manifest `{}` (of `{}`) leads out of the project, to {}: devenv reads only inside it",
                                    c.shown(&f),
                                    entry.get_ref(),
                                    real.display()
                                ),
                            )
                            .hint("copy the file into the project, or name the outside directory it is in under [project] allow_outside");
                        c.push(d);
                        continue;
                    }
                    if !manifests.contains(&f) {
                        manifests.push(f);
                    }
                }
            }
            Err(e) => {
                let d = c.at(entry.span(), e);
                c.push(d);
            }
        }
    }
    Deploy {
        namespace,
        helm,
        manifests,
    }
}

/// Unknown or self references, then cycles, reported at the `depends_on` entry at fault.
fn check_dependencies(c: &mut Checker, edges: &[(Spanned<String>, Vec<Spanned<String>>)]) {
    let names: Vec<&str> = edges.iter().map(|(n, _)| n.get_ref().as_str()).collect();
    // First occurrence wins, as a scan from the front would find it.
    let mut index: HashMap<&str, usize> = HashMap::with_capacity(names.len());
    for (i, n) in names.iter().enumerate() {
        index.entry(n).or_insert(i);
    }
    let mut graph: Vec<Vec<(usize, Range<usize>)>> = vec![Vec::new(); edges.len()];
    for (i, (name, deps)) in edges.iter().enumerate() {
        for d in deps {
            if d.get_ref() == name.get_ref() {
                let diag = c.at(d.span(), format!("`{}` depends on itself", name.get_ref()));
                c.push(diag);
            } else if let Some(&j) = index.get(d.get_ref().as_str()) {
                graph[i].push((j, d.span()));
            } else {
                let mut diag = c.at(
                    d.span(),
                    format!(
                        "`{}` depends on unknown resource `{}`",
                        name.get_ref(),
                        d.get_ref()
                    ),
                );
                diag = match did_you_mean(d.get_ref(), &names) {
                    Some(s) => diag.hint(format!("did you mean `{s}`?")),
                    None => diag.hint(format!("known resources: {}", names.join(", "))),
                };
                c.push(diag);
            }
        }
    }
    // Depth-first search; a back edge closes a cycle, which is reported once.
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Active,
        Done,
    }
    let mut marks = vec![Mark::New; edges.len()];
    for start in 0..edges.len() {
        if marks[start] != Mark::New {
            continue;
        }
        let mut path: Vec<usize> = vec![start];
        let mut next_edge: Vec<usize> = vec![0];
        marks[start] = Mark::Active;
        while let Some(&node) = path.last() {
            let k = next_edge.last().copied().unwrap_or(0);
            if let Some((to, span)) = graph[node].get(k).cloned() {
                if let Some(e) = next_edge.last_mut() {
                    *e += 1;
                }
                match marks[to] {
                    Mark::New => {
                        marks[to] = Mark::Active;
                        path.push(to);
                        next_edge.push(0);
                    }
                    Mark::Active => {
                        let from = path.iter().position(|&n| n == to).unwrap_or(0);
                        let mut cycle: Vec<&str> = path[from..].iter().map(|&n| names[n]).collect();
                        cycle.push(names[to]);
                        let d = c
                            .at(span, format!("dependency cycle: {}", cycle.join(" -> ")))
                            .hint("remove one of these depends_on entries");
                        c.push(d);
                    }
                    Mark::Done => {}
                }
            } else {
                marks[node] = Mark::Done;
                path.pop();
                next_edge.pop();
            }
        }
    }
}
