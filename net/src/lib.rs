//! `cairn-net`: the limits every listener of Cairn enforces, whatever it serves.
//!
//! Data flow: a [`LimitedListener`] accepts at most `max_connections` connections at once
//! (further ones wait in the kernel's backlog until one closes), and hands each to axum or
//! tonic wrapped so that closing it frees its slot. Each request then takes one of
//! `max_concurrent_requests` [`RequestSlots`]; when none is free it is refused at once as
//! retryable (HTTP 503 with `Retry-After`, gRPC `RESOURCE_EXHAUSTED` with `RetryInfo` by the
//! service) rather than queued, and a request still running after `request_timeout` is
//! cancelled and answered 503. [`serve`] serves a router on such a listener, with a deadline on
//! the start of every request (`head_timeout`).
//!
//! With TLS ([`tls`]), a listener carries an [`tls::Acceptor`]: every connection's handshake
//! runs in its own task within `head_timeout`, so a slow or plaintext client never holds up
//! accepting the next; the connection limit counts connections still in their handshake.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::Request;
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

mod conn;
mod error;
pub mod grpc;
mod hangup;
mod serve;
pub mod tls;

pub use conn::{Conn, TlsConn};
pub use error::Error;
pub use hangup::{on_hangup, Wakeup, Wakeups};
pub use serve::serve;

/// The limits of one listener (the same for each).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::Args)]
pub struct Limits {
    /// Connections each listener holds open at once; further ones wait.
    #[arg(long, env = "CAIRN_MAX_CONNECTIONS", default_value = "1024", value_parser = cairn_config::parse::positive)]
    pub max_connections: usize,
    /// Requests in progress at once per listener; further ones are refused as retryable.
    #[arg(long, env = "CAIRN_MAX_CONCURRENT_REQUESTS", default_value = "256", value_parser = cairn_config::parse::positive)]
    pub max_concurrent_requests: usize,
    /// Longest an OTLP export may take, from its headers to its answer (the query API allows
    /// its query timeout and a margin).
    #[arg(long, env = "CAIRN_REQUEST_TIMEOUT", default_value = "30s", value_parser = cairn_config::parse::span)]
    pub request_timeout: Duration,
    /// Longest a connection may take to send the start of a request, and HTTP/1 the rest of its
    /// headers, also while kept alive between requests (see [`serve`]).
    #[arg(skip = HEAD_TIMEOUT)]
    pub head_timeout: Duration,
}

/// See [`Limits::head_timeout`].
const HEAD_TIMEOUT: Duration = Duration::from_secs(10);

impl Default for Limits {
    fn default() -> Self {
        cairn_config::defaults()
    }
}

/// Seconds a client refused for lack of a slot is asked to wait.
pub const RETRY_AFTER_SECS: u64 = 1;

/// A TCP listener holding at most a fixed number of connections open.
pub struct LimitedListener {
    listener: TcpListener,
    slots: Arc<Semaphore>,
    max_connections: usize,
    tls: Option<tls::Acceptor>,
}

impl LimitedListener {
    pub fn new(listener: TcpListener, max_connections: usize) -> Self {
        Self {
            listener,
            slots: Arc::new(Semaphore::new(max_connections.max(1))),
            max_connections: max_connections.max(1),
            tls: None,
        }
    }

    /// Serves TLS with `tls` (plaintext when `None`).
    pub fn with_tls(mut self, tls: Option<tls::Acceptor>) -> Self {
        self.tls = tls;
        self
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Waits for a free slot, then for a connection.
    async fn next(&mut self) -> io::Result<(Limited, SocketAddr)> {
        let slot = Arc::clone(&self.slots)
            .acquire_owned()
            .await
            .expect("the semaphore is never closed");
        let (stream, addr) = self.listener.accept().await?;
        let _ = stream.set_nodelay(true);
        Ok((
            Limited {
                stream,
                _slot: slot,
            },
            addr,
        ))
    }

    /// The next TCP connection, before any TLS handshake; a failed accept (out of file
    /// descriptors and the like) is logged and retried after a pause instead of spinning.
    /// Cancel-safe.
    pub async fn accept(&mut self) -> (Limited, SocketAddr) {
        loop {
            match self.next().await {
                Ok(conn) => return conn,
                Err(e) => {
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }

    /// The connections as a stream, for tonic's `serve_with_incoming`: with TLS, only those
    /// whose handshake succeeded, each handshake in a task of its own.
    pub fn into_incoming(self) -> impl futures::Stream<Item = io::Result<Conn>> + Send {
        use futures::StreamExt;
        let (tls, handshakes) = (self.tls.clone(), self.max_connections);
        let accepted = futures::stream::unfold(self, |mut listener| async move {
            let (conn, _) = listener.accept().await;
            Some((conn, listener))
        });
        match tls {
            None => accepted.map(|conn| Ok(Conn::Plain(conn))).left_stream(),
            Some(tls) => accepted
                .map(move |conn| {
                    let tls = tls.clone();
                    tokio::spawn(async move { tls.handshake(conn).await })
                })
                .buffer_unordered(handshakes)
                .filter_map(|done| async move {
                    let stream = done.ok().flatten()?;
                    Some(Ok(Conn::Tls(Box::new(TlsConn::new(stream)))))
                })
                .right_stream(),
        }
    }
}

/// An accepted connection; closing it frees its slot.
pub struct Limited {
    stream: TcpStream,
    _slot: OwnedSemaphorePermit,
}

impl Limited {
    /// The connection and its slot, for servers that need the socket itself (pgwire's); the
    /// slot is freed when dropped.
    pub fn into_parts(self) -> (TcpStream, OwnedSemaphorePermit) {
        (self.stream, self._slot)
    }
}

impl AsyncRead for Limited {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Limited {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

/// Requests in progress at once on one listener.
#[derive(Clone, Debug)]
pub struct RequestSlots {
    slots: Arc<Semaphore>,
    max: usize,
}

impl RequestSlots {
    pub fn new(max: usize) -> Self {
        Self {
            slots: Arc::new(Semaphore::new(max.max(1))),
            max: max.max(1),
        }
    }

    /// A slot, held until dropped; `None` when all are taken.
    pub fn try_enter(&self) -> Option<OwnedSemaphorePermit> {
        Arc::clone(&self.slots).try_acquire_owned().ok()
    }

    /// Why a request was refused.
    pub fn refusal(&self) -> String {
        format!(
            "more than {} requests in progress on this port, retry later",
            self.max
        )
    }
}

fn unavailable(message: String) -> Response {
    let mut response = (
        StatusCode::SERVICE_UNAVAILABLE,
        axum::Json(serde_json::json!({ "error": message })),
    )
        .into_response();
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECS));
    response
}

/// Longest the unread body of a refused request is read for.
pub const DRAIN_TIME: Duration = Duration::from_secs(5);

/// Most bytes of a request refused for lack of a slot that are read and discarded.
const DRAIN_MAX_BYTES: usize = 16 << 20;

/// Reads and discards what is left of a refused request's body, at most `limit` bytes within
/// [`DRAIN_TIME`], without buffering it: the refusal is answered at once, and a client still
/// sending its body then reads that answer (and retries) instead of a reset connection.
pub fn drain(body: axum::body::Body, limit: usize) {
    use futures::StreamExt;
    let mut frames = body.into_data_stream();
    tokio::spawn(async move {
        let mut read = 0usize;
        let _ = tokio::time::timeout(DRAIN_TIME, async {
            while let Some(Ok(chunk)) = frames.next().await {
                read += chunk.len();
                if read > limit {
                    break;
                }
            }
        })
        .await;
    });
}

/// Wraps `router` so that every request takes a slot or is refused with 503, and is answered
/// 503 if it takes longer than `limits.request_timeout` (its handler is dropped, which cancels
/// whatever it awaited).
pub fn limit_requests(router: Router, limits: Limits) -> Router {
    let slots = RequestSlots::new(limits.max_concurrent_requests);
    let timeout = limits.request_timeout;
    router.layer(axum::middleware::from_fn(
        move |request: Request, next: Next| {
            let slots = slots.clone();
            async move {
                let Some(_slot) = slots.try_enter() else {
                    drain(request.into_body(), DRAIN_MAX_BYTES);
                    return unavailable(slots.refusal());
                };
                match tokio::time::timeout(timeout, next.run(request)).await {
                    Ok(response) => response,
                    Err(_) => unavailable(format!(
                        "the request took longer than {timeout:?} and was cancelled"
                    )),
                }
            }
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::routing::get;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn get_status(addr: SocketAddr, path: &str) -> String {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(
            format!("GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n").as_bytes(),
        )
        .await
        .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        out.lines().next().unwrap_or_default().to_owned()
    }

    async fn start(router: Router, limits: Limits) -> SocketAddr {
        let listener = LimitedListener::new(
            TcpListener::bind("127.0.0.1:0").await.unwrap(),
            limits.max_connections,
        );
        let addr = listener.local_addr().unwrap();
        tokio::spawn(serve(listener, router, limits, std::future::pending()));
        addr
    }

    /// Reads until the server closes `s`; how long that took.
    async fn closed_after(mut s: TcpStream) -> Duration {
        let started = std::time::Instant::now();
        let mut sink = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut sink)).await;
        started.elapsed()
    }

    /// Silent, trickling and idle kept-alive connections are closed, giving their slot back.
    #[tokio::test]
    async fn connections_that_send_no_request_are_closed() {
        let limits = Limits {
            max_connections: 1,
            head_timeout: Duration::from_millis(300),
            ..Limits::default()
        };
        let router = Router::new().route("/fast", get(|| async { "ok" }));
        let addr = start(router, limits).await;
        let deadline = Duration::from_secs(5);

        let silent = TcpStream::connect(addr).await.unwrap();
        assert!(
            closed_after(silent).await < deadline,
            "a silent connection stays"
        );

        let mut trickling = TcpStream::connect(addr).await.unwrap();
        trickling
            .write_all(b"GET /fast HTTP/1.1\r\nho")
            .await
            .unwrap();
        let writer = tokio::spawn(async move {
            for _ in 0..50 {
                tokio::time::sleep(Duration::from_millis(100)).await;
                if trickling.write_all(b"s").await.is_err() {
                    return true;
                }
            }
            false
        });
        let cut = tokio::time::timeout(deadline, writer).await;
        assert!(
            matches!(cut, Ok(Ok(true))),
            "a trickling head is read forever"
        );

        let mut kept = TcpStream::connect(addr).await.unwrap();
        kept.write_all(b"GET /fast HTTP/1.1\r\nhost: x\r\n\r\n")
            .await
            .unwrap();
        assert!(
            closed_after(kept).await < deadline,
            "an idle kept-alive connection stays"
        );

        // Its one slot is free again.
        assert!(get_status(addr, "/fast").await.contains("200"));
    }

    #[tokio::test]
    async fn slots_timeouts_and_connections_are_bounded() {
        let limits = Limits {
            max_connections: 2,
            max_concurrent_requests: 1,
            request_timeout: Duration::from_millis(300),
            head_timeout: Duration::from_secs(10),
        };
        let router = Router::new().route("/fast", get(|| async { "ok" })).route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(5)).await;
                "late"
            }),
        );
        let addr = start(router, limits).await;

        assert!(get_status(addr, "/fast").await.contains("200"));
        let slow = tokio::spawn(get_status(addr, "/slow"));
        tokio::time::sleep(Duration::from_millis(100)).await;
        // The one request slot is taken: refused at once, retryably.
        assert!(get_status(addr, "/fast").await.contains("503"));
        // The slow request is cut at the timeout.
        assert!(slow.await.unwrap().contains("503"));
        assert!(get_status(addr, "/fast").await.contains("200"));

        // Two idle connections hold both connection slots: a third waits until one closes.
        let a = TcpStream::connect(addr).await.unwrap();
        let _b = TcpStream::connect(addr).await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        let third = tokio::spawn(get_status(addr, "/fast"));
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(!third.is_finished());
        drop(a);
        let status = tokio::time::timeout(Duration::from_secs(5), third)
            .await
            .expect("served once a slot frees")
            .unwrap();
        assert!(status.contains("200"));
    }
}
