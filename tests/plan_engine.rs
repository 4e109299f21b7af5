//! Plan reports against the real engine: saved plans (fresh and stale), markdown output, and
//! secrets that appear in no output, log, saved plan, label or state file.

mod common;
use common::*;

fn svc(p: &str, version: &str, extra: &str) -> String {
    format!(
        "kind: Container\nmetadata: {{name: {p}-svc}}\nspec:\n  image: \"{IMAGE}\"\n  command: [sleep, \"3600\"]\n  env: {{VERSION: \"{version}\"}}\n  stopTimeout: 1s\n{extra}"
    )
}

#[test]
fn a_fresh_saved_plan_applies_and_a_stale_one_is_refused() {
    let p = "t-saved";
    let s = Stack::new(p);
    s.write("svc.yaml", &svc(p, "1", ""));
    s.commit("v1");
    let plan_file = s.state.path().join("plan.json");
    let pf = plan_file.to_str().unwrap();

    let r = s.hawser(&["plan", "{src}", "--out", pf]);
    assert_eq!(r.code, 0, "{r:?}");
    let r = s.hawser(&["apply", "--plan", pf]);
    assert_eq!(r.code, 0, "a fresh plan applies, from its own record of the source: {r:?}");
    let id = container_id(&format!("{p}-svc")).unwrap();

    // The host changes after the plan was made: refused, nothing done.
    s.write("svc.yaml", &svc(p, "2", ""));
    s.commit("v2");
    assert_eq!(s.hawser(&["plan", "{src}", "--out", pf]).code, 0);
    docker(&["stop", "-t", "0", &format!("{p}-svc")]);
    let r = s.hawser(&["apply", "--plan", pf]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("stale plan: the managed objects of project `t-saved` on the host changed"), "{r:?}");
    assert_eq!(container_id(&format!("{p}-svc")).as_deref(), Some(id.as_str()), "nothing applied");

    // The source moves on after the plan was made: refused.
    assert_eq!(s.hawser(&["plan", "{src}", "--out", pf]).code, 0);
    s.write("svc.yaml", &svc(p, "3", ""));
    s.commit("v3");
    let r = s.hawser(&["apply", "--plan", pf]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("stale plan: it was made for project `t-saved` at revision"), "{r:?}");
    assert_eq!(container_id(&format!("{p}-svc")).as_deref(), Some(id.as_str()), "nothing applied");
}

#[test]
fn markdown_output_is_ready_for_a_pull_request() {
    let p = "t-markdown";
    let s = Stack::new(p);
    s.write("svc.yaml", &svc(p, "1", ""));
    s.commit("v1");
    assert_eq!(s.hawser(&["apply", "{src}"]).code, 0);
    s.write("svc.yaml", &svc(p, "2", ""));
    s.commit("v2");
    let r = s.hawser(&["plan", "{src}", "--output", "markdown"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.starts_with("### hawser plan: `t-markdown`"), "{r:?}");
    assert!(
        r.stdout.contains(&format!("| 🟡 | Container `{p}-svc` | replace (start-first) | changed: env.VERSION |")),
        "{r:?}"
    );
    assert!(
        r.stdout.contains("<details>")
            && r.stdout.contains("-  VERSION: \"1\"")
            && r.stdout.contains("+  VERSION: \"2\""),
        "{r:?}"
    );
}

#[test]
fn a_secret_appears_in_no_output_log_saved_plan_label_or_state() {
    const MARKER: &str = "planted-secret-7f3a9c";
    let p = "t-secret";
    let s = Stack::new(p);
    let secrets = tempfile::tempdir().unwrap();
    let file = secrets.path().join("db_password");
    std::fs::write(&file, format!("{MARKER}-one\n")).unwrap();
    let policy = s.state.path().join("policy.toml");
    std::fs::write(&policy, format!("secretRoots = [\"{}\"]\n", secrets.path().display())).unwrap();
    let pol = policy.to_str().unwrap();
    s.write("svc.yaml", &svc(p, "1", &format!("  secretEnv: {{DB_PASSWORD: \"{}\"}}\n", file.display())));
    s.commit("with a secret");

    // Without the policy's secretRoots, the file may not be read at all.
    let r = s.hawser(&["plan", "{src}"]);
    assert_eq!(r.code, 3, "{r:?}");
    assert!(r.stderr.contains("is outside the allowed roots") && r.stderr.contains("secretRoots"), "{r:?}");

    let plan_file = s.state.path().join("plan.json");
    let mut outputs = Vec::new();
    for output in ["text", "json", "markdown"] {
        let r = s.hawser(&["--policy", pol, "-vvv", "plan", "{src}", "--output", output]);
        assert_eq!(r.code, 0, "{r:?}");
        outputs.push(format!("{r:?}"));
    }
    let r = s.hawser(&["--policy", pol, "plan", "{src}", "--out", plan_file.to_str().unwrap()]);
    outputs.push(format!("{r:?}"));
    let r =
        s.hawser(&["--policy", pol, "-vvv", "--log-format", "json", "apply", "--plan", plan_file.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{r:?}");
    outputs.push(format!("{r:?}"));
    let r = s.hawser(&["status", "--output", "json"]);
    outputs.push(format!("{r:?}"));
    let r = s.hawser(&["--policy", pol, "render", "{src}"]);
    outputs.push(format!("{r:?}"));

    // The container got the value...
    let env = inspect(&format!("{p}-svc"), "{{json .Config.Env}}");
    assert!(env.contains(&format!("DB_PASSWORD={MARKER}-one")), "{env}");
    // ...and nothing else did.
    outputs.push(inspect(&format!("{p}-svc"), "{{json .Config.Labels}}"));
    for entry in walk(s.state.path()) {
        outputs.push(std::fs::read_to_string(&entry).unwrap_or_default());
    }
    for (i, o) in outputs.iter().enumerate() {
        assert!(!o.contains(MARKER), "output {i} leaks the secret: {o}");
    }
    // The digest on the container is keyed: nothing a dictionary of unkeyed hashes would match.
    let labels = inspect(&format!("{p}-svc"), "{{json .Config.Labels}}");
    let unkeyed = hex::encode(&<sha2::Sha256 as sha2::Digest>::digest(format!("{MARKER}-one").as_bytes())[..8]);
    assert!(labels.contains("hmac:") && !labels.contains(&unkeyed), "{labels}");
    let key = s.state.path().join("secret-digest.key");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&key).unwrap().permissions().mode() & 0o777, 0o600);

    // A changed secret replaces the container, and the plan says so by digest only.
    std::fs::write(&file, format!("{MARKER}-two\n")).unwrap();
    let r = s.hawser(&["--policy", pol, "plan", "{src}", "--exit-code"]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stdout.contains("(changed: secretEnv.DB_PASSWORD)") && !r.stdout.contains(MARKER), "{r:?}");
}
