//! Self-metrics of the collector and the compactor, served as Prometheus text on `GET /metrics`
//! of the OTLP/HTTP port.

use std::sync::LazyLock;

use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Reason {
    pub reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DatasetLabel {
    pub dataset: &'static str,
}

impl DatasetLabel {
    pub fn of(dataset: cairn_schema::layout::Dataset) -> Self {
        Self {
            dataset: dataset.prefix(),
        }
    }
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
    pub compaction_merges: Family<DatasetLabel, Counter>,
    pub compaction_files_merged: Family<DatasetLabel, Counter>,
    pub compaction_files_deleted: Family<DatasetLabel, Counter>,
    pub compaction_failures: Counter,
    pub retention_partitions_deleted: Family<DatasetLabel, Counter>,
    pub partition_files: Histogram,
    pub store_files: Family<DatasetLabel, Gauge>,
    registry: Registry,
}

impl Metrics {
    fn new() -> Self {
        let mut registry = Registry::with_prefix("cairn");
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
            upload_seconds: Histogram::new(exponential_buckets(0.001, 2.0, 16)),
            upload_failures: Counter::default(),
            flushes: Counter::default(),
            compaction_merges: Family::default(),
            compaction_files_merged: Family::default(),
            compaction_files_deleted: Family::default(),
            compaction_failures: Counter::default(),
            retention_partitions_deleted: Family::default(),
            partition_files: Histogram::new(exponential_buckets(1.0, 2.0, 14)),
            store_files: Family::default(),
            registry: Registry::default(),
        };
        registry.register(
            "spans_received",
            "Spans received in exports",
            m.spans_received.clone(),
        );
        registry.register(
            "spans_accepted",
            "Spans accepted for storage",
            m.spans_accepted.clone(),
        );
        registry.register(
            "spans_rejected",
            "Invalid spans rejected (partial success)",
            m.spans_rejected.clone(),
        );
        registry.register(
            "exports_refused",
            "Exports refused, by reason",
            m.exports_refused.clone(),
        );
        registry.register(
            "wal_bytes",
            "Bytes appended to the write-ahead log",
            m.wal_bytes.clone(),
        );
        registry.register(
            "wal_syncs",
            "Write-ahead log syncs (group commits)",
            m.wal_syncs.clone(),
        );
        registry.register(
            "wal_segments_pending",
            "Sealed write-ahead log segments not yet written",
            m.wal_segments_pending.clone(),
        );
        registry.register(
            "files_written",
            "Parquet files committed, by dataset",
            m.files_written.clone(),
        );
        registry.register(
            "bytes_written",
            "Parquet bytes committed, by dataset",
            m.bytes_written.clone(),
        );
        registry.register(
            "upload_seconds",
            "Latency of one Parquet upload",
            m.upload_seconds.clone(),
        );
        registry.register(
            "upload_failures",
            "Parquet uploads that failed (and were retried or refused)",
            m.upload_failures.clone(),
        );
        registry.register("flushes", "Flushes completed", m.flushes.clone());
        registry.register(
            "compaction_merges",
            "Merges committed by compaction, by dataset",
            m.compaction_merges.clone(),
        );
        registry.register(
            "compaction_files_merged",
            "Files merged into larger ones, by dataset",
            m.compaction_files_merged.clone(),
        );
        registry.register(
            "compaction_files_deleted",
            "Superseded or abandoned files deleted, by dataset",
            m.compaction_files_deleted.clone(),
        );
        registry.register(
            "compaction_failures",
            "Partitions whose compaction failed (retried at the next pass)",
            m.compaction_failures.clone(),
        );
        registry.register(
            "retention_partitions_deleted",
            "Hour partitions deleted by retention, by dataset",
            m.retention_partitions_deleted.clone(),
        );
        registry.register(
            "partition_files",
            "Readable files per partition, observed at each compaction pass",
            m.partition_files.clone(),
        );
        registry.register(
            "store_files",
            "Readable files in the store at the last compaction pass, by dataset",
            m.store_files.clone(),
        );
        Self { registry, ..m }
    }

    /// The metrics in the Prometheus text format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        encode(&mut out, &self.registry).expect("writing to a string");
        out
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
