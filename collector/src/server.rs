//! Binds the OTLP listeners and runs receivers and batcher until shutdown, then drains.

use std::net::SocketAddr;
use std::sync::Arc;

use cairn_net::tls::{self, Listener, ServerTls};
use cairn_net::{LimitedListener, RequestSlots};
use cairn_normalize::placement::Locate;
use cairn_store::chain::Chain;
use object_store::ObjectStore;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::grpc::TraceServer;
use crate::ingest::{IngestLimits, Ingester, Sink};
use crate::wal::WalDir;
use crate::{batcher, CollectorConfig, Error, Result};

/// Queued exports between the receivers and the batcher.
const QUEUE_DEPTH: usize = 4096;

/// Segments in the log directory.
fn pending_segments(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir).map_or(0, |d| {
        d.filter_map(|e| e.ok())
            .filter(|e| e.path().extension().is_some_and(|x| x == "wal"))
            .count()
    })
}

/// Writes every segment a previous run left in the log, then deletes it.
async fn replay(output: &batcher::Output, wal: &WalDir) -> Result<()> {
    for &segment in &wal.leftover {
        let records = wal.read_segment(segment)?;
        let count = records.len();
        let encoded = tokio::task::spawn_blocking(move || {
            records
                .into_iter()
                .map(|(tenant, request, placements)| {
                    cairn_normalize::encode::encode_placed(&request, usize::MAX, &placements)
                        .map(|e| (tenant, e.partitions))
                })
                .collect::<Result<Vec<_>, _>>()
        })
        .await
        .map_err(|e| Error::Internal(format!("replay task failed: {e}")))??;
        batcher::replay_segment(output.clone(), &wal.collector_id, segment, encoded).await;
        wal.remove(segment)?;
        tracing::info!(segment, records = count, "replayed write-ahead log segment");
    }
    Ok(())
}

/// A collector with its listeners bound.
pub struct CollectorServer {
    config: CollectorConfig,
    limits: cairn_net::Limits,
    /// The store, and the tamper-evident chain recording what is written to it.
    output: batcher::Output,
    grpc: TcpListener,
    http: TcpListener,
    /// The write-ahead log, already replayed.
    wal: Option<WalDir>,
    /// Where exports' spans ran (the Kubernetes pod cache), when configured.
    locate: Option<Arc<dyn Locate>>,
    /// TLS on both listeners, when configured.
    tls: Option<ServerTls>,
    /// Who may export (role ingest or admin, with auth on).
    auth: cairn_auth::Auth,
    /// Redaction and per-tenant limits, their files read.
    guards: Arc<crate::Guards>,
}

async fn bind(addr: SocketAddr, what: &str) -> Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .map_err(|e| Error::Internal(format!("cannot listen for {what} on {addr}: {e}")))
}

impl CollectorServer {
    /// Replays what a previous run left in the write-ahead log, then binds the listeners (so
    /// that nothing acknowledged before a crash is missing once the collector is up). Each
    /// listener keeps `limits`. Files written are recorded in `chain` (as `collector:<id>`).
    pub async fn bind(
        config: CollectorConfig,
        limits: cairn_net::Limits,
        store: Arc<dyn ObjectStore>,
        chain: Option<Chain>,
    ) -> Result<Self> {
        let wal = config.log_dir().map(WalDir::open).transpose()?;
        let writer = match &wal {
            Some(wal) => format!("collector:{}", wal.collector_id),
            None => "collector".to_owned(),
        };
        let output = batcher::Output {
            store,
            chain: chain.map(|c| c.with_writer(writer)),
        };
        if let Some(wal) = &wal {
            replay(&output, wal).await?;
        }
        let guards = Arc::new(crate::Guards::load(&config)?);
        guards.prime(output.store.as_ref()).await;
        let grpc = bind(config.otlp_grpc_addr, "OTLP/gRPC").await?;
        let http = bind(config.otlp_http_addr, "OTLP/HTTP").await?;
        Ok(Self {
            config,
            limits,
            output,
            grpc,
            http,
            wal,
            locate: None,
            tls: None,
            guards,
            auth: cairn_auth::Auth::off(),
        })
    }

    /// Fills the placement columns spans lack from `locate` (the Kubernetes pod cache).
    pub fn with_locate(mut self, locate: Arc<dyn Locate>) -> Self {
        self.locate = Some(locate);
        self
    }

    /// Serves TLS on both listeners (client certificates required when `tls` has a client CA).
    pub fn with_tls(mut self, tls: Option<ServerTls>) -> Self {
        self.tls = tls;
        self
    }

    /// Authenticates exports with `auth`.
    pub fn with_auth(mut self, auth: cairn_auth::Auth) -> Self {
        self.auth = auth;
        self
    }

    pub fn grpc_addr(&self) -> SocketAddr {
        self.grpc.local_addr().expect("bound listener")
    }

    pub fn http_addr(&self) -> SocketAddr {
        self.http.local_addr().expect("bound listener")
    }

    /// Serves until `shutdown` is cancelled, then stops accepting, lets in-flight exports finish
    /// and writes out everything buffered before returning.
    pub async fn run(self, shutdown: CancellationToken) -> Result<()> {
        let Self {
            config,
            limits,
            output,
            grpc,
            http,
            wal,
            locate,
            guards,
            tls,
            auth,
        } = self;
        guards.spawn(
            Arc::clone(&output.store),
            config.tenant_usage_interval,
            shutdown.clone(),
        );
        let (tx, rx) = mpsc::channel(QUEUE_DEPTH);
        let (sink, control) = match wal {
            Some(wal) => {
                let (sender, control) = wal.start(tx)?;
                (Sink::Wal(sender), Some(control))
            }
            None => (Sink::Batcher(tx), None),
        };
        let batcher = tokio::spawn(batcher::run(
            output,
            rx,
            batcher::FlushTriggers {
                interval: config.flush_interval,
                bytes: config.flush_size,
                partitions: config.max_flush_partitions,
            },
            control,
        ));
        let ingester = Ingester::new(
            sink,
            IngestLimits {
                max_buffer_bytes: config.max_buffer_size,
                max_message_bytes: config.max_message_size,
                max_hours_per_request: config.max_hours_per_request,
            },
            locate,
        )
        .with_guards(guards);
        tracing::info!(
            grpc = %grpc.local_addr().expect("bound"),
            http = %http.local_addr().expect("bound"),
            tls = tls::describe(tls.as_ref(), Listener::OtlpGrpc),
            "OTLP receivers listening"
        );
        let acceptor = |listener| {
            tls.as_ref()
                .map(|t| t.acceptor(listener, limits.head_timeout))
        };

        let service = TraceServer::new(
            ingester.clone(),
            auth.clone(),
            config.max_message_size,
            RequestSlots::new(limits.max_concurrent_requests),
        );
        let grpc_shutdown = shutdown.clone();
        let grpc_server = tonic::transport::Server::builder()
            .timeout(limits.request_timeout)
            .add_service(service)
            .serve_with_incoming_shutdown(
                LimitedListener::new(grpc, limits.max_connections)
                    .with_tls(acceptor(Listener::OtlpGrpc))
                    .into_incoming(),
                async move { grpc_shutdown.cancelled().await },
            );

        let http_shutdown = shutdown.clone();
        let http_server = cairn_net::serve(
            LimitedListener::new(http, limits.max_connections)
                .with_tls(acceptor(Listener::OtlpHttp)),
            crate::http::router(ingester, auth),
            limits,
            async move { http_shutdown.cancelled().await },
        );

        let (grpc_result, http_result) = tokio::join!(grpc_server, http_server);
        tracing::info!("OTLP receivers stopped; writing buffered spans");
        match tokio::time::timeout(config.shutdown_timeout, batcher).await {
            Ok(joined) => joined.map_err(|e| Error::Internal(format!("batcher failed: {e}")))?,
            Err(_) => match config.log_dir() {
                Some(dir) => tracing::warn!(
                    timeout = ?config.shutdown_timeout,
                    wal = %dir.display(),
                    pending = pending_segments(dir),
                    "buffered spans not yet written; they stay in the write-ahead log and are written at the next start"
                ),
                None => tracing::error!(
                    timeout = ?config.shutdown_timeout,
                    "buffered spans not yet written; their exports were not acknowledged"
                ),
            },
        }
        grpc_result.map_err(|e| Error::Internal(format!("OTLP/gRPC server: {e}")))?;
        http_result.map_err(|e| Error::Internal(format!("OTLP/HTTP server: {e}")))?;
        Ok(())
    }
}
