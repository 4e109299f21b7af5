//! Reading a revision for a command: the source as the command line names it, read as the
//! service reads its sources (`source::load_revision`).

use super::{git_auth, policy, size_limits, Cli, CliError, SourceArgs};
use crate::desired::DesiredState;
use crate::source::{self, SourceOptions};
use std::path::Path;

/// What a command needs of the revision besides its desired state.
#[derive(Clone, Copy)]
pub(super) struct Needs {
    /// Its secrets read (to apply or plan it; validating needs none).
    pub secrets: bool,
    /// Its warnings printed here (a plan shows them itself, in each of its forms).
    pub warnings: bool,
}

pub(super) fn load(cli: &Cli, src: &SourceArgs, state_dir: &Path, needs: Needs) -> Result<DesiredState, CliError> {
    let policy = policy(cli)?;
    let opts = SourceOptions {
        git_ref: src.sel.git_ref.clone(),
        path: src.sel.path.clone(),
        project: src.sel.project.clone(),
        allowed_signers: cli.allowed_signers.clone(),
        cache_dir: state_dir.to_path_buf(),
        auth: git_auth(cli),
        deadline: None,
        limits: size_limits(cli),
    };
    let (d, _) = source::load_revision(&src.source, &opts, &policy, cli.target, needs.secrets)?;
    if needs.warnings {
        for w in &d.warnings {
            eprintln!("warning: {w}");
        }
    }
    Ok(d)
}
