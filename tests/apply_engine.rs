//! Acceptance tests of validate, plan and apply against the real engine (scripts/engine-up).
//! Each test owns a project and container names of its own, so tests run in parallel.

mod common;
use common::*;

/// A stack of a network, a volume and two containers: `NAME-web` serves HTTP and `NAME-app` writes
/// into the volume; `app_env` is `app`'s GREETING.
fn stack(p: &str, app_env: &str) -> String {
    format!(
        r#"kind: Network
metadata: {{name: {p}-net}}
---
kind: Volume
metadata: {{name: {p}-data}}
---
kind: Image
metadata: {{name: busybox}}
spec: {{ref: "{IMAGE}"}}
---
kind: Container
metadata:
  name: {p}-web
  labels: {{tier: front}}
spec:
  image: busybox
  command: ["httpd", "-f", "-p", "8080", "-h", "/www"]
  volumes: ["{p}-data:/www"]
  networks:
    {p}-net: {{aliases: [www]}}
  restart: unless-stopped
---
kind: Container
metadata: {{name: {p}-app}}
spec:
  image: busybox
  command: "echo ready > /data/index.html; exec sleep 3600"
  env: {{GREETING: "{app_env}"}}
  volumes: ["{p}-data:/data"]
  networks: ["{p}-net"]
  stopTimeout: 1s
  dependsOn: [{p}-web]
"#
    )
}

#[test]
fn apply_creates_a_connected_labelled_stack_and_a_second_run_changes_nothing() {
    let p = "t-create";
    let s = Stack::new(p);
    s.write("stack.yaml", &stack(p, "hello"));
    let rev = s.commit("first");

    let r = s.hawser(&["apply", "{src}"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains(&rev), "apply prints the revision: {r:?}");

    // Both run, with the ownership labels of the contract.
    for name in [format!("{p}-web"), format!("{p}-app")] {
        assert_eq!(inspect(&name, "{{.State.Running}}"), "true");
        assert_eq!(inspect(&name, r#"{{index .Config.Labels "dev.hawser.project"}}"#), p);
        assert_eq!(inspect(&name, r#"{{index .Config.Labels "dev.hawser.kind"}}"#), "Container");
        assert_eq!(inspect(&name, r#"{{index .Config.Labels "dev.hawser.name"}}"#), name);
        assert_eq!(inspect(&name, r#"{{index .Config.Labels "dev.hawser.revision"}}"#), rev);
        assert_eq!(inspect(&name, r#"{{index .Config.Labels "dev.hawser.spec-hash"}}"#).len(), 64);
    }
    assert_eq!(inspect(&format!("{p}-web"), r#"{{index .Config.Labels "tier"}}"#), "front");
    assert_eq!(
        docker(&["network", "inspect", "--format", r#"{{index .Labels "dev.hawser.project"}}"#, &format!("{p}-net")]),
        p
    );
    assert_eq!(
        docker(&["volume", "inspect", "--format", r#"{{index .Labels "dev.hawser.project"}}"#, &format!("{p}-data")]),
        p
    );

    // Connected: app reaches web by its name and by its alias, and sees the page app wrote.
    let mut body = String::new();
    for _ in 0..50 {
        let out = exec(&format!("{p}-app"), &["wget", "-q", "-O", "-", &format!("http://{p}-web:8080/index.html")]);
        body = String::from_utf8_lossy(&out.stdout).to_string();
        if body.contains("ready") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(body.trim(), "ready");
    let alias = exec(&format!("{p}-app"), &["wget", "-q", "-O", "-", "http://www:8080/index.html"]);
    assert_eq!(String::from_utf8_lossy(&alias.stdout).trim(), "ready");

    // A second plan is empty and a second apply replaces nothing.
    let ids = (container_id(&format!("{p}-web")), container_id(&format!("{p}-app")));
    let r = s.hawser(&["plan", "{src}", "--exit-code"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("No changes"), "{r:?}");
    let r = s.hawser(&["apply", "{src}"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!((container_id(&format!("{p}-web")), container_id(&format!("{p}-app"))), ids);
}

#[test]
fn an_env_change_replaces_only_that_container_and_volume_data_survives() {
    let p = "t-envchange";
    let s = Stack::new(p);
    s.write("stack.yaml", &stack(p, "hello"));
    s.commit("first");
    let r = s.hawser(&["apply", "{src}"]);
    assert_eq!(r.code, 0, "{r:?}");
    let web_id = container_id(&format!("{p}-web")).unwrap();
    let app_id = container_id(&format!("{p}-app")).unwrap();
    let sentinel = exec(&format!("{p}-app"), &["sh", "-c", "echo keep-me > /data/sentinel"]);
    assert!(sentinel.status.success());

    s.write("stack.yaml", &stack(p, "bonjour"));
    // Uncommitted edits are not the desired state.
    let r = s.hawser(&["plan", "{src}", "--exit-code"]);
    assert_eq!(r.code, 0, "uncommitted changes must not be planned: {r:?}");
    s.commit("greet in french");

    let r = s.hawser(&["plan", "{src}", "--exit-code"]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stdout.contains(&format!("Container {p}-app: replace")), "{r:?}");
    assert!(r.stdout.contains("(changed: env.GREETING)"), "{r:?}");
    assert!(r.stdout.contains("-  GREETING: hello\n") && r.stdout.contains("+  GREETING: bonjour\n"), "{r:?}");
    assert!(!r.stdout.contains(&format!("{p}-web: replace")), "{r:?}");

    let r = s.hawser(&["apply", "{src}"]);
    assert_eq!(r.code, 0, "{r:?}");
    let new_app = container_id(&format!("{p}-app")).unwrap();
    assert_ne!(new_app, app_id, "app was replaced");
    assert_eq!(container_id(&format!("{p}-web")).unwrap(), web_id, "web was not touched");
    assert_eq!(inspect(&format!("{p}-app"), "{{.State.Running}}"), "true");
    let env = inspect(&format!("{p}-app"), "{{json .Config.Env}}");
    assert!(env.contains("GREETING=bonjour"), "{env}");
    let data = exec(&format!("{p}-app"), &["cat", "/data/sentinel"]);
    assert_eq!(String::from_utf8_lossy(&data.stdout).trim(), "keep-me");
    assert_eq!(containers_named(&format!("{p}-")), vec![format!("{p}-app"), format!("{p}-web")], "no leftovers");
}

#[test]
fn an_invalid_commit_is_refused_whole_and_the_host_is_untouched() {
    let p = "t-invalid";
    let s = Stack::new(p);
    s.write("stack.yaml", &stack(p, "hello"));
    s.commit("first");
    assert_eq!(s.hawser(&["apply", "{src}"]).code, 0);
    let before = (container_id(&format!("{p}-web")), container_id(&format!("{p}-app")));

    // A valid change (new env) together with an unknown field in another file.
    s.write("stack.yaml", &stack(p, "changed"));
    s.write(
        "extra.yaml",
        "kind: Container\nmetadata: {name: t-invalid-x}\nspec:\n  image: busybox\n  enviroment: {A: b}\n",
    );
    s.commit("typo");

    let r = s.hawser(&["validate", "{src}"]);
    assert_eq!(r.code, 3, "{r:?}");
    assert!(r.stderr.contains("extra.yaml:5:3: unknown field `enviroment`"), "{r:?}");
    assert!(r.stderr.contains("did you mean `env`?"), "{r:?}");

    let r = s.hawser(&["apply", "{src}"]);
    assert_eq!(r.code, 3, "{r:?}");
    assert!(r.stderr.contains("extra.yaml:5:3"), "{r:?}");
    assert_eq!((container_id(&format!("{p}-web")), container_id(&format!("{p}-app"))), before);
    assert!(container_id("t-invalid-x").is_none());
    let env = inspect(&format!("{p}-app"), "{{json .Config.Env}}");
    assert!(env.contains("GREETING=hello"), "nothing from the bad revision was applied: {env}");
}

#[test]
fn a_candidate_that_never_becomes_healthy_is_removed_and_the_old_one_keeps_running() {
    let p = "t-unhealthy";
    let s = Stack::new(p);
    let manifest = |check: &str| {
        format!(
            r#"kind: Container
metadata: {{name: {p}-svc}}
spec:
  image: "{IMAGE}"
  command: ["sleep", "3600"]
  stopTimeout: 1s
  healthcheck: {{test: ["CMD", "{check}"], interval: 300ms, timeout: 1s, retries: 1}}
  update: {{healthTimeout: 10s}}
"#
        )
    };
    s.write("svc.yaml", &manifest("true"));
    s.commit("healthy");
    assert_eq!(s.hawser(&["apply", "{src}"]).code, 0);
    let old = container_id(&format!("{p}-svc")).unwrap();

    // `hawser status` shows the managed container, its revision and its health.
    let mut healthy = false;
    for _ in 0..50 {
        let r = s.hawser(&["status", "--project", p, "--output", "json"]);
        let rows: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
        let row = rows.as_array().unwrap().iter().find(|r| r["name"] == format!("{p}-svc")).cloned().unwrap();
        assert_eq!(row["revision"].as_str().unwrap().len(), 40);
        if row["health"] == "healthy" {
            healthy = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(healthy, "status reports the container healthy");

    s.write("svc.yaml", &manifest("false"));
    s.commit("a check that always fails");
    let r = s.hawser(&["apply", "{src}"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains(&format!("{p}-svc")) && r.stderr.contains("unhealthy"), "{r:?}");
    assert_eq!(container_id(&format!("{p}-svc")).as_deref(), Some(old.as_str()), "the old container is kept");
    assert_eq!(inspect(&format!("{p}-svc"), "{{.State.Running}}"), "true");
    assert_eq!(containers_named(&format!("{p}-")), vec![format!("{p}-svc")], "no candidate left behind");
}

#[test]
fn prune_removes_undeclared_containers_and_never_unmanaged_ones() {
    let p = "t-prune";
    let s = Stack::new(p);
    let unmanaged = format!("{p}-unmanaged");
    let _ = docker_raw(&["rm", "-f", &unmanaged]);
    docker(&["run", "-d", "--name", &unmanaged, IMAGE, "sleep", "3600"]);

    s.write("stack.yaml", &stack(p, "hello"));
    s.commit("first");
    assert_eq!(s.hawser(&["apply", "{src}"]).code, 0);

    // app is gone from git: without --prune it stays and the plan says so.
    let text = stack(p, "hello");
    let without_app =
        text.split("\n---\n").filter(|d| !d.contains(&format!("{p}-app"))).collect::<Vec<_>>().join("\n---\n");
    s.write("stack.yaml", &without_app);
    s.commit("drop app");
    let r = s.hawser(&["apply", "{src}"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(container_id(&format!("{p}-app")).is_some(), "kept without --prune");
    assert!(r.stdout.contains("not declared"), "{r:?}");

    let r = s.hawser(&["apply", "{src}", "--prune"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(container_id(&format!("{p}-app")).is_none(), "removed with --prune");
    assert!(container_id(&format!("{p}-web")).is_some());
    assert_eq!(inspect(&unmanaged, "{{.State.Running}}"), "true", "unmanaged container untouched");
    // The named volume survives every prune.
    assert!(docker_raw(&["volume", "inspect", &format!("{p}-data")]).status.success());
    docker(&["rm", "-f", &unmanaged]);
}

#[test]
fn logging_options_reach_the_engine_and_a_change_of_them_replaces_the_container() {
    let p = "t-logging";
    let s = Stack::new(p);
    let spec = |size: &str| {
        format!(
            "kind: Container\nmetadata: {{name: {p}-svc}}\nspec:\n  image: \"{IMAGE}\"\n  command: [sleep, \"3600\"]\n  stopTimeout: 1s\n  logging: {{driver: json-file, options: {{max-size: {size}, max-file: \"2\"}}}}\n"
        )
    };
    s.write("svc.yaml", &spec("1m"));
    s.commit("small logs");
    let r = s.hawser(&["apply", "{src}"]);
    assert_eq!(r.code, 0, "{r:?}");
    let name = format!("{p}-svc");
    assert_eq!(inspect(&name, "{{.HostConfig.LogConfig.Type}}"), "json-file");
    assert_eq!(inspect(&name, r#"{{index .HostConfig.LogConfig.Config "max-size"}}"#), "1m");
    assert_eq!(inspect(&name, r#"{{index .HostConfig.LogConfig.Config "max-file"}}"#), "2");
    let first = container_id(&name).unwrap();

    s.write("svc.yaml", &spec("5m"));
    s.commit("bigger logs");
    let r = s.hawser(&["plan", "{src}"]);
    assert!(r.stdout.contains("logging"), "the plan names the field: {r:?}");
    let r = s.hawser(&["apply", "{src}"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(inspect(&name, r#"{{index .HostConfig.LogConfig.Config "max-size"}}"#), "5m");
    assert_ne!(container_id(&name).unwrap(), first, "replaced, not edited");
}

#[test]
fn shm_size_ulimits_and_dns_reach_the_engine() {
    let p = "t-hostcfg";
    let s = Stack::new(p);
    s.write(
        "svc.yaml",
        &format!(
            "kind: Container\nmetadata: {{name: {p}-svc}}\nspec:\n  image: \"{IMAGE}\"\n  command: [sleep, \"3600\"]\n  stopTimeout: 1s\n  shmSize: 128Mi\n  ulimits: {{nofile: {{soft: 1024, hard: 2048}}}}\n  dns: [127.0.0.1]\n"
        ),
    );
    s.commit("host config");
    let r = s.hawser(&["apply", "{src}"]);
    assert_eq!(r.code, 0, "{r:?}");
    let name = format!("{p}-svc");
    assert_eq!(inspect(&name, "{{.HostConfig.ShmSize}}"), (128u64 << 20).to_string());
    assert_eq!(inspect(&name, "{{json .HostConfig.Ulimits}}"), r#"[{"Name":"nofile","Hard":2048,"Soft":1024}]"#);
    assert_eq!(inspect(&name, "{{json .HostConfig.Dns}}"), r#"["127.0.0.1"]"#);
    // As the container's own process has them: /proc/1/limits, not an exec'd shell, whose
    // limits come from the exec request and differed about one run in four.
    let out = exec(&name, &["cat", "/proc/1/limits"]);
    let limits = String::from_utf8_lossy(&out.stdout);
    let nofile: Vec<&str> = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .map(|l| l.split_whitespace().skip(3).take(2).collect())
        .unwrap_or_default();
    assert_eq!(nofile, ["1024", "2048"], "{limits}");
    let out = exec(&name, &["sh", "-c", "df -k /dev/shm | tail -1"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.split_whitespace().nth(1) == Some("131072"), "{text}");
}
