//! The status page in a real browser: Debian's headless Chromium driven through
//! chromedriver's WebDriver protocol (plain HTTP and JSON, spoken here directly). The pages
//! come from running `devenv up`s: local-only projects, and examples/hello with the fake
//! Docker daemon and the fake API server (its builds a real shell command). The tests look at
//! what a user sees (errors without a click, the title, the all-resources log, a flood of
//! lines, the history) and act as a user does (Trigger buttons, keys). Screenshots of the
//! overview and the logs view go to target/browser/ for a person to look at.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::Project;
use common::running::Running;
use common::world::World;
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

/// Waits until `js` returns true in the page. The bound only stops a hang: the flood of
/// 100,000 lines took over 30 s to reach the page on a loaded 2-core machine (a build beside
/// the suite), and the page kept up in the end.
fn wait_page(port: u16, session: &str, js: &str, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(120);
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

/// chromedriver and a headless Chromium session on one page; both end with it.
struct Browser {
    port: u16,
    sid: String,
    driver: Child,
}

impl Drop for Browser {
    fn drop(&mut self) {
        wd(self.port, "DELETE", &format!("/session/{}", self.sid), None);
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

impl Browser {
    /// Opens `url` in a new headless Chromium of `width` × `height`.
    fn open(url: &str, width: u32, height: u32) -> Browser {
        let (Some(chromium), Some(driver)) =
            (common::which("chromium"), common::which("chromedriver"))
        else {
            panic!(
                "chromium and chromedriver are not installed: run scripts/install-test-tools.sh"
            );
        };
        let port = common::free_port();
        let driver = Command::new(driver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{e}"));
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        let session = wd(
            port,
            "POST",
            "/session",
            Some(json!({"capabilities": {"alwaysMatch": {
                "browserName": "chrome",
                "goog:chromeOptions": {
                    "binary": chromium.display().to_string(),
                    "args": ["--headless", "--no-sandbox", "--disable-gpu",
                             "--disable-background-networking", "--disable-dev-shm-usage",
                             format!("--window-size={width},{height}")]
                }
            }}})),
        );
        let sid = session["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {session}"))
            .to_owned();
        let b = Browser { port, sid, driver };
        wd(
            b.port,
            "POST",
            &format!("/session/{}/url", b.sid),
            Some(json!({ "url": url })),
        );
        b
    }

    fn js(&self, code: &str) -> Value {
        script(self.port, &self.sid, code)
    }

    fn text(&self, code: &str) -> String {
        self.js(code).as_str().unwrap_or_default().to_owned()
    }

    fn wait(&self, code: &str, what: &str) {
        wait_page(self.port, &self.sid, code, what);
    }

    fn click(&self, css: &str) {
        click(self.port, &self.sid, css);
    }

    /// Presses keys as a user does (WebDriver key actions), one after the other.
    fn keys(&self, keys: &[&str]) {
        let mut actions = Vec::new();
        for k in keys {
            actions.push(json!({"type": "keyDown", "value": k}));
            actions.push(json!({"type": "keyUp", "value": k}));
        }
        wd(
            self.port,
            "POST",
            &format!("/session/{}/actions", self.sid),
            Some(json!({"actions": [{"type": "key", "id": "keyboard", "actions": actions}]})),
        );
    }

    /// Saves a screenshot to target/browser/`name`.
    fn screenshot(&self, name: &str) {
        let shot = wd(
            self.port,
            "GET",
            &format!("/session/{}/screenshot", self.sid),
            None,
        );
        let png = base64_decode(shot.as_str().unwrap_or_default());
        assert!(png.starts_with(b"\x89PNG"), "a PNG screenshot");
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/browser");
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(dir.join(name), &png).unwrap_or_else(|e| panic!("{e}"));
    }
}

/// Whether resource `name`'s row shows status `want`.
fn status_is(name: &str, want: &str) -> String {
    format!(
        "const r = document.querySelector('tr[data-name=\"{name}\"] .st'); return r !== null && r.textContent === '{want}'"
    )
}

/// `devenv up` of a local-only project, and its page's sign-in address once `ready_line` is
/// printed.
fn start_local(p: &Project, home: &std::path::Path, ready_line: &str) -> (Running, String) {
    let mut up = Running::spawn(common::local_up(p, home, &[]));
    up.wait_for(ready_line);
    let url = page_url(&up);
    (up, url)
}

fn page_url(up: &Running) -> String {
    let text = up.text();
    text.lines()
        .find_map(|l| l.strip_prefix("page       "))
        .unwrap_or_else(|| panic!("no page:\n{text}"))
        .trim()
        .to_owned()
}

/// The overview: live state without a reload, an error's first lines without a click, the
/// error banner, the title and favicon following the worst status, a manual resource's
/// "changes waiting" and the Trigger button in its row, the keys, and the narrow layout.
#[test]
fn the_overview_puts_errors_first_and_its_trigger_buttons_reach_the_engine() {
    let p = Project::new();
    p.write(
        "devenv.toml",
        r#"[project]
name = "browser"

[[local]]
name = "gen"
cmd = "echo generated the code"
deps = ["src"]

[[local]]
name = "broken"
cmd = "if [ -f flag/fixed ]; then echo fine; else echo 'boom: the database is down' >&2; echo 'at db.py line 3' >&2; exit 3; fi"
deps = ["flag"]

[[local]]
name = "e2e"
cmd = "echo ran >> e2e.txt; echo e2e passed"
deps = ["tests"]
trigger = "manual"
"#,
    );
    p.write("src/main.py", "x\n");
    p.write("flag/.keep", "");
    p.write("tests/test_a.py", "a\n");
    let home = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let (mut up, url) = start_local(&p, home.path(), "ready      gen");
    let b = Browser::open(&url, 1100, 800);
    b.wait(&status_is("gen", "ready"), "gen ready");
    b.wait(&status_is("broken", "error"), "broken in error");
    // The error's first lines are in its row, visible, with no click.
    b.wait(
        "const e = document.querySelector('tr[data-name=\"broken\"] .err'); return e.getBoundingClientRect().height > 0 && e.innerText.includes('boom: the database is down')",
        "broken's error in the overview",
    );
    assert!(
        b.text("return document.getElementById('banner').innerText")
            .contains("1 resource in error: broken")
    );
    b.wait(
        "return document.title.startsWith('✖ 1 error · browser')",
        "the title telling the error",
    );
    assert!(
        b.text("return document.getElementById('favicon').href")
            .contains("cf222e")
    );
    // The bring-up steps (a local-only project has no cluster step).
    assert!(
        b.text("return document.getElementById('steps').textContent")
            .starts_with("doctor: done (")
    );
    assert_eq!(
        b.text("return document.getElementById('project').textContent"),
        "devenv · browser"
    );
    // The manual resource waits, says so, and says when changes wait for it. Its status is
    // the engine's display status, as `devenv status` shows it.
    b.wait(&status_is("e2e", "idle"), "e2e idle");
    assert_eq!(
        b.text("return document.querySelector('tr[data-name=\"e2e\"] .why').textContent"),
        "runs when you trigger it"
    );
    b.js("window.notReloaded = true; return null");
    p.write("tests/test_a.py", "b\n");
    b.wait(
        "return !document.querySelector('tr[data-name=\"e2e\"] .waiting-changes').hidden",
        "e2e's changes waiting",
    );
    b.screenshot("overview.png");
    // Its Trigger button, in its row: the engine runs it.
    assert!(!p.path().join("e2e.txt").exists());
    b.click("tr[data-name=\"e2e\"] button.trigger");
    up.wait_for("ready      e2e");
    assert_eq!(p.read("e2e.txt"), "ran\n");
    b.wait(&status_is("e2e", "ready"), "e2e ready");
    b.wait(
        "return document.querySelector('tr[data-name=\"e2e\"] .waiting-changes').hidden",
        "e2e's changes taken",
    );
    // Fixed: the banner goes, the title says all is well, with no reload.
    p.write("flag/fixed", "");
    b.wait(&status_is("broken", "ready"), "broken ready");
    b.wait(
        "return document.title === '✔ ready · browser — devenv'",
        "the title back to ready",
    );
    assert_eq!(
        b.js("return document.getElementById('banner').hidden"),
        json!(true)
    );
    assert_eq!(
        b.js("return document.querySelector('tr[data-name=\"broken\"] .err').textContent"),
        json!("")
    );
    assert_eq!(b.js("return window.notReloaded === true"), json!(true));

    // Keys: j moves down the list, Enter opens, t triggers, / goes to the filter.
    b.js("document.activeElement.blur(); return null");
    b.keys(&["j", "j"]);
    b.wait(
        "return document.activeElement.dataset && document.activeElement.dataset.name === 'broken'",
        "the cursor on the second row",
    );
    b.keys(&["k", "\u{E007}"]);
    b.wait(
        "return document.getElementById('tab-one').textContent === 'gen logs' && document.querySelector('#log').innerText.includes('generated the code')",
        "gen's log opened by Enter",
    );
    b.keys(&["j", "j", "t"]);
    up.wait_for_n("ready      e2e", 2);
    assert_eq!(p.read("e2e.txt"), "ran\nran\n");
    b.keys(&["/"]);
    assert_eq!(b.text("return document.activeElement.id"), "filter");

    // Narrow: every row's status and Trigger button stay on screen.
    wd(
        b.port,
        "POST",
        &format!("/session/{}/window/rect", b.sid),
        Some(json!({"width": 420, "height": 800})),
    );
    b.wait(
        "return [...document.querySelectorAll('#resources tbody tr')].every((r) => { const t = r.querySelector('button.trigger').getBoundingClientRect(); const s = r.querySelector('.st').getBoundingClientRect(); return t.right <= window.innerWidth && t.width > 0 && s.width > 0 && s.right <= window.innerWidth; }) && document.documentElement.scrollWidth <= window.innerWidth",
        "the narrow layout fitting",
    );
    b.screenshot("overview-narrow.png");
    drop(b);
    up.signal(libc::SIGTERM);
    let _ = up.child.wait();
}

/// The all-resources log: lines of two resources in the order they came, each with its
/// resource; a flood of 100,000 lines leaves at most the line limit in the page, which
/// still answers clicks; one resource's log and the filter. The flood comes with the
/// largest limit chosen, so that lines reach the page in batches under the limit (appended,
/// the oldest dropped) as well as over it (the view rebuilt).
#[test]
fn the_all_resources_log_keeps_order_and_a_flood_stays_within_the_line_limit() {
    let p = Project::new();
    p.write(
        "devenv.toml",
        r#"[project]
name = "logs"

[[local]]
name = "gen"
cmd = "echo gen says one; echo gen says two"
deps = ["src"]

[[local]]
name = "e2e"
cmd = "echo e2e says three"
trigger = "manual"

[[local]]
name = "flood"
cmd = "seq 1 100000 | sed 's/^/flood line /'"
trigger = "manual"
"#,
    );
    p.write("src/main.py", "x\n");
    let home = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let (mut up, url) = start_local(&p, home.path(), "ready      gen");
    let b = Browser::open(&url, 1100, 800);
    b.wait(&status_is("gen", "ready"), "gen ready");
    b.click("tr[data-name=\"e2e\"] button.trigger");
    up.wait_for("ready      e2e");
    b.wait(
        "return document.getElementById('log').innerText.includes('e2e says three')",
        "e2e's line in the all-resources log",
    );
    let lines: Vec<String> = b
        .js("return [...document.querySelectorAll('#log .ln')].filter((l) => l.innerText.includes(' says ')).map((l) => l.querySelector('.res').textContent + ' ' + l.lastChild.textContent)")
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|v| v.as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(
        lines,
        ["gen gen says one", "gen gen says two", "e2e e2e says three"]
    );
    // Timestamps on demand.
    assert_eq!(
        b.js("return document.querySelector('#log .ln .ts').getBoundingClientRect().width"),
        json!(0)
    );
    b.click("#stamps");
    b.wait(
        "return document.querySelector('#log .ln .ts').getBoundingClientRect().width > 0",
        "timestamps shown",
    );
    b.screenshot("logs.png");

    // A flood: the page keeps at most its line limit all along, and still answers.
    b.js("const log = document.getElementById('log'); window.most = 0; window.batches = 0; new MutationObserver(() => { window.batches++; window.most = Math.max(window.most, log.childElementCount); }).observe(log, {childList: true}); return null");
    b.js("const l = document.getElementById('limit'); l.value = '10000'; l.dispatchEvent(new Event('change')); return null");
    b.click("tr[data-name=\"flood\"] button.trigger");
    up.wait_for("ready      flood");
    b.wait(
        "return document.getElementById('log').lastChild.textContent.endsWith('flood line 100000')",
        "the flood's last line",
    );
    let shown = b.js("return document.querySelectorAll('#log .ln').length");
    let limit = b.js("return Number(document.getElementById('limit').value)");
    assert_eq!(limit, json!(10000));
    assert!(
        shown.as_u64().unwrap_or(u64::MAX) <= 10000,
        "{shown} lines in the page"
    );
    let most = b.js("return window.most");
    let batches = b.js("return window.batches");
    eprintln!("the flood reached the page in {batches} batches");
    assert!(
        most.as_u64().unwrap_or(u64::MAX) <= 10000,
        "{most} lines in the page at one time"
    );
    let started = Instant::now();
    b.click("tr[data-name=\"gen\"]");
    b.wait(
        "return document.getElementById('tab-one').textContent === 'gen logs' && document.getElementById('log').innerText.includes('gen says two') && !document.getElementById('log').innerText.includes('flood line')",
        "gen's own log after the flood",
    );
    eprintln!(
        "the page answered a click after the flood in {:?}",
        started.elapsed()
    );
    // The filter.
    b.click("#tab-all");
    b.wait(
        "return document.getElementById('log').innerText.includes('flood line 99999')",
        "the all-resources log again",
    );
    // Scrolling up pauses following; back at the end, it follows again.
    b.js("const l = document.getElementById('log'); l.scrollTop = 0; return null");
    b.wait(
        "return !document.getElementById('follow').checked",
        "following paused by scrolling up",
    );
    b.js("const l = document.getElementById('log'); l.scrollTop = l.scrollHeight; return null");
    b.wait(
        "return document.getElementById('follow').checked",
        "following again at the end",
    );
    b.js("const f = document.getElementById('filter'); f.value = 'line 9999'; f.dispatchEvent(new Event('input')); return null");
    b.wait(
        "return [...document.querySelectorAll('#log .ln')].every((l) => l.textContent.includes('line 9999')) && document.querySelectorAll('#log .ln').length > 0",
        "only the lines the filter matches",
    );
    drop(b);
    up.signal(libc::SIGTERM);
    let _ = up.child.wait();
}

/// A resource's history: a failed build, then a good one, each with its cause and duration,
/// newest first; the failure's first lines are in the overview while it lasts. examples/hello
/// is built by a real shell command that fails while hello.txt says so (fake Docker daemon,
/// fake API server).
#[test]
fn the_history_lists_a_failed_then_a_good_build() {
    let p = Project::example("hello");
    let cfg = p.read("devenv.toml").replace(
        "context = \".\"\n",
        "context = \".\"\nbuilder = \"custom\"\ncommand = \"if grep -q broken hello.txt; then echo 'error: hello.txt is broken' >&2; exit 1; fi; docker build -t \\\"$DEVENV_IMAGE\\\" .\"\n",
    );
    p.write("devenv.toml", &cfg);
    // A NodePort Service: its address on the node shows in hello's row.
    let deployment = p.read("k8s/deployment.yaml");
    p.write(
        "k8s/deployment.yaml",
        &format!("{deployment}---\napiVersion: v1\nkind: Service\nmetadata:\n  name: hello\nspec:\n  type: NodePort\n  selector:\n    app: hello\n  ports:\n    - port: 8080\n      nodePort: 30080\n"),
    );
    let w = World::new(p);
    w.api.auto_rollout();
    w.profile("running", 4, 8192);
    let path = format!("{}:/usr/bin:/bin", w.bin.path().display());
    let mut up = Running::spawn(w.command(&["up"], &[("PATH", &path)]));
    up.wait_for("ready      hello (");
    let b = Browser::open(&page_url(&up), 1100, 800);
    b.wait(&status_is("hello", "ready"), "hello ready");
    b.wait(
        "const a = document.querySelector('tr[data-name=\"hello\"] a.node-url'); return a !== null && a.textContent === '192.168.49.2:30080' && a.href === 'http://192.168.49.2:30080/'",
        "hello's NodePort address in its row",
    );
    w.p.write("hello.txt", "broken\n");
    b.wait(&status_is("hello", "error"), "hello's build failed");
    b.wait(
        "return document.querySelector('tr[data-name=\"hello\"] .err').innerText.includes('hello.txt is broken')",
        "the build's error in the overview",
    );
    w.p.write("hello.txt", "fixed\n");
    up.wait_for_n("deployed   hello with hello:devenv-", 2);
    b.wait(&status_is("hello", "ready"), "hello ready again");
    b.click("tr[data-name=\"hello\"]");
    b.click("#tab-history");
    b.wait(
        "return document.querySelectorAll('#history tbody tr[data-kind=\"build\"]').length === 3",
        "three builds in the history",
    );
    let rows: Vec<String> = b
        .js("return [...document.querySelectorAll('#history tbody tr')].map((r) => [...r.children].slice(1).map((c) => c.textContent).join(' | '))")
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|v| v.as_str().unwrap_or_default().to_owned())
        .collect();
    let builds: Vec<&String> = rows.iter().filter(|r| r.starts_with("build ")).collect();
    // Newest first: the good build, the failed one, bring-up's.
    assert!(
        builds[0].starts_with("build hello | hello.txt changed | "),
        "{rows:#?}"
    );
    assert!(builds[0].ends_with(" | ok"), "{rows:#?}");
    assert!(
        builds[1].starts_with("build hello | hello.txt changed | "),
        "{rows:#?}"
    );
    assert!(builds[1].contains("| failed: "), "{rows:#?}");
    assert!(
        builds[2].starts_with("build hello | first start | "),
        "{rows:#?}"
    );
    assert!(
        rows[0].starts_with("deploy | hello.txt changed | "),
        "{rows:#?}"
    );
    b.screenshot("history.png");
    // The steps are in the resource's log stream too, and its pods are named.
    b.click("#tab-one");
    b.wait(
        "return document.getElementById('pod-names').textContent.startsWith('Pods: hello-')",
        "hello's pod named",
    );
    b.wait(
        "const t = document.getElementById('log').innerText; return t.includes('building hello') && t.includes('error: hello.txt is broken') && t.includes('deployed hello with hello:devenv-') && t.includes('failed hello: ')",
        "the build and deploy steps in hello's log",
    );
    drop(b);
    up.signal(libc::SIGTERM);
    let _ = up.child.wait();
}

/// A held resource says what it waits for, and that is a link to the resource it waits for
/// (issue 26 point 2: the hold is a value naming that resource, not only a sentence).
#[test]
fn a_held_resource_links_to_what_holds_it() {
    let p = Project::new();
    p.write(
        "devenv.toml",
        r#"[project]
name = "held"

[[local]]
name = "broken"
cmd = "echo 'boom' >&2; exit 3"

[[local]]
name = "after"
cmd = "echo after"
depends_on = ["broken"]
"#,
    );
    let home = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let (mut up, url) = start_local(&p, home.path(), "error      broken");
    let b = Browser::open(&url, 1100, 800);
    b.wait(&status_is("broken", "error"), "broken in error");
    b.wait(&status_is("after", "blocked"), "after blocked by broken");
    b.wait(
        "const a = document.querySelector('tr[data-name=\"after\"] .why a.held-by'); return a !== null && a.textContent === '`broken` failed' && a.dataset.target === 'broken'",
        "after's hold linking to broken",
    );
    b.click("tr[data-name=\"after\"] .why a.held-by");
    b.wait(
        "return document.getElementById('tab-one').textContent === 'broken logs' && document.activeElement.dataset.name === 'broken'",
        "broken opened from after's hold",
    );
    drop(b);
    up.signal(libc::SIGTERM);
    let _ = up.child.wait();
}
