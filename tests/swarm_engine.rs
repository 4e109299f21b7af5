//! The swarm target against a real single-node swarm: the test engine made a manager on
//! loopback (`docker swarm init --advertise-addr 127.0.0.1`), and left again afterwards when
//! this test made it one. One test, in steps, because they share the one swarm.

mod common;
use common::*;

const NAMES: &str = "swt-";
/// The test's own tag, moved in the registry by the test.
const APP: &str = "127.0.0.1:5000/swt-app:latest";

/// Makes the test engine a swarm manager for the test's duration (unless it was one already).
struct Swarm {
    made: bool,
}

impl Swarm {
    fn up() -> Swarm {
        let state = docker(&["info", "--format", "{{.Swarm.LocalNodeState}}"]);
        if state == "active" {
            return Swarm { made: false };
        }
        docker(&["swarm", "init", "--advertise-addr", "127.0.0.1"]);
        Swarm { made: true }
    }
}

impl Drop for Swarm {
    fn drop(&mut self) {
        for (kind, project) in [("service", "swt"), ("secret", "swt"), ("service", "swtp")] {
            let ids = docker(&[kind, "ls", "-q", "--filter", &format!("label=dev.hawser.project={project}")]);
            for id in ids.lines().filter(|l| !l.is_empty()) {
                let _ = docker_raw(&[kind, "rm", id]);
            }
        }
        let _ = docker_raw(&["service", "rm", &format!("{NAMES}other")]);
        // Tasks leave their networks a moment after their service is gone.
        for _ in 0..40 {
            let nets = docker(&["network", "ls", "-q", "--filter", "label=dev.hawser.project=swt"]);
            if nets.is_empty() {
                break;
            }
            for n in nets.lines() {
                let _ = docker_raw(&["network", "rm", n]);
            }
            std::thread::sleep(std::time::Duration::from_millis(250));
        }
        if self.made {
            let _ = docker_raw(&["swarm", "leave", "--force"]);
        }
        // Volumes are the nodes' and never removed by hawser: the test removes its own.
        for _ in 0..40 {
            if docker_raw(&["volume", "rm", &format!("{NAMES}data")]).status.success()
                || docker(&["volume", "ls", "-q", "--filter", &format!("name={NAMES}data")]).is_empty()
            {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(250));
        }
    }
}

fn manifest(env: &str, replicas: u32, extra: &str, secret: &std::path::Path) -> String {
    format!(
        "kind: Network\nmetadata: {{name: {NAMES}net}}\n---\nkind: Volume\nmetadata: {{name: {NAMES}data}}\n---\nkind: Container\nmetadata: {{name: {NAMES}web}}\nspec:\n  image: \"{APP}\"\n  command: [sh, -c, \"trap 'exit 0' TERM; while true; do sleep 1; done\"]\n  env: {{V: \"{env}\"}}\n  replicas: {replicas}\n  networks: [{NAMES}net]\n  stopTimeout: 2s\n  volumes: [\"{NAMES}data:/data\", {{type: secret, source: \"{}\", target: /run/secrets/token}}]\n{extra}",
        secret.display()
    )
}

fn service_field(name: &str, format: &str) -> String {
    docker(&["service", "inspect", name, "--format", format])
}

/// The running tasks' containers of a service, on this one node.
fn task_containers(service: &str) -> Vec<String> {
    let filter = format!("label=com.docker.swarm.service.name={service}");
    docker(&["ps", "-q", "--filter", &filter]).lines().map(str::to_string).collect()
}

#[test]
fn a_project_runs_its_whole_lifecycle_on_a_swarm() {
    let s = Stack::new("swt");
    let secrets = tempfile::tempdir().unwrap();
    let token = secrets.path().join("token");
    std::fs::write(&token, "first-secret-value\n").unwrap();
    let policy = s.state.path().join("policy.toml");
    std::fs::write(&policy, format!("secretRoots = [\"{}\"]\n", secrets.path().display())).unwrap();
    let policy = policy.to_string_lossy().to_string();
    s.write("hawser.toml", "project = \"swt\"\ntarget = \"swarm\"\n");
    s.write("app.yaml", &manifest("1", 2, "", &token));
    s.commit("v1");
    let first = push_variant_to("127.0.0.1:5000", "swt-app", "latest", "one");

    // Not a manager: a clear error that says how to fix it, and nothing changes.
    let state = docker(&["info", "--format", "{{.Swarm.LocalNodeState}}"]);
    if state != "active" {
        let r = s.hawser(&["--policy", &policy, "plan", "{src}"]);
        assert_eq!(r.code, 1, "{r:?}");
        assert!(r.stderr.contains("not part of a swarm") && r.stderr.contains("docker swarm init"), "{r:?}");
    }
    let _swarm = Swarm::up();

    // The same manifest on one host: replicas are containers there (`swt-web-1`, `swt-web-2`).
    let r = s.hawser(&["--policy", &policy, "--target", "docker", "validate", "{src}"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains(": 2 containers"), "{r:?}");

    // Create: the service runs two tasks of the digest the tag named.
    let r = s.hawser(&["--policy", &policy, "apply", "--yes", "{src}"]);
    assert_eq!(r.code, 0, "{r:?}");
    let web = format!("{NAMES}web");
    let id = service_field(&web, "{{.ID}}");
    assert!(service_field(&web, "{{.Spec.TaskTemplate.ContainerSpec.Image}}").contains("@sha256:"));
    assert_eq!(service_field(&web, "{{.Spec.Mode.Replicated.Replicas}}"), "2");
    assert_eq!(task_containers(&web).len(), 2, "{r:?}");
    assert_eq!(service_field(&web, "{{index .Spec.Labels \"dev.hawser.project\"}}"), "swt");
    let c = &task_containers(&web)[0];
    assert_eq!(docker(&["exec", c, "cat", "/run/secrets/token"]), "first-secret-value");
    // The secret's value is in no plan, label or output.
    assert!(!r.stdout.contains("first-secret-value") && !r.stderr.contains("first-secret-value"));
    assert!(!service_field(&web, "{{json .Spec}}").contains("first-secret-value"));

    assert!(service_field(&web, "{{.Spec.TaskTemplate.ContainerSpec.Image}}").ends_with(&first));

    // No-op.
    let r = s.hawser(&["--policy", &policy, "plan", "--exit-code", "{src}"]);
    assert_eq!(r.code, 0, "{r:?}");

    // The tag moves in the registry: the plan names the new digest (the digests of the tags
    // the last run pinned are asked for again as the run starts, never taken from memory), and
    // the service is updated to it in place.
    let second = push_variant_to("127.0.0.1:5000", "swt-app", "latest", "two");
    let r = s.hawser(&["--policy", &policy, "plan", "--exit-code", "{src}"]);
    assert_eq!(r.code, 2, "{r:?}");
    let short = |d: &str| d.trim_start_matches("sha256:")[..12].to_string();
    assert!(r.stdout.contains(&format!("image changed: {} -> {}", short(&first), short(&second))), "{r:?}");
    let r = s.hawser(&["--policy", &policy, "apply", "--yes", "{src}"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(service_field(&web, "{{.ID}}"), id, "updated, not recreated");
    assert!(service_field(&web, "{{.Spec.TaskTemplate.ContainerSpec.Image}}").ends_with(&second));
    let c = &task_containers(&web)[0];
    assert_eq!(docker(&["exec", c, "cat", "/marker"]), "two");

    docker(&["exec", c, "sh", "-c", "echo kept > /data/marker"]);

    // One field changed: the plan names it, and the service is updated in place.
    s.write("app.yaml", &manifest("2", 2, "", &token));
    let v2 = s.commit("v2");
    let r = s.hawser(&["--policy", &policy, "plan", "--exit-code", "{src}"]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stdout.contains("update (rolling, by the swarm)") && r.stdout.contains("env.V"), "{r:?}");

    // A saved plan: refused once the service changed since it was made (scaled by hand
    // here), applied as it is when nothing did.
    let plan_file = s.state.path().join("plan.json");
    let pf = plan_file.to_str().unwrap();
    let r = s.hawser(&["--policy", &policy, "plan", "--out", pf, "{src}"]);
    assert_eq!(r.code, 0, "{r:?}");
    docker(&["service", "scale", "-d", &format!("{web}=3")]);
    let r = s.hawser(&["--policy", &policy, "apply", "--plan", pf]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("stale plan: the managed objects of project `swt`"), "{r:?}");
    assert!(service_field(&web, "{{json .Spec.TaskTemplate.ContainerSpec.Env}}").contains("V=1"), "nothing applied");
    docker(&["service", "scale", &format!("{web}=2")]);
    let until = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while task_containers(&web).len() != 2 {
        assert!(std::time::Instant::now() < until, "the hand scaling back did not settle");
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let r = s.hawser(&["--policy", &policy, "plan", "--out", pf, "{src}"]);
    assert_eq!(r.code, 0, "{r:?}");
    let r = s.hawser(&["--policy", &policy, "apply", "--plan", pf]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(service_field(&web, "{{.ID}}"), id, "updated, not recreated");
    assert!(service_field(&web, "{{json .Spec.TaskTemplate.ContainerSpec.Env}}").contains("V=2"));
    let tasks = task_containers(&web);
    assert_eq!(tasks.len(), 2);
    for t in &tasks {
        assert_eq!(docker(&["exec", t, "sh", "-c", "echo $V"]), "2", "every task runs the new spec");
        assert_eq!(docker(&["exec", t, "cat", "/data/marker"]), "kept", "the named volume's data is kept");
    }

    // An update whose tasks never get healthy: the swarm rolls it back, hawser says so and
    // fails, and the old tasks serve.
    let sick = "  healthcheck: {test: [CMD, \"false\"], interval: 1s, timeout: 1s, retries: 1}\n";
    s.write("app.yaml", &manifest("3", 2, sick, &token));
    s.commit("v3 unhealthy");
    let r = s.hawser(&["--policy", &policy, "apply", "--yes", "{src}"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("rolled the update back") && r.stderr.contains("the old version serves"), "{r:?}");
    assert!(service_field(&web, "{{json .Spec.TaskTemplate.ContainerSpec.Env}}").contains("V=2"));
    for t in &task_containers(&web) {
        assert_eq!(docker(&["exec", t, "sh", "-c", "echo $V"]), "2");
    }

    // Replicas scaled by hand: drift, repaired.
    s.write("app.yaml", &manifest("2", 2, "", &token));
    s.commit("v4 back");
    docker(&["service", "scale", "-d", &format!("{web}=4")]);
    let r = s.hawser(&["--policy", &policy, "plan", "{src}"]);
    assert!(r.stdout.contains("drift: replicas scaled by hand to 4 (declared 2)"), "{r:?}");
    let r = s.hawser(&["--policy", &policy, "apply", "--yes", "{src}"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(service_field(&web, "{{.Spec.Mode.Replicated.Replicas}}"), "2");
    assert_eq!(task_containers(&web).len(), 2);

    // A rotated secret: a new object, the service updated to it, the old object removed.
    let old_secret = service_field(&web, "{{(index .Spec.TaskTemplate.ContainerSpec.Secrets 0).SecretName}}");
    std::fs::write(&token, "second-secret-value\n").unwrap();
    let r = s.hawser(&["--policy", &policy, "apply", "--yes", "{src}"]);
    assert_eq!(r.code, 0, "{r:?}");
    let new_secret = service_field(&web, "{{(index .Spec.TaskTemplate.ContainerSpec.Secrets 0).SecretName}}");
    assert_ne!(old_secret, new_secret);
    let secrets_now = docker(&["secret", "ls", "--format", "{{.Name}}"]);
    assert!(!secrets_now.lines().any(|l| l == old_secret), "{secrets_now}");
    let c = &task_containers(&web)[0];
    assert_eq!(docker(&["exec", c, "cat", "/run/secrets/token"]), "second-secret-value");

    // Status: tasks and the node they run on.
    let r = s.hawser(&["--target", "swarm", "status", "--project", "swt"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.lines().any(|l| l.contains(&web) && l.contains("2/2")), "{r:?}");

    // The service repairs drift from the swarm's service events: hand scaling is undone.
    let serve = Killed(
        std::process::Command::new(env!("CARGO_BIN_EXE_hawser"))
            .args(["--policy", &policy, "serve", s.path().to_str().unwrap(), "--interval", "10m"])
            .args(["--listen", "127.0.0.1:19495"])
            .env("DOCKER_HOST", docker_host())
            .env("HAWSER_STATE_DIR", s.state.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let until = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !s
        .hawser(&["history", "--project", "swt"])
        .stdout
        .lines()
        .any(|l| l.contains(" serve") || l.contains("start"))
    {
        assert!(std::time::Instant::now() < until, "serve never reconciled");
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    docker(&["service", "scale", "-d", &format!("{web}=3")]);
    let until = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let replicas = service_field(&web, "{{.Spec.Mode.Replicated.Replicas}}");
        if replicas == "2" && task_containers(&web).len() == 2 {
            break;
        }
        assert!(std::time::Instant::now() < until, "serve did not undo the hand scaling: {replicas}");
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    // The service's metrics sample the swarm's services too.
    let metrics = || {
        use std::io::{Read, Write};
        let mut c = std::net::TcpStream::connect(("127.0.0.1", 19495)).unwrap();
        c.write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").unwrap();
        let mut text = String::new();
        c.read_to_string(&mut text).unwrap();
        text
    };
    let text = metrics();
    let label = format!("{{project=\"swt\",kind=\"Service\",name=\"{web}\"}}");
    assert!(text.contains(&format!("hawser_service_tasks_running{label} 2")), "{text}");
    assert!(text.contains(&format!("hawser_service_tasks_desired{label} 2")), "{text}");
    assert!(text.contains(&format!("hawser_resource_running{label} 1")), "{text}");
    drop(serve);

    // Rollback: the earlier revision with the digest it ran then, though its tag has moved on.
    let third = push_variant_to("127.0.0.1:5000", "swt-app", "latest", "three");
    s.write("app.yaml", &manifest("5", 2, "", &token));
    s.commit("v5");
    let r = s.hawser(&["--policy", &policy, "apply", "--yes", "{src}"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(service_field(&web, "{{.Spec.TaskTemplate.ContainerSpec.Image}}").ends_with(&third));
    // A saved plan names the digests it pinned: the tag moving on makes it stale.
    let r = s.hawser(&["--policy", &policy, "plan", "--out", pf, "{src}"]);
    assert_eq!(r.code, 0, "{r:?}");
    push_variant_to("127.0.0.1:5000", "swt-app", "latest", "four");
    let r = s.hawser(&["--policy", &policy, "apply", "--plan", pf]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("stale plan"), "{r:?}");
    assert!(service_field(&web, "{{.Spec.TaskTemplate.ContainerSpec.Image}}").ends_with(&third), "nothing applied");
    let r = s.hawser(&["--policy", &policy, "rollback", "{src}", "--to", &v2, "--yes"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(service_field(&web, "{{.ID}}"), id, "updated, not recreated");
    assert!(service_field(&web, "{{.Spec.TaskTemplate.ContainerSpec.Image}}").ends_with(&second), "{r:?}");
    for t in &task_containers(&web) {
        assert_eq!(docker(&["exec", t, "sh", "-c", "echo $V; cat /marker"]), "2\ntwo");
    }
    let r = s.hawser(&["history", "--project", "swt"]);
    assert!(r.stdout.contains(&v2[..8]), "{r:?}");

    // dependsOn: a service is created only once its dependency's tasks run, healthy.
    let (db, api) = (format!("{NAMES}db"), format!("{NAMES}api"));
    let forever = "trap 'exit 0' TERM; while true; do sleep 1; done";
    s.write(
        "deps.yaml",
        &format!(
            "kind: Container\nmetadata: {{name: {db}}}\nspec:\n  image: \"{IMAGE}\"\n  command: [sh, -c, \"sleep 3; touch /tmp/ok; {forever}\"]\n  healthcheck: {{test: [CMD, test, -f, /tmp/ok], interval: 1s, timeout: 1s, retries: 30}}\n  stopTimeout: 2s\n---\nkind: Container\nmetadata: {{name: {api}}}\nspec:\n  image: \"{IMAGE}\"\n  command: [sh, -c, \"{forever}\"]\n  dependsOn: {{{db}: healthy}}\n  stopTimeout: 2s\n"
        ),
    );
    s.commit("v6 deps");
    let r = s.hawser(&["--policy", &policy, "apply", "--yes", "{src}"]);
    assert_eq!(r.code, 0, "{r:?}");
    let task = docker(&["service", "ps", "-q", "--filter", "desired-state=running", &db]);
    let healthy_at = docker(&["inspect", "--format", "{{json .Status.Timestamp}}", task.trim()]);
    let created_at = service_field(&api, "{{json .CreatedAt}}");
    let db_created_at = service_field(&db, "{{json .CreatedAt}}");
    let nanos = |t: &str| -> u128 {
        let out = std::process::Command::new("date").args(["-d", t.trim_matches('"'), "+%s%N"]).output().unwrap();
        String::from_utf8(out.stdout).unwrap().trim().parse().unwrap()
    };
    assert!(nanos(&healthy_at) >= nanos(&db_created_at) + 2_500_000_000, "{db} ran healthy at {healthy_at}");
    assert!(
        nanos(&created_at) >= nanos(&healthy_at),
        "{api} was created at {created_at}, before {db} ran healthy at {healthy_at}: {r:?}"
    );

    // git push deploys: a remote made with `--target swarm` deploys to the swarm, though the
    // pushed hawser.toml names no target (on one host, `replicas` would reject the push).
    let pushed = Stack::new("swtp");
    let remote = tempfile::tempdir().unwrap();
    let bare = remote.path().join("prod.git");
    let bare = bare.to_str().unwrap();
    let r = pushed.hawser(&["--target", "swarm", "init-remote", bare]);
    assert_eq!(r.code, 0, "{r:?}");
    let edge = format!("{NAMES}edge");
    let push = |v: &str| {
        pushed.write(
            "app.yaml",
            &format!("kind: Container\nmetadata: {{name: {edge}}}\nspec:\n  image: \"{IMAGE}\"\n  command: [sh, -c, \"{forever}\"]\n  env: {{V: \"{v}\"}}\n  replicas: 2\n  stopTimeout: 2s\n"),
        );
        pushed.commit(&format!("v{v}"));
        let out = std::process::Command::new("git")
            .args(["push", bare, "HEAD:main"])
            .current_dir(pushed.path())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr).to_string();
        assert!(out.status.success() && err.contains("hawser: deployed"), "{err}");
    };
    push("1");
    let edge_id = service_field(&edge, "{{.ID}}");
    push("2");
    assert_eq!(service_field(&edge, "{{.ID}}"), edge_id, "updated, not recreated");
    assert_eq!(service_field(&edge, "{{.Spec.Mode.Replicated.Replicas}}"), "2");
    for t in &task_containers(&edge) {
        assert_eq!(docker(&["exec", t, "sh", "-c", "echo $V"]), "2");
    }
    docker(&["service", "rm", &edge]);

    // Prune: an unmanaged service is never touched; emptying the project needs --allow-empty.
    docker(&["service", "create", "-d", "--name", &format!("{NAMES}other"), IMAGE, "sleep", "600"]);
    s.remove("app.yaml");
    s.remove("deps.yaml");
    s.commit("nothing");
    let r = s.hawser(&["--policy", &policy, "apply", "--yes", "--prune", "{src}"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("--allow-empty"), "{r:?}");
    let r = s.hawser(&["--policy", &policy, "apply", "--yes", "--prune", "--allow-empty", "{src}"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(docker_raw(&["service", "inspect", &web]).status.code() != Some(0));
    assert_eq!(service_field(&format!("{NAMES}other"), "{{.Spec.Name}}"), format!("{NAMES}other"));
}
