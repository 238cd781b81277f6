//! A real container registry for tests: Debian's `docker-registry` (Distribution 2.8) on
//! 127.0.0.1 and a free port, storing in a directory of its own, with a config file of the
//! test's own. Started by [`Registry::start`], killed by PID when dropped.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Registry {
    child: Child,
    pub port: u16,
    _dir: tempfile::TempDir,
}

impl Registry {
    /// A running registry, or None (after saying why) when docker-registry is not installed.
    pub fn start() -> Option<Registry> {
        let Some(bin) = super::which("docker-registry") else {
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!(
                    "docker-registry is not installed: scripts/install-test-tools.sh --with-builders"
                );
            }
            eprintln!(
                "skipped: docker-registry is not installed (scripts/install-test-tools.sh --with-builders)"
            );
            return None;
        };
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let port = super::free_port();
        let config: PathBuf = dir.path().join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:{port}\n",
                dir.path().join("data").display()
            ),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let child = Command::new(bin)
            .arg("serve")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("docker-registry: {e}"));
        let r = Registry {
            child,
            port,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while r.get("/v2/").0 != 200 {
            assert!(
                Instant::now() < deadline,
                "the registry did not answer on {port}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(r)
    }

    /// `GET path` over plain HTTP: (status, body); (0, "") when nothing answers.
    pub fn get(&self, path: &str) -> (u16, String) {
        let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", self.port)) else {
            return (0, String::new());
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
        let req = format!(
            "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nConnection: close\r\n\r\n",
            self.port
        );
        if s.write_all(req.as_bytes()).is_err() {
            return (0, String::new());
        }
        let mut text = String::new();
        let _ = s.read_to_string(&mut text);
        let status = text
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        let body = text
            .split_once("\r\n\r\n")
            .map_or("", |(_, b)| b)
            .to_owned();
        (status, body)
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
