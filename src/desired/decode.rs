//! Decodes document trees into resource specs: checks types and field names, expands short forms,
//! and reports each problem at its position. It never stops at the first problem.

use super::diag::{did_you_mean, Pos, Sink};
use super::model::*;
use super::node::{Key, Node, Value};
use super::types::{
    ByteSize, Capability, ContainerPort, Device, Duration, Invalid, PortBinding, Protocol, RestartPolicy,
};
use std::collections::BTreeMap;
use std::str::FromStr;

pub const API_VERSION: &str = "hawser.dev/v1";

/// A decoded resource before cross-resource checks (references are still names as written).
#[derive(Debug)]
pub struct Decoded {
    pub kind: Kind,
    pub name: String,
    pub name_pos: Pos,
    pub origin: Origin,
    pub spec: DecodedSpec,
    /// Positions of references to other resources, for error messages: (kind, name, pos).
    pub refs: Vec<(Kind, String, Pos)>,
    /// Where the parts of the spec were written, for the host policy's messages.
    pub spans: Spans,
}

/// Positions of a spec's parts, keyed by the names the host policy gives them: a field
/// (`privileged`, `driver`), an entry of a map field (`driverOpts/device`, `secretEnv/TOKEN`) or
/// an item of a list by its normalized value (`capAdd/SYS_ADMIN`, `volumes//data` by target).
/// Only positions: the policy reads the typed spec, so a part with no span is still checked,
/// and reported at the resource.
#[derive(Clone, Debug, Default)]
pub struct Spans(BTreeMap<String, Pos>);

impl Spans {
    pub fn mark(&mut self, key: impl Into<String>, pos: Pos) {
        self.0.entry(key.into()).or_insert(pos);
    }

    /// The position of `key`, else of the field it belongs to.
    pub fn find(&self, key: &str) -> Option<Pos> {
        self.0.get(key).or_else(|| key.split_once('/').and_then(|(field, _)| self.0.get(field))).copied()
    }

    /// Marks a spec map's fields and the entries of its map fields, with field names passed
    /// through `rename` (compose's `cap_add` is the policy's `capAdd`).
    pub fn of_fields(n: &Node, rename: impl Fn(&str) -> &str) -> Spans {
        let mut spans = Spans::default();
        let Value::Map(entries) = &n.value else { return spans };
        for (k, v) in entries {
            let field = rename(&k.name);
            spans.mark(field, v.pos);
            if let Value::Map(inner) = &v.value {
                for (ik, iv) in inner {
                    spans.mark(format!("{field}/{}", ik.name), iv.pos);
                }
            }
        }
        spans
    }
}

#[derive(Debug, PartialEq)]
pub enum DecodedSpec {
    Network(NetworkSpec),
    Volume(VolumeSpec),
    Image(ImageSpec),
    Container(Box<ContainerSpec>),
}

/// The fields of one map, handed out by name; what is never asked for is an unknown field.
pub(super) struct Fields<'n> {
    pub(super) pos: Pos,
    entries: &'n [(Key, Node)],
    asked: Vec<&'static str>,
}

impl<'n> Fields<'n> {
    pub(super) fn of(node: &'n Node, what: &str, sink: &mut Sink<'_>) -> Option<Fields<'n>> {
        match &node.value {
            Value::Map(entries) => Some(Fields { pos: node.pos, entries, asked: Vec::new() }),
            Value::Null => Some(Fields { pos: node.pos, entries: &[], asked: Vec::new() }),
            other => {
                sink.error(node.pos, format!("{what} must be a map, found {}", other.type_name()));
                None
            }
        }
    }

    pub(super) fn get(&mut self, name: &'static str) -> Option<&'n Node> {
        self.asked.push(name);
        self.entries.iter().find(|(k, _)| k.name == name).map(|(_, v)| v).filter(|v| v.value != Value::Null)
    }

    pub(super) fn required(&mut self, name: &'static str, what: &str, sink: &mut Sink<'_>) -> Option<&'n Node> {
        let v = self.get(name);
        // A misspelt key (`imgae`) is reported once, as unknown with a suggestion, not twice.
        let misspelt = || self.entries.iter().any(|(k, _)| k.name != name && did_you_mean(&k.name, &[name]).is_some());
        if v.is_none() && !misspelt() {
            sink.error(self.pos, format!("{what} is missing the required field `{name}`"));
        }
        v
    }

    pub(super) fn key_pos(&self, name: &str) -> Option<Pos> {
        self.entries.iter().find(|(k, _)| k.name == name).map(|(k, _)| k.pos)
    }

    pub(super) fn finish(self, what: &str, sink: &mut Sink<'_>) {
        for (k, _) in self.entries {
            if !self.asked.contains(&k.name.as_str()) {
                if sink.full() {
                    sink.error(k.pos, String::new());
                    continue;
                }
                let hint = match did_you_mean(&k.name, &self.asked) {
                    Some(s) => format!("; did you mean `{s}`?"),
                    None => format!("; expected one of: {}", self.asked.join(", ")),
                };
                sink.error(k.pos, format!("unknown field `{}` in {what}{hint}", k.name));
            }
        }
    }
}

pub(super) fn string(n: &Node, what: &str, sink: &mut Sink<'_>) -> Option<String> {
    match &n.value {
        Value::Str(s) => Some(s.clone()),
        other => {
            sink.error(n.pos, format!("{what} must be a string, found {}", other.type_name()));
            None
        }
    }
}

/// A string, also accepting numbers and booleans written unquoted (`PORT: 8080`), as compose does.
pub(super) fn lenient_string(n: &Node, what: &str, sink: &mut Sink<'_>) -> Option<String> {
    match &n.value {
        Value::Str(s) => Some(s.clone()),
        Value::Int(i) => Some(i.to_string()),
        Value::Float(f) => Some(f.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        other => {
            sink.error(n.pos, format!("{what} must be a string, found {}", other.type_name()));
            None
        }
    }
}

pub(super) fn boolean(n: &Node, what: &str, sink: &mut Sink<'_>) -> Option<bool> {
    match &n.value {
        Value::Bool(b) => Some(*b),
        other => {
            sink.error(n.pos, format!("{what} must be true or false, found {}", other.type_name()));
            None
        }
    }
}

pub(super) fn integer(n: &Node, what: &str, sink: &mut Sink<'_>) -> Option<i64> {
    match &n.value {
        Value::Int(i) => Some(*i),
        other => {
            sink.error(n.pos, format!("{what} must be an integer, found {}", other.type_name()));
            None
        }
    }
}

pub(super) fn parsed<T: FromStr<Err = Invalid>>(n: &Node, what: &str, sink: &mut Sink<'_>) -> Option<T> {
    let s = lenient_string(n, what, sink)?;
    match s.parse() {
        Ok(v) => Some(v),
        Err(e) => {
            sink.error(n.pos, format!("{what}: {e}"));
            None
        }
    }
}

/// An IP address of one family (`Ipv4Addr`, `Ipv6Addr`).
pub(super) fn address<T: FromStr>(n: &Node, what: &str, sink: &mut Sink<'_>) -> Option<T> {
    let s = string(n, what, sink)?;
    let parsed = s.parse().ok();
    if parsed.is_none() {
        sink.error(
            n.pos,
            format!("{what}: `{s}` is not an {} address", if what.contains('6') { "IPv6" } else { "IPv4" }),
        );
    }
    parsed
}

pub(super) fn duration(n: &Node, what: &str, sink: &mut Sink<'_>) -> Option<Duration> {
    if let Value::Int(_) | Value::Float(_) = n.value {
        sink.error(n.pos, format!("{what} needs a unit, like 5s or 500ms"));
        return None;
    }
    parsed(n, what, sink)
}

pub(super) fn seq<'n>(n: &'n Node, what: &str, sink: &mut Sink<'_>) -> Option<&'n [Node]> {
    match &n.value {
        Value::Seq(items) => Some(items),
        other => {
            sink.error(n.pos, format!("{what} must be a list, found {}", other.type_name()));
            None
        }
    }
}

pub(super) fn string_list(n: &Node, what: &str, sink: &mut Sink<'_>) -> Option<Vec<String>> {
    let items = seq(n, what, sink)?;
    let out: Vec<Option<String>> =
        items.iter().map(|i| lenient_string(i, &format!("an item of {what}"), sink)).collect();
    out.into_iter().collect()
}

/// A list of capabilities, each normalized and marked at its position as `FIELD/NAME`.
pub(super) fn capabilities(n: &Node, field: &str, spans: &mut Spans, sink: &mut Sink<'_>) -> Vec<Capability> {
    let mut out = Vec::new();
    for item in seq(n, field, sink).unwrap_or_default() {
        if let Some(c) = parsed::<Capability>(item, field, sink) {
            spans.mark(format!("{field}/{c}"), item.pos);
            out.push(c);
        }
    }
    out
}

pub(super) fn string_map(n: &Node, what: &str, sink: &mut Sink<'_>) -> Option<BTreeMap<String, String>> {
    let Value::Map(entries) = &n.value else {
        sink.error(n.pos, format!("{what} must be a map of strings, found {}", n.value.type_name()));
        return None;
    };
    let mut out = BTreeMap::new();
    let mut ok = true;
    for (k, v) in entries {
        match lenient_string(v, &format!("{what}.{}", k.name), sink) {
            Some(s) => {
                out.insert(k.name.clone(), s);
            }
            None => ok = false,
        }
    }
    ok.then_some(out)
}

/// `command` and `entrypoint`: a list is exec form; a string runs through `/bin/sh -c`, as compose's shell form.
pub(super) fn command(n: &Node, what: &str, sink: &mut Sink<'_>) -> Option<Vec<String>> {
    match &n.value {
        Value::Str(s) => Some(vec!["/bin/sh".into(), "-c".into(), s.clone()]),
        Value::Seq(_) => string_list(n, what, sink),
        other => {
            sink.error(n.pos, format!("{what} must be a list of strings or a string, found {}", other.type_name()));
            None
        }
    }
}

/// The names `ulimit` and the engine know.
const ULIMITS: &[&str] = &[
    "as",
    "core",
    "cpu",
    "data",
    "fsize",
    "locks",
    "memlock",
    "msgqueue",
    "nice",
    "nofile",
    "nproc",
    "rss",
    "rtprio",
    "rttime",
    "sigpending",
    "stack",
];

/// `ulimits: {nofile: {soft: 1024, hard: 65536}, nproc: 512}`: a number sets both limits.
pub(super) fn ulimits(n: &Node, sink: &mut Sink<'_>) -> BTreeMap<String, Ulimit> {
    let mut out = BTreeMap::new();
    let Value::Map(entries) = &n.value else {
        sink.error(n.pos, format!("ulimits must be a map of limits, found {}", n.value.type_name()));
        return out;
    };
    for (k, v) in entries {
        if !ULIMITS.contains(&k.name.as_str()) {
            let hint = did_you_mean(&k.name, ULIMITS).map(|s| format!(" (did you mean `{s}`?)")).unwrap_or_default();
            sink.error(k.pos, format!("unknown ulimit `{}`{hint}", k.name));
            continue;
        }
        let what = format!("ulimits.{}", k.name);
        let limit = match &v.value {
            Value::Int(i) => Some(Ulimit { soft: *i, hard: *i }),
            Value::Map(_) => Fields::of(v, &what, sink).and_then(|mut f| {
                let soft = f.required("soft", &what, sink).and_then(|x| integer(x, &format!("{what}.soft"), sink));
                let hard = f.required("hard", &what, sink).and_then(|x| integer(x, &format!("{what}.hard"), sink));
                f.finish(&what, sink);
                Some(Ulimit { soft: soft?, hard: hard? })
            }),
            other => {
                sink.error(v.pos, format!("{what} must be a number or {{soft, hard}}, found {}", other.type_name()));
                None
            }
        };
        match limit {
            Some(l) if l.soft < -1 || l.hard < -1 => {
                sink.error(v.pos, format!("{what}: limits are -1 (unlimited) or more"))
            }
            Some(l) if l.hard != -1 && (l.soft == -1 || l.soft > l.hard) => {
                sink.error(v.pos, format!("{what}: the soft limit {} is above the hard limit {}", l.soft, l.hard))
            }
            Some(l) => {
                out.insert(k.name.clone(), l);
            }
            None => {}
        }
    }
    out
}

/// `dns`: one address or a list of them.
pub(super) fn dns(n: &Node, sink: &mut Sink<'_>) -> Vec<std::net::IpAddr> {
    let items: Vec<&Node> = match &n.value {
        Value::Seq(items) => items.iter().collect(),
        _ => vec![n],
    };
    let mut out = Vec::new();
    for item in items {
        let Some(text) = lenient_string(item, "dns", sink) else { continue };
        match text.parse() {
            Ok(ip) => out.push(ip),
            Err(_) => sink.error(item.pos, format!("dns: `{text}` is not an IP address")),
        }
    }
    out
}

/// `expose`: ports or ranges, as strings or numbers.
pub(super) fn expose(n: &Node, what: &str, sink: &mut Sink<'_>) -> Vec<ContainerPort> {
    let mut out = Vec::new();
    for item in seq(n, what, sink).unwrap_or_default() {
        let Some(text) = lenient_string(item, what, sink) else { continue };
        match ContainerPort::parse_range(&text) {
            Ok(ports) => out.extend(ports),
            Err(e) => sink.error(item.pos, format!("{what}: {e}")),
        }
    }
    out.sort();
    out.dedup();
    out
}

/// Kernel parameters the engine can set per container: those of its own namespaces. Others
/// would be the host's, and the engine refuses them at creation; here they fail the revision.
pub(super) fn sysctls(map: BTreeMap<String, String>, pos: Pos, sink: &mut Sink<'_>) -> BTreeMap<String, String> {
    for key in map.keys() {
        let namespaced = key.starts_with("net.")
            || key.starts_with("kernel.shm")
            || key.starts_with("kernel.msg")
            || key == "kernel.sem"
            || key.starts_with("fs.mqueue.");
        if !namespaced {
            sink.error(
                pos,
                format!("sysctl `{key}` is the host's, not the container's: only net.*, kernel.shm*, kernel.msg*, kernel.sem and fs.mqueue.* can be set per container"),
            );
        }
    }
    map
}

/// `devices`: `HOST[:CONTAINER[:PERMISSIONS]]` strings, or compose's `{source, target, permissions}`.
pub(super) fn devices(n: &Node, what: &str, spans: &mut Spans, sink: &mut Sink<'_>) -> Vec<Device> {
    let mut out = Vec::new();
    for item in seq(n, what, sink).unwrap_or_default() {
        let text = match &item.value {
            Value::Map(_) => {
                let Some(mut f) = Fields::of(item, "a device", sink) else { continue };
                let source = f.required("source", "a device", sink).and_then(|v| string(v, "source", sink));
                let target = f.get("target").and_then(|v| string(v, "target", sink));
                let perms = f.get("permissions").and_then(|v| string(v, "permissions", sink));
                f.finish("a device", sink);
                let Some(source) = source else { continue };
                let target = target.unwrap_or_else(|| source.clone());
                format!("{source}:{target}:{}", perms.unwrap_or_else(|| "rwm".into()))
            }
            _ => match lenient_string(item, what, sink) {
                Some(t) => t,
                None => continue,
            },
        };
        match text.parse::<Device>() {
            Ok(d) => {
                spans.mark(format!("devices/{}", d.host), item.pos);
                out.push(d);
            }
            Err(e) => sink.error(item.pos, format!("{what}: {e}")),
        }
    }
    out.sort();
    out.dedup();
    out
}

/// `pid` and `ipc`: the engine's modes, with `container:NAME` a reference to another container.
pub(super) fn namespace_mode(
    mode: String,
    what: &str,
    allowed: &[&str],
    pos: Pos,
    refs: &mut Vec<(Kind, String, Pos)>,
    sink: &mut Sink<'_>,
) -> Option<String> {
    if let Some(other) = mode.strip_prefix("container:") {
        refs.push((Kind::Container, other.to_string(), pos));
        return Some(mode);
    }
    if allowed.contains(&mode.as_str()) {
        return Some(mode);
    }
    sink.error(pos, format!("invalid {what} `{mode}`: expected {} or container:NAME", allowed.join(", ")));
    None
}

/// `volumesFrom` / `volumes_from`: `NAME`, `NAME:ro` or `NAME:rw`, each a reference to a
/// Container. (compose maps its service names to containers before.)
pub(super) fn volumes_from(
    n: &Node,
    what: &str,
    refs: &mut Vec<(Kind, String, Pos)>,
    sink: &mut Sink<'_>,
) -> Vec<String> {
    let mut out = Vec::new();
    for item in seq(n, what, sink).unwrap_or_default() {
        let Some(entry) = string(item, what, sink) else { continue };
        let name = super::model::volumes_from_name(&entry);
        if name.is_empty() || name.contains(':') {
            sink.error(item.pos, format!("{what}: `{entry}`: expected NAME, NAME:ro or NAME:rw"));
            continue;
        }
        refs.push((Kind::Container, name.to_string(), item.pos));
        out.push(entry);
    }
    out
}

/// `postStart` / `preStop`: a list of `{command, user, workingDir, env, privileged}`; a string
/// command runs through /bin/sh -c, as the container's own does.
fn hooks(n: &Node, what: &str, sink: &mut Sink<'_>) -> Vec<Hook> {
    let mut out = Vec::new();
    for item in seq(n, what, sink).unwrap_or_default() {
        let Some(mut f) = Fields::of(item, what, sink) else { continue };
        let command = f.required("command", what, sink).and_then(|v| command(v, &format!("{what}.command"), sink));
        let hook = Hook {
            command: command.unwrap_or_default(),
            user: f.get("user").and_then(|v| lenient_string(v, "user", sink)),
            working_dir: f.get("workingDir").and_then(|v| string(v, "workingDir", sink)),
            env: f.get("env").and_then(|v| string_map(v, "env", sink)).unwrap_or_default(),
            privileged: f.get("privileged").and_then(|v| boolean(v, "privileged", sink)).unwrap_or(false),
        };
        f.finish(what, sink);
        if !hook.command.is_empty() {
            out.push(hook);
        }
    }
    out
}

/// A build's `network`: the engine's classic builder runs `RUN` steps on one of these.
pub(super) fn build_network(n: &Node, sink: &mut Sink<'_>) -> Option<String> {
    let v = string(n, "build.network", sink)?;
    if matches!(v.as_str(), "default" | "host" | "none") {
        return Some(v);
    }
    sink.error(n.pos, format!("build.network `{v}`: expected default, host or none"));
    None
}

/// What a build cannot hold together: a Dockerfile named and given inline; a shm size the
/// builder's API cannot carry (2 GiB).
pub(super) fn check_build(b: &BuildSpec, pos: Pos, sink: &mut Sink<'_>) {
    if b.dockerfile.is_some() && b.dockerfile_inline.is_some() {
        sink.error(pos, "build: give `dockerfile` or the inline Dockerfile, not both");
    }
    if b.shm_size.is_some_and(|s| s.0 > i32::MAX as u64) {
        sink.error(pos, "build: the shm size of a build is at most 2 GiB");
    }
}

/// `oomScoreAdj` / `oom_score_adj`: the kernel's range.
pub(super) fn oom_score_adj(n: &Node, what: &str, sink: &mut Sink<'_>) -> Option<i64> {
    let v = integer(n, what, sink)?;
    if !(-1000..=1000).contains(&v) {
        sink.error(n.pos, format!("{what} must be between -1000 and 1000"));
        return None;
    }
    Some(v)
}

/// `platform`: `os/arch[/variant]`.
pub(super) fn platform(n: &Node, what: &str, sink: &mut Sink<'_>) -> Option<String> {
    let p = string(n, what, sink)?;
    let parts: Vec<&str> = p.split('/').collect();
    let word = |s: &&str| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !(2..=3).contains(&parts.len()) || !parts.iter().all(word) {
        sink.error(n.pos, format!("invalid {what} `{p}`: expected OS/ARCH or OS/ARCH/VARIANT, like linux/arm64"));
        return None;
    }
    Some(p)
}

/// `logging: {driver, options}`. The options of the engine's own rotating drivers are checked
/// here, so that a typo fails the revision instead of the container's creation.
pub(super) fn logging(n: &Node, sink: &mut Sink<'_>) -> Option<Logging> {
    let mut f = Fields::of(n, "logging", sink)?;
    let driver = f.get("driver").and_then(|v| string(v, "logging.driver", sink));
    let mut options = BTreeMap::new();
    if let Some(v) = f.get("options") {
        options = string_map(v, "logging.options", sink).unwrap_or_default();
        let known: &[&str] = match driver.as_deref() {
            Some("json-file") => {
                &["max-size", "max-file", "compress", "labels", "labels-regex", "env", "env-regex", "tag"]
            }
            Some("local") => &["max-size", "max-file", "compress"],
            _ => &[],
        };
        if let (false, Value::Map(entries)) = (known.is_empty(), &v.value) {
            for (k, item) in entries {
                let Some(text) = options.get(&k.name) else { continue };
                let driver = driver.as_deref().unwrap_or_default();
                if !known.contains(&k.name.as_str()) {
                    let hint =
                        did_you_mean(&k.name, known).map(|s| format!(" (did you mean `{s}`?)")).unwrap_or_default();
                    sink.error(k.pos, format!("logging option `{}` is not one of the {driver} driver's{hint}", k.name));
                } else if let Err(m) = log_option_value(&k.name, text) {
                    sink.error(item.pos, format!("logging.options.{}: {m}", k.name));
                }
            }
        }
    }
    f.finish("logging", sink);
    Some(Logging { driver, options })
}

/// The values the engine parses for its rotating drivers: sizes as `10m` or `1g`, counts, flags.
fn log_option_value(name: &str, text: &str) -> Result<(), Invalid> {
    match name {
        "max-size" => {
            let t = text.trim().to_ascii_lowercase();
            let t = t.strip_suffix('b').unwrap_or(&t);
            let t = t.strip_suffix('i').unwrap_or(t);
            let t = t.strip_suffix(['k', 'm', 'g', 't', 'p']).unwrap_or(t).trim_end();
            let ok = !t.is_empty()
                && t.parse::<f64>().is_ok_and(|n| n > 0.0 && t.chars().all(|c| c.is_ascii_digit() || c == '.'));
            if ok {
                Ok(())
            } else {
                Err(Invalid(format!("`{text}` is not a size like 10m or 1g")))
            }
        }
        "max-file" => match text.trim().parse::<u32>() {
            Ok(n) if n > 0 => Ok(()),
            _ => Err(Invalid(format!("`{text}` is not a positive whole number"))),
        },
        "compress" => match text.trim() {
            "true" | "false" => Ok(()),
            _ => Err(Invalid(format!("`{text}` is not true or false"))),
        },
        _ => Ok(()),
    }
}

/// Names the engine accepts for containers, volumes and networks; `.hawser-` is reserved for
/// the temporary names of replacements.
pub fn check_name(name: &str) -> Result<(), Invalid> {
    if name.is_empty() {
        return Err(Invalid(
            "the name is empty: use letters, digits, `_`, `.` and `-`, starting with a letter or digit".into(),
        ));
    }
    let mut chars = name.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric());
    let rest_ok = chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if !first_ok || !rest_ok || name.len() > 128 {
        return Err(Invalid(format!(
            "invalid name `{name}`: use letters, digits, `_`, `.` and `-`, starting with a letter or digit (at most 128)"
        )));
    }
    if name.contains(".hawser-") {
        return Err(Invalid(format!("invalid name `{name}`: `.hawser-` is reserved for hawser's temporary names")));
    }
    Ok(())
}

/// Decodes one document (one resource).
pub fn decode(doc: &Node, sink: &mut Sink<'_>) -> Option<Decoded> {
    let mut top = Fields::of(doc, "a resource", sink)?;
    if let Some(v) = top.get("apiVersion") {
        if let Some(s) = string(v, "apiVersion", sink) {
            if s != API_VERSION {
                sink.error(v.pos, format!("unsupported apiVersion `{s}`: expected {API_VERSION}"));
            }
        }
    }
    let kind = top.required("kind", "a resource", sink).and_then(|k| {
        let s = string(k, "kind", sink)?;
        let kind = Kind::parse(&s);
        if kind.is_none() {
            let known: Vec<&str> = Kind::ALL.iter().map(|k| k.as_str()).collect();
            let hint = did_you_mean(&s, &known).map(|h| format!("; did you mean `{h}`?")).unwrap_or_default();
            sink.error(k.pos, format!("unknown kind `{s}`: expected Container, Volume, Network or Image{hint}"));
        }
        kind
    });
    let mut name = None;
    let mut name_pos = doc.pos;
    let mut labels = BTreeMap::new();
    let meta_at = top.key_pos("metadata");
    if let Some(meta) = top.required("metadata", "a resource", sink).map(|m| at_key(m, meta_at)) {
        let meta = &meta;
        if let Some(mut m) = Fields::of(meta, "metadata", sink) {
            if let Some(n) = m.required("name", "metadata", sink) {
                name_pos = n.pos;
                name = string(n, "metadata.name", sink);
                if let Some(Err(e)) = name.as_deref().map(check_name) {
                    sink.error(n.pos, e);
                    name = None;
                }
            }
            if let Some(l) = m.get("labels") {
                labels = string_map(l, "metadata.labels", sink).unwrap_or_default();
                check_labels(&labels, l.pos, sink);
            }
            m.finish("metadata", sink);
        }
    }
    let spec_at = top.key_pos("spec");
    let spec_node = top.get("spec").map(|s| at_key(s, spec_at));
    top.finish("a resource", sink);
    let kind = kind?;
    let spec_node = &spec_node.unwrap_or(Node { pos: doc.pos, value: Value::Null });
    let mut refs = Vec::new();
    let mut spans = Spans::of_fields(spec_node, |f| f);
    let spec = match kind {
        Kind::Network => DecodedSpec::Network(network(spec_node, labels, sink)?),
        Kind::Volume => DecodedSpec::Volume(volume(spec_node, labels, sink)?),
        Kind::Image => DecodedSpec::Image(image(spec_node, name.as_deref().unwrap_or(""), sink)?),
        Kind::Container => DecodedSpec::Container(Box::new(container(spec_node, labels, &mut refs, &mut spans, sink)?)),
    };
    Some(Decoded {
        kind,
        name: name?,
        name_pos,
        origin: Origin { file: sink.file.to_string(), pos: doc.pos },
        spec,
        refs,
        spans,
    })
}

/// A map positioned at the key that holds it, so "missing field" errors point at `spec:`.
fn at_key(node: &Node, key: Option<Pos>) -> Node {
    match (&node.value, key) {
        (Value::Map(_), Some(pos)) => Node { pos, value: node.value.clone() },
        _ => node.clone(),
    }
}

pub(super) fn check_labels(labels: &BTreeMap<String, String>, pos: Pos, sink: &mut Sink<'_>) {
    for k in labels.keys() {
        if k.starts_with("dev.hawser.") {
            sink.error(pos, format!("label `{k}`: the `dev.hawser.` prefix is reserved for hawser's own labels"));
        }
    }
}

fn network(n: &Node, labels: BTreeMap<String, String>, sink: &mut Sink<'_>) -> Option<NetworkSpec> {
    let mut f = Fields::of(n, "Network spec", sink)?;
    let mut spec = NetworkSpec { driver: "bridge".into(), labels, ..Default::default() };
    if let Some(v) = f.get("driver") {
        if let Some(d) = string(v, "driver", sink) {
            if !["bridge", "overlay", "macvlan", "ipvlan"].contains(&d.as_str()) {
                sink.error(v.pos, format!("unknown network driver `{d}`: expected bridge, overlay, macvlan or ipvlan"));
            } else {
                spec.driver = d;
            }
        }
    }
    let flag = |f: &mut Fields<'_>, name: &'static str, sink: &mut Sink<'_>| {
        f.get(name).and_then(|v| boolean(v, name, sink)).unwrap_or(false)
    };
    spec.internal = flag(&mut f, "internal", sink);
    spec.attachable = flag(&mut f, "attachable", sink);
    spec.enable_ipv6 = flag(&mut f, "enableIpv6", sink);
    spec.external = flag(&mut f, "external", sink);
    if let Some(v) = f.get("driverOpts") {
        spec.driver_opts = string_map(v, "driverOpts", sink).unwrap_or_default();
    }
    if let Some(v) = f.get("ipam") {
        if let Some(mut i) = Fields::of(v, "ipam", sink) {
            let ipam = Ipam {
                subnet: i.get("subnet").and_then(|v| string(v, "ipam.subnet", sink)),
                gateway: i.get("gateway").and_then(|v| string(v, "ipam.gateway", sink)),
                ip_range: i.get("ipRange").and_then(|v| string(v, "ipam.ipRange", sink)),
            };
            i.finish("ipam", sink);
            spec.ipam = Some(ipam);
        }
    }
    f.finish("Network spec", sink);
    Some(spec)
}

fn volume(n: &Node, labels: BTreeMap<String, String>, sink: &mut Sink<'_>) -> Option<VolumeSpec> {
    let mut f = Fields::of(n, "Volume spec", sink)?;
    let mut spec = VolumeSpec { driver: "local".into(), labels, retain: true, ..Default::default() };
    if let Some(d) = f.get("driver").and_then(|v| string(v, "driver", sink)) {
        spec.driver = d;
    }
    if let Some(v) = f.get("driverOpts") {
        spec.driver_opts = string_map(v, "driverOpts", sink).unwrap_or_default();
    }
    spec.external = f.get("external").and_then(|v| boolean(v, "external", sink)).unwrap_or(false);
    spec.retain = f.get("retain").and_then(|v| boolean(v, "retain", sink)).unwrap_or(true);
    f.finish("Volume spec", sink);
    Some(spec)
}

fn image(n: &Node, name: &str, sink: &mut Sink<'_>) -> Option<ImageSpec> {
    let mut f = Fields::of(n, "Image spec", sink)?;
    let reference = f.get("ref").and_then(|v| {
        let r = string(v, "ref", sink)?;
        if let Err(e) = check_reference(&r) {
            sink.error(v.pos, e);
        }
        Some(r)
    });
    let pull = match f.get("pull") {
        None => PullPolicy::Missing,
        Some(v) => match string(v, "pull", sink).as_deref() {
            Some("missing") => PullPolicy::Missing,
            Some("always") => PullPolicy::Always,
            Some("never") => PullPolicy::Never,
            Some(other) => {
                sink.error(v.pos, format!("invalid pull policy `{other}`: expected missing, always or never"));
                PullPolicy::Missing
            }
            None => PullPolicy::Missing,
        },
    };
    let build = f.get("build").and_then(|b| {
        let mut bf = Fields::of(b, "build", sink)?;
        let context = bf.required("context", "build", sink).and_then(|v| {
            let c = string(v, "build.context", sink)?;
            let escapes = c.starts_with('/') || c.split('/').any(|part| part == "..");
            if escapes {
                sink.error(v.pos, format!("build.context `{c}` must be a folder inside the repository, without `..`"));
                return None;
            }
            Some(c)
        });
        let dockerfile = bf.get("dockerfile").and_then(|v| string(v, "build.dockerfile", sink));
        let args = bf.get("args").and_then(|v| string_map(v, "build.args", sink)).unwrap_or_default();
        let target = bf.get("target").and_then(|v| string(v, "build.target", sink));
        let push = bf.get("push").and_then(|v| boolean(v, "build.push", sink)).unwrap_or(false);
        let spec = BuildSpec {
            context: context?,
            dockerfile,
            args,
            target,
            push,
            dockerfile_inline: bf.get("dockerfileInline").and_then(|v| string(v, "build.dockerfileInline", sink)),
            labels: bf.get("labels").and_then(|v| string_map(v, "build.labels", sink)).unwrap_or_default(),
            extra_hosts: bf
                .get("extraHosts")
                .and_then(|v| string_list(v, "build.extraHosts", sink))
                .unwrap_or_default(),
            shm_size: bf.get("shmSize").and_then(|v| parsed::<ByteSize>(v, "build.shmSize", sink)),
            network: bf.get("network").and_then(|v| build_network(v, sink)),
            platform: bf.get("platform").and_then(|v| platform(v, "build.platform", sink)),
            cache_from: bf.get("cacheFrom").and_then(|v| string_list(v, "build.cacheFrom", sink)).unwrap_or_default(),
            no_cache: bf.get("noCache").and_then(|v| boolean(v, "build.noCache", sink)).unwrap_or(false),
            pull: bf.get("pull").and_then(|v| boolean(v, "build.pull", sink)).unwrap_or(false),
        };
        bf.finish("build", sink);
        check_build(&spec, b.pos, sink);
        Some(spec)
    });
    let pos = f.pos;
    let declared = f.key_pos("ref").is_some() || f.key_pos("build").is_some();
    f.finish("Image spec", sink);
    if !declared {
        sink.error(pos, "an Image needs `ref`, `build`, or both");
        return None;
    }
    // Without `ref`, a built image gets a local name; its tag (a hash of the context) is given
    // when it is built.
    let reference = match (reference, &build) {
        (Some(r), _) => r,
        (None, Some(_)) => format!("hawser-build/{}", name.to_ascii_lowercase()),
        (None, None) => return None,
    };
    Some(ImageSpec { reference, pull, build })
}

/// A light check of an image reference: `[registry[:port]/]path[:tag][@digest]`, lowercase path.
pub fn check_reference(r: &str) -> Result<(), Invalid> {
    let bad = |why: &str| Err(Invalid(format!("invalid image reference `{r}`: {why}")));
    if r.is_empty() {
        return bad("empty");
    }
    if r.chars().any(|c| c.is_whitespace()) {
        return bad("contains whitespace");
    }
    let (name, digest) = match r.split_once('@') {
        Some((n, d)) => (n, Some(d)),
        None => (r, None),
    };
    if let Some(d) = digest {
        let Some(hex) = d.strip_prefix("sha256:") else {
            return bad("a digest must start with sha256:");
        };
        if hex.len() != 64 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
            return bad("a sha256 digest has 64 hex digits");
        }
    }
    let last_slash = name.rfind('/').map(|i| i + 1).unwrap_or(0);
    let (path, tag) = match name[last_slash..].rfind(':') {
        Some(i) => (&name[..last_slash + i], Some(&name[last_slash + i + 1..])),
        None => (name, None),
    };
    if let Some(t) = tag {
        if t.is_empty()
            || t.len() > 128
            || !t.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
        {
            return bad("a tag has letters, digits, `_`, `.` and `-`");
        }
    }
    let mut parts: Vec<&str> = path.split('/').collect();
    if parts.len() > 1 && (parts[0].contains('.') || parts[0].contains(':') || parts[0] == "localhost") {
        parts.remove(0);
    }
    for p in parts {
        let ok = !p.is_empty()
            && p.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '.' | '-'))
            && p.chars().next().is_some_and(|c| c.is_ascii_alphanumeric());
        if !ok {
            return bad("a repository path has lowercase letters, digits and separators");
        }
    }
    Ok(())
}

fn container(
    n: &Node,
    meta_labels: BTreeMap<String, String>,
    refs: &mut Vec<(Kind, String, Pos)>,
    spans: &mut Spans,
    sink: &mut Sink<'_>,
) -> Option<ContainerSpec> {
    let mut f = Fields::of(n, "Container spec", sink)?;
    let mut s = ContainerSpec::default();
    let image = f.required("image", "Container spec", sink).and_then(|v| {
        let img = string(v, "image", sink)?;
        refs.push((Kind::Image, img.clone(), v.pos));
        Some(img)
    });
    s.command = f.get("command").and_then(|v| command(v, "command", sink));
    s.entrypoint = f.get("entrypoint").and_then(|v| command(v, "entrypoint", sink));
    if let Some(v) = f.get("env") {
        s.env = string_map(v, "env", sink).unwrap_or_default();
    }
    if let Some(v) = f.get("ports") {
        for item in seq(v, "ports", sink).unwrap_or_default() {
            if let Some(p) = port(item, sink) {
                s.ports.push(p);
            }
        }
    }
    if let Some(v) = f.get("volumes") {
        for item in seq(v, "volumes", sink).unwrap_or_default() {
            if let Some(m) = mount(item, refs, sink) {
                spans.mark(format!("volumes/{}", m.target()), item.pos);
                s.volumes.push(m);
            }
        }
    }
    if let Some(v) = f.get("networks") {
        s.networks = networks(v, refs, sink);
    }
    if let Some(v) = f.get("networkMode") {
        if let Some(mode) = string(v, "networkMode", sink) {
            if let Some(other) = mode.strip_prefix("container:") {
                refs.push((Kind::Container, other.to_string(), v.pos));
            } else if mode != "host" && mode != "none" {
                sink.error(v.pos, format!("invalid networkMode `{mode}`: expected host, none or container:NAME"));
            }
            if !s.networks.is_empty() {
                sink.error(
                    v.pos,
                    "networkMode excludes `networks`: a container with its own network mode joins no networks",
                );
            }
            s.network_mode = Some(mode);
        }
    }
    s.restart = f.get("restart").and_then(|v| parsed::<RestartPolicy>(v, "restart", sink));
    s.healthcheck = f.get("healthcheck").and_then(|v| healthcheck(v, sink));
    if let Some(v) = f.get("dependsOn") {
        s.depends_on = depends_on(v, refs, sink);
    }
    if let Some(v) = f.get("resources") {
        if let Some(mut r) = Fields::of(v, "resources", sink) {
            let l = Limits {
                memory: r.get("memory").and_then(|v| parsed::<ByteSize>(v, "resources.memory", sink)),
                cpus: r.get("cpus").and_then(|v| match v.value {
                    Value::Float(x) if x > 0.0 => Some(x),
                    Value::Int(i) if i > 0 => Some(i as f64),
                    _ => {
                        sink.error(v.pos, "resources.cpus must be a positive number, like 0.5");
                        None
                    }
                }),
                pids: r.get("pids").and_then(|v| integer(v, "resources.pids", sink)),
                memory_reservation: r
                    .get("memoryReservation")
                    .and_then(|v| parsed::<ByteSize>(v, "resources.memoryReservation", sink)),
            };
            r.finish("resources", sink);
            s.resources = Some(l);
        }
    }
    s.user = f.get("user").and_then(|v| lenient_string(v, "user", sink));
    s.working_dir = f.get("workingDir").and_then(|v| string(v, "workingDir", sink));
    s.hostname = f.get("hostname").and_then(|v| string(v, "hostname", sink));
    s.stop_signal = f.get("stopSignal").and_then(|v| string(v, "stopSignal", sink));
    s.stop_timeout = f.get("stopTimeout").and_then(|v| duration(v, "stopTimeout", sink));
    s.read_only = f.get("readOnly").and_then(|v| boolean(v, "readOnly", sink));
    s.init = f.get("init").and_then(|v| boolean(v, "init", sink));
    s.tty = f.get("tty").and_then(|v| boolean(v, "tty", sink));
    s.stdin_open = f.get("stdinOpen").and_then(|v| boolean(v, "stdinOpen", sink));
    s.cap_add = f.get("capAdd").map(|v| capabilities(v, "capAdd", spans, sink)).unwrap_or_default();
    s.cap_drop = f.get("capDrop").map(|v| capabilities(v, "capDrop", spans, sink)).unwrap_or_default();
    s.privileged = f.get("privileged").and_then(|v| boolean(v, "privileged", sink));
    s.extra_hosts = f.get("extraHosts").and_then(|v| string_list(v, "extraHosts", sink)).unwrap_or_default();
    s.logging = f.get("logging").and_then(|v| logging(v, sink));
    s.shm_size = f.get("shmSize").and_then(|v| parsed::<ByteSize>(v, "shmSize", sink));
    s.ulimits = f.get("ulimits").map(|v| ulimits(v, sink)).unwrap_or_default();
    s.dns = f.get("dns").map(|v| dns(v, sink)).unwrap_or_default();
    s.expose = f.get("expose").map(|v| expose(v, "expose", sink)).unwrap_or_default();
    s.platform = f.get("platform").and_then(|v| platform(v, "platform", sink));
    s.runtime = f.get("runtime").and_then(|v| string(v, "runtime", sink));
    if let Some(v) = f.get("sysctls") {
        s.sysctls = sysctls(string_map(v, "sysctls", sink).unwrap_or_default(), v.pos, sink);
    }
    s.devices = f.get("devices").map(|v| devices(v, "devices", spans, sink)).unwrap_or_default();
    s.security_opt = f.get("securityOpt").and_then(|v| string_list(v, "securityOpt", sink)).unwrap_or_default();
    s.pid = f.get("pid").and_then(|v| {
        let mode = string(v, "pid", sink)?;
        namespace_mode(mode, "pid", &["host"], v.pos, refs, sink)
    });
    s.ipc = f.get("ipc").and_then(|v| {
        let mode = string(v, "ipc", sink)?;
        namespace_mode(mode, "ipc", &["private", "shareable", "none", "host"], v.pos, refs, sink)
    });
    s.post_start = f.get("postStart").map(|v| hooks(v, "postStart", sink)).unwrap_or_default();
    s.pre_stop = f.get("preStop").map(|v| hooks(v, "preStop", sink)).unwrap_or_default();
    s.volumes_from = f.get("volumesFrom").map(|v| volumes_from(v, "volumesFrom", refs, sink)).unwrap_or_default();
    s.group_add = f.get("groupAdd").and_then(|v| string_list(v, "groupAdd", sink)).unwrap_or_default();
    s.oom_score_adj = f.get("oomScoreAdj").and_then(|v| oom_score_adj(v, "oomScoreAdj", sink));
    s.domainname = f.get("domainname").and_then(|v| string(v, "domainname", sink));
    s.replicas = f.get("replicas").and_then(|v| match integer(v, "replicas", sink) {
        Some(n) if n >= 0 => Some(n as u64),
        Some(n) => {
            sink.error(v.pos, format!("replicas: {n} is not a number of tasks (0 or more)"));
            None
        }
        None => None,
    });
    s.mode = f.get("mode").and_then(|v| match string(v, "mode", sink).as_deref() {
        Some("replicated") => Some(ServiceMode::Replicated),
        Some("global") => Some(ServiceMode::Global),
        Some(other) => {
            sink.error(v.pos, format!("invalid mode `{other}`: expected replicated or global"));
            None
        }
        None => None,
    });
    s.placement = f.get("placement").and_then(|v| placement(v, sink));
    s.endpoint_mode = f.get("endpointMode").and_then(|v| match string(v, "endpointMode", sink).as_deref() {
        Some("vip") => Some(EndpointMode::Vip),
        Some("dnsrr") => Some(EndpointMode::Dnsrr),
        Some(other) => {
            sink.error(v.pos, format!("invalid endpointMode `{other}`: expected vip or dnsrr"));
            None
        }
        None => None,
    });
    if let Some(v) = f.get("links") {
        for item in seq(v, "links", sink).unwrap_or_default() {
            if let Some(link) = string(item, "links", sink) {
                let (target, alias) = link.split_once(':').unwrap_or((&link, &link));
                refs.push((Kind::Container, target.to_string(), item.pos));
                s.links.push(format!("{target}:{alias}"));
            }
        }
        s.links.sort();
        s.links.dedup();
    }
    if let Some(v) = f.get("secretEnv") {
        for (name, file) in string_map(v, "secretEnv", sink).unwrap_or_default() {
            if !file.starts_with('/') {
                sink.error(v.pos, format!("secretEnv.{name}: `{file}` must be an absolute path of a file on the host"));
                continue;
            }
            if s.env.contains_key(&name) {
                sink.error(v.pos, format!("`{name}` is in both env and secretEnv"));
            }
            s.secret_env.insert(name, SecretRef { file, digest: None });
        }
    }
    s.labels = meta_labels;
    if let Some(v) = f.get("labels") {
        let spec_labels = string_map(v, "labels", sink).unwrap_or_default();
        check_labels(&spec_labels, v.pos, sink);
        s.labels.extend(spec_labels);
    }
    if let Some(v) = f.get("update") {
        if let Some(mut u) = Fields::of(v, "update", sink) {
            let up = UpdatePolicy {
                strategy: u.get("strategy").and_then(|v| match string(v, "update.strategy", sink).as_deref() {
                    Some("start-first") => Some(Strategy::StartFirst),
                    Some("stop-first") => Some(Strategy::StopFirst),
                    Some(other) => {
                        sink.error(
                            v.pos,
                            format!("invalid update strategy `{other}`: expected start-first or stop-first"),
                        );
                        None
                    }
                    None => None,
                }),
                health_timeout: u.get("healthTimeout").and_then(|v| duration(v, "update.healthTimeout", sink)),
                min_uptime: u.get("minUptime").and_then(|v| duration(v, "update.minUptime", sink)),
                drain_timeout: u.get("drainTimeout").and_then(|v| {
                    // A pusher's number holds the old container, and the apply, that long.
                    let d = duration(v, "update.drainTimeout", sink)?;
                    if d.as_std() > std::time::Duration::from_secs(3600) {
                        sink.error(v.pos, format!("update.drainTimeout: {d} is more than the 1h hawser waits at most"));
                        return None;
                    }
                    Some(d)
                }),
                parallelism: u.get("parallelism").and_then(|v| match integer(v, "update.parallelism", sink) {
                    Some(n) if n >= 1 => Some(n as u64),
                    Some(n) => {
                        sink.error(v.pos, format!("update.parallelism: {n}: at least one task is updated at a time"));
                        None
                    }
                    None => None,
                }),
            };
            u.finish("update", sink);
            s.update = Some(up);
        }
    }
    let f_pos = f.pos;
    f.finish("Container spec", sink);
    normalize_order(&mut s, f_pos, sink);
    s.image = image?;
    Some(s)
}

/// `placement: {constraints, preferences, maxReplicasPerNode}`; a preference is written as
/// the swarm's API and compose have it, `{spread: node.labels.zone}`, or as the bare descriptor.
pub(super) fn placement(n: &Node, sink: &mut Sink<'_>) -> Option<Placement> {
    let mut f = Fields::of(n, "placement", sink)?;
    let mut p = Placement::default();
    if let Some(v) = f.get("constraints") {
        p.constraints = string_list(v, "placement.constraints", sink).unwrap_or_default();
        for (c, item) in p.constraints.iter().zip(seq(v, "placement.constraints", sink).unwrap_or_default()) {
            if !["==", "!="].iter().any(|op| c.contains(op)) {
                sink.error(
                    item.pos,
                    format!("placement constraint `{c}`: expected `node.labels.KEY == VALUE` (or !=)"),
                );
            }
        }
    }
    if let Some(v) = f.get("preferences") {
        for item in seq(v, "placement.preferences", sink).unwrap_or_default() {
            let spread = match &item.value {
                Value::Map(_) => Fields::of(item, "a placement preference", sink).and_then(|mut pf| {
                    let s =
                        pf.required("spread", "a placement preference", sink).and_then(|v| string(v, "spread", sink));
                    pf.finish("a placement preference", sink);
                    s
                }),
                _ => string(item, "a placement preference", sink),
            };
            p.preferences.extend(spread);
        }
    }
    p.max_replicas_per_node = f.get("maxReplicasPerNode").and_then(|v| match integer(v, "maxReplicasPerNode", sink) {
        Some(n) if n >= 1 => Some(n as u64),
        Some(n) => {
            sink.error(v.pos, format!("maxReplicasPerNode: {n}: at least 1"));
            None
        }
        None => None,
    });
    f.finish("placement", sink);
    p.constraints.sort();
    Some(p)
}

/// Order does not matter for ports, mounts and capabilities: sorted, a reordering is no change.
pub(super) fn normalize_order(s: &mut ContainerSpec, pos: Pos, sink: &mut Sink<'_>) {
    s.ports.sort();
    s.ports.dedup();
    s.volumes.sort_by(|a, b| a.target().cmp(b.target()));
    for w in s.volumes.windows(2) {
        if w[0].target() == w[1].target() {
            sink.error(pos, format!("two volumes are mounted at `{}`", w[0].target()));
        }
    }
    for caps in [&mut s.cap_add, &mut s.cap_drop] {
        caps.sort();
        caps.dedup();
    }
}

fn port(n: &Node, sink: &mut Sink<'_>) -> Option<PortBinding> {
    if let Value::Map(_) = n.value {
        // The long form, as compose's: {target, published, hostIp, protocol}.
        let mut f = Fields::of(n, "a port", sink)?;
        let target = f.required("target", "a port", sink).and_then(|v| integer(v, "target", sink));
        let published = f.get("published").and_then(|v| integer(v, "published", sink));
        let host_ip = f.get("hostIp").and_then(|v| {
            let s = string(v, "hostIp", sink)?;
            let ip = s.parse::<std::net::IpAddr>().ok();
            if ip.is_none() {
                sink.error(v.pos, format!("hostIp: `{s}` is not an IP address"));
            }
            ip
        });
        let protocol = match f.get("protocol").and_then(|v| string(v, "protocol", sink)).as_deref() {
            None | Some("tcp") => Protocol::Tcp,
            Some("udp") => Protocol::Udp,
            Some(other) => {
                sink.error(n.pos, format!("invalid protocol `{other}`: expected tcp or udp"));
                Protocol::Tcp
            }
        };
        let host_mode = match f.get("mode") {
            None => false,
            Some(v) => match string(v, "mode", sink).as_deref() {
                None | Some("ingress") => false,
                Some("host") => true,
                Some(other) => {
                    sink.error(v.pos, format!("invalid port mode `{other}`: expected ingress or host"));
                    false
                }
            },
        };
        f.finish("a port", sink);
        let to_port = |p: i64, sink: &mut Sink<'_>| match u16::try_from(p) {
            Ok(p) if p > 0 => Some(p),
            _ => {
                sink.error(n.pos, format!("`{p}` is not a port number (1-65535)"));
                None
            }
        };
        let container_port = to_port(target?, sink)?;
        let host_port = match published {
            Some(p) => Some(to_port(p, sink)?),
            None => None,
        };
        return Some(PortBinding { host_ip, host_port, container_port, protocol, host_mode });
    }
    parsed::<PortBinding>(n, "port", sink)
}

fn mount(n: &Node, refs: &mut Vec<(Kind, String, Pos)>, sink: &mut Sink<'_>) -> Option<Mount> {
    let check_target = |t: &str, sink: &mut Sink<'_>| {
        if !t.starts_with('/') {
            sink.error(n.pos, format!("mount target `{t}` must be an absolute path in the container"));
            return false;
        }
        true
    };
    if let Value::Map(_) = n.value {
        let mut f = Fields::of(n, "a volume", sink)?;
        let ty = f.required("type", "a volume", sink).and_then(|v| string(v, "type", sink));
        let source = f.get("source").and_then(|v| string(v, "source", sink));
        let target = f.required("target", "a volume", sink).and_then(|v| string(v, "target", sink));
        let read_only = f.get("readOnly").and_then(|v| boolean(v, "readOnly", sink)).unwrap_or(false);
        let size = f.get("size").and_then(|v| parsed::<ByteSize>(v, "size", sink));
        f.finish("a volume", sink);
        let (ty, target) = (ty?, target?);
        if !check_target(&target, sink) {
            return None;
        }
        return match ty.as_str() {
            "tmpfs" => Some(Mount::Tmpfs { target, size }),
            "volume" | "bind" => {
                let Some(source) = source else {
                    sink.error(n.pos, format!("a {ty} mount needs `source`"));
                    return None;
                };
                if ty == "volume" {
                    refs.push((Kind::Volume, source.clone(), n.pos));
                    Some(Mount::Volume { source, target, read_only })
                } else if !source.starts_with('/') {
                    sink.error(n.pos, format!("bind mount source `{source}` must be an absolute host path"));
                    None
                } else {
                    Some(Mount::Bind { source, target, read_only })
                }
            }
            // A file of the host (under the policy's secretRoots), mounted read-only; only a
            // keyed digest of its content is ever shown or stored.
            "secret" => match source {
                Some(file) if file.starts_with('/') => Some(Mount::Secret { file, target, digest: None }),
                Some(file) => {
                    sink.error(n.pos, format!("secret source `{file}` must be an absolute host path"));
                    None
                }
                None => {
                    sink.error(n.pos, "a secret mount needs `source`, the host file that holds it");
                    None
                }
            },
            other => {
                sink.error(n.pos, format!("invalid mount type `{other}`: expected volume, bind, tmpfs or secret"));
                None
            }
        };
    }
    let s = string(n, "a volume", sink)?;
    let parts: Vec<&str> = s.split(':').collect();
    let (source, target, read_only) = match parts.as_slice() {
        [src, tgt] => (*src, *tgt, false),
        [src, tgt, "ro"] => (*src, *tgt, true),
        [src, tgt, "rw"] => (*src, *tgt, false),
        [_, _, mode] => {
            sink.error(n.pos, format!("invalid mount mode `{mode}` in `{s}`: expected ro or rw"));
            return None;
        }
        _ => {
            sink.error(n.pos, format!("invalid volume `{s}`: expected VOLUME:/path[:ro] or /host/path:/path[:ro]"));
            return None;
        }
    };
    if !check_target(target, sink) {
        return None;
    }
    let (source, target) = (source.to_string(), target.to_string());
    if source.starts_with('/') {
        Some(Mount::Bind { source, target, read_only })
    } else if source.starts_with('.') || source.starts_with('~') {
        sink.error(n.pos, format!("bind mount source `{source}` must be an absolute host path"));
        None
    } else {
        refs.push((Kind::Volume, source.clone(), n.pos));
        Some(Mount::Volume { source, target, read_only })
    }
}

fn networks(n: &Node, refs: &mut Vec<(Kind, String, Pos)>, sink: &mut Sink<'_>) -> BTreeMap<String, NetworkAttachment> {
    let mut out = BTreeMap::new();
    match &n.value {
        Value::Seq(items) => {
            for item in items {
                if let Some(name) = string(item, "a network name", sink) {
                    refs.push((Kind::Network, name.clone(), item.pos));
                    out.insert(name, NetworkAttachment::default());
                }
            }
        }
        Value::Map(entries) => {
            for (k, v) in entries {
                refs.push((Kind::Network, k.name.clone(), k.pos));
                let mut att = NetworkAttachment::default();
                if let Some(mut f) = Fields::of(v, "a network attachment", sink) {
                    att.aliases = f.get("aliases").and_then(|v| string_list(v, "aliases", sink)).unwrap_or_default();
                    att.ipv4_address = f.get("ipv4Address").and_then(|v| address(v, "ipv4Address", sink));
                    att.ipv6_address = f.get("ipv6Address").and_then(|v| address(v, "ipv6Address", sink));
                    f.finish("a network attachment", sink);
                }
                att.aliases.sort();
                att.aliases.dedup();
                out.insert(k.name.clone(), att);
            }
        }
        other => sink.error(n.pos, format!("networks must be a list of names or a map, found {}", other.type_name())),
    }
    out
}

fn healthcheck(n: &Node, sink: &mut Sink<'_>) -> Option<Healthcheck> {
    let mut f = Fields::of(n, "healthcheck", sink)?;
    if let Some(v) = f.get("disable") {
        if boolean(v, "disable", sink) == Some(true) {
            f.finish("healthcheck", sink);
            return Some(Healthcheck::disabled());
        }
    }
    let test = f.required("test", "healthcheck", sink).and_then(|v| match &v.value {
        Value::Str(s) => Some(vec!["CMD-SHELL".to_string(), s.clone()]),
        Value::Seq(_) => {
            let mut l = string_list(v, "healthcheck.test", sink)?;
            match l.first().map(String::as_str) {
                Some("CMD") | Some("CMD-SHELL") => {}
                Some("NONE") => return Some(vec!["NONE".into()]),
                None => {
                    sink.error(v.pos, "healthcheck.test is empty");
                    return None;
                }
                Some(_) => l.insert(0, "CMD".into()),
            }
            Some(l)
        }
        other => {
            sink.error(v.pos, format!("healthcheck.test must be a list or a string, found {}", other.type_name()));
            None
        }
    });
    let interval = f.get("interval").and_then(|v| duration(v, "healthcheck.interval", sink));
    let timeout = f.get("timeout").and_then(|v| duration(v, "healthcheck.timeout", sink));
    let retries = f
        .get("retries")
        .and_then(|v| integer(v, "healthcheck.retries", sink))
        .map(|r| r.clamp(0, u32::MAX as i64) as u32);
    let start_period = f.get("startPeriod").and_then(|v| duration(v, "healthcheck.startPeriod", sink));
    f.finish("healthcheck", sink);
    let test = test?;
    if test == ["NONE"] {
        return Some(Healthcheck::disabled());
    }
    Some(Healthcheck { test, interval, timeout, retries, start_period })
}

fn depends_on(n: &Node, refs: &mut Vec<(Kind, String, Pos)>, sink: &mut Sink<'_>) -> BTreeMap<String, DependCondition> {
    let mut out = BTreeMap::new();
    match &n.value {
        Value::Seq(items) => {
            for item in items {
                if let Some(name) = string(item, "a dependsOn entry", sink) {
                    refs.push((Kind::Container, name.clone(), item.pos));
                    out.insert(name, DependCondition::Started);
                }
            }
        }
        Value::Map(entries) => {
            for (k, v) in entries {
                refs.push((Kind::Container, k.name.clone(), k.pos));
                let cond = match string(v, "a dependsOn condition", sink).as_deref() {
                    Some("started") => DependCondition::Started,
                    Some("healthy") => DependCondition::Healthy,
                    Some("completed") => DependCondition::Completed,
                    Some(other) => {
                        sink.error(
                            v.pos,
                            format!("invalid condition `{other}`: expected started, healthy or completed"),
                        );
                        continue;
                    }
                    None => continue,
                };
                out.insert(k.name.clone(), cond);
            }
        }
        other => sink.error(n.pos, format!("dependsOn must be a list of names or a map, found {}", other.type_name())),
    }
    out
}
