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

/// A health check that outlives its timeout leaves a process in the container whose `runc exec`
/// was killed; the monitor inherits it as the subreaper. Left unreaped, it held the container's
/// init in its exit and the container could not be stopped (seen in CI: "it did not stop within
/// 30s of SIGKILL"). It is reaped, and the container stops at once.
#[test]
fn a_container_stops_after_a_health_check_timed_out() {
    use std::time::{Duration, Instant};
    let p = "nt-reap";
    let s = Stack::new(p);
    s.write("hawser.toml", &format!("project = \"{p}\"\ntarget = \"native\"\n"));
    // Healthy at the first check; every later one sleeps past its timeout.
    s.write(
        "c.yaml",
        &format!(
            r#"kind: Container
metadata: {{name: {p}-c}}
spec:
  image: "{IMAGE}"
  command: "exec sleep 3600"
  stopTimeout: 1s
  healthcheck: {{test: "if [ -f /tmp/h ]; then exec sleep 30; fi; touch /tmp/h", interval: 100ms, timeout: 300ms, retries: 1000}}
"#
        ),
    );
    s.commit("first");
    let _pruned = Pruned(&s);
    assert_eq!(s.hawser(&["apply", "-y", "{src}"]).code, 0);
    let status = || native_status(&s, &format!("{p}-c"));
    let until = Instant::now() + Duration::from_secs(10);
    while !status()["health_output"].as_str().is_some_and(|o| o.contains("timed out")) {
        assert!(Instant::now() < until, "no check timed out: {}", status());
        std::thread::sleep(Duration::from_millis(50));
    }
    s.write("c.yaml", "");
    s.commit("empty");
    let began = Instant::now();
    let r = s.hawser(&["apply", "-y", "--prune", "--allow-empty", "{src}"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(began.elapsed() < Duration::from_secs(10), "stopped in {:?}", began.elapsed());
    assert!(status().is_null(), "removed: {}", status());
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

/// A bridge of the test's own, removed on drop even after a failed assertion.
struct TestLink(&'static str);

impl Drop for TestLink {
    fn drop(&mut self) {
        let _ = std::process::Command::new("ip").args(["link", "delete", self.0]).status();
    }
}

/// Attack: a network's subnet was chosen from hawser's own records only; a bridge that already
/// held it on the host (another state folder, another tool) was not seen, and the new
/// network's traffic went to the other bridge. Now the host's routes count as taken: asked
/// for, such a subnet is refused with the interface that holds it, and nothing is applied.
#[test]
fn a_subnet_another_interface_of_the_host_holds_is_not_taken() {
    let p = "nt-subnet";
    let dev = "hwt-subnet0";
    let _ = std::process::Command::new("ip").args(["link", "delete", dev]).status();
    let _link = TestLink(dev);
    for args in [
        vec!["link", "add", dev, "type", "bridge"],
        vec!["addr", "add", "10.90.251.1/24", "dev", dev],
        vec!["link", "set", dev, "up"],
    ] {
        assert!(std::process::Command::new("ip").args(&args).status().unwrap().success(), "ip {args:?}");
    }
    let s = Stack::new(p);
    let _pruned = Pruned(&s);
    s.write("hawser.toml", &format!("project = \"{p}\"\ntarget = \"native\"\n"));
    s.write(
        "c.yaml",
        &format!(
            "kind: Network\nmetadata: {{name: {p}-net}}\nspec: {{ipam: {{subnet: 10.90.251.0/24}}}}\n---\nkind: Container\nmetadata: {{name: {p}-c}}\nspec:\n  image: \"{IMAGE}\"\n  command: [sleep, \"3600\"]\n  networks: [{p}-net]\n  stopTimeout: 1s\n"
        ),
    );
    s.commit("a subnet the host holds");
    let r = s.hawser(&["apply", "-y", "{src}"]);
    assert_eq!(r.code, 1, "{r:?}");
    let all = format!("{}{}", r.stdout, r.stderr);
    assert!(all.contains("subnet 10.90.251.0/24 overlaps") && all.contains(dev), "{r:?}");
    assert!(!s.state.path().join(format!("native/networks/{p}-net.json")).exists(), "no network recorded");
    // The other interface keeps its subnet, and it alone routes it.
    let routes = String::from_utf8_lossy(
        &std::process::Command::new("ip").args(["-4", "route", "show", "10.90.251.0/24"]).output().unwrap().stdout,
    )
    .to_string();
    assert_eq!(routes.lines().count(), 1, "{routes}");
    assert!(routes.contains(dev), "{routes}");
}

/// What the native store's layer folder holds besides whole layers (downloads, unpackings).
fn partial_layers(s: &Stack) -> Vec<String> {
    std::fs::read_dir(s.state.path().join("native/images/layers"))
        .map(|d| d.flatten().map(|e| e.file_name().to_string_lossy().to_string()).filter(|n| n.len() != 64).collect())
        .unwrap_or_default()
}

/// Attacks through an image a hostile publisher pushed, pulled by the native target:
/// - whiteouts under a link of the same layer (`evil -> /some/host/dir`, then `evil/.wh.X`,
///   `evil/newdir/deeper/.wh.Y`, `evil/victimdir/.wh..wh..opq`) made folders and device nodes
///   on the host and set `trusted.overlay.opaque` on a host folder;
/// - a gzip bomb (3 MB growing to 3.1 GB) was unpacked without a cap;
/// - a failed unpack left its partial layer behind (201 MB per try, and the service retries).
#[test]
fn a_hostile_layer_from_a_registry_changes_nothing_on_the_host() {
    use common::TarEntry::{File, Link};
    let p = "nt-hostile";
    let host = tempfile::tempdir().unwrap();
    std::fs::create_dir(host.path().join("victimdir")).unwrap();
    let target = host.path().display().to_string();
    let evil = gzip_tar(&[
        Link("evil".into(), target.clone()),
        File("evil/.wh.X".into(), vec![]),
        File("evil/newdir/deeper/.wh.Y".into(), vec![]),
        File("evil/victimdir/.wh..wh..opq".into(), vec![]),
    ]);
    push_layers(REG, &format!("{p}-evil"), "1", &[evil]);
    let zeros = vec![0u8; 48 << 20];
    let bomb = gzip_tar(&[File("bomb".into(), zeros.clone()), File("more".into(), zeros)]);
    assert!(bomb.len() < 1 << 20);
    push_layers(REG, &format!("{p}-bomb"), "1", &[bomb]);

    let s = Stack::new(p);
    let _pruned = Pruned(&s);
    s.write("hawser.toml", &format!("project = \"{p}\"\ntarget = \"native\"\n"));
    let image = |name: &str| {
        format!("kind: Image\nmetadata: {{name: img}}\nspec: {{ref: \"{REG}/{p}-{name}:1\", pull: always}}\n---\nkind: Container\nmetadata: {{name: {p}-c}}\nspec: {{image: img}}\n")
    };
    s.write("c.yaml", &image("evil"));
    s.commit("whiteouts under a link");
    let r = s.hawser(&["apply", "-y", "{src}"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("lies under a link"), "{r:?}");
    let made: Vec<_> = std::fs::read_dir(host.path()).unwrap().flatten().map(|e| e.file_name()).collect();
    assert_eq!(made, ["victimdir"], "nothing made in the host folder");
    let opaque = std::process::Command::new("getfattr")
        .args(["-n", "trusted.overlay.opaque"])
        .arg(host.path().join("victimdir"))
        .output();
    if let Ok(out) = opaque {
        assert!(!String::from_utf8_lossy(&out.stdout).contains("opaque"), "the host folder was made opaque");
    }
    assert!(partial_layers(&s).is_empty(), "{:?}", partial_layers(&s));

    // The bomb, under a policy that allows 64 MiB a layer: refused at the cap, twice (a retry),
    // and nothing of either try is left.
    let policy = s.state.path().join("policy.toml");
    std::fs::write(&policy, "maxLayerSize = \"64Mi\"\n").unwrap();
    s.write("c.yaml", &image("bomb"));
    s.commit("a gzip bomb");
    for _ in 0..2 {
        let r = s.hawser(&["--policy", policy.to_str().unwrap(), "apply", "-y", "{src}"]);
        assert_eq!(r.code, 1, "{r:?}");
        assert!(r.stderr.contains("maxLayerSize"), "{r:?}");
        assert!(partial_layers(&s).is_empty(), "{:?}", partial_layers(&s));
    }
    let layers = std::fs::read_dir(s.state.path().join("native/images/layers")).unwrap().count();
    assert_eq!(layers, 0, "no layer of either image was kept");
}

/// Attack: the image's `etc/passwd` was read on the host following links, with no size limit:
/// a layer's `etc/passwd -> /a/host/file` resolved a user from the host's file (and a link to
/// /dev/zero read 2.1 GB). Now a link is not followed: the user is not found in the image.
#[test]
fn an_image_user_is_never_looked_up_in_a_host_file() {
    use common::TarEntry::{File, Link};
    let p = "nt-passwd";
    let host = tempfile::tempdir().unwrap();
    let host_passwd = host.path().join("passwd");
    std::fs::write(&host_passwd, "hostonly:x:4242:4242::/:/bin/sh\n").unwrap();
    let layer = gzip_tar(&[
        File("etc/group".into(), b"root:x:0:\n".to_vec()),
        Link("etc/passwd".into(), host_passwd.display().to_string()),
    ]);
    push_layers(REG, &format!("{p}-img"), "1", &[layer]);
    let s = Stack::new(p);
    let _pruned = Pruned(&s);
    s.write("hawser.toml", &format!("project = \"{p}\"\ntarget = \"native\"\n"));
    s.write(
        "c.yaml",
        &format!("kind: Container\nmetadata: {{name: {p}-c}}\nspec: {{image: \"{REG}/{p}-img:1\", user: hostonly}}\n"),
    );
    s.commit("a user from a link");
    let r = s.hawser(&["apply", "-y", "{src}"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("user `hostonly` is not in the image's /etc/passwd"), "{r:?}");
    assert!(!format!("{}{}", r.stdout, r.stderr).contains("4242"), "{r:?}");
}

/// A postStart hook runs inside a native container (through the OCI runtime's exec).
#[test]
fn a_post_start_hook_runs_in_a_native_container() {
    let p = "nt-hook";
    let out = tempfile::tempdir().unwrap();
    let s = Stack::new(p);
    s.write("hawser.toml", &format!("project = \"{p}\"\ntarget = \"native\"\n"));
    s.write(
        "c.yaml",
        &format!(
            "kind: Container\nmetadata: {{name: {p}-c}}\nspec:\n  image: \"{IMAGE}\"\n  command: \"exec sleep 3600\"\n  stopTimeout: 1s\n  volumes: [\"{}:/out\"]\n  postStart: [{{command: [sh, -c, \"hostname > /out/started\"]}}]\n",
            out.path().display()
        ),
    );
    s.commit("first");
    let _pruned = Pruned(&s);
    let policy = s.state.path().join("policy.toml");
    std::fs::write(&policy, format!("bindRoots = [\"{}\"]\n", out.path().display())).unwrap();
    let r = s.hawser(&["--policy", &policy.display().to_string(), "apply", "-y", "{src}"]);
    assert_eq!(r.code, 0, "{r:?}");
    let started = std::fs::read_to_string(out.path().join("started")).unwrap_or_default();
    assert!(!started.trim().is_empty(), "the hook ran in the container: {r:?}");
}
