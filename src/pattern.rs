//! Docker's path-pattern language, as used in `.dockerignore`: patterns relative to the
//! context root, `*` and `?` within one path element, `**` across elements, `[...]` classes,
//! `\` escapes, `!` re-includes, `#` comments. The last pattern that matches a path decides,
//! and a pattern also matches everything under a directory it matches.
//!
//! Shared by the build-context hasher, the watcher's ignore rules and config globs, so a file
//! the build never sees can never trigger it. Pure: no I/O.

use regex::Regex;

#[derive(Debug, Clone)]
pub struct Pattern {
    /// The cleaned pattern text, without `!`.
    pub text: String,
    pub negated: bool,
    regex: Regex,
}

impl Pattern {
    /// Parses one pattern line; `Ok(None)` for blank lines and comments.
    pub fn parse(line: &str) -> Result<Option<Pattern>, String> {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            return Ok(None);
        }
        let (negated, body) = match line.strip_prefix('!') {
            Some(rest) => (true, rest.trim()),
            None => (false, line),
        };
        if body.is_empty() {
            return Err("\"!\" alone is not a pattern".to_owned());
        }
        let text = clean(body);
        let regex = Regex::new(&to_regex(&text))
            .map_err(|e| format!("invalid pattern \"{line}\": {}", first_line(&e.to_string())))?;
        Ok(Some(Pattern {
            text,
            negated,
            regex,
        }))
    }

    /// Whether the slash-separated relative `path` matches this pattern exactly (no parent rule).
    pub fn matches_exact(&self, path: &str) -> bool {
        self.regex.is_match(path)
    }

    /// Whether `path` or one of its parent directories matches.
    pub fn matches_path_or_parent(&self, path: &str) -> bool {
        if self.regex.is_match(path) {
            return true;
        }
        let mut end = 0;
        while let Some(i) = path[end..].find('/') {
            end += i;
            if self.regex.is_match(&path[..end]) {
                return true;
            }
            end += 1;
        }
        false
    }

    /// The leading part of the pattern without wildcards: a directory a walk can start from.
    pub fn literal_dir_prefix(&self) -> &str {
        let wild = self
            .text
            .find(['*', '?', '[', '\\'])
            .unwrap_or(self.text.len());
        match self.text[..wild].rfind('/') {
            Some(i) if wild < self.text.len() => &self.text[..i],
            None if wild < self.text.len() => "",
            _ => &self.text,
        }
    }
}

fn first_line(s: &str) -> &str {
    s.lines().last().unwrap_or(s).trim()
}

/// An ordered list of patterns: the `.dockerignore` of a context plus any extra ignores.
#[derive(Debug, Clone, Default)]
pub struct PatternSet {
    patterns: Vec<Pattern>,
}

impl PatternSet {
    /// Parses a `.dockerignore` text. Errors carry the 1-based line number.
    pub fn parse(text: &str) -> Result<PatternSet, (usize, String)> {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let mut set = PatternSet::default();
        for (i, line) in text.lines().enumerate() {
            if let Some(p) = Pattern::parse(line).map_err(|e| (i + 1, e))? {
                set.patterns.push(p);
            }
        }
        Ok(set)
    }

    pub fn push(&mut self, p: Pattern) {
        self.patterns.push(p);
    }

    /// Whether the relative, slash-separated `path` is excluded: the last pattern that matches
    /// it (or a parent directory of it) decides.
    pub fn is_excluded(&self, path: &str) -> bool {
        let mut excluded = false;
        for p in &self.patterns {
            // Only a pattern that could flip the current answer needs evaluating.
            if p.negated != excluded {
                continue;
            }
            if p.matches_path_or_parent(path) {
                excluded = !p.negated;
            }
        }
        excluded
    }

    /// Whether a walk may skip the whole directory `dir`: it is excluded and no `!` pattern
    /// could re-include something below it.
    pub fn excludes_whole_dir(&self, dir: &str) -> bool {
        if !self.is_excluded(dir) {
            return false;
        }
        let prefix = format!("{dir}/");
        !self.patterns.iter().any(|p| {
            p.negated && {
                let lit = p.literal_dir_prefix();
                // A re-include can reach into `dir` only if its literal part is compatible.
                lit.is_empty()
                    || lit == dir
                    || lit.starts_with(&prefix)
                    || prefix.starts_with(&format!("{lit}/"))
            }
        })
    }
}

/// Lexically cleans a pattern like Go's `filepath.Clean`, and drops a leading `/`: patterns
/// are always relative to the context root.
fn clean(p: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    for part in p.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if matches!(out.last(), Some(l) if *l != "..") {
                    out.pop();
                } else if !p.starts_with('/') {
                    out.push("..");
                }
            }
            other => out.push(other),
        }
    }
    if out.is_empty() {
        ".".to_owned()
    } else {
        out.join("/")
    }
}

/// Translates a cleaned pattern into an anchored regular expression.
fn to_regex(p: &str) -> String {
    let chars: Vec<char> = p.chars().collect();
    let mut re = String::from("^");
    let mut i = 0;
    let mut in_class = false;
    while i < chars.len() {
        let c = chars[i];
        if in_class {
            match c {
                ']' => {
                    in_class = false;
                    re.push(']');
                }
                '\\' if i + 1 < chars.len() => {
                    i += 1;
                    re.push_str(&regex::escape(&chars[i].to_string()));
                }
                '[' => re.push_str("\\["),
                _ => re.push(c),
            }
            i += 1;
            continue;
        }
        match c {
            '*' if chars.get(i + 1) == Some(&'*') => {
                i += 2;
                let slash = chars.get(i) == Some(&'/');
                if slash {
                    i += 1;
                }
                if i >= chars.len() {
                    re.push_str(".*");
                } else if i == 2 && !slash && !has_wildcard(&chars[i..]) {
                    // A leading "**" glued to a literal is a plain suffix match in Docker.
                    re.push_str(".*");
                } else {
                    re.push_str("(.*/)?");
                }
                continue;
            }
            '*' => re.push_str("[^/]*"),
            '?' => re.push_str("[^/]"),
            '[' => {
                in_class = true;
                re.push('[');
                if chars.get(i + 1) == Some(&'^') {
                    re.push('^');
                    i += 1;
                }
            }
            '\\' => match chars.get(i + 1) {
                Some(n) => {
                    re.push_str(&regex::escape(&n.to_string()));
                    i += 1;
                }
                None => re.push_str("\\\\"),
            },
            _ => re.push_str(&regex::escape(&c.to_string())),
        }
        i += 1;
    }
    re.push('$');
    re
}

fn has_wildcard(chars: &[char]) -> bool {
    chars.iter().any(|c| matches!(c, '*' | '?' | '[' | '\\'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(lines: &[&str]) -> PatternSet {
        match PatternSet::parse(&lines.join("\n")) {
            Ok(s) => s,
            Err(e) => panic!("bad patterns {lines:?}: {e:?}"),
        }
    }

    /// The examples from Docker's documentation of `.dockerignore`, case by case.
    #[test]
    fn docker_documented_examples() {
        let s = set(&["# comment", "*/temp*", "*/*/temp*", "temp?"]);
        assert!(s.is_excluded("somedir/temporary.txt"));
        assert!(s.is_excluded("somedir/temp"));
        assert!(s.is_excluded("somedir/subdir/temporary.txt"));
        assert!(s.is_excluded("tempa"));
        assert!(s.is_excluded("tempb"));
        assert!(!s.is_excluded("temp"));
        assert!(!s.is_excluded("temporary.txt"));
        assert!(!s.is_excluded("a/b/c/temp.txt"));
        assert!(!s.is_excluded("# comment"));

        // "**" matches any number of directories, including zero.
        let s = set(&["**/*.go"]);
        assert!(s.is_excluded("main.go"));
        assert!(s.is_excluded("a/b/c/main.go"));
        assert!(!s.is_excluded("main.goo"));

        // "!" re-includes; the last matching line wins.
        let s = set(&["*.md", "!README*.md", "README-secret.md"]);
        assert!(s.is_excluded("CHANGES.md"));
        assert!(!s.is_excluded("README.md"));
        assert!(!s.is_excluded("README-public.md"));
        assert!(s.is_excluded("README-secret.md"));

        let s = set(&["*.md", "README-secret.md", "!README*.md"]);
        assert!(!s.is_excluded("README-secret.md"));
        assert!(s.is_excluded("CHANGES.md"));
    }

    #[test]
    fn patterns_are_relative_to_the_root_and_cleaned() {
        let s = set(&["/node_modules", "./dist/", "build/../out"]);
        assert!(s.is_excluded("node_modules"));
        assert!(s.is_excluded("node_modules/react/index.js"));
        assert!(!s.is_excluded("web/node_modules/x.js"));
        assert!(s.is_excluded("dist/app.js"));
        assert!(s.is_excluded("out/x"));
        assert!(!s.is_excluded("build/x"));
    }

    #[test]
    fn a_directory_pattern_covers_its_contents() {
        let s = set(&["target", "**/__pycache__"]);
        assert!(s.is_excluded("target/debug/app"));
        assert!(s.is_excluded("app/__pycache__/main.cpython-311.pyc"));
        assert!(s.is_excluded("__pycache__/x.pyc"));
        assert!(!s.is_excluded("targets/x"));
    }

    #[test]
    fn single_star_does_not_cross_directories() {
        let s = set(&["*.pyc"]);
        assert!(s.is_excluded("a.pyc"));
        assert!(!s.is_excluded("pkg/a.pyc"));
        let s = set(&["?.txt", "[ab]*.log", "[^x]y.dat"]);
        assert!(s.is_excluded("a.txt"));
        assert!(!s.is_excluded("ab.txt"));
        assert!(s.is_excluded("b-1.log"));
        assert!(!s.is_excluded("c-1.log"));
        assert!(s.is_excluded("zy.dat"));
        assert!(!s.is_excluded("xy.dat"));
    }

    #[test]
    fn escapes_and_regex_metacharacters_are_literal() {
        let s = set(&["a+b(c).txt", "\\*star", "file.{js}"]);
        assert!(s.is_excluded("a+b(c).txt"));
        assert!(!s.is_excluded("aab(c).txt"));
        assert!(s.is_excluded("*star"));
        assert!(!s.is_excluded("xstar"));
        assert!(s.is_excluded("file.{js}"));
    }

    #[test]
    fn trailing_double_star_and_suffix_forms() {
        let s = set(&["logs/**"]);
        assert!(s.is_excluded("logs/a/b.txt"));
        assert!(!s.is_excluded("logs"));
        let s = set(&["**foo"]);
        assert!(s.is_excluded("barfoo"));
        assert!(s.is_excluded("a/barfoo"));
        let s = set(&["**"]);
        assert!(s.is_excluded("anything/at/all"));
    }

    #[test]
    fn whole_directories_are_skipped_only_when_nothing_is_re_included() {
        let s = set(&["node_modules", "docs", "!docs/keep.md"]);
        assert!(s.excludes_whole_dir("node_modules"));
        assert!(!s.excludes_whole_dir("docs"));
        assert!(!s.is_excluded("docs/keep.md"));
        assert!(s.is_excluded("docs/other.md"));
        assert!(!s.excludes_whole_dir("src"));
        let s = set(&["*", "!src"]);
        assert!(!s.excludes_whole_dir("src"));
        assert!(s.excludes_whole_dir("other"));
        let s = set(&["*", "!**/*.py"]);
        assert!(!s.excludes_whole_dir("deep"));
    }

    #[test]
    fn bad_patterns_are_reported_with_their_line() {
        assert!(matches!(PatternSet::parse("ok\n!\n"), Err((2, _))));
        assert!(matches!(PatternSet::parse("a\nb\n[z-a]"), Err((3, _))));
        assert!(Pattern::parse("   ").ok().flatten().is_none());
    }

    #[test]
    fn literal_prefix_for_walks() {
        let p = |s: &str| {
            Pattern::parse(s)
                .ok()
                .flatten()
                .map(|p| p.literal_dir_prefix().to_owned())
        };
        assert_eq!(p("k8s/*.yaml").as_deref(), Some("k8s"));
        assert_eq!(
            p("deploy/k8s/app.yaml").as_deref(),
            Some("deploy/k8s/app.yaml")
        );
        assert_eq!(p("*.yaml").as_deref(), Some(""));
        assert_eq!(p("a/b/**/c").as_deref(), Some("a/b"));
    }
}

/// Properties over generated patterns and paths (bounded: 256 cases each).
#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;

    fn segment() -> impl Strategy<Value = String> {
        "[a-z0-9_-]{1,8}"
    }

    fn path() -> impl Strategy<Value = Vec<String>> {
        prop::collection::vec(segment(), 1..5)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn any_line_parses_or_fails_without_panicking(line in any::<String>()) {
            let _ = Pattern::parse(&line);
            let _ = PatternSet::parse(&line);
        }

        /// A pattern with no wildcard excludes exactly that path and what is under it.
        #[test]
        fn a_literal_pattern_excludes_its_path_and_below(p in path(), child in segment(), other in segment()) {
            let text = p.join("/");
            let set = PatternSet::parse(&text).map_err(|(_, e)| TestCaseError::fail(e))?;
            prop_assert!(set.is_excluded(&text));
            let below = format!("{text}/{child}");
            prop_assert!(set.is_excluded(&below));
            let sibling = format!("{text}{other}");
            prop_assert!(!set.is_excluded(&sibling));
            prop_assert!(set.excludes_whole_dir(&text));
        }

        /// The last pattern that matches decides: `!` after a pattern re-includes.
        #[test]
        fn a_later_negation_re_includes(p in path()) {
            let text = p.join("/");
            let set = PatternSet::parse(&format!("{text}\n!{text}")).map_err(|(_, e)| TestCaseError::fail(e))?;
            prop_assert!(!set.is_excluded(&text));
            let set = PatternSet::parse(&format!("!{text}\n{text}")).map_err(|(_, e)| TestCaseError::fail(e))?;
            prop_assert!(set.is_excluded(&text));
        }

        /// `*` stays within one path element; `**` crosses them.
        #[test]
        fn stars_match_within_and_across_elements(dir in segment(), a in segment(), b in segment()) {
            let one = PatternSet::parse(&format!("{dir}/*")).map_err(|(_, e)| TestCaseError::fail(e))?;
            let file = format!("{dir}/{a}");
            let other = format!("{a}x/{b}");
            prop_assert!(one.is_excluded(&file));
            prop_assert!(!one.is_excluded(&dir));
            prop_assert!(!one.is_excluded(&other));
            let any = PatternSet::parse(&format!("**/{b}")).map_err(|(_, e)| TestCaseError::fail(e))?;
            let deep = format!("{dir}/{a}/{b}");
            prop_assert!(any.is_excluded(&deep));
            prop_assert!(any.is_excluded(&b));
        }
    }
}
