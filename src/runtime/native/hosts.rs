//! Names on the native target's networks: containers on a Network reach each other by
//! resource name and alias, as on Docker's user-defined networks, through their /etc/hosts.
//! hawser writes every container's hosts file again whenever one joins or leaves a network or
//! is renamed; in place, as the file is bind-mounted into the container. The default network
//! (`bridge`) has no names, as on Docker.

use super::net;
use super::record::{ContainerRecord, Paths};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

/// Lines every hosts file starts with: loopback, the container's own name, `extraHosts`.
fn base(rec: &ContainerRecord, own_ip: Option<&str>) -> String {
    let hostname = rec.spec.hostname.clone().unwrap_or_else(|| rec.id[..12.min(rec.id.len())].to_string());
    let mut hosts = String::from("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n");
    hosts.push_str(&format!("{}\t{hostname}\n", own_ip.unwrap_or("127.0.1.1")));
    for h in &rec.spec.extra_hosts {
        if let Some((name, ip)) = h.split_once(':') {
            hosts.push_str(&format!("{ip}\t{name}\n"));
        }
    }
    hosts
}

/// The hosts file of a container that has not joined anything yet.
pub fn initial(rec: &ContainerRecord) -> String {
    base(rec, None)
}

/// Writes the hosts file of every container under `root` from who is on which network now.
pub fn refresh(root: &Path) {
    let Ok(lock) = std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(root.join("hosts.lock"))
    else {
        return;
    };
    // One writer at a time across monitors and commands.
    let Ok(_guard) = nix::fcntl::Flock::lock(lock, nix::fcntl::FlockArg::LockExclusive) else { return };
    let mut all: Vec<(ContainerRecord, Paths, BTreeMap<String, String>)> = Vec::new();
    for e in std::fs::read_dir(root.join("containers")).into_iter().flatten().flatten() {
        let p = Paths::new(e.path());
        let Ok(rec) = p.read_record() else { continue };
        let addresses = net::attached(&p.dir).map(|a| a.addresses).unwrap_or_default();
        all.push((rec, p, addresses));
    }
    // Network to the (address, names) of each container on it.
    let mut on: BTreeMap<&str, Vec<(&str, Vec<&str>)>> = BTreeMap::new();
    for (rec, _, addresses) in &all {
        for (network, ip) in addresses.iter().filter(|(n, _)| *n != "bridge") {
            let mut names: Vec<&str> = vec![rec.name.as_str()];
            names.extend(rec.aliases.iter().map(String::as_str));
            if let Some(att) = rec.spec.networks.get(network) {
                names.extend(att.aliases.iter().map(String::as_str));
            }
            names.dedup();
            on.entry(network.as_str()).or_default().push((ip.as_str(), names));
        }
    }
    for (rec, p, addresses) in &all {
        let mut text = base(rec, addresses.values().next().map(String::as_str));
        for network in addresses.keys() {
            for (ip, names) in on.get(network.as_str()).into_iter().flatten() {
                text.push_str(&format!("{ip}\t{}\n", names.join(" ")));
            }
        }
        let file = p.etc().join("hosts");
        if std::fs::read_to_string(&file).is_ok_and(|old| old == text) {
            continue;
        }
        if let Ok(mut f) = std::fs::OpenOptions::new().write(true).truncate(true).open(&file) {
            let _ = f.write_all(text.as_bytes());
        }
    }
}
