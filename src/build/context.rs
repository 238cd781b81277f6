//! The content-hash tag of a build context.
//!
//! Walks the context exactly as the builder will see it (honouring `.dockerignore` with
//! Docker's semantics, or `<Dockerfile>.dockerignore` when present, as BuildKit does) and
//! hashes every entry's path, type, mode and contents, plus the Dockerfile, target and build
//! args. Equal inputs give an equal tag, so an image that exists under its tag needs no build.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::config::Image;
use crate::pattern::{Pattern, PatternSet};

const TAG_PREFIX: &str = "devenv-";
const TAG_HEX_LEN: usize = 12;

#[derive(Debug, thiserror::Error)]
pub enum ContextError {
    /// A `.dockerignore` line that is not a valid pattern.
    #[error("{}:{line}: {message}", file.display())]
    Ignore {
        file: PathBuf,
        line: usize,
        message: String,
    },
    /// An `ignore` entry from devenv.toml that is not a valid pattern.
    #[error("image `{image}`: ignore pattern: {message}")]
    ExtraIgnore { image: String, message: String },
    /// A file of the context could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// The result of hashing one image's inputs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContextDigest {
    /// `devenv-` and 12 hex digits.
    pub tag: String,
    /// Files sent to the builder.
    pub files: usize,
    /// Their total size in bytes.
    pub bytes: u64,
}

/// The ignore file the builder uses for `image`, if any: `<Dockerfile>.dockerignore` first.
pub fn ignore_file(image: &Image) -> Option<PathBuf> {
    let specific = PathBuf::from(format!("{}.dockerignore", image.dockerfile.display()));
    let generic = image.context.join(".dockerignore");
    [specific, generic].into_iter().find(|p| p.is_file())
}

/// The patterns that decide what of the context counts: the ignore file plus the image's
/// extra `ignore` entries.
pub fn ignore_patterns(image: &Image) -> Result<(PatternSet, Option<String>), ContextError> {
    let (mut set, text) = match ignore_file(image) {
        Some(file) => {
            let text = read_string(&file)?;
            let set = PatternSet::parse(&text).map_err(|(line, message)| ContextError::Ignore {
                file: file.clone(),
                line,
                message,
            })?;
            (set, Some(text))
        }
        None => (PatternSet::default(), None),
    };
    for extra in &image.ignore {
        match Pattern::parse(extra) {
            Ok(Some(p)) => set.push(p),
            Ok(None) => {}
            Err(message) => {
                return Err(ContextError::ExtraIgnore {
                    image: image.name.clone(),
                    message,
                });
            }
        }
    }
    Ok((set, text))
}

fn read_string(p: &Path) -> Result<String, ContextError> {
    fs::read_to_string(p).map_err(|source| ContextError::Io {
        path: p.to_path_buf(),
        source,
    })
}

#[derive(Debug)]
enum EntryKind {
    Dir,
    File { size: u64 },
    Symlink { target: String },
}

#[derive(Debug)]
struct Entry {
    rel: String,
    path: PathBuf,
    mode: u32,
    kind: EntryKind,
}

#[cfg(unix)]
fn mode_of(md: &fs::Metadata) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    md.permissions().mode() & 0o7777
}

#[cfg(not(unix))]
fn mode_of(md: &fs::Metadata) -> u32 {
    if md.permissions().readonly() {
        0o444
    } else {
        0o644
    }
}

/// Lists the context's entries the builder would receive, sorted by path.
fn walk(context: &Path, ignore: &PatternSet) -> Result<Vec<Entry>, ContextError> {
    let io_err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| ContextError::Io { path, source }
    };
    let mut out = Vec::new();
    let mut stack = vec![(context.to_path_buf(), String::new())];
    while let Some((dir, rel_dir)) = stack.pop() {
        let mut names: Vec<_> = fs::read_dir(&dir)
            .map_err(io_err(&dir))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(io_err(&dir))?;
        names.sort_by_key(|e| e.file_name());
        for e in names {
            let name = e.file_name().to_string_lossy().into_owned();
            let rel = if rel_dir.is_empty() {
                name
            } else {
                format!("{rel_dir}/{name}")
            };
            let path = e.path();
            let md = fs::symlink_metadata(&path).map_err(io_err(&path))?;
            let excluded = ignore.is_excluded(&rel);
            if md.is_dir() {
                if excluded && ignore.excludes_whole_dir(&rel) {
                    continue;
                }
                if !excluded {
                    out.push(Entry {
                        rel: rel.clone(),
                        path: path.clone(),
                        mode: mode_of(&md),
                        kind: EntryKind::Dir,
                    });
                }
                stack.push((path, rel));
            } else if !excluded {
                let kind = if md.file_type().is_symlink() {
                    let target = fs::read_link(&path).map_err(io_err(&path))?;
                    EntryKind::Symlink {
                        target: target.to_string_lossy().into_owned(),
                    }
                } else {
                    EntryKind::File { size: md.len() }
                };
                out.push(Entry {
                    rel,
                    path,
                    mode: mode_of(&md),
                    kind,
                });
            }
        }
    }
    out.sort_by(|a, b| a.rel.cmp(&b.rel));
    Ok(out)
}

fn hash_file(path: &Path) -> Result<blake3::Hash, ContextError> {
    let mut hasher = blake3::Hasher::new();
    let mut f = fs::File::open(path).map_err(|source| ContextError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    io::copy(&mut f, &mut hasher).map_err(|source| ContextError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(hasher.finalize())
}

/// Hashes the listed files on up to `threads` threads, keeping their order.
fn hash_files(
    entries: &[Entry],
    threads: usize,
) -> Result<Vec<Option<blake3::Hash>>, ContextError> {
    let chunk = entries.len().div_ceil(threads.max(1)).max(1);
    std::thread::scope(|s| {
        let handles: Vec<_> = entries
            .chunks(chunk)
            .map(|part| {
                s.spawn(move || {
                    part.iter()
                        .map(|e| match e.kind {
                            EntryKind::File { .. } => hash_file(&e.path).map(Some),
                            _ => Ok(None),
                        })
                        .collect::<Result<Vec<_>, _>>()
                })
            })
            .collect();
        let mut out = Vec::with_capacity(entries.len());
        for h in handles {
            match h.join() {
                Ok(part) => out.extend(part?),
                Err(_) => {
                    return Err(ContextError::Io {
                        path: PathBuf::from("<hash worker>"),
                        source: io::Error::other("a hashing thread panicked"),
                    });
                }
            }
        }
        Ok(out)
    })
}

/// Computes the content tag of `image`.
pub fn digest(image: &Image) -> Result<ContextDigest, ContextError> {
    let (ignore, ignore_text) = ignore_patterns(image)?;
    let entries = walk(&image.context, &ignore)?;
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let hashes = hash_files(&entries, threads)?;

    let mut h = blake3::Hasher::new();
    h.update(b"devenv context v1\0");
    let mut files = 0;
    let mut bytes = 0;
    for (e, content) in entries.iter().zip(&hashes) {
        let (kind, extra): (&[u8], Vec<u8>) = match (&e.kind, content) {
            (EntryKind::Dir, _) => (b"d", Vec::new()),
            (EntryKind::File { size }, Some(c)) => {
                files += 1;
                bytes += size;
                (b"f", c.as_bytes().to_vec())
            }
            (EntryKind::File { .. }, None) => (b"f", Vec::new()),
            (EntryKind::Symlink { target }, _) => (b"l", target.as_bytes().to_vec()),
        };
        h.update(kind);
        h.update(e.rel.as_bytes());
        h.update(b"\0");
        h.update(&e.mode.to_le_bytes());
        h.update(&(extra.len() as u64).to_le_bytes());
        h.update(&extra);
    }
    // The Dockerfile counts even when it lies outside the context or is ignored in it.
    h.update(b"\0dockerfile\0");
    h.update(read_string(&image.dockerfile)?.as_bytes());
    h.update(b"\0ignore\0");
    h.update(ignore_text.unwrap_or_default().as_bytes());
    for extra in &image.ignore {
        h.update(extra.as_bytes());
        h.update(b"\n");
    }
    h.update(b"\0target\0");
    h.update(image.target.as_deref().unwrap_or("").as_bytes());
    for (k, v) in &image.build_args {
        h.update(b"\0arg\0");
        h.update(k.as_bytes());
        h.update(b"=");
        h.update(v.as_bytes());
    }
    let hex = h.finalize().to_hex();
    Ok(ContextDigest {
        tag: format!("{TAG_PREFIX}{}", &hex[..TAG_HEX_LEN]),
        files,
        bytes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::BuilderKind;
    use std::collections::BTreeMap;

    fn image(ctx: &Path) -> Image {
        Image {
            name: "app".into(),
            context: ctx.to_path_buf(),
            dockerfile: ctx.join("Dockerfile"),
            target: None,
            build_args: BTreeMap::new(),
            watch: vec![],
            ignore: vec![],
            builder: BuilderKind::Docker,
            command: None,
        }
    }

    fn write(p: &Path, text: &str) {
        if let Some(parent) = p.parent() {
            fs::create_dir_all(parent).ok();
        }
        fs::write(p, text).ok();
    }

    fn tag(img: &Image) -> String {
        match digest(img) {
            Ok(d) => d.tag,
            Err(e) => panic!("digest failed: {e}"),
        }
    }

    #[test]
    fn tag_changes_with_content_but_not_with_ignored_files() -> Result<(), io::Error> {
        let dir = tempfile::tempdir()?;
        let ctx = dir.path();
        write(&ctx.join("Dockerfile"), "FROM scratch\nCOPY . /\n");
        write(&ctx.join(".dockerignore"), "*.log\nnode_modules\n");
        write(&ctx.join("src/main.py"), "print(1)\n");
        write(&ctx.join("node_modules/x/index.js"), "x\n");
        let img = image(ctx);
        let first = tag(&img);
        assert!(first.starts_with("devenv-") && first.len() == 19, "{first}");
        assert_eq!(tag(&img), first, "stable");

        write(&ctx.join("debug.log"), "noise\n");
        write(&ctx.join("node_modules/x/index.js"), "y\n");
        assert_eq!(tag(&img), first, "ignored files do not count");

        write(&ctx.join("src/main.py"), "print(2)\n");
        let second = tag(&img);
        assert_ne!(second, first);

        let mut with_target = image(ctx);
        with_target.target = Some("runtime".into());
        assert_ne!(tag(&with_target), second);
        let mut with_arg = image(ctx);
        with_arg.build_args.insert("V".into(), "1".into());
        assert_ne!(tag(&with_arg), second);

        write(&ctx.join("Dockerfile"), "FROM scratch\nCOPY src /src\n");
        assert_ne!(tag(&img), second, "the Dockerfile counts");
        Ok(())
    }

    #[test]
    fn renames_and_empty_dirs_count_and_extra_ignores_apply() -> Result<(), io::Error> {
        let dir = tempfile::tempdir()?;
        let ctx = dir.path();
        write(&ctx.join("Dockerfile"), "FROM scratch\n");
        write(&ctx.join("a.txt"), "same\n");
        let img = image(ctx);
        let t1 = tag(&img);
        fs::rename(ctx.join("a.txt"), ctx.join("b.txt"))?;
        let t2 = tag(&img);
        assert_ne!(t1, t2, "a rename changes the tag");
        fs::create_dir(ctx.join("empty"))?;
        let t3 = tag(&img);
        assert_ne!(t2, t3, "an empty directory is part of the context");

        let mut ignoring = image(ctx);
        ignoring.ignore = vec!["*.tmp".into()];
        let t4 = tag(&ignoring);
        write(&ctx.join("x.tmp"), "scratch\n");
        assert_eq!(tag(&ignoring), t4);
        Ok(())
    }

    #[test]
    fn dockerfile_specific_ignore_file_wins() -> Result<(), io::Error> {
        let dir = tempfile::tempdir()?;
        let ctx = dir.path();
        write(&ctx.join("Dockerfile"), "FROM scratch\n");
        write(&ctx.join("Dockerfile.dockerignore"), "secret.txt\n");
        write(&ctx.join(".dockerignore"), "\n");
        let img = image(ctx);
        let t1 = tag(&img);
        write(&ctx.join("secret.txt"), "x\n");
        assert_eq!(tag(&img), t1);
        assert_eq!(ignore_file(&img), Some(ctx.join("Dockerfile.dockerignore")));
        Ok(())
    }

    #[test]
    fn a_bad_ignore_line_names_file_and_line() -> Result<(), io::Error> {
        let dir = tempfile::tempdir()?;
        let ctx = dir.path();
        write(&ctx.join("Dockerfile"), "FROM scratch\n");
        write(&ctx.join(".dockerignore"), "ok\n[z-a]\n");
        match digest(&image(ctx)) {
            Err(e @ ContextError::Ignore { line: 2, .. }) => {
                assert!(e.to_string().contains(".dockerignore:2:"), "{e}");
            }
            other => panic!("expected an ignore error, got {other:?}"),
        }
        Ok(())
    }
}
