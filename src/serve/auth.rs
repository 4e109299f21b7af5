//! Who may see the dashboard, `/status` and `/metrics`, and press its buttons.
//!
//! On loopback nobody needs a token (whoever can reach the port already runs on the host),
//! unless one is configured. Listening anywhere else needs `tokenFile`: every page then wants
//! `Authorization: Bearer TOKEN`, or the session cookie the login form sets (a random value of
//! its own, forgotten at logout, after 12 hours, or when the service restarts). Wrong tokens
//! are throttled per address. Webhooks keep their own signatures and `/healthz` stays open for
//! probes.
//!
//! Every other request must name this service in `Host`: its listen address, a loopback name
//! when it listens on loopback, an IP address when it listens on all of them, or a configured
//! `hostNames` entry. A page of another site whose name was rebound to 127.0.0.1 (DNS
//! rebinding) is then refused, though the browser takes it for same-origin.
//!
//! State-changing requests from a browser (the cookie is sent by the browser, not chosen by the
//! page) carry a form token that only pages of this service know, and an `Origin`, when the
//! browser sends one, of this service's own host: a page elsewhere can make a browser post, but
//! not read the token it would need.

use super::webhook::ct_eq;
use axum::http::{header, HeaderMap};
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub const SESSION_COOKIE: &str = "hawser_session";
/// How long a login lasts.
pub const SESSION_TTL: Duration = Duration::from_secs(12 * 3600);
/// Sessions held at once; the oldest goes first.
const MAX_SESSIONS: usize = 256;
/// Wrong tokens one address may send in [`FAILURE_WINDOW`], and all addresses together.
const FAILURES_PER_PEER: usize = 10;
const FAILURES_IN_ALL: usize = 100;
const FAILURE_WINDOW: Duration = Duration::from_secs(60);
/// Addresses whose failures are remembered at once.
const MAX_PEERS: usize = 4096;

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
    csrf: String,
    hosts: Hosts,
    /// Live sessions, by their random value, to when they were made.
    sessions: Mutex<HashMap<String, Instant>>,
    failures: Mutex<Failures>,
}

/// The outcome of a token a client sent (the login form's, or a bearer).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Login {
    /// The token; a new session for the login form.
    Granted(String),
    Wrong,
    /// Too many wrong tokens lately: not even checked; try again after this long.
    Throttled(Duration),
}

/// Recent wrong tokens, per address and in all.
#[derive(Default)]
struct Failures {
    by_peer: HashMap<IpAddr, VecDeque<Instant>>,
    all: VecDeque<Instant>,
}

impl Failures {
    fn forget_old(&mut self, now: Instant) {
        let old = |q: &mut VecDeque<Instant>| {
            while q.front().is_some_and(|t| now.duration_since(*t) >= FAILURE_WINDOW) {
                q.pop_front();
            }
        };
        old(&mut self.all);
        self.by_peer.retain(|_, q| {
            old(q);
            !q.is_empty()
        });
    }

    /// How long `peer` must wait before its next try, if it must.
    fn wait(&mut self, peer: Option<IpAddr>, now: Instant) -> Option<Duration> {
        self.forget_old(now);
        let full = |q: &VecDeque<Instant>, max: usize| {
            (q.len() >= max).then(|| FAILURE_WINDOW.saturating_sub(now.duration_since(q[q.len() - max])))
        };
        let mine = peer.and_then(|p| self.by_peer.get(&p)).and_then(|q| full(q, FAILURES_PER_PEER));
        mine.or_else(|| full(&self.all, FAILURES_IN_ALL))
    }

    fn add(&mut self, peer: Option<IpAddr>, now: Instant) {
        self.all.push_back(now);
        if let Some(p) = peer {
            if self.by_peer.len() >= MAX_PEERS && !self.by_peer.contains_key(&p) {
                return; // counted in all
            }
            self.by_peer.entry(p).or_default().push_back(now);
        }
    }
}

/// The names a browser may reach this service by (see the module's doc).
#[derive(Debug)]
struct Hosts {
    loopback: bool,
    any_ip: bool,
    listen_ip: Option<IpAddr>,
    names: Vec<String>,
}

impl Hosts {
    fn new(listen: &str, names: &[String]) -> Hosts {
        let ip = listen.parse::<std::net::SocketAddr>().ok().map(|a| a.ip());
        Hosts {
            loopback: is_loopback(listen),
            any_ip: ip.is_some_and(|ip| ip.is_unspecified()),
            listen_ip: ip,
            names: names.iter().map(|n| n.trim().trim_end_matches('.').to_ascii_lowercase()).collect(),
        }
    }

    fn allows(&self, host: &str) -> bool {
        let host = host.trim();
        // `[v6]:port`, `[v6]`, `name:port`, `name`.
        let name = match host.strip_prefix('[') {
            Some(rest) => rest.split(']').next().unwrap_or(""),
            None => match host.rsplit_once(':') {
                Some((n, port)) if port.bytes().all(|b| b.is_ascii_digit()) => n,
                _ => host,
            },
        };
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        if self.names.contains(&name) {
            return true;
        }
        match name.parse::<IpAddr>() {
            Ok(ip) => self.any_ip || self.listen_ip == Some(ip) || (self.loopback && ip.is_loopback()),
            Err(_) => self.loopback && name == "localhost",
        }
    }
}

/// 32 random bytes, hex.
fn random_hex() -> String {
    let mut key = [0u8; 32];
    let _ = std::fs::File::open("/dev/urandom").and_then(|mut f| std::io::Read::read_exact(&mut f, &mut key));
    hex::encode(key)
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
    /// `host_names`: names besides the listen address that browsers use for this service.
    pub fn new(listen: &str, token_file: Option<&Path>, host_names: &[String]) -> Result<Access, AccessError> {
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
        // The form token is a key of this process: pages of an earlier run stop working,
        // which a reload fixes.
        let csrf = mac(random_hex().as_bytes(), "hawser form token");
        Ok(Access {
            token,
            csrf,
            hosts: Hosts::new(listen, host_names),
            sessions: Mutex::new(HashMap::new()),
            failures: Mutex::new(Failures::default()),
        })
    }

    /// Whether the request names this service in `Host` (a request without one is no browser's).
    pub fn host_allowed(&self, headers: &HeaderMap) -> bool {
        match headers.get(header::HOST) {
            None => true,
            Some(v) => v.to_str().is_ok_and(|h| self.hosts.allows(h)),
        }
    }

    pub fn needs_token(&self) -> bool {
        self.token.is_some()
    }

    /// The token of this service's forms.
    pub fn csrf(&self) -> &str {
        &self.csrf
    }

    /// How the request from `peer` proves its access: `Err` when it does not, with how long to
    /// wait when it sent too many wrong tokens lately.
    pub fn check(&self, headers: &HeaderMap, peer: Option<IpAddr>) -> Result<Proof, Option<Duration>> {
        if self.token.is_none() {
            return Ok(Proof::Open);
        }
        let bearer = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim);
        if let Some(b) = bearer {
            return match self.try_token(b, peer) {
                Login::Granted(_) => Ok(Proof::Bearer),
                Login::Wrong => Err(None),
                Login::Throttled(wait) => Err(Some(wait)),
            };
        }
        let c = cookie(headers, SESSION_COOKIE).ok_or(None)?;
        let mut sessions = self.sessions.lock().unwrap();
        match sessions.get(c) {
            Some(made) if made.elapsed() < SESSION_TTL => Ok(Proof::Cookie),
            Some(_) => {
                sessions.remove(c);
                Err(None)
            }
            None => Err(None),
        }
    }

    /// A token from `peer`, counted against its budget of wrong ones; the token is compared
    /// only while the budget lasts.
    fn try_token(&self, given: &str, peer: Option<IpAddr>) -> Login {
        let Some(token) = self.token.as_deref() else { return Login::Wrong };
        let now = Instant::now();
        let mut failures = self.failures.lock().unwrap();
        if let Some(wait) = failures.wait(peer, now) {
            return Login::Throttled(wait);
        }
        if ct_eq(given.trim().as_bytes(), token) {
            return Login::Granted(String::new());
        }
        failures.add(peer, now);
        drop(failures);
        tracing::warn!(peer = ?peer, "a wrong access token");
        Login::Wrong
    }

    /// The login form's token: a new session when it is the access token.
    pub fn login(&self, token: &str, peer: Option<IpAddr>) -> Login {
        match self.try_token(token, peer) {
            Login::Granted(_) => {
                let session = random_hex();
                let mut sessions = self.sessions.lock().unwrap();
                sessions.retain(|_, made| made.elapsed() < SESSION_TTL);
                if sessions.len() >= MAX_SESSIONS {
                    if let Some(oldest) = sessions.iter().min_by_key(|(_, made)| **made).map(|(s, _)| s.clone()) {
                        sessions.remove(&oldest);
                    }
                }
                sessions.insert(session.clone(), Instant::now());
                Login::Granted(session)
            }
            other => other,
        }
    }

    /// Ends the session the request's cookie names: it is refused from then on, wherever it
    /// was copied to.
    pub fn logout(&self, headers: &HeaderMap) {
        if let Some(c) = cookie(headers, SESSION_COOKIE) {
            self.sessions.lock().unwrap().remove(c);
        }
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
        let a = Access::new("0.0.0.0:9480", Some(&f), &[]).unwrap();
        (dir, a)
    }

    const PEER: Option<IpAddr> = Some(IpAddr::V4(std::net::Ipv4Addr::new(198, 18, 0, 7)));

    fn session_of(l: Login) -> String {
        match l {
            Login::Granted(s) => s,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_listener_off_loopback_needs_a_token() {
        assert!(matches!(Access::new("0.0.0.0:9480", None, &[]), Err(AccessError::NoToken(_))));
        assert!(matches!(Access::new("[::]:9480", None, &[]), Err(AccessError::NoToken(_))));
        assert_eq!(Access::new("127.0.0.1:9480", None, &[]).unwrap().check(&HeaderMap::new(), PEER), Ok(Proof::Open));
        assert!(Access::new("localhost:9480", None, &[]).is_ok());
        assert!(Access::new("[::1]:9480", None, &[]).is_ok());
    }

    #[test]
    fn a_bearer_or_the_login_cookie_grants_access() {
        let (_d, a) = with_token();
        assert_eq!(a.check(&HeaderMap::new(), PEER), Err(None));
        assert_eq!(a.check(&headers(&[("authorization", "Bearer t0ken")]), PEER), Ok(Proof::Bearer));
        assert_eq!(a.check(&headers(&[("authorization", "Bearer t0kem")]), PEER), Err(None));
        let session = session_of(a.login("t0ken", PEER));
        assert!(!session.contains("t0ken"));
        assert_eq!(a.login("nope", PEER), Login::Wrong);
        let c = format!("theme=dark; {SESSION_COOKIE}={session}");
        assert_eq!(a.check(&headers(&[("cookie", &c)]), PEER), Ok(Proof::Cookie));
        assert_eq!(a.check(&headers(&[("cookie", "hawser_session=00")]), PEER), Err(None));
    }

    /// Attack: the session cookie was a fixed value (an HMAC of the token): every login gave
    /// the same one, and it still worked after logout.
    #[test]
    fn sessions_are_random_and_end_at_logout() {
        let (_d, a) = with_token();
        let (one, two) = (session_of(a.login("t0ken", PEER)), session_of(a.login("t0ken", PEER)));
        assert_ne!(one, two, "each login is a session of its own");
        let (_d2, b) = with_token();
        assert_ne!(session_of(b.login("t0ken", PEER)), one, "not derived from the token");
        let h = headers(&[("cookie", &format!("{SESSION_COOKIE}={one}"))]);
        assert_eq!(a.check(&h, PEER), Ok(Proof::Cookie));
        a.logout(&h);
        assert_eq!(a.check(&h, PEER), Err(None), "a session ends at logout, wherever it was copied");
        let h2 = headers(&[("cookie", &format!("{SESSION_COOKIE}={two}"))]);
        assert_eq!(a.check(&h2, PEER), Ok(Proof::Cookie), "other sessions go on");
    }

    /// Attack: login had no throttling (300 guesses in 0.1 s).
    #[test]
    fn wrong_tokens_are_throttled_per_address() {
        let (_d, a) = with_token();
        for _ in 0..FAILURES_PER_PEER {
            assert_eq!(a.login("guess", PEER), Login::Wrong);
        }
        // Now not even the right token is looked at from there, by form or bearer.
        assert!(matches!(a.login("t0ken", PEER), Login::Throttled(w) if w > Duration::from_secs(50)));
        let bearer = headers(&[("authorization", "Bearer t0ken")]);
        assert!(matches!(a.check(&bearer, PEER), Err(Some(_))));
        // Another address is not held up by it.
        let other = Some(IpAddr::V4(std::net::Ipv4Addr::new(198, 18, 0, 8)));
        assert_eq!(a.check(&bearer, other), Ok(Proof::Bearer));
        // Nor by many addresses guessing a little each, up to the ceiling for all.
        for i in 0..(FAILURES_IN_ALL as u32) {
            let _ = a.login("guess", Some(IpAddr::V4(std::net::Ipv4Addr::from(0xc612_0100 + i))));
        }
        assert!(matches!(a.login("t0ken", other), Login::Throttled(_)));
    }

    /// Attack: with no token on loopback, a page asked for as `Host: rebind.evil.example` (a
    /// name rebound to 127.0.0.1) was served, its form token read and its button posted.
    #[test]
    fn only_the_names_of_this_service_are_served() {
        let host = |a: &Access, h: &str| a.host_allowed(&headers(&[("host", h)]));
        let a = Access::new("127.0.0.1:9480", None, &[]).unwrap();
        for ok in ["127.0.0.1:9480", "127.0.0.1", "localhost:9480", "LOCALHOST", "[::1]:9480", "127.0.0.2:9480"] {
            assert!(host(&a, ok), "{ok}");
        }
        for bad in ["rebind.evil.example", "rebind.evil.example:9480", "localhost.evil.example", "10.0.0.5:9480", ""] {
            assert!(!host(&a, bad), "{bad}");
        }
        assert!(a.host_allowed(&HeaderMap::new()), "no Host: no browser");
        let named = Access::new("127.0.0.1:9480", None, &["Hawser.Example.Org".into()]).unwrap();
        assert!(host(&named, "hawser.example.org:9480") && host(&named, "hawser.example.org."));
        let (_d, any) = with_token();
        assert!(host(&any, "10.0.0.5:9480") && host(&any, "[2001:db8::1]:9480"));
        assert!(!host(&any, "hawser.example.org") && !host(&any, "localhost"));
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
