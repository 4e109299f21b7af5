//! The ownership labels of contract section 4, the one place their names are spelled.

use crate::desired::Kind;
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

/// Records the source on an object's labels; an unknown (empty) source records nothing.
pub fn set_source(labels: &mut BTreeMap<String, String>, source: &str) {
    if !source.is_empty() {
        labels.insert(SOURCE.into(), source.into());
    }
}
