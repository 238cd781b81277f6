//! The walk over the repository: what `init` reads (and where `config check` looks for
//! Dockerfiles), found in one bounded pass that skips what is never source (dependencies,
//! build output, version control, virtualenvs).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The largest file of the repository read whole.
pub const MAX_FILE: u64 = 1024 * 1024;

/// The content of `path` when it is a regular file of at most [`MAX_FILE`] bytes, opened
/// without following a symbolic link and without blocking (a FIFO or a device is refused,
/// never waited on or read).
pub fn read_regular(path: &Path) -> Option<Vec<u8>> {
    read_bounded(path, MAX_FILE, libc::O_NOFOLLOW).ok()
}

/// The largest manifest file devenv reads (a bundle of CRDs can be several MiB).
pub const MAX_MANIFEST: u64 = 16 * 1024 * 1024;

/// A file of the project devenv reads to run it (a manifest, a Dockerfile, a chart's
/// Chart.yaml): a regular file of at most `cap` bytes, in UTF-8, opened without blocking. A
/// FIFO or a device put in its place is an error, never a hang, and a larger file is never
/// read whole. The errors say which of these it was.
pub fn read_capped(path: &Path, cap: u64) -> std::io::Result<String> {
    String::from_utf8(read_capped_bytes(path, cap)?)
        .map_err(|_| std::io::Error::other("it is not UTF-8 text"))
}

/// [`read_capped`]'s bytes, whatever they are.
pub fn read_capped_bytes(path: &Path, cap: u64) -> std::io::Result<Vec<u8>> {
    read_bounded(path, cap, 0)
}

/// The one bounded reader: opens `path` without blocking (with `flags` besides), refuses
/// what is no regular file and what is larger than `cap` (by its size, then by what it
/// gives, for a file that grows while it is read).
fn read_bounded(path: &Path, cap: u64, flags: i32) -> std::io::Result<Vec<u8>> {
    use std::io::Read as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | flags)
        .open(path)?;
    let meta = f.metadata()?;
    if !meta.is_file() {
        return Err(std::io::Error::other(
            "it is not a regular file (a FIFO, a device or a directory)",
        ));
    }
    let too_large = || {
        std::io::Error::other(format!(
            "it is larger than {} MiB, more than devenv reads of such a file",
            cap >> 20
        ))
    };
    if meta.len() > cap {
        return Err(too_large());
    }
    let mut bytes = Vec::new();
    f.take(cap + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > cap {
        return Err(too_large());
    }
    Ok(bytes)
}

/// [`read_regular`] as text (UTF-8, else `None`).
pub fn read_text(path: &Path) -> Option<String> {
    String::from_utf8(read_regular(path)?).ok()
}

/// [`read_regular`], for a path inside the repository at `root` only.
pub fn read_in(root: &Path, path: &Path) -> Option<Vec<u8>> {
    if !path.starts_with(root) {
        return None;
    }
    read_regular(path)
}

/// Directories never entered: dependencies, build output, caches, version control.
const SKIPPED: &[&str] = &[
    "node_modules",
    "vendor",
    "target",
    "dist",
    "out",
    "venv",
    "env",
    "__pycache__",
    "bower_components",
    "coverage",
    "site-packages",
];

/// Directory names whose YAML files are plain manifests.
pub const MANIFEST_DIRS: &[&str] = &["k8s", "kubernetes", "kube", "deploy", "manifests"];

/// At most this many directory entries are looked at: a tree beyond it is noted as cut.
const MAX_ENTRIES: usize = 500_000;
/// Deeper than this nothing is read (sources sit near the top).
const MAX_DEPTH: usize = 12;

/// What the walk found, every list in path order.
#[derive(Debug, Default)]
pub struct Tree {
    pub root: PathBuf,
    /// Dockerfiles of any name (`Dockerfile`, `api.Dockerfile`, `Dockerfile.dev`).
    pub dockerfiles: Vec<PathBuf>,
    /// Directories holding a `Chart.yaml` (not the dependencies under a chart's `charts/`).
    pub charts: Vec<PathBuf>,
    /// YAML files under a manifest directory (`k8s/`, `deploy/`, …), outside charts.
    pub manifests: Vec<PathBuf>,
    /// Every other YAML file outside charts (`kubernetes.yaml` beside a Dockerfile, `app.yaml`
    /// at the root): manifests when they hold Kubernetes objects.
    pub other_yaml: Vec<PathBuf>,
    /// `.env` files and their examples.
    pub env_files: Vec<PathBuf>,
    /// Tiltfiles, outside charts.
    pub tiltfiles: Vec<PathBuf>,
    /// Makefiles, shell scripts and READMEs, outside charts (they may say `docker build -t
    /// NAME DIR`).
    pub scripts: Vec<PathBuf>,
    /// Every directory, by name (for contexts that are not beside their Dockerfile).
    pub dirs_by_name: BTreeMap<String, Vec<PathBuf>>,
    /// Directories with Python tests (`tests/`, `test_*.py`) or a package.json.
    pub test_dirs: Vec<PathBuf>,
    /// Symbolic links to directories, not followed (a link may lead out of the repository),
    /// outside what is skipped anyway.
    pub linked_dirs: Vec<PathBuf>,
    /// Directories that could not be listed, with why (another user's, mode 000).
    pub unreadable: Vec<(PathBuf, String)>,
    /// How many entries were looked at, and whether the walk stopped at its bound.
    pub entries: usize,
    pub cut: bool,
}

/// Whether `name` is a Dockerfile's name.
pub fn is_dockerfile(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    n == "dockerfile"
        || n == "containerfile"
        || n.starts_with("dockerfile.")
        || n.ends_with(".dockerfile")
        || n.ends_with(".containerfile")
}

/// Dockerfile variants (`Dockerfile.dev`) that mean the development build of their directory.
pub const DEV_VARIANTS: &[&str] = &["dev", "development", "develop", "local"];
/// Variants that are not for development: skipped when their directory has another.
pub const OTHER_VARIANTS: &[&str] = &["prod", "production", "release", "ci", "test"];
/// Directory names that hold Dockerfiles for others (`docker/api/Dockerfile`).
pub const HOLDERS: &[&str] = &["docker", "dockerfiles", "build", "images", "containers"];

/// The part of a variant's name besides "Dockerfile" (`api` of `api.Dockerfile`, `dev` of
/// `Dockerfile.dev`), lower case.
pub fn variant(file: &Path) -> Option<String> {
    let name = file.file_name()?.to_string_lossy().to_ascii_lowercase();
    for base in ["dockerfile", "containerfile"] {
        if let Some(v) = name.strip_prefix(&format!("{base}.")) {
            return Some(v.to_owned());
        }
        if let Some(v) = name.strip_suffix(&format!(".{base}")) {
            return Some(v.to_owned());
        }
    }
    None
}

/// The service a Dockerfile builds, named from its file or directory.
pub fn service(file: &Path, root: &Path, project: &str) -> String {
    if let Some(v) = variant(file)
        && !DEV_VARIANTS.contains(&v.as_str())
        && !OTHER_VARIANTS.contains(&v.as_str())
    {
        return v;
    }
    // A holder (`docker/`) names nothing: the directory it sits in does (`backend/docker/`
    // builds `backend`), or the project at the root.
    let mut dir = file.parent().unwrap_or(root);
    loop {
        if dir == root || !dir.starts_with(root) {
            return project.to_owned();
        }
        let name = dir
            .file_name()
            .map(|n| n.to_string_lossy().to_ascii_lowercase())
            .unwrap_or_default();
        if !HOLDERS.contains(&name.as_str()) {
            return name;
        }
        dir = dir.parent().unwrap_or(root);
    }
}

/// Whether `name` is a dotenv file or an example of one.
pub fn is_env_file(name: &str) -> bool {
    name == ".env" || [".env.example", ".env.sample", ".env.template", ".env.dist"].contains(&name)
}

/// Directory entries a root `.gitignore` names plainly (`frontend/node_modules`, `build/`):
/// the walk skips them. Patterns with wildcards are left to the fixed list.
fn ignored_dirs(root: &Path) -> Vec<PathBuf> {
    let Some(text) = read_text(&root.join(".gitignore")) else {
        return Vec::new();
    };
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with('!'))
        .filter(|l| !l.contains(['*', '?', '[']))
        .map(|l| root.join(l.trim_start_matches('/').trim_end_matches('/')))
        .filter(|p| p.is_dir())
        .collect()
}

/// Walks `root` once.
pub fn scan(root: &Path) -> Tree {
    let mut t = Tree {
        root: root.to_path_buf(),
        ..Tree::default()
    };
    let ignored = ignored_dirs(root);
    // (directory, depth, inside a chart, inside a manifest directory)
    let mut stack = vec![(root.to_path_buf(), 0usize, false, false)];
    while let Some((dir, depth, in_chart, in_manifests)) = stack.pop() {
        let rd = match std::fs::read_dir(&dir) {
            Ok(rd) => rd,
            Err(e) => {
                t.unreadable.push((dir, e.kind().to_string()));
                continue;
            }
        };
        let mut entries: Vec<(String, PathBuf, bool)> = Vec::new();
        for e in rd.flatten() {
            t.entries += 1;
            if t.entries > MAX_ENTRIES {
                t.cut = true;
                break;
            }
            let name = e.file_name().to_string_lossy().into_owned();
            // Symlinks are not followed: a link to a parent would loop.
            let is_dir = e.file_type().is_ok_and(|f| f.is_dir());
            if e.file_type().is_ok_and(|f| f.is_symlink())
                && !name.starts_with('.')
                && !SKIPPED.contains(&name.as_str())
                && !ignored.contains(&e.path())
                && e.path().is_dir()
            {
                t.linked_dirs.push(e.path());
            }
            entries.push((name, e.path(), is_dir));
        }
        if t.cut {
            break;
        }
        let chart_here = entries.iter().any(|(n, _, d)| !d && n == "Chart.yaml");
        let mut has_tests = false;
        for (name, path, is_dir) in &entries {
            if *is_dir {
                if name == "tests" || name == "test" {
                    has_tests = true;
                }
                continue;
            }
            if is_dockerfile(name) {
                t.dockerfiles.push(path.clone());
            } else if is_env_file(name) {
                t.env_files.push(path.clone());
            } else if name == "Tiltfile" && !in_chart && !chart_here {
                t.tiltfiles.push(path.clone());
            } else if !in_chart
                && !chart_here
                && (["Makefile", "makefile", "GNUmakefile", "justfile"].contains(&name.as_str())
                    || name.ends_with(".sh")
                    || name.to_ascii_lowercase().starts_with("readme"))
            {
                t.scripts.push(path.clone());
            } else if name == "package.json"
                || name.starts_with("test_") && name.ends_with(".py")
                || name.ends_with("_test.go")
            {
                has_tests = true;
            } else if !in_chart
                && !chart_here
                && (name.ends_with(".yaml") || name.ends_with(".yml"))
            {
                if in_manifests {
                    t.manifests.push(path.clone());
                } else {
                    t.other_yaml.push(path.clone());
                }
            }
        }
        if chart_here && !in_chart {
            t.charts.push(dir.clone());
        }
        if has_tests && !in_chart {
            t.test_dirs.push(dir.clone());
        }
        if depth >= MAX_DEPTH {
            continue;
        }
        for (name, path, is_dir) in entries {
            if !is_dir
                || name.starts_with('.')
                || SKIPPED.contains(&name.as_str())
                || ignored.contains(&path)
            {
                continue;
            }
            t.dirs_by_name
                .entry(name.clone())
                .or_default()
                .push(path.clone());
            let manifests = in_manifests || MANIFEST_DIRS.contains(&name.as_str());
            stack.push((path, depth + 1, in_chart || chart_here, manifests));
        }
    }
    t.dockerfiles.sort();
    t.charts.sort();
    t.manifests.sort();
    t.other_yaml.sort();
    t.env_files.sort();
    t.tiltfiles.sort();
    t.linked_dirs.sort();
    t.unreadable.sort();
    t.scripts.sort();
    t.test_dirs.sort();
    for v in t.dirs_by_name.values_mut() {
        v.sort();
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What devenv reads to run a project (manifests, Dockerfiles, Chart.yaml) is a regular
    /// file of bounded size in UTF-8; anything else is an error that says which, at once.
    #[test]
    fn read_capped_takes_only_a_regular_text_file_within_its_cap() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let fifo = dir.path().join("Dockerfile");
        crate::host::mkfifo(&fifo);
        let said = |p: &Path, cap| match read_capped(p, cap) {
            Ok(_) => "read".to_owned(),
            Err(e) => e.to_string(),
        };
        assert!(said(&fifo, MAX_FILE).contains("not a regular file"));
        assert!(said(Path::new("/dev/zero"), MAX_FILE).contains("not a regular file"));
        let big = dir.path().join("big.yaml");
        std::fs::File::create(&big)
            .and_then(|f| f.set_len(MAX_FILE + 1))
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(said(&big, MAX_FILE).contains("larger than 1 MiB"));
        let latin = dir.path().join("latin.yaml");
        std::fs::write(&latin, b"name: caf\xe9\n").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(said(&latin, MAX_FILE), "it is not UTF-8 text");
        let ok = dir.path().join("ok.yaml");
        std::fs::write(&ok, "a: 1\n").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(read_capped(&ok, MAX_FILE).unwrap_or_default(), "a: 1\n");
    }
}
