//! What only the native target does: its refusals. Everything it shares with the Docker target
//! is tested on both, in targets_engine.rs.

mod common;
use common::*;

/// On drop, even after a failed assertion, the project's native containers are pruned: none
/// keeps running after its test.
struct Pruned<'a>(&'a Stack);

impl Drop for Pruned<'_> {
    fn drop(&mut self) {
        let empty = tempfile::tempdir().unwrap();
        let toml = format!("project = \"{}\"\ntarget = \"native\"\n", self.0.project);
        std::fs::write(empty.path().join("hawser.toml"), toml).unwrap();
        let src = empty.path().display().to_string();
        let args = ["apply", "-y", "--prune", "--allow-empty", "--take-over", &src];
        let r = hawser_in(empty.path(), self.0.state.path(), &args, &[]);
        if !std::thread::panicking() {
            assert_eq!(r.code, 0, "pruning the test's project: {r:?}");
        }
    }
}

/// A native-target project whose one container, `{p}-c`, runs `command`; committed.
fn one_container(p: &str, command: &str) -> Stack {
    let s = Stack::new(p);
    s.write("hawser.toml", &format!("project = \"{p}\"\ntarget = \"native\"\n"));
    s.write(
        "c.yaml",
        &format!(
            "kind: Container\nmetadata: {{name: {p}-c}}\nspec:\n  image: \"{IMAGE}\"\n  command: \"{command}\"\n  stopTimeout: 1s\n"
        ),
    );
    s.commit("first");
    s
}

/// The container's status as its monitor recorded it (null when there is no such container).
fn native_status(s: &Stack, name: &str) -> serde_json::Value {
    let root = s.state.path().join("native");
    let id = std::fs::read_to_string(root.join("names").join(name)).unwrap_or_default();
    serde_json::from_slice(&std::fs::read(root.join("containers").join(id).join("status.json")).unwrap_or_default())
        .unwrap_or(serde_json::Value::Null)
}

#[test]
fn what_the_native_target_cannot_do_is_refused_at_its_position() {
    let p = "nt-refuse";
    let s = Stack::new(p);
    s.write("hawser.toml", &format!("project = \"{p}\"\ntarget = \"native\"\n"));
    s.write(
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
    s.write("Dockerfile", "FROM scratch\n");
    s.commit("first");
    let r = s.hawser(&["validate", "{src}"]);
    assert_eq!(r.code, 3, "{r:?}");
    assert!(r.stderr.contains("c.yaml:1:") && r.stderr.contains("image builder"), "{r:?}");
    assert!(r.stderr.contains("c.yaml:9:") && r.stderr.contains("tty"), "{r:?}");
    assert!(r.stderr.contains("c.yaml:10:") && r.stderr.contains("give the host port"), "{r:?}");
}

/// `hawser serve` on a host with no Docker engine: it converges a native source, and repairs a
/// killed container as soon as its monitor records the exit, not at the next resync.
#[test]
fn serve_needs_no_engine_and_repairs_an_exit_at_once() {
    use std::time::{Duration, Instant};
    let p = "nt-serve";
    let s = one_container(p, "exec sleep 3600");
    let _pruned = Pruned(&s);
    let log = std::fs::File::create(s.state.path().join("serve.log")).unwrap();
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_hawser"))
        .args(["serve", &s.path().display().to_string(), "--interval", "1h", "--listen", "127.0.0.1:19512"])
        .env("DOCKER_HOST", "unix:///nonexistent/docker.sock")
        .env("HAWSER_STATE_DIR", s.state.path())
        .env("HAWSER_LOG", "debug")
        .stdout(std::process::Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let serve = Killed(child);
    let status = |name: &str| native_status(&s, name);
    let name = format!("{p}-c");
    let wait = |what: &str, f: &dyn Fn() -> bool| {
        let until = Instant::now() + Duration::from_secs(15);
        while !f() {
            let log = std::fs::read_to_string(s.state.path().join("serve.log")).unwrap_or_default();
            assert!(Instant::now() < until, "timed out waiting for {what}; serve's log:\n{log}");
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    wait("the first reconcile", &|| status(&name)["state"] == "running");
    let pid = status(&name)["pid"].as_i64().unwrap();
    let killed = Instant::now();
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), nix::sys::signal::Signal::SIGKILL).unwrap();
    wait("the repair", &|| status(&name)["state"] == "running" && status(&name)["pid"].as_i64() != Some(pid));
    assert!(killed.elapsed() < Duration::from_secs(10), "repaired on the exit, not at the 1 h resync");
    drop(serve);
}

/// A killed monitor leaves its container unsupervised: the plan says so, and apply runs it
/// again under a new monitor (its output kept and its exits seen again).
#[test]
fn a_container_whose_monitor_was_killed_is_run_again_under_a_new_one() {
    let p = "nt-mon";
    let s = one_container(p, "echo started; exec sleep 3600");
    let _pruned = Pruned(&s);
    assert_eq!(s.hawser(&["apply", "-y", "{src}"]).code, 0);
    let status = || native_status(&s, &format!("{p}-c"));
    let (monitor, pid) = (status()["monitor_pid"].as_i64().unwrap(), status()["pid"].as_i64().unwrap());
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(monitor as i32), nix::sys::signal::Signal::SIGKILL).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(200));
    let plan = s.hawser(&["plan", "--exit-code", "{src}"]);
    assert_eq!(plan.code, 2, "{plan:?}");
    assert!(plan.stdout.contains("dead"), "{plan:?}");
    let r = s.hawser(&["apply", "-y", "{src}"]);
    assert_eq!(r.code, 0, "{r:?}");
    let now = status();
    assert_eq!(now["state"], "running");
    assert_ne!(now["pid"].as_i64(), Some(pid), "run again");
    // Gone, or a zombie its new parent (init, or whichever subreaper runs the tests) has not
    // reaped yet.
    let gone = || {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map_or(true, |st| st.rsplit_once(") ").is_some_and(|(_, rest)| rest.starts_with('Z')))
    };
    let until = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while !gone() && std::time::Instant::now() < until {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(gone(), "the unsupervised process is gone");
    let logs = s.hawser(&["--target", "native", "logs", &format!("{p}-c")]);
    assert_eq!(logs.stdout.matches("started").count(), 2, "{logs:?}");
}

/// Attack: the native state folders were 0755, layers kept their setuid bits and containers'
/// writable folders sat under the same tree: `su nobody` ran a setuid-root file from an image
/// layer, and one a container had made setuid at run time, and got euid 0. Now the native
/// folder is 0700, as Docker keeps its own, and no file under it is reachable by another user.
#[test]
fn another_user_of_the_host_cannot_run_a_setuid_file_of_a_container_or_a_layer() {
    use std::os::unix::fs::PermissionsExt;
    let p = "nt-setuid";
    let s = one_container(p, "cp /bin/busybox /tmp/rootsh && chmod 4755 /tmp/rootsh && exec sleep 3600");
    let _pruned = Pruned(&s);
    // As a state dir under /var/lib is: others may pass through it.
    std::fs::set_permissions(s.state.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let root = s.state.path().join("native");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o755)).unwrap(); // as an older version left it
    let r = s.hawser(&["apply", "-y", "{src}"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(std::fs::metadata(&root).unwrap().permissions().mode() & 0o777, 0o700);
    let id = std::fs::read_to_string(root.join("names").join(format!("{p}-c"))).unwrap();
    let rootsh = root.join("containers").join(id.trim()).join("upper/tmp/rootsh");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while std::fs::metadata(&rootsh).map(|m| m.permissions().mode() & 0o4000 == 0).unwrap_or(true) {
        assert!(std::time::Instant::now() < deadline, "the container made no setuid file");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let layer_file = std::fs::read_dir(root.join("images/layers"))
        .unwrap()
        .flatten()
        .map(|e| e.path().join("bin/busybox"))
        .find(|p| p.exists())
        .expect("the image's busybox in a layer");
    for file in [&rootsh, &layer_file] {
        let f = file.display().to_string();
        let out = std::process::Command::new("runuser")
            .args(["-u", "nobody", "--", &f, "sh", "-c", "id -u"])
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(!out.status.success() && stdout.trim().is_empty(), "nobody ran {f}: {stdout}");
        assert!(String::from_utf8_lossy(&out.stderr).contains("Permission denied"), "{out:?}");
    }
}
