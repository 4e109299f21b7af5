//! The command line (contract section 1): one file per command, each with the order of its
//! steps, what it prints and its exit codes. The work itself lives in the library modules.

mod apply;
mod args;
mod early;
mod history;
mod init_remote;
mod load;
mod logs;
mod plan;
mod render;
mod rollback;
mod saved_plan;
mod serve;
mod status;
mod validate;

pub use args::*;

use crate::desired::{DesiredState, Diagnostics, Policy};
use crate::reconcile;
use crate::runtime::{EngineError, ErrorKind};
use crate::source::{self, SourceError};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

pub const EXIT_OK: u8 = 0;
pub const EXIT_FAILED: u8 = 1;
pub const EXIT_CHANGES: u8 = 2;
pub const EXIT_INVALID: u8 = 3;

async fn dispatch(cli: &Cli, state_dir: &Path) -> Result<u8, CliError> {
    match &cli.command {
        Command::Validate(a) => validate::run(cli, state_dir, a),
        Command::Render(a) => render::run(cli, state_dir, a),
        Command::Plan(a) => plan::run(cli, state_dir, a).await,
        Command::Apply(a) => apply::run(cli, state_dir, a).await,
        Command::Rollback(a) => rollback::run(cli, state_dir, a).await,
        Command::Serve(a) => serve::run(cli, state_dir, a).await,
        Command::History(a) => history::run(state_dir, a),
        Command::InitRemote(a) => init_remote::run(cli, state_dir, a),
        Command::Status(a) => status::run(cli, state_dir, a).await,
        Command::Logs(a) => logs::run(cli, state_dir, a).await,
    }
}

fn size_limits(cli: &Cli) -> source::SizeLimits {
    source::SizeLimits { manifest: cli.max_manifest_size.0, revision: cli.max_revision_size.0 }
}

pub fn state_dir(flag: Option<PathBuf>) -> PathBuf {
    if let Some(d) = flag {
        return d;
    }
    if nix_is_root() {
        return PathBuf::from("/var/lib/hawser");
    }
    let base = std::env::var_os("XDG_STATE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state")))
        .unwrap_or_else(|| PathBuf::from("."));
    base.join("hawser")
}

fn nix_is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// Errors that end a command; each maps to an exit code.
#[derive(Debug, thiserror::Error)]
enum CliError {
    #[error("{0}")]
    Invalid(Diagnostics),
    #[error(transparent)]
    Source(SourceError),
    /// The revision may not be applied here (its signature): like invalid input, exit 3.
    #[error("{0}")]
    Refused(String),
    #[error(transparent)]
    Reconcile(reconcile::ReconcileError),
    #[error("{0}{hint}", hint = engine_hint(.0))]
    Engine(EngineError),
    #[error(transparent)]
    Lock(#[from] crate::lock::LockError),
    #[error(transparent)]
    SavedPlan(#[from] saved_plan::SavedPlanError),
    #[error(transparent)]
    History(#[from] crate::history::HistoryError),
    #[error("reading the history: {0}")]
    HistoryRead(#[from] rusqlite::Error),
    #[error(transparent)]
    Serve(#[from] crate::serve::ServeError),
    #[error(transparent)]
    Remote(#[from] init_remote::RemoteError),
    /// An error with the revision's secrets and host values taken out of its text.
    #[error("{0}")]
    Redacted(String),
}

impl CliError {
    /// The error with no secret and no value of hawser's environment in its text.
    fn redacted(self, d: &DesiredState) -> CliError {
        match self {
            CliError::Invalid(_) | CliError::Source(_) => self,
            CliError::Refused(m) => CliError::Refused(d.redact(&m)),
            other => CliError::Redacted(d.redact(&other.to_string())),
        }
    }

    /// Whether hawser refused the revision as a whole (rather than failed applying it).
    fn is_refusal(&self) -> bool {
        matches!(
            self,
            CliError::Reconcile(reconcile::ReconcileError::Conflicts(_) | reconcile::ReconcileError::WouldEmpty { .. })
        )
    }
}

fn engine_hint(e: &EngineError) -> &'static str {
    match e.kind {
        ErrorKind::Unavailable => {
            "\nhint: is the engine running there? Point hawser at it with --host or DOCKER_HOST \
             (this project's own engine: scripts/engine-up, DOCKER_HOST=unix:///run/hawser-engine/docker.sock)"
        }
        _ => "",
    }
}

impl From<SourceError> for CliError {
    fn from(e: SourceError) -> Self {
        match e {
            SourceError::Invalid(d) => CliError::Invalid(d),
            e @ SourceError::Signature { .. } => CliError::Refused(e.to_string()),
            other => CliError::Source(other),
        }
    }
}

impl From<reconcile::ReconcileError> for CliError {
    fn from(e: reconcile::ReconcileError) -> Self {
        match e {
            reconcile::ReconcileError::Engine(e) => CliError::Engine(e),
            reconcile::ReconcileError::Lock(e) => CliError::Lock(e),
            other => CliError::Reconcile(other),
        }
    }
}

impl From<EngineError> for CliError {
    fn from(e: EngineError) -> Self {
        CliError::Engine(e)
    }
}

pub fn run(cli: Cli) -> ExitCode {
    init_logging(&cli);
    let rt = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(EXIT_FAILED);
        }
    };
    let state_dir = state_dir(cli.state_dir.clone());
    let result = rt.block_on(dispatch(&cli, &state_dir));
    match result {
        Ok(code) => ExitCode::from(code),
        Err(CliError::Invalid(d)) => {
            eprintln!("{d}");
            let n = d.0.len();
            eprintln!("error: the desired state has {n} problem{}; nothing was changed", if n == 1 { "" } else { "s" });
            ExitCode::from(EXIT_INVALID)
        }
        Err(CliError::Refused(m)) => {
            eprintln!("error: {}; nothing was changed", crate::terminal::clean(&m.to_string()));
            ExitCode::from(EXIT_INVALID)
        }
        Err(e) => {
            eprintln!("error: {}", crate::terminal::clean(&e.to_string()));
            ExitCode::from(EXIT_FAILED)
        }
    }
}

fn init_logging(cli: &Cli) {
    let default = if cli.quiet {
        "error"
    } else {
        match cli.verbose {
            0 => "warn",
            1 => "info",
            2 => "debug",
            _ => "trace",
        }
    };
    // The engine client logs request and response bodies (which hold secretEnv values) at
    // debug and trace: it stays at info unless HAWSER_LOG says otherwise explicitly.
    let cap = if matches!(default, "warn" | "error") { default } else { "info" };
    // Pull and build output is shown on a terminal (on stderr), not in plain logs.
    let progress = if !cli.quiet && std::io::stderr().is_terminal() { "info" } else { default };
    let default = format!("{default},bollard={cap},hyper={cap},hyper_util={cap},hawser::progress={progress}");
    let filter = tracing_subscriber::EnvFilter::try_from_env("HAWSER_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    let _ = match cli.log_format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

/// Credentials for remote sources named on the command line.
fn git_auth(cli: &Cli) -> source::GitAuth {
    source::GitAuth {
        ssh_key_file: cli.ssh_key.clone(),
        known_hosts: cli.known_hosts.clone(),
        username: cli.git_username.clone(),
        token_file: cli.git_token_file.clone(),
    }
}

fn policy(cli: &Cli) -> Result<Policy, CliError> {
    let default_file = PathBuf::from("/etc/hawser/policy.toml");
    let file = cli.policy.clone().or_else(|| default_file.exists().then_some(default_file));
    let mut policy = match file {
        Some(f) => Policy::from_file(&f).map_err(CliError::Invalid)?,
        None => Policy::default(),
    };
    if let Some(sock) = cli.host.strip_prefix("unix://") {
        policy.engine_sockets.push(PathBuf::from(sock));
    }
    Ok(policy)
}

/// Colors on a terminal, unless NO_COLOR is set (no-color.org).
fn color() -> bool {
    std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none()
}
