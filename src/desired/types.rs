//! Parsed value types of the manifest language. Each has one canonical text form, used both for
//! display and for the change hash, so that `90s` and `1m30s` are the same value and never a diff.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// A value the manifest format does not accept, and why: the message of its diagnostic, which
/// the caller places at the value's position.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Invalid(pub String);

impl From<String> for Invalid {
    fn from(m: String) -> Invalid {
        Invalid(m)
    }
}

impl From<&str> for Invalid {
    fn from(m: &str) -> Invalid {
        Invalid(m.to_string())
    }
}

impl From<Invalid> for String {
    fn from(i: Invalid) -> String {
        i.0
    }
}

macro_rules! serde_via_str {
    ($t:ty) => {
        impl Serialize for $t {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }
        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

/// The Linux capabilities the engine knows, in the form hawser keeps and sends: upper case,
/// without the `CAP_` prefix.
pub const CAPABILITIES: &[&str] = &[
    "ALL",
    "AUDIT_CONTROL",
    "AUDIT_READ",
    "AUDIT_WRITE",
    "BLOCK_SUSPEND",
    "BPF",
    "CHECKPOINT_RESTORE",
    "CHOWN",
    "DAC_OVERRIDE",
    "DAC_READ_SEARCH",
    "FOWNER",
    "FSETID",
    "IPC_LOCK",
    "IPC_OWNER",
    "KILL",
    "LEASE",
    "LINUX_IMMUTABLE",
    "MAC_ADMIN",
    "MAC_OVERRIDE",
    "MKNOD",
    "NET_ADMIN",
    "NET_BIND_SERVICE",
    "NET_BROADCAST",
    "NET_RAW",
    "PERFMON",
    "SETFCAP",
    "SETGID",
    "SETPCAP",
    "SETUID",
    "SYS_ADMIN",
    "SYS_BOOT",
    "SYS_CHROOT",
    "SYS_MODULE",
    "SYS_NICE",
    "SYS_PACCT",
    "SYS_PTRACE",
    "SYS_RAWIO",
    "SYS_RESOURCE",
    "SYS_TIME",
    "SYS_TTY_CONFIG",
    "SYSLOG",
    "WAKE_ALARM",
];

/// A Linux capability, normalized once: `cap_sys_admin`, `CAP_SYS_ADMIN` and `Sys_Admin` are all
/// `SYS_ADMIN`. The host policy checks this form and the engine is sent this form, so the two
/// can never disagree about which capability is meant.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Capability(String);

impl Capability {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for Capability {
    type Err = Invalid;
    fn from_str(s: &str) -> Result<Self, Invalid> {
        let upper = s.trim().to_ascii_uppercase();
        let name = upper.strip_prefix("CAP_").unwrap_or(&upper);
        if let Some(known) = CAPABILITIES.iter().find(|c| **c == name) {
            return Ok(Capability(known.to_string()));
        }
        let hint =
            super::diag::did_you_mean(name, CAPABILITIES).map(|h| format!("; did you mean `{h}`?")).unwrap_or_default();
        Err(Invalid(format!("unknown capability `{s}`{hint}")))
    }
}

impl fmt::Display for Capability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

serde_via_str!(Capability);

/// A duration with millisecond precision: `500ms`, `5s`, `2m`, `1h30m`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Duration(pub std::time::Duration);

impl Duration {
    pub fn from_secs(s: u64) -> Self {
        Duration(std::time::Duration::from_secs(s))
    }
    pub fn as_std(self) -> std::time::Duration {
        self.0
    }
    pub fn as_nanos_i64(self) -> i64 {
        i64::try_from(self.0.as_nanos()).unwrap_or(i64::MAX)
    }
}

impl FromStr for Duration {
    type Err = Invalid;
    fn from_str(s: &str) -> Result<Self, Invalid> {
        let bad =
            || Invalid(format!("invalid duration `{s}`: expected a number with a unit, like 500ms, 5s, 2m or 1h30m"));
        let mut rest = s.trim();
        if rest.is_empty() {
            return Err(bad());
        }
        let mut total_ms: u128 = 0;
        while !rest.is_empty() {
            let digits = rest.find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or(rest.len());
            if digits == 0 {
                return Err(bad());
            }
            let number: f64 = rest[..digits].parse().map_err(|_| bad())?;
            rest = &rest[digits..];
            let unit_len = rest.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(rest.len());
            let unit_ms: f64 = match &rest[..unit_len] {
                "ms" => 1.0,
                "s" => 1_000.0,
                "m" => 60_000.0,
                "h" => 3_600_000.0,
                _ => return Err(bad()),
            };
            rest = &rest[unit_len..];
            total_ms += (number * unit_ms).round() as u128;
        }
        Ok(Duration(std::time::Duration::from_millis(total_ms as u64)))
    }
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0.as_millis();
        if ms == 0 {
            return f.write_str("0s");
        }
        if !ms.is_multiple_of(1000) {
            return write!(f, "{ms}ms");
        }
        let (h, m, s) = (ms / 3_600_000, (ms / 60_000) % 60, (ms / 1000) % 60);
        if h > 0 {
            write!(f, "{h}h")?;
        }
        if m > 0 {
            write!(f, "{m}m")?;
        }
        if s > 0 {
            write!(f, "{s}s")?;
        }
        Ok(())
    }
}
serde_via_str!(Duration);

/// A size in bytes: `64Mi`, `1Gi` (binary), `500M`, `1G` (decimal), or a plain number of bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ByteSize(pub u64);

impl FromStr for ByteSize {
    type Err = Invalid;
    fn from_str(s: &str) -> Result<Self, Invalid> {
        let t = s.trim();
        let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
        let (num, unit) = t.split_at(split);
        let bad = || {
            format!("invalid size `{s}`: expected a number with an optional unit: Ki, Mi, Gi, Ti (binary) or k, M, G, T (decimal)")
        };
        let n: u64 = num.parse().map_err(|_| bad())?;
        let mult: u64 = match unit {
            "" | "B" | "b" => 1,
            "Ki" | "KiB" => 1 << 10,
            "Mi" | "MiB" => 1 << 20,
            "Gi" | "GiB" => 1 << 30,
            "Ti" | "TiB" => 1 << 40,
            "k" | "K" | "kB" | "KB" => 1_000,
            "M" | "MB" => 1_000_000,
            "G" | "GB" => 1_000_000_000,
            "T" | "TB" => 1_000_000_000_000,
            "m" | "g" => {
                return Err(Invalid(format!(
                    "ambiguous size unit in `{s}`: write Mi or Gi (binary) or M or G (decimal)"
                )))
            }
            _ => return Err(bad().into()),
        };
        n.checked_mul(mult).map(ByteSize).ok_or_else(|| Invalid(format!("size `{s}` is too large")))
    }
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0;
        for (unit, m) in [("Ti", 1u64 << 40), ("Gi", 1 << 30), ("Mi", 1 << 20), ("Ki", 1 << 10)] {
            if n >= m && n.is_multiple_of(m) {
                return write!(f, "{}{unit}", n / m);
            }
        }
        write!(f, "{n}")
    }
}
serde_via_str!(ByteSize);

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum Protocol {
    #[default]
    Tcp,
    Udp,
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        })
    }
}

/// A published port: `[IP:]HOST:CONTAINER[/PROTO]`, or `CONTAINER[/PROTO]` for an engine-chosen host port.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PortBinding {
    pub host_ip: Option<IpAddr>,
    pub host_port: Option<u16>,
    pub container_port: u16,
    pub protocol: Protocol,
    /// On a swarm: published on the node that runs the task (`/host`), not through the
    /// cluster's routing mesh. One Docker host always publishes so.
    pub host_mode: bool,
}

impl FromStr for PortBinding {
    type Err = Invalid;
    fn from_str(s: &str) -> Result<Self, Invalid> {
        let bad = |why: &str| {
            format!("invalid port `{s}`: {why}; expected HOST:CONTAINER, IP:HOST:CONTAINER or CONTAINER, with an optional /tcp or /udp")
        };
        let (s_no_mode, host_mode) = match s.strip_suffix("/host") {
            Some(rest) if rest.ends_with("/tcp") || rest.ends_with("/udp") => (rest, true),
            _ => (s, false),
        };
        let (addr, protocol) = match s_no_mode.rsplit_once('/') {
            Some((a, "tcp")) => (a, Protocol::Tcp),
            Some((a, "udp")) => (a, Protocol::Udp),
            Some(_) => return Err(bad("the protocol must be tcp or udp").into()),
            None => (s_no_mode, Protocol::Tcp),
        };
        // An IPv6 host address is written in brackets: [::1]:8080:80.
        let (host_ip, rest) = if let Some(r) = addr.strip_prefix('[') {
            let (ip, rest) = r.split_once("]:").ok_or_else(|| bad("unclosed IPv6 bracket"))?;
            (Some(ip.parse::<IpAddr>().map_err(|_| bad("bad IP address"))?), rest)
        } else {
            let parts: Vec<&str> = addr.split(':').collect();
            match parts.len() {
                1 | 2 => (None, addr),
                3 => {
                    (Some(parts[0].parse::<IpAddr>().map_err(|_| bad("bad IP address"))?), &addr[parts[0].len() + 1..])
                }
                _ => return Err(bad("too many `:`").into()),
            }
        };
        let port = |p: &str| -> Result<u16, Invalid> {
            match p.parse::<u16>() {
                Ok(0) | Err(_) => Err(bad(&format!("`{p}` is not a port number (1-65535)")).into()),
                Ok(n) => Ok(n),
            }
        };
        let (host_port, container_port) = match rest.split_once(':') {
            Some(("", c)) => (None, port(c)?),
            Some((h, c)) => (Some(port(h)?), port(c)?),
            None => (None, port(rest)?),
        };
        Ok(PortBinding { host_ip, host_port, container_port, protocol, host_mode })
    }
}

impl fmt::Display for PortBinding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.host_ip {
            Some(IpAddr::V6(ip)) => write!(f, "[{ip}]:")?,
            Some(ip) => write!(f, "{ip}:")?,
            None => {}
        }
        match (self.host_ip, self.host_port) {
            (_, Some(p)) => write!(f, "{p}:")?,
            (Some(_), None) => f.write_str(":")?,
            (None, None) => {}
        }
        write!(f, "{}/{}", self.container_port, self.protocol)?;
        if self.host_mode {
            f.write_str("/host")?;
        }
        Ok(())
    }
}
serde_via_str!(PortBinding);

/// A port the container exposes without publishing it (`expose`): `PORT[/PROTO]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ContainerPort {
    pub port: u16,
    pub protocol: Protocol,
}

impl ContainerPort {
    /// `PORT[/PROTO]` or a range `FROM-TO[/PROTO]`, as compose's `expose` takes them.
    pub fn parse_range(s: &str) -> Result<Vec<ContainerPort>, Invalid> {
        let bad = || Invalid(format!("invalid port `{s}`: expected PORT or FROM-TO, with an optional /tcp or /udp"));
        let (ports, protocol) = match s.rsplit_once('/') {
            Some((p, "tcp")) => (p, Protocol::Tcp),
            Some((p, "udp")) => (p, Protocol::Udp),
            Some(_) => return Err(bad()),
            None => (s, Protocol::Tcp),
        };
        let one = |p: &str| p.trim().parse::<u16>().ok().filter(|n| *n > 0).ok_or_else(bad);
        let (from, to) = match ports.split_once('-') {
            Some((a, b)) => (one(a)?, one(b)?),
            None => (one(ports)?, one(ports)?),
        };
        if from > to {
            return Err(bad());
        }
        Ok((from..=to).map(|port| ContainerPort { port, protocol }).collect())
    }
}

impl FromStr for ContainerPort {
    type Err = Invalid;
    fn from_str(s: &str) -> Result<Self, Invalid> {
        match ContainerPort::parse_range(s)?.as_slice() {
            [one] => Ok(*one),
            _ => Err(Invalid(format!("invalid port `{s}`: one port, not a range"))),
        }
    }
}

impl fmt::Display for ContainerPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.port, self.protocol)
    }
}
serde_via_str!(ContainerPort);

/// A host device made visible in the container: `HOST[:CONTAINER[:PERMISSIONS]]`, as docker's `--device`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Device {
    pub host: String,
    pub container: String,
    /// Some of `r`, `w` and `m` (read, write, mknod).
    pub permissions: String,
}

impl FromStr for Device {
    type Err = Invalid;
    fn from_str(s: &str) -> Result<Self, Invalid> {
        let bad = |why: &str| format!("invalid device `{s}`: {why}; expected HOST[:CONTAINER[:PERMISSIONS]]");
        let parts: Vec<&str> = s.split(':').collect();
        let perms = |p: &str| !p.is_empty() && p.len() <= 3 && p.chars().all(|c| matches!(c, 'r' | 'w' | 'm'));
        let (host, container, permissions) = match parts.as_slice() {
            [h] => (*h, *h, "rwm"),
            [h, p] if perms(p) => (*h, *h, *p),
            [h, c] => (*h, *c, "rwm"),
            [h, c, p] if perms(p) => (*h, *c, *p),
            [_, _, _] => return Err(bad("permissions are some of r, w and m").into()),
            _ => return Err(bad("too many `:`").into()),
        };
        for path in [host, container] {
            if !path.starts_with('/') {
                return Err(bad("paths must be absolute").into());
            }
        }
        Ok(Device { host: host.into(), container: container.into(), permissions: permissions.into() })
    }
}

impl fmt::Display for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.host, self.container, self.permissions)
    }
}
serde_via_str!(Device);

/// Permission bits of a file, written and read in octal as `chmod` takes them (`0440`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FileMode(pub u32);

impl FromStr for FileMode {
    type Err = Invalid;
    fn from_str(s: &str) -> Result<Self, Invalid> {
        let digits = s.strip_prefix("0o").unwrap_or(s);
        match u32::from_str_radix(digits, 8) {
            Ok(m) if m <= 0o777 => Ok(FileMode(m)),
            _ => Err(Invalid(format!("invalid file mode `{s}`: expected octal permission bits, like 0440"))),
        }
    }
}

impl fmt::Display for FileMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04o}", self.0)
    }
}
serde_via_str!(FileMode);

/// A container restart policy, as docker's `--restart`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RestartPolicy {
    No,
    Always,
    UnlessStopped,
    OnFailure(Option<u32>),
}

impl FromStr for RestartPolicy {
    type Err = Invalid;
    fn from_str(s: &str) -> Result<Self, Invalid> {
        Ok(match s {
            "no" => RestartPolicy::No,
            "always" => RestartPolicy::Always,
            "unless-stopped" => RestartPolicy::UnlessStopped,
            "on-failure" => RestartPolicy::OnFailure(None),
            _ => match s.strip_prefix("on-failure:").map(str::parse::<u32>) {
                Some(Ok(n)) => RestartPolicy::OnFailure(Some(n)),
                _ => {
                    return Err(Invalid(format!(
                        "invalid restart policy `{s}`: expected no, always, unless-stopped, on-failure or on-failure:N"
                    )))
                }
            },
        })
    }
}

impl fmt::Display for RestartPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RestartPolicy::No => f.write_str("no"),
            RestartPolicy::Always => f.write_str("always"),
            RestartPolicy::UnlessStopped => f.write_str("unless-stopped"),
            RestartPolicy::OnFailure(None) => f.write_str("on-failure"),
            RestartPolicy::OnFailure(Some(n)) => write!(f, "on-failure:{n}"),
        }
    }
}
serde_via_str!(RestartPolicy);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_have_one_canonical_form() {
        let d: Duration = "90s".parse().unwrap();
        assert_eq!(d.to_string(), "1m30s");
        assert_eq!("1m30s".parse::<Duration>().unwrap(), d);
        assert_eq!("500ms".parse::<Duration>().unwrap().to_string(), "500ms");
        assert_eq!("1.5s".parse::<Duration>().unwrap().to_string(), "1500ms");
        assert_eq!("2h".parse::<Duration>().unwrap().to_string(), "2h");
        for bad in ["", "5", "5x", "s", "-1s"] {
            assert!(bad.parse::<Duration>().is_err(), "{bad}");
        }
    }

    #[test]
    fn sizes_binary_and_decimal() {
        assert_eq!("64Mi".parse::<ByteSize>().unwrap().0, 64 << 20);
        assert_eq!("1G".parse::<ByteSize>().unwrap().0, 1_000_000_000);
        assert_eq!("1024Ki".parse::<ByteSize>().unwrap().to_string(), "1Mi");
        assert!("64m".parse::<ByteSize>().unwrap_err().0.contains("ambiguous"));
        assert!("lots".parse::<ByteSize>().is_err());
    }

    #[test]
    fn ports_short_forms() {
        let p: PortBinding = "8080:80".parse().unwrap();
        assert_eq!((p.host_ip, p.host_port, p.container_port, p.protocol), (None, Some(8080), 80, Protocol::Tcp));
        assert_eq!(p.to_string(), "8080:80/tcp");
        let p: PortBinding = "127.0.0.1:53:53/udp".parse().unwrap();
        assert_eq!(p.to_string(), "127.0.0.1:53:53/udp");
        assert_eq!("[::1]:80:80".parse::<PortBinding>().unwrap().to_string(), "[::1]:80:80/tcp");
        assert_eq!("80".parse::<PortBinding>().unwrap().to_string(), "80/tcp");
        for bad in ["0:80", "70000:80", "a:b", "1.2.3:80:80", "80/sctp", "1:2:3:4"] {
            assert!(bad.parse::<PortBinding>().is_err(), "{bad}");
        }
    }

    #[test]
    fn exposed_ports_and_devices() {
        let r = ContainerPort::parse_range("8000-8002/udp").unwrap();
        assert_eq!(r.iter().map(|p| p.to_string()).collect::<Vec<_>>(), ["8000/udp", "8001/udp", "8002/udp"]);
        assert_eq!("3000".parse::<ContainerPort>().unwrap().to_string(), "3000/tcp");
        for bad in ["0", "9-3", "80/sctp", "x"] {
            assert!(ContainerPort::parse_range(bad).is_err(), "{bad}");
        }
        assert_eq!("/dev/dri".parse::<Device>().unwrap().to_string(), "/dev/dri:/dev/dri:rwm");
        assert_eq!("/dev/ttyUSB0:r".parse::<Device>().unwrap().to_string(), "/dev/ttyUSB0:/dev/ttyUSB0:r");
        assert_eq!("/dev/a:/dev/b:rw".parse::<Device>().unwrap().to_string(), "/dev/a:/dev/b:rw");
        for bad in ["dev/a", "/dev/a:/dev/b:x", "/a:/b:r:w"] {
            assert!(bad.parse::<Device>().is_err(), "{bad}");
        }
    }

    #[test]
    fn restart_policies() {
        for s in ["no", "always", "unless-stopped", "on-failure", "on-failure:3"] {
            assert_eq!(s.parse::<RestartPolicy>().unwrap().to_string(), s);
        }
        assert!("sometimes".parse::<RestartPolicy>().is_err());
    }
}
