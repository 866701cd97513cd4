//! Binds the OTLP listeners and runs receivers and batcher until shutdown, then drains.

use std::net::SocketAddr;
use std::sync::Arc;

use cairn_schema::otlp::collector::trace::v1::trace_service_server::TraceServiceServer;
use object_store::ObjectStore;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tonic::codec::CompressionEncoding;
use tonic::transport::server::TcpIncoming;

use crate::grpc::GrpcTraceService;
use crate::ingest::Ingester;
use crate::{batcher, CollectorConfig, Error, Result};

/// Queued exports between the receivers and the batcher.
const QUEUE_DEPTH: usize = 4096;

/// A collector with its listeners bound.
pub struct CollectorServer {
    config: CollectorConfig,
    store: Arc<dyn ObjectStore>,
    grpc: TcpListener,
    http: TcpListener,
}

async fn bind(addr: SocketAddr, what: &str) -> Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .map_err(|e| Error::Internal(format!("cannot listen for {what} on {addr}: {e}")))
}

impl CollectorServer {
    pub async fn bind(config: CollectorConfig, store: Arc<dyn ObjectStore>) -> Result<Self> {
        let grpc = bind(config.grpc_addr, "OTLP/gRPC").await?;
        let http = bind(config.http_addr, "OTLP/HTTP").await?;
        Ok(Self {
            config,
            store,
            grpc,
            http,
        })
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
            store,
            grpc,
            http,
        } = self;
        tracing::info!(grpc = %grpc.local_addr().expect("bound"), http = %http.local_addr().expect("bound"), "OTLP receivers listening");
        let (tx, rx) = mpsc::channel(QUEUE_DEPTH);
        let batcher = tokio::spawn(batcher::run(
            store,
            rx,
            config.flush_interval,
            config.flush_bytes,
        ));
        let ingester = Ingester::new(tx, config.max_buffer_bytes);

        let service = TraceServiceServer::new(GrpcTraceService::new(ingester.clone()))
            .accept_compressed(CompressionEncoding::Gzip)
            .send_compressed(CompressionEncoding::Gzip)
            .max_decoding_message_size(config.max_message_bytes);
        let grpc_shutdown = shutdown.clone();
        let grpc_server = tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming_shutdown(TcpIncoming::from(grpc), async move {
                grpc_shutdown.cancelled().await
            });

        let http_router = crate::http::router(ingester, config.max_message_bytes);
        let http_shutdown = shutdown.clone();
        let http_server = axum::serve(http, http_router)
            .with_graceful_shutdown(async move { http_shutdown.cancelled().await });

        let (grpc_result, http_result) = tokio::join!(grpc_server, http_server);
        tracing::info!("OTLP receivers stopped; writing buffered spans");
        batcher
            .await
            .map_err(|e| Error::Internal(format!("batcher failed: {e}")))?;
        grpc_result.map_err(|e| Error::Internal(format!("OTLP/gRPC server: {e}")))?;
        http_result.map_err(|e| Error::Internal(format!("OTLP/HTTP server: {e}")))?;
        Ok(())
    }
}
