//! What `init` reads from each Dockerfile: its build context (the directory its COPY lines
//! name files of), its stages and the one to build, and whether live update can keep the
//! running container current (the running stage copies sources last and its command
//! reloads them, or can be told to).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::dockerfile::{self, Stage};

use crate::tree::{DEV_VARIANTS, OTHER_VARIANTS, Tree, service, variant};

/// Stage names that mean "the development image".
const DEV_STAGES: &[&str] = &["dev", "development", "develop", "local"];

/// One Dockerfile, read.
#[derive(Debug, Clone)]
pub struct Found {
    /// The service it builds (`backend`; the project's name for the root Dockerfile).
    pub service: String,
    pub dockerfile: PathBuf,
    pub context: PathBuf,
    /// How the context was chosen, for the file's comments.
    pub context_why: String,
    pub stages: Vec<String>,
    pub target: Option<String>,
    pub target_why: Option<String>,
    pub live_update: bool,
    /// The running stage's command with a reloader added (`uvicorn … --reload`).
    pub dev_command: Vec<String>,
    pub live_why: String,
    /// The ports the running stage EXPOSEs (with those of the stages it is built from).
    pub exposes: Vec<u16>,
}

/// The Dockerfiles to build: a directory's development variant stands for its plain one, and
/// production or CI variants are left out where the directory has another.
pub fn chosen(tree: &Tree) -> (Vec<PathBuf>, Vec<(PathBuf, String)>) {
    let mut by_dir: BTreeMap<PathBuf, Vec<PathBuf>> = BTreeMap::new();
    for f in &tree.dockerfiles {
        by_dir
            .entry(f.parent().unwrap_or(&tree.root).to_path_buf())
            .or_default()
            .push(f.clone());
    }
    let mut keep = Vec::new();
    let mut left = Vec::new();
    for files in by_dir.values() {
        let dev: Vec<&PathBuf> = files
            .iter()
            .filter(|f| variant(f).is_some_and(|v| DEV_VARIANTS.contains(&v.as_str())))
            .collect();
        for f in files {
            let v = variant(f);
            let why = match v.as_deref() {
                Some(v) if DEV_VARIANTS.contains(&v) => None,
                None if !dev.is_empty() => Some(format!(
                    "{} is its development build",
                    dev[0].file_name().unwrap_or_default().to_string_lossy()
                )),
                Some(v) if OTHER_VARIANTS.contains(&v) && files.len() > 1 => {
                    Some("not a development build".to_owned())
                }
                _ => None,
            };
            match why {
                Some(why) => left.push((f.clone(), why)),
                None => keep.push(f.clone()),
            }
        }
    }
    keep.sort();
    (keep, left)
}

/// The sources a stage's COPY/ADD lines take from the build context (not from other stages,
/// not URLs, not the whole context).
fn context_sources(stages: &[Stage]) -> Vec<String> {
    let mut out = Vec::new();
    for s in stages {
        for ins in &s.instructions {
            if !(ins.keyword == "COPY" || ins.keyword == "ADD")
                || ins.flags.iter().any(|f| f.starts_with("--from"))
            {
                continue;
            }
            let words: Vec<String> = match serde_json::from_str::<Vec<String>>(&ins.args) {
                Ok(v) => v,
                Err(_) => ins.args.split_whitespace().map(str::to_owned).collect(),
            };
            if words.len() < 2 {
                continue;
            }
            for src in &words[..words.len() - 1] {
                let src = src.trim_start_matches("./").trim_end_matches('/');
                if src.is_empty() || src == "." || src.contains("://") || src.contains('$') {
                    continue;
                }
                out.push(src.to_owned());
            }
        }
    }
    out
}

/// Whether `src` (maybe a glob) names something in `dir`.
fn exists_in(dir: &Path, src: &str) -> bool {
    if let Some(star) = src.find(['*', '?', '[']) {
        // The part before the first wildcard must exist as a directory (or be empty).
        let fixed = &src[..star];
        let parent = match fixed.rfind('/') {
            Some(i) => dir.join(&fixed[..i]),
            None => dir.to_path_buf(),
        };
        let prefix = fixed.rsplit('/').next().unwrap_or_default();
        std::fs::read_dir(&parent).is_ok_and(|mut rd| {
            rd.any(|e| {
                e.ok()
                    .is_some_and(|e| e.file_name().to_string_lossy().starts_with(prefix))
            })
        })
    } else {
        dir.join(src).exists()
    }
}

/// The build context: among the Dockerfile's directory, its parents up to the root and the
/// directories named as its service, the one where most COPY sources exist (the nearest to
/// the Dockerfile on a tie).
fn context(tree: &Tree, file: &Path, service: &str, sources: &[String]) -> (PathBuf, String) {
    let dir = file.parent().unwrap_or(&tree.root).to_path_buf();
    if sources.is_empty() {
        return (dir, "the Dockerfile copies the whole context".to_owned());
    }
    let mut candidates: Vec<PathBuf> = Vec::new();
    let mut d = Some(dir.as_path());
    while let Some(p) = d {
        candidates.push(p.to_path_buf());
        if p == tree.root {
            break;
        }
        d = p.parent().filter(|p| p.starts_with(&tree.root));
    }
    for p in tree.dirs_by_name.get(service).into_iter().flatten() {
        if !candidates.contains(p) {
            candidates.push(p.clone());
        }
    }
    let mut best: Option<(usize, PathBuf)> = None;
    for c in candidates {
        let n = sources.iter().filter(|s| exists_in(&c, s)).count();
        if best.as_ref().is_none_or(|(b, _)| n > *b) {
            best = Some((n, c));
        }
    }
    match best {
        Some((n, c)) if n > 0 => {
            let why = format!(
                "{n} of the {} files its COPY lines name are there",
                sources.len()
            );
            (c, why)
        }
        _ => (
            dir,
            "none of the files its COPY lines name were found; the Dockerfile's directory"
                .to_owned(),
        ),
    }
}

/// The running stage's index, with the stages it is built `FROM`, nearest first.
fn chain(stages: &[Stage], running: usize) -> Vec<usize> {
    let mut out = vec![running];
    let mut at = running;
    while let Some(base) = stages[..at]
        .iter()
        .rposition(|s| s.name.as_deref() == Some(stages[at].from.to_ascii_lowercase().as_str()))
    {
        if out.contains(&base) {
            break;
        }
        out.push(base);
        at = base;
    }
    out
}

/// A CMD or ENTRYPOINT's words: the exec form's array, or the shell form's words.
fn words(args: &str) -> Vec<String> {
    serde_json::from_str::<Vec<String>>(args)
        .unwrap_or_else(|_| args.split_whitespace().map(str::to_owned).collect())
}

/// Whether the command reloads changed sources by itself.
pub fn reloads(cmd: &[String]) -> bool {
    let line = cmd.join(" ");
    let has = |w: &str| cmd.iter().any(|c| c == w);
    has("--reload")
        || line.contains("next dev")
        || line.contains("vite")
        || line.contains("nodemon")
        || line.contains("npm run dev")
        || line.contains("yarn dev")
        || line.contains("pnpm dev")
        || line.contains("runserver")
        || line.contains("flask") && (has("--debug") || has("--reload"))
        || line.contains("air")
            && cmd
                .first()
                .is_some_and(|c| c == "air" || c.ends_with("/air"))
        || line.contains("watchexec")
        || line.contains("cargo watch")
}

/// The command with a reloader added, for servers that have one behind a flag.
fn with_reloader(cmd: &[String]) -> Option<Vec<String>> {
    let program = cmd
        .iter()
        .position(|c| c == "uvicorn" || c == "gunicorn" || c.ends_with("/uvicorn"))?;
    if program > 2 {
        return None;
    }
    let mut out = cmd.to_vec();
    out.push("--reload".to_owned());
    Some(out)
}

/// Reads one Dockerfile.
pub fn read(tree: &Tree, file: &Path, project: &str) -> Found {
    let text = crate::tree::read_text(file).unwrap_or_default();
    let stages = dockerfile::stages(&text);
    let service = service(file, &tree.root, project);
    let (context, context_why) = context(tree, file, &service, &context_sources(&stages));
    let names: Vec<String> = stages.iter().filter_map(|s| s.name.clone()).collect();
    let (target, target_why) = match names.iter().find(|n| DEV_STAGES.contains(&n.as_str())) {
        Some(dev) => (Some(dev.clone()), Some("its development stage".to_owned())),
        None => match stages.last().and_then(|s| s.name.clone()) {
            Some(last) if stages.len() > 1 => (
                Some(last),
                Some("the last stage, the image that runs".to_owned()),
            ),
            _ => (None, None),
        },
    };
    let running = target
        .as_ref()
        .and_then(|t| stages.iter().position(|s| s.name.as_ref() == Some(t)))
        .unwrap_or(stages.len().saturating_sub(1));
    // The command the container runs: the running stage's, or what it inherits.
    let mut cmd: Vec<String> = Vec::new();
    let mut entrypoint = false;
    if !stages.is_empty() {
        'found: for i in chain(&stages, running) {
            for ins in stages[i].instructions.iter().rev() {
                match ins.keyword.as_str() {
                    "ENTRYPOINT" => {
                        entrypoint = true;
                        break 'found;
                    }
                    "CMD" if cmd.is_empty() => cmd = words(&ins.args),
                    _ => {}
                }
            }
        }
    }
    let mut exposes: Vec<u16> = Vec::new();
    for i in chain(&stages, running) {
        for ins in stages[i]
            .instructions
            .iter()
            .filter(|i| i.keyword == "EXPOSE")
        {
            exposes.extend(
                ins.args
                    .split_whitespace()
                    .filter_map(|p| p.split('/').next()?.parse::<u16>().ok()),
            );
        }
    }
    exposes.sort_unstable();
    exposes.dedup();
    let map = crate::live::infer(&text, target.as_deref(), &BTreeMap::new(), Vec::new());
    let syncs = map.syncs_anything();
    let (live_update, dev_command, live_why) = if !syncs {
        (
            false,
            Vec::new(),
            "its running stage copies no sources after its last RUN".to_owned(),
        )
    } else if entrypoint {
        (
            false,
            Vec::new(),
            "its ENTRYPOINT decides how it runs; a reloader cannot be added".to_owned(),
        )
    } else if reloads(&cmd) {
        (
            true,
            Vec::new(),
            format!("its command reloads changed files (`{}`)", cmd.join(" ")),
        )
    } else if let Some(dev) = with_reloader(&cmd) {
        (
            true,
            dev,
            format!("`{}` reloads changed files with --reload", cmd[0]),
        )
    } else {
        (
            false,
            Vec::new(),
            if cmd.is_empty() {
                "it has no CMD to reload changed files".to_owned()
            } else {
                format!(
                    "`{}` does not reload changed files (give it a dev_command that does, and live_update = true)",
                    cmd.join(" ")
                )
            },
        )
    };
    Found {
        service,
        dockerfile: file.to_path_buf(),
        context,
        context_why,
        stages: names,
        target,
        target_why,
        live_update,
        dev_command,
        live_why,
        exposes,
    }
}
