//! The native target against the real thing: runc, the CNI plugins, overlayfs and cgroups of
//! this host, and images from the test registry (scripts/engine-up). No Docker engine is used.
//! Each test has a state folder of its own, so its containers are its own; on drop, its
//! project is pruned to nothing, which also checks that nothing is left behind.

mod common;
use common::*;
use std::path::PathBuf;
use std::time::{Duration, Instant};

struct Native {
    s: Stack,
}

impl Native {
    fn new(p: &str) -> Native {
        let s = Stack::new(p);
        s.write("hawser.toml", &format!("project = \"{p}\"\ntarget = \"native\"\n"));
        Native { s }
    }

    fn root(&self) -> PathBuf {
        self.s.state.path().join("native")
    }

    fn id(&self, name: &str) -> Option<String> {
        std::fs::read_to_string(self.root().join("names").join(name)).ok()
    }

    fn status(&self, name: &str) -> serde_json::Value {
        let id = self.id(name).unwrap_or_default();
        let b = std::fs::read(self.root().join("containers").join(id).join("status.json")).unwrap_or_default();
        serde_json::from_slice(&b).unwrap_or(serde_json::Value::Null)
    }

    /// Runs a command in the container through its OCI runtime; its stdout.
    fn exec(&self, name: &str, cmd: &[&str]) -> String {
        let id = self.id(name).expect("the container exists");
        let rec: serde_json::Value = serde_json::from_slice(
            &std::fs::read(self.root().join("containers").join(&id).join("container.json")).unwrap(),
        )
        .unwrap();
        let out = std::process::Command::new(rec["runtime"].as_str().unwrap())
            .arg("--root")
            .arg(self.root().join("runtime"))
            .arg("exec")
            .arg(&id)
            .args(cmd)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).to_string()
    }

    fn apply(&self, extra: &[&str]) -> Run {
        let mut args = vec!["apply", "-y", "{src}"];
        args.extend_from_slice(extra);
        self.s.hawser(&args)
    }
}

impl Drop for Native {
    fn drop(&mut self) {
        // Everything declared goes: containers stop, their namespaces and addresses are given back.
        let empty = tempfile::tempdir().unwrap();
        std::fs::write(
            empty.path().join("hawser.toml"),
            format!("project = \"{}\"\ntarget = \"native\"\n", self.s.project),
        )
        .unwrap();
        let r = hawser_in(
            empty.path(),
            self.s.state.path(),
            &["apply", "-y", "--prune", "--allow-empty", "--take-over", &empty.path().display().to_string()],
            &[],
        );
        if !std::thread::panicking() {
            assert_eq!(r.code, 0, "pruning the test's project: {r:?}");
            let left: Vec<_> = std::fs::read_dir(self.root().join("containers")).unwrap().collect();
            assert!(left.is_empty(), "containers left behind: {left:?}");
        }
    }
}

fn http_get(port: u16) -> Option<String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(3))).ok()?;
    s.write_all(b"GET / HTTP/1.0\r\nConnection: close\r\n\r\n").ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    out.split_once("\r\n\r\n").map(|(_, body)| body.to_string())
}

fn eventually(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let until = Instant::now() + limit;
    while !f() {
        assert!(Instant::now() < until, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The limit the container's memory cgroup enforces (cgroup v1, or v2).
fn memory_limit(id: &str) -> Option<u64> {
    let v1 = format!("/sys/fs/cgroup/memory/hawser/{id}/memory.limit_in_bytes");
    let v2 = format!("/sys/fs/cgroup/hawser/{id}/memory.max");
    let text = std::fs::read_to_string(v1).or_else(|_| std::fs::read_to_string(v2)).ok()?;
    text.trim().parse().ok()
}

fn pids_limit(id: &str) -> Option<u64> {
    let v1 = format!("/sys/fs/cgroup/pids/hawser/{id}/pids.max");
    let v2 = format!("/sys/fs/cgroup/hawser/{id}/pids.max");
    std::fs::read_to_string(v1).or_else(|_| std::fs::read_to_string(v2)).ok()?.trim().parse().ok()
}

fn web(p: &str, port: u16, body: &str, extra: &str) -> String {
    format!(
        r#"kind: Container
metadata: {{name: {p}-web}}
spec:
  image: "{IMAGE}"
  command: "mkdir -p /www && echo {body} > /www/index.html && echo serving {body} && exec httpd -f -p 8080 -h /www"
  ports: ["127.0.0.1:{port}:8080"]
  resources: {{memory: 48Mi, pids: 64}}
  healthcheck: {{test: ["CMD", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1:8080/"], interval: 300ms, retries: 2}}
  stopTimeout: 1s
{extra}"#
    )
}

#[test]
fn a_stack_runs_with_ports_limits_logs_and_volumes_and_a_second_plan_is_empty() {
    let p = "nt-life";
    let n = Native::new(p);
    n.s.write("web.yaml", &web(p, 19621, "v1", ""));
    n.s.write(
        "app.yaml",
        &format!(
            r#"kind: Volume
metadata: {{name: {p}-data}}
---
kind: Container
metadata: {{name: {p}-app}}
spec:
  image: "{IMAGE}"
  command: "echo kept > /data/file; echo to-stderr >&2; exec sleep 3600"
  volumes: ["{p}-data:/data"]
  user: "nobody"
  readOnly: true
  stopTimeout: 1s
"#
        ),
    );
    n.s.commit("first");
    let r = n.apply(&[]);
    assert_eq!(r.code, 0, "{r:?}");
    // A published port answers on loopback, through the default network.
    let mut body = None;
    eventually("the published port", Duration::from_secs(10), || {
        body = http_get(19621);
        body.is_some()
    });
    assert_eq!(body.unwrap().trim(), "v1");
    // Limits took effect in the container's cgroup.
    let id = n.id(&format!("{p}-web")).unwrap();
    assert_eq!(memory_limit(&id), Some(48 << 20));
    assert_eq!(pids_limit(&id), Some(64));
    // The healthcheck ran through the runtime's exec.
    eventually("healthy", Duration::from_secs(10), || n.status(&format!("{p}-web"))["health"] == "healthy");
    // Output, both streams, through `hawser logs`.
    let logs = n.s.hawser(&["--target", "native", "logs", &format!("{p}-web")]);
    assert!(logs.stdout.contains("serving v1"), "{logs:?}");
    eventually("app's output", Duration::from_secs(5), || {
        n.s.hawser(&["--target", "native", "logs", &format!("{p}-app")]).stderr.contains("to-stderr")
    });
    // `user: nobody` (by name, from the image's /etc/passwd) wrote nothing it could not; the
    // volume is writable by root only, so the write failed and the container still runs.
    assert_eq!(n.status(&format!("{p}-app"))["state"], "running");
    let status = n.s.hawser(&["--target", "native", "status", "--project", p]);
    assert!(status.stdout.contains(&format!("{p}-web")) && status.stdout.contains("healthy"), "{status:?}");
    // Nothing to do the second time.
    let plan = n.s.hawser(&["plan", "--exit-code", "{src}"]);
    assert_eq!(plan.code, 0, "a converged native host plans no change: {plan:?}");
}

#[test]
fn a_changed_container_is_replaced_and_a_failing_one_rolled_back() {
    let p = "nt-repl";
    let n = Native::new(p);
    n.s.write("web.yaml", &web(p, 19622, "v1", ""));
    n.s.commit("v1");
    assert_eq!(n.apply(&[]).code, 0);
    eventually("v1 serving", Duration::from_secs(10), || http_get(19622).is_some_and(|b| b.trim() == "v1"));
    let first = n.id(&format!("{p}-web")).unwrap();

    // A published host port makes it stop-first.
    n.s.write("web.yaml", &web(p, 19622, "v2", ""));
    n.s.commit("v2");
    let r = n.apply(&[]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("stop-first"), "{r:?}");
    let second = n.id(&format!("{p}-web")).unwrap();
    assert_ne!(first, second, "replaced, not edited");
    assert!(!n.root().join("containers").join(&first).exists(), "the old container is gone");
    eventually("v2 serving", Duration::from_secs(10), || http_get(19622).is_some_and(|b| b.trim() == "v2"));

    // A candidate that never gets healthy: the revision fails and v2 is back.
    let broken = web(p, 19622, "v3", "").replace("http://127.0.0.1:8080/", "http://127.0.0.1:9/");
    n.s.write("web.yaml", &broken);
    n.s.commit("v3");
    let r = n.apply(&[]);
    assert_eq!(r.code, 1, "{r:?}");
    eventually("v2 serving again", Duration::from_secs(15), || http_get(19622).is_some_and(|b| b.trim() == "v2"));
    assert_eq!(n.status(&format!("{p}-web"))["state"], "running");
    let plan = n.s.hawser(&["plan", "{src}"]);
    assert!(plan.stdout.contains("replace"), "v3 is still to be applied: {plan:?}");
}

#[test]
fn a_crashing_container_is_restarted_with_backoff_and_a_killed_one_repaired() {
    let p = "nt-heal";
    let n = Native::new(p);
    n.s.write(
        "c.yaml",
        &format!(
            r#"kind: Container
metadata: {{name: {p}-crash}}
spec:
  image: "{IMAGE}"
  command: "echo crashing; exit 3"
  restart: always
---
kind: Container
metadata: {{name: {p}-victim}}
spec:
  image: "{IMAGE}"
  command: "exec sleep 3600"
  stopTimeout: 1s
"#
        ),
    );
    n.s.commit("first");
    let r = n.apply(&[]);
    assert_eq!(r.code, 0, "{r:?}");
    // Backoff 100 ms, doubling: in 2 s, about 4 restarts, not hundreds.
    let began = Instant::now();
    eventually("restarts", Duration::from_secs(10), || {
        n.status(&format!("{p}-crash"))["restart_count"].as_i64() >= Some(3)
    });
    std::thread::sleep(Duration::from_secs(2).saturating_sub(began.elapsed()));
    let count = n.status(&format!("{p}-crash"))["restart_count"].as_i64().unwrap();
    assert!((3..=8).contains(&count), "restarts in 2 s: {count}");
    let logs = n.s.hawser(&["--target", "native", "logs", &format!("{p}-crash")]);
    assert!(logs.stdout.matches("crashing").count() >= 3, "{logs:?}");

    // Someone kills the process of a container that has no restart policy: the plan sees it
    // and apply brings it back.
    let pid = n.status(&format!("{p}-victim"))["pid"].as_i64().unwrap();
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), nix::sys::signal::Signal::SIGKILL).unwrap();
    eventually("the exit recorded", Duration::from_secs(5), || n.status(&format!("{p}-victim"))["state"] == "exited");
    let plan = n.s.hawser(&["plan", "--exit-code", "{src}"]);
    assert_eq!(plan.code, 2, "{plan:?}");
    assert!(plan.stdout.contains(&format!("{p}-victim")), "{plan:?}");
    let r = n.apply(&[]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(n.status(&format!("{p}-victim"))["state"], "running", "{r:?}");
}

#[test]
fn prune_removes_containers_and_keeps_volume_data() {
    let p = "nt-prune";
    let n = Native::new(p);
    let vol = format!("kind: Volume\nmetadata: {{name: {p}-data}}\n");
    n.s.write("vol.yaml", &vol);
    n.s.write(
        "c.yaml",
        &format!(
            r#"kind: Container
metadata: {{name: {p}-writer}}
spec:
  image: "{IMAGE}"
  command: "echo precious > /data/file; exec sleep 3600"
  volumes: ["{p}-data:/data"]
  stopTimeout: 1s
"#
        ),
    );
    n.s.commit("first");
    assert_eq!(n.apply(&[]).code, 0);
    let file = n.root().join("volumes").join(format!("{p}-data")).join("_data").join("file");
    eventually("the write", Duration::from_secs(5), || file.exists());
    n.s.remove("c.yaml");
    n.s.commit("no writer");
    let r = n.apply(&["--prune"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(n.id(&format!("{p}-writer")).is_none(), "the container was removed");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "precious\n", "named volumes survive");
}

#[test]
fn what_the_native_target_cannot_do_is_refused_at_its_position() {
    let p = "nt-refuse";
    let n = Native::new(p);
    n.s.write(
        "c.yaml",
        &format!(
            r#"kind: Image
metadata: {{name: built}}
spec: {{ref: "127.0.0.1:5000/built:1", build: {{context: .}}}}
---
kind: Container
metadata: {{name: {p}-c}}
spec:
  image: "{IMAGE}"
  tty: true
  ports: ["8080"]
"#
        ),
    );
    n.s.write("Dockerfile", "FROM scratch\n");
    n.s.commit("first");
    let r = n.s.hawser(&["validate", "{src}"]);
    assert_eq!(r.code, 3, "{r:?}");
    assert!(r.stderr.contains("c.yaml:1:") && r.stderr.contains("image builder"), "{r:?}");
    assert!(r.stderr.contains("c.yaml:9:") && r.stderr.contains("tty"), "{r:?}");
    assert!(r.stderr.contains("c.yaml:10:") && r.stderr.contains("give the host port"), "{r:?}");
}

#[test]
fn containers_on_a_network_reach_each_other_by_name_and_alias() {
    let p = "nt-net";
    let n = Native::new(p);
    n.s.write(
        "net.yaml",
        &format!(
            r#"kind: Network
metadata: {{name: {p}-net}}
---
kind: Container
metadata: {{name: {p}-srv}}
spec:
  image: "{IMAGE}"
  command: "mkdir -p /www && echo srv-ok > /www/index.html && exec httpd -f -p 8080 -h /www"
  networks:
    {p}-net: {{aliases: [backend]}}
---
kind: Container
metadata: {{name: {p}-cli}}
spec:
  image: "{IMAGE}"
  command: "exec sleep 3600"
  networks: ["{p}-net"]
  stopTimeout: 1s
"#
        ),
    );
    n.s.commit("first");
    let r = n.apply(&[]);
    assert_eq!(r.code, 0, "{r:?}");
    let cli = format!("{p}-cli");
    for host in ["backend".to_string(), format!("{p}-srv")] {
        let url = format!("http://{host}:8080/");
        let mut got = String::new();
        eventually(&format!("{url} from {cli}"), Duration::from_secs(10), || {
            got = n.exec(&cli, &["wget", "-q", "-O", "-", &url]);
            got.trim() == "srv-ok"
        });
    }
    // Replaced under a temporary name, the server still answers to its own: the names move
    // with the containers.
    n.s.write("net.yaml", &std::fs::read_to_string(n.s.path().join("net.yaml")).unwrap().replace("srv-ok", "srv-v2"));
    n.s.commit("v2");
    let r = n.apply(&[]);
    assert_eq!(r.code, 0, "{r:?}");
    eventually("v2 by alias", Duration::from_secs(10), || {
        n.exec(&cli, &["wget", "-q", "-O", "-", "http://backend:8080/"]).trim() == "srv-v2"
    });
    let plan = n.s.hawser(&["plan", "--exit-code", "{src}"]);
    assert_eq!(plan.code, 0, "{plan:?}");
}
