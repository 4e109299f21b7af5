//! The native target's default network, through the standard CNI plugins (Debian's
//! containernetworking-plugins) rather than netlink and firewall rules written by hand: each
//! container gets a network namespace of its own (`/run/netns/hawser-ID`), `bridge` with
//! `host-local` addresses and outbound NAT gives it an address on the `hawser0` bridge,
//! `firewall` lets its traffic through a host whose FORWARD policy drops (as dockerd sets it),
//! and `portmap` publishes its ports on the host's addresses, loopback included.
//!
//! The plugins' results are kept in the container's folder (`net.json`): DEL needs them.

use crate::desired::PortBinding;
use serde_json::{json, Value};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

pub const BRIDGE: &str = "hawser0";
/// The default network's addresses; `HAWSER_NATIVE_SUBNET` chooses others.
pub const SUBNET: &str = "10.89.0.0/16";

pub fn netns_name(id: &str) -> String {
    format!("hawser-{}", &id[..12.min(id.len())])
}

pub fn netns_path(id: &str) -> PathBuf {
    Path::new("/run/netns").join(netns_name(id))
}

fn cni_dir() -> PathBuf {
    std::env::var_os("HAWSER_CNI_PATH").map_or_else(|| PathBuf::from("/usr/lib/cni"), PathBuf::from)
}

fn conf(plugin: &str, _data_dir: &Path, extra: Value) -> Value {
    let mut c = json!({"cniVersion": "1.0.0", "name": "hawser", "type": plugin});
    match plugin {
        "bridge" => {
            let subnet = std::env::var("HAWSER_NATIVE_SUBNET").unwrap_or_else(|_| SUBNET.into());
            c["bridge"] = json!(BRIDGE);
            c["isGateway"] = json!(true);
            c["ipMasq"] = json!(true);
            c["hairpinMode"] = json!(true);
            c["ipam"] = json!({
                "type": "host-local",
                "ranges": [[{"subnet": subnet}]],
                "routes": [{"dst": "0.0.0.0/0"}],
                // One allocator for the host, as there is one bridge: in /run, which a restart
                // empties along with every namespace that held an address.
                "dataDir": "/run/hawser/cni-ipam",
            });
        }
        "firewall" => c["backend"] = json!("iptables"),
        "portmap" => {
            c["capabilities"] = json!({"portMappings": true});
            c["snat"] = json!(true);
        }
        _ => {}
    }
    if let (Some(obj), Some(more)) = (c.as_object_mut(), extra.as_object()) {
        for (k, v) in more {
            obj.insert(k.clone(), v.clone());
        }
    }
    c
}

fn call(command: &str, plugin: &str, id: &str, config: &Value) -> Result<Value, String> {
    let bin = cni_dir().join(plugin);
    let mut child = Command::new(&bin)
        .env("CNI_COMMAND", command)
        .env("CNI_CONTAINERID", id)
        .env("CNI_NETNS", netns_path(id))
        .env("CNI_IFNAME", "eth0")
        .env("CNI_PATH", cni_dir())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("{}: {e} (install containernetworking-plugins)", bin.display()))?;
    child.stdin.take().expect("piped").write_all(config.to_string().as_bytes()).map_err(|e| e.to_string())?;
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    if !out.status.success() {
        // A plugin's error is JSON on stdout: {"code": N, "msg": "...", "details": "..."}.
        let v: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        let msg = v["msg"]
            .as_str()
            .map(|m| format!("{m} {}", v["details"].as_str().unwrap_or("")))
            .unwrap_or_else(|| String::from_utf8_lossy(&out.stderr).trim().to_string());
        return Err(format!("CNI plugin {plugin} {command}: {}", msg.trim()));
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

/// Makes the container's namespace and attaches it; returns its address. Anything left of an
/// earlier attachment (a monitor that was killed, a host that restarted) is undone first.
pub fn attach(id: &str, dir: &Path, data_dir: &Path, ports: &[PortBinding]) -> Result<String, String> {
    detach(id, dir, data_dir);
    let ns = netns_name(id);
    run_ip(&["netns", "add", &ns])?;
    run_ip(&["-n", &ns, "link", "set", "lo", "up"])?;
    let result = (|| {
        let bridge = call("ADD", "bridge", id, &conf("bridge", data_dir, Value::Null))?;
        let mut prev = bridge.clone();
        let fw = call("ADD", "firewall", id, &conf("firewall", data_dir, json!({"prevResult": prev})))?;
        if !fw.is_null() {
            prev = fw;
        }
        if !ports.is_empty() {
            let extra = json!({"prevResult": prev, "runtimeConfig": {"portMappings": port_mappings(ports)}});
            call("ADD", "portmap", id, &conf("portmap", data_dir, extra))?;
        }
        let saved = json!({"result": prev, "ports": port_mappings(ports)});
        std::fs::write(dir.join("net.json"), saved.to_string()).map_err(|e| e.to_string())?;
        Ok(prev["ips"][0]["address"].as_str().unwrap_or_default().split('/').next().unwrap_or_default().to_string())
    })();
    if result.is_err() {
        detach(id, dir, data_dir);
    }
    result
}

/// Undoes `attach` (best effort, and safe to repeat): ports, firewall, address, namespace.
pub fn detach(id: &str, dir: &Path, data_dir: &Path) {
    let saved: Value =
        std::fs::read(dir.join("net.json")).ok().and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or(Value::Null);
    let prev = &saved["result"];
    if saved["ports"].as_array().is_some_and(|a| !a.is_empty()) {
        let extra = json!({"prevResult": prev, "runtimeConfig": {"portMappings": saved["ports"]}});
        let _ = call("DEL", "portmap", id, &conf("portmap", data_dir, extra));
    }
    if !prev.is_null() {
        let _ = call("DEL", "firewall", id, &conf("firewall", data_dir, json!({"prevResult": prev})));
    }
    // The address is given back even without a saved result (host-local keys it by id).
    let _ = call("DEL", "bridge", id, &conf("bridge", data_dir, Value::Null));
    let _ = std::fs::remove_file(dir.join("net.json"));
    if netns_path(id).exists() {
        let _ = run_ip(&["netns", "delete", &netns_name(id)]);
    }
}

fn run_ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("ip: {e} (install iproute2)"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("ip {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim()))
    }
}

/// The container's address on the default network, from its saved attachment.
pub fn address(dir: &Path) -> Option<String> {
    let saved: Value = serde_json::from_slice(&std::fs::read(dir.join("net.json")).ok()?).ok()?;
    saved["result"]["ips"][0]["address"].as_str().map(|a| a.split('/').next().unwrap_or(a).to_string())
}
