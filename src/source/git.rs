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
    Repository::open_ext(path, RepositoryOpenFlags::NO_SEARCH, &[] as &[&std::ffi::OsStr]).ok()
}

pub fn read_local(
    repo: &Repository,
    source: &str,
    reference: Option<&str>,
    signers: Option<&Path>,
) -> Result<(String, Tree), SourceError> {
    let r = reference.unwrap_or("HEAD");
    read_commit(repo, source, r, &[r], signers)
}

fn read_commit(
    repo: &Repository,
    source: &str,
    shown: &str,
    candidates: &[&str],
    signers: Option<&Path>,
) -> Result<(String, Tree), SourceError> {
    let mut last = String::new();
    for c in candidates {
        match repo.revparse_single(c).and_then(|o| o.peel_to_commit()) {
            Ok(commit) => {
                if let Some(allowed) = signers {
                    super::signature::verify(repo, commit.id(), allowed)
                        .map_err(|message| SourceError::Signature { source_name: source.to_string(), message })?;
                }
                let tree = commit.tree().map_err(|e| unreadable(source, e))?;
                return Ok((commit.id().to_string(), files_of(repo, &tree).map_err(|e| unreadable(source, e))?));
            }
            Err(e) => last = e.message().to_string(),
        }
    }
    Err(SourceError::UnknownRef { source_name: source.to_string(), reference: shown.to_string(), message: last })
}

fn unreadable(source: &str, e: git2::Error) -> SourceError {
    SourceError::Unreadable { source_name: source.to_string(), message: e.message().to_string() }
}

fn files_of(repo: &Repository, tree: &git2::Tree<'_>) -> Result<Tree, git2::Error> {
    let mut out = Vec::new();
    let mut err = None;
    tree.walk(TreeWalkMode::PreOrder, |root, entry| {
        if entry.kind() != Some(ObjectType::Blob) {
            return TreeWalkResult::Ok;
        }
        let path = format!("{root}{}", entry.name().unwrap_or_default());
        let wanted = path == "hawser.toml" || crate::desired::is_manifest(&path);
        if wanted {
            match repo.find_blob(entry.id()) {
                Ok(blob) => out.push((path, blob.content().to_vec())),
                Err(e) => {
                    err = Some(e);
                    return TreeWalkResult::Abort;
                }
            }
        }
        TreeWalkResult::Ok
    })?;
    match err {
        Some(e) => Err(e),
        None => Ok(out),
    }
}

/// Where the cache of remote `url` lives.
pub fn cache_path(url: &str, cache_dir: &Path) -> std::path::PathBuf {
    let key = hex::encode(&<sha2::Sha256 as sha2::Digest>::digest(url.as_bytes())[..8]);
    cache_dir.join("sources").join(key)
}

/// Every blob under `folder` of `commit`, with paths relative to `folder`.
pub fn files_under(repo_path: &Path, commit: &str, folder: &str) -> Result<Vec<super::ContextFile>, String> {
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
    sub.walk(TreeWalkMode::PreOrder, |root, entry| {
        if entry.kind() != Some(ObjectType::Blob) {
            return TreeWalkResult::Ok;
        }
        match repo.find_blob(entry.id()) {
            Ok(blob) => out.push(super::ContextFile {
                path: format!("{root}{}", entry.name().unwrap_or_default()),
                mode: entry.filemode() as u32,
                data: blob.content().to_vec(),
            }),
            Err(e) => {
                err = Some(e.message().to_string());
                return TreeWalkResult::Abort;
            }
        }
        TreeWalkResult::Ok
    })
    .map_err(|e| e.message().to_string())?;
    match err {
        Some(e) => Err(e),
        None => Ok(out),
    }
}

/// Fetches a remote repository into the cache and reads `reference` (default: the remote's HEAD).
pub fn read_remote(
    url: &str,
    reference: Option<&str>,
    cache_dir: &Path,
    signers: Option<&Path>,
) -> Result<(String, Tree), SourceError> {
    let dir = cache_path(url, cache_dir);
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
    // Ask for the remote's refs first (one round trip, no objects): when every ref the cache
    // knows still points where it did, there is nothing to fetch.
    remote.connect(git2::Direction::Fetch).map_err(|e| unreadable(url, e))?;
    let unchanged = {
        let heads = remote.list().map_err(|e| unreadable(url, e))?;
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
    remote.disconnect().map_err(|e| unreadable(url, e))?;
    if !unchanged {
        let refspecs =
            ["+refs/heads/*:refs/remotes/origin/*", "+refs/tags/*:refs/tags/*", "+HEAD:refs/remotes/origin/HEAD"];
        remote.fetch(&refspecs, None, None).map_err(|e| unreadable(url, e))?;
    } else {
        tracing::debug!(%url, "remote refs unchanged; no fetch");
    }
    drop(remote);
    match reference {
        None => read_commit(&repo, url, "HEAD", &["refs/remotes/origin/HEAD"], signers),
        Some(r) => {
            let remote_branch = format!("refs/remotes/origin/{r}");
            read_commit(&repo, url, r, &[&remote_branch, r], signers)
        }
    }
}
