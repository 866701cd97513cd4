//! Binds the query API (and the Postgres listener, unless it is off) and serves them until
//! shutdown, over one engine: the same memory, spill space and sessions.

use std::net::SocketAddr;
use std::sync::Arc;

use cairn_net::tls::{self, Listener, ServerTls};
use object_store::ObjectStore;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::pg::PgServer;
use crate::{http, Error, QueryConfig, QueryEngine, Result};

/// The query API with its listener bound.
pub struct QueryServer {
    engine: QueryEngine,
    listener: TcpListener,
    limits: cairn_net::Limits,
    pg: Option<PgServer>,
    /// TLS on the API's listener, when configured.
    tls: Option<ServerTls>,
    /// Who may read (role read or admin, with auth on).
    auth: cairn_auth::Auth,
}

impl QueryServer {
    /// Binds `config.http_addr` and `config.pg.pg_addr`, keeping `limits` (those of every
    /// listener; requests may take as long as a query).
    /// Both listeners admit the requests `auth` admits.
    pub async fn bind(
        config: QueryConfig,
        limits: cairn_net::Limits,
        store: Arc<dyn ObjectStore>,
        auth: cairn_auth::Auth,
    ) -> Result<Self> {
        let engine = QueryEngine::new(store, &config.engine)?;
        let pg = PgServer::bind(
            &config.pg,
            engine.clone(),
            &limits,
            config.engine.query_timeout,
            &auth,
        )
        .await?;
        let listener = TcpListener::bind(config.http_addr)
            .await
            .map_err(|e| Error::Internal(format!("cannot listen on {}: {e}", config.http_addr)))?;
        Ok(Self {
            engine,
            listener,
            limits: config.limits(limits),
            pg,
            tls: None,
            auth,
        })
    }

    /// Serves TLS on the API's listener, and on the Postgres listener unless it has a
    /// certificate of its own (`--pg-tls-cert`). Neither asks for client certificates.
    pub fn with_tls(mut self, tls: Option<ServerTls>) -> Self {
        if let (Some(pg), Some(tls)) = (&mut self.pg, &tls) {
            pg.default_tls(tls);
        }
        self.tls = tls;
        self
    }

    /// Reads the per-tenant query limits overrides of `path`, and again on every SIGHUP until
    /// `shutdown`.
    pub fn with_tenant_limits(
        self,
        path: Option<std::path::PathBuf>,
        shutdown: &CancellationToken,
    ) -> Result<Self> {
        self.engine.tenant_limits().load_file(path)?;
        self.engine.tenant_limits().watch(shutdown.clone());
        Ok(self)
    }

    pub fn addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("bound listener")
    }

    /// The Postgres listener's address, unless it is off.
    pub fn pg_addr(&self) -> Option<SocketAddr> {
        self.pg.as_ref().map(PgServer::addr)
    }

    /// Serves until `shutdown` is cancelled and in-flight requests finish.
    pub async fn run(self, shutdown: CancellationToken) -> Result<()> {
        tracing::info!(
            addr = %self.addr(),
            tls = tls::describe(self.tls.as_ref(), Listener::Http),
            "query API listening"
        );
        let tls = self
            .tls
            .as_ref()
            .map(|t| t.acceptor(Listener::Http, self.limits.head_timeout));
        let api = cairn_net::serve(
            cairn_net::LimitedListener::new(self.listener, self.limits.max_connections)
                .with_tls(tls),
            http::router(self.engine, self.auth),
            self.limits,
            {
                let shutdown = shutdown.clone();
                async move { shutdown.cancelled().await }
            },
        );
        let api = async {
            api.await
                .map_err(|e| Error::Internal(format!("query API: {e}")))
        };
        match self.pg {
            Some(pg) => tokio::try_join!(api, pg.run(shutdown)).map(|_| ()),
            None => api.await,
        }
    }
}
