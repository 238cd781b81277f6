//! A resource's log: time-stamped lines from its builds, deploys, pods and commands, kept in
//! a ring buffer bounded in bytes, so memory stays flat however much a pod writes.

use std::collections::VecDeque;

use serde::Serialize;

/// One line of a resource's log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Line {
    /// Position in the resource's log since devenv started; survives trimming, so a reader
    /// can resume after the last line it saw.
    pub seq: u64,
    /// Position among the lines of every resource (see `Logs`): the all-resources view
    /// orders and resumes by it.
    pub global: u64,
    /// Milliseconds since the Unix epoch, when devenv received the line (or the time
    /// Kubernetes stamped it, for pod logs).
    pub time_ms: u64,
    /// Where it came from: `build`, `deploy`, or `pod/container` for pod logs.
    pub source: String,
    /// On devenv's own account of what it did for the resource (see [`Verb`]); absent on the
    /// output of builds, commands and pods, and on the later lines of a long account.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verb: Option<Verb>,
    pub text: String,
}

/// What devenv's account of one thing it did says happened. Each account is one record: the
/// terminal says it once (`verb  text`), and the logs of the resources it concerns keep it
/// with its verb, which the page, the API and `devenv logs` show the same way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verb {
    Building,
    Built,
    Present,
    Deployed,
    Failed,
    Synced,
    /// A live update could not be made: the image is built instead.
    Rebuild,
    Serving,
    /// Following the resource's pod logs failed.
    Logs,
    /// Following the resource (its pods, its forwards' targets) failed.
    Follow,
    /// A port-forward failed.
    Forward,
}

impl Verb {
    /// The word the terminal and the page show.
    pub fn word(self) -> &'static str {
        match self {
            Verb::Building => "building",
            Verb::Built => "built",
            Verb::Present => "present",
            Verb::Deployed => "deployed",
            Verb::Failed => "failed",
            Verb::Synced => "synced",
            Verb::Rebuild => "rebuild",
            Verb::Serving => "serving",
            Verb::Logs => "logs",
            Verb::Follow => "follow",
            Verb::Forward => "forward",
        }
    }
}

/// Where a read of a log starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadFrom {
    /// The oldest line kept.
    Start,
    /// After the line at this position (exclusive).
    After(u64),
    /// The first of the newest this many lines.
    Tail(usize),
}

/// Overhead counted per line besides its text, so a flood of empty lines is bounded too.
const LINE_OVERHEAD: usize = 64;
/// Longer lines are cut (a minified bundle printed on one line must not evict everything).
pub const MAX_LINE: usize = 16 * 1024;

#[derive(Debug)]
pub struct LogBuffer {
    max_bytes: usize,
    bytes: usize,
    next_seq: u64,
    lines: VecDeque<Line>,
}

pub use crate::host::now_ms;

/// Cuts `text` to at most `max` bytes (on a character boundary), with `…` where it was cut.
pub fn cut(text: &mut String, max: usize) {
    if text.len() > max {
        let mut at = max;
        while !text.is_char_boundary(at) {
            at -= 1;
        }
        text.truncate(at);
        text.push('…');
    }
}

fn cost(l: &Line) -> usize {
    l.text.len() + l.source.len() + LINE_OVERHEAD
}

#[allow(dead_code, reason = "the readers serve the status page's API")]
impl LogBuffer {
    pub fn new(max_bytes: usize) -> LogBuffer {
        LogBuffer {
            max_bytes: max_bytes.max(MAX_LINE + LINE_OVERHEAD),
            bytes: 0,
            next_seq: 0,
            lines: VecDeque::new(),
        }
    }

    /// Appends a line (cut at [`MAX_LINE`] bytes), dropping the oldest ones to stay within
    /// the bound. Returns the stored line.
    pub fn push(&mut self, time_ms: u64, source: &str, text: &str) -> &Line {
        self.push_numbered(self.next_seq, time_ms, source, None, text)
    }

    /// [`LogBuffer::push`], with the line's position among every resource's lines and, on
    /// devenv's own account, its verb.
    pub fn push_numbered(
        &mut self,
        global: u64,
        time_ms: u64,
        source: &str,
        verb: Option<Verb>,
        text: &str,
    ) -> &Line {
        let mut text = text.trim_end_matches(['\r', '\n']).to_owned();
        cut(&mut text, MAX_LINE);
        let line = Line {
            seq: self.next_seq,
            global,
            time_ms,
            source: source.to_owned(),
            verb,
            text,
        };
        self.next_seq += 1;
        self.bytes += cost(&line);
        self.lines.push_back(line);
        // The newest line always stays, even alone over the bound.
        while self.bytes > self.max_bytes && self.lines.len() > 1 {
            match self.lines.pop_front() {
                Some(old) => self.bytes -= cost(&old),
                None => break,
            }
        }
        &self.lines[self.lines.len() - 1]
    }

    /// The last `n` lines, oldest first.
    pub fn tail(&self, n: usize) -> impl Iterator<Item = &Line> {
        self.lines.iter().skip(self.lines.len().saturating_sub(n))
    }

    /// Lines after `seq` (exclusive), oldest first.
    pub fn since(&self, seq: u64) -> impl Iterator<Item = &Line> {
        let from = self.lines.partition_point(|l| l.seq <= seq);
        self.lines.range(from..)
    }

    /// At most `limit` lines from `from`, oldest first; where the next read goes on from;
    /// and the position of the newest line kept.
    pub fn page(&self, from: ReadFrom, limit: usize) -> (Vec<&Line>, ReadFrom, Option<u64>) {
        let lines: Vec<&Line> = match from {
            ReadFrom::Start => self.lines.iter().take(limit).collect(),
            ReadFrom::After(seq) => self.since(seq).take(limit).collect(),
            ReadFrom::Tail(n) => self.tail(n).take(limit).collect(),
        };
        let newest = self.lines.back().map(|l| l.seq);
        let next = match (lines.last(), from) {
            (Some(l), _) => ReadFrom::After(l.seq),
            (None, ReadFrom::Tail(_)) => newest.map_or(ReadFrom::Start, ReadFrom::After),
            (None, other) => other,
        };
        (lines, next, newest)
    }

    /// Lines after the global position `global` (exclusive), oldest first.
    pub fn since_global(&self, global: u64) -> impl Iterator<Item = &Line> {
        let from = self.lines.partition_point(|l| l.global <= global);
        self.lines.range(from..)
    }

    pub fn len(&self) -> usize {
        self.lines.len()
    }

    pub fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }

    /// Bytes accounted for (text plus a fixed overhead per line); never above the bound.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Lines dropped to stay within the bound.
    pub fn dropped(&self) -> u64 {
        self.next_seq - self.lines.len() as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_buffer_keeps_the_newest_lines_within_its_bound() {
        let mut b = LogBuffer::new(20_000);
        for i in 0..10_000 {
            b.push(i, "pod/app", &format!("line {i}"));
            assert!(b.bytes() <= 20_000);
        }
        let last: Vec<&str> = b.tail(2).map(|l| l.text.as_str()).collect();
        assert_eq!(last, ["line 9998", "line 9999"]);
        assert_eq!(b.dropped() + b.len() as u64, 10_000);
        assert!(b.len() < 300, "{}", b.len());
        assert_eq!(b.since(9997).count(), 2);
    }

    #[test]
    fn long_lines_are_cut_and_empty_lines_still_cost() {
        let mut b = LogBuffer::new(0);
        let l = b.push(1, "build", &"x".repeat(100_000));
        assert_eq!(l.text.chars().count(), MAX_LINE + 1);
        for _ in 0..100_000 {
            b.push(1, "build", "");
        }
        assert!(b.bytes() <= MAX_LINE + LINE_OVERHEAD);
        let l = b.push(2, "build", "with newline\r\n");
        assert_eq!(l.text, "with newline");
    }
}
