//! Binds the query API (and the Postgres listener, unless it is off) and serves them until
//! shutdown, over one engine: the same memory, spill space and sessions.

use std::net::SocketAddr;
use std::sync::Arc;

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
}

impl QueryServer {
    /// Binds `config.http_addr` and `config.pg.pg_addr`, keeping `limits` (those of every
    /// listener; requests may take as long as a query).
    pub async fn bind(
        config: QueryConfig,
        limits: cairn_net::Limits,
        store: Arc<dyn ObjectStore>,
    ) -> Result<Self> {
        let engine = QueryEngine::new(store, &config.engine)?;
        let pg = PgServer::bind(
            &config.pg,
            engine.clone(),
            &limits,
            config.engine.query_timeout,
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
        })
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
        tracing::info!(addr = %self.addr(), "query API listening");
        let api = cairn_net::serve(
            cairn_net::LimitedListener::new(self.listener, self.limits.max_connections),
            http::router(self.engine),
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
