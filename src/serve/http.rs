//! The service's HTTP listener: hyper connections (HTTP/1.1 and 1.0, keep-alive, chunked
//! bodies) serving an axum router. Whoever can reach the port may be hostile, so everything a
//! client can make the service hold is bounded:
//! - connections: at most [`Limits::connections`] at once, [`Limits::per_peer`] from one address;
//!   when every slot is taken, the connection that has waited longest for a request is closed
//!   to make room (many addresses holding idle connections cannot starve a probe), and when
//!   none is idle the listener waits for one to end, so excess waits in the kernel's backlog
//!   instead of costing memory or descriptors;
//! - time: a request's headers must arrive within [`Limits::headers`] of the connection's last
//!   answer (so an idle keep-alive connection is closed then too), and its handler, body
//!   included, must be done within [`Limits::request`]; only the live event stream outlives it;
//! - memory: a body is at most [`Limits::body`] bytes (by `Content-Length` or as it streams in
//!   chunks), and the bodies of all requests together stay within [`Limits::bodies_in_flight`]
//!   bytes; read buffers are small;
//! - descriptors: a failing `accept` (out of descriptors) backs off instead of spinning.

use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};

pub const MAX_HEADER_BYTES: usize = 16 * 1024;
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub connections: usize,
    pub per_peer: usize,
    /// From the connection's start, or its last answer, to the end of the next request's headers.
    pub headers: Duration,
    /// From the end of the headers to the answer: reading the body and handling it.
    pub request: Duration,
    pub body: usize,
    pub bodies_in_flight: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            connections: 512,
            per_peer: 32,
            headers: Duration::from_secs(10),
            request: Duration::from_secs(10),
            body: MAX_BODY_BYTES,
            bodies_in_flight: 16 * MAX_BODY_BYTES,
        }
    }
}

/// The address a request came from, as the listener accepted it (a request extension).
#[derive(Clone, Copy, Debug)]
pub struct Peer(pub IpAddr);

/// Connections counted per peer address, released when the guard drops.
#[derive(Default)]
struct Peers(Mutex<HashMap<IpAddr, usize>>);

struct PeerGuard {
    peers: Arc<Peers>,
    ip: IpAddr,
}

impl Peers {
    fn enter(self: &Arc<Self>, ip: IpAddr, max: usize) -> Option<PeerGuard> {
        let mut m = self.0.lock().unwrap();
        let n = m.entry(ip).or_insert(0);
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(PeerGuard { peers: self.clone(), ip })
    }
}

impl Drop for PeerGuard {
    fn drop(&mut self) {
        let mut m = self.peers.0.lock().unwrap();
        if let Some(n) = m.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                m.remove(&self.ip);
            }
        }
    }
}

/// The open connections, and since when each has waited for a request (none while one is
/// being answered), to close the longest idle one when the slots run out.
#[derive(Default)]
struct Open(Mutex<OpenInner>);

#[derive(Default)]
struct OpenInner {
    next: u64,
    conns: HashMap<u64, (Option<std::time::Instant>, Arc<tokio::sync::Notify>)>,
}

impl Open {
    fn add(&self) -> (u64, Arc<tokio::sync::Notify>) {
        let mut o = self.0.lock().unwrap();
        o.next += 1;
        let (id, close) = (o.next, Arc::new(tokio::sync::Notify::new()));
        o.conns.insert(id, (Some(std::time::Instant::now()), close.clone()));
        (id, close)
    }

    fn set_idle(&self, id: u64, idle: bool) {
        if let Some(c) = self.0.lock().unwrap().conns.get_mut(&id) {
            c.0 = idle.then(std::time::Instant::now);
        }
    }

    fn remove(&self, id: u64) {
        self.0.lock().unwrap().conns.remove(&id);
    }

    /// Tells the connection idle the longest to close; false when every one is busy.
    fn close_oldest_idle(&self) -> bool {
        let mut o = self.0.lock().unwrap();
        let oldest = o.conns.iter().filter_map(|(id, (since, _))| since.map(|s| (s, *id))).min();
        match oldest {
            Some((_, id)) => {
                // Not idle any more: the next eviction picks another.
                let c = o.conns.get_mut(&id).expect("just found");
                c.0 = None;
                c.1.notify_one();
                true
            }
            None => false,
        }
    }
}

/// Wraps `app` in the request limits: the body budget, the body size cap and the time limit.
/// Routes added after this (the live event stream) are not timed.
pub fn limited(app: Router, limits: Limits) -> Router {
    let bodies = Arc::new(Semaphore::new(limits.bodies_in_flight));
    app.layer(axum::middleware::from_fn_with_state((bodies, limits.body), body_budget))
        .layer(tower_http::limit::RequestBodyLimitLayer::new(limits.body))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(StatusCode::REQUEST_TIMEOUT, limits.request))
}

/// Holds a share of the bodies' budget while a request with a body is handled: its declared
/// length, or the whole cap for a chunked body, whose length is known only at its end.
async fn body_budget(State((bodies, cap)): State<(Arc<Semaphore>, usize)>, req: Request, next: Next) -> Response {
    let declared = req.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<usize>().ok());
    let chunked = req.headers().contains_key(header::TRANSFER_ENCODING);
    let share = match (declared, chunked) {
        (Some(n), _) if n > cap => return (StatusCode::PAYLOAD_TOO_LARGE, "body too large\n").into_response(),
        (Some(n), _) => n,
        (None, true) => cap,
        (None, false) => 0,
    };
    if share == 0 {
        return next.run(req).await;
    }
    // Waits for room; the request's time limit ends the wait if none comes.
    let _permit = bodies.acquire_many_owned(share as u32).await.expect("never closed");
    next.run(req).await
}

/// Serves `app` on `listener` until `stop` turns true.
pub async fn serve(listener: TcpListener, limits: Limits, app: Router, mut stop: watch::Receiver<bool>) {
    let slots = Arc::new(Semaphore::new(limits.connections));
    let peers = Arc::new(Peers::default());
    let open = Arc::new(Open::default());
    let mut backoff = Duration::ZERO;
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = stop.changed() => return,
        };
        let (stream, peer) = match accepted {
            Ok(a) => {
                backoff = Duration::ZERO;
                a
            }
            Err(e) => {
                // Out of descriptors (or memory): accepting again at once fails again at once.
                backoff = (backoff * 2).clamp(Duration::from_millis(5), Duration::from_secs(1));
                tracing::warn!(error = %e, retry_in = ?backoff, "cannot accept a connection");
                tokio::time::sleep(backoff).await;
                continue;
            }
        };
        let Some(guard) = peers.enter(peer.ip(), limits.per_peer) else {
            drop(stream); // One address may not take every slot.
            continue;
        };
        // Every slot taken: make room by closing the connection idle the longest, or else
        // wait (with this one connection in hand; the rest wait in the kernel's backlog).
        let slot = match slots.clone().try_acquire_owned() {
            Ok(s) => s,
            Err(_) => {
                open.close_oldest_idle();
                tokio::select! {
                    s = slots.clone().acquire_owned() => s.expect("never closed"),
                    _ = stop.changed() => return,
                }
            }
        };
        let app = app.clone();
        let mut stop = stop.clone();
        let open = open.clone();
        let (id, close) = open.add();
        tokio::spawn(async move {
            let _held = (slot, guard);
            let ip = peer.ip();
            let (busy, idle) = (open.clone(), open.clone());
            let app =
                tower::ServiceExt::map_request(app, move |mut req: axum::http::Request<hyper::body::Incoming>| {
                    busy.set_idle(id, false);
                    req.extensions_mut().insert(Peer(ip));
                    req
                });
            let app = tower::ServiceExt::map_response(app, move |res| {
                idle.set_idle(id, true);
                res
            });
            let service = hyper_util::service::TowerToHyperService::new(app);
            let conn = hyper::server::conn::http1::Builder::new()
                .keep_alive(true)
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(limits.headers)
                .max_buf_size(MAX_HEADER_BYTES)
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
            tokio::pin!(conn);
            tokio::select! {
                _ = conn.as_mut() => {}
                // A stopping service ends open streams (and idle connections) at once.
                _ = stop.changed() => {}
                // The slots ran out and this one waited longest for a request.
                _ = close.notified() => {}
            }
            open.remove(id);
        });
    }
}

/// Raises the soft limit of open descriptors to the hard one, as servers do: the default soft
/// limit (often 1024) is a leftover of `select`, and the service holds a descriptor for each
/// connection, watched repository and engine stream.
pub fn raise_open_files_limit() {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
        if soft < hard {
            match setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
                Ok(()) => tracing::debug!(from = soft, to = hard, "raised the open files limit"),
                Err(e) => tracing::warn!(error = %e, "cannot raise the open files limit"),
            }
        }
    }
}
