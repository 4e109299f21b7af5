//! The host policy, end to end: refused by default with a positioned error and nothing applied,
//! accepted when the policy file allows it, and bind mounts that really reach the container.

mod common;
use common::*;

fn container(p: &str, extra: &str) -> String {
    format!("kind: Container\nmetadata: {{name: {p}-c}}\nspec:\n  image: \"{IMAGE}\"\n  command: [sleep, \"3600\"]\n  stopTimeout: 1s\n{extra}")
}

fn policy_file(dir: &std::path::Path, text: &str) -> String {
    let path = dir.join("policy.toml");
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

#[test]
fn privileged_is_refused_by_default_and_accepted_when_the_policy_allows() {
    let p = "t-policy-priv";
    let s = Stack::new(p);
    s.write("c.yaml", &container(p, "  privileged: true\n"));
    s.commit("privileged");
    let r = s.hawser(&["apply", "{src}"]);
    assert_eq!(r.code, 3, "{r:?}");
    assert!(r.stderr.contains("c.yaml:7:15: `privileged: true` is refused by the host policy"), "{r:?}");
    assert!(container_id(&format!("{p}-c")).is_none());

    // Accepted: this sandboxed engine cannot start privileged containers at all, so the check
    // stops at the plan.
    let pol = policy_file(s.state.path(), "allowPrivileged = true\n");
    let r = s.hawser(&["--policy", &pol, "plan", "{src}", "--exit-code"]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stdout.contains(&format!("+ Container {p}-c: create")), "{r:?}");
}

#[test]
fn a_dangerous_capability_is_refused_by_default_and_applied_when_the_policy_allows() {
    let p = "t-policy-cap";
    let s = Stack::new(p);
    s.write("c.yaml", &container(p, "  capAdd: [NET_BIND_SERVICE, SYS_ADMIN]\n"));
    s.commit("cap");
    let r = s.hawser(&["apply", "{src}"]);
    assert_eq!(r.code, 3, "{r:?}");
    assert!(r.stderr.contains("c.yaml:7:30: capability `SYS_ADMIN` is refused by the host policy"), "{r:?}");
    assert!(!r.stderr.contains("capability `NET_BIND_SERVICE`"), "a harmless capability is fine: {r:?}");
    assert!(container_id(&format!("{p}-c")).is_none());

    let pol = policy_file(s.state.path(), "allowCapabilities = [\"SYS_ADMIN\"]\n");
    let r = s.hawser(&["--policy", &pol, "apply", "{src}"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(inspect(&format!("{p}-c"), "{{json .HostConfig.CapAdd}}").contains("SYS_ADMIN"));
}

#[test]
fn binds_escaping_the_roots_or_reaching_the_engine_socket_are_refused_unless_allowed() {
    let p = "t-policy-bind";
    let s = Stack::new(p);
    let root = tempfile::tempdir().unwrap();
    let allowed = root.path().join("allowed");
    std::fs::create_dir_all(allowed.join("data")).unwrap();
    std::os::unix::fs::symlink("/etc", allowed.join("escape")).unwrap();
    let a = allowed.display();
    let cases = [
        ("/var/run/docker.sock:/sock", "exposes the engine socket", "allowEngineSocket = true\n"),
        (
            &*format!("{a}/data/../../../../etc:/host-etc:ro"),
            "is outside the allowed roots",
            "bindRoots = [\"/etc\"]\n",
        ),
        (&*format!("{a}/escape:/host-etc:ro"), "resolved to /etc", "bindRoots = [\"/etc\"]\n"),
    ];
    for (bind, refusal, allowing) in cases {
        s.write("c.yaml", &container(p, &format!("  volumes: [\"{bind}\"]\n")));
        s.commit(bind);
        let base = policy_file(s.state.path(), &format!("bindRoots = [\"{a}\"]\n"));
        let r = s.hawser(&["--policy", &base, "validate", "{src}"]);
        assert_eq!(r.code, 3, "{bind}: {r:?}");
        assert!(r.stderr.contains("c.yaml:7:13: bind mount") && r.stderr.contains(refusal), "{bind}: {r:?}");
        let pol = policy_file(s.state.path(), allowing);
        let r = s.hawser(&["--policy", &pol, "validate", "{src}"]);
        assert_eq!(r.code, 0, "{bind} with {allowing}: {r:?}");
    }
}

#[test]
fn an_allowed_bind_mount_reaches_the_container() {
    let p = "t-policy-mount";
    let s = Stack::new(p);
    let host = tempfile::tempdir().unwrap();
    std::fs::write(host.path().join("hello.txt"), "from the host\n").unwrap();
    s.write("c.yaml", &container(p, &format!("  volumes: [\"{}:/conf:ro\"]\n", host.path().display())));
    s.commit("bind");
    let pol = policy_file(s.state.path(), &format!("bindRoots = [\"{}\"]\n", host.path().display()));
    let r = s.hawser(&["--policy", &pol, "apply", "{src}"]);
    assert_eq!(r.code, 0, "{r:?}");
    let out = exec(&format!("{p}-c"), &["cat", "/conf/hello.txt"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "from the host\n");
    let ro = exec(&format!("{p}-c"), &["touch", "/conf/x"]);
    assert!(!ro.status.success(), "mounted read-only");
}

#[test]
fn a_bad_policy_file_is_reported_with_its_position() {
    let s = Stack::new("t-policy-file");
    s.write("c.yaml", &container("t-policy-file", ""));
    s.commit("c");
    let pol = policy_file(s.state.path(), "allowPrivileged = true\nallowEverything = true\n");
    let r = s.hawser(&["--policy", &pol, "validate", "{src}"]);
    assert_eq!(r.code, 3, "{r:?}");
    assert!(r.stderr.contains(&format!("{pol}:2:1: policy: unknown field `allowEverything`")), "{r:?}");
}

/// Regressions: `cap_sys_admin` gave the container CAP_SYS_ADMIN, and a Volume binding a host
/// path through `driverOpts` mounted it read-write, both past the policy.
#[test]
fn capability_spellings_and_volume_devices_cannot_get_past_the_policy() {
    let p = "t-policy-bypass";
    let s = Stack::new(p);
    s.write("c.yaml", &container(p, "  capAdd: [cap_sys_admin]\n"));
    s.commit("lowercase cap");
    let r = s.hawser(&["apply", "{src}"]);
    assert_eq!(r.code, 3, "{r:?}");
    assert!(r.stderr.contains("c.yaml:7:12: capability `SYS_ADMIN` is refused by the host policy"), "{r:?}");
    assert!(container_id(&format!("{p}-c")).is_none());

    let host = tempfile::tempdir().unwrap();
    std::fs::write(host.path().join("hello.txt"), "bound\n").unwrap();
    let volume = |device: &str| {
        format!("kind: Volume\nmetadata: {{name: {p}-v}}\nspec:\n  driverOpts: {{type: none, o: bind, device: \"{device}\"}}\n")
    };
    s.write("c.yaml", &container(p, "  volumes: [\"t-policy-bypass-v:/data\"]\n"));
    s.write("v.yaml", &volume("/etc"));
    s.commit("bind volume");
    let r = s.hawser(&["apply", "{src}"]);
    assert_eq!(r.code, 3, "{r:?}");
    assert!(r.stderr.contains("v.yaml:4:45: volume device: bind mount `/etc` is outside the allowed roots"), "{r:?}");
    assert!(container_id(&format!("{p}-c")).is_none());
    assert!(!docker(&["volume", "ls", "-q"]).contains(&format!("{p}-v")), "nothing of the revision is applied");

    // Under a bind root, the same volume is fine and really binds the folder.
    s.write("v.yaml", &volume(&host.path().display().to_string()));
    s.commit("allowed bind volume");
    let pol = policy_file(s.state.path(), &format!("bindRoots = [\"{}\"]\n", host.path().display()));
    let r = s.hawser(&["--policy", &pol, "apply", "{src}"]);
    assert_eq!(r.code, 0, "{r:?}");
    let out = exec(&format!("{p}-c"), &["cat", "/data/hello.txt"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "bound\n");
}

/// Attack: a Volume (or compose `driver_opts`) of `type: overlay` with `lowerdir=/etc` and a
/// `device` inside the bind roots validated and applied, and the container read the host's
/// /etc/shadow. Now every host path of the mount options is held to the bind roots; an overlay
/// made entirely of folders under them still works.
#[test]
fn an_overlay_volume_cannot_read_host_folders_through_its_mount_options() {
    let p = "t-policy-overlay";
    // Made before the stack, so it outlives the container that mounts it.
    let roots = tempfile::tempdir().unwrap();
    let s = Stack::new(p);
    for d in ["lower", "upper", "work"] {
        std::fs::create_dir_all(roots.path().join(d)).unwrap();
    }
    std::fs::write(roots.path().join("lower/hello.txt"), "from the lower layer\n").unwrap();
    let pol = policy_file(s.state.path(), &format!("bindRoots = [\"{}\"]\n", roots.path().display()));
    let r = roots.path().display();
    let volume = |lower: &str| {
        format!(
            "kind: Volume\nmetadata: {{name: {p}-v}}\nspec:\n  driverOpts:\n    type: overlay\n    device: \"{r}/lower\"\n    o: \"lowerdir={lower},upperdir={r}/upper,workdir={r}/work\"\n"
        )
    };
    s.write("c.yaml", &container(p, &format!("  volumes: [\"{p}-v:/data\"]\n")));
    s.write("v.yaml", &volume("/etc"));
    s.commit("overlay of the host's /etc");
    let run = s.hawser(&["--policy", &pol, "apply", "{src}"]);
    assert_eq!(run.code, 3, "{run:?}");
    assert!(run.stderr.contains("v.yaml:7:") && run.stderr.contains("volume option `lowerdir`"), "{run:?}");
    assert!(run.stderr.contains("`/etc` is outside the allowed roots"), "{run:?}");
    assert!(container_id(&format!("{p}-c")).is_none());
    assert!(!docker(&["volume", "ls", "-q"]).contains(&format!("{p}-v")), "nothing of the revision is applied");

    // The same through a compose file's driver_opts.
    s.remove("c.yaml");
    s.remove("v.yaml");
    s.write(
        "compose.yaml",
        &format!(
            "services:\n  c:\n    image: \"{IMAGE}\"\n    command: [sleep, \"3600\"]\n    volumes: [\"data:/data\"]\nvolumes:\n  data:\n    driver_opts:\n      type: overlay\n      device: overlay\n      o: \"lowerdir=/etc:{r}/lower,upperdir={r}/upper,workdir={r}/work\"\n"
        ),
    );
    s.commit("compose overlay of the host's /etc");
    let run = s.hawser(&["--policy", &pol, "apply", "{src}"]);
    assert_eq!(run.code, 3, "{run:?}");
    assert!(run.stderr.contains("compose.yaml:11:") && run.stderr.contains("`/etc` is outside"), "{run:?}");

    // Inside the roots, the overlay is mounted and the container reads the lower folder.
    s.remove("compose.yaml");
    s.write("c.yaml", &container(p, &format!("  volumes: [\"{p}-v:/data\"]\n")));
    s.write("v.yaml", &volume(&format!("{r}/lower")));
    s.commit("overlay inside the roots");
    let run = s.hawser(&["--policy", &pol, "apply", "{src}"]);
    assert_eq!(run.code, 0, "{run:?}");
    let out = exec(&format!("{p}-c"), &["cat", "/data/hello.txt"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "from the lower layer\n");
}
