//! The order constraints between the actions of a plan, as a pure function: which actions must
//! finish before each one may start. Everything else runs concurrently.

use crate::desired::{DesiredState, Kind, Mount};
use crate::diff::{Action, Cause, Op, Plan};

/// Whether the executor carries out this action (the others are reports).
pub fn runnable(a: &Action) -> bool {
    !matches!(a.op, Op::Keep | Op::Orphan | Op::Conflict)
}

/// For each action of `plan`, the indices of the actions it waits for.
pub fn dependencies(desired: &DesiredState, plan: &Plan) -> Vec<Vec<usize>> {
    let actions = &plan.actions;
    let mut deps = vec![Vec::new(); actions.len()];
    for (i, a) in actions.iter().enumerate() {
        if !runnable(a) {
            continue;
        }
        let mut d: Vec<usize> = Vec::new();
        // Actions of one resource run in plan order (remove, then create; rename back, then replace).
        d.extend((0..i).filter(|&j| runnable(&actions[j]) && actions[j].kind == a.kind && actions[j].name == a.name));
        match (a.kind, &a.op) {
            (Kind::Container, _)
                if matches!(a.cause, Cause::NetworkReplaced { .. }) && matches!(a.op, Op::Remove { .. }) => {}
            (Kind::Container, Op::Remove { .. }) if a.cause == Cause::NotDeclared => {}
            // A container its Container no longer needs (`replicas` changed) goes once what takes
            // its place is made: its host ports are served all along.
            (Kind::Container, Op::Remove { .. }) if matches!(a.cause, Cause::Rescaled { .. }) => {
                if let Cause::Rescaled { container, .. } = &a.cause {
                    d.extend(actions.iter().enumerate().filter_map(|(j, b)| {
                        let of = desired
                            .containers
                            .get(&b.name)
                            .map(|c| c.spec.replica.as_ref().map_or(&b.name, |r| &r.service));
                        (of == Some(container) && b.op == Op::Create && b.kind == Kind::Container).then_some(j)
                    }))
                }
            }
            (Kind::Container, _) => {
                d.extend(rolling(desired, plan, i));
                if let Some(c) = desired.containers.get(&a.name) {
                    for (j, b) in actions.iter().enumerate() {
                        if !runnable(b) || j == i {
                            continue;
                        }
                        let needed = match b.kind {
                            Kind::Network => c.spec.networks.contains_key(&b.name),
                            Kind::Volume => c
                                .spec
                                .volumes
                                .iter()
                                .any(|m| matches!(m, Mount::Volume { source, .. } if *source == b.name)),
                            Kind::Image => {
                                b.name == c.spec.image
                                    || desired.images.get(&b.name).is_some_and(|img| img.spec.reference == c.spec.image)
                            }
                            Kind::Container => c.spec.needs(&b.name),
                        };
                        if needed && !(b.kind == Kind::Network && matches!(b.op, Op::Remove { .. })) {
                            d.push(j);
                        }
                    }
                }
            }
            // A network is replaced once the containers on it are gone.
            (Kind::Network, Op::Replace { .. }) => d.extend(actions.iter().enumerate().filter_map(|(j, b)| {
                let on_it = matches!(&b.cause, Cause::NetworkReplaced { network } if *network == a.name);
                (on_it && matches!(b.op, Op::Remove { .. })).then_some(j)
            })),
            // Removals of networks and volumes wait for every container action.
            (Kind::Network | Kind::Volume, Op::Remove { .. }) => d.extend(
                actions.iter().enumerate().filter(|(_, b)| runnable(b) && b.kind == Kind::Container).map(|(j, _)| j),
            ),
            _ => {}
        }
        d.sort_unstable();
        d.dedup();
        deps[i] = d;
    }
    deps
}

/// A replica's replacement waits for the replacements of the replicas before it that would
/// leave more than `update.parallelism` (default 1) in flight: a change rolls over the
/// replicas, the others serving meanwhile, and stops at the first that fails.
fn rolling(desired: &DesiredState, plan: &Plan, i: usize) -> Vec<usize> {
    let replica = |j: usize| {
        let a = &plan.actions[j];
        let r = desired.containers.get(&a.name)?;
        matches!(a.op, Op::Replace { .. }).then_some((r.spec.replica.as_ref()?, r.spec.update.as_ref()))
    };
    let Some((me, update)) = replica(i) else { return Vec::new() };
    let parallelism = update.and_then(|u| u.parallelism).unwrap_or(1).max(1) as usize;
    let mut earlier: Vec<(u32, usize)> = (0..plan.actions.len())
        .filter_map(|j| {
            replica(j).filter(|(r, _)| r.service == me.service && r.index < me.index).map(|(r, _)| (r.index, j))
        })
        .collect();
    earlier.sort_unstable();
    // With p in flight, the k-th waits for the (k-p)-th, which waited for the (k-2p)-th...
    let k = earlier.len();
    if k >= parallelism {
        vec![earlier[k - parallelism].1]
    } else {
        Vec::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::desired::{load, ManifestFile};
    use crate::diff::{diff, DiffOptions};
    use crate::observed::ObservedState;

    #[test]
    fn containers_wait_for_what_they_use_and_what_they_depend_on() {
        let text = "kind: Network\nmetadata: {name: net}\n---\nkind: Volume\nmetadata: {name: v}\n---\nkind: Container\nmetadata: {name: db}\nspec: {image: reg/db, volumes: [\"v:/d\"], networks: [net]}\n---\nkind: Container\nmetadata: {name: web}\nspec: {image: reg/web, networks: [net], dependsOn: [db]}\n---\nkind: Container\nmetadata: {name: lone}\nspec: {image: reg/db}\n";
        let d = load("p", "r", &[ManifestFile { path: "a.yaml".into(), text: text.into() }]).unwrap();
        let plan = diff(&d, &ObservedState::default(), &DiffOptions::default());
        let names: Vec<String> = plan.actions.iter().map(|a| format!("{} {}", a.kind, a.name)).collect();
        let idx = |n: &str| names.iter().position(|x| x == n).unwrap();
        let deps = dependencies(&d, &plan);
        let of = |n: &str| -> Vec<&str> { deps[idx(n)].iter().map(|&j| names[j].as_str()).collect() };
        assert_eq!(of("Container db"), ["Network net", "Volume v", "Image reg/db"]);
        assert_eq!(of("Container web"), ["Network net", "Image reg/web", "Container db"]);
        assert_eq!(of("Container lone"), ["Image reg/db"]);
        assert!(of("Network net").is_empty());
    }
}
