//! `hawser serve`: the continuous reconcile service, from a config file or one source's flags.

use super::{git_auth, policy, size_limits, Cli, CliError, ServeArgs, EXIT_OK};
use crate::runtime::docker::DockerEngine;
use crate::serve::config::{ServeConfig, SourceConfig};
use std::path::Path;

pub(super) async fn run(cli: &Cli, state_dir: &Path, a: &ServeArgs) -> Result<u8, CliError> {
    let mut cfg = match &a.config {
        Some(f) => ServeConfig::from_file(f).map_err(CliError::Invalid)?,
        None => ServeConfig {
            listen: a.listen.clone(),
            token_file: None,
            host_names: Vec::new(),
            sources: vec![SourceConfig {
                name: None,
                repo: a.source.clone().unwrap_or_default(),
                git_ref: a.sel.git_ref.clone(),
                path: a.sel.path.clone(),
                project: a.sel.project.clone(),
                interval: a.interval,
                fetch_timeout: a.fetch_timeout,
                webhook_secret_file: a.webhook_secret_file.clone(),
                self_heal: !a.no_self_heal,
                prune: true,
                allowed_signers: None,
                auth: Default::default(),
                target: None,
                notify: Vec::new(),
            }],
        },
    };
    if a.token_file.is_some() {
        cfg.token_file = a.token_file.clone();
    }
    cfg.host_names.extend(a.host_names.iter().cloned());
    for s in &mut cfg.sources {
        if s.allowed_signers.is_none() {
            s.allowed_signers = cli.allowed_signers.clone();
        }
        s.auth = s.auth.or(&git_auth(cli));
        s.target = s.target.or(cli.target);
    }
    // Its events tell drift at once. A host of native-target sources needs no Docker engine.
    let engine = match DockerEngine::connect(&cli.host).await {
        Ok(e) => Some(e),
        Err(e) => {
            eprintln!("hawser serve: {e}; only sources with target = \"native\" can be converged");
            None
        }
    };
    crate::serve::run(engine, cli.host.clone(), cfg, state_dir, policy(cli)?, size_limits(cli)).await?;
    Ok(EXIT_OK)
}
