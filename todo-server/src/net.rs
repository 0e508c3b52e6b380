//! The connection layer: accepts TCP connections and serves HTTP/1.1 on them with hyper, under
//! time and count limits.
//!
//! poem's own `Server` hands hyper no timer, so hyper's header-read timeout is off, and it retries
//! a failed `accept` at once (a busy loop when descriptors run out). This module replaces it:
//! - at most [`ConnectionLimits::max_connections`] connections are open at once; beyond that the
//!   accept loop waits for one to close (new connections wait in the kernel's backlog);
//! - a request's headers must arrive within [`ConnectionLimits::header_read_timeout`], counted
//!   from the connection's start or the previous answer (hyper's timer);
//! - a connection with no request in progress and no bytes moving either way for
//!   [`ConnectionLimits::idle_timeout`] is closed (a stalled body, a client that stops reading);
//! - an `accept` that fails for lack of descriptors or memory is logged at most every few
//!   seconds and retried after a pause, never in a loop;
//! - on shutdown, in-flight requests get [`ConnectionLimits::shutdown_grace`], then every
//!   connection still open is dropped.
//!
//! HTTP/2 is not served: browsers speak it only over TLS, which a proxy in front terminates, and
//! cleartext HTTP/2 would multiplex many requests on one connection past the header timeout and
//! the connection cap. One client can still hold many connections; a proxy in front should cap
//! connections per client.
//!
//! Request bodies have their own deadline and memory budget, enforced where they are read
//! ([`crate::payload`]).

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use poem::web::{LocalAddr, RemoteAddr};
use poem::{Addr, Endpoint};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::time::Sleep;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Largest request head (request line and headers) a connection may buffer; a longer one is
/// refused with 431. hyper's own default is about 400 KiB per connection.
pub const MAX_HEAD_BYTES: usize = 64 * 1024;

/// How long `accept` pauses after failing for lack of descriptors or memory.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// How often at most a failing `accept` is logged.
const ACCEPT_LOG_EVERY: Duration = Duration::from_secs(10);

/// Descriptors left free for everything but client connections (database connections, SQLite
/// files, the listener, logs) when the connection cap is derived from the descriptor limit.
pub const RESERVED_DESCRIPTORS: u64 = 256;

/// The limits every connection is served under.
#[derive(Debug, Clone)]
pub struct ConnectionLimits {
    /// Time allowed for a request's headers to arrive in full (and, on a kept-alive connection,
    /// for the next request to start).
    pub header_read_timeout: Duration,
    /// A connection with no bytes read or written for this long is closed.
    pub idle_timeout: Duration,
    /// Connections open at once; more wait to be accepted.
    pub max_connections: usize,
    /// How long in-flight requests may take to finish once shutdown starts.
    pub shutdown_grace: Duration,
}

/// The largest default connection cap, whatever the descriptor limit (containers often allow a
/// billion descriptors); each idle connection holds some tens of KiB.
pub const MAX_DEFAULT_CONNECTIONS: u64 = 4096;

/// The default connection cap: the process's soft limit on open files minus
/// [`RESERVED_DESCRIPTORS`], between 64 and [`MAX_DEFAULT_CONNECTIONS`] (1024 minus the reserve
/// when the limit cannot be read).
pub fn default_max_connections() -> usize {
    let soft = open_files_soft_limit().unwrap_or(1024);
    let cap = soft
        .saturating_sub(RESERVED_DESCRIPTORS)
        .clamp(64, MAX_DEFAULT_CONNECTIONS);
    usize::try_from(cap).unwrap_or(64)
}

/// The soft `RLIMIT_NOFILE`, read from `/proc/self/limits` (Linux); `None` elsewhere.
fn open_files_soft_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    let soft = line
        .trim_start_matches("Max open files")
        .split_whitespace()
        .next()?;
    match soft {
        "unlimited" => Some(u64::MAX),
        n => n.parse().ok(),
    }
}

/// Serves `endpoint` on `listener` until `shutdown` resolves, then lets in-flight requests finish
/// for up to [`ConnectionLimits::shutdown_grace`].
pub async fn serve<E>(
    listener: TcpListener,
    endpoint: E,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()>,
) where
    E: Endpoint + 'static,
{
    let endpoint = Arc::new(endpoint);
    let slots = Arc::new(Semaphore::new(
        limits.max_connections.clamp(1, Semaphore::MAX_PERMITS),
    ));
    let stop = CancellationToken::new();
    let force = CancellationToken::new();
    let connections = TaskTracker::new();
    let local = listener.local_addr().ok();
    let mut failures = AcceptFailures::default();
    tokio::pin!(shutdown);
    loop {
        let slot = tokio::select! {
            () = &mut shutdown => break,
            slot = slots.clone().acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break, // the semaphore is never closed
            },
        };
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) if is_about_one_connection(&e) => {
                    tracing::debug!(error = %e, "a connection failed before it was accepted");
                    continue;
                }
                Err(e) => {
                    failures.record(&e);
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            },
        };
        let endpoint = endpoint.clone();
        let (stop, force) = (stop.clone(), force.clone());
        let limits = limits.clone();
        connections.spawn(async move {
            serve_connection(stream, peer, local, endpoint, &limits, stop, force).await;
            drop(slot);
        });
    }
    drop(listener);
    connections.close();
    stop.cancel();
    if tokio::time::timeout(limits.shutdown_grace, connections.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            open = connections.len(),
            "connections still open after the shutdown grace period; closing them"
        );
        force.cancel();
        connections.wait().await;
    }
}

/// Whether an `accept` error concerns one connection only (it was reset or aborted before it
/// could be accepted): nothing to report or wait for.
fn is_about_one_connection(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::Interrupted
            | io::ErrorKind::WouldBlock
    )
}

/// Logs failing `accept`s at most once per [`ACCEPT_LOG_EVERY`], with how many were not logged.
#[derive(Default)]
struct AcceptFailures {
    last_logged: Option<Instant>,
    unlogged: u64,
}

impl AcceptFailures {
    fn record(&mut self, e: &io::Error) {
        let now = Instant::now();
        if self
            .last_logged
            .is_some_and(|t| now.duration_since(t) < ACCEPT_LOG_EVERY)
        {
            self.unlogged += 1;
            return;
        }
        tracing::error!(
            error = %e,
            since_last_report = self.unlogged,
            "cannot accept a connection (lower MAX_OPEN_CONNECTIONS or raise the open-files limit)"
        );
        self.last_logged = Some(now);
        self.unlogged = 0;
    }
}

async fn serve_connection<E>(
    stream: TcpStream,
    peer: SocketAddr,
    local: Option<SocketAddr>,
    endpoint: Arc<E>,
    limits: &ConnectionLimits,
    stop: CancellationToken,
    force: CancellationToken,
) where
    E: Endpoint + 'static,
{
    // Small JSON answers: send them now rather than waiting for more to coalesce.
    let _ = stream.set_nodelay(true);
    let local = LocalAddr(local.map_or(Addr::Custom("tcp", "".into()), Addr::SocketAddr));
    let remote = RemoteAddr(Addr::SocketAddr(peer));
    let in_flight = Arc::new(AtomicUsize::new(0));
    let io = TokioIo::new(IdleTimeout::new(
        stream,
        limits.idle_timeout,
        in_flight.clone(),
    ));
    let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
        let endpoint = endpoint.clone();
        let request = poem::Request::from((
            req,
            local.clone(),
            remote.clone(),
            poem::http::uri::Scheme::HTTP,
        ));
        let handling = InFlight::enter(&in_flight);
        async move {
            let response = endpoint.get_response(request).await;
            drop(handling);
            Ok::<_, Infallible>(hyper::Response::<BoxBody<Bytes, io::Error>>::from(response))
        }
    });
    let connection = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_header_size(MAX_HEAD_BYTES)
        .max_buf_size(MAX_HEAD_BYTES)
        .serve_connection(io, service);
    tokio::pin!(connection);
    tokio::select! {
        _ = connection.as_mut() => return,
        () = stop.cancelled() => connection.as_mut().graceful_shutdown(),
    }
    tokio::select! {
        _ = connection.as_mut() => {}
        () = force.cancelled() => {}
    }
}

/// Counts a request as being handled on its connection until dropped (however the handler
/// ends), so the connection is not idle meanwhile.
struct InFlight(Arc<AtomicUsize>);

impl InFlight {
    fn enter(count: &Arc<AtomicUsize>) -> Self {
        count.fetch_add(1, Ordering::Relaxed);
        Self(count.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A stream that fails with `TimedOut` once no byte has been read or written for `idle` while
/// the connection waits on the peer and no request is being handled (hyper keeps reading while a
/// handler runs, to notice a client that hangs up).
struct IdleTimeout<S> {
    inner: S,
    idle: Duration,
    last_progress: Instant,
    alarm: Pin<Box<Sleep>>,
    in_flight: Arc<AtomicUsize>,
}

impl<S> IdleTimeout<S> {
    fn new(inner: S, idle: Duration, in_flight: Arc<AtomicUsize>) -> Self {
        Self {
            inner,
            idle,
            last_progress: Instant::now(),
            alarm: Box::pin(tokio::time::sleep(idle)),
            in_flight,
        }
    }

    /// Records that bytes moved.
    fn progressed(&mut self, bytes: usize) {
        if bytes > 0 {
            self.last_progress = Instant::now();
        }
    }

    /// Called when the peer keeps us waiting: `Err` once it has been idle too long; otherwise
    /// arms the alarm so the task is woken when it would be.
    fn check_idle(&mut self, cx: &mut Context<'_>) -> io::Result<()> {
        loop {
            if self.alarm.as_mut().poll(cx).is_pending() {
                return Ok(());
            }
            if self.in_flight.load(Ordering::Relaxed) > 0 {
                // A handler is working: the idle clock starts once it has answered.
                self.last_progress = Instant::now();
            }
            let due = self.last_progress + self.idle;
            if Instant::now() >= due {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "connection idle for too long",
                ));
            }
            self.alarm
                .as_mut()
                .reset(tokio::time::Instant::from_std(due));
        }
    }

    /// Passes a poll of the inner stream through, noting progress, and checking the idle time
    /// when it has to wait.
    fn watch<T>(
        &mut self,
        cx: &mut Context<'_>,
        poll: impl FnOnce(Pin<&mut S>, &mut Context<'_>) -> Poll<io::Result<T>>,
        moved: impl FnOnce(&T) -> usize,
    ) -> Poll<io::Result<T>>
    where
        S: Unpin,
    {
        match poll(Pin::new(&mut self.inner), cx) {
            Poll::Ready(Ok(value)) => {
                self.progressed(moved(&value));
                Poll::Ready(Ok(value))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => {
                self.check_idle(cx)?;
                Poll::Pending
            }
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for IdleTimeout<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(result) => {
                this.progressed(buf.filled().len() - before);
                Poll::Ready(result)
            }
            Poll::Pending => {
                this.check_idle(cx)?;
                Poll::Pending
            }
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for IdleTimeout<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.get_mut()
            .watch(cx, |s, cx| s.poll_write(cx, buf), |n| *n)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.get_mut()
            .watch(cx, |s, cx| s.poll_write_vectored(cx, bufs), |n| *n)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().watch(cx, |s, cx| s.poll_flush(cx), |()| 0)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}
