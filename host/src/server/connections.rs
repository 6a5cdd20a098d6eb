//! The connection layer of `warden serve`: accepts TCP connections, caps how
//! many are open (`[http] max_connections`) and closes a connection whose
//! client sends nothing for `idle_timeout` or takes longer than
//! `header_read_timeout` to finish a request head. The body deadline
//! (`body_read_timeout`) is applied where bodies are read, in the API.
//!
//! Each connection is in one [`Phase`]: waiting for the first byte of a
//! request, reading a request head, or serving a request (from the moment
//! the head is parsed until its response body is dropped). A watchdog per
//! connection closes it when its phase's deadline passes. At the cap, a new
//! connection evicts the oldest connection that is not serving a request
//! (slowloris connections never reach that phase); when every connection
//! is serving, the new one is answered `503` and closed at once.
//!
//! This module must never look inside a request: authentication, routing
//! and admission belong to the API.

use super::Daemon;
use super::metrics::labels;
use axum::Router;
use axum::body::Body;
use bytes::Bytes;
use http_body::Frame;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use std::collections::BTreeMap;
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, Semaphore, watch};
use tokio::time::Instant;

/// How long a new connection at the cap waits for an evicted one to close.
const EVICTION_WAIT: Duration = Duration::from_secs(1);

/// How long the accept loop pauses after an accept error (e.g. `EMFILE`),
/// so a full descriptor table does not turn into a busy loop.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(50);

/// What a client sees when it connects past the cap and nothing can be evicted.
const REFUSAL: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n\
retry-after: 1\r\nconnection: close\r\ncontent-length: 91\r\n\r\n\
{\"error\":{\"code\":\"too_many_connections\",\"message\":\"every connection is serving a request\"}}";

/// The connection limits of `[http]`.
#[derive(Debug, Clone, Copy)]
pub(super) struct ConnectionLimits {
    /// Connections open at once.
    pub max_connections: usize,
    /// From a request's first byte to its complete head.
    pub header_read_timeout: Duration,
    /// From the connection's start (or its previous response) to the first
    /// byte of a request.
    pub idle_timeout: Duration,
}

impl ConnectionLimits {
    pub(super) fn of(config: &super::DaemonConfig) -> ConnectionLimits {
        ConnectionLimits {
            max_connections: usize::try_from(config.http.max_connections)
                .unwrap_or(usize::MAX)
                .clamp(1, Semaphore::MAX_PERMITS),
            header_read_timeout: config.http.header_read_timeout.get(),
            idle_timeout: config.http.idle_timeout.get(),
        }
    }
}

/// Where a connection is in its request cycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// No byte of the next request yet.
    Waiting,
    /// Some bytes of a request head, not the whole head.
    Head,
    /// A request is being handled or its response written.
    Serving,
}

struct PhaseState {
    phase: Phase,
    since: Instant,
    evicted: bool,
}

/// One open connection, shared by its IO, its service and its watchdog.
struct Connection {
    state: Mutex<PhaseState>,
    changed: Notify,
}

impl Connection {
    fn new() -> Connection {
        Connection {
            state: Mutex::new(PhaseState {
                phase: Phase::Waiting,
                since: Instant::now(),
                evicted: false,
            }),
            changed: Notify::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, PhaseState> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn set(&self, phase: Phase) {
        {
            let mut s = self.lock();
            s.phase = phase;
            s.since = Instant::now();
        }
        self.changed.notify_one();
    }

    /// Bytes arrived: a waiting connection starts its head deadline.
    fn bytes_read(&self) {
        let started = {
            let mut s = self.lock();
            let started = s.phase == Phase::Waiting;
            if started {
                s.phase = Phase::Head;
                s.since = Instant::now();
            }
            started
        };
        if started {
            self.changed.notify_one();
        }
    }

    /// A request head was parsed; false if the connection was evicted first.
    fn enter_serving(&self) -> bool {
        let mut s = self.lock();
        if s.evicted {
            return false;
        }
        s.phase = Phase::Serving;
        s.since = Instant::now();
        true
    }

    /// Marks the connection for closing unless it is serving a request.
    fn evict_if_not_serving(&self) -> bool {
        let evicted = {
            let mut s = self.lock();
            if s.phase == Phase::Serving || s.evicted {
                false
            } else {
                s.evicted = true;
                true
            }
        };
        if evicted {
            self.changed.notify_one();
        }
        evicted
    }

    /// Resolves with why the connection must close: its phase's deadline
    /// passed, or it was evicted.
    async fn watchdog(&self, limits: ConnectionLimits) -> &'static str {
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            let deadline = {
                let s = self.lock();
                if s.evicted {
                    return "evicted";
                }
                match s.phase {
                    Phase::Waiting => Some((s.since + limits.idle_timeout, "idle_timeout")),
                    Phase::Head => Some((s.since + limits.header_read_timeout, "header_timeout")),
                    Phase::Serving => None,
                }
            };
            match deadline {
                Some((at, why)) => {
                    if Instant::now() >= at {
                        return why;
                    }
                    tokio::select! {
                        () = tokio::time::sleep_until(at) => {}
                        () = changed => {}
                    }
                }
                None => changed.await,
            }
        }
    }
}

/// The open connections, oldest first (for eviction).
#[derive(Default)]
struct Registry {
    open: Mutex<BTreeMap<u64, Arc<Connection>>>,
}

impl Registry {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, Arc<Connection>>> {
        self.open
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Evicts the oldest connection not serving a request; false if none.
    fn evict_oldest_idle(&self) -> bool {
        self.lock().values().any(|c| c.evict_if_not_serving())
    }
}

/// Removes its connection from the registry when the connection task ends.
struct Registered<'a> {
    registry: &'a Registry,
    id: u64,
}

impl Drop for Registered<'_> {
    fn drop(&mut self) {
        self.registry.lock().remove(&self.id);
    }
}

/// A TCP stream that tells its [`Connection`] when request bytes arrive.
struct Watched {
    io: TcpStream,
    conn: Arc<Connection>,
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.io).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.conn.bytes_read();
        }
        polled
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

/// A response body that puts its connection back to waiting when dropped
/// (hyper drops it once written, or when the connection goes away).
struct Served {
    inner: Body,
    conn: Arc<Connection>,
}

impl Drop for Served {
    fn drop(&mut self) {
        self.conn.set(Phase::Waiting);
    }
}

impl http_body::Body for Served {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// Serves `app` on `listener` until `stop` turns true, then stops accepting,
/// lets every connection finish its current request (keep-alive ones are
/// closed) and returns once all are closed.
pub(super) async fn serve(
    listener: TcpListener,
    app: Router,
    daemon: Arc<Daemon>,
    limits: ConnectionLimits,
    mut stop: watch::Receiver<bool>,
    shutdown: impl std::future::Future<Output = ()> + Send,
) {
    // Polled by the accept loop itself, before each accept: a signal and a
    // new connection noticed in the same wake-up stop the loop rather than
    // admit the connection (a separate task could be scheduled later).
    let mut shutdown = std::pin::pin!(shutdown);
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let registry = Arc::new(Registry::default());
    let mut http = hyper::server::conn::http1::Builder::new();
    // The watchdog enforces the head deadline (from the first byte, not
    // from the connection's start), so hyper's own timer is off.
    http.header_read_timeout(None::<Duration>);
    let mut next_id: u64 = 0;
    loop {
        let accepted = tokio::select! {
            biased;
            _ = &mut shutdown => break,
            _ = stop.wait_for(|s| *s) => break,
            r = listener.accept() => r,
        };
        let tcp = match accepted {
            Ok((tcp, _)) => tcp,
            Err(e) => {
                tracing::warn!("accept failed: {e}");
                tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                continue;
            }
        };
        let permit = match permits.clone().try_acquire_owned() {
            Ok(p) => Some(p),
            Err(_) if registry.evict_oldest_idle() => {
                daemon.metrics.add(
                    "warden_connections_closed_total",
                    labels(&[("reason", "evicted")]),
                    1,
                );
                tokio::time::timeout(EVICTION_WAIT, permits.clone().acquire_owned())
                    .await
                    .ok()
                    .and_then(Result::ok)
            }
            Err(_) => None,
        };
        let Some(permit) = permit else {
            daemon.metrics.add(
                "warden_connections_refused_total",
                super::metrics::labels(&[]),
                1,
            );
            // Best effort, never waits: the socket's send buffer is empty.
            let _ = tcp.try_write(REFUSAL);
            continue;
        };
        let _ = tcp.set_nodelay(true);
        next_id = next_id.wrapping_add(1);
        let id = next_id;
        let conn = Arc::new(Connection::new());
        registry.lock().insert(id, conn.clone());
        let registry = registry.clone();
        let app = app.clone();
        let daemon = daemon.clone();
        let http = http.clone();
        let mut conn_stop = stop.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let _registered = Registered {
                registry: &registry,
                id,
            };
            let service = {
                let conn = conn.clone();
                hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
                    let conn = conn.clone();
                    let mut app = app.clone();
                    async move { Ok::<_, Infallible>(serve_one(&conn, &mut app, req).await) }
                })
            };
            let io = Watched {
                io: tcp,
                conn: conn.clone(),
            };
            let served = http.serve_connection(TokioIo::new(io), service);
            tokio::pin!(served);
            let mut stopping = false;
            loop {
                tokio::select! {
                    _ = served.as_mut() => break,
                    _ = conn_stop.wait_for(|s| *s), if !stopping => {
                        served.as_mut().graceful_shutdown();
                        stopping = true;
                    }
                    why = conn.watchdog(limits) => {
                        if why != "evicted" {
                            daemon.metrics.add(
                                "warden_connections_closed_total",
                                labels(&[("reason", why)]),
                                1,
                            );
                        }
                        // Dropping the connection closes the socket.
                        break;
                    }
                }
            }
        });
    }
    drop(listener);
    // Every connection holds a permit until it is closed.
    let all = u32::try_from(limits.max_connections).unwrap_or(u32::MAX);
    let _ = permits.acquire_many(all).await;
}

/// Hands one request to the API, marking the connection as serving until
/// its response body is dropped.
async fn serve_one(
    conn: &Arc<Connection>,
    app: &mut Router,
    req: hyper::Request<Incoming>,
) -> hyper::Response<Served> {
    use axum::response::IntoResponse;
    let resp = if conn.enter_serving() {
        match tower_service::Service::call(app, req.map(Body::new)).await {
            Ok(resp) => resp,
            Err(never) => match never {},
        }
    } else {
        // Evicted between its head and now: answer, then close.
        let mut resp = super::errors::ApiError::unavailable(
            "too_many_connections",
            "the connection was closed to make room for another",
            1,
        )
        .into_response();
        resp.headers_mut().insert(
            axum::http::header::CONNECTION,
            axum::http::HeaderValue::from_static("close"),
        );
        resp
    };
    resp.map(|inner| Served {
        inner,
        conn: conn.clone(),
    })
}
