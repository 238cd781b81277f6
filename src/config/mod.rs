//! `devenv.toml`: finding it, parsing it, validating it.
//!
//! Owns the two config layers (the serde model in `model`, the resolved form in `resolved`)
//! and the diagnostics that point at a line and column. Reads files (the config, and the
//! paths it names, to check they exist) but never writes, runs or connects to anything.

mod diagnostic;
mod model;
mod resolved;
pub mod units;
mod validate;

use std::path::{Path, PathBuf};

pub use diagnostic::{Diagnostic, did_you_mean};
pub use resolved::*;
pub use validate::normalize;

pub const FILE_NAME: &str = "devenv.toml";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// No `devenv.toml` in the directory or any parent.
    #[error(
        "no {FILE_NAME} found in {} or any parent directory\n  hint: run devenv from your project, or pass --config PATH",
        start.display()
    )]
    NotFound { start: PathBuf },
    /// The file exists but could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Not a file to read a config from: a directory, a FIFO, a device.
    #[error("{} is {what}, not a regular file\n  hint: --config takes the path of a devenv.toml", path.display())]
    NotAFile { path: PathBuf, what: &'static str },
    /// Larger than any config: a wrong path, most likely.
    #[error("{} is {size} bytes; a devenv.toml is at most {MAX_CONFIG_BYTES}\n  hint: check the path given to --config", path.display())]
    TooLarge { path: PathBuf, size: u64 },
    /// Not text.
    #[error("{}:{line}:{column}: the file is not UTF-8 text (this is its first byte that is not)\n  hint: save it as UTF-8", path.display())]
    NotText {
        path: PathBuf,
        line: usize,
        column: usize,
    },
    /// Parsed or checked, with at least one error; warnings come along.
    #[error("{}", render(diagnostics))]
    Invalid { diagnostics: Vec<Diagnostic> },
}

fn render(diags: &[Diagnostic]) -> String {
    let mut out = String::new();
    for d in diags {
        out.push_str(&d.to_string());
        out.push('\n');
    }
    let errors = diags.iter().filter(|d| d.is_error()).count();
    let warnings = diags.len() - errors;
    out.push_str(&format!(
        "{errors} error{} and {warnings} warning{} in the config; nothing was started",
        if errors == 1 { "" } else { "s" },
        if warnings == 1 { "" } else { "s" }
    ));
    out
}

/// A valid config and the warnings found on the way.
#[derive(Debug)]
pub struct Loaded {
    pub config: Config,
    pub warnings: Vec<Diagnostic>,
}

/// Finds the config: `explicit` when given, else `devenv.toml` in `cwd` or the nearest
/// parent directory that has one, the way git finds its repository.
pub fn locate(explicit: Option<&Path>, cwd: &Path) -> Result<PathBuf, ConfigError> {
    if let Some(p) = explicit {
        let p = if p.is_absolute() {
            p.to_path_buf()
        } else {
            cwd.join(p)
        };
        return Ok(if p.is_dir() { p.join(FILE_NAME) } else { p });
    }
    cwd.ancestors()
        .map(|d| d.join(FILE_NAME))
        .find(|p| p.is_file())
        .ok_or_else(|| ConfigError::NotFound {
            start: cwd.to_path_buf(),
        })
}

/// Reads and validates the config at `path` (absolute). Diagnostics show the path relative
/// to `cwd` when it lies below it.
/// The largest config file devenv reads.
pub const MAX_CONFIG_BYTES: u64 = 1024 * 1024;

/// Reads the config file: a regular file (a FIFO or device would hang or never end), of at
/// most [`MAX_CONFIG_BYTES`], in UTF-8.
fn read_bounded(path: &Path) -> Result<String, ConfigError> {
    use std::io::Read as _;
    use std::os::unix::fs::FileTypeExt as _;
    let read_err = |source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    };
    let meta = std::fs::metadata(path).map_err(read_err)?;
    let t = meta.file_type();
    let what = if t.is_dir() {
        Some("a directory")
    } else if t.is_fifo() {
        Some("a FIFO")
    } else if t.is_char_device() || t.is_block_device() {
        Some("a device")
    } else if t.is_socket() {
        Some("a socket")
    } else {
        None
    };
    if let Some(what) = what {
        return Err(ConfigError::NotAFile {
            path: path.to_path_buf(),
            what,
        });
    }
    if meta.len() > MAX_CONFIG_BYTES {
        return Err(ConfigError::TooLarge {
            path: path.to_path_buf(),
            size: meta.len(),
        });
    }
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .map_err(read_err)?
        .take(MAX_CONFIG_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(read_err)?;
    if bytes.len() as u64 > MAX_CONFIG_BYTES {
        return Err(ConfigError::TooLarge {
            path: path.to_path_buf(),
            size: bytes.len() as u64,
        });
    }
    String::from_utf8(bytes).map_err(|e| {
        let good = &e.as_bytes()[..e.utf8_error().valid_up_to()];
        let line_start = good.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        ConfigError::NotText {
            path: path.to_path_buf(),
            line: good.iter().filter(|&&b| b == b'\n').count() + 1,
            column: String::from_utf8_lossy(&good[line_start..]).chars().count() + 1,
        }
    })
}

pub fn load(path: &Path, cwd: &Path) -> Result<Loaded, ConfigError> {
    let source = read_bounded(path)?;
    let abs = normalize(path);
    let shown = abs.strip_prefix(cwd).map_or(abs.clone(), Path::to_path_buf);
    parse(&shown, &abs, &source)
}

/// Parses and validates config text; `abs` anchors relative paths.
pub fn parse(shown: &Path, abs: &Path, source: &str) -> Result<Loaded, ConfigError> {
    let raw: model::RawConfig = toml::from_str(source).map_err(|e| ConfigError::Invalid {
        diagnostics: vec![diagnostic::from_toml_error(shown, source, &e)],
    })?;
    match validate::validate(shown, abs, source, raw) {
        (Some(config), warnings) => Ok(Loaded { config, warnings }),
        (None, diagnostics) => Err(ConfigError::Invalid { diagnostics }),
    }
}
