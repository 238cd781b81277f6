//! The terminal view of `up`: one line per event (`verb  text`, the verb coloured on a TTY),
//! output lines of builds, commands and pods with the resource's name in front, and on a TTY
//! a live progress line for long steps. `--quiet` keeps problems and the summary only;
//! `--json-logs` prints every line as one JSON object.

use std::io::Write;
use std::sync::{Mutex, OnceLock};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Plain { color: bool, progress: bool },
    Quiet,
    Json,
}

fn mode_cell() -> &'static OnceLock<Mode> {
    static MODE: OnceLock<Mode> = OnceLock::new();
    &MODE
}

/// The live progress line now shown (TTY only), and a lock that keeps lines whole.
fn progress() -> &'static Mutex<String> {
    static LINE: OnceLock<Mutex<String>> = OnceLock::new();
    LINE.get_or_init(|| Mutex::new(String::new()))
}

/// Chooses the view once, at start; the default is plain without colour.
pub fn set_mode(mode: Mode) {
    let _ = mode_cell().set(mode);
}

pub fn mode() -> Mode {
    *mode_cell().get().unwrap_or(&Mode::Plain {
        color: false,
        progress: false,
    })
}

/// Verbs that `--quiet` still shows: what needs a person's attention.
const LOUD: [&str; 5] = ["failed", "problem", "error", "skipped", "stopping"];

fn color_of(verb: &str) -> &'static str {
    match verb {
        "ready" | "built" | "deployed" | "present" => "32",
        "failed" | "problem" | "error" => "31",
        "waiting" | "building" | "deploying" | "running" | "changed" | "skipped" => "33",
        _ => "36",
    }
}

fn json_line(fields: &[(&str, &str)]) -> String {
    let mut m = serde_json::Map::new();
    m.insert(
        "ts_ms".into(),
        serde_json::Value::from(crate::host::now_ms()),
    );
    for (k, v) in fields {
        m.insert((*k).into(), serde_json::Value::from(*v));
    }
    serde_json::Value::Object(m).to_string()
}

/// Writes a whole line to stdout, taking the progress line away first and drawing it again
/// after.
fn emit(text: &str) {
    emit_to(text, false);
}

fn emit_to(text: &str, stderr: bool) {
    let line = crate::host::lock(progress());
    let mut out = std::io::stdout().lock();
    if !line.is_empty() {
        let _ = write!(out, "\r\x1b[2K");
        let _ = out.flush();
    }
    if stderr {
        let _ = writeln!(std::io::stderr().lock(), "{text}");
    } else {
        let _ = writeln!(out, "{text}");
    }
    if !line.is_empty() {
        let _ = write!(out, "{}", *line);
    }
    let _ = out.flush();
}

/// `text` with the control characters in it made visible (`\u{1b}`) instead of acting on the
/// terminal: what devenv prints comes partly from outside (a tool's output, a repository's
/// names, a pod's or a command's lines), and an escape sequence there could retitle the
/// window, hide lines or rewrite the screen. Newlines and tabs stay.
pub fn printable(text: &str) -> std::borrow::Cow<'_, str> {
    let unsafe_char = |c: char| c.is_control() && c != '\n' && c != '\t';
    if !text.chars().any(unsafe_char) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        if unsafe_char(c) {
            out.extend(c.escape_unicode());
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

/// A line of a tool devenv runs for itself (a builder, helm, minikube), on stderr:
/// `  name | text`.
pub fn tool(name: &str, text: &str) {
    log_line(name, "tool", "", text, true);
}

/// An event line: `verb       text`.
pub fn say(verb: &str, text: impl std::fmt::Display) {
    let raw = text.to_string();
    // JSON escapes control characters itself.
    let text = printable(&raw);
    match mode() {
        Mode::Json => emit(&json_line(&[("event", verb), ("message", &raw)])),
        Mode::Quiet if !LOUD.contains(&verb) => {}
        Mode::Quiet | Mode::Plain { color: false, .. } => emit(&format!("{verb:10} {text}")),
        Mode::Plain { color: true, .. } => {
            emit(&format!("\x1b[{}m{verb:10}\x1b[0m {text}", color_of(verb)))
        }
    }
}

/// An event line about one resource: `verb       resource: text` (`resource` alone when the
/// text is empty).
pub fn say_for(verb: &str, resource: &str, text: &str) {
    if mode() == Mode::Json {
        emit(&json_line(&[
            ("event", verb),
            ("resource", resource),
            ("message", text),
        ]));
    } else if text.is_empty() {
        say(verb, resource);
    } else {
        say(verb, format!("{resource}: {text}"));
    }
}

/// One line of output of a build, a command or a pod: `  resource | source text`.
pub fn output(resource: &str, source: &str, text: &str) {
    log_line(resource, source, source, text, false);
}

/// An output line: `source` goes into JSON, `shown` (if any) before the text otherwise.
fn log_line(resource: &str, source: &str, shown: &str, text: &str, stderr: bool) {
    let raw = text;
    let text = &*printable(text);
    match mode() {
        Mode::Json => emit(&json_line(&[
            ("event", "log"),
            ("resource", resource),
            ("source", source),
            ("message", raw),
        ])),
        Mode::Quiet => {}
        Mode::Plain { color, .. } => {
            let src = if shown.is_empty() {
                String::new()
            } else {
                format!("{shown} ")
            };
            let line = if color {
                format!("\x1b[2m  {resource} |\x1b[0m {src}{text}")
            } else {
                format!("  {resource} | {src}{text}")
            };
            emit_to(&line, stderr);
        }
    }
}

/// A record for scripts (`--json-logs` only): one JSON object of `fields`. Nothing in the
/// other modes, which print their own text for it.
pub fn record(fields: &[(&str, &str)]) {
    if mode() == Mode::Json {
        emit(&json_line(fields));
    }
}

/// Text that is neither an event nor output (the summary table); `--quiet` keeps it, JSON
/// mode leaves it to the caller.
pub fn plain(text: &str) {
    if mode() != Mode::Json {
        emit(&printable(text));
    }
}

/// Shows (or, with an empty text, removes) the live progress line; a no-op off a TTY.
pub fn set_progress(text: &str) {
    if !matches!(mode(), Mode::Plain { progress: true, .. }) {
        return;
    }
    let mut line = crate::host::lock(progress());
    let mut out = std::io::stdout().lock();
    let _ = write!(out, "\r\x1b[2K\x1b[2m{text}\x1b[0m");
    let _ = out.flush();
    *line = if text.is_empty() {
        String::new()
    } else {
        format!("\x1b[2m{text}\x1b[0m")
    };
}

#[cfg(test)]
mod tests {
    #[test]
    fn control_characters_from_outside_are_made_visible() {
        assert_eq!(super::printable("plain\ttext\n"), "plain\ttext\n");
        assert_eq!(
            super::printable("a\u{1b}]0;pwned\u{7}b\u{9b}c\r"),
            "a\\u{1b}]0;pwned\\u{7}b\\u{9b}c\\u{d}"
        );
    }
}
