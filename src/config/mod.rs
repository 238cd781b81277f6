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

pub use diagnostic::Diagnostic;
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
pub fn load(path: &Path, cwd: &Path) -> Result<Loaded, ConfigError> {
    let source = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
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
