//! The Docker Engine API backend, through bollard. This file is the only place that knows the
//! engine's wire types; everything else speaks the desired and observed models.

use super::{ContainerStatus, CreateContainer, Engine, EngineError, EngineRead, ErrorKind, Result};
use crate::desired::{Mount, NetworkSpec, PortBinding, RestartPolicy, VolumeSpec};
use crate::labels::Ownership;
use crate::observed::{
    exit_code_from_status, health_from_status, Health, ObservedContainer, ObservedNetwork, ObservedState,
    ObservedVolume, PortPublisher, RunState,
};
use bollard::models as m;
use bollard::query_parameters as q;
use bollard::Docker;
use futures_util::StreamExt;
use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

/// Deadline of one engine call; pulls have their own, longer one.
const CALL_TIMEOUT: Duration = Duration::from_secs(60);
const PULL_TIMEOUT: Duration = Duration::from_secs(600);

#[derive(Clone)]
pub struct DockerEngine {
    docker: Docker,
    /// hawser publishes host ports itself (`super::ports`) on an engine of this host (a unix
    /// socket) whose kernel it may program.
    ports: PortPublisher,
}

pub(super) fn err(op: impl Into<String>, e: bollard::errors::Error) -> EngineError {
    use bollard::errors::Error as E;
    let (kind, message) = match &e {
        E::DockerResponseServerError { status_code, message } => {
            let kind = match status_code {
                304 => ErrorKind::NotModified,
                404 => ErrorKind::NotFound,
                409 => ErrorKind::Conflict,
                _ => ErrorKind::Other,
            };
            (kind, message.clone())
        }
        E::RequestTimeoutError => (ErrorKind::Unavailable, "the engine did not answer in time".into()),
        E::HyperResponseError { .. } | E::HyperLegacyError { .. } | E::IOError { .. } | E::SocketNotFoundError(_) => {
            (ErrorKind::Unavailable, format!("cannot reach the engine: {e}"))
        }
        _ => (ErrorKind::Other, e.to_string()),
    };
    EngineError { op: op.into(), kind, message }
}

pub(super) async fn deadline<T>(
    op: &str,
    limit: Duration,
    f: impl std::future::Future<Output = Result<T>>,
) -> Result<T> {
    match tokio::time::timeout(limit, f).await {
        Ok(r) => r,
        Err(_) => Err(EngineError {
            op: op.to_string(),
            kind: ErrorKind::Unavailable,
            message: format!("no answer from the engine within {}s", limit.as_secs()),
        }),
    }
}

impl DockerEngine {
    /// Connects to `host` (`unix://PATH`, `tcp://HOST:PORT`) and agrees on an API version, so
    /// older engines (Debian's 20.10 speaks 1.41) work.
    pub async fn connect(host: &str) -> Result<Self> {
        let op = format!("connect to {host}");
        let docker = Self::client_at(host, bollard::API_DEFAULT_VERSION)?;
        let docker =
            deadline(&op, Duration::from_secs(10), async { docker.negotiate_version().await.map_err(|e| err(&op, e)) })
                .await?;
        let ports = if host.starts_with("unix://") {
            match super::ports::check() {
                Ok(()) => PortPublisher::Hawser,
                Err(e) => PortPublisher::Unable { why: e.to_string() },
            }
        } else {
            PortPublisher::Remote {
                why: format!(
                    "the engine is reached over the network ({host}), and hawser programs only this host's kernel"
                ),
            }
        };
        Ok(DockerEngine { docker, ports })
    }

    /// A client of `host` that speaks API `version` without asking the engine first (no round
    /// trip): for callers that need nothing newer than a version every supported engine speaks.
    pub fn at_version(host: &str, version: (usize, usize)) -> Result<Self> {
        let v = bollard::ClientVersion { major_version: version.0, minor_version: version.1 };
        Ok(DockerEngine { docker: Self::client_at(host, &v)?, ports: PortPublisher::Engine })
    }

    fn client_at(host: &str, version: &bollard::ClientVersion) -> Result<Docker> {
        let op = format!("connect to {host}");
        if let Some(path) = host.strip_prefix("unix://") {
            Docker::connect_with_unix(path, CALL_TIMEOUT.as_secs(), version)
        } else if host.starts_with("tcp://") || host.starts_with("http://") {
            Docker::connect_with_http(host, CALL_TIMEOUT.as_secs(), version)
        } else {
            return Err(EngineError {
                op,
                kind: ErrorKind::Other,
                message: "unsupported engine address: use unix://PATH or tcp://HOST:PORT".into(),
            });
        }
        .map_err(|e| err(&op, e))
    }

    /// The engine's client, for the other backends that speak the same API (`swarm`).
    pub(super) fn client(&self) -> &Docker {
        &self.docker
    }
}

pub(super) fn to_btree(m: Option<HashMap<String, String>>) -> BTreeMap<String, String> {
    m.unwrap_or_default().into_iter().collect()
}

/// The engine's state word (`running`, `exited`, ...), as both its list and inspect models print it.
fn run_state(s: Option<impl std::fmt::Display>) -> RunState {
    match s.map(|s| s.to_string()).as_deref() {
        Some("created") => RunState::Created,
        Some("running") => RunState::Running,
        Some("paused") => RunState::Paused,
        Some("restarting") => RunState::Restarting,
        Some("exited") => RunState::Exited,
        Some("dead") => RunState::Dead,
        _ => RunState::Other,
    }
}

impl EngineRead for DockerEngine {
    async fn observe(&self) -> Result<ObservedState> {
        let op = "list engine objects";
        let containers =
            self.docker.list_containers(Some(q::ListContainersOptions { all: true, ..Default::default() }));
        let networks = self.docker.list_networks(None::<q::ListNetworksOptions>);
        let volumes = self.docker.list_volumes(None::<q::ListVolumesOptions>);
        let mut filters = HashMap::new();
        filters.insert("dangling".to_string(), vec!["false".to_string()]);
        let images =
            self.docker.list_images(Some(q::ListImagesOptions { filters: Some(filters), ..Default::default() }));
        let (containers, networks, volumes, images) =
            deadline(op, CALL_TIMEOUT, async { Ok(tokio::join!(containers, networks, volumes, images)) }).await?;
        let containers = containers.map_err(|e| err("list containers", e))?;
        let networks = networks.map_err(|e| err("list networks", e))?;
        let volumes = volumes.map_err(|e| err("list volumes", e))?;
        let images = images.map_err(|e| err("list images", e))?;

        let mut state = ObservedState { ports: self.ports.clone(), ..Default::default() };
        if self.ports.is_hawser() {
            state.published = tokio::task::spawn_blocking(super::ports::read)
                .await
                .expect("reading the rules does not panic")
                .map_err(|e| EngineError {
                    op: "read hawser's port rules".into(),
                    kind: ErrorKind::Other,
                    message: e.to_string(),
                })?;
        }
        for c in containers {
            let labels = to_btree(c.labels);
            let name =
                c.names.unwrap_or_default().first().map(|n| n.trim_start_matches('/').to_string()).unwrap_or_default();
            let status = c.status.unwrap_or_default();
            state.containers.push(ObservedContainer {
                id: c.id.unwrap_or_default(),
                name,
                image_id: c.image_id.unwrap_or_default(),
                state: run_state(c.state),
                exit_code: exit_code_from_status(&status),
                health: health_from_status(&status),
                address: c.network_settings.as_ref().and_then(|n| n.networks.as_ref()).and_then(first_address),
                networks: c
                    .network_settings
                    .and_then(|n| n.networks)
                    .map(|n| {
                        let mut v: Vec<String> = n.into_keys().collect();
                        v.sort();
                        v
                    })
                    .unwrap_or_default(),
                owner: Ownership::from_labels(&labels),
                labels,
            });
        }
        for n in networks {
            let labels = to_btree(n.labels);
            state.networks.push(ObservedNetwork {
                id: n.id.unwrap_or_default(),
                name: n.name.unwrap_or_default(),
                owner: Ownership::from_labels(&labels),
                labels,
            });
        }
        for v in volumes.volumes.unwrap_or_default() {
            let labels: BTreeMap<String, String> = v.labels.into_iter().collect();
            state.volumes.push(ObservedVolume { name: v.name, owner: Ownership::from_labels(&labels), labels });
        }
        for i in images {
            for name in i.repo_tags.into_iter().chain(i.repo_digests) {
                state.images.insert(name, i.id.clone());
            }
        }
        Ok(state)
    }

    async fn container_status(&self, id: &str) -> Result<ContainerStatus> {
        let op = format!("inspect container {}", short(id));
        let c = deadline(&op, CALL_TIMEOUT, async {
            self.docker.inspect_container(id, None::<q::InspectContainerOptions>).await.map_err(|e| err(&op, e))
        })
        .await?;
        let st = c.state.unwrap_or_default();
        let state = run_state(st.status);
        let (health, health_output) = match st.health {
            None => (None, None),
            Some(h) => {
                use m::HealthStatusEnum as H;
                let health = match h.status {
                    Some(H::STARTING) => Some(Health::Starting),
                    Some(H::HEALTHY) => Some(Health::Healthy),
                    Some(H::UNHEALTHY) => Some(Health::Unhealthy),
                    _ => None,
                };
                let out = h.log.and_then(|l| l.last().and_then(|r| r.output.clone())).map(|s| s.trim().to_string());
                (health, out)
            }
        };
        Ok(ContainerStatus {
            state,
            health,
            exit_code: st.exit_code,
            restart_count: c.restart_count.unwrap_or(0),
            health_output,
            started_at: st.started_at.as_deref().and_then(parse_rfc3339),
        })
    }

    fn events<'a>(&'a self, id: &str, since: std::time::SystemTime) -> crate::runtime::Events<'a> {
        use crate::runtime::ContainerEvent as E;
        let since = since.duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        let opts = q::EventsOptions {
            since: Some(since.to_string()),
            until: None,
            filters: Some(HashMap::from([
                ("type".to_string(), vec!["container".to_string()]),
                ("container".to_string(), vec![id.to_string()]),
            ])),
        };
        let op = format!("follow the events of {}", short(id));
        Box::pin(self.docker.events(Some(opts)).map(move |e| {
            let e = e.map_err(|e| err(&op, e))?;
            Ok(match e.action.as_deref().unwrap_or("") {
                "start" => E::Started,
                "die" => E::Died,
                "health_status: healthy" => E::Healthy,
                "health_status: unhealthy" => E::Unhealthy,
                _ => E::Other,
            })
        }))
    }

    async fn logs_tail(&self, id: &str, lines: usize) -> Result<String> {
        let op = format!("read logs of {}", short(id));
        let opts = q::LogsOptions { stdout: true, stderr: true, tail: lines.to_string(), ..Default::default() };
        deadline(&op, CALL_TIMEOUT, async {
            let mut out = String::new();
            let mut stream = self.docker.logs(id, Some(opts));
            while let Some(chunk) = stream.next().await {
                out.push_str(&chunk.map_err(|e| err(&op, e))?.to_string());
            }
            Ok(out)
        })
        .await
    }
}

/// The build context as the tar stream the build API reads.
fn context_tar(ctx: &crate::desired::BuildContext) -> std::io::Result<Vec<u8>> {
    let mut b = tar::Builder::new(Vec::new());
    for f in &ctx.files {
        let mut h = tar::Header::new_gnu();
        if f.mode & 0o170000 == 0o120000 {
            h.set_entry_type(tar::EntryType::Symlink);
            h.set_size(0);
            h.set_mode(0o777);
            b.append_link(&mut h, &f.path, String::from_utf8_lossy(&f.data).as_ref())?;
        } else {
            h.set_size(f.data.len() as u64);
            h.set_mode(if f.mode & 0o111 != 0 { 0o755 } else { 0o644 });
            h.set_cksum();
            b.append_data(&mut h, &f.path, f.data.as_slice())?;
        }
    }
    b.into_inner()
}

/// A container event of a managed object, as the service needs it.
#[derive(Clone, Debug)]
pub struct EngineEvent {
    pub project: String,
    pub name: String,
    pub action: String,
    /// A swarm service's event (`name` is the service's), not a container's.
    pub service: bool,
}

impl DockerEngine {
    /// Prints a container's output as it comes (`hawser logs`), stdout to stdout and stderr to
    /// stderr.
    pub async fn print_logs(&self, name: &str, tail: Option<usize>, follow: bool) -> Result<()> {
        use std::io::Write;
        let op = format!("read logs of {name}");
        let opts = q::LogsOptions {
            stdout: true,
            stderr: true,
            follow,
            tail: tail.map_or_else(|| "all".to_string(), |n| n.to_string()),
            ..Default::default()
        };
        let mut stream = self.docker.logs(name, Some(opts));
        while let Some(chunk) = stream.next().await {
            match chunk.map_err(|e| err(&op, e))? {
                bollard::container::LogOutput::StdErr { message } => {
                    let _ = std::io::stderr().write_all(&message);
                }
                other => {
                    let mut out = std::io::stdout();
                    let _ = out.write_all(&other.into_bytes());
                    let _ = out.flush();
                }
            }
        }
        Ok(())
    }

    /// A swarm's service events (a service updated or removed, by hand or by hawser): their
    /// attributes name the service only, not its labels.
    pub fn service_events(&self) -> impl futures_util::Stream<Item = Result<EngineEvent>> + '_ {
        let mut filters = HashMap::new();
        filters.insert("type".to_string(), vec!["service".to_string()]);
        filters.insert("event".to_string(), vec!["update".to_string(), "remove".to_string()]);
        let opts = q::EventsOptions { filters: Some(filters), ..Default::default() };
        self.docker.events(Some(opts)).map(|r| {
            let m = r.map_err(|e| err("follow service events", e))?;
            let attrs = m.actor.unwrap_or_default().attributes.unwrap_or_default();
            Ok(EngineEvent {
                project: String::new(),
                name: attrs.get("name").cloned().unwrap_or_default(),
                action: m.action.unwrap_or_default(),
                service: true,
            })
        })
    }

    /// die, destroy, oom and health_status events of containers that carry a project label.
    pub fn container_events(&self) -> impl futures_util::Stream<Item = Result<EngineEvent>> + '_ {
        let mut filters = HashMap::new();
        filters.insert("type".to_string(), vec!["container".to_string()]);
        filters.insert("label".to_string(), vec![crate::labels::PROJECT.to_string()]);
        filters.insert(
            "event".to_string(),
            ["die", "destroy", "oom", "health_status", "stop", "kill"].iter().map(|s| s.to_string()).collect(),
        );
        let opts = q::EventsOptions { filters: Some(filters), ..Default::default() };
        self.docker.events(Some(opts)).map(|r| {
            let m = r.map_err(|e| err("follow engine events", e))?;
            let actor = m.actor.unwrap_or_default();
            let attrs = actor.attributes.unwrap_or_default();
            Ok(EngineEvent {
                project: attrs.get(crate::labels::PROJECT).cloned().unwrap_or_default(),
                name: attrs.get("name").cloned().unwrap_or_default(),
                action: m.action.unwrap_or_default(),
                service: false,
            })
        })
    }
}

/// A container's ulimits as the engine takes them (for a container and a swarm task alike).
pub(super) fn ulimits(s: &crate::desired::ContainerSpec) -> Option<Vec<m::ResourcesUlimits>> {
    (!s.ulimits.is_empty()).then(|| {
        s.ulimits
            .iter()
            .map(|(name, l)| m::ResourcesUlimits { name: Some(name.clone()), soft: Some(l.soft), hard: Some(l.hard) })
            .collect()
    })
}

/// A network's address plan as the engine takes it.
pub(super) fn ipam(spec: &NetworkSpec) -> Option<m::Ipam> {
    spec.ipam.as_ref().map(|i| m::Ipam {
        config: Some(vec![m::IpamConfig {
            subnet: i.subnet.clone(),
            gateway: i.gateway.clone(),
            ip_range: i.ip_range.clone(),
            ..Default::default()
        }]),
        ..Default::default()
    })
}

pub fn short(id: &str) -> &str {
    &id[..id.len().min(12)]
}

fn restart_policy(r: RestartPolicy) -> m::RestartPolicy {
    use m::RestartPolicyNameEnum as N;
    let (name, max) = match r {
        RestartPolicy::No => (N::NO, None),
        RestartPolicy::Always => (N::ALWAYS, None),
        RestartPolicy::UnlessStopped => (N::UNLESS_STOPPED, None),
        RestartPolicy::OnFailure(n) => (N::ON_FAILURE, n.map(i64::from)),
    };
    m::RestartPolicy { name: Some(name), maximum_retry_count: max }
}

/// An RFC 3339 time as the engine writes it (`2026-11-24T12:00:00.123456789Z`); `None` for the
/// zero time of a container that never started.
fn parse_rfc3339(s: &str) -> Option<std::time::SystemTime> {
    let (date, time) = s.split_once('T')?;
    let mut d = date.split('-').map(|p| p.parse::<i64>().ok());
    let (y, mo, da) = (d.next()??, d.next()??, d.next()??);
    let time = time.strip_suffix('Z')?;
    let (hms, frac) = time.split_once('.').unwrap_or((time, "0"));
    let mut t = hms.split(':').map(|p| p.parse::<i64>().ok());
    let (h, mi, se) = (t.next()??, t.next()??, t.next()??);
    if y < 1971 {
        return None;
    }
    // Days from the civil date (Howard Hinnant's algorithm).
    let y2 = if mo <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let doy = (153 * (if mo > 2 { mo - 3 } else { mo + 9 }) + 2) / 5 + da - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146097 + doe - 719468;
    let secs = days * 86400 + h * 3600 + mi * 60 + se;
    let nanos: u32 = format!("{:0<9}", &frac[..frac.len().min(9)]).parse().ok()?;
    Some(std::time::UNIX_EPOCH + Duration::new(u64::try_from(secs).ok()?, nanos))
}

/// The container's IPv4 address on the first of its networks (by name) that gives it one.
fn first_address(networks: &HashMap<String, m::EndpointSettings>) -> Option<std::net::Ipv4Addr> {
    let mut names: Vec<&String> = networks.keys().collect();
    names.sort();
    names.into_iter().find_map(|n| networks[n].ip_address.as_deref().and_then(|a| a.parse().ok()))
}

/// `own_ports`: the host ports hawser publishes itself are left out (only exposed).
fn create_body(
    req: &CreateContainer<'_>,
    own_ports: bool,
) -> (m::ContainerCreateBody, Vec<(String, m::EndpointSettings)>) {
    let s = req.spec;
    let mut exposed = Vec::new();
    let mut port_map: HashMap<String, Option<Vec<m::PortBinding>>> = HashMap::new();
    let ours = super::ports::wanted("", &s.ports, std::net::Ipv4Addr::UNSPECIFIED);
    for p in &s.ports {
        let key = format!("{}/{}", p.container_port, p.protocol);
        if !exposed.contains(&key) {
            exposed.push(key.clone());
        }
        let hawsers = ours.iter().any(|o| {
            Some(o.host_port) == p.host_port && o.protocol == p.protocol && o.container_port == p.container_port
        });
        if own_ports && hawsers {
            continue;
        }
        port_map.entry(key).or_insert_with(|| Some(Vec::new())).get_or_insert_with(Vec::new).push(m::PortBinding {
            host_ip: p.host_ip.map(|ip| ip.to_string()),
            host_port: p.host_port.map(|h| h.to_string()),
        });
    }
    for p in &s.expose {
        let key = p.to_string();
        if !exposed.contains(&key) {
            exposed.push(key);
        }
    }
    let mounts: Vec<m::Mount> = s
        .volumes
        .iter()
        .map(|v| match v {
            Mount::Volume { source, target, read_only } => m::Mount {
                typ: Some(m::MountType::VOLUME),
                source: Some(source.clone()),
                target: Some(target.clone()),
                read_only: Some(*read_only),
                ..Default::default()
            },
            Mount::Bind { source, target, read_only } => m::Mount {
                typ: Some(m::MountType::BIND),
                source: Some(source.clone()),
                target: Some(target.clone()),
                read_only: Some(*read_only),
                ..Default::default()
            },
            Mount::Secret { file, target, .. } => m::Mount {
                typ: Some(m::MountType::BIND),
                source: Some(file.clone()),
                target: Some(target.clone()),
                read_only: Some(true),
                ..Default::default()
            },
            // A secret of the environment is written to a file like a repository snapshot.
            Mount::EnvSecret { target, .. } => m::Mount {
                typ: Some(m::MountType::BIND),
                source: req.repo_mounts.get(target).map(|p| p.display().to_string()),
                target: Some(target.clone()),
                read_only: Some(true),
                ..Default::default()
            },
            Mount::Repo { target, read_only, .. } => m::Mount {
                typ: Some(m::MountType::BIND),
                source: req.repo_mounts.get(target).map(|p| p.display().to_string()),
                target: Some(target.clone()),
                read_only: Some(*read_only),
                ..Default::default()
            },
            Mount::Tmpfs { target, size } => m::Mount {
                typ: Some(m::MountType::TMPFS),
                target: Some(target.clone()),
                tmpfs_options: size
                    .map(|sz| m::MountTmpfsOptions { size_bytes: Some(sz.0 as i64), ..Default::default() }),
                ..Default::default()
            },
        })
        .collect();
    let healthcheck = s.healthcheck.as_ref().map(|h| m::HealthConfig {
        test: Some(h.test.clone()),
        interval: h.interval.map(|d| d.as_nanos_i64()),
        timeout: h.timeout.map(|d| d.as_nanos_i64()),
        retries: h.retries.map(i64::from),
        start_period: h.start_period.map(|d| d.as_nanos_i64()),
        ..Default::default()
    });
    let limits = s.resources.clone().unwrap_or_default();
    let network_mode = s.network_mode.clone().or_else(|| s.networks.keys().next().cloned());
    let mut endpoints = Vec::new();
    for (net, att) in &s.networks {
        let mut aliases = att.aliases.clone();
        for a in &req.aliases {
            if !aliases.contains(a) {
                aliases.push(a.clone());
            }
        }
        let ipam_config = (att.ipv4_address.is_some() || att.ipv6_address.is_some()).then(|| m::EndpointIpamConfig {
            ipv4_address: att.ipv4_address.map(|a| a.to_string()),
            ipv6_address: att.ipv6_address.map(|a| a.to_string()),
            ..Default::default()
        });
        let links = (!s.links.is_empty()).then(|| s.links.clone());
        endpoints.push((
            net.clone(),
            m::EndpointSettings { aliases: Some(aliases), ipam_config, links, ..Default::default() },
        ));
    }
    let host_config = m::HostConfig {
        port_bindings: (!port_map.is_empty()).then_some(port_map),
        mounts: (!mounts.is_empty()).then_some(mounts),
        restart_policy: s.restart.map(restart_policy),
        network_mode,
        memory: limits.memory.map(|b| b.0 as i64),
        nano_cpus: limits.cpus.map(|c| (c * 1e9) as i64),
        pids_limit: limits.pids,
        readonly_rootfs: s.read_only,
        init: s.init,
        privileged: s.privileged,
        cap_add: (!s.cap_add.is_empty()).then(|| s.cap_add.iter().map(|c| c.to_string()).collect()),
        cap_drop: (!s.cap_drop.is_empty()).then(|| s.cap_drop.iter().map(|c| c.to_string()).collect()),
        extra_hosts: (!s.extra_hosts.is_empty()).then(|| s.extra_hosts.clone()),
        volumes_from: (!s.volumes_from.is_empty()).then(|| s.volumes_from.clone()),
        shm_size: s.shm_size.map(|b| b.0 as i64),
        ulimits: ulimits(s),
        dns: (!s.dns.is_empty()).then(|| s.dns.iter().map(|ip| ip.to_string()).collect()),
        memory_reservation: limits.memory_reservation.map(|b| b.0 as i64),
        runtime: s.runtime.clone(),
        sysctls: (!s.sysctls.is_empty()).then(|| s.sysctls.clone().into_iter().collect()),
        devices: (!s.devices.is_empty()).then(|| {
            s.devices
                .iter()
                .map(|d| m::DeviceMapping {
                    path_on_host: Some(d.host.clone()),
                    path_in_container: Some(d.container.clone()),
                    cgroup_permissions: Some(d.permissions.clone()),
                })
                .collect()
        }),
        security_opt: (!s.security_opt.is_empty()).then(|| s.security_opt.clone()),
        pid_mode: s.pid.clone(),
        ipc_mode: s.ipc.clone(),
        group_add: (!s.group_add.is_empty()).then(|| s.group_add.clone()),
        oom_score_adj: s.oom_score_adj,
        log_config: s.logging.as_ref().map(|l| m::HostConfigLogConfig {
            typ: l.driver.clone(),
            config: (!l.options.is_empty()).then(|| l.options.clone().into_iter().collect()),
        }),
        ..Default::default()
    };
    // Older engines (API < 1.44) accept one network at create; the others are connected after.
    let first = endpoints.first().cloned();
    let body = m::ContainerCreateBody {
        image: Some(s.image.clone()),
        cmd: s.command.clone(),
        entrypoint: s.entrypoint.clone(),
        env: (!s.env.is_empty() || !req.secret_env.is_empty()).then(|| {
            s.env.iter().chain(req.secret_env.iter().map(|(k, v)| (k, v))).map(|(k, v)| format!("{k}={v}")).collect()
        }),
        exposed_ports: (!exposed.is_empty()).then_some(exposed),
        labels: Some(req.labels.clone().into_iter().collect()),
        healthcheck,
        user: s.user.clone(),
        working_dir: s.working_dir.clone(),
        hostname: s.hostname.clone(),
        domainname: s.domainname.clone(),
        stop_signal: s.stop_signal.clone(),
        stop_timeout: s.stop_timeout.map(|d| d.as_std().as_secs() as i64),
        tty: s.tty,
        open_stdin: s.stdin_open,
        host_config: Some(host_config),
        networking_config: first.map(|(n, e)| m::NetworkingConfig { endpoints_config: Some(HashMap::from([(n, e)])) }),
        ..Default::default()
    };
    (body, endpoints.into_iter().skip(1).collect())
}

impl Engine for DockerEngine {
    async fn create_network(&self, name: &str, spec: &NetworkSpec, labels: BTreeMap<String, String>) -> Result<String> {
        let op = format!("create network {name}");
        let ipam = ipam(spec);
        let req = m::NetworkCreateRequest {
            name: name.to_string(),
            driver: Some(spec.driver.clone()),
            internal: Some(spec.internal),
            attachable: Some(spec.attachable),
            enable_ipv6: Some(spec.enable_ipv6),
            ipam,
            options: Some(spec.driver_opts.clone().into_iter().collect()),
            labels: Some(labels.into_iter().collect()),
            ..Default::default()
        };
        let r = deadline(&op, CALL_TIMEOUT, async { self.docker.create_network(req).await.map_err(|e| err(&op, e)) })
            .await?;
        Ok(r.id)
    }

    async fn remove_network(&self, id: &str) -> Result<()> {
        let op = format!("remove network {}", short(id));
        deadline(&op, CALL_TIMEOUT, async { self.docker.remove_network(id).await.map_err(|e| err(&op, e)) }).await
    }

    async fn create_volume(&self, name: &str, spec: &VolumeSpec, labels: BTreeMap<String, String>) -> Result<()> {
        let op = format!("create volume {name}");
        let req = m::VolumeCreateRequest {
            name: Some(name.to_string()),
            driver: Some(spec.driver.clone()),
            driver_opts: Some(spec.driver_opts.clone().into_iter().collect()),
            labels: Some(labels.into_iter().collect()),
            ..Default::default()
        };
        deadline(&op, CALL_TIMEOUT, async { self.docker.create_volume(req).await.map(|_| ()).map_err(|e| err(&op, e)) })
            .await
    }

    async fn remove_volume(&self, name: &str) -> Result<()> {
        let op = format!("remove volume {name}");
        deadline(&op, CALL_TIMEOUT, async {
            self.docker.remove_volume(name, None::<q::RemoveVolumeOptions>).await.map_err(|e| err(&op, e))
        })
        .await
    }

    async fn pull_image(&self, reference: &str, platform: Option<&str>) -> Result<()> {
        let op = format!("pull {reference}");
        let opts = q::CreateImageOptions {
            from_image: Some(reference.to_string()),
            platform: platform.unwrap_or_default().to_string(),
            ..Default::default()
        };
        deadline(&op, PULL_TIMEOUT, async {
            let mut stream = self.docker.create_image(Some(opts), None, None);
            let mut seen = std::collections::BTreeSet::new();
            while let Some(item) = stream.next().await {
                let info = item.map_err(|e| err(&op, e))?;
                // One line per layer and state, not the byte counts in between.
                if let Some(status) =
                    info.status.as_deref().filter(|s| !s.starts_with("Downloading") && !s.starts_with("Extracting"))
                {
                    let line = match info.id.as_deref() {
                        Some(id) => format!("{id}: {status}"),
                        None => status.to_string(),
                    };
                    if seen.insert(line.clone()) {
                        tracing::info!(target: "hawser::progress", image = %reference, "{line}");
                    }
                }
                if let Some(e) = info.error_detail.and_then(|d| d.message) {
                    return Err(EngineError { op: op.clone(), kind: ErrorKind::Other, message: e });
                }
            }
            Ok(())
        })
        .await
    }

    async fn remove_image(&self, reference: &str) -> Result<()> {
        let op = format!("remove image {reference}");
        deadline(&op, CALL_TIMEOUT, async {
            self.docker
                .remove_image(reference, None::<q::RemoveImageOptions>, None)
                .await
                .map(|_| ())
                .map_err(|e| err(&op, e))
        })
        .await
    }

    async fn push_image(&self, reference: &str) -> Result<()> {
        let op = format!("push {reference}");
        let (repo, tag) = match reference.rsplit_once(':').filter(|(_, t)| !t.contains('/')) {
            Some((r, t)) => (r.to_string(), Some(t.to_string())),
            None => (reference.to_string(), None),
        };
        let credentials = match super::registry::auth_for(&super::registry::registry_of(reference)) {
            oci_client::secrets::RegistryAuth::Basic(u, p) => {
                Some(bollard::auth::DockerCredentials { username: Some(u), password: Some(p), ..Default::default() })
            }
            _ => None,
        };
        deadline(&op, PULL_TIMEOUT, async {
            let opts = q::PushImageOptions { tag, ..Default::default() };
            let mut stream = self.docker.push_image(&repo, Some(opts), credentials);
            while let Some(item) = stream.next().await {
                let info = item.map_err(|e| err(&op, e))?;
                if let Some(e) = info.error_detail.and_then(|d| d.message) {
                    return Err(EngineError { op: op.clone(), kind: ErrorKind::Other, message: e });
                }
            }
            Ok(())
        })
        .await
    }

    async fn build_image(&self, ctx: &crate::desired::BuildContext) -> Result<()> {
        let op = format!("build {}", ctx.tag);
        let body = context_tar(ctx).map_err(|e| EngineError {
            op: op.clone(),
            kind: ErrorKind::Other,
            message: e.to_string(),
        })?;
        let opts = q::BuildImageOptions {
            dockerfile: ctx.dockerfile.clone(),
            t: Some(ctx.tag.clone()),
            buildargs: (!ctx.args.is_empty()).then(|| ctx.args.clone().into_iter().collect()),
            target: ctx.target.clone().unwrap_or_default(),
            rm: true,
            forcerm: true,
            labels: (!ctx.labels.is_empty()).then(|| ctx.labels.clone().into_iter().collect()),
            extrahosts: (!ctx.extra_hosts.is_empty()).then(|| ctx.extra_hosts.join(",")),
            shmsize: ctx.shm_size.map(|s| s.0 as i32),
            networkmode: ctx.network.clone(),
            platform: ctx.platform.clone().unwrap_or_default(),
            cachefrom: (!ctx.cache_from.is_empty()).then(|| ctx.cache_from.clone()),
            nocache: ctx.no_cache,
            pull: ctx.pull.then(|| "1".to_string()),
            ..Default::default()
        };
        deadline(&op, PULL_TIMEOUT, async {
            let mut stream = self.docker.build_image(opts, None, Some(bollard::body_full(bytes::Bytes::from(body))));
            let mut tail: Vec<String> = Vec::new();
            while let Some(item) = stream.next().await {
                let info = item.map_err(|e| err(&op, e))?;
                if let Some(line) = info.stream.as_deref().map(str::trim_end).filter(|l| !l.is_empty()) {
                    tracing::info!(target: "hawser::progress", image = %ctx.tag, "{line}");
                    tail.push(line.to_string());
                    if tail.len() > 5 {
                        tail.remove(0);
                    }
                }
                if let Some(e) = info.error_detail.and_then(|d| d.message) {
                    return Err(EngineError {
                        op: op.clone(),
                        kind: ErrorKind::Other,
                        message: format!("{e}; last build output:\n    {}", tail.join("\n    ")),
                    });
                }
            }
            Ok(())
        })
        .await
    }

    async fn create_container(&self, req: &CreateContainer<'_>) -> Result<String> {
        let op = format!("create container {}", req.name);
        let (body, more_networks) = create_body(req, self.ports.is_hawser());
        let opts = q::CreateContainerOptions {
            name: Some(req.name.to_string()),
            platform: req.spec.platform.clone().unwrap_or_default(),
        };
        let id = deadline(&op, CALL_TIMEOUT, async {
            self.docker.create_container(Some(opts), body).await.map(|r| r.id).map_err(|e| err(&op, e))
        })
        .await?;
        for (net, endpoint) in more_networks {
            let op = format!("connect {} to network {net}", req.name);
            let connect = m::NetworkConnectRequest { container: id.clone(), endpoint_config: Some(endpoint) };
            let r = deadline(&op, CALL_TIMEOUT, async {
                self.docker.connect_network(&net, connect).await.map_err(|e| err(&op, e))
            })
            .await;
            if let Err(e) = r {
                // Leave nothing half-made behind.
                let _ = self.remove_container(&id).await;
                return Err(e);
            }
        }
        Ok(id)
    }

    async fn start_container(&self, id: &str) -> Result<()> {
        let op = format!("start container {}", short(id));
        deadline(&op, CALL_TIMEOUT, async {
            self.docker.start_container(id, None::<q::StartContainerOptions>).await.map_err(|e| err(&op, e))
        })
        .await
    }

    async fn stop_container(&self, id: &str, timeout: Option<Duration>) -> Result<()> {
        let op = format!("stop container {}", short(id));
        let opts = q::StopContainerOptions { t: timeout.map(|t| t.as_secs() as i32), ..Default::default() };
        let limit = CALL_TIMEOUT + timeout.unwrap_or(Duration::from_secs(10));
        let r =
            deadline(&op, limit, async { self.docker.stop_container(id, Some(opts)).await.map_err(|e| err(&op, e)) })
                .await;
        match r {
            // Already stopped.
            Err(e) if e.kind == ErrorKind::NotModified => Ok(()),
            other => other,
        }
    }

    async fn remove_container(&self, id: &str) -> Result<()> {
        let op = format!("remove container {}", short(id));
        let opts = q::RemoveContainerOptions { force: true, v: false, ..Default::default() };
        let r = deadline(&op, CALL_TIMEOUT, async {
            self.docker.remove_container(id, Some(opts)).await.map_err(|e| err(&op, e))
        })
        .await;
        match r {
            Err(e) if e.kind == ErrorKind::NotFound => Ok(()),
            other => other,
        }
    }

    async fn rename_container(&self, id: &str, new_name: &str) -> Result<()> {
        let op = format!("rename container {} to {new_name}", short(id));
        let opts = q::RenameContainerOptions { name: new_name.to_string() };
        deadline(&op, CALL_TIMEOUT, async { self.docker.rename_container(id, opts).await.map_err(|e| err(&op, e)) })
            .await
    }

    async fn publish(&self, project: &str, name: &str, id: Option<&str>, ports: &[PortBinding]) -> Result<()> {
        if !self.ports.is_hawser() || !ports.iter().any(|p| p.host_port.is_some()) {
            return Ok(());
        }
        let to = match id {
            Some(id) => self.address(id).await?,
            None => None,
        };
        super::ports::publish_to(project, name, to, ports).await
    }

    async fn unpublish(&self, project: &str, name: &str, id: &str) -> Result<Vec<PortBinding>> {
        match self.address(id).await {
            Ok(Some(to)) if self.ports.is_hawser() => super::ports::unpublish_from(project, name, to).await,
            _ => Ok(Vec::new()),
        }
    }

    async fn open_connections(&self, id: &str, ports: &[PortBinding]) -> Result<usize> {
        Ok(self.address(id).await?.map_or(0, |to| super::ports::open_to(to, ports)))
    }

    async fn exec(&self, id: &str, hook: &crate::desired::Hook) -> Result<i64> {
        let op = format!("run `{}` in container {}", hook.command.join(" "), short(id));
        let config = bollard::models::ExecConfig {
            cmd: Some(hook.command.clone()),
            user: hook.user.clone(),
            working_dir: hook.working_dir.clone(),
            env: (!hook.env.is_empty()).then(|| hook.env.iter().map(|(k, v)| format!("{k}={v}")).collect()),
            privileged: hook.privileged.then_some(true),
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            ..Default::default()
        };
        deadline(&op, PULL_TIMEOUT, async {
            let exec = self.docker.create_exec(id, config).await.map_err(|e| err(&op, e))?;
            if let bollard::exec::StartExecResults::Attached { mut output, .. } =
                self.docker.start_exec(&exec.id, None).await.map_err(|e| err(&op, e))?
            {
                // Read to its end, not kept: it may print what the container's environment
                // holds, which hawser's own output never shows. The exit code is what counts.
                while output.next().await.is_some() {}
            }
            let done = self.docker.inspect_exec(&exec.id).await.map_err(|e| err(&op, e))?;
            Ok(done.exit_code.unwrap_or(-1))
        })
        .await
    }
}

impl DockerEngine {
    /// The container's address where hawser sends its host ports (None: it has none, as with
    /// `networkMode: host`).
    async fn address(&self, id: &str) -> Result<Option<std::net::Ipv4Addr>> {
        let op = format!("inspect container {}", short(id));
        let c = deadline(&op, CALL_TIMEOUT, async {
            self.docker.inspect_container(id, None::<q::InspectContainerOptions>).await.map_err(|e| err(&op, e))
        })
        .await?;
        Ok(c.network_settings.and_then(|n| n.networks).as_ref().and_then(first_address))
    }
}
