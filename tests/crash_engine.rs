//! Crash recovery: the process is killed (abort, no cleanup) at each named point of a replacement,
//! and the next apply converges to exactly one container per resource with the volume's data.
//! Needs the `failpoints` feature (scripts/test enables it).

mod common;
use common::*;

fn svc(p: &str, version: &str, port: Option<u16>) -> String {
    let ports = port.map(|p| format!("  ports: [\"127.0.0.1:{p}:8080\"]\n")).unwrap_or_default();
    format!(
        "kind: Volume\nmetadata: {{name: {p}-data}}\n---\nkind: Container\nmetadata: {{name: {p}-svc}}\nspec:\n  image: \"{IMAGE}\"\n  command: [sleep, \"3600\"]\n  env: {{VERSION: \"{version}\"}}\n  volumes: [\"{p}-data:/data\"]\n  stopTimeout: 1s\n{ports}"
    )
}

fn crash_and_recover(p: &str, point: &str, port: Option<u16>) {
    let s = Stack::new(p);
    s.write("svc.yaml", &svc(p, "1", port));
    s.commit("v1");
    assert_eq!(s.hawser(&["apply", "{src}"]).code, 0);
    let w = exec(&format!("{p}-svc"), &["sh", "-c", "echo precious > /data/sentinel"]);
    assert!(w.status.success());

    s.write("svc.yaml", &svc(p, "2", port));
    s.commit("v2");
    let r = s.hawser_env(&["apply", "{src}"], &[("HAWSER_FAILPOINT", point)]);
    assert!(r.code != 0 && r.stderr.contains(&format!("failpoint {point}")), "{point}: the run must die there: {r:?}");

    let r = s.hawser(&["apply", "{src}"]);
    assert_eq!(r.code, 0, "{point}: {r:?}");
    let filter = format!("label=dev.hawser.name={p}-svc");
    let all = docker(&["ps", "-a", "--filter", &filter, "--format", "{{.Names}}"]);
    assert_eq!(all, format!("{p}-svc"), "{point}: exactly one container, under its name");
    assert_eq!(inspect(&format!("{p}-svc"), "{{.State.Running}}"), "true", "{point}");
    assert!(inspect(&format!("{p}-svc"), "{{json .Config.Env}}").contains("VERSION=2"), "{point}: the new spec runs");
    let data = exec(&format!("{p}-svc"), &["cat", "/data/sentinel"]);
    assert_eq!(String::from_utf8_lossy(&data.stdout).trim(), "precious", "{point}: volume data intact");
    assert!(
        containers_named(&format!("{p}-")).iter().all(|n| !n.contains(".hawser-")),
        "{point}: no temporary names left"
    );
    assert_eq!(s.hawser(&["plan", "{src}", "--exit-code"]).code, 0, "{point}: converged");
}

#[test]
fn start_first_crash_at_candidate_created() {
    crash_and_recover("t-crash-cc", "candidate-created", None);
}

#[test]
fn start_first_crash_at_candidate_started() {
    crash_and_recover("t-crash-cs", "candidate-started", None);
}

#[test]
fn start_first_crash_at_old_stopped() {
    crash_and_recover("t-crash-os", "old-stopped", None);
}

#[test]
fn start_first_crash_at_old_removed() {
    crash_and_recover("t-crash-or", "old-removed", None);
}

#[test]
fn start_first_crash_before_rename() {
    crash_and_recover("t-crash-br", "before-rename", None);
}

#[test]
fn stop_first_crash_at_old_stopped() {
    crash_and_recover("t-crash-sos", "old-stopped", Some(18381));
}

#[test]
fn stop_first_crash_at_candidate_created() {
    crash_and_recover("t-crash-scc", "candidate-created", Some(18382));
}
