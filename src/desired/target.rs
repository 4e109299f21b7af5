//! What each target can do with a Container. The same manifests serve one Docker host and a
//! swarm; a field that only one of them can honour is refused, at its position, on the other,
//! rather than silently dropped.

use super::model::{ContainerSpec, Mount};
use super::policy::Finding;
use serde::{Deserialize, Serialize};

/// What a project is deployed to: one Docker host, or a swarm through one of its managers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Target {
    #[default]
    Docker,
    Swarm,
    /// This host, with no engine daemon: hawser runs containers through an OCI runtime.
    Native,
}

impl Target {
    pub fn as_str(self) -> &'static str {
        match self {
            Target::Docker => "docker",
            Target::Swarm => "swarm",
            Target::Native => "native",
        }
    }

    /// Whether it is a cluster: it schedules replicas, places tasks, and publishes ports in
    /// ingress or host mode.
    pub fn is_cluster(self) -> bool {
        self == Target::Swarm
    }

    /// Whether its only network driver is the bridge (the native runtime's CNI bridges).
    pub fn bridges_only(self) -> bool {
        self == Target::Native
    }
}

#[derive(Debug, thiserror::Error)]
#[error("unknown target `{0}`: expected docker, swarm or native")]
pub struct UnknownTarget(String);

impl std::str::FromStr for Target {
    type Err = UnknownTarget;
    fn from_str(s: &str) -> Result<Self, UnknownTarget> {
        match s {
            "docker" => Ok(Target::Docker),
            "swarm" => Ok(Target::Swarm),
            "native" => Ok(Target::Native),
            other => Err(UnknownTarget(other.to_string())),
        }
    }
}

/// The fields of `spec` that `target` cannot honour, each with the reason.
pub fn check_container(spec: &ContainerSpec, target: Target) -> Vec<Finding> {
    let mut out = Vec::new();
    let mut refuse = |at: &str, message: String| out.push(Finding { at: at.to_string(), message });
    match target {
        Target::Docker | Target::Native => {
            let cluster =
                "only means something in a cluster: set `target = \"swarm\"` in hawser.toml to deploy to a swarm";
            let fixed = spec.networks.values().any(|a| a.ipv4_address.is_some() || a.ipv6_address.is_some());
            if spec.replicas.is_some_and(|n| n > 1) && fixed {
                refuse(
                    "replicas",
                    "replicas cannot share a fixed network address: leave out ipv4Address/ipv6Address, or run one"
                        .into(),
                );
            }
            if spec.mode.is_some() {
                refuse("mode", format!("mode {cluster}"));
            }
            if spec.placement.is_some() {
                refuse("placement", format!("placement {cluster}"));
            }
            if spec.endpoint_mode.is_some() {
                refuse("endpointMode", format!("endpointMode {cluster}"));
            }
        }
        Target::Swarm => {}
    }
    if target == Target::Native {
        native(spec, &mut refuse);
    }
    if target == Target::Swarm {
        let no = |what: &str, why: &str| format!("{what} cannot be given to a swarm service: {why}");
        if spec.replicas.is_some() && spec.mode == Some(super::model::ServiceMode::Global) {
            refuse("replicas", "replicas: a global service runs one task on every node; leave replicas out".into());
        }
        if spec.endpoint_mode == Some(super::model::EndpointMode::Dnsrr) && spec.ports.iter().any(|p| !p.host_mode) {
            refuse(
                    "endpointMode",
                    "endpointMode dnsrr has no virtual IP for the routing mesh to publish: publish its ports with `mode: host`"
                        .into(),
                );
        }
        for p in &spec.ports {
            if p.host_ip.is_some() {
                refuse(
                        "ports",
                        no(
                            &format!("port `{p}`"),
                            "a swarm publishes on every address of its nodes, so a host address cannot be honoured; drop the address (and keep the port off the internet with a firewall), or use the docker target",
                        ),
                    );
            }
            if p.host_port.is_none() && p.host_mode {
                refuse("ports", no(&format!("port `{p}`"), "a port published in host mode needs its published port"));
            }
        }
        if let Some(m) = &spec.network_mode {
            refuse("networkMode", no(&format!("networkMode `{m}`"), "its tasks join the service's networks"));
        }
        for (field, set, why) in [
            ("privileged", spec.privileged == Some(true), "the swarm runs no privileged tasks"),
            ("devices", !spec.devices.is_empty(), "the swarm does not pass devices to tasks"),
            ("pid", spec.pid.is_some(), "the swarm has no shared pid namespace"),
            ("ipc", spec.ipc.is_some(), "the swarm has no shared ipc namespace"),
            ("shmSize", spec.shm_size.is_some(), "mount a tmpfs at /dev/shm instead"),
            ("runtime", spec.runtime.is_some(), "the swarm runs every task with the node's default runtime"),
            ("oomScoreAdj", spec.oom_score_adj.is_some(), "not in the swarm's API this engine speaks"),
            ("domainname", spec.domainname.is_some(), "not in the swarm's API"),
            ("links", !spec.links.is_empty(), "services on a network reach each other by name"),
            ("volumesFrom", !spec.volumes_from.is_empty(), "give the service the same volumes"),
            ("postStart", !spec.post_start.is_empty(), "the swarm runs no lifecycle hooks"),
            ("preStop", !spec.pre_stop.is_empty(), "the swarm runs no lifecycle hooks"),
            ("platform", spec.platform.is_some(), "use placement constraints (`node.platform.arch == ...`)"),
            ("securityOpt", !spec.security_opt.is_empty(), "not in the swarm's API this engine speaks"),
        ] {
            if set {
                refuse(field, no(field, why));
            }
        }
        for m in &spec.volumes {
            let why = match m {
                    Mount::Repo { path, .. } => Some(format!(
                        "`{path}` is a file of the repository, which a swarm's nodes do not have; not supported on swarm yet"
                    )),
                    Mount::EnvSecret { variable, .. } => Some(format!(
                        "the secret from variable `{variable}` is not supported on swarm yet; give it as a file secret"
                    )),
                    _ => None,
                };
            if let Some(why) = why {
                refuse(&format!("volumes/{}", m.target()), format!("mount {}: {why}", m.target()));
            }
        }
    }
    out
}

/// What the native target does not run (yet, or at all), each with what to do instead.
fn native(spec: &ContainerSpec, refuse: &mut impl FnMut(&str, String)) {
    let no = |what: &str, why: &str| format!("{what} is not supported on the native target: {why}");
    let networking = "its containers join bridge networks (`networks`), or `host` or `none`";
    for p in spec.ports.iter().filter(|p| p.host_port.is_none()) {
        refuse(
            "ports",
            no(&format!("port `{p}`"), "give the host port to publish it on (no port is chosen for you yet)"),
        );
    }
    match spec.network_mode.as_deref() {
        None | Some("host") | Some("none") => {}
        Some(m) => refuse("networkMode", no(&format!("networkMode `{m}`"), networking)),
    }
    for (field, mode) in [("pid", &spec.pid), ("ipc", &spec.ipc)] {
        if let Some(m) = mode.as_deref().filter(|m| m.starts_with("container:")) {
            refuse(field, no(&format!("{field} `{m}`"), "joining another container's namespace is not built yet"));
        }
    }
    for (field, set, why) in [
        ("links", !spec.links.is_empty(), "containers find each other by name on a network"),
        ("volumesFrom", !spec.volumes_from.is_empty(), "give the container the same volumes"),
        (
            "postStart",
            spec.post_start.iter().chain(&spec.pre_stop).any(|h| h.user.is_some() || h.working_dir.is_some() || !h.env.is_empty() || h.privileged),
            "a lifecycle hook runs its command as the container's own process does: leave out user, workingDir, env and privileged",
        ),
        (
            "init",
            spec.init == Some(true),
            "it has no init binary to inject; use an image with tini or dumb-init as its entrypoint",
        ),
        ("tty", spec.tty == Some(true), "its monitor keeps output in a log, with no terminal"),
        ("stdinOpen", spec.stdin_open == Some(true), "its monitor gives containers no input"),
        ("devices", !spec.devices.is_empty(), "passing host devices is not built yet"),
        ("runtime", spec.runtime.is_some(), "it runs every container with its own OCI runtime (runc or crun)"),
    ] {
        if set {
            refuse(field, no(field, why));
        }
    }
    for o in &spec.security_opt {
        let o2 = o.replace('=', ":");
        if !matches!(
            o2.as_str(),
            "no-new-privileges" | "no-new-privileges:true" | "no-new-privileges:false" | "seccomp:unconfined"
        ) {
            refuse(
                "securityOpt",
                no(&format!("securityOpt `{o}`"), "it takes no-new-privileges and seccomp=unconfined so far"),
            );
        }
    }
    if let Some(l) = &spec.logging {
        if let Some(d) = l.driver.as_deref().filter(|d| *d != "json-file" && *d != "local") {
            refuse(
                "logging",
                no(&format!("logging driver `{d}`"), "its monitor writes a json-file log (options max-size, max-file)"),
            );
        }
        for k in l.options.keys().filter(|k| *k != "max-size" && *k != "max-file") {
            refuse("logging", no(&format!("logging option `{k}`"), "its monitor takes max-size and max-file"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::desired::model::{Placement, UpdatePolicy};

    #[test]
    fn placement_is_refused_on_one_host_and_replicas_are_not() {
        let spec = ContainerSpec {
            image: "x".into(),
            replicas: Some(3),
            placement: Some(Placement { max_replicas_per_node: Some(1), ..Default::default() }),
            update: Some(UpdatePolicy { parallelism: Some(2), ..Default::default() }),
            ..Default::default()
        };
        let at: Vec<String> = check_container(&spec, Target::Docker).into_iter().map(|f| f.at).collect();
        assert_eq!(at, ["placement"], "replicas and a rolling update's parallelism are one host's too");
        assert!(check_container(&spec, Target::Swarm).is_empty());
        let mut fixed = spec.clone();
        fixed.placement = None;
        let address = crate::desired::model::NetworkAttachment {
            ipv4_address: Some("10.1.0.5".parse().unwrap()),
            ..Default::default()
        };
        fixed.networks.insert("net".into(), address);
        let f = check_container(&fixed, Target::Native);
        assert_eq!(f.len(), 1, "{f:?}");
        assert!(f[0].message.contains("cannot share a fixed network address"), "{f:?}");
    }

    #[test]
    fn a_host_address_is_refused_on_a_swarm() {
        let spec = ContainerSpec {
            image: "x".into(),
            ports: vec!["127.0.0.1:8080:80".parse().unwrap(), "9090:90/tcp/host".parse().unwrap()],
            privileged: Some(true),
            ..Default::default()
        };
        let f = check_container(&spec, Target::Swarm);
        assert_eq!(f.len(), 2, "{f:?}");
        assert!(f[0].message.contains("127.0.0.1:8080:80/tcp") && f[0].message.contains("host address"));
        assert_eq!(f[1].at, "privileged");
        assert!(check_container(&spec, Target::Docker).is_empty());
    }
}
