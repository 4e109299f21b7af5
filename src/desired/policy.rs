//! The host policy: what a repository may ask of this host. It lives outside the repository (a
//! TOML file given to the CLI or the service), because whoever can push must not be able to
//! grant themselves the host. Checked at validation, so a refused revision changes nothing.

use super::diag::{Diagnostic, Diagnostics, Pos, Sink};
use super::model::{ContainerSpec, Mount, NetworkSpec, VolumeSpec};
use super::types::{ByteSize, Capability, Invalid};
use serde::Deserialize;
use std::path::{Component, Path, PathBuf};

/// Capabilities that give a container the host (or most of it); refused unless allowed by name.
pub const DANGEROUS_CAPABILITIES: &[&str] = &[
    "ALL",
    "SYS_ADMIN",
    "SYS_MODULE",
    "SYS_PTRACE",
    "SYS_RAWIO",
    "SYS_BOOT",
    "SYS_TIME",
    "NET_ADMIN",
    "DAC_READ_SEARCH",
    "MAC_ADMIN",
    "MAC_OVERRIDE",
    "BPF",
    "PERFMON",
    "SYSLOG",
    "LINUX_IMMUTABLE",
];

/// Engine sockets a container must never get without an explicit allowance: with it, it owns the host.
pub const ENGINE_SOCKETS: &[&str] = &["/var/run/docker.sock", "/run/docker.sock"];

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Policy {
    #[serde(default)]
    pub allow_privileged: bool,
    #[serde(default)]
    pub allow_host_network: bool,
    /// Dangerous capabilities allowed anyway, by name in any spelling (`NET_ADMIN`, `cap_net_admin`).
    #[serde(default)]
    pub allow_capabilities: Vec<Capability>,
    /// Host folders under which bind mounts may point, after `..` and symlinks are resolved.
    #[serde(default = "default_bind_roots")]
    pub bind_roots: Vec<PathBuf>,
    #[serde(default)]
    pub allow_engine_socket: bool,
    /// Volume drivers other than `local` (plugins), by name.
    #[serde(default)]
    pub allow_volume_drivers: Vec<String>,
    /// Local volumes of a network filesystem (`type: nfs`, `cifs`, ...), which the host mounts.
    #[serde(default)]
    pub allow_network_volumes: bool,
    /// Network drivers other than bridge and overlay (`macvlan`, `ipvlan`), by name.
    #[serde(default)]
    pub allow_network_drivers: Vec<String>,
    /// Host devices containers may use, by path; a trailing `*` matches a prefix (`/dev/dri/*`).
    #[serde(default)]
    pub allow_devices: Vec<String>,
    /// Security options that switch confinement off (`seccomp=unconfined`, `apparmor=unconfined`,
    /// `label=disable`, `systempaths=unconfined`, a seccomp profile of the repository's).
    #[serde(default)]
    pub allow_unconfined: bool,
    /// `pid: host`: the container sees, and can signal, every process of the host.
    #[serde(default)]
    pub allow_host_pid: bool,
    /// `ipc: host`: the host's shared memory and semaphores.
    #[serde(default)]
    pub allow_host_ipc: bool,
    /// Variables of hawser's own environment that compose files may read (`${VAR}`, a bare
    /// `- VAR` entry, `secrets.environment`), by name; `*` matches any run of characters. The
    /// rest are as if unset, so a repository cannot read, say, a CI runner's tokens.
    #[serde(default = "all_variables")]
    pub allow_variables: Vec<String>,
    /// The age identity (private key) file that decrypts `.age` files of the repository that
    /// containers mount (compose secrets and configs). Only the host has it.
    #[serde(default)]
    pub age_identity: Option<PathBuf>,
    /// Host folders `secretEnv` files may be read from.
    #[serde(default = "default_secret_roots")]
    pub secret_roots: Vec<PathBuf>,
    /// The most one image layer may unpack to (native target): a small compressed blob can
    /// otherwise grow to fill the disk.
    #[serde(default = "default_max_layer_size")]
    pub max_layer_size: ByteSize,
    /// The most a file or folder of the repository that containers mount may hold, in all,
    /// and an age file of it decrypt to: each is held in memory as it is written.
    #[serde(default = "default_max_repo_file_size")]
    pub max_repo_file_size: ByteSize,
    /// The socket of the engine hawser drives, added by the CLI from `--host`.
    #[serde(skip)]
    pub engine_sockets: Vec<PathBuf>,
}

fn default_max_layer_size() -> ByteSize {
    ByteSize(super::model::HostLimits::default().layer)
}

fn default_max_repo_file_size() -> ByteSize {
    ByteSize(super::model::HostLimits::default().file)
}

fn all_variables() -> Vec<String> {
    vec!["*".into()]
}

fn default_secret_roots() -> Vec<PathBuf> {
    vec![PathBuf::from("/etc/hawser/secrets")]
}

fn default_bind_roots() -> Vec<PathBuf> {
    vec![PathBuf::from("/srv"), PathBuf::from("/opt")]
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            allow_privileged: false,
            allow_host_network: false,
            allow_capabilities: Vec::new(),
            bind_roots: default_bind_roots(),
            allow_engine_socket: false,
            allow_volume_drivers: Vec::new(),
            allow_network_volumes: false,
            allow_network_drivers: Vec::new(),
            allow_devices: Vec::new(),
            allow_unconfined: false,
            allow_host_pid: false,
            allow_host_ipc: false,
            age_identity: None,
            allow_variables: all_variables(),
            secret_roots: default_secret_roots(),
            max_layer_size: default_max_layer_size(),
            max_repo_file_size: default_max_repo_file_size(),
            engine_sockets: Vec::new(),
        }
    }
}

/// Security options that only add confinement: `no-new-privileges`, a named AppArmor profile,
/// SELinux user, role and level. Everything else (unconfined seccomp or AppArmor, a seccomp
/// profile, `label=disable` or `label=type:`, `systempaths=unconfined`) may take it away.
fn confining(opt: &str) -> bool {
    let (key, value) = opt.split_once(['=', ':']).unwrap_or((opt, ""));
    match key {
        "no-new-privileges" => matches!(value, "" | "true"),
        "apparmor" => !value.is_empty() && value != "unconfined",
        "label" => ["user:", "role:", "level:"].iter().any(|p| value.starts_with(p)),
        _ => false,
    }
}

/// `pattern` with `*` for any run of characters, matched against the whole of `name`.
fn glob_match(pattern: &str, name: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == name;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !name.starts_with(first) || !name[first.len()..].ends_with(last) || name.len() < first.len() + last.len() {
        return false;
    }
    let mut rest = &name[first.len()..name.len() - last.len()];
    for part in &parts[1..parts.len() - 1] {
        match rest.find(part) {
            Some(i) => rest = &rest[i + part.len()..],
            None => return false,
        }
    }
    true
}

/// Network drivers that attach to nothing of the host's own: others (macvlan and ipvlan put
/// containers on a host interface) must be allowed by name.
pub const CONTAINED_NETWORK_DRIVERS: &[&str] = &["bridge", "overlay"];

/// Filesystem types of the local volume driver that mount a remote share from the host.
pub const NETWORK_FILESYSTEMS: &[&str] =
    &["nfs", "nfs4", "cifs", "smb", "smb3", "smbfs", "ceph", "glusterfs", "sshfs", "9p", "afs", "lustre"];

/// Filesystem types of the local driver that mount nothing of the host's but the `device`
/// they are given (held to the bind roots): a bind, memory, an overlay, a disk.
pub const LOCAL_FILESYSTEMS: &[&str] = &[
    "none", "bind", "rbind", "tmpfs", "ramfs", "overlay", "ext2", "ext3", "ext4", "xfs", "btrfs", "vfat", "exfat",
    "ntfs", "ntfs3", "f2fs", "iso9660", "udf", "squashfs", "erofs", "zfs",
];

/// Mount options whose value is a host path, or a `:`-separated list of them (overlayfs's
/// layers, ext4's external journal, XFS's log and realtime devices, btrfs's member devices,
/// the credentials file mount.cifs reads).
const PATH_OPTIONS: &[&str] = &[
    "lowerdir",
    "lowerdir+",
    "upperdir",
    "workdir",
    "datadir+",
    "journal_path",
    "logdev",
    "rtdev",
    "device",
    "credentials",
    "cred",
];

/// `o` of a local volume as the kernel reads it: comma-separated `key` or `key=value`.
fn mount_options(o: &str) -> Vec<(String, Option<String>)> {
    o.split(',')
        .map(str::trim)
        .filter(|kv| !kv.is_empty())
        .map(|kv| match kv.split_once('=') {
            Some((k, v)) => (k.trim().to_ascii_lowercase(), Some(v.trim().to_string())),
            None => (kv.to_ascii_lowercase(), None),
        })
        .collect()
}

/// `value` split at each `sep` not escaped by a backslash (overlayfs writes `\:` for a colon).
fn split_unescaped(value: &str, sep: char) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut start, mut escaped) = (0, false);
    for (i, c) in value.char_indices() {
        if escaped {
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == sep {
            out.push(&value[start..i]);
            start = i + c.len_utf8();
        }
    }
    out.push(&value[start..]);
    out
}

/// A part of the desired state that the policy refuses: `at` is its key in the resource's
/// [`Spans`](super::decode::Spans), for the position of the message.
#[derive(Clone, Debug, PartialEq)]
pub struct Finding {
    pub at: String,
    pub message: String,
}

impl Finding {
    fn new(at: impl Into<String>, message: impl Into<String>) -> Finding {
        Finding { at: at.into(), message: message.into() }
    }
}

impl Policy {
    /// The bounds this policy sets on applying.
    pub fn host_limits(&self) -> super::model::HostLimits {
        super::model::HostLimits { layer: self.max_layer_size.0, file: self.max_repo_file_size.0 }
    }

    /// Reads a policy file; its errors are positioned like manifest errors.
    pub fn from_file(path: &Path) -> Result<Policy, Diagnostics> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| {
            Diagnostics(vec![Diagnostic {
                file: shown.clone(),
                pos: Pos::new(1, 1),
                message: format!("cannot read the policy: {e}"),
                source: None,
            }])
        })?;
        toml::from_str(&text).map_err(|e| {
            let mut diags = Vec::new();
            let pos = e.span().map(|s| Pos::from_offset(&text, s.start)).unwrap_or(Pos::new(1, 1));
            Sink::new(&shown, &text, &mut diags).error(pos, format!("policy: {}", e.message()));
            Diagnostics(diags)
        })
    }

    /// Every part of a Container the policy refuses. It reads the typed spec, the very values
    /// the engine is sent, so no spelling of a field can pass here and mean more there.
    pub fn check_container(&self, s: &ContainerSpec) -> Vec<Finding> {
        let mut out = Vec::new();
        if s.privileged == Some(true) && !self.allow_privileged {
            out.push(Finding::new("privileged", "`privileged: true` is refused by the host policy (allowPrivileged)"));
        }
        if s.post_start.iter().chain(&s.pre_stop).any(|h| h.privileged) && !self.allow_privileged {
            out.push(Finding::new(
                "postStart",
                "a privileged lifecycle hook is refused by the host policy (allowPrivileged)",
            ));
        }
        if s.network_mode.as_deref() == Some("host") && !self.allow_host_network {
            out.push(Finding::new(
                "networkMode",
                "`networkMode: host` is refused by the host policy (allowHostNetwork)",
            ));
        }
        // The engine's own network named `host` is the host network by another name.
        if s.networks.contains_key("host") && !self.allow_host_network {
            out.push(Finding::new(
                "networks/host",
                "network `host` is the host's network; refused by the host policy (allowHostNetwork)",
            ));
        }
        for c in &s.cap_add {
            if let Err(why) = self.check_capability(c) {
                out.push(Finding::new(format!("capAdd/{c}"), why));
            }
        }
        for m in &s.volumes {
            let checked = match m {
                Mount::Bind { source, target, .. } => self.check_bind(source).map_err(|why| (target, why)),
                Mount::Secret { file, target, .. } => self.check_secret_file(file).map_err(|why| (target, why)),
                _ => Ok(()),
            };
            if let Err((target, why)) = checked {
                out.push(Finding::new(format!("volumes/{target}"), why));
            }
        }
        for (name, secret) in &s.secret_env {
            if let Err(why) = self.check_secret_file(&secret.file) {
                out.push(Finding::new(format!("secretEnv/{name}"), why));
            }
        }
        for d in &s.devices {
            let allowed = self.allow_devices.iter().any(|a| match a.strip_suffix('*') {
                Some(prefix) => d.host.starts_with(prefix),
                None => a == &d.host,
            });
            if !allowed {
                out.push(Finding::new(
                    format!("devices/{}", d.host),
                    format!("device `{}` of the host is refused by the host policy (allowDevices)", d.host),
                ));
            }
        }
        for opt in &s.security_opt {
            if !self.allow_unconfined && !confining(opt) {
                out.push(Finding::new(
                    "securityOpt",
                    format!("security option `{opt}` weakens the container's confinement; refused by the host policy (allowUnconfined)"),
                ));
            }
        }
        if s.pid.as_deref() == Some("host") && !self.allow_host_pid {
            out.push(Finding::new(
                "pid",
                "`pid: host` shares the host's processes; refused by the host policy (allowHostPid)",
            ));
        }
        if s.ipc.as_deref() == Some("host") && !self.allow_host_ipc {
            out.push(Finding::new(
                "ipc",
                "`ipc: host` shares the host's IPC; refused by the host policy (allowHostIpc)",
            ));
        }
        out
    }

    /// A Volume's driver and options. The local driver hands `type`, `device` and `o` to
    /// mount(2) as the engine runs it, on the host: `device` is a host path (bind) or a host
    /// device, every host path inside `o` (overlayfs's `lowerdir`, `upperdir`, `workdir`; a
    /// journal or log device) is a bind by another name, `type` may mount a network share, and
    /// a kernel filesystem (`proc`, `sysfs`...) would hand the container the host's view of it.
    /// A build whose `RUN` steps would use the host's network is the host's network as much
    /// as a container's `networkMode: host` is.
    pub fn check_image(&self, s: &super::model::ImageSpec) -> Vec<Finding> {
        let mut out = Vec::new();
        if s.build.as_ref().is_some_and(|b| b.network.as_deref() == Some("host")) && !self.allow_host_network {
            out.push(Finding::new(
                "build",
                "a build on the host's network (`network: host`) is refused by the host policy (allowHostNetwork)",
            ));
        }
        out
    }

    pub fn check_volume(&self, s: &VolumeSpec) -> Vec<Finding> {
        let mut out = Vec::new();
        if s.external {
            return out;
        }
        if s.driver != "local" {
            if !self.allow_volume_drivers.contains(&s.driver) {
                out.push(Finding::new(
                    "driver",
                    format!("volume driver `{}` is refused by the host policy (allowVolumeDrivers)", s.driver),
                ));
            }
            return out;
        }
        let ty = s.driver_opts.get("type").map(|t| t.trim().to_ascii_lowercase());
        let options = s.driver_opts.get("o").map(|o| mount_options(o)).unwrap_or_default();
        let binds = options.iter().any(|(k, v)| v.is_none() && matches!(k.as_str(), "bind" | "rbind"));
        let family = ty.as_deref().map(|t| t.split('.').next().unwrap_or(t));
        if let Some(fs) = family {
            if NETWORK_FILESYSTEMS.contains(&fs) {
                if !self.allow_network_volumes {
                    out.push(Finding::new(
                        "driverOpts/type",
                        format!("a `{fs}` volume mounts a network share from the host; refused by the host policy (allowNetworkVolumes)"),
                    ));
                    return out;
                }
            } else if !binds && !LOCAL_FILESYSTEMS.contains(&fs) && !self.allow_unconfined {
                out.push(Finding::new(
                    "driverOpts/type",
                    format!("volume type `{fs}` is not a disk, tmpfs or overlay filesystem: a kernel filesystem would show the container the host's own; refused by the host policy (allowUnconfined)"),
                ));
            }
        }
        // Every host path an option names, whatever the type: the kernel reads them all. A
        // network share's other options (a password, an export) are not the host's paths.
        let remote = family.is_some_and(|t| NETWORK_FILESYSTEMS.contains(&t));
        for (key, value) in &options {
            let Some(value) = value else { continue };
            let paths: Vec<&str> = if PATH_OPTIONS.contains(&key.as_str()) {
                split_unescaped(value, ':')
            } else if value.contains('/') && !remote {
                vec![value.as_str()]
            } else {
                continue;
            };
            for path in paths.into_iter().filter(|p| !p.is_empty()) {
                let why = if path.starts_with('/') {
                    self.check_bind(&path.replace("\\:", ":")).err().map(String::from)
                } else {
                    Some(format!("`{key}={path}` is relative to wherever the engine runs; give an absolute path"))
                };
                if let Some(why) = why {
                    out.push(Finding::new("driverOpts/o", format!("volume option `{key}`: {why}")));
                }
            }
        }
        if let Some(device) = s.driver_opts.get("device") {
            // tmpfs and overlay take any word as their device: it names nothing on the host.
            let nameless = family.is_some_and(|t| matches!(t, "tmpfs" | "ramfs" | "overlay")) && !binds;
            if binds || (!remote && !nameless) {
                // A bind or a block device: either way a host path, held to the bind roots.
                if let Err(why) = self.check_bind(device) {
                    out.push(Finding::new("driverOpts/device", format!("volume device: {why}")));
                }
            }
        } else if binds {
            out.push(Finding::new("driverOpts/o", "a bind volume needs `device`, the host path it binds"));
        }
        out
    }

    /// A Network's driver: one that puts containers on a host interface must be allowed.
    pub fn check_network(&self, s: &NetworkSpec) -> Vec<Finding> {
        let mut out = Vec::new();
        if s.external {
            return out;
        }
        if s.driver == "host" && !self.allow_host_network {
            out.push(Finding::new("driver", "network driver `host` is refused by the host policy (allowHostNetwork)"));
        } else if !CONTAINED_NETWORK_DRIVERS.contains(&s.driver.as_str())
            && !self.allow_network_drivers.contains(&s.driver)
        {
            out.push(Finding::new(
                "driver",
                format!(
                    "network driver `{}` attaches containers to the host's interfaces; refused by the host policy (allowNetworkDrivers)",
                    s.driver
                ),
            ));
        }
        if let Some(parent) = s.driver_opts.get("parent") {
            if !self.allow_network_drivers.contains(&s.driver) {
                out.push(Finding::new(
                    "driverOpts/parent",
                    format!("network option `parent: {parent}` names a host interface; refused by the host policy (allowNetworkDrivers)"),
                ));
            }
        }
        out
    }

    fn check_capability(&self, c: &Capability) -> Result<(), Invalid> {
        if DANGEROUS_CAPABILITIES.contains(&c.as_str()) && !self.allow_capabilities.iter().any(|a| a == c) {
            return Err(Invalid(format!("capability `{c}` is refused by the host policy (allowCapabilities)")));
        }
        Ok(())
    }

    /// Whether compose files may read variable `name` of hawser's environment.
    pub fn allows_variable(&self, name: &str) -> bool {
        self.allow_variables.iter().any(|pattern| glob_match(pattern, name))
    }

    fn check_secret_file(&self, file: &str) -> Result<(), Invalid> {
        let resolved = resolve(Path::new(file));
        if self.secret_roots.iter().any(|r| resolved.starts_with(resolve(r))) {
            return Ok(());
        }
        let roots: Vec<String> = self.secret_roots.iter().map(|r| r.display().to_string()).collect();
        Err(Invalid(format!(
            "secret file `{file}` is outside the allowed roots ({}); refused by the host policy (secretRoots)",
            roots.join(", ")
        )))
    }

    fn check_bind(&self, source: &str) -> Result<(), Invalid> {
        let resolved = resolve(Path::new(source));
        let sockets = ENGINE_SOCKETS.iter().map(PathBuf::from).chain(self.engine_sockets.iter().cloned());
        for socket in sockets {
            if resolve(&socket).starts_with(&resolved) && !self.allow_engine_socket {
                return Err(Invalid(format!(
                    "bind mount `{source}` exposes the engine socket {}, which gives the container the host; refused by the host policy (allowEngineSocket)",
                    socket.display()
                )));
            }
        }
        if self.allow_engine_socket && ENGINE_SOCKETS.iter().any(|s| resolve(Path::new(s)) == resolved) {
            return Ok(());
        }
        if self.bind_roots.iter().any(|root| resolved.starts_with(resolve(root))) {
            return Ok(());
        }
        let shown = if resolved.as_path() != Path::new(source) {
            format!("`{source}` (resolved to {})", resolved.display())
        } else {
            format!("`{source}`")
        };
        let roots: Vec<String> = self.bind_roots.iter().map(|r| r.display().to_string()).collect();
        Err(Invalid(format!(
            "bind mount {shown} is outside the allowed roots ({}); refused by the host policy (bindRoots)",
            if roots.is_empty() { "none".to_string() } else { roots.join(", ") }
        )))
    }
}

/// The real path `p` names: symlinks of the part that exists are resolved, `.` and `..` of the
/// rest are applied lexically.
pub fn resolve(p: &Path) -> PathBuf {
    let mut existing = p.to_path_buf();
    let mut rest: Vec<std::ffi::OsString> = Vec::new();
    loop {
        if let Ok(real) = std::fs::canonicalize(&existing) {
            let mut out = real;
            for c in rest.iter().rev() {
                match c.to_str() {
                    Some("..") => {
                        out.pop();
                    }
                    Some(".") => {}
                    _ => out.push(c),
                }
            }
            return out;
        }
        match (existing.file_name().map(|f| f.to_os_string()), existing.parent()) {
            (Some(name), Some(parent)) => {
                rest.push(name);
                existing = parent.to_path_buf();
            }
            _ => {
                // Only `..` left or nothing exists: normalize lexically.
                let mut out = PathBuf::new();
                for c in p.components() {
                    match c {
                        Component::ParentDir => {
                            out.pop();
                        }
                        Component::CurDir => {}
                        other => out.push(other),
                    }
                }
                return out;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn variable_patterns_match_whole_names() {
        for (pattern, name, ok) in [
            ("*", "ANY", true),
            ("TAG", "TAG", true),
            ("TAG", "TAGS", false),
            ("APP_*", "APP_PORT", true),
            ("APP_*", "MY_APP_PORT", false),
            ("*_PASSWORD", "DB_PASSWORD", true),
            ("A*B*C", "AxxBxxC", true),
            ("A*B*C", "AxxC", false),
            ("AB*BA", "ABA", false),
        ] {
            assert_eq!(super::glob_match(pattern, name), ok, "{pattern} {name}");
        }
    }

    use super::*;

    fn caps(names: &[&str]) -> ContainerSpec {
        ContainerSpec { cap_add: names.iter().map(|n| n.parse().unwrap()).collect(), ..Default::default() }
    }

    fn bind(source: &str) -> ContainerSpec {
        ContainerSpec {
            volumes: vec![Mount::Bind { source: source.into(), target: "/x".into(), read_only: false }],
            ..Default::default()
        }
    }

    fn refused(p: &Policy, s: &ContainerSpec) -> Option<String> {
        p.check_container(s).first().map(|f| f.message.clone())
    }

    #[test]
    fn dangerous_things_are_refused_by_default_and_allowed_by_name() {
        let p = Policy::default();
        let privileged = ContainerSpec { privileged: Some(true), ..Default::default() };
        let host = ContainerSpec { network_mode: Some("host".into()), ..Default::default() };
        let host_by_name =
            ContainerSpec { networks: [("host".to_string(), Default::default())].into(), ..Default::default() };
        assert!(refused(&p, &privileged).is_some());
        assert!(refused(&p, &host).is_some());
        assert!(refused(&p, &host_by_name).is_some(), "an external Network named host is the host network");
        assert!(refused(&p, &caps(&["SYS_ADMIN"])).is_some());
        assert!(refused(&p, &caps(&["NET_BIND_SERVICE"])).is_none());
        let p = Policy {
            allow_privileged: true,
            allow_host_network: true,
            allow_capabilities: vec!["cap_sys_admin".parse().unwrap()],
            ..Policy::default()
        };
        assert!(refused(&p, &privileged).is_none());
        assert!(refused(&p, &host).is_none());
        assert!(refused(&p, &caps(&["SYS_ADMIN"])).is_none());
    }

    /// Regression: `cap_sys_admin` passed because the check stripped only an upper-case prefix.
    #[test]
    fn every_spelling_of_a_capability_is_the_same_capability() {
        let p = Policy::default();
        for spelling in ["cap_sys_admin", "Cap_Sys_Module", "CAP_SYS_ADMIN", "sys_admin", " SYS_ADMIN"] {
            let spec = caps(&[spelling]);
            let f = p.check_container(&spec);
            assert_eq!(f.len(), 1, "{spelling} passed the policy");
            assert!(f[0].message.contains("is refused"), "{spelling}: {f:?}");
        }
        assert_eq!("cap_sys_admin".parse::<Capability>().unwrap().as_str(), "SYS_ADMIN");
        let e = "SYS_ADMN".parse::<Capability>().unwrap_err();
        assert!(e.0.contains("did you mean `SYS_ADMIN`"), "{e}");
    }

    #[test]
    fn binds_are_resolved_before_the_roots_are_checked() {
        let root = tempfile::tempdir().unwrap();
        let allowed = root.path().join("allowed");
        std::fs::create_dir_all(allowed.join("data")).unwrap();
        std::os::unix::fs::symlink("/etc", allowed.join("escape")).unwrap();
        let p = Policy { bind_roots: vec![allowed.clone()], ..Policy::default() };
        let ok = allowed.join("data").join("new-dir");
        assert!(refused(&p, &bind(&ok.display().to_string())).is_none());
        let dotdot = format!("{}/data/../../../etc", allowed.display());
        let e = refused(&p, &bind(&dotdot)).unwrap();
        assert!(e.contains("outside the allowed roots"), "{e}");
        let link = allowed.join("escape").join("passwd").display().to_string();
        let e = refused(&p, &bind(&link)).unwrap();
        assert!(e.contains("resolved to /etc/passwd"), "{e}");
    }

    #[test]
    fn the_engine_socket_and_its_folders_are_refused_unless_allowed() {
        let p = Policy { bind_roots: vec!["/".into()], ..Policy::default() };
        for s in ["/var/run/docker.sock", "/run/docker.sock", "/run"] {
            let e = refused(&p, &bind(s)).unwrap();
            assert!(e.contains("engine socket"), "{s}: {e}");
        }
        let p = Policy { allow_engine_socket: true, bind_roots: vec![], ..Policy::default() };
        assert!(refused(&p, &bind("/var/run/docker.sock")).is_none());
        assert!(refused(&p, &bind("/etc")).is_some());
    }

    fn local_volume(opts: &[(&str, &str)]) -> VolumeSpec {
        VolumeSpec {
            driver: "local".into(),
            driver_opts: opts.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            ..Default::default()
        }
    }

    /// Regression: a Volume with `type: none, o: bind, device: /etc` mounted any host path.
    #[test]
    fn volume_devices_are_held_to_the_bind_roots() {
        let p = Policy { bind_roots: vec!["/srv".into()], ..Policy::default() };
        let f = p.check_volume(&local_volume(&[("type", "none"), ("o", "bind"), ("device", "/etc")]));
        assert_eq!(f.len(), 1, "{f:?}");
        assert_eq!(f[0].at, "driverOpts/device");
        assert!(f[0].message.contains("outside the allowed roots"), "{f:?}");
        // The kernel binds whatever the type says when `o` asks for it.
        let f = p.check_volume(&local_volume(&[("type", "tmpfs"), ("o", "rbind,ro"), ("device", "/root")]));
        assert_eq!(f.len(), 1, "{f:?}");
        // A block device is a host path too.
        let f = p.check_volume(&local_volume(&[("type", "ext4"), ("device", "/dev/sda1")]));
        assert_eq!(f.len(), 1, "{f:?}");
        assert!(p.check_volume(&local_volume(&[("type", "none"), ("o", "bind"), ("device", "/srv/data")])).is_empty());
        assert!(p.check_volume(&local_volume(&[("type", "tmpfs"), ("device", "tmpfs"), ("o", "size=10m")])).is_empty());
        assert!(p.check_volume(&local_volume(&[])).is_empty());
    }

    /// Attack: `type: overlay, o: lowerdir=/etc,...` with a `device` inside the bind roots
    /// validated, and the container read the host's /etc/shadow. Every host path in `o` counts.
    #[test]
    fn an_overlay_volume_cannot_reach_host_folders_through_its_mount_options() {
        let p = Policy { bind_roots: vec!["/srv".into()], ..Policy::default() };
        let overlay = |o: &str| local_volume(&[("type", "overlay"), ("device", "/srv/x"), ("o", o)]);
        let f = p.check_volume(&overlay("lowerdir=/etc,upperdir=/srv/u,workdir=/srv/w"));
        assert_eq!(f.len(), 1, "{f:?}");
        assert_eq!(f[0].at, "driverOpts/o");
        assert!(f[0].message.contains("`lowerdir`") && f[0].message.contains("`/etc`"), "{f:?}");
        // Each layer of a list, an escaped colon kept in its path, upper and work dirs alike.
        let f = p.check_volume(&overlay("lowerdir=/srv/a:/root,upperdir=/srv/u,workdir=/var/tmp/w"));
        assert_eq!(f.len(), 2, "{f:?}");
        let f = p.check_volume(&overlay("lowerdir=/srv/a\\:b:/srv/c,upperdir=/srv/u,workdir=/srv/w"));
        assert!(f.is_empty(), "{f:?}");
        // `..` and relative paths (read from the engine's working folder) are no way around it.
        assert_eq!(p.check_volume(&overlay("lowerdir=/srv/../etc,upperdir=/srv/u,workdir=/srv/w")).len(), 1);
        assert_eq!(p.check_volume(&overlay("lowerdir=etc,upperdir=/srv/u,workdir=/srv/w")).len(), 1);
        // Option names in any case, and a path in an option of another name.
        assert_eq!(p.check_volume(&overlay("LowerDir=/etc,upperdir=/srv/u,workdir=/srv/w")).len(), 1);
        let f = p.check_volume(&local_volume(&[
            ("type", "ext4"),
            ("device", "/srv/disk.img"),
            ("o", "journal_path=/dev/sda2"),
        ]));
        assert_eq!(f.len(), 1, "{f:?}");
        // A kernel filesystem shows the host's own processes or devices.
        for ty in ["proc", "sysfs", "debugfs", "cgroup2", "devtmpfs"] {
            let f = p.check_volume(&local_volume(&[("type", ty), ("device", ty)]));
            assert!(
                f.iter().any(|f| f.at == "driverOpts/type" && f.message.contains("allowUnconfined")),
                "{ty}: {f:?}"
            );
        }
        // A network share's password is no path; its credentials file is.
        let p2 = Policy { allow_network_volumes: true, ..p.clone() };
        let cifs = |o: &str| local_volume(&[("type", "cifs"), ("device", "//198.18.0.9/share"), ("o", o)]);
        assert!(p2.check_volume(&cifs("username=u,password=a/b,vers=3.0")).is_empty());
        assert_eq!(p2.check_volume(&cifs("credentials=/root/.smbcredentials")).len(), 1);
        // An overlay entirely inside the roots, and tmpfs with its options, stay fine.
        assert!(p
            .check_volume(&local_volume(&[
                ("type", "overlay"),
                ("device", "overlay"),
                ("o", "lowerdir=/srv/l,upperdir=/srv/u,workdir=/srv/w")
            ]))
            .is_empty());
        assert!(p
            .check_volume(&local_volume(&[("type", "tmpfs"), ("device", "tmpfs"), ("o", "size=100m,uid=1000")]))
            .is_empty());
    }

    #[test]
    fn network_shares_and_plugin_drivers_need_an_allowance() {
        let p = Policy::default();
        let nfs = local_volume(&[("type", "nfs"), ("o", "addr=198.18.0.9,rw"), ("device", ":/export")]);
        assert_eq!(p.check_volume(&nfs)[0].at, "driverOpts/type");
        let plugin = VolumeSpec { driver: "rexray/ebs".into(), ..Default::default() };
        assert_eq!(p.check_volume(&plugin)[0].at, "driver");
        let p = Policy {
            allow_network_volumes: true,
            allow_volume_drivers: vec!["rexray/ebs".into()],
            ..Policy::default()
        };
        assert!(p.check_volume(&nfs).is_empty());
        assert!(p.check_volume(&plugin).is_empty());
    }

    #[test]
    fn networks_on_host_interfaces_need_an_allowance() {
        let p = Policy::default();
        let net = |driver: &str, opts: &[(&str, &str)]| NetworkSpec {
            driver: driver.into(),
            driver_opts: opts.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            ..Default::default()
        };
        assert!(p.check_network(&net("bridge", &[])).is_empty());
        assert!(p.check_network(&net("overlay", &[])).is_empty());
        let f = p.check_network(&net("macvlan", &[("parent", "eth0")]));
        assert_eq!(f.len(), 2, "{f:?}");
        assert!(f[0].message.contains("allowNetworkDrivers"), "{f:?}");
        assert!(!p.check_network(&net("host", &[])).is_empty());
        let p = Policy { allow_network_drivers: vec!["macvlan".into()], ..Policy::default() };
        assert!(p.check_network(&net("macvlan", &[("parent", "eth0")])).is_empty());
    }
}
