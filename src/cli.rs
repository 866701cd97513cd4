//! Command line: every flag is also an environment variable (`CAIRN_*`) and, except the few
//! that only make sense per invocation, a key of the optional TOML config file.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "cairn",
    version,
    about = "Agent trail observability: OTLP in, Parquet in object storage, SQL out"
)]
pub struct Cli {
    /// TOML config file; flags and environment variables override its keys.
    #[arg(long, env = "CAIRN_CONFIG", global = true)]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run everything in one process: OTLP receivers, writer and query API.
    Serve(ServeArgs),
    /// Run only the OTLP receivers and writer.
    Collector(ServeArgs),
    /// Run only the query API.
    Query(ServeArgs),
    /// Run only compaction and retention (one per store; `serve` runs them itself).
    Compact(ServeArgs),
    /// Run one SQL query against the store and print the result.
    Sql(SqlArgs),
}

/// Settings shared by every command.
#[derive(Debug, Args, Clone, Default)]
pub struct StoreArgs {
    /// Where data lives: a directory, file:///path, s3://bucket/prefix (AWS_* variables
    /// configure S3) or memory:// [default: ./cairn-data]
    #[arg(long, env = "CAIRN_STORE")]
    pub store: Option<String>,
    /// Log filter, e.g. `info` or `cairn_collector=debug` [default: info]
    #[arg(long, env = "CAIRN_LOG")]
    pub log: Option<String>,
}

#[derive(Debug, Args, Clone, Default)]
pub struct ServeArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// OTLP/gRPC listen address; use 0.0.0.0:4317 to accept other hosts [default: 127.0.0.1:4317]
    #[arg(long, env = "CAIRN_OTLP_GRPC_ADDR")]
    pub otlp_grpc_addr: Option<String>,
    /// OTLP/HTTP listen address (also serves /metrics) [default: 127.0.0.1:4318]
    #[arg(long, env = "CAIRN_OTLP_HTTP_ADDR")]
    pub otlp_http_addr: Option<String>,
    /// Query API listen address [default: 127.0.0.1:3200]
    #[arg(long, env = "CAIRN_HTTP_ADDR")]
    pub http_addr: Option<String>,
    /// Where `cairn compact` serves /metrics (the other roles serve it on their own ports)
    /// [default: 127.0.0.1:9464]
    #[arg(long, env = "CAIRN_METRICS_ADDR")]
    pub metrics_addr: Option<String>,
    /// Connections each listener holds open at once; further ones wait [default: 1024]
    #[arg(long, env = "CAIRN_MAX_CONNECTIONS")]
    pub max_connections: Option<String>,
    /// Requests in progress at once per listener; further ones are refused as retryable
    /// [default: 256]
    #[arg(long, env = "CAIRN_MAX_CONCURRENT_REQUESTS")]
    pub max_concurrent_requests: Option<String>,
    /// Longest an OTLP export may take, from its headers to its answer [default: 30s]
    #[arg(long, env = "CAIRN_REQUEST_TIMEOUT")]
    pub request_timeout: Option<String>,
    /// Distinct hours one export may hold spans of; spans of further hours are rejected
    /// (partial success) [default: 24]
    #[arg(long, env = "CAIRN_MAX_HOURS_PER_REQUEST")]
    pub max_hours_per_request: Option<String>,
    /// Distinct (tenant, hour) partitions buffered before a write starts early [default: 256]
    #[arg(long, env = "CAIRN_MAX_FLUSH_PARTITIONS")]
    pub max_flush_partitions: Option<String>,
    /// Largest accepted export after decompression, e.g. 16MiB [default: 16MiB]
    #[arg(long, env = "CAIRN_MAX_MESSAGE_SIZE")]
    pub max_message_size: Option<String>,
    /// How often buffered spans are written; exports are acknowledged once written [default: 1s]
    #[arg(long, env = "CAIRN_FLUSH_INTERVAL")]
    pub flush_interval: Option<String>,
    /// Buffered bytes that trigger an early write [default: 64MiB]
    #[arg(long, env = "CAIRN_FLUSH_SIZE")]
    pub flush_size: Option<String>,
    /// Memory for spans not yet written; beyond it exports are refused as retryable [default: 512MiB]
    #[arg(long, env = "CAIRN_MAX_BUFFER_SIZE")]
    pub max_buffer_size: Option<String>,
    /// Memory all running queries may use together, a quarter of it kept for cached Parquet
    /// metadata [default: 2GiB]
    #[arg(long, env = "CAIRN_QUERY_MEMORY")]
    pub query_memory: Option<String>,
    /// Wall time a query may run; then it is cancelled and answered 504 [default: 60s]
    #[arg(long, env = "CAIRN_QUERY_TIMEOUT")]
    pub query_timeout: Option<String>,
    /// Directory queries spill to when out of memory [default: cairn-spill in the OS temporary
    /// directory]
    #[arg(long, env = "CAIRN_SPILL_DIR")]
    pub spill_dir: Option<String>,
    /// Disk all running queries may spill to together; beyond it a query fails [default: 10GiB]
    #[arg(long, env = "CAIRN_SPILL_SIZE")]
    pub spill_size: Option<String>,
    /// When an export is acknowledged: `wal` once durable in the local write-ahead log (spans
    /// reach the object store at the next flush), `stored` once its Parquet files are committed
    /// to the object store (no log; each export waits for a flush) [default: wal]
    #[arg(long, env = "CAIRN_ACK")]
    pub ack: Option<String>,
    /// Write-ahead log directory; keep it on a persistent volume [default: ./cairn-wal]
    #[arg(long, env = "CAIRN_WAL_DIR")]
    pub wal_dir: Option<String>,
    /// How long shutdown waits for buffered spans to be written; with the log, the rest is
    /// written at the next start [default: 30s]
    #[arg(long, env = "CAIRN_SHUTDOWN_TIMEOUT")]
    pub shutdown_timeout: Option<String>,
    /// TOML price table overlaid on the bundled one, for the derived cost of model calls.
    #[arg(long, env = "CAIRN_PRICES")]
    pub prices: Option<PathBuf>,
    /// Send Cairn's own traces (exports, flushes, queries, compaction passes) to this OTLP/gRPC
    /// endpoint, e.g. http://127.0.0.1:4317 for Cairn itself (tenant `cairn-self`)
    #[arg(long, env = "CAIRN_SELF_TRACES")]
    pub self_traces: Option<String>,
    /// Whether `serve` compacts and expires files: on or off [default: on]
    #[arg(long, env = "CAIRN_COMPACTION")]
    pub compaction: Option<String>,
    /// Time between compaction passes [default: 1m]
    #[arg(long, env = "CAIRN_COMPACTION_INTERVAL")]
    pub compaction_interval: Option<String>,
    /// Size compaction merges small files up to [default: 128MiB]
    #[arg(long, env = "CAIRN_COMPACTION_TARGET_SIZE")]
    pub compaction_target_size: Option<String>,
    /// Small files the current hour's partition needs before they are merged [default: 16]
    #[arg(long, env = "CAIRN_COMPACTION_MIN_FILES")]
    pub compaction_min_files: Option<String>,
    /// How long replaced files stay readable after a merge; longer than any query [default: 5m]
    #[arg(long, env = "CAIRN_COMPACTION_GRACE")]
    pub compaction_grace: Option<String>,
    /// Memory one merge may use before spilling to disk [default: 512MiB]
    #[arg(long, env = "CAIRN_COMPACTION_MEMORY")]
    pub compaction_memory: Option<String>,
    /// How long data is kept, e.g. 30d; unset keeps it for ever.
    #[arg(long, env = "CAIRN_RETENTION")]
    pub retention: Option<String>,
    /// Per-tenant retention overriding --retention, e.g. `acme=7d,globex=90d`.
    #[arg(long, env = "CAIRN_TENANT_RETENTION")]
    pub tenant_retention: Option<String>,
    /// Tools that always need a human approval, whatever the policy in force says, e.g.
    /// `delete_*,issue_refund` (`*` is a wildcard); used by bypass detection.
    #[arg(long, env = "CAIRN_APPROVAL_REQUIRED")]
    pub approval_required: Option<String>,
    /// Write the bound addresses as JSON to this file once listening (for scripts and tests).
    #[arg(long, env = "CAIRN_READY_FILE")]
    pub ready_file: Option<PathBuf>,
}

#[derive(Debug, Args, Clone)]
pub struct SqlArgs {
    /// The query (read-only: SELECT, WITH, EXPLAIN, SHOW, DESCRIBE).
    pub sql: String,
    #[command(flatten)]
    pub store: StoreArgs,
    /// Output: table, json, csv or arrow (an Arrow IPC stream).
    #[arg(long, env = "CAIRN_FORMAT", default_value = "table")]
    pub format: String,
    /// Tenant whose rows to query.
    #[arg(long, env = "CAIRN_TENANT", default_value = "default")]
    pub tenant: String,
}
