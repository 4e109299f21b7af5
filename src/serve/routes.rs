//! What the service answers: health, status, metrics, webhooks, the dashboard and its live
//! event stream. Everything but `/healthz`, webhooks (which carry their own signatures), the
//! login form and the page assets is behind [`super::auth`].

use super::auth::{self, Proof};
use super::dashboard::{self, chart, Frame, HistoryRow, ResourceRow, SourceRow};
use super::{http, metrics, webhook, Live, Service, Source, Trigger};
use crate::observed::RunState;
use crate::runtime::deployment::{EarlyPins, ListOptions, Listing};
use askama::Template;
use axum::extract::{Form, Path, Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Extension, Router};
use bytes::Bytes;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;

/// Live event streams open at once; each holds a connection for as long as a page is open.
const MAX_STREAMS: usize = 64;
/// The history shown on a page, newest first.
const HISTORY_ROWS: usize = 1000;
/// "Reconcile now" is taken at most this often per source; more presses are answered 429.
const BUTTON_INTERVAL: Duration = Duration::from_secs(5);

#[derive(Clone)]
pub struct Web {
    pub svc: Arc<Service>,
    streams: Arc<Semaphore>,
    /// When "Reconcile now" was last taken, per source.
    pressed: Arc<std::sync::Mutex<std::collections::HashMap<String, std::time::Instant>>>,
}

/// The whole application: `limits` apply to every route but the event stream.
pub fn app(svc: Arc<Service>, limits: http::Limits) -> Router {
    let web = Web { svc, streams: Arc::new(Semaphore::new(MAX_STREAMS)), pressed: Default::default() };
    let guarded = Router::new()
        .route("/", get(overview))
        .route("/status", get(status))
        .route("/metrics", get(metrics_text))
        .route("/history", get(history))
        .route("/sources/{name}", get(project))
        .route("/sources/{name}/reconcile", post(reconcile_now))
        .route_layer(axum::middleware::from_fn_with_state(web.clone(), guard));
    let open = Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/hooks/{name}", post(hook))
        .route("/login", get(login_form).post(login))
        .route("/logout", post(logout))
        .route("/assets/app.css", get(css))
        .route("/assets/app.js", get(js));
    let timed = http::limited(guarded.merge(open).with_state(web.clone()), limits);
    let stream = Router::new()
        .route("/events", get(events))
        .route_layer(axum::middleware::from_fn_with_state(web.clone(), guard))
        .with_state(web.clone());
    timed
        .merge(stream)
        .fallback(|| async { (StatusCode::NOT_FOUND, "not found\n") })
        .layer(axum::middleware::from_fn_with_state(web, host_guard))
}

/// Refuses a request that names another host than this service (DNS rebinding: a page of
/// another site, its name rebound to this address). Probes and signed webhooks are not a
/// browser's and keep answering whatever name they use.
async fn host_guard(State(web): State<Web>, req: Request, next: Next) -> Response {
    let path = req.uri().path();
    if path == "/healthz" || path.starts_with("/hooks/") || web.svc.access.host_allowed(req.headers()) {
        return next.run(req).await;
    }
    (
        StatusCode::MISDIRECTED_REQUEST,
        "refused: this service is not known by that name; add it to `hostNames` in the service config (or --host-name)\n",
    )
        .into_response()
}

fn peer(req_extensions: &axum::http::Extensions) -> Option<std::net::IpAddr> {
    req_extensions.get::<http::Peer>().map(|p| p.0)
}

fn too_many(wait: Duration) -> Response {
    retry_later(wait, "too many wrong tokens from this address")
}

/// 429 with `Retry-After`: `why`, and when to try again.
fn retry_later(wait: Duration, why: &str) -> Response {
    let secs = wait.as_secs().max(1);
    (
        StatusCode::TOO_MANY_REQUESTS,
        [(header::RETRY_AFTER, HeaderValue::from(secs))],
        format!("{why}; try again in {secs}s\n"),
    )
        .into_response()
}

/// Lets a request through with its [`Proof`], or answers 401: the login page to a browser,
/// a bearer challenge to anything else.
async fn guard(State(web): State<Web>, mut req: Request, next: Next) -> Response {
    match web.svc.access.check(req.headers(), peer(req.extensions())) {
        Ok(proof) => {
            req.extensions_mut().insert(proof);
            next.run(req).await
        }
        Err(Some(wait)) => too_many(wait),
        Err(None) if wants_html(req.headers()) => {
            let page = dashboard::LoginPage { frame: frame(&web), failed: false };
            (StatusCode::UNAUTHORIZED, html(page.render())).into_response()
        }
        Err(None) => (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"hawser\""))],
            "an access token is needed: Authorization: Bearer TOKEN\n",
        )
            .into_response(),
    }
}

fn wants_html(h: &HeaderMap) -> bool {
    h.get(header::ACCEPT).and_then(|v| v.to_str().ok()).is_some_and(|a| a.contains("text/html"))
}

fn frame(web: &Web) -> Frame {
    Frame { csrf: web.svc.access.csrf().to_string(), login: web.svc.access.needs_token() }
}

fn html(r: askama::Result<String>) -> Response {
    match r {
        Ok(body) => Html(body).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, format!("cannot render the page: {e}\n")).into_response(),
    }
}

fn statuses(svc: &Service) -> Vec<metrics::SourceStatus> {
    svc.sources.iter().map(|s| s.status.lock().unwrap().clone()).collect()
}

async fn status(State(web): State<Web>) -> Response {
    let sources: Vec<serde_json::Value> = web
        .svc
        .sources
        .iter()
        .map(|s| {
            let mut v = serde_json::to_value(&*s.status.lock().unwrap()).unwrap_or_default();
            v["notify"] = serde_json::to_value(s.notifier.status()).unwrap_or_default();
            v
        })
        .collect();
    let body = serde_json::json!({"uptimeSeconds": web.svc.started.elapsed().as_secs(), "sources": sources});
    ([(header::CONTENT_TYPE, "application/json")], serde_json::to_string_pretty(&body).unwrap_or_default() + "\n")
        .into_response()
}

async fn metrics_text(State(web): State<Web>) -> Response {
    let resources = sample_resources(&web).await;
    let text = web.svc.metrics.lock().unwrap().render(&statuses(&web.svc), &resources);
    ([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], text).into_response()
}

/// Every managed object of every target in use on this host, as it is now. A target that
/// can't be read gives none: the scrape still answers, with the sources' metrics.
async fn sample_resources(web: &Web) -> Vec<metrics::ResourceSample> {
    let mut samples = Vec::new();
    for target in web.svc.targets.in_use() {
        if let Ok(listing) = target.list(ListOptions { inspect: true, project: None }).await {
            samples.extend(samples_of(listing));
        }
    }
    samples
}

fn samples_of(listing: Listing) -> Vec<metrics::ResourceSample> {
    match listing {
        Listing::Host { observed, status, usage } => observed
            .containers
            .into_iter()
            .filter_map(|c| {
                let owner = c.owner?;
                let st = status.get(&c.id);
                let health = st.and_then(|s| s.health.clone()).or(c.health);
                Some(metrics::ResourceSample {
                    label: metrics::ResourceLabel {
                        project: owner.project,
                        kind: "Container".into(),
                        name: owner.name,
                    },
                    running: c.state == RunState::Running,
                    healthy: match health {
                        Some(crate::observed::Health::Healthy) => Some(true),
                        Some(crate::observed::Health::Starting | crate::observed::Health::Unhealthy) => Some(false),
                        _ => None,
                    },
                    restarts: st.map(|s| s.restart_count).unwrap_or(0),
                    usage: usage.get(&c.id).map(|&(mem, ns)| (mem, ns as f64 / 1e9)),
                    tasks: None,
                })
            })
            .collect(),
        Listing::Cluster(state) => state.services.into_iter().filter_map(service_sample).collect(),
    }
}

fn service_sample(s: crate::observed::swarm::ObservedService) -> Option<metrics::ResourceSample> {
    let owner = s.owner?;
    let desired = s.replicas.unwrap_or(s.desired_tasks);
    // Tasks that failed and were replaced, as restarts are on one host.
    let restarts = s.tasks.iter().filter(|t| t.current && matches!(t.state.as_str(), "failed" | "rejected")).count();
    Some(metrics::ResourceSample {
        label: metrics::ResourceLabel { project: owner.project, kind: "Service".into(), name: owner.name },
        running: s.running_tasks >= desired && desired > 0,
        healthy: None,
        restarts: restarts as i64,
        usage: None,
        tasks: Some((s.running_tasks, desired)),
    })
}

async fn hook(State(web): State<Web>, Path(name): Path<String>, headers: HeaderMap, body: Bytes) -> Response {
    let Some(src) = web.svc.sources.iter().find(|s| s.name == name) else {
        return (StatusCode::NOT_FOUND, "no such source\n").into_response();
    };
    let Some(secret) = &src.webhook_secret else {
        return (StatusCode::NOT_FOUND, "webhooks are not enabled for this source\n").into_response();
    };
    match webhook::verify(secret, &headers, &body) {
        Some(provider) => {
            tracing::info!(source = %src.name, ?provider, "webhook");
            src.trigger(Trigger::Webhook);
            (StatusCode::ACCEPTED, "accepted\n").into_response()
        }
        None => (StatusCode::UNAUTHORIZED, "bad or missing signature\n").into_response(),
    }
}

fn now() -> f64 {
    super::now_unix()
}

/// A source's row, with its failing notification targets.
fn row(src: &Source, now: f64) -> SourceRow {
    let mut row = SourceRow::new(&src.status.lock().unwrap(), now);
    row.notify_error = src
        .notifier
        .status()
        .iter()
        .enumerate()
        .filter(|(_, t)| t.failing)
        .map(|(i, t)| {
            format!(
                "notification target {} ({:?}) failing, {} waiting: {}",
                i + 1,
                t.format,
                t.pending,
                t.last_error.as_deref().unwrap_or("")
            )
            .to_lowercase()
        })
        .collect::<Vec<_>>()
        .join("; ");
    row
}

async fn overview(State(web): State<Web>) -> Response {
    let now = now();
    let rows = web.svc.sources.iter().map(|s| row(s, now)).collect();
    html(dashboard::Overview { frame: frame(&web), rows }.render())
}

#[derive(serde::Deserialize)]
struct HistoryQuery {
    source: Option<String>,
}

async fn history(State(web): State<Web>, Query(q): Query<HistoryQuery>) -> Response {
    let entries = recent(&web.svc, None).await;
    let entries: Vec<_> = entries.into_iter().filter(|e| q.source.as_ref().is_none_or(|s| &e.source == s)).collect();
    let now = now();
    let points: Vec<(f64, u64, bool)> = entries
        .iter()
        .map(|e| (e.started_unix, e.duration_ms, matches!(e.outcome.as_str(), "changed" | "unchanged")))
        .collect();
    let page = dashboard::HistoryPage {
        frame: frame(&web),
        sources: web.svc.sources.iter().map(|s| s.name.clone()).collect(),
        source: q.source,
        rows: entries.iter().enumerate().map(|(i, e)| HistoryRow::new(i, e, now)).collect(),
        chart: chart::durations(&points),
    };
    html(page.render())
}

/// The newest reconciles (of one project, or all), read off the async workers.
async fn recent(svc: &Arc<Service>, project: Option<String>) -> Vec<crate::history::Entry> {
    let svc = svc.clone();
    tokio::task::spawn_blocking(move || {
        let h = svc.history.lock().unwrap();
        h.as_ref().and_then(|h| h.recent(project.as_deref(), HISTORY_ROWS).ok()).unwrap_or_default()
    })
    .await
    .unwrap_or_default()
}

fn find(web: &Web, name: &str) -> Option<Arc<Source>> {
    web.svc.sources.iter().find(|s| s.name == name).cloned()
}

async fn project(State(web): State<Web>, Path(name): Path<String>) -> Response {
    let Some(src) = find(&web, &name) else {
        return (StatusCode::NOT_FOUND, "no such source\n").into_response();
    };
    let status = src.status.lock().unwrap().clone();
    let now = now();
    let head = src.head.lock().unwrap().clone();
    let source_row = row(&src, now);
    let project = status.project.clone().or_else(|| head.as_ref().map(|d| d.project.clone()));
    let mut page = dashboard::ProjectPage {
        frame: frame(&web),
        source: source_row,
        resources: Vec::new(),
        observe_error: None,
        plan: None,
        plan_changes: false,
        plan_error: None,
        history: Vec::new(),
    };
    if let Some(p) = &project {
        resources(&web, p, head.as_deref(), src.cfg.prune, &mut page).await;
        page.history = recent(&web.svc, Some(p.clone()))
            .await
            .iter()
            .take(20)
            .enumerate()
            .map(|(i, e)| HistoryRow::new(i, e, now))
            .collect();
    }
    if head.is_none() && page.plan_error.is_none() {
        page.plan_error = Some(match &status.last_error {
            Some(e) if status.last_outcome == Some(metrics::Outcome::Invalid) => {
                format!("the head does not validate: {e}")
            }
            _ => "the head has not been read yet".into(),
        });
    }
    html(page.render())
}

/// The project's objects on its target, and the plan of its head there.
async fn resources(
    web: &Web,
    project: &str,
    head: Option<&crate::desired::DesiredState>,
    prune: bool,
    page: &mut dashboard::ProjectPage,
) {
    let (target, limits) = head.map(|d| (d.target, d.host_limits)).unwrap_or_default();
    let deployment = match web.svc.targets.open(target, limits).await {
        Ok(d) => d,
        Err(e) => {
            page.observe_error = Some(e.to_string());
            return;
        }
    };
    match deployment.list(ListOptions { inspect: true, project: Some(project) }).await {
        Ok(listing) => page.resources = rows_of(listing, project),
        Err(e) => page.observe_error = Some(e.to_string()),
    }
    if let Some(d) = head {
        // What runs may be named from the host's values too (an image from `${TOKEN}`).
        for row in &mut page.resources {
            row.name = d.masked.redact(&row.name);
            row.image = d.masked.redact(&row.image);
        }
        let opts = crate::diff::DiffOptions { prune, take_over: false };
        match deployment.plan(d, opts, EarlyPins::default()).await {
            Ok(planned) => {
                page.plan_changes = planned.plan.has_changes();
                page.plan = Some(d.masked.redact(&crate::diff::render::text(&planned.plan, false)));
            }
            Err(e) => page.plan_error = Some(d.redact(&e.to_string())),
        }
    }
}

/// The dashboard's rows of `project`'s objects.
fn rows_of(listing: Listing, project: &str) -> Vec<ResourceRow> {
    let ours = |o: &Option<crate::labels::Ownership>| o.as_ref().is_some_and(|o| o.project == project);
    let mut rows = Vec::new();
    let (observed, status) = match listing {
        Listing::Host { observed, status, .. } => (observed, status),
        Listing::Cluster(state) => {
            for s in state.services.iter().filter(|s| ours(&s.owner)) {
                let desired = s.replicas.unwrap_or(s.desired_tasks);
                let (image, digest) = s.image.split_once('@').unwrap_or((s.image.as_str(), ""));
                rows.push(ResourceRow {
                    kind: "Service",
                    name: s.name.clone(),
                    state: format!("{}/{} tasks", s.running_tasks, desired),
                    health: String::new(),
                    image: image.to_string(),
                    digest: short_digest(digest),
                    revision: s.owner.as_ref().map(|o| dashboard::short_revision(&o.revision)).unwrap_or_default(),
                    uptime: String::new(),
                    restarts: String::new(),
                    ports: String::new(),
                });
            }
            return rows;
        }
    };
    let now = std::time::SystemTime::now();
    for c in observed.containers.iter().filter(|c| ours(&c.owner)) {
        let owner = c.owner.as_ref().expect("filtered on it");
        let declared = owner
            .spec
            .as_deref()
            .and_then(|s| serde_json::from_str::<serde_json::Value>(s).ok())
            .and_then(|v| v.get("image").and_then(|i| i.as_str()).map(str::to_string))
            .unwrap_or_default();
        let tag = c.labels.get(crate::labels::IMAGE_REF).cloned().unwrap_or_else(|| declared.clone());
        let digest = match declared.split_once('@') {
            Some((_, d)) => d.to_string(),
            None => c.image_id.clone(),
        };
        let (uptime, restarts, health) = match status.get(&c.id) {
            Some(st) => (
                st.started_at
                    .filter(|_| st.state == RunState::Running)
                    .and_then(|t| now.duration_since(t).ok())
                    .map(|d| dashboard::span(d.as_secs_f64()))
                    .unwrap_or_default(),
                st.restart_count.to_string(),
                st.health.clone(),
            ),
            None => (String::new(), String::new(), c.health.clone()),
        };
        rows.push(ResourceRow {
            kind: "Container",
            name: c.name.clone(),
            state: c.state.as_str().to_string(),
            health: health.map(|h| format!("{h:?}").to_lowercase()).filter(|h| h != "none").unwrap_or_default(),
            image: tag.split('@').next().unwrap_or_default().to_string(),
            digest: short_digest(&digest),
            revision: dashboard::short_revision(&owner.revision),
            uptime,
            restarts,
            ports: observed.ports_of(c).join(", "),
        });
    }
    for n in observed.networks.iter().filter(|n| ours(&n.owner)) {
        rows.push(other_row("Network", &n.name, n.owner.as_ref()));
    }
    for v in observed.volumes.iter().filter(|v| ours(&v.owner)) {
        rows.push(other_row("Volume", &v.name, v.owner.as_ref()));
    }
    rows
}

fn other_row(kind: &'static str, name: &str, owner: Option<&crate::labels::Ownership>) -> ResourceRow {
    ResourceRow {
        kind,
        name: name.to_string(),
        state: "present".into(),
        health: String::new(),
        image: String::new(),
        digest: String::new(),
        revision: owner.map(|o| dashboard::short_revision(&o.revision)).unwrap_or_default(),
        uptime: String::new(),
        restarts: String::new(),
        ports: String::new(),
    }
}

fn short_digest(d: &str) -> String {
    match d.split_once(':') {
        Some((alg, hex)) => format!("{alg}:{}", hex.chars().take(12).collect::<String>()),
        None => d.chars().take(12).collect(),
    }
}

#[derive(serde::Deserialize)]
struct CsrfForm {
    csrf: Option<String>,
}

async fn reconcile_now(
    State(web): State<Web>,
    Path(name): Path<String>,
    Extension(proof): Extension<Proof>,
    headers: HeaderMap,
    form: Result<Form<CsrfForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    let csrf = form.as_ref().ok().and_then(|f| f.csrf.as_deref());
    if !web.svc.access.same_site(proof, &headers, csrf) {
        return (StatusCode::FORBIDDEN, "refused: not sent from this service's own page\n").into_response();
    }
    let Some(src) = find(&web, &name) else {
        return (StatusCode::NOT_FOUND, "no such source\n").into_response();
    };
    {
        // Each press is a reconcile and a history row: a page (or a script) pressing in a
        // loop must not be able to keep the host busy or grow the history without end.
        let mut pressed = web.pressed.lock().unwrap();
        let now = std::time::Instant::now();
        if let Some(last) = pressed.get(&src.name).filter(|t| now.duration_since(**t) < BUTTON_INTERVAL) {
            let wait = BUTTON_INTERVAL.saturating_sub(now.duration_since(*last));
            return retry_later(wait, "a reconcile of this source was asked for a moment ago");
        }
        pressed.insert(src.name.clone(), now);
    }
    tracing::info!(source = %src.name, "reconcile asked for on the dashboard");
    src.trigger(Trigger::Manual);
    if proof == Proof::Bearer || csrf.is_none() {
        return (StatusCode::ACCEPTED, "queued\n").into_response();
    }
    back(&headers)
}

/// After a form post: back to the page it was sent from (on this host), else the overview.
fn back(headers: &HeaderMap) -> Response {
    let referer = headers.get(header::REFERER).and_then(|v| v.to_str().ok()).unwrap_or("");
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok()).unwrap_or("");
    let path = ["http://", "https://"]
        .iter()
        .find_map(|s| referer.strip_prefix(s)?.strip_prefix(host))
        .filter(|p| p.starts_with('/') && !p.starts_with("//"))
        .unwrap_or("/");
    Redirect::to(path).into_response()
}

async fn login_form(State(web): State<Web>) -> Response {
    html(dashboard::LoginPage { frame: frame(&web), failed: false }.render())
}

#[derive(serde::Deserialize)]
struct LoginForm {
    token: String,
    csrf: Option<String>,
}

async fn login(
    State(web): State<Web>,
    Extension(peer): Extension<http::Peer>,
    headers: HeaderMap,
    Form(f): Form<LoginForm>,
) -> Response {
    let access = &web.svc.access;
    let csrf_ok = f.csrf.as_deref().is_some_and(|c| webhook::ct_eq(c.as_bytes(), access.csrf().as_bytes()));
    if !csrf_ok || !auth::same_origin(&headers) {
        return (StatusCode::FORBIDDEN, "refused: not sent from this service's own page\n").into_response();
    }
    match access.login(&f.token, Some(peer.0)) {
        auth::Login::Granted(session) => {
            let cookie = format!(
                "{}={session}; HttpOnly; SameSite=Strict; Path=/; Max-Age={}",
                auth::SESSION_COOKIE,
                auth::SESSION_TTL.as_secs()
            );
            ([(header::SET_COOKIE, cookie)], Redirect::to("/")).into_response()
        }
        auth::Login::Throttled(wait) => too_many(wait),
        auth::Login::Wrong => {
            let page = dashboard::LoginPage { frame: frame(&web), failed: true };
            (StatusCode::UNAUTHORIZED, html(page.render())).into_response()
        }
    }
}

async fn logout(
    State(web): State<Web>,
    headers: HeaderMap,
    form: Result<Form<CsrfForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    let csrf = form.as_ref().ok().and_then(|f| f.csrf.as_deref());
    if !csrf.is_some_and(|c| webhook::ct_eq(c.as_bytes(), web.svc.access.csrf().as_bytes()))
        || !auth::same_origin(&headers)
    {
        return (StatusCode::FORBIDDEN, "refused\n").into_response();
    }
    web.svc.access.logout(&headers);
    let cookie = format!("{}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0", auth::SESSION_COOKIE);
    ([(header::SET_COOKIE, cookie)], Redirect::to("/login")).into_response()
}

async fn css() -> Response {
    asset("text/css; charset=utf-8", include_str!("dashboard/assets/app.css"))
}

async fn js() -> Response {
    asset("text/javascript; charset=utf-8", include_str!("dashboard/assets/app.js"))
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    ([(header::CONTENT_TYPE, content_type), (header::CACHE_CONTROL, "no-cache")], body).into_response()
}

/// Server-sent events: one per reconcile start and end, for pages to update themselves.
async fn events(State(web): State<Web>) -> Response {
    let Ok(permit) = web.streams.clone().try_acquire_owned() else {
        return (StatusCode::SERVICE_UNAVAILABLE, "too many live pages open\n").into_response();
    };
    let rx = web.svc.live.subscribe();
    let stream = futures_util::stream::unfold((rx, permit), |(mut rx, permit)| async move {
        let ev = match rx.recv().await {
            Ok(ev) => ev,
            // Missed some: one event says "look again" as well as many.
            Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => Live { source: String::new(), phase: "lagged" },
            Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
        };
        let data = serde_json::to_string(&ev).unwrap_or_default();
        Some((Ok::<_, std::convert::Infallible>(Event::default().data(data)), (rx, permit)))
    });
    Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))).into_response()
}
