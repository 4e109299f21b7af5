//! `hawser serve` and push-to-deploy against the real engine and real git: local pushes, drift,
//! webhooks, a remote over `git daemon`, init-remote's hooks, and shutdown.

mod common;
use common::*;
use std::io::{Read, Write};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running `hawser serve`, stopped (SIGTERM, then SIGKILL) on drop.
struct Serve {
    child: Option<Child>,
    port: u16,
}

impl Serve {
    fn start(s: &Stack, port: u16, args: &[&str]) -> Serve {
        let log = std::fs::File::create(s.state.path().join(format!("serve-{port}.log"))).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_hawser"))
            .arg("serve")
            .args(args)
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .env("DOCKER_HOST", docker_host())
            .env("HAWSER_STATE_DIR", s.state.path())
            .env("HAWSER_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let serve = Serve { child: Some(child), port };
        wait_for(Duration::from_secs(10), || serve.get("/healthz").is_some_and(|(c, _)| c == 200))
            .expect("serve answers /healthz");
        serve
    }

    fn request(&self, method: &str, path: &str, headers: &[(&str, String)], body: &[u8]) -> Option<(u16, String)> {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        let mut req = format!(
            "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Length: {}\r\n",
            body.len()
        );
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        req.push_str("\r\n");
        s.write_all(req.as_bytes()).ok()?;
        s.write_all(body).ok()?;
        let mut out = String::new();
        s.read_to_string(&mut out).ok()?;
        let code = out.split(' ').nth(1)?.parse().ok()?;
        Some((code, out.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default()))
    }

    fn get(&self, path: &str) -> Option<(u16, String)> {
        self.request("GET", path, &[], b"")
    }

    fn status(&self) -> serde_json::Value {
        serde_json::from_str(&self.get("/status").unwrap().1).unwrap()
    }

    fn reconciles(&self) -> u64 {
        self.status()["sources"][0]["reconciles"].as_u64().unwrap()
    }

    /// Sends SIGTERM and returns how long the service took to exit.
    fn terminate(&mut self) -> Duration {
        let mut child = self.child.take().unwrap();
        let t = Instant::now();
        Command::new("kill").arg("-TERM").arg(child.id().to_string()).status().unwrap();
        for _ in 0..300 {
            if child.try_wait().unwrap().is_some() {
                return t.elapsed();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
        t.elapsed()
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        if self.child.is_some() {
            self.terminate();
        }
    }
}

fn wait_for<T>(limit: Duration, mut f: impl FnMut() -> T) -> Option<T>
where
    T: IsTrue,
{
    let start = Instant::now();
    while start.elapsed() < limit {
        let v = f();
        if v.is_true() {
            return Some(v);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}

trait IsTrue {
    fn is_true(&self) -> bool;
}
impl IsTrue for bool {
    fn is_true(&self) -> bool {
        *self
    }
}

/// Some running container of resource `name` has `version` (a start-first candidate counts: it
/// runs, and serves under the resource's name on its networks).
fn resource_runs_version(name: &str, version: &str) -> bool {
    let filter = format!("label=dev.hawser.name={name}");
    let ids = docker(&["ps", "-q", "--filter", &filter]);
    ids.lines().any(|id| {
        let out = docker_raw(&["inspect", "--format", "{{.State.Running}} {{json .Config.Env}}", id]);
        let text = String::from_utf8_lossy(&out.stdout);
        text.starts_with("true") && text.contains(&format!("VERSION={version}\""))
    })
}

#[test]
fn a_push_to_a_watched_repository_deploys_and_drift_is_repaired() {
    let p = "t-serve-push";
    let s = Stack::new(p);
    let remote = bare_remote(&s);
    let bare = remote.path().join("origin.git");
    s.push_svc("1");
    let serve = Serve::start(&s, 19481, &[bare.to_str().unwrap()]);
    assert!(wait_for(Duration::from_secs(10), || runs_version(&format!("{p}-svc"), "1")).is_some(), "first deploy");

    s.write("svc.yaml", &svc(p, "2"));
    s.commit("v2");
    let pushed = Instant::now();
    s.git(&["push", "-q", "origin", "main"]);
    let ok = wait_for(Duration::from_secs(2), || resource_runs_version(&format!("{p}-svc"), "2"));
    assert!(ok.is_some(), "the pushed change runs within 2s (after {:?})", pushed.elapsed());
    assert!(
        wait_for(Duration::from_secs(5), || runs_version(&format!("{p}-svc"), "2")).is_some(),
        "and takes the name"
    );

    // Drift: removed outside hawser, back within 2s.
    wait_for(Duration::from_secs(5), || containers_named(&format!("{p}-")).len() == 1);
    docker(&["rm", "-f", &format!("{p}-svc")]);
    let gone = Instant::now();
    let back = wait_for(Duration::from_secs(2), || runs_version(&format!("{p}-svc"), "2"));
    assert!(back.is_some(), "repaired within 2s (after {:?})", gone.elapsed());
    // Every reconcile is in the history, with its trigger and outcome (the repair's row is
    // written when that reconcile ends, a moment after the container is back).
    let history = || {
        let r = s.hawser(&["history", "--project", p, "--output", "json"]);
        assert_eq!(r.code, 0, "{r:?}");
        serde_json::from_str::<serde_json::Value>(&r.stdout).unwrap()
    };
    let changed_rows =
        |h: &serde_json::Value| h.as_array().unwrap().iter().filter(|e| e["outcome"] == "changed").count();
    wait_for(Duration::from_secs(5), || changed_rows(&history()) >= 3);
    let entries = history();
    let triggers: Vec<&str> = entries.as_array().unwrap().iter().map(|e| e["trigger"].as_str().unwrap()).collect();
    assert!(triggers.contains(&"start") && triggers.contains(&"push") && triggers.contains(&"event"), "{triggers:?}");
    let changed = entries.as_array().unwrap().iter().filter(|e| e["outcome"] == "changed").count();
    assert!(changed >= 3, "first deploy, push, repair: {entries}");
    let metrics = serve.get("/metrics").unwrap().1;
    assert!(metrics.contains("hawser_reconciles_total{source=\"origin\",outcome=\"changed\"}"), "{metrics}");
    assert!(
        metrics.contains("hawser_drift_repairs_total{source=\"origin\"} 1")
            || metrics.contains("hawser_drift_repairs_total{source=\"origin\"} 2"),
        "{metrics}"
    );
}

#[test]
fn webhooks_are_authenticated_and_bursts_coalesce() {
    let p = "t-serve-hook";
    let s = Stack::new(p);
    s.write("svc.yaml", &svc(p, "1"));
    s.commit("v1");
    let secret = s.state.path().join("hook.secret");
    std::fs::write(&secret, "hook-s3cret\n").unwrap();
    let src = s.path().to_str().unwrap().to_string();
    let serve = Serve::start(
        &s,
        19482,
        &[&src, "--webhook-secret-file", secret.to_str().unwrap(), "--interval", "10m", "--no-self-heal"],
    );
    let name = s.path().file_name().unwrap().to_str().unwrap().to_string();
    assert!(wait_for(Duration::from_secs(10), || serve.reconciles() >= 1).is_some());
    std::thread::sleep(Duration::from_millis(300));
    let before = serve.reconciles();

    let body = br#"{"ref":"refs/heads/main"}"#;
    let sig = hawser::serve::webhook::sign(b"hook-s3cret", body);
    let path = format!("/hooks/{name}");
    let (code, _) = serve.request("POST", &path, &[("X-Hub-Signature-256", sig.clone())], body).unwrap();
    assert_eq!(code, 202);
    assert!(
        wait_for(Duration::from_secs(5), || serve.reconciles() == before + 1).is_some(),
        "one valid hook, one reconcile"
    );

    let bad = hawser::serve::webhook::sign(b"wrong", body);
    assert_eq!(serve.request("POST", &path, &[("X-Hub-Signature-256", bad)], body).unwrap().0, 401);
    assert_eq!(serve.request("POST", &path, &[], body).unwrap().0, 401);
    assert_eq!(serve.request("POST", &path, &[("X-Gitlab-Token", "nope".into())], body).unwrap().0, 401);
    assert_eq!(serve.request("POST", "/hooks/unknown", &[("X-Hub-Signature-256", sig.clone())], body).unwrap().0, 404);

    std::thread::sleep(Duration::from_millis(500));
    let before = serve.reconciles();
    for _ in 0..50 {
        assert_eq!(serve.request("POST", &path, &[("X-Hub-Signature-256", sig.clone())], body).unwrap().0, 202);
    }
    // At most one at once and one when the burst is over.
    std::thread::sleep(Duration::from_secs(5));
    let burst = serve.reconciles() - before;
    let log = std::fs::read_to_string(s.state.path().join("serve-19482.log")).unwrap_or_default();
    let log: Vec<&str> = log.lines().filter(|l| l.contains("reconcile")).collect();
    assert!((1..=2).contains(&burst), "50 hooks in a burst caused {burst} reconciles:\n{}", log.join("\n"));
}

#[test]
fn an_empty_webhook_secret_refuses_to_start() {
    let s = Stack::new("t-serve-empty-secret");
    s.write("svc.yaml", &svc("t-serve-empty-secret", "1"));
    s.commit("v1");
    let secret = s.state.path().join("empty.secret");
    std::fs::write(&secret, "\n").unwrap();
    let r =
        s.hawser(&["serve", "{src}", "--webhook-secret-file", secret.to_str().unwrap(), "--listen", "127.0.0.1:19483"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("empty secret"), "{r:?}");
}

#[test]
fn a_remote_over_git_daemon_is_polled_survives_an_outage_and_follows_a_force_push() {
    let p = "t-serve-remote";
    let s = Stack::new(p);
    let remote = bare_remote(&s);
    let v1 = s.push_svc("1");
    let port = 19490;
    // git-daemon itself, not the `git` wrapper (which runs it as a child a kill would miss).
    let exec_path = String::from_utf8(Command::new("git").arg("--exec-path").output().unwrap().stdout).unwrap();
    let git_daemon = std::path::Path::new(exec_path.trim()).join("git-daemon");
    let daemon = || {
        Killed(
            Command::new(&git_daemon)
                .env("GIT_EXEC_PATH", exec_path.trim())
                .args(["--reuseaddr", "--export-all", "--listen=127.0.0.1", &format!("--port={port}")])
                .arg(format!("--base-path={}", remote.path().display()))
                .arg(remote.path())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("git daemon runs"),
        )
    };
    let mut d = daemon();
    std::thread::sleep(Duration::from_millis(500));
    let url = format!("git://127.0.0.1:{port}/origin.git");
    let serve = Serve::start(&s, 19484, &[&url, "--interval", "500ms"]);
    let log = || std::fs::read_to_string(s.state.path().join("serve-19484.log")).unwrap_or_default();
    assert!(
        wait_for(Duration::from_secs(10), || runs_version(&format!("{p}-svc"), "1")).is_some(),
        "first deploy: {}",
        log()
    );

    s.push_svc("2");
    assert!(
        wait_for(Duration::from_secs(10), || runs_version(&format!("{p}-svc"), "2")).is_some(),
        "polling picks up v2"
    );

    // The remote goes away: the deployed state stays, and the source is reported unavailable.
    d.0.kill().unwrap();
    d.0.wait().unwrap();
    let unavailable =
        wait_for(Duration::from_secs(10), || !serve.status()["sources"][0]["sourceUnavailable"].is_null());
    assert!(unavailable.is_some(), "{}", serve.status());
    assert!(runs_version(&format!("{p}-svc"), "2"));
    assert!(serve.get("/metrics").unwrap().1.contains("hawser_source_up{source=\"origin\"} 0"));

    // Back, with a force-push to the older commit: followed.
    let d = daemon();
    std::thread::sleep(Duration::from_millis(300));
    s.git(&["push", "-q", "-f", "origin", &format!("{v1}:refs/heads/main")]);
    assert!(
        wait_for(Duration::from_secs(10), || runs_version(&format!("{p}-svc"), "1")).is_some(),
        "force-push followed"
    );
    drop(d);
}

#[test]
fn init_remote_rejects_invalid_pushes_and_deploys_valid_ones() {
    let p = "t-init-remote";
    let s = Stack::new(p);
    let dir = tempfile::tempdir().unwrap();
    let bare = dir.path().join("prod.git");
    let r = s.hawser(&["init-remote", bare.to_str().unwrap(), "--project", p]);
    assert_eq!(r.code, 0, "{r:?}");
    s.git(&["remote", "add", "prod", bare.to_str().unwrap()]);

    s.write("svc.yaml", &(svc(p, "1") + "  colour: red\n"));
    s.commit("a typo");
    let out = Command::new("git").args(["push", "prod", "main"]).current_dir(s.path()).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "the push is rejected: {err}");
    assert!(err.contains("svc.yaml:8:3: unknown field `colour`"), "the pusher sees the error: {err}");
    assert!(container_id(&format!("{p}-svc")).is_none(), "nothing deployed");

    s.write("svc.yaml", &svc(p, "1"));
    s.commit("fixed");
    let out = Command::new("git").args(["push", "prod", "main"]).current_dir(s.path()).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains(&format!("+ Container {p}-svc: create")) && err.contains("hawser: deployed"),
        "the pusher sees the plan and outcome: {err}"
    );
    assert!(runs_version(&format!("{p}-svc"), "1"));
}

#[test]
fn sigterm_during_a_health_wait_exits_quickly_and_the_next_start_converges() {
    let p = "t-serve-term";
    let s = Stack::new(p);
    let slow = |version: &str| {
        svc(p, version) + "  healthcheck: {test: \"test -f /tmp/never\", interval: 500ms, retries: 100}\n  update: {healthTimeout: 60s}\n"
    };
    s.write("svc.yaml", &svc(p, "1"));
    s.commit("v1");
    assert_eq!(s.hawser(&["apply", "{src}"]).code, 0);
    s.write("svc.yaml", &slow("2"));
    s.commit("v2 never healthy");
    let src = s.path().to_str().unwrap().to_string();
    let mut serve = Serve::start(&s, 19485, &[&src]);
    // Wait until the candidate exists: the service is in its health wait.
    assert!(wait_for(Duration::from_secs(10), || containers_named(&format!("{p}-")).len() == 2).is_some());
    let took = serve.terminate();
    assert!(took < Duration::from_secs(10), "exited in {took:?}");
    assert!(runs_version(&format!("{p}-svc"), "1"), "the old container still serves");

    // The next run converges to one container per resource (here: the old one kept, since v2
    // never becomes healthy, and no candidate left behind once it gives up).
    s.write("svc.yaml", &svc(p, "3"));
    s.commit("v3");
    assert_eq!(s.hawser(&["apply", "{src}"]).code, 0);
    assert_eq!(containers_named(&format!("{p}-")), vec![format!("{p}-svc")]);
    assert!(runs_version(&format!("{p}-svc"), "3"));
}

/// Regression: `hawser_source_up` went back to 1 after a drift repair while the source's
/// branch was deleted: the repair used the last good revision, and said so of the source.
#[test]
fn a_drift_repair_while_the_source_is_away_leaves_it_down() {
    let p = "t-serve-away";
    let s = Stack::new(p);
    s.write("svc.yaml", &svc(p, "1"));
    s.commit("v1");
    s.git(&["branch", "-q", "deploy"]);
    let src = s.path().to_str().unwrap().to_string();
    let serve = Serve::start(&s, 19487, &[&src, "--ref", "deploy", "--interval", "10m"]);
    assert!(wait_for(Duration::from_secs(10), || runs_version(&format!("{p}-svc"), "1")).is_some());
    let name = s.path().file_name().unwrap().to_str().unwrap().to_string();
    let up = |serve: &Serve| {
        let m = serve.get("/metrics").unwrap().1;
        m.lines().find(|l| l.starts_with(&format!("hawser_source_up{{source=\"{name}\"}}"))).map(|l| l.ends_with(" 1"))
    };
    assert_eq!(up(&serve), Some(true));

    s.git(&["branch", "-q", "-D", "deploy"]);
    assert!(wait_for(Duration::from_secs(10), || up(&serve) == Some(false)).is_some(), "the source is down");
    docker(&["rm", "-f", &format!("{p}-svc")]);
    assert!(
        wait_for(Duration::from_secs(5), || runs_version(&format!("{p}-svc"), "1")).is_some(),
        "drift is repaired from the last good revision"
    );
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(up(&serve), Some(false), "a repair does not bring the source back");
    let status = serve.status();
    assert!(status["sources"][0]["sourceUnavailable"].is_string(), "{status}");
}
