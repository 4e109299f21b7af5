//! Replacement, drift, conflicts and sources, against the real engine.

mod common;
use common::*;
use std::io::{Read, Write};
use std::time::Duration;

/// GET http://127.0.0.1:PORT/ and the body, or None when nothing answers.
fn http_get(port: u16) -> Option<String> {
    let mut s = std::net::TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_secs(1)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    s.write_all(b"GET / HTTP/1.0\r\nHost: localhost\r\n\r\n").ok()?;
    let mut buf = String::new();
    s.read_to_string(&mut buf).ok()?;
    buf.split_once("\r\n\r\n").map(|(_, body)| body.trim().to_string())
}

fn http_get_eventually(port: u16, want: &str) -> Option<String> {
    let mut last = None;
    for _ in 0..50 {
        last = http_get(port);
        if last.as_deref() == Some(want) {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    last
}

fn web(p: &str, port: u16, body: &str, check: &str) -> String {
    format!(
        r#"kind: Container
metadata: {{name: {p}-web}}
spec:
  image: "{IMAGE}"
  command: "mkdir -p /www && echo {body} > /www/index.html && exec httpd -f -p 8080 -h /www"
  ports: ["127.0.0.1:{port}:8080"]
  stopTimeout: 1s
  healthcheck: {{test: "{check}", interval: 300ms, timeout: 1s, retries: 2}}
  update: {{healthTimeout: 15s}}
"#
    )
}

#[test]
fn stop_first_serves_the_new_container_and_rolls_back_to_the_old_one() {
    let p = "t-stopfirst";
    let port = 18181;
    let s = Stack::new(p);
    let ok = "wget -q -O /dev/null http://127.0.0.1:8080/";
    // Asked for: stop-first although hawser could switch the port.
    let web = |body: &str, check: &str| {
        format!(
            "{}  update: {{healthTimeout: 15s, strategy: stop-first}}\n",
            web(p, port, body, check).replace("  update: {healthTimeout: 15s}\n", "")
        )
    };
    s.write("web.yaml", &web("v1", ok));
    s.commit("v1");
    assert_eq!(s.hawser(&["apply", "{src}"]).code, 0);
    assert_eq!(http_get_eventually(port, "v1").as_deref(), Some("v1"));

    s.write("web.yaml", &web("v2", ok));
    s.commit("v2");
    let r = s.hawser(&["apply", "{src}"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("replace (stop-first)"), "{r:?}");
    assert_eq!(http_get_eventually(port, "v2").as_deref(), Some("v2"));
    let v2 = container_id(&format!("{p}-web")).unwrap();

    // v3 never passes its healthcheck: it is removed and v2 serves again under its name.
    s.write("web.yaml", &web("v3", "exit 1"));
    s.commit("v3 broken");
    let r = s.hawser(&["apply", "{src}"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains(&format!("Container {p}-web")), "{r:?}");
    assert_eq!(container_id(&format!("{p}-web")).as_deref(), Some(v2.as_str()));
    assert_eq!(http_get_eventually(port, "v2").as_deref(), Some("v2"));
    assert_eq!(containers_named(&format!("{p}-")), vec![format!("{p}-web")]);
}

fn sleeper(p: &str) -> String {
    format!(
        "kind: Network\nmetadata: {{name: {p}-net}}\n---\nkind: Container\nmetadata: {{name: {p}-svc}}\nspec:\n  image: \"{IMAGE}\"\n  command: [sleep, \"3600\"]\n  networks: [{p}-net]\n  stopTimeout: 1s\n"
    )
}

#[test]
fn drift_is_shown_with_its_cause_and_repaired() {
    let p = "t-drift";
    let s = Stack::new(p);
    s.write("svc.yaml", &sleeper(p));
    s.commit("svc");
    assert_eq!(s.hawser(&["apply", "{src}"]).code, 0);
    let id = container_id(&format!("{p}-svc")).unwrap();

    docker(&["stop", "-t", "0", &format!("{p}-svc")]);
    let r = s.hawser(&["plan", "{src}", "--exit-code"]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stdout.contains(&format!("Container {p}-svc: start (drift: exited")), "{r:?}");
    assert_eq!(s.hawser(&["apply", "{src}"]).code, 0);
    assert_eq!(container_id(&format!("{p}-svc")).as_deref(), Some(id.as_str()), "started again, not replaced");
    assert_eq!(inspect(&format!("{p}-svc"), "{{.State.Running}}"), "true");

    docker(&["rm", "-f", &format!("{p}-svc")]);
    let r = s.hawser(&["plan", "{src}", "--output", "json"]);
    assert_eq!(r.code, 0, "{r:?}");
    let plan: serde_json::Value = serde_json::from_str(&r.stdout).expect("plan JSON");
    assert_eq!(plan["formatVersion"], 1);
    let svc = plan["actions"].as_array().unwrap().iter().find(|a| a["name"] == format!("{p}-svc")).unwrap();
    assert_eq!(svc["op"]["type"], "create");
    assert_eq!(svc["cause"]["reason"], "absent");
    assert_eq!(s.hawser(&["apply", "{src}"]).code, 0);
    assert_eq!(inspect(&format!("{p}-svc"), "{{.State.Running}}"), "true");
    assert_eq!(s.hawser(&["plan", "{src}", "--exit-code"]).code, 0);

    // Disconnected from its network outside hawser: seen, said, and repaired by a replacement.
    docker(&["network", "disconnect", &format!("{p}-net"), &format!("{p}-svc")]);
    let r = s.hawser(&["plan", "{src}", "--exit-code"]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stdout.contains(&format!("drift: attached to networks [], declared [{p}-net]")), "{r:?}");
    assert_eq!(s.hawser(&["apply", "{src}"]).code, 0);
    let nets = inspect(&format!("{p}-svc"), "{{range $k, $v := .NetworkSettings.Networks}}{{$k}}{{end}}");
    assert_eq!(nets, format!("{p}-net"));
}

#[test]
fn a_name_held_by_an_unmanaged_container_is_a_conflict_and_nothing_is_applied() {
    let p = "t-conflict";
    let s = Stack::new(p);
    let squatter = format!("{p}-svc");
    let _ = docker_raw(&["rm", "-f", &squatter]);
    docker(&["run", "-d", "--name", &squatter, IMAGE, "sleep", "3600"]);
    let squatter_id = container_id(&squatter).unwrap();

    s.write("svc.yaml", &sleeper(p));
    s.commit("svc");
    let r = s.hawser(&["plan", "{src}", "--exit-code"]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(
        r.stdout.contains(&format!("! Container {p}-svc: conflict (an object hawser does not manage has this name)")),
        "{r:?}"
    );
    let r = s.hawser(&["apply", "{src}"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("refusing to apply"), "{r:?}");
    assert_eq!(container_id(&squatter).as_deref(), Some(squatter_id.as_str()), "unmanaged container untouched");
    assert!(
        !docker_raw(&["network", "inspect", &format!("{p}-net")]).status.success(),
        "nothing of the revision applied"
    );
    docker(&["rm", "-f", &squatter]);
}

#[test]
fn a_bare_repository_is_read_at_the_ref_given() {
    let p = "t-bare";
    let s = Stack::new(p);
    s.write("svc.yaml", &sleeper(p));
    let first = s.commit("svc");
    s.git(&["checkout", "-q", "-b", "next"]);
    s.write("svc.yaml", &sleeper(p).replace("\"3600\"", "\"3601\""));
    let next = s.commit("next");
    s.git(&["checkout", "-q", "main"]);
    let bare = tempfile::tempdir().unwrap();
    let bare_path = bare.path().join(format!("{p}.git"));
    s.git(&["clone", "-q", "--bare", s.path().to_str().unwrap(), bare_path.to_str().unwrap()]);
    let bare_src = bare_path.to_str().unwrap();

    let r = s.hawser(&["apply", bare_src]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(inspect(&format!("{p}-svc"), r#"{{index .Config.Labels "dev.hawser.revision"}}"#), first);
    let r = s.hawser(&["plan", bare_src, "--ref", "next", "--exit-code"]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stdout.contains(&next), "{r:?}");
    assert!(r.stdout.contains("(changed: command)") && r.stdout.contains("+  - \"3601\""), "{r:?}");
    let r = s.hawser(&["plan", bare_src, "--ref", "nope"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("ref `nope` not found"), "{r:?}");
}

#[test]
fn depends_on_healthy_holds_the_dependent_until_the_dependency_is_healthy() {
    let p = "t-depends";
    let s = Stack::new(p);
    s.write(
        "stack.yaml",
        &format!(
            r#"kind: Container
metadata: {{name: {p}-db}}
spec:
  image: "{IMAGE}"
  command: "sleep 2; touch /tmp/ready; exec sleep 3600"
  healthcheck: {{test: "test -f /tmp/ready", interval: 200ms, retries: 30}}
  stopTimeout: 1s
---
kind: Container
metadata: {{name: {p}-app}}
spec:
  image: "{IMAGE}"
  command: [sleep, "3600"]
  dependsOn: {{{p}-db: healthy}}
  stopTimeout: 1s
"#
        ),
    );
    s.commit("db and app");
    let r = s.hawser(&["apply", "{src}"]);
    assert_eq!(r.code, 0, "{r:?}");
    let db_started = inspect(&format!("{p}-db"), "{{.State.StartedAt}}");
    let app_started = inspect(&format!("{p}-app"), "{{.State.StartedAt}}");
    let secs = |t: &str| -> f64 {
        // 2026-11-23T18:31:20.123456789Z
        let (date, time) = t.trim_end_matches('Z').split_once('T').unwrap();
        let d: Vec<i64> = date.split('-').map(|x| x.parse().unwrap()).collect();
        let (y, m) = if d[1] <= 2 { (d[0] - 1, d[1] + 9) } else { (d[0], d[1] - 3) };
        let days = 365 * y + y / 4 - y / 100 + y / 400 + (153 * m + 2) / 5 + d[2];
        let parts: Vec<f64> = time.split(':').map(|x| x.parse().unwrap()).collect();
        days as f64 * 86400.0 + parts[0] * 3600.0 + parts[1] * 60.0 + parts[2]
    };
    let gap = secs(&app_started) - secs(&db_started);
    assert!(gap >= 2.0, "app started {gap:.2}s after db, before db could be healthy");
}
