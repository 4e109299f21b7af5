//! `hawser serve`: keeps a host converged to one or more sources. Each source has one reconcile
//! loop fed by a trigger that coalesces bursts (a `Notify` holds at most one pending wake-up):
//! ref changes of a local repository (inotify), a poll or resync interval with jitter, webhooks,
//! and engine events of its project (drift). A failed revision is retried with capped
//! exponential backoff, a newer revision takes over at once, and the last good revision stays
//! deployed while the source is unreachable.

pub mod auth;
pub mod config;
pub mod dashboard;
pub mod http;
pub mod metrics;
pub mod notify;
pub mod routes;
pub mod webhook;

use crate::desired::{DesiredState, Policy};
use crate::display::now_unix;
use crate::reconcile::{self, ReconcileError};
use crate::runtime::docker::DockerEngine;
use crate::runtime::targets::Targets;
use crate::source::{self, SourceOptions};
use config::{ServeConfig, SourceConfig};
use futures_util::stream::{FuturesUnordered, StreamExt};
use metrics::{Metrics, Outcome};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::{watch, Notify};

/// Retry delays of a failing revision: from 5s, doubling, to 5 min.
pub const BACKOFF_MIN: Duration = Duration::from_secs(5);
pub const BACKOFF_MAX: Duration = Duration::from_secs(300);
/// How long a stopping service lets a reconcile in flight finish before abandoning it (the
/// state it leaves is one the next start converges from).
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
/// Webhook-triggered reconciles are at least this far apart: a burst of hooks gives one at once
/// and one at the end of the window.
pub const WEBHOOK_SPACING: Duration = Duration::from_secs(3);
const WEBHOOK_QUIET: Duration = Duration::from_secs(1);

/// Why a reconcile ran.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Trigger {
    Start,
    Push,
    Interval,
    Webhook,
    Event,
    Retry,
    /// The dashboard's button (or a POST to it).
    Manual,
}

impl Trigger {
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Start => "start",
            Trigger::Push => "push",
            Trigger::Interval => "interval",
            Trigger::Webhook => "webhook",
            Trigger::Event => "event",
            Trigger::Retry => "retry",
            Trigger::Manual => "manual",
        }
    }
}

/// One followed source at run time.
pub struct Source {
    pub cfg: SourceConfig,
    pub name: String,
    pub webhook_secret: Option<Vec<u8>>,
    wake: Notify,
    /// The strongest reason given since the last reconcile started.
    pending: Mutex<Option<Trigger>>,
    pub status: Mutex<metrics::SourceStatus>,
    /// The containers (services) of its last revision: a swarm's service events name no project.
    declared: Mutex<std::collections::BTreeSet<String>>,
    /// The head as last read and validated, for the dashboard's plan.
    pub head: Mutex<Option<Arc<DesiredState>>>,
    /// The head's commit subject, for notifications.
    subject: Mutex<Option<String>>,
    /// The revision (or error) whose failure was last notified: each is told once.
    failing: Mutex<Option<String>>,
    pub notifier: notify::Notifier,
}

impl Source {
    pub fn trigger(&self, why: Trigger) {
        let mut p = self.pending.lock().unwrap();
        // A push, webhook or button outranks an event for the record; any reason wakes the loop.
        if p.is_none() || matches!(why, Trigger::Push | Trigger::Webhook | Trigger::Manual) {
            *p = Some(why);
        }
        drop(p);
        self.wake.notify_one();
    }

    /// Whether `what` (a revision, or an invalid revision's error) fails for the first time.
    fn first_failure(&self, what: &str) -> bool {
        let mut f = self.failing.lock().unwrap();
        let first = f.as_deref() != Some(what);
        *f = Some(what.to_string());
        first
    }

    fn is_local(&self) -> bool {
        !crate::source::is_url(&self.cfg.repo)
    }
}

pub struct Service {
    pub sources: Vec<Arc<Source>>,
    /// None when the database can't be opened: the service runs on without history.
    pub history: Mutex<Option<crate::history::History>>,
    pub metrics: Mutex<Metrics>,
    pub state_dir: PathBuf,
    pub policy: Policy,
    pub limits: source::SizeLimits,
    pub started: Instant,
    /// Where its projects are deployed.
    pub targets: Targets,
    /// Reconciles starting and ending, for the dashboard's live pages.
    pub live: tokio::sync::broadcast::Sender<Live>,
    pub access: auth::Access,
}

/// A reconcile of `source` started or finished.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Live {
    pub source: String,
    pub phase: &'static str,
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("source `{0}`: the webhook secret file is empty; refusing to start with an empty secret")]
    EmptySecret(String),
    #[error("source `{name}`: cannot read the webhook secret {}: {source}", path.display())]
    Secret { name: String, path: PathBuf, source: std::io::Error },
    #[error("cannot listen on {addr}: {source}")]
    Listen { addr: String, source: std::io::Error },
    #[error("cannot watch {}: {message}", path.display())]
    Watch { path: PathBuf, message: String },
    #[error(transparent)]
    Access(#[from] auth::AccessError),
    #[error(transparent)]
    Notify(#[from] notify::NotifyError),
}

impl Service {
    pub fn new(cfg: &ServeConfig, state_dir: &Path, policy: Policy) -> Result<Service, ServeError> {
        let mut sources = Vec::new();
        for s in &cfg.sources {
            let name = s.display_name();
            let webhook_secret = match &s.webhook_secret_file {
                None => None,
                Some(path) => {
                    let text = std::fs::read(path).map_err(|source| ServeError::Secret {
                        name: name.clone(),
                        path: path.clone(),
                        source,
                    })?;
                    let trimmed = String::from_utf8_lossy(&text).trim().as_bytes().to_vec();
                    if trimmed.is_empty() {
                        return Err(ServeError::EmptySecret(name));
                    }
                    Some(trimmed)
                }
            };
            let status = metrics::SourceStatus { name: name.clone(), repo: s.repo.clone(), ..Default::default() };
            sources.push(Arc::new(Source {
                cfg: s.clone(),
                webhook_secret,
                wake: Notify::new(),
                pending: Mutex::new(None),
                status: Mutex::new(status),
                declared: Mutex::new(Default::default()),
                head: Mutex::new(None),
                subject: Mutex::new(None),
                failing: Mutex::new(None),
                notifier: notify::Notifier::new(&name, &s.notify, Some(&state_dir.join("notify")))?,
                name,
            }));
        }
        let history = match crate::history::History::open(state_dir) {
            Ok(h) => Some(h),
            Err(e) => {
                tracing::warn!(error = %e, "no reconcile history");
                None
            }
        };
        Ok(Service {
            sources,
            history: Mutex::new(history),
            metrics: Mutex::new(Metrics::default()),
            state_dir: state_dir.to_path_buf(),
            policy,
            limits: source::SizeLimits::default(),
            started: Instant::now(),
            targets: Targets::new("", state_dir),
            live: tokio::sync::broadcast::channel(64).0,
            access: auth::Access::new(&cfg.listen, cfg.token_file.as_deref(), &cfg.host_names)?,
        })
    }
}

/// Runs the service until SIGTERM or SIGINT.
pub async fn run(
    engine: Option<DockerEngine>,
    host: String,
    cfg: ServeConfig,
    state_dir: &Path,
    policy: Policy,
    limits: source::SizeLimits,
) -> Result<(), ServeError> {
    let mut svc = Service::new(&cfg, state_dir, policy)?;
    svc.limits = limits;
    svc.targets = Targets::new(&host, state_dir).with_docker(engine.clone());
    let svc = Arc::new(svc);
    http::raise_open_files_limit();
    let listener = tokio::net::TcpListener::bind(&cfg.listen)
        .await
        .map_err(|source| ServeError::Listen { addr: cfg.listen.clone(), source })?;
    tracing::info!(listen = %cfg.listen, sources = svc.sources.len(), "serving");
    eprintln!("hawser serve: listening on {}, following {} source(s)", cfg.listen, svc.sources.len());
    let _watchers = watch_local_repositories(&svc)?;
    let (stop_tx, stop_rx) = watch::channel(false);

    let engine = engine.map(Arc::new);
    let reconcilers: FuturesUnordered<_> =
        svc.sources.iter().map(|s| reconcile_loop(svc.clone(), s.clone(), stop_rx.clone())).collect();
    let all = async {
        tokio::join!(
            reconcilers.collect::<Vec<()>>(),
            http::serve(
                listener,
                http::Limits::default(),
                routes::app(svc.clone(), http::Limits::default()),
                stop_rx.clone()
            ),
            follow_engine_events(svc.clone(), engine.clone(), stop_rx.clone()),
            follow_native_events(svc.clone(), stop_rx.clone()),
        )
    };
    tokio::pin!(all);
    tokio::select! {
        _ = &mut all => {}
        _ = shutdown_signal() => {
            eprintln!("hawser serve: stopping");
            let _ = stop_tx.send(true);
            if tokio::time::timeout(SHUTDOWN_GRACE, &mut all).await.is_err() {
                eprintln!("hawser serve: abandoned a reconcile in flight; the next start converges");
            }
        }
    }
    Ok(())
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}

/// inotify on each local repository's refs: a push (or a commit) wakes its source at once.
fn watch_local_repositories(svc: &Arc<Service>) -> Result<Vec<::notify::RecommendedWatcher>, ServeError> {
    use ::notify::{RecursiveMode, Watcher};
    let mut watchers = Vec::new();
    for s in svc.sources.iter().filter(|s| s.is_local()) {
        let repo = PathBuf::from(&s.cfg.repo);
        let git_dir = if repo.join(".git").is_dir() { repo.join(".git") } else { repo.clone() };
        let src = s.clone();
        let mut w = ::notify::recommended_watcher(move |res: ::notify::Result<::notify::Event>| {
            let Ok(ev) = res else { return };
            let is_ref = ev.paths.iter().any(|p| {
                let p = p.to_string_lossy();
                p.contains("/refs/") || p.ends_with("packed-refs") || p.ends_with("/HEAD")
            });
            if is_ref && !ev.kind.is_access() {
                src.trigger(Trigger::Push);
            }
        })
        .map_err(|e| ServeError::Watch { path: git_dir.clone(), message: e.to_string() })?;
        w.watch(&git_dir, RecursiveMode::Recursive)
            .map_err(|e| ServeError::Watch { path: git_dir.clone(), message: e.to_string() })?;
        watchers.push(w);
    }
    Ok(watchers)
}

fn jitter(d: Duration) -> Duration {
    // ±10%, from the clock's nanoseconds: enough to keep many hosts from polling in step.
    let nanos = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map(|t| t.subsec_nanos()).unwrap_or(0);
    let frac = (nanos % 2001) as f64 / 10_000.0 - 0.1;
    d.mul_f64(1.0 + frac)
}

/// A failing revision and when it may be tried again.
struct Backoff {
    revision: String,
    delay: Duration,
    until: Instant,
}

async fn reconcile_loop(svc: Arc<Service>, src: Arc<Source>, mut stop: watch::Receiver<bool>) {
    let interval = src.cfg.interval.as_std().max(Duration::from_millis(200));
    let mut backoff: Option<Backoff> = None;
    let mut last_good: Option<DesiredState> = None;
    let mut last_webhook_run: Option<Instant> = None;
    let mut deferred_webhook: Option<Instant> = None;
    src.trigger(Trigger::Start);
    loop {
        let retry_at = backoff.as_ref().map(|b| b.until);
        let mut from_deferral = false;
        let why = tokio::select! {
            _ = src.wake.notified() => match src.pending.lock().unwrap().take() {
                Some(why) => why,
                // The reason was already taken by the wake-up before: nothing new.
                None => continue,
            },
            _ = tokio::time::sleep(jitter(interval)) => Trigger::Interval,
            _ = sleep_until(retry_at) => Trigger::Retry,
            _ = sleep_until(deferred_webhook) => {
                from_deferral = true;
                Trigger::Webhook
            }
            _ = stop.changed() => return,
        };
        if *stop.borrow() {
            return;
        }
        // Webhooks: the first of a burst reconciles at once; the rest become one reconcile when
        // the burst has been quiet for a moment, and not sooner than WEBHOOK_SPACING after.
        if why == Trigger::Webhook && !from_deferral {
            let recent = last_webhook_run.filter(|l| l.elapsed() < WEBHOOK_SPACING);
            if recent.is_some() || deferred_webhook.is_some() {
                let quiet = Instant::now() + WEBHOOK_QUIET;
                deferred_webhook = Some(recent.map_or(quiet, |l| (l + WEBHOOK_SPACING).max(quiet)));
                continue;
            }
        }
        if why == Trigger::Webhook {
            last_webhook_run = Some(Instant::now());
        }
        deferred_webhook = None;
        let started = Instant::now();
        let _running = Running::new(&svc, &src);
        let desired = read_source(&svc, &src).await;
        let fetch = Some(started.elapsed());
        if !matches!(desired, Err(SourceProblem::Unavailable(_))) {
            src.status.lock().unwrap().source_read();
        }
        let d = match desired {
            Ok((d, subject)) => {
                *src.head.lock().unwrap() = Some(Arc::new(d.clone()));
                *src.subject.lock().unwrap() = subject;
                d
            }
            Err(SourceProblem::Unavailable(e)) => {
                let was_up = src.status.lock().unwrap().source_unavailable.is_none();
                src.status.lock().unwrap().source_unavailable(&e);
                if was_up {
                    notify_event(&src, notify::EventKind::SourceDown, None, Vec::new(), Some(e.clone()));
                }
                tracing::warn!(source = %src.name, error = %e, "source unavailable; the last good revision stays deployed");
                // Drift is still repaired, against the last revision that applied.
                if let (Trigger::Event, Some(good)) = (why, &last_good) {
                    let _ = run_reconcile(&svc, &src, good, why, started, None).await;
                }
                continue;
            }
            Err(SourceProblem::Invalid(e)) => {
                *src.head.lock().unwrap() = None;
                *src.subject.lock().unwrap() = None;
                let phases = metrics::Phases { fetch, ..Default::default() };
                record(&svc, &src, None, why, Outcome::Invalid, started, Some(e.clone()), 0, phases);
                if src.first_failure(&e) {
                    notify_event(&src, notify::EventKind::Invalid, None, Vec::new(), Some(e));
                }
                continue;
            }
        };
        if let Some(b) = backoff.as_ref().filter(|_| why != Trigger::Manual) {
            // Someone pressing the button wants it tried now.
            if b.revision == d.revision && Instant::now() < b.until {
                continue; // A failing revision waits for its retry time; a newer one goes at once.
            }
        }
        match run_reconcile(&svc, &src, &d, why, started, fetch).await {
            Ok(()) => {
                backoff = None;
                last_good = Some(d);
            }
            Err(policy) if !policy.retry => {
                tracing::warn!(source = %src.name, revision = %d.revision, "reconcile failed; waiting for a new revision");
                let mut st = src.status.lock().unwrap();
                st.retry_in = None;
                st.next_retry_unix = None;
                drop(st);
                let never = Instant::now() + Duration::from_secs(365 * 24 * 3600);
                backoff = Some(Backoff { revision: d.revision.clone(), delay: BACKOFF_MAX, until: never });
            }
            Err(_) => {
                let delay = match &backoff {
                    Some(b) if b.revision == d.revision => (b.delay * 2).min(BACKOFF_MAX),
                    _ => BACKOFF_MIN,
                };
                tracing::warn!(source = %src.name, revision = %d.revision, retry_in = ?delay, "reconcile failed");
                let mut st = src.status.lock().unwrap();
                st.retry_in = Some(delay.as_secs());
                st.next_retry_unix = Some(now_unix() + delay.as_secs_f64());
                drop(st);
                backoff = Some(Backoff { revision: d.revision.clone(), delay, until: Instant::now() + delay });
            }
        }
    }
}

/// What a plan changes, one line per action, as notifications list it.
fn changes(plan: &crate::diff::Plan) -> Vec<String> {
    plan.actions
        .iter()
        .filter(|a| !matches!(a.op, crate::diff::Op::Keep | crate::diff::Op::Orphan))
        .map(|a| format!("{} {}: {}", a.kind, a.name, a.cause))
        .collect()
}

fn notify_event(
    src: &Source,
    event: notify::EventKind,
    d: Option<&DesiredState>,
    changes: Vec<String>,
    cause: Option<String>,
) {
    let project = d.map(|d| d.project.clone()).or_else(|| src.status.lock().unwrap().project.clone());
    let revision = d.map(|d| d.revision.clone()).or_else(|| src.status.lock().unwrap().last_revision.clone());
    let subject = if d.is_some() { src.subject.lock().unwrap().clone() } else { None };
    src.notifier.send(&notify::Message {
        format_version: 1,
        event,
        source: src.name.clone(),
        project,
        revision,
        subject,
        changes,
        cause,
        time: notify::rfc3339(now_unix()),
    });
}

/// Marks a source as reconciling, and tells live pages, until dropped.
struct Running<'a> {
    svc: &'a Service,
    src: &'a Source,
}

impl<'a> Running<'a> {
    fn new(svc: &'a Service, src: &'a Source) -> Running<'a> {
        src.status.lock().unwrap().reconciling = true;
        let _ = svc.live.send(Live { source: src.name.clone(), phase: "started" });
        Running { svc, src }
    }
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.src.status.lock().unwrap().reconciling = false;
        let _ = self.svc.live.send(Live { source: self.src.name.clone(), phase: "finished" });
    }
}

async fn sleep_until(t: Option<Instant>) {
    match t {
        Some(t) => tokio::time::sleep_until(t.into()).await,
        None => std::future::pending().await,
    }
}

enum SourceProblem {
    Unavailable(String),
    Invalid(String),
}

async fn read_source(svc: &Service, src: &Source) -> Result<(DesiredState, Option<String>), SourceProblem> {
    let opts = SourceOptions {
        git_ref: src.cfg.git_ref.clone(),
        path: src.cfg.path.clone(),
        project: src.cfg.project.clone(),
        allowed_signers: src.cfg.allowed_signers.clone(),
        cache_dir: svc.state_dir.clone(),
        auth: src.cfg.auth.clone(),
        deadline: Some(std::time::Instant::now() + src.cfg.fetch_timeout.as_std()),
        limits: svc.limits,
    };
    let repo = src.cfg.repo.clone();
    let (policy, target) = (svc.policy.clone(), src.cfg.target);
    // Reading, parsing and checking a revision is CPU work that may take a while for a large
    // commit: it runs off the async workers, which keep serving /healthz and engine events.
    let read = tokio::task::spawn_blocking(move || {
        let (d, snap) = source::load_revision(&repo, &opts, &policy, target, true).map_err(|e| match e {
            source::SourceError::Invalid(d) => SourceProblem::Invalid(d.to_string()),
            e @ source::SourceError::Signature { .. } => SourceProblem::Invalid(e.to_string()),
            e => SourceProblem::Unavailable(e.to_string()),
        })?;
        for w in &d.warnings {
            tracing::warn!("{w}");
        }
        Ok((d, snap.subject()))
    });
    // The fetch stops itself at its deadline; this wait is the backstop for a read stuck
    // between two of libgit2's progress callbacks.
    let limit = src.cfg.fetch_timeout.as_std();
    let (d, subject) = match tokio::time::timeout(limit + Duration::from_secs(5), read).await {
        Err(_) => return Err(SourceProblem::Unavailable(format!("no answer within {}", src.cfg.fetch_timeout))),
        Ok(Err(e)) => return Err(SourceProblem::Unavailable(e.to_string())),
        Ok(Ok(result)) => result?,
    };
    Ok((d, subject))
}

/// One reconcile under the project's lock; outcome recorded in status, metrics and history.
async fn run_reconcile(
    svc: &Arc<Service>,
    src: &Arc<Source>,
    d: &DesiredState,
    why: Trigger,
    started: Instant,
    fetch: Option<Duration>,
) -> Result<(), FailurePolicy> {
    src.status.lock().unwrap().project = Some(d.project.clone());
    let mut timings = reconcile::Timings::default();
    let result = converge(svc, src, d, &mut timings).await;
    let phases = metrics::Phases { fetch, plan: timings.plan, apply: timings.apply };
    match result {
        Ok((plan, report)) => {
            let outcome = if report.done > 0 { Outcome::Changed } else { Outcome::Unchanged };
            if report.done > 0 && why == Trigger::Event {
                svc.metrics.lock().unwrap().drift_repairs(&src.name);
                src.status.lock().unwrap().drift_repairs += 1;
            }
            record(svc, src, Some(d), why, outcome, started, None, report.done as u64, phases);
            *src.failing.lock().unwrap() = None;
            if report.done > 0 {
                let event =
                    if why == Trigger::Event { notify::EventKind::DriftRepaired } else { notify::EventKind::Deployed };
                notify_event(src, event, Some(d), changes(&plan).iter().map(|c| d.redact(c)).collect(), None);
            }
            Ok(())
        }
        Err(e) => {
            let policy = error_policy(&e);
            let message = d.redact(&e.to_string());
            record(svc, src, Some(d), why, policy.outcome, started, Some(message.clone()), 0, phases);
            // A failing revision is retried with backoff: it is told once, not at each retry.
            if let Some(event) = policy.notify.filter(|_| src.first_failure(&d.revision)) {
                notify_event(src, event, Some(d), Vec::new(), Some(message));
            }
            Err(policy)
        }
    }
}

/// What the service does about a reconcile that failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct FailurePolicy {
    /// How the history and the metrics count it.
    pub outcome: Outcome,
    /// What is told (once per failing revision).
    pub notify: Option<notify::EventKind>,
    /// Whether the same revision is tried again (with backoff), or waits for a new one.
    pub retry: bool,
}

/// The service's decisions about a failed reconcile, from what failed (as kube-runtime's
/// `error_policy`).
pub(crate) fn error_policy(e: &ReconcileError) -> FailurePolicy {
    use crate::runtime::ErrorKind;
    match e {
        // Refused as a whole; the host may change under it (an unmanaged object removed).
        ReconcileError::Conflicts(_) | ReconcileError::WouldEmpty { .. } => {
            FailurePolicy { outcome: Outcome::Refused, notify: Some(notify::EventKind::Failed), retry: true }
        }
        ReconcileError::Failed { rolled_back, .. } => FailurePolicy {
            outcome: Outcome::Failed,
            notify: Some(if *rolled_back { notify::EventKind::RolledBack } else { notify::EventKind::Failed }),
            retry: true,
        },
        // Another apply holds the project: nothing failed that anyone must hear about.
        ReconcileError::Lock(_) => FailurePolicy { outcome: Outcome::Failed, notify: None, retry: true },
        // The target can't ever do what the revision asks: only a new revision helps.
        ReconcileError::Engine(e) if e.kind == ErrorKind::Unsupported => {
            FailurePolicy { outcome: Outcome::Failed, notify: Some(notify::EventKind::Failed), retry: false }
        }
        ReconcileError::Engine(_) => {
            FailurePolicy { outcome: Outcome::Failed, notify: Some(notify::EventKind::Failed), retry: true }
        }
    }
}

/// Takes the project's lock, then plans, checks and executes `d` on its target.
async fn converge(
    svc: &Arc<Service>,
    src: &Arc<Source>,
    d: &DesiredState,
    timings: &mut reconcile::Timings,
) -> Result<(crate::diff::Plan, crate::apply::Report), ReconcileError> {
    let (dir, project) = (svc.state_dir.clone(), d.project.clone());
    let lock = tokio::task::spawn_blocking(move || {
        crate::lock::acquire(&dir, &project, None, &mut |m: &str| tracing::info!("{m}"))
    })
    .await
    .expect("taking the lock does not panic");
    let _lock = lock?;
    let opts = reconcile::Options { prune: src.cfg.prune, allow_empty: false, take_over: false };
    let name = src.name.clone();
    let mut progress = |line: &str| tracing::info!(source = %name, "{}", d.redact(line));
    // Service events name no project: a source's are those of its last revision.
    *src.declared.lock().unwrap() = d.containers.keys().cloned().collect();
    let result = match svc.targets.open(d.target, d.host_limits).await {
        Ok(target) => {
            let r = reconcile::converge(target.as_ref(), d, &opts, &mut progress, timings).await;
            if let Ok((_, _, applied)) = &r {
                for r in target.applied(applied, &svc.state_dir, reconcile::KEEP_IMAGES).await {
                    tracing::info!(source = %src.name, image = %r, "removed an image no container uses");
                }
            }
            r.map(|(plan, report, _)| (plan, report))
        }
        Err(e) => Err(e.into()),
    };
    result
}

#[allow(clippy::too_many_arguments)]
fn record(
    svc: &Service,
    src: &Source,
    d: Option<&DesiredState>,
    why: Trigger,
    outcome: Outcome,
    started: Instant,
    error: Option<String>,
    actions: u64,
    phases: metrics::Phases,
) {
    let took = started.elapsed();
    let revision = d.map(|d| d.revision.clone());
    if let Some(h) = svc.history.lock().unwrap().as_ref() {
        let entry = crate::history::Entry {
            started_unix: now_unix() - took.as_secs_f64(),
            source: src.name.clone(),
            project: d.map(|d| d.project.clone()).or_else(|| src.status.lock().unwrap().project.clone()),
            revision: revision.clone(),
            trigger: why.as_str().to_string(),
            actions,
            outcome: outcome.as_str().to_string(),
            duration_ms: took.as_millis() as u64,
            error: error.clone(),
        };
        if let Err(e) = h.record(&entry) {
            tracing::warn!(error = %e, "cannot record history");
        }
    }
    tracing::info!(source = %src.name, trigger = why.as_str(), outcome = outcome.as_str(), revision = ?revision, took = ?took, "reconcile");
    if let Some(e) = &error {
        tracing::warn!(source = %src.name, "{e}");
    }
    svc.metrics.lock().unwrap().observe(&src.name, outcome, took, phases);
    let mut st = src.status.lock().unwrap();
    st.record(revision, why, outcome, took, error, now_unix());
}

/// Engine events of managed containers (die, destroy, oom, unhealthy) wake the source that owns
/// their project: drift is repaired at once.
/// The native target's exits and health changes: each one triggers the reconcile of the
/// source whose project it is, at once (a crashed container with no restart policy is
/// repaired then, not at the next resync).
async fn follow_native_events(svc: Arc<Service>, mut stop: watch::Receiver<bool>) {
    if !svc.sources.iter().any(|s| s.cfg.self_heal) {
        return;
    }
    // Opened when the native target is first used (by a reconcile of a native source); what
    // happened since the service started is heard even so.
    let since = crate::runtime::native::record::now_unix();
    let native = loop {
        if svc.state_dir.join("native").is_dir() {
            match crate::runtime::native::NativeEngine::open(&svc.state_dir) {
                Ok(n) => break n,
                Err(e) => {
                    tracing::debug!(error = %e, "not following the native target");
                    return;
                }
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = stop.changed() => return,
        }
    };
    let events = native.host_events(since);
    tokio::pin!(events);
    loop {
        tokio::select! {
            Some(ev) = events.next() => {
                if !matches!(ev.action.as_str(), "die" | "unhealthy" | "healthy") {
                    continue;
                }
                for s in svc.sources.iter().filter(|s| s.cfg.self_heal) {
                    if s.status.lock().unwrap().project.as_deref() == Some(ev.project.as_str()) {
                        tracing::debug!(source = %s.name, container = %ev.name, action = %ev.action, "native event");
                        s.trigger(Trigger::Event);
                    }
                }
            }
            _ = stop.changed() => return,
        }
    }
}

async fn follow_engine_events(svc: Arc<Service>, engine: Option<Arc<DockerEngine>>, mut stop: watch::Receiver<bool>) {
    let Some(engine) = engine else { return };
    if !svc.sources.iter().any(|s| s.cfg.self_heal) {
        return;
    }
    // Reconnects back off up to a minute: a host of native sources may have no engine at all.
    let mut pause = Duration::from_secs(2);
    loop {
        let mut events = Box::pin(futures_util::stream::select(engine.container_events(), engine.service_events()));
        loop {
            tokio::select! {
                ev = events.next() => match ev {
                    Some(Ok(ev)) => {
                        pause = Duration::from_secs(2);
                        for s in svc.sources.iter().filter(|s| s.cfg.self_heal) {
                            let ours = if ev.service {
                                s.declared.lock().unwrap().contains(&ev.name)
                            } else {
                                s.status.lock().unwrap().project.as_deref() == Some(ev.project.as_str())
                            };
                            if ours {
                                tracing::debug!(source = %s.name, container = %ev.name, action = %ev.action, "engine event");
                                s.trigger(Trigger::Event);
                            }
                        }
                    }
                    Some(Err(e)) => {
                        if pause <= Duration::from_secs(2) {
                            tracing::warn!(error = %e, "engine events interrupted; reconnecting");
                        }
                        break;
                    }
                    None => break,
                },
                _ = stop.changed() => return,
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = stop.changed() => return,
        }
        pause = (pause * 2).min(Duration::from_secs(60));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::{EngineError, ErrorKind};

    fn engine(kind: ErrorKind) -> ReconcileError {
        ReconcileError::Engine(EngineError { op: "observe".into(), kind, message: "m".into() })
    }

    fn failed(rolled_back: bool) -> ReconcileError {
        ReconcileError::Failed { revision: "r".into(), done: 1, failed: 1, lines: vec![], rolled_back }
    }

    #[test]
    fn what_the_service_does_follows_from_what_failed() {
        let p = error_policy(&ReconcileError::Conflicts(vec!["Container web: in the way".into()]));
        assert_eq!((p.outcome, p.notify, p.retry), (Outcome::Refused, Some(notify::EventKind::Failed), true));
        let p = error_policy(&ReconcileError::WouldEmpty { project: "p".into(), removes: 2 });
        assert_eq!(p.outcome, Outcome::Refused);
        // A rolled-back replacement is told as such: the old version serves.
        assert_eq!(error_policy(&failed(true)).notify, Some(notify::EventKind::RolledBack));
        assert_eq!(error_policy(&failed(false)).notify, Some(notify::EventKind::Failed));
        assert_eq!(error_policy(&failed(false)).outcome, Outcome::Failed);
        // The engine away: tried again, and told.
        let p = error_policy(&engine(ErrorKind::Unavailable));
        assert!(p.retry && p.notify == Some(notify::EventKind::Failed));
        // Something the target can never do: only a new revision helps.
        assert!(!error_policy(&engine(ErrorKind::Unsupported)).retry);
        // Another apply holds the project: recorded, retried, nobody paged.
        let lock = crate::lock::LockError::Timeout {
            project: "p".into(),
            holder: "pid 1".into(),
            waited: Duration::from_secs(1),
        };
        let p = error_policy(&ReconcileError::Lock(lock));
        assert_eq!((p.outcome, p.notify, p.retry), (Outcome::Failed, None, true));
    }
}
