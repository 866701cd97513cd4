//! Serving a router on a [`LimitedListener`]: HTTP/1.1 and HTTP/2 (h2c), with a deadline on the
//! start of every request, and a shutdown that lets requests in progress finish.
//!
//! A connection must send the start of a request (the first 24 bytes, or a complete short
//! head) within `limits.head_timeout` of opening it, and HTTP/1 then reads the rest of each
//! request's headers — and waits for the next request on a kept-alive connection — within the
//! same time. A client that connects and sends nothing, trickles its headers a byte at a time or
//! leaves a connection idle therefore gives its connection slot back instead of holding it.
//! On a TLS listener the handshake comes first, in the connection's own task, within the same
//! time; then the start of the request, within it again.

use std::future::Future;
use std::io;
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tower::ServiceExt;

use crate::{limit_requests, Conn, Limited, LimitedListener, Limits, TlsConn};

/// The HTTP/2 connection preface, the longest start a client must send: enough to tell the
/// protocols apart.
const START_BYTES: usize = 24;

/// Serves `router` (with [`limit_requests`]) on `listener` until `shutdown` completes, then waits
/// for the requests in progress.
pub async fn serve(
    mut listener: LimitedListener,
    router: Router,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    let router = limit_requests(router, limits);
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.head_timeout);
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (conn, peer) = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        let (builder, service, watcher) = (
            builder.clone(),
            // Handlers that need the client's address take `ConnectInfo<SocketAddr>`.
            TowerToHyperService::new(router.clone().map_request(
                move |mut request: http::Request<hyper::body::Incoming>| {
                    request.extensions_mut().insert(ConnectInfo(peer));
                    request
                },
            )),
            graceful.watcher(),
        );
        let (head_timeout, tls) = (limits.head_timeout, listener.tls.clone());
        tokio::spawn(async move {
            let Some(conn) = conn.start(tls.as_ref(), head_timeout).await else {
                return;
            };
            let connection = builder.serve_connection_with_upgrades(TokioIo::new(conn), service);
            if let Err(e) = watcher.watch(connection.into_owned()).await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

/// Whether `start` holds the start of a request: enough to tell the protocols apart, or a
/// complete short head.
fn request_started(start: &[u8]) -> bool {
    start.len() >= START_BYTES || start.windows(4).any(|w| w == b"\r\n\r\n")
}

impl Limited {
    /// The connection once its TLS handshake (with `tls`) is done and the start of a request
    /// (or the client's close) arrived, each within `timeout`; `None` if either did not.
    async fn start(self, tls: Option<&crate::tls::Acceptor>, timeout: Duration) -> Option<Conn> {
        let Some(tls) = tls else {
            return self
                .request_starts(timeout)
                .await
                .then_some(Conn::Plain(self));
        };
        let mut conn = TlsConn::new(tls.handshake(self).await?);
        let started = conn.read_ahead(START_BYTES, request_started);
        match tokio::time::timeout(timeout, started).await {
            Ok(true) => Some(Conn::Tls(Box::new(conn))),
            _ => None,
        }
    }

    /// Whether the client sends the start of a request within `timeout` (or closes).
    async fn request_starts(&self, timeout: Duration) -> bool {
        let started = async {
            let mut start = [0u8; START_BYTES];
            loop {
                match self.stream.peek(&mut start).await {
                    Ok(0) => return true,
                    Ok(n) if request_started(&start[..n]) => return true,
                    // Part of it: wait for more (peek answers at once while data is buffered).
                    Ok(_) => tokio::time::sleep(Duration::from_millis(10)).await,
                    Err(_) => return false,
                }
            }
        };
        tokio::time::timeout(timeout, started)
            .await
            .unwrap_or(false)
    }
}
