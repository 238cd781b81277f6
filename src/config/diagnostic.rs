//! Errors and warnings about a config file, each pinned to a line and column, rendered the
//! way compilers do: location, the offending source line with a caret, what was expected and
//! a hint.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Diagnostic {
    pub severity: Severity,
    pub file: PathBuf,
    /// 1-based; 0 when the problem is not tied to a place in the file.
    pub line: usize,
    /// 1-based, in characters.
    pub column: usize,
    pub message: String,
    pub expected: Option<String>,
    pub hint: Option<String>,
    #[serde(skip)]
    source_line: Option<String>,
    #[serde(skip)]
    marker_len: usize,
}

impl Diagnostic {
    /// A diagnostic about the bytes `span` of `source`.
    pub fn at(file: &Path, source: &str, span: Option<Range<usize>>, message: String) -> Self {
        let mut d = Diagnostic {
            severity: Severity::Error,
            file: file.to_path_buf(),
            line: 0,
            column: 0,
            message,
            expected: None,
            hint: None,
            source_line: None,
            marker_len: 0,
        };
        if let Some(span) = span {
            let start = floor_char_boundary(source, span.start.min(source.len()));
            let end = floor_char_boundary(source, span.end.min(source.len())).max(start);
            let line_start = source[..start].rfind('\n').map_or(0, |i| i + 1);
            let line_end = source[start..]
                .find('\n')
                .map_or(source.len(), |i| start + i);
            d.line = source[..start].matches('\n').count() + 1;
            d.column = source[line_start..start].chars().count() + 1;
            let line = source[line_start..line_end].trim_end_matches('\r');
            d.marker_len = source[start..end.min(line_end)].chars().count().max(1);
            d.source_line = Some(line.to_owned());
        }
        d
    }

    pub fn expected(mut self, text: impl Into<String>) -> Self {
        self.expected = Some(text.into());
        self
    }

    pub fn hint(mut self, text: impl Into<String>) -> Self {
        self.hint = Some(text.into());
        self
    }

    pub fn warning(mut self) -> Self {
        self.severity = Severity::Warning;
        self
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    while i > 0 && !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// How many characters of a source line an error shows at most.
const SHOWN_LINE: usize = 120;

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let label = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        writeln!(f, "{label}: {}", self.message)?;
        let gutter = " ".repeat(self.line.to_string().len());
        if self.line > 0 {
            writeln!(
                f,
                "{gutter}--> {}:{}:{}",
                self.file.display(),
                self.line,
                self.column
            )?;
        } else {
            writeln!(f, "{gutter}--> {}", self.file.display())?;
        }
        if let Some(src) = &self.source_line {
            // A long line is shown as a window around the column, so an error about a
            // 500 KB value is not 500 KB long.
            let chars = src.chars().count();
            let (from, marker) = if chars > SHOWN_LINE {
                let from = (self.column - 1).saturating_sub(SHOWN_LINE / 3);
                (
                    from,
                    self.marker_len.min(SHOWN_LINE - (self.column - 1 - from)),
                )
            } else {
                (0, self.marker_len)
            };
            let shown: String = src.chars().skip(from).take(SHOWN_LINE).collect();
            let (before, after) = (
                if from > 0 { "…" } else { "" },
                if from + SHOWN_LINE < chars { "…" } else { "" },
            );
            writeln!(f, "{gutter} |")?;
            writeln!(f, "{} | {before}{shown}{after}", self.line)?;
            let pad: String = before
                .chars()
                .chain(src.chars().skip(from).take(self.column - 1 - from))
                .map(|c| if c == '\t' { '\t' } else { ' ' })
                .collect();
            writeln!(f, "{gutter} | {pad}{}", "^".repeat(marker.max(1)))?;
        }
        if let Some(e) = &self.expected {
            writeln!(f, "{gutter} = expected: {e}")?;
        }
        if let Some(h) = &self.hint {
            writeln!(f, "{gutter} = hint: {h}")?;
        }
        Ok(())
    }
}

/// The closest of `candidates` to `word`, if it is close enough to be a likely typo.
pub fn did_you_mean<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    candidates
        .iter()
        .map(|c| (strsim::jaro_winkler(word, c), *c))
        .filter(|(score, _)| *score >= 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}

/// The table a position belongs to (`[cluster]`, `[[image]]`, or "the top level").
///
/// On a header line, `own_header` decides between the table the header opens (for "missing
/// key in this table") and the table whose key the header names (for "unknown key").
fn enclosing_table(source: &str, pos: usize, own_header: bool) -> String {
    let pos = floor_char_boundary(source, pos.min(source.len()));
    let line_start = source[..pos].rfind('\n').map_or(0, |i| i + 1);
    let line_end = source[pos..].find('\n').map_or(source.len(), |i| pos + i);
    let header = |l: &str| {
        let end = l.rfind(']').map_or(l.len(), |i| i + 1);
        l[..end].to_owned()
    };
    let current = source[line_start..line_end].trim();
    if current.starts_with('[') {
        if own_header {
            return header(current);
        }
        let name = current.trim_start_matches('[');
        let name = name.split(']').next().unwrap_or(name).trim();
        return match name.rsplit_once('.') {
            Some((parent, _)) => format!("[{parent}]"),
            None => "the top level".to_owned(),
        };
    }
    source[..line_start]
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| l.starts_with('['))
        .map(header)
        .unwrap_or_else(|| "the top level".to_owned())
}

/// The key whose value sits at byte `pos` (`cpus` in `cpus = "four"`), when it is on the line.
fn key_at(source: &str, pos: usize) -> Option<String> {
    let pos = floor_char_boundary(source, pos.min(source.len()));
    let line_start = source[..pos].rfind('\n').map_or(0, |i| i + 1);
    let before = &source[line_start..pos];
    let eq = before.find('=')?;
    let key = before[..eq].trim().trim_matches('"');
    (!key.is_empty() && !key.contains(['[', '{', ','])).then(|| key.to_owned())
}

/// Pulls the back-quoted names out of serde's "expected one of `a`, `b`" text.
fn quoted_names(text: &str) -> Vec<&str> {
    text.split('`').skip(1).step_by(2).collect()
}

/// Turns a TOML syntax or shape error into a diagnostic a user can act on.
pub fn from_toml_error(file: &Path, source: &str, err: &toml::de::Error) -> Diagnostic {
    let span = err.span();
    let pos = span.as_ref().map_or(0, |s| s.start);
    let raw = err.message().trim();
    let (first, rest) = raw.split_once('\n').unwrap_or((raw, ""));
    let rest = rest.trim();

    if let Some(tail) = first.strip_prefix("unknown field `") {
        let (key, expected) = tail.split_once('`').unwrap_or((tail, ""));
        let names = quoted_names(expected);
        let table = enclosing_table(source, pos, false);
        let d = Diagnostic::at(
            file,
            source,
            span,
            format!("unknown key `{key}` in {table}"),
        );
        let d = if names.is_empty() {
            d.expected("no keys here")
        } else {
            d.expected(format!("one of {}", names.join(", ")))
        };
        return match did_you_mean(key, &names) {
            Some(s) => d.hint(format!("did you mean `{s}`?")),
            None => d.hint("remove it, or see docs/config.md for what this table takes"),
        };
    }
    if let Some(tail) = first.strip_prefix("unknown variant `") {
        let (value, expected) = tail.split_once('`').unwrap_or((tail, ""));
        let names = quoted_names(expected);
        let what = key_at(source, pos).map_or(String::new(), |k| format!(" for `{k}`"));
        let d = Diagnostic::at(
            file,
            source,
            span,
            format!("unknown value \"{value}\"{what}"),
        )
        .expected(names.join(" or "));
        return match did_you_mean(value, &names) {
            Some(s) => d.hint(format!("did you mean \"{s}\"?")),
            None => d,
        };
    }
    if let Some(tail) = first.strip_prefix("missing field `") {
        let key = tail.split('`').next().unwrap_or(tail);
        let table = enclosing_table(source, pos, true);
        return Diagnostic::at(
            file,
            source,
            span,
            format!("missing required key `{key}` in {table}"),
        )
        .hint(format!(
            "add `{key} = ...` to this table; see docs/config.md"
        ));
    }
    if let Some(tail) = first.strip_prefix("invalid type: ") {
        let (found, expected) = tail.split_once(", expected ").unwrap_or((tail, ""));
        let what = key_at(source, pos).map_or(String::new(), |k| format!(" for `{k}`"));
        let d = Diagnostic::at(
            file,
            source,
            span,
            format!("wrong type{what}: found {found}"),
        );
        return d.expected(friendly_type(expected));
    }
    if first == "duplicate key" {
        let key = span
            .as_ref()
            .and_then(|s| source.get(s.clone()))
            .map_or(String::new(), |k| {
                format!(" `{}`", k.trim().trim_matches('"'))
            });
        return Diagnostic::at(file, source, span, format!("duplicate key{key}"))
            .hint("each key may appear once per table; remove one of them");
    }
    if first.starts_with("invalid length") {
        return Diagnostic::at(file, source, span, first.to_owned());
    }
    // Messages from devenv's own value parsers, and TOML syntax errors.
    let what = key_at(source, pos).map_or(String::new(), |k| format!("`{k}`: "));
    let d = Diagnostic::at(file, source, span, format!("{what}{first}"));
    if rest.is_empty() {
        d
    } else {
        d.expected(rest.trim_start_matches("expected ").to_owned())
    }
}

fn friendly_type(serde_expected: &str) -> String {
    match serde_expected {
        "i64" | "u64" | "i32" | "u32" | "u16" => "an integer".to_owned(),
        "a boolean" => "true or false".to_owned(),
        "a sequence" => "an array, like [\"a\", \"b\"]".to_owned(),
        "a string" => "a string in quotes".to_owned(),
        other => other.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_and_column_are_one_based_and_count_characters() {
        let src = "a = 1\nbé = \"x\"\n";
        let pos = src.find("\"x\"").unwrap_or(0);
        let d = Diagnostic::at(Path::new("f.toml"), src, Some(pos..pos + 3), "m".into());
        assert_eq!((d.line, d.column), (2, 6));
        let shown = d.to_string();
        assert!(shown.contains("--> f.toml:2:6"), "{shown}");
        assert!(shown.contains("2 | bé = \"x\""), "{shown}");
        assert!(shown.contains("  |      ^^^"), "{shown}");
    }

    #[test]
    fn suggestions_only_for_likely_typos() {
        let keys = ["name", "context", "dockerfile", "target"];
        assert_eq!(did_you_mean("dockerflie", &keys), Some("dockerfile"));
        assert_eq!(did_you_mean("contxt", &keys), Some("context"));
        assert_eq!(did_you_mean("zzz", &keys), None);
    }

    #[test]
    fn table_and_key_are_found_around_a_position() {
        let src = "[cluster]\ncpus = \"four\"\n\n[[image]]\nname = \"x\"\n";
        let pos = src.find("\"four\"").unwrap_or(0);
        assert_eq!(enclosing_table(src, pos, false), "[cluster]");
        assert_eq!(key_at(src, pos).as_deref(), Some("cpus"));
        let pos = src.find("name").unwrap_or(0);
        assert_eq!(enclosing_table(src, pos, false), "[[image]]");
        let pos = src.find("[[image]]").unwrap_or(0);
        assert_eq!(enclosing_table(src, pos + 2, false), "the top level");
        assert_eq!(enclosing_table(src, pos, true), "[[image]]");
        let src = "[deploy.helmm]\n";
        assert_eq!(enclosing_table(src, 8, false), "[deploy]");
    }
}
