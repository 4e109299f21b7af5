//! `hawser logs NAME`: a container's output, from the target `--target` names.

use super::{Cli, CliError, LogsArgs, EXIT_OK};
use crate::runtime::targets::Targets;
use std::path::Path;

pub(super) async fn run(cli: &Cli, state_dir: &Path, a: &LogsArgs) -> Result<u8, CliError> {
    let target = Targets::new(&cli.host, state_dir).open(cli.target.unwrap_or_default(), Default::default()).await?;
    target.logs(&a.name, a.tail, a.follow).await?;
    Ok(EXIT_OK)
}
