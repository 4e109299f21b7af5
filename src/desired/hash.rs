//! Change detection. A container is replaced exactly when the canonical form of what the user
//! declared changes; that form is hashed into the `dev.hawser.spec-hash` label, and also stored
//! whole so a plan can say which field changed.

use super::model::{ContainerSpec, NetworkSpec, VolumeSpec};
use serde::Serialize;
use sha2::{Digest, Sha256};

/// The part of a container spec that defines the container. `dependsOn` and `update` say how
/// hawser orchestrates it, not what runs, so changing them replaces nothing.
pub fn container_view(spec: &ContainerSpec) -> serde_json::Value {
    let mut v = serde_json::to_value(spec).expect("specs serialize");
    if let Some(m) = v.as_object_mut() {
        m.remove("dependsOn");
        m.remove("update");
    }
    v
}

/// sha256 of the canonical JSON (sorted keys) of `value`, in hex.
pub fn of<T: Serialize>(value: &T) -> String {
    let json = serde_json::to_vec(&serde_json::to_value(value).expect("specs serialize")).expect("json");
    hex::encode(Sha256::digest(&json))
}

pub fn container(spec: &ContainerSpec) -> String {
    of(&container_view(spec))
}

/// The hash stored on a network, over its declared spec.
pub fn network(spec: &NetworkSpec) -> String {
    of(spec)
}

/// The hash stored on a volume, over its declared spec.
pub fn volume(spec: &VolumeSpec) -> String {
    of(spec)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::desired::model::{DependCondition, UpdatePolicy};

    #[test]
    fn orchestration_fields_do_not_change_the_hash() {
        let a = ContainerSpec { image: "x".into(), ..Default::default() };
        let mut b = a.clone();
        b.depends_on.insert("db".into(), DependCondition::Healthy);
        b.update = Some(UpdatePolicy::default());
        assert_eq!(container(&a), container(&b));
        b.env.insert("A".into(), "1".into());
        assert_ne!(container(&a), container(&b));
    }
}
