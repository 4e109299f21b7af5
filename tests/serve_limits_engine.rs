//! The service's listener under abuse from clients on loopback: slow bodies, slow headers and
//! running out of descriptors. Each attack is bounded in count and time and stops by itself.

mod common;
use common::*;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Serve(Child);

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start(s: &Stack, port: u16, nofile: Option<u64>) -> Serve {
    let log = std::fs::File::create(s.state.path().join("serve.log")).unwrap();
    let mut cmd = match nofile {
        Some(n) => {
            let mut c = Command::new("prlimit");
            c.arg(format!("--nofile={n}:{n}")).arg("--").arg(env!("CARGO_BIN_EXE_hawser"));
            c
        }
        None => Command::new(env!("CARGO_BIN_EXE_hawser")),
    };
    let src = s.path().display().to_string();
    let child = cmd
        .args(["serve", &src, "--no-self-heal", "--interval", "10m", "--listen", &format!("127.0.0.1:{port}")])
        .env("DOCKER_HOST", docker_host())
        .env("HAWSER_STATE_DIR", s.state.path())
        .env("HAWSER_LOG", "info")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let serve = Serve(child);
    let t = Instant::now();
    while healthz(port, "127.0.0.2", Duration::from_secs(1)).is_none() {
        assert!(t.elapsed() < Duration::from_secs(10), "serve answers /healthz");
        std::thread::sleep(Duration::from_millis(100));
    }
    serve
}

/// A connection to the service from loopback address `from` (127.0.0.0/8 is all this host's).
fn connect(port: u16, from: &str) -> std::io::Result<TcpStream> {
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
    let local: SocketAddr = format!("{from}:0").parse().unwrap();
    sock.bind(&local.into())?;
    let remote: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    sock.connect_timeout(&remote.into(), Duration::from_secs(2))?;
    Ok(sock.into())
}

/// How long /healthz took to answer 200, if it did within `limit`.
fn healthz(port: u16, from: &str, limit: Duration) -> Option<Duration> {
    let t = Instant::now();
    let mut s = connect(port, from).ok()?;
    s.set_read_timeout(Some(limit)).ok()?;
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    out.starts_with("HTTP/1.1 200").then(|| t.elapsed())
}

fn rss_kb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().split(' ').next()?.parse().ok())
        .unwrap_or(0)
}

/// User plus system CPU time of a process, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat.rsplit_once(')').map(|(_, r)| r.split_whitespace().collect()).unwrap_or_default();
    fields.get(11).and_then(|u| u.parse::<u64>().ok()).unwrap_or(0)
        + fields.get(12).and_then(|s| s.parse::<u64>().ok()).unwrap_or(0)
}

/// Whether the server has closed `s` (EOF or reset) within `limit`.
fn closed_within(s: &mut TcpStream, limit: Duration) -> bool {
    s.set_read_timeout(Some(limit)).unwrap();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue, // An answer (408 or similar); the close follows.
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return !matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut),
        }
    }
}

/// Regression: 500 connections each trickling a 1 MiB body held 526 MiB, and slow headers
/// stayed open past 40 s.
#[test]
fn slow_bodies_and_slow_headers_are_bounded_in_memory_and_time() {
    let p = "t-limits-slow";
    let s = Stack::new(p);
    s.write("hawser.toml", &format!("project = \"{p}\"\n"));
    s.commit("empty");
    let port = 19501;
    let serve = start(&s, port, None);
    let pid = serve.0.id();
    let before = rss_kb(pid);

    // 300 bodies of 1 MiB from ten addresses, each sent half at once and then a byte a second,
    // and one slow header.
    let mut attackers = Vec::new();
    let half = vec![b'x'; 512 * 1024];
    for i in 0..300 {
        let Ok(mut c) = connect(port, &format!("127.0.0.{}", 10 + i % 10)) else { continue };
        let head = "POST /hooks/x HTTP/1.1\r\nHost: x\r\nContent-Length: 1048576\r\n\r\n";
        if c.write_all(head.as_bytes()).is_ok() {
            // The server may not read it all now; what it leaves stays in the kernel's buffers.
            c.set_write_timeout(Some(Duration::from_millis(20))).unwrap();
            let _ = c.write_all(&half);
            attackers.push(c);
        }
    }
    let mut slow_header = connect(port, "127.0.0.3").unwrap();
    slow_header.write_all(b"GET /healthz HTTP/1.1\r\n").unwrap();
    let started = Instant::now();
    let mut worst_health = Duration::ZERO;
    let mut peak = 0;
    // Six seconds of trickling: a byte to each, every second (they fill their body budget slowly).
    for round in 0..6 {
        for c in &mut attackers {
            let _ = c.write_all(&[b'x'; 1]);
        }
        let _ = slow_header.write_all(b"X");
        let h = healthz(port, "127.0.0.2", Duration::from_secs(3));
        assert!(h.is_some(), "/healthz did not answer in round {round}");
        worst_health = worst_health.max(h.unwrap());
        peak = peak.max(rss_kb(pid));
        std::thread::sleep(Duration::from_millis(1000));
    }
    // Each connection's whole life is bounded: they are all closed by the deadline.
    let remaining = Duration::from_secs(13).saturating_sub(started.elapsed());
    assert!(closed_within(&mut slow_header, remaining), "a slow header outlived the deadline");
    let still_open = attackers
        .iter_mut()
        .filter(|c: &&mut TcpStream| !closed_within(&mut c.try_clone().unwrap(), Duration::from_millis(200)))
        .count();
    assert_eq!(still_open, 0, "slow bodies outlived the deadline");
    eprintln!(
        "rss before {before} kB, peak {peak} kB; worst /healthz {worst_health:?}; {} attackers connected",
        attackers.len()
    );
    assert!(peak < before + 48 * 1024, "memory grew from {before} kB to {peak} kB under slow bodies");
    assert!(worst_health < Duration::from_secs(2), "/healthz took {worst_health:?}");
}

/// Regression: under `ulimit -n 128` and 200 connections, /healthz went down for good and the
/// accept loop spun at 92% CPU.
#[test]
fn running_out_of_descriptors_backs_off_and_recovers() {
    let p = "t-limits-nofile";
    let s = Stack::new(p);
    s.write("hawser.toml", &format!("project = \"{p}\"\n"));
    s.commit("empty");
    let port = 19502;
    let serve = start(&s, port, Some(128));
    let pid = serve.0.id();
    let mut held = Vec::new();
    for i in 0..200 {
        if let Ok(c) = connect(port, &format!("127.0.0.{}", 30 + i % 8)) {
            held.push(c);
        }
    }
    std::thread::sleep(Duration::from_millis(500));
    let ticks_before = cpu_ticks(pid);
    std::thread::sleep(Duration::from_secs(3));
    let used = cpu_ticks(pid) - ticks_before;
    // Clock ticks are 1/100 s: 3 s of a spinning core would be about 300.
    assert!(used < 60, "the service used {used} ticks in 3 s while out of descriptors");
    drop(held);
    let t = Instant::now();
    let mut up = None;
    while t.elapsed() < Duration::from_secs(15) {
        up = healthz(port, "127.0.0.2", Duration::from_secs(2));
        if up.is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(up.is_some(), "/healthz did not come back after the connections closed");
}

/// Regression: parsing a large commit ran where HTTP is served, and /healthz timed out for
/// 13-27 s on each reconcile.
#[test]
fn a_large_revision_is_parsed_while_health_keeps_answering() {
    let p = "t-limits-large";
    let s = Stack::new(p);
    s.write("hawser.toml", &format!("project = \"{p}\"\n"));
    s.commit("empty");
    let port = 19503;
    let _serve = start(&s, port, None);
    // About 10 MB of manifests that end in one error, so the whole revision is parsed and then
    // refused: nothing reaches the engine.
    let filler = "x".repeat(400);
    for f in 0..100 {
        let mut text = String::new();
        for i in 0..200 {
            text.push_str(&format!(
                "---\nkind: Volume\nmetadata: {{name: v{f}-{i}, labels: {{note: \"{filler}\"}}}}\n"
            ));
        }
        s.write(&format!("v{f:03}.yaml"), &text);
    }
    s.write("zz-bad.yaml", "kind: Volume\nmetadata: {name: bad}\nspec: {colour: red}\n");
    s.commit("large and invalid");
    let started = Instant::now();
    let mut worst = Duration::ZERO;
    let mut answered = 0;
    let log = s.state.path().join("serve.log");
    let refused = || std::fs::read_to_string(&log).unwrap_or_default().contains("unknown field `colour`");
    while started.elapsed() < Duration::from_secs(60) {
        let took = healthz(port, "127.0.0.2", Duration::from_secs(5)).unwrap_or(Duration::from_secs(5));
        worst = worst.max(took);
        answered += 1;
        if refused() && answered > 5 {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(refused(), "the large revision was read and refused");
    eprintln!("{answered} /healthz answers while parsing, the slowest in {worst:?}");
    assert!(worst < Duration::from_millis(500), "/healthz took {worst:?} while a revision was parsed");
    assert!(docker(&["volume", "ls", "-q", "--filter", &format!("label=dev.hawser.project={p}")]).is_empty());
}

/// Everything one connection sent back, until the server closes it or `limit` passes.
fn read_all(s: &mut TcpStream, limit: Duration) -> String {
    s.set_read_timeout(Some(limit)).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).to_string()
}

/// As a real server does: two requests on one kept-alive connection, an HTTP/1.0 client, a
/// chunked webhook body (with its signature checked), and a chunked body over the cap refused.
#[test]
fn keep_alive_http_1_0_and_chunked_bodies_work_as_on_any_server() {
    let p = "t-limits-http";
    let s = Stack::new(p);
    s.write("hawser.toml", &format!("project = \"{p}\"\n"));
    s.commit("empty");
    let port = 19508;
    let secret = s.state.path().join("hook.secret");
    std::fs::write(&secret, "hooksecret").unwrap();
    let log = std::fs::File::create(s.state.path().join("serve.log")).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_hawser"))
        .args(["serve", &s.path().display().to_string(), "--no-self-heal", "--interval", "10m"])
        .args(["--listen", &format!("127.0.0.1:{port}"), "--webhook-secret-file", secret.to_str().unwrap()])
        .env("DOCKER_HOST", docker_host())
        .env("HAWSER_STATE_DIR", s.state.path())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let _serve = Serve(child);
    let t = Instant::now();
    while healthz(port, "127.0.0.2", Duration::from_secs(1)).is_none() {
        assert!(t.elapsed() < Duration::from_secs(10), "serve answers /healthz");
        std::thread::sleep(Duration::from_millis(100));
    }

    let mut c = connect(port, "127.0.0.2").unwrap();
    c.write_all(
        b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nGET /status HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    let both = read_all(&mut c, Duration::from_secs(5));
    assert_eq!(both.matches("HTTP/1.1 200").count(), 2, "{both}");
    assert!(both.contains("\"sources\""), "{both}");

    let mut c = connect(port, "127.0.0.2").unwrap();
    c.write_all(b"GET /healthz HTTP/1.0\r\n\r\n").unwrap();
    let old = read_all(&mut c, Duration::from_secs(5));
    assert!(old.starts_with("HTTP/1.0 200") && old.ends_with("ok\n"), "{old}");

    let name = s.path().file_name().unwrap().to_string_lossy().to_string();
    let body = br#"{"ref":"refs/heads/main"}"#;
    let sig = hawser::serve::webhook::sign(b"hooksecret", body);
    let chunked = |sig: &str, body: &[u8]| {
        let mut c = connect(port, "127.0.0.2").unwrap();
        let head = format!(
            "POST /hooks/{name} HTTP/1.1\r\nHost: x\r\nX-Hub-Signature-256: {sig}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        );
        c.write_all(head.as_bytes()).unwrap();
        for part in body.chunks(7) {
            c.write_all(format!("{:x}\r\n", part.len()).as_bytes()).unwrap();
            c.write_all(part).unwrap();
            c.write_all(b"\r\n").unwrap();
        }
        let _ = c.write_all(b"0\r\n\r\n");
        read_all(&mut c, Duration::from_secs(5))
    };
    assert!(chunked(&sig, body).starts_with("HTTP/1.1 202"), "a chunked, signed webhook is taken");
    assert!(chunked("sha256=00", body).starts_with("HTTP/1.1 401"));
    let big = vec![b'x'; 1024 * 1024 + 10];
    assert!(chunked(&sig, &big).starts_with("HTTP/1.1 413"), "a chunked body over the cap is refused");
}

/// Slowloris (many connections sending their headers a byte at a time) and many idle
/// kept-alive connections: /healthz answers within 1 s throughout, and the idle ones are
/// closed once the header timeout has passed.
#[test]
fn slowloris_and_idle_connections_leave_health_answering() {
    let p = "t-limits-idle";
    let s = Stack::new(p);
    s.write("hawser.toml", &format!("project = \"{p}\"\n"));
    s.commit("empty");
    let port = 19509;
    let _serve = start(&s, port, None);

    // 200 slowloris connections from ten addresses, and 200 idle ones after one request each.
    let mut slow = Vec::new();
    for i in 0..200 {
        if let Ok(mut c) = connect(port, &format!("127.0.0.{}", 40 + i % 10)) {
            if c.write_all(b"GET /status HTTP/1.1\r\n").is_ok() {
                slow.push(c);
            }
        }
    }
    let mut idle = Vec::new();
    for i in 0..200 {
        if let Ok(mut c) = connect(port, &format!("127.0.0.{}", 60 + i % 10)) {
            c.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
            c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let mut buf = [0u8; 256];
            let n = loop {
                match c.read(&mut buf) {
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    r => break r.unwrap_or(0),
                }
            };
            assert!(buf[..n].starts_with(b"HTTP/1.1 200"), "a kept-alive connection's first answer");
            idle.push(c);
        }
    }
    assert!(slow.len() >= 150 && idle.len() >= 150, "{} slow, {} idle", slow.len(), idle.len());
    let started = Instant::now();
    let mut worst = Duration::ZERO;
    for round in 0..6 {
        for c in &mut slow {
            let _ = c.write_all(b"X");
        }
        let h = healthz(port, "127.0.0.2", Duration::from_secs(1));
        assert!(h.is_some(), "/healthz did not answer within 1 s in round {round}");
        worst = worst.max(h.unwrap());
        std::thread::sleep(Duration::from_millis(1000));
    }
    eprintln!("worst /healthz {worst:?} with {} slowloris and {} idle connections", slow.len(), idle.len());
    // The header timeout (10 s) closes both kinds.
    let remaining = Duration::from_secs(14).saturating_sub(started.elapsed());
    assert!(closed_within(&mut idle[0], remaining), "an idle connection outlived the header timeout");
    assert!(closed_within(&mut slow[0], Duration::from_secs(2)), "a slowloris connection outlived the header timeout");
    let open = idle
        .iter_mut()
        .chain(slow.iter_mut())
        .filter(|c| !closed_within(&mut c.try_clone().unwrap(), Duration::from_millis(50)))
        .count();
    assert_eq!(open, 0, "connections outlived the header timeout");
}

/// Attack: the listener's 512 connections (32 per address) were held idle from 20 loopback
/// addresses, and /healthz then failed: idle connections were not reclaimed under pressure.
/// Now a connection that finds every slot taken closes the one idle the longest.
#[test]
fn idle_connections_from_many_addresses_are_reclaimed_for_a_probe() {
    let p = "t-limits-reclaim";
    let s = Stack::new(p);
    s.write("hawser.toml", &format!("project = \"{p}\"\n"));
    s.commit("empty");
    let port = 19523;
    let _serve = start(&s, port, None);
    let mut held = Vec::new();
    for i in 0..640 {
        if let Ok(c) = connect(port, &format!("127.0.0.{}", 100 + i % 20)) {
            held.push(c);
        }
    }
    assert!(held.len() >= 600, "{} connections opened", held.len());
    // Every slot is now held by a connection that sends nothing.
    std::thread::sleep(Duration::from_millis(300));
    for round in 0..5 {
        let h = healthz(port, "127.0.0.2", Duration::from_secs(1));
        assert!(h.is_some(), "/healthz did not answer within 1 s in round {round}");
        std::thread::sleep(Duration::from_millis(200));
    }
    // What was reclaimed were the attacker's idle connections, oldest first.
    let closed = held
        .iter_mut()
        .take(50)
        .filter(|c| closed_within(&mut c.try_clone().unwrap(), Duration::from_millis(50)))
        .count();
    assert!(closed >= 5, "the oldest idle connections were closed: {closed}");
}
