//! Commit signature verification: with an allow list of SSH signing keys (the `allowed_signers`
//! format of `ssh-keygen -Y`, the one git uses), only commits signed by one of those keys are
//! read; an unsigned commit, or one signed by any other key, is refused with the reason.
//! The check itself is OpenSSH's (`ssh-keygen -Y find-principals` and `-Y verify`).

use git2::{Oid, Repository};
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

/// The principal that signed commit `oid`, or why the commit is refused.
pub fn verify(repo: &Repository, oid: Oid, allowed_signers: &Path) -> Result<String, String> {
    let short = &oid.to_string()[..12];
    let (sig, data) = repo
        .extract_signature(&oid, None)
        .map_err(|_| format!("commit {short} is not signed, and only signed commits are applied here"))?;
    let sig = sig.as_str().unwrap_or_default().to_string();
    if !sig.contains("BEGIN SSH SIGNATURE") {
        return Err(format!("commit {short} is signed, but not with an SSH key: only SSH signatures are verified"));
    }
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    let sig_file = std::env::temp_dir().join(format!("hawser-sig-{}-{nanos}", std::process::id()));
    std::fs::write(&sig_file, &sig).map_err(|e| format!("cannot check the signature of {short}: {e}"))?;
    let result = check(&sig_file, &data, allowed_signers, short);
    let _ = std::fs::remove_file(&sig_file);
    result
}

fn check(sig_file: &Path, data: &[u8], allowed: &Path, short: &str) -> Result<String, String> {
    let found = Command::new("ssh-keygen")
        .args(["-Y", "find-principals", "-s"])
        .arg(sig_file)
        .arg("-f")
        .arg(allowed)
        .output()
        .map_err(|e| format!("cannot run ssh-keygen to check commit {short}: {e}"))?;
    let principal = String::from_utf8_lossy(&found.stdout).lines().next().unwrap_or_default().trim().to_string();
    if !found.status.success() || principal.is_empty() {
        return Err(format!(
            "commit {short} is signed by a key that is not in the allowed signers ({})",
            allowed.display()
        ));
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
        .map_err(|e| format!("cannot run ssh-keygen to check commit {short}: {e}"))?;
    child.stdin.take().expect("piped").write_all(data).map_err(|e| e.to_string())?;
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(principal)
    } else {
        Err(format!("the signature of commit {short} does not verify: {}", String::from_utf8_lossy(&out.stderr).trim()))
    }
}
