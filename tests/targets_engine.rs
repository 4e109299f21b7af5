//! The same engine tests against both one-host targets: the Docker engine of scripts/engine-up,
//! and the native target (runc, the CNI plugins, overlayfs and cgroups of this host, no
//! daemon). Each scenario is written once against [`Target`], which reads the host the way
//! its own tools do (the docker CLI; the native target's files and its OCI runtime), and is run
//! once per target: `docker::NAME` and `native::NAME`.
//!
//! Needs the `failpoints` feature for the crash scenarios (scripts/test enables it).

mod common;
use common::*;
use std::path::PathBuf;
use std::time::{Duration, Instant};

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Docker,
    Native,
}

/// One scenario's project on one target; on drop, everything of it is removed.
struct Target {
    kind: Kind,
    s: Stack,
    p: String,
    /// Ports of this scenario on this target: `base + n`.
    port_base: u16,
}

impl Target {
    fn new(kind: Kind, scenario: &str, port_base: u16) -> Target {
        let p = format!("tt-{scenario}-{}", if kind == Kind::Docker { "d" } else { "n" });
        let s = Stack::new(&p);
        let target = if kind == Kind::Docker { "docker" } else { "native" };
        s.write("hawser.toml", &format!("project = \"{p}\"\ntarget = \"{target}\"\n"));
        Target { kind, s, p, port_base: port_base + if kind == Kind::Docker { 0 } else { 5 } }
    }

    fn port(&self, n: u16) -> u16 {
        self.port_base + n
    }

    fn name(&self, suffix: &str) -> String {
        format!("{}-{suffix}", self.p)
    }

    fn native_root(&self) -> PathBuf {
        self.s.state.path().join("native")
    }

    fn hawser(&self, args: &[&str]) -> Run {
        let mut a: Vec<&str> = Vec::new();
        if self.kind == Kind::Native {
            a.extend(["--target", "native"]);
        }
        a.extend_from_slice(args);
        self.s.hawser(&a)
    }

    fn apply(&self, extra: &[&str]) -> Run {
        let mut args = vec!["apply", "-y", "{src}"];
        args.extend_from_slice(extra);
        self.s.hawser(&args)
    }

    fn apply_env(&self, env: &[(&str, &str)]) -> Run {
        self.s.hawser_env(&["apply", "-y", "{src}"], env)
    }

    fn native_status(&self, name: &str) -> serde_json::Value {
        let Some(id) = self.id(name) else { return serde_json::Value::Null };
        let b = std::fs::read(self.native_root().join("containers").join(id).join("status.json")).unwrap_or_default();
        serde_json::from_slice(&b).unwrap_or(serde_json::Value::Null)
    }

    fn id(&self, name: &str) -> Option<String> {
        match self.kind {
            Kind::Docker => container_id(name),
            Kind::Native => std::fs::read_to_string(self.native_root().join("names").join(name)).ok(),
        }
    }

    /// `running`, `exited`, `restarting`, `created`, or empty when there is no such container.
    fn state(&self, name: &str) -> String {
        match self.kind {
            Kind::Docker if container_id(name).is_none() => String::new(),
            Kind::Docker => inspect(name, "{{.State.Status}}"),
            Kind::Native => self.native_status(name)["state"].as_str().unwrap_or_default().to_string(),
        }
    }

    fn health(&self, name: &str) -> String {
        match self.kind {
            Kind::Docker => inspect(name, "{{if .State.Health}}{{.State.Health.Status}}{{end}}"),
            Kind::Native => self.native_status(name)["health"].as_str().unwrap_or_default().to_string(),
        }
    }

    fn restarts(&self, name: &str) -> i64 {
        match self.kind {
            Kind::Docker => inspect(name, "{{.RestartCount}}").parse().unwrap_or(-1),
            Kind::Native => self.native_status(name)["restart_count"].as_i64().unwrap_or(-1),
        }
    }

    /// The container's first process, as the host sees it.
    fn pid(&self, name: &str) -> i32 {
        match self.kind {
            Kind::Docker => inspect(name, "{{.State.Pid}}").parse().unwrap(),
            Kind::Native => self.native_status(name)["pid"].as_i64().unwrap() as i32,
        }
    }

    fn exec(&self, name: &str, cmd: &[&str]) -> String {
        let out = match self.kind {
            Kind::Docker => exec(name, cmd),
            Kind::Native => {
                let id = self.id(name).expect("the container exists");
                let rec: serde_json::Value = serde_json::from_slice(
                    &std::fs::read(self.native_root().join("containers").join(&id).join("container.json")).unwrap(),
                )
                .unwrap();
                std::process::Command::new(rec["runtime"].as_str().unwrap())
                    .arg("--root")
                    .arg(self.native_root().join("runtime"))
                    .arg("exec")
                    .arg(&id)
                    .args(cmd)
                    .output()
                    .unwrap()
            }
        };
        String::from_utf8_lossy(&out.stdout).to_string()
    }

    /// The containers of the project, by name (temporary names included).
    fn containers(&self) -> Vec<String> {
        let mut v = match self.kind {
            Kind::Docker => containers_named(&format!("{}-", self.p)),
            Kind::Native => std::fs::read_dir(self.native_root().join("names"))
                .map(|d| d.flatten().map(|e| e.file_name().to_string_lossy().to_string()).collect())
                .unwrap_or_default(),
        };
        v.sort();
        v
    }

    /// A file in a named volume, read on the host.
    fn volume_file(&self, volume: &str, file: &str) -> Option<String> {
        let dir = match self.kind {
            Kind::Docker => PathBuf::from(docker(&["volume", "inspect", "-f", "{{.Mountpoint}}", volume])),
            Kind::Native => self.native_root().join("volumes").join(volume).join("_data"),
        };
        std::fs::read_to_string(dir.join(file)).ok()
    }
}

impl Drop for Target {
    fn drop(&mut self) {
        if self.kind == Kind::Docker {
            return; // the Stack removes its project from the engine
        }
        // Everything goes: containers stop, their namespaces and addresses are given back.
        let empty = tempfile::tempdir().unwrap();
        std::fs::write(empty.path().join("hawser.toml"), format!("project = \"{}\"\ntarget = \"native\"\n", self.p))
            .unwrap();
        let src = empty.path().display().to_string();
        let r = hawser_in(
            empty.path(),
            self.s.state.path(),
            &["apply", "-y", "--prune", "--allow-empty", "--take-over", &src],
            &[],
        );
        if !std::thread::panicking() {
            assert_eq!(r.code, 0, "pruning the scenario's project: {r:?}");
            let left = self.containers();
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
    out.split_once("\r\n\r\n").map(|(_, body)| body.trim().to_string())
}

fn eventually(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let until = Instant::now() + limit;
    while !f() {
        assert!(Instant::now() < until, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A limit from the cgroup of process `pid` (v1 `controller/file`, or v2 `file2`).
fn cgroup_limit(pid: i32, controller: &str, file: &str, file2: &str) -> Option<u64> {
    let cg = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    for line in cg.lines() {
        let mut parts = line.splitn(3, ':');
        let (_, ctrls, path) = (parts.next()?, parts.next()?, parts.next()?);
        let f = if ctrls.split(',').any(|c| c == controller) {
            format!("/sys/fs/cgroup/{controller}{path}/{file}")
        } else if ctrls.is_empty() {
            format!("/sys/fs/cgroup{path}/{file2}")
        } else {
            continue;
        };
        if let Ok(text) = std::fs::read_to_string(f) {
            return text.trim().parse().ok();
        }
    }
    None
}

/// A web server on `port` answering `body`, with limits and a healthcheck.
fn web(t: &Target, port: u16, body: &str) -> String {
    format!(
        r#"kind: Container
metadata: {{name: {name}}}
spec:
  image: "{IMAGE}"
  command: "mkdir -p /www && echo {body} > /www/index.html && echo serving {body} && exec httpd -f -p 8080 -h /www"
  ports: ["127.0.0.1:{port}:8080"]
  resources: {{memory: 48Mi, pids: 64}}
  healthcheck: {{test: ["CMD", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1:8080/"], interval: 300ms, retries: 2}}
  stopTimeout: 1s
"#,
        name = t.name("web")
    )
}

fn lifecycle(kind: Kind) {
    let t = Target::new(kind, "life", 19630);
    t.s.write("web.yaml", &web(&t, t.port(0), "v1"));
    t.s.write(
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
  volumes: ["{p}-data:/data", "{p}-etc:/etc"]
  stopTimeout: 1s
---
kind: Volume
metadata: {{name: {p}-etc}}
"#,
            p = t.p
        ),
    );
    t.s.commit("first");
    let r = t.apply(&[]);
    assert_eq!(r.code, 0, "{r:?}");
    // A published port answers on loopback.
    eventually("the published port", Duration::from_secs(10), || http_get(t.port(0)).as_deref() == Some("v1"));
    // Limits took effect in the container's cgroup.
    let pid = t.pid(&t.name("web"));
    assert_eq!(cgroup_limit(pid, "memory", "memory.limit_in_bytes", "memory.max"), Some(48 << 20));
    assert_eq!(cgroup_limit(pid, "pids", "pids.max", "pids.max"), Some(64));
    eventually("healthy", Duration::from_secs(10), || t.health(&t.name("web")) == "healthy");
    // Confined as Docker confines: a seccomp filter, no capabilities beyond the default set.
    let status = t.exec(&t.name("web"), &["cat", "/proc/self/status"]);
    assert!(status.lines().any(|l| l.split_whitespace().collect::<Vec<_>>() == ["Seccomp:", "2"]), "{status}");
    let cap_bnd = status.lines().find(|l| l.starts_with("CapBnd:")).unwrap_or_default().to_string();
    assert_eq!(cap_bnd.split_whitespace().nth(1), Some("00000000a80425fb"), "Docker's default capabilities: {cap_bnd}");
    // Output of both streams, through `hawser logs`.
    let logs = t.hawser(&["logs", &t.name("web")]);
    assert!(logs.stdout.contains("serving v1"), "{logs:?}");
    eventually("app's output", Duration::from_secs(5), || {
        t.hawser(&["logs", &t.name("app")]).stderr.contains("to-stderr")
    });
    let tail = t.hawser(&["logs", "--tail", "1", &t.name("web")]);
    assert_eq!(tail.stdout.lines().count(), 1, "{tail:?}");
    // Followed: what it writes next arrives while `logs -f` runs.
    let mut args: Vec<String> = Vec::new();
    if kind == Kind::Native {
        args.extend(["--target".into(), "native".into()]);
    }
    args.extend(["logs".into(), "-f".into(), "--tail".into(), "0".into(), t.name("app")]);
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_hawser"))
        .args(&args)
        .env("DOCKER_HOST", docker_host())
        .env("HAWSER_STATE_DIR", t.s.state.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let out = child.stdout.take().unwrap();
    let _follow = Killed(child);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    std::thread::sleep(Duration::from_millis(500));
    t.exec(&t.name("app"), &["sh", "-c", "echo followed-line > /proc/1/fd/1"]);
    let got = rx.recv_timeout(Duration::from_secs(10));
    assert_eq!(got.as_deref(), Ok("followed-line"), "logs -f shows new output");
    eventually("the volume written", Duration::from_secs(5), || {
        t.volume_file(&format!("{}-data", t.p), "file").as_deref() == Some("kept\n")
    });
    // A new volume starts with what the image has where it is mounted.
    assert!(
        t.volume_file(&format!("{}-etc", t.p), "passwd").is_some_and(|f| f.starts_with("root:")),
        "copied from the image"
    );
    let status = t.hawser(&["status", "--project", &t.p]);
    assert!(status.stdout.contains(&t.name("web")) && status.stdout.contains("healthy"), "{status:?}");
    if kind == Kind::Native {
        // Usage read back from the container's cgroup.
        let json = t.hawser(&["status", "--project", &t.p, "--output", "json"]);
        let rows: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
        let web = rows.as_array().unwrap().iter().find(|r| r["name"] == t.name("web").as_str()).unwrap();
        assert!(web["memoryBytes"].as_u64().is_some_and(|b| b > 0 && b < 48 << 20), "{web}");
        assert!(web["cpuSeconds"].as_f64().is_some(), "{web}");
    }
    let plan = t.s.hawser(&["plan", "--exit-code", "{src}"]);
    assert_eq!(plan.code, 0, "a converged host plans no change: {plan:?}");
}

fn replacement_and_rollback(kind: Kind) {
    let t = Target::new(kind, "repl", 19640);
    let web_name = t.name("web");
    t.s.write("web.yaml", &web(&t, t.port(0), "v1"));
    t.s.commit("v1");
    assert_eq!(t.apply(&[]).code, 0);
    eventually("v1", Duration::from_secs(10), || http_get(t.port(0)).as_deref() == Some("v1"));
    let first = t.id(&web_name).unwrap();

    // A published host port: start-first, hawser switching the port to the new container.
    t.s.write("web.yaml", &web(&t, t.port(0), "v2"));
    t.s.commit("v2");
    let r = t.apply(&[]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("start-first"), "{r:?}");
    assert_ne!(t.id(&web_name).unwrap(), first, "replaced, not edited");
    eventually("v2", Duration::from_secs(10), || http_get(t.port(0)).as_deref() == Some("v2"));

    // A candidate that never gets healthy: the revision fails and v2 serves again.
    t.s.write("web.yaml", &web(&t, t.port(0), "v3").replace("http://127.0.0.1:8080/", "http://127.0.0.1:9/"));
    t.s.commit("v3");
    let r = t.apply(&[]);
    assert_eq!(r.code, 1, "{r:?}");
    eventually("v2 again", Duration::from_secs(15), || http_get(t.port(0)).as_deref() == Some("v2"));
    assert_eq!(t.containers(), vec![web_name.clone()], "one container, under its name");

    // Without a host port: start-first, the old one serving until the new one is healthy.
    let no_port =
        |body: &str| web(&t, t.port(0), body).replace(&format!("  ports: [\"127.0.0.1:{}:8080\"]\n", t.port(0)), "");
    t.s.write("web.yaml", &no_port("v4"));
    t.s.commit("v4");
    let r = t.apply(&[]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("start-first"), "{r:?}");
    assert_eq!(t.exec(&web_name, &["cat", "/www/index.html"]).trim(), "v4");
    t.s.write("web.yaml", &no_port("v5").replace("http://127.0.0.1:8080/", "http://127.0.0.1:9/"));
    t.s.commit("v5");
    let r = t.apply(&[]);
    assert_eq!(r.code, 1, "{r:?}");
    assert_eq!(t.exec(&web_name, &["cat", "/www/index.html"]).trim(), "v4", "the old one kept serving");
    assert_eq!(t.containers(), vec![web_name.clone()], "the candidate is gone");
}

/// hawser dies at `point` of a replacement; the next apply converges with the volume's data.
fn crash_at(kind: Kind, scenario: &str, point: &str, port: Option<u16>) {
    let t = Target::new(kind, scenario, port.unwrap_or(0));
    let svc = |version: &str| {
        let ports = port.map(|_| format!("  ports: [\"127.0.0.1:{}:8080\"]\n", t.port(0))).unwrap_or_default();
        format!(
            "kind: Volume\nmetadata: {{name: {p}-data}}\n---\nkind: Container\nmetadata: {{name: {p}-svc}}\nspec:\n  image: \"{IMAGE}\"\n  command: [sleep, \"3600\"]\n  env: {{VERSION: \"{version}\"}}\n  volumes: [\"{p}-data:/data\"]\n  stopTimeout: 1s\n{ports}",
            p = t.p
        )
    };
    let name = t.name("svc");
    t.s.write("svc.yaml", &svc("1"));
    t.s.commit("v1");
    assert_eq!(t.apply(&[]).code, 0);
    t.exec(&name, &["sh", "-c", "echo precious > /data/sentinel"]);
    t.s.write("svc.yaml", &svc("2"));
    t.s.commit("v2");
    let r = t.apply_env(&[("HAWSER_FAILPOINT", point)]);
    assert!(r.code != 0 && r.stderr.contains(&format!("failpoint {point}")), "{point}: the run must die there: {r:?}");
    let r = t.apply(&[]);
    assert_eq!(r.code, 0, "{point}: {r:?}");
    assert_eq!(t.containers(), vec![name.clone()], "{point}: exactly one container, under its name");
    assert_eq!(t.state(&name), "running", "{point}");
    assert_eq!(t.exec(&name, &["sh", "-c", "echo $VERSION"]).trim(), "2", "{point}: the new spec runs");
    assert_eq!(t.exec(&name, &["cat", "/data/sentinel"]).trim(), "precious", "{point}: volume data intact");
    assert_eq!(t.s.hawser(&["plan", "{src}", "--exit-code"]).code, 0, "{point}: converged");
}

fn drift_and_restart_backoff(kind: Kind) {
    let t = Target::new(kind, "heal", 0);
    t.s.write(
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
"#,
            p = t.p
        ),
    );
    t.s.commit("first");
    let r = t.apply(&[]);
    assert_eq!(r.code, 0, "{r:?}");
    // Restarted with a doubling backoff from 100 ms: a few restarts in 2 s, not hundreds.
    let began = Instant::now();
    eventually("restarts", Duration::from_secs(10), || t.restarts(&t.name("crash")) >= 3);
    std::thread::sleep(Duration::from_secs(2).saturating_sub(began.elapsed()));
    let count = t.restarts(&t.name("crash"));
    assert!((3..=8).contains(&count), "restarts in 2 s: {count}");
    let logs = t.hawser(&["logs", &t.name("crash")]);
    assert!(logs.stdout.matches("crashing").count() >= 3, "{logs:?}");

    // Someone kills the process of a container without a restart policy: the plan sees it
    // and apply brings it back.
    let victim = t.name("victim");
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(t.pid(&victim)), nix::sys::signal::Signal::SIGKILL).unwrap();
    eventually("the exit seen", Duration::from_secs(5), || t.state(&victim) == "exited");
    let plan = t.s.hawser(&["plan", "--exit-code", "{src}"]);
    assert_eq!(plan.code, 2, "{plan:?}");
    assert!(plan.stdout.contains(&victim), "{plan:?}");
    let r = t.apply(&[]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(t.state(&victim), "running", "{r:?}");
}

fn prune_keeps_volume_data(kind: Kind) {
    let t = Target::new(kind, "prune", 0);
    let vol = format!("{}-data", t.p);
    t.s.write("vol.yaml", &format!("kind: Volume\nmetadata: {{name: {vol}}}\n"));
    t.s.write(
        "c.yaml",
        &format!(
            "kind: Container\nmetadata: {{name: {p}-writer}}\nspec:\n  image: \"{IMAGE}\"\n  command: \"echo precious > /data/file; exec sleep 3600\"\n  volumes: [\"{vol}:/data\"]\n  stopTimeout: 1s\n",
            p = t.p
        ),
    );
    t.s.commit("first");
    assert_eq!(t.apply(&[]).code, 0);
    eventually("the write", Duration::from_secs(5), || t.volume_file(&vol, "file").is_some());
    t.s.remove("c.yaml");
    t.s.commit("no writer");
    let r = t.apply(&["--prune"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(t.id(&t.name("writer")).is_none(), "the container was removed");
    assert_eq!(t.volume_file(&vol, "file").as_deref(), Some("precious\n"), "named volumes survive prune");
}

fn reach_by_alias(kind: Kind) {
    let t = Target::new(kind, "net", 0);
    let net = |body: &str| {
        format!(
            r#"kind: Network
metadata: {{name: {p}-net}}
---
kind: Container
metadata: {{name: {p}-srv}}
spec:
  image: "{IMAGE}"
  command: "mkdir -p /www && echo {body} > /www/index.html && exec httpd -f -p 8080 -h /www"
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
"#,
            p = t.p
        )
    };
    t.s.write("net.yaml", &net("srv-v1"));
    t.s.commit("first");
    let r = t.apply(&[]);
    assert_eq!(r.code, 0, "{r:?}");
    let cli = t.name("cli");
    for host in ["backend".to_string(), t.name("srv")] {
        let url = format!("http://{host}:8080/");
        eventually(&format!("{url} from {cli}"), Duration::from_secs(10), || {
            t.exec(&cli, &["wget", "-q", "-O", "-", &url]).trim() == "srv-v1"
        });
    }
    // Replaced (start-first, under a temporary name first), it still answers to its names.
    t.s.write("net.yaml", &net("srv-v2"));
    t.s.commit("v2");
    assert_eq!(t.apply(&[]).code, 0);
    eventually("v2 by alias", Duration::from_secs(10), || {
        t.exec(&cli, &["wget", "-q", "-O", "-", "http://backend:8080/"]).trim() == "srv-v2"
    });
    assert_eq!(t.s.hawser(&["plan", "--exit-code", "{src}"]).code, 0);
}

/// Pushes an image whose /marker holds `marker` to the test registry as `name:latest`.
fn push_variant(name: &str, marker: &str) -> String {
    push_variant_to("127.0.0.1:5000", name, "latest", marker)
}

impl Target {
    /// Whether the host still has the image `reference`.
    fn has_image(&self, reference: &str) -> bool {
        match self.kind {
            Kind::Docker => docker_raw(&["image", "inspect", reference]).status.success(),
            Kind::Native => {
                let index = std::fs::read(self.native_root().join("images").join("index.json")).unwrap_or_default();
                let index: serde_json::Value = serde_json::from_slice(&index).unwrap_or_default();
                index.get(reference).is_some()
            }
        }
    }
}

fn moved_tag_and_image_clean_up(kind: Kind) {
    let t = Target::new(kind, "img", 0);
    let repo = format!("{}-app", t.p);
    let manifest = format!(
        "kind: Image\nmetadata: {{name: app}}\nspec: {{ref: \"127.0.0.1:5000/{repo}:latest\", pull: always}}\n---\nkind: Container\nmetadata: {{name: {p}-app}}\nspec: {{image: app, command: [sleep, \"3600\"], stopTimeout: 1s}}\n",
        p = t.p
    );
    let d1 = push_variant(&repo, "one");
    t.s.write("stack.yaml", &manifest);
    t.s.commit("images");
    let r = t.apply(&[]);
    assert_eq!(r.code, 0, "{r:?}");
    let app = t.name("app");
    assert_eq!(t.exec(&app, &["cat", "/marker"]).trim(), "one");
    assert_eq!(t.s.hawser(&["plan", "{src}", "--exit-code"]).code, 0, "nothing moved yet");
    // The tag moves in the registry: planned by digest, old and new.
    let d2 = push_variant(&repo, "two");
    let r = t.s.hawser(&["plan", "{src}", "--exit-code"]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stdout.contains(&d1) && r.stdout.contains(&d2), "old and new digest: {r:?}");
    let r = t.apply(&["--keep-images", "1"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(t.exec(&app, &["cat", "/marker"]).trim(), "two");
    // Only the newest image is kept: the one no container runs any more is gone.
    let (old, new) = (format!("127.0.0.1:5000/{repo}@{d1}"), format!("127.0.0.1:5000/{repo}@{d2}"));
    assert!(t.has_image(&new), "the image that runs stays");
    assert!(!t.has_image(&old), "the old image was cleaned up: {r:?}");
}

macro_rules! on_both {
    ($($name:ident => $body:expr;)*) => {
        mod docker {
            use super::*;
            $( #[test] fn $name() { let f: fn(Kind) = $body; f(Kind::Docker) } )*
        }
        mod native {
            use super::*;
            $( #[test] fn $name() { let f: fn(Kind) = $body; f(Kind::Native) } )*
        }
    };
}

on_both! {
    lifecycle_ports_limits_health_logs_and_volumes => lifecycle;
    stop_first_and_start_first_replacement_with_rollback => replacement_and_rollback;
    drift_is_repaired_and_a_crashing_container_restarted_with_backoff => drift_and_restart_backoff;
    prune_removes_containers_and_keeps_volume_data => prune_keeps_volume_data;
    containers_reach_each_other_by_name_and_alias => reach_by_alias;
    a_moved_tag_is_planned_by_digest_and_old_images_cleaned_up => moved_tag_and_image_clean_up;
    crash_at_candidate_created => |k| crash_at(k, "cc", "candidate-created", None);
    crash_at_candidate_started => |k| crash_at(k, "cs", "candidate-started", None);
    crash_at_old_stopped => |k| crash_at(k, "os", "old-stopped", None);
    crash_at_old_removed => |k| crash_at(k, "or", "old-removed", None);
    crash_before_rename => |k| crash_at(k, "br", "before-rename", None);
    stop_first_crash_at_old_stopped => |k| crash_at(k, "sos", "old-stopped", Some(19650));
    stop_first_crash_at_candidate_created => |k| crash_at(k, "scc", "candidate-created", Some(19660));
}
