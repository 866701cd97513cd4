//! Collector settings: the `--flag`, `CAIRN_*` variable and config file key of each, with its
//! only default.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use cairn_config::parse;

/// What the collector listens on, how it acknowledges and how it batches.
#[derive(Debug, Clone, clap::Args)]
pub struct CollectorConfig {
    /// OTLP/gRPC listen address; use 0.0.0.0:4317 to accept other hosts.
    #[arg(long, env = "CAIRN_OTLP_GRPC_ADDR", default_value = "127.0.0.1:4317")]
    pub otlp_grpc_addr: SocketAddr,
    /// OTLP/HTTP listen address (also serves /metrics).
    #[arg(long, env = "CAIRN_OTLP_HTTP_ADDR", default_value = "127.0.0.1:4318")]
    pub otlp_http_addr: SocketAddr,
    /// Distinct hours one export may hold spans of; spans of further hours are rejected
    /// (partial success).
    #[arg(long, env = "CAIRN_MAX_HOURS_PER_REQUEST", default_value = "24", value_parser = parse::positive)]
    pub max_hours_per_request: usize,
    /// Distinct (tenant, hour) partitions buffered before a write starts early.
    #[arg(long, env = "CAIRN_MAX_FLUSH_PARTITIONS", default_value = "256", value_parser = parse::positive)]
    pub max_flush_partitions: usize,
    /// Largest accepted export after decompression.
    #[arg(long, env = "CAIRN_MAX_MESSAGE_SIZE", default_value = "16MiB", value_parser = parse::size)]
    pub max_message_size: usize,
    /// How often buffered spans are written; bounds both the acknowledgement latency and the
    /// time until spans are visible.
    #[arg(long, env = "CAIRN_FLUSH_INTERVAL", default_value = "1s", value_parser = parse::span)]
    pub flush_interval: Duration,
    /// Buffered bytes that trigger an early write.
    #[arg(long, env = "CAIRN_FLUSH_SIZE", default_value = "64MiB", value_parser = parse::size)]
    pub flush_size: usize,
    /// Memory for spans not yet written; beyond it exports are refused as retryable.
    #[arg(long, env = "CAIRN_MAX_BUFFER_SIZE", default_value = "512MiB", value_parser = parse::size)]
    pub max_buffer_size: usize,
    /// When an export is acknowledged: `wal` once durable in the local write-ahead log (spans
    /// reach the object store at the next flush), `stored` once its Parquet files are committed
    /// to the object store (no log; each export waits for a flush).
    #[arg(long, env = "CAIRN_ACK", value_enum, default_value = "wal")]
    pub ack: Ack,
    /// Write-ahead log directory (with `--ack wal`); keep it on a persistent volume.
    #[arg(long, env = "CAIRN_WAL_DIR", default_value = "./cairn-wal")]
    pub wal_dir: PathBuf,
    /// How long shutdown waits for buffered spans to be written; with the log, the rest is
    /// written at the next start.
    #[arg(long, env = "CAIRN_SHUTDOWN_TIMEOUT", default_value = "30s", value_parser = parse::span)]
    pub shutdown_timeout: Duration,
    /// TOML file of redaction rules (`[[rule]]` with a `preset`, key globs and/or value regexes,
    /// `action = "mask"|"hash"`) applied to every export before it is logged or stored;
    /// re-read on SIGHUP. No redaction without it.
    #[arg(long, env = "CAIRN_REDACTION_RULES")]
    pub redaction_rules: Option<PathBuf>,
    /// File of secret bytes (at least 16) keying the hashes of `action = "hash"` rules; without
    /// it they are plain BLAKE3, which anyone can recompute for a guessed value.
    #[arg(long, env = "CAIRN_REDACTION_KEY")]
    pub redaction_key: Option<PathBuf>,
    /// TOML file of per-tenant limits (`[tenant.<name>]` with `spans_per_second`,
    /// `bytes_per_second`, `storage_quota`, `max_concurrent_queries`) overriding the
    /// `--tenant-*` defaults; re-read on SIGHUP by the collector and the query API.
    #[arg(long, env = "CAIRN_TENANT_LIMITS")]
    pub tenant_limits: Option<PathBuf>,
    /// Spans per second each tenant may export (token bucket, one second of burst); beyond it
    /// exports are refused as retryable. No limit by default.
    #[arg(long, env = "CAIRN_TENANT_SPANS_PER_SECOND", value_parser = parse::positive)]
    pub tenant_spans_per_second: Option<usize>,
    /// Request bytes per second each tenant may export, like `--tenant-spans-per-second`.
    #[arg(long, env = "CAIRN_TENANT_BYTES_PER_SECOND", value_parser = parse::size)]
    pub tenant_bytes_per_second: Option<usize>,
    /// Bytes each tenant may keep in the store; once reached its exports are refused (not
    /// retryable) until data expires or the quota is raised. No quota by default.
    #[arg(long, env = "CAIRN_TENANT_STORAGE_QUOTA", value_parser = parse::size)]
    pub tenant_storage_quota: Option<usize>,
    /// How often the store is listed for the bytes of each tenant with a storage quota; between
    /// listings the bytes of accepted exports are added.
    #[arg(long, env = "CAIRN_TENANT_USAGE_INTERVAL", default_value = "60s", value_parser = parse::span)]
    pub tenant_usage_interval: Duration,
}

/// When an export is acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Ack {
    /// Once durable in the write-ahead log.
    Wal,
    /// Once its Parquet files are committed to the object store.
    Stored,
}

impl CollectorConfig {
    /// The default limits of every tenant (before the `--tenant-limits` file).
    pub fn tenant_defaults(&self) -> cairn_config::tenant_limits::TenantLimits {
        cairn_config::tenant_limits::TenantLimits {
            spans_per_second: self.tenant_spans_per_second.map(|n| n as u64),
            bytes_per_second: self.tenant_bytes_per_second.map(|n| n as u64),
            storage_quota: self.tenant_storage_quota.map(|n| n as u64),
            max_concurrent_queries: None,
        }
    }

    /// The write-ahead log directory, or none when exports are acknowledged once stored.
    pub fn log_dir(&self) -> Option<&Path> {
        (self.ack == Ack::Wal).then_some(self.wal_dir.as_path())
    }
}

impl Default for CollectorConfig {
    fn default() -> Self {
        cairn_config::defaults()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults() {
        let c = CollectorConfig::default();
        assert_eq!(c.otlp_grpc_addr.port(), 4317);
        assert_eq!(c.max_message_size, 16 << 20);
        assert_eq!(c.flush_interval, Duration::from_secs(1));
        assert_eq!(c.log_dir(), Some(Path::new("./cairn-wal")));
        assert!(c.redaction_rules.is_none() && c.tenant_limits.is_none());
        assert_eq!(c.tenant_defaults(), Default::default());
        let stored = CollectorConfig {
            ack: Ack::Stored,
            ..c
        };
        assert_eq!(stored.log_dir(), None);
    }
}
