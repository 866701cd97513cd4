//! The compactor's metrics (merges, deletions, retention, files per partition), registered in
//! the process's registry (`cairn-telemetry`) when first used.

use std::sync::LazyLock;

use cairn_schema::layout::Dataset;
use cairn_telemetry::{register, Counter, DatasetLabel, Family, Gauge};
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};

/// Every metric the compactor keeps.
pub struct Metrics {
    pub merges: Family<DatasetLabel, Counter>,
    pub files_merged: Family<DatasetLabel, Counter>,
    pub files_deleted: Family<DatasetLabel, Counter>,
    pub failures: Counter,
    pub retention_partitions_deleted: Family<DatasetLabel, Counter>,
    pub partition_files: Histogram,
    pub store_files: Family<DatasetLabel, Gauge>,
}

impl Metrics {
    fn new() -> Self {
        let m = Self {
            merges: Family::default(),
            files_merged: Family::default(),
            files_deleted: Family::default(),
            failures: Counter::default(),
            retention_partitions_deleted: Family::default(),
            partition_files: Histogram::new(exponential_buckets(1.0, 2.0, 14)),
            store_files: Family::default(),
        };
        register(
            "compaction_merges",
            "Merges committed by compaction, by dataset",
            m.merges.clone(),
        );
        register(
            "compaction_files_merged",
            "Files merged into larger ones, by dataset",
            m.files_merged.clone(),
        );
        register(
            "compaction_files_deleted",
            "Superseded or abandoned files deleted, by dataset",
            m.files_deleted.clone(),
        );
        register(
            "compaction_failures",
            "Partitions whose compaction failed (retried at the next pass)",
            m.failures.clone(),
        );
        register(
            "retention_partitions_deleted",
            "Hour partitions deleted by retention, by dataset",
            m.retention_partitions_deleted.clone(),
        );
        register(
            "partition_files",
            "Readable files per partition, observed at each compaction pass",
            m.partition_files.clone(),
        );
        register(
            "store_files",
            "Readable files in the store at the last compaction pass, by dataset",
            m.store_files.clone(),
        );
        m
    }
}

static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);

/// The process's compactor metrics.
pub fn metrics() -> &'static Metrics {
    &METRICS
}

/// The metric label of `dataset`.
pub fn label(dataset: Dataset) -> DatasetLabel {
    DatasetLabel {
        dataset: dataset.prefix(),
    }
}
