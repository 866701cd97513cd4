//! The trace index: which hour partitions hold each trace's spans, so that a lookup by trace id
//! reads the few partitions that hold it instead of every hour the tenant has.
//!
//! ```text
//! trace_index/tenant=<tenant>/<file>.parquet      one row per (trace id, hour)
//! trace_index/tenant=<tenant>/complete.json       the index covers every span of the tenant
//! ```
//!
//! Each row is (trace id, hour, first start, last end, linked from, payload hours): the trace's
//! own spans in that hour when `linked_from` is null, else spans of the trace `linked_from` in
//! that hour that link to it; and the payload partitions its spans there refer to, when known.
//!
//! One flat directory per tenant, an LSM tree of small sorted files: a collector writes one file
//! per span file it writes, right after it ([`delta_path`]), and compaction merges them into
//! files sorted by trace id with a bloom filter on it, using the same compaction records as the
//! data partitions, so a reader sees each entry once while files are replaced. An entry is a
//! fact that never changes once its span file exists ("trace T has spans in hour H, starting
//! no earlier than S and ending no later than E"): compacting or re-resolving span files leaves it
//! true, writing it twice changes nothing, and merging keeps the earliest start and the latest
//! end (of the spans the entry stands for). Entries of an hour past retention are dropped from the index before that hour's spans.
//!
//! The index is used for a tenant only once [`marker`] exists: a collector writes it before the
//! first span of a new tenant, and `cairn reindex` after indexing a tenant written before the
//! index existed. Without it, readers list every hour as before.

use std::sync::{Arc, LazyLock};

use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use object_store::path::Path;

use crate::columns::{col, timestamp_type};
use crate::layout::{format_hour, tenant_prefix, Dataset};
use crate::tenant::Tenant;

/// Column names of index files.
pub mod column {
    pub use crate::columns::col::TRACE_ID;
    /// The hour partition (hours since the Unix epoch) holding some of the trace's spans.
    pub const HOUR: &str = "hour";
    /// The earliest start of the trace's spans in that partition.
    pub const FIRST_START: &str = "first_start";
    /// The latest end of the trace's spans in that partition.
    pub const LAST_END: &str = "last_end";
    /// Null for an entry of the trace's own spans. Otherwise the entry says that spans of this
    /// other trace, in that partition, link to the trace (a retry, a hand-off, a resumption):
    /// how the lineage graph finds the runs that point at a run without scanning the tenant.
    pub const LINKED_FROM: &str = "linked_from";
    /// The hour partitions of the payloads that the trace's spans in that partition refer to
    /// (payloads are stored once and reused for 24 hours, so these may be earlier hours): a
    /// lookup of the trace's payloads reads only these. Null when not known (entries written by
    /// `cairn reindex`, by a collector before this column, or of link entries); merging entries
    /// unites their hours, and an unknown one makes the merged entry unknown.
    pub const PAYLOAD_HOURS: &str = "payload_hours";
}

static SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    Arc::new(Schema::new(vec![
        Field::new(col::TRACE_ID, DataType::Utf8, false),
        Field::new(column::HOUR, DataType::Int64, false),
        Field::new(column::FIRST_START, timestamp_type(), false),
        Field::new(column::LAST_END, timestamp_type(), false),
        Field::new(column::LINKED_FROM, DataType::Utf8, true),
        Field::new(column::PAYLOAD_HOURS, hours_type(), true),
    ]))
});

/// The type of [`column::PAYLOAD_HOURS`]: a list of hours.
pub fn hours_type() -> DataType {
    DataType::List(Arc::new(Field::new("item", DataType::Int64, true)))
}

/// The Arrow schema of index files.
pub fn schema() -> SchemaRef {
    SCHEMA.clone()
}

/// `trace_index/tenant=<t>/`, the tenant's index directory.
pub fn dir(tenant: &Tenant) -> Path {
    tenant_prefix(Dataset::TraceIndex, tenant)
}

/// The object whose presence says the tenant's index is complete.
pub fn marker(tenant: &Tenant) -> Path {
    dir(tenant).join("complete.json")
}

/// The index file of `tenant` written beside the span file `span_file` of `hour`: unique in
/// the directory, and the same when the span file is written again (a write-ahead-log segment
/// replayed after a crash), so the rewrite replaces it.
pub fn delta_path(tenant: &Tenant, hour: i64, span_file: &Path) -> Path {
    let name = format!(
        "{}-{}",
        format_hour(hour),
        span_file.filename().unwrap_or_default()
    );
    dir(tenant).join(name.as_str())
}

/// The name of the index file `cairn reindex` writes for one hour partition.
pub fn reindex_name(hour: i64) -> String {
    format!("reindex-{}.parquet", format_hour(hour))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        let t = Tenant::new("acme").unwrap();
        assert_eq!(dir(&t).as_ref(), "trace_index/tenant=acme");
        assert_eq!(marker(&t).as_ref(), "trace_index/tenant=acme/complete.json");
        assert_eq!(
            delta_path(
                &t,
                0,
                &Path::from("spans/tenant=acme/hour=1970-01-01T00/c-00000000000000000001.parquet")
            )
            .as_ref(),
            "trace_index/tenant=acme/1970-01-01T00-c-00000000000000000001.parquet"
        );
        assert_eq!(reindex_name(1), "reindex-1970-01-01T01.parquet");
        assert!(!crate::compaction::is_manifest("complete.json"));
    }
}
