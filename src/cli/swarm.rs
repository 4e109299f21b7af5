//! `plan`, `apply` and `status` for the swarm target: the same steps and the same output as on
//! one host, through a manager.

use super::{
    color, confirm, print_plan, record_apply, short_revision, ApplyOptions, CliError, Output, SavedPlan, SourceArgs,
    EXIT_CHANGES, EXIT_OK,
};
use crate::apply::images::ImageRecord;
use crate::desired::{DesiredState, Target};
use crate::diff;
use crate::reconcile;
use crate::runtime::swarm::{EarlyPins, SwarmEngine};
use crate::terminal::clean_line;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

fn warn(warnings: &[String]) {
    for w in warnings {
        eprintln!("warning: {w}");
    }
}

/// The tags each source pinned on each manager last time, in STATE_DIR: the next run of that
/// source asks the manager for their digests while it reads and parses the source. The lookup
/// is the same as after the parse (the digest is the one the tag names when asked), and a tag
/// the revision no longer names is not used; a no-op then waits on the registry once, not on
/// the parse and then the registry.
const REMEMBERED_TAGS: &str = "swarm-tags.json";
/// Beyond this many sources and managers the memory starts again.
const REMEMBERED_MAX: usize = 64;

pub(super) struct Early {
    key: String,
    remembered: BTreeSet<String>,
    pub(super) pins: EarlyPins,
}

impl Early {
    /// Begins the lookups remembered for `source` on `host`, unless the target is known not to be
    /// a swarm.
    pub(super) fn begin(state_dir: &Path, host: &str, source: &SourceArgs, target: Option<Target>) -> Early {
        // Not by ref: a push deploy names each revision by its commit, and what one revision of
        // a source pins, the next mostly pins too.
        let sel = &source.sel;
        let key =
            [host, &source.source, sel.path.as_deref().unwrap_or(""), sel.project.as_deref().unwrap_or("")].join("\n");
        let mut early = Early { key, remembered: BTreeSet::new(), pins: EarlyPins::default() };
        if target.is_some_and(|t| t != Target::Swarm) {
            return early;
        }
        early.remembered = read_remembered(state_dir).remove(&early.key).unwrap_or_default();
        if !early.remembered.is_empty() {
            if let Ok(engine) = SwarmEngine::at(host) {
                early.pins = EarlyPins::start(&engine, early.remembered.iter().cloned());
            }
        }
        early
    }

    /// No early lookups, and nothing to remember.
    pub(super) fn none() -> Early {
        Early { key: String::new(), remembered: BTreeSet::new(), pins: EarlyPins::default() }
    }

    /// Whether this source was a swarm project last time.
    pub(super) fn was_swarm(&self) -> bool {
        !self.remembered.is_empty()
    }

    /// Remembers the tags `d` pins for the next run, when they changed (best effort: a run
    /// that can't remember is only slower next time).
    fn remember(&self, state_dir: &Path, d: &DesiredState) {
        let tags = reconcile::swarm_tags(d);
        if self.key.is_empty() || tags == self.remembered {
            return;
        }
        let mut all = read_remembered(state_dir);
        if !all.contains_key(&self.key) && all.len() >= REMEMBERED_MAX {
            all.clear();
        }
        if tags.is_empty() {
            all.remove(&self.key);
        } else {
            all.insert(self.key.clone(), tags);
        }
        write_remembered(state_dir, &all);
    }

    /// The source is not a swarm project (any more): nothing to ask early next time.
    pub(super) fn forget(self, state_dir: &Path) {
        if self.was_swarm() {
            let mut all = read_remembered(state_dir);
            all.remove(&self.key);
            write_remembered(state_dir, &all);
        }
    }
}

fn write_remembered(state_dir: &Path, all: &BTreeMap<String, BTreeSet<String>>) {
    let text = serde_json::to_vec(all).expect("tags serialize");
    let _ = crate::state_file::write_atomic(&state_dir.join(REMEMBERED_TAGS), &text);
}

fn read_remembered(state_dir: &Path) -> BTreeMap<String, BTreeSet<String>> {
    std::fs::read(state_dir.join(REMEMBERED_TAGS))
        .ok()
        .and_then(|text| serde_json::from_slice(&text).ok())
        .unwrap_or_default()
}

pub(super) struct PlanOptions {
    pub output: Output,
    pub exit_code: bool,
    pub prune: bool,
    pub take_over: bool,
}

/// `out`: where to save the plan (`--out`), and the source it was made from.
pub(super) async fn plan(
    host: &str,
    state_dir: &Path,
    early: Early,
    d: &DesiredState,
    how: &PlanOptions,
    out: Option<(&SourceArgs, &Path)>,
) -> Result<u8, CliError> {
    let engine = SwarmEngine::at(host)?;
    let opts = reconcile::Options { prune: how.prune, take_over: how.take_over, allow_empty: false };
    early.remember(state_dir, d);
    let (observed, plan, _, warnings) = reconcile::plan_swarm(&engine, d, &opts, early.pins).await?;
    warn(&warnings);
    if let Some((src, file)) = out {
        // The plan names the digests the tags were pinned to: applying it later pins again, and
        // a tag moved since makes the plan stale, so what is applied is what was reviewed.
        SavedPlan::new(src, how.prune, how.take_over, fingerprint(&observed, d), &plan).write(file)?;
    }
    print_plan(&plan, how.output, &d.masked);
    Ok(if how.exit_code && plan.has_changes() { EXIT_CHANGES } else { EXIT_OK })
}

fn fingerprint(observed: &crate::observed::swarm::SwarmState, d: &DesiredState) -> String {
    let names: BTreeSet<String> = d.containers.keys().chain(d.networks.keys()).cloned().collect();
    crate::observed::swarm::fingerprint(observed, &d.project, &names)
}

/// `hawser rollback` on a swarm: the earlier revision, with each tag pinned to the digest it
/// ran when that revision was applied (else resolved anew, with a note).
pub(super) async fn rollback(
    host: &str,
    state_dir: &Path,
    source: &str,
    mut d: DesiredState,
    opts: &ApplyOptions<'_>,
) -> Result<u8, CliError> {
    let record = ImageRecord::load(state_dir, &d.project);
    match record.swarm_pins.get(&d.revision) {
        Some(pins) => {
            for c in d.containers.values_mut() {
                if let Some(pinned) = pins.get(&c.spec.image) {
                    let tag = std::mem::replace(&mut c.spec.image, pinned.clone());
                    d.declared_images.insert(c.name.clone(), tag);
                }
            }
        }
        None => eprintln!("note: no record of the digests revision {} ran; resolving its tags anew", d.revision),
    }
    apply(host, state_dir, Early::none(), source, &d, opts, None).await
}

pub(super) async fn apply(
    host: &str,
    state_dir: &Path,
    early: Early,
    source: &str,
    d: &DesiredState,
    opts: &ApplyOptions<'_>,
    lock_timeout: Option<std::time::Duration>,
) -> Result<u8, CliError> {
    let engine = SwarmEngine::at(host)?;
    let _lock = crate::lock::acquire(state_dir, &d.project, lock_timeout, &mut |m: &str| eprintln!("{m}"))
        .map_err(|e| CliError::Failed(e.to_string()))?;
    let started = std::time::Instant::now();
    early.remember(state_dir, d);
    let result = run(&engine, state_dir, d, opts, early.pins).await.map_err(|e| e.redacted(d));
    record_apply(state_dir, source, d, &result, started);
    result.map(|(code, _)| code)
}

async fn run(
    engine: &SwarmEngine,
    state_dir: &Path,
    d: &DesiredState,
    o: &ApplyOptions<'_>,
    early: EarlyPins,
) -> Result<(u8, usize), CliError> {
    let ropts = reconcile::Options { prune: o.prune, allow_empty: o.allow_empty, take_over: o.take_over };
    let (observed, plan, d, warnings) = reconcile::plan_swarm(engine, d, &ropts, early).await?;
    warn(&warnings);
    let d = &d;
    if let Some(sp) = o.saved {
        sp.check_unchanged(&fingerprint(&observed, d), &plan, &d.project)?;
    }
    if !o.quiet {
        print!("{}", d.masked.redact(&diff::render::text(&plan, color())));
    }
    reconcile::check(&plan, d, &ropts)?;
    if !plan.has_changes() {
        record_pins(state_dir, d);
        return Ok((EXIT_OK, 0));
    }
    if !confirm(o.yes) {
        return Ok((super::EXIT_FAILED, 0));
    }
    let quiet = o.quiet;
    let mut progress = |line: &str| {
        if !quiet {
            println!("{}", crate::terminal::clean(&d.redact(line)));
        }
    };
    let report = reconcile::execute_swarm(engine, d, &plan, &mut progress).await?;
    record_pins(state_dir, d);
    if !quiet {
        println!("Applied revision {} of project {} to the swarm: {} change(s).", d.revision, d.project, report.done);
    }
    Ok((EXIT_OK, report.done))
}

/// Notes the digest each tag of the applied revision `d` (pinned) runs, for `hawser rollback`
/// (best effort: without it a rollback resolves the tags anew, and says so).
fn record_pins(state_dir: &Path, d: &DesiredState) {
    let pins: BTreeMap<String, String> = d
        .declared_images
        .iter()
        .filter_map(|(name, tag)| d.containers.get(name).map(|c| (tag.clone(), c.spec.image.clone())))
        .filter(|(_, pinned)| pinned.contains('@'))
        .collect();
    let mut record = ImageRecord::load(state_dir, &d.project);
    if pins.is_empty() || record.swarm_pins.get(&d.revision) == Some(&pins) {
        return;
    }
    record.swarm_pins.insert(d.revision.clone(), pins);
    if let Err(e) = record.save(state_dir, &d.project) {
        eprintln!("warning: cannot record the digests of revision {} for rollback: {e}", d.revision);
    }
}

/// Per service: desired and running tasks, and the nodes they run on.
pub(super) async fn status(host: &str, project: Option<&str>, output: Output) -> Result<u8, CliError> {
    let engine = SwarmEngine::connect(host).await?;
    let observed = engine.observe().await?;
    #[derive(serde::Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Row<'a> {
        project: &'a str,
        kind: &'static str,
        name: &'a str,
        revision: &'a str,
        desired_tasks: u64,
        running_tasks: u64,
        nodes: Vec<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        update: Option<String>,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        failing: Vec<String>,
    }
    let mut rows: Vec<Row> = Vec::new();
    for s in &observed.services {
        let Some(o) = &s.owner else { continue };
        if project.is_some_and(|p| p != o.project) {
            continue;
        }
        let mut nodes: Vec<String> = s
            .tasks
            .iter()
            .filter(|t| t.desired_state == "running" && t.state == "running")
            .map(|t| t.node.clone())
            .collect();
        nodes.sort();
        nodes.dedup();
        rows.push(Row {
            project: &o.project,
            kind: "Service",
            name: &s.name,
            revision: &o.revision,
            desired_tasks: s.replicas.unwrap_or(s.desired_tasks),
            running_tasks: s.running_tasks,
            nodes,
            update: s.update.as_ref().map(|u| format!("{:?}", u.state).to_lowercase()),
            failing: diff::swarm::failing_tasks(s, 3),
        });
    }
    rows.sort_by(|a, b| (a.project, a.name).cmp(&(b.project, b.name)));
    if output == Output::Json {
        println!("{}", serde_json::to_string_pretty(&rows).expect("rows serialize"));
        return Ok(EXIT_OK);
    }
    println!("{:<16} {:<10} {:<24} {:<8} {:<24} REVISION", "PROJECT", "KIND", "NAME", "TASKS", "NODES");
    for r in rows {
        let tasks = format!("{}/{}", r.running_tasks, r.desired_tasks);
        // Names and labels come from the cluster, where anyone may have put anything.
        println!(
            "{:<16} {:<10} {:<24} {:<8} {:<24} {}",
            clean_line(r.project),
            r.kind,
            clean_line(r.name),
            tasks,
            clean_line(&r.nodes.join(",")),
            short_revision(r.revision)
        );
        for f in &r.failing {
            println!("    failing {}", clean_line(f));
        }
    }
    Ok(EXIT_OK)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::desired::{self, ManifestFile};

    fn desired(images: &[&str]) -> DesiredState {
        let text: Vec<String> = images
            .iter()
            .enumerate()
            .map(|(i, image)| format!("kind: Container\nmetadata: {{name: s{i}}}\nspec: {{image: \"{image}\"}}\n"))
            .collect();
        let files = [ManifestFile { path: "stack.yaml".into(), text: text.join("---\n") }];
        desired::load("p", "rev", &files).unwrap_or_else(|d| panic!("{d}"))
    }

    fn source(path: &str) -> SourceArgs {
        SourceArgs { source: path.into(), sel: Default::default() }
    }

    #[tokio::test]
    async fn the_tags_a_source_pinned_are_asked_for_early_next_time_and_forgotten_off_the_swarm() {
        let state = tempfile::tempdir().unwrap();
        // Nothing answers there: a lookup begun is aborted, or fails unseen.
        let sock = state.path().join("docker.sock");
        std::fs::write(&sock, "").unwrap();
        let host = &format!("unix://{}", sock.display());
        let first = Early::begin(state.path(), host, &source("/repo"), None);
        assert!(!first.was_swarm() && first.pins.is_empty());
        first.remember(
            state.path(),
            &desired(&[
                "reg/a:1",
                "reg/b@sha256:0000000000000000000000000000000000000000000000000000000000000000",
                "reg/a:1",
            ]),
        );

        let again = Early::begin(state.path(), host, &source("/repo"), None);
        assert!(again.was_swarm());
        assert_eq!(again.remembered, BTreeSet::from(["reg/a:1".to_string()]), "pinned by digest: not looked up");
        assert!(!again.pins.is_empty());
        // Another source, another manager, or a target known not to be a swarm: nothing early.
        assert!(!Early::begin(state.path(), host, &source("/other"), None).was_swarm());
        assert!(!Early::begin(state.path(), "unix:///other.sock", &source("/repo"), None).was_swarm());
        assert!(Early::begin(state.path(), host, &source("/repo"), Some(Target::Docker)).pins.is_empty());

        again.forget(state.path());
        assert!(!Early::begin(state.path(), host, &source("/repo"), None).was_swarm());
    }
}
