//! Collector settings.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// What the collector listens on and how it batches.
#[derive(Debug, Clone)]
pub struct CollectorConfig {
    /// OTLP/gRPC listen address (default `127.0.0.1:4317`).
    pub grpc_addr: SocketAddr,
    /// OTLP/HTTP listen address (default `127.0.0.1:4318`).
    pub http_addr: SocketAddr,
    /// Connections, requests in progress and request time, per listener.
    pub limits: cairn_net::Limits,
    /// Distinct hour partitions one export may write to; spans of further hours are rejected.
    pub max_hours_per_request: usize,
    /// Distinct (tenant, hour) partitions buffered before a flush starts early.
    pub max_flush_partitions: usize,
    /// Largest accepted export, after decompression, in bytes.
    pub max_message_bytes: usize,
    /// How often buffered spans are written out; bounds both the acknowledgement latency and
    /// the time until spans are visible.
    pub flush_interval: Duration,
    /// Buffered Arrow bytes that trigger a flush before the interval ends.
    pub flush_bytes: usize,
    /// Memory budget for spans not yet written; exports beyond it are refused as retryable.
    pub max_buffer_bytes: usize,
    /// Write-ahead log directory. With one, exports are acknowledged once durable there; without,
    /// once their Parquet files are committed to the object store.
    pub wal_dir: Option<PathBuf>,
    /// How long shutdown waits for buffered spans to be written. With the write-ahead log,
    /// whatever is still pending then stays in the log and is written at the next start.
    pub shutdown_timeout: Duration,
}

impl Default for CollectorConfig {
    fn default() -> Self {
        Self {
            grpc_addr: ([127, 0, 0, 1], 4317).into(),
            http_addr: ([127, 0, 0, 1], 4318).into(),
            limits: cairn_net::Limits::default(),
            max_hours_per_request: 24,
            max_flush_partitions: 256,
            max_message_bytes: 16 << 20,
            flush_interval: Duration::from_secs(1),
            flush_bytes: 64 << 20,
            max_buffer_bytes: 512 << 20,
            wal_dir: Some(PathBuf::from("./cairn-wal")),
            shutdown_timeout: Duration::from_secs(30),
        }
    }
}
