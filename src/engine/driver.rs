//! The engine's loop: events in from the watcher, the workers and the user; the reducer
//! decides; commands go out to the workers; every change of state is published as a
//! snapshot. No process runs here: the workers (given as a trait) do that.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use serde::Serialize;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use super::log::{Line, LogBuffer, ReadFrom};
use super::state::{Command, Event, State};

/// What the engine publishes after each event: the whole state and a sequence number.
#[derive(Debug, Clone, Serialize)]
pub struct Snapshot {
    pub seq: u64,
    /// Milliseconds since the engine started.
    pub at_ms: u64,
    pub state: State,
}

/// Every resource's log, shared by the workers that write and the views that read. Lines
/// are numbered across resources too, so the all-resources view reads them in the order
/// they came; readers that follow wait on [`Logs::subscribe`] rather than poll.
#[derive(Debug, Clone)]
pub struct Logs {
    inner: Arc<Mutex<AllLogs>>,
    max_bytes: usize,
    /// The number of lines pushed so far, for followers to wait on.
    pushed: Arc<watch::Sender<u64>>,
}

#[derive(Debug, Default)]
struct AllLogs {
    buffers: BTreeMap<String, LogBuffer>,
    next: u64,
}

/// A line of the all-resources view: the resource's name and the line.
pub type Tagged = (String, super::log::Line);

impl Logs {
    pub fn new(max_bytes: usize) -> Logs {
        Logs {
            inner: Arc::new(Mutex::new(AllLogs::default())),
            max_bytes,
            pushed: Arc::new(watch::channel(0).0),
        }
    }

    /// Runs `f` on a resource's buffer (made on first use), to read it.
    pub fn with<R>(&self, resource: &str, f: impl FnOnce(&LogBuffer) -> R) -> R {
        let mut all = crate::host::lock(&self.inner);
        let b = all
            .buffers
            .entry(resource.to_owned())
            .or_insert_with(|| LogBuffer::new(self.max_bytes));
        f(b)
    }

    /// Appends a line to a resource's log, stamped now.
    pub fn push(&self, resource: &str, source: &str, text: &str) {
        self.push_at(resource, super::log::now_ms(), source, text);
    }

    /// Appends a line to a resource's log with its own time stamp.
    pub fn push_at(&self, resource: &str, time_ms: u64, source: &str, text: &str) {
        self.push_line(resource, time_ms, source, None, text);
    }

    /// Appends a line of devenv's own account (see [`super::log::Verb`]) to a resource's log.
    pub fn tell(&self, resource: &str, source: &str, verb: Option<super::log::Verb>, text: &str) {
        self.push_line(resource, super::log::now_ms(), source, verb, text);
    }

    fn push_line(
        &self,
        resource: &str,
        time_ms: u64,
        source: &str,
        verb: Option<super::log::Verb>,
        text: &str,
    ) {
        let pushed = {
            let mut all = crate::host::lock(&self.inner);
            let global = all.next;
            all.next += 1;
            all.buffers
                .entry(resource.to_owned())
                .or_insert_with(|| LogBuffer::new(self.max_bytes))
                .push_numbered(global, time_ms, source, verb, text);
            all.next
        };
        self.pushed.send_replace(pushed);
    }

    /// Changes whenever a line is pushed.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.pushed.subscribe()
    }

    /// Lines of every resource in the order they came, at most `limit` of them, oldest
    /// first, from `from` (positions among all lines); where the next read goes on from; and
    /// the position of the newest line. Only the lines returned are copied (the buffers are
    /// merged by position), so a reader of a long history is served a page at a time.
    pub fn all(&self, from: ReadFrom, limit: usize) -> (Vec<Tagged>, ReadFrom, Option<u64>) {
        let all = crate::host::lock(&self.inner);
        let newest = all.next.checked_sub(1);
        let after = match from {
            ReadFrom::Start => None,
            ReadFrom::After(g) => Some(g),
            ReadFrom::Tail(n) => Self::tail_start(&all, n),
        };
        type Head<'a> = (
            &'a String,
            std::iter::Peekable<Box<dyn Iterator<Item = &'a Line> + 'a>>,
        );
        let mut heads: Vec<Head<'_>> = all
            .buffers
            .iter()
            .map(|(name, b)| {
                let it: Box<dyn Iterator<Item = &Line>> = match after {
                    Some(g) => Box::new(b.since_global(g)),
                    None => Box::new(b.tail(usize::MAX)),
                };
                (name, it.peekable())
            })
            .collect();
        let mut out: Vec<Tagged> = Vec::new();
        while out.len() < limit {
            let next = heads
                .iter_mut()
                .enumerate()
                .filter_map(|(i, (_, it))| it.peek().map(|l| (l.global, i)))
                .min();
            let Some((_, i)) = next else { break };
            let (name, it) = &mut heads[i];
            if let Some(l) = it.next() {
                out.push(((*name).clone(), l.clone()));
            }
        }
        let next = match (out.last(), from) {
            (Some((_, l)), _) => ReadFrom::After(l.global),
            (None, ReadFrom::Tail(_)) => newest.map_or(ReadFrom::Start, ReadFrom::After),
            (None, other) => other,
        };
        (out, next, newest)
    }

    /// The global position after which the newest `tail` lines of all resources lie; `None`
    /// when there are no more than that (from the start). Reads positions, copies no line.
    fn tail_start(all: &AllLogs, tail: usize) -> Option<u64> {
        if tail == 0 {
            return all.next.checked_sub(1);
        }
        let mut globals: Vec<u64> = all
            .buffers
            .values()
            .flat_map(|b| b.tail(tail).map(|l| l.global))
            .collect();
        if globals.len() <= tail {
            return None;
        }
        globals.sort_unstable_by(|a, b| b.cmp(a));
        Some(globals[tail])
    }
}

/// Carries out the engine's commands. Each command's outcome comes back as an event on the
/// sender given with it; a worker must not block the engine (long work goes to a task).
pub trait Workers: Send {
    fn dispatch(&mut self, cmd: Command, events: &mpsc::UnboundedSender<Event>);
}

/// Runs the engine until a `Stop` command has been dispatched (after `Event::Shutdown`) or
/// every sender of `events` is gone. Returns the final state.
pub async fn run(
    mut state: State,
    mut events: mpsc::UnboundedReceiver<Event>,
    sender: mpsc::UnboundedSender<Event>,
    workers: &mut dyn Workers,
    snapshots: &watch::Sender<Snapshot>,
) -> State {
    let started = Instant::now();
    let mut seq = 0;
    while let Some(ev) = events.recv().await {
        let now = started.elapsed();
        tracing::debug!(event = %ev.summary(), "engine event");
        let commands = state.reduce(now, ev);
        seq += 1;
        snapshots.send_replace(Snapshot {
            seq,
            at_ms: u64::try_from(now.as_millis()).unwrap_or(u64::MAX),
            state: state.clone(),
        });
        let mut stop = false;
        for cmd in commands {
            tracing::debug!(command = %cmd.summary(), "engine command");
            stop |= cmd == Command::Stop;
            workers.dispatch(cmd, &sender);
        }
        if stop {
            break;
        }
    }
    state
}

/// A snapshot before the first event.
pub fn initial(state: &State) -> Snapshot {
    Snapshot {
        seq: 0,
        at_ms: 0,
        state: state.clone(),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::time::Duration;

    use super::*;
    use crate::engine::state::{Graph, Node, Status};

    /// Every resource's lines read a page at a time, merged in the order they came: the
    /// newest `tail` from their first, then on from each page's last, to the end.
    #[test]
    fn all_logs_are_read_in_pages_in_the_order_the_lines_came() {
        let logs = Logs::new(1 << 20);
        for i in 0..9 {
            logs.push(["a", "b", "c"][i % 3], "x", &format!("line {i}"));
        }
        let texts =
            |v: &[Tagged]| -> Vec<String> { v.iter().map(|(_, l)| l.text.clone()).collect() };
        let (page, next, newest) = logs.all(ReadFrom::Tail(4), 2);
        assert_eq!(texts(&page), ["line 5", "line 6"]);
        assert_eq!((next, newest), (ReadFrom::After(6), Some(8)));
        let (page, next, _) = logs.all(next, 2);
        assert_eq!(texts(&page), ["line 7", "line 8"]);
        let (page, next, _) = logs.all(next, 2);
        assert!(page.is_empty());
        assert_eq!(next, ReadFrom::After(8));
        let (page, _, _) = logs.all(ReadFrom::Start, 100);
        assert_eq!(page.len(), 9);
        let (page, next, _) = logs.all(ReadFrom::Tail(0), 100);
        assert!(page.is_empty());
        assert_eq!(
            next,
            ReadFrom::After(8),
            "a tail of none goes on after the newest"
        );
        let (page, _, _) = logs.all(ReadFrom::Tail(100), 100);
        assert_eq!(page.len(), 9);
    }

    /// Workers that build in 100 ms (of paused time), deploy in 50 ms and report ready at
    /// once, recording every command.
    struct Fake {
        log: Arc<Mutex<Vec<Command>>>,
    }

    impl Workers for Fake {
        fn dispatch(&mut self, cmd: Command, events: &mpsc::UnboundedSender<Event>) {
            if let Ok(mut l) = self.log.lock() {
                l.push(cmd.clone());
            }
            let tx = events.clone();
            match cmd {
                Command::Build { image, generation } => {
                    tokio::spawn(async move {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        let _ = tx.send(Event::BuildDone {
                            result: Ok(format!("{image}:g{generation}")),
                            image,
                            generation,
                        });
                    });
                }
                Command::Deploy { generation, .. } => {
                    tokio::spawn(async move {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        let _ = tx.send(Event::DeployDone {
                            generation,
                            result: Ok(()),
                        });
                    });
                }
                Command::Wait { resources } => {
                    for resource in resources {
                        let _ = tx.send(Event::Ready { resource });
                    }
                }
                _ => {}
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn events_flow_through_workers_and_snapshots_follow() {
        let state = State::new(Graph {
            cluster: false,
            images: vec!["api".into()],
            resources: vec![Node {
                name: "backend".into(),
                images: vec!["api".into()],
                depends_on: vec![],
                manual: false,
                local: false,
                release: None,
            }],
            ..Graph::default()
        });
        let (tx, rx) = mpsc::unbounded_channel();
        let (snap_tx, mut snap_rx) = watch::channel(initial(&state));
        let log = Arc::new(Mutex::new(Vec::new()));
        let mut fake = Fake { log: log.clone() };
        let sender = tx.clone();
        let engine = tokio::spawn(async move { run(state, rx, sender, &mut fake, &snap_tx).await });
        let _ = tx.send(Event::Start);
        loop {
            let _ = snap_rx.changed().await;
            if snap_rx.borrow().state.resources["backend"].status == Status::Ready {
                break;
            }
        }
        // A change during the build: one cancel, one more build, one deploy of the last.
        let _ = tx.send(Event::Changed {
            images: BTreeSet::from(["api".to_owned()]),
            locals: BTreeSet::new(),
            sync: BTreeMap::new(),
            files: Vec::new(),
            paths: 0,
        });
        tokio::time::sleep(Duration::from_millis(30)).await;
        let _ = tx.send(Event::Changed {
            images: BTreeSet::from(["api".to_owned()]),
            locals: BTreeSet::new(),
            sync: BTreeMap::new(),
            files: Vec::new(),
            paths: 0,
        });
        tokio::time::sleep(Duration::from_secs(1)).await;
        let _ = tx.send(Event::Shutdown);
        let end = engine.await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(end.resources["backend"].deployed["api"], "api:g4");
        let log = log.lock().map(|l| l.clone()).unwrap_or_default();
        let deploys = log
            .iter()
            .filter(|c| matches!(c, Command::Deploy { .. }))
            .count();
        assert_eq!(deploys, 2, "{log:?}");
        assert!(log.contains(&Command::Cancel {
            image: "api".into(),
            generation: 3
        }));
        assert_eq!(log.last(), Some(&Command::Stop));
    }
}
