//! The Postgres listener: binds, accepts within the connection limit, hands each connection to
//! pgwire, and stops.
//!
//! Data flow: [`PgServer::bind`] checks the settings (no trust auth off loopback, TLS files
//! readable) and binds; [`PgServer::run`] accepts through [`cairn_net::LimitedListener`] (at
//! most `--max-connections` at once), and pgwire's `process_socket` runs each connection with
//! [`Connections`]' handlers: TLS if configured (`SSLRequest` answered `S`, else `N`), the
//! startup of [`super::auth`], the queries of [`super::handler`] and [`super::extended`]. On
//! shutdown it stops accepting, lets the queries in progress finish (at most a query timeout),
//! then closes every connection; closing aborts a query still running.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use datafusion_postgres::pgwire;
use futures::StreamExt;
use pgwire::api::cancel::DefaultCancelHandler;
use pgwire::api::{ConnectionManager, PgWireServerHandlers};
use pgwire::tokio::tokio_rustls::rustls;
use pgwire::tokio::TlsAcceptor;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::auth::{self, Password};
use super::handler::Handler;
use crate::{Error, PgConfig, QueryEngine, Result};

/// The Postgres listener, bound.
pub struct PgServer {
    listener: TcpListener,
    connections: Arc<Connections>,
    tls: Option<TlsAcceptor>,
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
    ) -> Result<Option<Self>> {
        let Some(addr) = config.pg_addr.addr() else {
            return Ok(None);
        };
        let password = config.pg_password.as_deref().filter(|p| !p.is_empty());
        if password.is_none() && !addr.ip().is_loopback() {
            return Err(Error::BadRequest(format!(
                "--pg-addr {addr} accepts other hosts, so Postgres clients must authenticate: \
                 set --pg-password (CAIRN_PG_PASSWORD), or listen on 127.0.0.1"
            )));
        }
        let tls = match (&config.pg_tls_cert, &config.pg_tls_key) {
            (Some(cert), Some(key)) => Some(tls_acceptor(cert, key)?),
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

    /// Serves until `shutdown` is cancelled and the queries in progress finish.
    pub async fn run(self, shutdown: CancellationToken) -> Result<()> {
        tracing::info!(addr = %self.addr(), tls = self.tls.is_some(), "postgres listening");
        let listener = cairn_net::LimitedListener::new(self.listener, self.max_connections);
        let mut incoming = Box::pin(listener.into_incoming());
        let mut connections = JoinSet::new();
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                Some(Ok(conn)) = incoming.next() => {
                    let (stream, slot) = conn.into_parts();
                    let (tls, handlers) = (self.tls.clone(), Arc::clone(&self.connections));
                    connections.spawn(async move {
                        if let Err(e) = pgwire::tokio::process_socket(stream, tls, handlers).await {
                            tracing::debug!(error = %e, "postgres connection ended");
                        }
                        drop(slot);
                    });
                }
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
            }
        }
        drop(incoming);
        let deadline = tokio::time::Instant::now() + self.drain;
        while self.running.load(Ordering::SeqCst) > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        connections.shutdown().await;
        Ok(())
    }
}

/// The handlers of every connection.
struct Connections {
    handler: Arc<Handler>,
    password: Option<Arc<Password>>,
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
        Arc::new(auth::startup(self.password.as_ref(), &self.manager))
    }

    fn cancel_handler(&self) -> Arc<impl pgwire::api::cancel::CancelHandler> {
        Arc::new(DefaultCancelHandler::new(Arc::clone(&self.manager)))
    }
}

/// A TLS acceptor with the PEM certificate chain and private key of these files.
fn tls_acceptor(cert: &Path, key: &Path) -> Result<TlsAcceptor> {
    let bad = |what: &str, path: &Path, e: &dyn std::fmt::Display| {
        Error::BadRequest(format!("{what} {}: {e}", path.display()))
    };
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| bad("--pg-tls-cert", cert, &e))?;
    let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| bad("--pg-tls-key", key, &e))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Internal(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(chain, key_der)
        .map_err(|e| bad("--pg-tls-cert/--pg-tls-key", cert, &e))?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}
