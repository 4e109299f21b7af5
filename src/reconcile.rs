//! One reconcile of a project, whatever its target: pin images, observe, plan, refuse what must
//! not be applied, execute. Shared by `hawser apply` (which adds printing and confirmation) and
//! `hawser serve` (which adds triggers, backoff and history).

use crate::apply::Report;
use crate::desired::DesiredState;
use crate::diff::{DiffOptions, Op, Plan};
use crate::runtime::deployment::{Deployment, EarlyPins, Inspect, Planned};
use crate::runtime::EngineError;

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
    /// Another apply of the project holds its lock.
    #[error(transparent)]
    Lock(#[from] crate::lock::LockError),
    /// Conflicts make the whole revision refused.
    #[error("refusing to apply: the plan has conflicts, and a revision is applied whole or not at all:\n  {}", .0.join("\n  "))]
    Conflicts(Vec<String>),
    #[error("refusing to remove every managed object of project `{project}` ({removes}); pass --allow-empty if that is intended")]
    WouldEmpty { project: String, removes: usize },
    #[error("revision {revision} was not fully applied ({done} done, {failed} failed); what worked before keeps running:\n  {}", .lines.join("\n  "))]
    Failed { revision: String, done: usize, failed: usize, lines: Vec<String>, rolled_back: bool },
}

/// Pins the images, observes the target and computes the plan (see `Inspect::plan`); it holds
/// only the read-only half of the target, so it changes nothing by construction.
pub async fn plan(
    target: &dyn Inspect,
    d: &DesiredState,
    opts: &Options,
    early: EarlyPins,
) -> Result<Planned, ReconcileError> {
    Ok(target.plan(d, DiffOptions { prune: opts.prune, take_over: opts.take_over }, early).await?)
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
pub async fn execute(
    target: &dyn Deployment,
    d: &DesiredState,
    plan: &Plan,
    parallel: usize,
    progress: &mut dyn FnMut(&str),
) -> Result<Report, ReconcileError> {
    let report = target.execute(d, plan, parallel, progress).await;
    if report.ok() {
        Ok(report)
    } else {
        Err(failed(d, &report))
    }
}

fn failed(d: &DesiredState, report: &Report) -> ReconcileError {
    if let Some(e) = &report.aborted {
        return ReconcileError::Failed {
            revision: d.revision.clone(),
            done: 0,
            failed: 1,
            lines: vec![d.redact(&e.to_string())],
            rolled_back: false,
        };
    }
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

/// Plan, check and execute in one go (the service's reconcile); the plan's warnings are logged.
pub async fn converge(
    target: &dyn Deployment,
    d: &DesiredState,
    opts: &Options,
    progress: &mut dyn FnMut(&str),
    timings: &mut Timings,
) -> Result<(Plan, Report, DesiredState), ReconcileError> {
    let started = std::time::Instant::now();
    let Planned { plan, desired, warnings, .. } = plan(target as &dyn Inspect, d, opts, EarlyPins::default()).await?;
    timings.plan = Some(started.elapsed());
    for w in warnings {
        tracing::warn!("{w}");
    }
    check(&plan, &desired, opts)?;
    if !plan.has_changes() {
        return Ok((plan, Report::default(), desired));
    }
    let started = std::time::Instant::now();
    let report = execute(target, &desired, &plan, PARALLEL, progress).await;
    timings.apply = Some(started.elapsed());
    Ok((plan, report?, desired))
}

/// Engine calls in flight at most, unless `hawser apply --parallel` says otherwise.
pub const PARALLEL: usize = 8;
/// Images kept per Image resource for rollback, unless `hawser apply --keep-images` says otherwise.
pub const KEEP_IMAGES: usize = 3;
