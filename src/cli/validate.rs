//! `hawser validate`: parse and check a revision; touches no engine.

use super::load::{load, Needs};
use super::{Cli, CliError, SourceArgs, EXIT_OK};
use crate::terminal::clean_line;
use std::path::Path;

pub(super) fn run(cli: &Cli, state_dir: &Path, src: &SourceArgs) -> Result<u8, CliError> {
    let d = load(cli, src, state_dir, Needs { secrets: false, warnings: true })?;
    if !cli.quiet {
        println!(
            "valid: project {} at revision {}: {} containers, {} networks, {} volumes, {} images",
            d.project,
            d.revision,
            d.containers.len(),
            d.networks.len(),
            d.volumes.len(),
            d.images.len()
        );
        if cli.verbose > 0 {
            for f in &d.skipped {
                println!("skipped (no manifest in it): {}", clean_line(f));
            }
        }
    }
    Ok(EXIT_OK)
}
