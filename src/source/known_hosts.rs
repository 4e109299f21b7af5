//! SSH host key verification against an OpenSSH `known_hosts` file. A service that fetches
//! desired state over SSH must know it talks to the real server: an attacker in the middle would
//! otherwise choose what runs on the host. Unknown hosts are refused, never trusted on first use.

use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};

/// What a known_hosts file says of one host's key.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// A line for this host lists this key.
    Known,
    /// The host is listed, but with other keys: the key changed, or someone is in the middle.
    Mismatch,
    /// The key is marked `@revoked`.
    Revoked,
    /// No line names this host.
    Unknown,
}

/// The name known_hosts uses for `host` on `port`: bare on 22, `[host]:port` elsewhere.
pub fn host_name(host: &str, port: u16) -> String {
    if port == 22 {
        host.to_string()
    } else {
        format!("[{host}]:{port}")
    }
}

/// Checks `key` (the SSH wire-format public key blob the server presented) for `host` (as from
/// [`host_name`]) against the text of a known_hosts file.
pub fn check(text: &str, host: &str, key: &[u8]) -> Verdict {
    let mut listed = false;
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut fields = line.split_whitespace();
        let mut first = fields.next().unwrap_or_default();
        let marker = first.strip_prefix('@');
        if marker.is_some() {
            first = fields.next().unwrap_or_default();
        }
        // Certificate authorities sign host certificates, which libgit2 does not present.
        if marker == Some("cert-authority") || !hosts_match(first, host) {
            continue;
        }
        let (Some(_kind), Some(blob)) = (fields.next(), fields.next()) else { continue };
        let Ok(blob) = base64::engine::general_purpose::STANDARD.decode(blob) else { continue };
        let same = blob == key;
        if marker == Some("revoked") {
            if same {
                return Verdict::Revoked;
            }
            continue;
        }
        if same {
            return Verdict::Known;
        }
        listed = true;
    }
    if listed {
        Verdict::Mismatch
    } else {
        Verdict::Unknown
    }
}

/// The host field: comma-separated patterns (`*` and `?` wildcards, `!` negation), or one hashed
/// name (`|1|salt|hash`, as `ssh-keyscan -H` and HashKnownHosts write).
fn hosts_match(field: &str, host: &str) -> bool {
    if let Some(hashed) = field.strip_prefix("|1|") {
        return hashed_match(hashed, host);
    }
    let mut any = false;
    for pattern in field.split(',') {
        match pattern.strip_prefix('!') {
            Some(p) if glob(p, host) => return false,
            Some(_) => {}
            None => any |= glob(pattern, host),
        }
    }
    any
}

fn hashed_match(hashed: &str, host: &str) -> bool {
    let b64 = base64::engine::general_purpose::STANDARD;
    let Some((salt, hash)) = hashed.split_once('|') else { return false };
    let (Ok(salt), Ok(hash)) = (b64.decode(salt), b64.decode(hash)) else { return false };
    let Ok(mut mac) = <Hmac<sha1::Sha1> as KeyInit>::new_from_slice(&salt) else { return false };
    mac.update(host.as_bytes());
    mac.verify_slice(&hash).is_ok()
}

fn glob(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) =
        (pattern.to_ascii_lowercase().chars().collect(), text.to_ascii_lowercase().chars().collect());
    let (mut pi, mut ti, mut star, mut mark) = (0, 0, None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    // A real ed25519 public key blob and a second, different one.
    const KEY_A: &str = "AAAAC3NzaC1lZDI1NTE5AAAAIF65q2wayQK0fvaOjZOu27Mkewd4YXxtphIq6Ivz0haq";
    const KEY_B: &str = "AAAAC3NzaC1lZDI1NTE5AAAAILM0B7tE6axB9I+xAQlj5TKCb2nI9KE9ceYLEz8UBa+G";

    fn blob(k: &str) -> Vec<u8> {
        base64::engine::general_purpose::STANDARD.decode(k).unwrap()
    }

    #[test]
    fn names_carry_the_port_only_when_not_22() {
        assert_eq!(host_name("git.example", 22), "git.example");
        assert_eq!(host_name("127.0.0.1", 2222), "[127.0.0.1]:2222");
    }

    #[test]
    fn a_listed_key_is_known_and_another_key_is_a_mismatch() {
        let text = format!("# comment\n\ngit.example,10.0.0.1 ssh-ed25519 {KEY_A}\n");
        assert_eq!(check(&text, "git.example", &blob(KEY_A)), Verdict::Known);
        assert_eq!(check(&text, "10.0.0.1", &blob(KEY_A)), Verdict::Known);
        assert_eq!(check(&text, "git.example", &blob(KEY_B)), Verdict::Mismatch);
        assert_eq!(check(&text, "other.example", &blob(KEY_A)), Verdict::Unknown);
        // The port is part of the name: the same host on another port is another host.
        assert_eq!(check(&text, "[git.example]:2222", &blob(KEY_A)), Verdict::Unknown);
    }

    #[test]
    fn any_of_several_keys_for_a_host_matches() {
        let text = format!("h ssh-ed25519 {KEY_B}\nh ssh-ed25519 {KEY_A}\n");
        assert_eq!(check(&text, "h", &blob(KEY_A)), Verdict::Known);
    }

    #[test]
    fn hashed_names_match_their_host_only() {
        // `ssh-keygen -H` of "[127.0.0.1]:19491" with this salt.
        let salt = [7u8; 20];
        let mut mac = <Hmac<sha1::Sha1> as KeyInit>::new_from_slice(&salt).unwrap();
        mac.update(b"[127.0.0.1]:19491");
        let b64 = base64::engine::general_purpose::STANDARD;
        let field = format!("|1|{}|{}", b64.encode(salt), b64.encode(mac.finalize().into_bytes()));
        let text = format!("{field} ssh-ed25519 {KEY_A}\n");
        assert_eq!(check(&text, "[127.0.0.1]:19491", &blob(KEY_A)), Verdict::Known);
        assert_eq!(check(&text, "127.0.0.1", &blob(KEY_A)), Verdict::Unknown);
    }

    #[test]
    fn wildcards_negation_and_markers() {
        let text = format!("*.example,!bad.example ssh-ed25519 {KEY_A}\n@revoked * ssh-ed25519 {KEY_B}\n");
        assert_eq!(check(&text, "git.example", &blob(KEY_A)), Verdict::Known);
        assert_eq!(check(&text, "bad.example", &blob(KEY_A)), Verdict::Unknown);
        assert_eq!(check(&text, "git.example", &blob(KEY_B)), Verdict::Revoked);
        let ca = format!("@cert-authority * ssh-ed25519 {KEY_A}\n");
        assert_eq!(check(&ca, "git.example", &blob(KEY_A)), Verdict::Unknown);
    }

    #[test]
    fn glob_semantics() {
        assert!(glob("g?t.*", "git.example"));
        assert!(glob("*", ""));
        assert!(!glob("git", "gitx"));
        assert!(glob("GIT.example", "git.EXAMPLE"));
    }
}
