//! What hawser remembers of the images it put on the host, per project, in the state dir: which
//! reference each Image resource used at each applied revision. It serves two things: clean-up
//! (images no container uses any more go, but the last N per resource stay for rollback) and
//! `hawser rollback`, which runs an older revision with the images it ran then.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageRecord {
    /// Per Image resource, the references it used, oldest first.
    pub used: BTreeMap<String, Vec<String>>,
    /// Per applied revision, each Image resource's reference.
    pub revisions: BTreeMap<String, BTreeMap<String, String>>,
    /// Per revision applied to a swarm, each tag its services run, pinned to the digest it
    /// named then (the nodes keep their own images: nothing here is cleaned up).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub swarm_pins: BTreeMap<String, BTreeMap<String, String>>,
}

fn path(state_dir: &Path, project: &str) -> PathBuf {
    state_dir.join("images").join(format!("{project}.json"))
}

impl ImageRecord {
    pub fn load(state_dir: &Path, project: &str) -> ImageRecord {
        std::fs::read_to_string(path(state_dir, project))
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_default()
    }

    pub fn save(&self, state_dir: &Path, project: &str) -> std::io::Result<()> {
        let p = path(state_dir, project);
        std::fs::create_dir_all(p.parent().expect("has a parent"))?;
        crate::state_file::write_atomic(&p, &serde_json::to_vec_pretty(self).expect("serializes"))
    }

    /// Notes what `revision` runs.
    pub fn applied(&mut self, revision: &str, images: &BTreeMap<String, String>) {
        for (name, reference) in images {
            let list = self.used.entry(name.clone()).or_default();
            list.retain(|r| r != reference);
            list.push(reference.clone());
        }
        self.revisions.insert(revision.to_string(), images.clone());
    }

    /// References older than the newest `keep` of their resource: candidates for removal.
    pub fn stale(&self, keep: usize) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for (name, refs) in &self.used {
            let cut = refs.len().saturating_sub(keep);
            out.extend(refs[..cut].iter().map(|r| (name.clone(), r.clone())));
        }
        out
    }

    pub fn forget(&mut self, name: &str, reference: &str) {
        if let Some(list) = self.used.get_mut(name) {
            list.retain(|r| r != reference);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_newest_references_per_resource_are_kept() {
        let mut r = ImageRecord::default();
        for (rev, reference) in [("r1", "a@1"), ("r2", "a@2"), ("r3", "a@3"), ("r4", "a@4"), ("r5", "a@2")] {
            r.applied(rev, &BTreeMap::from([("app".to_string(), reference.to_string())]));
        }
        // Used order: a@1, a@3, a@4, a@2 (a@2 moved to the end when reused).
        assert_eq!(r.stale(3), vec![("app".to_string(), "a@1".to_string())]);
        assert_eq!(r.revisions["r3"]["app"], "a@3");
    }
}
