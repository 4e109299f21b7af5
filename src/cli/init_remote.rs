//! `hawser init-remote PATH`: a bare repository on the host that deploys on push. Its
//! `pre-receive` hook validates the pushed commit of the deployed branch and rejects the push
//! with the FILE:LINE errors; its `post-receive` hook applies it, so the pusher sees the plan and
//! the outcome as `remote:` lines, as from a platform.

use super::{Cli, CliError, InitRemoteArgs, EXIT_OK};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub(super) enum RemoteError {
    #[error("cannot create {}: {}", .path.display(), .source.message())]
    Init { path: PathBuf, source: git2::Error },
    #[error("cannot find the hawser binary: {0}")]
    Exe(std::io::Error),
    #[error("cannot write {}: {source}", .path.display())]
    Write { path: PathBuf, source: std::io::Error },
}

pub(super) fn run(cli: &Cli, state_dir: &Path, a: &InitRemoteArgs) -> Result<u8, CliError> {
    init(&a.path, a.project.as_deref(), &a.branch, cli, state_dir)?;
    Ok(EXIT_OK)
}

/// Quotes a value for a POSIX shell.
fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

fn init(path: &Path, project: Option<&str>, branch: &str, cli: &Cli, state_dir: &Path) -> Result<(), RemoteError> {
    let mut opts = git2::RepositoryInitOptions::new();
    opts.bare(true).initial_head(branch).mkpath(true);
    git2::Repository::init_opts(path, &opts)
        .map_err(|source| RemoteError::Init { path: path.to_path_buf(), source })?;
    let exe = std::env::current_exe().map_err(RemoteError::Exe)?;
    let exe = sh_quote(&exe.display().to_string());
    let mut env = format!(
        "export DOCKER_HOST={}\nexport HAWSER_STATE_DIR={}\n",
        sh_quote(&cli.host),
        sh_quote(&state_dir.display().to_string())
    );
    // A target chosen for the whole command line (`--target`) holds for the deploys too.
    if let Some(t) = cli.target {
        env.push_str(&format!("export HAWSER_TARGET={}\n", sh_quote(t.as_str())));
    }
    if let Some(p) = &cli.policy {
        let p = std::fs::canonicalize(p).unwrap_or_else(|_| p.clone());
        env.push_str(&format!("export HAWSER_POLICY={}\n", sh_quote(&p.display().to_string())));
    }
    let project_arg = project.map(|p| format!(" --project {}", sh_quote(p))).unwrap_or_default();
    let branch_ref = sh_quote(&format!("refs/heads/{branch}"));
    let pre = format!(
        r#"#!/bin/sh
# Installed by `hawser init-remote`: a push to {branch} whose manifests are invalid is rejected.
{env}zero=0000000000000000000000000000000000000000
status=0
while read old new ref; do
  [ "$ref" = {branch_ref} ] || continue
  [ "$new" = "$zero" ] && continue
  echo "hawser: validating $new"
  {exe} validate "$GIT_DIR" --ref "$new"{project_arg} 2>&1 || status=1
done
[ $status = 0 ] || echo "hawser: push rejected; nothing was deployed"
exit $status
"#
    );
    let post = format!(
        r#"#!/bin/sh
# Installed by `hawser init-remote`: a push to {branch} is deployed, and the pusher sees how.
{env}zero=0000000000000000000000000000000000000000
while read old new ref; do
  [ "$ref" = {branch_ref} ] || continue
  [ "$new" = "$zero" ] && continue
  echo "hawser: deploying $new"
  if {exe} apply "$GIT_DIR" --ref "$new" --yes --prune{project_arg} 2>&1; then
    echo "hawser: deployed $new"
  else
    echo "hawser: deploy of $new FAILED; what worked before keeps running"
  fi
done
exit 0
"#
    );
    let hooks = path.join("hooks");
    std::fs::create_dir_all(&hooks).map_err(|source| RemoteError::Write { path: hooks.clone(), source })?;
    for (name, text) in [("pre-receive", pre), ("post-receive", post)] {
        let f = hooks.join(name);
        let write = |source| RemoteError::Write { path: f.clone(), source };
        std::fs::write(&f, text).map_err(write)?;
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o755)).map_err(write)?;
    }
    println!("Created {} (deploys branch {branch}). Push to it, for example:", path.display());
    println!("  git remote add prod {}", path.display());
    println!("  git push prod {branch}");
    Ok(())
}
