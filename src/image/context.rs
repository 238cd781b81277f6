//! The content-hash tag of a build context.
//!
//! Walks the context exactly as the builder will see it (honouring `.dockerignore` with
//! Docker's semantics, or `<Dockerfile>.dockerignore` when present, as BuildKit does) and
//! hashes every entry's path, type, mode and contents, plus the Dockerfile, target and build
//! args. Equal inputs give an equal tag, so an image that exists under its tag needs no build.

use std::collections::HashMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

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
    /// Files whose contents were read; the rest came from the digest cache.
    pub read: usize,
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
    crate::tree::read_capped(p, crate::tree::MAX_FILE).map_err(|source| ContextError::Io {
        path: p.to_path_buf(),
        source,
    })
}

#[derive(Debug)]
enum EntryKind {
    Dir,
    File {
        size: u64,
        stamp: Stamp,
    },
    Symlink {
        target: String,
    },
    /// A FIFO, a socket or a device: it counts by its kind, and is never read (a FIFO
    /// would block the read forever, a device never end it).
    Special,
}

/// What says a file is unchanged without reading it: size, modification time and inode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    size: u64,
    mtime_ns: u128,
    inode: u64,
}

impl Stamp {
    fn of(md: &fs::Metadata) -> Stamp {
        let mtime_ns = md
            .modified()
            .ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos());
        #[cfg(unix)]
        let inode = std::os::unix::fs::MetadataExt::ino(md);
        #[cfg(not(unix))]
        let inode = 0;
        Stamp {
            size: md.len(),
            mtime_ns,
            inode,
        }
    }
}

/// A file changed this close to when its digest was cached may have changed again within the
/// same timestamp tick: such entries are re-read (git's "racily clean" rule).
const RACY_WINDOW: Duration = Duration::from_secs(2);

/// Per-file digests of one context, kept in the state directory between runs.
struct DigestCache {
    path: Option<PathBuf>,
    written_ns: u128,
    entries: HashMap<String, (Stamp, blake3::Hash)>,
}

impl DigestCache {
    fn load(context: &Path, state: Option<&Path>) -> DigestCache {
        let path = state.map(|d| {
            let key = blake3::hash(context.to_string_lossy().as_bytes()).to_hex();
            d.join("digests").join(format!("{}.tsv", &key[..16]))
        });
        let mut cache = DigestCache {
            path,
            written_ns: 0,
            entries: HashMap::new(),
        };
        let Some(text) = cache.path.as_ref().and_then(|p| fs::read_to_string(p).ok()) else {
            return cache;
        };
        let mut lines = text.lines();
        cache.written_ns = lines
            .next()
            .and_then(|l| l.strip_prefix("written\t"))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        for line in lines {
            let f: Vec<&str> = line.split('\t').collect();
            let [rel, size, mtime, inode, hash] = f.as_slice() else {
                continue;
            };
            let (Ok(size), Ok(mtime_ns), Ok(inode), Ok(hash)) = (
                size.parse(),
                mtime.parse(),
                inode.parse(),
                blake3::Hash::from_hex(hash),
            ) else {
                continue;
            };
            cache.entries.insert(
                (*rel).to_owned(),
                (
                    Stamp {
                        size,
                        mtime_ns,
                        inode,
                    },
                    hash,
                ),
            );
        }
        cache
    }

    /// The cached digest of `rel` if its stamp is unchanged and not racy.
    fn get(&self, rel: &str, stamp: Stamp) -> Option<blake3::Hash> {
        let racy = stamp.mtime_ns + RACY_WINDOW.as_nanos() >= self.written_ns;
        match self.entries.get(rel) {
            Some((s, h)) if *s == stamp && !racy => Some(*h),
            _ => None,
        }
    }

    fn save(&self, entries: &[Entry], hashes: &[Option<blake3::Hash>]) {
        let Some(path) = &self.path else { return };
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let mut out = format!("written\t{now}\n");
        for (e, h) in entries.iter().zip(hashes) {
            if let (EntryKind::File { stamp, .. }, Some(h)) = (&e.kind, h)
                && !e.rel.contains(['\t', '\n'])
            {
                out.push_str(&format!(
                    "{}\t{}\t{}\t{}\t{}\n",
                    e.rel,
                    stamp.size,
                    stamp.mtime_ns,
                    stamp.inode,
                    h.to_hex()
                ));
            }
        }
        // Written beside and renamed, so a crash never leaves half a cache.
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        let ok = path
            .parent()
            .is_some_and(|d| crate::host::private_dir(d).is_ok())
            && crate::host::write_private(&tmp, out).is_ok()
            && fs::rename(&tmp, path).is_ok();
        if !ok {
            let _ = fs::remove_file(&tmp);
            tracing::debug!(path = %path.display(), "could not write the digest cache");
        }
    }
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
                } else if !md.is_file() {
                    EntryKind::Special
                } else {
                    EntryKind::File {
                        size: md.len(),
                        stamp: Stamp::of(&md),
                    }
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

/// Hashes a regular file, opened without following a link and without blocking (it was
/// listed as regular; what is there now may be a FIFO put in its place).
fn hash_file(path: &Path) -> Result<blake3::Hash, ContextError> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut hasher = blake3::Hasher::new();
    let io = |source| ContextError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut f = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
        .map_err(io)?;
    if !f.metadata().map_err(io)?.is_file() {
        return Err(io(io::Error::other(
            "it is no longer a regular file (a FIFO, a socket or a device took its place)",
        )));
    }
    io::copy(&mut f, &mut hasher).map_err(|source| ContextError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(hasher.finalize())
}

/// Hashes the listed files on up to `threads` threads, keeping their order. Files the cache
/// vouches for are not read.
fn hash_files(
    entries: &[Entry],
    cache: &DigestCache,
    threads: usize,
) -> Result<(Vec<Option<blake3::Hash>>, usize), ContextError> {
    let chunk = entries.len().div_ceil(threads.max(1)).max(1);
    std::thread::scope(|s| {
        let handles: Vec<_> = entries
            .chunks(chunk)
            .map(|part| {
                s.spawn(move || {
                    let mut read = 0;
                    let hashes = part
                        .iter()
                        .map(|e| match e.kind {
                            EntryKind::File { stamp, .. } => match cache.get(&e.rel, stamp) {
                                Some(h) => Ok(Some(h)),
                                None => {
                                    read += 1;
                                    hash_file(&e.path).map(Some)
                                }
                            },
                            _ => Ok(None),
                        })
                        .collect::<Result<Vec<_>, _>>()?;
                    Ok::<_, ContextError>((hashes, read))
                })
            })
            .collect();
        let mut out = Vec::with_capacity(entries.len());
        let mut read = 0;
        for h in handles {
            match h.join() {
                Ok(part) => {
                    let (hashes, n) = part?;
                    out.extend(hashes);
                    read += n;
                }
                Err(_) => {
                    return Err(ContextError::Io {
                        path: PathBuf::from("<hash worker>"),
                        source: io::Error::other("a hashing thread panicked"),
                    });
                }
            }
        }
        Ok((out, read))
    })
}

/// Computes the content tag of `image`, with the digest cache in devenv's state directory.
pub fn digest(image: &Image) -> Result<ContextDigest, ContextError> {
    digest_with(image, crate::host::state_dir().as_deref())
}

/// Computes the content tag of `image`; `state` holds the digest cache (none: no cache).
pub fn digest_with(image: &Image, state: Option<&Path>) -> Result<ContextDigest, ContextError> {
    let (ignore, ignore_text) = ignore_patterns(image)?;
    let entries = walk(&image.context, &ignore)?;
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let cache = DigestCache::load(&image.context, state);
    let (hashes, read) = hash_files(&entries, &cache, threads)?;
    if read > 0 {
        cache.save(&entries, &hashes);
    }

    let mut h = blake3::Hasher::new();
    h.update(b"devenv context v1\0");
    let mut files = 0;
    let mut bytes = 0;
    for (e, content) in entries.iter().zip(&hashes) {
        let (kind, extra): (&[u8], Vec<u8>) = match (&e.kind, content) {
            (EntryKind::Dir, _) => (b"d", Vec::new()),
            (EntryKind::File { size, .. }, Some(c)) => {
                files += 1;
                bytes += size;
                (b"f", c.as_bytes().to_vec())
            }
            (EntryKind::File { .. }, None) => (b"f", Vec::new()),
            (EntryKind::Symlink { target }, _) => (b"l", target.as_bytes().to_vec()),
            (EntryKind::Special, _) => (b"s", Vec::new()),
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
    // The development command is a line of the Dockerfile that is built.
    if !image.dev_command.is_empty() {
        h.update(b"\0dev_command\0");
        h.update(super::dev_cmd_line(&image.dev_command).as_bytes());
    }
    let hex = h.finalize().to_hex();
    tracing::debug!(image = %image.name, files, bytes, read, "hashed build context");
    Ok(ContextDigest {
        tag: format!("{TAG_PREFIX}{}", &hex[..TAG_HEX_LEN]),
        files,
        bytes,
        read,
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
            live_update: None,
            dev_command: vec![],
        }
    }

    fn write(p: &Path, text: &str) {
        if let Some(parent) = p.parent() {
            fs::create_dir_all(parent).ok();
        }
        fs::write(p, text).ok();
    }

    fn tag(img: &Image) -> String {
        match digest_with(img, None) {
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

    /// A warm hash reads no unchanged file; a changed one is read again (and only it).
    #[test]
    fn the_digest_cache_spares_reading_unchanged_files() -> Result<(), io::Error> {
        let dir = tempfile::tempdir()?;
        let ctx = dir.path().join("ctx");
        for i in 0..20 {
            write(&ctx.join(format!("src/f{i}.txt")), &format!("file {i}\n"));
        }
        write(&ctx.join("Dockerfile"), "FROM scratch\n");
        // Old enough not to be "racy" for the cache.
        let old = SystemTime::now() - Duration::from_secs(60);
        for e in fs::read_dir(ctx.join("src"))? {
            let f = fs::File::options().write(true).open(e?.path())?;
            f.set_modified(old)?;
        }
        let state = dir.path().join("state");
        let img = image(&ctx);
        let with_state =
            |img: &Image| digest_with(img, Some(&state)).unwrap_or_else(|e| panic!("{e}"));
        let cold = with_state(&img);
        assert_eq!(cold.read, 21, "cold: every file is read");
        let warm = with_state(&img);
        assert_eq!(warm.tag, cold.tag);
        assert_eq!(
            warm.read, 1,
            "warm: only the just-written Dockerfile (racy) is read again"
        );
        write(&ctx.join("src/f3.txt"), "changed\n");
        let changed = with_state(&img);
        assert_ne!(changed.tag, cold.tag);
        assert_eq!(changed.read, 2, "the edited file and the racy Dockerfile");
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
        match digest_with(&image(ctx), None) {
            Err(e @ ContextError::Ignore { line: 2, .. }) => {
                assert!(e.to_string().contains(".dockerignore:2:"), "{e}");
            }
            other => panic!("expected an ignore error, got {other:?}"),
        }
        Ok(())
    }
}
