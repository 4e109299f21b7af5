//! A Container as an OCI runtime bundle's `config.json`, built with `oci-spec`. Pure: the image
//! config, the paths and the users of the image come in, a `Spec` goes out. The defaults are
//! Docker's: its capability set, masked and read-only kernel paths, a 64 MiB /dev/shm, a large
//! open-files limit; whatever the native target cannot honour is refused earlier, in
//! `desired::target`.

use crate::desired::{ContainerSpec, Mount};
use oci_spec::runtime as oci;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Docker's default capabilities (moby's `oci/caps/defaults.go`).
pub const DEFAULT_CAPS: &[&str] = &[
    "CHOWN",
    "DAC_OVERRIDE",
    "FSETID",
    "FOWNER",
    "MKNOD",
    "NET_RAW",
    "SETGID",
    "SETUID",
    "SETFCAP",
    "SETPCAP",
    "NET_BIND_SERVICE",
    "SYS_CHROOT",
    "KILL",
    "AUDIT_WRITE",
];

/// Every capability (for `privileged` and `capAdd: [ALL]`): the manifest's own list.
fn all_caps() -> Vec<&'static str> {
    crate::desired::types::CAPABILITIES.iter().copied().filter(|c| *c != "ALL").collect()
}

/// Everything besides the spec that goes into a bundle.
pub struct Input<'a> {
    pub id: &'a str,
    pub spec: &'a ContainerSpec,
    /// The image's `config` object (`Entrypoint`, `Cmd`, `Env`, `WorkingDir`, `User`).
    pub image: &'a serde_json::Value,
    pub secret_env: &'a [(String, String)],
    /// Host paths of repository files and environment secrets, by target.
    pub repo_mounts: &'a BTreeMap<String, PathBuf>,
    /// Where named volumes live: `VOLUMES/NAME/_data`.
    pub volumes_dir: PathBuf,
    /// The container's own /etc/hosts, /etc/hostname and /etc/resolv.conf.
    pub etc_dir: PathBuf,
    /// The image's /etc/passwd and /etc/group, for user and group names.
    pub passwd: Option<String>,
    pub group: Option<String>,
    /// The network namespace to join (the default network's, made by the monitor); `None`
    /// for a namespace of its own (`networkMode: none`) or the host's.
    pub netns: Option<PathBuf>,
    /// The open-files limit: Docker's 1048576, or the host's hard limit when lower.
    pub nofile: u64,
}

/// Why a Container can't be written as a bundle's `config.json`.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    /// What the spec or the image asks that has no meaning here (an unknown user, capability).
    #[error("{0}")]
    Unusable(String),
    #[error("building the runtime spec: {0}")]
    Build(#[from] oci_spec::OciSpecError),
}

fn err(e: oci_spec::OciSpecError) -> SpecError {
    SpecError::Build(e)
}

fn unusable(m: impl Into<String>) -> SpecError {
    SpecError::Unusable(m.into())
}

fn cap(name: &str) -> Result<oci::Capability, SpecError> {
    serde_json::from_value(serde_json::Value::String(format!("CAP_{name}")))
        .map_err(|_| unusable(format!("capability {name} is unknown to the OCI runtime spec")))
}

fn strings(v: &serde_json::Value) -> Option<Vec<String>> {
    v.as_array().map(|a| a.iter().filter_map(|s| s.as_str().map(str::to_string)).collect())
}

/// The process's arguments by Docker's rule: the spec's entrypoint (or the image's), then the
/// spec's command, or the image's unless the spec set its own entrypoint.
pub fn args(spec: &ContainerSpec, image: &serde_json::Value) -> Vec<String> {
    let entry = spec.entrypoint.clone().or_else(|| strings(&image["Entrypoint"])).unwrap_or_default();
    let cmd = match (&spec.command, &spec.entrypoint) {
        (Some(c), _) => c.clone(),
        (None, Some(_)) => Vec::new(),
        (None, None) => strings(&image["Cmd"]).unwrap_or_default(),
    };
    entry.into_iter().chain(cmd).collect()
}

/// The healthcheck a container runs: the spec's (`test: [NONE]` turns it off), else the one
/// its image declares (`HEALTHCHECK`), as Docker.
pub fn healthcheck(spec: &ContainerSpec, image: &serde_json::Value) -> Option<crate::desired::Healthcheck> {
    if let Some(h) = &spec.healthcheck {
        return (!h.is_disabled()).then(|| h.clone());
    }
    let h = &image["Healthcheck"];
    let test = strings(&h["Test"]).filter(|t| !t.is_empty() && t[0] != "NONE")?;
    let ns = |k: &str| {
        h[k].as_u64().filter(|n| *n > 0).map(|n| crate::desired::Duration(std::time::Duration::from_nanos(n)))
    };
    Some(crate::desired::Healthcheck {
        test,
        interval: ns("Interval"),
        timeout: ns("Timeout"),
        retries: h["Retries"].as_u64().filter(|n| *n > 0).map(|n| n as u32),
        start_period: ns("StartPeriod"),
    })
}

/// `uid[:gid]` or `name[:group]`, looked up in the image's files; Docker's rules for what is
/// left out (the user's primary group, or root).
pub fn resolve_user(user: &str, passwd: Option<&str>, group: Option<&str>) -> Result<(u32, u32), SpecError> {
    let (u, g) = user.split_once(':').map_or((user, None), |(u, g)| (u, Some(g)));
    let entry = |file: Option<&str>, name: &str| -> Option<Vec<String>> {
        file?
            .lines()
            .map(|l| l.split(':').map(str::to_string).collect::<Vec<_>>())
            .find(|f| f.first().is_some_and(|n| n == name))
    };
    let (uid, primary) = match u.parse::<u32>() {
        Ok(n) => {
            let gid = passwd
                .and_then(|p| p.lines().map(|l| l.split(':').collect::<Vec<_>>()).find(|f| f.get(2) == Some(&u)))
                .and_then(|f| f.get(3).and_then(|g| g.parse().ok()));
            (n, gid.unwrap_or(0))
        }
        Err(_) => {
            let f =
                entry(passwd, u).ok_or_else(|| unusable(format!("user `{u}` is not in the image's /etc/passwd")))?;
            let uid = f
                .get(2)
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| unusable(format!("user `{u}`: bad /etc/passwd line")))?;
            (uid, f.get(3).and_then(|s| s.parse().ok()).unwrap_or(0))
        }
    };
    let gid = match g {
        None => primary,
        Some(g) => match g.parse::<u32>() {
            Ok(n) => n,
            Err(_) => entry(group, g)
                .and_then(|f| f.get(2).and_then(|s| s.parse().ok()))
                .ok_or_else(|| unusable(format!("group `{g}` is not in the image's /etc/group")))?,
        },
    };
    Ok((uid, gid))
}

fn bind(source: impl Into<PathBuf>, target: &str, read_only: bool) -> Result<oci::Mount, SpecError> {
    let mut options = vec!["rbind".to_string(), "rprivate".to_string()];
    if read_only {
        options.push("ro".into());
    }
    oci::MountBuilder::default()
        .destination(target)
        .typ("bind")
        .source(source.into())
        .options(options)
        .build()
        .map_err(err)
}

pub fn config(i: &Input<'_>) -> Result<oci::Spec, SpecError> {
    let s = i.spec;
    let args = args(s, i.image);
    if args.is_empty() {
        return Err(unusable("no command: neither the spec nor the image gives one"));
    }
    // Environment: the image's, then the spec's, then the secrets; one value per name.
    let mut env: Vec<(String, String)> = Vec::new();
    let mut set = |k: &str, v: &str| match env.iter_mut().find(|(n, _)| n == k) {
        Some(e) => e.1 = v.to_string(),
        None => env.push((k.to_string(), v.to_string())),
    };
    set("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
    for kv in strings(&i.image["Env"]).unwrap_or_default() {
        if let Some((k, v)) = kv.split_once('=') {
            set(k, v);
        }
    }
    let hostname = s.hostname.clone().unwrap_or_else(|| i.id[..12.min(i.id.len())].to_string());
    set("HOSTNAME", &hostname);
    for (k, v) in &s.env {
        set(k, v);
    }
    for (k, v) in i.secret_env {
        set(k, v);
    }
    let user = s.user.clone().or_else(|| i.image["User"].as_str().filter(|u| !u.is_empty()).map(str::to_string));
    let (uid, gid) = match &user {
        Some(u) => resolve_user(u, i.passwd.as_deref(), i.group.as_deref())?,
        None => (0, 0),
    };
    let mut extra_gids = Vec::new();
    for g in &s.group_add {
        extra_gids.push(match g.parse::<u32>() {
            Ok(n) => n,
            Err(_) => resolve_user(&format!("0:{g}"), None, i.group.as_deref())?.1,
        });
    }
    let cwd = s
        .working_dir
        .clone()
        .or_else(|| i.image["WorkingDir"].as_str().filter(|w| !w.is_empty()).map(str::to_string))
        .unwrap_or_else(|| "/".into());

    let privileged = s.privileged == Some(true);
    let mut caps: Vec<&str> = if privileged { all_caps() } else { DEFAULT_CAPS.to_vec() };
    for c in &s.cap_add {
        if c.as_str() == "ALL" {
            caps = all_caps();
        } else if !caps.contains(&c.as_str()) {
            caps.push(c.as_str());
        }
    }
    for c in &s.cap_drop {
        if c.as_str() == "ALL" {
            caps.clear();
        } else {
            caps.retain(|x| *x != c.as_str());
        }
    }
    let capset: oci::Capabilities = caps.iter().map(|c| cap(c)).collect::<Result<_, _>>()?;
    let capabilities = oci::LinuxCapabilitiesBuilder::default()
        .bounding(capset.clone())
        .effective(capset.clone())
        .permitted(capset)
        .build()
        .map_err(err)?;
    let mut rlimits = vec![oci::PosixRlimitBuilder::default()
        .typ(oci::PosixRlimitType::RlimitNofile)
        .soft(i.nofile)
        .hard(i.nofile)
        .build()
        .map_err(err)?];
    for (name, l) in &s.ulimits {
        let typ: oci::PosixRlimitType =
            serde_json::from_value(serde_json::Value::String(format!("RLIMIT_{}", name.to_ascii_uppercase())))
                .map_err(|_| unusable(format!("ulimit {name} is unknown")))?;
        rlimits.retain(|r| r.typ() != typ);
        rlimits.push(
            oci::PosixRlimitBuilder::default().typ(typ).soft(l.soft as u64).hard(l.hard as u64).build().map_err(err)?,
        );
    }
    let no_new_privileges = s.security_opt.iter().any(|o| {
        let o = o.replace('=', ":");
        o == "no-new-privileges" || o == "no-new-privileges:true"
    });
    let mut process = oci::ProcessBuilder::default()
        .args(args)
        .env(env.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>())
        .cwd(cwd)
        .user(oci::UserBuilder::default().uid(uid).gid(gid).additional_gids(extra_gids).build().map_err(err)?)
        .capabilities(capabilities)
        .rlimits(rlimits)
        .no_new_privileges(no_new_privileges)
        .terminal(false)
        .build()
        .map_err(err)?;
    if let Some(adj) = s.oom_score_adj {
        process.set_oom_score_adj(Some(adj as i32));
    }

    // Mounts: the runtime's standard set, /dev/shm sized, then the container's own.
    let mut mounts: Vec<oci::Mount> = oci::get_default_mounts()
        .into_iter()
        .map(|mut m| {
            if m.destination() == &PathBuf::from("/dev/shm") {
                let size = s.shm_size.map_or(64 << 20, |b| b.0);
                m.set_options(Some(
                    ["nosuid", "noexec", "nodev", "mode=1777"]
                        .iter()
                        .map(|o| o.to_string())
                        .chain([format!("size={size}")])
                        .collect(),
                ));
            }
            m
        })
        .collect();
    for f in ["hosts", "hostname", "resolv.conf"] {
        if !s.volumes.iter().any(|v| v.target() == format!("/etc/{f}")) {
            mounts.push(bind(i.etc_dir.join(f), &format!("/etc/{f}"), false)?);
        }
    }
    for v in &s.volumes {
        mounts.push(match v {
            Mount::Volume { source, target, read_only } => {
                bind(i.volumes_dir.join(source).join("_data"), target, *read_only)?
            }
            Mount::Bind { source, target, read_only } => bind(source.as_str(), target, *read_only)?,
            Mount::Secret { file, target, .. } => bind(file.as_str(), target, true)?,
            Mount::EnvSecret { target, .. } | Mount::Repo { target, .. } => {
                let read_only = !matches!(v, Mount::Repo { read_only: false, .. });
                let src = i
                    .repo_mounts
                    .get(target)
                    .ok_or_else(|| unusable(format!("mount {target}: no file was prepared for it")))?;
                bind(src, target, read_only)?
            }
            Mount::Tmpfs { target, size } => {
                let mut options = vec!["nosuid".to_string(), "nodev".into(), "mode=1777".into()];
                if let Some(sz) = size {
                    options.push(format!("size={}", sz.0));
                }
                oci::MountBuilder::default()
                    .destination(target)
                    .typ("tmpfs")
                    .source("tmpfs")
                    .options(options)
                    .build()
                    .map_err(err)?
            }
        });
    }

    let limits = s.resources.clone().unwrap_or_default();
    let mut resources = oci::LinuxResourcesBuilder::default();
    if limits.memory.is_some() || limits.memory_reservation.is_some() {
        let mut m = oci::LinuxMemoryBuilder::default();
        if let Some(b) = limits.memory {
            m = m.limit(b.0 as i64);
        }
        if let Some(b) = limits.memory_reservation {
            m = m.reservation(b.0 as i64);
        }
        resources = resources.memory(m.build().map_err(err)?);
    }
    if let Some(c) = limits.cpus {
        let period = 100_000u64;
        resources = resources.cpu(
            oci::LinuxCpuBuilder::default().period(period).quota((c * period as f64) as i64).build().map_err(err)?,
        );
    }
    if let Some(p) = limits.pids {
        resources = resources.pids(oci::LinuxPidsBuilder::default().limit(p).build().map_err(err)?);
    }
    // Docker's device rules: nothing but the standard character devices.
    resources = resources.devices(default_device_rules(privileged)?);

    let mut namespaces = oci::get_default_namespaces();
    let host_mode = |m: &Option<String>| m.as_deref() == Some("host");
    if host_mode(&s.network_mode) {
        namespaces.retain(|n| n.typ() != oci::LinuxNamespaceType::Network);
    } else if let Some(path) = &i.netns {
        for n in namespaces.iter_mut().filter(|n| n.typ() == oci::LinuxNamespaceType::Network) {
            n.set_path(Some(path.clone()));
        }
    }
    if host_mode(&s.pid) {
        namespaces.retain(|n| n.typ() != oci::LinuxNamespaceType::Pid);
    }
    if host_mode(&s.ipc) {
        namespaces.retain(|n| n.typ() != oci::LinuxNamespaceType::Ipc);
    }
    let mut linux = oci::LinuxBuilder::default()
        .namespaces(namespaces)
        .resources(resources.build().map_err(err)?)
        .cgroups_path(PathBuf::from(format!("/hawser/{}", i.id)))
        .sysctl(s.sysctls.clone().into_iter().collect::<std::collections::HashMap<_, _>>());
    let unconfined = s.security_opt.iter().any(|o| o.replace('=', ":") == "seccomp:unconfined");
    if !privileged {
        linux = linux.masked_paths(masked_paths()).readonly_paths(readonly_paths());
        if !unconfined {
            linux = linux.seccomp(super::seccomp::default_filter(&caps)?);
        }
    }
    let mut spec = oci::Spec::default();
    spec.set_process(Some(process));
    spec.set_hostname(Some(hostname));
    spec.set_domainname(s.domainname.clone());
    spec.set_root(Some(
        oci::RootBuilder::default().path("rootfs").readonly(s.read_only == Some(true)).build().map_err(err)?,
    ));
    spec.set_mounts(Some(mounts));
    spec.set_linux(Some(linux.build().map_err(err)?));
    Ok(spec)
}

fn default_device_rules(privileged: bool) -> Result<Vec<oci::LinuxDeviceCgroup>, SpecError> {
    if privileged {
        return Ok(vec![oci::LinuxDeviceCgroupBuilder::default().allow(true).access("rwm").build().map_err(err)?]);
    }
    let mut rules = vec![oci::LinuxDeviceCgroupBuilder::default().allow(false).access("rwm").build().map_err(err)?];
    // null, zero, full, random, urandom, tty, ptmx and the pty slaves.
    for (major, minor) in [(1, 3), (1, 5), (1, 7), (1, 8), (1, 9), (5, 0), (5, 2), (136, -1)] {
        let mut r = oci::LinuxDeviceCgroupBuilder::default()
            .allow(true)
            .typ(oci::LinuxDeviceType::C)
            .major(major)
            .access("rwm");
        if minor >= 0 {
            r = r.minor(minor);
        }
        rules.push(r.build().map_err(err)?);
    }
    Ok(rules)
}

fn masked_paths() -> Vec<String> {
    [
        "/proc/asound",
        "/proc/acpi",
        "/proc/interrupts",
        "/proc/kcore",
        "/proc/keys",
        "/proc/latency_stats",
        "/proc/timer_list",
        "/proc/timer_stats",
        "/proc/sched_debug",
        "/proc/scsi",
        "/sys/firmware",
        "/sys/devices/virtual/powercap",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

fn readonly_paths() -> Vec<String> {
    ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"].iter().map(|s| s.to_string()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input<'a>(
        spec: &'a ContainerSpec,
        image: &'a serde_json::Value,
        none: &'a BTreeMap<String, PathBuf>,
    ) -> Input<'a> {
        Input {
            id: "0123456789abcdef0123",
            spec,
            image,
            secret_env: &[],
            repo_mounts: none,
            volumes_dir: "/v".into(),
            etc_dir: "/c/etc".into(),
            passwd: Some("root:x:0:0::/root:/bin/sh\napp:x:1000:1001::/home/app:/bin/sh\n".into()),
            group: Some("root:x:0:\nstaff:x:50:\n".into()),
            nofile: 1 << 20,
            netns: None,
        }
    }

    #[test]
    fn arguments_follow_dockers_rules() {
        let image = serde_json::json!({"Entrypoint": ["/init"], "Cmd": ["serve"]});
        let mut s = ContainerSpec { image: "x".into(), ..Default::default() };
        assert_eq!(args(&s, &image), ["/init", "serve"]);
        s.command = Some(vec!["run".into()]);
        assert_eq!(args(&s, &image), ["/init", "run"]);
        s.command = None;
        s.entrypoint = Some(vec!["/bin/sh".into()]);
        assert_eq!(args(&s, &image), ["/bin/sh"], "an entrypoint of the spec drops the image's command");
    }

    #[test]
    fn the_images_healthcheck_runs_unless_the_spec_says_otherwise() {
        let image = serde_json::json!({"Healthcheck": {"Test": ["CMD-SHELL", "true"], "Interval": 2_000_000_000u64, "Retries": 4}});
        let mut s = ContainerSpec { image: "x".into(), ..Default::default() };
        let h = healthcheck(&s, &image).unwrap();
        assert_eq!(h.test, ["CMD-SHELL", "true"]);
        assert_eq!(h.interval.unwrap().as_std(), std::time::Duration::from_secs(2));
        assert_eq!(h.retries, Some(4));
        s.healthcheck = Some(crate::desired::Healthcheck::disabled());
        assert!(healthcheck(&s, &image).is_none(), "test: [NONE] turns it off");
        assert!(healthcheck(&ContainerSpec::default(), &serde_json::json!({})).is_none());
    }

    #[test]
    fn users_by_name_and_number() {
        let p = Some("root:x:0:0::/:/bin/sh\napp:x:1000:1001::/:/bin/sh\n");
        let g = Some("staff:x:50:\n");
        assert_eq!(resolve_user("app", p, g).unwrap(), (1000, 1001));
        assert_eq!(resolve_user("1000", p, g).unwrap(), (1000, 1001));
        assert_eq!(resolve_user("app:staff", p, g).unwrap(), (1000, 50));
        assert_eq!(resolve_user("42:7", p, g).unwrap(), (42, 7));
        assert!(resolve_user("nobody", p, g).unwrap_err().to_string().contains("/etc/passwd"));
    }

    #[test]
    fn limits_capabilities_env_and_mounts_reach_the_spec() {
        let spec: ContainerSpec = serde_json::from_value(serde_json::json!({
            "image": "x",
            "env": {"A": "1", "PATH": "/bin"},
            "user": "app:staff",
            "resources": {"memory": "64Mi", "cpus": 0.5, "pids": 100},
            "capDrop": ["NET_RAW"],
            "capAdd": ["NET_ADMIN"],
            "volumes": [{"type": "volume", "source": "data", "target": "/data"}, {"type": "tmpfs", "target": "/run", "size": "1Mi"}],
            "readOnly": true,
            "securityOpt": ["no-new-privileges"],
        }))
        .unwrap();
        let image = serde_json::json!({"Cmd": ["sh"], "Env": ["PATH=/usr/bin", "B=2"], "WorkingDir": "/srv"});
        let none = BTreeMap::new();
        let secrets = [("TOKEN".to_string(), "s3cret".to_string())];
        let mut i = input(&spec, &image, &none);
        i.secret_env = &secrets;
        let c = config(&i).unwrap();
        let v = serde_json::to_value(&c).unwrap();
        let env: Vec<&str> = v["process"]["env"].as_array().unwrap().iter().map(|e| e.as_str().unwrap()).collect();
        assert!(
            env.contains(&"PATH=/bin") && env.contains(&"A=1") && env.contains(&"B=2") && env.contains(&"TOKEN=s3cret"),
            "{env:?}"
        );
        assert_eq!(env.iter().filter(|e| e.starts_with("PATH=")).count(), 1);
        assert_eq!(v["process"]["user"]["uid"], 1000);
        assert_eq!(v["process"]["user"]["gid"], 50);
        assert_eq!(v["process"]["cwd"], "/srv");
        assert_eq!(v["process"]["noNewPrivileges"], true);
        let caps: Vec<&str> =
            v["process"]["capabilities"]["bounding"].as_array().unwrap().iter().map(|c| c.as_str().unwrap()).collect();
        assert!(
            caps.contains(&"CAP_NET_ADMIN") && caps.contains(&"CAP_CHOWN") && !caps.contains(&"CAP_NET_RAW"),
            "{caps:?}"
        );
        assert!(!caps.contains(&"CAP_SYS_ADMIN"));
        let r = &v["linux"]["resources"];
        assert_eq!(r["memory"]["limit"], 64 << 20);
        assert_eq!(r["cpu"]["quota"], 50_000);
        assert_eq!(r["pids"]["limit"], 100);
        assert_eq!(v["root"]["readonly"], true);
        assert_eq!(v["linux"]["cgroupsPath"], "/hawser/0123456789abcdef0123");
        assert!(v["linux"]["maskedPaths"].as_array().unwrap().iter().any(|p| p == "/proc/kcore"));
        let mounts = v["mounts"].as_array().unwrap();
        let data = mounts.iter().find(|m| m["destination"] == "/data").unwrap();
        assert_eq!(data["source"], "/v/data/_data");
        let run = mounts.iter().find(|m| m["destination"] == "/run").unwrap();
        assert!(run["options"].as_array().unwrap().iter().any(|o| o == "size=1048576"));
        assert!(mounts.iter().any(|m| m["destination"] == "/etc/hosts" && m["source"] == "/c/etc/hosts"));
        let denied = v["linux"]["seccomp"]["syscalls"][0]["names"].as_array().unwrap();
        assert!(denied.iter().any(|n| n == "ptrace") && denied.iter().any(|n| n == "mount"));
    }

    #[test]
    fn seccomp_is_off_only_when_asked_or_privileged() {
        let image = serde_json::json!({"Cmd": ["sh"]});
        let none = BTreeMap::new();
        for (opt, privileged, filtered) in
            [(None, false, true), (Some("seccomp=unconfined"), false, false), (None, true, false)]
        {
            let spec = ContainerSpec {
                image: "x".into(),
                security_opt: opt.map(|o| vec![o.to_string()]).unwrap_or_default(),
                privileged: Some(privileged),
                ..Default::default()
            };
            let v = serde_json::to_value(config(&input(&spec, &image, &none)).unwrap()).unwrap();
            assert_eq!(v["linux"]["seccomp"].is_object(), filtered, "{opt:?} privileged={privileged}");
        }
    }

    #[test]
    fn host_network_has_no_network_namespace() {
        let spec = ContainerSpec { image: "x".into(), network_mode: Some("host".into()), ..Default::default() };
        let image = serde_json::json!({"Cmd": ["sh"]});
        let none = BTreeMap::new();
        let v = serde_json::to_value(config(&input(&spec, &image, &none)).unwrap()).unwrap();
        let ns: Vec<&str> =
            v["linux"]["namespaces"].as_array().unwrap().iter().map(|n| n["type"].as_str().unwrap()).collect();
        assert!(!ns.contains(&"network") && ns.contains(&"pid") && ns.contains(&"mount"), "{ns:?}");
    }
}
