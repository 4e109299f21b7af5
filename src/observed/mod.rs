//! The observed state: what the engine has, read in one pass of list calls into plain data, in
//! the same vocabulary as the desired state. The diff is computed from this snapshot alone.

pub mod swarm;

use crate::labels::Ownership;
use std::collections::BTreeMap;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunState {
    Created,
    Running,
    Paused,
    Restarting,
    Exited,
    Dead,
    Other,
}

impl RunState {
    pub fn as_str(self) -> &'static str {
        match self {
            RunState::Created => "created",
            RunState::Running => "running",
            RunState::Paused => "paused",
            RunState::Restarting => "restarting",
            RunState::Exited => "exited",
            RunState::Dead => "dead",
            RunState::Other => "unknown",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Health {
    None,
    Starting,
    Healthy,
    Unhealthy,
}

#[derive(Clone, Debug)]
pub struct ObservedContainer {
    pub id: String,
    pub name: String,
    pub image_id: String,
    pub state: RunState,
    /// The exit code, when the engine's status text tells it (`Exited (1) 3 seconds ago`).
    pub exit_code: Option<i64>,
    /// The healthcheck's verdict, when the engine's status text tells it.
    pub health: Option<Health>,
    pub labels: BTreeMap<String, String>,
    pub owner: Option<Ownership>,
    /// Names of the networks it is attached to.
    pub networks: Vec<String>,
    /// Its IPv4 address on the first of them, where hawser's own rules send its host ports.
    pub address: Option<std::net::Ipv4Addr>,
}

#[derive(Clone, Debug)]
pub struct ObservedNetwork {
    pub id: String,
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub owner: Option<Ownership>,
}

#[derive(Clone, Debug)]
pub struct ObservedVolume {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub owner: Option<Ownership>,
}

/// Everything the diff needs to know about the host.
#[derive(Clone, Debug, Default)]
pub struct ObservedState {
    pub containers: Vec<ObservedContainer>,
    pub networks: Vec<ObservedNetwork>,
    pub volumes: Vec<ObservedVolume>,
    /// Local images: each tag (`repo:tag`) to its image id.
    pub images: BTreeMap<String, String>,
    /// Who publishes host ports here.
    pub ports: PortPublisher,
    /// What hawser's own rules publish, by project.
    pub published: BTreeMap<String, Vec<crate::runtime::ports::Published>>,
}

/// Who publishes the host ports of containers on an engine.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum PortPublisher {
    /// The engine (a swarm's routing mesh, or an engine hawser was not asked to program).
    #[default]
    Engine,
    /// hawser's own rules (`runtime::ports`): a container with host ports is replaced
    /// start-first through a switch, and replicas share a port.
    Hawser,
    /// The engine, because hawser cannot program its kernel (it is reached over the network):
    /// replacement stays stop-first and the plan says why.
    Remote { why: String },
    /// The engine of this host, where hawser should publish them and cannot (`why`: not root,
    /// no iptables): what needs it is an error naming what is missing.
    Unable { why: String },
}

impl PortPublisher {
    pub fn is_hawser(&self) -> bool {
        *self == PortPublisher::Hawser
    }

    /// Why hawser does not publish them, where it would have.
    pub fn why_not(&self) -> Option<&str> {
        match self {
            PortPublisher::Remote { why } | PortPublisher::Unable { why } => Some(why),
            _ => None,
        }
    }
}

impl ObservedState {
    /// The host ports hawser's rules send to container `c` (`127.0.0.1:8080->80/tcp`).
    pub fn ports_of(&self, c: &ObservedContainer) -> Vec<String> {
        let (Some(o), Some(to)) = (&c.owner, c.address) else { return Vec::new() };
        let rules = self.published.get(&o.project).map(Vec::as_slice).unwrap_or_default();
        rules
            .iter()
            .filter(|p| p.name == o.name && p.to == to)
            .map(|p| {
                let ip = p.host_ip.map(|ip| format!("{ip}:")).unwrap_or_default();
                format!("{ip}{}->{}/{}", p.host_port, p.container_port, p.protocol)
            })
            .collect()
    }
}

/// Parses docker's status text for an exit code: `Exited (137) 2 minutes ago`.
pub fn exit_code_from_status(status: &str) -> Option<i64> {
    let rest = status.strip_prefix("Exited (")?;
    rest.split(')').next()?.parse().ok()
}

/// Parses docker's status text for the health verdict: `Up 3 minutes (healthy)`.
pub fn health_from_status(status: &str) -> Option<Health> {
    if status.ends_with("(healthy)") {
        Some(Health::Healthy)
    } else if status.ends_with("(unhealthy)") {
        Some(Health::Unhealthy)
    } else if status.ends_with("(health: starting)") {
        Some(Health::Starting)
    } else {
        None
    }
}

/// Docker stores `busybox` as `busybox:latest`; the desired reference is compared in that form.
pub fn normalize_reference(r: &str) -> String {
    if r.contains('@') {
        return r.to_string();
    }
    let last = r.rsplit('/').next().unwrap_or(r);
    if last.contains(':') {
        r.to_string()
    } else {
        format!("{r}:latest")
    }
}

/// `repo:tag` (or `repo@digest`, `repo`) without its tag or digest.
pub fn repository(reference: &str) -> &str {
    let no_digest = reference.split('@').next().unwrap_or(reference);
    let last = no_digest.rfind('/').map_or(0, |i| i + 1);
    match no_digest[last..].find(':') {
        Some(i) => &no_digest[..last + i],
        None => no_digest,
    }
}

/// A digest of everything on the host that a plan for `project` was computed from: its managed
/// objects and any object holding one of `names`. A saved plan is stale when this changed.
pub fn fingerprint(observed: &ObservedState, project: &str, names: &std::collections::BTreeSet<String>) -> String {
    use sha2::{Digest, Sha256};
    let relevant = |owner: &Option<Ownership>, name: &str| {
        owner.as_ref().is_some_and(|o| o.project == project) || names.contains(name)
    };
    let mut lines: Vec<String> = Vec::new();
    for c in observed.containers.iter().filter(|c| relevant(&c.owner, &c.name)) {
        let hash = c.owner.as_ref().map(|o| o.spec_hash.as_str()).unwrap_or("-");
        lines.push(format!("c {} {} {} {} {} {:?}", c.name, c.id, c.state.as_str(), hash, c.image_id, c.networks));
    }
    for n in observed.networks.iter().filter(|n| relevant(&n.owner, &n.name)) {
        lines.push(format!("n {} {} {}", n.name, n.id, n.owner.as_ref().map(|o| o.spec_hash.as_str()).unwrap_or("-")));
    }
    for v in observed.volumes.iter().filter(|v| relevant(&v.owner, &v.name)) {
        lines.push(format!("v {} {}", v.name, v.owner.as_ref().map(|o| o.spec_hash.as_str()).unwrap_or("-")));
    }
    lines.sort();
    hex::encode(Sha256::digest(lines.join("\n").as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_from_status_text() {
        assert_eq!(health_from_status("Up 3 minutes (healthy)"), Some(Health::Healthy));
        assert_eq!(health_from_status("Up 1 second (health: starting)"), Some(Health::Starting));
        assert_eq!(health_from_status("Up 2 hours"), None);
    }

    #[test]
    fn exit_codes_from_status_text() {
        assert_eq!(exit_code_from_status("Exited (137) 2 minutes ago"), Some(137));
        assert_eq!(exit_code_from_status("Up 3 seconds"), None);
    }

    #[test]
    fn references_get_the_default_tag() {
        assert_eq!(normalize_reference("127.0.0.1:5000/busybox"), "127.0.0.1:5000/busybox:latest");
        assert_eq!(normalize_reference("127.0.0.1:5000/busybox:1"), "127.0.0.1:5000/busybox:1");
    }
}
