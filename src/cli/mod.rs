//! The command line (contract section 1): argument parsing, the order of steps of each command,
//! what is printed, and the exit codes. The work itself lives in the library modules.

mod swarm;

use crate::apply;
use crate::desired::{self, DesiredState, Diagnostics, Policy};
use crate::diff::{self, DiffOptions, Plan};
use crate::observed::ObservedState;
use crate::reconcile;
use crate::runtime::docker::DockerEngine;
use crate::runtime::host::HostEngine;
use crate::runtime::native::NativeEngine;
use crate::runtime::{Engine, EngineRead};
use crate::serve::config::{ServeConfig, SourceConfig};
use crate::source::{self, SourceError, SourceOptions};
use crate::terminal::clean_line;
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
    /// What the project is deployed to: `docker` (the engine at --host) or `swarm` (the swarm
    /// whose manager is at --host). Overrides `target` of hawser.toml.
    #[arg(long, global = true, env = "HAWSER_TARGET", value_parser = parse_target)]
    pub target: Option<desired::Target>,
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
    /// Apply only commits signed by an SSH key listed in this file (ssh-keygen's
    /// allowed_signers format, as git's gpg.ssh.allowedSignersFile).
    #[arg(long, global = true, env = "HAWSER_ALLOWED_SIGNERS")]
    pub allowed_signers: Option<PathBuf>,
    /// Largest manifest file accepted (a revision with a larger one is invalid).
    #[arg(long, global = true, env = "HAWSER_MAX_MANIFEST_SIZE", value_parser = parse_size, default_value = "4Mi")]
    pub max_manifest_size: desired::ByteSize,
    /// Largest total of a revision's manifest files.
    #[arg(long, global = true, env = "HAWSER_MAX_REVISION_SIZE", value_parser = parse_size, default_value = "16Mi")]
    pub max_revision_size: desired::ByteSize,
    /// Private SSH key for ssh:// and user@host:path sources (default: the ssh-agent).
    #[arg(long, global = true, env = "HAWSER_SSH_KEY")]
    pub ssh_key: Option<PathBuf>,
    /// known_hosts file that SSH servers' host keys must be in (default: ~/.ssh/known_hosts and
    /// /etc/ssh/ssh_known_hosts).
    #[arg(long, global = true, env = "HAWSER_KNOWN_HOSTS")]
    pub known_hosts: Option<PathBuf>,
    /// File holding an HTTPS token (or password) for https:// sources.
    #[arg(long, global = true, env = "HAWSER_GIT_TOKEN_FILE")]
    pub git_token_file: Option<PathBuf>,
    /// User name for the token (default: x-access-token) or for SSH (default: git).
    #[arg(long, global = true, env = "HAWSER_GIT_USERNAME")]
    pub git_username: Option<String>,
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
    #[command(flatten)]
    pub sel: Selection,
}

/// What to read of a source, and as which project.
#[derive(Args, Debug, Clone, Default)]
pub struct Selection {
    /// The commit, branch or tag (default: HEAD, or the remote's default branch).
    #[arg(long = "ref")]
    pub git_ref: Option<String>,
    /// The folder inside the source that holds the manifests.
    #[arg(long)]
    pub path: Option<String>,
    /// The project, overriding hawser.toml's `project` and the source's name.
    #[arg(long)]
    pub project: Option<String>,
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
        /// Plan as `apply --take-over` would.
        #[arg(long)]
        take_over: bool,
        /// Also save the plan, for `hawser apply --plan FILE`.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Converge the host to the revision.
    Apply {
        /// A git repository, a git URL, or a plain directory (with --plan: default, the plan's).
        #[arg(required_unless_present = "plan")]
        source: Option<String>,
        #[command(flatten)]
        sel: Selection,
        /// Apply exactly this saved plan (`hawser plan --out FILE`); refused if it is stale.
        #[arg(long)]
        plan: Option<PathBuf>,
        /// Remove managed containers and networks that are no longer declared.
        #[arg(long)]
        prune: bool,
        /// Move the project here from the source that applied it (its containers are replaced).
        #[arg(long)]
        take_over: bool,
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
        /// Images kept per Image resource for rollback; older ones no container uses are removed.
        #[arg(long, default_value_t = 3)]
        keep_images: usize,
    },
    /// Apply an earlier revision's desired state, with the images it ran.
    Rollback {
        source: String,
        /// The revision (commit) to go back to.
        #[arg(long)]
        to: String,
        #[arg(long)]
        path: Option<String>,
        #[arg(long)]
        project: Option<String>,
        #[arg(long)]
        prune: bool,
        #[arg(long, short = 'y')]
        yes: bool,
    },
    /// Continuous reconcile service.
    Serve {
        /// Sources and listener in TOML (see README); or one SOURCE with the flags below.
        #[arg(long, conflicts_with = "source", required_unless_present = "source")]
        config: Option<PathBuf>,
        /// A git repository (work tree or bare, watched), a git URL (polled), or a directory.
        source: Option<String>,
        #[command(flatten)]
        sel: Selection,
        /// HTTP listener for the dashboard, /healthz, /status, /metrics and /hooks/NAME.
        #[arg(long, default_value = "127.0.0.1:9480")]
        listen: String,
        /// The dashboard's, /status's and /metrics's access token, in this file (needed to
        /// listen on anything but loopback).
        #[arg(long)]
        token_file: Option<PathBuf>,
        /// A name browsers reach the dashboard by, besides the listen address (repeatable);
        /// requests naming any other host are refused.
        #[arg(long = "host-name", value_name = "NAME")]
        host_names: Vec<String>,
        /// Resync (local) or poll (remote) period.
        #[arg(long, value_parser = parse_duration, default_value = "60s")]
        interval: desired::Duration,
        /// A remote fetch running longer is cancelled (and retried at the next poll).
        #[arg(long, value_parser = parse_duration, default_value = "30s")]
        fetch_timeout: desired::Duration,
        /// Enables webhooks at /hooks/NAME, authenticated with this secret.
        #[arg(long)]
        webhook_secret_file: Option<PathBuf>,
        /// Do not repair drift on engine events (the interval still resyncs).
        #[arg(long)]
        no_self_heal: bool,
    },
    /// Past reconciles (of `hawser serve` and `hawser apply`), newest first.
    History {
        #[arg(long)]
        project: Option<String>,
        #[arg(long, default_value_t = 20)]
        limit: usize,
        #[arg(long, value_enum, default_value = "text")]
        output: Output,
    },
    /// Create a bare repository that validates pushes and deploys the default branch.
    InitRemote {
        path: PathBuf,
        #[arg(long)]
        project: Option<String>,
        /// The branch that deploys.
        #[arg(long, default_value = "main")]
        branch: String,
    },
    /// Managed objects, revision applied, state.
    Status {
        #[arg(long)]
        project: Option<String>,
        #[arg(long, value_enum, default_value = "text")]
        output: Output,
    },
    /// A container's output (stdout and stderr), on the Docker or the native target.
    Logs {
        /// The container's name (or id).
        name: String,
        /// Keep printing what it writes until it is removed (or Ctrl-C).
        #[arg(long, short = 'f')]
        follow: bool,
        /// Only the last N lines.
        #[arg(long, short = 'n')]
        tail: Option<usize>,
    },
}

fn parse_duration(s: &str) -> Result<desired::Duration, String> {
    s.parse()
}

fn parse_target(s: &str) -> Result<desired::Target, String> {
    s.parse()
}

fn parse_size(s: &str) -> Result<desired::ByteSize, String> {
    s.parse()
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
    #[error("{0}")]
    Failed(String),
    /// The revision may not be applied here (its signature): like invalid input, exit 3.
    #[error("{0}")]
    Refused(String),
}

impl CliError {
    /// The error with no secret and no value of hawser's environment in its text.
    pub(super) fn redacted(self, d: &DesiredState) -> CliError {
        match self {
            CliError::Failed(m) => CliError::Failed(d.redact(&m)),
            CliError::Refused(m) => CliError::Refused(d.redact(&m)),
            other => other,
        }
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
            reconcile::ReconcileError::Engine(e) => e.into(),
            other => CliError::Failed(other.to_string()),
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

fn load(cli: &Cli, src: &SourceArgs, state_dir: &std::path::Path) -> Result<DesiredState, CliError> {
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
    let mut snap = source::read(&src.source, &opts)?;
    if let Some(t) = cli.target {
        snap.target = t;
    }
    tracing::info!(project = %snap.project, revision = %snap.revision, files = snap.files.len(), "read source");
    let d = source::desired_state(&snap, &policy, state_dir).map_err(CliError::Invalid)?;
    // A plan shows the warnings itself (in each of its forms).
    if !matches!(cli.command, Command::Plan { .. }) {
        for w in &d.warnings {
            eprintln!("warning: {w}");
        }
    }
    Ok(d)
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
                if cli.verbose > 0 {
                    for f in &d.skipped {
                        println!("skipped (no manifest in it): {}", clean_line(f));
                    }
                }
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
        Command::Plan { src, output, exit_code, prune, take_over, out } => {
            let early = swarm::Early::begin(state_dir, &cli.host, src, cli.target);
            let engine = (!early.was_swarm()).then(|| connect_early(cli));
            let mut d = load(cli, src, state_dir)?;
            desired::secrets::resolve(&mut d, state_dir).map_err(CliError::Invalid)?;
            if d.target == desired::Target::Swarm {
                engine.inspect(|e| e.abort());
                let how =
                    swarm::PlanOptions { output: *output, exit_code: *exit_code, prune: *prune, take_over: *take_over };
                let out = out.as_deref().map(|file| (src, file));
                return swarm::plan(&cli.host, state_dir, early, &d, &how, out).await;
            }
            early.forget(state_dir);
            let engine = engine.unwrap_or_else(|| connect_early(cli));
            crate::runtime::registry::resolve_digests(&mut d).await;
            let engine = host_engine(engine, &d, state_dir).await?;
            let observed = engine.observe().await?;
            let effective = diff::effective(&d, &observed);
            let mut plan = diff::diff(&effective, &observed, &DiffOptions { prune: *prune, take_over: *take_over });
            plan.mask(&d.masked);
            if let Some(file) = out {
                SavedPlan::new(src, *prune, *take_over, fingerprint(&observed, &d), &plan).write(file)?;
            }
            print_plan(&plan, *output, &d.masked);
            Ok(if *exit_code && plan.has_changes() { EXIT_CHANGES } else { EXIT_OK })
        }
        Command::Rollback { source, to, path, project, prune, yes } => {
            let src = SourceArgs {
                source: source.clone(),
                sel: Selection { git_ref: Some(to.clone()), path: path.clone(), project: project.clone() },
            };
            let mut d = load(cli, &src, state_dir)?;
            desired::secrets::resolve(&mut d, state_dir).map_err(CliError::Invalid)?;
            let opts = ApplyOptions {
                prune: *prune,
                take_over: false,
                yes: *yes,
                allow_empty: false,
                quiet: cli.quiet,
                saved: None,
            };
            if d.target == desired::Target::Swarm {
                return swarm::rollback(&cli.host, state_dir, source, d, &opts).await;
            }
            // The images that revision ran, as recorded when it was applied; else resolved anew.
            let record = apply::images::ImageRecord::load(state_dir, &d.project);
            match record.revisions.get(&d.revision) {
                Some(images) => {
                    for (name, reference) in images {
                        let Some(img) = d.images.get_mut(name) else { continue };
                        let old = std::mem::replace(&mut img.spec.reference, reference.clone());
                        for c in d.containers.values_mut().filter(|c| c.spec.image == old) {
                            c.spec.image = reference.clone();
                        }
                    }
                }
                None => {
                    eprintln!("note: no record of the images revision {} ran; resolving them anew", d.revision);
                    crate::runtime::registry::resolve_digests(&mut d).await;
                }
            }
            let run = RunOptions { lock_timeout: None, parallel: 8, keep_images: 3 };
            run_apply(connect_early(cli), state_dir, source, &d, &opts, &run).await
        }
        Command::Apply {
            source,
            sel,
            plan,
            prune,
            take_over,
            yes,
            allow_empty,
            lock_timeout,
            parallel,
            keep_images,
        } => {
            let saved = match plan {
                Some(f) => Some(SavedPlan::read(f)?),
                None => None,
            };
            let src = match &saved {
                Some(sp) => SourceArgs {
                    source: source.clone().unwrap_or_else(|| sp.source.clone()),
                    sel: Selection {
                        git_ref: sel.git_ref.clone().or_else(|| sp.git_ref.clone()),
                        path: sel.path.clone().or_else(|| sp.path.clone()),
                        project: sel.project.clone().or_else(|| sp.project.clone()),
                    },
                },
                None => SourceArgs { source: source.clone().unwrap_or_default(), sel: sel.clone() },
            };
            let prune = saved.as_ref().map_or(*prune, |sp| sp.prune);
            let take_over = saved.as_ref().map_or(*take_over, |sp| sp.take_over);
            let early = swarm::Early::begin(state_dir, &cli.host, &src, cli.target);
            let engine = (!early.was_swarm()).then(|| connect_early(cli));
            let mut d = load(cli, &src, state_dir)?;
            desired::secrets::resolve(&mut d, state_dir).map_err(CliError::Invalid)?;
            let opts = ApplyOptions {
                prune,
                take_over,
                yes: *yes,
                allow_empty: *allow_empty,
                quiet: cli.quiet,
                saved: saved.as_ref(),
            };
            if let Some(sp) = &saved {
                if d.target == desired::Target::Swarm {
                    sp.check_revision(&d)?;
                }
            }
            if d.target == desired::Target::Swarm {
                engine.inspect(|e| e.abort());
                let lock = lock_timeout.map(|t| t.as_std());
                return swarm::apply(&cli.host, state_dir, early, &src.source, &d, &opts, lock).await;
            }
            early.forget(state_dir);
            let engine = engine.unwrap_or_else(|| connect_early(cli));
            crate::runtime::registry::resolve_digests(&mut d).await;
            if let Some(sp) = &saved {
                sp.check_revision(&d)?;
            }
            let run = RunOptions {
                lock_timeout: lock_timeout.map(|t| t.as_std()),
                parallel: *parallel,
                keep_images: *keep_images,
            };
            run_apply(engine, state_dir, &src.source, &d, &opts, &run).await
        }
        Command::Serve {
            config,
            source,
            sel,
            listen,
            token_file,
            host_names,
            interval,
            fetch_timeout,
            webhook_secret_file,
            no_self_heal,
        } => {
            let cfg = match config {
                Some(f) => ServeConfig::from_file(f).map_err(CliError::Invalid)?,
                None => ServeConfig {
                    listen: listen.clone(),
                    token_file: None,
                    host_names: Vec::new(),
                    sources: vec![SourceConfig {
                        name: None,
                        repo: source.clone().unwrap_or_default(),
                        git_ref: sel.git_ref.clone(),
                        path: sel.path.clone(),
                        project: sel.project.clone(),
                        interval: *interval,
                        fetch_timeout: *fetch_timeout,
                        webhook_secret_file: webhook_secret_file.clone(),
                        self_heal: !no_self_heal,
                        prune: true,
                        allowed_signers: None,
                        auth: Default::default(),
                        target: None,
                        notify: Vec::new(),
                    }],
                },
            };
            let mut cfg = cfg;
            if token_file.is_some() {
                cfg.token_file = token_file.clone();
            }
            cfg.host_names.extend(host_names.iter().cloned());
            for s in &mut cfg.sources {
                if s.allowed_signers.is_none() {
                    s.allowed_signers = cli.allowed_signers.clone();
                }
                s.auth = s.auth.or(&git_auth(cli));
                s.target = s.target.or(cli.target);
            }
            // A host of native-target sources needs no Docker engine.
            let engine = match DockerEngine::connect(&cli.host).await {
                Ok(e) => Some(e),
                Err(e) => {
                    eprintln!("hawser serve: {e}; only sources with target = \"native\" can be converged");
                    None
                }
            };
            crate::serve::run(engine, cli.host.clone(), cfg, state_dir, policy(cli)?, size_limits(cli))
                .await
                .map_err(|e| CliError::Failed(e.to_string()))?;
            Ok(EXIT_OK)
        }
        Command::History { project, limit, output } => {
            let h = crate::history::History::open(state_dir).map_err(|e| CliError::Failed(e.to_string()))?;
            let entries = h.recent(project.as_deref(), *limit).map_err(|e| CliError::Failed(e.to_string()))?;
            if *output == Output::Json {
                println!("{}", serde_json::to_string_pretty(&entries).expect("entries serialize"));
            } else {
                println!(
                    "{:<20} {:<16} {:<16} {:<9} {:<10} {:>7} {:>8}  REVISION",
                    "WHEN (UTC)", "SOURCE", "PROJECT", "TRIGGER", "OUTCOME", "ACTIONS", "MS"
                );
                for e in &entries {
                    let rev = short_revision(e.revision.as_deref().unwrap_or("-"));
                    println!(
                        "{:<20} {:<16} {:<16} {:<9} {:<10} {:>7} {:>8}  {rev}",
                        crate::display::utc(e.started_unix),
                        clean_line(&e.source),
                        clean_line(e.project.as_deref().unwrap_or("-")),
                        e.trigger,
                        e.outcome,
                        e.actions,
                        e.duration_ms
                    );
                    if let Some(err) = &e.error {
                        println!("    {}", clean_line(err.lines().next().unwrap_or_default()));
                    }
                }
            }
            Ok(EXIT_OK)
        }
        Command::InitRemote { path, project, branch } => {
            crate::remote::init(path, project.as_deref(), branch, cli, state_dir).map_err(CliError::Failed)?;
            Ok(EXIT_OK)
        }
        Command::Logs { name, follow, tail } => {
            if cli.target == Some(desired::Target::Native) {
                let native = NativeEngine::open(state_dir)?;
                let log = native.log_path(name)?;
                crate::runtime::native::logs::print(&log, *tail, *follow).await;
            } else {
                let engine = DockerEngine::connect(&cli.host).await?;
                engine.print_logs(name, *tail, *follow).await?;
            }
            Ok(EXIT_OK)
        }
        Command::Status { project, output } => {
            if cli.target == Some(desired::Target::Swarm) {
                return swarm::status(&cli.host, project.as_deref(), *output).await;
            }
            let (observed, usage) = if cli.target == Some(desired::Target::Native) {
                let native = NativeEngine::open(state_dir)?;
                let observed = native.observe().await?;
                // Read from each running container's cgroup.
                let usage = observed
                    .containers
                    .iter()
                    .filter(|c| c.state == crate::observed::RunState::Running)
                    .filter_map(|c| native.usage(&c.id).map(|u| (c.id.clone(), u)))
                    .collect();
                (observed, usage)
            } else {
                (DockerEngine::connect(&cli.host).await?.observe().await?, Default::default())
            };
            print_status(&observed, &usage, project.as_deref(), *output);
            Ok(EXIT_OK)
        }
    }
}

/// The plan as the user asked for it. `Plan::mask` hid the host's values in fields and diffs;
/// a name or a reference made from one (an image named from `${TOKEN}`) is hidden here, where
/// it is shown, since the executor needs the plan's names as they are.
fn print_plan(plan: &Plan, output: Output, masked: &desired::MaskedValues) {
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

/// Colors on a terminal, unless NO_COLOR is set (no-color.org).
fn color() -> bool {
    std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none()
}

struct ApplyOptions<'a> {
    prune: bool,
    take_over: bool,
    yes: bool,
    allow_empty: bool,
    quiet: bool,
    saved: Option<&'a SavedPlan>,
}

/// A plan saved by `hawser plan --out`, applied by `hawser apply --plan`.
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct SavedPlan {
    format_version: u32,
    source: String,
    #[serde(rename = "ref")]
    git_ref: Option<String>,
    path: Option<String>,
    #[serde(default)]
    project: Option<String>,
    prune: bool,
    #[serde(default)]
    take_over: bool,
    /// What the host's relevant objects were when the plan was made.
    host_fingerprint: String,
    /// The plan in its JSON form; applying recomputes the plan, which must come out identical.
    plan: serde_json::Value,
}

impl SavedPlan {
    fn new(src: &SourceArgs, prune: bool, take_over: bool, host_fingerprint: String, plan: &diff::Plan) -> SavedPlan {
        SavedPlan {
            format_version: diff::FORMAT_VERSION,
            source: std::fs::canonicalize(&src.source)
                .map(|p| p.display().to_string())
                .unwrap_or_else(|_| src.source.clone()),
            git_ref: src.sel.git_ref.clone(),
            path: src.sel.path.clone(),
            project: src.sel.project.clone(),
            prune,
            take_over,
            host_fingerprint,
            plan: serde_json::to_value(plan).expect("plans serialize"),
        }
    }

    fn write(&self, file: &std::path::Path) -> Result<(), CliError> {
        let text = serde_json::to_string_pretty(self).expect("plans serialize");
        std::fs::write(file, text + "\n")
            .map_err(|e| CliError::Failed(format!("cannot write the plan to {}: {e}", file.display())))
    }

    /// Refuses a saved plan made for another revision or project than `d`'s.
    fn check_revision(&self, d: &DesiredState) -> Result<(), CliError> {
        if self.field("revision") != d.revision || self.field("project") != d.project {
            return Err(CliError::Failed(format!(
                "stale plan: it was made for project `{}` at revision {}, and the source is now at {} (project `{}`); run `hawser plan --out` again",
                self.field("project"),
                self.field("revision"),
                d.revision,
                d.project
            )));
        }
        Ok(())
    }

    /// Refuses a saved plan when the host's objects, or the plan made now, differ from then.
    fn check_unchanged(&self, fingerprint: &str, plan: &diff::Plan, project: &str) -> Result<(), CliError> {
        let now = serde_json::to_value(plan).expect("plans serialize");
        if fingerprint != self.host_fingerprint || self.plan != now {
            return Err(CliError::Failed(format!(
                "stale plan: the managed objects of project `{project}` on the host changed since the plan was made; run `hawser plan --out` again"
            )));
        }
        Ok(())
    }

    fn field(&self, key: &str) -> &str {
        self.plan.get(key).and_then(|v| v.as_str()).unwrap_or_default()
    }

    fn read(path: &std::path::Path) -> Result<SavedPlan, CliError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| CliError::Failed(format!("cannot read the plan {}: {e}", path.display())))?;
        let sp: SavedPlan = serde_json::from_str(&text)
            .map_err(|e| CliError::Failed(format!("{} is not a saved hawser plan: {e}", path.display())))?;
        if sp.format_version != diff::FORMAT_VERSION {
            return Err(CliError::Failed(format!(
                "{} is a plan of format {}, this hawser reads format {}",
                path.display(),
                sp.format_version,
                diff::FORMAT_VERSION
            )));
        }
        Ok(sp)
    }
}

fn fingerprint(observed: &ObservedState, d: &DesiredState) -> String {
    let names: std::collections::BTreeSet<String> =
        d.containers.keys().chain(d.networks.keys()).chain(d.volumes.keys()).cloned().collect();
    crate::observed::fingerprint(observed, &d.project, &names)
}

/// How `apply` and `rollback` drive the engine around the apply itself.
struct RunOptions {
    lock_timeout: Option<std::time::Duration>,
    parallel: usize,
    keep_images: usize,
}

/// Connects to the engine in the background: begun before the source is read, the two (each
/// some milliseconds) overlap instead of adding up.
fn connect_early(cli: &Cli) -> tokio::task::JoinHandle<crate::runtime::Result<DockerEngine>> {
    let host = cli.host.clone();
    tokio::spawn(async move { DockerEngine::connect(&host).await })
}

async fn connected(h: tokio::task::JoinHandle<crate::runtime::Result<DockerEngine>>) -> Result<DockerEngine, CliError> {
    Ok(h.await.map_err(|e| CliError::Failed(format!("connecting to the engine: {e}")))??)
}

/// The engine the project's target names: the Docker engine being connected to, or the native
/// target (which needs no connection: its state is in `state_dir`).
async fn host_engine(
    early: tokio::task::JoinHandle<crate::runtime::Result<DockerEngine>>,
    d: &DesiredState,
    state_dir: &std::path::Path,
) -> Result<HostEngine, CliError> {
    if d.target == desired::Target::Native {
        early.abort();
        return Ok(HostEngine::Native(NativeEngine::open(state_dir)?.with_limits(d.host_limits)));
    }
    Ok(HostEngine::Docker(connected(early).await?))
}

/// The steps `apply` and `rollback` share: connect, take the project's lock, apply, record the
/// reconcile in the history and, after success, the images it ran (cleaning up old ones).
async fn run_apply(
    engine: tokio::task::JoinHandle<crate::runtime::Result<DockerEngine>>,
    state_dir: &std::path::Path,
    source: &str,
    d: &DesiredState,
    opts: &ApplyOptions<'_>,
    run: &RunOptions,
) -> Result<u8, CliError> {
    let engine = host_engine(engine, d, state_dir).await?;
    let _lock = crate::lock::acquire(state_dir, &d.project, run.lock_timeout, &mut |m: &str| eprintln!("{m}"))
        .map_err(|e| CliError::Failed(e.to_string()))?;
    let limited = apply::limit::Limited::new(&engine, run.parallel);
    let started = std::time::Instant::now();
    let result = apply(&limited, d, opts).await.map_err(|e| e.redacted(d));
    record_apply(state_dir, source, d, &result, started);
    if let Ok((EXIT_OK, _)) = result {
        for r in apply::collect_images(&limited, d, state_dir, run.keep_images).await {
            if !opts.quiet {
                println!("Removed image {r} (no container uses it; {} newest kept).", run.keep_images);
            }
        }
    }
    result.map(|(code, _)| code)
}

/// One row in the history for a CLI apply (best effort: no history is no reason to fail).
fn record_apply(
    state_dir: &std::path::Path,
    source: &str,
    d: &DesiredState,
    result: &Result<(u8, usize), CliError>,
    started: std::time::Instant,
) {
    let (outcome, actions, error) = match result {
        Ok((EXIT_OK, 0)) => ("unchanged", 0, None),
        Ok((EXIT_OK, n)) => ("changed", *n, None),
        Ok(_) => return, // declined at the prompt: nothing happened
        Err(e) => (if e.to_string().starts_with("refusing") { "refused" } else { "failed" }, 0, Some(e.to_string())),
    };
    let took = started.elapsed();
    let now = crate::display::now_unix();
    let entry = crate::history::Entry {
        started_unix: now - took.as_secs_f64(),
        source: source.to_string(),
        project: Some(d.project.clone()),
        revision: Some(d.revision.clone()),
        trigger: "apply".into(),
        actions: actions as u64,
        outcome: outcome.into(),
        duration_ms: took.as_millis() as u64,
        error,
    };
    if let Ok(h) = crate::history::History::open(state_dir) {
        let _ = h.record(&entry);
    }
}

async fn apply<E: Engine>(engine: &E, d: &DesiredState, o: &ApplyOptions<'_>) -> Result<(u8, usize), CliError> {
    let ApplyOptions { prune, take_over, yes, allow_empty, quiet, saved } = *o;
    let opts = reconcile::Options { prune, allow_empty, take_over };
    let (observed, plan, d) = reconcile::plan(engine, d, &opts).await?;
    let d = d.as_ref();
    if let Some(sp) = saved {
        sp.check_unchanged(&fingerprint(&observed, d), &plan, &d.project)?;
    }
    if !quiet {
        print!("{}", d.masked.redact(&diff::render::text(&plan, color())));
    }
    reconcile::check(&plan, d, &opts)?;
    if !plan.has_changes() {
        return Ok((EXIT_OK, 0));
    }
    if !confirm(yes) {
        return Ok((EXIT_FAILED, 0));
    }
    let mut progress = |line: &str| {
        if !quiet {
            println!("{}", crate::terminal::clean(&d.redact(line)));
        }
    };
    let report = reconcile::execute(engine, d, &plan, &mut progress).await?;
    if !quiet {
        println!("Applied revision {} of project {}: {} change(s).", d.revision, d.project, report.done);
    }
    Ok((EXIT_OK, report.done))
}

/// Asks on a terminal whether to apply, unless `yes`; elsewhere there is nobody to ask.
fn confirm(yes: bool) -> bool {
    if yes || !std::io::stdin().is_terminal() || !std::io::stdout().is_terminal() {
        return true;
    }
    print!("Apply these changes? [y/N] ");
    let _ = std::io::stdout().flush();
    let mut answer = String::new();
    let _ = std::io::stdin().read_line(&mut answer);
    let ok = matches!(answer.trim(), "y" | "Y" | "yes");
    if !ok {
        println!("Nothing was changed.");
    }
    ok
}

/// `usage`: memory (bytes) and CPU time (ns) of running containers, by id, where the target
/// reads them (the native target, from each container's cgroup).
fn print_status(
    observed: &ObservedState,
    usage: &std::collections::BTreeMap<String, (u64, u64)>,
    project: Option<&str>,
    output: Output,
) {
    #[derive(serde::Serialize)]
    struct Row<'a> {
        project: &'a str,
        kind: String,
        name: &'a str,
        revision: &'a str,
        state: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        health: Option<&'static str>,
        #[serde(rename = "memoryBytes", skip_serializing_if = "Option::is_none")]
        memory_bytes: Option<u64>,
        #[serde(rename = "cpuSeconds", skip_serializing_if = "Option::is_none")]
        cpu_seconds: Option<f64>,
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
                health: c.health.as_ref().map(|h| match h {
                    crate::observed::Health::Healthy => "healthy",
                    crate::observed::Health::Unhealthy => "unhealthy",
                    crate::observed::Health::Starting => "starting",
                    crate::observed::Health::None => "none",
                }),
                memory_bytes: usage.get(&c.id).map(|u| u.0),
                cpu_seconds: usage.get(&c.id).map(|u| u.1 as f64 / 1e9),
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
                health: None,
                memory_bytes: None,
                cpu_seconds: None,
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
                health: None,
                memory_bytes: None,
                cpu_seconds: None,
            });
        }
    }
    rows.retain(|r| project.is_none_or(|p| p == r.project));
    rows.sort_by(|a, b| (a.project, &a.kind, a.name).cmp(&(b.project, &b.kind, b.name)));
    if output == Output::Json {
        println!("{}", serde_json::to_string_pretty(&rows).expect("rows serialize"));
        return;
    }
    let with_usage = !usage.is_empty();
    if with_usage {
        println!(
            "{:<16} {:<10} {:<24} {:<22} {:>9} {:>9} REVISION",
            "PROJECT", "KIND", "NAME", "STATE", "MEMORY", "CPU"
        );
    } else {
        println!("{:<16} {:<10} {:<24} {:<22} REVISION", "PROJECT", "KIND", "NAME", "STATE");
    }
    for r in rows {
        let rev = short_revision(r.revision);
        let state = match r.health {
            Some(h) => format!("{} ({h})", r.state),
            None => r.state.clone(),
        };
        // Labels and names come from the engine, where anyone may have put anything.
        let (project, kind, name) = (clean_line(r.project), clean_line(&r.kind), clean_line(r.name));
        if with_usage {
            let mem = r.memory_bytes.map_or_else(|| "-".into(), |b| format!("{:.1}MiB", b as f64 / 1048576.0));
            let cpu = r.cpu_seconds.map_or_else(|| "-".into(), |s| format!("{s:.2}s"));
            println!("{project:<16} {kind:<10} {name:<24} {:<22} {mem:>9} {cpu:>9} {rev}", clean_line(&state));
        } else {
            println!("{project:<16} {kind:<10} {name:<24} {:<22} {rev}", clean_line(&state));
        }
    }
}

/// A commit id shortened to 12 characters; other revisions (`dir:`) as they are.
use crate::display::short_revision;
