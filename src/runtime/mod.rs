//! Where projects run. Every target is a [`deployment::Deployment`], opened in one place
//! ([`targets::Targets`]). The one-host targets (the Docker Engine API, [`docker`], and the
//! native runtime, [`native`]) share an engine behind two traits: [`EngineRead`] for everything
//! `plan` may do, and [`Engine`] for the calls that change the host; the swarm ([`swarm`]) is a
//! cluster's manager.

pub mod conntrack;
pub mod deployment;
pub mod docker;
#[cfg(test)]
pub mod fake;
pub mod host;
pub mod native;
pub mod ports;
pub mod registry;
pub mod swarm;
pub mod targets;

use crate::desired::{ContainerSpec, NetworkSpec, PortBinding, VolumeSpec};
use crate::observed::{Health, ObservedState, RunState};
use std::collections::BTreeMap;
use std::time::Duration;

/// What kind of failure an engine call had, set where the error is made: callers decide on
/// this, never on the message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    NotFound,
    Conflict,
    /// The object is used by another (a network with endpoints, an image a container runs).
    InUse,
    /// The call asked for what already is (a start of a running container).
    NotModified,
    /// The engine can't be reached or timed out.
    Unavailable,
    /// The target has no such capability (logs of a swarm).
    Unsupported,
    Other,
}

/// A failed engine call, with what was being done.
#[derive(Debug, thiserror::Error)]
#[error("{op}: {message}")]
pub struct EngineError {
    pub op: String,
    pub kind: ErrorKind,
    pub message: String,
}

pub type Result<T> = std::result::Result<T, EngineError>;

/// What a health gate needs to know about one container.
#[derive(Clone, Debug)]
pub struct ContainerStatus {
    pub state: RunState,
    pub health: Option<Health>,
    pub exit_code: Option<i64>,
    pub restart_count: i64,
    /// The last health check's output, if any.
    pub health_output: Option<String>,
    /// When its process last started, by the engine's clock.
    pub started_at: Option<std::time::SystemTime>,
}

/// What happened to a container, as the engine's event stream tells it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ContainerEvent {
    Started,
    Died,
    Healthy,
    Unhealthy,
    /// Anything else about it (a rename, an exec): worth a look, nothing more.
    Other,
}

/// A container's events as they come; ends when the engine closes the stream.
pub type Events<'a> = futures_util::stream::BoxStream<'a, Result<ContainerEvent>>;

/// How a container is created: the spec plus what hawser adds.
#[derive(Clone, Debug)]
pub struct CreateContainer<'a> {
    pub name: &'a str,
    pub spec: &'a ContainerSpec,
    pub labels: BTreeMap<String, String>,
    /// Extra DNS aliases on every network (the resource name, so a candidate under a temporary
    /// name already answers to it).
    pub aliases: Vec<String>,
    /// `secretEnv` values, added to the environment; never logged.
    pub secret_env: Vec<(String, String)>,
    /// Host paths of the repository snapshots that `Mount::Repo` mounts, by target.
    pub repo_mounts: BTreeMap<String, std::path::PathBuf>,
}

#[allow(async_fn_in_trait)]
pub trait EngineRead {
    /// Reads containers, networks, volumes and image tags in one pass of list calls.
    async fn observe(&self) -> Result<ObservedState>;
    async fn container_status(&self, id: &str) -> Result<ContainerStatus>;
    async fn logs_tail(&self, id: &str, lines: usize) -> Result<String>;
    /// Container `id`'s events from `since` (engine clock) on: those since then that already
    /// happened first, so a watch begun after an action misses nothing that followed it.
    fn events<'a>(&'a self, id: &str, since: std::time::SystemTime) -> Events<'a>;
}

#[allow(async_fn_in_trait)]
pub trait Engine: EngineRead {
    async fn create_network(&self, name: &str, spec: &NetworkSpec, labels: BTreeMap<String, String>) -> Result<String>;
    async fn remove_network(&self, id: &str) -> Result<()>;
    async fn create_volume(&self, name: &str, spec: &VolumeSpec, labels: BTreeMap<String, String>) -> Result<()>;
    async fn remove_volume(&self, name: &str) -> Result<()>;
    /// Pulls `reference`, for `platform` (`os/arch[/variant]`) when given, else the engine's own.
    async fn pull_image(&self, reference: &str, platform: Option<&str>) -> Result<()>;
    /// Removes an image reference (untags; deletes the image when nothing else names it).
    async fn remove_image(&self, reference: &str) -> Result<()>;
    /// Pushes `reference` (`REPO:TAG`) to its registry.
    async fn push_image(&self, reference: &str) -> Result<()>;
    /// Builds `ctx` with the engine's build API and tags it `ctx.tag`.
    async fn build_image(&self, ctx: &crate::desired::BuildContext) -> Result<()>;
    /// Creates (does not start) a container; returns its id.
    async fn create_container(&self, req: &CreateContainer<'_>) -> Result<String>;
    async fn start_container(&self, id: &str) -> Result<()>;
    async fn stop_container(&self, id: &str, timeout: Option<Duration>) -> Result<()>;
    /// Removes a container, stopping it if it runs; its named volumes stay.
    async fn remove_container(&self, id: &str) -> Result<()>;
    async fn rename_container(&self, id: &str, new_name: &str) -> Result<()>;
    /// Where hawser publishes host ports itself (`ports`): sends resource `name`'s host ports
    /// (of `project`) to container `id` from now on, for new connections, or publishes them no
    /// more (`None`). Elsewhere the engine publishes them, and this does nothing.
    async fn publish(&self, _project: &str, _name: &str, _id: Option<&str>, _ports: &[PortBinding]) -> Result<()> {
        Ok(())
    }
    /// Publishes resource `name`'s host ports no more where they go to container `id` (about to
    /// be removed); rules that send them to another container stay. Returns the ports it
    /// published, whose open connections may then be drained.
    async fn unpublish(&self, _project: &str, _name: &str, _id: &str) -> Result<Vec<PortBinding>> {
        Ok(Vec::new())
    }
    /// TCP connections still open to container `id`'s published ports, where it is known.
    async fn open_connections(&self, _id: &str, _ports: &[PortBinding]) -> Result<usize> {
        Ok(0)
    }
    /// Runs `hook` inside running container `id`, waits for it, and returns its exit code.
    async fn exec(&self, id: &str, _hook: &crate::desired::Hook) -> Result<i64> {
        Err(EngineError {
            op: format!("run a lifecycle hook in {id}"),
            kind: ErrorKind::Unsupported,
            message: "this target runs no lifecycle hooks".into(),
        })
    }
}
