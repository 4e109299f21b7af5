//! What a command starts before the source is read, so that it overlaps the read and the parse:
//! opening the target the source was deployed to last time (connecting to the engine), and the
//! digest lookups of the tags it pinned then.

use super::SourceArgs;
use crate::desired::{DesiredState, HostLimits, Target};
use crate::runtime::deployment::{EarlyPins, Inspect};
use crate::runtime::targets::Targets;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// What each source was deployed to on each host last time, and the tags it pinned there, in
/// STATE_DIR. The lookups are the same as after the parse (the digest is the one the tag names
/// when asked), and a tag the revision no longer names is not used; a no-op then waits on the
/// registry once, not on the parse and then the registry.
const REMEMBERED: &str = "early.json";
/// Beyond this many sources and hosts the memory starts again.
const REMEMBERED_MAX: usize = 64;

#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
struct Remembered {
    target: Target,
    tags: BTreeSet<String>,
}

pub(super) struct Early {
    key: String,
    remembered: Option<Remembered>,
    pub(super) pins: EarlyPins,
}

impl Early {
    /// Begins opening the target `--target` names, else the one `source` was deployed to on
    /// `targets`' host last time, and the lookups remembered for it.
    pub(super) async fn begin(
        state_dir: &Path,
        targets: &Targets,
        source: &SourceArgs,
        target: Option<Target>,
    ) -> Early {
        // Not by ref: a push deploy names each revision by its commit, and what one revision of
        // a source pins, the next mostly pins too.
        let sel = &source.sel;
        let key =
            [targets.host(), &source.source, sel.path.as_deref().unwrap_or(""), sel.project.as_deref().unwrap_or("")]
                .join("\n");
        let remembered = read_remembered(state_dir).remove(&key).filter(|r| target.is_none_or(|t| t == r.target));
        let guess = target.or(remembered.as_ref().map(|r| r.target)).unwrap_or_default();
        targets.prepare(guess);
        let mut pins = EarlyPins::default();
        if let Some(r) = remembered.as_ref().filter(|r| !r.tags.is_empty()) {
            if let Ok(t) = targets.open(r.target, HostLimits::default()).await {
                pins = t.begin_pins(&r.tags);
            }
        }
        Early { key, remembered, pins }
    }

    /// No early lookups, and nothing to remember.
    pub(super) fn none() -> Early {
        Early { key: String::new(), remembered: None, pins: EarlyPins::default() }
    }

    /// Remembers the target and the tags `deployment` pins for `d`, for the next run, when they
    /// changed (best effort: a run that can't remember is only slower next time).
    pub(super) fn remember(&self, state_dir: &Path, d: &DesiredState, deployment: &dyn Inspect) {
        let now = Remembered { target: d.target, tags: deployment.pinned_tags(d) };
        if self.key.is_empty() || self.remembered.as_ref() == Some(&now) {
            return;
        }
        let mut all = read_remembered(state_dir);
        if !all.contains_key(&self.key) && all.len() >= REMEMBERED_MAX {
            all.clear();
        }
        all.insert(self.key.clone(), now);
        let text = serde_json::to_vec(&all).expect("remembered targets serialize");
        let _ = crate::state_file::write_atomic(&state_dir.join(REMEMBERED), &text);
    }
}

fn read_remembered(state_dir: &Path) -> BTreeMap<String, Remembered> {
    std::fs::read(state_dir.join(REMEMBERED))
        .ok()
        .and_then(|text| serde_json::from_slice(&text).ok())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::desired::{self, ManifestFile};

    fn desired(target: Target, images: &[&str]) -> DesiredState {
        let text: Vec<String> = images
            .iter()
            .enumerate()
            .map(|(i, image)| format!("kind: Container\nmetadata: {{name: s{i}}}\nspec: {{image: \"{image}\"}}\n"))
            .collect();
        let files = [ManifestFile { path: "stack.yaml".into(), text: text.join("---\n") }];
        let mut d = desired::load("p", "rev", &files).unwrap_or_else(|d| panic!("{d}"));
        d.target = target;
        d
    }

    fn source(path: &str) -> SourceArgs {
        SourceArgs { source: path.into(), sel: Default::default() }
    }

    #[tokio::test]
    async fn the_target_and_tags_a_source_used_are_begun_early_next_time_and_forgotten_when_they_change() {
        let state = tempfile::tempdir().unwrap();
        // Nothing answers there: a lookup begun is aborted, or fails unseen.
        let sock = state.path().join("docker.sock");
        std::fs::write(&sock, "").unwrap();
        let host = &format!("unix://{}", sock.display());
        let targets = Targets::new(host, state.path());
        let first = Early::begin(state.path(), &targets, &source("/repo"), None).await;
        assert!(first.remembered.is_none() && first.pins.is_empty());
        let swarm = targets.open(Target::Swarm, HostLimits::default()).await.unwrap();
        let digest = "reg/b@sha256:0000000000000000000000000000000000000000000000000000000000000000";
        first.remember(state.path(), &desired(Target::Swarm, &["reg/a:1", digest, "reg/a:1"]), swarm.as_ref());

        let again = Early::begin(state.path(), &targets, &source("/repo"), None).await;
        let r = again.remembered.clone().expect("remembered");
        assert_eq!(r.target, Target::Swarm);
        assert_eq!(r.tags, BTreeSet::from(["reg/a:1".to_string()]), "pinned by digest: not looked up");
        assert!(!again.pins.is_empty());
        // Another source, another host, or another target named: nothing early.
        assert!(Early::begin(state.path(), &targets, &source("/other"), None).await.remembered.is_none());
        let elsewhere = Targets::new("unix:///other.sock", state.path());
        assert!(Early::begin(state.path(), &elsewhere, &source("/repo"), None).await.remembered.is_none());
        assert!(Early::begin(state.path(), &targets, &source("/repo"), Some(Target::Docker)).await.pins.is_empty());

        // Deployed to another target since: remembered as that, with nothing to look up.
        let docker = crate::runtime::host::HostEngine::Docker(
            crate::runtime::docker::DockerEngine::at_version(host, (1, 41)).unwrap(),
        );
        again.remember(state.path(), &desired(Target::Native, &["reg/a:1"]), &docker);
        let last = Early::begin(state.path(), &targets, &source("/repo"), Some(Target::Native)).await;
        assert_eq!(last.remembered.map(|r| r.target), Some(Target::Native));
        assert!(last.pins.is_empty());
    }
}
