//! `hawser render`: the normalized desired state, as hawser understood it; touches no engine.

use super::load::{load, Needs};
use super::{Cli, CliError, RenderArgs, RenderOutput, EXIT_OK};
use crate::desired::render;
use std::path::Path;

pub(super) fn run(cli: &Cli, state_dir: &Path, a: &RenderArgs) -> Result<u8, CliError> {
    let d = load(cli, &a.src, state_dir, Needs { secrets: false, warnings: true })?;
    match a.output {
        RenderOutput::Yaml => print!("{}", render::to_yaml(&d)),
        RenderOutput::Json => println!("{}", render::to_json(&d)),
    }
    Ok(EXIT_OK)
}
