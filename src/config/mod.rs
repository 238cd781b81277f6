//! `devenv.toml`: finding it, parsing it, validating it.
//!
//! Owns the two config layers (the serde model in `model`, the resolved form in `resolved`)
//! and the diagnostics that point at a line and column. Reads files (the config, and the
//! paths it names, to check they exist) but never writes, runs or connects to anything.

mod diagnostic;
pub mod model;
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
    #[error("{} is {what}, not a regular file\n  hint: {}", path.display(), origin.not_a_file())]
    NotAFile {
        path: PathBuf,
        what: &'static str,
        origin: Origin,
    },
    /// Larger than any config: a wrong path, most likely.
    #[error("{} is {size} bytes; a devenv.toml is at most {MAX_CONFIG_BYTES}\n  hint: {}", path.display(), origin.too_large())]
    TooLarge {
        path: PathBuf,
        size: u64,
        origin: Origin,
    },
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

/// How devenv came to read a config file, which decides what a hint about its path says:
/// only a path the user gave with `--config` is one to check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// Named with `--config`.
    Given,
    /// Found by the search from the working directory, or the running session's own file
    /// read again.
    Found,
}

impl Origin {
    fn not_a_file(self) -> &'static str {
        match self {
            Origin::Given => "--config takes the path of a devenv.toml",
            Origin::Found => "devenv.toml must be a regular file of TOML text; put one back",
        }
    }

    fn too_large(self) -> &'static str {
        match self {
            Origin::Given => "check the path given to --config",
            Origin::Found => {
                "a devenv.toml holds settings only; keep large data in the files it names"
            }
        }
    }
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

/// The largest config file devenv reads.
pub const MAX_CONFIG_BYTES: u64 = 1024 * 1024;

/// Reads the config file: a regular file (a FIFO or device would hang or never end), of at
/// most [`MAX_CONFIG_BYTES`], in UTF-8.
fn read_bounded(path: &Path, origin: Origin) -> Result<String, ConfigError> {
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
            origin,
        });
    }
    if meta.len() > MAX_CONFIG_BYTES {
        return Err(ConfigError::TooLarge {
            path: path.to_path_buf(),
            size: meta.len(),
            origin,
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
            origin,
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

/// Reads and validates the config at `path` (absolute). Diagnostics show the path relative
/// to `cwd` when it lies below it; `origin` picks the hints about the path.
pub fn load(path: &Path, cwd: &Path, origin: Origin) -> Result<Loaded, ConfigError> {
    let source = read_bounded(path, origin)?;
    let abs = normalize(path);
    let shown = abs.strip_prefix(cwd).map_or(abs.clone(), Path::to_path_buf);
    parse(&shown, &abs, &source)
}

/// How many parts a dotted key or table header may have: devenv.toml nests 3 deep; the
/// parser's own limit came without a position ("recursion limit").
pub const MAX_KEY_PARTS: usize = 64;

/// A dotted key or table header of more than [`MAX_KEY_PARTS`] parts, told at its place.
fn too_deep(shown: &Path, source: &str) -> Option<Diagnostic> {
    let mut offset = 0;
    // Inside a multi-line string, a line is text, not a key.
    let mut in_string = false;
    for line in source.split_inclusive('\n') {
        let was = in_string;
        if (line.matches("\"\"\"").count() + line.matches("\'\'\'").count()) % 2 == 1 {
            in_string = !in_string;
        }
        if was {
            offset += line.len();
            continue;
        }
        let t = line.trim_start();
        let indent = line.len() - t.len();
        // The key part: a header's inside, or what comes before `=`.
        let key = if let Some(h) = t.strip_prefix('[') {
            h.trim_start_matches('[').split(']').next().unwrap_or("")
        } else {
            t.split('=').next().unwrap_or("")
        };
        let mut parts = 1;
        let mut quote: Option<char> = None;
        for c in key.chars() {
            match (quote, c) {
                (None, '"' | '\'') => quote = Some(c),
                (Some(q), c) if c == q => quote = None,
                (None, '.') => parts += 1,
                _ => {}
            }
        }
        if parts > MAX_KEY_PARTS {
            let start = offset + indent;
            return Some(
                Diagnostic::at(
                    shown,
                    source,
                    Some(start..start + 1),
                    format!("a key or table header of {parts} dotted parts"),
                )
                .expected(format!(
                    "at most {MAX_KEY_PARTS} (devenv.toml's tables nest 3 deep)"
                ))
                .hint("see docs/config.md for the tables devenv.toml has"),
            );
        }
        offset += line.len();
    }
    None
}

/// Parses and validates config text; `abs` anchors relative paths.
pub fn parse(shown: &Path, abs: &Path, source: &str) -> Result<Loaded, ConfigError> {
    if let Some(d) = too_deep(shown, source) {
        return Err(ConfigError::Invalid {
            diagnostics: vec![d],
        });
    }
    let raw: model::RawConfig = toml::from_str(source).map_err(|e| ConfigError::Invalid {
        diagnostics: vec![diagnostic::from_toml_error(shown, source, &e)],
    })?;
    match validate::validate(shown, abs, source, raw) {
        (Some(config), warnings) => Ok(Loaded { config, warnings }),
        (None, diagnostics) => Err(ConfigError::Invalid { diagnostics }),
    }
}

/// Properties of the loader over generated input (bounded: 256 cases each).
#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;

    /// Every diagnostic points inside the text (or at no place).
    fn in_bounds(text: &str, e: &ConfigError) -> Result<(), TestCaseError> {
        let lines = text.split('\n').count().max(1);
        if let ConfigError::Invalid { diagnostics } = e {
            prop_assert!(!diagnostics.is_empty());
            for d in diagnostics {
                prop_assert!(d.line <= lines, "line {} of {lines}: {d}", d.line);
                prop_assert!(d.line == 0 || d.column >= 1, "{d}");
            }
        }
        Ok(())
    }

    fn field() -> impl Strategy<Value = String> {
        prop_oneof![
            "name = \"[a-z][a-z0-9-]{0,10}\"",
            "cmd = \"[ -~]{0,20}\"",
            "deps = \\[\"[a-z]{1,5}\"\\]",
            "trigger = \"(manual|auto|often)\"",
            "depends_on = \\[\"[a-z]{1,5}\"\\]",
            "[a-z_]{1,10} = [0-9]{1,5}",
            "env = \\{ [A-Z]{1,5} = \"[a-z]{0,5}\" \\}",
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn any_text_loads_or_fails_at_a_place_in_it(text in any::<String>()) {
            let dir = std::env::temp_dir();
            if let Err(e) = parse(Path::new("devenv.toml"), &dir.join("devenv.toml"), &text) {
                in_bounds(&text, &e)?;
            }
        }

        /// Configs shaped like real ones (tables of locals with good and bad keys): valid, or
        /// every error at a place in the file.
        #[test]
        fn shaped_configs_load_or_fail_at_a_place(
            tables in prop::collection::vec(prop::collection::vec(field(), 0..6), 0..5)
        ) {
            let mut text = String::from("[project]\nname = \"p\"\n");
            for t in &tables {
                text.push_str("\n[[local]]\n");
                for f in t {
                    text.push_str(f);
                    text.push('\n');
                }
            }
            let dir = tempfile::tempdir().map_err(|e| TestCaseError::fail(e.to_string()))?;
            match parse(Path::new("devenv.toml"), &dir.path().join("devenv.toml"), &text) {
                Ok(l) => prop_assert!(l.config.locals.len() <= tables.len()),
                Err(e) => in_bounds(&text, &e)?,
            }
        }
    }
}
