//! The native target: hawser runs containers itself, with no engine daemon. Images come from
//! registries into a store of its own ([`store`]), each container is an OCI bundle ([`spec`])
//! run by runc or crun ([`oci`]) under a small monitor process of its own ([`monitor`]), and
//! everything it knows is in files under `STATE_DIR/native` ([`record`]), so the host's state
//! can be read back after any crash. It answers the same engine traits as the Docker target,
//! so plans, replacement, rollback, crash recovery and prune are the same code.

pub mod error;
pub mod hosts;
pub mod logs;
pub mod monitor;
pub mod net;
pub mod oci;
pub mod record;
pub mod seccomp;
pub mod spec;
pub mod store;
pub mod volumes;

use super::{ContainerEvent, ContainerStatus, CreateContainer, Engine, EngineError, EngineRead, ErrorKind, Result};
use crate::desired::{NetworkSpec, PortBinding, VolumeSpec};
use crate::labels::Ownership;
use crate::observed::{Health, ObservedContainer, ObservedState, ObservedVolume, PortPublisher, RunState};
use error::NativeError;
use record::{now_unix, ContainerRecord, Paths, State, Status};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub struct NativeEngine {
    root: PathBuf,
    store: store::Store,
    runtime: oci::Runtime,
    /// The program that runs monitors (`hawser __monitor`): this one, unless a test says.
    monitor_exe: PathBuf,
    /// hawser publishes host ports itself (`super::ports`) where it may program the kernel.
    ports: PortPublisher,
}

fn fail(op: &str, kind: ErrorKind, message: impl Into<String>) -> EngineError {
    EngineError { op: op.to_string(), kind, message: message.into() }
}

fn io(op: &str) -> impl Fn(std::io::Error) -> EngineError + '_ {
    move |e| {
        fail(
            op,
            if e.kind() == std::io::ErrorKind::NotFound { ErrorKind::NotFound } else { ErrorKind::Other },
            e.to_string(),
        )
    }
}

use super::docker::short;

impl NativeEngine {
    /// The native target with its files under `state_dir/native`. Needs root (mounts,
    /// namespaces, cgroups) and an OCI runtime.
    pub fn open(state_dir: &Path) -> Result<NativeEngine> {
        let op = "open the native target";
        if !nix::unistd::geteuid().is_root() {
            return Err(fail(op, ErrorKind::Unavailable, "the native target runs containers itself and needs root"));
        }
        let root = state_dir.join("native");
        let bin = oci::choose().map_err(|e| fail(op, ErrorKind::Unavailable, e.to_string()))?;
        for d in ["containers", "names", "volumes", "runtime", "networks"] {
            std::fs::create_dir_all(root.join(d)).map_err(io(op))?;
        }
        // Layers keep their setuid files and containers make their own in their upper folders:
        // no other user of the host may reach any of it (Docker keeps its own folders 0700/0710).
        // Set on every open, so a folder an older version made 0755 is closed too.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o700)).map_err(io(op))?;
        let store = store::Store::open(root.join("images")).map_err(io(op))?;
        let monitor_exe = std::env::var_os("HAWSER_MONITOR_EXE")
            .map(PathBuf::from)
            .or_else(|| std::env::current_exe().ok())
            .ok_or_else(|| fail(op, ErrorKind::Other, "cannot tell where the hawser binary is"))?;
        let ports = match super::ports::check() {
            Ok(()) => PortPublisher::Hawser,
            Err(e) => PortPublisher::Unable { why: e.to_string() },
        };
        Ok(NativeEngine { runtime: oci::Runtime { bin, root: root.join("runtime") }, root, store, monitor_exe, ports })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Holds pulls to the host policy's bounds.
    pub fn with_limits(mut self, limits: crate::desired::HostLimits) -> NativeEngine {
        self.store.max_layer_size = limits.layer;
        self
    }

    fn paths(&self, id: &str) -> Paths {
        Paths::new(self.root.join("containers").join(id))
    }

    fn ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = std::fs::read_dir(self.root.join("containers"))
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().to_string())
            .filter(|n| n.len() == 64)
            .collect();
        ids.sort();
        ids
    }

    /// A container id or name to its id.
    fn resolve(&self, op: &str, id_or_name: &str) -> Result<String> {
        if id_or_name.len() == 64 && self.paths(id_or_name).record().exists() {
            return Ok(id_or_name.to_string());
        }
        if let Ok(id) = std::fs::read_to_string(self.root.join("names").join(id_or_name)) {
            return Ok(id.trim().to_string());
        }
        let found: Vec<String> = self.ids().into_iter().filter(|i| i.starts_with(id_or_name)).collect();
        match found.as_slice() {
            [one] if id_or_name.len() >= 4 => Ok(one.clone()),
            _ => Err(fail(op, ErrorKind::NotFound, format!("no such container: {id_or_name}"))),
        }
    }

    /// The state the monitor recorded, corrected by what is true now: a monitor that is gone
    /// (killed, or the host restarted) left no process running.
    fn live_status(&self, id: &str) -> Status {
        let p = self.paths(id);
        let mut st = p.read_status();
        if matches!(st.state, State::Running | State::Restarting) && !record::monitor_alive(st.monitor_pid) {
            // Still running without its monitor (the monitor alone was killed)?
            if st.state == State::Running && self.runtime.state(id).as_deref() == Some("running") {
                st.state = State::Dead;
                return st;
            }
            st.state = State::Exited;
            st.exit_code = st.exit_code.or(Some(255));
            st.pid = None;
        }
        st
    }

    /// Every container record with its state, for `observe` and `hawser logs`.
    pub fn containers(&self) -> Vec<(ContainerRecord, Status)> {
        self.ids()
            .into_iter()
            .filter_map(|id| {
                let rec = self.paths(&id).read_record().ok()?;
                let st = self.live_status(&id);
                Some((rec, st))
            })
            .collect()
    }

    /// Exits, starts and health changes of every container on this host since `since` (unix
    /// seconds), as `hawser serve` follows them (its monitors write them to `events.log`).
    pub fn host_events(&self, since: f64) -> impl futures_util::Stream<Item = super::docker::EngineEvent> + '_ {
        let log = self.root.join("events.log");
        let at = 0u64;
        futures_util::stream::unfold(
            (log, at, std::collections::VecDeque::new()),
            move |(log, mut at, mut queue)| async move {
                loop {
                    if let Some(ev) = queue.pop_front() {
                        return Some((ev, (log, at, queue)));
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    let len = std::fs::metadata(&log).map_or(0, |m| m.len());
                    if len < at {
                        at = 0; // started anew
                    }
                    if len == at {
                        continue;
                    }
                    let Ok(bytes) = std::fs::read(&log) else { continue };
                    let end = bytes.len().min(len as usize);
                    let chunk = &bytes[(at as usize).min(end)..end];
                    let whole = chunk.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
                    at += whole as u64;
                    for line in chunk[..whole].split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
                        let Ok(v) = serde_json::from_slice::<serde_json::Value>(line) else { continue };
                        if v["time"].as_f64().is_none_or(|t| t < since) {
                            continue;
                        }
                        let text = |k: &str| v[k].as_str().unwrap_or_default().to_string();
                        queue.push_back(super::docker::EngineEvent {
                            project: text("project"),
                            name: text("name"),
                            action: text("event"),
                            service: false,
                        });
                    }
                }
            },
        )
    }

    /// The log file of a container (by name or id), for `hawser logs`.
    pub fn log_path(&self, name: &str) -> Result<PathBuf> {
        let id = self.resolve("read logs", name)?;
        Ok(self.paths(&id).log())
    }

    /// Memory in bytes and CPU time in nanoseconds of a running container, read from its cgroup.
    pub fn usage(&self, id: &str) -> Option<(u64, u64)> {
        let hier = cgroups_rs::hierarchies::auto();
        let cg = cgroups_rs::Cgroup::load(hier, format!("hawser/{id}"));
        let mem: &cgroups_rs::memory::MemController = cg.controller_of()?;
        let cpu: &cgroups_rs::cpuacct::CpuAcctController = cg.controller_of()?;
        Some((mem.memory_stat().usage_in_bytes, cpu.cpuacct().usage))
    }

    /// The memory limit its cgroup enforces, in bytes.
    pub fn memory_limit(&self, id: &str) -> Option<i64> {
        let hier = cgroups_rs::hierarchies::auto();
        let cg = cgroups_rs::Cgroup::load(hier, format!("hawser/{id}"));
        let mem: &cgroups_rs::memory::MemController = cg.controller_of()?;
        Some(mem.memory_stat().limit_in_bytes)
    }

    fn write_etc(&self, p: &Paths, rec: &ContainerRecord) -> std::io::Result<()> {
        let etc = p.etc();
        std::fs::create_dir_all(&etc)?;
        let hostname = rec.spec.hostname.clone().unwrap_or_else(|| short(&rec.id).to_string());
        std::fs::write(etc.join("hostname"), format!("{hostname}\n"))?;
        std::fs::write(etc.join("hosts"), hosts::initial(rec))?;
        let resolv = if rec.spec.dns.is_empty() {
            // The host's, without loopback resolvers (unreachable from the container's network).
            let host = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
            host.lines()
                .filter(|l| !(l.starts_with("nameserver") && l.contains("127.")))
                .map(|l| format!("{l}\n"))
                .collect()
        } else {
            rec.spec.dns.iter().map(|d| format!("nameserver {d}\n")).collect::<String>()
        };
        std::fs::write(etc.join("resolv.conf"), resolv)
    }

    fn volume_users(&self, name: &str) -> Vec<String> {
        self.containers()
            .into_iter()
            .filter(|(r, _)| {
                r.spec
                    .volumes
                    .iter()
                    .any(|m| matches!(m, crate::desired::Mount::Volume { source, .. } if source == name))
            })
            .map(|(r, _)| r.name)
            .collect()
    }

    async fn wait_for(&self, id: &str, limit: Duration, done: impl Fn(&Status) -> bool) -> bool {
        let until = std::time::Instant::now() + limit;
        loop {
            if done(&self.live_status(id)) {
                return true;
            }
            if std::time::Instant::now() >= until {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// The networks a container joins: its `networks`, or the default one; none with
/// `networkMode: host` or `none`.
pub fn joins(rec: &ContainerRecord) -> std::result::Result<Vec<net::Join>, NativeError> {
    if rec.spec.network_mode.is_some() {
        return Ok(Vec::new());
    }
    if rec.spec.networks.is_empty() {
        return Ok(vec![net::Join { network: net::NetworkRecord::default_bridge(), ipv4: None }]);
    }
    rec.spec
        .networks
        .iter()
        .map(|(name, att)| {
            let network = read_network(&rec.native_root, name).ok_or_else(|| NativeError::NoNetwork(name.clone()))?;
            Ok(net::Join { network, ipv4: att.ipv4_address })
        })
        .collect()
}

fn read_network(root: &Path, name: &str) -> Option<net::NetworkRecord> {
    serde_json::from_slice(&std::fs::read(root.join("networks").join(format!("{name}.json"))).ok()?).ok()
}

fn networks(root: &Path) -> Vec<net::NetworkRecord> {
    let mut out: Vec<net::NetworkRecord> = std::fs::read_dir(root.join("networks"))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| serde_json::from_slice(&std::fs::read(e.path()).ok()?).ok())
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

fn run_state(s: State) -> RunState {
    match s {
        State::Created => RunState::Created,
        State::Running => RunState::Running,
        State::Restarting => RunState::Restarting,
        State::Exited => RunState::Exited,
        State::Dead => RunState::Dead,
    }
}

fn health(h: Option<&str>) -> Option<Health> {
    match h? {
        "starting" => Some(Health::Starting),
        "healthy" => Some(Health::Healthy),
        "unhealthy" => Some(Health::Unhealthy),
        _ => None,
    }
}

impl EngineRead for NativeEngine {
    async fn observe(&self) -> Result<ObservedState> {
        let mut state = ObservedState { ports: self.ports.clone(), ..Default::default() };
        if self.ports.is_hawser() {
            state.published = super::ports::observe().await?;
        }
        for (rec, st) in self.containers() {
            let address = if st.state == State::Running { self.address(&rec.id) } else { None };
            state.containers.push(ObservedContainer {
                id: rec.id,
                name: rec.name,
                image_id: rec.image_id,
                state: run_state(st.state),
                exit_code: if st.state == State::Exited { st.exit_code } else { None },
                health: if st.state == State::Running { health(st.health.as_deref()) } else { None },
                owner: Ownership::from_labels(&rec.labels),
                labels: rec.labels,
                // The default network, by Docker's name for it.
                networks: match (&rec.spec.network_mode, rec.spec.networks.is_empty()) {
                    (Some(_), _) => Vec::new(),
                    (None, true) => vec!["bridge".into()],
                    (None, false) => rec.spec.networks.keys().cloned().collect(),
                },
                address,
            });
        }
        for n in networks(&self.root) {
            state.networks.push(crate::observed::ObservedNetwork {
                id: n.id,
                name: n.name,
                owner: Ownership::from_labels(&n.labels),
                labels: n.labels,
            });
        }
        for e in std::fs::read_dir(self.root.join("volumes")).into_iter().flatten().flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            let labels: BTreeMap<String, String> = std::fs::read(e.path().join("labels.json"))
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok())
                .unwrap_or_default();
            state.volumes.push(ObservedVolume { name, owner: Ownership::from_labels(&labels), labels });
        }
        state.volumes.sort_by(|a, b| a.name.cmp(&b.name));
        state.images = self.store.index();
        Ok(state)
    }

    async fn container_status(&self, id: &str) -> Result<ContainerStatus> {
        let op = format!("inspect container {}", short(id));
        let id = self.resolve(&op, id)?;
        let st = self.live_status(&id);
        let at = |t: Option<f64>| t.map(|t| std::time::UNIX_EPOCH + Duration::from_secs_f64(t));
        Ok(ContainerStatus {
            state: run_state(st.state),
            health: if st.state == State::Running { health(st.health.as_deref()) } else { None },
            exit_code: st.exit_code,
            restart_count: st.restart_count,
            health_output: st.health_output.clone().or(st.error.clone()),
            started_at: at(st.started_unix),
        })
    }

    async fn logs_tail(&self, id: &str, lines: usize) -> Result<String> {
        let op = format!("read logs of {}", short(id));
        let id = self.resolve(&op, id)?;
        Ok(record::tail_log(&self.paths(&id).log(), lines))
    }

    fn events<'a>(&'a self, id: &str, since: std::time::SystemTime) -> super::Events<'a> {
        let since = since.duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0);
        let paths = self.paths(id);
        // The monitor appends to the container's events file; this follows it.
        let stream = futures_util::stream::unfold(
            (paths, 0u64, std::collections::VecDeque::<(f64, String)>::new()),
            move |(p, mut at, mut queue)| async move {
                loop {
                    if let Some((_, e)) = queue.pop_front() {
                        let ev = match e.as_str() {
                            "start" => ContainerEvent::Started,
                            "die" => ContainerEvent::Died,
                            "healthy" => ContainerEvent::Healthy,
                            "unhealthy" => ContainerEvent::Unhealthy,
                            _ => ContainerEvent::Other,
                        };
                        return Some((Ok(ev), (p, at, queue)));
                    }
                    if !p.record().exists() {
                        return None; // removed: its stream ends, as the engine's does
                    }
                    queue.extend(p.events_since(since, &mut at));
                    if queue.is_empty() {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                }
            },
        );
        Box::pin(stream)
    }
}

fn unsupported(op: &str, what: &str) -> EngineError {
    fail(op, ErrorKind::Other, format!("{what} is not supported on the native target yet"))
}

impl Engine for NativeEngine {
    async fn create_network(&self, name: &str, spec: &NetworkSpec, labels: BTreeMap<String, String>) -> Result<String> {
        let op = format!("create network {name}");
        if spec.driver != "bridge" || !spec.driver_opts.is_empty() || spec.enable_ipv6 {
            return Err(fail(
                &op,
                ErrorKind::Other,
                "the native target has IPv4 bridge networks only, without driver options",
            ));
        }
        let file = self.root.join("networks").join(format!("{name}.json"));
        if file.exists() {
            return Err(fail(&op, ErrorKind::Conflict, format!("network {name} exists")));
        }
        // Every subnet in use: hawser's networks, and the host's own routes but those of
        // hawser's bridges (another tool's bridge, or another state folder's, holds its own).
        let ours = networks(&self.root);
        let mut taken: Vec<(net::Ipv4Net, String)> = ours
            .iter()
            .chain(std::iter::once(&net::NetworkRecord::default_bridge()))
            .filter_map(|n| Some((n.subnet.parse().ok()?, format!("network {}", n.name))))
            .collect();
        let our_bridges: Vec<&str> = ours.iter().map(|n| n.bridge.as_str()).chain([net::BRIDGE]).collect();
        taken.extend(
            net::host_routes()
                .into_iter()
                .filter(|r| !our_bridges.contains(&r.dev.as_str()))
                .map(|r| (r.net, format!("the host's interface {} (not hawser's)", r.dev))),
        );
        let subnet = match spec.ipam.as_ref().and_then(|i| i.subnet.clone()) {
            Some(s) => {
                let want: net::Ipv4Net =
                    s.parse().map_err(|e: net::NotASubnet| fail(&op, ErrorKind::Other, e.to_string()))?;
                if let Some((t, whose)) = taken.iter().find(|(t, _)| t.overlaps(&want)) {
                    return Err(fail(&op, ErrorKind::Conflict, format!("subnet {s} overlaps {t} of {whose}")));
                }
                s
            }
            None => net::free_subnet(&taken.iter().map(|(t, _)| *t).collect::<Vec<_>>())
                .ok_or_else(|| fail(&op, ErrorKind::Other, "no free /24 left in 10.90.0.0/16"))?,
        };
        let id = {
            use sha2::{Digest, Sha256};
            hex::encode(Sha256::digest(format!("{name} {subnet} {}", now_unix()).as_bytes()))
        };
        let rec = net::NetworkRecord {
            bridge: format!("hw-{}", &id[..12]),
            id: id.clone(),
            name: name.to_string(),
            labels,
            subnet,
            internal: spec.internal,
        };
        crate::state_file::write_atomic(&file, &serde_json::to_vec_pretty(&rec).expect("records serialize"))
            .map_err(io(&op))?;
        Ok(id)
    }

    async fn remove_network(&self, id: &str) -> Result<()> {
        let op = format!("remove network {}", short(id));
        let Some(n) = networks(&self.root).into_iter().find(|n| n.id == id || n.name == id) else {
            return Err(fail(&op, ErrorKind::NotFound, format!("no such network: {id}")));
        };
        let users: Vec<String> = self
            .containers()
            .into_iter()
            .filter(|(r, _)| r.spec.networks.contains_key(&n.name))
            .map(|(r, _)| r.name)
            .collect();
        if !users.is_empty() {
            return Err(fail(
                &op,
                ErrorKind::Conflict,
                format!("network {} is in use by {}", n.name, users.join(", ")),
            ));
        }
        net::remove_bridge(&n.bridge);
        std::fs::remove_file(self.root.join("networks").join(format!("{}.json", n.name))).map_err(io(&op))
    }

    async fn create_volume(&self, name: &str, spec: &VolumeSpec, labels: BTreeMap<String, String>) -> Result<()> {
        let op = format!("create volume {name}");
        if spec.driver != "local" || !spec.driver_opts.is_empty() {
            return Err(fail(
                &op,
                ErrorKind::Other,
                "the native target has local volumes only, without driver options",
            ));
        }
        let dir = self.root.join("volumes").join(name);
        if dir.exists() {
            return Err(fail(&op, ErrorKind::Conflict, format!("volume {name} exists")));
        }
        std::fs::create_dir_all(dir.join("_data")).map_err(io(&op))?;
        crate::state_file::write_atomic(
            &dir.join("labels.json"),
            &serde_json::to_vec(&labels).expect("labels serialize"),
        )
        .map_err(io(&op))
    }

    async fn remove_volume(&self, name: &str) -> Result<()> {
        let op = format!("remove volume {name}");
        let users = self.volume_users(name);
        if !users.is_empty() {
            return Err(fail(&op, ErrorKind::Conflict, format!("volume is in use by {}", users.join(", "))));
        }
        std::fs::remove_dir_all(self.root.join("volumes").join(name)).map_err(io(&op))
    }

    async fn pull_image(&self, reference: &str, platform: Option<&str>) -> Result<()> {
        let op = format!("pull {reference}");
        tokio::time::timeout(Duration::from_secs(600), self.store.pull(reference, platform))
            .await
            .map_err(|_| fail(&op, ErrorKind::Unavailable, "no answer from the registry within 600s"))?
            .map(|_| ())
            .map_err(|e| fail(&op, ErrorKind::Other, e.to_string()))
    }

    async fn remove_image(&self, reference: &str) -> Result<()> {
        let op = format!("remove image {reference}");
        let in_use: Vec<String> = self.containers().into_iter().map(|(r, _)| r.image_id).collect();
        self.store.remove(reference, &in_use).map_err(|e| {
            let kind = match e {
                store::RemoveError::NoSuchImage(_) => ErrorKind::NotFound,
                store::RemoveError::InUse(_) => ErrorKind::InUse,
                store::RemoveError::Index(_) => ErrorKind::Other,
            };
            fail(&op, kind, e.to_string())
        })
    }

    async fn push_image(&self, reference: &str) -> Result<()> {
        Err(unsupported(&format!("push {reference}"), "pushing an image"))
    }

    async fn build_image(&self, ctx: &crate::desired::BuildContext) -> Result<()> {
        Err(fail(
            &format!("build {}", ctx.tag),
            ErrorKind::Other,
            "the native target has no image builder: build and push the image elsewhere (CI, `docker build`), and name it by reference",
        ))
    }

    async fn create_container(&self, req: &CreateContainer<'_>) -> Result<String> {
        let op = format!("create container {}", req.name);
        let image = self
            .store
            .image(&req.spec.image)
            .ok_or_else(|| fail(&op, ErrorKind::NotFound, format!("no such image: {}", req.spec.image)))?;
        let id = {
            use sha2::{Digest, Sha256};
            let mut seed = [0u8; 32];
            let _ = std::fs::File::open("/dev/urandom").and_then(|mut f| std::io::Read::read_exact(&mut f, &mut seed));
            hex::encode(Sha256::digest([&seed[..], req.name.as_bytes(), &now_unix().to_le_bytes()].concat()))
        };
        // The name first, exclusively: two creates of one name cannot both succeed.
        let name_file = self.root.join("names").join(req.name);
        // A name whose container was never recorded (hawser died between the two): free.
        if let Ok(held_by) = std::fs::read_to_string(&name_file) {
            if !self.paths(held_by.trim()).record().exists() {
                let _ = std::fs::remove_file(&name_file);
            }
        }
        match std::fs::OpenOptions::new().write(true).create_new(true).open(&name_file) {
            Ok(mut f) => std::io::Write::write_all(&mut f, id.as_bytes()).map_err(io(&op))?,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return Err(fail(&op, ErrorKind::Conflict, format!("the name {} is already in use", req.name)))
            }
            Err(e) => return Err(io(&op)(e)),
        }
        let made = self.make_container(&id, req, &image);
        if let Err(e) = made {
            let _ = std::fs::remove_file(&name_file);
            let _ = std::fs::remove_dir_all(self.paths(&id).dir);
            return Err(fail(&op, ErrorKind::Other, e.to_string()));
        }
        Ok(id)
    }

    async fn start_container(&self, id: &str) -> Result<()> {
        let op = format!("start container {}", short(id));
        let id = self.resolve(&op, id)?;
        let p = self.paths(&id);
        let mut before = self.live_status(&id);
        if matches!(before.state, State::Running | State::Restarting) {
            return Ok(()); // as the engine: starting a running container changes nothing
        }
        if record::monitor_alive(before.monitor_pid) {
            // Its process has exited and its monitor is still winding down (network, mounts).
            if !self.wait_for(&id, Duration::from_secs(30), |s| !record::monitor_alive(s.monitor_pid)).await {
                return Err(fail(&op, ErrorKind::Unavailable, "its previous monitor did not finish within 30s"));
            }
            before = self.live_status(&id);
        }
        let _ = std::fs::remove_file(p.stop());
        let status = std::process::Command::new(&self.monitor_exe)
            .arg("__monitor")
            .arg(&p.dir)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .map_err(|e| fail(&op, ErrorKind::Other, format!("cannot start its monitor: {e}")))?;
        if !status.success() {
            return Err(fail(&op, ErrorKind::Other, "its monitor did not start"));
        }
        let started = self.wait_for(&id, Duration::from_secs(60), |s| s.starts > before.starts).await;
        let st = self.live_status(&id);
        if !started {
            return Err(fail(&op, ErrorKind::Unavailable, "the container did not start within 60s"));
        }
        match st.error {
            Some(e) if st.state != State::Running && st.started_unix == before.started_unix => {
                Err(fail(&op, ErrorKind::Other, e))
            }
            _ => Ok(()),
        }
    }

    async fn stop_container(&self, id: &str, timeout: Option<Duration>) -> Result<()> {
        let op = format!("stop container {}", short(id));
        let id = self.resolve(&op, id)?;
        let p = self.paths(&id);
        let rec = p.read_record().map_err(io(&op))?;
        std::fs::write(p.stop(), b"").map_err(io(&op))?;
        let st = self.live_status(&id);
        if st.state == State::Dead {
            // Nobody supervises it: stopped here, and what its monitor would undo, undone.
            let _ = self.runtime.kill(&id, "SIGKILL");
            self.runtime.delete(&id);
            net::detach(&id, &p.dir);
            hosts::refresh(&self.root);
            oci::unmount_rootfs(&p.rootfs());
            let mut s = st;
            s.state = State::Exited;
            s.exit_code = Some(137);
            s.pid = None;
            s.monitor_pid = None;
            s.finished_unix = Some(now_unix());
            p.write_status(&s).map_err(io(&op))?;
            return Ok(());
        }
        if !record::monitor_alive(st.monitor_pid) && st.state != State::Running {
            return Ok(());
        }
        let grace = timeout.or(rec.spec.stop_timeout.map(|d| d.as_std())).unwrap_or(Duration::from_secs(10));
        let signal = rec.spec.stop_signal.clone().or(rec.image_stop_signal.clone()).unwrap_or_else(|| "SIGTERM".into());
        let gone = |s: &Status| !record::monitor_alive(s.monitor_pid) && s.state != State::Running;
        if !grace.is_zero() {
            let _ = self.runtime.kill(&id, &signal);
            if self.wait_for(&id, grace, gone).await {
                return Ok(());
            }
        }
        let killed = self.runtime.kill(&id, "SIGKILL");
        if self.wait_for(&id, Duration::from_secs(5), gone).await {
            return Ok(());
        }
        // The runtime could not signal it (its state out of step with the process): the
        // process itself, by the pid its monitor recorded, which the monitor then reaps.
        if let Some(pid) = self.live_status(&id).pid {
            tracing::warn!(container = %short(&id), error = ?killed.err(), "the OCI runtime did not kill it; killing pid {pid}");
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
        }
        if self.wait_for(&id, Duration::from_secs(25), gone).await {
            Ok(())
        } else {
            Err(fail(&op, ErrorKind::Unavailable, "it did not stop within 30s of SIGKILL"))
        }
    }

    async fn remove_container(&self, id: &str) -> Result<()> {
        let op = format!("remove container {}", short(id));
        let id = match self.resolve(&op, id) {
            Ok(id) => id,
            Err(e) if e.kind == ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        self.stop_container(&id, Some(Duration::ZERO)).await?;
        let p = self.paths(&id);
        let rec = p.read_record().ok();
        self.runtime.delete(&id);
        oci::unmount_rootfs(&p.rootfs());
        net::detach(&id, &p.dir);
        hosts::refresh(&self.root);
        if let Some(rec) = rec {
            let name_file = self.root.join("names").join(&rec.name);
            if std::fs::read_to_string(&name_file).is_ok_and(|n| n.trim() == id) {
                let _ = std::fs::remove_file(name_file);
            }
        }
        std::fs::remove_dir_all(&p.dir).map_err(io(&op))
    }

    async fn publish(&self, project: &str, name: &str, id: Option<&str>, ports: &[PortBinding]) -> Result<()> {
        if !self.ports.is_hawser() || !ports.iter().any(|p| p.host_port.is_some()) {
            return Ok(());
        }
        let to = match id {
            Some(id) => self.address(&self.resolve("publish", id)?),
            None => None,
        };
        super::ports::publish_to(project, name, to, ports).await
    }

    async fn unpublish(&self, project: &str, name: &str, id: &str) -> Result<Vec<PortBinding>> {
        let to = self.resolve("unpublish", id).ok().and_then(|id| self.address(&id));
        match to {
            Some(to) if self.ports.is_hawser() => super::ports::unpublish_from(project, name, to).await,
            _ => Ok(Vec::new()),
        }
    }

    async fn open_connections(&self, id: &str, ports: &[PortBinding]) -> Result<usize> {
        let to = self.resolve("count connections", id).ok().and_then(|id| self.address(&id));
        Ok(to.map_or(0, |to| super::ports::open_to(to, ports)))
    }

    async fn exec(&self, id: &str, hook: &crate::desired::Hook) -> Result<i64> {
        let op = format!("run `{}` in container {}", hook.command.join(" "), short(id));
        let id = self.resolve(&op, id)?;
        let (runtime, command) = (self.runtime.clone(), hook.command.clone());
        // As long as a hook may take: compose sets it no limit; ten minutes bound a stuck one.
        let (code, _) = tokio::task::spawn_blocking(move || runtime.exec(&id, &command, Duration::from_secs(600)))
            .await
            .map_err(|e| fail(&op, ErrorKind::Other, e.to_string()))?;
        code.map(i64::from).ok_or_else(|| fail(&op, ErrorKind::Unavailable, "it did not end within 10 minutes"))
    }

    async fn rename_container(&self, id: &str, new_name: &str) -> Result<()> {
        let op = format!("rename container {} to {new_name}", short(id));
        let id = self.resolve(&op, id)?;
        let p = self.paths(&id);
        let mut rec = p.read_record().map_err(io(&op))?;
        let names = self.root.join("names");
        match std::fs::OpenOptions::new().write(true).create_new(true).open(names.join(new_name)) {
            Ok(mut f) => std::io::Write::write_all(&mut f, id.as_bytes()).map_err(io(&op))?,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return Err(fail(&op, ErrorKind::Conflict, format!("the name {new_name} is already in use")))
            }
            Err(e) => return Err(io(&op)(e)),
        }
        let old = std::mem::replace(&mut rec.name, new_name.to_string());
        crate::state_file::write_atomic(&p.record(), &serde_json::to_vec_pretty(&rec).expect("records serialize"))
            .map_err(io(&op))?;
        let _ = std::fs::remove_file(names.join(old));
        hosts::refresh(&self.root);
        Ok(())
    }
}

impl NativeEngine {
    /// The running container's address on the first of its networks (by name), where hawser
    /// sends its host ports.
    fn address(&self, id: &str) -> Option<std::net::Ipv4Addr> {
        net::attached(&self.paths(id).dir)?.addresses.values().find_map(|a| a.parse().ok())
    }

    fn make_container(
        &self,
        id: &str,
        req: &CreateContainer<'_>,
        image: &store::ImageRecord,
    ) -> std::result::Result<(), NativeError> {
        let p = self.paths(id);
        std::fs::create_dir_all(p.bundle()).map_err(error::io(p.bundle()))?;
        let on_network = req.spec.network_mode.is_none();
        let layers: Vec<PathBuf> = image.layers.iter().rev().map(|l| self.store.layer_dir(l)).collect();
        for m in &req.spec.volumes {
            if let crate::desired::Mount::Volume { source, .. } = m {
                // Docker makes a volume a container names but no manifest declares.
                let data = self.root.join("volumes").join(source).join("_data");
                std::fs::create_dir_all(&data).map_err(error::io(&data))?;
            }
        }
        let input = spec::Input {
            id,
            spec: req.spec,
            image: image.run_config(),
            secret_env: &req.secret_env,
            repo_mounts: &req.repo_mounts,
            volumes_dir: self.root.join("volumes"),
            etc_dir: p.etc(),
            passwd: store::read_image_file(&layers, "etc/passwd"),
            group: store::read_image_file(&layers, "etc/group"),
            netns: on_network.then(|| net::netns_path(id)),
            nofile: nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
                .map_or(1 << 20, |(_, hard)| hard.min(1 << 20)),
        };
        let config = spec::config(&input)?;
        let text = serde_json::to_vec_pretty(&config).expect("runtime specs serialize");
        // It holds the secret values of the environment: for root only.
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(p.bundle().join("config.json"))
            .map_err(error::io(p.bundle().join("config.json")))?;
        std::io::Write::write_all(&mut f, &text).map_err(error::io(p.bundle().join("config.json")))?;
        let rec = ContainerRecord {
            id: id.to_string(),
            name: req.name.to_string(),
            image: req.spec.image.clone(),
            image_id: image.id.clone(),
            labels: req.labels.clone(),
            created_unix: now_unix(),
            spec: req.spec.clone(),
            runtime: self.runtime.bin.clone(),
            runtime_root: self.runtime.root.clone(),
            layers,
            native_root: self.root.clone(),
            aliases: req.aliases.clone(),
            healthcheck: spec::healthcheck(req.spec, image.run_config()),
            image_stop_signal: image.run_config()["StopSignal"].as_str().map(str::to_string),
            hawser_ports: self.ports.is_hawser(),
        };
        self.write_etc(&p, &rec).map_err(error::io(p.etc()))?;
        p.write_status(&Status::default()).map_err(error::io(p.record()))?;
        crate::state_file::write_atomic(&p.record(), &serde_json::to_vec_pretty(&rec).expect("records serialize"))
            .map_err(error::io(p.record()))
    }
}
