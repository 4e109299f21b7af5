//! The service's HTTP listener (hyper, HTTP/1.1, one request per connection) for health,
//! status, metrics and webhooks. Whoever can reach the port may be hostile, so everything a
//! client can make the service hold is bounded:
//! - connections: at most [`Limits::connections`] at once, [`Limits::per_peer`] from one address;
//!   past that the listener stops accepting until one ends, so excess waits in the kernel's
//!   backlog instead of costing memory or descriptors;
//! - time: a connection lives at most [`Limits::deadline`] from accept to the last byte of the
//!   answer, however slowly it sends (headers or body);
//! - memory: a body needs a `Content-Length` within [`Limits::body`], and the bodies of all
//!   connections together stay within [`Limits::bodies_in_flight`] bytes; read buffers are small.
//! - descriptors: a failing `accept` (out of descriptors) backs off instead of spinning.

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use std::collections::HashMap;
use std::future::Future;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};

pub const MAX_HEADER_BYTES: usize = 16 * 1024;
pub const MAX_BODY_BYTES: usize = 1024 * 1024;
/// The whole life of one connection, headers to answer.
pub const REQUEST_DEADLINE: Duration = Duration::from_secs(10);

#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub connections: usize,
    pub per_peer: usize,
    pub deadline: Duration,
    pub body: usize,
    pub bodies_in_flight: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            connections: 512,
            per_peer: 32,
            deadline: REQUEST_DEADLINE,
            body: MAX_BODY_BYTES,
            bodies_in_flight: 16 * MAX_BODY_BYTES,
        }
    }
}

pub struct Request {
    pub method: String,
    pub path: String,
    /// Lowercase names.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

pub struct Response {
    pub status: u16,
    pub content_type: &'static str,
    pub body: String,
}

impl Response {
    pub fn new(status: u16, content_type: &'static str, body: impl Into<String>) -> Self {
        Response { status, content_type, body: body.into() }
    }
    pub fn text(status: u16, body: impl Into<String>) -> Self {
        Response::new(status, "text/plain; charset=utf-8", body)
    }
}

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

/// Serves `handle` on `listener` until `stop` turns true.
pub async fn serve<H, F>(listener: TcpListener, limits: Limits, handle: H, mut stop: watch::Receiver<bool>)
where
    H: Fn(Request) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response> + Send + 'static,
{
    let slots = Arc::new(Semaphore::new(limits.connections));
    let bodies = Arc::new(Semaphore::new(limits.bodies_in_flight));
    let peers = Arc::new(Peers::default());
    let mut backoff = Duration::ZERO;
    loop {
        let slot = tokio::select! {
            s = slots.clone().acquire_owned() => s.expect("never closed"),
            _ = stop.changed() => return,
        };
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
        let (handle, bodies) = (handle.clone(), bodies.clone());
        tokio::spawn(async move {
            let _held = (slot, guard);
            let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
                let (handle, bodies) = (handle.clone(), bodies.clone());
                async move {
                    let response = match read(req, &limits, &bodies).await {
                        Ok((req, _permit)) => handle(req).await,
                        Err(r) => r,
                    };
                    Ok::<_, std::convert::Infallible>(into_hyper(response))
                }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .keep_alive(false)
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(limits.deadline)
                .max_buf_size(MAX_HEADER_BYTES)
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
            // Past the deadline the connection is dropped, whatever state it is in.
            let _ = tokio::time::timeout(limits.deadline, conn).await;
        });
    }
}

/// The request with its body read, and the share of the body budget it holds.
async fn read(
    req: hyper::Request<Incoming>,
    limits: &Limits,
    bodies: &Arc<Semaphore>,
) -> Result<(Request, Option<OwnedSemaphorePermit>), Response> {
    let (parts, body) = req.into_parts();
    let headers: Vec<(String, String)> = parts
        .headers
        .iter()
        .map(|(k, v)| (k.as_str().to_ascii_lowercase(), String::from_utf8_lossy(v.as_bytes()).to_string()))
        .collect();
    let method = parts.method.as_str().to_string();
    let path = parts.uri.path().to_string();
    let length = parts.headers.get(hyper::header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<usize>().ok());
    let chunked = parts.headers.contains_key(hyper::header::TRANSFER_ENCODING);
    let (length, permit) = match (length, chunked) {
        (None, false) | (Some(0), _) => (0, None),
        (None, true) => return Err(Response::text(411, "a body needs Content-Length\n")),
        (Some(n), _) if n > limits.body => return Err(Response::text(413, "body too large\n")),
        (Some(n), _) => {
            // Waits for room; the connection's deadline ends the wait if none comes.
            let permit = bodies.clone().acquire_many_owned(n as u32).await.expect("never closed");
            (n, Some(permit))
        }
    };
    let body = if length == 0 {
        Vec::new()
    } else {
        match Limited::new(body, length).collect().await {
            Ok(b) => b.to_bytes().to_vec(),
            Err(_) => return Err(Response::text(400, "incomplete or oversized body\n")),
        }
    };
    Ok((Request { method, path, headers, body }, permit))
}

fn into_hyper(r: Response) -> hyper::Response<Full<Bytes>> {
    hyper::Response::builder()
        .status(r.status)
        .header(hyper::header::CONTENT_TYPE, r.content_type)
        .header(hyper::header::CONNECTION, "close")
        .body(Full::new(Bytes::from(r.body)))
        .expect("a valid response")
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
