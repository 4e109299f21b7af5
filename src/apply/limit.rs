//! A bound on engine calls in flight: the executor runs independent actions concurrently, and
//! this wrapper keeps a large plan from flooding the engine.

use crate::desired::{NetworkSpec, VolumeSpec};
use crate::observed::ObservedState;
use crate::runtime::{ContainerStatus, CreateContainer, Engine, EngineRead, Result};
use std::collections::BTreeMap;
use std::time::Duration;
use tokio::sync::Semaphore;

pub struct Limited<'e, E> {
    inner: &'e E,
    permits: Semaphore,
}

impl<'e, E> Limited<'e, E> {
    pub fn new(inner: &'e E, max_in_flight: usize) -> Self {
        Limited { inner, permits: Semaphore::new(max_in_flight.max(1)) }
    }
}

macro_rules! limited {
    ($self:ident, $call:expr) => {{
        let _permit = $self.permits.acquire().await.expect("the semaphore is never closed");
        $call.await
    }};
}

impl<E: EngineRead> EngineRead for Limited<'_, E> {
    async fn observe(&self) -> Result<ObservedState> {
        limited!(self, self.inner.observe())
    }
    async fn container_status(&self, id: &str) -> Result<ContainerStatus> {
        limited!(self, self.inner.container_status(id))
    }
    async fn logs_tail(&self, id: &str, lines: usize) -> Result<String> {
        limited!(self, self.inner.logs_tail(id, lines))
    }
}

impl<E: Engine> Engine for Limited<'_, E> {
    async fn create_network(&self, name: &str, spec: &NetworkSpec, labels: BTreeMap<String, String>) -> Result<String> {
        limited!(self, self.inner.create_network(name, spec, labels))
    }
    async fn remove_network(&self, id: &str) -> Result<()> {
        limited!(self, self.inner.remove_network(id))
    }
    async fn create_volume(&self, name: &str, spec: &VolumeSpec, labels: BTreeMap<String, String>) -> Result<()> {
        limited!(self, self.inner.create_volume(name, spec, labels))
    }
    async fn remove_volume(&self, name: &str) -> Result<()> {
        limited!(self, self.inner.remove_volume(name))
    }
    async fn pull_image(&self, reference: &str) -> Result<()> {
        limited!(self, self.inner.pull_image(reference))
    }
    async fn remove_image(&self, reference: &str) -> Result<()> {
        limited!(self, self.inner.remove_image(reference))
    }
    async fn push_image(&self, reference: &str) -> Result<()> {
        limited!(self, self.inner.push_image(reference))
    }
    async fn build_image(&self, ctx: &crate::desired::BuildContext) -> Result<()> {
        limited!(self, self.inner.build_image(ctx))
    }
    async fn create_container(&self, req: &CreateContainer<'_>) -> Result<String> {
        limited!(self, self.inner.create_container(req))
    }
    async fn start_container(&self, id: &str) -> Result<()> {
        limited!(self, self.inner.start_container(id))
    }
    async fn stop_container(&self, id: &str, timeout: Option<Duration>) -> Result<()> {
        limited!(self, self.inner.stop_container(id, timeout))
    }
    async fn remove_container(&self, id: &str) -> Result<()> {
        limited!(self, self.inner.remove_container(id))
    }
    async fn rename_container(&self, id: &str, new_name: &str) -> Result<()> {
        limited!(self, self.inner.rename_container(id, new_name))
    }
}
