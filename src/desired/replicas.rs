//! Replicas on one host. A Container with `replicas: N` on the Docker or native target is N
//! containers, `NAME-1` to `NAME-N` (as compose names the containers of a scaled service; one
//! replica is the one container `NAME` it always was), each
//! a Container of its own to the diff and the executor: one changed replica is replaced, not all.
//! They share the host ports (hawser's rules spread new connections over them), are reachable
//! by `NAME` on their networks, and what depended on `NAME` depends on every one of them.

use super::model::{ContainerSpec, DesiredState, Resource};

/// The replica a Container of the desired state is, of which declared Container.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplicaOf {
    /// The declared Container's name.
    pub service: String,
    /// 1 to N.
    pub index: u32,
}

/// The engine name of replica `index` of `service`.
pub fn name(service: &str, index: u32) -> String {
    format!("{service}-{index}")
}

/// Expands every Container with `replicas` into its replicas. Returns, for each declared
/// Container whose replica takes a name another Container has, the two names (nothing is
/// expanded then).
pub fn expand(state: &mut DesiredState) -> Vec<(String, String)> {
    let scaled: Vec<(String, u64)> =
        state.containers.values().filter_map(|r| r.spec.replicas.map(|n| (r.name.clone(), n))).collect();
    let clashes: Vec<(String, String)> = scaled
        .iter()
        .filter(|(_, n)| *n != 1)
        .flat_map(|(service, n)| (1..=*n as u32).map(move |i| (service.clone(), name(service, i))))
        .filter(|(_, replica)| state.containers.contains_key(replica))
        .collect();
    if !clashes.is_empty() {
        return clashes;
    }
    for (service, n) in &scaled {
        state.replicated.insert(service.clone(), *n);
        if *n == 1 {
            // One replica is the one container it always was, under its own name.
            let declared = state.containers.get_mut(service).expect("listed above");
            declared.spec.replicas = None;
            continue;
        }
        let declared = state.containers.remove(service).expect("listed above");
        for index in 1..=*n as u32 {
            let mut spec = declared.spec.clone();
            spec.replicas = None;
            spec.replica = Some(ReplicaOf { service: service.clone(), index });
            for a in spec.networks.values_mut() {
                if !a.aliases.contains(service) {
                    a.aliases.push(service.clone());
                }
            }
            let replica = name(service, index);
            state.containers.insert(replica.clone(), Resource { name: replica, origin: declared.origin.clone(), spec });
        }
        let replicas: Vec<String> = (1..=*n as u32).map(|i| name(service, i)).collect();
        for r in state.containers.values_mut() {
            redirect(&mut r.spec, service, &replicas);
        }
    }
    Vec::new()
}

/// What pointed at `service` points at its replicas: a dependency waits for each of them; a
/// namespace joined is the first's.
fn redirect(spec: &mut ContainerSpec, service: &str, replicas: &[String]) {
    if let Some(cond) = spec.depends_on.remove(service) {
        for r in replicas {
            spec.depends_on.insert(r.clone(), cond);
        }
    }
    if let Some(first) = replicas.first() {
        for entry in spec.volumes_from.iter_mut() {
            if super::model::volumes_from_name(entry) == service {
                *entry = entry.replacen(service, first, 1);
            }
        }
    }
    let joined = format!("container:{service}");
    for mode in [&mut spec.network_mode, &mut spec.pid, &mut spec.ipc] {
        if mode.as_deref() == Some(joined.as_str()) {
            *mode = replicas.first().map(|r| format!("container:{r}"));
        }
    }
}
