//! The Postgres listener: binds, accepts within the connection limit, hands each connection to
//! pgwire, and stops.
//!
//! Data flow: [`PgServer::bind`] checks the settings (no trust auth off loopback, TLS files
//! readable) and binds; TLS is the listener's own (`--pg-tls-cert`, offered to clients that
//! ask) or that of every listener (`--tls-cert`, required: a plaintext startup is refused).
//! [`PgServer::run`] accepts through [`cairn_net::LimitedListener`] (at most
//! `--max-connections` at once), and pgwire's `process_socket` runs each connection with
//! [`Connections`]' handlers: TLS if configured (`SSLRequest` answered `S`, else `N`), the
//! startup of [`super::auth`], the queries of [`super::handler`] and [`super::extended`]. On
//! shutdown it stops accepting, lets the queries in progress finish (at most a query timeout),
//! then closes every connection; closing aborts a query still running.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use datafusion_postgres::pgwire;
use pgwire::api::cancel::DefaultCancelHandler;
use pgwire::api::{ConnectionManager, PgWireServerHandlers};
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use cairn_net::tls::{Listener, ServerTls, TlsConfig};

use super::auth::{self, Password};
use super::handler::Handler;
use crate::{Error, PgConfig, QueryEngine, Result};

/// The Postgres listener, bound.
pub struct PgServer {
    listener: TcpListener,
    connections: Arc<Connections>,
    tls: Option<PgTls>,
    max_connections: usize,
    running: Arc<AtomicUsize>,
    drain: Duration,
}

impl PgServer {
    /// Binds `config.pg_addr`, unless it is `off`. Fails when clients would be trusted on a
    /// non-loopback address, or the TLS files cannot be used.
    pub async fn bind(
        config: &PgConfig,
        engine: QueryEngine,
        limits: &cairn_net::Limits,
        query_timeout: Duration,
        auth: &cairn_auth::Auth,
    ) -> Result<Option<Self>> {
        let Some(addr) = config.pg_addr.addr() else {
            return Ok(None);
        };
        let password = config.pg_password.as_deref().filter(|p| !p.is_empty());
        if password.is_none() && !auth.is_on() && !addr.ip().is_loopback() {
            return Err(Error::BadRequest(format!(
                "--pg-addr {addr} accepts other hosts, so Postgres clients must authenticate: \
                 set --pg-password (CAIRN_PG_PASSWORD), or listen on 127.0.0.1"
            )));
        }
        let tls = match (&config.pg_tls_cert, &config.pg_tls_key) {
            (Some(cert), Some(key)) => Some(PgTls {
                tls: ServerTls::load_pair(
                    cert.clone(),
                    key.clone(),
                    TlsConfig::default().tls_reload_interval,
                    ("--pg-tls-cert", "--pg-tls-key"),
                )
                .map_err(|e| Error::BadRequest(e.to_string()))?,
                required: false,
            }),
            (None, None) => None,
            _ => {
                return Err(Error::BadRequest(
                    "--pg-tls-cert and --pg-tls-key are given together".into(),
                ))
            }
        };
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|e| Error::Internal(format!("cannot listen on {addr}: {e}")))?;
        let running = Arc::new(AtomicUsize::new(0));
        Ok(Some(Self {
            listener,
            connections: Arc::new(Connections {
                handler: Arc::new(Handler::new(engine, Arc::clone(&running))),
                password: password.map(|p| Arc::new(Password::new(p))),
                auth: auth.clone(),
                manager: Arc::new(ConnectionManager::new()),
            }),
            tls,
            max_connections: limits.max_connections,
            running,
            drain: query_timeout,
        }))
    }

    pub fn addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("bound listener")
    }

    /// Serves `tls` unless the listener has a certificate of its own (`--pg-tls-cert`); clients
    /// must then use TLS (a plaintext startup is refused).
    pub fn default_tls(&mut self, tls: &ServerTls) {
        if self.tls.is_none() {
            self.tls = Some(PgTls {
                tls: tls.clone(),
                required: true,
            });
        }
    }

    /// Serves until `shutdown` is cancelled and the queries in progress finish.
    pub async fn run(self, shutdown: CancellationToken) -> Result<()> {
        let tls_mode = match &self.tls {
            None => "off",
            Some(t) if t.required => "required",
            Some(_) => "optional",
        };
        tracing::info!(addr = %self.addr(), tls = tls_mode, "postgres listening");
        let required = self.tls.as_ref().is_some_and(|t| t.required);
        // pgwire runs the handshake, within its own startup timeout.
        let acceptor = self.tls.as_ref().map(|t| {
            t.tls
                .acceptor(Listener::Postgres, Duration::from_secs(60))
                .tokio()
        });
        let mut listener = cairn_net::LimitedListener::new(self.listener, self.max_connections);
        let mut connections = JoinSet::new();
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                (conn, _) = listener.accept() => {
                    let (mut stream, slot) = conn.into_parts();
                    let (tls, handlers) = (acceptor.clone(), Arc::clone(&self.connections));
                    connections.spawn(async move {
                        if required && !asks_for_tls(&mut stream).await {
                            return;
                        }
                        if let Err(e) = pgwire::tokio::process_socket(stream, tls, handlers).await {
                            tracing::debug!(error = %e, "postgres connection ended");
                        }
                        drop(slot);
                    });
                }
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
            }
        }
        drop(listener);
        let deadline = tokio::time::Instant::now() + self.drain;
        while self.running.load(Ordering::SeqCst) > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        connections.shutdown().await;
        Ok(())
    }
}

/// TLS on the Postgres listener.
struct PgTls {
    tls: ServerTls,
    /// Whether a plaintext startup is refused (TLS from `--tls-cert`, which every listener
    /// requires), or allowed (`--pg-tls-cert`, which only offers it).
    required: bool,
}

/// The handlers of every connection.
struct Connections {
    handler: Arc<Handler>,
    password: Option<Arc<Password>>,
    /// With auth on, the password is a token and `password` is not used.
    auth: cairn_auth::Auth,
    manager: Arc<ConnectionManager>,
}

impl PgWireServerHandlers for Connections {
    fn simple_query_handler(&self) -> Arc<impl pgwire::api::query::SimpleQueryHandler> {
        Arc::clone(&self.handler)
    }

    fn extended_query_handler(&self) -> Arc<impl pgwire::api::query::ExtendedQueryHandler> {
        Arc::clone(&self.handler)
    }

    /// One per connection: the authentication exchange has state.
    fn startup_handler(&self) -> Arc<impl pgwire::api::auth::StartupHandler> {
        Arc::new(auth::startup(
            self.password.as_ref(),
            &self.auth,
            &self.manager,
        ))
    }

    fn cancel_handler(&self) -> Arc<impl pgwire::api::cancel::CancelHandler> {
        Arc::new(DefaultCancelHandler::new(Arc::clone(&self.manager)))
    }
}

/// Longest a client may take to send its first message when TLS is required.
const FIRST_MESSAGE_TIMEOUT: Duration = Duration::from_secs(10);

/// The first 8 bytes of an `SSLRequest`, a `GSSENCRequest` and a `CancelRequest` (their
/// length, then their code).
const SSL_REQUEST: [u8; 8] = [0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f];
const GSSENC_REQUEST: [u8; 8] = [0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x30];
const CANCEL_REQUEST: [u8; 8] = [0, 0, 0, 16, 0x04, 0xd2, 0x16, 0x2e];

/// Whether the client starts with TLS: an `SSLRequest` or a direct TLS handshake, perhaps after
/// a `GSSENCRequest` (refused here with `N`, as Cairn has no GSSAPI), or a `CancelRequest`
/// (which clients send without TLS, as Postgres allows; it carries the secret key of the
/// session it cancels and nothing else). Anything else is answered with a Postgres error and
/// the connection closed.
async fn asks_for_tls(stream: &mut tokio::net::TcpStream) -> bool {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let first = async {
        let mut start = [0u8; 8];
        loop {
            match stream.peek(&mut start).await {
                Ok(n) if n > 0 && start[0] == 0x16 => return true,
                Ok(8) if start == SSL_REQUEST || start == CANCEL_REQUEST => return true,
                Ok(8) if start == GSSENC_REQUEST => {
                    let mut request = [0u8; 8];
                    if stream.read_exact(&mut request).await.is_err()
                        || stream.write_all(b"N").await.is_err()
                    {
                        return false;
                    }
                }
                Ok(0) | Ok(8) | Err(_) => return false,
                // Part of it: wait for more (peek answers at once while data is buffered).
                Ok(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            }
        }
    };
    let asked = tokio::time::timeout(FIRST_MESSAGE_TIMEOUT, first)
        .await
        .unwrap_or(false);
    if !asked {
        let mut refusal = Vec::new();
        let fields: &[(u8, &str)] = &[
            (b'S', "FATAL"),
            (b'V', "FATAL"),
            (b'C', "28000"),
            (
                b'M',
                "this server requires TLS: connect with sslmode=require or stricter",
            ),
        ];
        for (code, text) in fields {
            refusal.push(*code);
            refusal.extend_from_slice(text.as_bytes());
            refusal.push(0);
        }
        refusal.push(0);
        let mut message = vec![b'E'];
        message.extend_from_slice(&(refusal.len() as u32 + 4).to_be_bytes());
        message.extend_from_slice(&refusal);
        let _ = stream.write_all(&message).await;
        tracing::debug!(peer = ?stream.peer_addr().ok(), "postgres client without TLS refused");
    }
    asked
}
