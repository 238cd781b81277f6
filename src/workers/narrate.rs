//! devenv's account of what it does for the resources: a build started or ended, a deploy, a
//! live update, a failure. Each account is one [`Told`] record, written once: the terminal
//! (or `--json-logs`) says it, and the logs of the resources it concerns keep it with its
//! verb, so the page, the API and `devenv logs` show the same words as the terminal.

use crate::engine::driver::Logs;
use crate::engine::log::Verb;
use crate::out;

/// One account: `verb  subject: text` (the subject alone when there is no text, the text
/// alone when there is no subject).
#[derive(Debug, Clone, Copy)]
pub struct Told<'a> {
    pub verb: Verb,
    /// What it is about: an image, a resource, or several resources.
    pub subject: &'a str,
    pub text: &'a str,
    /// The log source of its lines (`build`, `deploy`, `sync`, …).
    pub source: &'a str,
}

impl Told<'_> {
    /// The account without its verb, as every view shows it after the verb.
    fn line(&self) -> String {
        match (self.subject.is_empty(), self.text.is_empty()) {
            (true, _) => self.text.to_owned(),
            (false, true) => self.subject.to_owned(),
            (false, false) => format!("{}: {}", self.subject, self.text),
        }
    }
}

/// Says `told` on the terminal and puts it in the logs of each of `resources`: its first line
/// carries the verb, the lines after it (an error's hint) follow it in the same log.
pub fn tell<S: AsRef<str>>(logs: &Logs, resources: &[S], told: Told<'_>) {
    let word = told.verb.word();
    if told.subject.is_empty() {
        out::say(word, told.text);
    } else {
        out::say_for(word, told.subject, told.text);
    }
    let line = told.line();
    for r in resources {
        for (i, l) in line.lines().enumerate() {
            let verb = (i == 0).then_some(told.verb);
            logs.tell(r.as_ref(), told.source, verb, l);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(logs: &Logs, r: &str) -> Vec<(Option<Verb>, String, String)> {
        logs.with(r, |b| {
            b.tail(100)
                .map(|l| (l.verb, l.source.clone(), l.text.clone()))
                .collect()
        })
    }

    #[test]
    fn an_account_reaches_every_resource_it_concerns_once_with_its_verb_on_its_first_line() {
        let logs = Logs::new(1 << 20);
        tell(
            &logs,
            &["backend", "worker"],
            Told {
                verb: Verb::Failed,
                subject: "todo-backend",
                text: "the build failed\n  hint: read the output above",
                source: "build",
            },
        );
        let want = vec![
            (
                Some(Verb::Failed),
                "build".to_owned(),
                "todo-backend: the build failed".to_owned(),
            ),
            (
                None,
                "build".to_owned(),
                "  hint: read the output above".to_owned(),
            ),
        ];
        assert_eq!(lines(&logs, "backend"), want);
        assert_eq!(lines(&logs, "worker"), want);
        assert!(lines(&logs, "frontend").is_empty());
        // In the order they came across resources: one account, then the other's copy.
        let all: Vec<String> = logs
            .all(crate::engine::log::ReadFrom::Start, 10)
            .0
            .into_iter()
            .map(|(r, l)| format!("{r} {}", l.text))
            .collect();
        assert_eq!(all.len(), 4, "{all:?}");
    }

    #[test]
    fn an_account_reads_as_the_terminal_says_it() {
        let t = |subject, text| {
            Told {
                verb: Verb::Built,
                subject,
                text,
                source: "build",
            }
            .line()
        };
        assert_eq!(t("", "hello:devenv-1 (1.0s)"), "hello:devenv-1 (1.0s)");
        assert_eq!(t("hello", ""), "hello");
        assert_eq!(t("hello", "gone"), "hello: gone");
    }
}
