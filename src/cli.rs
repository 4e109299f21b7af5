//! The command line (contract section 1): argument parsing, the order of steps of each command,
//! what is printed, and the exit codes. The work itself lives in the library modules.

use crate::apply;
use crate::desired::{self, DesiredState, Diagnostics, Policy, PullPolicy};
use crate::diff::{self, DiffOptions, Op, Plan};
use crate::observed::ObservedState;
use crate::runtime::docker::DockerEngine;
use crate::runtime::{Engine, EngineRead};
use crate::source::{self, SourceError, SourceOptions};
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

pub const EXIT_OK: u8 = 0;
pub const EXIT_FAILED: u8 = 1;
pub const EXIT_CHANGES: u8 = 2;
pub const EXIT_INVALID: u8 = 3;

#[derive(Parser, Debug)]
#[command(name = "hawser", version, about = "Declarative GitOps reconciler for container hosts")]
pub struct Cli {
    /// Engine endpoint, as the docker CLI's.
    #[arg(long, global = true, env = "DOCKER_HOST", default_value = "unix:///var/run/docker.sock")]
    pub host: String,
    /// Git cache, history and lock.
    #[arg(long, global = true, env = "HAWSER_STATE_DIR")]
    pub state_dir: Option<PathBuf>,
    /// More log output (repeatable).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Only errors.
    #[arg(short, long, global = true)]
    pub quiet: bool,
    #[arg(long, global = true, value_enum, default_value = "text")]
    pub log_format: LogFormat,
    /// Host policy (TOML): what manifests may ask of this host. Default: /etc/hawser/policy.toml if
    /// it exists, else the built-in policy (no privileged, no host network, no dangerous
    /// capabilities, binds only under /srv and /opt, never the engine socket).
    #[arg(long, global = true, env = "HAWSER_POLICY")]
    pub policy: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Clone, Copy, Debug, ValueEnum, PartialEq)]
pub enum Output {
    Text,
    Json,
    Markdown,
}

#[derive(Clone, Copy, Debug, ValueEnum, PartialEq)]
pub enum RenderOutput {
    Yaml,
    Json,
}

#[derive(Args, Debug, Clone)]
pub struct SourceArgs {
    /// A git repository (work tree or bare), a git URL, or a plain directory.
    pub source: String,
    /// The commit, branch or tag to read (default: HEAD, or the remote's default branch).
    #[arg(long = "ref")]
    pub git_ref: Option<String>,
    /// The folder inside the source that holds the manifests.
    #[arg(long)]
    pub path: Option<String>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Parse and check the desired state; touches no engine.
    Validate(SourceArgs),
    /// Print the normalized desired state, as hawser understood it; touches no engine.
    Render {
        #[command(flatten)]
        src: SourceArgs,
        #[arg(long, value_enum, default_value = "yaml")]
        output: RenderOutput,
    },
    /// Dry-run diff report; read-only against the engine.
    Plan {
        #[command(flatten)]
        src: SourceArgs,
        #[arg(long, value_enum, default_value = "text")]
        output: Output,
        /// Exit 2 when the plan has changes.
        #[arg(long)]
        exit_code: bool,
        /// Show removal of undeclared objects as `apply --prune` would.
        #[arg(long)]
        prune: bool,
    },
    /// Converge the host to the revision.
    Apply {
        #[command(flatten)]
        src: SourceArgs,
        /// Remove managed containers and networks that are no longer declared.
        #[arg(long)]
        prune: bool,
        /// Do not ask for confirmation.
        #[arg(long, short = 'y')]
        yes: bool,
        /// Allow a plan that removes every managed object of the project.
        #[arg(long)]
        allow_empty: bool,
        /// Give up when another apply of the project holds the lock this long (default: wait).
        #[arg(long, value_parser = parse_duration)]
        lock_timeout: Option<desired::Duration>,
        /// Engine calls in flight at most.
        #[arg(long, default_value_t = 8)]
        parallel: usize,
    },
    /// Continuous reconcile service.
    Serve {
        #[arg(long)]
        config: Option<PathBuf>,
        source: Option<String>,
    },
    /// Managed objects, revision applied, state.
    Status {
        #[arg(long)]
        project: Option<String>,
        #[arg(long, value_enum, default_value = "text")]
        output: Output,
    },
}

fn parse_duration(s: &str) -> Result<desired::Duration, String> {
    s.parse()
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
    #[error("{0}")]
    Failed(String),
}

impl From<SourceError> for CliError {
    fn from(e: SourceError) -> Self {
        match e {
            SourceError::Invalid(d) => CliError::Invalid(d),
            other => CliError::Source(other),
        }
    }
}

impl From<crate::runtime::EngineError> for CliError {
    fn from(e: crate::runtime::EngineError) -> Self {
        let hint = match e.kind {
            crate::runtime::ErrorKind::Unavailable => {
                "\nhint: is the engine running there? Point hawser at it with --host or DOCKER_HOST \
                 (this project's own engine: scripts/engine-up, DOCKER_HOST=unix:///run/hawser-engine/docker.sock)"
            }
            _ => "",
        };
        CliError::Failed(format!("{e}{hint}"))
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
        Err(e) => {
            eprintln!("error: {e}");
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
    let filter = tracing_subscriber::EnvFilter::try_from_env("HAWSER_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let _ = match cli.log_format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
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

fn load(cli: &Cli, src: &SourceArgs, state_dir: &std::path::Path) -> Result<DesiredState, CliError> {
    let policy = policy(cli)?;
    let opts =
        SourceOptions { git_ref: src.git_ref.clone(), path: src.path.clone(), cache_dir: state_dir.to_path_buf() };
    let snap = source::read(&src.source, &opts)?;
    tracing::info!(project = %snap.project, revision = %snap.revision, files = snap.files.len(), "read source");
    desired::load_with_policy(&snap.project, &snap.revision, &snap.files, &policy).map_err(CliError::Invalid)
}

async fn dispatch(cli: &Cli, state_dir: &std::path::Path) -> Result<u8, CliError> {
    match &cli.command {
        Command::Validate(src) => {
            let d = load(cli, src, state_dir)?;
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
            }
            Ok(EXIT_OK)
        }
        Command::Render { src, output } => {
            let d = load(cli, src, state_dir)?;
            match output {
                RenderOutput::Yaml => print!("{}", desired::render::to_yaml(&d)),
                RenderOutput::Json => println!("{}", desired::render::to_json(&d)),
            }
            Ok(EXIT_OK)
        }
        Command::Plan { src, output, exit_code, prune } => {
            let d = load(cli, src, state_dir)?;
            let engine = DockerEngine::connect(&cli.host).await?;
            let plan = plan(&engine, &d, *prune).await?;
            print_plan(&plan, *output);
            Ok(if *exit_code && plan.has_changes() { EXIT_CHANGES } else { EXIT_OK })
        }
        Command::Apply { src, prune, yes, allow_empty, lock_timeout, parallel } => {
            let d = load(cli, src, state_dir)?;
            let engine = DockerEngine::connect(&cli.host).await?;
            let timeout = lock_timeout.map(|t| t.as_std());
            let mut waiting = |m: &str| eprintln!("{m}");
            let _lock = crate::lock::acquire(state_dir, &d.project, timeout, &mut waiting)
                .map_err(|e| CliError::Failed(e.to_string()))?;
            let limited = apply::limit::Limited::new(&engine, *parallel);
            apply(&limited, &d, *prune, *yes, *allow_empty, cli.quiet).await
        }
        Command::Serve { .. } => Err(CliError::Failed("`hawser serve` is not implemented yet".into())),
        Command::Status { project, output } => {
            let engine = DockerEngine::connect(&cli.host).await?;
            let observed = engine.observe().await?;
            print_status(&observed, project.as_deref(), *output);
            Ok(EXIT_OK)
        }
    }
}

async fn plan<E: EngineRead>(engine: &E, d: &DesiredState, prune: bool) -> Result<Plan, CliError> {
    let observed = engine.observe().await?;
    Ok(diff::diff(d, &observed, &DiffOptions { prune }))
}

fn print_plan(plan: &Plan, output: Output) {
    match output {
        Output::Json => println!("{}", serde_json::to_string_pretty(plan).expect("plans serialize")),
        Output::Markdown => print!("{}", diff::render::markdown(plan)),
        Output::Text => print!("{}", diff::render::text(plan, color())),
    }
}

/// Colors on a terminal, unless NO_COLOR is set (no-color.org).
fn color() -> bool {
    std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none()
}

async fn apply<E: Engine>(
    engine: &E,
    d: &DesiredState,
    prune: bool,
    yes: bool,
    allow_empty: bool,
    quiet: bool,
) -> Result<u8, CliError> {
    // `pull: always` images are refreshed first, so the plan sees the digest they now have.
    for img in d.images.values().filter(|i| i.spec.pull == PullPolicy::Always) {
        engine
            .pull_image(&img.spec.reference)
            .await
            .map_err(|e| CliError::Failed(format!("Image {}: {e}", img.name)))?;
    }
    let plan = plan(engine, d, prune).await?;
    if !quiet {
        print!("{}", diff::render::text(&plan, color()));
    }
    let conflicts: Vec<String> = plan.conflicts().map(|a| format!("{} {}: {}", a.kind, a.name, a.cause)).collect();
    if !conflicts.is_empty() {
        return Err(CliError::Failed(format!(
            "refusing to apply: the plan has conflicts, and a revision is applied whole or not at all:\n  {}",
            conflicts.join("\n  ")
        )));
    }
    let removes = plan.actions.iter().filter(|a| matches!(a.op, Op::Remove { .. })).count();
    let keeps = plan.actions.iter().filter(|a| !matches!(a.op, Op::Remove { .. })).count();
    if removes > 0 && keeps == 0 && !allow_empty {
        return Err(CliError::Failed(format!(
            "refusing to remove every managed object of project `{}` ({removes}); pass --allow-empty if that is intended",
            d.project
        )));
    }
    if !plan.has_changes() {
        return Ok(EXIT_OK);
    }
    if !yes && std::io::stdin().is_terminal() && std::io::stdout().is_terminal() {
        print!("Apply these changes to the host? [y/N] ");
        let _ = std::io::stdout().flush();
        let mut answer = String::new();
        let _ = std::io::stdin().read_line(&mut answer);
        if !matches!(answer.trim(), "y" | "Y" | "yes") {
            println!("Nothing was changed.");
            return Ok(EXIT_FAILED);
        }
    }
    let mut progress = |line: &str| {
        if !quiet {
            println!("{line}");
        }
    };
    let report = apply::execute(engine, d, &plan, &mut progress).await;
    if report.ok() {
        if !quiet {
            println!("Applied revision {} of project {}: {} change(s).", d.revision, d.project, report.done);
        }
        Ok(EXIT_OK)
    } else {
        let lines: Vec<String> =
            report.failures.iter().map(|f| format!("{} {}: {}", f.kind, f.name, f.message)).collect();
        Err(CliError::Failed(format!(
            "revision {} was not fully applied ({} done, {} failed); what worked before keeps running:\n  {}",
            d.revision,
            report.done,
            report.failures.len(),
            lines.join("\n  ")
        )))
    }
}

fn print_status(observed: &ObservedState, project: Option<&str>, output: Output) {
    #[derive(serde::Serialize)]
    struct Row<'a> {
        project: &'a str,
        kind: String,
        name: &'a str,
        revision: &'a str,
        state: String,
    }
    let mut rows = Vec::new();
    for c in &observed.containers {
        if let Some(o) = &c.owner {
            rows.push(Row {
                project: &o.project,
                kind: "Container".into(),
                name: &c.name,
                revision: &o.revision,
                state: c.state.as_str().into(),
            });
        }
    }
    for n in &observed.networks {
        if let Some(o) = &n.owner {
            rows.push(Row {
                project: &o.project,
                kind: "Network".into(),
                name: &n.name,
                revision: &o.revision,
                state: "present".into(),
            });
        }
    }
    for v in &observed.volumes {
        if let Some(o) = &v.owner {
            rows.push(Row {
                project: &o.project,
                kind: "Volume".into(),
                name: &v.name,
                revision: &o.revision,
                state: "present".into(),
            });
        }
    }
    rows.retain(|r| project.is_none_or(|p| p == r.project));
    rows.sort_by(|a, b| (a.project, &a.kind, a.name).cmp(&(b.project, &b.kind, b.name)));
    if output == Output::Json {
        println!("{}", serde_json::to_string_pretty(&rows).expect("rows serialize"));
        return;
    }
    println!("{:<16} {:<10} {:<24} {:<12} REVISION", "PROJECT", "KIND", "NAME", "STATE");
    for r in rows {
        let rev = if r.revision.len() > 12 && !r.revision.starts_with("dir:") { &r.revision[..12] } else { r.revision };
        println!("{:<16} {:<10} {:<24} {:<12} {}", r.project, r.kind, r.name, r.state, rev);
    }
}
