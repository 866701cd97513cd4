//! Binds the query API and serves it until shutdown.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use object_store::ObjectStore;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::{http, Error, QueryEngine, Result};

/// Query API settings.
#[derive(Debug, Clone)]
pub struct QueryConfig {
    /// HTTP listen address (default `127.0.0.1:3200`).
    pub http_addr: SocketAddr,
    /// Connections, requests in progress and request time. The request time bounds every
    /// answer, queries included, so it is longer than any query may run.
    pub limits: cairn_net::Limits,
    /// Memory all running queries may use together, in bytes.
    pub memory_limit: usize,
    /// Tool name patterns that always need an approval, whatever the policy in force says.
    pub approval_rules: Vec<String>,
    /// Wall time a query may run before it is cancelled (default 60 s).
    pub query_timeout: Duration,
    /// Directory queries spill to when they run out of memory (default `cairn-spill` in the OS
    /// temporary directory); created if missing.
    pub spill_dir: PathBuf,
    /// Disk all running queries may spill together, in bytes (default 10 GiB).
    pub spill_limit: u64,
}

impl Default for QueryConfig {
    fn default() -> Self {
        Self {
            http_addr: ([127, 0, 0, 1], 3200).into(),
            limits: cairn_net::Limits {
                request_timeout: Duration::from_secs(90),
                ..Default::default()
            },
            memory_limit: 2 << 30,
            approval_rules: Vec::new(),
            query_timeout: Duration::from_secs(60),
            spill_dir: std::env::temp_dir().join("cairn-spill"),
            spill_limit: 10 << 30,
        }
    }
}

/// The query API with its listener bound.
pub struct QueryServer {
    engine: QueryEngine,
    listener: TcpListener,
    limits: cairn_net::Limits,
}

impl QueryServer {
    pub async fn bind(config: QueryConfig, store: Arc<dyn ObjectStore>) -> Result<Self> {
        let engine = QueryEngine::new(store, &config)?;
        let listener = TcpListener::bind(config.http_addr)
            .await
            .map_err(|e| Error::Internal(format!("cannot listen on {}: {e}", config.http_addr)))?;
        Ok(Self {
            engine,
            listener,
            limits: config.limits,
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
