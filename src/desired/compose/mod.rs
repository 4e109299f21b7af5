//! docker compose files (`compose.yaml`, `docker-compose.yml`) read as desired state. Services,
//! volumes and networks map onto the same model as hawser's own manifests; what hawser does not
//! support is reported at its position, never dropped silently.
//!
//! Mapping: a service is a Container named by `container_name` or the service name (so services
//! reach each other by name, as in compose); services that name no network join the project's
//! default network, `PROJECT-default`, as compose's `PROJECT_default`. A string `command` is split
//! into words as compose does (no shell). Sizes like `512m` are binary, as docker's.

use super::decode::{
    boolean, capabilities, check_labels, check_name, duration, integer, lenient_string, normalize_order, seq, string,
    string_list, Decoded, DecodedSpec, Spans,
};
use super::diag::{Pos, Sink};
use super::interpolate::{interpolate, Found, Variables};
use super::model::*;
use super::node::{Node, Value};
use super::types::{ByteSize, PortBinding, RestartPolicy};
use std::collections::BTreeMap;

mod extends;
mod mounts;

use mounts::{config_mount, mount, secret_mount};

pub const FILE_NAMES: &[&str] = &["compose.yaml", "compose.yml", "docker-compose.yaml", "docker-compose.yml"];

/// For a compose override file (`compose.override.yaml`, `docker-compose.override.yml`, ...),
/// the compose file beside it that compose would merge it into.
pub fn overridden<'f>(path: &str, files: &[&'f super::ManifestFile]) -> Option<&'f str> {
    let (dir, name) = path.rsplit_once('/').map_or(("", path), |(d, n)| (d, n));
    let stem = name.strip_suffix(".override.yaml").or_else(|| name.strip_suffix(".override.yml"))?;
    files.iter().map(|f| f.path.as_str()).find(|p| {
        let (d, n) = p.rsplit_once('/').map_or(("", *p), |(d, n)| (d, n));
        d == dir && FILE_NAMES.contains(&n) && n.rsplit_once('.').is_some_and(|(s, _)| s == stem)
    })
}

pub fn is_compose_file(path: &str) -> bool {
    let name = path.rsplit('/').next().unwrap_or(path);
    FILE_NAMES.contains(&name)
}

const TOP_KEYS: &[&str] = &["version", "name", "services", "volumes", "networks", "secrets", "configs", "include"];
const SERVICE_KEYS: &[&str] = &[
    "image",
    "build",
    "command",
    "entrypoint",
    "environment",
    "ports",
    "volumes",
    "networks",
    "network_mode",
    "depends_on",
    "healthcheck",
    "restart",
    "container_name",
    "labels",
    "user",
    "working_dir",
    "hostname",
    "stop_signal",
    "stop_grace_period",
    "read_only",
    "init",
    "tty",
    "stdin_open",
    "cap_add",
    "cap_drop",
    "privileged",
    "extra_hosts",
    "mem_limit",
    "cpus",
    "pids_limit",
    "tmpfs",
    "expose",
    "secrets",
    "profiles",
    "deploy",
    "env_file",
    "configs",
    "logging",
    "shm_size",
    "ulimits",
    "dns",
    "platform",
    "runtime",
    "sysctls",
    "devices",
    "security_opt",
    "pid",
    "ipc",
    "group_add",
    "mem_reservation",
    "oom_score_adj",
    "domainname",
    "links",
    "pull_policy",
    "extends",
    "scale",
    "volumes_from",
    "post_start",
    "pre_stop",
];
/// Keys of the Compose Specification that hawser does not support yet; named as such in the
/// error, not as unknown. (The README's table says why for each.)
const UNSUPPORTED: &[&str] = &[
    "annotations",
    "attach",
    "blkio_config",
    "cgroup",
    "cgroup_parent",
    "cpu_count",
    "cpu_percent",
    "cpu_period",
    "cpu_quota",
    "cpu_rt_period",
    "cpu_rt_runtime",
    "cpu_shares",
    "cpuset",
    "credential_spec",
    "develop",
    "device_cgroup_rules",
    "dns_opt",
    "dns_search",
    "driver_opts",
    "external_links",
    "gpus",
    "isolation",
    "label_file",
    "mac_address",
    "mem_swappiness",
    "memswap_limit",
    "oom_kill_disable",
    "storage_opt",
    "use_api_socket",
    "userns_mode",
    "uts",
];

/// Interpolates every string value of a compose file (keys are left as written): errors
/// and warnings at the value's position, values from the process's environment remembered.
fn interpolate_values(
    node: &mut Node,
    vars: &Variables,
    found: &mut Found,
    warnings: &mut Sink<'_>,
    sink: &mut Sink<'_>,
) {
    match &mut node.value {
        Value::Str(text) if text.contains('$') => {
            let mut here = Found::default();
            match interpolate(text, vars, &mut here) {
                Ok(v) => *text = v,
                Err(e) => sink.error(node.pos, e),
            }
            for name in &here.unset {
                warnings.error(node.pos, format!("variable `{name}` is not set; an empty string is used"));
            }
            found.from_process.extend(here.from_process);
        }
        Value::Seq(items) => items.iter_mut().for_each(|i| interpolate_values(i, vars, found, warnings, sink)),
        Value::Map(entries) => entries.iter_mut().for_each(|(_, v)| interpolate_values(v, vars, found, warnings, sink)),
        _ => {}
    }
}

/// `environment` entries without a value (`- TOKEN`, `TOKEN:`) take it from the variables, as
/// compose takes it from its own environment; one that is not set is left out of the container.
fn bare_environment(doc: &mut Node, vars: &Variables, found: &mut Found) {
    let Value::Map(top) = &mut doc.value else { return };
    let Some((_, Node { value: Value::Map(services), .. })) = top.iter_mut().find(|(k, _)| k.name == "services") else {
        return;
    };
    let mut lookup = |name: &str| {
        let mut here = Found::default();
        let v = interpolate(&format!("${{{name}}}"), vars, &mut here).ok().filter(|_| here.unset.is_empty());
        found.from_process.extend(here.from_process);
        v
    };
    for (_, svc) in services.iter_mut() {
        let Value::Map(fields) = &mut svc.value else { continue };
        let Some((_, env)) = fields.iter_mut().find(|(k, _)| k.name == "environment") else { continue };
        match &mut env.value {
            Value::Seq(items) => items.retain_mut(|i| match &mut i.value {
                Value::Str(s) if !s.contains('=') => match lookup(s) {
                    Some(v) => {
                        *s = format!("{s}={v}");
                        true
                    }
                    None => false,
                },
                _ => true,
            }),
            Value::Map(entries) => entries.retain_mut(|(k, v)| {
                if v.value != Value::Null {
                    return true;
                }
                match lookup(&k.name) {
                    Some(value) => {
                        v.value = Value::Str(value);
                        true
                    }
                    None => false,
                }
            }),
            _ => {}
        }
    }
}

/// What a compose file is read with: its project, its variables, the active profiles, and the
/// other files of the repository it names (`env_file`), by path from the repository's root.
pub struct Context<'a, 't> {
    pub project: &'a str,
    pub vars: &'a Variables,
    pub profiles: &'a [String],
    pub data: &'a BTreeMap<String, String>,
    /// Any file of the revision by its path from the root (`extends.file`, `include`).
    pub file_text: &'a dyn Fn(&str) -> Option<&'t str>,
    /// The home folder of the hawser process, for `~` in bind mounts (as compose's own).
    pub home: Option<&'a str>,
    /// Whether the host policy lets compose files read a variable of hawser's environment.
    pub allows_variable: &'a dyn Fn(&str) -> bool,
    /// On a swarm, `deploy` says how the service is scheduled; on one host that is refused.
    pub target: Target,
}

/// The files of the repository a compose file names besides itself (`env_file`, `include`,
/// `extends.file`), as paths from the repository's root, for the source to read before the
/// file is decoded.
pub fn referenced_files(path: &str, text: &str) -> Vec<String> {
    let mut ignored = Vec::new();
    let mut sink = Sink::new(path, text, &mut ignored);
    let docs = super::node::parse_yaml(text, &mut sink);
    let base = path.rsplit_once('/').map_or("", |(dir, _)| dir);
    let mut out = Vec::new();
    let Some(Value::Map(top)) = docs.first().map(|d| &d.value) else { return out };
    for inc in includes(top, path, &mut sink) {
        out.push(inc.path);
        out.extend(inc.env_file);
    }
    let Some((_, services)) = top.iter().find(|(k, _)| k.name == "services") else { return out };
    let Value::Map(services) = &services.value else { return out };
    let text_of = |n: Option<&Node>| match n.map(|n| &n.value) {
        Some(Value::Str(p)) => Some(p.clone()),
        _ => None,
    };
    for (_, svc) in services {
        let Value::Map(fields) = &svc.value else { continue };
        if let Some(Value::Map(e)) = field(fields, "extends").map(|n| &n.value) {
            out.extend(text_of(field(e, "file")).and_then(|p| repository_path(base, &p)));
        }
        let Some(env_file) = field(fields, "env_file") else { continue };
        let items: Vec<&Node> = match &env_file.value {
            Value::Seq(items) => items.iter().collect(),
            _ => vec![env_file],
        };
        for item in items {
            let p = match &item.value {
                Value::Str(p) => Some(p.clone()),
                Value::Map(m) => text_of(field(m, "path")),
                _ => None,
            };
            out.extend(p.and_then(|p| repository_path(base, &p)));
        }
    }
    out.sort();
    out.dedup();
    out
}

/// One entry of a compose file's `include`: the path of the included file and of the `.env`
/// it reads (by default the one beside it), both from the repository's root.
struct Include {
    pos: Pos,
    path: String,
    env_file: Option<String>,
}

/// The entries of `include` in a compose file's top level; errors at their positions.
fn includes(top: &[(super::node::Key, Node)], file: &str, sink: &mut Sink<'_>) -> Vec<Include> {
    let mut out = Vec::new();
    let Some(n) = field(top, "include") else { return out };
    let base = file.rsplit_once('/').map_or("", |(dir, _)| dir);
    for item in seq(n, "include", sink).unwrap_or_default() {
        let (path, env_file) = match &item.value {
            Value::Str(p) => (Some((p.clone(), item.pos)), None),
            Value::Map(e) => {
                for (k, _) in e.iter().filter(|(k, _)| !["path", "env_file"].contains(&k.name.as_str())) {
                    let why = if k.name == "project_directory" {
                        "paths of an included file are relative to its own folder in hawser".to_string()
                    } else {
                        "expected path and env_file".to_string()
                    };
                    sink.error(k.pos, format!("`{}` in include is not supported: {why}", k.name));
                }
                let one = |key: &str, sink: &mut Sink<'_>| match field(e, key) {
                    None => None,
                    Some(v) => {
                        match &v.value {
                            Value::Str(p) => Some((p.clone(), v.pos)),
                            _ => {
                                sink.error(v.pos, format!("include.{key} must be one path (a list of files merged into one is not supported)"));
                                None
                            }
                        }
                    }
                };
                let path = one("path", sink);
                if path.is_none() && field(e, "path").is_none() {
                    sink.error(item.pos, "include needs `path`");
                }
                (path, one("env_file", sink))
            }
            other => {
                sink.error(item.pos, format!("include entries are paths or maps, found {}", other.type_name()));
                continue;
            }
        };
        let Some((path, pos)) = path else { continue };
        let Some(resolved) = repository_path(base, &path) else {
            sink.error(pos, format!("include `{path}` is outside the repository"));
            continue;
        };
        let env_file = env_file.and_then(|(p, pos)| {
            let r = repository_path(base, &p);
            if r.is_none() {
                sink.error(pos, format!("include.env_file `{p}` is outside the repository"));
            }
            r
        });
        out.push(Include { pos, path: resolved, env_file });
    }
    out
}

/// Files that compose files `include`, transitively, each with the `.env` it is read with
/// (`None`: the one beside it). Only the paths; their content is checked where they are named.
pub fn included<'t>(
    files: &[&super::ManifestFile],
    file_text: &dyn Fn(&str) -> Option<&'t str>,
) -> BTreeMap<String, Option<String>> {
    let mut out = BTreeMap::new();
    let mut todo: Vec<(String, String)> = files
        .iter()
        .filter(|f| is_compose_file(&f.path) && f.text.contains("include"))
        .map(|f| (f.path.clone(), f.text.clone()))
        .collect();
    while let Some((path, text)) = todo.pop() {
        let mut ignored = Vec::new();
        let mut sink = Sink::new(&path, &text, &mut ignored);
        let docs = super::node::parse_yaml(&text, &mut sink);
        let Some(Value::Map(top)) = docs.first().map(|d| &d.value) else { continue };
        for inc in includes(top, &path, &mut sink) {
            if out.contains_key(&inc.path)
                || is_compose_file(&inc.path) && files.iter().any(|f| f.path == inc.path) && inc.env_file.is_none()
            {
                // Already read as a compose file of its own, with the `.env` beside it.
                continue;
            }
            if let Some(t) = file_text(&inc.path) {
                todo.push((inc.path.clone(), t.to_string()));
            }
            out.insert(inc.path, inc.env_file);
        }
    }
    out
}

/// Decodes one compose file into resources of `project`, its variables interpolated from
/// `vars`; warnings go to `warnings`, values taken from the process's environment to `found`.
pub fn decode(
    doc: &Node,
    ctx: &Context<'_, '_>,
    found: &mut Found,
    warnings: &mut Vec<super::diag::Diagnostic>,
    sink: &mut Sink<'_>,
) -> Vec<Decoded> {
    let (project, vars) = (ctx.project, ctx.vars);
    let mut doc = doc.clone();
    {
        let mut warn = sink.beside(warnings);
        let mut errors = Vec::new();
        let mut err = sink.beside(&mut errors);
        interpolate_values(&mut doc, vars, found, &mut warn, &mut err);
        extends::resolve(&mut doc, ctx, found, &mut warn, &mut err);
        bare_environment(&mut doc, vars, found);
        sink.diags.extend(errors);
    }
    let doc = &doc;
    let mut out = Vec::new();
    let Value::Map(top) = &doc.value else {
        sink.error(doc.pos, "a compose file must be a map with `services`");
        return out;
    };
    for (k, _) in top {
        report_key(&k.name, k.pos, TOP_KEYS, "a compose file", sink);
    }
    // An included file is decoded as a compose file of this project in its own right; here
    // only that it is there.
    for inc in includes(top, sink.file, sink) {
        if (ctx.file_text)(&inc.path).is_none() {
            sink.error(inc.pos, format!("include `{}` is not in this revision of the repository", inc.path));
        }
    }
    let get = |name: &str| top.iter().find(|(k, _)| k.name == name).map(|(_, v)| v);
    let default_net = format!("{project}-default");
    let mut network_names: BTreeMap<String, String> = BTreeMap::new();
    network_names.insert("default".into(), default_net.clone());
    let mut volume_names: BTreeMap<String, String> = BTreeMap::new();

    if let Some(Node { value: Value::Map(nets), .. }) = get("networks") {
        for (k, v) in nets {
            if let Some((name, spec)) = network(k.name.as_str(), v, sink) {
                let name = if k.name == "default" && name == "default" { default_net.clone() } else { name };
                network_names.insert(k.name.clone(), name.clone());
                let mut d = resource(Kind::Network, name, k.pos, sink, DecodedSpec::Network(spec));
                d.spans = Spans::of_fields(v, policy_name);
                out.push(d);
            }
        }
    }
    if let Some(Node { value: Value::Map(vols), .. }) = get("volumes") {
        for (k, v) in vols {
            if let Some((name, spec)) = volume(k.name.as_str(), v, sink) {
                volume_names.insert(k.name.clone(), name.clone());
                let mut d = resource(Kind::Volume, name, k.pos, sink, DecodedSpec::Volume(spec));
                d.spans = Spans::of_fields(v, policy_name);
                out.push(d);
            }
        }
    }
    // Top-level secrets: a `file`, of the repository (relative) or of the host (absolute), or
    // a variable of the hawser process's `environment`.
    let mut secrets: BTreeMap<String, SecretSource> = BTreeMap::new();
    match get("secrets").map(|n| &n.value) {
        None | Some(Value::Null) => {}
        Some(Value::Map(entries)) => {
            for (k, v) in entries {
                let Value::Map(e) = &v.value else {
                    sink.error(v.pos, format!("secret `{}` must be a map with `file` or `environment`", k.name));
                    continue;
                };
                for (key, _) in e.iter().filter(|(key, _)| key.name != "file" && key.name != "environment") {
                    let why = match key.name.as_str() {
                        "external" | "name" | "driver" | "driver_opts" | "template_driver" => {
                            "a swarm secret; on one host give `file` or `environment`"
                        }
                        _ => "give `file` or `environment`",
                    };
                    sink.error(
                        key.pos,
                        format!("`{}` in secret `{}` is not supported by hawser: {why}", key.name, k.name),
                    );
                }
                if let Some(file) = field(e, "file").and_then(|f| string(f, "file", sink)) {
                    if !file.starts_with('/') && !file.ends_with(".age") {
                        sink.beside(warnings).error(
                            k.pos,
                            format!("secret `{}` is `{file}` of the repository, committed in clear: whoever can read the repository can read it; keep it on the host (an absolute `file`) or in hawser's environment (`environment`)", k.name),
                        );
                    }
                    secrets.insert(k.name.clone(), SecretSource::File(file));
                } else if let Some(var) = field(e, "environment").and_then(|f| string(f, "environment", sink)) {
                    if !(ctx.allows_variable)(&var) {
                        sink.error(
                            k.pos,
                            format!("secret `{}`: variable `{var}` of hawser's environment is refused by the host policy (allowVariables)", k.name),
                        );
                    } else if ctx.vars.value(&var).is_some() && !ctx.vars.from_process(&var) {
                        sink.error(
                            k.pos,
                            format!("secret `{}`: `{var}` is set in a .env file of the repository, in clear; hawser reads secret variables from its own environment only", k.name),
                        );
                    }
                    secrets.insert(k.name.clone(), SecretSource::Environment(var));
                } else if field(e, "file").is_none() && field(e, "environment").is_none() {
                    sink.error(k.pos, format!("secret `{}` needs `file` or `environment`", k.name));
                }
            }
        }
        Some(other) => sink.error(doc.pos, format!("secrets must be a map, found {}", other.type_name())),
    }
    // Top-level configs: a `file` (of the repository or the host), `content`, or `environment`.
    let mut configs: BTreeMap<String, ConfigSource> = BTreeMap::new();
    match get("configs").map(|n| &n.value) {
        None | Some(Value::Null) => {}
        Some(Value::Map(entries)) => {
            for (k, v) in entries {
                let Value::Map(e) = &v.value else {
                    sink.error(
                        v.pos,
                        format!("config `{}` must be a map with `file`, `content` or `environment`", k.name),
                    );
                    continue;
                };
                for (key, _) in
                    e.iter().filter(|(key, _)| !["file", "content", "environment"].contains(&key.name.as_str()))
                {
                    sink.error(key.pos, format!("`{}` in config `{}` is not supported by hawser", key.name, k.name));
                }
                let source = if let Some(f) = field(e, "file").and_then(|f| string(f, "file", sink)) {
                    Some(ConfigSource::File(f))
                } else if let Some(c) = field(e, "content").and_then(|c| lenient_string(c, "content", sink)) {
                    Some(ConfigSource::Content(c))
                } else if let Some(var) = field(e, "environment").and_then(|v| string(v, "environment", sink)) {
                    match vars.value(&var) {
                        Some(value) => Some(ConfigSource::Content(value.to_string())),
                        None => {
                            sink.error(k.pos, format!("config `{}`: variable `{var}` is not set", k.name));
                            None
                        }
                    }
                } else {
                    sink.error(k.pos, format!("config `{}` needs `file`, `content` or `environment`", k.name));
                    None
                };
                if let Some(source) = source {
                    configs.insert(k.name.clone(), source);
                }
            }
        }
        Some(other) => sink.error(doc.pos, format!("configs must be a map, found {}", other.type_name())),
    }
    let Some(Node { value: Value::Map(services), .. }) = get("services") else {
        sink.error(doc.pos, "a compose file needs `services`");
        return out;
    };
    // Service names to container names, for depends_on and network_mode: service:NAME.
    let mut container_names: BTreeMap<String, String> = BTreeMap::new();
    for (k, v) in services {
        let explicit = match &v.value {
            Value::Map(m) => m.iter().find(|(k, _)| k.name == "container_name").and_then(|(_, v)| match &v.value {
                Value::Str(s) => Some(s.clone()),
                _ => None,
            }),
            _ => None,
        };
        container_names.insert(k.name.clone(), explicit.unwrap_or_else(|| k.name.clone()));
    }
    let mut uses_default = false;
    // A service with `profiles` is deployed only when one of them is active.
    let active = |v: &Node, sink: &mut Sink<'_>| {
        let Value::Map(m) = &v.value else { return true };
        let Some((_, p)) = m.iter().find(|(k, _)| k.name == "profiles") else { return true };
        match &p.value {
            Value::Seq(items) => items.iter().any(|i| matches!(&i.value, Value::Str(s) if ctx.profiles.contains(s))),
            _ => {
                sink.error(p.pos, "profiles must be a list of names");
                false
            }
        }
    };
    let deployed: std::collections::BTreeSet<String> =
        services.iter().filter(|(_, v)| active(v, sink)).map(|(k, _)| k.name.clone()).collect();
    for (k, v) in services {
        if !deployed.contains(&k.name) {
            continue;
        }
        let names = Names {
            project,
            home: ctx.home,
            data: ctx.data,
            secrets: &secrets,
            configs: &configs,
            containers: &container_names,
            active: &deployed,
            networks: &network_names,
            volumes: &volume_names,
            target: ctx.target,
        };
        let mut extra = Vec::new();
        let mut warn = sink.beside(warnings);
        if let Some((mut d, default)) = service(&k.name, k.pos, v, &names, &mut extra, &mut warn, sink) {
            if default {
                uses_default = true;
                d.refs.push((Kind::Network, default_net.clone(), k.pos));
            }
            out.push(d);
        }
        for d in extra {
            // Services that share an image share its resource (a differing one is a duplicate).
            let same = |o: &Decoded| o.kind == Kind::Image && o.name == d.name && o.spec == d.spec;
            if !(d.kind == Kind::Image && out.iter().any(same)) {
                out.push(d);
            }
        }
    }
    let declared_default = out.iter().any(|d| d.kind == Kind::Network && d.name == default_net);
    if uses_default && !declared_default {
        let spec = NetworkSpec { driver: "bridge".into(), ..Default::default() };
        out.push(resource(Kind::Network, default_net, doc.pos, sink, DecodedSpec::Network(spec)));
    }
    out
}

/// The host policy's name of a compose field, so its messages point at compose's own keys.
fn policy_name(key: &str) -> &str {
    match key {
        "cap_add" => "capAdd",
        "cap_drop" => "capDrop",
        "network_mode" => "networkMode",
        "security_opt" => "securityOpt",
        "driver_opts" => "driverOpts",
        other => other,
    }
}

/// Where a secret's value comes from.
enum SecretSource {
    File(String),
    Environment(String),
}

/// Where a config's text comes from.
enum ConfigSource {
    File(String),
    Content(String),
}

struct Names<'a> {
    project: &'a str,
    /// The hawser process's home folder, which `~` in a bind mount means.
    home: Option<&'a str>,
    /// Files the compose file names (`env_file`), by path from the repository's root.
    data: &'a BTreeMap<String, String>,
    /// Top-level secrets by name.
    secrets: &'a BTreeMap<String, SecretSource>,
    configs: &'a BTreeMap<String, ConfigSource>,
    containers: &'a BTreeMap<String, String>,
    /// The services deployed (those whose profiles are active).
    active: &'a std::collections::BTreeSet<String>,
    networks: &'a BTreeMap<String, String>,
    volumes: &'a BTreeMap<String, String>,
    target: Target,
}

fn resource(kind: Kind, name: String, pos: Pos, sink: &mut Sink<'_>, spec: DecodedSpec) -> Decoded {
    Decoded {
        kind,
        name,
        name_pos: pos,
        origin: Origin { file: sink.file.to_string(), pos },
        spec,
        refs: Vec::new(),
        spans: Spans::default(),
    }
}

/// Keys of compose that stand for something outside the engine, with why hawser refuses them
/// and what to write instead.
const REFUSED: &[(&str, &str)] = &[
    (
        "provider",
        "a provider service is run by a plugin of the compose CLI (a cloud resource, a model runner), which hawser does not drive: make that resource outside and give its address in `environment`",
    ),
    (
        "models",
        "models run on Docker Model Runner, a plugin of Docker Desktop and the compose CLI that hawser does not drive: run the model server as a service of its own, with an image",
    ),
];

fn report_key(name: &str, pos: Pos, known: &[&str], what: &str, sink: &mut Sink<'_>) -> bool {
    if known.contains(&name) || name.starts_with("x-") {
        return true;
    }
    if sink.full() {
        sink.error(pos, String::new());
    } else if let Some((_, why)) = REFUSED.iter().find(|(k, _)| *k == name) {
        sink.error(pos, format!("compose key `{name}` in {what} is not supported by hawser: {why}"));
    } else if UNSUPPORTED.contains(&name) {
        sink.error(pos, format!("compose key `{name}` in {what} is not supported by hawser"));
    } else {
        let hint = super::diag::did_you_mean(name, known).map(|h| format!("; did you mean `{h}`?")).unwrap_or_default();
        sink.error(pos, format!("unknown compose key `{name}` in {what}{hint}"));
    }
    false
}

/// Fields of a compose map, with unknown and unsupported keys reported.
fn checked<'n>(n: &'n Node, known: &[&str], what: &str, sink: &mut Sink<'_>) -> Option<&'n [(super::node::Key, Node)]> {
    match &n.value {
        Value::Map(entries) => {
            for (k, _) in entries {
                report_key(&k.name, k.pos, known, what, sink);
            }
            Some(entries)
        }
        Value::Null => Some(&[]),
        other => {
            sink.error(n.pos, format!("{what} must be a map, found {}", other.type_name()));
            None
        }
    }
}

fn field<'n>(entries: &'n [(super::node::Key, Node)], name: &str) -> Option<&'n Node> {
    entries.iter().find(|(k, _)| k.name == name).map(|(_, v)| v).filter(|v| v.value != Value::Null)
}

/// `labels`, `environment`, `extra_hosts`: a map, or a list of `KEY=VALUE` (`KEY:VALUE` for hosts).
fn pairs(n: &Node, what: &str, sep: char, sink: &mut Sink<'_>) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    match &n.value {
        Value::Map(entries) => {
            for (k, v) in entries {
                let value = if v.value == Value::Null { Some(String::new()) } else { lenient_string(v, what, sink) };
                if let Some(value) = value {
                    out.insert(k.name.clone(), value);
                }
            }
        }
        Value::Seq(items) => {
            for i in items {
                let Some(s) = lenient_string(i, what, sink) else { continue };
                match s.split_once(sep) {
                    Some((k, v)) => {
                        out.insert(k.to_string(), v.to_string());
                    }
                    None => sink.error(
                        i.pos,
                        format!("{what} entry `{s}` has no value: hawser does not read the host's environment"),
                    ),
                }
            }
        }
        other => sink.error(n.pos, format!("{what} must be a map or a list, found {}", other.type_name())),
    }
    out
}

fn network(key: &str, n: &Node, sink: &mut Sink<'_>) -> Option<(String, NetworkSpec)> {
    let known =
        ["driver", "driver_opts", "internal", "attachable", "enable_ipv6", "ipam", "external", "labels", "name"];
    let entries = checked(n, &known, &format!("network `{key}`"), sink)?;
    let mut spec = NetworkSpec { driver: "bridge".into(), ..Default::default() };
    if let Some(d) = field(entries, "driver").and_then(|v| string(v, "driver", sink)) {
        spec.driver = d;
    }
    if let Some(v) = field(entries, "driver_opts") {
        spec.driver_opts = pairs(v, "driver_opts", '=', sink);
    }
    spec.internal = field(entries, "internal").and_then(|v| boolean(v, "internal", sink)).unwrap_or(false);
    spec.attachable = field(entries, "attachable").and_then(|v| boolean(v, "attachable", sink)).unwrap_or(false);
    spec.enable_ipv6 = field(entries, "enable_ipv6").and_then(|v| boolean(v, "enable_ipv6", sink)).unwrap_or(false);
    spec.external = field(entries, "external").and_then(|v| boolean(v, "external", sink)).unwrap_or(false);
    if let Some(v) = field(entries, "labels") {
        spec.labels = pairs(v, "labels", '=', sink);
        check_labels(&spec.labels, v.pos, sink);
    }
    if let Some(ipam) = field(entries, "ipam") {
        let e = checked(ipam, &["driver", "config"], "ipam", sink)?;
        if let Some(configs) = field(e, "config").and_then(|c| seq(c, "ipam.config", sink)) {
            if let Some(first) = configs.first() {
                let c = checked(first, &["subnet", "gateway", "ip_range"], "ipam.config", sink)?;
                spec.ipam = Some(Ipam {
                    subnet: field(c, "subnet").and_then(|v| string(v, "subnet", sink)),
                    gateway: field(c, "gateway").and_then(|v| string(v, "gateway", sink)),
                    ip_range: field(c, "ip_range").and_then(|v| string(v, "ip_range", sink)),
                });
            }
        }
    }
    let name = field(entries, "name").and_then(|v| string(v, "name", sink)).unwrap_or_else(|| key.to_string());
    valid_name(&name, n.pos, sink).then_some((name, spec))
}

fn volume(key: &str, n: &Node, sink: &mut Sink<'_>) -> Option<(String, VolumeSpec)> {
    let entries =
        checked(n, &["driver", "driver_opts", "external", "labels", "name"], &format!("volume `{key}`"), sink)?;
    let mut spec = VolumeSpec { driver: "local".into(), retain: true, ..Default::default() };
    if let Some(d) = field(entries, "driver").and_then(|v| string(v, "driver", sink)) {
        spec.driver = d;
    }
    if let Some(v) = field(entries, "driver_opts") {
        spec.driver_opts = pairs(v, "driver_opts", '=', sink);
    }
    spec.external = field(entries, "external").and_then(|v| boolean(v, "external", sink)).unwrap_or(false);
    if let Some(v) = field(entries, "labels") {
        spec.labels = pairs(v, "labels", '=', sink);
        check_labels(&spec.labels, v.pos, sink);
    }
    let name = field(entries, "name").and_then(|v| string(v, "name", sink)).unwrap_or_else(|| key.to_string());
    valid_name(&name, n.pos, sink).then_some((name, spec))
}

fn valid_name(name: &str, pos: Pos, sink: &mut Sink<'_>) -> bool {
    match check_name(name) {
        Ok(()) => true,
        Err(e) => {
            sink.error(pos, e);
            false
        }
    }
}

/// Splits a command line into words as compose does: whitespace, quotes and backslashes, no shell.
pub fn split_words(s: &str) -> Result<Vec<String>, crate::desired::types::Invalid> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(x) => cur.push(x),
                        None => return Err(crate::desired::types::Invalid(format!("unclosed ' in `{s}`"))),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(x @ ('"' | '\\' | '$' | '`')) => cur.push(x),
                            Some(x) => {
                                cur.push('\\');
                                cur.push(x)
                            }
                            None => return Err(crate::desired::types::Invalid(format!("unclosed \" in `{s}`"))),
                        },
                        Some(x) => cur.push(x),
                        None => return Err(crate::desired::types::Invalid(format!("unclosed \" in `{s}`"))),
                    }
                }
            }
            '\\' => {
                in_word = true;
                if let Some(x) = chars.next() {
                    cur.push(x);
                }
            }
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            c => {
                in_word = true;
                cur.push(c);
            }
        }
    }
    if in_word {
        words.push(cur);
    }
    Ok(words)
}

fn words(n: &Node, what: &str, sink: &mut Sink<'_>) -> Option<Vec<String>> {
    match &n.value {
        Value::Str(s) => match split_words(s) {
            Ok(w) => Some(w),
            Err(e) => {
                sink.error(n.pos, format!("{what}: {e}"));
                None
            }
        },
        _ => string_list(n, what, sink),
    }
}

/// docker's sizes: `512m`, `1g`, `100k` are binary; a plain number is bytes.
fn docker_size(n: &Node, what: &str, sink: &mut Sink<'_>) -> Option<ByteSize> {
    let s = lenient_string(n, what, sink)?;
    match parse_ram(&s) {
        Some(v) => Some(ByteSize(v)),
        None => {
            sink.error(n.pos, format!("{what}: invalid size `{s}`: expected a number (`1.5`) with b, k, m, g, t or p"));
            None
        }
    }
}

/// A size as compose reads it (go-units' RAMInBytes): a number, a fraction allowed, then an
/// optional space and binary unit, `k` to `p`, with an optional `i` and `b` (`1.5G`, `512mb`,
/// `2 GiB`).
fn parse_ram(s: &str) -> Option<u64> {
    let t = s.trim().to_ascii_lowercase();
    let split = t.find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or(t.len());
    let (num, rest) = t.split_at(split);
    if num.is_empty() || num.starts_with('.') || num.ends_with('.') || num.matches('.').count() > 1 {
        return None;
    }
    let rest = rest.strip_prefix(' ').unwrap_or(rest);
    let rest = rest.strip_suffix('b').unwrap_or(rest);
    let rest = rest.strip_suffix('i').unwrap_or(rest);
    let shift = match rest {
        "" => 0,
        "k" => 10,
        "m" => 20,
        "g" => 30,
        "t" => 40,
        "p" => 50,
        _ => return None,
    };
    let value = num.parse::<f64>().ok()? * (1u64 << shift) as f64;
    (value.is_finite() && value < u64::MAX as f64).then_some(value as u64)
}

fn service(
    name: &str,
    pos: Pos,
    n: &Node,
    names: &Names<'_>,
    extra: &mut Vec<Decoded>,
    warn: &mut Sink<'_>,
    sink: &mut Sink<'_>,
) -> Option<(Decoded, bool)> {
    let what = format!("service `{name}`");
    let e = checked(n, SERVICE_KEYS, &what, sink)?;
    let cname = names.containers.get(name).cloned().unwrap_or_else(|| name.to_string());
    let mut refs = Vec::new();
    let mut spans = Spans::of_fields(n, policy_name);
    let mut s = ContainerSpec::default();
    let image = match (field(e, "build"), field(e, "image")) {
        // Built on hawser's Image path, as an Image resource named by the tag it gets, so that
        // other services naming that image run this build.
        (Some(b), image) => {
            if let Some(p) = field(e, "pull_policy") {
                match string(p, "pull_policy", sink).as_deref() {
                    Some("build" | "missing" | "if_not_present") | None => {}
                    Some(other) => sink.error(
                        p.pos,
                        format!("pull_policy `{other}` with `build`: hawser builds this image from the repository; use `build` or leave it out"),
                    ),
                }
            }
            let tag = image.and_then(|v| string(v, "image", sink));
            let reference = tag.unwrap_or_else(|| format!("{}-{name}", names.project).to_ascii_lowercase());
            build(b, &reference, sink).map(|spec| {
                let image = resource(Kind::Image, reference.clone(), b.pos, sink, DecodedSpec::Image(spec));
                extra.push(image);
                refs.push((Kind::Image, reference.clone(), b.pos));
                reference
            })
        }
        (None, Some(v)) => string(v, "image", sink).inspect(|i| {
            refs.push((Kind::Image, i.clone(), v.pos));
            // A pull policy other than the default makes the image a resource of its own.
            let pull = match field(e, "pull_policy").and_then(|p| string(p, "pull_policy", sink).map(|s| (p, s))) {
                None => None,
                Some((_, m)) if m == "missing" || m == "if_not_present" => None,
                Some((_, m)) if m == "always" => Some(PullPolicy::Always),
                Some((_, m)) if m == "never" => Some(PullPolicy::Never),
                Some((p, m)) if m == "build" => {
                    sink.error(p.pos, "pull_policy: build needs `build`");
                    None
                }
                Some((p, m)) if m == "daily" || m == "weekly" || m.starts_with("every_") => {
                    sink.error(p.pos, format!("pull_policy `{m}` is not supported by hawser: use `always`, and the service's poll interval decides how often"));
                    None
                }
                Some((p, m)) => {
                    sink.error(p.pos, format!("invalid pull_policy `{m}`: expected always, never, missing, if_not_present or build"));
                    None
                }
            };
            if let Some(pull) = pull {
                let spec = ImageSpec { reference: i.clone(), pull, build: None };
                extra.push(resource(Kind::Image, i.clone(), v.pos, sink, DecodedSpec::Image(spec)));
            }
        }),
        (None, None) => {
            sink.error(pos, format!("{what} needs `image` or `build`"));
            None
        }
    };
    s.command = field(e, "command").and_then(|v| words(v, "command", sink));
    s.entrypoint = field(e, "entrypoint").and_then(|v| words(v, "entrypoint", sink));
    if let Some(v) = field(e, "env_file") {
        // In order, each over the one before; `environment` over them all, as in compose.
        let items: Vec<&Node> = match &v.value {
            Value::Seq(items) => items.iter().collect(),
            _ => vec![v],
        };
        for item in items {
            let (file, required) = match &item.value {
                Value::Map(m) => (
                    field(m, "path").and_then(|p| string(p, "env_file.path", sink)),
                    field(m, "required").and_then(|r| boolean(r, "env_file.required", sink)).unwrap_or(true),
                ),
                _ => (string(item, "env_file", sink), true),
            };
            let Some(file) = file else { continue };
            let base = sink.file.rsplit_once('/').map_or("", |(dir, _)| dir);
            let text = repository_path(base, &file).and_then(|p| names.data.get(&p));
            match text.map(|t| super::interpolate::parse_dotenv(t, None, &mut Found::default())) {
                Some(Ok(values)) => s.env.extend(values),
                Some(Err((line, message))) => {
                    sink.error(item.pos, format!("env_file `{file}`, line {line}: {message}"))
                }
                None if required => {
                    sink.error(item.pos, format!("env_file `{file}` is not in this revision of the repository"))
                }
                None => {}
            }
        }
    }
    if let Some(v) = field(e, "environment") {
        s.env.extend(pairs(v, "environment", '=', sink));
    }
    if let Some(v) = field(e, "ports") {
        for item in seq(v, "ports", sink).unwrap_or_default() {
            if let Some(p) = port(item, sink) {
                s.ports.push(p);
            }
        }
    }
    if let Some(v) = field(e, "volumes") {
        for item in seq(v, "volumes", sink).unwrap_or_default() {
            if let Some(m) = mount(item, names, &cname, &mut refs, sink) {
                // An anonymous volume gets a name of its own, so its data outlives replacements.
                if let Mount::Volume { source, .. } = &m {
                    let declared = extra.iter().any(|d| d.kind == Kind::Volume && &d.name == source);
                    if source.starts_with(&format!("{cname}-anon-")) && !declared {
                        let spec = VolumeSpec { driver: "local".into(), retain: true, ..Default::default() };
                        extra.push(resource(Kind::Volume, source.clone(), item.pos, sink, DecodedSpec::Volume(spec)));
                    }
                }
                spans.mark(format!("volumes/{}", m.target()), item.pos);
                s.volumes.push(m);
            }
        }
    }
    if let Some(v) = field(e, "secrets") {
        for item in seq(v, "secrets", sink).unwrap_or_default() {
            if let Some(m) = secret_mount(item, names, sink) {
                spans.mark(format!("volumes/{}", m.target()), item.pos);
                s.volumes.push(m);
            }
        }
    }
    if let Some(v) = field(e, "configs") {
        for item in seq(v, "configs", sink).unwrap_or_default() {
            if let Some(m) = config_mount(item, names, sink) {
                spans.mark(format!("volumes/{}", m.target()), item.pos);
                s.volumes.push(m);
            }
        }
    }
    if let Some(v) = field(e, "tmpfs") {
        let targets = match &v.value {
            Value::Str(t) => vec![t.clone()],
            _ => string_list(v, "tmpfs", sink).unwrap_or_default(),
        };
        for t in targets {
            let target = t.split(':').next().unwrap_or(&t).to_string();
            s.volumes.push(Mount::Tmpfs { target, size: None });
        }
    }
    let mut default_net = false;
    if let Some(v) = field(e, "networks") {
        match &v.value {
            Value::Seq(items) => {
                for i in items {
                    if let Some(n) = string(i, "a network name", sink) {
                        let real = names.networks.get(&n).cloned().unwrap_or(n);
                        refs.push((Kind::Network, real.clone(), i.pos));
                        s.networks.insert(real, NetworkAttachment::default());
                    }
                }
            }
            Value::Map(entries) => {
                for (k, v) in entries {
                    let real = names.networks.get(&k.name).cloned().unwrap_or(k.name.clone());
                    refs.push((Kind::Network, real.clone(), k.pos));
                    let mut att = NetworkAttachment::default();
                    if let Some(a) = checked(v, &["aliases", "ipv4_address", "ipv6_address"], "a service network", sink)
                    {
                        att.aliases =
                            field(a, "aliases").and_then(|v| string_list(v, "aliases", sink)).unwrap_or_default();
                        att.ipv4_address =
                            field(a, "ipv4_address").and_then(|v| super::decode::address(v, "ipv4_address", sink));
                        att.ipv6_address =
                            field(a, "ipv6_address").and_then(|v| super::decode::address(v, "ipv6_address", sink));
                        att.aliases.sort();
                        att.aliases.dedup();
                    }
                    s.networks.insert(real, att);
                }
            }
            other => sink.error(v.pos, format!("networks must be a list or a map, found {}", other.type_name())),
        }
    }
    if let Some(v) = field(e, "network_mode") {
        if let Some(mode) = string(v, "network_mode", sink) {
            let mode = match mode.strip_prefix("service:") {
                Some(svc) => format!("container:{}", names.containers.get(svc).cloned().unwrap_or(svc.to_string())),
                None => mode,
            };
            if let Some(other) = mode.strip_prefix("container:") {
                refs.push((Kind::Container, other.to_string(), v.pos));
            } else if mode != "host" && mode != "none" && mode != "bridge" {
                sink.error(
                    v.pos,
                    format!("invalid network_mode `{mode}`: expected host, none, service:NAME or container:NAME"),
                );
            }
            if mode != "bridge" {
                s.network_mode = Some(mode);
            }
        }
    } else if s.networks.is_empty() {
        default_net = true;
        s.networks.insert(names.networks["default"].clone(), NetworkAttachment::default());
    }
    if cname != name {
        // Compose keeps the service's name in DNS whatever the container is called: other
        // services reach `db` even with `container_name: blog-db`.
        for a in s.networks.values_mut().filter(|a| !a.aliases.iter().any(|x| x == name)) {
            a.aliases.push(name.to_string());
            a.aliases.sort();
        }
    }
    if let Some(v) = field(e, "depends_on") {
        match &v.value {
            Value::Seq(items) => {
                for i in items {
                    if let Some(svc) = string(i, "a depends_on entry", sink) {
                        let real = names.containers.get(&svc).cloned().unwrap_or(svc);
                        refs.push((Kind::Container, real.clone(), i.pos));
                        s.depends_on.insert(real, DependCondition::Started);
                    }
                }
            }
            Value::Map(entries) => {
                for (k, v) in entries {
                    let real = names.containers.get(&k.name).cloned().unwrap_or(k.name.clone());
                    let d = checked(v, &["condition", "restart", "required"], "a depends_on entry", sink);
                    let required = d.and_then(|d| field(d, "required")).and_then(|r| boolean(r, "required", sink));
                    if required == Some(false) && !names.active.contains(&k.name) {
                        // Compose starts the service without it (a profile left it out).
                        continue;
                    }
                    refs.push((Kind::Container, real.clone(), k.pos));
                    let mut cond = DependCondition::Started;
                    if let Some(d) = d {
                        if let Some(c) = field(d, "condition") {
                            cond = match string(c, "condition", sink).as_deref() {
                                Some("service_started") | None => DependCondition::Started,
                                Some("service_healthy") => DependCondition::Healthy,
                                Some("service_completed_successfully") => DependCondition::Completed,
                                Some(other) => {
                                    sink.error(c.pos, format!("invalid condition `{other}`: expected service_started, service_healthy or service_completed_successfully"));
                                    DependCondition::Started
                                }
                            };
                        }
                    }
                    s.depends_on.insert(real, cond);
                }
            }
            other => sink.error(v.pos, format!("depends_on must be a list or a map, found {}", other.type_name())),
        }
    }
    if let Some(v) = field(e, "healthcheck") {
        s.healthcheck = healthcheck(v, sink);
    }
    if let Some(v) = field(e, "logging") {
        s.logging = super::decode::logging(v, sink);
    }
    s.shm_size = field(e, "shm_size").and_then(|v| docker_size(v, "shm_size", sink));
    s.ulimits = field(e, "ulimits").map(|v| super::decode::ulimits(v, sink)).unwrap_or_default();
    s.dns = field(e, "dns").map(|v| super::decode::dns(v, sink)).unwrap_or_default();
    s.expose = field(e, "expose").map(|v| super::decode::expose(v, "expose", sink)).unwrap_or_default();
    s.platform = field(e, "platform").and_then(|v| super::decode::platform(v, "platform", sink));
    s.runtime = field(e, "runtime").and_then(|v| string(v, "runtime", sink));
    if let Some(v) = field(e, "sysctls") {
        s.sysctls = super::decode::sysctls(pairs(v, "sysctls", '=', sink), v.pos, sink);
    }
    s.devices = field(e, "devices").map(|v| super::decode::devices(v, "devices", &mut spans, sink)).unwrap_or_default();
    s.security_opt = field(e, "security_opt").and_then(|v| string_list(v, "security_opt", sink)).unwrap_or_default();
    // `service:NAME` shares another service's namespace, by its container.
    let shared = |mode: String| match mode.strip_prefix("service:") {
        Some(svc) => format!("container:{}", names.containers.get(svc).cloned().unwrap_or(svc.to_string())),
        None => mode,
    };
    s.pid = field(e, "pid").and_then(|v| {
        let mode = shared(string(v, "pid", sink)?);
        super::decode::namespace_mode(mode, "pid", &["host"], v.pos, &mut refs, sink)
    });
    s.ipc = field(e, "ipc").and_then(|v| {
        let mode = shared(string(v, "ipc", sink)?);
        super::decode::namespace_mode(mode, "ipc", &["private", "shareable", "none", "host"], v.pos, &mut refs, sink)
    });
    s.group_add = field(e, "group_add")
        .and_then(|v| seq(v, "group_add", sink))
        .map(|items| items.iter().filter_map(|i| lenient_string(i, "group_add", sink)).collect())
        .unwrap_or_default();
    s.oom_score_adj = field(e, "oom_score_adj").and_then(|v| super::decode::oom_score_adj(v, "oom_score_adj", sink));
    s.domainname = field(e, "domainname").and_then(|v| string(v, "domainname", sink));
    if let Some(v) = field(e, "links") {
        // `SERVICE[:ALIAS]`: the service's container under ALIAS, started first, as compose does.
        for item in seq(v, "links", sink).unwrap_or_default() {
            let Some(link) = string(item, "links", sink) else { continue };
            let (svc, alias) = link.split_once(':').unwrap_or((&link, &link));
            let real = names.containers.get(svc).cloned().unwrap_or(svc.to_string());
            refs.push((Kind::Container, real.clone(), item.pos));
            s.links.push(format!("{real}:{alias}"));
            s.depends_on.entry(real).or_insert(DependCondition::Started);
        }
        s.links.sort();
        s.links.dedup();
    }
    for (key, hooks) in [("post_start", &mut s.post_start), ("pre_stop", &mut s.pre_stop)] {
        // `[{command, user, privileged, working_dir, environment}]`, as compose runs them.
        for item in field(e, key).and_then(|v| seq(v, key, sink)).unwrap_or_default() {
            let Some(h) = checked(item, &["command", "user", "privileged", "working_dir", "environment"], key, sink)
            else {
                continue;
            };
            let Some(command) = field(h, "command").and_then(|v| words(v, "command", sink)) else {
                sink.error(item.pos, format!("{key}: a hook needs `command`"));
                continue;
            };
            hooks.push(Hook {
                command,
                user: field(h, "user").and_then(|v| lenient_string(v, "user", sink)),
                working_dir: field(h, "working_dir").and_then(|v| string(v, "working_dir", sink)),
                env: field(h, "environment").map(|v| pairs(v, "environment", '=', sink)).unwrap_or_default(),
                privileged: field(h, "privileged").and_then(|v| boolean(v, "privileged", sink)).unwrap_or(false),
            });
        }
    }
    if let Some(v) = field(e, "volumes_from") {
        // `SERVICE[:ro|rw]` or `container:NAME[:ro|rw]`: that container's mounts.
        for item in seq(v, "volumes_from", sink).unwrap_or_default() {
            let Some(entry) = string(item, "volumes_from", sink) else { continue };
            let entry = entry.strip_prefix("container:").map(str::to_string).unwrap_or_else(|| entry.clone());
            let (name, mode) = match entry.rsplit_once(':') {
                Some((n, m @ ("ro" | "rw"))) => (n.to_string(), Some(m)),
                _ => (entry.clone(), None),
            };
            if name.is_empty() || name.contains(':') {
                sink.error(
                    item.pos,
                    format!("volumes_from: `{entry}`: expected SERVICE or container:NAME, with an optional :ro or :rw"),
                );
                continue;
            }
            let real = names.containers.get(&name).cloned().unwrap_or(name);
            refs.push((Kind::Container, real.clone(), item.pos));
            s.volumes_from.push(mode.map_or(real.clone(), |m| format!("{real}:{m}")));
        }
    }
    if let Some(v) = field(e, "restart") {
        if let Some(r) = lenient_string(v, "restart", sink) {
            match r.parse::<RestartPolicy>() {
                Ok(p) => s.restart = Some(p),
                Err(err) => sink.error(v.pos, format!("restart: {err}")),
            }
        }
    }
    if let Some(v) = field(e, "labels") {
        s.labels = pairs(v, "labels", '=', sink);
        check_labels(&s.labels, v.pos, sink);
    }
    s.user = field(e, "user").and_then(|v| lenient_string(v, "user", sink));
    s.working_dir = field(e, "working_dir").and_then(|v| string(v, "working_dir", sink));
    s.hostname = field(e, "hostname").and_then(|v| string(v, "hostname", sink));
    s.stop_signal = field(e, "stop_signal").and_then(|v| string(v, "stop_signal", sink));
    s.stop_timeout = field(e, "stop_grace_period").and_then(|v| duration(v, "stop_grace_period", sink));
    s.read_only = field(e, "read_only").and_then(|v| boolean(v, "read_only", sink));
    s.init = field(e, "init").and_then(|v| boolean(v, "init", sink));
    s.tty = field(e, "tty").and_then(|v| boolean(v, "tty", sink));
    s.stdin_open = field(e, "stdin_open").and_then(|v| boolean(v, "stdin_open", sink));
    s.privileged = field(e, "privileged").and_then(|v| boolean(v, "privileged", sink));
    s.cap_add = field(e, "cap_add").map(|v| capabilities(v, "capAdd", &mut spans, sink)).unwrap_or_default();
    s.cap_drop = field(e, "cap_drop").map(|v| capabilities(v, "capDrop", &mut spans, sink)).unwrap_or_default();
    if let Some(v) = field(e, "extra_hosts") {
        let sep = if matches!(v.value, Value::Seq(_)) { ':' } else { '=' };
        let hosts = pairs(v, "extra_hosts", sep, sink);
        s.extra_hosts = hosts.into_iter().map(|(h, ip)| format!("{h}:{ip}")).collect();
    }
    let number = |v: &Node| match &v.value {
        Value::Float(f) => Some(*f),
        Value::Int(i) => Some(*i as f64),
        Value::Str(t) => t.parse().ok(),
        _ => None,
    };
    let mut memory = field(e, "mem_limit").and_then(|v| docker_size(v, "mem_limit", sink));
    let mut cpus = field(e, "cpus").and_then(number);
    let mut pids = field(e, "pids_limit").and_then(|v| integer(v, "pids_limit", sink));
    let mut reservation = field(e, "mem_reservation").and_then(|v| docker_size(v, "mem_reservation", sink));
    if let Some(n) = field(e, "scale") {
        replicas(n, "scale", &mut s, sink);
    }
    if let Some(d) = field(e, "deploy") {
        let limits = deploy(d, &mut s, names.target, warn, sink);
        // The service's own keys win over `deploy.resources`, as in compose.
        memory = memory.or(limits.memory);
        cpus = cpus.or(limits.cpus);
        pids = pids.or(limits.pids);
        reservation = reservation.or(limits.memory_reservation);
    }
    if memory.is_some() || cpus.is_some() || pids.is_some() || reservation.is_some() {
        s.resources = Some(Limits { memory, cpus, pids, memory_reservation: reservation });
    }
    if let Some(cn) = field(e, "container_name") {
        if let Err(err) = check_name(&cname) {
            sink.error(cn.pos, err);
            return None;
        }
    } else if let Err(err) = check_name(&cname) {
        sink.error(pos, err);
        return None;
    }
    normalize_order(&mut s, pos, sink);
    s.image = image?;
    let mut d = resource(Kind::Container, cname, pos, sink, DecodedSpec::Container(Box::new(s)));
    d.refs = refs;
    d.spans = spans;
    Some((d, default_net))
}

/// `scale` or `deploy.replicas` (which wins, as in compose): how many containers run the
/// service.
fn replicas(n: &Node, what: &str, s: &mut ContainerSpec, sink: &mut Sink<'_>) {
    match integer(n, what, sink) {
        Some(k) if k >= 0 => s.replicas = Some(k as u64),
        Some(k) => sink.error(n.pos, format!("{what}: {k} is not a number of containers")),
        None => {}
    }
}

/// `deploy`: `resources.limits` are the container's limits, `restart_policy` its restart policy
/// (unless `restart` is given). On a swarm, `replicas`, `mode`, `placement`, `update_config`
/// and `endpoint_mode` schedule the service; on one host, `replicas` and `update_config` are its
/// containers and how a change rolls over them, and what only a cluster can do is refused at its
/// position with the reason.
fn deploy(n: &Node, s: &mut ContainerSpec, target: Target, warn: &mut Sink<'_>, sink: &mut Sink<'_>) -> Limits {
    let mut out = Limits::default();
    const CLUSTER: &[&str] = &["placement", "rollback_config", "endpoint_mode", "labels"];
    let known = ["replicas", "resources", "restart_policy", "mode", "update_config"];
    let Some(e) = checked(n, &[&known[..], CLUSTER].concat(), "deploy", sink) else { return out };
    if target.is_cluster() {
        swarm_deploy(e, s, warn, sink);
    } else {
        for (k, _) in e.iter().filter(|(k, _)| CLUSTER.contains(&k.name.as_str())) {
            sink.error(
                k.pos,
                format!("deploy.{} is for a cluster; one host has nothing to apply it to (target = \"swarm\" deploys to one)", k.name),
            );
        }
        if let Some(r) = field(e, "replicas") {
            replicas(r, "deploy.replicas", s, sink);
        }
        update_config(e, s, warn, sink);
        if let Some(m) = field(e, "mode").and_then(|v| string(v, "deploy.mode", sink)) {
            if m != "replicated" {
                sink.error(n.pos, format!("deploy.mode `{m}` needs a cluster target"));
            }
        }
    }
    if let Some(res) =
        field(e, "resources").and_then(|r| checked(r, &["limits", "reservations"], "deploy.resources", sink))
    {
        if let Some(r) = field(res, "reservations")
            .and_then(|r| checked(r, &["cpus", "memory", "devices"], "deploy.resources.reservations", sink))
        {
            out.memory_reservation =
                field(r, "memory").and_then(|v| docker_size(v, "deploy.resources.reservations.memory", sink));
            if let Some(c) = field(r, "cpus") {
                // The engine has no CPU reservation for one container; compose ignores it too.
                warn.error(
                    c.pos,
                    "deploy.resources.reservations.cpus has no effect on one host (a cluster schedules by it)",
                );
            }
            if let Some(d) = field(r, "devices") {
                sink.error(d.pos, "deploy.resources.reservations.devices (GPUs) is not supported by hawser yet; give the devices with `devices`");
            }
        }
        if let Some(l) =
            field(res, "limits").and_then(|l| checked(l, &["cpus", "memory", "pids"], "deploy.resources.limits", sink))
        {
            out.memory = field(l, "memory").and_then(|v| docker_size(v, "deploy.resources.limits.memory", sink));
            out.cpus = field(l, "cpus").and_then(|v| match &v.value {
                Value::Float(f) => Some(*f),
                Value::Int(i) => Some(*i as f64),
                Value::Str(t) => t.parse().ok(),
                _ => None,
            });
            out.pids = field(l, "pids").and_then(|v| integer(v, "deploy.resources.limits.pids", sink));
        }
    }
    if let Some(rp) = field(e, "restart_policy")
        .and_then(|r| checked(r, &["condition", "max_attempts"], "deploy.restart_policy", sink))
    {
        let condition = field(rp, "condition").and_then(|v| string(v, "condition", sink));
        let attempts = field(rp, "max_attempts").and_then(|v| integer(v, "max_attempts", sink));
        let policy = match (condition.as_deref(), attempts) {
            (Some("none"), _) => Some("no".to_string()),
            (Some("on-failure"), Some(n)) => Some(format!("on-failure:{n}")),
            (Some("on-failure"), None) => Some("on-failure".to_string()),
            (Some("any") | None, _) => Some("always".to_string()),
            (Some(other), _) => {
                sink.error(
                    n.pos,
                    format!("invalid deploy.restart_policy.condition `{other}`: expected none, on-failure or any"),
                );
                None
            }
        };
        if s.restart.is_none() {
            s.restart = policy.and_then(|p| p.parse().ok());
        }
    }
    out
}

/// Keys of compose's `build` that hawser reads; the others are refused at their position.
const BUILD_KEYS: &[&str] = &[
    "context",
    "dockerfile",
    "args",
    "target",
    "dockerfile_inline",
    "labels",
    "extra_hosts",
    "shm_size",
    "network",
    "platforms",
    "cache_from",
    "no_cache",
    "pull",
];
/// Keys of compose's `build` hawser refuses, with why and what to write instead.
const BUILD_REFUSED: &[(&str, &str)] = &[
    ("tags", "hawser tags a built image by its context's hash, so a change is a new image: name the image other services run in their `image`"),
    ("cache_to", "exporting a build cache needs BuildKit; hawser builds through the engine's build API"),
    ("ssh", "forwarding an SSH agent needs BuildKit; hawser builds through the engine's build API: fetch what needs the key before the build (in CI)"),
    ("secrets", "build secrets need BuildKit; hawser builds through the engine's build API: fetch what needs them before the build (in CI)"),
    ("additional_contexts", "more than one context needs BuildKit; hawser builds through the engine's build API: put what the Dockerfile copies under one context"),
    ("privileged", "a privileged build needs BuildKit's entitlements, which hawser does not grant"),
    ("entitlements", "BuildKit's entitlements are not granted by hawser"),
    ("isolation", "isolation is for Windows hosts"),
    ("ulimits", "the engine's build API takes no ulimits"),
];

/// A service's `build` (a context path, or `{context, dockerfile, args, target}`) as an Image
/// spec tagged `reference`. The context is relative to the compose file's folder and must stay
/// inside the repository.
fn build(n: &Node, reference: &str, sink: &mut Sink<'_>) -> Option<ImageSpec> {
    if let Err(e) = super::decode::check_reference(reference) {
        sink.error(n.pos, format!("build: the image name `{reference}`: {e}"));
        return None;
    }
    let (context, context_pos, mut spec) = match &n.value {
        Value::Str(c) => (c.clone(), n.pos, BuildSpec::default()),
        Value::Map(entries) => {
            for (k, _) in entries {
                if let Some((_, why)) = BUILD_REFUSED.iter().find(|(r, _)| *r == k.name) {
                    sink.error(k.pos, format!("compose key `build.{}` is not supported by hawser: {why}", k.name));
                } else if !BUILD_KEYS.contains(&k.name.as_str()) && !k.name.starts_with("x-") {
                    let hint = super::diag::did_you_mean(&k.name, BUILD_KEYS)
                        .map(|h| format!("; did you mean `{h}`?"))
                        .unwrap_or_default();
                    sink.error(k.pos, format!("unknown compose key `{}` in build{hint}", k.name));
                }
            }
            let platforms =
                field(entries, "platforms").and_then(|v| Some((v.pos, string_list(v, "build.platforms", sink)?)));
            let platform = match platforms {
                Some((_, p)) if p.len() <= 1 => p.into_iter().next(),
                Some((pos, _)) => {
                    sink.error(pos, "build.platforms: a multi-platform build needs BuildKit; hawser builds one platform through the engine's build API: give one");
                    None
                }
                None => None,
            };
            let extra_hosts = field(entries, "extra_hosts").map(|v| {
                let sep = if matches!(v.value, Value::Seq(_)) { ':' } else { '=' };
                pairs(v, "build.extra_hosts", sep, sink).into_iter().map(|(h, ip)| format!("{h}:{ip}")).collect()
            });
            let spec = BuildSpec {
                dockerfile: field(entries, "dockerfile").and_then(|v| string(v, "build.dockerfile", sink)),
                args: field(entries, "args").map(|v| pairs(v, "build.args", '=', sink)).unwrap_or_default(),
                target: field(entries, "target").and_then(|v| string(v, "build.target", sink)),
                dockerfile_inline: field(entries, "dockerfile_inline")
                    .and_then(|v| string(v, "build.dockerfile_inline", sink)),
                labels: field(entries, "labels").map(|v| pairs(v, "build.labels", '=', sink)).unwrap_or_default(),
                extra_hosts: extra_hosts.unwrap_or_default(),
                shm_size: field(entries, "shm_size").and_then(|v| docker_size(v, "build.shm_size", sink)),
                network: field(entries, "network").and_then(|v| super::decode::build_network(v, sink)),
                platform,
                cache_from: field(entries, "cache_from")
                    .and_then(|v| string_list(v, "build.cache_from", sink))
                    .unwrap_or_default(),
                no_cache: field(entries, "no_cache").and_then(|v| boolean(v, "build.no_cache", sink)).unwrap_or(false),
                pull: field(entries, "pull").and_then(|v| boolean(v, "build.pull", sink)).unwrap_or(false),
                ..Default::default()
            };
            super::decode::check_build(&spec, n.pos, sink);
            let context = field(entries, "context").map_or(Some(".".to_string()), |v| string(v, "build.context", sink));
            let at = field(entries, "context").map_or(n.pos, |v| v.pos);
            (context?, at, spec)
        }
        other => {
            sink.error(n.pos, format!("build must be a path or a map, found {}", other.type_name()));
            return None;
        }
    };
    let base = sink.file.rsplit_once('/').map_or("", |(dir, _)| dir);
    match repository_path(base, &context) {
        Some(c) => spec.context = c,
        None => {
            sink.error(context_pos, format!("build context `{context}` must be a folder inside the repository"));
            return None;
        }
    }
    Some(ImageSpec { reference: reference.to_string(), pull: PullPolicy::Missing, build: Some(spec) })
}

/// `rel` taken from folder `base` of the repository, as a path from the repository's root
/// (`.` for the root itself); `None` when it is absolute or climbs out.
fn repository_path(base: &str, rel: &str) -> Option<String> {
    if rel.starts_with('/') || rel.starts_with('~') {
        return None;
    }
    let mut parts: Vec<&str> = base.split('/').filter(|p| !p.is_empty()).collect();
    for part in rel.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            p => parts.push(p),
        }
    }
    Some(if parts.is_empty() { ".".into() } else { parts.join("/") })
}

fn port(n: &Node, sink: &mut Sink<'_>) -> Option<PortBinding> {
    if let Value::Map(_) = n.value {
        let e = checked(
            n,
            &["target", "published", "host_ip", "protocol", "mode", "name", "app_protocol"],
            "a port",
            sink,
        )?;
        let target = field(e, "target").and_then(|v| integer(v, "target", sink));
        let published = field(e, "published").and_then(|v| lenient_string(v, "published", sink));
        let host_ip = field(e, "host_ip").and_then(|v| string(v, "host_ip", sink));
        let proto = field(e, "protocol").and_then(|v| string(v, "protocol", sink)).unwrap_or_else(|| "tcp".into());
        let mode = field(e, "mode").and_then(|v| string(v, "mode", sink));
        let Some(target) = target else {
            sink.error(n.pos, "a port needs `target`");
            return None;
        };
        let mut text = String::new();
        if let Some(ip) = host_ip {
            text.push_str(&if ip.contains(':') { format!("[{ip}]:") } else { format!("{ip}:") });
            if published.is_none() {
                text.push(':');
            }
        }
        if let Some(p) = published {
            text.push_str(&format!("{p}:"));
        }
        text.push_str(&format!("{target}/{proto}"));
        match mode.as_deref() {
            None | Some("ingress") => {}
            Some("host") => text.push_str("/host"),
            Some(other) => {
                sink.error(n.pos, format!("invalid port mode `{other}`: expected ingress or host"));
                return None;
            }
        }
        return match text.parse() {
            Ok(p) => Some(p),
            Err(e) => {
                sink.error(n.pos, e);
                None
            }
        };
    }
    let text = lenient_string(n, "a port", sink)?;
    if text.contains('-') {
        sink.error(n.pos, format!("port ranges (`{text}`) are not supported by hawser: list each port"));
        return None;
    }
    match text.parse::<PortBinding>() {
        Ok(p) => Some(p),
        Err(e) => {
            sink.error(n.pos, e);
            None
        }
    }
}

/// `deploy.update_config`: how a change of the service rolls over its containers (a swarm's
/// tasks, or one host's replicas).
fn update_config(e: &[(super::node::Key, Node)], s: &mut ContainerSpec, warn: &mut Sink<'_>, sink: &mut Sink<'_>) {
    if let Some(u) = field(e, "update_config").and_then(|u| {
        checked(
            u,
            &["parallelism", "delay", "failure_action", "monitor", "max_failure_ratio", "order"],
            "deploy.update_config",
            sink,
        )
    }) {
        let mut up = s.update.clone().unwrap_or_default();
        up.parallelism = field(u, "parallelism").and_then(|v| integer(v, "parallelism", sink)).map(|n| n.max(1) as u64);
        up.strategy = match field(u, "order").map(|v| (v.pos, string(v, "order", sink))) {
            Some((_, Some(o))) if o == "start-first" => Some(Strategy::StartFirst),
            Some((_, Some(o))) if o == "stop-first" => Some(Strategy::StopFirst),
            Some((pos, Some(o))) => {
                sink.error(pos, format!("deploy.update_config.order `{o}`: expected start-first or stop-first"));
                None
            }
            _ => up.strategy,
        };
        for (k, v) in u
            .iter()
            .filter(|(k, _)| matches!(k.name.as_str(), "delay" | "failure_action" | "monitor" | "max_failure_ratio"))
        {
            let _ = v;
            warn.error(k.pos, format!("deploy.update_config.{} is hawser's to choose: a failed update is rolled back, watched for update.minUptime", k.name));
        }
        s.update = Some(up);
    }
}

/// The scheduling part of `deploy` on a swarm, into the fields hawser manifests have.
fn swarm_deploy(e: &[(super::node::Key, Node)], s: &mut ContainerSpec, warn: &mut Sink<'_>, sink: &mut Sink<'_>) {
    if let Some(r) = field(e, "replicas") {
        match integer(r, "deploy.replicas", sink) {
            Some(n) if n >= 0 => s.replicas = Some(n as u64),
            Some(n) => sink.error(r.pos, format!("deploy.replicas: {n} is not a number of tasks")),
            None => {}
        }
    }
    if let Some(m) = field(e, "mode") {
        match string(m, "deploy.mode", sink).as_deref() {
            Some("replicated") => s.mode = Some(ServiceMode::Replicated),
            Some("global") => s.mode = Some(ServiceMode::Global),
            Some(other) => sink.error(m.pos, format!("deploy.mode `{other}`: expected replicated or global")),
            None => {}
        }
    }
    if let Some(p) = field(e, "placement")
        .and_then(|p| checked(p, &["constraints", "preferences", "max_replicas_per_node"], "deploy.placement", sink))
    {
        let mut out = Placement::default();
        if let Some(c) = field(p, "constraints") {
            out.constraints = string_list(c, "deploy.placement.constraints", sink).unwrap_or_default();
            out.constraints.sort();
        }
        if let Some(Value::Seq(items)) = field(p, "preferences").map(|v| &v.value) {
            for item in items {
                if let Some(spread) = checked(item, &["spread"], "a placement preference", sink)
                    .and_then(|pf| field(pf, "spread"))
                    .and_then(|v| string(v, "spread", sink))
                {
                    out.preferences.push(spread);
                }
            }
        }
        out.max_replicas_per_node = field(p, "max_replicas_per_node")
            .and_then(|v| integer(v, "max_replicas_per_node", sink))
            .map(|n| n.max(1) as u64);
        s.placement = Some(out);
    }
    update_config(e, s, warn, sink);
    if let Some(k) = e.iter().find(|(k, _)| k.name == "rollback_config").map(|(k, _)| k) {
        warn.error(k.pos, "deploy.rollback_config is hawser's to choose: a rollback undoes the update as it was made");
    }
    if let Some(m) = field(e, "endpoint_mode") {
        match string(m, "deploy.endpoint_mode", sink).as_deref() {
            Some("vip") => s.endpoint_mode = Some(EndpointMode::Vip),
            Some("dnsrr") => s.endpoint_mode = Some(EndpointMode::Dnsrr),
            Some(other) => sink.error(m.pos, format!("deploy.endpoint_mode `{other}`: expected vip or dnsrr")),
            None => {}
        }
    }
    if let Some(l) = field(e, "labels") {
        for (k, v) in super::decode::string_map(l, "deploy.labels", sink).unwrap_or_default() {
            s.labels.entry(k).or_insert(v);
        }
    }
}

fn healthcheck(n: &Node, sink: &mut Sink<'_>) -> Option<Healthcheck> {
    let e = checked(
        n,
        &["test", "interval", "timeout", "retries", "start_period", "start_interval", "disable"],
        "healthcheck",
        sink,
    )?;
    if field(e, "disable").and_then(|v| boolean(v, "disable", sink)) == Some(true) {
        return Some(Healthcheck::disabled());
    }
    let test = match field(e, "test") {
        None => {
            sink.error(n.pos, "healthcheck needs `test`");
            return None;
        }
        Some(v) => match &v.value {
            Value::Str(s) => vec!["CMD-SHELL".to_string(), s.clone()],
            _ => string_list(v, "healthcheck.test", sink)?,
        },
    };
    if test.first().map(String::as_str) == Some("NONE") {
        return Some(Healthcheck::disabled());
    }
    Some(Healthcheck {
        test,
        interval: field(e, "interval").and_then(|v| duration(v, "interval", sink)),
        timeout: field(e, "timeout").and_then(|v| duration(v, "timeout", sink)),
        retries: field(e, "retries")
            .and_then(|v| integer(v, "retries", sink))
            .map(|r| r.clamp(0, u32::MAX as i64) as u32),
        start_period: field(e, "start_period").and_then(|v| duration(v, "start_period", sink)),
    })
}

#[cfg(test)]
mod tests;
