//! The plan: plain data, one action per resource with its cause. Its text form is the dry-run
//! report and its JSON form is for programs; both are deterministic for the same inputs.

use crate::desired::{Kind, Strategy};
use serde::Serialize;
use std::fmt;

/// Bumped whenever the JSON shape changes incompatibly.
pub const FORMAT_VERSION: u32 = 1;

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Plan {
    pub format_version: u32,
    pub project: String,
    pub revision: String,
    pub actions: Vec<Action>,
    /// What is not wrong but must be seen before applying (a secret committed in clear, a
    /// writable repository mount, a compose variable without a value).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Action {
    pub kind: Kind,
    pub name: String,
    pub op: Op,
    pub cause: Cause,
    /// For a changed spec: a unified diff of the applied and the desired canonical spec (YAML).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub diff: Option<String>,
}

/// What is done to the engine. Each is carried out by the executor without further decisions.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum Op {
    Create,
    /// A new container replaces `oldId`; see `apply::replace` for the sequence.
    #[serde(rename_all = "camelCase")]
    Replace {
        old_id: String,
        strategy: Strategy,
    },
    /// A swarm service changed in place: the cluster replaces its tasks in a rolling update
    /// (`update.strategy` is the order, `update.parallelism` how many at once) and rolls back
    /// by itself when the new ones fail.
    Update {
        id: String,
    },
    /// Start a managed container that was stopped outside hawser.
    Start {
        id: String,
    },
    /// hawser's rules for the container's host ports are missing or send them elsewhere: they
    /// are written anew (the container is not touched).
    Publish {
        id: String,
    },
    /// A replica that is unhealthy while another is healthy is taken out of its host ports (new
    /// connections go to the healthy ones) until it is healthy again; the container is not
    /// touched.
    Unpublish {
        id: String,
    },
    /// A container left under a temporary name by an interrupted replacement takes the name.
    #[serde(rename_all = "camelCase")]
    Adopt {
        id: String,
        from_name: String,
    },
    Remove {
        id: String,
    },
    Pull {
        reference: String,
    },
    /// Build the image of an Image's context and tag it `reference`.
    Build {
        reference: String,
    },
    /// Something apply must not or cannot change; apply refuses the whole plan.
    Conflict,
    /// Managed but no longer declared; removed only with `--prune`.
    Orphan,
    Keep,
}

/// One declared field that differs between what was applied and what is desired.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FieldChange {
    pub field: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub old: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub new: Option<serde_json::Value>,
}

/// Why an action is planned.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "reason", rename_all = "camelCase")]
pub enum Cause {
    /// Declared, not on the engine.
    Absent,
    /// The declared spec differs from the applied one.
    SpecChanged {
        changes: Vec<FieldChange>,
    },
    /// The container runs another image than its reference now names.
    ImageChanged {
        from: String,
        to: String,
    },
    /// The container is not running (stopped or killed outside hawser).
    Stopped {
        state: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        exit_code: Option<i64>,
    },
    /// Changed outside hawser in a way only a replacement repairs; `seen` says what was found.
    Drift {
        seen: String,
    },
    /// Left over by an interrupted replacement.
    Leftover {
        name: String,
    },
    NotDeclared,
    /// An object hawser does not manage (or another project's) has the name.
    #[serde(rename_all = "camelCase")]
    NameTaken {
        owner_project: Option<String>,
    },
    /// An `external: true` object does not exist.
    ExternalMissing,
    /// `pull: never` and the image is not on the host.
    ImageMissing,
    /// A Network's spec changed: it is replaced, with the containers attached to it.
    NetworkChanged {
        changes: Vec<FieldChange>,
    },
    /// Made anew because a container whose namespace it joins (`container:NAME`) is.
    JoinedReplaced {
        container: String,
    },
    /// Recreated because a Network it is attached to is replaced.
    NetworkReplaced {
        network: String,
    },
    /// A container hawser will not remove is attached to a Network that must be replaced.
    #[serde(rename_all = "camelCase")]
    AttachedUnmanaged {
        container: String,
    },
    /// A Volume's spec changed; volumes are never replaced, their data is kept.
    VolumeChanged,
    /// A `pull: always` Image whose current digest could not be asked of its registry.
    Unresolved {
        error: String,
    },
    /// An Image with `build` whose context was not read (only `validate` and `render` skip it).
    BuildUnsupported,
    /// A container with host ports to be replaced (`instead` says why) on an engine of this host
    /// whose kernel hawser cannot program (`why`).
    CannotPublish {
        why: String,
        instead: Box<Cause>,
    },
    /// A replica fails its healthcheck while another serves.
    Unhealthy,
    /// A container that ran a Container now run as another number of replicas (or as one
    /// container again): it goes, without `--prune`, as compose removes what a scale leaves.
    Rescaled {
        container: String,
        replicas: u64,
    },
    /// A second replica of a Container with host ports, where hawser cannot publish them itself
    /// (`why`): the engine publishes a host port to one container only.
    PortsShared {
        why: String,
    },
    /// A one-shot container that ran to completion.
    Completed,
    /// Only files of the repository that the container mounts changed (by content).
    RepoFileChanged {
        files: Vec<String>,
    },
    /// The project's objects were applied by another source; a project belongs to one.
    OwnedBySource {
        source: String,
    },
    /// `--take-over`: replaced so that it carries this source, not `from`.
    SourceChanged {
        from: String,
    },
    Unchanged,
}

impl Plan {
    /// Replaces each of `masked` (values the host gave compose interpolation) with `***`
    /// wherever the plan shows values: field changes and unified diffs.
    pub fn mask(&mut self, masked: &crate::desired::MaskedValues) {
        if masked.0.is_empty() {
            return;
        }
        fn walk(v: &mut serde_json::Value, hide: &dyn Fn(&str) -> String) {
            match v {
                serde_json::Value::String(s) => *s = hide(s),
                serde_json::Value::Array(a) => a.iter_mut().for_each(|x| walk(x, hide)),
                serde_json::Value::Object(o) => o.values_mut().for_each(|x| walk(x, hide)),
                _ => {}
            }
        }
        fn strings(v: &serde_json::Value, out: &mut Vec<String>) {
            match v {
                serde_json::Value::String(s) if s.chars().count() >= 4 => out.push(s.clone()),
                serde_json::Value::Array(a) => a.iter().for_each(|x| strings(x, out)),
                serde_json::Value::Object(o) => o.values().for_each(|x| strings(x, out)),
                _ => {}
            }
        }
        for a in &mut self.actions {
            // A field whose new value is the host's had an earlier value of the host's too,
            // applied from another environment: it is hidden as well.
            let mut hidden: Vec<String> = masked.0.iter().cloned().collect();
            if let Cause::SpecChanged { changes } | Cause::NetworkChanged { changes } = &a.cause {
                for c in changes {
                    let new = c.new.as_ref().map(|v| v.to_string()).unwrap_or_default();
                    if masked.0.iter().any(|m| new.contains(m.as_str())) {
                        if let Some(old) = &c.old {
                            strings(old, &mut hidden);
                        }
                    }
                }
            }
            let hide = |s: &str| hidden.iter().fold(s.to_string(), |s, m| s.replace(m.as_str(), "***"));
            if let Some(d) = &mut a.diff {
                *d = hide(d);
            }
            if let Cause::SpecChanged { changes } | Cause::NetworkChanged { changes } = &mut a.cause {
                for c in changes {
                    c.old.iter_mut().chain(c.new.iter_mut()).for_each(|v| walk(v, &hide));
                }
            }
        }
    }

    pub fn has_changes(&self) -> bool {
        self.actions.iter().any(|a| !matches!(a.op, Op::Keep | Op::Orphan))
    }

    pub fn conflicts(&self) -> impl Iterator<Item = &Action> {
        self.actions.iter().filter(|a| a.op == Op::Conflict)
    }

    pub fn summary(&self) -> Summary {
        let mut s = Summary::default();
        for a in &self.actions {
            match a.op {
                Op::Create => s.create += 1,
                Op::Replace { .. } => s.replace += 1,
                Op::Update { .. } => s.update += 1,
                Op::Start { .. } | Op::Adopt { .. } | Op::Publish { .. } | Op::Unpublish { .. } => s.repair += 1,
                Op::Remove { .. } => s.remove += 1,
                Op::Pull { .. } | Op::Build { .. } => s.pull += 1,
                Op::Conflict => s.conflict += 1,
                Op::Orphan => s.orphan += 1,
                Op::Keep => s.unchanged += 1,
            }
        }
        s
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Summary {
    pub create: usize,
    pub replace: usize,
    #[serde(skip_serializing_if = "is_zero")]
    pub update: usize,
    pub repair: usize,
    pub remove: usize,
    pub pull: usize,
    pub conflict: usize,
    pub orphan: usize,
    pub unchanged: usize,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = vec![format!("{} to create", self.create), format!("{} to replace", self.replace)];
        if self.update > 0 {
            parts.push(format!("{} to update", self.update));
        }
        parts.extend([format!("{} to repair", self.repair), format!("{} to remove", self.remove)]);
        if self.pull > 0 {
            parts.push(format!("{} to pull or build", self.pull));
        }
        if self.conflict > 0 {
            parts.push(format!("{} conflict{}", self.conflict, if self.conflict == 1 { "" } else { "s" }));
        }
        if self.orphan > 0 {
            parts.push(format!("{} not declared (kept; --prune removes)", self.orphan));
        }
        parts.push(format!("{} unchanged", self.unchanged));
        write!(f, "{}.", parts.join(", "))
    }
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Cause::Absent => f.write_str("absent"),
            Cause::SpecChanged { changes } | Cause::NetworkChanged { changes } => {
                let fields: Vec<&str> = changes.iter().map(|c| c.field.as_str()).collect();
                if fields.is_empty() {
                    f.write_str("spec changed")
                } else {
                    write!(f, "changed: {}", fields.join(", "))
                }
            }
            Cause::ImageChanged { from, to } => write!(f, "image changed: {} -> {}", short_id(from), short_id(to)),
            Cause::Stopped { state, exit_code: Some(c) } => write!(f, "drift: {state} with exit code {c}"),
            Cause::Stopped { state, exit_code: None } => write!(f, "drift: {state}"),
            Cause::Drift { seen } => write!(f, "drift: {seen}"),
            Cause::Leftover { name } => write!(f, "left over from an interrupted replacement as `{name}`"),
            Cause::NotDeclared => f.write_str("no longer declared"),
            Cause::NameTaken { owner_project: None } => f.write_str("an object hawser does not manage has this name"),
            Cause::NameTaken { owner_project: Some(p) } => write!(f, "project `{p}` owns an object with this name"),
            Cause::ExternalMissing => f.write_str("declared external, but it does not exist"),
            Cause::ImageMissing => f.write_str("not on the host, and `pull: never`"),
            Cause::VolumeChanged => f.write_str("spec changed; volumes are never replaced, the existing one is kept"),
            Cause::Unresolved { error } => write!(f, "unresolved: the tag's digest is unknown ({error})"),
            Cause::BuildUnsupported => f.write_str("its build context was not read"),
            Cause::CannotPublish { why, instead } => write!(
                f,
                "{instead}; but replacing it with no gap needs hawser to publish its host ports, and it cannot here: {why}. Run hawser as root on a host with iptables, or set `update.strategy: stop-first` to accept the gap"
            ),
            Cause::Unhealthy => f.write_str("unhealthy: new connections go to its healthy replicas until it is healthy again"),
            Cause::Rescaled { container, replicas: 1 } => write!(f, "`{container}` runs as one container now"),
            Cause::Rescaled { container, replicas } => write!(f, "`{container}` runs {replicas} replicas now"),
            Cause::PortsShared { why } => write!(
                f,
                "replicas share host ports only where hawser publishes them itself, and it cannot here: {why}"
            ),
            Cause::NetworkReplaced { network } => write!(f, "network `{network}` is replaced"),
            Cause::JoinedReplaced { container } => {
                write!(f, "`{container}`, whose namespaces it joins, is made anew")
            }
            Cause::AttachedUnmanaged { container } => write!(
                f,
                "the network must be replaced, but `{container}`, which hawser will not remove, is attached to it"
            ),
            Cause::Completed => f.write_str("ran to completion"),
            Cause::OwnedBySource { source } => write!(
                f,
                "the project belongs to source `{source}`; apply from there, or pass --take-over to move it here"
            ),
            Cause::SourceChanged { from } => write!(f, "taken over from source `{from}`"),
            Cause::RepoFileChanged { files } => write!(f, "repoFileChanged: {}", files.join(", ")),
            Cause::Unchanged => f.write_str("unchanged"),
        }
    }
}

pub(crate) fn short_id(id: &str) -> &str {
    // An image pinned by reference (`repo@sha256:…`, the swarm's) is shown by its digest.
    let id = id.rsplit_once('@').map_or(id, |(_, digest)| digest);
    let id = id.strip_prefix("sha256:").unwrap_or(id);
    &id[..id.len().min(12)]
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(super::render::text(self, false).trim_end())
    }
}
