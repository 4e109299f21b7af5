//! Notifications: per source, targets that are told when a deploy succeeds, fails, is rolled
//! back, repairs drift, is invalid, or the source goes away.
//!
//! ```toml
//! [[source.notify]]
//! urlFile = "/etc/hawser/chat.url"      # the URL is a credential: read from a file, never shown
//! format = "slack"                      # or "json"
//! events = ["failed", "rolledBack"]     # default: all six
//! secretFile = "/etc/hawser/notify.key" # json: HMAC-SHA256 of the body in X-Hawser-Signature
//! ```
//!
//! Delivery never blocks a reconcile: each target has its own queue and task, which retries a
//! message with exponential backoff (1 s doubling to 60 s) for up to [`GIVE_UP_AFTER`], in
//! order. Each waits in the target's outbox on disk until it is delivered or given up, so a
//! restart sends what was still waiting (at least once). How each target fares is part of the
//! source's status (without its URL).
//!
//! The `json` format's body (`formatVersion` 1):
//! `{"formatVersion":1,"event":"failed","source":"shop","project":"shop","revision":"…",
//!   "subject":"commit subject","changes":["Container web: replace (changed: env.VERSION)"],
//!   "cause":"…","time":"2026-11-24T18:35:41Z"}`; `subject`, `changes` and `cause` are left out
//! when unknown or empty. With `secretFile`, `X-Hawser-Signature: sha256=HEX` is the HMAC-SHA256
//! of the body under the file's contents (as hawser's own webhooks are signed).

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};
use tokio::sync::mpsc;

/// A message not delivered after this long is dropped (and the failure reported).
pub const GIVE_UP_AFTER: Duration = Duration::from_secs(3600);
const QUEUE: usize = 256;
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum EventKind {
    Deployed,
    Failed,
    RolledBack,
    DriftRepaired,
    Invalid,
    SourceDown,
}

impl EventKind {
    pub const ALL: [EventKind; 6] = [
        EventKind::Deployed,
        EventKind::Failed,
        EventKind::RolledBack,
        EventKind::DriftRepaired,
        EventKind::Invalid,
        EventKind::SourceDown,
    ];

    fn headline(self) -> &'static str {
        match self {
            EventKind::Deployed => "deployed",
            EventKind::Failed => "deploy FAILED",
            EventKind::RolledBack => "deploy FAILED and rolled back: the old version serves",
            EventKind::DriftRepaired => "drift repaired",
            EventKind::Invalid => "revision INVALID: nothing applied",
            EventKind::SourceDown => "source unreachable: the last good revision stays deployed",
        }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    #[default]
    Json,
    /// A Slack incoming webhook's `{"text": …}`, which Mattermost and Discord's
    /// Slack-compatible endpoints take too.
    Slack,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NotifyConfig {
    pub url_file: PathBuf,
    #[serde(default)]
    pub format: Format,
    #[serde(default)]
    pub events: Option<Vec<EventKind>>,
    #[serde(default)]
    pub secret_file: Option<PathBuf>,
}

/// What happened, for every target of a source.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Message {
    pub format_version: u32,
    pub event: EventKind,
    pub source: String,
    pub project: Option<String>,
    pub revision: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub changes: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cause: Option<String>,
    /// RFC 3339, UTC.
    pub time: String,
}

impl Message {
    pub fn json(&self) -> String {
        serde_json::to_string(self).expect("messages serialize")
    }

    pub fn slack(&self) -> String {
        let project = self.project.as_deref().unwrap_or(&self.source);
        let mut text = format!("*{project}*: {}", self.event.headline());
        if let Some(r) = &self.revision {
            text.push_str(&format!(" at `{}`", super::dashboard::short_revision(r)));
        }
        if let Some(s) = &self.subject {
            text.push_str(&format!(" ({s})"));
        }
        text.push_str(&format!(" [source {}]", self.source));
        for c in self.changes.iter().take(20) {
            text.push_str(&format!("\n• {c}"));
        }
        if self.changes.len() > 20 {
            text.push_str(&format!("\n• and {} more", self.changes.len() - 20));
        }
        if let Some(c) = &self.cause {
            text.push_str(&format!("\n```{c}```"));
        }
        serde_json::json!({ "text": text }).to_string()
    }
}

/// How one target fares, for `/status` and the dashboard.
#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TargetStatus {
    pub format: Format,
    pub events: Vec<EventKind>,
    pub delivered: u64,
    /// Messages waiting (the one being retried included).
    pub pending: u64,
    pub dropped: u64,
    /// The last attempt failed; `last_error` says why.
    pub failing: bool,
    pub last_error: Option<String>,
}

struct Target {
    events: Vec<EventKind>,
    tx: mpsc::Sender<Queued>,
    status: Arc<Mutex<TargetStatus>>,
    outbox: Option<Outbox>,
}

/// A message on its way, and its file in the outbox (removed once it is delivered or given up).
struct Queued {
    message: Message,
    file: Option<PathBuf>,
    /// When it was first queued (by an earlier run, for one left in the outbox).
    since: std::time::SystemTime,
}

/// A target's messages not yet delivered, one file each (`STATE_DIR/notify/SOURCE-N/SEQ.json`),
/// so a restart of the service delivers them instead of losing them. They are the messages as
/// sent: secret values are hidden in them already.
struct Outbox {
    dir: PathBuf,
    next: std::sync::atomic::AtomicU64,
}

impl Outbox {
    /// The outbox of target `index` of `source`, with what an earlier run left in it, oldest
    /// first (a file that can't be read as a message is set aside as `.bad`).
    fn open(root: &Path, source: &str, index: usize) -> std::io::Result<(Outbox, Vec<Queued>)> {
        let name: String =
            source.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' }).collect();
        let dir = root.join(format!("{name}-{index}"));
        std::fs::create_dir_all(&dir)?;
        let mut left = Vec::new();
        let mut last = 0;
        for entry in std::fs::read_dir(&dir)?.flatten() {
            let path = entry.path();
            let Some(seq) = path.file_name().and_then(|n| n.to_str()).and_then(|n| n.strip_suffix(".json")) else {
                continue;
            };
            let Ok(seq) = seq.parse::<u64>() else { continue };
            last = last.max(seq);
            match std::fs::read(&path).ok().and_then(|t| serde_json::from_slice::<Message>(&t).ok()) {
                Some(message) => {
                    let since = entry.metadata().and_then(|m| m.modified()).unwrap_or_else(|_| SystemTime::now());
                    left.push((seq, Queued { message, file: Some(path), since }));
                }
                None => {
                    let _ = std::fs::rename(&path, path.with_extension("bad"));
                }
            }
        }
        left.sort_by_key(|(seq, _)| *seq);
        let outbox = Outbox { dir, next: std::sync::atomic::AtomicU64::new(last + 1) };
        Ok((outbox, left.into_iter().map(|(_, q)| q).collect()))
    }

    fn put(&self, m: &Message) -> std::io::Result<PathBuf> {
        let seq = self.next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let path = self.dir.join(format!("{seq:020}.json"));
        crate::state_file::write_atomic(&path, m.json().as_bytes())?;
        Ok(path)
    }
}

/// The targets of one source.
#[derive(Default)]
pub struct Notifier {
    targets: Vec<Target>,
}

#[derive(Debug, thiserror::Error)]
#[error("source `{source_name}`: notification target {index}: cannot read {}: {message}", path.display())]
pub struct NotifyError {
    pub source_name: String,
    pub index: usize,
    pub path: PathBuf,
    pub message: String,
}

fn read_secret(source: &str, index: usize, path: &PathBuf) -> Result<String, NotifyError> {
    let err = |message: String| NotifyError { source_name: source.to_string(), index, path: path.clone(), message };
    let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
    let text = text.trim().to_string();
    if text.is_empty() {
        return Err(err("it is empty".into()));
    }
    Ok(text)
}

impl Notifier {
    /// Reads each target's URL (and key) now, so a wrong path stops the service at its start;
    /// delivery tasks start with the first message. With `outbox` (`STATE_DIR/notify`), messages
    /// wait on disk until delivered, and what an earlier run left there is sent first.
    pub fn new(source: &str, configs: &[NotifyConfig], outbox: Option<&Path>) -> Result<Notifier, NotifyError> {
        let mut targets = Vec::new();
        for (i, c) in configs.iter().enumerate() {
            let url = read_secret(source, i + 1, &c.url_file)?;
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(NotifyError {
                    source_name: source.to_string(),
                    index: i + 1,
                    path: c.url_file.clone(),
                    message: "it does not hold an http:// or https:// URL".into(),
                });
            }
            let key = match &c.secret_file {
                Some(p) => Some(read_secret(source, i + 1, p)?.into_bytes()),
                None => None,
            };
            let events = c.events.clone().unwrap_or_else(|| EventKind::ALL.to_vec());
            let status =
                Arc::new(Mutex::new(TargetStatus { format: c.format, events: events.clone(), ..Default::default() }));
            let (tx, rx) = mpsc::channel(QUEUE);
            let (outbox, left) = match outbox.map(|root| Outbox::open(root, source, i + 1)) {
                Some(Ok((o, left))) => (Some(o), left),
                Some(Err(e)) => {
                    tracing::warn!(source, target = i + 1, error = %e, "no outbox: undelivered messages are lost on a restart");
                    (None, Vec::new())
                }
                None => (None, Vec::new()),
            };
            for queued in left {
                match tx.try_send(queued) {
                    Ok(()) => status.lock().unwrap().pending += 1,
                    Err(_) => break, // the rest wait on disk for the next start
                }
            }
            tokio::spawn(deliver(url, c.format, key, rx, status.clone()));
            targets.push(Target { events, tx, status, outbox });
        }
        Ok(Notifier { targets })
    }

    /// Queues `m` for every target that wants its event; never waits.
    pub fn send(&self, m: &Message) {
        for t in self.targets.iter().filter(|t| t.events.contains(&m.event)) {
            let file = t.outbox.as_ref().and_then(|o| match o.put(m) {
                Ok(f) => Some(f),
                Err(e) => {
                    tracing::warn!(source = %m.source, error = %e, "a notification is not in the outbox: a restart loses it");
                    None
                }
            });
            let mut st = t.status.lock().unwrap();
            match t.tx.try_send(Queued { message: m.clone(), file, since: SystemTime::now() }) {
                Ok(()) => st.pending += 1,
                Err(e) => {
                    st.dropped += 1;
                    if let Some(f) = e.into_inner().file {
                        let _ = std::fs::remove_file(f);
                    }
                    tracing::warn!(source = %m.source, "a notification queue is full; a message was dropped");
                }
            }
        }
    }

    pub fn status(&self) -> Vec<TargetStatus> {
        self.targets.iter().map(|t| t.status.lock().unwrap().clone()).collect()
    }
}

/// One target's delivery loop: each message in turn, retried until it is taken or too old.
async fn deliver(
    url: String,
    format: Format,
    key: Option<Vec<u8>>,
    mut rx: mpsc::Receiver<Queued>,
    status: Arc<Mutex<TargetStatus>>,
) {
    crate::tls::init();
    // A redirect is not followed: it would send the body, and its signature, to wherever the
    // target (or whoever answers in its place) names.
    let client =
        match reqwest::Client::builder().timeout(ATTEMPT_TIMEOUT).redirect(reqwest::redirect::Policy::none()).build() {
            Ok(c) => c,
            Err(e) => {
                status.lock().unwrap().last_error = Some(format!("no HTTP client: {e}"));
                return;
            }
        };
    while let Some(Queued { message: m, file, since }) = rx.recv().await {
        let body = match format {
            Format::Json => m.json(),
            Format::Slack => m.slack(),
        };
        let mut delay = Duration::from_secs(1);
        loop {
            let mut req = client.post(&url).header("content-type", "application/json").header("user-agent", "hawser");
            if let Some(k) = &key {
                req = req.header("x-hawser-signature", super::webhook::sign(k, body.as_bytes()));
            }
            let result = req.body(body.clone()).send().await;
            let error = match result {
                Ok(r) if r.status().is_success() => None,
                Ok(r) if r.status().is_redirection() => Some(format!(
                    "the target answered {} (a redirect; hawser does not follow them: configure the URL it names)",
                    r.status()
                )),
                Ok(r) => Some(format!("the target answered {}", r.status())),
                // Without the URL, which is a credential.
                Err(e) => Some(describe(&e)),
            };
            let done = {
                let mut st = status.lock().unwrap();
                match error {
                    None => {
                        st.delivered += 1;
                        st.pending = st.pending.saturating_sub(1);
                        st.failing = false;
                        true
                    }
                    Some(e) => {
                        st.failing = true;
                        st.last_error = Some(e.clone());
                        if since.elapsed().unwrap_or_default() > GIVE_UP_AFTER {
                            st.pending = st.pending.saturating_sub(1);
                            st.dropped += 1;
                            tracing::warn!(source = %m.source, error = %e, "a notification was given up");
                            true
                        } else {
                            tracing::debug!(source = %m.source, error = %e, retry_in = ?delay, "notification not delivered");
                            false
                        }
                    }
                }
            };
            if done {
                if let Some(f) = &file {
                    let _ = std::fs::remove_file(f);
                }
                break;
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(60));
        }
    }
}

fn describe(e: &reqwest::Error) -> String {
    let what = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "cannot connect"
    } else {
        "request failed"
    };
    // reqwest's message names the URL; the URL may hold a token.
    format!("{what} (target URL not shown)")
}

pub use crate::display::rfc3339;

#[cfg(test)]
mod tests {
    use super::*;

    fn message(event: EventKind) -> Message {
        Message {
            format_version: 1,
            event,
            source: "shop".into(),
            project: Some("shop".into()),
            revision: Some("0123456789abcdef0123".into()),
            subject: Some("Bump web to 1.4".into()),
            changes: vec!["Container web: replace (changed: env.VERSION)".into()],
            cause: (event == EventKind::Failed).then(|| "Container web: unhealthy".into()),
            time: rfc3339(1_795_545_341.0),
        }
    }

    #[test]
    fn the_json_body_is_the_documented_one() {
        let v: serde_json::Value = serde_json::from_str(&message(EventKind::Failed).json()).unwrap();
        assert_eq!(v["formatVersion"], 1);
        assert_eq!(v["event"], "failed");
        assert_eq!(v["project"], "shop");
        assert_eq!(v["subject"], "Bump web to 1.4");
        assert_eq!(v["cause"], "Container web: unhealthy");
        assert_eq!(v["time"], "2026-11-24T18:35:41Z");
        assert_eq!(v["changes"][0], "Container web: replace (changed: env.VERSION)");
        let ok: serde_json::Value = serde_json::from_str(&message(EventKind::Deployed).json()).unwrap();
        assert!(ok.get("cause").is_none());
    }

    #[test]
    fn the_slack_text_says_project_revision_subject_changes_and_cause() {
        let v: serde_json::Value = serde_json::from_str(&message(EventKind::Failed).slack()).unwrap();
        let text = v["text"].as_str().unwrap();
        assert!(text.starts_with("*shop*: deploy FAILED at `0123456789ab` (Bump web to 1.4)"), "{text}");
        assert!(text.contains("• Container web: replace"), "{text}");
        assert!(text.contains("```Container web: unhealthy```"), "{text}");
    }

    #[test]
    fn a_target_is_configured_from_files_and_its_url_is_never_in_its_status() {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let url = dir.path().join("url");
        std::fs::write(&url, "http://127.0.0.1:9/hook?token=SECRETTOKEN\n").unwrap();
        let cfg = NotifyConfig { url_file: url.clone(), format: Format::Json, events: None, secret_file: None };
        rt.block_on(async {
            let n = Notifier::new("shop", std::slice::from_ref(&cfg), None).unwrap();
            assert_eq!(n.status()[0].events.len(), 6);
            let status = serde_json::to_string(&n.status()).unwrap();
            assert!(!status.contains("SECRETTOKEN"));
        });
        std::fs::write(&url, "ftp://nope\n").unwrap();
        let e = rt.block_on(async { Notifier::new("shop", &[cfg], None).err().unwrap().to_string() });
        assert!(e.contains("http://") && !e.contains("ftp://nope"), "{e}");
    }
}

#[cfg(test)]
mod outbox_tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn files(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .map(|r| r.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
            .unwrap_or_default();
        names.sort();
        names
    }

    fn message(revision: &str) -> Message {
        Message {
            format_version: 1,
            event: EventKind::Deployed,
            source: "shop".into(),
            project: Some("shop".into()),
            revision: Some(revision.into()),
            subject: None,
            changes: vec![],
            cause: None,
            time: rfc3339(1_795_545_341.0),
        }
    }

    #[test]
    fn undelivered_messages_outlive_the_service_and_are_sent_in_order_after_a_restart() {
        let state = tempfile::tempdir().unwrap();
        let root = state.path().join("notify");
        let url = state.path().join("url");
        let cfg = NotifyConfig { url_file: url.clone(), format: Format::Json, events: None, secret_file: None };
        // Nothing listens: the messages wait in the outbox.
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        std::fs::write(&url, format!("http://{}/hook\n", closed.local_addr().unwrap())).unwrap();
        drop(closed);
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let n = Notifier::new("shop", std::slice::from_ref(&cfg), Some(&root)).unwrap();
            n.send(&message("r1"));
            n.send(&message("r2"));
            assert_eq!(n.status()[0].pending, 2);
            tokio::time::sleep(Duration::from_millis(200)).await;
        });
        drop(rt); // the service stops
        let outbox = root.join("shop-1");
        assert_eq!(files(&outbox), ["00000000000000000001.json", "00000000000000000002.json"]);
        std::fs::write(outbox.join("00000000000000000000.json"), "not a message").unwrap();

        // The next start sends them, oldest first, and empties the outbox.
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let got = rt.block_on(async {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            std::fs::write(&url, format!("http://{}/hook\n", listener.local_addr().unwrap())).unwrap();
            let n = Notifier::new("shop", std::slice::from_ref(&cfg), Some(&root)).unwrap();
            assert_eq!(n.status()[0].pending, 2, "what the last run left");
            let mut got = Vec::new();
            while got.len() < 2 {
                let (mut c, _) = listener.accept().await.unwrap();
                let mut buf = vec![0; 64 * 1024];
                let mut text = String::new();
                while !text.contains("\"revision\"") || !text.ends_with('}') {
                    let k = c.read(&mut buf).await.unwrap();
                    assert!(k > 0, "{text}");
                    text.push_str(&String::from_utf8_lossy(&buf[..k]));
                }
                c.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n").await.unwrap();
                got.push(text.split("\"revision\":\"").nth(1).unwrap()[..2].to_string());
            }
            for _ in 0..50 {
                if n.status()[0].delivered == 2 {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            assert_eq!(n.status()[0].delivered, 2);
            got
        });
        assert_eq!(got, ["r1", "r2"]);
        assert_eq!(files(&outbox), ["00000000000000000000.bad"], "delivered ones are gone; a bad file set aside");
    }

    /// Attack: notifications followed redirects to other hosts, and a 307 re-posted the body
    /// and its signature there.
    #[test]
    fn a_redirect_is_not_followed_and_the_body_goes_nowhere_else() {
        let state = tempfile::tempdir().unwrap();
        let url = state.path().join("url");
        let secret = state.path().join("secret");
        std::fs::write(&secret, "s3cret\n").unwrap();
        let cfg = NotifyConfig { url_file: url.clone(), format: Format::Json, events: None, secret_file: Some(secret) };
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let target = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let elsewhere = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let away = format!("http://{}/steal", elsewhere.local_addr().unwrap());
            std::fs::write(&url, format!("http://{}/hook\n", target.local_addr().unwrap())).unwrap();
            let n = Notifier::new("shop", std::slice::from_ref(&cfg), None).unwrap();
            n.send(&message("r1"));
            let (mut c, _) = target.accept().await.unwrap();
            let mut buf = vec![0; 64 * 1024];
            let _ = c.read(&mut buf).await.unwrap();
            let answer = format!(
                "HTTP/1.1 307 Temporary Redirect\r\nlocation: {away}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
            );
            c.write_all(answer.as_bytes()).await.unwrap();
            drop(c);
            let stolen = tokio::time::timeout(Duration::from_millis(800), elsewhere.accept()).await;
            assert!(stolen.is_err(), "the body was re-posted to the redirect's target");
            for _ in 0..50 {
                if n.status()[0].failing {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            let st = &n.status()[0];
            assert!(st.failing && st.delivered == 0, "{st:?}");
            assert!(st.last_error.as_deref().unwrap_or("").contains("does not follow"), "{st:?}");
        });
    }
}
