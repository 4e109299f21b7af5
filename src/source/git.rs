//! Git repositories as sources, through libgit2. Manifests are read from the commit's tree, not
//! from a work tree, so what is applied is exactly what was committed.

use super::{SourceError, Tree};
use git2::{ObjectType, Repository, RepositoryOpenFlags, TreeWalkMode, TreeWalkResult};
use std::path::Path;

pub fn is_url(s: &str) -> bool {
    s.starts_with("https://")
        || s.starts_with("http://")
        || s.starts_with("ssh://")
        || s.starts_with("file://")
        || s.starts_with("git://")
        || (s.contains('@') && s.contains(':') && !s.starts_with('/') && !s.contains("://"))
}

/// Opens `path` if it is itself a repository (work tree or bare); a folder inside one is not.
pub fn open(path: &Path) -> Option<Repository> {
    // Inside a pre-receive hook the pushed objects sit in a quarantine directory that git names
    // in the environment; libgit2 reads it only when asked to.
    if std::env::var_os("GIT_QUARANTINE_PATH").is_some() {
        if let Ok(repo) = Repository::open_from_env() {
            let same = std::fs::canonicalize(repo.path()).ok() == std::fs::canonicalize(path).ok()
                || repo.workdir().and_then(|w| std::fs::canonicalize(w).ok()) == std::fs::canonicalize(path).ok();
            if same {
                return Some(repo);
            }
        }
    }
    // A plain folder is told apart without libgit2: its first use sets up OpenSSL, which costs
    // a no-op of a folder source a tenth of its time.
    let may_be_repository =
        path.join(".git").exists() || (path.join("HEAD").is_file() && path.join("objects").is_dir());
    if !may_be_repository {
        return None;
    }
    Repository::open_ext(path, RepositoryOpenFlags::NO_SEARCH, &[] as &[&std::ffi::OsStr]).ok()
}

pub fn read_local(
    repo: &Repository,
    source: &str,
    reference: Option<&str>,
    signers: Option<&Path>,
    limits: super::SizeLimits,
) -> Result<(String, Tree), SourceError> {
    let r = reference.unwrap_or("HEAD");
    read_commit(repo, source, r, &[r], signers, limits)
}

fn read_commit(
    repo: &Repository,
    source: &str,
    shown: &str,
    candidates: &[&str],
    signers: Option<&Path>,
    limits: super::SizeLimits,
) -> Result<(String, Tree), SourceError> {
    let mut last = String::new();
    for c in candidates {
        match repo.revparse_single(c).and_then(|o| o.peel_to_commit()) {
            Ok(commit) => {
                if let Some(allowed) = signers {
                    super::signature::verify(repo, commit.id(), allowed)
                        .map_err(|refusal| SourceError::Signature { source_name: source.to_string(), refusal })?;
                }
                let tree = commit.tree().map_err(|e| unreadable(source, e))?;
                let mut budget = super::SizeBudget::new(limits);
                let (files, links) = files_of(repo, &tree, &mut budget).map_err(|e| match e {
                    FilesError::Git(e) => unreadable(source, e),
                    FilesError::Size(e) => e,
                })?;
                if let Some(link) = links.into_iter().next() {
                    return Err(super::link_error(link, true));
                }
                return Ok((commit.id().to_string(), files));
            }
            Err(e) => last = e.message().to_string(),
        }
    }
    Err(SourceError::UnknownRef { source_name: source.to_string(), reference: shown.to_string(), message: last })
}

fn unreadable(source: &str, e: git2::Error) -> SourceError {
    SourceError::Unreadable { source_name: source.to_string(), message: e.message().to_string() }
}

enum FilesError {
    Git(git2::Error),
    Size(SourceError),
}

/// The manifests of a commit, and the paths of manifests that are symbolic links. A file over
/// its limit is refused before its text is copied or parsed.
fn files_of(
    repo: &Repository,
    tree: &git2::Tree<'_>,
    budget: &mut super::SizeBudget,
) -> Result<(Tree, Vec<String>), FilesError> {
    let mut out = Vec::new();
    let mut err = None;
    let mut links = Vec::new();
    let walked = tree.walk(TreeWalkMode::PreOrder, |root, entry| {
        if entry.kind() != Some(ObjectType::Blob) {
            return TreeWalkResult::Ok;
        }
        let path = format!("{root}{}", entry.name().unwrap_or_default());
        let wanted = path == "hawser.toml" || crate::desired::is_manifest(&path) || crate::desired::is_dotenv(&path);
        if wanted && entry.filemode() == 0o120000 {
            // A link's blob is its target's path: reading it as a manifest would mean neither.
            links.push(path);
            return TreeWalkResult::Ok;
        }
        if wanted {
            let blob = match repo.find_blob(entry.id()) {
                Ok(blob) => blob,
                Err(e) => {
                    err = Some(FilesError::Git(e));
                    return TreeWalkResult::Abort;
                }
            };
            if let Err(e) = budget.admit(&path, blob.size() as u64) {
                err = Some(FilesError::Size(e));
                return TreeWalkResult::Abort;
            }
            out.push((path, blob.content().to_vec()));
        }
        TreeWalkResult::Ok
    });
    // An aborted walk is an error of its own; the reason is the callback's.
    if let Some(e) = err {
        return Err(e);
    }
    walked.map_err(FilesError::Git)?;
    Ok((out, links))
}

/// Where the cache of remote `url` lives.
pub fn cache_path(url: &str, cache_dir: &Path) -> std::path::PathBuf {
    let key = hex::encode(&<sha2::Sha256 as sha2::Digest>::digest(url.as_bytes())[..8]);
    cache_dir.join("sources").join(key)
}

/// Every blob under `folder` of `commit`, with paths relative to `folder`.
/// Refuses a read past `max` bytes in all, before the blob is inflated: its size is in the
/// object's header. `left` is what remains of it.
fn within(repo: &Repository, id: git2::Oid, path: &str, left: &mut u64, max: u64) -> Result<(), super::ReadError> {
    let (size, _) = repo.odb().and_then(|odb| odb.read_header(id)).map_err(|e| e.message().to_string())?;
    *left = left.checked_sub(size as u64).ok_or_else(|| super::ReadError::too_large(path, max))?;
    Ok(())
}

/// Every file under `folder` of the commit, at most `max` bytes in all.
pub fn files_under(
    repo_path: &Path,
    commit: &str,
    folder: &str,
    max: u64,
) -> Result<Vec<super::ContextFile>, super::ReadError> {
    let repo = open(repo_path)
        .or_else(|| Repository::open_bare(repo_path).ok())
        .ok_or_else(|| format!("cannot open {}", repo_path.display()))?;
    let oid = git2::Oid::from_str(commit).map_err(|e| e.message().to_string())?;
    let tree = repo.find_commit(oid).and_then(|c| c.tree()).map_err(|e| e.message().to_string())?;
    let sub = if folder.is_empty() || folder == "." {
        tree
    } else {
        let entry =
            tree.get_path(Path::new(folder)).map_err(|_| format!("folder `{folder}` is not in the revision"))?;
        repo.find_tree(entry.id()).map_err(|_| format!("`{folder}` is not a folder"))?
    };
    let mut out = Vec::new();
    let mut err = None;
    let mut left = max;
    sub.walk(TreeWalkMode::PreOrder, |root, entry| {
        if entry.kind() != Some(ObjectType::Blob) {
            return TreeWalkResult::Ok;
        }
        if let Err(e) = within(&repo, entry.id(), folder, &mut left, max) {
            err = Some(e);
            return TreeWalkResult::Abort;
        }
        match repo.find_blob(entry.id()) {
            Ok(blob) => out.push(super::ContextFile {
                path: format!("{root}{}", entry.name().unwrap_or_default()),
                mode: entry.filemode() as u32,
                data: blob.content().to_vec(),
            }),
            Err(e) => {
                err = Some(super::ReadError::Other(e.message().to_string()));
                return TreeWalkResult::Abort;
            }
        }
        TreeWalkResult::Ok
    })
    .map_err(|e| err.clone().unwrap_or_else(|| super::ReadError::Other(e.message().to_string())))?;
    match err {
        Some(e) => Err(e),
        None => Ok(out),
    }
}

/// The file at `path` of a commit; `None` when there is none (or it is a folder or a link).
pub fn file_at(
    repo_path: &Path,
    commit: &str,
    path: &str,
    max: u64,
) -> Result<Option<super::ContextFile>, super::ReadError> {
    let repo = open(repo_path)
        .or_else(|| Repository::open_bare(repo_path).ok())
        .ok_or_else(|| format!("cannot open {}", repo_path.display()))?;
    let oid = git2::Oid::from_str(commit).map_err(|e| e.message().to_string())?;
    let tree = repo.find_commit(oid).and_then(|c| c.tree()).map_err(|e| e.message().to_string())?;
    let Ok(entry) = tree.get_path(Path::new(path)) else { return Ok(None) };
    if entry.kind() != Some(ObjectType::Blob) || entry.filemode() == 0o120000 {
        return Ok(None);
    }
    within(&repo, entry.id(), path, &mut max.clone(), max)?;
    let blob = repo.find_blob(entry.id()).map_err(|e| e.message().to_string())?;
    let name = path.rsplit('/').next().unwrap_or(path).to_string();
    Ok(Some(super::ContextFile { path: name, mode: entry.filemode() as u32, data: blob.content().to_vec() }))
}

/// How long a remote may take to accept a connection, and to answer each read.
const CONNECT_TIMEOUT_MS: i32 = 10_000;
const READ_TIMEOUT_MS: i32 = 20_000;

/// Fetches a remote repository into the cache and reads `reference` (default: the remote's HEAD).
pub fn read_remote(url: &str, opts: &super::SourceOptions) -> Result<(String, Tree), SourceError> {
    static TIMEOUTS: std::sync::Once = std::sync::Once::new();
    // A server that accepts and then says nothing would hold a fetch, and its thread, forever.
    // SAFETY: libgit2's global options; every remote operation passes here first and waits on
    // the Once, so none runs while they are set.
    TIMEOUTS.call_once(|| unsafe {
        let _ = git2::opts::set_server_connect_timeout_in_milliseconds(CONNECT_TIMEOUT_MS);
        let _ = git2::opts::set_server_timeout_in_milliseconds(READ_TIMEOUT_MS);
    });
    let signers = opts.allowed_signers.as_deref();
    let dir = cache_path(url, &opts.cache_dir);
    let repo = match Repository::open_bare(&dir) {
        Ok(r) => r,
        Err(_) => {
            std::fs::create_dir_all(&dir).map_err(|e| SourceError::Unreadable {
                source_name: url.to_string(),
                message: format!("cannot create cache {}: {e}", dir.display()),
            })?;
            Repository::init_bare(&dir).map_err(|e| unreadable(url, e))?
        }
    };
    let mut remote = repo.remote_anonymous(url).map_err(|e| unreadable(url, e))?;
    // libgit2 replaces a callback's error with its own generic one ("invalid or unknown remote
    // ssh hostkey"); the callbacks keep theirs here, and it is the one reported.
    let why = std::cell::RefCell::new(None::<String>);
    // libgit2 says a read timed out in the words of whichever transport it was (libssh2's, the
    // socket's EAGAIN), not always with its timeout code: a failure that waited out the read
    // timeout is one.
    let began = std::time::Instant::now();
    let failed = |e: git2::Error| {
        let message = why.borrow_mut().take().unwrap_or_else(|| {
            let m = e.message();
            let waited = began.elapsed() >= std::time::Duration::from_millis(READ_TIMEOUT_MS as u64 - 1000);
            if e.code() == git2::ErrorCode::Timeout || waited {
                format!("the server did not answer within {}s ({m})", READ_TIMEOUT_MS / 1000)
            } else {
                m.to_string()
            }
        });
        SourceError::Unreadable { source_name: url.to_string(), message }
    };
    // Ask for the remote's refs first (one round trip, no objects): when every ref the cache
    // knows still points where it did, there is nothing to fetch.
    let unchanged = {
        let conn = remote
            .connect_auth(git2::Direction::Fetch, Some(callbacks(url, opts, &why)), Some(proxy()))
            .map_err(failed)?;
        let heads = conn.list().map_err(failed)?;
        !heads.is_empty()
            && heads.iter().all(|h| {
                let local = match h.name() {
                    "HEAD" => Some("refs/remotes/origin/HEAD".to_string()),
                    n => n
                        .strip_prefix("refs/heads/")
                        .map(|b| format!("refs/remotes/origin/{b}"))
                        .or_else(|| n.starts_with("refs/tags/").then(|| n.trim_end_matches("^{}").to_string())),
                };
                match local {
                    None => true,
                    Some(_) if h.name().ends_with("^{}") => true,
                    Some(l) => repo.refname_to_id(&l).ok() == Some(h.oid()),
                }
            })
    };
    if !unchanged {
        let refspecs =
            ["+refs/heads/*:refs/remotes/origin/*", "+refs/tags/*:refs/tags/*", "+HEAD:refs/remotes/origin/HEAD"];
        let mut fetch = git2::FetchOptions::new();
        fetch.remote_callbacks(callbacks(url, opts, &why)).proxy_options(proxy());
        remote.fetch(&refspecs, Some(&mut fetch), None).map_err(failed)?;
    } else {
        tracing::debug!(%url, "remote refs unchanged; no fetch");
    }
    drop(remote);
    match opts.git_ref.as_deref() {
        None => read_commit(&repo, url, "HEAD", &["refs/remotes/origin/HEAD"], signers, opts.limits),
        Some(r) => {
            let remote_branch = format!("refs/remotes/origin/{r}");
            read_commit(&repo, url, r, &[&remote_branch, r], signers, opts.limits)
        }
    }
}

/// The proxy git's config or the `https_proxy`-style variables name, if any.
fn proxy() -> git2::ProxyOptions<'static> {
    let mut p = git2::ProxyOptions::new();
    p.auto();
    p
}

/// Credentials from `auth`, each offered once (libgit2 asks again after a refusal, and a second
/// offer of the same secret would only loop), and SSH host keys checked against known_hosts.
fn callbacks<'a>(
    url: &'a str,
    opts: &'a super::SourceOptions,
    why: &'a std::cell::RefCell<Option<String>>,
) -> git2::RemoteCallbacks<'a> {
    use git2::{Cred, CredentialType};
    let auth = &opts.auth;
    if url.starts_with("https://") {
        super::https_ca();
    }
    let mut cb = git2::RemoteCallbacks::new();
    // Returning false from a progress callback cancels the transfer: a fetch past its deadline
    // ends here instead of running on in a thread nobody waits for.
    let in_time = move || match opts.deadline {
        Some(d) if std::time::Instant::now() >= d => {
            *why.borrow_mut() = Some("the fetch ran past its deadline and was cancelled".into());
            false
        }
        _ => true,
    };
    cb.transfer_progress(move |_| in_time());
    cb.sideband_progress(move |_| in_time());
    let mut offered = CredentialType::empty();
    let note = move |m: String| {
        let e = git2::Error::from_str(&m);
        *why.borrow_mut() = Some(m);
        e
    };
    cb.credentials(move |_, url_user, allowed| {
        let fail = |m: String| Err(note(m));
        let ssh_user = url_user.or(auth.username.as_deref()).unwrap_or("git");
        if allowed.contains(CredentialType::USERNAME) {
            return Cred::username(ssh_user);
        }
        if allowed.contains(CredentialType::SSH_KEY) {
            if offered.contains(CredentialType::SSH_KEY) {
                return fail(match &auth.ssh_key_file {
                    Some(k) => format!("the server refused the SSH key {} for user `{ssh_user}`", k.display()),
                    None => format!("the server refused the ssh-agent's keys for user `{ssh_user}`"),
                });
            }
            offered |= CredentialType::SSH_KEY;
            return match &auth.ssh_key_file {
                Some(k) if !k.is_file() => fail(format!("SSH key file {} does not exist", k.display())),
                Some(k) => Cred::ssh_key(ssh_user, None, k, None),
                None if std::env::var_os("SSH_AUTH_SOCK").is_some_and(|s| !s.is_empty()) => {
                    Cred::ssh_key_from_agent(ssh_user)
                }
                None => fail("the server wants an SSH key: set `auth.sshKeyFile` (or `--ssh-key`)".into()),
            };
        }
        if allowed.contains(CredentialType::USER_PASS_PLAINTEXT) {
            let Some(file) = &auth.token_file else {
                return fail("the server wants credentials: set `auth.tokenFile` (or `--git-token-file`)".into());
            };
            if offered.contains(CredentialType::USER_PASS_PLAINTEXT) {
                return fail(format!("the server refused the token in {}", file.display()));
            }
            offered |= CredentialType::USER_PASS_PLAINTEXT;
            let token = match std::fs::read_to_string(file) {
                Ok(t) => t,
                Err(e) => return fail(format!("cannot read token file {}: {e}", file.display())),
            };
            let token = token.lines().next().unwrap_or_default().trim();
            if token.is_empty() {
                return fail(format!("token file {} is empty", file.display()));
            }
            let user = auth.username.as_deref().or(url_user).unwrap_or("x-access-token");
            return Cred::userpass_plaintext(user, token);
        }
        fail(format!("the server wants a kind of credentials hawser does not offer ({allowed:?})"))
    });
    cb.certificate_check(move |cert, host| match cert.as_hostkey() {
        // TLS: libgit2 has verified the chain against the system's trust store (or
        // SSL_CERT_FILE / SSL_CERT_DIR); its verdict stands.
        None => Ok(git2::CertificateCheckStatus::CertificatePassthrough),
        Some(key) => check_host_key(url, host, key.hostkey(), &auth.known_hosts).map_err(|e| note(e.to_string())),
    });
    cb
}

/// Why an SSH server's host key is not trusted.
#[derive(Debug, thiserror::Error)]
enum HostKeyError {
    #[error("the server's SSH host key could not be read")]
    Unreadable,
    #[error("cannot read known_hosts {shown}; add the server's key with {add}")]
    NoKnownHosts { shown: String, add: String },
    #[error("host {name} is not in {shown} (its key is SHA256:{fingerprint}); add it with {add}")]
    Unknown { name: String, shown: String, fingerprint: String, add: String },
    #[error(
        "HOST KEY MISMATCH for {name}: it presented SHA256:{fingerprint}, which {shown} does not list for it; \
         someone may be in the middle. If the server's key really changed, replace its line"
    )]
    Mismatch { name: String, shown: String, fingerprint: String },
    #[error("host key SHA256:{fingerprint} of {name} is revoked in {shown}")]
    Revoked { name: String, shown: String, fingerprint: String },
}

/// The system-wide known_hosts that OpenSSH also reads, beside the user's own.
const SYSTEM_KNOWN_HOSTS: &str = "/etc/ssh/ssh_known_hosts";

fn check_host_key(
    url: &str,
    host: &str,
    key: Option<&[u8]>,
    known_hosts: &Option<std::path::PathBuf>,
) -> Result<git2::CertificateCheckStatus, HostKeyError> {
    use super::known_hosts::{check, host_name, Verdict};
    let Some(key) = key else { return Err(HostKeyError::Unreadable) };
    // A file the user named is the only one consulted; otherwise OpenSSH's two defaults.
    let files: Vec<std::path::PathBuf> = match known_hosts {
        Some(f) => vec![f.clone()],
        None => std::env::var_os("HOME")
            .map(|home| Path::new(&home).join(".ssh/known_hosts"))
            .into_iter()
            .chain([std::path::PathBuf::from(SYSTEM_KNOWN_HOSTS)])
            .collect(),
    };
    let shown = files.iter().map(|f| f.display().to_string()).collect::<Vec<_>>().join(" or ");
    let name = host_name(host, ssh_port(url));
    let fingerprint = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD_NO_PAD,
        <sha2::Sha256 as sha2::Digest>::digest(key),
    );
    let add =
        format!("`ssh-keyscan -p {} {host} >> {}` after checking its fingerprint", ssh_port(url), files[0].display());
    let texts: Vec<String> = files.iter().filter_map(|f| std::fs::read_to_string(f).ok()).collect();
    if texts.is_empty() {
        return Err(HostKeyError::NoKnownHosts { shown, add });
    }
    match check(&texts.join("\n"), &name, key) {
        Verdict::Known => Ok(git2::CertificateCheckStatus::CertificateOk),
        Verdict::Unknown => Err(HostKeyError::Unknown { name, shown, fingerprint, add }),
        Verdict::Mismatch => Err(HostKeyError::Mismatch { name, shown, fingerprint }),
        Verdict::Revoked => Err(HostKeyError::Revoked { name, shown, fingerprint }),
    }
}

/// The SSH port of `url`: explicit in `ssh://host:port/…`, 22 otherwise (and always for the
/// scp-like `user@host:path`).
fn ssh_port(url: &str) -> u16 {
    let Some(rest) = url.strip_prefix("ssh://").or_else(|| url.strip_prefix("ssh+git://")) else { return 22 };
    let authority = rest.split('/').next().unwrap_or_default();
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let port = match host_port.strip_prefix('[') {
        Some(v6) => v6.split_once("]:").map(|(_, p)| p),
        None => host_port.rsplit_once(':').map(|(_, p)| p),
    };
    port.and_then(|p| p.parse().ok()).unwrap_or(22)
}

#[cfg(test)]
mod tests {
    use super::ssh_port;
    use crate::source::{read, SourceError, SourceOptions};

    /// A repository with one commit holding a manifest, as a file:// URL.
    fn origin(dir: &std::path::Path) -> String {
        let repo = git2::Repository::init(dir).unwrap();
        std::fs::write(dir.join("a.yaml"), "kind: Volume\nmetadata: {name: data}\n").unwrap();
        let mut index = repo.index().unwrap();
        index.add_path(std::path::Path::new("a.yaml")).unwrap();
        let tree = repo.find_tree(index.write_tree().unwrap()).unwrap();
        let sig = git2::Signature::now("t", "t@localhost").unwrap();
        repo.commit(Some("HEAD"), &sig, &sig, "one", &tree, &[]).unwrap();
        format!("file://{}", dir.display())
    }

    #[test]
    fn a_fetch_past_its_deadline_is_cancelled_and_one_in_time_is_not() {
        let (src, cache) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let url = origin(src.path());
        let late = SourceOptions {
            cache_dir: cache.path().to_path_buf(),
            deadline: Some(std::time::Instant::now()),
            ..Default::default()
        };
        match read(&url, &late) {
            Err(SourceError::Unreadable { message, .. }) => assert!(message.contains("deadline"), "{message}"),
            other => panic!("expected a cancelled fetch, got {other:?}"),
        }
        let in_time =
            SourceOptions { deadline: Some(std::time::Instant::now() + std::time::Duration::from_secs(30)), ..late };
        let snap = read(&url, &in_time).unwrap();
        assert_eq!(snap.files.len(), 1);
    }

    #[test]
    fn ssh_ports() {
        assert_eq!(ssh_port("ssh://git@example.org:2222/srv/repo.git"), 2222);
        assert_eq!(ssh_port("ssh://example.org/srv/repo.git"), 22);
        assert_eq!(ssh_port("ssh://git@[::1]:19491/repo"), 19491);
        assert_eq!(ssh_port("git@example.org:team/repo.git"), 22);
        assert_eq!(ssh_port("https://example.org:8443/repo"), 22);
    }

    /// Attack: repository files that containers mount had no size cap. A blob over the cap is
    /// refused from its header, before it is inflated into memory.
    #[test]
    fn a_blob_over_the_cap_is_refused_before_it_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let repo = git2::Repository::init(dir.path()).unwrap();
        std::fs::create_dir(dir.path().join("site")).unwrap();
        std::fs::write(dir.path().join("site/a.html"), vec![b'a'; 600 << 10]).unwrap();
        std::fs::write(dir.path().join("site/b.html"), vec![b'b'; 600 << 10]).unwrap();
        std::fs::write(dir.path().join("big.bin"), vec![0u8; 2 << 20]).unwrap();
        let mut index = repo.index().unwrap();
        for f in ["site/a.html", "site/b.html", "big.bin"] {
            index.add_path(std::path::Path::new(f)).unwrap();
        }
        let tree = repo.find_tree(index.write_tree().unwrap()).unwrap();
        let sig = git2::Signature::now("t", "t@localhost").unwrap();
        let commit = repo.commit(Some("HEAD"), &sig, &sig, "one", &tree, &[]).unwrap().to_string();
        let too_large = |e: super::super::ReadError| matches!(e, super::super::ReadError::TooLarge { .. });
        assert!(too_large(super::file_at(dir.path(), &commit, "big.bin", 1 << 20).unwrap_err()));
        assert!(too_large(super::files_under(dir.path(), &commit, "site", 1 << 20).unwrap_err()));
        assert_eq!(super::files_under(dir.path(), &commit, "site", 2 << 20).unwrap().len(), 2);
        let e = super::file_at(dir.path(), &commit, "big.bin", 1 << 20).unwrap_err().to_string();
        assert!(e.contains("maxRepoFileSize"), "{e}");
    }
}
