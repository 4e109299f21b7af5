//! The executor's decisions against an engine in memory (`runtime::fake`): replacement in both
//! orders, the gate and its rollback, dependency order, the bound on calls in flight, and a
//! crash at every step of a replacement, each converging on the next run. No engine involved.

use super::limit::Limited;
use super::{execute, Report};
use crate::desired::{self, DesiredState, ManifestFile};
use crate::diff::{self, DiffOptions, Op, Plan};
use crate::observed::RunState;
use crate::runtime::fake::{Behaviour, FakeEngine};
use crate::runtime::{EngineRead, ErrorKind};
use std::time::Duration;

const GOOD: &str = "reg/app:1";
const NEXT: &str = "reg/app:2";

fn desired(revision: &str, yaml: &str) -> DesiredState {
    let files = [ManifestFile { path: "stack.yaml".into(), text: yaml.into() }];
    desired::load("shop", revision, &files).unwrap_or_else(|d| panic!("{d}"))
}

fn web(image: &str, strategy: &str) -> String {
    format!(
        "kind: Container\nmetadata: {{name: web}}\nspec:\n  image: {image}\n  restart: always\n  update: {{strategy: {strategy}}}\n"
    )
}

async fn plan(engine: &FakeEngine, d: &DesiredState) -> Plan {
    let observed = engine.observe().await.unwrap();
    diff::diff(d, &observed, &DiffOptions::default())
}

async fn apply(engine: &FakeEngine, d: &DesiredState) -> Report {
    let plan = plan(engine, d).await;
    execute(&Limited::new(engine, 8), d, &plan, &mut |_| {}).await
}

fn engine() -> FakeEngine {
    FakeEngine::new().with_image(GOOD).with_image(NEXT)
}

/// `web` deployed at revision 1 from `GOOD`; returns its container id.
async fn deployed(engine: &FakeEngine, strategy: &str) -> String {
    let report = apply(engine, &desired("rev1", &web(GOOD, strategy))).await;
    assert!(report.ok(), "{report:?}");
    engine.forget_calls();
    engine.container("web").expect("deployed").id
}

/// The calls that changed something, in order (no reads).
fn changes(engine: &FakeEngine) -> Vec<String> {
    engine.calls().into_iter().filter(|c| !c.starts_with("observe") && !c.starts_with("inspect")).collect()
}

fn revision_of(engine: &FakeEngine, name: &str) -> String {
    engine.container(name).and_then(|c| c.labels.get(crate::labels::REVISION).cloned()).unwrap_or_default()
}

#[tokio::test]
async fn start_first_runs_the_new_container_beside_the_old_and_removes_the_old_only_once_it_passed() {
    let engine = engine();
    let old = deployed(&engine, "start-first").await;
    let report = apply(&engine, &desired("rev2", &web(NEXT, "start-first"))).await;
    assert!(report.ok() && report.done == 1, "{report:?}");
    assert_eq!(
        changes(&engine),
        [
            "create_container web.hawser-next",
            "start_container web.hawser-next",
            "stop_container web",
            "remove_container web",
            "rename_container web.hawser-next web",
        ]
    );
    let now = engine.container("web").unwrap();
    assert_ne!(now.id, old);
    assert_eq!((now.state, now.image.as_str()), (RunState::Running, NEXT));
    assert_eq!(engine.containers().len(), 1);
}

#[tokio::test]
async fn a_candidate_failing_its_gate_is_removed_and_the_old_container_never_stopped() {
    let engine = engine();
    let old = deployed(&engine, "start-first").await;
    engine.behave(NEXT, Behaviour::Exits(3));
    let report = apply(&engine, &desired("rev2", &web(NEXT, "start-first"))).await;
    assert_eq!(report.failures.len(), 1, "{report:?}");
    let f = &report.failures[0];
    assert!(f.rolled_back, "{f:?}");
    assert!(f.message.contains("exited with code 3") && f.message.contains("output of web.hawser-next"), "{f:?}");
    assert!(!engine.calls().iter().any(|c| c == "stop_container web"), "{:?}", engine.calls());
    let c = engine.container("web").unwrap();
    assert_eq!((c.id.as_str(), c.state), (old.as_str(), RunState::Running));
    assert_eq!(engine.containers().len(), 1, "the candidate is gone");
}

#[tokio::test]
async fn an_unhealthy_candidate_is_rolled_back_with_what_its_healthcheck_said() {
    let engine = engine();
    let with_check =
        |image: &str| format!("{}  healthcheck: {{test: [CMD, true], interval: 1s}}\n", web(image, "start-first"));
    let report = apply(&engine, &desired("rev1", &with_check(GOOD))).await;
    assert!(report.ok(), "{report:?}");
    engine.behave(NEXT, Behaviour::Unhealthy);
    let report = apply(&engine, &desired("rev2", &with_check(NEXT))).await;
    let f = &report.failures[0];
    assert!(f.rolled_back && f.message.contains("unhealthy"), "{f:?}");
    assert_eq!(revision_of(&engine, "web"), "rev1");
}

#[tokio::test]
async fn stop_first_gives_the_old_container_its_name_back_and_starts_it_when_the_new_one_fails() {
    let engine = engine();
    let old = deployed(&engine, "stop-first").await;
    engine.behave(NEXT, Behaviour::Exits(1));
    let report = apply(&engine, &desired("rev2", &web(NEXT, "stop-first"))).await;
    assert!(report.failures.len() == 1 && report.failures[0].rolled_back, "{report:?}");
    assert_eq!(
        changes(&engine),
        [
            "stop_container web",
            "rename_container web web.hawser-old",
            "create_container web",
            "start_container web",
            "remove_container web",
            "rename_container web.hawser-old web",
            "start_container web",
        ]
    );
    let c = engine.container("web").unwrap();
    assert_eq!((c.id.as_str(), c.state, c.image.as_str()), (old.as_str(), RunState::Running, GOOD));
    assert_eq!(engine.containers().len(), 1);
}

#[tokio::test]
async fn stop_first_success_removes_the_retired_container() {
    let engine = engine();
    let old = deployed(&engine, "stop-first").await;
    let report = apply(&engine, &desired("rev2", &web(NEXT, "stop-first"))).await;
    assert!(report.ok(), "{report:?}");
    let c = engine.container("web").unwrap();
    assert!(c.id != old && c.image == NEXT && c.state == RunState::Running);
    assert_eq!(engine.containers().len(), 1);
}

#[tokio::test]
async fn dependencies_go_first_and_a_failed_one_skips_what_waits_on_it() {
    const STACK: &str = r#"
kind: Network
metadata: {name: net}
---
kind: Container
metadata: {name: db}
spec:
  image: reg/app:1
  networks: [net]
  healthcheck: {test: [CMD, true], interval: 1s}
---
kind: Container
metadata: {name: web}
spec:
  image: reg/app:2
  networks: [net]
  dependsOn: {db: healthy}
"#;
    let engine = engine();
    let report = apply(&engine, &desired("rev1", STACK)).await;
    assert!(report.ok(), "{report:?}");
    let calls = engine.calls();
    let at = |call: &str| calls.iter().position(|c| c == call).unwrap_or_else(|| panic!("no {call} in {calls:?}"));
    assert!(at("create_network net") < at("create_container db"));
    assert!(at("start_container db") < at("inspect db"), "the gate looks at db");
    assert!(at("inspect db") < at("create_container web"), "web waits for db to be healthy");

    // db fails to create: web is skipped, not attempted.
    let engine = self::engine();
    engine.fail("create_container", "db", ErrorKind::Other);
    let report = apply(&engine, &desired("rev1", STACK)).await;
    let skipped = report.failures.iter().find(|f| f.name == "web").expect("web reported");
    assert!(skipped.message.starts_with("skipped: Container `db` failed"), "{skipped:?}");
    assert!(!engine.calls().iter().any(|c| c == "create_container web"));
}

#[tokio::test]
async fn no_more_engine_calls_are_in_flight_than_the_limit() {
    let yaml: Vec<String> =
        (0..12).map(|i| format!("kind: Container\nmetadata: {{name: c{i}}}\nspec: {{image: {GOOD}}}\n")).collect();
    let d = desired("rev1", &yaml.join("---\n"));
    let mut engine = engine();
    engine.delay = Duration::from_millis(20);
    let plan = plan(&engine, &d).await;
    let started = std::time::Instant::now();
    let report = execute(&Limited::new(&engine, 3), &d, &plan, &mut |_| {}).await;
    assert!(report.ok() && report.done == 12, "{report:?}");
    assert_eq!(engine.max_in_flight(), 3, "bounded, and concurrent up to the bound");
    // 36 calls (create, start, a gate's look) of 20 ms, 3 at a time: about 240 ms, not 720.
    assert!(started.elapsed() < Duration::from_millis(600), "{:?}", started.elapsed());
}

/// The process dies after each change a replacement makes, in turn; the next run converges
/// from what it left: one container under the name, of the new revision, running, and nothing
/// else.
async fn a_crash_at_every_step_converges_on_the_next_run(strategy: &str) {
    let steps = {
        let engine = engine();
        deployed(&engine, strategy).await;
        let before = engine.changes();
        assert!(apply(&engine, &desired("rev2", &web(NEXT, strategy))).await.ok());
        engine.changes() - before
    };
    assert!(steps >= 4, "{steps}");
    for step in 1..=steps {
        let engine = engine();
        deployed(&engine, strategy).await;
        let d = desired("rev2", &web(NEXT, strategy));
        engine.crash_after(Some(step));
        tokio::select! {
            r = apply(&engine, &d) => panic!("step {step}: no crash ({r:?})"),
            _ = engine.crashed() => {}
        }
        engine.crash_after(None);
        let left: Vec<_> = engine.containers().into_iter().map(|c| (c.name, c.state)).collect();
        let plan = plan(&engine, &d).await;
        // After the last change, there is nothing left to do.
        assert_eq!(plan.has_changes(), step < steps, "step {step}: {left:?}");
        assert!(!plan.actions.iter().any(|a| a.op == Op::Conflict), "step {step}: {plan:?}");
        let report = execute(&Limited::new(&engine, 8), &d, &plan, &mut |_| {}).await;
        assert!(report.ok(), "step {step}, after {left:?}: {report:?}");
        let all = engine.containers();
        assert_eq!(all.len(), 1, "step {step}, after {left:?}: {all:?}");
        assert_eq!((all[0].name.as_str(), all[0].state, all[0].image.as_str()), ("web", RunState::Running, NEXT));
        assert_eq!(revision_of(&engine, "web"), "rev2");
        let again = self::plan(&engine, &d).await;
        assert!(
            !again.has_changes(),
            "step {step}: converged: {:?}",
            again.actions.iter().map(|a| (&a.name, &a.op, a.cause.to_string())).collect::<Vec<_>>()
        );
    }
}

#[tokio::test]
async fn start_first_a_crash_at_every_step_converges_on_the_next_run() {
    a_crash_at_every_step_converges_on_the_next_run("start-first").await;
}

#[tokio::test]
async fn stop_first_a_crash_at_every_step_converges_on_the_next_run() {
    a_crash_at_every_step_converges_on_the_next_run("stop-first").await;
}

#[tokio::test]
async fn an_unmanaged_container_in_the_way_is_a_conflict_and_is_never_touched() {
    let engine = engine();
    let theirs = engine.add_unmanaged("web", "someone/else:1");
    let d = desired("rev1", &web(GOOD, "start-first"));
    let plan = plan(&engine, &d).await;
    assert!(plan.actions.iter().any(|a| a.op == Op::Conflict), "{plan:?}");
    let c = engine.container("web").unwrap();
    assert_eq!((c.id, c.image.as_str()), (theirs, "someone/else:1"));
}

#[tokio::test]
async fn a_failed_candidate_that_cannot_be_removed_is_left_for_the_next_run_and_the_old_one_serves() {
    let engine = engine();
    let old = deployed(&engine, "start-first").await;
    engine.behave(NEXT, Behaviour::Exits(1));
    engine.fail("remove_container", "web.hawser-next", ErrorKind::Other);
    let report = apply(&engine, &desired("rev2", &web(NEXT, "start-first"))).await;
    let f = &report.failures[0];
    assert!(f.rolled_back, "the old container was never touched: {f:?}");
    assert!(f.message.contains("exited with code 1") && f.message.contains("next run removes it"), "{f:?}");
    assert_eq!(engine.container("web").map(|c| (c.id, c.state)), Some((old.clone(), RunState::Running)));

    // The image works again and the engine removes what it is asked to: the next run clears
    // the leftover and replaces.
    engine.behave(NEXT, Behaviour::Runs);
    engine.heal("remove_container", "web.hawser-next");
    let report = apply(&engine, &desired("rev2", &web(NEXT, "start-first"))).await;
    assert!(report.ok(), "{report:?}");
    let all = engine.containers();
    assert_eq!(all.len(), 1, "{all:?}");
    assert_eq!((all[0].name.as_str(), all[0].image.as_str()), ("web", NEXT));
}

/// A web container publishing a host port (hawser's rules, where the engine owns the ports).
fn published_web(image: &str, extra: &str) -> String {
    format!(
        "kind: Container\nmetadata: {{name: web}}\nspec:\n  image: {image}\n  restart: always\n  ports: [\"127.0.0.1:18080:8080\"]\n  stopTimeout: 1s\n{extra}"
    )
}

fn rule_target(engine: &FakeEngine) -> Vec<String> {
    engine.published("shop").iter().map(|p| p.to_string()).collect()
}

#[tokio::test]
async fn a_published_port_is_switched_to_the_new_container_before_the_old_one_stops() {
    let engine = engine().owning_ports();
    let d1 = desired("rev1", &published_web(GOOD, ""));
    assert!(apply(&engine, &d1).await.ok());
    let old = engine.container("web").unwrap();
    assert_eq!(rule_target(&engine), [format!("127.0.0.1:18080/tcp -> {}:8080", old.address.unwrap())]);
    engine.forget_calls();

    let d2 = desired("rev2", &published_web(NEXT, ""));
    let plan = plan(&engine, &d2).await;
    assert!(
        plan.actions.iter().any(|a| matches!(a.op, Op::Replace { strategy: crate::desired::Strategy::StartFirst, .. })),
        "hawser owns the port: start-first ({plan:?})"
    );
    let report = execute(&Limited::new(&engine, 8), &d2, &plan, &mut |_| {}).await;
    assert!(report.ok(), "{report:?}");
    assert_eq!(
        changes(&engine),
        [
            "create_container web.hawser-next",
            "start_container web.hawser-next",
            "publish web web.hawser-next",
            "stop_container web",
            "remove_container web",
            "rename_container web.hawser-next web",
        ]
    );
    let new = engine.container("web").unwrap();
    assert_eq!(rule_target(&engine), [format!("127.0.0.1:18080/tcp -> {}:8080", new.address.unwrap())]);
}

#[tokio::test]
async fn a_candidate_failing_its_gate_never_takes_the_port() {
    let engine = engine().owning_ports();
    assert!(apply(&engine, &desired("rev1", &published_web(GOOD, ""))).await.ok());
    let before = rule_target(&engine);
    engine.forget_calls();
    engine.behave(NEXT, Behaviour::Exits(1));
    let report = apply(&engine, &desired("rev2", &published_web(NEXT, ""))).await;
    assert!(report.failures.len() == 1 && report.failures[0].rolled_back, "{report:?}");
    assert!(
        !engine.calls().iter().any(|c| c.starts_with("publish") || c == "stop_container web"),
        "{:?}",
        engine.calls()
    );
    assert_eq!(rule_target(&engine), before);
}

#[tokio::test]
async fn open_connections_are_drained_up_to_the_drain_timeout_before_the_old_container_stops() {
    let engine = engine().owning_ports();
    let drain = "  update: {drainTimeout: 400ms}\n";
    assert!(apply(&engine, &desired("rev1", &published_web(GOOD, drain))).await.ok());
    engine.hold_connections("web", 2);
    let started = std::time::Instant::now();
    let report = apply(&engine, &desired("rev2", &published_web(NEXT, drain))).await;
    assert!(report.ok(), "{report:?}");
    assert!(
        started.elapsed() >= Duration::from_millis(400),
        "waited for the open connections: {:?}",
        started.elapsed()
    );
    assert!(started.elapsed() < Duration::from_secs(3), "and no longer than the drain timeout");
}

#[tokio::test]
async fn a_lost_rule_is_drift_and_publishing_it_again_touches_no_container() {
    let engine = engine().owning_ports();
    let d = desired("rev1", &published_web(GOOD, ""));
    assert!(apply(&engine, &d).await.ok());
    let id = engine.container("web").unwrap().id;
    engine.flush_rules("shop");
    let p = plan(&engine, &d).await;
    let web = p.actions.iter().find(|a| a.name == "web").unwrap();
    assert_eq!(web.op, Op::Publish { id: id.clone() });
    assert!(web.cause.to_string().contains("host ports not published to it: 127.0.0.1:18080/tcp"), "{}", web.cause);
    let report = execute(&Limited::new(&engine, 8), &d, &p, &mut |_| {}).await;
    assert!(report.ok(), "{report:?}");
    assert_eq!(engine.container("web").unwrap().id, id);
    assert_eq!(rule_target(&engine).len(), 1);
    assert!(!self::plan(&engine, &d).await.has_changes());
}

#[tokio::test]
async fn where_the_engine_publishes_ports_a_replacement_stays_stop_first() {
    let engine = engine();
    assert!(apply(&engine, &desired("rev1", &published_web(GOOD, ""))).await.ok());
    let p = plan(&engine, &desired("rev2", &published_web(NEXT, ""))).await;
    assert!(
        p.actions.iter().any(|a| matches!(a.op, Op::Replace { strategy: crate::desired::Strategy::StopFirst, .. })),
        "{p:?}"
    );
    // And the plan says why.
    assert!(
        p.warnings
            .iter()
            .any(|w| w.starts_with("web replaced stop-first") && w.contains("the fake engine publishes them")),
        "{:?}",
        p.warnings
    );
}

#[tokio::test]
async fn where_hawser_cannot_program_this_hosts_kernel_a_replacement_with_ports_is_refused() {
    let engine = engine();
    assert!(apply(&engine, &desired("rev1", &published_web(GOOD, ""))).await.ok());
    let mut observed = engine.observe().await.unwrap();
    observed.ports = crate::observed::PortPublisher::Unable { why: "publishing host ports needs root".into() };
    let p = diff::diff(&desired("rev2", &published_web(NEXT, "")), &observed, &DiffOptions::default());
    let web = p.actions.iter().find(|a| a.name == "web").unwrap();
    assert_eq!(web.op, Op::Conflict, "{p:?}");
    let why = web.cause.to_string();
    assert!(why.contains("image changed") || why.contains("changed"), "the change is still named: {why}");
    assert!(why.contains("it cannot here: publishing host ports needs root") && why.contains("stop-first"), "{why}");
    // Asked for, stop-first is what they get.
    let asked = published_web(NEXT, "  update: {strategy: stop-first}\n");
    let p = diff::diff(&desired("rev2", &asked), &observed, &DiffOptions::default());
    let web = p.actions.iter().find(|a| a.name == "web").unwrap();
    assert!(matches!(web.op, Op::Replace { strategy: crate::desired::Strategy::StopFirst, .. }), "{p:?}");
}

/// The process dies after each change of a switch; the next run leaves the port published to
/// exactly one running container, of the new revision.
#[tokio::test]
async fn a_crash_at_every_step_of_a_switch_leaves_the_port_to_one_container_after_the_next_run() {
    let steps = {
        let engine = engine().owning_ports();
        assert!(apply(&engine, &desired("rev1", &published_web(GOOD, ""))).await.ok());
        let before = engine.changes();
        assert!(apply(&engine, &desired("rev2", &published_web(NEXT, ""))).await.ok());
        engine.changes() - before
    };
    for step in 1..=steps {
        let engine = engine().owning_ports();
        assert!(apply(&engine, &desired("rev1", &published_web(GOOD, ""))).await.ok());
        let d = desired("rev2", &published_web(NEXT, ""));
        engine.crash_after(Some(step));
        tokio::select! {
            r = apply(&engine, &d) => panic!("step {step}: no crash ({r:?})"),
            _ = engine.crashed() => {}
        }
        engine.crash_after(None);
        let report = apply(&engine, &d).await;
        assert!(report.ok(), "step {step}: {report:?}");
        let all = engine.containers();
        assert_eq!(all.len(), 1, "step {step}: {all:?}");
        let to = all[0].address.unwrap();
        assert_eq!(rule_target(&engine), [format!("127.0.0.1:18080/tcp -> {to}:8080")], "step {step}");
        assert_eq!((all[0].name.as_str(), all[0].image.as_str()), ("web", NEXT));
        assert!(!self::plan(&engine, &d).await.has_changes(), "step {step}: converged");
    }
}

fn replicated_web(image: &str, replicas: u32, extra: &str) -> String {
    format!(
        "kind: Container\nmetadata: {{name: web}}\nspec:\n  image: {image}\n  restart: always\n  replicas: {replicas}\n  ports: [\"127.0.0.1:18080:8080\"]\n  stopTimeout: 1s\n{extra}"
    )
}

/// Which replicas the rules send the host port to, by name.
fn serving(engine: &FakeEngine) -> Vec<String> {
    let mut v: Vec<String> = engine.published("shop").iter().map(|p| p.name.clone()).collect();
    v.sort();
    v
}

#[tokio::test]
async fn replicas_share_the_host_port_and_a_change_rolls_over_them_one_at_a_time() {
    let engine = engine().owning_ports();
    assert!(apply(&engine, &desired("rev1", &replicated_web(GOOD, 3, ""))).await.ok());
    assert_eq!(serving(&engine), ["web-1", "web-2", "web-3"]);
    engine.forget_calls();
    let report = apply(&engine, &desired("rev2", &replicated_web(NEXT, 3, ""))).await;
    assert!(report.ok() && report.done == 3, "{report:?}");
    // Each replica's replacement ends (its old container removed) before the next one's starts.
    let calls = changes(&engine);
    let at = |c: &str| calls.iter().position(|x| x == c).unwrap_or_else(|| panic!("no {c} in {calls:?}"));
    assert!(at("remove_container web-1") < at("create_container web-2.hawser-next"), "{calls:?}");
    assert!(at("remove_container web-2") < at("create_container web-3.hawser-next"), "{calls:?}");
    assert_eq!(serving(&engine), ["web-1", "web-2", "web-3"]);
    assert!((1..=3).all(|i| engine.container(&format!("web-{i}")).unwrap().image == NEXT));
}

#[tokio::test]
async fn a_failing_replica_stops_the_roll_and_the_others_keep_serving() {
    let engine = engine().owning_ports();
    assert!(apply(&engine, &desired("rev1", &replicated_web(GOOD, 3, ""))).await.ok());
    engine.behave(NEXT, Behaviour::Exits(1));
    let report = apply(&engine, &desired("rev2", &replicated_web(NEXT, 3, ""))).await;
    assert_eq!(report.failures.len(), 3, "{report:?}");
    assert!(report.failures[0].rolled_back, "{report:?}");
    assert!(report.failures[1..].iter().all(|f| f.message.contains("skipped")), "{report:?}");
    assert!((1..=3).all(|i| engine.container(&format!("web-{i}")).unwrap().image == GOOD));
    assert_eq!(serving(&engine), ["web-1", "web-2", "web-3"]);
}

#[tokio::test]
async fn parallelism_replaces_that_many_replicas_at_once() {
    let engine = engine().owning_ports();
    let two = "  update: {parallelism: 2}\n";
    assert!(apply(&engine, &desired("rev1", &replicated_web(GOOD, 5, two))).await.ok());
    let d = desired("rev2", &replicated_web(NEXT, 5, two));
    let plan = plan(&engine, &d).await;
    let deps = super::graph::dependencies(&d, &plan);
    let waits: Vec<(String, Vec<String>)> = plan
        .actions
        .iter()
        .zip(&deps)
        .filter(|(a, _)| a.name.starts_with("web-"))
        .map(|(a, d)| (a.name.clone(), d.iter().map(|&j| plan.actions[j].name.clone()).collect()))
        .collect();
    let of = |n: &str| waits.iter().find(|(x, _)| x == n).map(|(_, d)| d.clone()).unwrap();
    assert!(of("web-1").iter().all(|d| !d.starts_with("web")) && of("web-2").iter().all(|d| !d.starts_with("web")));
    assert!(of("web-3").contains(&"web-1".to_string()) && !of("web-3").contains(&"web-2".to_string()), "{waits:?}");
    assert!(of("web-4").contains(&"web-2".to_string()), "{waits:?}");
    assert!(of("web-5").contains(&"web-3".to_string()), "{waits:?}");
    let report = execute(&Limited::new(&engine, 8), &d, &plan, &mut |_| {}).await;
    assert!(report.ok() && report.done == 5, "{report:?}");
}

#[tokio::test]
async fn scaling_down_unpublishes_and_drains_a_replica_before_it_stops() {
    let engine = engine().owning_ports();
    let drain = "  update: {drainTimeout: 400ms}\n";
    assert!(apply(&engine, &desired("rev1", &replicated_web(GOOD, 3, drain))).await.ok());
    engine.hold_connections("web-3", 1);
    engine.forget_calls();
    let started = std::time::Instant::now();
    let d = desired("rev2", &replicated_web(GOOD, 2, drain));
    let plan = plan(&engine, &d).await;
    let report = execute(&Limited::new(&engine, 8), &d, &plan, &mut |_| {}).await;
    assert!(report.ok(), "{report:?}");
    assert!(started.elapsed() >= Duration::from_millis(400), "drained: {:?}", started.elapsed());
    let calls = changes(&engine);
    assert_eq!(calls.first().map(String::as_str), Some("unpublish web-3"), "{calls:?}");
    assert_eq!(serving(&engine), ["web-1", "web-2"]);
    assert!(engine.container("web-3").is_none());
}

#[tokio::test]
async fn one_container_becoming_replicas_goes_once_they_serve() {
    let engine = engine().owning_ports();
    assert!(apply(&engine, &desired("rev1", &published_web(GOOD, ""))).await.ok());
    engine.forget_calls();
    let d = desired("rev2", &replicated_web(GOOD, 2, ""));
    let plan = plan(&engine, &d).await;
    let report = execute(&Limited::new(&engine, 8), &d, &plan, &mut |_| {}).await;
    assert!(report.ok(), "{report:?}");
    let calls = changes(&engine);
    let at = |c: &str| calls.iter().position(|x| x.starts_with(c)).unwrap_or_else(|| panic!("no {c} in {calls:?}"));
    assert!(at("publish web-1") < at("unpublish web") && at("publish web-2") < at("unpublish web"), "{calls:?}");
    assert_eq!(serving(&engine), ["web-1", "web-2"]);
}

#[tokio::test]
async fn replicas_cannot_share_a_host_port_the_engine_publishes() {
    let engine = engine();
    let p = plan(&engine, &desired("rev1", &replicated_web(GOOD, 2, ""))).await;
    let ops: Vec<(String, Op)> =
        p.actions.iter().filter(|a| a.name.starts_with("web")).map(|a| (a.name.clone(), a.op.clone())).collect();
    assert_eq!(ops, [("web-1".to_string(), Op::Create), ("web-2".to_string(), Op::Conflict)]);
    let why = p.actions.iter().find(|a| a.name == "web-2").unwrap().cause.to_string();
    assert!(
        why.contains("replicas share host ports only where hawser publishes them itself")
            && why.contains("the fake engine publishes them"),
        "{why}"
    );
}

#[tokio::test]
async fn an_unhealthy_replica_gets_no_new_connections_while_another_is_healthy() {
    use crate::observed::Health;
    let engine = engine().owning_ports();
    let check = "  healthcheck: {test: \"true\", interval: 1s}\n";
    let d = desired("rev1", &replicated_web(GOOD, 2, check));
    assert!(apply(&engine, &d).await.ok());
    engine.set_health("web-2", Health::Unhealthy);
    let p = plan(&engine, &d).await;
    let web2 = p.actions.iter().find(|a| a.name == "web-2").unwrap();
    assert!(matches!(web2.op, Op::Unpublish { .. }), "{p:?}");
    assert!(web2.cause.to_string().contains("healthy replicas"), "{}", web2.cause);
    assert!(execute(&Limited::new(&engine, 8), &d, &p, &mut |_| {}).await.ok());
    assert_eq!(serving(&engine), ["web-1"]);
    assert!(!plan(&engine, &d).await.has_changes(), "out of rotation is converged");
    // Both unhealthy: both keep their share (some answer beats none).
    engine.set_health("web-1", Health::Unhealthy);
    let p = plan(&engine, &d).await;
    assert!(p.actions.iter().any(|a| a.name == "web-2" && matches!(a.op, Op::Publish { .. })), "{p:?}");
    // Healthy again: back in.
    engine.set_health("web-1", Health::Healthy);
    engine.set_health("web-2", Health::Healthy);
    assert!(apply(&engine, &d).await.ok());
    assert_eq!(serving(&engine), ["web-1", "web-2"]);
}

fn hooked_web(image: &str, strategy: &str, post_start: &str) -> String {
    format!("{}  postStart: [{{command: [{post_start}]}}]\n  preStop: [{{command: [drain]}}]\n", web(image, strategy))
}

#[tokio::test]
async fn hooks_run_after_the_start_before_the_gate_and_before_the_stop() {
    let engine = engine();
    assert!(apply(&engine, &desired("rev1", &hooked_web(GOOD, "start-first", "warm"))).await.ok());
    assert_eq!(changes(&engine), ["create_container web", "start_container web", "exec web warm"]);
    engine.forget_calls();
    assert!(apply(&engine, &desired("rev2", &hooked_web(NEXT, "start-first", "warm"))).await.ok());
    assert_eq!(
        changes(&engine),
        [
            "create_container web.hawser-next",
            "start_container web.hawser-next",
            "exec web.hawser-next warm",
            "exec web drain",
            "stop_container web",
            "remove_container web",
            "rename_container web.hawser-next web",
        ]
    );
}

#[tokio::test]
async fn a_failing_post_start_hook_fails_the_candidate_and_the_old_one_serves() {
    let engine = engine();
    let old = {
        assert!(apply(&engine, &desired("rev1", &hooked_web(GOOD, "start-first", "warm"))).await.ok());
        engine.container("web").unwrap().id
    };
    let report = apply(&engine, &desired("rev2", &hooked_web(NEXT, "start-first", "\"false\""))).await;
    assert_eq!(report.failures.len(), 1, "{report:?}");
    assert!(report.failures[0].rolled_back, "{report:?}");
    assert!(report.failures[0].message.contains("its postStart hook `false` exited with 1"), "{report:?}");
    assert_eq!(engine.container("web").unwrap().id, old, "the old one was never touched");
    assert_eq!(engine.containers().len(), 1, "the candidate is gone");
}
