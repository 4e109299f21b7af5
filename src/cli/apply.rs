//! `hawser apply`: converge the target to a revision (or to a saved plan of one).

use super::early::Early;
use super::load::{load, Needs};
use super::plan::warn;
use super::saved_plan::SavedPlan;
use super::{color, ApplyArgs, Cli, CliError, Selection, SourceArgs, EXIT_FAILED, EXIT_OK};
use crate::desired::DesiredState;
use crate::diff;
use crate::reconcile;
use crate::runtime::deployment::{Deployment, Inspect, Planned};
use crate::runtime::targets::Targets;
use std::io::{IsTerminal, Write};
use std::path::Path;

pub(super) async fn run(cli: &Cli, state_dir: &Path, a: &ApplyArgs) -> Result<u8, CliError> {
    let saved = a.plan.as_deref().map(SavedPlan::read).transpose()?;
    let src = match &saved {
        Some(sp) => SourceArgs {
            source: a.source.clone().unwrap_or_else(|| sp.source.clone()),
            sel: Selection {
                git_ref: a.sel.git_ref.clone().or_else(|| sp.git_ref.clone()),
                path: a.sel.path.clone().or_else(|| sp.path.clone()),
                project: a.sel.project.clone().or_else(|| sp.project.clone()),
            },
        },
        None => SourceArgs { source: a.source.clone().unwrap_or_default(), sel: a.sel.clone() },
    };
    let targets = Targets::new(&cli.host, state_dir);
    let early = Early::begin(state_dir, &targets, &src, cli.target).await;
    let d = load(cli, &src, state_dir, Needs { secrets: true, warnings: true })?;
    if let Some(sp) = &saved {
        sp.check_revision(&d)?;
    }
    let opts = ApplyOptions {
        prune: saved.as_ref().map_or(a.prune, |sp| sp.prune),
        take_over: saved.as_ref().map_or(a.take_over, |sp| sp.take_over),
        yes: a.yes,
        allow_empty: a.allow_empty,
        quiet: cli.quiet,
        saved: saved.as_ref(),
    };
    let run = RunOptions {
        lock_timeout: a.lock_timeout.map(|t| t.as_std()),
        parallel: a.parallel,
        keep_images: a.keep_images,
    };
    apply_revision(&targets, state_dir, &src.source, &d, early, &opts, &run).await
}

pub(super) struct ApplyOptions<'a> {
    pub prune: bool,
    pub take_over: bool,
    pub yes: bool,
    pub allow_empty: bool,
    pub quiet: bool,
    pub saved: Option<&'a SavedPlan>,
}

/// How `apply` and `rollback` drive the target around the apply itself.
pub(super) struct RunOptions {
    pub lock_timeout: Option<std::time::Duration>,
    pub parallel: usize,
    pub keep_images: usize,
}

/// The steps `apply` and `rollback` share: open the target, take the project's lock, apply,
/// record the reconcile in the history and, after success, what it ran (cleaning up old images).
pub(super) async fn apply_revision(
    targets: &Targets,
    state_dir: &Path,
    source: &str,
    d: &DesiredState,
    early: Early,
    opts: &ApplyOptions<'_>,
    run: &RunOptions,
) -> Result<u8, CliError> {
    let target = targets.open(d.target, d.host_limits).await?;
    let _lock = crate::lock::acquire(state_dir, &d.project, run.lock_timeout, &mut |m: &str| eprintln!("{m}"))?;
    let started = std::time::Instant::now();
    early.remember(state_dir, d, target.as_ref());
    let result = apply(target.as_ref(), d, opts, early, run.parallel).await;
    record_apply(state_dir, source, d, &result, started);
    let (code, _, applied) = result.map_err(|e| e.redacted(d))?;
    if let Some(applied) = applied {
        for r in target.applied(&applied, state_dir, run.keep_images).await {
            if !opts.quiet {
                println!("Removed image {r} (no container uses it; {} newest kept).", run.keep_images);
            }
        }
    }
    Ok(code)
}

/// The exit code, the changes made, and (when it went through) the desired state applied.
type Applied = (u8, usize, Option<DesiredState>);

async fn apply(
    target: &dyn Deployment,
    d: &DesiredState,
    o: &ApplyOptions<'_>,
    early: Early,
    parallel: usize,
) -> Result<Applied, CliError> {
    let opts = reconcile::Options { prune: o.prune, allow_empty: o.allow_empty, take_over: o.take_over };
    let Planned { plan, desired, fingerprint, warnings } =
        reconcile::plan(target as &dyn Inspect, d, &opts, early.pins).await?;
    warn(&warnings);
    if let Some(sp) = o.saved {
        sp.check_unchanged(&fingerprint, &plan, &d.project)?;
    }
    if !o.quiet {
        print!("{}", d.masked.redact(&diff::render::text(&plan, color())));
    }
    reconcile::check(&plan, &desired, &opts)?;
    if !plan.has_changes() {
        return Ok((EXIT_OK, 0, Some(desired)));
    }
    if !confirm(o.yes) {
        return Ok((EXIT_FAILED, 0, None));
    }
    let quiet = o.quiet;
    let mut progress = |line: &str| {
        if !quiet {
            println!("{}", crate::terminal::clean(&d.redact(line)));
        }
    };
    let report = reconcile::execute(target, &desired, &plan, parallel, &mut progress).await?;
    if !quiet {
        println!("Applied revision {} of project {}: {} change(s).", d.revision, d.project, report.done);
    }
    Ok((EXIT_OK, report.done, Some(desired)))
}

/// One row in the history for a CLI apply (best effort: no history is no reason to fail).
fn record_apply(
    state_dir: &Path,
    source: &str,
    d: &DesiredState,
    result: &Result<Applied, CliError>,
    started: std::time::Instant,
) {
    let (outcome, actions, error) = match result {
        Ok((EXIT_OK, 0, _)) => ("unchanged", 0, None),
        Ok((EXIT_OK, n, _)) => ("changed", *n, None),
        Ok(_) => return, // declined at the prompt: nothing happened
        Err(e) => (if e.is_refusal() { "refused" } else { "failed" }, 0, Some(d.redact(&e.to_string()))),
    };
    let took = started.elapsed();
    let now = crate::display::now_unix();
    let entry = crate::history::Entry {
        started_unix: now - took.as_secs_f64(),
        source: source.to_string(),
        project: Some(d.project.clone()),
        revision: Some(d.revision.clone()),
        trigger: "apply".into(),
        actions: actions as u64,
        outcome: outcome.into(),
        duration_ms: took.as_millis() as u64,
        error,
    };
    if let Ok(h) = crate::history::History::open(state_dir) {
        let _ = h.record(&entry);
    }
}

/// Asks on a terminal whether to apply, unless `yes`; elsewhere there is nobody to ask.
fn confirm(yes: bool) -> bool {
    if yes || !std::io::stdin().is_terminal() || !std::io::stdout().is_terminal() {
        return true;
    }
    print!("Apply these changes? [y/N] ");
    let _ = std::io::stdout().flush();
    let mut answer = String::new();
    let _ = std::io::stdin().read_line(&mut answer);
    let ok = matches!(answer.trim(), "y" | "Y" | "yes");
    if !ok {
        println!("Nothing was changed.");
    }
    ok
}
