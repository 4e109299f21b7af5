//! Who may see the dashboard, `/status` and `/metrics`, and press its buttons.
//!
//! On loopback nobody needs a token (whoever can reach the port already runs on the host),
//! unless one is configured. Listening anywhere else needs `tokenFile`: every page then wants
//! `Authorization: Bearer TOKEN`, or the session cookie the login form sets (an HMAC of the
//! token, so the cookie never holds the token itself). Webhooks keep their own signatures and
//! `/healthz` stays open for probes.
//!
//! State-changing requests from a browser (the cookie is sent by the browser, not chosen by the
//! page) carry a form token that only pages of this service know, and an `Origin`, when the
//! browser sends one, of this service's own host: a page elsewhere can make a browser post, but
//! not read the token it would need.

use super::webhook::ct_eq;
use axum::http::{header, HeaderMap};
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use std::path::Path;

pub const SESSION_COOKIE: &str = "hawser_session";

#[derive(Debug, thiserror::Error)]
pub enum AccessError {
    #[error(
        "listening on {0} (not loopback) exposes the dashboard, /status and /metrics: set `tokenFile` in the service config (or --token-file) to a file holding an access token, or listen on 127.0.0.1"
    )]
    NoToken(String),
    #[error("cannot read the access token {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("the access token file {0} is empty; refusing to start with an empty token")]
    Empty(String),
}

/// How a request proved who it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Proof {
    /// No token is configured (loopback).
    Open,
    Bearer,
    Cookie,
}

pub struct Access {
    token: Option<Vec<u8>>,
    session: Option<String>,
    csrf: String,
}

fn mac(key: &[u8], what: &str) -> String {
    let mut m = <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("any key length");
    m.update(what.as_bytes());
    hex::encode(m.finalize().into_bytes())
}

/// Whether `listen` (`HOST:PORT`) only takes connections from this host.
pub fn is_loopback(listen: &str) -> bool {
    match listen.parse::<std::net::SocketAddr>() {
        Ok(a) => a.ip().is_loopback(),
        Err(_) => listen.rsplit_once(':').is_some_and(|(h, _)| h == "localhost"),
    }
}

impl Access {
    pub fn new(listen: &str, token_file: Option<&Path>) -> Result<Access, AccessError> {
        let token = match token_file {
            None if !is_loopback(listen) => return Err(AccessError::NoToken(listen.to_string())),
            None => None,
            Some(path) => {
                let text = std::fs::read(path)
                    .map_err(|source| AccessError::Read { path: path.display().to_string(), source })?;
                let token = String::from_utf8_lossy(&text).trim().as_bytes().to_vec();
                if token.is_empty() {
                    return Err(AccessError::Empty(path.display().to_string()));
                }
                Some(token)
            }
        };
        let session = token.as_deref().map(|t| mac(t, "hawser dashboard session v1"));
        // The form token is derived from a key of this process: pages of an earlier run stop
        // working, which a reload fixes.
        let mut key = [0u8; 32];
        let _ = std::fs::File::open("/dev/urandom").and_then(|mut f| std::io::Read::read_exact(&mut f, &mut key));
        let csrf = mac(&key, &format!("hawser form token {}", session.as_deref().unwrap_or("")));
        Ok(Access { token, session, csrf })
    }

    pub fn needs_token(&self) -> bool {
        self.token.is_some()
    }

    /// The token of this service's forms.
    pub fn csrf(&self) -> &str {
        &self.csrf
    }

    /// How the request proves its access, if it does.
    pub fn check(&self, headers: &HeaderMap) -> Option<Proof> {
        let Some(token) = &self.token else { return Some(Proof::Open) };
        let bearer = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim);
        if let Some(b) = bearer {
            return ct_eq(b.as_bytes(), token).then_some(Proof::Bearer);
        }
        let session = self.session.as_deref()?;
        cookie(headers, SESSION_COOKIE).filter(|c| ct_eq(c.as_bytes(), session.as_bytes())).map(|_| Proof::Cookie)
    }

    /// Whether `token` (from the login form) is the access token.
    pub fn login(&self, token: &str) -> Option<String> {
        let (t, s) = (self.token.as_deref()?, self.session.clone()?);
        ct_eq(token.trim().as_bytes(), t).then_some(s)
    }

    /// Whether a state-changing request may go ahead: a bearer token is never sent by a browser
    /// on its own; anything else needs the form token and, when told, our own origin.
    pub fn same_site(&self, proof: Proof, headers: &HeaderMap, form_token: Option<&str>) -> bool {
        if proof == Proof::Bearer {
            return true;
        }
        if !form_token.is_some_and(|t| ct_eq(t.as_bytes(), self.csrf.as_bytes())) {
            return false;
        }
        same_origin(headers)
    }
}

/// `Origin` (when the browser sends it) names the host the request was sent to, and
/// `Sec-Fetch-Site` (when sent) does not say the request came from another site.
pub fn same_origin(headers: &HeaderMap) -> bool {
    let get = |h: header::HeaderName| headers.get(h).and_then(|v| v.to_str().ok());
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
        if !matches!(site, "same-origin" | "none") {
            return false;
        }
    }
    match get(header::ORIGIN) {
        None => true,
        Some(origin) => {
            let host = get(header::HOST).unwrap_or("");
            let bare = origin.strip_prefix("http://").or_else(|| origin.strip_prefix("https://"));
            !host.is_empty() && bare == Some(host)
        }
    }
}

fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get_all(header::COOKIE).iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(';')).find_map(|kv| {
        let (k, v) = kv.trim().split_once('=')?;
        (k == name).then_some(v)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, v.parse().unwrap());
        }
        h
    }

    fn with_token() -> (tempfile::TempDir, Access) {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("token");
        std::fs::write(&f, "t0ken\n").unwrap();
        let a = Access::new("0.0.0.0:9480", Some(&f)).unwrap();
        (dir, a)
    }

    #[test]
    fn a_listener_off_loopback_needs_a_token() {
        assert!(matches!(Access::new("0.0.0.0:9480", None), Err(AccessError::NoToken(_))));
        assert!(matches!(Access::new("[::]:9480", None), Err(AccessError::NoToken(_))));
        assert_eq!(Access::new("127.0.0.1:9480", None).unwrap().check(&HeaderMap::new()), Some(Proof::Open));
        assert!(Access::new("localhost:9480", None).is_ok());
        assert!(Access::new("[::1]:9480", None).is_ok());
    }

    #[test]
    fn a_bearer_or_the_login_cookie_grants_access() {
        let (_d, a) = with_token();
        assert_eq!(a.check(&HeaderMap::new()), None);
        assert_eq!(a.check(&headers(&[("authorization", "Bearer t0ken")])), Some(Proof::Bearer));
        assert_eq!(a.check(&headers(&[("authorization", "Bearer t0kem")])), None);
        let session = a.login("t0ken").unwrap();
        assert!(!session.contains("t0ken"));
        assert_eq!(a.login("nope"), None);
        let c = format!("theme=dark; {SESSION_COOKIE}={session}");
        assert_eq!(a.check(&headers(&[("cookie", &c)])), Some(Proof::Cookie));
        assert_eq!(a.check(&headers(&[("cookie", "hawser_session=00")])), None);
    }

    #[test]
    fn a_post_from_a_browser_needs_the_form_token_and_our_origin() {
        let (_d, a) = with_token();
        let csrf = a.csrf().to_string();
        let ours = headers(&[("host", "10.0.0.5:9480"), ("origin", "http://10.0.0.5:9480")]);
        assert!(a.same_site(Proof::Cookie, &ours, Some(&csrf)));
        assert!(!a.same_site(Proof::Cookie, &ours, None));
        assert!(!a.same_site(Proof::Cookie, &ours, Some("forged")));
        let theirs = headers(&[("host", "10.0.0.5:9480"), ("origin", "https://evil.example")]);
        assert!(!a.same_site(Proof::Cookie, &theirs, Some(&csrf)));
        let cross = headers(&[("host", "10.0.0.5:9480"), ("sec-fetch-site", "cross-site")]);
        assert!(!a.same_site(Proof::Cookie, &cross, Some(&csrf)));
        // curl with the token: no browser, no forgery.
        assert!(a.same_site(Proof::Bearer, &HeaderMap::new(), None));
    }
}
