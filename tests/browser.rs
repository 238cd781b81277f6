//! The status page in a real browser: Debian's headless Chromium driven through
//! chromedriver's WebDriver protocol (plain HTTP and JSON, spoken here directly). The page
//! comes from a running `devenv up` of a local-only project. The test sees a resource change
//! state without a reload, opens its logs, clicks Trigger, and checks that the engine ran
//! the resource. It saves a screenshot to target/browser/status-page.png for a person to
//! look at.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::Project;
use common::running::Running;
use serde_json::{Value, json};

/// One WebDriver call: `method path` with a JSON body; the `value` of the answer.
fn wd(port: u16, method: &str, path: &str, body: Option<Value>) -> Value {
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap_or_else(|e| panic!("{e}"));
    let _ = s.set_read_timeout(Some(Duration::from_secs(60)));
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes())
        .unwrap_or_else(|e| panic!("{e}"));
    let mut r = BufReader::new(s);
    let mut line = String::new();
    let mut length: Option<usize> = None;
    let _ = r.read_line(&mut line);
    loop {
        line.clear();
        if r.read_line(&mut line).unwrap_or(0) == 0 || line.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':')
            && k.eq_ignore_ascii_case("content-length")
        {
            length = v.trim().parse().ok();
        }
    }
    let mut buf = Vec::new();
    match length {
        Some(n) => {
            buf.resize(n, 0);
            r.read_exact(&mut buf).unwrap_or_else(|e| panic!("{e}"));
        }
        None => {
            r.read_to_end(&mut buf).unwrap_or_else(|e| panic!("{e}"));
        }
    }
    let v: Value = serde_json::from_slice(&buf)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&buf)));
    v["value"].clone()
}

/// Runs a script in the page and returns its value.
fn script(port: u16, session: &str, js: &str) -> Value {
    wd(
        port,
        "POST",
        &format!("/session/{session}/execute/sync"),
        Some(json!({"script": js, "args": []})),
    )
}

/// Waits until `js` returns true in the page.
fn wait_page(port: u16, session: &str, js: &str, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while script(port, session, js) != json!(true) {
        let table = script(
            port,
            session,
            "return document.querySelector('#resources tbody').innerText",
        );
        assert!(
            Instant::now() < deadline,
            "no {what}; the table shows {table}"
        );
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// Clicks the element `css` the way a user does (a WebDriver element click), trying again
/// when the page re-rendered it meanwhile.
fn click(port: u16, session: &str, css: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let el = wd(
            port,
            "POST",
            &format!("/session/{session}/element"),
            Some(json!({"using": "css selector", "value": css})),
        );
        if let Some(id) = el
            .as_object()
            .and_then(|o| o.values().next())
            .and_then(Value::as_str)
        {
            let r = wd(
                port,
                "POST",
                &format!("/session/{session}/element/{id}/click"),
                Some(json!({})),
            );
            if r.is_null() {
                return;
            }
        }
        assert!(Instant::now() < deadline, "cannot click {css}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn base64_decode(s: &str) -> Vec<u8> {
    let val = |c: u8| -> Option<u32> {
        match c {
            b'A'..=b'Z' => Some(u32::from(c - b'A')),
            b'a'..=b'z' => Some(u32::from(c - b'a') + 26),
            b'0'..=b'9' => Some(u32::from(c - b'0') + 52),
            b'+' => Some(62),
            b'/' => Some(63),
            _ => None,
        }
    };
    let mut out = Vec::new();
    let (mut acc, mut bits) = (0u32, 0);
    for c in s.bytes().filter_map(val) {
        acc = (acc << 6) | c;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    out
}

struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn the_page_shows_live_state_and_logs_and_its_trigger_reaches_the_engine() {
    let (Some(chromium), Some(driver)) = (common::which("chromium"), common::which("chromedriver"))
    else {
        panic!(
            "chromium and chromedriver are not installed: run scripts/install-test-tools.sh --with-browser"
        );
    };
    let p = Project::new();
    p.write(
        "devenv.toml",
        "[project]\nname = \"browser\"\n\n[[local]]\nname = \"gen\"\ncmd = \"sleep 1; echo generated the code\"\ndeps = [\"src\"]\n\n[[local]]\nname = \"e2e\"\ncmd = \"echo ran >> e2e.txt; echo e2e passed\"\ntrigger = \"manual\"\n",
    );
    p.write("src/main.py", "x\n");
    let home = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let mut up = Running::spawn({
        let mut c = Command::new(common::devenv_bin());
        c.arg("up")
            .current_dir(p.path())
            .env("PATH", "/usr/bin:/bin")
            .env("HOME", home.path())
            .env("DEVENV_WEB_PORT", "0");
        c
    });
    up.wait_for("ready      gen");
    let text = up.text();
    let url = text
        .lines()
        .find_map(|l| l.strip_prefix("page       "))
        .unwrap_or_else(|| panic!("no page:\n{text}"))
        .trim()
        .to_owned();

    let wd_port = common::free_port();
    let _driver = Driver(
        Command::new(driver)
            .arg(format!("--port={wd_port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{e}")),
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(("127.0.0.1", wd_port)).is_err() {
        assert!(Instant::now() < deadline, "chromedriver did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    let session = wd(
        wd_port,
        "POST",
        "/session",
        Some(json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium.display().to_string(),
                "args": ["--headless", "--no-sandbox", "--disable-gpu",
                         "--disable-background-networking", "--disable-dev-shm-usage",
                         "--window-size=1000,700"]
            }
        }}})),
    );
    let sid = session["sessionId"]
        .as_str()
        .unwrap_or_else(|| panic!("no session: {session}"))
        .to_owned();
    wd(
        wd_port,
        "POST",
        &format!("/session/{sid}/url"),
        Some(json!({ "url": url })),
    );
    let status_is = |name: &str, want: &str| {
        format!(
            "const r = document.querySelector('tr[data-name=\"{name}\"]'); return r !== null && r.children[1].textContent === '{want}'"
        )
    };
    wait_page(wd_port, &sid, &status_is("gen", "ready"), "gen ready");
    // The bring-up steps are on the page (a local-only project has no cluster step).
    wait_page(
        wd_port,
        &sid,
        "return document.getElementById('steps').textContent.startsWith('doctor: done (')",
        "the doctor's step",
    );
    assert_eq!(
        script(
            wd_port,
            &sid,
            "return document.getElementById('project').textContent"
        ),
        "devenv · browser"
    );

    // A change on disk: the row goes to building and back to ready, with no reload.
    script(wd_port, &sid, "window.notReloaded = true; return null");
    p.write("src/main.py", "y\n");
    wait_page(wd_port, &sid, &status_is("gen", "building"), "gen building");
    wait_page(wd_port, &sid, &status_is("gen", "ready"), "gen ready again");
    assert_eq!(
        script(wd_port, &sid, "return window.notReloaded === true"),
        json!(true)
    );

    // Its logs.
    click(wd_port, &sid, "tr[data-name=\"gen\"]");
    wait_page(
        wd_port,
        &sid,
        "return document.getElementById('log').textContent.includes('generated the code')",
        "gen's log",
    );

    // Trigger the manual resource from the page: the engine runs it.
    click(wd_port, &sid, "tr[data-name=\"e2e\"]");
    wait_page(
        wd_port,
        &sid,
        "return document.getElementById('detail-title').textContent.startsWith('e2e')",
        "e2e selected",
    );
    assert!(!p.path().join("e2e.txt").exists());
    click(wd_port, &sid, "#trigger");
    up.wait_for("ready      e2e");
    assert_eq!(p.read("e2e.txt"), "ran\n");
    wait_page(
        wd_port,
        &sid,
        "return document.getElementById('log').textContent.includes('e2e passed')",
        "e2e's log",
    );
    wait_page(wd_port, &sid, &status_is("e2e", "ready"), "e2e ready");

    let shot = wd(wd_port, "GET", &format!("/session/{sid}/screenshot"), None);
    let png = base64_decode(shot.as_str().unwrap_or_default());
    assert!(png.starts_with(b"\x89PNG"), "a PNG screenshot");
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/browser");
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(dir.join("status-page.png"), &png).unwrap_or_else(|e| panic!("{e}"));
    wd(wd_port, "DELETE", &format!("/session/{sid}"), None);
    up.signal(libc::SIGTERM);
    let _ = up.child.wait();
}
