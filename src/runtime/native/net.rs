//! The native target's networks, through the standard CNI plugins (Debian's
//! containernetworking-plugins) rather than netlink and firewall rules written by hand: each
//! container gets a network namespace of its own (`/run/netns/hawser-ID`), and for each of its
//! networks `bridge` with `host-local` addresses gives it an interface on that network's Linux
//! bridge (outbound NAT unless the network is internal), `firewall` lets its traffic through a
//! host whose FORWARD policy drops (as dockerd sets it), and `portmap` publishes its ports on
//! the host's addresses, loopback included. The default network (Docker's `bridge`) is
//! `hawser0`; a Network resource is a bridge of its own with a /24 of 10.90.0.0/16 unless its
//! `ipam.subnet` says otherwise. Names: see `hosts`.
//!
//! What each plugin was given and answered is kept in the container's folder (`net.json`):
//! DEL needs the same.

use super::error::{io, NativeError};
use crate::desired::PortBinding;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The default network's bridge and addresses (`HAWSER_NATIVE_SUBNET` chooses others).
pub const BRIDGE: &str = "hawser0";
pub const SUBNET: &str = "10.89.0.0/16";
/// Where Network resources get their /24 when they name none.
const POOL_PREFIX: &str = "10.90";

/// A Network resource as the native target keeps it (`networks/NAME.json`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct NetworkRecord {
    pub id: String,
    pub name: String,
    pub labels: std::collections::BTreeMap<String, String>,
    pub subnet: String,
    pub bridge: String,
    pub internal: bool,
}

impl NetworkRecord {
    /// The default network, by Docker's name for it.
    pub fn default_bridge() -> NetworkRecord {
        NetworkRecord {
            id: String::new(),
            name: "bridge".into(),
            labels: Default::default(),
            subnet: std::env::var("HAWSER_NATIVE_SUBNET").unwrap_or_else(|_| SUBNET.into()),
            bridge: BRIDGE.into(),
            internal: false,
        }
    }
}

/// An IPv4 network, `ADDR/PREFIX`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ipv4Net {
    addr: u32,
    prefix: u8,
}

/// Text that is not `ADDR/PREFIX`.
#[derive(Debug, thiserror::Error)]
#[error("`{0}` is not an IPv4 subnet (ADDR/PREFIX)")]
pub struct NotASubnet(String);

impl std::str::FromStr for Ipv4Net {
    type Err = NotASubnet;
    fn from_str(s: &str) -> Result<Self, NotASubnet> {
        let bad = || NotASubnet(s.to_string());
        let (addr, prefix) = s.trim().split_once('/').ok_or_else(bad)?;
        let addr: std::net::Ipv4Addr = addr.parse().map_err(|_| bad())?;
        let prefix: u8 = prefix.parse().ok().filter(|p| *p <= 32).ok_or_else(bad)?;
        Ok(Ipv4Net { addr: u32::from(addr), prefix })
    }
}

impl std::fmt::Display for Ipv4Net {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", std::net::Ipv4Addr::from(self.addr), self.prefix)
    }
}

impl Ipv4Net {
    fn mask(prefix: u8) -> u32 {
        if prefix == 0 {
            0
        } else {
            u32::MAX << (32 - prefix)
        }
    }

    /// Whether the two share an address.
    pub fn overlaps(&self, other: &Ipv4Net) -> bool {
        let m = Self::mask(self.prefix.min(other.prefix));
        self.addr & m == other.addr & m
    }
}

/// A subnet some interface of the host already routes, and the interface.
#[derive(Clone, Debug, PartialEq)]
pub struct HostRoute {
    pub net: Ipv4Net,
    pub dev: String,
}

/// The host's IPv4 routes (`/proc/net/route`, the main table): the subnets of its interfaces
/// and whatever it routes elsewhere, but the default route. Another tool's bridge, or hawser's
/// own under another state folder, holds its subnet here and nowhere hawser records.
pub fn host_routes() -> Vec<HostRoute> {
    parse_routes(&std::fs::read_to_string("/proc/net/route").unwrap_or_default())
}

fn parse_routes(text: &str) -> Vec<HostRoute> {
    text.lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            // Little-endian hex, as the kernel prints them.
            let hex = |s: &str| u32::from_str_radix(s, 16).ok().map(u32::from_be);
            let (dev, dest, mask) = (f.first()?, hex(f.get(1)?)?, hex(f.get(7)?)?);
            let prefix = mask.leading_ones() as u8;
            (prefix > 0).then(|| HostRoute { net: Ipv4Net { addr: dest, prefix }, dev: dev.to_string() })
        })
        .collect()
}

/// The first /24 of the pool that no subnet in `taken` overlaps.
pub fn free_subnet(taken: &[Ipv4Net]) -> Option<String> {
    (1..=254)
        .map(|n| format!("{POOL_PREFIX}.{n}.0/24"))
        .find(|s| s.parse::<Ipv4Net>().is_ok_and(|net| !taken.iter().any(|t| t.overlaps(&net))))
}

/// One network a container joins, with what it asks of it.
#[derive(Clone, Debug)]
pub struct Join {
    pub network: NetworkRecord,
    pub ipv4: Option<std::net::Ipv4Addr>,
}

pub fn netns_name(id: &str) -> String {
    format!("hawser-{}", &id[..12.min(id.len())])
}

pub fn netns_path(id: &str) -> PathBuf {
    Path::new("/run/netns").join(netns_name(id))
}

fn cni_dir() -> PathBuf {
    std::env::var_os("HAWSER_CNI_PATH").map_or_else(|| PathBuf::from("/usr/lib/cni"), PathBuf::from)
}

fn base(plugin: &str, network: &str) -> Value {
    json!({"cniVersion": "1.0.0", "name": format!("hawser-{network}"), "type": plugin})
}

fn bridge_conf(n: &NetworkRecord, default_route: bool) -> Value {
    let mut c = base("bridge", &n.name);
    c["bridge"] = json!(n.bridge);
    c["isGateway"] = json!(true);
    c["ipMasq"] = json!(!n.internal);
    c["hairpinMode"] = json!(true);
    c["ipam"] = json!({
        "type": "host-local",
        "ranges": [[{"subnet": n.subnet}]],
        "routes": if default_route { json!([{"dst": "0.0.0.0/0"}]) } else { json!([]) },
        // One allocator for the host, in /run: a restart empties it along with every
        // namespace that held an address.
        "dataDir": "/run/hawser/cni-ipam",
    });
    c
}

fn call(command: &str, id: &str, ifname: &str, args: Option<&str>, config: &Value) -> Result<Value, NativeError> {
    let plugin = config["type"].as_str().unwrap_or_default().to_string();
    let bin = cni_dir().join(&plugin);
    let mut cmd = Command::new(&bin);
    cmd.env("CNI_COMMAND", command)
        .env("CNI_CONTAINERID", id)
        .env("CNI_NETNS", netns_path(id))
        .env("CNI_IFNAME", ifname)
        .env("CNI_PATH", cni_dir())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(a) = args {
        cmd.env("CNI_ARGS", a);
    }
    let mut child = cmd.spawn().map_err(|e| NativeError::Program {
        program: bin.display().to_string(),
        message: format!("{e} (install containernetworking-plugins)"),
    })?;
    child.stdin.take().expect("piped").write_all(config.to_string().as_bytes()).map_err(io(&bin))?;
    let out = child.wait_with_output().map_err(io(&bin))?;
    if !out.status.success() {
        // A plugin's error is JSON on stdout: {"code": N, "msg": "...", "details": "..."}.
        let v: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        let msg = v["msg"]
            .as_str()
            .map(|m| format!("{m} {}", v["details"].as_str().unwrap_or("")))
            .unwrap_or_else(|| String::from_utf8_lossy(&out.stderr).trim().to_string());
        return Err(NativeError::Program {
            program: format!("CNI plugin {plugin} {command}"),
            message: msg.trim().into(),
        });
    }
    Ok(serde_json::from_slice(&out.stdout).unwrap_or(Value::Null))
}

fn port_mappings(ports: &[PortBinding]) -> Value {
    Value::Array(
        ports
            .iter()
            .filter_map(|p| {
                let mut m = json!({"hostPort": p.host_port?, "containerPort": p.container_port, "protocol": p.protocol.to_string()});
                if let Some(ip) = p.host_ip {
                    m["hostIP"] = json!(ip.to_string());
                }
                Some(m)
            })
            .collect(),
    )
}

/// One plugin call made, to be undone in reverse order.
#[derive(Serialize, Deserialize)]
struct Done {
    ifname: String,
    config: Value,
}

#[derive(Serialize, Deserialize, Default)]
pub struct Attached {
    /// Network name to the container's address on it.
    pub addresses: std::collections::BTreeMap<String, String>,
    done: Vec<Done>,
}

fn save(dir: &Path, a: &Attached) -> Result<(), NativeError> {
    let path = dir.join("net.json");
    crate::state_file::write_atomic(&path, &serde_json::to_vec(a).expect("json")).map_err(io(&path))
}

/// What `attach` made for the container in `dir`, if anything.
pub fn attached(dir: &Path) -> Option<Attached> {
    serde_json::from_slice(&std::fs::read(dir.join("net.json")).ok()?).ok()
}

/// Makes the container's namespace and joins it to `joins` (the first non-internal one holds
/// the default route and the published ports). Anything left of an earlier attachment (a
/// monitor that was killed, a host that restarted) is undone first.
pub fn attach(id: &str, dir: &Path, joins: &[Join], ports: &[PortBinding]) -> Result<Attached, NativeError> {
    detach(id, dir);
    let ns = netns_name(id);
    run_ip(&["netns", "add", &ns])?;
    run_ip(&["-n", &ns, "link", "set", "lo", "up"])?;
    let mut a = Attached::default();
    let result = (|| {
        let routed = joins.iter().position(|j| !j.network.internal);
        let mut first_result = None;
        for (i, j) in joins.iter().enumerate() {
            let ifname = format!("eth{i}");
            let conf = bridge_conf(&j.network, Some(i) == routed);
            let args = j.ipv4.map(|ip| format!("IgnoreUnknown=1;IP={ip}"));
            // Recorded before the call: a half-made attachment is undone as well.
            a.done.push(Done { ifname: ifname.clone(), config: conf.clone() });
            save(dir, &a)?;
            let res = call("ADD", id, &ifname, args.as_deref(), &conf)?;
            let ip = res["ips"][0]["address"].as_str().unwrap_or_default().split('/').next().unwrap_or_default();
            a.addresses.insert(j.network.name.clone(), ip.to_string());
            let mut fw = base("firewall", &j.network.name);
            fw["backend"] = json!("iptables");
            fw["prevResult"] = res.clone();
            a.done.push(Done { ifname: ifname.clone(), config: fw.clone() });
            save(dir, &a)?;
            call("ADD", id, &ifname, None, &fw)?;
            if Some(i) == routed {
                first_result = Some((ifname, j.network.name.clone(), res));
            }
        }
        if let (Some((ifname, network, res)), false) = (first_result, ports.is_empty()) {
            let mut pm = base("portmap", &network);
            pm["capabilities"] = json!({"portMappings": true});
            pm["snat"] = json!(true);
            pm["prevResult"] = res;
            pm["runtimeConfig"] = json!({"portMappings": port_mappings(ports)});
            a.done.push(Done { ifname: ifname.clone(), config: pm.clone() });
            save(dir, &a)?;
            call("ADD", id, &ifname, None, &pm)?;
        }
        save(dir, &a)
    })();
    match result {
        Ok(()) => Ok(a),
        Err(e) => {
            detach(id, dir);
            Err(e)
        }
    }
}

/// Undoes `attach` (best effort, and safe to repeat): ports, firewall, addresses, namespace.
pub fn detach(id: &str, dir: &Path) {
    if let Some(a) = attached(dir) {
        for d in a.done.iter().rev() {
            let _ = call("DEL", id, &d.ifname, None, &d.config);
        }
    }
    let _ = std::fs::remove_file(dir.join("net.json"));
    if netns_path(id).exists() {
        let _ = run_ip(&["netns", "delete", &netns_name(id)]);
    }
}

/// Removes a network's bridge (its last container has left it).
pub fn remove_bridge(bridge: &str) {
    let _ = run_ip(&["link", "delete", bridge]);
}

fn run_ip(args: &[&str]) -> Result<(), NativeError> {
    let out = Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| NativeError::Program { program: "ip".into(), message: format!("{e} (install iproute2)") })?;
    if out.status.success() {
        Ok(())
    } else {
        Err(NativeError::Program {
            program: format!("ip {}", args.join(" ")),
            message: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nets(list: &[&str]) -> Vec<Ipv4Net> {
        list.iter().map(|s| s.parse().unwrap()).collect()
    }

    #[test]
    fn subnets_come_from_the_pool_in_order() {
        assert_eq!(free_subnet(&[]).as_deref(), Some("10.90.1.0/24"));
        assert_eq!(free_subnet(&nets(&["10.90.1.0/24", "10.90.3.0/24"])).as_deref(), Some("10.90.2.0/24"));
        // Overlapping counts, not only the same text.
        assert_eq!(free_subnet(&nets(&["10.90.0.0/23", "10.90.2.128/25"])).as_deref(), Some("10.90.3.0/24"));
        assert_eq!(free_subnet(&nets(&["10.0.0.0/8"])), None);
    }

    /// Attack: a network's subnet was chosen from hawser's own records only; a bridge that
    /// already held it on the host (another state folder, another tool) was not seen, and the
    /// new network's traffic went to the other bridge.
    #[test]
    fn the_hosts_own_routes_count_as_taken() {
        let table = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
eth0\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n\
br-other\t00015A0A\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n\
docker0\t000011AC\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0\n";
        let routes = parse_routes(table);
        assert_eq!(
            routes,
            [
                HostRoute { net: "10.90.1.0/24".parse().unwrap(), dev: "br-other".into() },
                HostRoute { net: "172.17.0.0/16".parse().unwrap(), dev: "docker0".into() },
            ],
            "the default route is not a subnet"
        );
        let taken: Vec<Ipv4Net> = routes.iter().map(|r| r.net).collect();
        assert_eq!(free_subnet(&taken).as_deref(), Some("10.90.2.0/24"));
    }

    #[test]
    fn an_internal_network_has_no_nat_and_no_default_route() {
        let mut n = NetworkRecord::default_bridge();
        n.internal = true;
        let c = bridge_conf(&n, false);
        assert_eq!(c["ipMasq"], false);
        assert_eq!(c["ipam"]["routes"], json!([]));
        let d = bridge_conf(&NetworkRecord::default_bridge(), true);
        assert_eq!(d["ipMasq"], true);
        assert_eq!(d["bridge"], "hawser0");
        assert_eq!(d["ipam"]["routes"][0]["dst"], "0.0.0.0/0");
    }
}
