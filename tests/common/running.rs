//! A devenv running in the background whose output (stdout and stderr, interleaved) is read
//! as it comes, and signals to stop it.

use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use super::world::World;

pub struct Running {
    pub child: Child,
    /// The output so far, and a signal for each line that comes (waits wake on it).
    out: Arc<(Mutex<String>, Condvar)>,
}

impl Running {
    pub fn start(w: &World, args: &[&str]) -> Running {
        Running::spawn(w.command(args, &[]))
    }

    pub fn spawn(mut cmd: Command) -> Running {
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{e}"));
        let out = Arc::new((Mutex::new(String::new()), Condvar::new()));
        for pipe in [
            child
                .stdout
                .take()
                .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
            child
                .stderr
                .take()
                .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
        ]
        .into_iter()
        .flatten()
        {
            let out = out.clone();
            std::thread::spawn(move || {
                use std::io::BufRead;
                let mut reader = std::io::BufReader::new(pipe);
                let mut line = String::new();
                loop {
                    line.clear();
                    if !matches!(reader.read_line(&mut line), Ok(n) if n > 0) {
                        break;
                    }
                    if let Ok(mut o) = out.0.lock() {
                        o.push_str(line.trim_end_matches('\n'));
                        o.push('\n');
                    }
                    // Waiters wake once what one write gave is all in: a message of several
                    // lines (an error and its location) is read whole.
                    if reader.buffer().is_empty() {
                        out.1.notify_all();
                    }
                }
                out.1.notify_all();
            });
        }
        Running { child, out }
    }

    pub fn text(&self) -> String {
        self.out.0.lock().map(|o| o.clone()).unwrap_or_default()
    }

    /// How many lines contain `what`.
    pub fn count(&self, what: &str) -> usize {
        self.text().lines().filter(|l| l.contains(what)).count()
    }

    pub fn wait_for(&mut self, what: &str) {
        self.wait_until(what, |t| t.contains(what));
    }

    /// Waits until one line holds each of `parts`, in order (what lies between varies).
    pub fn wait_for_line(&mut self, parts: &[&str]) {
        let what = parts.join("…");
        self.wait_until(&what, |t| {
            t.lines().any(|l| {
                let mut rest = l;
                parts.iter().all(|p| match rest.find(p) {
                    Some(at) => {
                        rest = &rest[at + p.len()..];
                        true
                    }
                    None => false,
                })
            })
        });
    }

    /// Waits until `what` shows up `n` times.
    pub fn wait_for_n(&mut self, what: &str, n: usize) {
        self.wait_until(what, |t| {
            t.lines().filter(|l| l.contains(what)).count() >= n
        });
    }

    /// Waits until `what` shows up after the first `marker`.
    pub fn wait_after(&mut self, marker: &str, what: &str) {
        self.wait_until(what, |t| {
            t.find(marker).is_some_and(|at| t[at..].contains(what))
        });
    }

    /// Waits up to `within` (for what takes longer than a minute: a real build of the todo
    /// sample) until `what` shows up.
    pub fn wait_for_within(&mut self, what: &str, within: Duration) {
        self.wait_until_within(what, within, |t| t.contains(what));
    }

    fn wait_until(&mut self, what: &str, done: impl Fn(&str) -> bool) {
        self.wait_until_within(what, Duration::from_secs(60), done);
    }

    fn wait_until_within(&mut self, what: &str, within: Duration, done: impl Fn(&str) -> bool) {
        let deadline = Instant::now() + within;
        let (lock, lines) = &*self.out;
        let mut text = lock.lock().unwrap_or_else(|e| e.into_inner());
        while Instant::now() < deadline {
            if done(&text) {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                drop(text);
                // The readers take what the pipes still hold.
                std::thread::sleep(Duration::from_millis(100));
                panic!("devenv exited ({status}) before `{what}`:\n{}", self.text());
            }
            // Woken by the next line; the timeout only notices an exit without output.
            let left = deadline.saturating_duration_since(Instant::now());
            text = lines
                .wait_timeout(text, left.min(Duration::from_millis(100)))
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        drop(text);
        // Dropping stops devenv (and what it started) as the panic unwinds.
        panic!(
            "no `{what}` within {} s:\n{}",
            within.as_secs(),
            self.text()
        );
    }

    /// Sends `signal` to devenv.
    pub fn signal(&self, signal: i32) {
        // SAFETY: kill(2) on our own child's pid.
        unsafe {
            libc::kill(self.child.id() as i32, signal);
        }
    }
}

impl Drop for Running {
    /// A failed test still leaves nothing running: devenv gets SIGTERM first, so it stops
    /// every process group it started (a serve command's grandchildren included, which a
    /// SIGKILL would orphan), and SIGKILL only if it has not ended within 5 s.
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.signal(libc::SIGTERM);
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = self.child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether process `pid` is alive (a zombie is not).
pub fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/status")).is_ok_and(|s| {
        !s.lines()
            .any(|l| l.starts_with("State:") && l.contains('Z'))
    })
}

/// Waits up to `within` for `pid` to be gone.
pub fn gone_within(pid: i32, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    while alive(pid) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    !alive(pid)
}
