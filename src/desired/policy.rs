//! The host policy: what a repository may ask of this host. It lives outside the repository (a
//! TOML file given to the CLI or the service), because whoever can push must not be able to
//! grant themselves the host. Checked at validation, so a refused revision changes nothing.

use super::diag::{Diagnostic, Diagnostics, Pos, Sink};
use super::node::{Node, Value};
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
    /// Dangerous capabilities allowed anyway, by name (`NET_ADMIN`).
    #[serde(default)]
    pub allow_capabilities: Vec<String>,
    /// Host folders under which bind mounts may point, after `..` and symlinks are resolved.
    #[serde(default = "default_bind_roots")]
    pub bind_roots: Vec<PathBuf>,
    #[serde(default)]
    pub allow_engine_socket: bool,
    /// Host folders `secretEnv` files may be read from.
    #[serde(default = "default_secret_roots")]
    pub secret_roots: Vec<PathBuf>,
    /// The socket of the engine hawser drives, added by the CLI from `--host`.
    #[serde(skip)]
    pub engine_sockets: Vec<PathBuf>,
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
            secret_roots: default_secret_roots(),
            engine_sockets: Vec::new(),
        }
    }
}

/// Something in a manifest that the policy rules on, with where it was written.
#[derive(Clone, Debug, PartialEq)]
pub enum Sensitive {
    Privileged,
    HostNetwork,
    Capability(String),
    Bind(String),
    /// A `secretEnv` file, which hawser (often root) reads and hands to the container.
    SecretFile(String),
}

impl Policy {
    /// Reads a policy file; its errors are positioned like manifest errors.
    pub fn from_file(path: &Path) -> Result<Policy, Diagnostics> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| {
            Diagnostics(vec![Diagnostic {
                file: shown.clone(),
                pos: Pos::new(1, 1),
                message: format!("cannot read the policy: {e}"),
                source_line: None,
            }])
        })?;
        toml::from_str(&text).map_err(|e| {
            let mut diags = Vec::new();
            let pos = e.span().map(|s| Pos::from_offset(&text, s.start)).unwrap_or(Pos::new(1, 1));
            Sink::new(&shown, &text, &mut diags).error(pos, format!("policy: {}", e.message()));
            Diagnostics(diags)
        })
    }

    /// `Err` with the reason when the policy refuses `item`.
    pub fn check(&self, item: &Sensitive) -> Result<(), String> {
        match item {
            Sensitive::Privileged if !self.allow_privileged => {
                Err("`privileged: true` is refused by the host policy (allowPrivileged)".into())
            }
            Sensitive::HostNetwork if !self.allow_host_network => {
                Err("`networkMode: host` is refused by the host policy (allowHostNetwork)".into())
            }
            Sensitive::Capability(c)
                if DANGEROUS_CAPABILITIES.contains(&c.as_str()) && !self.allow_capabilities.iter().any(|a| a == c) =>
            {
                Err(format!("capability `{c}` is refused by the host policy (allowCapabilities)"))
            }
            Sensitive::Bind(source) => self.check_bind(source),
            Sensitive::SecretFile(file) => {
                let resolved = resolve(Path::new(file));
                if self.secret_roots.iter().any(|r| resolved.starts_with(resolve(r))) {
                    Ok(())
                } else {
                    let roots: Vec<String> = self.secret_roots.iter().map(|r| r.display().to_string()).collect();
                    Err(format!(
                        "secret file `{file}` is outside the allowed roots ({}); refused by the host policy (secretRoots)",
                        roots.join(", ")
                    ))
                }
            }
            _ => Ok(()),
        }
    }

    fn check_bind(&self, source: &str) -> Result<(), String> {
        let resolved = resolve(Path::new(source));
        let sockets = ENGINE_SOCKETS.iter().map(PathBuf::from).chain(self.engine_sockets.iter().cloned());
        for socket in sockets {
            if resolve(&socket).starts_with(&resolved) && !self.allow_engine_socket {
                return Err(format!(
                    "bind mount `{source}` exposes the engine socket {}, which gives the container the host; refused by the host policy (allowEngineSocket)",
                    socket.display()
                ));
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
        Err(format!(
            "bind mount {shown} is outside the allowed roots ({}); refused by the host policy (bindRoots)",
            if roots.is_empty() { "none".to_string() } else { roots.join(", ") }
        ))
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

/// The policy-relevant items of a Container spec node, each at its position.
pub fn sensitive_items(spec: &Node) -> Vec<(Sensitive, Pos)> {
    let mut out = Vec::new();
    let Value::Map(entries) = &spec.value else { return out };
    for (k, v) in entries {
        match (k.name.as_str(), &v.value) {
            ("privileged", Value::Bool(true)) => out.push((Sensitive::Privileged, v.pos)),
            ("networkMode", Value::Str(s)) if s == "host" => out.push((Sensitive::HostNetwork, v.pos)),
            ("capAdd", Value::Seq(items)) => {
                for i in items {
                    if let Value::Str(c) = &i.value {
                        let c = c.trim_start_matches("CAP_").to_ascii_uppercase();
                        out.push((Sensitive::Capability(c), i.pos));
                    }
                }
            }
            ("secretEnv", Value::Map(m)) => {
                for (_, v) in m {
                    if let Value::Str(file) = &v.value {
                        out.push((Sensitive::SecretFile(file.clone()), v.pos));
                    }
                }
            }
            ("volumes", Value::Seq(items)) => {
                for i in items {
                    let source = match &i.value {
                        Value::Str(s) => s.split(':').next().filter(|src| src.starts_with('/')).map(str::to_string),
                        Value::Map(m) => {
                            let field = |name: &str| {
                                m.iter().find(|(k, _)| k.name == name).and_then(|(_, v)| match &v.value {
                                    Value::Str(s) => Some(s.clone()),
                                    _ => None,
                                })
                            };
                            (field("type").as_deref() == Some("bind")).then(|| field("source")).flatten()
                        }
                        _ => None,
                    };
                    if let Some(source) = source {
                        out.push((Sensitive::Bind(source), i.pos));
                    }
                }
            }
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dangerous_things_are_refused_by_default_and_allowed_by_name() {
        let p = Policy::default();
        assert!(p.check(&Sensitive::Privileged).is_err());
        assert!(p.check(&Sensitive::HostNetwork).is_err());
        assert!(p.check(&Sensitive::Capability("SYS_ADMIN".into())).is_err());
        assert!(p.check(&Sensitive::Capability("NET_BIND_SERVICE".into())).is_ok());
        let p = Policy {
            allow_privileged: true,
            allow_host_network: true,
            allow_capabilities: vec!["SYS_ADMIN".into()],
            ..Policy::default()
        };
        assert!(p.check(&Sensitive::Privileged).is_ok());
        assert!(p.check(&Sensitive::HostNetwork).is_ok());
        assert!(p.check(&Sensitive::Capability("SYS_ADMIN".into())).is_ok());
    }

    #[test]
    fn binds_are_resolved_before_the_roots_are_checked() {
        let root = tempfile::tempdir().unwrap();
        let allowed = root.path().join("allowed");
        std::fs::create_dir_all(allowed.join("data")).unwrap();
        std::os::unix::fs::symlink("/etc", allowed.join("escape")).unwrap();
        let p = Policy { bind_roots: vec![allowed.clone()], ..Policy::default() };
        let ok = allowed.join("data").join("new-dir");
        assert!(p.check(&Sensitive::Bind(ok.display().to_string())).is_ok());
        let dotdot = format!("{}/data/../../../etc", allowed.display());
        let e = p.check(&Sensitive::Bind(dotdot)).unwrap_err();
        assert!(e.contains("outside the allowed roots"), "{e}");
        let link = allowed.join("escape").join("passwd").display().to_string();
        let e = p.check(&Sensitive::Bind(link)).unwrap_err();
        assert!(e.contains("resolved to /etc/passwd"), "{e}");
    }

    #[test]
    fn the_engine_socket_and_its_folders_are_refused_unless_allowed() {
        let p = Policy { bind_roots: vec!["/".into()], ..Policy::default() };
        for s in ["/var/run/docker.sock", "/run/docker.sock", "/run"] {
            let e = p.check(&Sensitive::Bind(s.into())).unwrap_err();
            assert!(e.contains("engine socket"), "{s}: {e}");
        }
        let p = Policy { allow_engine_socket: true, bind_roots: vec![], ..Policy::default() };
        assert!(p.check(&Sensitive::Bind("/var/run/docker.sock".into())).is_ok());
        assert!(p.check(&Sensitive::Bind("/etc".into())).is_err());
    }
}
