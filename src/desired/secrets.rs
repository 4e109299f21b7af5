//! `secretEnv`: values read from files on the host when a revision is resolved for plan or apply.
//! The model keeps only the file and a digest of its content, so the digest (not the value)
//! reaches hashes, labels, plans and saved plans; the values travel beside the model in
//! [`SecretValues`](super::model::SecretValues), whose `Debug` shows nothing.
//!
//! The digest is keyed (HMAC-SHA256 with a random key of this host, kept 0600 in the state
//! folder): a changed secret still shows as changed, but a plan or a label gives a dictionary
//! nothing to test guesses against.

use super::diag::{Diagnostic, Diagnostics, Pos};
use super::model::{DesiredState, Mount};
use hmac::{Hmac, KeyInit, Mac};
use std::io::{Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The file in the state folder that holds this host's digest key.
pub const KEY_FILE: &str = "secret-digest.key";
const KEY_BYTES: usize = 32;

/// Reads every secret file, records its keyed digest in the spec and its value in `d.secrets`.
/// The key is read from `state_dir`, and made there the first time a revision has secrets.
pub fn resolve(d: &mut DesiredState, state_dir: &Path) -> Result<(), Diagnostics> {
    let mounts_secrets = |c: &super::model::ContainerSpec| {
        c.volumes.iter().any(|m| matches!(m, Mount::Secret { .. } | Mount::EnvSecret { .. }))
    };
    if d.containers.values().all(|c| c.spec.secret_env.is_empty() && !mounts_secrets(&c.spec)) {
        return Ok(());
    }
    let key = digest_key(state_dir).map_err(|e| {
        Diagnostics(vec![Diagnostic {
            file: KEY_FILE.into(),
            pos: Pos::new(1, 1),
            message: e.to_string(),
            source: None,
        }])
    })?;
    let mut diags = Vec::new();
    for (name, c) in d.containers.iter_mut() {
        for (var, r) in c.spec.secret_env.iter_mut() {
            match read_bounded(&r.file).and_then(|b| String::from_utf8(b).map_err(std::io::Error::other)) {
                Ok(value) => {
                    let value = value.strip_suffix('\n').unwrap_or(&value).to_string();
                    r.digest = Some(keyed_digest(&key, &value));
                    d.secrets.0.insert((name.clone(), var.clone()), value);
                }
                Err(e) => diags.push(Diagnostic {
                    file: c.origin.file.clone(),
                    pos: c.origin.pos,
                    message: format!("Container `{name}`: cannot read secretEnv.{var} from `{}`: {e}", r.file),
                    source: None,
                }),
            }
        }
        for m in c.spec.volumes.iter_mut() {
            // A secret of the environment is written to a file when applied, like a snapshot of
            // the repository, in a folder named by its keyed digest.
            if let Mount::EnvSecret { variable, target, digest, access } = m {
                match std::env::var(&*variable) {
                    Ok(value) => {
                        let keyed = keyed_digest(&key, &format!("{value}\0{access:?}"));
                        let name = target.rsplit('/').next().unwrap_or("secret").to_string();
                        let snap = super::model::RepoSnapshot {
                            path: format!("${variable}"),
                            access: *access,
                            encrypted: false,
                            single: Some(name.clone()),
                            files: vec![super::model::ContextFile { path: name, mode: 0o644, data: value.into_bytes() }],
                        };
                        d.repo_files.insert(keyed.replace(':', "-"), snap);
                        *digest = Some(keyed);
                    }
                    Err(_) => diags.push(Diagnostic {
                        file: c.origin.file.clone(),
                        pos: c.origin.pos,
                        message: format!("Container `{name}`: the secret for `{target}` comes from `{variable}`, which the environment of hawser does not set"),
                        source: None,
                    }),
                }
                continue;
            }
            // Secret files are mounted, not read into the container: only their digest is needed.
            let Mount::Secret { file, target, digest } = m else { continue };
            match read_bounded(file) {
                Ok(bytes) => *digest = Some(keyed_digest_bytes(&key, &bytes)),
                Err(e) => diags.push(Diagnostic {
                    file: c.origin.file.clone(),
                    pos: c.origin.pos,
                    message: format!("Container `{name}`: cannot read the secret for `{target}` from `{file}`: {e}"),
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

/// The most of a secret file that is read: a secret is a password, a key or a certificate chain,
/// and a path that names something else (a device, a log) must not be read without end.
const SECRET_MAX: u64 = 1 << 20;

fn read_bounded(path: &str) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let mut bytes = Vec::new();
    std::fs::File::open(path)?.take(SECRET_MAX + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > SECRET_MAX {
        return Err(std::io::Error::other("it is larger than 1 MiB, more than a secret"));
    }
    Ok(bytes)
}

/// `hmac:` and 16 hex digits of HMAC-SHA256(key, value).
pub fn keyed_digest(key: &[u8], value: &str) -> String {
    keyed_digest_bytes(key, value.as_bytes())
}

/// As `keyed_digest`, of bytes that need not be text (a secret file may be binary: every byte
/// counts, so a changed one makes a new digest).
pub fn keyed_digest_bytes(key: &[u8], value: &[u8]) -> String {
    let mut mac = <Hmac<sha2::Sha256> as KeyInit>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(value);
    format!("hmac:{}", hex::encode(&mac.finalize().into_bytes()[..8]))
}

/// This host's key: read, or made from the kernel's random source with mode 0600.
/// Why the host's digest key can't be used.
#[derive(Debug, thiserror::Error)]
enum KeyError {
    #[error("{} is readable by others (mode {mode:o} beyond the owner); chmod 600 it", .path.display())]
    Shared { path: PathBuf, mode: u32 },
    #[error("{} is not a {KEY_BYTES}-byte key; remove it to have a new one made", .0.display())]
    Malformed(PathBuf),
    #[error("cannot read {}: {source}", .path.display())]
    Read { path: PathBuf, source: std::io::Error },
    #[error("cannot create {}: {source}", .path.display())]
    Create { path: PathBuf, source: std::io::Error },
}

fn digest_key(state_dir: &Path) -> Result<Vec<u8>, KeyError> {
    let path = state_dir.join(KEY_FILE);
    match std::fs::read(&path) {
        Ok(key) if key.len() == KEY_BYTES => {
            let mode = std::fs::metadata(&path).map(|m| m.permissions().mode() & 0o077).unwrap_or(0);
            if mode != 0 {
                return Err(KeyError::Shared { path, mode });
            }
            return Ok(key);
        }
        Ok(_) => return Err(KeyError::Malformed(path)),
        Err(source) if source.kind() != std::io::ErrorKind::NotFound => return Err(KeyError::Read { path, source }),
        Err(_) => {}
    }
    std::fs::create_dir_all(state_dir).map_err(|source| KeyError::Create { path: state_dir.to_path_buf(), source })?;
    let mut key = vec![0u8; KEY_BYTES];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut key))
        .map_err(|source| KeyError::Read { path: "/dev/urandom".into(), source })?;
    let made = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .and_then(|mut f| f.write_all(&key).and_then(|()| f.sync_all()));
    match made {
        Ok(()) => Ok(key),
        // Another run made it first: use that one.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => digest_key(state_dir),
        Err(source) => Err(KeyError::Create { path, source }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_file_is_read_to_a_bound() {
        let dir = tempfile::tempdir().unwrap();
        let small = dir.path().join("small");
        std::fs::write(&small, b"\xffkey").unwrap();
        assert_eq!(read_bounded(small.to_str().unwrap()).unwrap(), b"\xffkey");
        let big = dir.path().join("big");
        std::fs::write(&big, vec![b'x'; (SECRET_MAX + 1) as usize]).unwrap();
        assert!(read_bounded(big.to_str().unwrap()).unwrap_err().to_string().contains("larger than 1 MiB"));
        // A device that never ends is cut off at the bound, not read forever.
        assert!(read_bounded("/dev/zero").is_err());
    }

    #[test]
    fn the_key_is_made_once_private_and_the_digest_depends_on_it() {
        let dir = tempfile::tempdir().unwrap();
        let key = digest_key(dir.path()).unwrap();
        assert_eq!(digest_key(dir.path()).unwrap(), key, "kept, not made again");
        let mode = std::fs::metadata(dir.path().join(KEY_FILE)).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let other = tempfile::tempdir().unwrap();
        let other_key = digest_key(other.path()).unwrap();
        assert_ne!(keyed_digest(&key, "hunter2"), keyed_digest(&other_key, "hunter2"));
        assert_ne!(keyed_digest(&key, "hunter2"), keyed_digest(&key, "hunter3"));
        assert_eq!(keyed_digest(&key, "hunter2"), keyed_digest(&key, "hunter2"));
        // Binary values: two invalid UTF-8 sequences are two values, not one replacement char.
        assert_ne!(keyed_digest_bytes(&key, b"\xff\x01"), keyed_digest_bytes(&key, b"\xfe\x01"));
        assert_eq!(keyed_digest_bytes(&key, b"hunter2"), keyed_digest(&key, "hunter2"));
        // Not the unkeyed digest a dictionary could be run against.
        use sha2::Digest;
        let plain = hex::encode(&sha2::Sha256::digest(b"hunter2")[..8]);
        assert!(!keyed_digest(&key, "hunter2").contains(&plain));
        std::fs::set_permissions(dir.path().join(KEY_FILE), std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(digest_key(dir.path()), Err(KeyError::Shared { .. })));
    }
}
