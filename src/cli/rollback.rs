//! `hawser rollback --to REV`: an earlier revision's desired state, with the images it ran.

use super::apply::{apply_revision, ApplyOptions, RunOptions};
use super::early::Early;
use super::load::{load, Needs};
use super::{Cli, CliError, RollbackArgs, Selection, SourceArgs};
use crate::runtime::targets::Targets;
use std::path::Path;

pub(super) async fn run(cli: &Cli, state_dir: &Path, a: &RollbackArgs) -> Result<u8, CliError> {
    let src = SourceArgs {
        source: a.source.clone(),
        sel: Selection { git_ref: Some(a.to.clone()), path: a.path.clone(), project: a.project.clone() },
    };
    let mut d = load(cli, &src, state_dir, Needs { secrets: true, warnings: true })?;
    let targets = Targets::new(&cli.host, state_dir);
    // The images that revision ran, as recorded when it was applied; else resolved anew.
    if !targets.open(d.target, d.host_limits).await?.recall(&mut d, state_dir) {
        eprintln!("note: no record of the images revision {} ran; resolving them anew", d.revision);
    }
    let opts = ApplyOptions {
        prune: a.prune,
        take_over: false,
        yes: a.yes,
        allow_empty: false,
        quiet: cli.quiet,
        saved: None,
    };
    let run = RunOptions {
        lock_timeout: None,
        parallel: crate::reconcile::PARALLEL,
        keep_images: crate::reconcile::KEEP_IMAGES,
    };
    apply_revision(&targets, state_dir, &a.source, &d, Early::none(), &opts, &run).await
}
