//! The sync map of an image, read from its Dockerfile: where each file of the build context
//! lands in the running container. The running stage is the `target` (or the last stage),
//! with the stages it is built `FROM`. Each `COPY`/`ADD` from the context (not `--from=`
//! another stage) maps its sources to its destination, relative to the `WORKDIR` in force,
//! with `ARG` and `ENV` values put into paths. A copy that a later `RUN` may read
//! (`requirements.txt` before `RUN pip install`) cannot be carried by a sync.

use std::collections::BTreeMap;

use crate::dockerfile::{self, Instruction};
use crate::pattern::Pattern;

/// A source of a COPY, relative to the context.
#[derive(Debug, Clone)]
enum Source {
    /// `.`: the whole context.
    Root,
    /// A path without wildcards: a file, or a directory whose contents are copied.
    Literal(String),
    /// A glob: each match (a file, or a directory's contents) lands in the destination.
    Glob(Pattern),
}

/// One COPY (or ADD) from the context into the running image.
#[derive(Debug, Clone)]
pub struct Entry {
    sources: Vec<Source>,
    /// Absolute path in the container.
    dest: String,
    /// The destination is a directory (it ends in `/`, or several sources go there).
    dest_is_dir: bool,
    chown: Option<String>,
    /// The Dockerfile line of the COPY.
    pub line: usize,
    /// A RUN after it that may read what it copied: `(line, text)`.
    before_run: Option<(usize, String)>,
    /// ADD of an archive or a URL: unpacked or fetched at build time, never synced.
    unsyncable: Option<String>,
}

/// Why a file cannot be synced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Why {
    pub text: String,
    /// A `run` rule can stand for the RUN that reads it.
    pub rerunnable: bool,
}

/// Where the context's files land in the running container.
#[derive(Debug, Clone)]
pub struct SyncMap {
    entries: Vec<Entry>,
    /// Sources copied from the context by the stages the running image takes output from
    /// (`COPY --from=`) without being built from them.
    other_stages: Vec<(Source, String)>,
    /// The Dockerfile and its ignore files, relative to the context (when inside it).
    build_files: Vec<String>,
    /// The running stage's last WORKDIR (where `run` steps run).
    pub workdir: String,
    /// The running stage's name, for messages.
    pub stage: Option<String>,
}

/// `base` joined with the relative `rest` (both slash-separated).
pub fn join(base: &str, rest: &str) -> String {
    let rest = rest.trim_start_matches("./");
    if rest.is_empty() || rest == "." {
        return base.to_owned();
    }
    if base.ends_with('/') {
        format!("{base}{rest}")
    } else {
        format!("{base}/{rest}")
    }
}

/// `p` as an absolute path in the container: relative to `workdir` unless absolute, with `.`
/// and `..` resolved.
fn in_container(workdir: &str, p: &str) -> String {
    if p.starts_with('/') {
        clean_abs(p)
    } else {
        clean_abs(&join(workdir, p))
    }
}

/// Resolves `.` and `..` in an absolute slash path.
fn clean_abs(p: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for c in p.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    format!("/{}", parts.join("/"))
}

/// Puts `$VAR`, `${VAR}`, `${VAR:-default}` values in.
fn expand(text: &str, vars: &BTreeMap<String, String>) -> String {
    let mut out = String::new();
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '\\' && i + 1 < chars.len() && chars[i + 1] == '$' {
            out.push('$');
            i += 2;
            continue;
        }
        if c != '$' {
            out.push(c);
            i += 1;
            continue;
        }
        if chars.get(i + 1) == Some(&'{') {
            let Some(end) = chars[i + 2..].iter().position(|&c| c == '}') else {
                out.push(c);
                i += 1;
                continue;
            };
            let inner: String = chars[i + 2..i + 2 + end].iter().collect();
            let (name, default) = match inner.split_once(":-") {
                Some((n, d)) => (n.to_owned(), Some(d.to_owned())),
                None => (inner.clone(), None),
            };
            match (vars.get(&name), default) {
                (Some(v), _) if !v.is_empty() => out.push_str(v),
                (_, Some(d)) => out.push_str(&d),
                (Some(v), None) => out.push_str(v),
                (None, None) => {}
            }
            i += 3 + end;
        } else {
            let name: String = chars[i + 1..]
                .iter()
                .take_while(|c| c.is_ascii_alphanumeric() || **c == '_')
                .collect();
            if name.is_empty() {
                out.push(c);
                i += 1;
                continue;
            }
            out.push_str(vars.get(&name).map_or("", String::as_str));
            i += 1 + name.len();
        }
    }
    out
}

/// The words of a COPY's arguments: JSON form (`["a", "b"]`) or plain.
fn words(args: &str) -> Vec<String> {
    let t = args.trim();
    if t.starts_with('[')
        && let Ok(v) = serde_json::from_str::<Vec<String>>(t)
    {
        return v;
    }
    t.split_whitespace().map(str::to_owned).collect()
}

fn source(s: &str) -> Option<Source> {
    let s = s.trim_start_matches("./").trim_end_matches('/');
    let s = s.trim_start_matches('/');
    if s.is_empty() || s == "." {
        return Some(Source::Root);
    }
    if s.contains(['*', '?', '[']) {
        return Pattern::parse(s).ok().flatten().map(Source::Glob);
    }
    Some(Source::Literal(s.to_owned()))
}

impl Source {
    /// Where `path` (relative to the context) lands under `dest`, if this source copies it.
    fn target(&self, path: &str, dest: &str, dest_is_dir: bool) -> Option<String> {
        match self {
            Source::Root => Some(join(dest, path)),
            Source::Literal(l) => {
                if path == l {
                    let name = path.rsplit('/').next().unwrap_or(path);
                    Some(if dest_is_dir {
                        join(dest, name)
                    } else {
                        dest.to_owned()
                    })
                } else {
                    path.strip_prefix(&format!("{l}/"))
                        .map(|rest| join(dest, rest))
                }
            }
            Source::Glob(p) => {
                if p.matches_exact(path) {
                    let name = path.rsplit('/').next().unwrap_or(path);
                    return Some(join(dest, name));
                }
                // A directory the glob matches: its contents.
                let mut end = 0;
                while let Some(i) = path[end..].find('/') {
                    end += i;
                    if p.matches_exact(&path[..end]) {
                        return Some(join(dest, &path[end + 1..]));
                    }
                    end += 1;
                }
                None
            }
        }
    }

    fn covers(&self, path: &str) -> bool {
        self.target(path, "/", true).is_some()
    }
}

/// The stages the running one is built from, itself last: `[base, …, running]`.
fn chain(stages: &[dockerfile::Stage], running: usize) -> Vec<usize> {
    let mut out = vec![running];
    let mut at = running;
    // A stage's FROM names an earlier stage (by name, or by index).
    while let Some(prev) = stages[..at].iter().position(|s| {
        let from = stages[at].from.to_ascii_lowercase();
        s.name.as_deref() == Some(from.as_str())
    }) {
        out.push(prev);
        at = prev;
    }
    out.reverse();
    out
}

/// Reads the sync map of a Dockerfile. `target` is the stage built (the last when `None`),
/// `build_args` the image's, `build_files` the Dockerfile and ignore files relative to the
/// context (when inside it).
pub fn infer(
    text: &str,
    target: Option<&str>,
    build_args: &BTreeMap<String, String>,
    build_files: Vec<String>,
) -> SyncMap {
    let stages = dockerfile::stages(text);
    // ARGs before the first FROM are global defaults.
    let mut global: BTreeMap<String, String> = BTreeMap::new();
    for (line, l) in dockerfile::logical_lines(text) {
        let words: Vec<&str> = l.split_whitespace().collect();
        match words.first().map(|w| w.to_ascii_uppercase()) {
            Some(k) if k == "FROM" => break,
            Some(k) if k == "ARG" => {
                for w in &words[1..] {
                    let (k, v) = w.split_once('=').unwrap_or((w, ""));
                    global.insert(k.to_owned(), v.trim_matches('"').to_owned());
                }
            }
            _ => {}
        }
        let _ = line;
    }
    for (k, v) in build_args {
        global.insert(k.clone(), v.clone());
    }
    let running = target
        .and_then(|t| {
            let t = t.to_ascii_lowercase();
            stages
                .iter()
                .position(|s| s.name.as_deref() == Some(t.as_str()))
        })
        .unwrap_or(stages.len().saturating_sub(1));
    let running_chain = if stages.is_empty() {
        Vec::new()
    } else {
        chain(&stages, running)
    };
    let mut entries: Vec<Entry> = Vec::new();
    let mut workdir = "/".to_owned();
    let mut vars: BTreeMap<String, String> = BTreeMap::new();
    for &si in &running_chain {
        for ins in &stages[si].instructions {
            step(ins, &mut entries, &mut workdir, &mut vars, &global);
        }
    }
    // The stages whose output the running image takes (`COPY --from=`), with the stages
    // those are built from and take from: a file one of them uses reaches the image only
    // through what that stage built.
    let mut needed: Vec<usize> = running_chain.clone();
    let mut i = 0;
    while i < needed.len() {
        let si = needed[i];
        i += 1;
        for ins in &stages[si].instructions {
            if !matches!(ins.keyword.as_str(), "COPY" | "ADD") {
                continue;
            }
            let Some(from) = ins.flags.iter().find_map(|f| f.strip_prefix("--from=")) else {
                continue;
            };
            let from = from.to_ascii_lowercase();
            let found = stages
                .iter()
                .position(|s| s.name.as_deref() == Some(from.as_str()))
                .or_else(|| from.parse::<usize>().ok().filter(|n| *n < stages.len()));
            if let Some(f) = found {
                for s in chain(&stages, f) {
                    if !needed.contains(&s) {
                        needed.push(s);
                    }
                }
            }
        }
    }
    let mut other_stages = Vec::new();
    for (si, stage) in stages.iter().enumerate() {
        if running_chain.contains(&si) || !needed.contains(&si) {
            continue;
        }
        let name = stage.name.clone().unwrap_or_else(|| format!("{}", si + 1));
        for ins in &stage.instructions {
            if matches!(ins.keyword.as_str(), "COPY" | "ADD")
                && !ins.flags.iter().any(|f| f.starts_with("--from"))
            {
                let w = words(&ins.args);
                for s in w.iter().take(w.len().saturating_sub(1)) {
                    if let Some(src) = source(&expand(s, &global)) {
                        other_stages.push((src, name.clone()));
                    }
                }
            }
        }
    }
    SyncMap {
        entries,
        other_stages,
        build_files,
        workdir,
        stage: running_chain
            .last()
            .and_then(|&i| stages.get(i))
            .and_then(|s| s.name.clone()),
    }
}

/// Applies one instruction of the running stage's chain.
fn step(
    ins: &Instruction,
    entries: &mut Vec<Entry>,
    workdir: &mut String,
    vars: &mut BTreeMap<String, String>,
    global: &BTreeMap<String, String>,
) {
    let all = |vars: &BTreeMap<String, String>| {
        let mut v = global.clone();
        v.extend(vars.iter().map(|(k, v)| (k.clone(), v.clone())));
        v
    };
    match ins.keyword.as_str() {
        "ARG" => {
            for w in ins.args.split_whitespace() {
                let (k, v) = w.split_once('=').unwrap_or((w, ""));
                // A stage's ARG takes the global value or the build arg; else its default.
                let value = global
                    .get(k)
                    .cloned()
                    .unwrap_or_else(|| v.trim_matches('"').to_owned());
                vars.insert(k.to_owned(), value);
            }
        }
        "ENV" => {
            let a = ins.args.trim();
            if a.contains('=') {
                for w in a.split_whitespace() {
                    if let Some((k, v)) = w.split_once('=') {
                        let v = expand(v.trim_matches('"'), &all(vars));
                        vars.insert(k.to_owned(), v);
                    }
                }
            } else if let Some((k, v)) = a.split_once(char::is_whitespace) {
                let v = expand(v.trim().trim_matches('"'), &all(vars));
                vars.insert(k.to_owned(), v);
            }
        }
        "WORKDIR" => {
            let w = expand(ins.args.trim().trim_matches('"'), &all(vars));
            *workdir = in_container(workdir, &w);
        }
        "RUN" => {
            let text: String = ins.args.chars().take(60).collect();
            for e in entries.iter_mut().filter(|e| e.before_run.is_none()) {
                e.before_run = Some((ins.line, text.clone()));
            }
        }
        "COPY" | "ADD" => {
            if ins.flags.iter().any(|f| f.starts_with("--from")) {
                return;
            }
            let w: Vec<String> = words(&ins.args)
                .into_iter()
                .map(|s| expand(&s, &all(vars)))
                .collect();
            let Some((dest, srcs)) = w.split_last() else {
                return;
            };
            let unsyncable = (ins.keyword == "ADD")
                .then(|| {
                    srcs.iter().find(|s| {
                        s.contains("://")
                            || [".tar", ".tgz", ".tar.gz", ".tar.xz", ".tar.bz2", ".zip"]
                                .iter()
                                .any(|x| s.ends_with(x))
                    })
                })
                .flatten()
                .map(|s| format!("`ADD {s}` fetches or unpacks it at build time"));
            let sources: Vec<Source> = srcs.iter().filter_map(|s| source(s)).collect();
            let dest_is_dir = dest.ends_with('/')
                || dest == "."
                || dest.ends_with("/.")
                || srcs.len() > 1
                || sources
                    .iter()
                    .any(|s| matches!(s, Source::Root | Source::Glob(_)));
            let abs = in_container(workdir, dest);
            let chown = ins
                .flags
                .iter()
                .find_map(|f| f.strip_prefix("--chown="))
                .map(|c| expand(c, &all(vars)));
            entries.push(Entry {
                sources,
                dest: abs,
                dest_is_dir,
                chown,
                line: ins.line,
                before_run: None,
                unsyncable,
            });
        }
        _ => {}
    }
}

impl SyncMap {
    /// Where `path` (relative to the context) lands in the running container, or why it
    /// cannot be synced.
    pub fn targets(&self, path: &str) -> Result<Vec<(String, Option<String>)>, Why> {
        if self.build_files.iter().any(|f| f == path) {
            return Err(Why {
                text: "the Dockerfile (or its .dockerignore) changed".into(),
                rerunnable: false,
            });
        }
        let matching: Vec<&Entry> = self
            .entries
            .iter()
            .filter(|e| e.sources.iter().any(|s| s.covers(path)))
            .collect();
        if let Some(e) = matching.iter().find(|e| e.unsyncable.is_some()) {
            return Err(Why {
                text: e.unsyncable.clone().unwrap_or_default(),
                rerunnable: false,
            });
        }
        if let Some(e) = matching.iter().find(|e| e.before_run.is_some()) {
            let (line, run) = e.before_run.clone().unwrap_or_default();
            return Err(Why {
                text: format!(
                    "it is copied (Dockerfile line {}) before `RUN {run}` (line {line}), which may read it",
                    e.line
                ),
                rerunnable: true,
            });
        }
        if let Some((_, stage)) = self.other_stages.iter().find(|(s, _)| s.covers(path)) {
            return Err(Why {
                text: format!(
                    "stage `{stage}` uses it, and the running image has only what that stage built"
                ),
                rerunnable: false,
            });
        }
        Ok(self.plain_targets(path))
    }

    /// Where `path` lands, whatever RUN follows its COPY.
    pub fn plain_targets(&self, path: &str) -> Vec<(String, Option<String>)> {
        let mut out: Vec<(String, Option<String>)> = Vec::new();
        for e in &self.entries {
            for s in &e.sources {
                if let Some(t) = s.target(path, &e.dest, e.dest_is_dir)
                    && !out.iter().any(|(o, _)| o == &t)
                {
                    out.push((t, e.chown.clone()));
                }
            }
        }
        out
    }

    /// Whether any file could be synced (the running stage copies something from the
    /// context after its last RUN).
    pub fn syncs_anything(&self) -> bool {
        self.entries
            .iter()
            .any(|e| e.before_run.is_none() && e.unsyncable.is_none())
    }
}
