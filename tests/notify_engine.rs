//! Notifications from `hawser serve` on the real engine to a receiver on loopback: one signed
//! message per event, a slack-format target that only wants failures, a receiver that is down
//! for 30 s and still gets the message afterwards, and no secret value in any message.

mod common;
use common::*;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Clone, Debug)]
struct Received {
    path: String,
    signature: Option<String>,
    body: String,
}

/// A loopback HTTP receiver that keeps every request it gets, until dropped.
struct Receiver {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Receiver {
    fn start(port: u16, got: Arc<Mutex<Vec<Received>>>) -> Receiver {
        let listener = TcpListener::bind(("127.0.0.1", port)).unwrap();
        listener.set_nonblocking(true).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let (g, st) = (got.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            while !st.load(Ordering::SeqCst) {
                let Ok((conn, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(20));
                    continue;
                };
                conn.set_nonblocking(false).unwrap();
                conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                let mut r = BufReader::new(conn);
                let mut line = String::new();
                r.read_line(&mut line).unwrap_or(0);
                let path = line.split(' ').nth(1).unwrap_or("").to_string();
                let (mut length, mut signature) = (0, None);
                loop {
                    let mut h = String::new();
                    if r.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
                        break;
                    }
                    let (k, v) = h.split_once(':').unwrap_or((&h, ""));
                    match k.to_ascii_lowercase().as_str() {
                        "content-length" => length = v.trim().parse().unwrap_or(0),
                        "x-hawser-signature" => signature = Some(v.trim().to_string()),
                        _ => {}
                    }
                }
                let mut body = vec![0; length];
                let _ = r.read_exact(&mut body);
                g.lock().unwrap().push(Received { path, signature, body: String::from_utf8_lossy(&body).into() });
                let _ = r.get_mut().write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
            }
        });
        Receiver { stop, thread: Some(thread) }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

struct Serve(Child);

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn app(p: &str, version: &str, command: &str, secret: &std::path::Path) -> String {
    format!(
        "kind: Container\nmetadata: {{name: {p}-web}}\nspec:\n  image: \"{IMAGE}\"\n  command: {command}\n  env: {{VERSION: \"{version}\"}}\n  secretEnv: {{API_KEY: \"{}\"}}\n  stopTimeout: 1s\n",
        secret.display()
    )
}

const SLEEP: &str = "[sleep, \"3600\"]";

fn wait_until(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let t = Instant::now();
    while t.elapsed() < limit {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

fn events(got: &Mutex<Vec<Received>>, path: &str) -> Vec<serde_json::Value> {
    got.lock()
        .unwrap()
        .iter()
        .filter(|r| r.path == path)
        .map(|r| serde_json::from_str(&r.body).unwrap_or_else(|_| serde_json::json!({"raw": r.body})))
        .collect()
}

#[test]
fn each_event_is_told_once_signed_and_a_receiver_down_for_30s_still_gets_it() {
    let p = "t-notify";
    let s = Stack::new(p);
    let files = tempfile::tempdir().unwrap();
    let f = |name: &str, text: &str| {
        let path = files.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    };
    let marker = "s3cret-notify-marker";
    let secret = f("api-key", marker);
    let policy = f("policy.toml", &format!("secretRoots = [\"{}\"]\n", files.path().display()));
    let key = f("notify.key", "notify-signing-key\n");
    let recv_port = 19510;
    let json_url = f("json.url", &format!("http://127.0.0.1:{recv_port}/json?token=url-token-marker\n"));
    let slack_url = f("slack.url", &format!("http://127.0.0.1:{recv_port}/slack\n"));
    s.write("app.yaml", &app(p, "1", SLEEP, &secret));
    let rev1 = s.commit("v1: first deploy");
    let port = 19511;
    let cfg = f(
        "serve.toml",
        &format!(
            "listen = \"127.0.0.1:{port}\"\n\n[[source]]\nname = \"shop\"\nrepo = \"{}\"\ninterval = \"10m\"\n\n\
             [[source.notify]]\nurlFile = \"{}\"\nformat = \"json\"\nsecretFile = \"{}\"\n\n\
             [[source.notify]]\nurlFile = \"{}\"\nformat = \"slack\"\nevents = [\"failed\", \"rolledBack\"]\n",
            s.path().display(),
            json_url.display(),
            key.display(),
            slack_url.display()
        ),
    );
    let got = Arc::new(Mutex::new(Vec::new()));
    let receiver = Receiver::start(recv_port, got.clone());
    let log = std::fs::File::create(s.state.path().join("serve.log")).unwrap();
    let _serve = Serve(
        Command::new(env!("CARGO_BIN_EXE_hawser"))
            .args(["serve", "--config", cfg.to_str().unwrap(), "--policy", policy.to_str().unwrap()])
            .env("DOCKER_HOST", docker_host())
            .env("HAWSER_STATE_DIR", s.state.path())
            .env("HAWSER_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap(),
    );

    // Deployed: one signed JSON message with the project, revision, subject and changes.
    assert!(
        wait_until(Duration::from_secs(60), || !events(&got, "/json?token=url-token-marker").is_empty()),
        "a message"
    );
    let first = got.lock().unwrap()[0].clone();
    assert_eq!(
        first.signature.as_deref(),
        Some(hawser::serve::webhook::sign(b"notify-signing-key", first.body.as_bytes()).as_str())
    );
    let m: serde_json::Value = serde_json::from_str(&first.body).unwrap();
    assert_eq!(m["event"], "deployed", "{m}");
    assert_eq!(m["project"], p);
    assert_eq!(m["revision"], rev1.as_str());
    assert_eq!(m["subject"], "v1: first deploy");
    assert!(m["changes"].to_string().contains(&format!("{p}-web")), "{m}");

    // Rolled back: the new container prints its environment (the secret too) and exits, so
    // it fails its gate and the old one serves on. Once to each target, though it is retried,
    // and the log lines in the cause have the secret hidden.
    s.write("app.yaml", &app(p, "2", "[sh, -c, \"env; exit 3\"]", &secret));
    s.commit("v2: a crashing build");
    assert!(wait_until(Duration::from_secs(60), || !events(&got, "/slack").is_empty()), "the slack target hears of it");
    let slack = events(&got, "/slack");
    let text = slack[0]["text"].as_str().unwrap();
    assert!(
        text.contains("rolled back") && text.contains("v2: a crashing build") && text.contains("API_KEY=***"),
        "{text}"
    );
    assert!(runs_version(&format!("{p}-web"), "1"), "the old one serves");
    // Its first retry comes 5 s later: still one message per target.
    std::thread::sleep(Duration::from_secs(8));
    let json = events(&got, "/json?token=url-token-marker");
    assert_eq!(json.iter().filter(|m| m["event"] == "rolledBack").count(), 1, "{json:?}");
    assert_eq!(events(&got, "/slack").len(), 1);
    assert!(
        json.iter().any(|m| m["event"] == "rolledBack" && m["cause"].as_str().unwrap_or("").contains("exit")),
        "{json:?}"
    );

    // The receiver goes down for 30 s; a deploy meanwhile reaches it once it is back.
    drop(receiver);
    s.write("app.yaml", &app(p, "3", SLEEP, &secret));
    let rev3 = s.commit("v3: fixed");
    assert!(wait_until(Duration::from_secs(60), || runs_version(&format!("{p}-web"), "3")));
    let status = || -> serde_json::Value {
        let mut c = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        c.write_all(b"GET /status HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").unwrap();
        let mut out = String::new();
        c.read_to_string(&mut out).unwrap();
        serde_json::from_str(out.split_once("\r\n\r\n").unwrap().1).unwrap()
    };
    assert!(
        wait_until(Duration::from_secs(10), || status()["sources"][0]["notify"][0]["failing"] == true),
        "the failing target shows in /status: {}",
        status()
    );
    assert!(!status().to_string().contains("url-token-marker"), "/status shows a target's URL");
    std::thread::sleep(Duration::from_secs(30));
    let before = got.lock().unwrap().len();
    let _receiver = Receiver::start(recv_port, got.clone());
    assert!(
        wait_until(Duration::from_secs(70), || events(&got, "/json?token=url-token-marker")
            .iter()
            .any(|m| m["event"] == "deployed" && m["revision"] == rev3.as_str())),
        "the deploy of v3 arrived after the receiver came back"
    );
    assert_eq!(got.lock().unwrap().len(), before + 1, "exactly one message once it is back");
    assert!(wait_until(Duration::from_secs(5), || status()["sources"][0]["notify"][0]["failing"] == false));

    // Drift: the container is removed by hand; the service puts it back and says so.
    let count =
        |event: &str| events(&got, "/json?token=url-token-marker").iter().filter(|m| m["event"] == event).count();
    docker(&["rm", "-f", &format!("{p}-web")]);
    assert!(wait_until(Duration::from_secs(60), || count("driftRepaired") == 1), "a driftRepaired message");
    assert!(runs_version(&format!("{p}-web"), "3"));

    // An invalid revision: told once, with the error's position.
    s.write("broken.yaml", "kind: Volume\nmetadata: {name: v}\nspec: {colour: red}\n");
    s.commit("v4: a typo");
    assert!(wait_until(Duration::from_secs(60), || count("invalid") == 1), "an invalid message");
    let invalid = events(&got, "/json?token=url-token-marker").into_iter().find(|m| m["event"] == "invalid").unwrap();
    assert!(invalid["cause"].as_str().unwrap_or("").contains("broken.yaml:3:"), "{invalid}");

    // No message holds the secret value.
    for r in got.lock().unwrap().iter() {
        assert!(!r.body.contains(marker), "a message holds the secret: {}", r.body);
    }

    // Messages wait on disk only until delivered: the outboxes empty.
    let waiting = || -> usize {
        let root = s.state.path().join("notify");
        let dirs =
            std::fs::read_dir(&root).map(|r| r.flatten().map(|e| e.path()).collect::<Vec<_>>()).unwrap_or_default();
        assert_eq!(dirs.len(), 2, "one outbox per target: {dirs:?}");
        dirs.iter().map(|d| std::fs::read_dir(d).unwrap().count()).sum()
    };
    assert!(wait_until(Duration::from_secs(10), || waiting() == 0), "{} messages left", waiting());
}
