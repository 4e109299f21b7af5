//! Host ports that hawser publishes itself (its own NAT rules), on both one-host targets (the
//! Docker engine of this host, and the native target): a replacement switches the port from the
//! old container to the new one with no failed request, a failing revision never takes it, a
//! request begun before the switch completes, a rule lost by hand is drift, a crash at the
//! switch converges, replicas share one host port, and a UDP port moves with its flows.
//!
//! Needs the `failpoints` feature for the crash (scripts/test enables it).

mod common;
use common::*;
use std::io::{Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// GET `path` on 127.0.0.1:`port`: the body, or None when nothing answers.
fn get(port: u16, path: &str, timeout: Duration) -> Option<String> {
    let mut s = std::net::TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_secs(1)).ok()?;
    s.set_read_timeout(Some(timeout)).ok()?;
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").as_bytes()).ok()?;
    let mut buf = String::new();
    s.read_to_string(&mut buf).ok()?;
    // A CGI's own headers end in a bare blank line.
    let body = buf.replace("\r\n", "\n");
    let body = body.split_once("\n\n")?.1.trim().to_string();
    (!body.is_empty()).then_some(body)
}

/// A client asking every 20 ms until stopped: how many requests failed, and the answers in
/// the order they changed.
struct Client {
    stop: Arc<AtomicBool>,
    seen: Arc<Mutex<(usize, usize, Vec<String>)>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Client {
    fn start(port: u16) -> Client {
        let stop = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(Mutex::new((0, 0, Vec::new())));
        let (s, out) = (stop.clone(), seen.clone());
        let thread = std::thread::spawn(move || {
            // Bounded: at most two minutes of requests.
            let end = Instant::now() + Duration::from_secs(120);
            while !s.load(Ordering::Relaxed) && Instant::now() < end {
                let began = Instant::now();
                let answer = get(port, "/", Duration::from_secs(2));
                let mut o = out.lock().unwrap();
                o.0 += 1;
                match answer {
                    Some(a) if o.2.last() != Some(&a) => o.2.push(a),
                    Some(_) => {}
                    None => o.1 += 1,
                }
                drop(o);
                std::thread::sleep(Duration::from_millis(20).saturating_sub(began.elapsed()));
            }
        });
        Client { stop, seen, thread: Some(thread) }
    }

    /// Requests made, failed, and the answers as they changed.
    fn stop(mut self) -> (usize, usize, Vec<String>) {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.take().unwrap().join().unwrap();
        self.seen.lock().unwrap().clone()
    }
}

fn web(p: &str, port: u16, body: &str, check: &str) -> String {
    format!(
        r#"kind: Container
metadata: {{name: {p}-web}}
spec:
  image: "{IMAGE}"
  command: "mkdir -p /www/cgi-bin && echo {body} > /www/index.html && printf '#!/bin/sh\nsleep 5\necho Content-Type: text/plain\necho\necho slow-{body}\n' > /www/cgi-bin/slow && chmod +x /www/cgi-bin/slow && exec httpd -f -p 8080 -h /www"
  ports: ["127.0.0.1:{port}:8080"]
  stopTimeout: 1s
  healthcheck: {{test: "{check}", interval: 300ms, timeout: 1s, retries: 2}}
  update: {{healthTimeout: 10s, drainTimeout: 15s}}
"#
    )
}

const OK: &str = "wget -q -O /dev/null http://127.0.0.1:8080/";

/// A project on the Docker engine or on the native target; on drop, everything of it goes.
struct Project {
    s: Stack,
    p: String,
    native: bool,
}

impl Project {
    fn new(p: &str, native: bool) -> Project {
        let s = Stack::new(p);
        let target = if native { "native" } else { "docker" };
        s.write("hawser.toml", &format!("project = \"{p}\"\ntarget = \"{target}\"\n"));
        Project { s, p: p.to_string(), native }
    }

    /// The project's containers, by name.
    fn containers(&self) -> Vec<String> {
        if !self.native {
            return containers_named(&format!("{}-", self.p));
        }
        let names = self.s.state.path().join("native").join("names");
        let mut v: Vec<String> = std::fs::read_dir(names)
            .map(|d| d.flatten().map(|e| e.file_name().to_string_lossy().to_string()).collect())
            .unwrap_or_default();
        v.sort();
        v
    }

    fn id(&self, name: &str) -> Option<String> {
        if self.native {
            std::fs::read_to_string(self.s.state.path().join("native").join("names").join(name)).ok()
        } else {
            container_id(name)
        }
    }
}

impl Drop for Project {
    fn drop(&mut self) {
        if self.native {
            let empty = tempfile::tempdir().unwrap();
            let toml = format!("project = \"{}\"\ntarget = \"native\"\n", self.p);
            std::fs::write(empty.path().join("hawser.toml"), toml).unwrap();
            let src = empty.path().display().to_string();
            let args = ["apply", "-y", "--prune", "--allow-empty", "--take-over", &src];
            // Its containers' monitors, namespaces and rules must go before the state folder does.
            let mut r = hawser_in(empty.path(), self.s.state.path(), &args, &[]);
            for _ in 0..2 {
                if r.code == 0 {
                    break;
                }
                r = hawser_in(empty.path(), self.s.state.path(), &args, &[]);
            }
            if !std::thread::panicking() {
                assert_eq!(r.code, 0, "pruning the project: {r:?}");
                assert!(self.containers().is_empty(), "containers left: {:?}", self.containers());
            }
        }
    }
}

fn nat_rules() -> String {
    let out = std::process::Command::new("iptables-save").args(["-t", "nat"]).output().unwrap();
    String::from_utf8_lossy(&out.stdout).to_string()
}

#[test]
fn docker_a_published_port_switches_to_the_new_container_with_no_failed_request() {
    switch("t-switch-d", 19701, false);
}

#[test]
fn native_a_published_port_switches_to_the_new_container_with_no_failed_request() {
    switch("t-switch-n", 19703, true);
}

fn switch(p: &str, port: u16, native: bool) {
    let project = Project::new(p, native);
    let s = &project.s;
    s.write("web.yaml", &web(p, port, "v1", OK));
    s.commit("v1");
    assert_eq!(s.hawser(&["apply", "{src}"]).code, 0);
    let until = Instant::now() + Duration::from_secs(10);
    while get(port, "/", Duration::from_secs(1)).as_deref() != Some("v1") && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(100));
    }
    // The engine publishes nothing; hawser's rule does.
    if !native {
        assert!(matches!(inspect(&format!("{p}-web"), "{{json .HostConfig.PortBindings}}").as_str(), "{}" | "null"));
    }
    assert!(nat_rules().contains(&format!("--dport {port} -m comment --comment \"hawser {p}/{p}-web\" -j DNAT")));

    // `hawser status` shows the port where it goes.
    let mut status = vec!["status", "--project", p];
    if native {
        status = vec!["--target", "native", "status", "--project", p];
    }
    let r = s.hawser(&status);
    assert!(r.stdout.contains(&format!("127.0.0.1:{port}->8080/tcp")), "{r:?}");

    // A change: start-first through the switch, every request answered, v1 then v2.
    s.write("web.yaml", &web(p, port, "v2", OK));
    s.commit("v2");
    let client = Client::start(port);
    std::thread::sleep(Duration::from_millis(300));
    let r = s.hawser(&["apply", "{src}"]);
    std::thread::sleep(Duration::from_millis(300));
    let (made, failed, answers) = client.stop();
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("replace (start-first)"), "{r:?}");
    assert_eq!((failed, answers.clone()), (0, vec!["v1".to_string(), "v2".to_string()]), "{made} requests");

    // A revision whose healthcheck never passes: not one request fails, v2 keeps answering.
    s.write("web.yaml", &web(p, port, "v3", "exit 1"));
    s.commit("v3 broken");
    let client = Client::start(port);
    let r = s.hawser(&["apply", "{src}"]);
    let (made, failed, answers) = client.stop();
    assert_eq!(r.code, 1, "{r:?}");
    assert_eq!((failed, answers), (0, vec!["v2".to_string()]), "{made} requests");
    assert_eq!(project.containers(), vec![format!("{p}-web")]);

    // A request that takes 5 s, begun before the switch, completes: the old container is
    // drained before it stops.
    s.write("web.yaml", &web(p, port, "v4", OK));
    s.commit("v4");
    let slow = std::thread::spawn(move || get(port, "/cgi-bin/slow", Duration::from_secs(20)));
    std::thread::sleep(Duration::from_millis(500));
    let r = s.hawser(&["apply", "{src}"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(slow.join().unwrap().as_deref(), Some("slow-v2"), "the request begun on v2 completed: {r:?}");
    assert_eq!(get(port, "/", Duration::from_secs(2)).as_deref(), Some("v4"));

    // The rule deleted by hand: drift in the plan, repaired without touching the container.
    let id = project.id(&format!("{p}-web")).unwrap();
    let rule = nat_rules()
        .lines()
        .find(|l| l.contains(&format!("--comment \"hawser {p}/{p}-web\" -j DNAT")))
        .unwrap()
        .trim_start_matches("-A ")
        .to_string();
    let mut args = vec!["-w".to_string(), "-t".into(), "nat".into(), "-D".into()];
    args.extend(split(&rule));
    let del = std::process::Command::new("iptables").args(&args).output().unwrap();
    assert!(del.status.success(), "{del:?}");
    assert_eq!(get(port, "/", Duration::from_secs(1)), None, "nothing answers without the rule");
    let r = s.hawser(&["plan", "{src}", "--exit-code"]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stdout.contains("publish its host ports (drift: host ports not published to it"), "{r:?}");
    assert_eq!(s.hawser(&["apply", "{src}"]).code, 0);
    assert_eq!(get(port, "/", Duration::from_secs(2)).as_deref(), Some("v4"));
    assert_eq!(project.id(&format!("{p}-web")).as_deref(), Some(id.as_str()), "not replaced");

    // Pruned: the project's rules go with its containers, and nothing else's.
    s.write("web.yaml", "");
    s.commit("empty");
    assert_eq!(s.hawser(&["apply", "{src}", "--prune", "--allow-empty"]).code, 0);
    assert!(!nat_rules().contains(&format!("hawser {p}")), "{}", nat_rules());
}

/// A Container with `replicas`, each answering `BODY HOSTNAME` (its hostname is its own id).
fn replicated(p: &str, port: u16, body: &str, replicas: u32) -> String {
    format!(
        r#"kind: Container
metadata: {{name: {p}-web}}
spec:
  image: "{IMAGE}"
  replicas: {replicas}
  command: "mkdir -p /www && echo {body} $(hostname) > /www/index.html && exec httpd -f -p 8080 -h /www"
  ports: ["127.0.0.1:{port}:8080"]
  stopTimeout: 1s
  healthcheck: {{test: "test ! -f /tmp/sick && {OK}", interval: 300ms, timeout: 1s, retries: 2}}
  update: {{healthTimeout: 10s, drainTimeout: 5s}}
"#
    )
}

/// Runs `cmd` in the project's container `name`, on either target.
fn exec_in(project: &Project, name: &str, cmd: &[&str]) {
    let out = if project.native {
        // The OCI runtime its monitor runs it with, as its record says.
        let id = project.id(name).unwrap();
        let native = project.s.state.path().join("native");
        let record = std::fs::read(native.join("containers").join(&id).join("container.json")).unwrap();
        let record: serde_json::Value = serde_json::from_slice(&record).unwrap();
        let (runtime, root) = (record["runtime"].as_str().unwrap(), record["runtime_root"].as_str().unwrap());
        std::process::Command::new(runtime).args(["--root", root, "exec", &id]).args(cmd).output().unwrap()
    } else {
        exec(name, cmd)
    };
    assert!(out.status.success(), "{out:?}");
}

/// The distinct answers of 60 requests.
fn answers(port: u16) -> std::collections::BTreeSet<String> {
    (0..60).filter_map(|_| get(port, "/", Duration::from_secs(2))).collect()
}

#[test]
fn docker_replicas_share_one_host_port_and_roll_over_with_no_failed_request() {
    replicas("t-repl-d", 19707, false);
}

#[test]
fn native_replicas_share_one_host_port_and_roll_over_with_no_failed_request() {
    replicas("t-repl-n", 19708, true);
}

fn replicas(p: &str, port: u16, native: bool) {
    let project = Project::new(p, native);
    let s = &project.s;
    s.write("web.yaml", &replicated(p, port, "v1", 3));
    s.commit("v1");
    let r = s.hawser(&["apply", "{src}"]);
    assert_eq!(r.code, 0, "{r:?}");
    let names = |n: u32| (1..=n).map(|i| format!("{p}-web-{i}")).collect::<Vec<_>>();
    assert_eq!(project.containers(), names(3));
    // New connections are spread over the three.
    let seen = answers(port);
    assert_eq!(seen.len(), 3, "{seen:?}");
    assert!(seen.iter().all(|a| a.starts_with("v1 ")), "{seen:?}");
    let mut status = vec!["status", "--project", p];
    if native {
        status = vec!["--target", "native", "status", "--project", p];
    }
    let r = s.hawser(&status);
    assert_eq!(r.stdout.matches(&format!("127.0.0.1:{port}->8080/tcp")).count(), 3, "{r:?}");

    // A replica that turns unhealthy is taken out of the port while the others serve.
    let sick = format!("{p}-web-2");
    exec_in(&project, &sick, &["touch", "/tmp/sick"]);
    let until = Instant::now() + Duration::from_secs(15);
    loop {
        let r = s.hawser(&["plan", "{src}"]);
        if r.stdout.contains("take it out of its host ports") {
            break;
        }
        assert!(Instant::now() < until, "never planned out of rotation: {r:?}");
        std::thread::sleep(Duration::from_millis(300));
    }
    assert_eq!(s.hawser(&["apply", "{src}"]).code, 0);
    let hostname = &project.id(&sick).unwrap()[..12];
    let seen = answers(port);
    assert!(seen.len() == 2 && !seen.iter().any(|a| a.ends_with(hostname)), "{seen:?} without {hostname}");

    // A change rolls over them one at a time: no request fails, and all three are new after.
    s.write("web.yaml", &replicated(p, port, "v2", 3));
    s.commit("v2");
    let client = Client::start(port);
    let r = s.hawser(&["apply", "{src}"]);
    let (made, failed, _) = client.stop();
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(r.stdout.matches("replace (start-first)").count(), 3, "{r:?}");
    assert_eq!(failed, 0, "{made} requests");
    let seen = answers(port);
    assert!(seen.len() == 3 && seen.iter().all(|a| a.starts_with("v2 ")), "{seen:?}");

    // Scaled down: the third is unpublished and drained before it stops; nothing fails.
    s.write("web.yaml", &replicated(p, port, "v2", 2));
    s.commit("two");
    let client = Client::start(port);
    let r = s.hawser(&["apply", "{src}"]);
    let (made, failed, _) = client.stop();
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("runs 2 replicas now"), "{r:?}");
    assert_eq!(failed, 0, "{made} requests");
    assert_eq!(project.containers(), names(2));
    assert_eq!(answers(port).len(), 2);

    // Back to one container, under the Container's own name: made before the replicas go.
    s.write("web.yaml", &replicated(p, port, "v2", 1));
    s.commit("one");
    let client = Client::start(port);
    let r = s.hawser(&["apply", "{src}"]);
    let (made, failed, _) = client.stop();
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("runs as one container now"), "{r:?}");
    assert_eq!(failed, 0, "{made} requests");
    assert_eq!(project.containers(), vec![format!("{p}-web")]);
    assert_eq!(answers(port).len(), 1);
}

/// An image of the local registry with a UDP server, `/udp PORT ANSWER` (tests/support/udp_answer.rs,
/// built static here), made once per run.
fn udp_image() -> &'static str {
    static BUILT: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    BUILT.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let src = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/support/udp_answer.rs");
        let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
        let out = std::process::Command::new(rustc)
            .args(["-O", "-C", "target-feature=+crt-static", "-C", "strip=symbols", src, "-o"])
            .arg(dir.path().join("udp"))
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        std::fs::write(dir.path().join("Dockerfile"), format!("FROM {IMAGE}\nCOPY udp /udp\n")).unwrap();
        let tag = "127.0.0.1:5000/hawser-test-udp:1".to_string();
        let context = dir.path().display().to_string();
        for args in [vec!["build", "-q", "-t", &tag, &context], vec!["push", "-q", &tag]] {
            let out = docker_raw(&args);
            assert!(out.status.success(), "docker {args:?}: {out:?}");
        }
        tag
    })
}

fn udp_server(p: &str, port: u16, answer: &str) -> String {
    format!(
        r#"kind: Container
metadata: {{name: {p}-dns}}
spec:
  image: "{}"
  command: ["/udp", "5353", "{answer}"]
  ports: ["127.0.0.1:{port}:5353/udp"]
  stopTimeout: 1s
"#,
        udp_image()
    )
}

/// From one UDP socket (one flow, as a DNS resolver or a game client keeps), a datagram every
/// 20 ms: how many got no answer within 500 ms, and the answers as they changed.
fn udp_client(port: u16, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<(usize, usize, Vec<String>)> {
    std::thread::spawn(move || {
        let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.connect(("127.0.0.1", port)).unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(500))).unwrap();
        let (mut made, mut failed, mut seen) = (0, 0, Vec::<String>::new());
        let end = Instant::now() + Duration::from_secs(120);
        while !stop.load(Ordering::Relaxed) && Instant::now() < end {
            made += 1;
            let _ = sock.send(b"q");
            let mut buf = [0u8; 64];
            match sock.recv(&mut buf) {
                Ok(n) => {
                    let a = String::from_utf8_lossy(&buf[..n]).to_string();
                    if seen.last() != Some(&a) {
                        seen.push(a);
                    }
                }
                Err(_) => failed += 1,
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        (made, failed, seen)
    })
}

#[test]
fn docker_a_udp_port_moves_to_the_new_container_with_its_flows() {
    udp("t-udp-d", 19709, false);
}

#[test]
fn native_a_udp_port_moves_to_the_new_container_with_its_flows() {
    udp("t-udp-n", 19710, true);
}

fn udp(p: &str, port: u16, native: bool) {
    let project = Project::new(p, native);
    let s = &project.s;
    s.write("dns.yaml", &udp_server(p, port, "v1"));
    s.commit("v1");
    let r = s.hawser(&["apply", "{src}"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(nat_rules().contains(&format!("-p udp -m udp --dport {port} -m comment --comment \"hawser {p}/{p}-dns\"")));
    let stop = Arc::new(AtomicBool::new(false));
    let client = udp_client(port, stop.clone());
    std::thread::sleep(Duration::from_millis(300));
    s.write("dns.yaml", &udp_server(p, port, "v2"));
    s.commit("v2");
    let r = s.hawser(&["apply", "{src}"]);
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, Ordering::Relaxed);
    let (made, failed, seen) = client.join().unwrap();
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("replace (start-first)"), "{r:?}");
    // The client's one flow went to v1 and then, at the switch, to v2: its tracked flow was
    // forgotten, not left pointing at the old container.
    assert_eq!((failed, seen), (0, vec!["v1".to_string(), "v2".to_string()]), "{made} datagrams");
}

/// `-d 127.0.0.1/32 -p tcp ... --comment "hawser p/n" ...` as iptables' arguments.
fn split(rule: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    for c in rule.chars() {
        match c {
            '"' => quoted = !quoted,
            ' ' if !quoted => out.extend((!cur.is_empty()).then(|| std::mem::take(&mut cur))),
            c => cur.push(c),
        }
    }
    out.extend((!cur.is_empty()).then_some(cur));
    out
}

#[test]
fn docker_a_crash_at_the_switch_leaves_the_port_to_one_healthy_container_after_the_next_run() {
    crash_at_switch("t-swcrash-d", 19702, false);
}

#[test]
fn native_a_crash_at_the_switch_leaves_the_port_to_one_healthy_container_after_the_next_run() {
    crash_at_switch("t-swcrash-n", 19704, true);
}

fn crash_at_switch(p: &str, port: u16, native: bool) {
    let project = Project::new(p, native);
    let s = &project.s;
    s.write("web.yaml", &web(p, port, "v1", OK));
    s.commit("v1");
    assert_eq!(s.hawser(&["apply", "{src}"]).code, 0);
    s.write("web.yaml", &web(p, port, "v2", OK));
    s.commit("v2");
    let r = s.hawser_env(&["apply", "{src}"], &[("HAWSER_FAILPOINT", "switched")]);
    assert!(r.code != 0 && r.stderr.contains("failpoint switched"), "the run must die there: {r:?}");
    let r = s.hawser(&["apply", "{src}"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(project.containers(), vec![format!("{p}-web")]);
    assert_eq!(get(port, "/", Duration::from_secs(2)).as_deref(), Some("v2"));
    assert_eq!(s.hawser(&["plan", "{src}", "--exit-code"]).code, 0, "converged");
    let rules = nat_rules();
    assert_eq!(rules.matches(&format!("--comment \"hawser {p}/{p}-web\" -j DNAT")).count(), 1, "{rules}");
}

/// `hawser serve` retrying a revision whose healthcheck never passes: the port stays with the
/// container that works through every retry.
#[test]
fn retries_of_a_failing_revision_under_serve_cause_no_gap() {
    let p = "t-switchserve";
    let port = 19705;
    let project = Project::new(p, false);
    let s = &project.s;
    s.write("web.yaml", &web(p, port, "v1", OK).replace("healthTimeout: 10s", "healthTimeout: 2s"));
    s.commit("v1");
    let log = std::fs::File::create(s.state.path().join("serve.log")).unwrap();
    let src = s.dir.path().display().to_string();
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_hawser"))
        .args(["serve", &src, "--listen", "127.0.0.1:19706", "--interval", "60s"])
        .env("DOCKER_HOST", docker_host())
        .env("HAWSER_STATE_DIR", s.state.path())
        .stdout(std::process::Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let _serve = Killed(child);
    let until = Instant::now() + Duration::from_secs(30);
    while get(port, "/", Duration::from_secs(1)).as_deref() != Some("v1") && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(get(port, "/", Duration::from_secs(1)).as_deref(), Some("v1"), "serve deployed v1");

    // The broken revision is tried, then retried after 5 s: 12 s of requests cover both.
    // The dashboard's page of the project shows where the port goes.
    let page = dashboard_page(19706, &format!("/sources/{}", s.dir.path().file_name().unwrap().to_string_lossy()));
    let shown = page.replace("&#62;", ">").replace("&gt;", ">");
    assert!(shown.contains(&format!("<td>127.0.0.1:{port}->8080/tcp</td>")), "{page}");

    let client = Client::start(port);
    s.write("web.yaml", &web(p, port, "v2", "exit 1").replace("healthTimeout: 10s", "healthTimeout: 2s"));
    s.commit("v2 broken");
    std::thread::sleep(Duration::from_secs(12));
    let (made, failed, answers) = client.stop();
    assert_eq!((failed, answers), (0, vec!["v1".to_string()]), "{made} requests");
    let history = s.hawser(&["history", "--project", p, "--output", "json"]);
    let rows: serde_json::Value = serde_json::from_str(&history.stdout).unwrap();
    let failures = rows.as_array().unwrap().iter().filter(|r| r["outcome"] == "failed").count();
    assert!(failures >= 2, "tried and retried: {rows}");
}

/// The body of a page of the service on loopback.
fn dashboard_page(listen: u16, path: &str) -> String {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", listen)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let req = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{listen}\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

/// Kills the child on drop.
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
