//! The engine of one host, whichever kind it is: the Docker Engine API or the native target.
//! Commands that work on one host (plan, apply, rollback, status) hold this, and the engine
//! traits route each call to the chosen backend.

use super::docker::DockerEngine;
use super::native::NativeEngine;
use super::{ContainerStatus, CreateContainer, Engine, EngineRead, Events, Result};
use crate::desired::{BuildContext, NetworkSpec, VolumeSpec};
use crate::observed::ObservedState;
use std::collections::BTreeMap;
use std::time::Duration;

pub enum HostEngine {
    Docker(DockerEngine),
    Native(NativeEngine),
}

macro_rules! each {
    ($self:ident, $e:ident => $call:expr) => {
        match $self {
            HostEngine::Docker($e) => $call,
            HostEngine::Native($e) => $call,
        }
    };
}

impl EngineRead for HostEngine {
    async fn observe(&self) -> Result<ObservedState> {
        each!(self, e => e.observe().await)
    }
    async fn container_status(&self, id: &str) -> Result<ContainerStatus> {
        each!(self, e => e.container_status(id).await)
    }
    async fn logs_tail(&self, id: &str, lines: usize) -> Result<String> {
        each!(self, e => e.logs_tail(id, lines).await)
    }
    fn events<'a>(&'a self, id: &str, since: std::time::SystemTime) -> Events<'a> {
        each!(self, e => e.events(id, since))
    }
}

impl Engine for HostEngine {
    async fn create_network(&self, name: &str, spec: &NetworkSpec, labels: BTreeMap<String, String>) -> Result<String> {
        each!(self, e => e.create_network(name, spec, labels).await)
    }
    async fn remove_network(&self, id: &str) -> Result<()> {
        each!(self, e => e.remove_network(id).await)
    }
    async fn create_volume(&self, name: &str, spec: &VolumeSpec, labels: BTreeMap<String, String>) -> Result<()> {
        each!(self, e => e.create_volume(name, spec, labels).await)
    }
    async fn remove_volume(&self, name: &str) -> Result<()> {
        each!(self, e => e.remove_volume(name).await)
    }
    async fn pull_image(&self, reference: &str, platform: Option<&str>) -> Result<()> {
        each!(self, e => e.pull_image(reference, platform).await)
    }
    async fn remove_image(&self, reference: &str) -> Result<()> {
        each!(self, e => e.remove_image(reference).await)
    }
    async fn push_image(&self, reference: &str) -> Result<()> {
        each!(self, e => e.push_image(reference).await)
    }
    async fn build_image(&self, ctx: &BuildContext) -> Result<()> {
        each!(self, e => e.build_image(ctx).await)
    }
    async fn create_container(&self, req: &CreateContainer<'_>) -> Result<String> {
        each!(self, e => e.create_container(req).await)
    }
    async fn start_container(&self, id: &str) -> Result<()> {
        each!(self, e => e.start_container(id).await)
    }
    async fn stop_container(&self, id: &str, timeout: Option<Duration>) -> Result<()> {
        each!(self, e => e.stop_container(id, timeout).await)
    }
    async fn remove_container(&self, id: &str) -> Result<()> {
        each!(self, e => e.remove_container(id).await)
    }
    async fn rename_container(&self, id: &str, new_name: &str) -> Result<()> {
        each!(self, e => e.rename_container(id, new_name).await)
    }
}
