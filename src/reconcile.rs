//! One reconcile of a project: refresh `pull: always` images, observe, plan, refuse what must not
//! be applied, execute. Shared by `hawser apply` (which adds printing and confirmation) and
//! `hawser serve` (which adds triggers, backoff and history).

use crate::apply::{self, Report};
use crate::desired::DesiredState;
use crate::diff::{self, DiffOptions, Op, Plan};
use crate::observed::swarm::SwarmState;
use crate::observed::ObservedState;
use crate::runtime::swarm::{EarlyPins, SwarmEngine};
use crate::runtime::{Engine, EngineError};
use std::borrow::Cow;

#[derive(Clone, Copy, Debug, Default)]
pub struct Options {
    pub prune: bool,
    pub allow_empty: bool,
    /// See `DiffOptions::take_over`.
    pub take_over: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// A swarm project reached the one-host path (or the other way round): never applied.
    #[error("the project's target is `{0}`, not this engine's kind")]
    Target(String),
    #[error("Image {name}: {source}")]
    Pull { name: String, source: EngineError },
    /// Conflicts make the whole revision refused.
    #[error("refusing to apply: the plan has conflicts, and a revision is applied whole or not at all:\n  {}", .0.join("\n  "))]
    Conflicts(Vec<String>),
    #[error("refusing to remove every managed object of project `{project}` ({removes}); pass --allow-empty if that is intended")]
    WouldEmpty { project: String, removes: usize },
    #[error("revision {revision} was not fully applied ({done} done, {failed} failed); what worked before keeps running:\n  {}", .lines.join("\n  "))]
    Failed { revision: String, done: usize, failed: usize, lines: Vec<String>, rolled_back: bool },
}

/// Observes the host and computes the plan (`pull: always` digests were resolved with the
/// desired state, see `runtime::registry`), with the desired state it is to be executed
/// against (see `diff::effective`).
pub async fn plan<'d, E: Engine>(
    engine: &E,
    d: &'d DesiredState,
    opts: &Options,
) -> Result<(ObservedState, Plan, Cow<'d, DesiredState>), ReconcileError> {
    if d.target == crate::desired::Target::Swarm {
        // A swarm project must never be applied to one host as if it were one.
        return Err(ReconcileError::Target(d.target.as_str().to_string()));
    }
    let observed = engine.observe().await?;
    let effective = diff::effective(d, &observed);
    let mut plan = diff::diff(&effective, &observed, &DiffOptions { prune: opts.prune, take_over: opts.take_over });
    plan.mask(&d.masked);
    Ok((observed, plan, effective))
}

/// What in a plan forbids applying it at all.
pub fn check(plan: &Plan, d: &DesiredState, opts: &Options) -> Result<(), ReconcileError> {
    let conflicts: Vec<String> = plan.conflicts().map(|a| format!("{} {}: {}", a.kind, a.name, a.cause)).collect();
    if !conflicts.is_empty() {
        return Err(ReconcileError::Conflicts(conflicts));
    }
    let removes = plan.actions.iter().filter(|a| matches!(a.op, Op::Remove { .. })).count();
    let others = plan.actions.len() - removes;
    if removes > 0 && others == 0 && !opts.allow_empty {
        return Err(ReconcileError::WouldEmpty { project: d.project.clone(), removes });
    }
    Ok(())
}

/// Executes a checked plan; `Err` names every action that failed.
pub async fn execute<E: Engine>(
    engine: &E,
    d: &DesiredState,
    plan: &Plan,
    progress: &mut dyn FnMut(&str),
) -> Result<Report, ReconcileError> {
    // The repository files containers mount are on the host before any container is made.
    if let Err(e) = apply::repo_files::materialize(d) {
        return Err(ReconcileError::Failed {
            revision: d.revision.clone(),
            done: 0,
            failed: 1,
            lines: vec![e],
            rolled_back: false,
        });
    }
    let report = apply::execute(engine, d, plan, progress).await;
    if report.ok() {
        apply::repo_files::collect(d);
        Ok(report)
    } else {
        Err(failed(d, &report))
    }
}

fn failed(d: &DesiredState, report: &Report) -> ReconcileError {
    ReconcileError::Failed {
        revision: d.revision.clone(),
        done: report.done,
        failed: report.failures.len(),
        lines: report.failures.iter().map(|f| d.redact(&format!("{} {}: {}", f.kind, f.name, f.message))).collect(),
        rolled_back: report.failures.iter().any(|f| f.rolled_back),
    }
}

/// How long a converge's phases took, for the service's metrics.
#[derive(Clone, Copy, Debug, Default)]
pub struct Timings {
    /// Observing (and pinning images) and diffing.
    pub plan: Option<std::time::Duration>,
    /// Executing the plan, when it had changes.
    pub apply: Option<std::time::Duration>,
}

/// Plan, check and execute in one go (the service's reconcile).
pub async fn converge<E: Engine>(
    engine: &E,
    d: &DesiredState,
    opts: &Options,
    progress: &mut dyn FnMut(&str),
    timings: &mut Timings,
) -> Result<(Plan, Report), ReconcileError> {
    let started = std::time::Instant::now();
    let (_, plan, d) = plan(engine, d, opts).await?;
    timings.plan = Some(started.elapsed());
    check(&plan, &d, opts)?;
    if !plan.has_changes() {
        return Ok((plan, Report::default()));
    }
    let started = std::time::Instant::now();
    let report = execute(engine, &d, &plan, progress).await;
    timings.apply = Some(started.elapsed());
    Ok((plan, report?))
}

/// Swarm: every image pinned to the digest its tag names now, asked of the manager as `docker
/// service create` does (its insecure registries and mirrors apply), so every node runs the
/// same bits. One that can't be resolved keeps its tag (and a service of it the digest it
/// runs); the warnings say which.
/// A lookup begun early (`early`) is used instead of a new one.
pub async fn pin_swarm_images(
    engine: &SwarmEngine,
    d: &DesiredState,
    mut early: EarlyPins,
) -> (DesiredState, Vec<String>) {
    let mut d = d.clone();
    let lookups = swarm_tags(&d).into_iter().map(|t| {
        let begun = early.take(&t);
        async move {
            let r = match begun {
                Some(lookup) => match lookup.await {
                    Ok(r) => r,
                    Err(_) => engine.resolve_digest(&t).await,
                },
                None => engine.resolve_digest(&t).await,
            };
            (t, r)
        }
    });
    let mut warnings = Vec::new();
    for (tag, r) in futures_util::future::join_all(lookups).await {
        match r {
            Ok(digest) => {
                let pinned = format!("{}@{digest}", crate::observed::normalize_reference(&tag));
                for c in d.containers.values_mut().filter(|c| c.spec.image == tag) {
                    c.spec.image = pinned.clone();
                    d.declared_images.insert(c.name.clone(), tag.clone());
                }
            }
            Err(e) => warnings
                .push(format!("image {tag} is not pinned to a digest ({e}); the nodes resolve the tag themselves")),
        }
    }
    (d, warnings)
}

/// Swarm: the image tags to pin to digests (an image given by digest already is not looked up).
pub fn swarm_tags(d: &DesiredState) -> std::collections::BTreeSet<String> {
    d.containers.values().filter(|c| !c.spec.image.contains('@')).map(|c| c.spec.image.clone()).collect()
}

/// Swarm: pins the images and observes the cluster (at once: they are independent round
/// trips), then computes the plan, with the desired state it is to be executed against (see
/// `diff::swarm::effective`) and the pinning's warnings.
pub async fn plan_swarm(
    engine: &SwarmEngine,
    d: &DesiredState,
    opts: &Options,
    early: EarlyPins,
) -> Result<(SwarmState, Plan, DesiredState, Vec<String>), ReconcileError> {
    // Whether it is a manager at all is asked alongside: its answer wins over the others'.
    let (manager, (pinned, warnings), observed) =
        tokio::join!(engine.check(), pin_swarm_images(engine, d, early), engine.observe());
    manager?;
    let observed = observed?;
    let effective = diff::swarm::effective(&pinned, &observed).into_owned();
    let mut plan =
        diff::swarm::diff(&effective, &observed, &DiffOptions { prune: opts.prune, take_over: opts.take_over });
    plan.mask(&d.masked);
    Ok((observed, plan, effective, warnings))
}

/// Swarm: executes a checked plan; `Err` names every action that failed.
pub async fn execute_swarm(
    engine: &SwarmEngine,
    d: &DesiredState,
    plan: &Plan,
    progress: &mut dyn FnMut(&str),
) -> Result<Report, ReconcileError> {
    let report = apply::swarm::execute(engine, d, plan, progress).await;
    if report.ok() {
        Ok(report)
    } else {
        Err(failed(d, &report))
    }
}

/// Swarm: pin, plan, check and execute in one go (the service's reconcile).
pub async fn converge_swarm(
    engine: &SwarmEngine,
    d: &DesiredState,
    opts: &Options,
    progress: &mut dyn FnMut(&str),
    timings: &mut Timings,
) -> Result<(Plan, Report), ReconcileError> {
    let started = std::time::Instant::now();
    let (_, plan, d, warnings) = plan_swarm(engine, d, opts, EarlyPins::default()).await?;
    timings.plan = Some(started.elapsed());
    for w in warnings {
        tracing::warn!("{w}");
    }
    check(&plan, &d, opts)?;
    if !plan.has_changes() {
        return Ok((plan, Report::default()));
    }
    let started = std::time::Instant::now();
    let report = execute_swarm(engine, &d, &plan, progress).await;
    timings.apply = Some(started.elapsed());
    Ok((plan, report?))
}
