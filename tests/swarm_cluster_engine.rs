//! The swarm target on a three-node cluster made for the test (`tests/support/swarm-cluster`):
//! three private dockerds in their own network namespaces on a 198.18.0.0/24 test bridge,
//! removed afterwards. Spread limits, placement constraints, an overlay network between nodes,
//! and a node going down.

mod common;
use common::*;
use std::process::Command;
use std::time::{Duration, Instant};

const IMG: &str = "198.18.0.1:5000/busybox:latest";
const LOOP: &str = "trap 'exit 0' TERM; while true; do sleep 1; done";

fn script(args: &[&str]) {
    let out = Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/support/swarm-cluster"))
        .args(args)
        .output()
        .expect("the cluster script runs");
    assert!(out.status.success(), "swarm-cluster {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

struct Cluster;

impl Cluster {
    fn up() -> Cluster {
        script(&["down"]);
        script(&["up"]);
        Cluster
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        script(&["down"]);
    }
}

fn node(n: u32) -> String {
    format!("unix:///run/hws/n{n}/docker.sock")
}

fn dk(n: u32, args: &[&str]) -> String {
    let out = Command::new("docker").arg("-H").arg(node(n)).args(args).output().unwrap();
    assert!(out.status.success(), "docker {args:?} on node {n}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The nodes of the running tasks of `service`, one line per task.
fn task_nodes(service: &str) -> Vec<String> {
    let mut nodes: Vec<String> = dk(
        1,
        &["service", "ps", service, "--filter", "desired-state=running", "--format", "{{.Node}} {{.CurrentState}}"],
    )
    .lines()
    .filter(|l| l.contains("Running"))
    .map(|l| l.split_whitespace().next().unwrap_or_default().to_string())
    .collect();
    nodes.sort();
    nodes
}

fn container(name: &str, constraint: &str, extra: &str) -> String {
    format!(
        "---\nkind: Container\nmetadata: {{name: {name}}}\nspec:\n  image: \"{IMG}\"\n  command: [sh, -c, \"{LOOP}\"]\n  stopTimeout: 2s\n  placement: {{constraints: [\"{constraint}\"]}}\n{extra}"
    )
}

#[test]
fn a_project_spreads_pins_talks_and_survives_a_node_on_a_three_node_swarm() {
    let _cluster = Cluster::up();
    dk(1, &["node", "update", "--label-add", "zone=b", "hws2"]);
    let s = Stack::new("swc");
    s.write("hawser.toml", "project = \"swc\"\ntarget = \"swarm\"\n");
    let mut m = String::from("kind: Network\nmetadata: {name: swc-net}\n");
    m += &format!(
        "---\nkind: Container\nmetadata: {{name: swc-spread}}\nspec:\n  image: \"{IMG}\"\n  command: [sh, -c, \"{LOOP}\"]\n  stopTimeout: 2s\n  replicas: 6\n  placement: {{maxReplicasPerNode: 2}}\n"
    );
    m += &container("swc-pinned", "node.labels.zone == b", "  replicas: 2\n");
    m += &container(
        "swc-backend",
        "node.hostname == hws3",
        "  endpointMode: dnsrr\n  networks: {swc-net: {aliases: [backend]}}\n",
    );
    m += &container("swc-client", "node.hostname == hws1", "  networks: [swc-net]\n");
    m += &format!(
        "---\nkind: Container\nmetadata: {{name: swc-moves}}\nspec:\n  image: \"{IMG}\"\n  command: [sh, -c, \"{LOOP}\"]\n  stopTimeout: 2s\n  replicas: 3\n"
    );
    s.write("app.yaml", &m);
    s.commit("v1");
    let host = node(1);
    let r = s.hawser(&["--host", &host, "apply", "--yes", "{src}"]);
    assert_eq!(r.code, 0, "{r:?}");
    // A worker can't take services: pointed at one, hawser says where to point instead.
    let r = s.hawser(&["--host", &node(2), "plan", "{src}"]);
    assert!(r.code != 0 && r.stderr.contains("swarm worker, not a manager"), "{r:?}");

    // Six replicas at most two per node: two on each.
    assert_eq!(task_nodes("swc-spread"), ["hws1", "hws1", "hws2", "hws2", "hws3", "hws3"]);
    // A constraint pins the service to the labelled node.
    assert_eq!(task_nodes("swc-pinned"), ["hws2", "hws2"]);
    // Over the overlay network, a task on hws1 reaches the alias of a service on hws3.
    assert_eq!(task_nodes("swc-backend"), ["hws3"]);
    let client = dk(1, &["ps", "-q", "--filter", "label=com.docker.swarm.service.name=swc-client"]);
    let ping = Command::new("docker")
        .args(["-H", &node(1), "exec", &client, "ping", "-c", "1", "-W", "3", "backend"])
        .output()
        .unwrap();
    assert!(
        ping.status.success(),
        "ping backend: {}{}",
        String::from_utf8_lossy(&ping.stdout),
        String::from_utf8_lossy(&ping.stderr)
    );

    // Node 3 goes down: the swarm moves what it can, and hawser reports what it sees.
    script(&["stop", "3"]);
    let until = Instant::now() + Duration::from_secs(60);
    while !dk(1, &["node", "ls", "--format", "{{.Hostname}} {{.Status}}"]).contains("hws3 Down") {
        assert!(Instant::now() < until, "node 3 never seen down");
        std::thread::sleep(Duration::from_millis(500));
    }
    let until = Instant::now() + Duration::from_secs(60);
    while task_nodes("swc-moves").len() < 3 || task_nodes("swc-moves").iter().any(|n| n == "hws3") {
        assert!(Instant::now() < until, "the swarm did not reschedule: {:?}", task_nodes("swc-moves"));
        std::thread::sleep(Duration::from_millis(500));
    }
    let r = s.hawser(&["--host", &host, "plan", "{src}"]);
    assert!(r.stdout.contains("drift: 4 of 6 tasks running; node hws3 down"), "{r:?}");
    let r = s.hawser(&["--host", &host, "--target", "swarm", "status", "--project", "swc"]);
    assert!(r.stdout.lines().any(|l| l.contains("swc-moves") && l.contains("3/3") && !l.contains("hws3")), "{r:?}");
    assert!(r.stdout.lines().any(|l| l.contains("swc-spread") && l.contains("4/6")), "{r:?}");

    // It comes back; apply converges.
    script(&["start", "3"]);
    let r = s.hawser(&["--host", &host, "apply", "--yes", "{src}"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(task_nodes("swc-spread").len(), 6);
    let r = s.hawser(&["--host", &host, "plan", "--exit-code", "{src}"]);
    assert_eq!(r.code, 0, "{r:?}");

    // Attack: a start-first update that could not be placed (at most 2 per node, every slot
    // taken) waited 314 s before failing. Six replicas at most two per node on three nodes
    // leave no room to start one first: the update goes stop-first, as `docker stack deploy`'s.
    let m2 = m.replace("replicas: 6\n", "replicas: 6\n  env: {VERSION: \"2\"}\n");
    s.write("app.yaml", &m2);
    s.commit("v2: spread changed");
    let started = Instant::now();
    let r = s.hawser(&["--host", &host, "apply", "--yes", "{src}"]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("stop-first: 6 replicas at most 2 per node on 3 eligible nodes leave no room"), "{r:?}");
    assert!(started.elapsed() < Duration::from_secs(120), "took {:?}", started.elapsed());
    assert_eq!(task_nodes("swc-spread").len(), 6);

    // An update no node can take (a constraint nothing meets) fails within seconds with the
    // cluster's reason, and is rolled back: the old tasks serve where they were.
    let m3 = m2.replace("node.labels.zone == b", "node.labels.zone == nowhere");
    s.write("app.yaml", &m3);
    s.commit("v3: pinned nowhere");
    let started = Instant::now();
    let r = s.hawser(&["--host", &host, "apply", "--yes", "{src}"]);
    let took = started.elapsed();
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("cannot be placed") && r.stderr.contains("no suitable node"), "{r:?}");
    assert!(!r.stderr.contains("on : "), "a task with no node is not named by an empty one: {r:?}");
    assert!(took < Duration::from_secs(60), "failed after {took:?}");
    assert_eq!(task_nodes("swc-pinned"), ["hws2", "hws2"], "the old version serves");
}
