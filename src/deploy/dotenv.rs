//! A dotenv parser for the .env files Secrets are made from.
//!
//! Follows what people write in .env files: `KEY=value`, `export KEY=value`, `#` comments
//! (whole lines, or after whitespace in unquoted values), single quotes (literal), double
//! quotes (with `\n`, `\t`, `\r`, `\"`, `\\` escapes, and able to span lines), empty values,
//! and duplicate keys (the last wins, with a warning). No `${VAR}` expansion: a value is
//! exactly what the file says.
//!
//! Values are secrets: they are kept in [`Values`], whose Debug output hides them, and no
//! error or warning ever quotes a value.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

/// Parsed values; `Debug` shows the keys only.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Values(pub BTreeMap<String, String>);

impl fmt::Debug for Values {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.0.keys().map(|k| (k, "<hidden>")))
            .finish()
    }
}

/// A problem with one line, by line number. Never contains a value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub line: usize,
    pub message: String,
}

/// The parse of one file: the values, and warnings (duplicate keys).
#[derive(Debug, Default)]
pub struct Parsed {
    pub values: Values,
    pub warnings: Vec<Problem>,
}

fn valid_key(k: &str) -> bool {
    k.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.' || c == '-')
}

/// The largest .env file devenv reads.
pub const MAX_ENV_FILE: u64 = 1024 * 1024;

/// Reads a .env file: a regular file of at most [`MAX_ENV_FILE`] bytes, opened without
/// blocking, so a FIFO or a device put in its place is an error, never a hang, and a huge file
/// is never read whole.
/// Its bytes, not text: [`parse_bytes`] names the line of a byte that is not UTF-8.
pub fn read_file(path: &Path) -> std::io::Result<Vec<u8>> {
    crate::tree::read_capped_bytes(path, MAX_ENV_FILE)
}

/// [`parse`] of a file's bytes: text that is not UTF-8 is an error at the line of its first
/// stray byte (the bytes are not shown).
pub fn parse_bytes(bytes: &[u8]) -> Result<Parsed, Problem> {
    match std::str::from_utf8(bytes) {
        Ok(text) => parse(text),
        Err(e) => Err(Problem {
            line: 1 + bytes[..e.valid_up_to()]
                .iter()
                .filter(|b| **b == b'\n')
                .count(),
            message: "not UTF-8 text (save the file as UTF-8)".into(),
        }),
    }
}

/// The errors of a malformed line name its line, never its text: not even the key, which on
/// such a line is often a piece of a pasted value (a PEM body's line ending in `=`).
const UNTERMINATED_SINGLE: &str = "the single quote that opens this line's value is never closed (a value over several lines must end with the same quote)";
const UNTERMINATED_DOUBLE: &str = "the double quote that opens this line's value is never closed (a value over several lines must end with the same quote)";

pub fn parse(text: &str) -> Result<Parsed, Problem> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let chars: Vec<char> = text.chars().collect();
    let mut out = Parsed::default();
    let mut first_line: BTreeMap<String, usize> = BTreeMap::new();
    let mut i = 0;
    let mut line = 1;
    while i < chars.len() {
        // One logical entry starts here.
        let start_line = line;
        let eol = chars[i..]
            .iter()
            .position(|&c| c == '\n')
            .map_or(chars.len(), |p| i + p);
        let raw: String = chars[i..eol].iter().collect();
        let trimmed = raw.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            i = eol + 1;
            line += 1;
            continue;
        }
        let body = trimmed
            .strip_prefix("export ")
            .map_or(trimmed, str::trim_start);
        let Some(eq) = body.find('=') else {
            return Err(Problem {
                line: start_line,
                message: "expected KEY=value (a value over several lines, such as a PEM key, must be in double quotes)".into(),
            });
        };
        let key = body[..eq].trim().to_owned();
        if !valid_key(&key) {
            // The text before `=` is not shown: on a malformed line it is often a value (the
            // body of an unquoted PEM key, a password typed in the wrong place).
            return Err(Problem {
                line: start_line,
                message: "the text before `=` is not a key (a key is letters, digits, `_`, `.` and `-`, not starting with a digit; the text is not shown, it may be secret). A value over several lines, such as a PEM key, must be in double quotes".into(),
            });
        }
        // Position of the value's first character in `chars`.
        let leading = raw.len() - raw.trim_start().len();
        let prefix_len = trimmed.len() - body.len();
        let value_offset = leading + prefix_len + eq + 1;
        let mut j = i + raw[..value_offset.min(raw.len())].chars().count();
        while j < eol && (chars[j] == ' ' || chars[j] == '\t') {
            j += 1;
        }
        let (value, next) = match chars.get(j) {
            Some('\'') => {
                let close = chars[j + 1..]
                    .iter()
                    .position(|&c| c == '\'')
                    .map(|p| j + 1 + p);
                let Some(close) = close else {
                    return Err(Problem {
                        line: start_line,
                        message: UNTERMINATED_SINGLE.into(),
                    });
                };
                (chars[j + 1..close].iter().collect::<String>(), close + 1)
            }
            Some('"') => {
                let mut v = String::new();
                let mut k = j + 1;
                loop {
                    match chars.get(k) {
                        None => {
                            return Err(Problem {
                                line: start_line,
                                message: UNTERMINATED_DOUBLE.into(),
                            });
                        }
                        Some('"') => break,
                        Some('\\') => {
                            match chars.get(k + 1) {
                                Some('n') => v.push('\n'),
                                Some('t') => v.push('\t'),
                                Some('r') => v.push('\r'),
                                Some('"') => v.push('"'),
                                Some('\\') => v.push('\\'),
                                Some('$') => v.push('$'),
                                Some(other) => {
                                    v.push('\\');
                                    v.push(*other);
                                }
                                None => v.push('\\'),
                            }
                            k += 2;
                        }
                        Some(c) => {
                            v.push(*c);
                            k += 1;
                        }
                    }
                }
                (v, k + 1)
            }
            _ => {
                let rest: String = chars[j..eol].iter().collect();
                // An unquoted value ends at ` #` (a comment) and is trimmed.
                let cut = rest
                    .char_indices()
                    .find(|&(p, c)| c == '#' && p > 0 && rest[..p].ends_with([' ', '\t']))
                    .map_or(rest.len(), |(p, _)| p);
                (rest[..cut].trim().to_owned(), eol)
            }
        };
        // After a closing quote only a comment may follow on that line.
        let line_end = chars[next.min(chars.len())..]
            .iter()
            .position(|&c| c == '\n')
            .map_or(chars.len(), |p| next + p);
        let tail: String = chars[next.min(line_end)..line_end].iter().collect();
        let tail = tail.trim();
        if !tail.is_empty() && !tail.starts_with('#') {
            return Err(Problem {
                line: start_line,
                message: "unexpected text after the closing quote of this line's value (only a `# comment` may follow; the text is not shown, it may be secret)".into(),
            });
        }
        line += chars[i..line_end.min(chars.len())]
            .iter()
            .filter(|&&c| c == '\n')
            .count()
            + 1;
        i = line_end + 1;
        if let Some(first) = first_line.get(&key) {
            out.warnings.push(Problem {
                line: start_line,
                message: format!(
                    "`{key}` is set again (first on line {first}); the last value wins"
                ),
            });
        } else {
            first_line.insert(key.clone(), start_line);
        }
        out.values.0.insert(key, value);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 16, point 4: a malformed line's text is never in the message.
    #[test]
    fn a_malformed_line_never_shows_its_text() {
        for (text, secret) in [
            ("my db password hunter2=x\n", "hunter2"),
            (
                "KEY=-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC=\n-----END PRIVATE KEY-----\n",
                "MIIEvQ",
            ),
            ("A=1\n9lives=s3cr3t-value\n", "9lives"),
        ] {
            let e = parse(text).err().unwrap_or_else(|| panic!("{text} parsed"));
            assert!(!e.message.contains(secret), "{}", e.message);
            assert!(e.message.contains("double quotes"), "{}", e.message);
        }
    }

    /// A FIFO or a device in place of a .env file is an error at once (a read of a FIFO
    /// waited for a writer for ever), and a huge file is refused without being read whole.
    #[test]
    fn only_a_regular_file_of_sane_size_is_read() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let fifo = dir.path().join(".env");
        crate::host::mkfifo(&fifo);
        let e = read_file(&fifo)
            .err()
            .unwrap_or_else(|| panic!("a FIFO was read"));
        assert!(e.to_string().contains("not a regular file"), "{e}");
        let e = read_file(Path::new("/dev/zero"))
            .err()
            .unwrap_or_else(|| panic!("/dev/zero was read"));
        assert!(e.to_string().contains("not a regular file"), "{e}");
        let huge = dir.path().join("huge.env");
        std::fs::File::create(&huge)
            .and_then(|f| f.set_len(3 << 30))
            .unwrap_or_else(|e| panic!("{e}"));
        let e = read_file(&huge)
            .err()
            .unwrap_or_else(|| panic!("3 GiB were read"));
        assert!(e.to_string().contains("larger than 1 MiB"), "{e}");
        std::fs::write(dir.path().join("ok.env"), "A=1\n").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            read_file(&dir.path().join("ok.env")).unwrap_or_default(),
            b"A=1\n"
        );
    }

    /// Issue 28, item 18: a line of a pasted PEM key or token that happens to look like
    /// `KEY="…` is malformed, and its "key" is a piece of the secret. An error names the line,
    /// never the text on it, even when that text is shaped like a key.
    #[test]
    fn an_error_never_quotes_a_key_shaped_fragment() {
        for text in [
            "KEY=-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0B=\"AASC\n",
            "KEY=-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0B='AASC\n",
            "KEY=-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0B=\"AASC\" Qx\n",
        ] {
            let e = parse(text).err().unwrap_or_else(|| panic!("{text} parsed"));
            assert_eq!(e.line, 2, "{}", e.message);
            assert!(!e.message.contains("MIIEvQ"), "{}", e.message);
        }
    }

    fn values(text: &str) -> BTreeMap<String, String> {
        match parse(text) {
            Ok(p) => p.values.0,
            Err(e) => panic!("line {}: {}", e.line, e.message),
        }
    }

    fn one(text: &str) -> String {
        values(text)
            .into_values()
            .next()
            .unwrap_or_else(|| panic!("no value in {text:?}"))
    }

    #[test]
    fn plain_pairs_and_whitespace() {
        let v = values("A=1\nB = two\n  C=three  \n");
        assert_eq!(v.get("A").map(String::as_str), Some("1"));
        assert_eq!(v.get("B").map(String::as_str), Some("two"));
        assert_eq!(v.get("C").map(String::as_str), Some("three"));
    }

    #[test]
    fn comments_and_blank_lines() {
        let v = values("# a comment\n\n   # indented comment\nA=1 # trailing comment\nB=a#b\n");
        assert_eq!(v.len(), 2);
        assert_eq!(v["A"], "1");
        assert_eq!(
            v["B"], "a#b",
            "a # without space before it is part of the value"
        );
    }

    #[test]
    fn export_prefix() {
        assert_eq!(values("export TOKEN=abc\n")["TOKEN"], "abc");
        assert_eq!(values("export   SPACED=1\n")["SPACED"], "1");
    }

    #[test]
    fn empty_values() {
        let v = values("EMPTY=\nQUOTED=\"\"\nSINGLE=''\n");
        assert_eq!(v["EMPTY"], "");
        assert_eq!(v["QUOTED"], "");
        assert_eq!(v["SINGLE"], "");
    }

    #[test]
    fn single_quotes_are_literal() {
        assert_eq!(
            one("A='a \\n $HOME # not a comment'\n"),
            "a \\n $HOME # not a comment"
        );
    }

    #[test]
    fn double_quotes_process_escapes() {
        assert_eq!(
            one("A=\"line1\\nline2\\t\\\"q\\\" \\\\ \\$x\"\n"),
            "line1\nline2\t\"q\" \\ $x"
        );
    }

    #[test]
    fn double_quoted_values_span_lines() {
        let v = values("KEY=\"-----BEGIN KEY-----\nabc\n-----END KEY-----\"\nNEXT=1\n");
        assert_eq!(v["KEY"], "-----BEGIN KEY-----\nabc\n-----END KEY-----");
        assert_eq!(v["NEXT"], "1");
    }

    #[test]
    fn single_quoted_values_span_lines_too() {
        assert_eq!(values("K='a\nb'\n")["K"], "a\nb");
    }

    #[test]
    fn equals_signs_inside_values() {
        assert_eq!(
            one("URL=postgres://u:p@h/db?sslmode=require&a=b\n"),
            "postgres://u:p@h/db?sslmode=require&a=b"
        );
    }

    #[test]
    fn duplicate_keys_last_wins_with_a_warning_that_hides_the_value() {
        let p = parse("A=first-secret\nB=1\nA=second-secret\n").unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(p.values.0["A"], "second-secret");
        assert_eq!(
            p.warnings,
            [Problem {
                line: 3,
                message: "`A` is set again (first on line 1); the last value wins".into()
            }]
        );
        assert!(!format!("{:?}", p.warnings).contains("secret"));
    }

    #[test]
    fn line_numbers_count_multi_line_values() {
        let p = parse("A=\"x\ny\"\nA=2\n").unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(p.warnings[0].line, 3);
        let e = parse("A=\"x\ny\"\nnot a pair\n").err();
        assert_eq!(e.map(|e| e.line), Some(3));
    }

    #[test]
    fn unterminated_quotes_are_errors_without_the_value() {
        let e = parse("OK=1\nPASSWORD=\"hunter2\n")
            .err()
            .unwrap_or_else(|| panic!("accepted"));
        assert_eq!(e.line, 2);
        assert_eq!(e.message, UNTERMINATED_DOUBLE);
        let e = parse("P='abc\n")
            .err()
            .unwrap_or_else(|| panic!("accepted"));
        assert_eq!(e.message, UNTERMINATED_SINGLE);
    }

    #[test]
    fn invalid_keys_and_lines() {
        assert_eq!(parse("1ABC=x\n").err().map(|e| e.line), Some(1));
        assert_eq!(
            parse("A=1\njust text\n").err().map(|e| (e.line, e.message)),
            Some((
                2,
                "expected KEY=value (a value over several lines, such as a PEM key, must be in double quotes)".to_owned()
            ))
        );
        assert!(parse("MY KEY=x\n").is_err());
    }

    #[test]
    fn text_after_a_closing_quote_is_an_error_but_a_comment_is_fine() {
        assert_eq!(values("A=\"x\" # note\n")["A"], "x");
        assert!(parse("A=\"x\" y\n").is_err());
    }

    #[test]
    fn crlf_line_endings_and_a_bom() {
        let v = values("\u{feff}A=1\r\nB=\"two\"\r\n");
        assert_eq!(v["A"], "1");
        assert_eq!(v["B"], "two");
    }

    #[test]
    fn debug_output_hides_values() {
        let p = parse("TOKEN=s3cr3t\n").unwrap_or_else(|e| panic!("{e:?}"));
        let shown = format!("{:?}", p.values);
        assert!(
            shown.contains("TOKEN") && !shown.contains("s3cr3t"),
            "{shown}"
        );
    }

    #[test]
    fn keys_with_dots_and_dashes_as_kubernetes_allows() {
        let v = values("app.config-key=1\n");
        assert_eq!(v["app.config-key"], "1");
    }
}

/// Properties over generated input (bounded: 256 cases each, PROPTEST_CASES to change).
#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;

    /// A value written as the parser reads double quotes.
    fn quoted(v: &str) -> String {
        let mut out = String::from("\"");
        for c in v.chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                '"' => out.push_str("\\\""),
                '\n' => out.push_str("\\n"),
                '\t' => out.push_str("\\t"),
                '\r' => out.push_str("\\r"),
                '$' => out.push_str("\\$"),
                c => out.push(c),
            }
        }
        out.push('"');
        out
    }

    fn key() -> impl Strategy<Value = String> {
        "[A-Za-z_][A-Za-z0-9_.-]{0,12}"
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn any_text_parses_or_fails_without_panicking(text in any::<String>()) {
            let _ = parse(&text);
        }

        #[test]
        fn quoted_values_come_back_as_written(
            entries in prop::collection::btree_map(key(), any::<String>(), 0..12)
        ) {
            let text: String = entries
                .iter()
                .map(|(k, v)| format!("{k}={}\n", quoted(v)))
                .collect();
            let parsed = parse(&text).map_err(|p| TestCaseError::fail(p.message))?;
            prop_assert_eq!(parsed.values.0, entries);
        }

        /// No byte of a value is in an error, whatever line breaks the file.
        #[test]
        fn errors_never_carry_a_value(
            entries in prop::collection::btree_map(key(), "[A-Za-z0-9+/]{12,40}", 1..6),
            bad in prop_oneof![
                "MIIEvQ[A-Za-z0-9+/]{20,40}",
                "my db password zq[a-z]{4}[0-9]{2}=x",
                "zq[a-z]{6}".prop_map(|s| format!("K=\"{s} never closed")),
                "zq[a-z]{6}".prop_map(|s| format!("K='{s}")),
                "zq[a-z]{6}".prop_map(|s| format!("K=\"{s}\" trailing zqtail")),
            ],
            at in 0usize..6,
        ) {
            let mut lines: Vec<String> = entries.iter().map(|(k, v)| format!("{k}={v}")).collect();
            lines.insert(at.min(lines.len()), bad.clone());
            let text = lines.join("\n");
            if let Err(p) = parse(&text) {
                for v in entries.values() {
                    prop_assert!(!p.message.contains(v.as_str()), "{}", p.message);
                }
                // The bad line's secret-looking parts (generated as `zq…` and base64).
                for word in bad
                    .split(|c: char| !c.is_alphanumeric())
                    .filter(|w| w.starts_with("zq") || w.starts_with("MIIEvQ"))
                {
                    prop_assert!(!p.message.contains(word), "{}", p.message);
                }
            }
        }
    }
}
