//! A bound on engine calls in flight: the executor runs independent actions concurrently, and
//! this wrapper keeps a large plan from flooding the engine.

use crate::desired::{NetworkSpec, PortBinding, VolumeSpec};
use crate::observed::ObservedState;
use crate::runtime::{ContainerStatus, CreateContainer, Engine, EngineRead, Result};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;

pub struct Limited<'e, E> {
    inner: &'e E,
    permits: Semaphore,
    /// When this executor began, for the timeline (`HAWSER_LOG=hawser::timeline=debug`).
    epoch: Instant,
}

impl<'e, E> Limited<'e, E> {
    pub fn new(inner: &'e E, max_in_flight: usize) -> Self {
        Limited { inner, permits: Semaphore::new(max_in_flight.max(1)), epoch: Instant::now() }
    }
}

/// One engine call on the timeline: what, on what, when it asked for a slot, got one, ended
/// (milliseconds since the executor began). The benchmark reads these to say where time goes.
fn timeline(epoch: Instant, op: &str, on: &str, asked: Instant, began: Instant) {
    let ms = |t: Instant| t.duration_since(epoch).as_secs_f64() * 1000.0;
    tracing::debug!(
        target: "hawser::timeline",
        op,
        on,
        asked = ms(asked),
        began = ms(began),
        ended = ms(Instant::now()),
        "engine call"
    );
}

macro_rules! limited {
    ($self:ident, $op:expr, $on:expr, $call:expr) => {{
        let asked = Instant::now();
        let _permit = $self.permits.acquire().await.expect("the semaphore is never closed");
        let began = Instant::now();
        let r = $call.await;
        timeline($self.epoch, $op, $on, asked, began);
        r
    }};
}

/// A call that mostly waits (a stop's grace period) or that a waiting gate makes (a look at the
/// container): it takes no slot, so neither queues behind the calls that make things, nor they
/// behind it.
macro_rules! waiting {
    ($self:ident, $op:expr, $on:expr, $call:expr) => {{
        let began = Instant::now();
        let r = $call.await;
        timeline($self.epoch, $op, $on, began, began);
        r
    }};
}

impl<E: EngineRead> EngineRead for Limited<'_, E> {
    async fn observe(&self) -> Result<ObservedState> {
        limited!(self, "observe", "", self.inner.observe())
    }
    async fn container_status(&self, id: &str) -> Result<ContainerStatus> {
        // A gate's look: part of waiting, answered by the engine from memory.
        waiting!(self, "container_status", id, self.inner.container_status(id))
    }
    /// Waiting on events takes no slot.
    fn events<'a>(&'a self, id: &str, since: std::time::SystemTime) -> crate::runtime::Events<'a> {
        self.inner.events(id, since)
    }
    async fn logs_tail(&self, id: &str, lines: usize) -> Result<String> {
        waiting!(self, "logs_tail", id, self.inner.logs_tail(id, lines))
    }
}

impl<E: Engine> Engine for Limited<'_, E> {
    async fn create_network(&self, name: &str, spec: &NetworkSpec, labels: BTreeMap<String, String>) -> Result<String> {
        limited!(self, "create_network", name, self.inner.create_network(name, spec, labels))
    }
    async fn remove_network(&self, id: &str) -> Result<()> {
        limited!(self, "remove_network", id, self.inner.remove_network(id))
    }
    async fn create_volume(&self, name: &str, spec: &VolumeSpec, labels: BTreeMap<String, String>) -> Result<()> {
        limited!(self, "create_volume", name, self.inner.create_volume(name, spec, labels))
    }
    async fn remove_volume(&self, name: &str) -> Result<()> {
        limited!(self, "remove_volume", name, self.inner.remove_volume(name))
    }
    async fn pull_image(&self, reference: &str, platform: Option<&str>) -> Result<()> {
        limited!(self, "pull_image", reference, self.inner.pull_image(reference, platform))
    }
    async fn remove_image(&self, reference: &str) -> Result<()> {
        limited!(self, "remove_image", reference, self.inner.remove_image(reference))
    }
    async fn push_image(&self, reference: &str) -> Result<()> {
        limited!(self, "push_image", reference, self.inner.push_image(reference))
    }
    async fn build_image(&self, ctx: &crate::desired::BuildContext) -> Result<()> {
        limited!(self, "build_image", &ctx.tag, self.inner.build_image(ctx))
    }
    async fn create_container(&self, req: &CreateContainer<'_>) -> Result<String> {
        limited!(self, "create_container", req.name, self.inner.create_container(req))
    }
    async fn start_container(&self, id: &str) -> Result<()> {
        limited!(self, "start_container", id, self.inner.start_container(id))
    }
    async fn stop_container(&self, id: &str, timeout: Option<Duration>) -> Result<()> {
        waiting!(self, "stop_container", id, self.inner.stop_container(id, timeout))
    }
    async fn remove_container(&self, id: &str) -> Result<()> {
        limited!(self, "remove_container", id, self.inner.remove_container(id))
    }
    async fn rename_container(&self, id: &str, new_name: &str) -> Result<()> {
        limited!(self, "rename_container", id, self.inner.rename_container(id, new_name))
    }
    async fn publish(&self, project: &str, name: &str, id: Option<&str>, ports: &[PortBinding]) -> Result<()> {
        limited!(self, "publish", name, self.inner.publish(project, name, id, ports))
    }
    async fn unpublish(&self, project: &str, name: &str, id: &str) -> Result<Vec<PortBinding>> {
        limited!(self, "unpublish", name, self.inner.unpublish(project, name, id))
    }
    async fn open_connections(&self, id: &str, ports: &[PortBinding]) -> Result<usize> {
        waiting!(self, "open_connections", id, self.inner.open_connections(id, ports))
    }
    async fn exec(&self, id: &str, hook: &crate::desired::Hook) -> Result<i64> {
        limited!(self, "exec", id, self.inner.exec(id, hook))
    }
}
