//! The swarm diff: a pure function of the desired state and what a swarm has, in the plan
//! vocabulary of one host. A changed Container is a service updated in place (`update`): the
//! cluster replaces its tasks in a rolling update, so nothing is recreated by hawser. Volumes
//! are made by the cluster on each node that runs a task using them and are never removed;
//! images are pulled by the nodes, pinned to the digest the plan was made with.

use super::{
    action, container_order, field_changes, foreign_source, owned_by, unified_diff, warnings, Action, Cause,
    DiffOptions, Op, Plan, FORMAT_VERSION,
};
use crate::desired::{hash, ContainerSpec, DesiredState, Kind, Resource, ServiceMode};
use crate::observed::swarm::{ObservedService, SwarmState, UpdateState};
use crate::observed::ObservedState;

/// Computes the plan that takes the swarm from `observed` to `desired`.
pub fn diff(desired: &DesiredState, observed: &SwarmState, opts: &DiffOptions) -> Plan {
    let project = desired.project.as_str();
    let plan = |actions: Vec<Action>| Plan {
        format_version: FORMAT_VERSION,
        project: project.to_string(),
        revision: desired.revision.clone(),
        actions,
        warnings: warnings(desired),
    };
    let mut actions = Vec::new();
    if !opts.take_over {
        let objects = observed
            .services
            .iter()
            .map(|s| (Kind::Container, &s.name, &s.owner))
            .chain(observed.networks.iter().map(|n| (Kind::Network, &n.name, &n.owner)));
        for (kind, name, owner) in objects {
            let Some(o) = owned_by(owner, project, kind) else { continue };
            if let Some(source) = foreign_source(desired, o) {
                let cause = Cause::OwnedBySource { source: source.to_string() };
                actions.push(action(kind, name, Op::Conflict, cause));
            }
        }
        if !actions.is_empty() {
            actions.sort_by(|a, b| (a.kind, &a.name).cmp(&(b.kind, &b.name)));
            return plan(actions);
        }
    }
    // Networks as on one host, except that a changed one cannot be replaced under running
    // services: the whole revision is refused instead.
    let as_host = ObservedState { networks: observed.networks.clone(), ..Default::default() };
    super::networks(desired, &as_host, opts, &mut actions);
    for a in actions.iter_mut().filter(|a| matches!(a.op, Op::Replace { .. })) {
        a.op = Op::Conflict;
        if let Cause::NetworkChanged { changes } = &a.cause {
            let fields: Vec<&str> = changes.iter().map(|c| c.field.as_str()).collect();
            a.cause = Cause::Drift {
                seen: format!(
                    "the network's spec changed ({}), and a swarm network cannot be replaced under its services: give it a new name",
                    fields.join(", ")
                ),
            };
        }
    }
    for name in container_order(desired) {
        service(desired, &desired.containers[name], observed, &mut actions);
    }
    let mut undeclared: Vec<&ObservedService> = observed
        .services
        .iter()
        .filter(|s| {
            owned_by(&s.owner, project, Kind::Container).is_some_and(|o| !desired.containers.contains_key(&o.name))
        })
        .collect();
    undeclared.sort_by(|a, b| a.name.cmp(&b.name));
    for s in undeclared {
        let op = if opts.prune { Op::Remove { id: s.id.clone() } } else { Op::Orphan };
        actions.push(action(Kind::Container, &s.name, op, Cause::NotDeclared));
    }
    // Networks go after the services that used them.
    let (nets, mut rest): (Vec<Action>, Vec<Action>) =
        actions.into_iter().partition(|a| a.kind == Kind::Network && a.cause == Cause::NotDeclared);
    rest.extend(nets);
    plan(rest)
}

/// The desired state as it is to be applied to the swarm: a service whose image's registry
/// could not be asked (its tag has no digest) keeps the digest of that tag that it runs, since
/// a tag alone would be a change now and again at the next good lookup. The plan and the
/// executor both work from this.
pub fn effective<'d>(desired: &'d DesiredState, observed: &SwarmState) -> std::borrow::Cow<'d, DesiredState> {
    let project = desired.project.as_str();
    let mut pins = Vec::new();
    for (name, c) in &desired.containers {
        if c.spec.image.contains('@') {
            continue;
        }
        let applied = observed
            .services
            .iter()
            .find(|s| &s.name == name)
            .and_then(|s| owned_by(&s.owner, project, Kind::Container))
            .and_then(|o| o.spec.as_deref())
            .and_then(|s| serde_json::from_str::<serde_json::Value>(s).ok())
            .and_then(|v| v.get("image")?.as_str().map(str::to_string));
        if let Some(image) = applied.filter(|a| a.starts_with(&format!("{}@", c.spec.image))) {
            pins.push((name.clone(), image));
        }
    }
    if pins.is_empty() {
        return std::borrow::Cow::Borrowed(desired);
    }
    let mut d = desired.clone();
    for (name, image) in pins {
        d.containers.get_mut(&name).expect("declared").spec.image = image;
    }
    std::borrow::Cow::Owned(d)
}

fn service(desired: &DesiredState, r: &Resource<ContainerSpec>, observed: &SwarmState, out: &mut Vec<Action>) {
    let (name, project) = (r.name.as_str(), desired.project.as_str());
    let Some(current) = observed.services.iter().find(|s| s.name == name) else {
        out.push(action(Kind::Container, name, Op::Create, Cause::Absent));
        return;
    };
    let Some(owner) = owned_by(&current.owner, project, Kind::Container) else {
        let owner_project = current.owner.as_ref().map(|o| o.project.clone());
        out.push(action(Kind::Container, name, Op::Conflict, Cause::NameTaken { owner_project }));
        return;
    };
    let update = Op::Update { id: current.id.clone() };
    if let Some(from) = foreign_source(desired, owner) {
        out.push(action(Kind::Container, name, update, Cause::SourceChanged { from: from.to_string() }));
        return;
    }
    let applied: Option<serde_json::Value> = owner.spec.as_deref().and_then(|s| serde_json::from_str(s).ok());
    let spec = &r.spec;
    if owner.spec_hash != hash::container(spec) {
        let view = hash::container_view(spec);
        let changes = field_changes(owner.spec.as_deref(), &view);
        let only_image = !changes.is_empty() && changes.iter().all(|c| c.field == "image");
        let old_image = applied.as_ref().and_then(|v| v.get("image")).and_then(|i| i.as_str());
        if let (true, Some(from)) = (only_image, old_image) {
            let cause = Cause::ImageChanged { from: from.to_string(), to: spec.image.clone() };
            out.push(action(Kind::Container, name, update, cause));
            return;
        }
        let mut a = action(Kind::Container, name, update, Cause::SpecChanged { changes });
        a.diff = unified_diff(owner.spec.as_deref(), &view);
        out.push(a);
        return;
    }
    // Changed on the cluster, not in the repository.
    let declared = match spec.mode.unwrap_or_default() {
        ServiceMode::Replicated => Some(spec.replicas.unwrap_or(1)),
        ServiceMode::Global => None,
    };
    let seen = if current.replicas != declared {
        match (current.replicas, declared) {
            (Some(n), Some(d)) => Some(format!("replicas scaled by hand to {n} (declared {d})")),
            _ => Some("its mode was changed by hand".to_string()),
        }
    } else if current.image != spec.image {
        Some(format!("it runs image {} (changed by hand), not {}", current.image, spec.image))
    } else if current.running_tasks < current.replicas.unwrap_or(current.desired_tasks) && !updating(current) {
        let want = current.replicas.unwrap_or(current.desired_tasks);
        let down: Vec<&str> =
            observed.nodes.values().filter(|n| n.state != "ready").map(|n| n.hostname.as_str()).collect();
        let why = match (down.as_slice(), failing_tasks(current, 1).first()) {
            ([], None) => String::new(),
            ([], Some(f)) => format!("; failing {f}"),
            (d, _) => format!("; node{} {} down", if d.len() == 1 { "" } else { "s" }, d.join(", ")),
        };
        Some(format!("{} of {want} tasks running{why}", current.running_tasks))
    } else {
        match &current.update {
            Some(u) if matches!(u.state, UpdateState::Paused | UpdateState::RollbackPaused) => Some(format!(
                "its last update is paused{}",
                u.message.as_deref().map(|m| format!(": {m}")).unwrap_or_default()
            )),
            _ => None,
        }
    };
    match seen {
        Some(seen) => out.push(action(Kind::Container, name, update, Cause::Drift { seen })),
        None => out.push(action(Kind::Container, name, Op::Keep, Cause::Unchanged)),
    }
}

fn updating(s: &ObservedService) -> bool {
    s.update.as_ref().is_some_and(|u| matches!(u.state, UpdateState::Updating | UpdateState::RollbackStarted))
}

/// What the plan says of a service's tasks that fail, for `status` and the history: the node
/// and the swarm's reason of each, newest first, at most `limit`.
pub fn failing_tasks(s: &ObservedService, limit: usize) -> Vec<String> {
    s.failing()
        .take(limit)
        .map(|t| {
            let what = t.error.as_deref().unwrap_or(&t.state);
            // A task the swarm could not place has no node yet.
            if t.node.is_empty() {
                what.to_string()
            } else {
                format!("on {}: {what}", t.node)
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::desired::{load_with, ManifestFile, Target};
    use crate::labels;
    use std::collections::BTreeMap;

    fn desired(text: &str) -> DesiredState {
        let policy = crate::desired::Policy::default();
        let (env, data, filter) = (BTreeMap::new(), BTreeMap::new(), Default::default());
        let mut opts = crate::desired::load_options(&policy, &env, &[], &data, &filter);
        opts.target = Target::Swarm;
        load_with("p", "r1", &[ManifestFile { path: "a.yaml".into(), text: text.into() }], &opts).unwrap()
    }

    /// The service that applying `d`'s `name` made.
    fn applied(d: &DesiredState, name: &str, id: &str) -> ObservedService {
        let spec = &d.containers[name].spec;
        let json = serde_json::to_string(&hash::container_view(spec)).unwrap();
        let l =
            labels::for_object(&BTreeMap::new(), "p", Kind::Container, name, &hash::container(spec), "r0", Some(&json));
        ObservedService {
            id: id.into(),
            name: name.into(),
            version: 7,
            owner: crate::labels::Ownership::from_labels(&l),
            labels: l,
            replicas: Some(spec.replicas.unwrap_or(1)),
            image: spec.image.clone(),
            update: None,
            desired_tasks: spec.replicas.unwrap_or(1),
            running_tasks: spec.replicas.unwrap_or(1),
            tasks: vec![],
        }
    }

    const WEB: &str = "kind: Container\nmetadata: {name: web}\nspec: {image: \"reg/web:1@sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\", replicas: 2, env: {A: \"1\"}}\n";

    #[test]
    fn a_change_is_an_update_in_place_with_its_fields() {
        let old = desired(WEB);
        let svc = applied(&old, "web", "s1");
        let observed = SwarmState { services: vec![svc], ..Default::default() };
        let plan = diff(&old, &observed, &DiffOptions::default());
        assert!(!plan.has_changes(), "{plan}");
        let new = desired(&WEB.replace("A: \"1\"", "A: \"2\""));
        let plan = diff(&new, &observed, &DiffOptions::default());
        assert_eq!(plan.actions[0].op, Op::Update { id: "s1".into() });
        let Cause::SpecChanged { changes } = &plan.actions[0].cause else { panic!("{plan}") };
        assert_eq!(changes[0].field, "env.A");
        let moved = desired(&WEB.replace(
            "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
            "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb",
        ));
        let plan = diff(&moved, &observed, &DiffOptions::default());
        assert!(
            matches!(&plan.actions[0].cause, Cause::ImageChanged { to, .. } if to.ends_with("sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb")),
            "{plan}"
        );
    }

    #[test]
    fn replicas_scaled_by_hand_are_drift_and_an_unowned_service_is_a_conflict() {
        let d = desired(WEB);
        let mut svc = applied(&d, "web", "s1");
        svc.replicas = Some(5);
        let observed = SwarmState { services: vec![svc.clone()], ..Default::default() };
        let plan = diff(&d, &observed, &DiffOptions::default());
        assert_eq!(plan.actions[0].cause.to_string(), "drift: replicas scaled by hand to 5 (declared 2)");
        assert_eq!(plan.actions[0].op, Op::Update { id: "s1".into() });
        svc.owner = None;
        let observed = SwarmState { services: vec![svc], ..Default::default() };
        let plan = diff(&d, &observed, &DiffOptions::default());
        assert_eq!(plan.actions[0].op, Op::Conflict);
    }

    #[test]
    fn tasks_lost_with_a_node_are_drift_that_names_it() {
        let d = desired(WEB);
        let mut svc = applied(&d, "web", "s1");
        svc.running_tasks = 1;
        let node = |h: &str, state: &str| crate::observed::swarm::ObservedNode {
            hostname: h.into(),
            state: state.into(),
            availability: "active".into(),
            ..Default::default()
        };
        let nodes = [("n1".to_string(), node("hws1", "ready")), ("n3".to_string(), node("hws3", "down"))];
        let observed = SwarmState { services: vec![svc], nodes: nodes.into_iter().collect(), ..Default::default() };
        let plan = diff(&d, &observed, &DiffOptions::default());
        assert_eq!(plan.actions[0].cause.to_string(), "drift: 1 of 2 tasks running; node hws3 down");
        assert_eq!(plan.actions[0].op, Op::Update { id: "s1".into() });
    }

    #[test]
    fn an_unresolved_tag_keeps_the_digest_it_runs_and_undeclared_services_are_pruned() {
        let d = desired(WEB);
        let svc = applied(&d, "web", "s1");
        let tag_only =
            desired(&WEB.replace("@sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", ""));
        let observed = SwarmState { services: vec![svc.clone()], ..Default::default() };
        let eff = effective(&tag_only, &observed);
        assert_eq!(
            eff.containers["web"].spec.image,
            "reg/web:1@sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
        );
        assert!(!diff(&eff, &observed, &DiffOptions::default()).has_changes());
        let none = desired("kind: Network\nmetadata: {name: n}\n");
        let plan = diff(&none, &observed, &DiffOptions { prune: true, ..Default::default() });
        let web = plan.actions.iter().find(|a| a.name == "web").unwrap();
        assert_eq!((web.op.clone(), web.cause.clone()), (Op::Remove { id: "s1".into() }, Cause::NotDeclared));
    }
}
