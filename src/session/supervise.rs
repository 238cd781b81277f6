//! The session's long-lived parts (the status page's server, the file watcher) run as tasks
//! of their own. Each is watched: one that ends before `up` does (it returned, or it
//! panicked) is said on the terminal and becomes engine state, which the page shows in its
//! banner. `up` runs on without it. When the session ends, it stops the parts itself, and
//! that is no failure.

use tokio::sync::mpsc;
use tokio::task::{AbortHandle, JoinHandle, JoinSet};

use crate::engine::state::Event;
use crate::out;

/// The session's watched parts.
#[derive(Default)]
pub struct Parts {
    running: Vec<AbortHandle>,
    watchers: JoinSet<()>,
}

impl Parts {
    /// Runs `task` as the part `part`; `then` says what `up` does without it. A task that
    /// ends by itself may say why (`Err`).
    pub fn start(
        &mut self,
        part: &'static str,
        then: &'static str,
        task: JoinHandle<Result<(), String>>,
        events: mpsc::UnboundedSender<Event>,
    ) {
        self.running.push(task.abort_handle());
        self.watchers.spawn(watch(part, then, task, events));
    }

    /// Stops every part (the session ends): nothing is reported.
    pub fn stop(&mut self) {
        self.watchers.abort_all();
        for a in &self.running {
            a.abort();
        }
    }
}

/// Waits for `task` to end; an end before the session stops it is reported.
async fn watch(
    part: &'static str,
    then: &'static str,
    task: JoinHandle<Result<(), String>>,
    events: mpsc::UnboundedSender<Event>,
) {
    let why = match task.await {
        Ok(Ok(())) => "it ended".to_owned(),
        Ok(Err(why)) => format!("it ended: {why}"),
        Err(e) if e.is_cancelled() => return,
        Err(e) => match e.try_into_panic() {
            Ok(p) => format!(
                "it failed: {}",
                p.downcast_ref::<&str>()
                    .map(|s| (*s).to_owned())
                    .or_else(|| p.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "a panic".to_owned())
            ),
            Err(_) => "it ended".to_owned(),
        },
    };
    let why = format!("{why}; {then}");
    out::say("error", format!("{part} stopped: {why}"));
    let _ = events.send(Event::PartStopped {
        part: part.to_owned(),
        why,
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A part that ends or panics while `up` runs is reported as stopped, with why; parts
    /// the session stops are not.
    #[tokio::test]
    async fn a_part_that_ends_first_is_reported_and_one_stopped_by_the_session_is_not() {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let mut parts = Parts::default();
        parts.start(
            "file watching",
            "edits are not seen; restart devenv",
            tokio::spawn(async { panic!("inotify went away") }),
            tx.clone(),
        );
        let ev = rx.recv().await;
        assert_eq!(
            ev,
            Some(Event::PartStopped {
                part: "file watching".into(),
                why: "it failed: inotify went away; edits are not seen; restart devenv".into(),
            })
        );
        parts.start(
            "the status page",
            "devenv status and the page do not answer",
            tokio::spawn(async { Ok(()) }),
            tx.clone(),
        );
        assert!(matches!(
            rx.recv().await,
            Some(Event::PartStopped { why, .. }) if why.starts_with("it ended;")
        ));
        parts.start(
            "the status page",
            "devenv status and the page do not answer",
            tokio::spawn(async {
                Err("its listening socket no longer accepts connections".into())
            }),
            tx.clone(),
        );
        assert!(matches!(
            rx.recv().await,
            Some(Event::PartStopped { why, .. })
                if why.starts_with("it ended: its listening socket no longer accepts connections;")
        ));
        // Stopped by the session: nothing said.
        let (done_tx, done_rx) = tokio::sync::oneshot::channel::<()>();
        parts.start(
            "the status page",
            "-",
            tokio::spawn(async move {
                let _ = done_rx.await;
                Ok(())
            }),
            tx.clone(),
        );
        parts.stop();
        drop(done_tx);
        drop(tx);
        tokio::task::yield_now().await;
        assert_eq!(rx.recv().await, None);
    }
}
