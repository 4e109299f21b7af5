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
    while let Ok(n) = s.read(&mut buf) {
        if n == 0 {
            break;
        }
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
