//! Sources of desired state: a git repository (work tree, bare, or a URL fetched into the state
//! dir) read at one commit, or a plain directory. Either way the result is one immutable
//! [`Snapshot`]: the revision id and the manifest files' text. Uncommitted files are never read
//! from a repository.

mod dir;
mod git;
mod known_hosts;
pub mod signature;

pub use git::is_url;

use crate::desired::diag::{Diagnostic, Diagnostics, Pos, Sink};
use crate::desired::{self, ManifestFile};
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// One revision of a source.
#[derive(Clone, Debug)]
pub struct Snapshot {
    pub project: String,
    /// The commit id, or `dir:` and a content hash for a plain directory.
    pub revision: String,
    /// Manifest files, with paths relative to the source root.
    pub files: Vec<ManifestFile>,
    /// Where the revision's other files (build contexts) are read from.
    pub location: Location,
    /// Compose profiles selected in `hawser.toml`.
    pub profiles: Vec<String>,
    /// Other files of the revision that compose files name (`env_file`), by path from the root.
    pub data: std::collections::BTreeMap<String, String>,
    /// `include` and `exclude` of `hawser.toml`.
    pub filter: desired::ManifestFilter,
    /// Which source this is, as recorded on the objects it applies: the repository's URL
    /// (without credentials) or real path, and `#FOLDER` when the manifests are not at its root.
    pub source_id: String,
    /// `target` of `hawser.toml` (`--target` overrides it).
    pub target: desired::Target,
}

/// Where a snapshot came from, to read more of the same revision later.
#[derive(Clone, Debug, Default)]
pub enum Location {
    /// A repository (a local one, or the cache of a remote) and the commit.
    Git {
        repo: PathBuf,
        commit: String,
    },
    Dir {
        root: PathBuf,
    },
    #[default]
    None,
}

pub use crate::desired::ContextFile;

impl Snapshot {
    /// Every file under `folder` (relative to the source root) in this revision.
    /// Every file under `folder`, refused past `max` bytes in all.
    pub fn files_under(&self, folder: &str, max: u64) -> Result<Vec<ContextFile>, ReadError> {
        let folder = folder.trim_start_matches("./").trim_end_matches('/');
        let mut files = match &self.location {
            Location::Git { repo, commit } => git::files_under(repo, commit, folder, max)?,
            Location::Dir { root } => dir::files_under(root, folder, max)?,
            Location::None => return Err(ReadError::Other("this source has no files".into())),
        };
        files.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(files)
    }

    /// The first line of the commit's message, for notifications (None for a directory).
    pub fn subject(&self) -> Option<String> {
        let Location::Git { repo, commit } = &self.location else { return None };
        let repo = git::open(repo)?;
        let oid = git2::Oid::from_str(commit).ok()?;
        let c = repo.find_commit(oid).ok()?;
        let line = c.summary().ok()??.trim().to_string();
        // A subject is the committer's text: one clean line, not too long.
        let line = crate::terminal::clean_line(&line).chars().take(200).collect::<String>();
        (!line.is_empty()).then_some(line)
    }

    /// The one file at `path` (relative to the source root) in this revision, named by its
    /// file name; `None` when there is no such file.
    /// `None` when there is no such file; refused past `max` bytes.
    pub fn file(&self, path: &str, max: u64) -> Result<Option<ContextFile>, ReadError> {
        let path = path.trim_start_matches("./");
        match &self.location {
            Location::Git { repo, commit } => git::file_at(repo, commit, path, max),
            Location::Dir { root } => dir::file_at(root, path, max),
            Location::None => Err(ReadError::Other("this source has no files".into())),
        }
    }
}

/// Why a file of a revision could not be read.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum ReadError {
    #[error("`{path}` holds more than {max} bytes; refused (maxRepoFileSize of the host policy)")]
    TooLarge { path: String, max: u64 },
    #[error("no such file or folder in this revision of the repository")]
    NotFound,
    #[error("{0}")]
    Other(String),
}

impl ReadError {
    pub fn too_large(path: &str, max: u64) -> ReadError {
        ReadError::TooLarge { path: path.to_string(), max }
    }
}

impl From<String> for ReadError {
    fn from(message: String) -> Self {
        ReadError::Other(message)
    }
}

#[derive(Clone, Debug, Default)]
pub struct SourceOptions {
    pub git_ref: Option<String>,
    pub path: Option<String>,
    /// Overrides `project` of hawser.toml and the default.
    pub project: Option<String>,
    /// Only commits signed by a key in this `allowed_signers` file are read.
    pub allowed_signers: Option<PathBuf>,
    /// Where remote repositories are cached.
    pub cache_dir: PathBuf,
    /// Credentials and host keys for remote repositories.
    pub auth: GitAuth,
    /// A fetch still transferring at this instant stops itself (the service's read budget).
    pub deadline: Option<std::time::Instant>,
    pub limits: SizeLimits,
}

/// How large a revision may be: checked as files are read, before their text is held, so a
/// huge commit costs neither the memory nor the parsing time of a revision.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SizeLimits {
    /// One manifest file (or hawser.toml).
    pub manifest: u64,
    /// All manifest files of a revision together.
    pub revision: u64,
}

impl Default for SizeLimits {
    fn default() -> Self {
        SizeLimits { manifest: 4 << 20, revision: 16 << 20 }
    }
}

/// The bytes of one revision admitted so far, against its limits.
pub(crate) struct SizeBudget {
    limits: SizeLimits,
    used: u64,
}

impl SizeBudget {
    pub(crate) fn new(limits: SizeLimits) -> Self {
        SizeBudget { limits, used: 0 }
    }

    /// Takes `size` bytes of `path`, or says which limit it passes.
    pub(crate) fn admit(&mut self, path: &str, size: u64) -> Result<(), SourceError> {
        let shown = |n: u64| crate::desired::ByteSize(n).to_string();
        let message = if size > self.limits.manifest {
            let size = match size {
                n if n >= 1 << 20 => format!("{:.1} MiB", n as f64 / (1u64 << 20) as f64),
                n if n >= 1 << 10 => format!("{:.1} KiB", n as f64 / 1024.0),
                n => format!("{n} bytes"),
            };
            format!(
                "this file is {size}, over the limit of {} for one manifest; raise it with --max-manifest-size",
                shown(self.limits.manifest)
            )
        } else if self.used + size > self.limits.revision {
            format!(
                "the revision's manifests pass the limit of {} at this file; raise it with --max-revision-size",
                shown(self.limits.revision)
            )
        } else {
            self.used += size;
            return Ok(());
        };
        Err(SourceError::Invalid(Diagnostics(vec![Diagnostic {
            file: path.to_string(),
            pos: Pos::new(1, 1),
            message,
            source: None,
        }])))
    }
}

/// How to reach a remote repository that wants credentials. Only paths: the secrets stay in
/// their files, out of configs, logs and history, and are read at each fetch so that a rotated
/// token needs no restart.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GitAuth {
    /// Private key for `ssh://` and `user@host:path` URLs (unencrypted; OpenSSH or PEM format).
    /// Without it an ssh-agent at `SSH_AUTH_SOCK` is asked.
    pub ssh_key_file: Option<PathBuf>,
    /// OpenSSH known_hosts file the server's host key must be listed in. Default:
    /// `~/.ssh/known_hosts` and `/etc/ssh/ssh_known_hosts`. Unknown hosts are refused, never
    /// trusted on first use.
    pub known_hosts: Option<PathBuf>,
    /// User name for HTTPS token auth (default `x-access-token`, which GitHub and GitLab accept
    /// with any personal or deploy token; Gitea wants the account's name) and for SSH when the
    /// URL names none (default `git`).
    pub username: Option<String>,
    /// File whose first line is an HTTPS token or password.
    pub token_file: Option<PathBuf>,
}

impl GitAuth {
    /// `self`, with what it leaves unset taken from `fallback`.
    pub fn or(&self, fallback: &GitAuth) -> GitAuth {
        GitAuth {
            ssh_key_file: self.ssh_key_file.clone().or_else(|| fallback.ssh_key_file.clone()),
            known_hosts: self.known_hosts.clone().or_else(|| fallback.known_hosts.clone()),
            username: self.username.clone().or_else(|| fallback.username.clone()),
            token_file: self.token_file.clone().or_else(|| fallback.token_file.clone()),
        }
    }
}

/// OpenSSL, which libgit2 sets up on its first use, reads the whole CA bundle named by
/// `SSL_CERT_FILE` right then: 20-30 ms at every start, also for a local repository that never
/// speaks TLS. A hashed certificate directory is read lazily, one issuer at a time, and only by
/// an https fetch. So when the user has chosen neither, and the system has such a directory,
/// that is what OpenSSL is pointed at, with an empty bundle (/dev/null: it must exist, or
/// libgit2's own probe names the full bundle again). Call before any thread starts.
///
/// When the user has chosen a bundle or a directory, libgit2 is set up now with nothing to
/// read, the environment is given back as it was (for the registry client and anything else
/// that reads it), and the chosen ones are handed to libgit2 by [`https_ca`] when an https
/// remote is first fetched: a local repository and the engine's unix socket never pay for them.
pub fn lazy_ca_lookup() {
    let chosen = |name| std::env::var_os(name).filter(|v| !v.is_empty());
    let (file, dir) = (chosen("SSL_CERT_FILE"), chosen("SSL_CERT_DIR"));
    if file.is_some() || dir.is_some() {
        let _ = CHOSEN_CA.set((file.clone(), dir.clone()));
        std::env::set_var("SSL_CERT_FILE", "/dev/null");
        std::env::remove_var("SSL_CERT_DIR");
        git2::opts::strict_hash_verification(true); // sets libgit2 (and its OpenSSL) up
        match file {
            Some(f) => std::env::set_var("SSL_CERT_FILE", f),
            None => std::env::remove_var("SSL_CERT_FILE"),
        }
        if let Some(d) = dir {
            std::env::set_var("SSL_CERT_DIR", d);
        }
        return;
    }
    let dir = Path::new("/etc/ssl/certs");
    let hashed = std::fs::read_dir(dir)
        .map(|entries| entries.flatten().any(|e| e.file_name().to_string_lossy().ends_with(".0")))
        .unwrap_or(false);
    if hashed {
        std::env::set_var("SSL_CERT_DIR", dir);
        std::env::set_var("SSL_CERT_FILE", "/dev/null");
    }
}

/// The CA bundle and directory the user chose (`SSL_CERT_FILE`, `SSL_CERT_DIR`), kept for libgit2.
static CHOSEN_CA: std::sync::OnceLock<(Option<std::ffi::OsString>, Option<std::ffi::OsString>)> =
    std::sync::OnceLock::new();

/// Gives libgit2 the CA bundle and directory the user chose, once, before the first https fetch.
pub fn https_ca() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let Some((file, dir)) = CHOSEN_CA.get() else { return };
        // SAFETY: libgit2 options are process-wide; this runs once, before the first TLS stream.
        unsafe {
            if let Some(f) = file {
                if let Err(e) = git2::opts::set_ssl_cert_file(f.to_string_lossy().as_ref()) {
                    tracing::warn!(file = ?f, error = %e, "cannot load SSL_CERT_FILE");
                }
            }
            if let Some(d) = dir {
                if let Err(e) = git2::opts::set_ssl_cert_dir(d.to_string_lossy().as_ref()) {
                    tracing::warn!(dir = ?d, error = %e, "cannot use SSL_CERT_DIR");
                }
            }
        }
    });
}

/// Why a URL may not be used as a source, if it may not: a password written into the URL would
/// end up in logs, status and history.
pub fn url_problem(url: &str) -> Option<String> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split('/').next().unwrap_or_default();
    let userinfo = authority.rsplit_once('@')?.0;
    userinfo.contains(':').then(|| {
        "the URL carries a password or token: put it in a file and name it as `tokenFile` \
         (or `--git-token-file`), so that it stays out of logs and history"
            .to_string()
    })
}

/// `url` with any password in it replaced, for messages.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_string() };
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    match authority.rsplit_once('@') {
        Some((userinfo, host)) if userinfo.contains(':') => {
            let user = userinfo.split(':').next().unwrap_or_default();
            format!("{scheme}://{user}:***@{host}{path}")
        }
        _ => url.to_string(),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The source does not exist or can't be read.
    #[error("cannot read source `{source_name}`: {message}")]
    Unreadable { source_name: String, message: String },
    /// `--ref` names nothing in the repository.
    #[error("ref `{reference}` not found in `{source_name}`: {message}")]
    UnknownRef { source_name: String, reference: String, message: String },
    /// The commit is unsigned or not signed by an allowed key.
    #[error("refusing `{source_name}`: {refusal}")]
    Signature { source_name: String, refusal: signature::Refusal },
    /// `hawser.toml` is invalid.
    #[error("{0}")]
    Invalid(Diagnostics),
}

/// `hawser.toml` at the root of a source.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct SourceConfig {
    project: Option<String>,
    path: Option<String>,
    /// Compose profiles whose services are deployed (services without profiles always are).
    #[serde(default)]
    profiles: Vec<String>,
    /// Globs of files that are manifests whatever their shape, and of files that never are.
    #[serde(default)]
    include: Vec<String>,
    #[serde(default)]
    exclude: Vec<String>,
    /// `docker` (one host, the default) or `swarm`.
    target: Option<String>,
}

/// The files of a revision before the manifest folder is chosen: path relative to the root, text.
pub(crate) type Tree = Vec<(String, Vec<u8>)>;

/// Reads one revision of `source`.
pub fn read(source: &str, opts: &SourceOptions) -> Result<Snapshot, SourceError> {
    let unreadable = |m: String| SourceError::Unreadable { source_name: source.to_string(), message: m };
    let (default_project, revision, tree, location, base_id) = if git::is_url(source) {
        if let Some(problem) = url_problem(source) {
            return Err(SourceError::Unreadable { source_name: redact_url(source), message: problem });
        }
        let (rev, tree) = git::read_remote(source, opts)?;
        let location = Location::Git { repo: git::cache_path(source, &opts.cache_dir), commit: rev.clone() };
        let name = name_of(source.trim_end_matches('/').rsplit(['/', ':']).next().unwrap_or("default"));
        (name, rev, tree, location, redact_url(source))
    } else {
        let path = Path::new(source);
        let abs = std::fs::canonicalize(path).map_err(|e| unreadable(e.to_string()))?;
        let base = abs.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_else(|| "default".into());
        match git::open(&abs) {
            Some(repo) => {
                let (rev, tree) = git::read_local(
                    &repo,
                    source,
                    opts.git_ref.as_deref(),
                    opts.allowed_signers.as_deref(),
                    opts.limits,
                )?;
                let location = Location::Git { repo: abs.clone(), commit: rev.clone() };
                (name_of(&base), rev, tree, location, abs.display().to_string())
            }
            None => {
                if opts.allowed_signers.is_some() {
                    return Err(unreadable(
                        "signature verification needs a git repository, and this is a plain directory".into(),
                    ));
                }
                if opts.git_ref.is_some() {
                    return Err(unreadable("`--ref` needs a git repository, and this is a plain directory".into()));
                }
                let (rev, tree) = dir::read(&abs, opts.limits).map_err(|e| match e {
                    dir::DirError::Io(e) => unreadable(e.to_string()),
                    dir::DirError::LinkLeaves(link) => link_error(link, false),
                    dir::DirError::Size(e) => e,
                })?;
                (name_of(&base), rev, tree, Location::Dir { root: abs.clone() }, abs.display().to_string())
            }
        }
    };
    let mut snap = snapshot(default_project, revision, tree, opts.path.as_deref())?;
    snap.location = location;
    snap.source_id = match snap.source_id.as_str() {
        "" => base_id,
        folder => format!("{base_id}#{folder}"),
    };
    // Files the compose files name, and those the files they include or extend name in turn;
    // one that is missing is reported where it is named.
    let mut todo: Vec<(String, String)> = snap
        .files
        .iter()
        .filter(|f| desired::compose::is_compose_file(&f.path))
        .map(|f| (f.path.clone(), f.text.clone()))
        .collect();
    let mut seen: std::collections::BTreeSet<String> = todo.iter().map(|(p, _)| p.clone()).collect();
    while let Some((path, text)) = todo.pop() {
        for named in desired::compose::referenced_files(&path, &text) {
            if !seen.insert(named.clone()) {
                continue;
            }
            let text = match snap.files.iter().find(|f| f.path == named) {
                Some(f) => f.text.clone(),
                None => {
                    // Read one file each (never the folder around it), held to the manifest size limit.
                    // A file over the limit is refused before it is read, with the limit's error.
                    let f = match snap.file(&named, opts.limits.manifest) {
                        Ok(Some(f)) => f,
                        Ok(None) => continue,
                        Err(ReadError::TooLarge { .. }) => {
                            SizeBudget::new(opts.limits).admit(&named, opts.limits.manifest.saturating_add(1))?;
                            continue;
                        }
                        Err(ReadError::NotFound | ReadError::Other(_)) => continue,
                    };
                    SizeBudget::new(opts.limits).admit(&named, f.data.len() as u64)?;
                    String::from_utf8_lossy(&f.data).into_owned()
                }
            };
            snap.data.insert(named.clone(), text.clone());
            if named.ends_with(".yaml") || named.ends_with(".yml") {
                todo.push((named, text));
            }
        }
    }
    if let Some(p) = &opts.project {
        if let Err(e) = desired::decode::check_name(p) {
            let diag = Diagnostic { file: "--project".into(), pos: Pos::new(1, 1), message: e.into(), source: None };
            return Err(SourceError::Invalid(Diagnostics(vec![diag])));
        }
        snap.project = p.clone();
    }
    Ok(snap)
}

/// A manifest that is a symbolic link hawser will not follow, named by the link alone.
fn link_error(link: String, in_git: bool) -> SourceError {
    let message = if in_git {
        "a symbolic link, which hawser does not follow in a git source: commit the manifest itself"
    } else {
        "a symbolic link that leads out of the source (or to no file): manifests are read only inside the source"
    };
    SourceError::Invalid(Diagnostics(vec![Diagnostic {
        file: link,
        pos: Pos::new(1, 1),
        message: message.into(),
        source: None,
    }]))
}

/// A project name from a folder or repository name: `shop.git` is project `shop`.
fn name_of(base: &str) -> String {
    let base = base.strip_suffix(".git").unwrap_or(base);
    let cleaned: String =
        base.chars().map(|c| if c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-') { c } else { '-' }).collect();
    let cleaned = cleaned.trim_start_matches(['.', '-', '_']).to_string();
    if cleaned.is_empty() {
        "default".into()
    } else {
        cleaned
    }
}

fn snapshot(
    default_project: String,
    revision: String,
    tree: Tree,
    path_flag: Option<&str>,
) -> Result<Snapshot, SourceError> {
    let mut config = SourceConfig::default();
    if let Some((_, bytes)) = tree.iter().find(|(p, _)| p == "hawser.toml") {
        let text = String::from_utf8_lossy(bytes).to_string();
        match toml::from_str::<SourceConfig>(&text) {
            Ok(c) => config = c,
            Err(e) => {
                let mut diags = Vec::new();
                let pos = e.span().map(|s| Pos::from_offset(&text, s.start)).unwrap_or(Pos::new(1, 1));
                Sink::new("hawser.toml", &text, &mut diags).error(pos, e.message().to_string());
                return Err(SourceError::Invalid(Diagnostics(diags)));
            }
        }
    }
    let globs = |key: &str, patterns: &[String]| -> Result<Option<globset::GlobSet>, SourceError> {
        if patterns.is_empty() {
            return Ok(None);
        }
        let mut set = globset::GlobSetBuilder::new();
        for p in patterns {
            let glob = globset::GlobBuilder::new(p).literal_separator(true).build().map_err(|e| {
                let text =
                    tree.iter().find(|(p, _)| p == "hawser.toml").map(|(_, b)| String::from_utf8_lossy(b).to_string());
                let text = text.unwrap_or_default();
                let pos = text.find(p.as_str()).map(|o| Pos::from_offset(&text, o)).unwrap_or(Pos::new(1, 1));
                let mut diags = Vec::new();
                Sink::new("hawser.toml", &text, &mut diags).error(pos, format!("{key}: {e}"));
                SourceError::Invalid(Diagnostics(diags))
            })?;
            set.add(glob);
        }
        set.build().map(Some).map_err(|e| {
            SourceError::Invalid(Diagnostics(vec![Diagnostic {
                file: "hawser.toml".into(),
                pos: Pos::new(1, 1),
                message: format!("{key}: {e}"),
                source: None,
            }]))
        })
    };
    let filter = desired::ManifestFilter {
        include: globs("include", &config.include)?,
        exclude: globs("exclude", &config.exclude)?,
    };
    let target = match config.target.as_deref().map(str::parse::<desired::Target>) {
        None => desired::Target::default(),
        Some(Ok(t)) => t,
        Some(Err(e)) => {
            let text =
                tree.iter().find(|(p, _)| p == "hawser.toml").map(|(_, b)| String::from_utf8_lossy(b).to_string());
            let text = text.unwrap_or_default();
            let pos = text.find("target").map(|o| Pos::from_offset(&text, o)).unwrap_or(Pos::new(1, 1));
            let diag = Diagnostic { file: "hawser.toml".into(), pos, message: format!("target: {e}"), source: None };
            return Err(SourceError::Invalid(Diagnostics(vec![diag])));
        }
    };
    let project = config.project.unwrap_or(default_project);
    if let Err(e) = desired::decode::check_name(&project) {
        let diag = Diagnostic {
            file: "hawser.toml".into(),
            pos: Pos::new(1, 1),
            message: format!("project: {e}"),
            source: None,
        };
        return Err(SourceError::Invalid(Diagnostics(vec![diag])));
    }
    let folder = path_flag.map(str::to_string).or(config.path).unwrap_or_else(|| ".".into());
    let folder = folder.trim_start_matches("./").trim_end_matches('/').to_string();
    let prefix = if folder.is_empty() || folder == "." { String::new() } else { format!("{folder}/") };
    let mut files = Vec::new();
    for (path, bytes) in tree {
        let Some(rel) = path.strip_prefix(&prefix) else {
            continue;
        };
        if !(desired::is_manifest(rel) || desired::is_dotenv(rel)) || path == "hawser.toml" {
            continue;
        }
        let text = match String::from_utf8(bytes) {
            Ok(t) => t,
            Err(_) => {
                let diag = Diagnostic {
                    file: path.clone(),
                    pos: Pos::new(1, 1),
                    message: "not valid UTF-8".into(),
                    source: None,
                };
                return Err(SourceError::Invalid(Diagnostics(vec![diag])));
            }
        };
        files.push(ManifestFile { path, text });
    }
    files.sort_by(|a, b| a.path.cmp(&b.path));
    // The manifest folder for now; `read` puts the repository in front.
    let source_id = if prefix.is_empty() { String::new() } else { folder };
    Ok(Snapshot {
        project,
        revision,
        files,
        location: Location::None,
        profiles: config.profiles,
        data: Default::default(),
        filter,
        source_id,
        target,
    })
}

/// A revision as the command line and the service both load it: read from `source`, its target
/// chosen (`target` overrides hawser.toml's), its desired state built and, `with_secrets`, its
/// secrets read (from `opts.cache_dir`). Returns the snapshot too, for what else it tells.
pub fn load_revision(
    source: &str,
    opts: &SourceOptions,
    policy: &desired::Policy,
    target: Option<desired::Target>,
    with_secrets: bool,
) -> Result<(desired::DesiredState, Snapshot), SourceError> {
    let mut snap = read(source, opts)?;
    if let Some(t) = target {
        snap.target = t;
    }
    tracing::info!(project = %snap.project, revision = %snap.revision, files = snap.files.len(), "read source");
    let mut d = desired_state(&snap, policy, &opts.cache_dir).map_err(SourceError::Invalid)?;
    if with_secrets {
        desired::secrets::resolve(&mut d, &opts.cache_dir).map_err(SourceError::Invalid)?;
    }
    Ok((d, snap))
}

/// The desired state of a revision as it is applied: its manifests loaded with the process's
/// environment and the revision's profiles and filters, recorded as this source's, its build
/// contexts and mounted repository files read. Warnings are in `warnings`, for the caller to
/// show; secrets are read where they are used.
pub fn desired_state(
    snap: &Snapshot,
    policy: &desired::Policy,
    state_dir: &Path,
) -> Result<desired::DesiredState, Diagnostics> {
    let process_env: std::collections::BTreeMap<String, String> = std::env::vars().collect();
    let profiles = desired::active_profiles(&snap.profiles, &process_env);
    let mut opts = desired::load_options(policy, &process_env, &profiles, &snap.data, &snap.filter);
    opts.target = snap.target;
    let mut d = desired::load_with(&snap.project, &snap.revision, &snap.files, &opts)?;
    d.source = snap.source_id.clone();
    resolve_builds(&mut d, snap)?;
    d.age_identity = policy.age_identity.clone();
    d.host_limits = policy.host_limits();
    let files_root = state_dir.join("files").join(&d.project);
    resolve_repo_files(&mut d, snap, &files_root)?;
    let data_root = state_dir.join("data").join(&d.project);
    data_folders(&mut d, &data_root);
    Ok(d)
}

/// Reads the repository files and folders that containers mount (`Mount::Repo`) from the
/// revision, records each one's content digest on the mount and its files in `d.repo_files`,
/// to be written under `root` when applied.
pub fn resolve_repo_files(
    d: &mut crate::desired::DesiredState,
    snap: &Snapshot,
    root: &Path,
) -> Result<(), Diagnostics> {
    use crate::desired::Mount;
    d.repo_files_root = root.to_path_buf();
    let max_file = d.host_limits.file;
    let mut diags = Vec::new();
    for c in d.containers.values_mut() {
        for m in c.spec.volumes.iter_mut() {
            let Mount::Repo { path, digest, content, read_only, data_folder, access, .. } = m else { continue };
            let read = match content {
                // Declared text: one file named after the config.
                Some(text) => Ok(crate::desired::RepoSnapshot {
                    path: path.clone(),
                    access: None,
                    encrypted: false,
                    single: Some(path.rsplit('/').next().unwrap_or(path).to_string()),
                    files: vec![ContextFile {
                        path: path.rsplit('/').next().unwrap_or(path).to_string(),
                        mode: 0o644,
                        data: text.clone().into_bytes(),
                    }],
                }),
                None => read_repo_path(snap, path, max_file),
            };
            if matches!(read, Err(ReadError::NotFound)) && data_folder.is_some() && content.is_none() {
                // Not a file of the repository: the app's own data (`./data:/data`), see `data_folders`.
                continue;
            }
            if !*read_only {
                d.warnings.push(Diagnostic {
                    file: c.origin.file.clone(),
                    pos: c.origin.pos,
                    message: format!(
                        "Container `{}` mounts `{path}` of the repository writable: its writes are not kept across revisions (each revision mounts a fresh copy)",
                        c.name
                    ),
                    source: None,
                });
            }
            match read {
                Ok(mut files) => {
                    files.access = *access;
                    let key = repo_digest(&files);
                    *digest = Some(key.clone());
                    d.repo_files.insert(key, files);
                }
                Err(message) => diags.push(Diagnostic {
                    file: c.origin.file.clone(),
                    pos: c.origin.pos,
                    message: format!("Container `{}`: bind mount `{path}`: {message}", c.name),
                    source: None,
                }),
            }
        }
    }
    if diags.is_empty() {
        Ok(())
    } else {
        Err(Diagnostics(diags))
    }
}

/// Compose bind mounts of paths the revision does not have become folders of the project's
/// data under `root`, as compose makes them in the project folder: kept across revisions,
/// replacements and prunes, writable unless the compose file says `ro`.
pub fn data_folders(d: &mut crate::desired::DesiredState, root: &Path) {
    use crate::desired::Mount;
    for c in d.containers.values_mut() {
        for m in c.spec.volumes.iter_mut() {
            let Mount::Repo { path, target, digest: None, content: None, data_folder: Some(ro), .. } = m else {
                continue;
            };
            let source = root.join(path.as_str());
            d.data_folders.push(source.clone());
            *m = Mount::Bind { source: source.display().to_string(), target: target.clone(), read_only: *ro };
        }
    }
    d.data_folders.sort();
    d.data_folders.dedup();
}

/// A folder of the revision with the files under it, or one file.
/// What a container mounts of the repository, at most `max` bytes in all.
fn read_repo_path(snap: &Snapshot, path: &str, max: u64) -> Result<crate::desired::RepoSnapshot, ReadError> {
    use crate::desired::RepoSnapshot;
    if let Some(file) = snap.file(path, max)? {
        return Ok(RepoSnapshot {
            path: path.to_string(),
            access: None,
            encrypted: path.ends_with(".age") && data_is_age(&file.data),
            single: Some(file.path.clone()),
            files: vec![file],
        });
    }
    match snap.files_under(path, max) {
        Ok(files) if !files.is_empty() => {
            Ok(RepoSnapshot { path: path.to_string(), access: None, encrypted: false, single: None, files })
        }
        Err(e @ ReadError::TooLarge { .. }) => Err(e),
        _ => Err(ReadError::NotFound),
    }
}

/// Whether a file is an age file, binary or armored (its first line says so).
fn data_is_age(data: &[u8]) -> bool {
    data.starts_with(b"age-encryption.org/") || data.starts_with(b"-----BEGIN AGE ENCRYPTED FILE-----")
}

/// The digest that names a snapshot: of its shape (file or folder), paths, modes and bytes.
fn repo_digest(snap: &crate::desired::RepoSnapshot) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(snap.single.as_deref().unwrap_or("/").as_bytes());
    if let Some(a) = &snap.access {
        // Owner and mode are part of what is mounted: a change is a new snapshot.
        h.update(format!("access:{:?}:{:?}:{:?}", a.uid, a.gid, a.mode.map(|m| m.0)).as_bytes());
    }
    for f in &snap.files {
        h.update((f.path.len() as u64).to_le_bytes());
        h.update(f.path.as_bytes());
        h.update(if f.mode & 0o111 != 0 { b"x" } else { b"-" });
        h.update((f.data.len() as u64).to_le_bytes());
        h.update(&f.data);
    }
    hex::encode(&h.finalize()[..12])
}

/// Reads the build context of every Image with `build` from the revision, and tags each with a
/// hash of its context, Dockerfile, args and target: an unchanged context keeps its tag (and is
/// never rebuilt), a changed one gets a new tag, which replaces the containers that run it.
pub fn resolve_builds(d: &mut crate::desired::DesiredState, snap: &Snapshot) -> Result<(), Diagnostics> {
    use sha2::{Digest, Sha256};
    let mut diags = Vec::new();
    let names: Vec<String> = d.images.iter().filter(|(_, i)| i.spec.build.is_some()).map(|(n, _)| n.clone()).collect();
    for name in names {
        let img = &d.images[&name];
        let build = img.spec.build.clone().expect("filtered on build");
        let problem = |message: String| Diagnostic {
            file: img.origin.file.clone(),
            pos: img.origin.pos,
            message: format!("Image `{name}`: {message}"),
            source: None,
        };
        // A build context is sent to the engine whole; it is bounded by the engine, not here.
        let files = match snap.files_under(&build.context, u64::MAX) {
            Ok(f) => f,
            Err(e) => {
                diags.push(problem(format!("build.context: {e}")));
                continue;
            }
        };
        let mut files = files;
        let dockerfile = match &build.dockerfile_inline {
            // Sent with the context under a name of its own, in place of any file so named.
            Some(text) => {
                let name = ".hawser.inline.Dockerfile".to_string();
                files.retain(|f| f.path != name);
                files.push(crate::desired::ContextFile {
                    path: name.clone(),
                    mode: 0o100644,
                    data: text.clone().into_bytes(),
                });
                name
            }
            None => build.dockerfile.clone().unwrap_or_else(|| "Dockerfile".into()),
        };
        if !files.iter().any(|f| f.path == dockerfile) {
            diags.push(problem(format!("there is no `{dockerfile}` in build context `{}`", build.context)));
            continue;
        }
        let mut h = Sha256::new();
        h.update(dockerfile.as_bytes());
        h.update(serde_json::to_vec(&build.args).unwrap_or_default());
        h.update(build.target.clone().unwrap_or_default().as_bytes());
        let options = build.options_view();
        if !options.is_empty() {
            h.update(serde_json::to_vec(&options).unwrap_or_default());
        }
        for f in &files {
            h.update((f.path.len() as u64).to_le_bytes());
            h.update(f.path.as_bytes());
            h.update(f.mode.to_le_bytes());
            h.update((f.data.len() as u64).to_le_bytes());
            h.update(&f.data);
        }
        let hash = hex::encode(&h.finalize()[..6]);
        let old = img.spec.reference.clone();
        let last = old.rfind('/').map_or(0, |i| i + 1);
        let repo = match old[last..].find(':') {
            Some(i) => &old[..last + i],
            None => old.as_str(),
        };
        let tag = format!("{repo}:ctx-{hash}");
        for c in d.containers.values_mut() {
            if c.spec.image == old {
                c.spec.image = tag.clone();
            }
        }
        d.images.get_mut(&name).expect("present").spec.reference = tag.clone();
        d.builds.insert(
            name,
            crate::desired::BuildContext {
                tag,
                files,
                dockerfile,
                args: build.args.clone(),
                target: build.target.clone(),
                push: build.push,
                labels: build.labels.clone(),
                extra_hosts: build.extra_hosts.clone(),
                shm_size: build.shm_size,
                network: build.network.clone(),
                platform: build.platform.clone(),
                cache_from: build.cache_from.clone(),
                no_cache: build.no_cache,
                pull: build.pull,
            },
        );
    }
    if diags.is_empty() {
        Ok(())
    } else {
        Err(Diagnostics(diags))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(files: &[(&str, &str)]) -> Tree {
        files.iter().map(|(p, t)| (p.to_string(), t.as_bytes().to_vec())).collect()
    }

    fn git_in(dir: &Path, args: &[&str]) {
        let ok = std::process::Command::new("git")
            .args(["-c", "user.name=t", "-c", "user.email=t@t", "-c", "commit.gpgsign=false"])
            .args(args)
            .current_dir(dir)
            .output()
            .unwrap()
            .status
            .success();
        assert!(ok, "git {args:?}");
    }

    fn opts() -> SourceOptions {
        SourceOptions { cache_dir: std::env::temp_dir(), ..Default::default() }
    }

    /// Regression: `evil.yaml -> /etc/passwd` put the target's first line in the error, and so
    /// in `/status` and the history.
    #[test]
    fn a_symbolic_link_out_of_a_folder_is_an_error_naming_only_the_link() {
        let outside = tempfile::tempdir().unwrap();
        let secret = outside.path().join("token");
        std::fs::write(&secret, "SECRET-MARKER-4711: here\n").unwrap();
        let root = tempfile::tempdir().unwrap();
        std::fs::write(root.path().join("ok.yaml"), "kind: Volume\nmetadata: {name: v}\n").unwrap();
        std::os::unix::fs::symlink("ok.yaml", root.path().join("alias.yaml")).unwrap();
        let snap = read(root.path().to_str().unwrap(), &opts()).unwrap();
        assert_eq!(snap.files.len(), 2, "a link inside the source is read");

        std::os::unix::fs::symlink(&secret, root.path().join("evil.yaml")).unwrap();
        let e = read(root.path().to_str().unwrap(), &opts()).unwrap_err().to_string();
        assert!(e.starts_with("evil.yaml:1:1: a symbolic link that leads out of the source"), "{e}");
        assert!(!e.contains("SECRET-MARKER") && !e.contains("token"), "{e}");
        std::fs::remove_file(root.path().join("evil.yaml")).unwrap();
        std::os::unix::fs::symlink("../../../../../../../../etc/hostname", root.path().join("up.yml")).unwrap();
        let e = read(root.path().to_str().unwrap(), &opts()).unwrap_err().to_string();
        assert!(e.starts_with("up.yml:1:1: a symbolic link"), "{e}");
    }

    #[test]
    fn include_and_exclude_globs_of_hawser_toml_decide_over_shape() {
        let root = tempfile::tempdir().unwrap();
        let w = |p: &str, t: &str| {
            let path = root.path().join(p);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, t).unwrap();
        };
        w("hawser.toml", "include = [\"forced/*.yml\"]\nexclude = [\"legacy/**\"]\n");
        w("legacy/old/net.yaml", "kind: Network\nmetadata: {name: old}\nspec: {driver: weave}\n");
        w("forced/thing.yml", "name: not a manifest\n");
        w("ok.yaml", "kind: Volume\nmetadata: {name: v}\n");
        let snap = read(root.path().to_str().unwrap(), &opts()).unwrap();
        let (env, data, policy) = (Default::default(), Default::default(), crate::desired::Policy::default());
        let o = crate::desired::load_options(&policy, &env, &[], &data, &snap.filter);
        let e = crate::desired::load_with(&snap.project, "r", &snap.files, &o).unwrap_err().to_string();
        assert!(e.starts_with("forced/thing.yml:1:1:"), "included, so checked as a manifest: {e}");
        assert!(!e.contains("legacy"), "excluded: {e}");
        w("hawser.toml", "include = [\"[oops\"]\n");
        let e = read(root.path().to_str().unwrap(), &opts()).unwrap_err().to_string();
        assert!(e.starts_with("hawser.toml:1:13: include:"), "{e}");
    }

    #[test]
    fn files_and_revisions_over_their_size_limits_are_refused_before_they_are_read() {
        let root = tempfile::tempdir().unwrap();
        let volume = |name: &str| format!("kind: Volume\nmetadata: {{name: {name}}}\n# {}\n", "x".repeat(600));
        std::fs::write(root.path().join("a.yaml"), volume("a")).unwrap();
        std::fs::write(root.path().join("b.yaml"), volume("b")).unwrap();
        let limited = |manifest, revision| SourceOptions { limits: SizeLimits { manifest, revision }, ..opts() };
        let src = root.path().to_str().unwrap();
        assert_eq!(read(src, &limited(1000, 2000)).unwrap().files.len(), 2);
        let e = read(src, &limited(500, 2000)).unwrap_err().to_string();
        assert!(e.starts_with("a.yaml:1:1: this file is 636 bytes, over the limit of 500 for one manifest"), "{e}");
        assert!(e.contains("--max-manifest-size"), "{e}");
        let e = read(src, &limited(1000, 1000)).unwrap_err().to_string();
        assert!(e.starts_with("b.yaml:1:1: the revision's manifests pass the limit of 1000"), "{e}");
        assert!(e.contains("--max-revision-size"), "{e}");

        // The same from git, where sizes come from object headers.
        let git = |args: &[&str]| git_in(root.path(), args);
        git(&["init", "-q"]);
        git(&["add", "-A"]);
        git(&["commit", "-qm", "two"]);
        assert_eq!(read(src, &limited(1000, 2000)).unwrap().files.len(), 2);
        let e = read(src, &limited(1000, 1000)).unwrap_err().to_string();
        assert!(e.contains("pass the limit of 1000"), "{e}");
    }

    #[test]
    fn a_symbolic_link_committed_to_git_is_an_error() {
        let root = tempfile::tempdir().unwrap();
        let git = |args: &[&str]| git_in(root.path(), args);
        git(&["init", "-q"]);
        std::os::unix::fs::symlink("/etc/passwd", root.path().join("evil.yaml")).unwrap();
        git(&["add", "-A"]);
        git(&["commit", "-qm", "link"]);
        let e = read(root.path().to_str().unwrap(), &opts()).unwrap_err().to_string();
        assert!(e.starts_with("evil.yaml:1:1: a symbolic link, which hawser does not follow"), "{e}");
        assert!(!e.contains("root:"), "{e}");
    }

    #[test]
    fn passwords_in_urls_are_refused_and_redacted() {
        assert!(url_problem("https://deploy:s3cret@git.example/shop.git").is_some());
        assert!(url_problem("https://deploy@git.example/shop.git").is_none());
        assert!(url_problem("ssh://git@git.example:2222/shop.git").is_none());
        assert!(url_problem("git@git.example:team/shop.git").is_none());
        assert!(url_problem("https://git.example/a:b@c").is_none(), "an @ in the path is no userinfo");
        assert_eq!(redact_url("https://deploy:s3cret@git.example/shop.git"), "https://deploy:***@git.example/shop.git");
        assert_eq!(redact_url("https://git.example/shop.git"), "https://git.example/shop.git");
    }

    #[test]
    fn auth_fills_what_it_leaves_unset_from_the_fallback() {
        let config = GitAuth { ssh_key_file: Some("/etc/hawser/key".into()), ..Default::default() };
        let flags = GitAuth {
            ssh_key_file: Some("/flag/key".into()),
            token_file: Some("/flag/token".into()),
            ..Default::default()
        };
        let merged = config.or(&flags);
        assert_eq!(merged.ssh_key_file, Some("/etc/hawser/key".into()));
        assert_eq!(merged.token_file, Some("/flag/token".into()));
        assert_eq!(merged.known_hosts, None);
    }

    #[test]
    fn project_and_path_from_hawser_toml() {
        let t = tree(&[
            ("hawser.toml", "project = \"shop\"\npath = \"deploy\"\n"),
            ("deploy/web.yaml", "x"),
            ("deploy/sub/db.toml", "x"),
            ("other/ignored.yaml", "x"),
            ("deploy/README.md", "x"),
        ]);
        let s = snapshot("repo".into(), "abc".into(), t, None).unwrap();
        assert_eq!(s.project, "shop");
        let paths: Vec<_> = s.files.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(paths, ["deploy/sub/db.toml", "deploy/web.yaml"]);
    }

    #[test]
    fn path_flag_overrides_and_hawser_toml_is_not_a_manifest() {
        let t = tree(&[("hawser.toml", "path = \"deploy\"\n"), ("a.yaml", "x"), ("deploy/b.yaml", "x")]);
        let s = snapshot("repo".into(), "abc".into(), t, Some(".")).unwrap();
        assert_eq!(s.project, "repo");
        let paths: Vec<_> = s.files.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(paths, ["a.yaml", "deploy/b.yaml"]);
    }

    #[test]
    fn bad_hawser_toml_is_positioned() {
        let t = tree(&[("hawser.toml", "project = \"x\"\nflavour = 1\n")]);
        let Err(SourceError::Invalid(d)) = snapshot("r".into(), "a".into(), t, None) else { panic!() };
        assert_eq!(d.0[0].pos.line, 2);
        assert!(d.0[0].message.contains("flavour"), "{}", d.0[0].message);
    }

    #[test]
    fn project_names_from_folders() {
        assert_eq!(name_of("shop.git"), "shop");
        assert_eq!(name_of("my stack"), "my-stack");
    }
}
