//! Snapshots of repository files that containers mount (compose's relative bind mounts): each
//! written once under the state dir, in a folder named by its content's digest, so a container
//! mounts exactly the revision it was planned with, and a new revision never changes the files
//! under a running container.

use crate::desired::DesiredState;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// Why the repository files containers mount could not be put on the host.
#[derive(Debug, thiserror::Error)]
pub enum FilesError {
    #[error("cannot create the data folder {}: {source}", .path.display())]
    DataFolder { path: PathBuf, source: std::io::Error },
    #[error("cannot create {}: {source}", .path.display())]
    Root { path: PathBuf, source: std::io::Error },
    #[error("cannot write the snapshot of `{file}`: {source}")]
    Write { file: String, source: std::io::Error },
    #[error("cannot place the snapshot of `{file}`: {source}")]
    Place { file: String, source: std::io::Error },
    #[error("`{0}` is encrypted with age, and the host policy names no identity to decrypt it (ageIdentity)")]
    NoIdentity(String),
    #[error("cannot read the age identity {}: {source}", .identity.display())]
    Identity { identity: PathBuf, source: std::io::Error },
    #[error("the age identity {} is readable by others; chmod 600 it", .0.display())]
    IdentityShared(PathBuf),
    #[error("the age identity {}: {source}", .identity.display())]
    IdentityFormat { identity: PathBuf, source: age::DecryptError },
    #[error("cannot decrypt `{file}` with {}: {message}", .identity.display())]
    Decrypt { file: String, identity: PathBuf, message: String },
    #[error("`{file}` decrypts to more than {max} bytes; refused (maxRepoFileSize of the host policy)")]
    TooLarge { file: String, max: u64 },
}

/// Writes every snapshot `d` mounts that is not on the host yet. A snapshot appears whole or
/// not at all: it is written beside its place and renamed into it.
pub fn materialize(d: &DesiredState) -> Result<(), FilesError> {
    // The project's data folders: made when missing, never emptied or removed here.
    for dir in &d.data_folders {
        std::fs::create_dir_all(dir).map_err(|source| FilesError::DataFolder { path: dir.clone(), source })?;
    }
    let root = &d.repo_files_root;
    for (digest, snap) in &d.repo_files {
        let dir = root.join(digest);
        if dir.is_dir() {
            continue;
        }
        std::fs::create_dir_all(root).map_err(|source| FilesError::Root { path: root.clone(), source })?;
        let tmp = root.join(format!(".{digest}.{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&tmp);
        let decrypted;
        let snap = if snap.encrypted {
            decrypted = decrypt(snap, d.age_identity.as_deref(), d.host_limits.file)?;
            &decrypted
        } else {
            snap
        };
        write_all(&tmp, snap).map_err(|source| FilesError::Write { file: snap.path.clone(), source })?;
        if let Err(source) = std::fs::rename(&tmp, &dir) {
            let _ = std::fs::remove_dir_all(&tmp);
            // Another run put the same content there first.
            if !dir.is_dir() {
                return Err(FilesError::Place { file: snap.path.clone(), source });
            }
        }
    }
    Ok(())
}

/// The snapshot of an age file with its plaintext, decrypted with the host's identity.
fn decrypt(
    snap: &crate::desired::RepoSnapshot,
    identity: Option<&Path>,
    max: u64,
) -> Result<crate::desired::RepoSnapshot, FilesError> {
    use std::io::Read;
    let Some(identity) = identity else { return Err(FilesError::NoIdentity(snap.path.clone())) };
    let unreadable = |source| FilesError::Identity { identity: identity.to_path_buf(), source };
    let meta = std::fs::metadata(identity).map_err(unreadable)?;
    if meta.permissions().mode() & 0o077 != 0 {
        return Err(FilesError::IdentityShared(identity.to_path_buf()));
    }
    let identities = age::IdentityFile::from_file(identity.display().to_string())
        .map_err(unreadable)?
        .into_identities()
        .map_err(|source| FilesError::IdentityFormat { identity: identity.to_path_buf(), source })?;
    let mut out = snap.clone();
    out.encrypted = false;
    for f in out.files.iter_mut() {
        let fail = |e: &dyn std::fmt::Display| FilesError::Decrypt {
            file: snap.path.clone(),
            identity: identity.to_path_buf(),
            message: e.to_string(),
        };
        let reader = age::armor::ArmoredReader::new(&f.data[..]);
        let decryptor = age::Decryptor::new(reader).map_err(|e| fail(&e))?;
        let stream = decryptor.decrypt(identities.iter().map(|i| i.as_ref())).map_err(|e| fail(&e))?;
        // Read to the cap and no further: the ciphertext is the pusher's to choose.
        let mut plain = Vec::new();
        stream.take(max.saturating_add(1)).read_to_end(&mut plain).map_err(|e| fail(&e))?;
        if plain.len() as u64 > max {
            return Err(FilesError::TooLarge { file: snap.path.clone(), max });
        }
        f.data = plain;
    }
    Ok(out)
}

fn write_all(dir: &Path, snap: &crate::desired::RepoSnapshot) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    // A mounted folder is seen as it is; around a mounted file (a secret, a config) the folder
    // only needs to be reachable by hawser, so no other user of the host reads the file.
    let dir_mode = if snap.single.is_some() { 0o700 } else { 0o755 };
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(dir_mode))?;
    for f in &snap.files {
        let path = dir.join(&f.path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let mut out = std::fs::File::create(&path)?;
        out.write_all(&f.data)?;
        // Executable or not, as committed; never setuid or writable by others.
        let mode = if f.mode & 0o111 != 0 { 0o755 } else { 0o644 };
        let access = snap.access.unwrap_or_default();
        out.set_permissions(std::fs::Permissions::from_mode(access.mode.map_or(mode, |m| m.0)))?;
        if access.uid.is_some() || access.gid.is_some() {
            std::os::unix::fs::chown(&path, access.uid, access.gid)?;
        }
    }
    Ok(())
}

/// Removes the snapshots of `d`'s project that `d` does not mount. Called once a revision is
/// fully applied, when no container of the project runs an older snapshot any more; snapshots
/// are kept per project, so another project's are never touched.
pub fn collect(d: &DesiredState) {
    let Ok(entries) = std::fs::read_dir(&d.repo_files_root) else { return };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        if !d.repo_files.contains_key(&name) && !name.starts_with('.') {
            if let Err(err) = std::fs::remove_dir_all(e.path()) {
                tracing::warn!(snapshot = %e.path().display(), error = %err, "cannot remove an unused snapshot");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use age::secrecy::ExposeSecret;

    /// Attack: an age-encrypted file of 1 GiB was decrypted whole (3.2 GB of memory at apply).
    /// The plaintext is read to the cap and no further.
    #[test]
    fn an_age_file_is_decrypted_to_the_cap_and_no_further() {
        let dir = tempfile::tempdir().unwrap();
        let identity = age::x25519::Identity::generate();
        let key = dir.path().join("age.key");
        std::fs::write(&key, format!("{}\n", identity.to_string().expose_secret())).unwrap();
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
        let plain = vec![b'x'; 3 << 20];
        let snap = |data: Vec<u8>| crate::desired::RepoSnapshot {
            path: "big.age".into(),
            access: None,
            encrypted: true,
            single: Some("big".into()),
            files: vec![crate::desired::ContextFile { path: "big".into(), mode: 0o644, data }],
        };
        let sealed = snap(age::encrypt(&identity.to_public(), &plain).unwrap());
        let e = decrypt(&sealed, Some(&key), 1 << 20).unwrap_err();
        assert!(matches!(e, FilesError::TooLarge { max: 1048576, .. }), "{e}");
        assert!(
            e.to_string().contains("decrypts to more than 1048576 bytes") && e.to_string().contains("maxRepoFileSize")
        );
        let opened = decrypt(&sealed, Some(&key), 4 << 20).unwrap();
        assert_eq!(opened.files[0].data.len(), 3 << 20);
        assert!(!opened.encrypted);
    }
}
