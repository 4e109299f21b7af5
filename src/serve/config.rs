//! `hawser serve --config FILE`: the sources one host follows, in TOML.
//!
//! ```toml
//! listen = "127.0.0.1:9480"          # HTTP: the dashboard, /healthz, /status, /metrics, /hooks/NAME
//! tokenFile = "/etc/hawser/dashboard.token"   # access token; needed to listen beyond loopback
//! hostNames = ["hawser.example.org"]  # names browsers use for it, besides the listen address
//!
//! [[source]]
//! name = "shop"                      # default: the repository's name
//! repo = "/srv/git/shop.git"         # a local repository (watched) or a git URL (polled)
//! ref = "main"                       # default: HEAD / the remote's default branch
//! path = "deploy"                    # the manifest folder; default from hawser.toml
//! project = "shop"                   # default from hawser.toml
//! interval = "60s"                   # resync (local) or poll (remote) period, with jitter
//! fetchTimeout = "30s"               # a remote fetch running longer is cancelled
//! webhookSecretFile = "/etc/hawser/shop.secret"
//! selfHeal = true                    # repair drift on engine events (default)
//! prune = true                       # remove what is no longer declared (default)
//! allowedSigners = "/etc/hawser/allowed_signers"   # only commits signed by these SSH keys
//!
//! [[source.notify]]                  # any number; see serve::notify
//! urlFile = "/etc/hawser/chat.url"
//! format = "slack"                   # or "json" (signed with secretFile)
//! events = ["failed", "rolledBack", "sourceDown"]
//!
//! [source.auth]                      # for remote repositories that want credentials
//! sshKeyFile = "/etc/hawser/deploy_key"            # ssh:// and user@host:path URLs
//! knownHosts = "/etc/hawser/known_hosts"           # default ~/.ssh/known_hosts + /etc/ssh/ssh_known_hosts
//! tokenFile = "/etc/hawser/shop.token"             # https:// URLs
//! username = "x-access-token"                      # with the token; SSH: from the URL or `git`
//! ```

use crate::desired::diag::{Diagnostics, Pos, Sink};
use crate::desired::Duration;
use serde::Deserialize;
use std::path::{Path, PathBuf};

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServeConfig {
    #[serde(default = "default_listen")]
    pub listen: String,
    /// The access token of the dashboard, /status and /metrics (see `serve::auth`).
    #[serde(default)]
    pub token_file: Option<PathBuf>,
    /// Names browsers reach the service by, besides its listen address (a request naming any
    /// other host is refused: DNS rebinding).
    #[serde(default)]
    pub host_names: Vec<String>,
    #[serde(default, rename = "source")]
    pub sources: Vec<SourceConfig>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SourceConfig {
    #[serde(default)]
    pub name: Option<String>,
    pub repo: String,
    #[serde(default, rename = "ref")]
    pub git_ref: Option<String>,
    #[serde(default)]
    pub path: Option<String>,
    /// Overrides the project named by the repository's hawser.toml.
    #[serde(default)]
    pub project: Option<String>,
    #[serde(default = "default_interval")]
    pub interval: Duration,
    /// A remote read (refs and objects) still running after this is cancelled and retried at
    /// the next poll; a first clone of a large repository may want more.
    #[serde(default = "default_fetch_timeout")]
    pub fetch_timeout: Duration,
    #[serde(default)]
    pub webhook_secret_file: Option<PathBuf>,
    #[serde(default = "yes")]
    pub self_heal: bool,
    #[serde(default = "yes")]
    pub prune: bool,
    /// Apply only commits signed by a key in this allowed_signers file.
    #[serde(default)]
    pub allowed_signers: Option<PathBuf>,
    /// Credentials and host keys for a remote `repo`.
    #[serde(default)]
    pub auth: crate::source::GitAuth,
    /// Overrides `target` of the repository's hawser.toml (`docker` or `swarm`).
    #[serde(default)]
    pub target: Option<crate::desired::Target>,
    /// Who is told about deploys, failures and the like (see `serve::notify`).
    #[serde(default)]
    pub notify: Vec<super::notify::NotifyConfig>,
}

fn default_listen() -> String {
    "127.0.0.1:9480".into()
}

fn default_interval() -> Duration {
    Duration::from_secs(60)
}

fn default_fetch_timeout() -> Duration {
    Duration::from_secs(30)
}

fn yes() -> bool {
    true
}

impl SourceConfig {
    /// The source's name in URLs, metrics and history.
    pub fn display_name(&self) -> String {
        self.name.clone().unwrap_or_else(|| {
            let base = self.repo.trim_end_matches('/').rsplit(['/', ':']).next().unwrap_or("source");
            base.strip_suffix(".git").unwrap_or(base).to_string()
        })
    }
}

impl ServeConfig {
    pub fn from_file(path: &Path) -> Result<ServeConfig, Diagnostics> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| {
            let mut d = Vec::new();
            Sink::new(&shown, "", &mut d).error(Pos::new(1, 1), format!("cannot read the service config: {e}"));
            Diagnostics(d)
        })?;
        let cfg: ServeConfig = toml::from_str(&text).map_err(|e| {
            let mut d = Vec::new();
            let pos = e.span().map(|s| Pos::from_offset(&text, s.start)).unwrap_or(Pos::new(1, 1));
            Sink::new(&shown, &text, &mut d).error(pos, e.message().to_string());
            Diagnostics(d)
        })?;
        let mut d = Vec::new();
        if cfg.sources.is_empty() {
            Sink::new(&shown, &text, &mut d).error(Pos::new(1, 1), "no [[source]] to serve");
        }
        let mut names = std::collections::BTreeSet::new();
        for s in &cfg.sources {
            if let Some(problem) = crate::source::url_problem(&s.repo) {
                let at = text.find(&s.repo).map(|o| Pos::from_offset(&text, o)).unwrap_or(Pos::new(1, 1));
                // No quoted line: it holds the secret.
                Sink::new(&shown, "", &mut d).error(at, format!("source `{}`: {problem}", s.display_name()));
            }
            if !names.insert(s.display_name()) {
                Sink::new(&shown, &text, &mut d).error(
                    Pos::new(1, 1),
                    format!("two sources are named `{}`: give them distinct `name`s", s.display_name()),
                );
            }
        }
        if d.is_empty() {
            Ok(cfg)
        } else {
            Err(Diagnostics(d))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Result<ServeConfig, Diagnostics> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("serve.toml");
        std::fs::write(&path, text).unwrap();
        ServeConfig::from_file(&path)
    }

    #[test]
    fn auth_is_read_per_source() {
        let cfg = load(
            "[[source]]\nrepo = \"ssh://git@git.example/shop.git\"\n[source.auth]\nsshKeyFile = \"/k\"\nknownHosts = \"/kh\"\n\n\
             [[source]]\nrepo = \"https://git.example/blog.git\"\nauth = { tokenFile = \"/t\", username = \"ci\" }\n",
        )
        .unwrap();
        assert_eq!(cfg.sources[0].auth.ssh_key_file.as_deref(), Some(Path::new("/k")));
        assert_eq!(cfg.sources[0].auth.known_hosts.as_deref(), Some(Path::new("/kh")));
        assert_eq!(cfg.sources[1].auth.token_file.as_deref(), Some(Path::new("/t")));
        assert_eq!(cfg.sources[1].auth.username.as_deref(), Some("ci"));
    }

    #[test]
    fn unknown_auth_keys_are_errors() {
        let e =
            load("[[source]]\nrepo = \"https://git.example/a.git\"\n[source.auth]\npassword = \"x\"\n").unwrap_err();
        assert!(e.to_string().contains("password"), "{e}");
    }

    #[test]
    fn a_password_in_a_url_is_refused_without_quoting_it() {
        let e = load("[[source]]\nrepo = \"https://deploy:s3cret@git.example/a.git\"\n").unwrap_err().to_string();
        assert!(e.contains(":2:") && e.contains("tokenFile"), "{e}");
        assert!(!e.contains("s3cret"), "{e}");
    }
}
