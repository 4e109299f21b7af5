//! The desired state: manifests of one revision, parsed, normalized and checked as a whole.
//!
//! `load` is pure: files in, a [`DesiredState`] or every [`Diagnostic`] out. Nothing here touches
//! the engine, so a revision with any error can be refused before anything is changed.

pub mod compose;
pub mod decode;
pub mod diag;
pub mod hash;
pub mod interpolate;
pub mod model;
pub mod node;
pub mod policy;
pub mod render;
pub mod replicas;
pub mod secrets;
pub mod target;
pub mod types;

pub use diag::{Diagnostic, Diagnostics, Pos};
pub use model::*;
pub use policy::Policy;
pub use types::{ByteSize, Capability, Duration, PortBinding, Protocol, RestartPolicy};

use decode::{Decoded, DecodedSpec};
use diag::Sink;
use node::{Node, Value};
use std::collections::{BTreeMap, BTreeSet};

/// One manifest file: its path as shown in messages (relative to the source root) and its text.
#[derive(Clone, Debug)]
pub struct ManifestFile {
    pub path: String,
    pub text: String,
}

/// Whether `path` (relative to the manifest folder) is a manifest file.
pub fn is_manifest(path: &str) -> bool {
    let name = path.rsplit('/').next().unwrap_or(path);
    (name.ends_with(".yaml") || name.ends_with(".yml") || name.ends_with(".toml")) && path != "hawser.toml"
}

/// Parses, normalizes and checks the manifests of one revision under the default host policy.
pub fn load(project: &str, revision: &str, files: &[ManifestFile]) -> Result<DesiredState, Diagnostics> {
    load_with_policy(project, revision, files, &Policy::default())
}

/// A compose project's `.env` file, which the source reads beside the manifests.
pub fn is_dotenv(path: &str) -> bool {
    path.rsplit('/').next() == Some(".env")
}

/// Parses, normalizes and checks the manifests of one revision under `policy`, with no
/// variables from the process's environment and no compose profiles.
pub fn load_with_policy(
    project: &str,
    revision: &str,
    files: &[ManifestFile],
    policy: &Policy,
) -> Result<DesiredState, Diagnostics> {
    let (env, data) = (BTreeMap::new(), BTreeMap::new());
    let filter = ManifestFilter::default();
    load_with(
        project,
        revision,
        files,
        &LoadOptions {
            policy,
            process_env: &env,
            profiles: &[],
            data: &data,
            filter: &filter,
            target: Target::default(),
        },
    )
}

/// Which files of a revision are manifests besides what their shape says: `include` globs
/// (always manifests, checked as such) and `exclude` globs (never), from `hawser.toml`, matched
/// against paths from the source's root.
#[derive(Clone, Debug, Default)]
pub struct ManifestFilter {
    pub include: Option<globset::GlobSet>,
    pub exclude: Option<globset::GlobSet>,
}

impl ManifestFilter {
    fn included(&self, path: &str) -> bool {
        self.include.as_ref().is_some_and(|g| g.is_match(path))
    }
    fn excluded(&self, path: &str) -> bool {
        self.exclude.as_ref().is_some_and(|g| g.is_match(path))
    }
}

/// What loading a revision takes besides its files; passed in, so that loading stays a
/// function of its inputs.
pub struct LoadOptions<'a> {
    pub policy: &'a Policy,
    /// The process's environment, for compose interpolation.
    pub process_env: &'a BTreeMap<String, String>,
    /// Active compose profiles: services with `profiles` are deployed when one is active.
    pub profiles: &'a [String],
    /// Files of the revision that compose files name (`env_file`), by path from the root.
    pub data: &'a BTreeMap<String, String>,
    pub filter: &'a ManifestFilter,
    /// What the revision is deployed to: fields the target cannot honour are errors.
    pub target: Target,
}

/// The options of a real run: the process's environment, and the profiles of `hawser.toml`
/// together with `COMPOSE_PROFILES` of the environment, as compose reads it.
pub fn load_options<'a>(
    policy: &'a Policy,
    process_env: &'a BTreeMap<String, String>,
    profiles: &'a [String],
    data: &'a BTreeMap<String, String>,
    filter: &'a ManifestFilter,
) -> LoadOptions<'a> {
    LoadOptions { policy, process_env, profiles, data, filter, target: Target::default() }
}

/// The profiles of `hawser.toml` and those `COMPOSE_PROFILES` names.
pub fn active_profiles(configured: &[String], process_env: &BTreeMap<String, String>) -> Vec<String> {
    let from_env = process_env.get("COMPOSE_PROFILES").map(|p| p.split(',').map(|s| s.trim().to_string()));
    let mut out: Vec<String> = configured.iter().cloned().chain(from_env.into_iter().flatten()).collect();
    out.retain(|p| !p.is_empty());
    out.sort();
    out.dedup();
    out
}

/// As [`load_with_policy`], with everything of [`LoadOptions`].
pub fn load_with(
    project: &str,
    revision: &str,
    files: &[ManifestFile],
    opts: &LoadOptions<'_>,
) -> Result<DesiredState, Diagnostics> {
    let policy = opts.policy;
    // Only what the host policy lets compose files read of hawser's own environment.
    let allowed_env: BTreeMap<String, String> = opts
        .process_env
        .iter()
        .filter(|(k, _)| policy.allows_variable(k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let process_env = &allowed_env;
    let mut diags = Vec::new();
    let mut warnings = Vec::new();
    let mut found = interpolate::Found::default();
    let mut skipped = Vec::new();
    let mut decoded: Vec<Decoded> = Vec::new();
    let mut files: Vec<&ManifestFile> = files.iter().collect();
    files.sort_by(|a, b| a.path.cmp(&b.path));
    let all = files.clone();
    let file_text = move |p: &str| {
        all.iter().find(|f| f.path == p).map(|f| f.text.as_str()).or_else(|| opts.data.get(p).map(String::as_str))
    };
    // Compose files that others `include`, whatever their names, with the `.env` each reads.
    let included = compose::included(&files, &file_text);
    let home = opts.process_env.get("HOME").map(String::as_str);
    let allows_variable = |name: &str| policy.allows_variable(name);
    for f in files.iter().filter(|f| !is_dotenv(&f.path)) {
        if let Some(base) = compose::overridden(&f.path, &files).filter(|_| !opts.filter.excluded(&f.path)) {
            // Compose merges it into `base` by default; read alone it would silently be nothing.
            Sink::new(&f.path, &f.text, &mut diags).error(
                Pos::new(1, 1),
                format!("docker compose merges this file into `{base}`, and hawser does not merge compose files yet: move its keys into `{base}`"),
            );
            continue;
        }
        if opts.filter.excluded(&f.path) {
            skipped.push(f.path.clone());
            continue;
        }
        let forced = opts.filter.included(&f.path);
        let mut sink = Sink::new(&f.path, &f.text, &mut diags);
        if compose::is_compose_file(&f.path) || included.contains_key(&f.path) {
            // The `.env` beside the compose file, as compose reads it from the project folder,
            // or the one its `include` names.
            let dir = f.path.rsplit_once('/').map_or(String::new(), |(d, _)| format!("{d}/"));
            let dotenv_path = included.get(&f.path).cloned().flatten().unwrap_or(format!("{dir}.env"));
            let dotenv = file_text(&dotenv_path).map(|text| (dotenv_path.as_str(), text));
            let values = match dotenv
                .map(|(path, text)| (path, text, interpolate::parse_dotenv(text, Some(process_env), &mut found)))
            {
                None => BTreeMap::new(),
                Some((_, _, Ok(values))) => values,
                Some((path, text, Err((line, message)))) => {
                    Sink::new(path, text, sink.diags).error(Pos::new(line, 1), message);
                    continue;
                }
            };
            let vars = interpolate::Variables::new(process_env, &values);
            let docs = node::parse_yaml(&f.text, &mut sink);
            if let Some(doc) = docs.first() {
                let ctx = compose::Context {
                    project,
                    vars: &vars,
                    profiles: opts.profiles,
                    data: opts.data,
                    file_text: &file_text,
                    home,
                    allows_variable: &allows_variable,
                    target: opts.target,
                };
                decoded.extend(compose::decode(doc, &ctx, &mut found, &mut warnings, &mut sink));
            }
            continue;
        }
        // A file that does not parse is an error only when it looks like it was meant as a
        // manifest; other YAML and TOML of the repository (a prometheus.yml, a CI workflow) is data.
        let mut parse_errors = Vec::new();
        let docs = {
            let mut sink = Sink::new(&f.path, &f.text, &mut parse_errors);
            if f.path.ends_with(".toml") {
                node::parse_toml(&f.text, &mut sink).map(toml_documents).unwrap_or_default()
            } else {
                node::parse_yaml(&f.text, &mut sink)
            }
        };
        if !parse_errors.is_empty() {
            if forced || mentions_a_kind(&f.text) {
                sink.diags.extend(parse_errors);
            } else {
                skipped.push(f.path.clone());
            }
            continue;
        }
        let mut any = false;
        for doc in docs.iter().filter(|d| forced || is_manifest_shaped(d)) {
            any = true;
            if let Some(d) = decode::decode(doc, &mut sink) {
                decoded.push(d);
            }
        }
        if !any {
            skipped.push(f.path.clone());
        }
    }
    let text_of = |file: &str| files.iter().find(|f| f.path == file).map(|f| f.text.as_str()).unwrap_or("");

    let mut state = DesiredState {
        project: project.to_string(),
        revision: revision.to_string(),
        skipped,
        warnings,
        // Short values would mask every occurrence of themselves: masked from 4 characters.
        masked: MaskedValues(found.from_process.into_iter().filter(|v| v.chars().count() >= 4).collect()),
        ..Default::default()
    };
    let mut seen: BTreeMap<(Kind, String), String> = BTreeMap::new();
    let mut spans: BTreeMap<(Kind, String), decode::Spans> = BTreeMap::new();
    let mut refs = Vec::new();
    for d in decoded {
        let key = (d.kind, d.name.clone());
        if let Some(first) = seen.get(&key) {
            // Compose files of one project (one includes another) share its default network
            // and may declare the same network or volume: the same declaration is one resource.
            let compose = |file: &str| compose::is_compose_file(file) || included.contains_key(file);
            let same = compose(&d.origin.file)
                && match &d.spec {
                    DecodedSpec::Network(s) => {
                        state.networks.get(&d.name).is_some_and(|r| &r.spec == s && compose(&r.origin.file))
                    }
                    DecodedSpec::Volume(s) => {
                        state.volumes.get(&d.name).is_some_and(|r| &r.spec == s && compose(&r.origin.file))
                    }
                    _ => false,
                };
            if same {
                continue;
            }
            Sink::new(&d.origin.file, text_of(&d.origin.file), &mut diags)
                .error(d.name_pos, format!("duplicate {} `{}`: already declared at {first}", d.kind, d.name));
            continue;
        }
        seen.insert(key.clone(), format!("{}:{}", d.origin.file, d.name_pos.line));
        spans.insert(key, d.spans);
        for r in d.refs {
            refs.push((d.origin.file.clone(), d.name.clone(), r));
        }
        let (name, origin) = (d.name, d.origin);
        match d.spec {
            DecodedSpec::Network(spec) => {
                state.networks.insert(name.clone(), Resource { name, origin, spec });
            }
            DecodedSpec::Volume(spec) => {
                state.volumes.insert(name.clone(), Resource { name, origin, spec });
            }
            DecodedSpec::Image(spec) => {
                state.images.insert(name.clone(), Resource { name, origin, spec });
            }
            DecodedSpec::Container(spec) => {
                state.containers.insert(name.clone(), Resource { name, origin, spec: *spec });
            }
        }
    }

    // References between resources.
    for (file, owner, (kind, target, pos)) in &refs {
        let mut sink = Sink::new(file, text_of(file), &mut diags);
        let known = match kind {
            Kind::Network => state.networks.contains_key(target),
            Kind::Volume => state.volumes.contains_key(target),
            Kind::Container => {
                if target == owner {
                    sink.error(*pos, format!("Container `{owner}` cannot depend on itself"));
                    continue;
                }
                state.containers.contains_key(target)
            }
            Kind::Image => {
                if let Some(img) = state.images.get(target) {
                    let reference = img.spec.reference.clone();
                    if let Some(c) = state.containers.get_mut(owner) {
                        c.spec.image = reference;
                    }
                    true
                } else if let Err(e) = decode::check_reference(target) {
                    sink.error(*pos, format!("{e} (and no Image resource has that name)"));
                    continue;
                } else {
                    true
                }
            }
        };
        if !known {
            let declared: Vec<&str> = match kind {
                Kind::Network => state.networks.keys().map(String::as_str).collect(),
                Kind::Volume => state.volumes.keys().map(String::as_str).collect(),
                Kind::Container => state.containers.keys().map(String::as_str).filter(|c| c != owner).collect(),
                Kind::Image => Vec::new(),
            };
            let hint =
                diag::did_you_mean(target, &declared).map(|h| format!("; did you mean `{h}`?")).unwrap_or_default();
            if included.contains_key(file.as_str()) || compose::is_compose_file(file) {
                // In compose's words: a service, not a Container.
                let noun = if *kind == Kind::Container { "service".to_string() } else { kind.as_str().to_lowercase() };
                if target.is_empty() {
                    sink.error(*pos, format!("a {noun} is named here with an empty name"));
                } else {
                    sink.error(*pos, format!("{noun} `{target}` is not defined in this compose project{hint}"));
                }
            } else if target.is_empty() {
                sink.error(*pos, format!("a {kind} is named here with an empty name"));
            } else {
                sink.error(*pos, format!("{kind} `{target}` is not declared in this revision{hint}"));
            }
        }
    }

    check_policy(&state, policy, &spans, &files, &mut diags);
    state.target = opts.target;
    if !opts.target.is_cluster() {
        // One host publishes every port on itself: `mode: host` says nothing more there, and is
        // left out so it changes no container's spec.
        for r in state.containers.values_mut() {
            r.spec.ports.iter_mut().for_each(|p| p.host_mode = false);
        }
    }
    for r in state.containers.values() {
        for f in target::check_container(&r.spec, opts.target) {
            let pos = spans.get(&(Kind::Container, r.name.clone())).and_then(|s| s.find(&f.at)).unwrap_or(r.origin.pos);
            let text = files.iter().find(|x| x.path == r.origin.file).map(|x| x.text.as_str()).unwrap_or("");
            Sink::new(&r.origin.file, text, &mut diags).error(pos, f.message);
        }
    }
    if opts.target.bridges_only() {
        // Checked here, not in `target`: these are whole resources, not a Container's fields.
        for r in state
            .networks
            .values()
            .filter(|r| r.spec.driver != "bridge" || r.spec.enable_ipv6 || !r.spec.driver_opts.is_empty())
        {
            let text = files.iter().find(|x| x.path == r.origin.file).map(|x| x.text.as_str()).unwrap_or("");
            Sink::new(&r.origin.file, text, &mut diags).error(
                r.origin.pos,
                format!("Network {}: the native target makes IPv4 bridge networks without driver options; use the docker target for others", r.name),
            );
        }
        for r in state.images.values().filter(|r| r.spec.build.is_some()) {
            let text = files.iter().find(|x| x.path == r.origin.file).map(|x| x.text.as_str()).unwrap_or("");
            Sink::new(&r.origin.file, text, &mut diags).error(
                r.origin.pos,
                format!("Image {}: `build` needs an image builder, which the native target does not have: build and push the image in CI (or with `docker build`), then give its reference", r.name),
            );
        }
    }
    // Where each dependsOn entry was written, so a cycle is reported at the entry that closes it.
    let dep_pos: BTreeMap<(&str, &str), Pos> = refs
        .iter()
        .filter(|(_, _, (kind, _, _))| *kind == Kind::Container)
        .map(|(_, owner, (_, target, pos))| ((owner.as_str(), target.as_str()), *pos))
        .collect();
    check_cycles(&state, &dep_pos, &files, &mut diags);
    check_host_ports(&state, &files, &mut diags);
    if !opts.target.is_cluster() && diags.is_empty() {
        for (service, replica) in replicas::expand(&mut state) {
            let r = &state.containers[&service];
            let text = files.iter().find(|x| x.path == r.origin.file).map(|x| x.text.as_str()).unwrap_or("");
            Sink::new(&r.origin.file, text, &mut diags).error(
                r.origin.pos,
                format!("Container {service}: its replica would be named `{replica}`, which another Container is"),
            );
        }
    }

    // A message may quote a value compose took from hawser's environment (`${TOKEN}` where a
    // size was expected): it is masked here, before any error or warning leaves the loader.
    for d in diags.iter_mut().chain(state.warnings.iter_mut()) {
        d.message = state.masked.redact(&d.message);
    }
    if diags.is_empty() {
        Ok(state)
    } else {
        diags.sort_by(|a, b| (&a.file, a.pos).cmp(&(&b.file, b.pos)));
        diags.dedup();
        Err(Diagnostics(diags))
    }
}

/// Whether a document is meant as a hawser manifest: its `kind` is one of hawser's (or a typo of
/// one), or its `apiVersion` is hawser's. A Kubernetes `kind: Deployment` or a Grafana
/// datasource file is data that happens to be YAML.
fn is_manifest_shaped(doc: &Node) -> bool {
    let Value::Map(entries) = &doc.value else { return false };
    let get = |name: &str| entries.iter().find(|(k, _)| k.name == name).map(|(_, v)| &v.value);
    match (get("kind"), get("apiVersion")) {
        (_, Some(Value::Str(api))) if api.starts_with("hawser.dev") => true,
        (Some(Value::Str(kind)), _) => names_a_kind(kind),
        // `kind` missing or not a string: a manifest only if it has a manifest's other parts.
        (None, _) => get("metadata").is_some() && get("spec").is_some(),
        (Some(_), _) => true,
    }
}

fn names_a_kind(kind: &str) -> bool {
    Kind::ALL.iter().any(|k| k.as_str().eq_ignore_ascii_case(kind) || diag::edit_distance(k.as_str(), kind) <= 2)
}

/// Whether the text of a file that does not parse has a line `kind: X` (or `kind = "X"`) naming
/// one of hawser's kinds.
fn mentions_a_kind(text: &str) -> bool {
    text.lines().any(|l| {
        let l = l.trim_start_matches(['-', ' ']);
        let Some(rest) = l.strip_prefix("kind") else { return false };
        let value = rest.trim_start().trim_start_matches([':', '=']).trim().trim_matches(['"', '\'']);
        !value.is_empty() && names_a_kind(value)
    })
}

/// A TOML file holds one resource at its top level, or several as `[[resource]]` tables.
fn toml_documents(node: Node) -> Vec<Node> {
    if let Value::Map(entries) = &node.value {
        if entries.len() == 1 && entries[0].0.name == "resource" {
            if let Value::Seq(items) = &entries[0].1.value {
                return items.clone();
            }
        }
    }
    vec![node]
}

/// The host policy, as a pass over the whole desired state: every resource of every kind, read
/// from the typed specs that the engine will be sent.
fn check_policy(
    state: &DesiredState,
    policy: &Policy,
    spans: &BTreeMap<(Kind, String), decode::Spans>,
    files: &[&ManifestFile],
    diags: &mut Vec<diag::Diagnostic>,
) {
    let mut report = |kind: Kind, name: &str, origin: &Origin, findings: Vec<policy::Finding>| {
        for f in findings {
            let pos = spans.get(&(kind, name.to_string())).and_then(|s| s.find(&f.at)).unwrap_or(origin.pos);
            let text = files.iter().find(|x| x.path == origin.file).map(|x| x.text.as_str()).unwrap_or("");
            Sink::new(&origin.file, text, diags).error(pos, f.message);
        }
    };
    for r in state.networks.values() {
        report(Kind::Network, &r.name, &r.origin, policy.check_network(&r.spec));
    }
    for r in state.volumes.values() {
        report(Kind::Volume, &r.name, &r.origin, policy.check_volume(&r.spec));
    }
    for r in state.images.values() {
        report(Kind::Image, &r.name, &r.origin, policy.check_image(&r.spec));
    }
    for r in state.containers.values() {
        report(Kind::Container, &r.name, &r.origin, policy.check_container(&r.spec));
    }
}

fn check_cycles(
    state: &DesiredState,
    dep_pos: &BTreeMap<(&str, &str), Pos>,
    files: &[&ManifestFile],
    diags: &mut Vec<diag::Diagnostic>,
) {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        Visiting,
        Done,
    }
    fn visit<'a>(
        name: &'a str,
        state: &'a DesiredState,
        marks: &mut BTreeMap<&'a str, Mark>,
        stack: &mut Vec<&'a str>,
        cycles: &mut Vec<Vec<String>>,
    ) {
        match marks.get(name) {
            Some(Mark::Done) => return,
            Some(Mark::Visiting) => {
                let start = stack.iter().position(|n| *n == name).unwrap_or(0);
                let mut cycle: Vec<String> = stack[start..].iter().map(|s| s.to_string()).collect();
                cycle.push(name.to_string());
                cycles.push(cycle);
                return;
            }
            None => {}
        }
        let Some(c) = state.containers.get(name) else {
            return;
        };
        marks.insert(name, Mark::Visiting);
        stack.push(name);
        // A container naming itself is reported as such where references are checked.
        for dep in c.spec.depends_on.keys().filter(|d| *d != name) {
            visit(dep, state, marks, stack, cycles);
        }
        stack.pop();
        marks.insert(name, Mark::Done);
    }
    let mut marks = BTreeMap::new();
    let mut cycles = Vec::new();
    for name in state.containers.keys() {
        visit(name, state, &mut marks, &mut Vec::new(), &mut cycles);
    }
    for cycle in cycles {
        // The last edge closes the cycle: its owner's dependsOn entry naming the first again.
        let (from, to) = (&cycle[cycle.len() - 2], &cycle[cycle.len() - 1]);
        let c = &state.containers[from];
        let pos = dep_pos.get(&(from.as_str(), to.as_str())).copied().unwrap_or(c.origin.pos);
        let text = files.iter().find(|f| f.path == c.origin.file).map(|f| f.text.as_str()).unwrap_or("");
        Sink::new(&c.origin.file, text, diags).error(pos, format!("dependsOn cycle: {}", cycle.join(" -> ")));
    }
}

fn check_host_ports(state: &DesiredState, files: &[&ManifestFile], diags: &mut Vec<diag::Diagnostic>) {
    let mut taken: BTreeMap<(u16, types::Protocol), (&str, Option<std::net::IpAddr>)> = BTreeMap::new();
    for c in state.containers.values() {
        let mut own = BTreeSet::new();
        for p in &c.spec.ports {
            let Some(hp) = p.host_port else { continue };
            let key = (hp, p.protocol);
            if let Some((other, ip)) = taken.get(&key) {
                let overlap = ip.is_none() || p.host_ip.is_none() || *ip == p.host_ip;
                if overlap && !own.contains(&key) {
                    let text = files.iter().find(|f| f.path == c.origin.file).map(|f| f.text.as_str()).unwrap_or("");
                    Sink::new(&c.origin.file, text, diags).error(
                        c.origin.pos,
                        format!("host port {hp}/{} is published by both `{other}` and `{}`", p.protocol, c.name),
                    );
                }
            } else {
                taken.insert(key, (&c.name, p.host_ip));
            }
            own.insert(key);
        }
    }
}

#[cfg(test)]
mod tests;
