//! Apply's safety properties against the real engine: one apply per project at a time, network
//! replacement, and an engine that goes away mid-apply.

mod common;
use common::*;
use std::process::{Command, Stdio};

fn sleeper(p: &str, version: &str) -> String {
    format!(
        "kind: Network\nmetadata: {{name: {p}-net}}\n---\nkind: Container\nmetadata: {{name: {p}-svc}}\nspec:\n  image: \"{IMAGE}\"\n  command: [sleep, \"3600\"]\n  env: {{VERSION: \"{version}\"}}\n  networks: [{p}-net]\n  stopTimeout: 1s\n"
    )
}

#[test]
fn of_two_applies_at_once_exactly_one_makes_changes() {
    let p = "t-lock";
    let s = Stack::new(p);
    s.write("svc.yaml", &sleeper(p, "1"));
    s.commit("v1");
    assert_eq!(s.hawser(&["apply", "{src}"]).code, 0);
    s.write("svc.yaml", &sleeper(p, "2"));
    s.commit("v2");

    let spawn = || {
        Command::new(env!("CARGO_BIN_EXE_hawser"))
            .args(["apply", s.path().to_str().unwrap()])
            .env("DOCKER_HOST", docker_host())
            .env("HAWSER_STATE_DIR", s.state.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (spawn(), spawn());
    let outs: Vec<_> = [a, b].into_iter().map(|c| c.wait_with_output().unwrap()).collect();
    for o in &outs {
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    let changed = outs.iter().filter(|o| String::from_utf8_lossy(&o.stdout).contains("replaced (start-first)")).count();
    assert_eq!(changed, 1, "exactly one apply replaces the container");
    let waited = outs
        .iter()
        .any(|o| String::from_utf8_lossy(&o.stderr).contains("waiting for another apply of project `t-lock`"));
    assert!(waited, "the other one waited for the lock and then found nothing to do");
    let filter = format!("label=dev.hawser.name={p}-svc");
    assert_eq!(docker(&["ps", "-a", "--filter", &filter, "--format", "{{.Names}}"]), format!("{p}-svc"));
}

#[test]
fn a_changed_network_is_replaced_and_its_containers_reattached() {
    let p = "t-netchange";
    let s = Stack::new(p);
    s.write("svc.yaml", &sleeper(p, "1"));
    s.commit("v1");
    assert_eq!(s.hawser(&["apply", "{src}"]).code, 0);
    let old_net = docker(&["network", "inspect", "--format", "{{.Id}}", &format!("{p}-net")]);
    assert_eq!(docker(&["network", "inspect", "--format", "{{.Internal}}", &format!("{p}-net")]), "false");

    s.write(
        "svc.yaml",
        &sleeper(p, "1").replace(
            &format!("metadata: {{name: {p}-net}}"),
            &format!("metadata: {{name: {p}-net}}\nspec: {{internal: true}}"),
        ),
    );
    s.commit("internal network");
    let r = s.hawser(&["plan", "{src}", "--exit-code"]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stdout.contains(&format!("~ Network {p}-net: replace (stop-first) (changed: internal)")), "{r:?}");
    assert!(r.stdout.contains(&format!("network `{p}-net` is replaced")), "{r:?}");
    let r = s.hawser(&["apply", "{src}"]);
    assert_eq!(r.code, 0, "{r:?}");
    let new_net = docker(&["network", "inspect", "--format", "{{.Id}}", &format!("{p}-net")]);
    assert_ne!(new_net, old_net);
    assert_eq!(docker(&["network", "inspect", "--format", "{{.Internal}}", &format!("{p}-net")]), "true");
    let attached = inspect(&format!("{p}-svc"), "{{range $k, $v := .NetworkSettings.Networks}}{{$v.NetworkID}}{{end}}");
    assert_eq!(attached, new_net, "the container is on the new network");
    assert_eq!(inspect(&format!("{p}-svc"), "{{.State.Running}}"), "true");
    assert_eq!(s.hawser(&["plan", "{src}", "--exit-code"]).code, 0);
}

#[test]
fn lock_timeout_gives_up_with_a_clear_error() {
    let p = "t-locktimeout";
    let s = Stack::new(p);
    s.write("svc.yaml", &sleeper(p, "1"));
    s.commit("v1");
    // Hold the project's lock from this test process.
    let _held = hawser::lock::acquire(s.state.path(), p, None, &mut |_| {}).unwrap();
    let r = s.hawser(&["apply", "{src}", "--lock-timeout", "500ms"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("another apply of project `t-lock") && r.stderr.contains("holds the lock"), "{r:?}");
    assert!(container_id(&format!("{p}-svc")).is_none(), "nothing applied");
}

/// A dockerd of this test's own (its own socket, data, containerd and bridge), so stopping it
/// disturbs no other test. Its bridge is its own: a dockerd started with `--bridge none` would
/// delete the shared engine's docker0.
struct PrivateEngine {
    dir: tempfile::TempDir,
    bridge: String,
    child: Option<std::process::Child>,
}

impl PrivateEngine {
    fn start() -> PrivateEngine {
        let dir = tempfile::Builder::new().prefix("hd").tempdir_in("/tmp").unwrap();
        let bridge = format!("hd{}", std::process::id() % 100_000);
        let ip = |args: &[&str]| Command::new("ip").args(args).status().expect("ip (iproute2) runs");
        let _ = Command::new("ip").args(["link", "del", &bridge]).output();
        assert!(ip(&["link", "add", &bridge, "type", "bridge"]).success());
        assert!(ip(&["addr", "add", "172.31.253.1/24", "dev", &bridge]).success());
        assert!(ip(&["link", "set", &bridge, "up"]).success());
        let mut e = PrivateEngine { dir, bridge, child: None };
        e.up();
        e
    }

    fn host(&self) -> String {
        format!("unix://{}/d.sock", self.dir.path().display())
    }

    fn up(&mut self) {
        let d = self.dir.path();
        let log = std::fs::File::create(d.join("dockerd.log")).unwrap();
        let child = Command::new("dockerd")
            .arg("--host")
            .arg(self.host())
            .arg("--data-root")
            .arg(d.join("data"))
            .arg("--exec-root")
            .arg(d.join("x"))
            .arg("--pidfile")
            .arg(d.join("pid"))
            .args(["--bridge", &self.bridge, "--iptables=false", "--ip-masq=false"])
            .args(["--containerd-namespace", "hd-test", "--containerd-plugins-namespace", "hd-test-p"])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("dockerd runs (scripts/engine-up installs it)");
        self.child = Some(child);
        for _ in 0..150 {
            let ok =
                Command::new("docker").args(["-H", &self.host(), "version"]).output().is_ok_and(|o| o.status.success());
            if ok {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
        panic!(
            "private dockerd did not come up: {}",
            std::fs::read_to_string(d.join("dockerd.log")).unwrap_or_default()
        );
    }

    fn down(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill").arg("-TERM").arg(c.id().to_string()).status();
            let _ = c.wait();
        }
    }

    fn docker(&self, args: &[&str]) -> String {
        let o = Command::new("docker").args(["-H", &self.host()]).args(args).output().unwrap();
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    }
}

impl Drop for PrivateEngine {
    fn drop(&mut self) {
        if self.child.is_some() {
            let ids = self.docker(&["ps", "-aq"]);
            for id in ids.lines() {
                self.docker(&["rm", "-f", id]);
            }
        }
        self.down();
        let _ = Command::new("ip").args(["link", "del", &self.bridge]).output();
    }
}

#[test]
fn an_engine_that_goes_away_mid_apply_gives_a_clear_error_and_the_next_run_converges() {
    let mut engine = PrivateEngine::start();
    let p = "t-engine-gone";
    let s = Stack::new(p);
    let manifest = |version: &str| {
        format!(
            "kind: Container\nmetadata: {{name: {p}-svc}}\nspec:\n  image: \"{IMAGE}\"\n  command: \"sleep 3; touch /tmp/up; exec sleep 3600\"\n  env: {{VERSION: \"{version}\"}}\n  healthcheck: {{test: \"test -f /tmp/up\", interval: 200ms, retries: 50}}\n  stopTimeout: 1s\n"
        )
    };
    let host = engine.host();
    let run = |args: &[&str]| {
        let src = s.path().to_str().unwrap().to_string();
        let args: Vec<String> = args.iter().map(|a| a.replace("{src}", &src)).collect();
        let o = Command::new(env!("CARGO_BIN_EXE_hawser"))
            .args(&args)
            .env("DOCKER_HOST", &host)
            .env("HAWSER_STATE_DIR", s.state.path())
            .output()
            .unwrap();
        (
            o.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&o.stdout).to_string(),
            String::from_utf8_lossy(&o.stderr).to_string(),
        )
    };
    s.write("svc.yaml", &manifest("1"));
    s.commit("v1");
    let (code, out, err) = run(&["apply", "{src}"]);
    assert_eq!(code, 0, "{out}{err}");

    s.write("svc.yaml", &manifest("2"));
    s.commit("v2");
    let child = Command::new(env!("CARGO_BIN_EXE_hawser"))
        .args(["apply", s.path().to_str().unwrap()])
        .env("DOCKER_HOST", engine.host())
        .env("HAWSER_STATE_DIR", s.state.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The candidate needs 3s to become healthy; the engine stops while apply waits for it.
    std::thread::sleep(std::time::Duration::from_millis(1500));
    engine.down();
    let o = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    eprintln!("{err}");
    assert!(err.contains("cannot reach the engine"), "a clear error: {err}");

    engine.up();
    let (code, out, err) = run(&["apply", "{src}"]);
    assert_eq!(code, 0, "{out}{err}");
    let names = engine.docker(&["ps", "-a", "--format", "{{.Names}}"]);
    assert_eq!(names, format!("{p}-svc"), "one container under its name");
    assert!(engine.docker(&["inspect", "--format", "{{json .Config.Env}}", &format!("{p}-svc")]).contains("VERSION=2"));
    let (code, out, err) = run(&["plan", "{src}", "--exit-code"]);
    assert_eq!(code, 0, "converged: {out}{err}");
}
