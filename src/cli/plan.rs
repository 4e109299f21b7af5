//! `hawser plan`: the dry-run diff report, read-only against the target.

use super::early::Early;
use super::load::{load, Needs};
use super::saved_plan::SavedPlan;
use super::{color, Cli, CliError, Output, PlanArgs, EXIT_CHANGES, EXIT_OK};
use crate::desired::MaskedValues;
use crate::diff::{self, Plan};
use crate::reconcile;
use crate::runtime::targets::Targets;
use std::path::Path;

pub(super) async fn run(cli: &Cli, state_dir: &Path, a: &PlanArgs) -> Result<u8, CliError> {
    let targets = Targets::new(&cli.host, state_dir);
    let early = Early::begin(state_dir, &targets, &a.src, cli.target).await;
    let d = load(cli, &a.src, state_dir, Needs { secrets: true, warnings: false })?;
    let target = targets.open(d.target, d.host_limits).await?;
    early.remember(state_dir, &d, target.as_ref());
    let opts = reconcile::Options { prune: a.prune, take_over: a.take_over, allow_empty: false };
    let planned = reconcile::plan(target.as_ref(), &d, &opts, early.pins).await?;
    warn(&planned.warnings);
    if let Some(file) = &a.out {
        // The plan names the digests the tags were pinned to: applying it later pins again, and
        // a tag moved since makes the plan stale, so what is applied is what was reviewed.
        SavedPlan::new(&a.src, a.prune, a.take_over, planned.fingerprint.clone(), &planned.plan).write(file)?;
    }
    print_plan(&planned.plan, a.output, &d.masked);
    Ok(if a.exit_code && planned.plan.has_changes() { EXIT_CHANGES } else { EXIT_OK })
}

pub(super) fn warn(warnings: &[String]) {
    for w in warnings {
        eprintln!("warning: {w}");
    }
}

/// The plan as the user asked for it. `Plan::mask` hid the host's values in fields and diffs;
/// a name or a reference made from one (an image named from `${TOKEN}`) is hidden here, where
/// it is shown, since the executor needs the plan's names as they are.
fn print_plan(plan: &Plan, output: Output, masked: &MaskedValues) {
    match output {
        Output::Json => {
            let mut v = serde_json::to_value(plan).expect("plans serialize");
            masked.redact_json(&mut v);
            println!("{}", serde_json::to_string_pretty(&v).expect("values serialize"))
        }
        Output::Markdown => print!("{}", masked.redact(&diff::render::markdown(plan))),
        Output::Text => print!("{}", masked.redact(&diff::render::text(plan, color()))),
    }
}
