//! Dockerfiles, read as BuildKit reads them: logical lines (backslash continuations,
//! comments and parser directives left out), instructions with their flags, and the build
//! stages (`FROM image [AS name]`). Pure; `config` checks a `target` against the stages.

/// One instruction: its keyword (upper case), flags (`--from=x`) and the rest of the line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instruction {
    pub keyword: String,
    pub flags: Vec<String>,
    pub args: String,
    /// The line (1-based) the instruction starts on.
    pub line: usize,
}

/// One build stage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stage {
    /// `AS name`, in lower case (stage names are case-insensitive).
    pub name: Option<String>,
    /// The image or stage it starts from.
    pub from: String,
    pub line: usize,
    pub instructions: Vec<Instruction>,
}

/// The escape character a `# escape=` directive chooses (default `\`).
fn escape_char(text: &str) -> char {
    for line in text.lines() {
        let t = line.trim();
        let Some(d) = t.strip_prefix('#') else {
            break;
        };
        let d = d.trim();
        if let Some(v) = d.strip_prefix("escape") {
            let v = v.trim_start();
            if let Some(v) = v.strip_prefix('=') {
                return v.trim().chars().next().unwrap_or('\\');
            }
        }
        if !d.contains('=') {
            // A plain comment ends the directives.
            break;
        }
    }
    '\\'
}

/// The logical lines: `(first line number, text)`, continuations joined, comments dropped.
pub fn logical_lines(text: &str) -> Vec<(usize, String)> {
    let escape = escape_char(text);
    let mut out = Vec::new();
    let mut current: Option<(usize, String)> = None;
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim_end_matches('\r');
        let trimmed = line.trim_start();
        if trimmed.starts_with('#') {
            // Comments end nothing: a continued instruction goes on after them.
            continue;
        }
        if current.is_none() && trimmed.is_empty() {
            continue;
        }
        let (body, continued) = match line.trim_end().strip_suffix(escape) {
            Some(b) => (b, true),
            None => (line, false),
        };
        match &mut current {
            Some((_, text)) => {
                text.push(' ');
                text.push_str(body.trim());
            }
            None => current = Some((i + 1, body.trim().to_owned())),
        }
        if !continued && let Some(done) = current.take() {
            out.push(done);
        }
    }
    out.extend(current);
    out
}

/// Splits an instruction line into keyword, leading `--flags` and the rest.
fn instruction(line: usize, text: &str) -> Instruction {
    let mut rest = text.trim();
    let keyword = rest
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_ascii_uppercase();
    rest = rest[rest.find(char::is_whitespace).unwrap_or(rest.len())..].trim_start();
    let mut flags = Vec::new();
    while rest.starts_with("--") {
        let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
        flags.push(rest[..end].to_owned());
        rest = rest[end..].trim_start();
    }
    Instruction {
        keyword,
        flags,
        args: rest.to_owned(),
        line,
    }
}

/// The build stages of a Dockerfile, in order, with their instructions.
pub fn stages(text: &str) -> Vec<Stage> {
    let mut out: Vec<Stage> = Vec::new();
    for (line, l) in logical_lines(text) {
        let ins = instruction(line, &l);
        if ins.keyword == "FROM" {
            let words: Vec<&str> = ins.args.split_whitespace().collect();
            let name = match words.as_slice() {
                [_, as_, name, ..] if as_.eq_ignore_ascii_case("as") => {
                    Some(name.to_ascii_lowercase())
                }
                _ => None,
            };
            out.push(Stage {
                name,
                from: words.first().copied().unwrap_or_default().to_owned(),
                line,
                instructions: Vec::new(),
            });
        } else if let Some(s) = out.last_mut() {
            s.instructions.push(ins);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stages_with_names_flags_continuations_and_comments() {
        let text = "# syntax=docker/dockerfile:1\nARG BASE=python:3.12\nFROM --platform=$BUILDPLATFORM node:20 AS Deps\nWORKDIR /app\nCOPY package.json \\\n  # a comment inside\n  package-lock.json ./\nRUN npm ci\n\nfrom deps as build\nCOPY . .\nFROM scratch\nCOPY --from=build /app/out /\n";
        let s = stages(text);
        let names: Vec<Option<&str>> = s.iter().map(|s| s.name.as_deref()).collect();
        assert_eq!(names, [Some("deps"), Some("build"), None]);
        assert_eq!(s[0].from, "node:20");
        assert_eq!(s[0].line, 3);
        assert_eq!(s[1].from, "deps");
        let copy = &s[0].instructions[1];
        assert_eq!(copy.keyword, "COPY");
        assert_eq!(copy.args, "package.json package-lock.json ./");
        assert_eq!(copy.line, 5);
        assert_eq!(s[2].instructions[0].flags, ["--from=build"]);
    }

    #[test]
    fn an_escape_directive_changes_the_continuation() {
        let text = "# escape=`\nFROM mcr.microsoft.com/windows AS w\nRUN dir `\n  c:\\\n";
        let s = stages(text);
        assert_eq!(s[0].instructions[0].args, "dir c:\\");
    }
}
