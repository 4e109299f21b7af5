//! Commit signature verification: with an allow list of SSH signing keys (the `allowed_signers`
//! format of `ssh-keygen -Y`, the one git uses), only commits signed by one of those keys are
//! read; an unsigned commit, or one signed by any other key, is refused with the reason.
//! The check itself is OpenSSH's (`ssh-keygen -Y find-principals` and `-Y verify`).

use git2::{Oid, Repository};
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

/// Why a commit is refused.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    #[error("commit {0} is not signed, and only signed commits are applied here")]
    Unsigned(String),
    #[error("commit {0} is signed, but not with an SSH key: only SSH signatures are verified")]
    NotSsh(String),
    #[error("commit {commit} is signed by a key that is not in the allowed signers ({})", .allowed.display())]
    UnknownKey { commit: String, allowed: std::path::PathBuf },
    #[error("the signature of commit {commit} does not verify: {detail}")]
    DoesNotVerify { commit: String, detail: String },
    /// OpenSSH could not be asked; the commit is refused all the same.
    #[error("cannot check the signature of commit {commit}: {source}")]
    Check { commit: String, source: std::io::Error },
}

/// The principal that signed commit `oid`, or why the commit is refused.
pub fn verify(repo: &Repository, oid: Oid, allowed_signers: &Path) -> Result<String, Refusal> {
    let short = &oid.to_string()[..12];
    let (sig, data) = repo.extract_signature(&oid, None).map_err(|_| Refusal::Unsigned(short.to_string()))?;
    let sig = sig.as_str().unwrap_or_default().to_string();
    if !sig.contains("BEGIN SSH SIGNATURE") {
        return Err(Refusal::NotSsh(short.to_string()));
    }
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    let sig_file = std::env::temp_dir().join(format!("hawser-sig-{}-{nanos}", std::process::id()));
    std::fs::write(&sig_file, &sig).map_err(checking(short))?;
    let result = check(&sig_file, &data, allowed_signers, short);
    let _ = std::fs::remove_file(&sig_file);
    result
}

fn checking(commit: &str) -> impl Fn(std::io::Error) -> Refusal + '_ {
    move |source| Refusal::Check { commit: commit.to_string(), source }
}

fn check(sig_file: &Path, data: &[u8], allowed: &Path, short: &str) -> Result<String, Refusal> {
    let found = Command::new("ssh-keygen")
        .args(["-Y", "find-principals", "-s"])
        .arg(sig_file)
        .arg("-f")
        .arg(allowed)
        .output()
        .map_err(checking(short))?;
    let principal = String::from_utf8_lossy(&found.stdout).lines().next().unwrap_or_default().trim().to_string();
    if !found.status.success() || principal.is_empty() {
        return Err(Refusal::UnknownKey { commit: short.to_string(), allowed: allowed.to_path_buf() });
    }
    let mut child = Command::new("ssh-keygen")
        .args(["-Y", "verify", "-n", "git", "-I", &principal, "-s"])
        .arg(sig_file)
        .arg("-f")
        .arg(allowed)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(checking(short))?;
    child.stdin.take().expect("piped").write_all(data).map_err(checking(short))?;
    let out = child.wait_with_output().map_err(checking(short))?;
    if out.status.success() {
        Ok(principal)
    } else {
        let detail = String::from_utf8_lossy(&out.stderr).trim().to_string();
        Err(Refusal::DoesNotVerify { commit: short.to_string(), detail })
    }
}
