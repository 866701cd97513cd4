//! Binds the query API and serves it until shutdown.

use std::net::SocketAddr;
use std::sync::Arc;

use object_store::ObjectStore;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::{http, Error, QueryConfig, QueryEngine, Result};

/// The query API with its listener bound.
pub struct QueryServer {
    engine: QueryEngine,
    listener: TcpListener,
    limits: cairn_net::Limits,
}

impl QueryServer {
    /// Binds `config.http_addr`, keeping `limits` (those of every listener; requests may take
    /// as long as a query).
    pub async fn bind(
        config: QueryConfig,
        limits: cairn_net::Limits,
        store: Arc<dyn ObjectStore>,
    ) -> Result<Self> {
        let engine = QueryEngine::new(store, &config.engine)?;
        let listener = TcpListener::bind(config.http_addr)
            .await
            .map_err(|e| Error::Internal(format!("cannot listen on {}: {e}", config.http_addr)))?;
        Ok(Self {
            engine,
            listener,
            limits: config.limits(limits),
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("bound listener")
    }

    /// Serves until `shutdown` is cancelled and in-flight requests finish.
    pub async fn run(self, shutdown: CancellationToken) -> Result<()> {
        tracing::info!(addr = %self.addr(), "query API listening");
        cairn_net::serve(
            cairn_net::LimitedListener::new(self.listener, self.limits.max_connections),
            http::router(self.engine),
            self.limits,
            async move { shutdown.cancelled().await },
        )
        .await
        .map_err(|e| Error::Internal(format!("query API: {e}")))
    }
}
