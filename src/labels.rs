//! The ownership labels of contract section 4, the one place their names are spelled.

use crate::desired::{hash, DesiredState, Kind};
use std::collections::BTreeMap;

pub const PROJECT: &str = "dev.hawser.project";
pub const KIND: &str = "dev.hawser.kind";
pub const NAME: &str = "dev.hawser.name";
pub const SPEC_HASH: &str = "dev.hawser.spec-hash";
pub const REVISION: &str = "dev.hawser.revision";
/// The canonical JSON of the applied spec, so a plan can show field-level changes.
pub const SPEC: &str = "dev.hawser.spec";
/// The source that applied the object (repository location, and manifest folder if not the
/// root): a project belongs to one source, and this is how another one finds out.
pub const SOURCE: &str = "dev.hawser.source";
/// On a container that runs `REPO@DIGEST` resolved from a tag: that tag, as declared. While the
/// registry can't be asked, a container of the same tag keeps its digest.
pub const IMAGE_REF: &str = "dev.hawser.image-ref";
/// On a replica of a Container with `replicas` (one host): that Container's name.
pub const REPLICA_OF: &str = "dev.hawser.replica-of";

/// Who owns an engine object, read back from its labels.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ownership {
    pub project: String,
    pub kind: Option<Kind>,
    pub name: String,
    pub spec_hash: String,
    pub revision: String,
    pub spec: Option<String>,
    /// `None` on objects of versions before sources were recorded.
    pub source: Option<String>,
}

impl Ownership {
    /// `None` for an object hawser did not create: such objects are never changed.
    pub fn from_labels(labels: &BTreeMap<String, String>) -> Option<Ownership> {
        let project = labels.get(PROJECT)?.clone();
        let get = |k: &str| labels.get(k).cloned().unwrap_or_default();
        Some(Ownership {
            project,
            kind: labels.get(KIND).and_then(|k| Kind::parse(k)),
            name: get(NAME),
            spec_hash: get(SPEC_HASH),
            revision: get(REVISION),
            spec: labels.get(SPEC).cloned(),
            source: labels.get(SOURCE).cloned(),
        })
    }
}

/// The labels of an object hawser creates: the user's, then its own (which the user can't override).
pub fn for_object(
    user: &BTreeMap<String, String>,
    project: &str,
    kind: Kind,
    name: &str,
    spec_hash: &str,
    revision: &str,
    spec_json: Option<&str>,
) -> BTreeMap<String, String> {
    let mut l = user.clone();
    l.insert(PROJECT.into(), project.into());
    l.insert(KIND.into(), kind.as_str().into());
    l.insert(NAME.into(), name.into());
    l.insert(SPEC_HASH.into(), spec_hash.into());
    l.insert(REVISION.into(), revision.into());
    if let Some(s) = spec_json {
        l.insert(SPEC.into(), s.into());
    }
    l
}

/// The labels of Network `name` of `d` as hawser creates it, on any target.
pub fn network(d: &DesiredState, name: &str) -> BTreeMap<String, String> {
    let spec = &d.networks[name].spec;
    let json = serde_json::to_string(spec).ok();
    of(d, &spec.labels, Kind::Network, name, &hash::network(spec), json.as_deref())
}

/// The labels of Volume `name` of `d` as hawser creates it, on any target.
pub fn volume(d: &DesiredState, name: &str) -> BTreeMap<String, String> {
    let spec = &d.volumes[name].spec;
    let json = serde_json::to_string(spec).ok();
    of(d, &spec.labels, Kind::Volume, name, &hash::volume(spec), json.as_deref())
}

/// The labels of what hawser makes of Container `name` of `d` (a container, a swarm service):
/// the user's, then ownership, the applied spec and its hash, the source, the declared tag.
pub fn container(d: &DesiredState, name: &str) -> BTreeMap<String, String> {
    let spec = &d.containers[name].spec;
    let json = serde_json::to_string(&hash::container_view(spec)).ok();
    let mut l = of(d, &spec.labels, Kind::Container, name, &hash::container(spec), json.as_deref());
    if let Some(tag) = d.declared_images.get(name) {
        l.insert(IMAGE_REF.into(), tag.clone());
    }
    if let Some(r) = &spec.replica {
        l.insert(REPLICA_OF.into(), r.service.clone());
    }
    l
}

fn of(
    d: &DesiredState,
    user: &BTreeMap<String, String>,
    kind: Kind,
    name: &str,
    spec_hash: &str,
    spec_json: Option<&str>,
) -> BTreeMap<String, String> {
    let mut l = for_object(user, &d.project, kind, name, spec_hash, &d.revision, spec_json);
    set_source(&mut l, &d.source);
    l
}

/// Temporary name of a start-first candidate (contract section 5).
pub fn candidate_name(name: &str) -> String {
    format!("{name}.hawser-next")
}

/// Temporary name of the old container during a stop-first replacement.
pub fn retired_name(name: &str) -> String {
    format!("{name}.hawser-old")
}

/// Records the source on an object's labels; an unknown (empty) source records nothing.
pub fn set_source(labels: &mut BTreeMap<String, String>, source: &str) {
    if !source.is_empty() {
        labels.insert(SOURCE.into(), source.into());
    }
}
