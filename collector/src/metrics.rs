//! The collector's metrics (exports, spans, the write-ahead log, uploads), registered in the
//! process's registry (`cairn-telemetry`) when first used and served on `GET /metrics` of the
//! OTLP/HTTP port.

use std::sync::LazyLock;

use cairn_telemetry::{register, seconds_histogram, Counter, EncodeLabelSet, Family, Gauge};
use prometheus_client::metrics::histogram::Histogram;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Reason {
    pub reason: &'static str,
}

pub use cairn_telemetry::DatasetLabel;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RuleLabel {
    pub rule: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TenantLabel {
    pub tenant: String,
}

/// Every metric the collector keeps.
pub struct Metrics {
    pub spans_received: Counter,
    pub spans_accepted: Counter,
    pub spans_rejected: Counter,
    pub exports_refused: Family<Reason, Counter>,
    pub wal_bytes: Counter,
    pub wal_syncs: Counter,
    pub wal_segments_pending: Gauge,
    pub files_written: Family<DatasetLabel, Counter>,
    pub bytes_written: Family<DatasetLabel, Counter>,
    pub upload_seconds: Histogram,
    pub upload_failures: Counter,
    pub flushes: Counter,
    pub redactions: Family<RuleLabel, Counter>,
    pub tenant_storage_bytes: Family<TenantLabel, Gauge>,
    pub buffer_bytes: Gauge,
}

impl Metrics {
    fn new() -> Self {
        let m = Self {
            spans_received: Counter::default(),
            spans_accepted: Counter::default(),
            spans_rejected: Counter::default(),
            exports_refused: Family::default(),
            wal_bytes: Counter::default(),
            wal_syncs: Counter::default(),
            wal_segments_pending: Gauge::default(),
            files_written: Family::default(),
            bytes_written: Family::default(),
            upload_seconds: seconds_histogram(),
            upload_failures: Counter::default(),
            flushes: Counter::default(),
            redactions: Family::default(),
            tenant_storage_bytes: Family::default(),
            buffer_bytes: Gauge::default(),
        };
        register(
            "spans_received",
            "Spans received in exports",
            m.spans_received.clone(),
        );
        register(
            "spans_accepted",
            "Spans accepted for storage",
            m.spans_accepted.clone(),
        );
        register(
            "spans_rejected",
            "Invalid spans rejected (partial success)",
            m.spans_rejected.clone(),
        );
        register(
            "exports_refused",
            "Exports refused, by reason",
            m.exports_refused.clone(),
        );
        register(
            "wal_bytes",
            "Bytes appended to the write-ahead log",
            m.wal_bytes.clone(),
        );
        register(
            "wal_syncs",
            "Write-ahead log syncs (group commits)",
            m.wal_syncs.clone(),
        );
        register(
            "wal_segments_pending",
            "Sealed write-ahead log segments not yet written",
            m.wal_segments_pending.clone(),
        );
        register(
            "files_written",
            "Parquet files committed, by dataset",
            m.files_written.clone(),
        );
        register(
            "bytes_written",
            "Parquet bytes committed, by dataset",
            m.bytes_written.clone(),
        );
        register(
            "upload_seconds",
            "Latency of one Parquet upload",
            m.upload_seconds.clone(),
        );
        register(
            "upload_failures",
            "Parquet uploads that failed (and were retried or refused)",
            m.upload_failures.clone(),
        );
        register("flushes", "Flushes completed", m.flushes.clone());
        register(
            "redactions",
            "Values redacted at ingest, by rule",
            m.redactions.clone(),
        );
        register(
            "tenant_storage_bytes",
            "Bytes a tenant with a storage quota keeps in the store (last listing plus exports accepted since)",
            m.tenant_storage_bytes.clone(),
        );
        register(
            "buffer_bytes",
            "Bytes of the ingest memory budget (--max-buffer-size) held now: requests being read and decoded, spans not yet written and the copies their flush makes",
            m.buffer_bytes.clone(),
        );
        m
    }
}

static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);

/// The process's collector metrics.
pub fn metrics() -> &'static Metrics {
    &METRICS
}

/// Counts a refused export.
pub fn refused(reason: &'static str) {
    metrics()
        .exports_refused
        .get_or_create(&Reason { reason })
        .inc();
}
