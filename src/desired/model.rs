//! The normalized desired state: what every manifest means once short forms are expanded and
//! references are resolved. Plain data; `Serialize` gives the canonical form that is hashed,
//! stored on engine objects and shown by `hawser plan`.

use super::diag::Pos;
use super::types::{ByteSize, Capability, ContainerPort, Device, Duration, FileMode, PortBinding, RestartPolicy};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// The kinds of resource a manifest declares, in the order they are created.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Kind {
    Network,
    Volume,
    Image,
    Container,
}

impl Kind {
    pub const ALL: [Kind; 4] = [Kind::Network, Kind::Volume, Kind::Image, Kind::Container];
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Network => "Network",
            Kind::Volume => "Volume",
            Kind::Image => "Image",
            Kind::Container => "Container",
        }
    }
    pub fn parse(s: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a resource was declared, for messages.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Origin {
    pub file: String,
    pub pos: Pos,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file, self.pos.line, self.pos.col)
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Resource<S> {
    pub name: String,
    pub origin: Origin,
    pub spec: S,
}

/// One revision's desired state for one project.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DesiredState {
    pub project: String,
    pub revision: String,
    /// Which source this is (see `source::Snapshot::source_id`); a project belongs to one.
    /// Empty when unknown, as in hand-built states.
    pub source: String,
    pub networks: BTreeMap<String, Resource<NetworkSpec>>,
    pub volumes: BTreeMap<String, Resource<VolumeSpec>>,
    pub images: BTreeMap<String, Resource<ImageSpec>>,
    pub containers: BTreeMap<String, Resource<ContainerSpec>>,
    /// On one host, the Containers declared with `replicas`, by name, with their number: their
    /// replicas are in `containers`.
    pub replicated: BTreeMap<String, u64>,
    /// Values of `secretEnv`, read by `secrets::resolve`; never serialized or printed.
    pub secrets: SecretValues,
    /// Build contexts of Images with `build`, by Image name, read by `source::resolve_builds`.
    pub builds: BTreeMap<String, BuildContext>,
    /// `pull: always` Images whose digest could not be resolved, with the reason.
    pub unresolved: BTreeMap<String, String>,
    /// Containers whose image was pinned to a digest, by name: the reference as declared.
    pub declared_images: BTreeMap<String, String>,
    /// YAML and TOML files of the manifest folder that hold no manifest (data of the project).
    pub skipped: Vec<String>,
    /// Repository files that containers mount (`Mount::Repo`), by digest, read by
    /// `source::resolve_repo_files`.
    pub repo_files: BTreeMap<String, RepoSnapshot>,
    /// Where those snapshots are kept on the host (the state dir's `files/`).
    pub repo_files_root: std::path::PathBuf,
    /// The host policy's age identity, which decrypts encrypted snapshots when they are written.
    pub age_identity: Option<std::path::PathBuf>,
    /// The host policy's bounds on what applying reads (image layers, decrypted files).
    pub host_limits: HostLimits,
    /// Folders of the project's data on the host (`STATE_DIR/data/PROJECT/...`), for compose
    /// bind mounts of paths the repository does not have: created when applied, never removed.
    pub data_folders: Vec<std::path::PathBuf>,
    /// What is not wrong but worth saying (a compose variable without a value).
    pub warnings: Vec<super::diag::Diagnostic>,
    /// Values that compose interpolation took from the process's environment: masked in plans.
    pub masked: MaskedValues,
    /// What the revision is deployed to (`target` of `hawser.toml`, or `--target`).
    pub target: Target,
}

/// What the host policy bounds at apply, from data a pusher or an image publisher chooses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HostLimits {
    /// The most one image layer may unpack to on the native target (`maxLayerSize`).
    pub layer: u64,
    /// The most a file or folder of the repository that a container mounts may hold, and an
    /// age file decrypt to (`maxRepoFileSize`).
    pub file: u64,
}

impl Default for HostLimits {
    fn default() -> Self {
        HostLimits { layer: 2 << 30, file: 64 << 20 }
    }
}

pub use super::target::Target;

/// How a swarm runs a service's tasks: a number of replicas, or one on every node.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ServiceMode {
    #[default]
    Replicated,
    Global,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EndpointMode {
    Vip,
    Dnsrr,
}

/// Where a swarm may run a service's tasks.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Placement {
    /// `node.labels.zone == a`, `node.role != manager`, as the swarm takes them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub constraints: Vec<String>,
    /// Spread the tasks evenly over the values of these node descriptors (`node.labels.zone`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub preferences: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_replicas_per_node: Option<u64>,
}

/// What the engine needs to build one image: the context's files and the build's settings.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct BuildContext {
    /// The tag the image gets: the Image's repository and a hash of the context.
    pub tag: String,
    pub files: Vec<ContextFile>,
    pub dockerfile: String,
    pub args: BTreeMap<String, String>,
    pub target: Option<String>,
    pub push: bool,
    pub labels: BTreeMap<String, String>,
    pub extra_hosts: Vec<String>,
    pub shm_size: Option<ByteSize>,
    pub network: Option<String>,
    pub platform: Option<String>,
    pub cache_from: Vec<String>,
    pub no_cache: bool,
    pub pull: bool,
}

/// A file or folder of one revision that a container mounts: the files under it (paths
/// relative to it; one file with its own name when `single` is set).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RepoSnapshot {
    pub path: String,
    /// Owner and mode its files are given (a secret's or config's `uid`, `gid`, `mode`).
    pub access: Option<FileAccess>,
    /// An age-encrypted file of the repository (`*.age`): decrypted only when it is written
    /// on the host for a container, so plans and validation never need the key.
    pub encrypted: bool,
    /// The file's name when the mount is a single file, not a folder.
    pub single: Option<String>,
    pub files: Vec<ContextFile>,
}

impl RepoSnapshot {
    /// Where the snapshot of `digest` is (or will be) on the host: a folder, or the file in it.
    pub fn host_path(&self, root: &std::path::Path, digest: &str) -> std::path::PathBuf {
        let dir = root.join(digest);
        match &self.single {
            Some(name) => dir.join(name),
            None => dir,
        }
    }
}

/// One file of a build context: its path inside the context, its git/unix mode, its bytes.
#[derive(Clone, Debug, PartialEq)]
pub struct ContextFile {
    pub path: String,
    pub mode: u32,
    pub data: Vec<u8>,
}

/// A `secretEnv` entry: the host file that holds the value, and the digest of what it held when
/// the revision was resolved (so a changed secret replaces the container).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SecretRef {
    pub file: String,
    /// `hmac:HEX`, keyed with this host's key (see `secrets`). Stored specs of earlier
    /// versions named it `sha256`.
    #[serde(default, alias = "sha256", skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
}

/// Values to be masked wherever a plan is shown. Its `Debug` shows none of them.
#[derive(Clone, Default, PartialEq)]
pub struct MaskedValues(pub std::collections::BTreeSet<String>);

impl std::fmt::Debug for MaskedValues {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MaskedValues({} masked)", self.0.len())
    }
}

/// Secret values by (container, variable). Its `Debug` shows no value.
#[derive(Clone, Default, PartialEq)]
pub struct SecretValues(pub BTreeMap<(String, String), String>);

impl std::fmt::Debug for SecretValues {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SecretValues({} redacted)", self.0.len())
    }
}

impl SecretValues {
    /// `text` with every secret value (of 4 characters or more: shorter ones would hide any
    /// text that holds them) replaced by `***`: a container's log lines in an error may print
    /// its environment.
    pub fn redact(&self, text: &str) -> String {
        hide(text, self.0.values().map(|v| v.trim()))
    }
}

/// `text` with each of `values` of 4 characters or more replaced by `***`.
fn hide<'v>(text: &str, values: impl Iterator<Item = &'v str>) -> String {
    let mut values: Vec<&str> = values.filter(|v| v.chars().count() >= 4).collect();
    // Longest first: a value that holds another is hidden whole.
    values.sort_by_key(|v| std::cmp::Reverse(v.len()));
    values.iter().fold(text.to_string(), |t, v| t.replace(v, "***"))
}

impl MaskedValues {
    /// `text` with each value (of 4 characters or more, as in plans) replaced by `***`.
    pub fn redact(&self, text: &str) -> String {
        hide(text, self.0.iter().map(String::as_str))
    }

    /// Every string of `v` redacted (a plan as JSON: a value JSON escapes would not be found
    /// in its text).
    pub fn redact_json(&self, v: &mut serde_json::Value) {
        match v {
            serde_json::Value::String(s) => *s = self.redact(s),
            serde_json::Value::Array(a) => a.iter_mut().for_each(|x| self.redact_json(x)),
            serde_json::Value::Object(o) => o.values_mut().for_each(|x| self.redact_json(x)),
            _ => {}
        }
    }
}

impl DesiredState {
    /// `text` (an error, a progress line) with no secret value and no value of hawser's own
    /// environment in it: what may be logged, stored, shown and sent.
    pub fn redact(&self, text: &str) -> String {
        self.masked.redact(&self.secrets.redact(text))
    }

    pub fn is_empty(&self) -> bool {
        self.networks.is_empty() && self.volumes.is_empty() && self.images.is_empty() && self.containers.is_empty()
    }
}

fn is_false(b: &bool) -> bool {
    !*b
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NetworkSpec {
    pub driver: String,
    #[serde(default, skip_serializing_if = "is_false")]
    pub internal: bool,
    #[serde(default, skip_serializing_if = "is_false")]
    pub attachable: bool,
    #[serde(default, skip_serializing_if = "is_false")]
    pub enable_ipv6: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipam: Option<Ipam>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub driver_opts: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub external: bool,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Ipam {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subnet: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_range: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VolumeSpec {
    pub driver: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub driver_opts: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub external: bool,
    /// `false` lets a later revision that no longer declares the volume delete it.
    #[serde(default = "yes", skip_serializing_if = "Clone::clone")]
    pub retain: bool,
}

fn yes() -> bool {
    true
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PullPolicy {
    #[default]
    Missing,
    Always,
    Never,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ImageSpec {
    /// The reference containers run. For a built image, the tag given to the build.
    #[serde(rename = "ref")]
    pub reference: String,
    pub pull: PullPolicy,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build: Option<BuildSpec>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BuildSpec {
    pub context: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dockerfile: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub args: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// Push the built image to the registry its `ref` names.
    #[serde(default, skip_serializing_if = "is_false")]
    pub push: bool,
    /// The Dockerfile itself, instead of a file of the context.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dockerfile_inline: Option<String>,
    /// Labels of the built image.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// `HOST:IP` entries of the build's /etc/hosts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extra_hosts: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shm_size: Option<ByteSize>,
    /// The network its `RUN` steps use: `default`, `host` or `none`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<String>,
    /// The platform to build for (one; a multi-platform build needs BuildKit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<String>,
    /// Images whose layers the build may reuse.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cache_from: Vec<String>,
    /// Build every step anew.
    #[serde(default, skip_serializing_if = "is_false")]
    pub no_cache: bool,
    /// Pull the base images even when the host has them.
    #[serde(default, skip_serializing_if = "is_false")]
    pub pull: bool,
}

impl BuildSpec {
    /// The options that make the image besides its context, Dockerfile, args and target (which
    /// the tag's hash takes on their own): empty when none is given, so the tags of builds
    /// without them stay what they were.
    pub fn options_view(&self) -> serde_json::Map<String, serde_json::Value> {
        let mut v = serde_json::to_value(self).expect("specs serialize");
        let m = v.as_object_mut().map(std::mem::take).unwrap_or_default();
        m.into_iter()
            .filter(|(k, _)| {
                !matches!(k.as_str(), "context" | "dockerfile" | "args" | "target" | "push" | "noCache" | "pull")
            })
            .collect()
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum Mount {
    /// A named Volume resource.
    Volume {
        source: String,
        target: String,
        #[serde(default, skip_serializing_if = "is_false", rename = "readOnly")]
        read_only: bool,
    },
    /// A host path.
    Bind {
        source: String,
        target: String,
        #[serde(default, skip_serializing_if = "is_false", rename = "readOnly")]
        read_only: bool,
    },
    Tmpfs {
        target: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        size: Option<ByteSize>,
    },
    /// A secret file of the host (compose's `secrets` with a `file` outside the repository),
    /// mounted read-only; `digest` is a keyed digest of its content (see `secrets`), so a
    /// changed secret replaces the container and nothing shows its value.
    Secret {
        file: String,
        target: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        digest: Option<String>,
    },
    /// A file or folder of the repository (compose's relative bind mounts), mounted from a
    /// snapshot of it on the host that is named by its content; `digest` is that content's, so
    /// a changed file replaces the container and an unchanged one never does.
    Repo {
        path: String,
        target: String,
        #[serde(default, skip_serializing_if = "is_false", rename = "readOnly")]
        read_only: bool,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        digest: Option<String>,
        /// The file's text as declared (compose's `configs` with `content` or `environment`),
        /// instead of a file of the repository; `path` then names the config.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        content: Option<String>,
        /// Owner and mode of the mounted file (compose's `uid`, `gid`, `mode` of a secret or config).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        access: Option<FileAccess>,
        /// A compose bind mount (not a secret or config) whose path may be no file of the
        /// repository but a folder the app writes (`./data:/data`): then a data folder of the
        /// project, read-only if this is `Some(true)`. Read by the source, never stored.
        #[serde(skip)]
        data_folder: Option<bool>,
    },
    /// A secret from a variable of the hawser process's environment (compose's
    /// `secrets.environment`), mounted read-only as a file. Only the variable's name and a
    /// keyed digest of its value are shown or stored; the value is read when applied.
    #[serde(rename = "envSecret")]
    EnvSecret {
        variable: String,
        target: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        digest: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        access: Option<FileAccess>,
    },
}

/// Who owns a mounted secret or config file, and its mode.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FileAccess {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gid: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<FileMode>,
}

impl Mount {
    pub fn target(&self) -> &str {
        match self {
            Mount::Volume { target, .. }
            | Mount::Bind { target, .. }
            | Mount::Tmpfs { target, .. }
            | Mount::Secret { target, .. }
            | Mount::EnvSecret { target, .. }
            | Mount::Repo { target, .. } => target,
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NetworkAttachment {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aliases: Vec<String>,
    /// A fixed address on this network (the network needs a subnet of its own).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv4_address: Option<std::net::Ipv4Addr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv6_address: Option<std::net::Ipv6Addr>,
}

/// A healthcheck in docker's form; `test: ["NONE"]` disables the image's own.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Healthcheck {
    /// `["CMD", ...]`, `["CMD-SHELL", "..."]` or `["NONE"]`.
    pub test: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<Duration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Duration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_period: Option<Duration>,
}

impl Healthcheck {
    pub fn disabled() -> Self {
        Healthcheck { test: vec!["NONE".into()], interval: None, timeout: None, retries: None, start_period: None }
    }
    pub fn is_disabled(&self) -> bool {
        self.test.first().map(String::as_str) == Some("NONE")
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DependCondition {
    Started,
    Healthy,
    Completed,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Strategy {
    #[default]
    StartFirst,
    StopFirst,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdatePolicy {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strategy: Option<Strategy>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_timeout: Option<Duration>,
    /// How long a container without a healthcheck must run, without restarting, to pass its
    /// gate (default 1s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_uptime: Option<Duration>,
    /// Swarm: tasks updated at once (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parallelism: Option<u64>,
    /// How long connections open to a replaced container may go on after its host ports were
    /// switched to the new one, before it is stopped (default its `stopTimeout`, else 10s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drain_timeout: Option<Duration>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Limits {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<ByteSize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpus: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pids: Option<i64>,
    /// A soft limit: the kernel reclaims down to it when the host runs short of memory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_reservation: Option<ByteSize>,
}

/// A resource limit of the container's processes (`ulimit -S` and `-H`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ulimit {
    pub soft: i64,
    pub hard: i64,
}

/// Where the engine sends the container's output, and how it keeps it (log rotation).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Logging {
    /// The engine's default driver when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub driver: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub options: BTreeMap<String, String>,
}

/// A command of a container's lifecycle (`postStart`, `preStop`), run inside it as `exec` runs one.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Hook {
    pub command: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub privileged: bool,
}

/// The container a `volumesFrom` entry names (`db` of `db:ro`).
pub fn volumes_from_name(entry: &str) -> &str {
    entry.strip_suffix(":ro").or_else(|| entry.strip_suffix(":rw")).unwrap_or(entry)
}

/// The container spec. Every optional field is left out of the canonical form when the user did not
/// declare it, so the engine's and the image's defaults never take part in change detection.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ContainerSpec {
    /// The image reference, with an Image resource's name resolved to its `ref`.
    pub image: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entrypoint: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<PortBinding>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volumes: Vec<Mount>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub networks: BTreeMap<String, NetworkAttachment>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_mode: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restart: Option<RestartPolicy>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthcheck: Option<Healthcheck>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<Limits>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_signal: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_timeout: Option<Duration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_only: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tty: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stdin_open: Option<bool>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cap_add: Vec<Capability>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cap_drop: Vec<Capability>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub privileged: Option<bool>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extra_hosts: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logging: Option<Logging>,
    /// Size of /dev/shm (the engine's default is 64 MiB, too small for some databases).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shm_size: Option<ByteSize>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub ulimits: BTreeMap<String, Ulimit>,
    /// DNS servers, instead of the host's.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dns: Vec<std::net::IpAddr>,
    /// Ports the container listens on, not published (the image's own EXPOSE, added to).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub expose: Vec<ContainerPort>,
    /// `os/arch[/variant]` of the image to run, for a multi-platform image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<String>,
    /// An OCI runtime the engine is configured with (`runc`, `crun`, `nvidia`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime: Option<String>,
    /// Namespaced kernel parameters (`net.*`, `kernel.shm*`, `kernel.msg*`, `kernel.sem`, `fs.mqueue.*`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub sysctls: BTreeMap<String, String>,
    /// Host devices, held to the host policy's `allowDevices`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub devices: Vec<Device>,
    /// `no-new-privileges`, `apparmor=PROFILE`, `seccomp=...`, `label=...`; whatever weakens
    /// confinement is held to the host policy.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub security_opt: Vec<String>,
    /// PID namespace: `host` (host policy) or `container:NAME`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<String>,
    /// IPC namespace: `private`, `shareable`, `none`, `host` (host policy) or `container:NAME`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipc: Option<String>,
    /// Supplementary groups of the container's processes, by name or id.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub group_add: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oom_score_adj: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domainname: Option<String>,
    /// Legacy links, `CONTAINER:ALIAS`: the other container reachable under ALIAS.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub links: Vec<String>,
    /// The mounts of other containers, `CONTAINER` or `CONTAINER:ro` (`--volumes-from`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volumes_from: Vec<String>,
    /// Commands run in the container once it has started; one that fails fails the start.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub post_start: Vec<Hook>,
    /// Commands run in the container before it is stopped (their failure stops nothing).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pre_stop: Vec<Hook>,
    /// Environment variables whose values are read from files on the host at apply time. Only
    /// the path and a digest of the content are ever shown, stored or hashed.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub secret_env: BTreeMap<String, SecretRef>,
    /// `metadata.labels` and `spec.labels` merged; `spec.labels` wins.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// How many containers run this spec: a swarm's tasks of the service; on one host, as many
    /// containers (`desired::replicas`). Default 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<u64>,
    /// On one host, which replica of a Container with `replicas` this is; set by the loader,
    /// never declared, not part of the spec's hash.
    #[serde(skip)]
    pub replica: Option<super::replicas::ReplicaOf>,
    /// Swarm: replicated (default) or global (one task on every node).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<ServiceMode>,
    /// Swarm: which nodes may run its tasks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub placement: Option<Placement>,
    /// Swarm: how the service's name resolves: one virtual IP (`vip`, the default) or each
    /// task's address (`dnsrr`, for clients that balance themselves).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint_mode: Option<EndpointMode>,
    // Orchestration, not the container itself: kept out of the change hash (see `hash`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub depends_on: BTreeMap<String, DependCondition>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update: Option<UpdatePolicy>,
}

impl ContainerSpec {
    /// How it is replaced: as `update.strategy` says; else stop-first when it needs what two
    /// containers can't both have (a fixed address; host ports, unless hawser publishes them
    /// itself, `ports_owned`), start-first otherwise.
    pub fn strategy(&self, ports_owned: bool) -> Strategy {
        let fixed_address = self.networks.values().any(|a| a.ipv4_address.is_some() || a.ipv6_address.is_some());
        // hawser's rules are IPv4: a host port on an IPv6 address stays the engine's, which
        // publishes it to one container at a time.
        let engines =
            self.ports.iter().any(|p| p.host_port.is_some() && matches!(p.host_ip, Some(std::net::IpAddr::V6(_))));
        match self.update.as_ref().and_then(|u| u.strategy) {
            Some(s) => s,
            None if self.has_host_ports() && (!ports_owned || engines) || fixed_address => Strategy::StopFirst,
            None => Strategy::StartFirst,
        }
    }

    pub fn has_host_ports(&self) -> bool {
        self.ports.iter().any(|p| p.host_port.is_some())
    }

    /// Containers whose namespaces (`container:NAME` as network mode, pid or ipc) or mounts
    /// (`volumesFrom`) this one takes: it is made after them, and made again when they are.
    pub fn joins(&self) -> impl Iterator<Item = &str> {
        [&self.network_mode, &self.pid, &self.ipc]
            .into_iter()
            .filter_map(|m| m.as_deref().and_then(|m| m.strip_prefix("container:")))
            .chain(self.volumes_from.iter().map(|v| volumes_from_name(v)))
    }

    /// What this container waits for: its `dependsOn` and the containers it joins.
    pub fn needs(&self, other: &str) -> bool {
        self.depends_on.contains_key(other) || self.joins().any(|j| j == other)
    }

    pub fn drain_timeout(&self) -> Duration {
        self.update.as_ref().and_then(|u| u.drain_timeout).or(self.stop_timeout).unwrap_or(Duration::from_secs(10))
    }

    pub fn health_timeout(&self) -> Duration {
        self.update.as_ref().and_then(|u| u.health_timeout).unwrap_or(Duration::from_secs(60))
    }

    pub fn min_uptime(&self) -> Duration {
        self.update.as_ref().and_then(|u| u.min_uptime).unwrap_or(Duration::from_secs(1))
    }

    pub fn has_healthcheck(&self) -> bool {
        self.healthcheck.as_ref().is_some_and(|h| !h.is_disabled())
    }
}

#[cfg(test)]
mod redact_tests {
    use super::SecretValues;

    #[test]
    fn secret_values_are_hidden_in_text_and_short_ones_are_left() {
        let mut s = SecretValues::default();
        s.0.insert(("web".into(), "API_KEY".into()), "s3cret-value".into());
        s.0.insert(("web".into(), "PIN".into()), "42".into());
        s.0.insert(("db".into(), "LONG".into()), "s3cret-value-and-more".into());
        let text =
            "gate failed; last log lines:\n    API_KEY=s3cret-value\n    LONG=s3cret-value-and-more\n    PORT=42";
        assert_eq!(s.redact(text), "gate failed; last log lines:\n    API_KEY=***\n    LONG=***\n    PORT=42");
    }
}
