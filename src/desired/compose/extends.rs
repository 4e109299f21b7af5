//! `extends`: a service defined on top of another, of the same compose file or of another file
//! of the repository. Merged as compose merges them: maps key by key with the extending service
//! winning, lists of ports, volumes and the like joined, everything else replaced.

use super::super::diag::Sink;
use super::super::interpolate::Found;
use super::super::node::{Key, Node, Value};
use super::{field, interpolate_values, repository_path, Context};

/// Lists that are joined: the base's entries, then the extending service's.
const JOINED: &[&str] = &[
    "cap_add",
    "cap_drop",
    "configs",
    "devices",
    "dns",
    "dns_opt",
    "dns_search",
    "env_file",
    "expose",
    "external_links",
    "group_add",
    "links",
    "ports",
    "secrets",
    "security_opt",
    "tmpfs",
    "volumes",
];

/// Lists that are maps in another form (`KEY=VALUE`), merged key by key.
const KEYED: &[(&str, char)] = &[("environment", '='), ("labels", '='), ("sysctls", '='), ("extra_hosts", ':')];

/// Lists of names that are maps with defaults (`networks: [a]` is `networks: {a: null}`).
const NAMED: &[&str] = &["networks", "depends_on"];

/// The services of other files `extends` names, by path, interpolated; `None` when the file
/// has none (its errors are reported once, when it is read).
type Files = std::collections::BTreeMap<String, Option<std::rc::Rc<Vec<(Key, Node)>>>>;

/// Chains longer than this are taken for a loop.
const MAX_DEPTH: usize = 16;

/// Replaces every service of `doc` that `extends` another with the merged service.
pub(super) fn resolve(
    doc: &mut Node,
    ctx: &Context<'_, '_>,
    found: &mut Found,
    warn: &mut Sink<'_>,
    sink: &mut Sink<'_>,
) {
    let file = sink.file.to_string();
    let Value::Map(top) = &doc.value else { return };
    let Some((_, Node { value: Value::Map(services), .. })) = top.iter().find(|(k, _)| k.name == "services") else {
        return;
    };
    let services = services.clone();
    let mut merged = Vec::new();
    let mut cache = Files::new();
    for (k, v) in &services {
        if matches!(&v.value, Value::Map(m) if field(m, "extends").is_some()) {
            if let Some(n) = resolved(&services, &k.name, &file, ctx, 0, found, &mut cache, warn, sink) {
                merged.push((k.name.clone(), n));
            }
        }
    }
    let Value::Map(top) = &mut doc.value else { return };
    if let Some((_, Node { value: Value::Map(services), .. })) = top.iter_mut().find(|(k, _)| k.name == "services") {
        for (name, n) in merged {
            if let Some((_, v)) = services.iter_mut().find(|(k, _)| k.name == name) {
                *v = n;
            }
        }
    }
}

/// Service `name` of `services` (of `file`) with its `extends` chain merged in.
#[allow(clippy::too_many_arguments)]
fn resolved(
    services: &[(Key, Node)],
    name: &str,
    file: &str,
    ctx: &Context<'_, '_>,
    depth: usize,
    found: &mut Found,
    cache: &mut Files,
    warn: &mut Sink<'_>,
    sink: &mut Sink<'_>,
) -> Option<Node> {
    let (_, node) = services.iter().find(|(k, _)| k.name == name)?;
    let Value::Map(entries) = &node.value else { return Some(node.clone()) };
    let Some(ext) = field(entries, "extends") else { return Some(node.clone()) };
    if depth >= MAX_DEPTH {
        sink.error(ext.pos, format!("extends of service `{name}` goes round in a circle"));
        return None;
    }
    let (base_name, base_file) = match &ext.value {
        Value::Str(s) => (s.clone(), None),
        Value::Map(e) => {
            for (k, _) in e.iter().filter(|(k, _)| k.name != "service" && k.name != "file") {
                sink.error(k.pos, format!("unknown key `{}` in extends: expected service and file", k.name));
            }
            let service = match field(e, "service").map(|v| &v.value) {
                Some(Value::Str(s)) => s.clone(),
                _ => {
                    sink.error(ext.pos, "extends needs `service`, the name of the service to extend");
                    return None;
                }
            };
            let file = match field(e, "file").map(|v| &v.value) {
                Some(Value::Str(f)) => Some(f.clone()),
                None => None,
                Some(_) => {
                    sink.error(ext.pos, "extends.file must be a path");
                    return None;
                }
            };
            (service, file)
        }
        other => {
            sink.error(ext.pos, format!("extends must be a service name or a map, found {}", other.type_name()));
            return None;
        }
    };
    let base = match base_file {
        None => {
            if !services.iter().any(|(k, _)| k.name == base_name) {
                let message = if base_name.is_empty() {
                    format!("service `{name}` extends a service with an empty name")
                } else {
                    format!("service `{name}` extends `{base_name}`, which this file does not define")
                };
                sink.error(ext.pos, message);
                return None;
            }
            resolved(services, &base_name, file, ctx, depth + 1, found, cache, warn, sink)?
        }
        Some(other) => {
            let dir = file.rsplit_once('/').map_or("", |(d, _)| d);
            let Some(path) = repository_path(dir, &other) else {
                sink.error(ext.pos, format!("extends.file `{other}` is outside the repository"));
                return None;
            };
            let Some(text) = (ctx.file_text)(&path) else {
                sink.error(ext.pos, format!("extends.file `{other}` is not in this revision of the repository"));
                return None;
            };
            let mut diags = Vec::new();
            let mut other_sink = Sink::new(&path, text, &mut diags);
            let mut warnings = Vec::new();
            let mut other_warn = other_sink.beside(&mut warnings);
            // Each other file is read and interpolated once, however many services extend it.
            if !cache.contains_key(&path) {
                let services =
                    super::super::node::parse_yaml(text, &mut other_sink).into_iter().next().and_then(|mut doc| {
                        interpolate_values(&mut doc, ctx.vars, found, &mut other_warn, &mut other_sink);
                        let Value::Map(top) = doc.value else { return None };
                        let (_, s) = top.into_iter().find(|(k, _)| k.name == "services")?;
                        match s.value {
                            Value::Map(others) => Some(std::rc::Rc::new(others)),
                            _ => None,
                        }
                    });
                cache.insert(path.clone(), services);
            }
            let others = cache.get(&path).cloned().flatten();
            let base = others.filter(|o| o.iter().any(|(k, _)| k.name == base_name)).and_then(|others| {
                resolved(&others, &base_name, &path, ctx, depth + 1, found, cache, &mut other_warn, &mut other_sink)
            });
            let failed = !diags.is_empty();
            sink.diags.extend(diags);
            warn.diags.extend(warnings);
            let Some(base) = base else {
                if !failed {
                    sink.error(ext.pos, format!("extends: `{other}` defines no service `{base_name}`"));
                }
                return None;
            };
            rebase(base, path.rsplit_once('/').map_or("", |(d, _)| d), dir)
        }
    };
    let mut over = node.clone();
    if let Value::Map(m) = &mut over.value {
        m.retain(|(k, _)| k.name != "extends");
    }
    Some(merge_service(&base, &over))
}

/// A service of a file in folder `from`, its repository paths rewritten for a file in `to`.
fn rebase(mut n: Node, from: &str, to: &str) -> Node {
    if from == to {
        return n;
    }
    let moved = |rel: &str| -> Option<String> {
        let from_root = repository_path(from, rel)?;
        let up = to.split('/').filter(|p| !p.is_empty()).count();
        Some(if up == 0 { format!("./{from_root}") } else { format!("{}{from_root}", "../".repeat(up)) })
    };
    // Every relative path of `build` and `env_file`; of `volumes`, only those that start with
    // `.` (the others are volume names).
    let fix = |s: &mut String| {
        if !s.starts_with('/') && !s.starts_with('~') {
            if let Some(p) = moved(s) {
                *s = p;
            }
        }
    };
    let Value::Map(entries) = &mut n.value else { return n };
    for (k, v) in entries.iter_mut() {
        match (k.name.as_str(), &mut v.value) {
            ("build", Value::Str(s)) => fix(s),
            ("build", Value::Map(b)) => {
                for (bk, bv) in b.iter_mut() {
                    if let ("context", Value::Str(s)) = (bk.name.as_str(), &mut bv.value) {
                        fix(s)
                    }
                }
            }
            ("env_file", Value::Str(s)) => fix(s),
            ("env_file" | "volumes", Value::Seq(items)) => {
                for item in items {
                    match &mut item.value {
                        Value::Str(s) if k.name == "volumes" && s.starts_with('.') => {
                            if let Some((src, rest)) = s.split_once(':') {
                                if let Some(p) = moved(src) {
                                    *s = format!("{p}:{rest}");
                                }
                            }
                        }
                        Value::Str(_) if k.name == "volumes" => {}
                        Value::Str(s) => fix(s),
                        Value::Map(m) => {
                            for (mk, mv) in m.iter_mut() {
                                if let ("source" | "path", Value::Str(s)) = (mk.name.as_str(), &mut mv.value) {
                                    fix(s)
                                }
                            }
                        }
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    n
}

/// The service `over` on top of `base`.
pub(super) fn merge_service(base: &Node, over: &Node) -> Node {
    let (Value::Map(b), Value::Map(o)) = (&base.value, &over.value) else { return over.clone() };
    let mut out: Vec<(Key, Node)> = b.iter().filter(|(k, _)| k.name != "extends").cloned().collect();
    for (k, ov) in o {
        match out.iter_mut().find(|(bk, _)| bk.name == k.name) {
            Some((_, bv)) => *bv = merge_field(&k.name, bv, ov),
            None => out.push((k.clone(), ov.clone())),
        }
    }
    Node { pos: over.pos, value: Value::Map(out) }
}

fn merge_field(key: &str, b: &Node, o: &Node) -> Node {
    if let Some((_, sep)) = KEYED.iter().find(|(k, _)| *k == key) {
        return merge_maps(&as_map(b, Some(*sep)), &as_map(o, Some(*sep)), false);
    }
    if NAMED.contains(&key) {
        return merge_maps(&as_map(b, None), &as_map(o, None), true);
    }
    match (&b.value, &o.value) {
        (Value::Seq(bs), Value::Seq(os)) if JOINED.contains(&key) => {
            let mut items: Vec<Node> = bs.clone();
            if key == "volumes" {
                // A mount at the same path is replaced, as compose does.
                items.retain(|i| !os.iter().any(|x| mount_target(x).is_some() && mount_target(x) == mount_target(i)));
            }
            for x in os {
                if !items.iter().any(|i| same(i, x)) {
                    items.push(x.clone());
                }
            }
            Node { pos: o.pos, value: Value::Seq(items) }
        }
        (Value::Map(_), Value::Map(_)) => merge_maps(b, o, true),
        _ => o.clone(),
    }
}

fn merge_maps(b: &Node, o: &Node, deep: bool) -> Node {
    let (Value::Map(bm), Value::Map(om)) = (&b.value, &o.value) else { return o.clone() };
    let mut out = bm.clone();
    for (k, ov) in om {
        match out.iter_mut().find(|(bk, _)| bk.name == k.name) {
            Some((_, bv)) if deep && matches!((&bv.value, &ov.value), (Value::Map(_), Value::Map(_))) => {
                *bv = merge_maps(bv, ov, true)
            }
            Some((_, bv)) => *bv = ov.clone(),
            None => out.push((k.clone(), ov.clone())),
        }
    }
    Node { pos: o.pos, value: Value::Map(out) }
}

/// A list of `KEY=VALUE` (or of names, when `sep` is `None`) as a map.
fn as_map(n: &Node, sep: Option<char>) -> Node {
    let Value::Seq(items) = &n.value else { return n.clone() };
    let entries = items
        .iter()
        .filter_map(|i| {
            let Value::Str(s) = &i.value else { return None };
            let (k, v) = match sep.and_then(|c| s.split_once(c)) {
                Some((k, v)) => (k.to_string(), Value::Str(v.to_string())),
                None => (s.clone(), Value::Null),
            };
            Some((Key { name: k, pos: i.pos }, Node { pos: i.pos, value: v }))
        })
        .collect();
    Node { pos: n.pos, value: Value::Map(entries) }
}

fn mount_target(n: &Node) -> Option<String> {
    match &n.value {
        Value::Str(s) => {
            let parts: Vec<&str> = s.split(':').collect();
            Some(if parts.len() == 1 { parts[0] } else { parts[1] }.to_string())
        }
        Value::Map(m) => match field(m, "target").map(|t| &t.value) {
            Some(Value::Str(t)) => Some(t.clone()),
            _ => None,
        },
        _ => None,
    }
}

/// Equal values, wherever they were written.
fn same(a: &Node, b: &Node) -> bool {
    match (&a.value, &b.value) {
        (Value::Seq(x), Value::Seq(y)) => x.len() == y.len() && x.iter().zip(y).all(|(a, b)| same(a, b)),
        (Value::Map(x), Value::Map(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|((ka, va), (kb, vb))| ka.name == kb.name && same(va, vb))
        }
        (x, y) => x == y,
    }
}
