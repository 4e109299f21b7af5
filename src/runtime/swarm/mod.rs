//! The swarm backend: the same Docker Engine API, spoken to a swarm manager. A Container is a
//! service of the same name, a Network an attachable overlay network, a file secret an object of
//! the cluster's secret store. The cluster schedules and replaces tasks; hawser declares, then
//! watches the rolling update to its end. This file is the only one that knows the swarm's wire
//! types.

mod deployment;

use super::docker::{deadline, err, to_btree, DockerEngine};
use super::{EngineError, ErrorKind, Result};
use crate::desired::{ContainerSpec, Mount, NetworkSpec, RestartPolicy, ServiceMode};
use crate::labels::Ownership;
use crate::observed::swarm::{
    ObservedNode, ObservedSecret, ObservedService, ObservedTask, SwarmState, UpdateState, UpdateStatus,
};
use crate::observed::ObservedNetwork;
use base64::Engine as _;
use bollard::models as m;
use bollard::query_parameters as q;
use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

const CALL_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Clone)]
pub struct SwarmEngine {
    engine: DockerEngine,
    host: String,
}

/// A secret object a service mounts: where, which object, and as whom.
#[derive(Clone, Debug)]
pub struct SecretMount {
    pub target: String,
    pub id: String,
    pub name: String,
    pub access: Option<crate::desired::FileAccess>,
}

/// How a service is made: the container spec plus what hawser adds.
#[derive(Clone, Debug)]
pub struct ServiceRequest<'a> {
    pub name: &'a str,
    pub spec: &'a ContainerSpec,
    /// The service's labels: the user's and hawser's ownership labels.
    pub labels: BTreeMap<String, String>,
    /// `secretEnv` values, added to the environment; never logged.
    pub secret_env: Vec<(String, String)>,
    pub secrets: Vec<SecretMount>,
    /// How the cluster makes each named volume on a node, by volume name.
    pub volumes: BTreeMap<String, VolumeOptions>,
    /// Whether updates (and rollbacks) start each new task before stopping an old one: the
    /// spec's strategy, unless the placement leaves no room for the extra task (see
    /// [`no_room_to_start_first`]).
    pub start_first: bool,
}

/// Why an update cannot start a new task before stopping an old one, if it cannot: with
/// `maxReplicasPerNode`, the nodes the constraints allow may hold no more than the replicas
/// already (`docker stack deploy` updates stop-first by default and never meets this). A
/// start-first update would wait for a slot that never comes.
pub fn no_room_to_start_first(spec: &ContainerSpec, nodes: &[&ObservedNode]) -> Option<String> {
    let max = spec.placement.as_ref()?.max_replicas_per_node?;
    if spec.mode.unwrap_or_default() != ServiceMode::Replicated {
        return None;
    }
    let constraints = spec.placement.as_ref().map(|p| p.constraints.as_slice()).unwrap_or_default();
    let eligible = nodes
        .iter()
        .filter(|n| n.state == "ready" && n.availability == "active")
        .filter(|n| constraints.iter().all(|c| satisfies(n, c)))
        .count() as u64;
    let replicas = spec.replicas.unwrap_or(1);
    let parallelism = spec.update.as_ref().and_then(|u| u.parallelism).unwrap_or(1).max(1);
    (eligible * max < replicas + parallelism).then(|| {
        format!(
            "stop-first: {replicas} replicas at most {max} per node on {eligible} eligible node{} leave no room to start one first",
            if eligible == 1 { "" } else { "s" }
        )
    })
}

/// Whether `node` meets a placement constraint as the swarm reads it (`node.hostname`,
/// `node.role`, `node.labels.KEY`, with `==` or `!=`). One it cannot judge here (`engine.labels`,
/// `node.platform`) counts as met: the count of nodes is then an upper bound.
fn satisfies(node: &ObservedNode, constraint: &str) -> bool {
    let (key, equal, value) = match (constraint.split_once("=="), constraint.split_once("!=")) {
        (Some((k, v)), _) => (k.trim(), true, v.trim()),
        (None, Some((k, v))) => (k.trim(), false, v.trim()),
        _ => return true,
    };
    let actual = match key {
        "node.hostname" => Some(node.hostname.as_str()),
        "node.role" => Some(node.role.as_str()),
        k => match k.strip_prefix("node.labels.") {
            Some(label) => Some(node.labels.get(label).map(String::as_str).unwrap_or("")),
            None => return true,
        },
    };
    actual.is_some_and(|a| a.eq_ignore_ascii_case(value) == equal)
}

/// A named volume as a node makes it for a task: hawser's labels, and the Volume's driver.
#[derive(Clone, Debug)]
pub struct VolumeOptions {
    pub labels: BTreeMap<String, String>,
    pub driver: String,
    pub driver_opts: BTreeMap<String, String>,
}

impl SwarmEngine {
    /// Connects to `host` and checks that it is a swarm manager: only a manager takes services.
    pub async fn connect(host: &str) -> Result<SwarmEngine> {
        let engine = SwarmEngine::at(host)?;
        engine.check().await?;
        Ok(engine)
    }

    /// A client of the manager at `host`, made without a round trip: every call here is in API
    /// 1.41 (Docker 20.10), which every engine since speaks. `check` has not been asked yet.
    pub fn at(host: &str) -> Result<SwarmEngine> {
        Ok(SwarmEngine::on(DockerEngine::at_version(host, (1, 41))?, host))
    }

    /// Over a connection made already (to `host`); `check` has not been asked yet.
    pub fn on(engine: DockerEngine, host: &str) -> SwarmEngine {
        SwarmEngine { engine, host: host.to_string() }
    }

    /// Whether the engine is a swarm manager; if not, an error that says how to fix it.
    pub async fn check(&self) -> Result<()> {
        let host = &self.host;
        let op = format!("ask {host} about its swarm");
        // Only a manager answers `/swarm`, in about a millisecond; `/info`, which says what the
        // engine is instead, takes several (it counts containers and images), so it is asked
        // only when the answer is no.
        if deadline(&op, CALL_TIMEOUT, async { self.docker().inspect_swarm().await.map_err(|e| err(&op, e)) })
            .await
            .is_ok()
        {
            return Ok(());
        }
        let info = deadline(&op, CALL_TIMEOUT, async { self.docker().info().await.map_err(|e| err(&op, e)) }).await?;
        let swarm = info.swarm.unwrap_or_default();
        let state = swarm.local_node_state.map(|s| s.to_string()).unwrap_or_default();
        let problem = match (state.as_str(), swarm.control_available) {
            ("active", Some(true)) => None,
            ("active", _) => Some(format!(
                "the engine at {host} is a swarm worker, not a manager: point --host (or DOCKER_HOST) at a manager (`docker node ls` on a manager lists them)"
            )),
            ("", _) | ("inactive", _) => Some(format!(
                "the engine at {host} is not part of a swarm: run `docker swarm init` there (or join it to one), or deploy with `target = \"docker\"`"
            )),
            (other, _) => Some(format!(
                "the engine at {host} is in swarm state `{other}`{}: it cannot take services now",
                swarm.error.filter(|e| !e.is_empty()).map(|e| format!(" ({e})")).unwrap_or_default()
            )),
        };
        match problem {
            None => Ok(()),
            Some(message) => Err(EngineError { op: "check the swarm target".into(), kind: ErrorKind::Other, message }),
        }
    }

    pub fn host(&self) -> &str {
        &self.host
    }

    fn docker(&self) -> &bollard::Docker {
        self.engine.client()
    }

    /// Reads services (with their tasks and update status), networks, secrets and nodes.
    pub async fn observe(&self) -> Result<SwarmState> {
        let op = "list swarm objects";
        let d = self.docker();
        let services = d.list_services(None::<q::ListServicesOptions>);
        let tasks = d.list_tasks(None::<q::ListTasksOptions>);
        let networks = d.list_networks(None::<q::ListNetworksOptions>);
        let secrets = d.list_secrets(None::<q::ListSecretsOptions>);
        let nodes = d.list_nodes(None::<q::ListNodesOptions>);
        let (services, tasks, networks, secrets, nodes) =
            deadline(op, CALL_TIMEOUT, async { Ok(tokio::join!(services, tasks, networks, secrets, nodes)) }).await?;
        let services = services.map_err(|e| err("list services", e))?;
        let tasks = tasks.map_err(|e| err("list tasks", e))?;
        let networks = networks.map_err(|e| err("list networks", e))?;
        let secrets = secrets.map_err(|e| err("list secrets", e))?;
        let nodes = nodes.map_err(|e| err("list nodes", e))?;
        let mut state = SwarmState { nodes: node_map(nodes), ..Default::default() };
        for s in services {
            state.services.push(service(s, &tasks, &state.nodes));
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
        for s in secrets {
            let spec = s.spec.unwrap_or_default();
            let labels = to_btree(spec.labels);
            state.secrets.push(ObservedSecret {
                id: s.id.unwrap_or_default(),
                name: spec.name.unwrap_or_default(),
                owner: Ownership::from_labels(&labels),
            });
        }
        Ok(state)
    }

    /// The digest `reference`'s tag names now, as the manager's registry configuration (its
    /// insecure registries, mirrors) and the docker CLI's credentials find it: what
    /// `docker service create` pins a service to.
    pub async fn resolve_digest(&self, reference: &str) -> Result<String> {
        let op = format!("resolve {reference}");
        let registry = super::registry::registry_of(reference);
        let credentials = match super::registry::auth_for(&registry) {
            oci_client::secrets::RegistryAuth::Basic(username, password) => Some(bollard::auth::DockerCredentials {
                username: Some(username),
                password: Some(password),
                serveraddress: Some(registry.clone()),
                ..Default::default()
            }),
            _ => None,
        };
        let r = deadline(&op, CALL_TIMEOUT, async {
            self.docker().inspect_registry_image(reference, credentials).await.map_err(|e| err(&op, e))
        })
        .await?;
        r.descriptor.digest.ok_or_else(|| EngineError {
            op,
            kind: ErrorKind::Other,
            message: format!("the registry of {reference} gave no digest"),
        })
    }

    /// The secret objects of the swarm, name to id.
    pub async fn observe_secrets(&self) -> Result<BTreeMap<String, String>> {
        let op = "list secrets";
        let secrets = deadline(op, CALL_TIMEOUT, async {
            self.docker().list_secrets(None::<q::ListSecretsOptions>).await.map_err(|e| err(op, e))
        })
        .await?;
        Ok(secrets
            .into_iter()
            .map(|s| (s.spec.and_then(|sp| sp.name).unwrap_or_default(), s.id.unwrap_or_default()))
            .collect())
    }

    /// One service and its tasks, now; `None` when it is gone.
    pub async fn service(&self, id: &str) -> Result<Option<ObservedService>> {
        let op = format!("inspect service {id}");
        let d = self.docker();
        let mut filters = HashMap::new();
        filters.insert("id".to_string(), vec![id.to_string()]);
        let services = d.list_services(Some(q::ListServicesOptions { filters: Some(filters), ..Default::default() }));
        let mut filters = HashMap::new();
        filters.insert("service".to_string(), vec![id.to_string()]);
        let tasks = d.list_tasks(Some(q::ListTasksOptions { filters: Some(filters) }));
        let nodes = d.list_nodes(None::<q::ListNodesOptions>);
        let (services, tasks, nodes) =
            deadline(&op, CALL_TIMEOUT, async { Ok(tokio::join!(services, tasks, nodes)) }).await?;
        let services = services.map_err(|e| err(&op, e))?;
        let tasks = tasks.map_err(|e| err(&op, e))?;
        let nodes = node_map(nodes.map_err(|e| err(&op, e))?);
        // The id filter matches prefixes too.
        Ok(services.into_iter().find(|s| s.id.as_deref() == Some(id)).map(|s| service(s, &tasks, &nodes)))
    }

    pub async fn create_service(&self, req: &ServiceRequest<'_>) -> Result<String> {
        let op = format!("create service {}", req.name);
        let spec = service_spec(req);
        let r = deadline(&op, CALL_TIMEOUT, async {
            self.docker().create_service(spec, None).await.map_err(|e| err(&op, e))
        })
        .await?;
        Ok(r.id.unwrap_or_default())
    }

    /// Updates service `id`, which must still be at `version`; the cluster rolls its tasks.
    pub async fn update_service(&self, id: &str, version: u64, req: &ServiceRequest<'_>) -> Result<()> {
        let op = format!("update service {}", req.name);
        let spec = service_spec(req);
        let opts = q::UpdateServiceOptions { version: version as i32, ..Default::default() };
        let r = deadline(&op, CALL_TIMEOUT, async {
            self.docker().update_service(id, spec, opts, None).await.map_err(|e| err(&op, e))
        })
        .await?;
        for w in r.warnings.unwrap_or_default() {
            tracing::warn!(service = %req.name, warning = %w, "the swarm warns");
        }
        Ok(())
    }

    /// Asks the cluster to roll service `id` (at `version`) back to its previous spec.
    pub async fn rollback_service(&self, id: &str, version: u64, req: &ServiceRequest<'_>) -> Result<()> {
        let op = format!("roll back service {}", req.name);
        // The cluster ignores the spec sent with a rollback; the API wants one all the same.
        let spec = service_spec(req);
        let opts = q::UpdateServiceOptions {
            version: version as i32,
            rollback: Some("previous".into()),
            ..Default::default()
        };
        deadline(&op, CALL_TIMEOUT, async {
            self.docker().update_service(id, spec, opts, None).await.map_err(|e| err(&op, e))
        })
        .await
        .map(|_| ())
    }

    /// The nodes of the cluster.
    pub async fn nodes(&self) -> Result<Vec<ObservedNode>> {
        let op = "list nodes";
        let nodes = deadline(op, CALL_TIMEOUT, async {
            self.docker().list_nodes(None::<q::ListNodesOptions>).await.map_err(|e| err(op, e))
        })
        .await?;
        Ok(node_map(nodes).into_values().collect())
    }

    pub async fn remove_service(&self, id: &str) -> Result<()> {
        let op = format!("remove service {id}");
        deadline(&op, CALL_TIMEOUT, async { self.docker().delete_service(id).await.map_err(|e| err(&op, e)) }).await
    }

    /// An attachable overlay network (a bridge on one host is an overlay on a swarm).
    pub async fn create_network(
        &self,
        name: &str,
        spec: &NetworkSpec,
        labels: BTreeMap<String, String>,
    ) -> Result<String> {
        let op = format!("create network {name}");
        let driver = if spec.driver == "bridge" { "overlay".to_string() } else { spec.driver.clone() };
        let ipam = super::docker::ipam(spec);
        let req = m::NetworkCreateRequest {
            name: name.to_string(),
            driver: Some(driver),
            internal: Some(spec.internal),
            attachable: Some(true),
            enable_ipv6: Some(spec.enable_ipv6),
            ipam,
            options: Some(spec.driver_opts.clone().into_iter().collect()),
            labels: Some(labels.into_iter().collect()),
            ..Default::default()
        };
        let r = deadline(&op, CALL_TIMEOUT, async { self.docker().create_network(req).await.map_err(|e| err(&op, e)) })
            .await?;
        Ok(r.id)
    }

    /// Fails `InUse` while a task still holds the network (the manager's FailedPrecondition,
    /// answered 400, or a 409).
    pub async fn remove_network(&self, id: &str) -> Result<()> {
        let op = format!("remove network {id}");
        deadline(&op, CALL_TIMEOUT, async {
            self.docker().remove_network(id).await.map_err(|e| {
                let in_use =
                    matches!(e, bollard::errors::Error::DockerResponseServerError { status_code: 400 | 409, .. });
                let mut e = err(&op, e);
                if in_use {
                    e.kind = ErrorKind::InUse;
                }
                e
            })
        })
        .await
    }

    /// A secret object holding `data`; the value never appears in an error or log.
    pub async fn create_secret(&self, name: &str, data: &[u8], labels: BTreeMap<String, String>) -> Result<String> {
        let op = format!("create secret {name}");
        let spec = m::SecretSpec {
            name: Some(name.to_string()),
            labels: Some(labels.into_iter().collect()),
            data: Some(base64::engine::general_purpose::STANDARD.encode(data)),
            ..Default::default()
        };
        let r = deadline(&op, CALL_TIMEOUT, async { self.docker().create_secret(spec).await.map_err(|e| err(&op, e)) })
            .await?;
        Ok(r.id)
    }

    pub async fn remove_secret(&self, id: &str) -> Result<()> {
        let op = format!("remove secret {id}");
        deadline(&op, CALL_TIMEOUT, async { self.docker().delete_secret(id).await.map_err(|e| err(&op, e)) }).await
    }
}

fn node_map(nodes: Vec<m::Node>) -> BTreeMap<String, ObservedNode> {
    nodes
        .into_iter()
        .map(|n| {
            let id = n.id.unwrap_or_default();
            let status = n.status.unwrap_or_default();
            let spec = n.spec.clone().unwrap_or_default();
            let node = ObservedNode {
                role: spec.role.map(|r| r.to_string()).unwrap_or_default(),
                labels: spec.labels.map(|l| l.into_iter().collect()).unwrap_or_default(),
                hostname: n.description.and_then(|d| d.hostname).unwrap_or_else(|| id.clone()),
                state: status.state.map(|s| s.to_string()).unwrap_or_default(),
                availability: n.spec.and_then(|s| s.availability).map(|a| a.to_string()).unwrap_or_default(),
            };
            (id, node)
        })
        .collect()
}

fn service(s: m::Service, tasks: &[m::Task], nodes: &BTreeMap<String, ObservedNode>) -> ObservedService {
    let id = s.id.unwrap_or_default();
    let spec = s.spec.unwrap_or_default();
    let labels = to_btree(spec.labels.clone());
    let template = spec.task_template.clone().unwrap_or_default();
    // A task's spec as the API shows it leaves out some of the service's (defaults), so a task
    // is recognized as current by what identifies a spec: the hash label and the image.
    let identity = |c: Option<&m::TaskSpecContainerSpec>| {
        c.map(|c| {
            let hash = c.labels.as_ref().and_then(|l| l.get(crate::labels::SPEC_HASH)).cloned();
            (hash, c.image.clone())
        })
    };
    let want = identity(template.container_spec.as_ref());
    let replicas = match &spec.mode {
        Some(m::ServiceSpecMode { global: Some(_), .. }) => None,
        Some(m::ServiceSpecMode { replicated: Some(r), .. }) => Some(r.replicas.unwrap_or(1).max(0) as u64),
        _ => Some(1),
    };
    let update = s.update_status.map(|u| UpdateStatus {
        state: UpdateState::parse(&u.state.map(|s| s.to_string()).unwrap_or_default()),
        started_at: u.started_at,
        message: u.message,
    });
    let mut observed_tasks: Vec<ObservedTask> = tasks
        .iter()
        .filter(|t| t.service_id.as_deref() == Some(id.as_str()))
        .map(|t| {
            let st = t.status.clone().unwrap_or_default();
            let node = t.node_id.clone().unwrap_or_default();
            ObservedTask {
                id: t.id.clone().unwrap_or_default(),
                node_down: nodes.get(&node).is_some_and(|n| n.state == "down"),
                node: nodes.get(&node).map(|n| n.hostname.clone()).unwrap_or(node),
                slot: t.slot,
                state: st.state.map(|s| s.to_string()).unwrap_or_default(),
                desired_state: t.desired_state.map(|s| s.to_string()).unwrap_or_default(),
                error: st.err.filter(|e| !e.is_empty()),
                current: want.is_some() && identity(t.spec.as_ref().and_then(|s| s.container_spec.as_ref())) == want,
            }
        })
        .collect();
    observed_tasks.sort_by(|a, b| (a.slot, &a.node, &a.id).cmp(&(b.slot, &b.node, &b.id)));
    ObservedService {
        id,
        name: spec.name.clone().unwrap_or_default(),
        version: s.version.and_then(|v| v.index).unwrap_or(0),
        owner: Ownership::from_labels(&labels),
        labels,
        replicas,
        image: template.container_spec.and_then(|c| c.image).unwrap_or_default(),
        update,
        desired_tasks: observed_tasks.iter().filter(|t| t.desired_state == "running").count() as u64,
        // The manager's own count keeps the tasks of a node that went down as running until it
        // hears from the node again; they are not running anywhere anyone can reach.
        running_tasks: observed_tasks
            .iter()
            .filter(|t| t.desired_state == "running" && t.state == "running" && !t.node_down)
            .count() as u64,
        tasks: observed_tasks,
    }
}

/// The swarm's service spec for a request: see the README's mapping table.
pub fn service_spec(req: &ServiceRequest<'_>) -> m::ServiceSpec {
    let s = req.spec;
    let nanos = |d: crate::desired::Duration| d.as_nanos_i64();
    let mut env: Vec<String> = s.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
    env.extend(req.secret_env.iter().map(|(k, v)| format!("{k}={v}")));
    let mounts: Vec<m::Mount> = s
        .volumes
        .iter()
        .filter_map(|v| match v {
            Mount::Volume { source, target, read_only } => Some(m::Mount {
                typ: Some(m::MountType::VOLUME),
                source: Some(source.clone()),
                target: Some(target.clone()),
                read_only: Some(*read_only),
                volume_options: req.volumes.get(source).map(|v| m::MountVolumeOptions {
                    labels: Some(v.labels.clone().into_iter().collect()),
                    driver_config: (v.driver != "local" || !v.driver_opts.is_empty()).then(|| {
                        m::MountVolumeOptionsDriverConfig {
                            name: Some(v.driver.clone()),
                            options: Some(v.driver_opts.clone().into_iter().collect()),
                        }
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            Mount::Bind { source, target, read_only } => Some(m::Mount {
                typ: Some(m::MountType::BIND),
                source: Some(source.clone()),
                target: Some(target.clone()),
                read_only: Some(*read_only),
                ..Default::default()
            }),
            Mount::Tmpfs { target, size } => Some(m::Mount {
                typ: Some(m::MountType::TMPFS),
                target: Some(target.clone()),
                tmpfs_options: size
                    .map(|sz| m::MountTmpfsOptions { size_bytes: Some(sz.0 as i64), ..Default::default() }),
                ..Default::default()
            }),
            // Secrets are the cluster's objects (below); the others are refused on this target.
            _ => None,
        })
        .collect();
    let secrets: Vec<m::TaskSpecContainerSpecSecrets> = req
        .secrets
        .iter()
        .map(|sm| {
            let a = sm.access.unwrap_or_default();
            m::TaskSpecContainerSpecSecrets {
                file: Some(m::TaskSpecContainerSpecFile {
                    name: Some(sm.target.clone()),
                    uid: Some(a.uid.unwrap_or(0).to_string()),
                    gid: Some(a.gid.unwrap_or(0).to_string()),
                    mode: Some(a.mode.map(|m| m.0).unwrap_or(0o444)),
                }),
                secret_id: Some(sm.id.clone()),
                secret_name: Some(sm.name.clone()),
            }
        })
        .collect();
    let health_check = s.healthcheck.as_ref().map(|h| m::HealthConfig {
        test: Some(h.test.clone()),
        interval: h.interval.map(nanos),
        timeout: h.timeout.map(nanos),
        retries: h.retries.map(i64::from),
        start_period: h.start_period.map(nanos),
        ..Default::default()
    });
    // /etc/hosts lines, as the swarm takes them: `IP NAME`.
    let hosts: Vec<String> =
        s.extra_hosts.iter().filter_map(|h| h.split_once(':').map(|(name, ip)| format!("{ip} {name}"))).collect();
    // The tasks carry the spec's hash, so those of the current spec are told from the others.
    let mut container_labels: HashMap<String, String> = s.labels.clone().into_iter().collect();
    if let Some(h) = req.labels.get(crate::labels::SPEC_HASH) {
        container_labels.insert(crate::labels::SPEC_HASH.to_string(), h.clone());
    }
    let container = m::TaskSpecContainerSpec {
        image: Some(s.image.clone()),
        labels: Some(container_labels),
        // The swarm's Command is the entrypoint, its Args the command.
        command: s.entrypoint.clone(),
        args: s.command.clone(),
        hostname: s.hostname.clone(),
        env: (!env.is_empty()).then_some(env),
        dir: s.working_dir.clone(),
        user: s.user.clone(),
        groups: (!s.group_add.is_empty()).then(|| s.group_add.clone()),
        tty: s.tty,
        open_stdin: s.stdin_open,
        read_only: s.read_only,
        mounts: (!mounts.is_empty()).then_some(mounts),
        stop_signal: s.stop_signal.clone(),
        stop_grace_period: s.stop_timeout.map(nanos),
        health_check,
        hosts: (!hosts.is_empty()).then_some(hosts),
        dns_config: (!s.dns.is_empty()).then(|| m::TaskSpecContainerSpecDnsConfig {
            nameservers: Some(s.dns.iter().map(|ip| ip.to_string()).collect()),
            ..Default::default()
        }),
        secrets: (!secrets.is_empty()).then_some(secrets),
        init: s.init,
        sysctls: (!s.sysctls.is_empty()).then(|| s.sysctls.clone().into_iter().collect()),
        capability_add: (!s.cap_add.is_empty()).then(|| s.cap_add.iter().map(|c| c.to_string()).collect()),
        capability_drop: (!s.cap_drop.is_empty()).then(|| s.cap_drop.iter().map(|c| c.to_string()).collect()),
        ulimits: super::docker::ulimits(s),
        ..Default::default()
    };
    let limits = s.resources.clone().unwrap_or_default();
    let resources = s.resources.as_ref().map(|_| m::TaskSpecResources {
        limits: Some(m::Limit {
            nano_cpus: limits.cpus.map(|c| (c * 1e9) as i64),
            memory_bytes: limits.memory.map(|b| b.0 as i64),
            pids: limits.pids,
        }),
        reservations: limits
            .memory_reservation
            .map(|b| m::ResourceObject { memory_bytes: Some(b.0 as i64), ..Default::default() }),
        ..Default::default()
    });
    let restart_policy = s.restart.map(|r| {
        let (condition, max_attempts) = match r {
            RestartPolicy::No => (m::TaskSpecRestartPolicyConditionEnum::NONE, None),
            RestartPolicy::OnFailure(n) => (m::TaskSpecRestartPolicyConditionEnum::ON_FAILURE, n.map(i64::from)),
            RestartPolicy::Always | RestartPolicy::UnlessStopped => (m::TaskSpecRestartPolicyConditionEnum::ANY, None),
        };
        m::TaskSpecRestartPolicy { condition: Some(condition), max_attempts, ..Default::default() }
    });
    let placement = s.placement.as_ref().map(|p| m::TaskSpecPlacement {
        constraints: (!p.constraints.is_empty()).then(|| p.constraints.clone()),
        preferences: (!p.preferences.is_empty()).then(|| {
            p.preferences
                .iter()
                .map(|d| m::TaskSpecPlacementPreferences {
                    spread: Some(m::TaskSpecPlacementSpread { spread_descriptor: Some(d.clone()) }),
                })
                .collect()
        }),
        max_replicas: p.max_replicas_per_node.map(|n| n as i64),
        ..Default::default()
    });
    let networks: Vec<m::NetworkAttachmentConfig> = s
        .networks
        .iter()
        .map(|(net, att)| m::NetworkAttachmentConfig {
            target: Some(net.clone()),
            aliases: (!att.aliases.is_empty()).then(|| att.aliases.clone()),
            ..Default::default()
        })
        .collect();
    let task = m::TaskSpec {
        container_spec: Some(container),
        resources,
        restart_policy,
        placement,
        networks: (!networks.is_empty()).then_some(networks),
        log_driver: s.logging.as_ref().map(|l| m::TaskSpecLogDriver {
            name: l.driver.clone(),
            options: (!l.options.is_empty()).then(|| l.options.clone().into_iter().collect()),
        }),
        ..Default::default()
    };
    let mode = match s.mode.unwrap_or_default() {
        ServiceMode::Global => m::ServiceSpecMode { global: Some(HashMap::new()), ..Default::default() },
        ServiceMode::Replicated => m::ServiceSpecMode {
            replicated: Some(m::ServiceSpecModeReplicated { replicas: Some(s.replicas.unwrap_or(1) as i64) }),
            ..Default::default()
        },
    };
    let parallelism = s.update.as_ref().and_then(|u| u.parallelism).unwrap_or(1) as i64;
    let monitor = s.min_uptime().as_nanos_i64();
    let start_first = req.start_first;
    let ports: Vec<m::EndpointPortConfig> = s
        .ports
        .iter()
        .map(|p| m::EndpointPortConfig {
            protocol: Some(match p.protocol {
                crate::desired::Protocol::Tcp => m::EndpointPortConfigProtocolEnum::TCP,
                crate::desired::Protocol::Udp => m::EndpointPortConfigProtocolEnum::UDP,
            }),
            target_port: Some(i64::from(p.container_port)),
            published_port: p.host_port.map(i64::from),
            publish_mode: Some(if p.host_mode {
                m::EndpointPortConfigPublishModeEnum::HOST
            } else {
                m::EndpointPortConfigPublishModeEnum::INGRESS
            }),
            ..Default::default()
        })
        .collect();
    m::ServiceSpec {
        name: Some(req.name.to_string()),
        labels: Some(req.labels.clone().into_iter().collect()),
        task_template: Some(task),
        mode: Some(mode),
        update_config: Some(m::ServiceSpecUpdateConfig {
            parallelism: Some(parallelism),
            failure_action: Some(m::ServiceSpecUpdateConfigFailureActionEnum::ROLLBACK),
            monitor: Some(monitor),
            max_failure_ratio: Some(0.0),
            order: Some(if start_first {
                m::ServiceSpecUpdateConfigOrderEnum::START_FIRST
            } else {
                m::ServiceSpecUpdateConfigOrderEnum::STOP_FIRST
            }),
            ..Default::default()
        }),
        rollback_config: Some(m::ServiceSpecRollbackConfig {
            parallelism: Some(parallelism),
            failure_action: Some(m::ServiceSpecRollbackConfigFailureActionEnum::PAUSE),
            monitor: Some(monitor),
            max_failure_ratio: Some(0.0),
            order: Some(if start_first {
                m::ServiceSpecRollbackConfigOrderEnum::START_FIRST
            } else {
                m::ServiceSpecRollbackConfigOrderEnum::STOP_FIRST
            }),
            ..Default::default()
        }),
        endpoint_spec: (!ports.is_empty() || s.endpoint_mode.is_some()).then(|| m::EndpointSpec {
            mode: s.endpoint_mode.map(|e| match e {
                crate::desired::EndpointMode::Vip => m::EndpointSpecModeEnum::VIP,
                crate::desired::EndpointMode::Dnsrr => m::EndpointSpecModeEnum::DNSRR,
            }),
            ports: (!ports.is_empty()).then_some(ports),
        }),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::desired::Placement;

    fn node(host: &str, role: &str, labels: &[(&str, &str)]) -> ObservedNode {
        ObservedNode {
            hostname: host.into(),
            role: role.into(),
            labels: labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            state: "ready".into(),
            availability: "active".into(),
        }
    }

    fn spread(replicas: u64, max: u64, constraints: &[&str]) -> ContainerSpec {
        ContainerSpec {
            replicas: Some(replicas),
            placement: Some(Placement {
                max_replicas_per_node: Some(max),
                constraints: constraints.iter().map(|c| c.to_string()).collect(),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    /// Attack: a start-first update that could not be placed (`maxReplicasPerNode: 2`, 2
    /// nodes, 4 replicas) waited 314 s before failing; `docker stack deploy` goes stop-first and
    /// succeeds. Start-first is not chosen where the placement leaves no room.
    #[test]
    fn start_first_needs_room_on_the_nodes_the_placement_allows() {
        let n = [node("hws1", "manager", &[]), node("hws2", "worker", &[("zone", "b")]), node("hws3", "worker", &[])];
        let all: Vec<&ObservedNode> = n.iter().collect();
        let two: Vec<&ObservedNode> = n[..2].iter().collect();
        let why = no_room_to_start_first(&spread(4, 2, &[]), &two).unwrap();
        assert_eq!(
            why,
            "stop-first: 4 replicas at most 2 per node on 2 eligible nodes leave no room to start one first"
        );
        assert!(no_room_to_start_first(&spread(4, 2, &[]), &all).is_none(), "room for one more on a third node");
        assert!(no_room_to_start_first(&spread(6, 2, &[]), &all).is_some());
        // The constraints narrow the nodes: by role, label and hostname, with == and !=.
        assert!(no_room_to_start_first(&spread(4, 2, &["node.role == worker"]), &all).is_some());
        assert!(no_room_to_start_first(&spread(3, 2, &["node.role != manager"]), &all).is_none());
        assert!(no_room_to_start_first(&spread(2, 2, &["node.labels.zone == b"]), &all).is_some());
        assert!(no_room_to_start_first(&spread(1, 2, &["node.hostname == hws3"]), &all).is_none());
        // A down or drained node takes nothing.
        let mut drained = n.clone();
        drained[2].availability = "drain".into();
        assert!(no_room_to_start_first(&spread(4, 2, &[]), &drained.iter().collect::<Vec<_>>()).is_some());
        // A constraint it cannot judge counts as met; no limit, no question.
        assert!(no_room_to_start_first(&spread(4, 2, &["engine.labels.gpu == yes"]), &all).is_none());
        let free = ContainerSpec { replicas: Some(40), ..Default::default() };
        assert!(no_room_to_start_first(&free, &two).is_none());
    }
}
