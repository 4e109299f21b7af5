//! Host ports that hawser publishes itself, in the kernel: the engine creates the container
//! without publishing anything, and NAT rules of hawser's own send a host address and port to
//! the container's address. No process of hawser's is in the data path, and the rules stay when
//! hawser is not running. Switching a port to another container is one atomic commit of the
//! project's rules: new connections go to the new container, connections already open keep
//! going to the old one (the kernel's connection tracking remembers where each went).
//!
//! The rules, in iptables' terms (`iptables-save -t nat | grep -i hawser` shows them):
//! - nat `HAWSER`, jumped to from PREROUTING and OUTPUT for local destinations, holds one jump per
//!   project to its chain `HWS-<id>`, which has one DNAT rule per published port, commented
//!   `hawser PROJECT/NAME`;
//! - nat `HAWSER-POST`, from POSTROUTING, masquerades connections from the host's loopback
//!   (`127.0.0.1:PORT`) to the containers, per project in `HWSM-<id>`;
//! - filter `HAWSER-FWD`, from DOCKER-USER (else FORWARD), accepts forwarded connections to the
//!   published container ports, per project in `HWSF-<id>`.

use crate::desired::Protocol;
use std::collections::BTreeMap;
use std::io::Write;
use std::net::Ipv4Addr;
use std::process::{Command, Stdio};

const DNAT: &str = "HAWSER";
const POST: &str = "HAWSER-POST";
const FWD: &str = "HAWSER-FWD";
const LOCK: &str = "/run/hawser-ports.lock";

/// One host port of one Container resource, and where it goes now.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Published {
    /// The resource (Container) name.
    pub name: String,
    pub host_ip: Option<Ipv4Addr>,
    pub host_port: u16,
    pub protocol: Protocol,
    pub to: Ipv4Addr,
    pub container_port: u16,
}

impl Published {
    /// The port as a manifest would bind it.
    pub fn binding(&self) -> crate::desired::PortBinding {
        crate::desired::PortBinding {
            host_ip: self.host_ip.map(std::net::IpAddr::V4),
            host_port: Some(self.host_port),
            container_port: self.container_port,
            protocol: self.protocol,
            host_mode: false,
        }
    }
}

impl std::fmt::Display for Published {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(ip) = self.host_ip {
            write!(f, "{ip}:")?;
        }
        write!(f, "{}/{} -> {}:{}", self.host_port, self.protocol, self.to, self.container_port)
    }
}

/// The rules that publish `ports` of resource `name` to a container at `to`: its host ports
/// on IPv4 (an engine-chosen host port stays the engine's to publish).
pub fn wanted(name: &str, ports: &[crate::desired::PortBinding], to: Ipv4Addr) -> Vec<Published> {
    ports
        .iter()
        .filter_map(|p| {
            let host_ip = match p.host_ip {
                None => None,
                Some(std::net::IpAddr::V4(ip)) if ip.is_unspecified() => None,
                Some(std::net::IpAddr::V4(ip)) => Some(ip),
                Some(std::net::IpAddr::V6(_)) => return None,
            };
            Some(Published {
                name: name.to_string(),
                host_ip,
                host_port: p.host_port?,
                protocol: p.protocol,
                to,
                container_port: p.container_port,
            })
        })
        .collect()
}

#[derive(Debug, thiserror::Error)]
pub enum PortsError {
    #[error("publishing host ports needs root (hawser programs the kernel's NAT rules)")]
    NotRoot,
    #[error("cannot run {program}: {source} (install iptables)")]
    Missing { program: &'static str, source: std::io::Error },
    #[error("{command}: {message}")]
    Failed { command: String, message: String },
    #[error("{}: {source}", .path)]
    Io { path: String, source: std::io::Error },
}

/// Whether this host lets hawser publish ports itself, or why not.
pub fn check() -> Result<(), PortsError> {
    if !nix::unistd::geteuid().is_root() {
        return Err(PortsError::NotRoot);
    }
    run("iptables", &["-w", "-t", "nat", "-S", "OUTPUT"]).map(|_| ())
}

/// The project's chains: its DNAT rules, its loopback masquerade, its forward accepts.
fn chains(project: &str) -> (String, String, String) {
    use sha2::{Digest, Sha256};
    let id = &hex::encode(Sha256::digest(project.as_bytes()))[..10];
    (format!("HWS-{id}"), format!("HWSM-{id}"), format!("HWSF-{id}"))
}

fn run(program: &'static str, args: &[&str]) -> Result<String, PortsError> {
    let out = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|source| PortsError::Missing { program, source })?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(PortsError::Failed {
            command: format!("{program} {}", args.join(" ")),
            message: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        })
    }
}

fn restore(text: &str) -> Result<(), PortsError> {
    let mut child = Command::new("iptables-restore")
        .args(["-w", "--noflush"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| PortsError::Missing { program: "iptables-restore", source })?;
    child
        .stdin
        .take()
        .expect("piped")
        .write_all(text.as_bytes())
        .map_err(|source| PortsError::Io { path: "iptables-restore".into(), source })?;
    let out = child.wait_with_output().map_err(|source| PortsError::Io { path: "iptables-restore".into(), source })?;
    if out.status.success() {
        Ok(())
    } else {
        Err(PortsError::Failed {
            command: "iptables-restore --noflush".into(),
            message: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        })
    }
}

/// Holds the host's lock on hawser's rules (another hawser may be changing its own project's)
/// while it lives: the lock goes with the file.
struct Locked(#[allow(dead_code)] std::fs::File);

fn lock() -> Result<Locked, PortsError> {
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(LOCK)
        .map_err(|source| PortsError::Io { path: LOCK.into(), source })?;
    #[allow(deprecated)]
    nix::fcntl::flock(std::os::fd::AsRawFd::as_raw_fd(&f), nix::fcntl::FlockArg::LockExclusive)
        .map_err(|e| PortsError::Io { path: LOCK.into(), source: std::io::Error::from_raw_os_error(e as i32) })?;
    Ok(Locked(f))
}

fn exists(table: &str, chain: &str) -> bool {
    run("iptables", &["-w", "-t", table, "-S", chain, "1"]).is_ok()
}

/// Makes a chain if it is missing.
fn chain(table: &str, chain: &str) -> Result<(), PortsError> {
    if !exists(table, chain) {
        run("iptables", &["-w", "-t", table, "-N", chain])?;
    }
    Ok(())
}

/// Puts a rule first in `chain` unless it is there already.
fn first(table: &str, chain: &str, rule: &[&str]) -> Result<(), PortsError> {
    let mut check = vec!["-w", "-t", table, "-C", chain];
    check.extend_from_slice(rule);
    if run("iptables", &check).is_err() {
        let mut insert = vec!["-w", "-t", table, "-I", chain, "1"];
        insert.extend_from_slice(rule);
        run("iptables", &insert)?;
    }
    Ok(())
}

/// hawser's base chains and the jumps to them.
fn base() -> Result<(), PortsError> {
    chain("nat", DNAT)?;
    chain("nat", POST)?;
    chain("filter", FWD)?;
    let local = ["-m", "addrtype", "--dst-type", "LOCAL", "-j", DNAT];
    first("nat", "PREROUTING", &local)?;
    first("nat", "OUTPUT", &local)?;
    first("nat", "POSTROUTING", &["-j", POST])?;
    // Docker evaluates DOCKER-USER before its own rules; without Docker, FORWARD.
    let forward = if exists("filter", "DOCKER-USER") { "DOCKER-USER" } else { "FORWARD" };
    first("filter", forward, &["-j", FWD])?;
    Ok(())
}

/// Changes what `project`'s rules publish with `change` (read, changed and written under the
/// host's lock on hawser's rules, so two changes of one project never lose each other's).
pub fn update(project: &str, change: impl FnOnce(&mut Vec<Published>)) -> Result<(), PortsError> {
    let _lock = lock()?;
    let mut ports = read()?.remove(project).unwrap_or_default();
    ports.sort();
    let before = ports.clone();
    change(&mut ports);
    ports.sort();
    ports.dedup();
    if ports == before {
        return Ok(());
    }
    write(project, &ports)?;
    // UDP flows that went where a port no longer goes move with it (`conntrack`).
    for gone in before.iter().filter(|p| p.protocol == Protocol::Udp) {
        if !ports
            .iter()
            .any(|p| p.protocol == Protocol::Udp && p.to == gone.to && p.container_port == gone.container_port)
        {
            super::conntrack::forget_udp(gone.to, gone.container_port);
        }
    }
    Ok(())
}

/// Makes `project`'s rules publish exactly `ports`: one atomic commit of its NAT rules (new
/// connections go where `ports` say from then on), the forward accepts committed before it.
/// No ports removes the project's rules altogether.
pub fn set(project: &str, ports: &[Published]) -> Result<(), PortsError> {
    let _lock = lock()?;
    write(project, ports)
}

fn write(project: &str, ports: &[Published]) -> Result<(), PortsError> {
    let (dnat, masq, fwd) = chains(project);
    let comment = format!("hawser {project}");
    if ports.is_empty() {
        for (table, base, own) in [("nat", DNAT, &dnat), ("nat", POST, &masq), ("filter", FWD, &fwd)] {
            if exists(table, own) {
                let _ = run(
                    "iptables",
                    &["-w", "-t", table, "-D", base, "-m", "comment", "--comment", &comment, "-j", own],
                );
                let _ = run("iptables", &["-w", "-t", table, "-F", own]);
                let _ = run("iptables", &["-w", "-t", table, "-X", own]);
            }
        }
        remove_base_if_unused();
        return Ok(());
    }
    base()?;
    for to in ports.iter().map(|p| p.to).collect::<std::collections::BTreeSet<_>>() {
        route_localnet(to)?;
    }
    let (filter, nat) = rules(project, ports);
    restore(&filter)?;
    first("filter", FWD, &["-m", "comment", "--comment", &comment, "-j", &fwd])?;
    restore(&nat)?;
    first("nat", POST, &["-m", "comment", "--comment", &comment, "-j", &masq])?;
    first("nat", DNAT, &["-m", "comment", "--comment", &comment, "-j", &dnat])?;
    Ok(())
}

/// The `iptables-restore` input of `project`'s filter and nat chains for `ports`. Several
/// containers on one host port (replicas) share it: its DNAT rules take the k-th of n new
/// connections with probability 1/(n-k), so each container gets an equal share.
fn rules(project: &str, ports: &[Published]) -> (String, String) {
    let (dnat, masq, fwd) = chains(project);
    let mut filter = format!("*filter\n:{fwd} - [0:0]\n");
    let mut nat = format!("*nat\n:{dnat} - [0:0]\n:{masq} - [0:0]\n");
    let mut sorted: Vec<&Published> = ports.iter().collect();
    sorted.sort_by_key(|p| (p.host_ip, p.host_port, p.protocol, &p.name, p.to, p.container_port));
    let shared = |p: &Published| (p.host_ip, p.host_port, p.protocol);
    let mut k = 0;
    for (i, p) in sorted.iter().enumerate() {
        k = if i > 0 && shared(sorted[i - 1]) == shared(p) { k + 1 } else { 0 };
        let n = sorted.iter().filter(|q| shared(q) == shared(p)).count();
        let proto = p.protocol.to_string();
        let tag = format!("\"hawser {project}/{}\"", p.name);
        let dest = format!("{}:{}", p.to, p.container_port);
        filter.push_str(&format!(
            "-A {fwd} -d {}/32 -p {proto} -m {proto} --dport {} -m comment --comment {tag} -j ACCEPT\n",
            p.to, p.container_port
        ));
        let only = p.host_ip.map(|ip| format!("-d {ip}/32 ")).unwrap_or_default();
        let share = if k + 1 < n {
            format!("-m statistic --mode random --probability {:.8} ", 1.0 / (n - k) as f64)
        } else {
            String::new()
        };
        nat.push_str(&format!(
            "-A {dnat} {only}-p {proto} -m {proto} --dport {} -m comment --comment {tag} {share}-j DNAT --to-destination {dest}\n",
            p.host_port
        ));
        nat.push_str(&format!(
            "-A {masq} -s 127.0.0.0/8 -d {}/32 -p {proto} -m {proto} --dport {} -m comment --comment {tag} -j MASQUERADE\n",
            p.to, p.container_port
        ));
    }
    filter.push_str("COMMIT\n");
    nat.push_str("COMMIT\n");
    (filter, nat)
}

/// The base chains and the jumps to them go when no project has rules left: hawser leaves
/// nothing of its own in the kernel that publishes nothing.
fn remove_base_if_unused() {
    let rules = |table: &str, chain: &str| run("iptables", &["-w", "-t", table, "-S", chain]).unwrap_or_default();
    let used = |table: &str, chain: &str| rules(table, chain).lines().any(|l| l.starts_with("-A "));
    if used("nat", DNAT) || used("nat", POST) || used("filter", FWD) {
        return;
    }
    let local = ["-m", "addrtype", "--dst-type", "LOCAL", "-j", DNAT];
    for (table, from, rule) in [
        ("nat", "PREROUTING", &local[..]),
        ("nat", "OUTPUT", &local[..]),
        ("nat", "POSTROUTING", &["-j", POST][..]),
        ("filter", "DOCKER-USER", &["-j", FWD][..]),
        ("filter", "FORWARD", &["-j", FWD][..]),
    ] {
        let mut args = vec!["-w", "-t", table, "-D", from];
        args.extend_from_slice(rule);
        let _ = run("iptables", &args);
    }
    for (table, chain) in [("nat", DNAT), ("nat", POST), ("filter", FWD)] {
        let _ = run("iptables", &["-w", "-t", table, "-X", chain]);
    }
}

/// Loopback connections reach a container only when the kernel routes 127.0.0.0/8 out of the
/// container's bridge (as Docker sets it without its userland proxy).
fn route_localnet(to: Ipv4Addr) -> Result<(), PortsError> {
    let route = run("ip", &["-o", "-4", "route", "get", &to.to_string()])?;
    let Some(dev) = route.split_whitespace().skip_while(|w| *w != "dev").nth(1) else { return Ok(()) };
    if dev == "lo" || dev.contains('/') || dev.contains("..") {
        return Ok(());
    }
    let path = format!("/proc/sys/net/ipv4/conf/{dev}/route_localnet");
    if std::fs::read_to_string(&path).is_ok_and(|v| v.trim() == "1") {
        return Ok(());
    }
    std::fs::write(&path, "1").map_err(|source| PortsError::Io { path, source })
}

/// What hawser's rules publish now, by project (from `iptables-save`).
pub fn read() -> Result<BTreeMap<String, Vec<Published>>, PortsError> {
    Ok(parse(&run("iptables-save", &["-t", "nat"])?))
}

fn parse(save: &str) -> BTreeMap<String, Vec<Published>> {
    let mut out: BTreeMap<String, Vec<Published>> = BTreeMap::new();
    for line in save.lines().filter(|l| l.starts_with("-A HWS-")) {
        let words = split_quoted(line);
        let value =
            |flag: &str| words.iter().position(|w| w == flag).and_then(|i| words.get(i + 1)).map(String::as_str);
        let Some(tag) = value("--comment").and_then(|c| c.strip_prefix("hawser ")) else { continue };
        let Some((project, name)) = tag.split_once('/') else { continue };
        let Some((to, container_port)) = value("--to-destination").and_then(|d| d.split_once(':')) else { continue };
        let (Ok(to), Ok(container_port)) = (to.parse(), container_port.parse()) else { continue };
        let Some(Ok(host_port)) = value("--dport").map(str::parse) else { continue };
        let protocol = match value("-p") {
            Some("tcp") => Protocol::Tcp,
            Some("udp") => Protocol::Udp,
            _ => continue,
        };
        let host_ip = value("-d").and_then(|d| d.trim_end_matches("/32").parse().ok());
        out.entry(project.to_string()).or_default().push(Published {
            name: name.to_string(),
            host_ip,
            host_port,
            protocol,
            to,
            container_port,
        });
    }
    out
}

fn split_quoted(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    for c in line.chars() {
        match c {
            '"' => quoted = !quoted,
            ' ' if !quoted => {
                if !cur.is_empty() {
                    words.push(std::mem::take(&mut cur));
                }
            }
            c => cur.push(c),
        }
    }
    if !cur.is_empty() {
        words.push(cur);
    }
    words
}

/// Sends resource `name`'s host `ports` (of `project`) to `to` from now on, or publishes them no
/// more (`None`): what an engine's `publish` does where hawser publishes ports itself.
pub async fn publish_to(
    project: &str,
    name: &str,
    to: Option<Ipv4Addr>,
    ports: &[crate::desired::PortBinding],
) -> crate::runtime::Result<()> {
    let want = to.map(|to| wanted(name, ports, to)).unwrap_or_default();
    let name = name.to_string();
    let op = format!("publish the host ports of {name}");
    changed(project, &op, move |all| {
        all.retain(|p| p.name != name);
        all.extend(want);
    })
    .await
}

/// Publishes resource `name`'s host ports no more where they go to `to`; returns those ports.
pub async fn unpublish_from(
    project: &str,
    name: &str,
    to: Ipv4Addr,
) -> crate::runtime::Result<Vec<crate::desired::PortBinding>> {
    let name = name.to_string();
    let op = format!("unpublish the host ports of {name}");
    let gone = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let out = gone.clone();
    changed(project, &op, move |all| {
        let mut gone = gone.lock().unwrap_or_else(|p| p.into_inner());
        gone.extend(all.iter().filter(|p| p.name == name && p.to == to).map(Published::binding));
        all.retain(|p| !(p.name == name && p.to == to));
    })
    .await?;
    let gone = out.lock().unwrap_or_else(|p| p.into_inner()).clone();
    Ok(gone)
}

/// TCP connections open now to the published `ports` of a container at `to`.
pub fn open_to(to: Ipv4Addr, ports: &[crate::desired::PortBinding]) -> usize {
    // The table is read once for all the ports: a drain polls it every 100 ms.
    let flows = super::conntrack::flows();
    ports
        .iter()
        .filter(|p| p.host_port.is_some() && p.protocol == Protocol::Tcp)
        .map(|p| super::conntrack::open_to(&flows, to, p.container_port))
        .sum()
}

/// `update` off the async workers, its error an engine error of `op`.
async fn changed(
    project: &str,
    op: &str,
    change: impl FnOnce(&mut Vec<Published>) + Send + 'static,
) -> crate::runtime::Result<()> {
    let project = project.to_string();
    tokio::task::spawn_blocking(move || update(&project, change))
        .await
        .expect("changing the rules does not panic")
        .map_err(|e| crate::runtime::EngineError {
            op: op.to_string(),
            kind: crate::runtime::ErrorKind::Other,
            message: e.to_string(),
        })
}

/// What hawser's rules publish now, by project, as an engine's `observe` reads it.
pub async fn observe() -> crate::runtime::Result<BTreeMap<String, Vec<Published>>> {
    tokio::task::spawn_blocking(read).await.expect("reading the rules does not panic").map_err(|e| {
        crate::runtime::EngineError {
            op: "read hawser's port rules".into(),
            kind: crate::runtime::ErrorKind::Other,
            message: e.to_string(),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_are_read_back_as_iptables_save_prints_them() {
        let save = r#"*nat
:HWS-abc - [0:0]
-A PREROUTING -m addrtype --dst-type LOCAL -j HAWSER
-A HAWSER -m comment --comment "hawser shop" -j HWS-abc
-A HWS-abc -d 127.0.0.1/32 -p tcp -m tcp --dport 18080 -m comment --comment "hawser shop/web" -j DNAT --to-destination 172.17.0.5:8080
-A HWS-abc -p udp -m udp --dport 5353 -m comment --comment "hawser shop/dns" -j DNAT --to-destination 172.17.0.6:53
-A HWSM-abc -s 127.0.0.0/8 -d 172.17.0.5/32 -p tcp -m tcp --dport 8080 -m comment --comment "hawser shop/web" -j MASQUERADE
-A DOCKER -d 127.0.0.1/32 -p tcp -m tcp --dport 9000 -j DNAT --to-destination 172.17.0.9:80
COMMIT
"#;
        let got = parse(save);
        assert_eq!(got.len(), 1);
        let shop = &got["shop"];
        assert_eq!(shop.len(), 2, "{shop:?}");
        assert_eq!(shop[0].to_string(), "127.0.0.1:18080/tcp -> 172.17.0.5:8080");
        assert_eq!(shop[0].name, "web");
        assert_eq!(shop[1].to_string(), "5353/udp -> 172.17.0.6:53");
    }

    #[test]
    fn the_rules_wanted_are_the_ipv4_host_ports_and_any_address_is_none() {
        let ports: Vec<crate::desired::PortBinding> =
            ["127.0.0.1:8080:80", "0.0.0.0:8443:443", "9000:90/udp", "[::1]:8081:81", "3000"]
                .iter()
                .map(|p| p.parse().unwrap())
                .collect();
        let to = "172.17.0.9".parse().unwrap();
        let got: Vec<String> = wanted("web", &ports, to).iter().map(|p| p.to_string()).collect();
        assert_eq!(
            got,
            ["127.0.0.1:8080/tcp -> 172.17.0.9:80", "8443/tcp -> 172.17.0.9:443", "9000/udp -> 172.17.0.9:90"],
            "IPv6 and engine-chosen host ports stay the engine's"
        );
    }

    #[test]
    fn replicas_on_one_host_port_share_new_connections_equally() {
        let ports: Vec<crate::desired::PortBinding> = vec!["127.0.0.1:8080:80".parse().unwrap()];
        let mut all: Vec<Published> = ["web-3", "web-1", "web-2"]
            .iter()
            .enumerate()
            .flat_map(|(i, n)| wanted(n, &ports, Ipv4Addr::new(172, 17, 0, 10 + i as u8)))
            .collect();
        all.extend(wanted("db", &["5432:5432".parse().unwrap()], Ipv4Addr::new(172, 17, 0, 20)));
        let (_, nat) = rules("shop", &all);
        let dnat: Vec<&str> = nat.lines().filter(|l| l.contains("-j DNAT")).collect();
        assert_eq!(dnat.len(), 4, "{nat}");
        assert!(dnat[0].contains("--dport 5432") && !dnat[0].contains("statistic"), "one container: no share");
        assert!(dnat[1].contains("shop/web-1\" -m statistic --mode random --probability 0.33333333 -j DNAT"), "{nat}");
        assert!(dnat[2].contains("shop/web-2\" -m statistic --mode random --probability 0.50000000 -j DNAT"), "{nat}");
        assert!(dnat[3].contains("shop/web-3\" -j DNAT"), "the last takes the rest: {nat}");
        // Read back as they were written (the share is the writer's to compute).
        let back = parse(&nat);
        let mut want = all.clone();
        want.sort();
        let mut got = back["shop"].clone();
        got.sort();
        assert_eq!(got, want);
    }

    #[test]
    fn each_project_has_chains_of_its_own_within_iptables_limits() {
        let (a, b, c) = chains("a-very-long-project-name-that-goes-on-and-on");
        assert!(a.len() <= 28 && b.len() <= 28 && c.len() <= 28);
        assert_ne!(chains("shop").0, chains("shop2").0);
    }
}
