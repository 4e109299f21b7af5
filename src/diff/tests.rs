//! The diff's decisions, on hand-built observed snapshots: no engine involved.

use super::*;
use crate::desired::{self, ManifestFile};
use crate::labels::{self, Ownership};
use crate::observed::{ObservedNetwork, ObservedVolume};

fn desired(yaml: &str) -> DesiredState {
    let files = [ManifestFile { path: "stack.yaml".into(), text: yaml.into() }];
    desired::load("shop", "rev2", &files).unwrap_or_else(|d| panic!("{d}"))
}

const STACK: &str = r#"
kind: Network
metadata: {name: net}
---
kind: Volume
metadata: {name: data}
---
kind: Container
metadata: {name: db}
spec:
  image: reg/db:1
  volumes: ["data:/var/lib/db"]
  networks: [net]
---
kind: Container
metadata: {name: web}
spec:
  image: reg/web:1
  env: {GREETING: hello}
  networks: [net]
  dependsOn: {db: healthy}
"#;

/// An observed container as hawser would have created it from `spec`.
fn applied(name: &str, engine_name: &str, d: &DesiredState, state: RunState) -> ObservedContainer {
    let spec = &d.containers[name].spec;
    let view = serde_json::to_string(&hash::container_view(spec)).unwrap();
    let l = labels::for_object(
        &spec.labels,
        &d.project,
        Kind::Container,
        name,
        &hash::container(spec),
        "rev1",
        Some(&view),
    );
    ObservedContainer {
        id: format!("id-{engine_name}"),
        name: engine_name.into(),
        image_id: format!("sha256:{}", spec.image),
        state,
        exit_code: None,
        health: None,
        owner: Ownership::from_labels(&l),
        labels: l,
        networks: spec.networks.keys().cloned().collect(),
        address: None,
    }
}

fn converged(d: &DesiredState) -> ObservedState {
    let mut o = ObservedState::default();
    for (name, r) in &d.networks {
        let l = labels::for_object(
            &Default::default(),
            &d.project,
            Kind::Network,
            name,
            &hash::network(&r.spec),
            "rev1",
            None,
        );
        o.networks.push(ObservedNetwork {
            id: format!("net-{name}"),
            name: name.clone(),
            owner: Ownership::from_labels(&l),
            labels: l,
        });
    }
    for (name, r) in &d.volumes {
        let l = labels::for_object(
            &Default::default(),
            &d.project,
            Kind::Volume,
            name,
            &hash::volume(&r.spec),
            "rev1",
            None,
        );
        o.volumes.push(ObservedVolume { name: name.clone(), owner: Ownership::from_labels(&l), labels: l });
    }
    for (name, c) in &d.containers {
        o.containers.push(applied(name, name, d, RunState::Running));
        o.images.insert(normalize_reference(&c.spec.image), format!("sha256:{}", c.spec.image));
    }
    o
}

fn ops(plan: &Plan) -> Vec<String> {
    plan.actions.iter().filter(|a| a.op != Op::Keep).map(|a| format!("{} {} {:?}", a.kind, a.name, a.op)).collect()
}

fn plan(d: &DesiredState, o: &ObservedState) -> Plan {
    diff(d, o, &DiffOptions::default())
}

#[test]
fn an_empty_host_gets_everything_created_in_dependency_order() {
    let d = desired(STACK);
    let p = plan(&d, &ObservedState::default());
    assert_eq!(
        ops(&p),
        [
            "Network net Create",
            "Volume data Create",
            "Image reg/db:1 Pull { reference: \"reg/db:1\" }",
            "Image reg/web:1 Pull { reference: \"reg/web:1\" }",
            "Container db Create",
            "Container web Create",
        ]
    );
    assert!(p.has_changes());
}

#[test]
fn a_converged_host_has_an_empty_plan() {
    let d = desired(STACK);
    let p = plan(&d, &converged(&d));
    assert!(!p.has_changes(), "{p}");
    assert_eq!(p.summary().unchanged, 4);
}

#[test]
fn a_changed_env_replaces_only_that_container_and_names_the_field() {
    let d1 = desired(STACK);
    let o = converged(&d1);
    let d2 = desired(&STACK.replace("GREETING: hello", "GREETING: bonjour"));
    let p = plan(&d2, &o);
    assert_eq!(ops(&p), ["Container web Replace { old_id: \"id-web\", strategy: StartFirst }"]);
    let web = p.actions.iter().find(|a| a.name == "web").unwrap();
    let Cause::SpecChanged { changes } = &web.cause else { panic!("{:?}", web.cause) };
    assert_eq!(changes.len(), 1);
    assert_eq!(changes[0].field, "env.GREETING");
    assert_eq!(changes[0].old, Some(serde_json::json!("hello")));
    assert_eq!(changes[0].new, Some(serde_json::json!("bonjour")));
}

#[test]
fn orchestration_only_changes_replace_nothing() {
    let d1 = desired(STACK);
    let o = converged(&d1);
    let d2 = desired(&STACK.replace("dependsOn: {db: healthy}", "dependsOn: [db]\n  update: {healthTimeout: 5s}"));
    assert!(!plan(&d2, &o).has_changes());
}

#[test]
fn published_host_ports_make_the_replacement_stop_first() {
    let d1 = desired(STACK);
    let o = converged(&d1);
    let d2 = desired(&STACK.replace("env: {GREETING: hello}", "env: {GREETING: hello}\n  ports: [\"8080:80\"]"));
    let p = plan(&d2, &o);
    assert_eq!(ops(&p), ["Container web Replace { old_id: \"id-web\", strategy: StopFirst }"]);
}

#[test]
fn a_moved_image_replaces_the_container() {
    let d = desired(STACK);
    let mut o = converged(&d);
    o.images.insert("reg/db:1".into(), "sha256:new".into());
    let p = plan(&d, &o);
    let db = p.actions.iter().find(|a| a.name == "db").unwrap();
    assert!(matches!(db.op, Op::Replace { .. }));
    assert_eq!(db.cause, Cause::ImageChanged { from: "sha256:reg/db:1".into(), to: "sha256:new".into() });
}

#[test]
fn a_stopped_container_is_started_and_a_completed_one_shot_is_kept() {
    let d = desired(STACK);
    let mut o = converged(&d);
    o.containers[0].state = RunState::Exited;
    o.containers[0].exit_code = Some(137);
    let p = plan(&d, &o);
    let db = p.actions.iter().find(|a| a.name == "db").unwrap();
    assert_eq!(db.op, Op::Start { id: "id-db".into() });
    assert_eq!(db.cause, Cause::Stopped { state: "exited".into(), exit_code: Some(137) });

    o.containers[0].exit_code = Some(0);
    let p = plan(&d, &o);
    let db = p.actions.iter().find(|a| a.name == "db").unwrap();
    assert_eq!((db.op.clone(), db.cause.clone()), (Op::Keep, Cause::Completed));
}

#[test]
fn a_name_held_by_an_unmanaged_or_foreign_object_is_a_conflict() {
    let d = desired(STACK);
    let mut o = converged(&d);
    o.containers.retain(|c| c.name != "web");
    o.containers.push(ObservedContainer {
        id: "mine-not".into(),
        name: "web".into(),
        image_id: String::new(),
        state: RunState::Running,
        exit_code: None,
        health: None,
        labels: Default::default(),
        owner: None,
        networks: Vec::new(),
        address: None,
    });
    o.networks[0].owner.as_mut().unwrap().project = "other".into();
    let p = plan(&d, &o);
    assert_eq!(ops(&p), ["Network net Conflict", "Container web Conflict"]);
    let net = p.actions.iter().find(|a| a.name == "net").unwrap();
    assert_eq!(net.cause, Cause::NameTaken { owner_project: Some("other".into()) });
}

#[test]
fn leftovers_of_an_interrupted_replacement_are_removed_or_adopted() {
    let d = desired(STACK);
    // Crash after the candidate was created: the old one still has the name.
    let mut o = converged(&d);
    o.containers.push(applied("web", &candidate_name("web"), &d, RunState::Running));
    let p = plan(&d, &o);
    assert_eq!(ops(&p), ["Container web Remove { id: \"id-web.hawser-next\" }"]);

    // Crash after the old one was removed, before the rename: the candidate takes the name.
    o.containers.retain(|c| c.name != "web");
    let p = plan(&d, &o);
    assert_eq!(ops(&p), ["Container web Adopt { id: \"id-web.hawser-next\", from_name: \"web.hawser-next\" }"]);
}

#[test]
fn undeclared_objects_are_orphans_until_pruned_and_volumes_are_kept() {
    let d_all = desired(STACK);
    let o = converged(&d_all);
    let d = desired("kind: Container\nmetadata: {name: db}\nspec: {image: reg/db:1}\n");
    let p = diff(&d, &o, &DiffOptions { prune: false, ..Default::default() });
    assert_eq!(
        ops(&p),
        [
            "Container db Replace { old_id: \"id-db\", strategy: StartFirst }",
            "Container web Orphan",
            "Network net Orphan"
        ]
    );
    let p = diff(&d, &o, &DiffOptions { prune: true, ..Default::default() });
    assert_eq!(
        ops(&p),
        [
            "Container db Replace { old_id: \"id-db\", strategy: StartFirst }",
            "Container web Remove { id: \"id-web\" }",
            "Network net Remove { id: \"net-net\" }",
        ],
        "the volume is never pruned by default"
    );
}

/// Regression: two sources claiming one project removed each other's containers in a loop.
#[test]
fn a_project_belongs_to_the_source_that_applied_it() {
    let mut d = desired(STACK);
    d.source = "/srv/a.git".into();
    let mut o = converged(&d);
    for c in &mut o.containers {
        c.owner.as_mut().unwrap().source = Some("/srv/a.git".into());
    }
    assert!(!plan(&d, &o).has_changes(), "its own source applies as usual");

    // Another source, declaring less: refused whole, nothing removed even with prune.
    let mut other = desired("kind: Container\nmetadata: {name: db}\nspec: {image: reg/db:1}\n");
    other.source = "/srv/b.git".into();
    let p = diff(&other, &o, &DiffOptions { prune: true, ..Default::default() });
    assert_eq!(ops(&p), ["Container db Conflict", "Container web Conflict"]);
    assert_eq!(p.actions[0].cause, Cause::OwnedBySource { source: "/srv/a.git".into() });
    assert!(p.actions[0].cause.to_string().contains("--take-over"));

    // Taking it over replaces what it keeps, so every container then carries the new source.
    let p = diff(&other, &o, &DiffOptions { prune: true, take_over: true });
    assert_eq!(p.actions[0].cause, Cause::SourceChanged { from: "/srv/a.git".into() });
    assert!(ops(&p).contains(&"Container web Remove { id: \"id-web\" }".to_string()), "{:?}", ops(&p));

    // Objects of versions that did not record a source are adopted by whoever applies.
    for c in &mut o.containers {
        c.owner.as_mut().unwrap().source = None;
    }
    let p = diff(&other, &o, &DiffOptions { prune: false, ..Default::default() });
    assert_eq!(p.conflicts().count(), 0);
}

#[test]
fn a_volume_applied_with_retain_false_can_be_pruned() {
    let d1 = desired("kind: Volume\nmetadata: {name: cache}\nspec: {retain: false}\n");
    let mut o = converged(&d1);
    let spec = serde_json::to_string(&d1.volumes["cache"].spec).unwrap();
    o.volumes[0].owner.as_mut().unwrap().spec = Some(spec);
    let d2 = desired("kind: Volume\nmetadata: {name: other}\n");
    let p = diff(&d2, &o, &DiffOptions { prune: true, ..Default::default() });
    assert_eq!(ops(&p), ["Volume other Create", "Volume cache Remove { id: \"cache\" }"]);
}

#[test]
fn a_changed_network_is_replaced_with_its_containers() {
    let d1 = desired(STACK);
    let mut o = converged(&d1);
    o.networks[0].owner.as_mut().unwrap().spec = Some(serde_json::to_string(&d1.networks["net"].spec).unwrap());
    let d2 = desired(&STACK.replace("metadata: {name: net}", "metadata: {name: net}\nspec: {internal: true}"));
    let p = plan(&d2, &o);
    assert_eq!(
        ops(&p),
        [
            "Network net Replace { old_id: \"net-net\", strategy: StopFirst }",
            "Container db Remove { id: \"id-db\" }",
            "Container db Create",
            "Container web Remove { id: \"id-web\" }",
            "Container web Create",
        ]
    );
    let net = p.actions.iter().find(|a| a.name == "net").unwrap();
    let Cause::NetworkChanged { changes } = &net.cause else { panic!() };
    assert_eq!(changes[0].field, "internal");

    // A container hawser would not remove, attached to it, blocks the replacement.
    o.containers.push(ObservedContainer {
        owner: None,
        name: "stranger".into(),
        id: "s".into(),
        ..o.containers[0].clone()
    });
    let p = plan(&d2, &o);
    let net = p.actions.iter().find(|a| a.name == "net").unwrap();
    assert_eq!(
        (net.op.clone(), net.cause.clone()),
        (Op::Conflict, Cause::AttachedUnmanaged { container: "stranger".into() })
    );
}

/// One plan with every kind of action: create, replace with several fields, drift, leftovers,
/// remove, conflict and pull.
fn every_kind_of_action() -> Plan {
    let d1 = desired(STACK);
    let mut o = converged(&d1);
    o.containers[0].state = RunState::Exited;
    o.containers[0].exit_code = Some(1);
    o.containers.push(ObservedContainer {
        owner: None,
        name: "cache".into(),
        id: "c".into(),
        ..o.containers[1].clone()
    });
    o.containers.push(applied("web", "old", &d1, RunState::Running));
    o.containers.last_mut().unwrap().owner.as_mut().unwrap().name = "old".into();
    let d2 = desired(
        &(STACK.replace("GREETING: hello", "GREETING: bonjour, LANG: fr").replace("image: reg/web:1", "image: reg/web:2")
            + "---\nkind: Container\nmetadata: {name: cache}\nspec: {image: reg/cache:1}\n---\nkind: Container\nmetadata: {name: api}\nspec: {image: reg/web:1}\n"),
    );
    diff(&d2, &o, &DiffOptions { prune: true, ..Default::default() })
}

#[test]
fn plan_renderings_are_stable() {
    let p = every_kind_of_action();
    insta::assert_snapshot!("plan_text", render::text(&p, false));
    insta::assert_snapshot!("plan_markdown", render::markdown(&p));
    insta::assert_json_snapshot!("plan_json", p);
    let d = desired(STACK);
    let empty = plan(&d, &converged(&d));
    insta::assert_snapshot!("empty_plan_text", render::text(&empty, false));
    insta::assert_snapshot!("empty_plan_markdown", render::markdown(&empty));
    insta::assert_json_snapshot!("empty_plan_json", empty);
}

#[test]
fn colors_only_when_asked() {
    let p = every_kind_of_action();
    assert!(!render::text(&p, false).contains('\x1b'));
    let colored = render::text(&p, true);
    assert!(colored.contains("\x1b[31m-  GREETING: hello\x1b[0m"), "{colored}");
    assert!(colored.contains("\x1b[32m+  GREETING: bonjour\x1b[0m"), "{colored}");
}

#[test]
fn a_container_disconnected_outside_hawser_is_replaced_as_drift() {
    let d = desired(STACK);
    let mut o = converged(&d);
    o.containers[1].networks = vec!["net".into(), "other".into()];
    let p = plan(&d, &o);
    let web = p.actions.iter().find(|a| a.name == "web").unwrap();
    assert!(matches!(web.op, Op::Replace { .. }));
    assert_eq!(web.cause, Cause::Drift { seen: "attached to networks [net, other], declared [net]".into() });
}

/// Regression: raw escape bytes from input reached the terminal in plans.
#[test]
fn plan_text_escapes_control_characters_from_input() {
    let mut d =
        desired("kind: Container\nmetadata: {name: web}\nspec: {image: reg/web:1, env: {A: \"x\\e]0;pwned\\a\"}}\n");
    let mut o = converged(&d);
    d.containers.get_mut("web").unwrap().spec.env.insert("B".into(), "\x1b[31mred".into());
    o.containers[0].owner.as_mut().unwrap().source = Some("/srv/\x1b[1mevil".into());
    d.source = "/srv/mine".into();
    let refused = render::text(&plan(&d, &o), false);
    assert!(!refused.contains('\x1b'), "{refused:?}");
    assert!(refused.contains("/srv/\\u{1b}[1mevil"), "{refused}");
    d.source.clear();
    let changed = render::text(&plan(&d, &o), false);
    assert!(changed.contains("env.B"), "{changed}");
    assert!(!changed.contains('\x1b') && !changed.contains('\x07'), "{changed:?}");
}

#[test]
fn a_container_that_joins_another_is_made_anew_after_it() {
    const SHARED: &str = "kind: Network\nmetadata: {name: net}\n---\nkind: Container\nmetadata: {name: z-db}\nspec:\n  image: reg/db:1\n  env: {V: \"1\"}\n  networks: [net]\n---\nkind: Container\nmetadata: {name: a-sidecar}\nspec:\n  image: reg/side:1\n  networkMode: container:z-db\n---\nkind: Container\nmetadata: {name: b-ipc}\nspec:\n  image: reg/side:1\n  ipc: container:z-db\n  networks: [net]\n---\nkind: Container\nmetadata: {name: c-alone}\nspec:\n  image: reg/side:1\n  networks: [net]\n";
    let d1 = desired(SHARED);
    assert_eq!(container_order(&d1), ["z-db", "a-sidecar", "b-ipc", "c-alone"], "the joined one first");
    let o = converged(&d1);
    assert!(!plan(&d1, &o).has_changes());
    let d2 = desired(&SHARED.replace("V: \"1\"", "V: \"2\""));
    let p = plan(&d2, &o);
    assert_eq!(
        ops(&p),
        [
            "Container z-db Replace { old_id: \"id-z-db\", strategy: StartFirst }",
            "Container a-sidecar Replace { old_id: \"id-a-sidecar\", strategy: StartFirst }",
            "Container b-ipc Replace { old_id: \"id-b-ipc\", strategy: StartFirst }",
        ]
    );
    let side = p.actions.iter().find(|a| a.name == "a-sidecar").unwrap();
    assert_eq!(side.cause, Cause::JoinedReplaced { container: "z-db".into() });
    assert_eq!(side.cause.to_string(), "`z-db`, whose namespaces it joins, is made anew");
}

#[test]
fn warnings_of_the_revision_are_in_every_form_of_the_plan() {
    let files = [ManifestFile {
        path: "compose.yaml".into(),
        text: "secrets:\n  db: {file: ./db.txt}\nservices:\n  web:\n    image: nginx:1\n    secrets: [db]\n".into(),
    }];
    let d = desired::load("shop", "rev2", &files).unwrap_or_else(|e| panic!("{e}"));
    let p = plan(&d, &ObservedState::default());
    assert_eq!(p.warnings.len(), 1, "{:?}", p.warnings);
    let w = "compose.yaml:2:3: secret `db` is `./db.txt` of the repository, committed in clear";
    assert!(p.warnings[0].starts_with(w), "{:?}", p.warnings);
    assert!(render::text(&p, false).contains(&format!("warning: {w}")));
    assert!(render::markdown(&p).contains(&format!("**warning:** {w}")));
    assert!(serde_json::to_string(&p).unwrap().contains(w));
}

/// Attack: a second source took over a project that had only volumes and networks (only
/// containers counted as evidence of ownership) and pruned a volume with `retain: false`,
/// and its data.
#[test]
fn a_project_of_volumes_and_networks_alone_is_not_taken_by_another_source() {
    let mut d1 = desired(
        "kind: Volume\nmetadata: {name: cache}\nspec: {retain: false}\n---\nkind: Network\nmetadata: {name: back}\n",
    );
    d1.source = "/srv/a.git".into();
    let mut o = converged(&d1);
    let spec = serde_json::to_string(&d1.volumes["cache"].spec).unwrap();
    o.volumes[0].owner.as_mut().unwrap().spec = Some(spec);
    for owner in o.volumes.iter_mut().map(|v| &mut v.owner).chain(o.networks.iter_mut().map(|n| &mut n.owner)) {
        owner.as_mut().unwrap().source = Some("/srv/a.git".into());
    }
    let mut other = desired("kind: Volume\nmetadata: {name: other}\n");
    other.source = "/srv/b.git".into();
    let p = diff(&other, &o, &DiffOptions { prune: true, ..Default::default() });
    assert_eq!(ops(&p), ["Network back Conflict", "Volume cache Conflict"]);
    assert_eq!(p.actions[1].cause, Cause::OwnedBySource { source: "/srv/a.git".into() });
    // Its own source prunes it as before.
    d1.volumes.clear();
    let p = diff(&d1, &o, &DiffOptions { prune: true, ..Default::default() });
    assert!(ops(&p).contains(&"Volume cache Remove { id: \"cache\" }".to_string()), "{:?}", ops(&p));
}
