//! The crate's layering, read from its source: which module imports which (through
//! `crate::name` paths, test modules left out). No import circle anywhere; lower layers never
//! import higher ones; each outside boundary has one user.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Module -> the modules it imports, and module -> the crates it names.
fn imports() -> (
    BTreeMap<String, BTreeSet<String>>,
    BTreeMap<String, BTreeSet<String>>,
) {
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut crates: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut stack = vec![src.clone()];
    let path_re = regex::Regex::new(r"crate::([a-z_]+)").unwrap_or_else(|e| panic!("{e}"));
    let group_re = regex::Regex::new(r"crate::\{([^}]*)\}").unwrap_or_else(|e| panic!("{e}"));
    let word_re = regex::Regex::new(r"\b([a-z_]+)\b").unwrap_or_else(|e| panic!("{e}"));
    let extern_re = regex::Regex::new(r"(?m)(?:^use |[^:\w])(duct|notify|axum)::")
        .unwrap_or_else(|e| panic!("{e}"));
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{e}"))
            .flatten()
        {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
                continue;
            }
            if p.extension().is_none_or(|x| x != "rs")
                || p.file_name().is_some_and(|n| n == "tests.rs")
            {
                continue;
            }
            let rel = p.strip_prefix(&src).unwrap_or(&p);
            let module = rel
                .components()
                .next()
                .map(|c| {
                    c.as_os_str()
                        .to_string_lossy()
                        .trim_end_matches(".rs")
                        .to_owned()
                })
                .unwrap_or_default();
            let mut text = std::fs::read_to_string(&p).unwrap_or_default();
            if let Some(i) = text.find("#[cfg(test)]\nmod tests") {
                text.truncate(i);
            }
            let to = edges.entry(module.clone()).or_default();
            for c in path_re.captures_iter(&text) {
                to.insert(c[1].to_owned());
            }
            for g in group_re.captures_iter(&text) {
                for w in word_re.captures_iter(&g[1]) {
                    if &w[1] != "self" {
                        to.insert(w[1].to_owned());
                    }
                }
            }
            to.remove(&module);
            for c in extern_re.captures_iter(&text) {
                crates
                    .entry(c[1].to_owned())
                    .or_default()
                    .insert(module.clone());
            }
        }
    }
    (edges, crates)
}

/// The modules reachable from `from`, itself excluded unless a circle leads back.
fn reachable(edges: &BTreeMap<String, BTreeSet<String>>, from: &str) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    let mut stack: Vec<&str> = edges
        .get(from)
        .into_iter()
        .flatten()
        .map(String::as_str)
        .collect();
    while let Some(m) = stack.pop() {
        if seen.insert(m.to_owned()) {
            stack.extend(edges.get(m).into_iter().flatten().map(String::as_str));
        }
    }
    seen
}

#[test]
fn no_module_imports_itself_through_a_circle() {
    let (edges, _) = imports();
    let circles: Vec<&String> = edges
        .keys()
        .filter(|m| reachable(&edges, m).contains(*m))
        .collect();
    assert!(
        circles.is_empty(),
        "import circles through {circles:?}: {edges:#?}"
    );
}

#[test]
fn lower_layers_never_import_higher_ones() {
    let (edges, _) = imports();
    // Each module, and what it must never reach, directly or not.
    let rules: [(&str, &[&str]); 11] = [
        (
            "engine",
            &[
                "cli", "session", "workers", "views", "web", "deploy", "image", "cluster",
                "doctor", "exec", "watch", "config",
            ],
        ),
        (
            "cluster",
            &[
                "doctor", "plan", "deploy", "image", "workers", "session", "cli",
            ],
        ),
        (
            "config",
            &[
                "deploy", "image", "cluster", "doctor", "plan", "workers", "session", "cli", "exec",
            ],
        ),
        (
            "deploy",
            &["doctor", "plan", "workers", "session", "cli", "web"],
        ),
        ("workers", &["session", "cli", "web", "views"]),
        ("web", &["session", "cli"]),
        ("views", &["session", "cli", "workers", "web"]),
        ("host", &["config", "exec", "engine"]),
        ("session", &["cli"]),
        // init reads the repository and checks its config: it never reaches what runs. (It
        // reaches the engine's pure reducer through the plan: the dry-run is a run of it.)
        ("init", &["cli", "session", "workers", "web", "views"]),
        // What devenv believes about a project is read below everything that runs it.
        (
            "project",
            &[
                "cli", "session", "workers", "web", "views", "plan", "check", "init",
            ],
        ),
    ];
    for (module, never) in rules {
        let reach = reachable(&edges, module);
        for n in never {
            assert!(
                !reach.contains(*n),
                "{module} reaches {n}: {:?}",
                edges.get(module)
            );
        }
    }
}

#[test]
fn each_outside_boundary_has_one_user() {
    let (_, crates) = imports();
    for (krate, only) in [("duct", "exec"), ("notify", "watch"), ("axum", "web")] {
        let users = crates.get(krate).cloned().unwrap_or_default();
        assert_eq!(
            users,
            [only.to_owned()].into(),
            "{krate} is used by {users:?}"
        );
    }
}

/// The lines of each function of the files under `src/dir` (test modules left out): name,
/// file and length from its `fn` line to its closing brace.
fn function_lengths(dir: &str) -> Vec<(String, String, usize)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src").join(dir);
    let fn_re = regex::Regex::new(r"^(\s*)(?:pub(?:\([a-z]+\))? )?(?:async )?fn (\w+)")
        .unwrap_or_else(|e| panic!("{e}"));
    let mut out = Vec::new();
    for e in std::fs::read_dir(&root)
        .unwrap_or_else(|e| panic!("{e}"))
        .flatten()
    {
        let p = e.path();
        if p.extension().is_none_or(|x| x != "rs") {
            continue;
        }
        let text = std::fs::read_to_string(&p).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let end = lines
            .iter()
            .position(|l| l.starts_with("#[cfg(test)]"))
            .unwrap_or(lines.len());
        for i in 0..end {
            let Some(c) = fn_re.captures(lines[i]) else {
                continue;
            };
            let close = format!("{}}}", &c[1]);
            if let Some(j) = (i + 1..end).find(|&j| lines[j] == close) {
                out.push((c[2].to_owned(), p.display().to_string(), j - i + 1));
            }
        }
    }
    out
}

/// Issue 26: the engine, the workers and the session read as short functions (the
/// reducer and the workers' dispatch each a table of short arms).
#[test]
fn no_function_of_the_engine_workers_or_session_is_over_100_lines() {
    let long: Vec<_> = ["engine", "workers", "session"]
        .into_iter()
        .flat_map(function_lengths)
        .filter(|(_, _, n)| *n > 100)
        .collect();
    assert!(long.is_empty(), "over 100 lines: {long:?}");
}

/// Issue 26: the workers keep only handles of the work in flight and what their tasks hand
/// back, owned by the dispatcher: no lock. What several parts read is the engine's state.
#[test]
fn the_workers_keep_no_lock() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/workers");
    let mut found = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{e}")) {
        let p = entry.unwrap_or_else(|e| panic!("{e}")).path();
        let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{e}"));
        for (n, line) in text.lines().enumerate() {
            if ["Mutex", "RwLock", "RefCell"]
                .iter()
                .any(|w| line.contains(w))
            {
                found.push(format!("{}:{}: {}", p.display(), n + 1, line.trim()));
            }
        }
    }
    assert!(
        found.is_empty(),
        "locks in the workers:\n{}",
        found.join("\n")
    );
}

/// Issue 26: each deployed resource has one set of reflectors (`deploy::pods`); nothing
/// else opens a watch or keeps a store of watch events by hand.
#[test]
fn only_the_resource_reflectors_watch_the_cluster() {
    fn walk(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
        for e in std::fs::read_dir(dir)
            .unwrap_or_else(|e| panic!("{e}"))
            .flatten()
        {
            let p = e.path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    walk(&root, &mut files);
    let mut found = Vec::new();
    for p in files {
        let text = std::fs::read_to_string(&p).unwrap_or_default();
        let rel = p.strip_prefix(&root).unwrap_or(&p).display().to_string();
        for w in ["watcher::watcher(", "InitApply", "Event::Apply("] {
            if text.contains(w) && !(rel == "deploy/pods.rs" && w == "watcher::watcher(") {
                found.push(format!("{rel}: {w}"));
            }
        }
    }
    assert!(found.is_empty(), "watches outside deploy::pods: {found:?}");
}
