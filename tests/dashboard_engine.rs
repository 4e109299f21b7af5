//! The dashboard in a real headless browser (Debian's chromium through chromedriver), against
//! `hawser serve` on the real engine: a push shows without a reload, a failed deploy is red
//! with its cause, the button reconciles, and off loopback every page wants the token.
//! Screenshots of each page are left in target/test-artifacts/dashboard/.

mod common;
#[path = "support/webdriver.rs"]
mod webdriver;

use common::*;
use std::io::{Read, Write};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use webdriver::Browser;

struct Serve(Child);

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = Command::new("kill").arg("-TERM").arg(self.0.id().to_string()).status();
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(10) {
            if self.0.try_wait().unwrap().is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn serve(s: &Stack, listen: &str, extra: &[&str]) -> Child {
    let log = std::fs::File::create(s.state.path().join("serve.log")).unwrap();
    Command::new(env!("CARGO_BIN_EXE_hawser"))
        .arg("serve")
        .arg(s.path())
        .args(["--listen", listen, "--interval", "10m"])
        .args(extra)
        .env("DOCKER_HOST", docker_host())
        .env("HAWSER_STATE_DIR", s.state.path())
        .env("HAWSER_LOG", "info")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap()
}

/// Status code and body of one request to the service on loopback.
fn request(port: u16, method: &str, path: &str, headers: &[(&str, &str)]) -> (u16, String) {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut req =
        format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\nContent-Length: 0\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    let mut out = Vec::new();
    // The live stream never ends: its head is enough.
    let mut buf = [0u8; 4096];
    loop {
        let n = match s.read(&mut buf) {
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Ok(n) if n > 0 => n,
            _ => break,
        };
        out.extend_from_slice(&buf[..n]);
        if path == "/events" && out.windows(4).any(|w| w == b"\r\n\r\n") {
            break;
        }
    }
    let text = String::from_utf8_lossy(&out).to_string();
    let code = text.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    (code, text.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default())
}

fn wait_healthy(port: u16) {
    let t = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() || request(port, "GET", "/healthz", &[]).0 != 200 {
        assert!(t.elapsed() < Duration::from_secs(15), "serve answers /healthz");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn artifacts() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/test-artifacts/dashboard")
}

fn app(p: &str, version: &str, image: &str, secret: &std::path::Path) -> String {
    format!(
        "kind: Container\nmetadata: {{name: {p}-web}}\nspec:\n  image: \"{image}\"\n  command: [sleep, \"3600\"]\n  env: {{VERSION: \"{version}\"}}\n  secretEnv: {{API_KEY: \"{}\"}}\n  stopTimeout: 1s\n",
        secret.display()
    )
}

#[test]
fn the_dashboard_follows_a_push_shows_a_failure_and_reconciles_on_the_button() {
    let p = "t-dash";
    let s = Stack::new(p);
    // A secret value that must never reach a page.
    let secrets = tempfile::tempdir().unwrap();
    let marker = "s3cret-dashboard-marker";
    let key = secrets.path().join("key");
    std::fs::write(&key, marker).unwrap();
    let policy = s.state.path().join("policy.toml");
    std::fs::write(&policy, format!("secretRoots = [\"{}\"]\n", secrets.path().display())).unwrap();
    s.write("hawser.toml", &format!("project = \"{p}\"\n"));
    s.write("app.yaml", &app(p, "1", IMAGE, &key));
    let rev1 = s.commit("v1");
    let port = 19504;
    let url = format!("http://127.0.0.1:{port}");
    let _serve = Serve(serve(&s, &format!("127.0.0.1:{port}"), &["--policy", policy.to_str().unwrap()]));
    wait_healthy(port);
    let browser = Browser::start(19505);

    // The overview lists the source with the revision it applied.
    browser.open(&format!("{url}/"));
    let short1 = &rev1[..12];
    assert!(
        browser
            .wait(Duration::from_secs(60), |b| b.text("main").contains(short1) && b.text("main").contains("changed")),
        "the overview shows {short1}: {}",
        browser.text("main")
    );
    browser.screenshot(&artifacts().join("overview.png"));

    // A push: the open page shows the new revision by itself, without a reload.
    browser.eval("window.__sameDocument = 'yes';", serde_json::json!([]));
    s.write("app.yaml", &app(p, "2", IMAGE, &key));
    let rev2 = s.commit("v2");
    let short2 = &rev2[..12];
    assert!(
        browser.wait(Duration::from_secs(60), |b| {
            let main = b.text("main");
            main.contains(short2) && !main.contains("reconciling")
        }),
        "the page shows {short2} without a reload: {}",
        browser.text("main")
    );
    let same = browser.eval("return window.__sameDocument || null;", serde_json::json!([]));
    assert_eq!(same, "yes", "the page was reloaded");
    assert!(runs_version(&format!("{p}-web"), "2"));

    // The project page: the container, its image and revision, and the plan (no changes).
    browser.open(&format!("{url}/sources/{}", s.path().file_name().unwrap().to_string_lossy()));
    let main = browser.text("main");
    assert!(main.contains(&format!("{p}-web")) && main.contains("running"), "{main}");
    assert!(main.contains(short2), "{main}");
    assert!(main.contains("No changes"), "{main}");
    browser.screenshot(&artifacts().join("project.png"));

    // A failed deploy: the image does not exist. The overview goes red and says why.
    browser.open(&format!("{url}/"));
    browser.eval("window.__sameDocument = 'yes';", serde_json::json!([]));
    s.write("app.yaml", &app(p, "3", "127.0.0.1:5000/hawser-missing:latest", &key));
    s.commit("v3: an image that is not there");
    assert!(
        browser.wait(Duration::from_secs(60), |b| {
            b.eval("return document.querySelector('tr.source.failed') !== null;", serde_json::json!([])) == true
                && b.text("main").contains("hawser-missing")
        }),
        "the failure shows in red with its cause: {}",
        browser.text("main")
    );
    assert_eq!(browser.eval("return window.__sameDocument || null;", serde_json::json!([])), "yes");
    // The one that worked keeps running.
    assert!(runs_version(&format!("{p}-web"), "2"));
    browser.screenshot(&artifacts().join("failed.png"));

    // The button: a reconcile now, seen in the history with its trigger.
    browser.click("form.reconcile button");
    assert!(
        browser.wait(Duration::from_secs(30), |b| b.text("form.reconcile button").contains("Queued")),
        "the button says the reconcile is queued"
    );
    browser.open(&format!("{url}/history"));
    assert!(
        browser.wait(Duration::from_secs(60), |b| b.text("table.history").contains("manual")),
        "the history shows the manual reconcile: {}",
        browser.text("main")
    );
    let svg = browser.eval("return document.querySelectorAll('svg.chart circle').length;", serde_json::json!([]));
    assert!(svg.as_u64().unwrap_or(0) >= 3, "one dot per reconcile: {svg}");
    browser.screenshot(&artifacts().join("history.png"));

    // Metrics: the container as it is now, and where the reconciles' time went.
    let (code, metrics) = request(port, "GET", "/metrics", &[]);
    assert_eq!(code, 200);
    assert!(
        metrics.contains(&format!("hawser_resource_running{{project=\"{p}\",kind=\"Container\",name=\"{p}-web\"}} 1")),
        "{metrics}"
    );
    assert!(
        metrics.contains(&format!("hawser_resource_restarts{{project=\"{p}\",kind=\"Container\",name=\"{p}-web\"}} 0"))
    );
    for phase in ["fetch", "plan", "apply"] {
        assert!(metrics.contains(&format!("phase=\"{phase}\"")), "no {phase} phase in {metrics}");
    }

    // No page shows the secret.
    for path in ["/", "/history", "/status", &format!("/sources/{}", s.path().file_name().unwrap().to_string_lossy())] {
        let (code, body) = request(port, "GET", path, &[("Accept", "text/html")]);
        assert_eq!(code, 200, "{path}");
        assert!(!body.contains(marker), "{path} shows the secret");
    }
}

#[test]
fn off_loopback_every_page_wants_the_token_and_the_login_form_takes_it() {
    let p = "t-dash-token";
    let s = Stack::new(p);
    s.commit("empty");
    // Without a token, listening beyond loopback is refused.
    let mut c = serve(&s, "0.0.0.0:19506", &[]);
    let status = c.wait().unwrap();
    assert!(!status.success());
    let log = std::fs::read_to_string(s.state.path().join("serve.log")).unwrap();
    assert!(log.contains("tokenFile"), "{log}");

    let token_file = s.state.path().join("dashboard.token");
    std::fs::write(&token_file, "let-me-in-7\n").unwrap();
    let port = 19506;
    let _serve = Serve(serve(&s, &format!("0.0.0.0:{port}"), &["--token-file", token_file.to_str().unwrap()]));
    wait_healthy(port);
    let name = s.path().file_name().unwrap().to_string_lossy().to_string();
    let pages = ["/", "/history", "/status", "/metrics", "/events", &format!("/sources/{name}")];
    for path in pages {
        assert_eq!(request(port, "GET", path, &[]).0, 401, "{path} without a token");
        assert_eq!(
            request(port, "GET", path, &[("Authorization", "Bearer wrong")]).0,
            401,
            "{path} with a wrong token"
        );
        assert_eq!(
            request(port, "GET", path, &[("Authorization", "Bearer let-me-in-7")]).0,
            200,
            "{path} with the token"
        );
    }
    assert_eq!(request(port, "POST", &format!("/sources/{name}/reconcile"), &[]).0, 401);
    // Probes and webhooks need no token.
    assert_eq!(request(port, "GET", "/healthz", &[]).0, 200);

    let browser = Browser::start(19507);
    browser.open(&format!("http://127.0.0.1:{port}/"));
    assert!(browser.text("main").contains("Log in"), "{}", browser.text("main"));
    browser.screenshot(&artifacts().join("login.png"));
    browser.type_into("input[name=token]", "let-me-in-7");
    browser.click("form.login button");
    assert!(
        browser.wait(Duration::from_secs(10), |b| b.text("main").contains("Sources") && b.text("main").contains(&name)),
        "logged in: {}",
        browser.text("main")
    );
    let cookie = browser.eval("return document.cookie;", serde_json::json!([]));
    assert_eq!(cookie, "", "the session cookie is HttpOnly");
}

/// One request from loopback address `from`, naming `host`: status, headers and body.
fn raw(
    port: u16,
    from: &str,
    host: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String, String) {
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    let local: std::net::SocketAddr = format!("{from}:0").parse().unwrap();
    sock.bind(&local.into()).unwrap();
    let remote: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    sock.connect(&remote.into()).unwrap();
    let mut s: std::net::TcpStream = sock.into();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut req =
        format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nContent-Length: {}\r\n", body.len());
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    s.write_all(req.as_bytes()).unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    let code = out.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let (head, body) = out.split_once("\r\n\r\n").unwrap_or((&out, ""));
    (code, head.to_string(), body.to_string())
}

/// The form token of a page.
fn csrf_of(page: &str) -> String {
    page.split("name=\"csrf\" content=\"").nth(1).and_then(|r| r.split('"').next()).expect("a form token").to_string()
}

/// Attack: with no token on loopback, a page asked for as `Host: rebind.evil.example` (its
/// name rebound to 127.0.0.1) was served, its form token read, and "Reconcile now" posted:
/// 2,522 posts in 30 s grew the history from 1 MB to 98 MB.
#[test]
fn a_rebound_name_is_refused_and_the_button_cannot_be_pressed_in_a_loop() {
    let p = "t-dash-rebind";
    let s = Stack::new(p);
    s.commit("empty");
    let port = 19521;
    let _serve = Serve(serve(&s, &format!("127.0.0.1:{port}"), &[]));
    wait_healthy(port);
    let name = s.path().file_name().unwrap().to_string_lossy().to_string();
    let evil = "rebind.evil.example:19521";
    let html = [("Accept", "text/html")];
    let (code, _, body) = raw(port, "127.0.0.1", evil, "GET", "/", &html, "");
    assert_eq!(code, 421, "{body}");
    assert!(!body.contains("csrf") && body.contains("hostNames"), "{body}");
    for path in ["/status", "/history", "/metrics", "/login", &format!("/sources/{name}")] {
        assert_eq!(raw(port, "127.0.0.1", evil, "GET", path, &[], "").0, 421, "{path}");
    }
    let own = format!("127.0.0.1:{port}");
    let (code, _, page) = raw(port, "127.0.0.1", &own, "GET", "/", &html, "");
    assert_eq!(code, 200);
    let csrf = csrf_of(&page);
    let form = [("Content-Type", "application/x-www-form-urlencoded"), ("Origin", "http://127.0.0.1:19521")];
    let body = format!("csrf={csrf}");
    let (code, _, _) = raw(port, "127.0.0.1", evil, "POST", &format!("/sources/{name}/reconcile"), &form, &body);
    assert_eq!(code, 421, "the rebound page cannot press the button even with the token");
    // Probes keep answering whatever name they use.
    assert_eq!(raw(port, "127.0.0.1", evil, "GET", "/healthz", &[], "").0, 200);

    // From the service's own page, pressed in a loop: one is taken, the rest are told to wait.
    let t = Instant::now();
    while history_rows(&s) == 0 {
        assert!(t.elapsed() < Duration::from_secs(30), "the first reconcile is recorded");
        std::thread::sleep(Duration::from_millis(200));
    }
    let rows_before = history_rows(&s);
    let mut codes = Vec::new();
    for _ in 0..50 {
        codes.push(raw(port, "127.0.0.1", &own, "POST", &format!("/sources/{name}/reconcile"), &form, &body).0);
    }
    assert_eq!(codes.iter().filter(|c| **c == 303).count(), 1, "{codes:?}");
    assert_eq!(codes.iter().filter(|c| **c == 429).count(), 49, "{codes:?}");
    std::thread::sleep(Duration::from_secs(3));
    let added = history_rows(&s) - rows_before;
    assert!(added <= 1, "{added} reconciles for 50 presses");
}

fn history_rows(s: &Stack) -> usize {
    let out = s.hawser(&["history", "--limit", "1000", "--output", "json"]);
    serde_json::from_str::<serde_json::Value>(&out.stdout).ok().and_then(|v| v.as_array().map(Vec::len)).unwrap_or(0)
}

/// Attack: login had no throttling (300 guesses in 0.1 s), and the session cookie was a fixed
/// value that survived logout.
#[test]
fn wrong_tokens_are_throttled_and_a_session_ends_at_logout() {
    let p = "t-dash-login";
    let s = Stack::new(p);
    s.commit("empty");
    let token_file = s.state.path().join("dashboard.token");
    std::fs::write(&token_file, "let-me-in-9\n").unwrap();
    let port = 19522;
    let _serve = Serve(serve(&s, &format!("127.0.0.1:{port}"), &["--token-file", token_file.to_str().unwrap()]));
    wait_healthy(port);
    let own = format!("127.0.0.1:{port}");
    let (_, _, page) = raw(port, "127.0.0.1", &own, "GET", "/login", &[], "");
    let csrf = csrf_of(&page);
    let form = [("Content-Type", "application/x-www-form-urlencoded"), ("Origin", "http://127.0.0.1:19522")];
    let login =
        |from: &str, token: &str| raw(port, from, &own, "POST", "/login", &form, &format!("csrf={csrf}&token={token}"));
    let started = Instant::now();
    let mut codes = Vec::new();
    for i in 0..300 {
        codes.push(login("127.0.0.3", &format!("guess{i}")).0);
    }
    assert_eq!(codes.iter().filter(|c| **c == 401).count(), 10, "ten wrong tokens are looked at: {codes:?}");
    assert_eq!(codes.iter().filter(|c| **c == 429).count(), 290);
    assert!(started.elapsed() < Duration::from_secs(30));
    // Even the right token waits, from that address; bearer tokens too.
    assert_eq!(login("127.0.0.3", "let-me-in-9").0, 429);
    let bearer = [("Authorization", "Bearer let-me-in-9")];
    assert_eq!(raw(port, "127.0.0.3", &own, "GET", "/status", &bearer, "").0, 429);
    // Another address logs in; each login is a session of its own.
    let cookie_of = |head: &str| {
        head.lines()
            .find_map(|l| l.strip_prefix("set-cookie: ").or_else(|| l.strip_prefix("Set-Cookie: ")))
            .and_then(|c| c.split(';').next())
            .expect("a session cookie")
            .to_string()
    };
    let (code, head, _) = login("127.0.0.4", "let-me-in-9");
    assert_eq!(code, 303, "{head}");
    let first = cookie_of(&head);
    let (_, head, _) = login("127.0.0.4", "let-me-in-9");
    let second = cookie_of(&head);
    assert_ne!(first, second);
    assert!(!first.contains("let-me-in-9"));
    let with = |c: &str| raw(port, "127.0.0.4", &own, "GET", "/status", &[("Cookie", c)], "").0;
    assert_eq!(with(&first), 200);
    // Logged out: the cookie is refused, wherever it was copied to.
    let out = raw(
        port,
        "127.0.0.4",
        &own,
        "POST",
        "/logout",
        &[form[0], form[1], ("Cookie", &first)],
        &format!("csrf={csrf}"),
    );
    assert_eq!(out.0, 303, "{out:?}");
    assert_eq!(with(&first), 401);
    assert_eq!(with(&second), 200, "another session goes on");
}
