//! The command line's arguments (contract section 1): every command and flag, as clap reads them.

use crate::desired;
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

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
    #[arg(long, global = true, env = "HAWSER_TARGET")]
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
    #[arg(long, global = true, env = "HAWSER_MAX_MANIFEST_SIZE", default_value = "4Mi")]
    pub max_manifest_size: desired::ByteSize,
    /// Largest total of a revision's manifest files.
    #[arg(long, global = true, env = "HAWSER_MAX_REVISION_SIZE", default_value = "16Mi")]
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
    Render(RenderArgs),
    /// Dry-run diff report; read-only against the engine.
    Plan(PlanArgs),
    /// Converge the host to the revision.
    Apply(ApplyArgs),
    /// Apply an earlier revision's desired state, with the images it ran.
    Rollback(RollbackArgs),
    /// Continuous reconcile service.
    Serve(ServeArgs),
    /// Past reconciles (of `hawser serve` and `hawser apply`), newest first.
    History(HistoryArgs),
    /// Create a bare repository that validates pushes and deploys the default branch.
    InitRemote(InitRemoteArgs),
    /// Managed objects, revision applied, state.
    Status(StatusArgs),
    /// A container's output (stdout and stderr), on the Docker or the native target.
    Logs(LogsArgs),
}

#[derive(Args, Debug)]
pub struct RenderArgs {
    #[command(flatten)]
    pub src: SourceArgs,
    #[arg(long, value_enum, default_value = "yaml")]
    pub output: RenderOutput,
}

#[derive(Args, Debug)]
pub struct PlanArgs {
    #[command(flatten)]
    pub src: SourceArgs,
    #[arg(long, value_enum, default_value = "text")]
    pub output: Output,
    /// Exit 2 when the plan has changes.
    #[arg(long)]
    pub exit_code: bool,
    /// Show removal of undeclared objects as `apply --prune` would.
    #[arg(long)]
    pub prune: bool,
    /// Plan as `apply --take-over` would.
    #[arg(long)]
    pub take_over: bool,
    /// Also save the plan, for `hawser apply --plan FILE`.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct ApplyArgs {
    /// A git repository, a git URL, or a plain directory (with --plan: default, the plan's).
    #[arg(required_unless_present = "plan")]
    pub source: Option<String>,
    #[command(flatten)]
    pub sel: Selection,
    /// Apply exactly this saved plan (`hawser plan --out FILE`); refused if it is stale.
    #[arg(long)]
    pub plan: Option<PathBuf>,
    /// Remove managed containers and networks that are no longer declared.
    #[arg(long)]
    pub prune: bool,
    /// Move the project here from the source that applied it (its containers are replaced).
    #[arg(long)]
    pub take_over: bool,
    /// Do not ask for confirmation.
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// Allow a plan that removes every managed object of the project.
    #[arg(long)]
    pub allow_empty: bool,
    /// Give up when another apply of the project holds the lock this long (default: wait).
    #[arg(long)]
    pub lock_timeout: Option<desired::Duration>,
    /// Engine calls in flight at most.
    #[arg(long, default_value_t = 8)]
    pub parallel: usize,
    /// Images kept per Image resource for rollback; older ones no container uses are removed.
    #[arg(long, default_value_t = 3)]
    pub keep_images: usize,
}

#[derive(Args, Debug)]
pub struct RollbackArgs {
    pub source: String,
    /// The revision (commit) to go back to.
    #[arg(long)]
    pub to: String,
    #[arg(long)]
    pub path: Option<String>,
    #[arg(long)]
    pub project: Option<String>,
    #[arg(long)]
    pub prune: bool,
    #[arg(long, short = 'y')]
    pub yes: bool,
}

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Sources and listener in TOML (see README); or one SOURCE with the flags below.
    #[arg(long, conflicts_with = "source", required_unless_present = "source")]
    pub config: Option<PathBuf>,
    /// A git repository (work tree or bare, watched), a git URL (polled), or a directory.
    pub source: Option<String>,
    #[command(flatten)]
    pub sel: Selection,
    /// HTTP listener for the dashboard, /healthz, /status, /metrics and /hooks/NAME.
    #[arg(long, default_value = "127.0.0.1:9480")]
    pub listen: String,
    /// The dashboard's, /status's and /metrics's access token, in this file (needed to
    /// listen on anything but loopback).
    #[arg(long)]
    pub token_file: Option<PathBuf>,
    /// A name browsers reach the dashboard by, besides the listen address (repeatable);
    /// requests naming any other host are refused.
    #[arg(long = "host-name", value_name = "NAME")]
    pub host_names: Vec<String>,
    /// Resync (local) or poll (remote) period.
    #[arg(long, default_value = "60s")]
    pub interval: desired::Duration,
    /// A remote fetch running longer is cancelled (and retried at the next poll).
    #[arg(long, default_value = "30s")]
    pub fetch_timeout: desired::Duration,
    /// Enables webhooks at /hooks/NAME, authenticated with this secret.
    #[arg(long)]
    pub webhook_secret_file: Option<PathBuf>,
    /// Do not repair drift on engine events (the interval still resyncs).
    #[arg(long)]
    pub no_self_heal: bool,
}

#[derive(Args, Debug)]
pub struct HistoryArgs {
    #[arg(long)]
    pub project: Option<String>,
    #[arg(long, default_value_t = 20)]
    pub limit: usize,
    #[arg(long, value_enum, default_value = "text")]
    pub output: Output,
}

#[derive(Args, Debug)]
pub struct InitRemoteArgs {
    pub path: PathBuf,
    #[arg(long)]
    pub project: Option<String>,
    /// The branch that deploys.
    #[arg(long, default_value = "main")]
    pub branch: String,
}

#[derive(Args, Debug)]
pub struct StatusArgs {
    #[arg(long)]
    pub project: Option<String>,
    #[arg(long, value_enum, default_value = "text")]
    pub output: Output,
}

#[derive(Args, Debug)]
pub struct LogsArgs {
    /// The container's name (or id).
    pub name: String,
    /// Keep printing what it writes until it is removed (or Ctrl-C).
    #[arg(long, short = 'f')]
    pub follow: bool,
    /// Only the last N lines.
    #[arg(long, short = 'n')]
    pub tail: Option<usize>,
}
