//! What a swarm has, read through one of its managers into plain data: services with their
//! tasks and update status, overlay networks, secrets and nodes. The swarm diff is computed from
//! this snapshot alone.

use super::ObservedNetwork;
use crate::labels::Ownership;
use std::collections::BTreeMap;

/// Where a service's last rolling update is (the swarm's `UpdateStatus.State`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UpdateState {
    Updating,
    Paused,
    Completed,
    RollbackStarted,
    RollbackPaused,
    RollbackCompleted,
    Other(String),
}

impl UpdateState {
    pub fn parse(s: &str) -> UpdateState {
        match s {
            "updating" => UpdateState::Updating,
            "paused" => UpdateState::Paused,
            "completed" => UpdateState::Completed,
            "rollback_started" => UpdateState::RollbackStarted,
            "rollback_paused" => UpdateState::RollbackPaused,
            "rollback_completed" => UpdateState::RollbackCompleted,
            other => UpdateState::Other(other.to_string()),
        }
    }

    /// The cluster gave up on the update (and rolls back, or did).
    pub fn failed(&self) -> bool {
        matches!(
            self,
            UpdateState::Paused
                | UpdateState::RollbackStarted
                | UpdateState::RollbackPaused
                | UpdateState::RollbackCompleted
        )
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct UpdateStatus {
    pub state: UpdateState,
    /// When it began, by the manager's clock (RFC 3339 text, compared as given).
    pub started_at: Option<String>,
    pub message: Option<String>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ObservedTask {
    pub id: String,
    /// The node's hostname (its id when the node is gone).
    pub node: String,
    /// Its node is down: whatever the task's last known state, it runs nowhere reachable.
    pub node_down: bool,
    pub slot: Option<i64>,
    /// `running`, `starting`, `failed`, `rejected`, `shutdown`, ...
    pub state: String,
    pub desired_state: String,
    /// Why it failed, as the swarm says (`task: non-zero exit (1)`, `no suitable node`).
    pub error: Option<String>,
    /// Whether it runs the service's current task spec (not one an update is replacing).
    pub current: bool,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ObservedService {
    pub id: String,
    pub name: String,
    /// The object's version, which an update must name.
    pub version: u64,
    pub labels: BTreeMap<String, String>,
    pub owner: Option<Ownership>,
    /// The replicas the service asks for; `None` for a global service.
    pub replicas: Option<u64>,
    /// The image its task spec runs (`repo:tag@sha256:...`).
    pub image: String,
    pub update: Option<UpdateStatus>,
    /// Tasks that should run, and tasks that do, as the manager counts them.
    pub desired_tasks: u64,
    pub running_tasks: u64,
    pub tasks: Vec<ObservedTask>,
}

impl ObservedService {
    /// Tasks that should run but failed (or could not be placed), newest state first.
    pub fn failing(&self) -> impl Iterator<Item = &ObservedTask> {
        self.tasks.iter().filter(|t| {
            matches!(t.state.as_str(), "failed" | "rejected")
                || (t.desired_state == "running" && t.state == "pending" && t.error.is_some())
        })
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct ObservedSecret {
    pub id: String,
    pub name: String,
    pub owner: Option<Ownership>,
}

/// Everything the swarm diff needs to know about the cluster.
#[derive(Clone, Debug, Default)]
pub struct SwarmState {
    pub services: Vec<ObservedService>,
    pub networks: Vec<ObservedNetwork>,
    pub secrets: Vec<ObservedSecret>,
    /// The nodes, by id.
    pub nodes: BTreeMap<String, ObservedNode>,
}

/// What a saved plan (`hawser plan --out`) was made against: the project's services (each at
/// its version, so an update of any kind since, by hand or by the cluster, makes it stale),
/// networks and secrets, and any object of the names it declares.
pub fn fingerprint(state: &SwarmState, project: &str, names: &std::collections::BTreeSet<String>) -> String {
    use sha2::{Digest, Sha256};
    let relevant = |owner: &Option<Ownership>, name: &str| {
        owner.as_ref().is_some_and(|o| o.project == project) || names.contains(name)
    };
    let mut lines: Vec<String> = Vec::new();
    for s in state.services.iter().filter(|s| relevant(&s.owner, &s.name)) {
        lines.push(format!("s {} {} {} {} {:?}", s.name, s.id, s.version, s.image, s.replicas));
    }
    for n in state.networks.iter().filter(|n| relevant(&n.owner, &n.name)) {
        lines.push(format!("n {} {} {}", n.name, n.id, n.owner.as_ref().map(|o| o.spec_hash.as_str()).unwrap_or("-")));
    }
    for x in state.secrets.iter().filter(|x| relevant(&x.owner, &x.name)) {
        lines.push(format!("x {} {}", x.name, x.id));
    }
    lines.sort();
    hex::encode(Sha256::digest(lines.join("\n").as_bytes()))
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct ObservedNode {
    pub hostname: String,
    /// `manager` or `worker`.
    pub role: String,
    /// The node's labels (`docker node update --label-add`), which constraints name.
    pub labels: BTreeMap<String, String>,
    /// `ready`, `down`, `disconnected`, `unknown`.
    pub state: String,
    /// `active`, `pause`, `drain`.
    pub availability: String,
}
