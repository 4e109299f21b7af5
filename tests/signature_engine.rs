//! Commit signature verification: only commits signed by an allowed SSH key are applied.

mod common;
use common::*;
use std::process::Command;

fn keygen(dir: &std::path::Path, name: &str) -> (String, String) {
    let key = dir.join(name);
    let out = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", name, "-f"])
        .arg(&key)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let public = std::fs::read_to_string(dir.join(format!("{name}.pub"))).unwrap();
    (dir.join(format!("{name}.pub")).display().to_string(), public.trim().to_string())
}

#[test]
fn only_commits_signed_by_an_allowed_key_are_applied() {
    let p = "t-signed";
    let s = Stack::new(p);
    let keys = tempfile::tempdir().unwrap();
    let (trusted_pub, trusted) = keygen(keys.path(), "trusted");
    let (other_pub, _) = keygen(keys.path(), "other");
    let allowed = keys.path().join("allowed_signers");
    std::fs::write(&allowed, format!("ops@example.com namespaces=\"git\" {trusted}\n")).unwrap();
    let signers = allowed.to_str().unwrap();
    let signed_commit = |key: &str, msg: &str| {
        s.git(&["add", "-A"]);
        s.git(&["-c", "gpg.format=ssh", "-c", &format!("user.signingkey={key}"), "commit", "-q", "-S", "-m", msg]);
    };

    s.write("svc.yaml", &svc(p, "1"));
    signed_commit(&trusted_pub, "signed by the trusted key");
    let r = s.hawser(&["--allowed-signers", signers, "apply", "{src}"]);
    assert_eq!(r.code, 0, "{r:?}");
    let id = container_id(&format!("{p}-svc")).unwrap();

    s.write("svc.yaml", &svc(p, "2"));
    s.commit("unsigned");
    let r = s.hawser(&["--allowed-signers", signers, "apply", "{src}"]);
    assert_eq!(r.code, 3, "{r:?}");
    assert!(r.stderr.contains("is not signed"), "{r:?}");

    s.write("svc.yaml", &svc(p, "3"));
    signed_commit(&other_pub, "signed by a key nobody allowed");
    let r = s.hawser(&["--allowed-signers", signers, "plan", "{src}"]);
    assert_eq!(r.code, 3, "{r:?}");
    assert!(r.stderr.contains("signed by a key that is not in the allowed signers"), "{r:?}");
    let r = s.hawser(&["--allowed-signers", signers, "apply", "{src}"]);
    assert_eq!(r.code, 3, "{r:?}");
    assert_eq!(container_id(&format!("{p}-svc")).as_deref(), Some(id.as_str()), "nothing applied");
    assert!(inspect(&format!("{p}-svc"), "{{json .Config.Env}}").contains("VERSION=1"));
}
