//! The diff: a pure function of the desired state and the observed state that returns the plan.
//! No engine calls happen here, so every decision is unit-tested on hand-built snapshots.

pub mod plan;
pub mod render;
pub mod swarm;

pub use plan::{Action, Cause, FieldChange, Op, Plan, FORMAT_VERSION};

use crate::desired::{hash, ContainerSpec, DesiredState, Kind, Resource, RestartPolicy, Strategy};
use crate::observed::{normalize_reference, repository, Health, ObservedContainer, ObservedState, RunState};
use std::collections::{BTreeMap, BTreeSet};

#[derive(Clone, Debug, Default)]
pub struct DiffOptions {
    /// Remove managed objects that are no longer declared.
    pub prune: bool,
    /// Move the project to this source from the one that applied it: its containers are
    /// replaced so that they carry this source.
    pub take_over: bool,
}

/// The source another object of the project was applied by, when it is not `desired`'s.
/// Containers are the evidence, since a take-over can relabel them by replacement; volumes
/// keep their label forever (their data is never given up for a label).
fn foreign_source<'o>(desired: &DesiredState, owner: &'o crate::labels::Ownership) -> Option<&'o str> {
    let theirs = owner.source.as_deref()?;
    (!desired.source.is_empty() && theirs != desired.source).then_some(theirs)
}

pub use crate::labels::{candidate_name, retired_name};

fn action(kind: Kind, name: &str, op: Op, cause: Cause) -> Action {
    Action { kind, name: name.to_string(), op, cause, diff: None }
}

/// A unified diff of two canonical specs, as YAML; `None` when the applied one is unknown.
pub fn unified_diff(applied: Option<&str>, desired: &serde_json::Value) -> Option<String> {
    let old: serde_json::Value = serde_json::from_str(applied?).ok()?;
    let (a, b) = (crate::desired::render::value_to_yaml(&old), crate::desired::render::value_to_yaml(desired));
    let diff = similar::TextDiff::from_lines(&a, &b);
    let text = diff.unified_diff().context_radius(2).to_string();
    Some(text)
}

/// The desired state as it is to be applied: a container whose `pull: always` Image could not
/// be resolved keeps the digest it runs (a mutable tag would replace it now, and the digest
/// again at the next good lookup). Borrowed unchanged when there is nothing to keep. The plan
/// and the executor both work from this.
pub fn effective<'d>(desired: &'d DesiredState, observed: &ObservedState) -> std::borrow::Cow<'d, DesiredState> {
    let mut pins: Vec<(String, String)> = Vec::new();
    for name in desired.unresolved.keys() {
        let Some(img) = desired.images.get(name) else { continue };
        let tag = &img.spec.reference;
        let pinned_prefix = format!("{}@sha256:", repository(tag));
        for c in desired.containers.values().filter(|c| &c.spec.image == tag) {
            // Only a container that runs a digest of this very tag keeps it: a new tag is a
            // change that must wait for the registry.
            let running = observed.containers.iter().find(|o| {
                o.name == c.name
                    && owned_by(&o.owner, &desired.project, Kind::Container).is_some()
                    && o.labels.get(crate::labels::IMAGE_REF) == Some(tag)
            });
            let applied_image = running
                .and_then(|o| o.owner.as_ref()?.spec.as_deref())
                .and_then(|spec| serde_json::from_str::<serde_json::Value>(spec).ok())
                .and_then(|v| v.get("image")?.as_str().map(str::to_string));
            if let Some(image) = applied_image.filter(|i| i.starts_with(&pinned_prefix)) {
                pins.push((c.name.clone(), image));
            }
        }
    }
    if pins.is_empty() {
        return std::borrow::Cow::Borrowed(desired);
    }
    let mut d = desired.clone();
    for (name, image) in pins {
        let tag = std::mem::replace(&mut d.containers.get_mut(&name).expect("declared").spec.image, image);
        d.declared_images.insert(name, tag);
    }
    std::borrow::Cow::Owned(d)
}

/// Computes the plan that takes the host from `observed` to `desired` (see [`effective`]).
pub fn diff(desired: &DesiredState, observed: &ObservedState, opts: &DiffOptions) -> Plan {
    let project = desired.project.as_str();
    let mut actions = Vec::new();
    if !opts.take_over {
        // Another source's project: nothing of this revision is applied, or two sources would
        // undo each other's work in turn. Any object of the project is evidence, not only a
        // container: a project of volumes alone would otherwise be taken, and pruned.
        let objects = observed
            .containers
            .iter()
            .map(|c| (Kind::Container, &c.name, &c.owner))
            .chain(observed.networks.iter().map(|n| (Kind::Network, &n.name, &n.owner)))
            .chain(observed.volumes.iter().map(|v| (Kind::Volume, &v.name, &v.owner)));
        for (kind, name, owner) in objects {
            let Some(o) = owned_by(owner, project, kind) else { continue };
            if let Some(source) = foreign_source(desired, o) {
                let cause = Cause::OwnedBySource { source: source.to_string() };
                actions.push(action(kind, name, Op::Conflict, cause));
            }
        }
        if !actions.is_empty() {
            actions.sort_by(|a, b| (a.kind, &a.name).cmp(&(b.kind, &b.name)));
            return Plan {
                format_version: FORMAT_VERSION,
                project: project.to_string(),
                revision: desired.revision.clone(),
                actions,
                warnings: warnings(desired),
            };
        }
    }
    networks(desired, observed, opts, &mut actions);
    volumes(desired, observed, opts, &mut actions);
    images(desired, observed, &mut actions);
    let replaced: BTreeSet<String> = actions
        .iter()
        .filter(|a| a.kind == Kind::Network && matches!(a.op, Op::Replace { .. }))
        .map(|a| a.name.clone())
        .collect();
    for name in container_order(desired) {
        container(desired, &desired.containers[name], observed, &replaced, &mut actions);
    }
    // Managed containers of this project that are no longer declared.
    let mut undeclared: Vec<&ObservedContainer> = observed
        .containers
        .iter()
        .filter(|c| {
            c.owner.as_ref().is_some_and(|o| {
                o.project == project && o.kind == Some(Kind::Container) && !desired.containers.contains_key(&o.name)
            })
        })
        .collect();
    undeclared.sort_by(|a, b| a.name.cmp(&b.name));
    for c in undeclared {
        let op = if opts.prune { Op::Remove { id: c.id.clone() } } else { Op::Orphan };
        let cause = match rescaled(desired, c) {
            Some(cause) => {
                actions.push(action(Kind::Container, &c.name, Op::Remove { id: c.id.clone() }, cause));
                continue;
            }
            None => Cause::NotDeclared,
        };
        actions.push(action(Kind::Container, &c.name, op, cause));
    }
    // Networks go after the containers that used them.
    let mut later: Vec<Action> = Vec::new();
    actions.retain(|a| {
        let is_net_removal = a.kind == Kind::Network && a.cause == Cause::NotDeclared;
        if is_net_removal {
            later.push(a.clone());
        }
        !is_net_removal
    });
    actions.extend(later);
    unable_to_publish(desired, observed, &mut actions);
    let mut warnings = warnings(desired);
    warnings.extend(stop_first_for_ports(desired, observed, &actions));
    Plan {
        format_version: FORMAT_VERSION,
        project: project.to_string(),
        revision: desired.revision.clone(),
        actions,
        warnings,
    }
}

/// Whether an undeclared container is one the Container it ran no longer needs: a replica
/// beyond the number asked now, or the container a Container had before it ran as replicas (or
/// the replicas of one that runs alone again).
fn rescaled(desired: &DesiredState, c: &ObservedContainer) -> Option<Cause> {
    let name = c.owner.as_ref().map(|o| o.name.as_str())?;
    let service = c.labels.get(crate::labels::REPLICA_OF).map(String::as_str).unwrap_or(name);
    let replicas = match desired.replicated.get(service) {
        Some(n) => *n,
        None if service != name && desired.containers.contains_key(service) => 1,
        None => return None,
    };
    Some(Cause::Rescaled { container: service.to_string(), replicas })
}

/// On an engine of this host whose kernel hawser cannot program (not root, no iptables), a
/// container with host ports would be replaced stop-first, dropping connections, where the
/// user expects the switch: that is refused, naming what is missing, unless they asked for
/// stop-first.
fn unable_to_publish(desired: &DesiredState, observed: &ObservedState, actions: &mut [Action]) {
    let crate::observed::PortPublisher::Unable { why } = &observed.ports else { return };
    for a in actions.iter_mut().filter(|a| a.kind == Kind::Container && matches!(a.op, Op::Replace { .. })) {
        let Some(c) = desired.containers.get(&a.name) else { continue };
        let asked = c.spec.update.as_ref().is_some_and(|u| u.strategy.is_some());
        if c.spec.has_host_ports() && !asked {
            a.op = Op::Conflict;
            a.cause = Cause::CannotPublish { why: why.clone(), instead: Box::new(a.cause.clone()) };
        }
    }
}

/// Why a container with host ports is replaced stop-first (and drops connections), where
/// hawser could not publish them itself.
fn stop_first_for_ports(desired: &DesiredState, observed: &ObservedState, actions: &[Action]) -> Option<String> {
    let crate::observed::PortPublisher::Remote { why } = &observed.ports else { return None };
    let names: Vec<&str> = actions
        .iter()
        .filter(|a| matches!(a.op, Op::Replace { strategy: Strategy::StopFirst, .. }) && a.kind == Kind::Container)
        .filter(|a| desired.containers.get(&a.name).is_some_and(|c| c.spec.has_host_ports()))
        .map(|a| a.name.as_str())
        .collect();
    (!names.is_empty()).then(|| {
        format!(
            "{} replaced stop-first, so connections to {} host ports break for a moment: the engine publishes them, since {why}",
            names.join(", "),
            if names.len() == 1 { "its" } else { "their" }
        )
    })
}

/// The desired state's warnings as the plan shows them: `FILE:LINE:COL: message`.
fn warnings(desired: &DesiredState) -> Vec<String> {
    desired.warnings.iter().map(|w| format!("{}:{}:{}: {}", w.file, w.pos.line, w.pos.col, w.message)).collect()
}

fn owned_by<'a>(
    owner: &'a Option<crate::labels::Ownership>,
    project: &str,
    kind: Kind,
) -> Option<&'a crate::labels::Ownership> {
    owner.as_ref().filter(|o| o.project == project && o.kind == Some(kind))
}

fn networks(desired: &DesiredState, observed: &ObservedState, opts: &DiffOptions, out: &mut Vec<Action>) {
    let project = desired.project.as_str();
    for (name, r) in &desired.networks {
        let new_spec = serde_json::to_value(&r.spec).unwrap_or_default();
        let existing = observed.networks.iter().find(|n| &n.name == name);
        let (op, cause) = match existing {
            None if r.spec.external => (Op::Conflict, Cause::ExternalMissing),
            None => (Op::Create, Cause::Absent),
            Some(_) if r.spec.external => (Op::Keep, Cause::Unchanged),
            Some(n) => match owned_by(&n.owner, project, Kind::Network) {
                None => (Op::Conflict, Cause::NameTaken { owner_project: n.owner.as_ref().map(|o| o.project.clone()) }),
                Some(o) if o.spec_hash == hash::network(&r.spec) => (Op::Keep, Cause::Unchanged),
                Some(o) => {
                    // Every container on it must go first; one hawser may not remove blocks it.
                    let blocker = observed.containers.iter().find(|c| {
                        c.networks.contains(name)
                            && !owned_by(&c.owner, project, Kind::Container)
                                .is_some_and(|o| desired.containers.contains_key(&o.name))
                    });
                    match blocker {
                        Some(c) => (Op::Conflict, Cause::AttachedUnmanaged { container: c.name.clone() }),
                        None => (
                            Op::Replace { old_id: n.id.clone(), strategy: Strategy::StopFirst },
                            Cause::NetworkChanged { changes: field_changes(o.spec.as_deref(), &new_spec) },
                        ),
                    }
                }
            },
        };
        let mut a = action(Kind::Network, name, op, cause);
        if let (Some(n), Cause::NetworkChanged { .. }) = (existing, &a.cause) {
            let applied = n.owner.as_ref().and_then(|o| o.spec.as_deref());
            a.diff = unified_diff(applied, &new_spec);
        }
        out.push(a);
    }
    let mut stale: Vec<_> = observed
        .networks
        .iter()
        .filter(|n| owned_by(&n.owner, project, Kind::Network).is_some_and(|o| !desired.networks.contains_key(&o.name)))
        .collect();
    stale.sort_by(|a, b| a.name.cmp(&b.name));
    for n in stale {
        let op = if opts.prune { Op::Remove { id: n.id.clone() } } else { Op::Orphan };
        out.push(action(Kind::Network, &n.name, op, Cause::NotDeclared));
    }
}

fn volumes(desired: &DesiredState, observed: &ObservedState, opts: &DiffOptions, out: &mut Vec<Action>) {
    let project = desired.project.as_str();
    for (name, r) in &desired.volumes {
        let existing = observed.volumes.iter().find(|v| &v.name == name);
        let (op, cause) = match existing {
            None if r.spec.external => (Op::Conflict, Cause::ExternalMissing),
            None => (Op::Create, Cause::Absent),
            Some(_) if r.spec.external => (Op::Keep, Cause::Unchanged),
            Some(v) => match owned_by(&v.owner, project, Kind::Volume) {
                None => (Op::Conflict, Cause::NameTaken { owner_project: v.owner.as_ref().map(|o| o.project.clone()) }),
                Some(o) if o.spec_hash == hash::volume(&r.spec) => (Op::Keep, Cause::Unchanged),
                Some(_) => (Op::Keep, Cause::VolumeChanged),
            },
        };
        out.push(action(Kind::Volume, name, op, cause));
    }
    // Data is precious: an undeclared volume goes only if the spec it was applied with said `retain: false`.
    let mut stale: Vec<_> = observed
        .volumes
        .iter()
        .filter(|v| owned_by(&v.owner, project, Kind::Volume).is_some_and(|o| !desired.volumes.contains_key(&o.name)))
        .collect();
    stale.sort_by(|a, b| a.name.cmp(&b.name));
    for v in stale {
        let disposable = v
            .owner
            .as_ref()
            .and_then(|o| o.spec.as_deref())
            .and_then(|s| serde_json::from_str::<serde_json::Value>(s).ok())
            .is_some_and(|s| s.get("retain") == Some(&serde_json::Value::Bool(false)));
        if disposable {
            let op = if opts.prune { Op::Remove { id: v.name.clone() } } else { Op::Orphan };
            out.push(action(Kind::Volume, &v.name, op, Cause::NotDeclared));
        }
    }
}

fn images(desired: &DesiredState, observed: &ObservedState, out: &mut Vec<Action>) {
    let mut seen = BTreeSet::new();
    for (name, r) in &desired.images {
        let reference = normalize_reference(&r.spec.reference);
        seen.insert(reference.clone());
        if let Some(error) = desired.unresolved.get(name) {
            // Pulled only for a container that has no digest of it to keep (see `effective`).
            let needed = desired.containers.values().any(|c| c.spec.image == r.spec.reference);
            let op = if needed { Op::Pull { reference: r.spec.reference.clone() } } else { Op::Keep };
            out.push(action(Kind::Image, name, op, Cause::Unresolved { error: error.clone() }));
            continue;
        }
        if observed.images.contains_key(&reference) {
            continue;
        }
        if r.spec.build.is_some() {
            let (op, cause) = match desired.builds.get(name) {
                Some(b) => (Op::Build { reference: b.tag.clone() }, Cause::Absent),
                None => (Op::Conflict, Cause::BuildUnsupported),
            };
            out.push(action(Kind::Image, name, op, cause));
            continue;
        }
        let (op, cause) = match r.spec.pull {
            crate::desired::PullPolicy::Never => (Op::Conflict, Cause::ImageMissing),
            _ => (Op::Pull { reference: r.spec.reference.clone() }, Cause::Absent),
        };
        out.push(action(Kind::Image, name, op, cause));
    }
    // Images named directly by containers behave as `pull: missing`.
    for c in desired.containers.values() {
        let reference = normalize_reference(&c.spec.image);
        if seen.insert(reference.clone()) && !observed.images.contains_key(&reference) {
            out.push(action(Kind::Image, &c.spec.image, Op::Pull { reference: c.spec.image.clone() }, Cause::Absent));
        }
    }
}

/// Containers in an order where each comes after what it depends on (ties by name).
pub fn container_order(desired: &DesiredState) -> Vec<&str> {
    let mut order = Vec::new();
    let mut done = BTreeSet::new();
    fn visit<'a>(
        name: &'a str,
        d: &'a DesiredState,
        done: &mut BTreeSet<&'a str>,
        order: &mut Vec<&'a str>,
        depth: usize,
    ) {
        if done.contains(name) || depth > d.containers.len() {
            return;
        }
        let Some(c) = d.containers.get(name) else {
            return;
        };
        for dep in c.spec.depends_on.keys().map(String::as_str).chain(c.spec.joins()) {
            visit(dep, d, done, order, depth + 1);
        }
        if done.insert(name) {
            order.push(name);
        }
    }
    for name in desired.containers.keys() {
        visit(name, desired, &mut done, &mut order, 0);
    }
    order
}

fn container(
    desired: &DesiredState,
    r: &Resource<ContainerSpec>,
    observed: &ObservedState,
    replaced_networks: &BTreeSet<String>,
    out: &mut Vec<Action>,
) {
    let (name, project) = (r.name.as_str(), desired.project.as_str());
    let mine: Vec<&ObservedContainer> = observed
        .containers
        .iter()
        .filter(|c| owned_by(&c.owner, project, Kind::Container).is_some_and(|o| o.name == name))
        .collect();
    if let Some(other) = observed.containers.iter().find(|c| c.name == name && !mine.iter().any(|m| m.id == c.id)) {
        let owner_project = other.owner.as_ref().map(|o| o.project.clone());
        out.push(action(Kind::Container, name, Op::Conflict, Cause::NameTaken { owner_project }));
        return;
    }
    if let (Some(why), Some(replica)) = (observed.ports.why_not(), r.spec.replica.as_ref()) {
        if replica.index > 1 && r.spec.has_host_ports() {
            out.push(action(Kind::Container, name, Op::Conflict, Cause::PortsShared { why: why.to_string() }));
            return;
        }
    }
    let want_hash = hash::container(&r.spec);
    let mut primary = mine.iter().copied().find(|c| c.name == name);
    let mut leftovers: Vec<&ObservedContainer> = mine.iter().copied().filter(|c| c.name != name).collect();
    leftovers.sort_by(|a, b| a.name.cmp(&b.name));
    if primary.is_none() && !leftovers.is_empty() {
        // An interrupted replacement left no container under the name: the best leftover takes it
        // back (one already built from the desired spec, else a running one), so service resumes.
        let rank = |c: &ObservedContainer| {
            let matches = c.owner.as_ref().is_some_and(|o| o.spec_hash == want_hash);
            (matches, c.state == RunState::Running)
        };
        let best = leftovers.iter().copied().max_by_key(|c| rank(c)).expect("non-empty");
        out.push(action(
            Kind::Container,
            name,
            Op::Adopt { id: best.id.clone(), from_name: best.name.clone() },
            Cause::Leftover { name: best.name.clone() },
        ));
        leftovers.retain(|c| c.id != best.id);
        primary = Some(best);
    }
    for l in leftovers {
        out.push(action(
            Kind::Container,
            name,
            Op::Remove { id: l.id.clone() },
            Cause::Leftover { name: l.name.clone() },
        ));
    }
    let Some(current) = primary else {
        out.push(action(Kind::Container, name, Op::Create, Cause::Absent));
        return;
    };
    // A network it is on is replaced: it goes before the network and comes back after.
    if let Some(net) = current.networks.iter().find(|n| replaced_networks.contains(*n)) {
        let cause = Cause::NetworkReplaced { network: net.clone() };
        out.push(action(Kind::Container, name, Op::Remove { id: current.id.clone() }, cause.clone()));
        out.push(action(Kind::Container, name, Op::Create, cause));
        return;
    }
    let owner = current.owner.as_ref().expect("managed");
    let replace = Op::Replace { old_id: current.id.clone(), strategy: r.spec.strategy(observed.ports.is_hawser()) };
    if let Some(from) = foreign_source(desired, owner) {
        out.push(action(Kind::Container, name, replace, Cause::SourceChanged { from: from.to_string() }));
        return;
    }
    if owner.spec_hash != want_hash {
        let view = hash::container_view(&r.spec);
        if let Some(files) = only_repo_files_changed(owner.spec.as_deref(), &view) {
            out.push(action(Kind::Container, name, replace, Cause::RepoFileChanged { files }));
            return;
        }
        let changes = field_changes(owner.spec.as_deref(), &view);
        let mut a = action(Kind::Container, name, replace, Cause::SpecChanged { changes });
        a.diff = unified_diff(owner.spec.as_deref(), &view);
        out.push(a);
        return;
    }
    // A container it joins (network, pid or ipc namespace) is made anew: joined to the old
    // one, this one would keep a namespace nothing else uses any more.
    let remade = |other: &str| {
        out.iter()
            .any(|a| a.kind == Kind::Container && a.name == other && matches!(a.op, Op::Replace { .. } | Op::Create))
    };
    if let Some(other) = r.spec.joins().find(|o| remade(o)) {
        let cause = Cause::JoinedReplaced { container: other.to_string() };
        out.push(action(Kind::Container, name, replace, cause));
        return;
    }
    if let Some(want_image) = observed.images.get(&normalize_reference(&r.spec.image)) {
        if !current.image_id.is_empty() && &current.image_id != want_image {
            let cause = Cause::ImageChanged { from: current.image_id.clone(), to: want_image.clone() };
            out.push(action(Kind::Container, name, replace, cause));
            return;
        }
    }
    if r.spec.network_mode.is_none() {
        let declared: Vec<String> =
            if r.spec.networks.is_empty() { vec!["bridge".into()] } else { r.spec.networks.keys().cloned().collect() };
        if current.networks != declared {
            let seen =
                format!("attached to networks [{}], declared [{}]", current.networks.join(", "), declared.join(", "));
            out.push(action(Kind::Container, name, replace, Cause::Drift { seen }));
            return;
        }
    }
    if current.state == RunState::Running && out_of_rotation(desired, r, current, observed) {
        if published_to(current, observed, project, name) {
            out.push(action(Kind::Container, name, Op::Unpublish { id: current.id.clone() }, Cause::Unhealthy));
            return;
        }
    } else if let (RunState::Running, Some(seen)) = (current.state, unpublished(r, current, observed, project)) {
        out.push(action(Kind::Container, name, Op::Publish { id: current.id.clone() }, Cause::Drift { seen }));
        return;
    }
    match current.state {
        RunState::Running | RunState::Restarting => out.push(action(Kind::Container, name, Op::Keep, Cause::Unchanged)),
        RunState::Exited
            if current.exit_code == Some(0) && matches!(r.spec.restart, None | Some(RestartPolicy::No)) =>
        {
            out.push(action(Kind::Container, name, Op::Keep, Cause::Completed))
        }
        state => out.push(action(
            Kind::Container,
            name,
            Op::Start { id: current.id.clone() },
            Cause::Stopped { state: state.as_str().to_string(), exit_code: current.exit_code },
        )),
    }
}

/// Whether replica `current` should get no new connections: it is unhealthy and another replica
/// of its Container is running and not unhealthy (with none such, all keep their share: some
/// answer is better than none).
fn out_of_rotation(
    desired: &DesiredState,
    r: &Resource<ContainerSpec>,
    current: &ObservedContainer,
    observed: &ObservedState,
) -> bool {
    let Some(me) = &r.spec.replica else { return false };
    if !observed.ports.is_hawser() || !r.spec.has_host_ports() || current.health != Some(Health::Unhealthy) {
        return false;
    }
    desired
        .containers
        .values()
        .filter(|c| c.name != r.name && c.spec.replica.as_ref().is_some_and(|o| o.service == me.service))
        .filter_map(|c| observed.containers.iter().find(|o| o.name == c.name))
        .any(|o| o.state == RunState::Running && o.health != Some(Health::Unhealthy))
}

/// Whether any of hawser's rules sends resource `name`'s host ports to container `current`.
fn published_to(current: &ObservedContainer, observed: &ObservedState, project: &str, name: &str) -> bool {
    let rules = observed.published.get(project).map(Vec::as_slice).unwrap_or_default();
    current.address.is_some_and(|to| rules.iter().any(|p| p.name == name && p.to == to))
}

/// Where hawser publishes host ports itself: what of container `current`'s declared host ports
/// its rules do not send to it (a rule deleted by hand, lost at a reboot, or sending elsewhere).
fn unpublished(
    r: &Resource<ContainerSpec>,
    current: &ObservedContainer,
    observed: &ObservedState,
    project: &str,
) -> Option<String> {
    if !observed.ports.is_hawser() || !r.spec.has_host_ports() {
        return None;
    }
    let rules = observed.published.get(project).map(Vec::as_slice).unwrap_or_default();
    let want = crate::runtime::ports::wanted(&r.name, &r.spec.ports, current.address?);
    let missing: Vec<String> = want.iter().filter(|w| !rules.contains(w)).map(|w| w.to_string()).collect();
    (!missing.is_empty()).then(|| format!("host ports not published to it: {}", missing.join(", ")))
}

/// Field-level differences between the applied canonical spec (JSON text from the label) and the
/// desired one. Maps are compared key by key (`env.GREETING`), lists and scalars whole.
/// When the applied and desired specs differ only in the content of repository files they
/// mount, the paths of those files.
fn only_repo_files_changed(applied: Option<&str>, desired: &serde_json::Value) -> Option<Vec<String>> {
    let mut old: serde_json::Value = serde_json::from_str(applied?).ok()?;
    let new_mounts = desired.get("volumes")?.as_array()?;
    let mut files = Vec::new();
    for m in old.get_mut("volumes")?.as_array_mut()? {
        if m.get("type").and_then(|t| t.as_str()) != Some("repo") {
            continue;
        }
        let same = new_mounts.iter().find(|n| {
            n.get("type") == m.get("type") && n.get("target") == m.get("target") && n.get("path") == m.get("path")
        })?;
        if same.get("digest") != m.get("digest") {
            files.push(m.get("path").and_then(|p| p.as_str()).unwrap_or_default().to_string());
            m["digest"] = same.get("digest").cloned().unwrap_or_default();
        }
    }
    (!files.is_empty() && &old == desired).then_some(files)
}

pub fn field_changes(applied: Option<&str>, desired: &serde_json::Value) -> Vec<FieldChange> {
    let Some(old) = applied.and_then(|s| serde_json::from_str::<serde_json::Value>(s).ok()) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    compare("", Some(&old), Some(desired), 0, &mut out);
    out
}

fn compare(
    path: &str,
    old: Option<&serde_json::Value>,
    new: Option<&serde_json::Value>,
    depth: usize,
    out: &mut Vec<FieldChange>,
) {
    use serde_json::Value as V;
    if old == new {
        return;
    }
    match (old, new) {
        (Some(V::Object(a)), Some(V::Object(b))) if depth < 2 => {
            let keys: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
            for k in keys {
                let p = if path.is_empty() { k.clone() } else { format!("{path}.{k}") };
                compare(&p, a.get(k), b.get(k), depth + 1, out);
            }
        }
        _ => out.push(FieldChange { field: path.to_string(), old: old.cloned(), new: new.cloned() }),
    }
}

/// Counts of actions per resource name, for tests and summaries.
pub fn ops_by_name(plan: &Plan) -> BTreeMap<(Kind, String), Vec<Op>> {
    let mut m: BTreeMap<(Kind, String), Vec<Op>> = BTreeMap::new();
    for a in &plan.actions {
        m.entry((a.kind, a.name.clone())).or_default().push(a.op.clone());
    }
    m
}

#[cfg(test)]
mod tests;
