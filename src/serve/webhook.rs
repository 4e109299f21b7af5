//! Webhook authentication. A webhook only says "fetch now": its payload never supplies desired
//! state, so all that matters is that it comes from someone holding the secret.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// Which signature scheme authenticated a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Provider {
    /// `X-Hub-Signature-256: sha256=HEX` (GitHub).
    GitHub,
    /// `X-Gitlab-Token: SECRET` (GitLab).
    GitLab,
    /// `X-Gitea-Signature: HEX` (Gitea, Forgejo).
    Gitea,
    /// `X-Hawser-Signature: sha256=HEX`, HMAC-SHA256 of the body, for anything else.
    Generic,
}

fn hmac_ok(secret: &[u8], body: &[u8], hex_sig: &str) -> bool {
    let Ok(sig) = hex::decode(hex_sig.trim()) else { return false };
    let Ok(mut mac) = <Hmac<Sha256> as KeyInit>::new_from_slice(secret) else { return false };
    mac.update(body);
    mac.verify_slice(&sig).is_ok()
}

/// Constant-time equality (the length is not secret).
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Checks a request's headers and body against `secret`.
pub fn verify(secret: &[u8], headers: &axum::http::HeaderMap, body: &[u8]) -> Option<Provider> {
    let get = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(sig) = get("x-hub-signature-256") {
        return sig.strip_prefix("sha256=").filter(|s| hmac_ok(secret, body, s)).map(|_| Provider::GitHub);
    }
    if let Some(token) = get("x-gitlab-token") {
        return ct_eq(token.as_bytes(), secret).then_some(Provider::GitLab);
    }
    if let Some(sig) = get("x-gitea-signature") {
        return hmac_ok(secret, body, sig).then_some(Provider::Gitea);
    }
    if let Some(sig) = get("x-hawser-signature") {
        return sig.strip_prefix("sha256=").filter(|s| hmac_ok(secret, body, s)).map(|_| Provider::Generic);
    }
    None
}

/// The signature a sender computes, for tests and clients: `sha256=HEX`.
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret).expect("any key length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(k: &'static str, v: &str) -> axum::http::HeaderMap {
        let mut m = axum::http::HeaderMap::new();
        m.insert(k, v.parse().unwrap());
        m
    }

    #[test]
    fn each_provider_is_checked_with_the_secret() {
        let body = br#"{"ref":"refs/heads/main"}"#;
        let sig = sign(b"s3cret", body);
        assert_eq!(verify(b"s3cret", &h("x-hub-signature-256", &sig), body), Some(Provider::GitHub));
        assert_eq!(verify(b"s3cret", &h("x-hawser-signature", &sig), body), Some(Provider::Generic));
        assert_eq!(verify(b"s3cret", &h("x-gitea-signature", &sig[7..]), body), Some(Provider::Gitea));
        assert_eq!(verify(b"s3cret", &h("x-gitlab-token", "s3cret"), body), Some(Provider::GitLab));
        // Wrong secret, tampered body, missing header.
        assert_eq!(verify(b"other", &h("x-hub-signature-256", &sig), body), None);
        assert_eq!(verify(b"s3cret", &h("x-hub-signature-256", &sig), b"{}"), None);
        assert_eq!(verify(b"s3cret", &h("x-gitlab-token", "s3cre"), body), None);
        assert_eq!(verify(b"s3cret", &axum::http::HeaderMap::new(), body), None);
    }
}
