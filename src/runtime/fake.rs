//! An engine in memory, for unit tests of the executor: containers, networks, volumes and images
//! as plain data, with what a test injects (a container that exits or turns unhealthy when
//! started, a call that fails, a delay on every call, a crash after the Nth change) and what it
//! asks afterwards (every call made, in order; the most calls ever in flight at once).

use super::ports::Published;
use super::{
    ContainerEvent, ContainerStatus, CreateContainer, Engine, EngineError, EngineRead, ErrorKind, Events, Result,
};
use crate::desired::{BuildContext, NetworkSpec, PortBinding, VolumeSpec};
use crate::labels::Ownership;
use crate::observed::{
    normalize_reference, Health, ObservedContainer, ObservedNetwork, ObservedState, ObservedVolume, RunState,
};
use futures_util::StreamExt;
use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

/// What a container of an image does when started.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Behaviour {
    /// Runs (and is healthy, when it has a healthcheck).
    Runs,
    /// Runs, and its healthcheck fails.
    Unhealthy,
    /// Exits at once with this code.
    Exits(i64),
}

#[derive(Clone, Debug)]
pub struct FakeContainer {
    pub id: String,
    pub name: String,
    pub image: String,
    pub labels: BTreeMap<String, String>,
    pub state: RunState,
    pub health: Option<Health>,
    pub exit_code: Option<i64>,
    pub networks: Vec<String>,
    /// Given anew at each start, as an engine may.
    pub address: Option<Ipv4Addr>,
    healthcheck: bool,
}

#[derive(Default)]
struct Inner {
    next_id: u64,
    containers: BTreeMap<String, FakeContainer>,
    /// Id to (name, labels).
    networks: BTreeMap<String, (String, BTreeMap<String, String>)>,
    volumes: BTreeMap<String, BTreeMap<String, String>>,
    /// Normalized reference to image id.
    images: BTreeMap<String, String>,
    behaviours: BTreeMap<String, Behaviour>,
    /// `"op name"` to the kind of error that call gets.
    failures: BTreeMap<String, ErrorKind>,
    calls: Vec<String>,
    changes: usize,
    crash_after: Option<usize>,
    in_flight: usize,
    max_in_flight: usize,
    /// Where hawser publishes host ports itself: what its rules publish, by project.
    owns_ports: bool,
    published: BTreeMap<String, Vec<Published>>,
    /// Connections open to a container, by id.
    open: BTreeMap<String, usize>,
}

#[derive(Default)]
pub struct FakeEngine {
    inner: Mutex<Inner>,
    /// How long every call takes.
    pub delay: Duration,
    crashed: tokio::sync::Notify,
}

/// Counts a call in flight until dropped.
struct InFlight<'a>(&'a FakeEngine);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.inner.lock().unwrap().in_flight -= 1;
    }
}

impl FakeEngine {
    pub fn new() -> FakeEngine {
        FakeEngine::default()
    }

    /// hawser publishes host ports itself here (as on a local Docker engine).
    pub fn owning_ports(self) -> FakeEngine {
        self.inner.lock().unwrap().owns_ports = true;
        self
    }

    /// What hawser's rules publish for `project`.
    pub fn published(&self, project: &str) -> Vec<Published> {
        self.inner.lock().unwrap().published.get(project).cloned().unwrap_or_default()
    }

    /// Loses `project`'s rules, as a flush of the firewall does.
    pub fn flush_rules(&self, project: &str) {
        self.inner.lock().unwrap().published.remove(project);
    }

    /// `n` connections stay open to container `name` until told otherwise.
    /// Container `name`'s healthcheck now says `health`, as a running container's may.
    pub fn set_health(&self, name: &str, health: Health) {
        let id = self.container(name).expect("exists").id;
        self.inner.lock().unwrap().containers.get_mut(&id).expect("exists").health = Some(health);
    }

    pub fn hold_connections(&self, name: &str, n: usize) {
        let id = self.container(name).expect("exists").id;
        self.inner.lock().unwrap().open.insert(id, n);
    }

    /// An image present on the host.
    pub fn with_image(self, reference: &str) -> FakeEngine {
        let id = format!("sha256:{}", reference.replace([':', '/'], "-"));
        self.inner.lock().unwrap().images.insert(normalize_reference(reference), id);
        self
    }

    /// What containers of `image` do when started.
    pub fn behave(&self, image: &str, b: Behaviour) {
        self.inner.lock().unwrap().behaviours.insert(image.to_string(), b);
    }

    /// Call `op` on the object named `name` fails with `kind`.
    pub fn fail(&self, op: &str, name: &str, kind: ErrorKind) {
        self.inner.lock().unwrap().failures.insert(format!("{op} {name}"), kind);
    }

    /// Call `op` on `name` works again.
    pub fn heal(&self, op: &str, name: &str) {
        self.inner.lock().unwrap().failures.remove(&format!("{op} {name}"));
    }

    /// The process "dies" right after its `n`th change to the host: that call never returns,
    /// and [`FakeEngine::crashed`] wakes. `None` lets it live again.
    pub fn crash_after(&self, n: Option<usize>) {
        let mut i = self.inner.lock().unwrap();
        i.crash_after = n.map(|n| i.changes + n);
    }

    pub async fn crashed(&self) {
        self.crashed.notified().await
    }

    /// Every call made, as `"op name"`, in order.
    pub fn calls(&self) -> Vec<String> {
        self.inner.lock().unwrap().calls.clone()
    }

    pub fn forget_calls(&self) {
        self.inner.lock().unwrap().calls.clear();
    }

    /// Changes made to the host so far.
    pub fn changes(&self) -> usize {
        self.inner.lock().unwrap().changes
    }

    pub fn max_in_flight(&self) -> usize {
        self.inner.lock().unwrap().max_in_flight
    }

    pub fn containers(&self) -> Vec<FakeContainer> {
        self.inner.lock().unwrap().containers.values().cloned().collect()
    }

    pub fn container(&self, name: &str) -> Option<FakeContainer> {
        self.containers().into_iter().find(|c| c.name == name)
    }

    /// Someone else's container, as `docker run` makes it.
    pub fn add_unmanaged(&self, name: &str, image: &str) -> String {
        let mut i = self.inner.lock().unwrap();
        i.next_id += 1;
        let id = format!("c{}", i.next_id);
        let c = FakeContainer {
            id: id.clone(),
            name: name.into(),
            image: image.into(),
            labels: BTreeMap::new(),
            state: RunState::Running,
            health: None,
            exit_code: None,
            networks: Vec::new(),
            address: None,
            healthcheck: false,
        };
        i.containers.insert(id.clone(), c);
        id
    }

    /// Begins a call: counted, delayed, maybe failed.
    async fn call(&self, op: &str, name: &str) -> Result<InFlight<'_>> {
        {
            let mut i = self.inner.lock().unwrap();
            i.calls.push(format!("{op} {name}"));
            i.in_flight += 1;
            i.max_in_flight = i.max_in_flight.max(i.in_flight);
        }
        let guard = InFlight(self);
        if !self.delay.is_zero() {
            tokio::time::sleep(self.delay).await;
        }
        let failure = self.inner.lock().unwrap().failures.get(&format!("{op} {name}")).copied();
        match failure {
            Some(kind) => Err(error(op, name, kind, "injected failure")),
            None => Ok(guard),
        }
    }

    /// Ends a call that changed the host; past the crash point, it never returns.
    async fn changed(&self) {
        let crash = {
            let mut i = self.inner.lock().unwrap();
            i.changes += 1;
            i.crash_after.is_some_and(|n| i.changes >= n)
        };
        if crash {
            self.crashed.notify_one();
            std::future::pending::<()>().await;
        }
    }

    fn id_of(&self, op: &str, id: &str) -> Result<String> {
        let i = self.inner.lock().unwrap();
        if i.containers.contains_key(id) {
            return Ok(id.to_string());
        }
        i.containers
            .values()
            .find(|c| c.name == id)
            .map(|c| c.id.clone())
            .ok_or_else(|| error(op, id, ErrorKind::NotFound, "no such container"))
    }

    fn name_of(&self, id: &str) -> String {
        self.inner.lock().unwrap().containers.get(id).map_or_else(|| id.to_string(), |c| c.name.clone())
    }
}

fn error(op: &str, name: &str, kind: ErrorKind, message: &str) -> EngineError {
    EngineError { op: format!("{op} {name}"), kind, message: message.to_string() }
}

impl EngineRead for FakeEngine {
    async fn observe(&self) -> Result<ObservedState> {
        let _call = self.call("observe", "").await?;
        let i = self.inner.lock().unwrap();
        let containers = i
            .containers
            .values()
            .map(|c| ObservedContainer {
                id: c.id.clone(),
                name: c.name.clone(),
                image_id: i.images.get(&normalize_reference(&c.image)).cloned().unwrap_or_default(),
                state: c.state,
                exit_code: c.exit_code,
                health: c.health.clone(),
                labels: c.labels.clone(),
                owner: Ownership::from_labels(&c.labels),
                networks: c.networks.clone(),
                address: c.address,
            })
            .collect();
        let networks = i
            .networks
            .iter()
            .map(|(id, (name, labels))| ObservedNetwork {
                id: id.clone(),
                name: name.clone(),
                labels: labels.clone(),
                owner: Ownership::from_labels(labels),
            })
            .collect();
        let volumes = i
            .volumes
            .iter()
            .map(|(name, labels)| ObservedVolume {
                name: name.clone(),
                labels: labels.clone(),
                owner: Ownership::from_labels(labels),
            })
            .collect();
        Ok(ObservedState {
            containers,
            networks,
            volumes,
            images: i.images.clone(),
            ports: if i.owns_ports {
                crate::observed::PortPublisher::Hawser
            } else {
                crate::observed::PortPublisher::Remote { why: "the fake engine publishes them".into() }
            },
            published: i.published.clone(),
        })
    }

    async fn container_status(&self, id: &str) -> Result<ContainerStatus> {
        let name = self.name_of(id);
        let _call = self.call("inspect", &name).await?;
        let i = self.inner.lock().unwrap();
        let c = i.containers.get(id).ok_or_else(|| error("inspect", id, ErrorKind::NotFound, "no such container"))?;
        Ok(ContainerStatus {
            state: c.state,
            health: c.health.clone(),
            exit_code: c.exit_code,
            restart_count: 0,
            health_output: (c.health == Some(Health::Unhealthy)).then(|| "exit 1".to_string()),
            // Up long enough for any minimum uptime.
            started_at: Some(SystemTime::now() - Duration::from_secs(3600)),
        })
    }

    async fn logs_tail(&self, id: &str, _lines: usize) -> Result<String> {
        Ok(format!("output of {}", self.name_of(id)))
    }

    fn events<'a>(&'a self, _id: &str, _since: SystemTime) -> Events<'a> {
        // The gate decides on its first look at a fake container; it waits for nothing.
        futures_util::stream::pending::<Result<ContainerEvent>>().boxed()
    }
}

impl Engine for FakeEngine {
    async fn create_network(
        &self,
        name: &str,
        _spec: &NetworkSpec,
        labels: BTreeMap<String, String>,
    ) -> Result<String> {
        let _call = self.call("create_network", name).await?;
        let id = {
            let mut i = self.inner.lock().unwrap();
            if i.networks.values().any(|(n, _)| n == name) {
                return Err(error("create_network", name, ErrorKind::Conflict, "network exists"));
            }
            i.next_id += 1;
            let id = format!("n{}", i.next_id);
            i.networks.insert(id.clone(), (name.to_string(), labels));
            id
        };
        self.changed().await;
        Ok(id)
    }

    async fn remove_network(&self, id: &str) -> Result<()> {
        let _call = self.call("remove_network", id).await?;
        {
            let mut i = self.inner.lock().unwrap();
            let Some((name, _)) = i.networks.get(id).cloned() else {
                return Err(error("remove_network", id, ErrorKind::NotFound, "no such network"));
            };
            if i.containers.values().any(|c| c.networks.contains(&name)) {
                return Err(error("remove_network", id, ErrorKind::InUse, "network has active endpoints"));
            }
            i.networks.remove(id);
        }
        self.changed().await;
        Ok(())
    }

    async fn create_volume(&self, name: &str, _spec: &VolumeSpec, labels: BTreeMap<String, String>) -> Result<()> {
        let _call = self.call("create_volume", name).await?;
        self.inner.lock().unwrap().volumes.entry(name.to_string()).or_insert(labels);
        self.changed().await;
        Ok(())
    }

    async fn remove_volume(&self, name: &str) -> Result<()> {
        let _call = self.call("remove_volume", name).await?;
        self.inner.lock().unwrap().volumes.remove(name);
        self.changed().await;
        Ok(())
    }

    async fn pull_image(&self, reference: &str, _platform: Option<&str>) -> Result<()> {
        let _call = self.call("pull_image", reference).await?;
        let id = format!("sha256:{}", reference.replace([':', '/'], "-"));
        self.inner.lock().unwrap().images.insert(normalize_reference(reference), id);
        self.changed().await;
        Ok(())
    }

    async fn remove_image(&self, reference: &str) -> Result<()> {
        let _call = self.call("remove_image", reference).await?;
        self.inner.lock().unwrap().images.remove(&normalize_reference(reference));
        self.changed().await;
        Ok(())
    }

    async fn push_image(&self, reference: &str) -> Result<()> {
        let _call = self.call("push_image", reference).await?;
        Ok(())
    }

    async fn build_image(&self, ctx: &BuildContext) -> Result<()> {
        let _call = self.call("build_image", &ctx.tag).await?;
        let id = format!("sha256:built-{}", ctx.tag.replace([':', '/'], "-"));
        self.inner.lock().unwrap().images.insert(normalize_reference(&ctx.tag), id);
        self.changed().await;
        Ok(())
    }

    async fn create_container(&self, req: &CreateContainer<'_>) -> Result<String> {
        let _call = self.call("create_container", req.name).await?;
        let id = {
            let mut i = self.inner.lock().unwrap();
            if i.containers.values().any(|c| c.name == req.name) {
                return Err(error("create_container", req.name, ErrorKind::Conflict, "name in use"));
            }
            i.next_id += 1;
            let id = format!("c{}", i.next_id);
            let c = FakeContainer {
                id: id.clone(),
                name: req.name.to_string(),
                image: req.spec.image.clone(),
                labels: req.labels.clone(),
                state: RunState::Created,
                health: None,
                exit_code: None,
                // As Docker: on the default bridge unless networks or a network mode are declared.
                networks: match (&req.spec.network_mode, req.spec.networks.is_empty()) {
                    (None, true) => vec!["bridge".into()],
                    (None, false) => req.spec.networks.keys().cloned().collect(),
                    (Some(_), _) => Vec::new(),
                },
                address: None,
                healthcheck: req.spec.has_healthcheck(),
            };
            i.containers.insert(id.clone(), c);
            id
        };
        self.changed().await;
        Ok(id)
    }

    async fn start_container(&self, id: &str) -> Result<()> {
        let name = self.name_of(id);
        let _call = self.call("start_container", &name).await?;
        {
            let mut i = self.inner.lock().unwrap();
            let image = i.containers.get(id).map(|c| c.image.clone()).unwrap_or_default();
            let b = i.behaviours.get(&image).copied().unwrap_or(Behaviour::Runs);
            i.next_id += 1;
            let address = Ipv4Addr::new(10, 88, (i.next_id / 250) as u8, (i.next_id % 250) as u8 + 2);
            let c = i
                .containers
                .get_mut(id)
                .ok_or_else(|| error("start_container", id, ErrorKind::NotFound, "no such container"))?;
            c.address = Some(address);
            match b {
                Behaviour::Runs => {
                    c.state = RunState::Running;
                    c.health = c.healthcheck.then_some(Health::Healthy);
                    c.exit_code = None;
                }
                Behaviour::Unhealthy => {
                    c.state = RunState::Running;
                    c.health = Some(Health::Unhealthy);
                    c.exit_code = None;
                }
                Behaviour::Exits(code) => {
                    c.state = RunState::Exited;
                    c.health = None;
                    c.exit_code = Some(code);
                }
            }
        }
        self.changed().await;
        Ok(())
    }

    async fn stop_container(&self, id: &str, _timeout: Option<Duration>) -> Result<()> {
        let name = self.name_of(id);
        let _call = self.call("stop_container", &name).await?;
        {
            let mut i = self.inner.lock().unwrap();
            let c = i
                .containers
                .get_mut(id)
                .ok_or_else(|| error("stop_container", id, ErrorKind::NotFound, "no such container"))?;
            if c.state == RunState::Running {
                c.state = RunState::Exited;
                c.exit_code = Some(0);
                c.health = None;
            }
        }
        self.changed().await;
        Ok(())
    }

    async fn remove_container(&self, id: &str) -> Result<()> {
        let name = self.name_of(id);
        let _call = self.call("remove_container", &name).await?;
        let id = self.id_of("remove_container", id)?;
        self.inner.lock().unwrap().containers.remove(&id);
        self.changed().await;
        Ok(())
    }

    async fn publish(&self, project: &str, name: &str, id: Option<&str>, ports: &[PortBinding]) -> Result<()> {
        if !self.inner.lock().unwrap().owns_ports || !ports.iter().any(|p| p.host_port.is_some()) {
            return Ok(());
        }
        let to_name = id.map(|id| self.name_of(id)).unwrap_or_else(|| "nothing".into());
        let _call = self.call("publish", &format!("{name} {to_name}")).await?;
        {
            let mut i = self.inner.lock().unwrap();
            let to = id.and_then(|id| i.containers.get(id)).and_then(|c| c.address);
            let rules = i.published.entry(project.to_string()).or_default();
            rules.retain(|p| p.name != name);
            if let Some(to) = to {
                rules.extend(super::ports::wanted(name, ports, to));
            }
        }
        self.changed().await;
        Ok(())
    }

    async fn unpublish(&self, project: &str, name: &str, id: &str) -> Result<Vec<PortBinding>> {
        if !self.inner.lock().unwrap().owns_ports {
            return Ok(Vec::new());
        }
        let _call = self.call("unpublish", name).await?;
        let mut i = self.inner.lock().unwrap();
        let Some(to) = i.containers.get(id).and_then(|c| c.address) else { return Ok(Vec::new()) };
        let mut gone = Vec::new();
        if let Some(rules) = i.published.get_mut(project) {
            gone = rules.iter().filter(|p| p.name == name && p.to == to).map(|p| p.binding()).collect();
            rules.retain(|p| !(p.name == name && p.to == to));
        }
        Ok(gone)
    }

    /// Exits 1 for the command `false`, 0 for any other.
    async fn exec(&self, id: &str, hook: &crate::desired::Hook) -> Result<i64> {
        let name = self.name_of(id);
        let _call = self.call("exec", &format!("{name} {}", hook.command.join(" "))).await?;
        Ok(if hook.command == ["false"] { 1 } else { 0 })
    }

    async fn open_connections(&self, id: &str, _ports: &[PortBinding]) -> Result<usize> {
        Ok(self.inner.lock().unwrap().open.get(id).copied().unwrap_or(0))
    }

    async fn rename_container(&self, id: &str, new_name: &str) -> Result<()> {
        let name = self.name_of(id);
        let _call = self.call("rename_container", &format!("{name} {new_name}")).await?;
        let id = self.id_of("rename_container", id)?;
        {
            let mut i = self.inner.lock().unwrap();
            if i.containers.values().any(|c| c.name == new_name && c.id != id) {
                return Err(error("rename_container", new_name, ErrorKind::Conflict, "name in use"));
            }
            i.containers.get_mut(&id).expect("found").name = new_name.to_string();
        }
        self.changed().await;
        Ok(())
    }
}
