//! What a repository already says about how it builds and runs itself, read as evidence: a
//! Tiltfile's `docker_build`, `custom_build`, `k8s_yaml`, `k8s_resource` and
//! `local_resource` calls (their literal arguments; the Starlark is never evaluated), the
//! `build:` and `image:` of docker-compose services, skaffold.yaml's artifacts, and
//! `docker build -t NAME DIR` (or podman's, buildah's, `minikube image build`'s) lines of
//! Makefiles, shell scripts and READMEs. init names images as they say, writes their local
//! steps and resource dependencies, and notes each call it could not carry over.
//!
//! Pure reading: files are read as regular files of the repository, size-capped.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_norway::Value;

/// An image the repository builds somewhere: its name, its context and Dockerfile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Build {
    /// The image's repository (`acme/web`, without a tag).
    pub image: String,
    pub context: PathBuf,
    /// The Dockerfile, when the evidence names one (else the context's `Dockerfile`).
    pub dockerfile: Option<PathBuf>,
    /// What the container runs instead of its ENTRYPOINT and CMD (a Tiltfile's
    /// `entrypoint`: a string runs in `sh -c`).
    pub entrypoint: Vec<String>,
    /// The Tiltfile gives it `live_update` steps.
    pub live_update: bool,
    /// Where it was said: `Tiltfile:10 docker_build('acme/web', …)`.
    pub from: String,
}

/// A command the repository runs on the host (a Tiltfile's `local_resource`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Local {
    pub name: String,
    pub cmd: Option<String>,
    pub serve_cmd: Option<String>,
    pub deps: Vec<PathBuf>,
    pub workdir: PathBuf,
    pub from: String,
}

/// Everything read.
#[derive(Debug, Clone, Default)]
pub struct Evidence {
    pub builds: Vec<Build>,
    pub locals: Vec<Local>,
    /// What each Tilt resource (a workload's name, or a local's) waits for, in order.
    pub resource_deps: BTreeMap<String, Vec<String>>,
    /// Calls devenv does not carry over: `Tiltfile:24 helm_resource('redis', …)`.
    pub not_carried: Vec<String>,
}

/// A literal argument of a call.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Arg {
    Str(String),
    List(Vec<Arg>),
    /// A number, a name, an expression: not read.
    Other(String),
}

impl Arg {
    fn str(&self) -> Option<&str> {
        match self {
            Arg::Str(s) => Some(s),
            _ => None,
        }
    }

    /// A string, or each string of a list (`deps='a'` and `deps=['a', 'b']` alike).
    fn strings(&self) -> Vec<String> {
        match self {
            Arg::Str(s) => vec![s.clone()],
            Arg::List(items) => items
                .iter()
                .filter_map(|a| a.str().map(str::to_owned))
                .collect(),
            Arg::Other(_) => Vec::new(),
        }
    }
}

/// One call of the file: its name, its line, its arguments (keyword ones named).
#[derive(Debug, Clone)]
struct Call {
    name: String,
    line: usize,
    args: Vec<(Option<String>, Arg)>,
}

impl Call {
    fn positional(&self, n: usize) -> Option<&Arg> {
        self.args
            .iter()
            .filter(|(k, _)| k.is_none())
            .nth(n)
            .map(|(_, a)| a)
    }

    fn keyword(&self, name: &str) -> Option<&Arg> {
        self.args
            .iter()
            .find(|(k, _)| k.as_deref() == Some(name))
            .map(|(_, a)| a)
    }

    /// The argument named `name`, else the `n`th positional one.
    fn arg(&self, n: usize, name: &str) -> Option<&Arg> {
        self.keyword(name).or_else(|| self.positional(n))
    }

    /// `file:line name('first', …)`, as init tells it.
    fn told(&self, file: &str) -> String {
        let first = self
            .positional(0)
            .and_then(Arg::str)
            .map(|s| format!("'{s}', …"))
            .unwrap_or_else(|| "…".to_owned());
        format!("{file}:{} {}({first})", self.line, self.name)
    }
}

/// A cursor over Starlark text.
struct Lexer<'a> {
    s: &'a [u8],
    i: usize,
    line: usize,
}

impl Lexer<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn bump(&mut self) -> Option<u8> {
        let c = self.peek()?;
        self.i += 1;
        if c == b'\n' {
            self.line += 1;
        }
        Some(c)
    }

    /// Skips blanks, newlines and comments.
    fn skip(&mut self) {
        while let Some(c) = self.peek() {
            match c {
                b' ' | b'\t' | b'\r' | b'\n' | b'\\' => {
                    self.bump();
                }
                b'#' => {
                    while self.peek().is_some_and(|c| c != b'\n') {
                        self.bump();
                    }
                }
                _ => break,
            }
        }
    }

    /// A string literal at the cursor (its quote there): its text. Prefixes such as `r` are
    /// read by the caller as part of a name, so an `r'...'` reads as a name then a string.
    fn string(&mut self) -> String {
        let Some(q) = self.bump() else {
            return String::new();
        };
        let triple = self.s.get(self.i..self.i + 2) == Some(&[q, q][..]);
        if triple {
            self.bump();
            self.bump();
        }
        let mut out = Vec::new();
        while let Some(c) = self.bump() {
            if c == b'\\' {
                if let Some(n) = self.bump() {
                    out.push(match n {
                        b'n' => b'\n',
                        b't' => b'\t',
                        other => other,
                    });
                }
                continue;
            }
            if c == q {
                if !triple {
                    break;
                }
                if self.s.get(self.i..self.i + 2) == Some(&[q, q][..]) {
                    self.bump();
                    self.bump();
                    break;
                }
            }
            if c == b'\n' && !triple {
                break;
            }
            out.push(c);
        }
        String::from_utf8_lossy(&out).into_owned()
    }

    /// Skips a balanced expression up to (not past) a `,` or closing bracket at its level;
    /// the text it spanned.
    fn expression(&mut self) -> String {
        let start = self.i;
        let mut depth = 0usize;
        while let Some(c) = self.peek() {
            match c {
                b'\'' | b'"' => {
                    self.string();
                    continue;
                }
                b'#' => {
                    self.skip();
                    continue;
                }
                b'(' | b'[' | b'{' => depth += 1,
                b')' | b']' | b'}' if depth == 0 => break,
                b')' | b']' | b'}' => depth -= 1,
                b',' if depth == 0 => break,
                _ => {}
            }
            self.bump();
        }
        String::from_utf8_lossy(&self.s[start..self.i])
            .trim()
            .to_owned()
    }

    /// One argument value.
    fn value(&mut self) -> Arg {
        self.skip();
        match self.peek() {
            Some(b'\'' | b'"') => {
                let s = self.string();
                let save = (self.i, self.line);
                self.skip();
                // `'a' + x`, `'%s' % y`: not a literal.
                if matches!(self.peek(), Some(b'+' | b'%' | b'.')) {
                    let rest = self.expression();
                    return Arg::Other(format!("'{s}' {rest}"));
                }
                (self.i, self.line) = save;
                Arg::Str(s)
            }
            Some(b'[') => {
                self.bump();
                let mut items = Vec::new();
                loop {
                    self.skip();
                    match self.peek() {
                        Some(b']') => {
                            self.bump();
                            break;
                        }
                        Some(b',') => {
                            self.bump();
                        }
                        None => break,
                        _ => items.push(self.value()),
                    }
                }
                Arg::List(items)
            }
            _ => Arg::Other(self.expression()),
        }
    }

    /// The arguments of a call whose `(` was just read, through its `)`.
    fn arguments(&mut self) -> Vec<(Option<String>, Arg)> {
        let mut args = Vec::new();
        loop {
            self.skip();
            match self.peek() {
                Some(b')') => {
                    self.bump();
                    break;
                }
                Some(b',') => {
                    self.bump();
                    continue;
                }
                None => break,
                _ => {}
            }
            // `name=value`?
            let save = (self.i, self.line);
            let mut name = String::new();
            while let Some(c) = self
                .peek()
                .filter(|c| c.is_ascii_alphanumeric() || *c == b'_')
            {
                name.push(char::from(c));
                self.bump();
            }
            self.skip();
            let keyword = !name.is_empty()
                && self.peek() == Some(b'=')
                && self.s.get(self.i + 1) != Some(&b'=');
            if keyword {
                self.bump();
                let v = self.value();
                args.push((Some(name), v));
            } else {
                (self.i, self.line) = save;
                let v = self.value();
                args.push((None, v));
            }
            self.skip();
            if !matches!(self.peek(), Some(b',' | b')')) {
                // Something not understood: skip to the end of this argument.
                self.expression();
            }
        }
        args
    }
}

/// Every call of a name in `wanted` in Starlark text.
fn calls(text: &str, wanted: &[&str]) -> Vec<Call> {
    let mut lx = Lexer {
        s: text.as_bytes(),
        i: 0,
        line: 1,
    };
    let mut out = Vec::new();
    let mut prev_dot = false;
    while let Some(c) = lx.peek() {
        match c {
            b'#' => lx.skip(),
            b'\'' | b'"' => {
                lx.string();
                prev_dot = false;
            }
            c if c.is_ascii_alphabetic() || c == b'_' => {
                let line = lx.line;
                let mut name = String::new();
                while let Some(c) = lx
                    .peek()
                    .filter(|c| c.is_ascii_alphanumeric() || *c == b'_')
                {
                    name.push(char::from(c));
                    lx.bump();
                }
                let save = (lx.i, lx.line);
                lx.skip();
                if !prev_dot && lx.peek() == Some(b'(') && wanted.contains(&name.as_str()) {
                    lx.bump();
                    let args = lx.arguments();
                    out.push(Call { name, line, args });
                } else {
                    (lx.i, lx.line) = save;
                }
                prev_dot = false;
            }
            _ => {
                prev_dot = c == b'.';
                lx.bump();
            }
        }
    }
    out
}

/// The Tilt calls devenv reads, and those it names as not carried over.
const TILT_READ: &[&str] = &[
    "docker_build",
    "custom_build",
    "k8s_yaml",
    "k8s_resource",
    "local_resource",
];
const TILT_NOT_CARRIED: &[&str] = &[
    "helm_resource",
    "helm_remote",
    "k8s_custom_deploy",
    "docker_compose",
    "dc_resource",
    "load",
    "load_dynamic",
];

fn read_file(root: &Path, path: &Path) -> Option<String> {
    String::from_utf8(crate::tree::read_in(root, path)?).ok()
}

/// `name:tag` (or `name@digest`) without its tag.
fn repository(image: &str) -> String {
    crate::objects::repository_of(image).to_owned()
}

/// A Tiltfile's evidence; paths are relative to its directory.
fn tiltfile(root: &Path, file: &Path, ev: &mut Evidence) {
    let Some(text) = read_file(root, file) else {
        return;
    };
    let dir = file.parent().unwrap_or(root);
    let shown = file
        .strip_prefix(root)
        .unwrap_or(file)
        .display()
        .to_string();
    let mut wanted: Vec<&str> = TILT_READ.to_vec();
    wanted.extend(TILT_NOT_CARRIED);
    for call in calls(&text, &wanted) {
        let told = call.told(&shown);
        match call.name.as_str() {
            "docker_build" => {
                let (Some(image), Some(context)) = (
                    call.arg(0, "ref").and_then(Arg::str),
                    call.arg(1, "context").and_then(Arg::str),
                ) else {
                    ev.not_carried.push(format!(
                        "{told}: its image or context is not a plain string"
                    ));
                    continue;
                };
                let entrypoint = match call.keyword("entrypoint") {
                    Some(Arg::Str(s)) => vec!["sh".to_owned(), "-c".to_owned(), s.clone()],
                    Some(a @ Arg::List(_)) => a.strings(),
                    _ => Vec::new(),
                };
                ev.builds.push(Build {
                    image: repository(image),
                    context: dir.join(context),
                    dockerfile: call
                        .keyword("dockerfile")
                        .and_then(Arg::str)
                        .map(|d| dir.join(d)),
                    entrypoint,
                    live_update: call.keyword("live_update").is_some(),
                    from: told,
                });
            }
            "local_resource" => {
                let Some(name) = call.arg(0, "name").and_then(Arg::str) else {
                    ev.not_carried
                        .push(format!("{told}: its name is not a plain string"));
                    continue;
                };
                let cmd = call.arg(1, "cmd").and_then(Arg::str).map(str::to_owned);
                let serve_cmd = call
                    .keyword("serve_cmd")
                    .and_then(Arg::str)
                    .map(str::to_owned);
                if cmd.is_none() && serve_cmd.is_none() {
                    ev.not_carried
                        .push(format!("{told}: its command is not a plain string"));
                    continue;
                }
                let deps: Vec<PathBuf> = call
                    .keyword("deps")
                    .map(Arg::strings)
                    .unwrap_or_default()
                    .iter()
                    .map(|d| dir.join(d))
                    .collect();
                let workdir = call
                    .keyword("dir")
                    .and_then(Arg::str)
                    .map_or_else(|| dir.to_path_buf(), |d| dir.join(d));
                if let Some(deps) = call.keyword("resource_deps") {
                    ev.resource_deps
                        .entry(name.to_owned())
                        .or_default()
                        .extend(deps.strings());
                }
                ev.locals.push(Local {
                    name: name.to_owned(),
                    cmd,
                    serve_cmd,
                    deps,
                    workdir,
                    from: told,
                });
            }
            "k8s_resource" => {
                let Some(name) = call.arg(0, "workload").and_then(Arg::str) else {
                    continue;
                };
                if let Some(deps) = call.keyword("resource_deps") {
                    ev.resource_deps
                        .entry(name.to_owned())
                        .or_default()
                        .extend(deps.strings());
                }
            }
            // The manifests are found by reading every YAML file; the ones a Tiltfile loads
            // are among them.
            "k8s_yaml" => {}
            "custom_build" => ev.not_carried.push(format!(
                "{told}: a custom build command; give the image `builder = \"custom\"` and its command"
            )),
            _ => ev.not_carried.push(format!(
                "{told}: devenv deploys the charts and manifests of the repository, not Tilt's extensions or remote charts"
            )),
        }
    }
}

/// docker-compose services with both `build:` and `image:`.
fn compose(root: &Path, file: &Path, ev: &mut Evidence) {
    let Some(text) = read_file(root, file) else {
        return;
    };
    let Ok(doc) = serde_norway::from_str::<Value>(&text) else {
        return;
    };
    let dir = file.parent().unwrap_or(root);
    let shown = file
        .strip_prefix(root)
        .unwrap_or(file)
        .display()
        .to_string();
    let Some(services) = doc.get("services").and_then(Value::as_mapping) else {
        return;
    };
    for (name, s) in services {
        let (Some(image), Some(build)) = (s.get("image").and_then(Value::as_str), s.get("build"))
        else {
            continue;
        };
        let (context, dockerfile) = match build {
            Value::String(c) => (c.clone(), None),
            Value::Mapping(_) => (
                build
                    .get("context")
                    .and_then(Value::as_str)
                    .unwrap_or(".")
                    .to_owned(),
                build.get("dockerfile").and_then(Value::as_str),
            ),
            _ => continue,
        };
        if image.contains('$') || context.contains('$') {
            continue;
        }
        let context = dir.join(&context);
        ev.builds.push(Build {
            image: repository(image),
            dockerfile: dockerfile.map(|d| context.join(d)),
            context,
            entrypoint: Vec::new(),
            live_update: false,
            from: format!("{shown} service `{}`", name.as_str().unwrap_or_default()),
        });
    }
}

/// skaffold.yaml's `build.artifacts`.
fn skaffold(root: &Path, file: &Path, ev: &mut Evidence) {
    let Some(text) = read_file(root, file) else {
        return;
    };
    let dir = file.parent().unwrap_or(root);
    let shown = file
        .strip_prefix(root)
        .unwrap_or(file)
        .display()
        .to_string();
    for doc in crate::objects::documents(&text).unwrap_or_default() {
        let artifacts = doc
            .value
            .get("build")
            .and_then(|b| b.get("artifacts"))
            .and_then(Value::as_sequence)
            .cloned()
            .unwrap_or_default();
        for a in artifacts {
            let Some(image) = a.get("image").and_then(Value::as_str) else {
                continue;
            };
            let context = dir.join(a.get("context").and_then(Value::as_str).unwrap_or("."));
            let dockerfile = a
                .get("docker")
                .and_then(|d| d.get("dockerfile"))
                .and_then(Value::as_str)
                .map(|d| context.join(d));
            ev.builds.push(Build {
                image: repository(image),
                context,
                dockerfile,
                entrypoint: Vec::new(),
                live_update: false,
                from: format!("{shown} artifact `{image}`"),
            });
        }
    }
}

/// `docker build -t NAME [-f FILE] DIR` lines (and podman's, buildah's, `minikube image
/// build`'s) of a Makefile or a shell script; names and paths with variables are skipped.
fn build_lines(root: &Path, file: &Path, ev: &mut Evidence) {
    let Some(text) = read_file(root, file) else {
        return;
    };
    let dir = file.parent().unwrap_or(root);
    let shown = file
        .strip_prefix(root)
        .unwrap_or(file)
        .display()
        .to_string();
    for (n, raw) in text.lines().enumerate() {
        // A Makefile's `@`, a README's shell prompt.
        let line = raw
            .trim()
            .trim_start_matches(['@', '$', '>'])
            .trim()
            .trim_end_matches('\\');
        let words: Vec<&str> = line.split_whitespace().collect();
        let start = words.windows(2).position(|w| {
            matches!(
                w,
                ["docker" | "podman", "build"] | ["buildah", "bud" | "build"] | ["image", "build"]
            )
        });
        let Some(start) = start else { continue };
        let mut image = None;
        let mut dockerfile = None;
        let mut context = None;
        let mut i = start + 2;
        while i < words.len() {
            let w = words[i];
            match w {
                "-t" | "--tag" => {
                    image = words.get(i + 1).copied();
                    i += 1;
                }
                "-f" | "--file" => {
                    dockerfile = words.get(i + 1).copied();
                    i += 1;
                }
                "&&" | ";" | "|" => break,
                _ if w.starts_with("--tag=") => image = w.strip_prefix("--tag="),
                _ if w.starts_with("--file=") => dockerfile = w.strip_prefix("--file="),
                _ if w.starts_with('-') => {
                    // Flags with a value of their own.
                    if matches!(
                        w,
                        "--build-arg" | "--target" | "--platform" | "-p" | "--profile"
                    ) {
                        i += 1;
                    }
                }
                _ => context = Some(w),
            }
            i += 1;
        }
        let (Some(image), Some(context)) = (image, context) else {
            continue;
        };
        if [image, context].iter().any(|s| s.contains('$')) {
            continue;
        }
        let context = dir.join(context);
        ev.builds.push(Build {
            image: repository(image),
            dockerfile: dockerfile.filter(|d| !d.contains('$')).map(|d| dir.join(d)),
            context,
            entrypoint: Vec::new(),
            live_update: false,
            from: format!("{shown}:{}", n + 1),
        });
    }
}

/// Reads every file of the repository that says how it builds and runs itself.
pub fn read(tree: &crate::tree::Tree) -> Evidence {
    let root = &tree.root;
    let mut ev = Evidence::default();
    for f in &tree.tiltfiles {
        tiltfile(root, f, &mut ev);
    }
    for f in &tree.other_yaml {
        let name = f
            .file_name()
            .map(|n| n.to_string_lossy().to_ascii_lowercase())
            .unwrap_or_default();
        if name.starts_with("docker-compose") || name.starts_with("compose") {
            compose(root, f, &mut ev);
        } else if name.starts_with("skaffold") {
            skaffold(root, f, &mut ev);
        }
    }
    for f in &tree.scripts {
        build_lines(root, f, &mut ev);
    }
    ev.builds.iter_mut().for_each(|b| {
        b.context = crate::config::normalize(&b.context);
        b.dockerfile = b.dockerfile.as_deref().map(crate::config::normalize);
    });
    ev
}

impl Evidence {
    /// The build said for a Dockerfile: the first source that names it (or names its
    /// directory as the context, with no Dockerfile: the context's `Dockerfile`).
    pub fn build_of(&self, dockerfile: &Path) -> Option<&Build> {
        self.builds.iter().find(|b| match &b.dockerfile {
            Some(d) => d == dockerfile,
            None => dockerfile == b.context.join("Dockerfile"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_read_literal_arguments_across_lines_comments_and_keywords() {
        let text = "# docker_build('commented', 'out')\nload('ext://restart_process', 'docker_build_with_restart')\ndocker_build(\n    'acme/web',  # the image\n    'web',\n    dockerfile='web/Dockerfile.dev',\n    entrypoint=['npm', 'run', \"dev\"],\n    live_update=[sync('web/src', '/app/src'), run('npm i', trigger=['package.json'])],\n)\nx.docker_build('not', 'this')\nk8s_resource('web', port_forwards='3000:3000', resource_deps=['gen'])\ndocker_build('img' + suffix, ctx)\n";
        let c = calls(text, &["docker_build", "k8s_resource", "load"]);
        assert_eq!(c.len(), 4, "{c:?}");
        assert_eq!(c[0].name, "load");
        assert_eq!(c[1].line, 3);
        assert_eq!(c[1].arg(0, "ref"), Some(&Arg::Str("acme/web".into())));
        assert_eq!(
            c[1].keyword("entrypoint").map(Arg::strings),
            Some(vec!["npm".into(), "run".into(), "dev".into()])
        );
        assert!(c[1].keyword("live_update").is_some());
        assert_eq!(
            c[2].keyword("resource_deps").map(Arg::strings),
            Some(vec!["gen".into()])
        );
        assert!(matches!(c[3].positional(0), Some(Arg::Other(_))), "{c:?}");
    }

    #[test]
    fn build_lines_read_the_tag_the_file_and_the_context() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let f = dir.path().join("Makefile");
        std::fs::write(
            &f,
            "images:\n\tdocker build -t todo-backend:dev -f backend/Dockerfile.dev --build-arg X=1 backend\n\t@minikube image build -t todo-frontend frontend\n\tdocker build -t $(IMG) .\n```sh\n$ docker build -t todo-worker ./worker\n```\n",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let mut ev = Evidence::default();
        build_lines(dir.path(), &f, &mut ev);
        let got: Vec<(String, PathBuf, Option<PathBuf>)> = ev
            .builds
            .into_iter()
            .map(|b| (b.image, b.context, b.dockerfile))
            .collect();
        assert_eq!(
            got,
            [
                (
                    "todo-backend".to_owned(),
                    dir.path().join("backend"),
                    Some(dir.path().join("backend/Dockerfile.dev"))
                ),
                (
                    "todo-frontend".to_owned(),
                    dir.path().join("frontend"),
                    None
                ),
                ("todo-worker".to_owned(), dir.path().join("./worker"), None),
            ]
        );
    }
}
