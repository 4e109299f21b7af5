//! A plain directory as a source: its files are the desired state, and the revision is a hash of
//! their paths and contents, so an unchanged folder always has the same revision.

use super::Tree;
use sha2::{Digest, Sha256};
use std::path::Path;

/// Why a folder could not be read as a source.
#[derive(Debug)]
pub enum DirError {
    Io(std::io::Error),
    /// A manifest that is a symbolic link leading out of the source: the relative path of the
    /// link. Its target is neither read nor named, so a link to a secret shows nothing of it.
    LinkLeaves(String),
    /// A file or the whole revision is over its size limit.
    Size(super::SourceError),
}

impl From<std::io::Error> for DirError {
    fn from(e: std::io::Error) -> Self {
        DirError::Io(e)
    }
}

/// Reads the manifests of a folder. `root` must be canonical: a symbolic link is followed only
/// when its real path is inside it.
pub fn read(root: &Path, limits: super::SizeLimits) -> Result<(String, Tree), DirError> {
    let mut files = Vec::new();
    walk(root, root, &mut files, &mut super::SizeBudget::new(limits))?;
    files.sort_by(|a, b| a.0.cmp(&b.0));
    let mut h = Sha256::new();
    for (path, bytes) in &files {
        h.update((path.len() as u64).to_le_bytes());
        h.update(path.as_bytes());
        h.update((bytes.len() as u64).to_le_bytes());
        h.update(bytes);
    }
    Ok((format!("dir:{}", &hex::encode(h.finalize())[..16]), files))
}

fn walk(root: &Path, dir: &Path, out: &mut Tree, budget: &mut super::SizeBudget) -> Result<(), DirError> {
    // In name order, so the file that passes a size limit is the same every time.
    let mut entries = std::fs::read_dir(dir)?.collect::<Result<Vec<_>, _>>()?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let name = entry.file_name();
        // Hidden files and folders are not the project's, but for compose's `.env`.
        if name.to_string_lossy().starts_with('.') && name != ".env" {
            continue;
        }
        let path = entry.path();
        let ty = entry.file_type()?;
        if ty.is_dir() {
            walk(root, &path, out, budget)?;
        } else if ty.is_file() || ty.is_symlink() {
            let rel = path.strip_prefix(root).unwrap_or(&path).to_string_lossy().replace('\\', "/");
            let keep = rel == "hawser.toml" || crate::desired::is_manifest(&rel) || crate::desired::is_dotenv(&rel);
            if !keep {
                continue;
            }
            if ty.is_symlink() {
                let inside = std::fs::canonicalize(&path).is_ok_and(|real| real.starts_with(root) && real.is_file());
                if !inside {
                    return Err(DirError::LinkLeaves(rel));
                }
            }
            budget.admit(&rel, std::fs::metadata(&path)?.len()).map_err(DirError::Size)?;
            out.push((rel, std::fs::read(&path)?));
        }
    }
    Ok(())
}

/// The file at `path` of a plain directory, if it is one inside it (a link is followed only
/// when its real path stays inside).
pub fn file_at(root: &Path, path: &str, max: u64) -> Result<Option<super::ContextFile>, super::ReadError> {
    use std::os::unix::fs::PermissionsExt;
    let (Ok(real), Ok(root)) = (std::fs::canonicalize(root.join(path)), std::fs::canonicalize(root)) else {
        return Ok(None);
    };
    if !real.starts_with(&root) || !real.is_file() {
        return Ok(None);
    }
    let meta = std::fs::metadata(&real).map_err(|e| e.to_string())?;
    if meta.len() > max {
        return Err(super::ReadError::too_large(path, max));
    }
    let mode = meta.permissions().mode();
    let data =
        read_at_most(&real, max).map_err(|e| e.to_string())?.ok_or_else(|| super::ReadError::too_large(path, max))?;
    let name = path.rsplit('/').next().unwrap_or(path).to_string();
    Ok(Some(super::ContextFile { path: name, mode, data }))
}

/// The file's bytes, `None` when it holds more than `max` (it may grow as it is read).
fn read_at_most(path: &Path, max: u64) -> std::io::Result<Option<Vec<u8>>> {
    use std::io::Read;
    let mut data = Vec::new();
    std::fs::File::open(path)?.take(max.saturating_add(1)).read_to_end(&mut data)?;
    Ok((data.len() as u64 <= max).then_some(data))
}

/// Every file under `folder` of a plain directory, with paths relative to `folder`, at most
/// `max` bytes in all.
pub fn files_under(root: &Path, folder: &str, max: u64) -> Result<Vec<super::ContextFile>, super::ReadError> {
    let base = if folder.is_empty() || folder == "." { root.to_path_buf() } else { root.join(folder) };
    // The context is sent to the engine (and may be pushed in an image): a folder that is, or
    // passes through, a link out of the source would send the host's files.
    let inside = match (std::fs::canonicalize(&base), std::fs::canonicalize(root)) {
        (Ok(real), Ok(root)) => real.starts_with(root) && real.is_dir(),
        _ => false,
    };
    if !inside {
        return Err(format!("folder `{folder}` is not in the source").into());
    }
    let mut out = Vec::new();
    fn walk(base: &Path, dir: &Path, left: &mut u64, out: &mut Vec<super::ContextFile>) -> std::io::Result<bool> {
        use std::os::unix::fs::PermissionsExt;
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            let path = entry.path();
            let ty = entry.file_type()?;
            if ty.is_dir() {
                if !walk(base, &path, left, out)? {
                    return Ok(false);
                }
            } else if ty.is_file() {
                let mode = entry.metadata()?.permissions().mode();
                let rel = path.strip_prefix(base).unwrap_or(&path).to_string_lossy().to_string();
                let Some(data) = read_at_most(&path, *left)? else { return Ok(false) };
                *left -= data.len() as u64;
                out.push(super::ContextFile { path: rel, mode, data });
            }
        }
        Ok(true)
    }
    let mut left = max;
    if !walk(&base, &base, &mut left, &mut out).map_err(|e| e.to_string())? {
        return Err(super::ReadError::too_large(folder, max));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A build context that is a link out of the source would send the host's files to the
    /// engine, and into an image that may be pushed.
    #[test]
    fn a_build_context_that_leaves_the_source_is_refused() {
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("shadow"), "secret").unwrap();
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir(root.path().join("app")).unwrap();
        std::fs::write(root.path().join("app/Dockerfile"), "FROM scratch\n").unwrap();
        std::os::unix::fs::symlink(outside.path(), root.path().join("evil")).unwrap();
        std::os::unix::fs::symlink(outside.path(), root.path().join("app/linked")).unwrap();
        let files = files_under(root.path(), "app", u64::MAX).unwrap();
        let names: Vec<&str> = files.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(names, ["Dockerfile"], "a link inside the context is not followed");
        assert!(files_under(root.path(), "evil", u64::MAX).unwrap_err().to_string().contains("is not in the source"));
        assert!(files_under(root.path(), "app/../evil", u64::MAX).is_err());
    }
}

#[cfg(test)]
mod caps {
    use super::*;

    /// Attack: repository files that containers mount had no size cap: they are read whole
    /// into memory, then written to the host. A file or a folder over the cap is refused
    /// before it is read.
    #[test]
    fn a_file_or_folder_over_the_cap_is_refused() {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir(root.path().join("site")).unwrap();
        for i in 0..3 {
            std::fs::write(root.path().join(format!("site/page{i}.html")), vec![b'x'; 400 << 10]).unwrap();
        }
        std::fs::write(root.path().join("big.bin"), vec![0u8; 2 << 20]).unwrap();
        let too_large =
            |r: Result<_, super::super::ReadError>| matches!(r, Err(super::super::ReadError::TooLarge { .. }));
        assert!(too_large(file_at(root.path(), "big.bin", 1 << 20).map(|_| ())));
        assert!(too_large(files_under(root.path(), "site", 1 << 20).map(|_| ())), "the folder's files together");
        assert_eq!(files_under(root.path(), "site", 2 << 20).unwrap().len(), 3);
        assert_eq!(file_at(root.path(), "big.bin", 2 << 20).unwrap().unwrap().data.len(), 2 << 20);
    }
}
