//! The object-store layout, the only contract between collectors and queriers.
//!
//! ```text
//! spans/tenant=<tenant>/hour=<YYYY-MM-DDTHH>/<file>.parquet
//! payloads/tenant=<tenant>/hour=<YYYY-MM-DDTHH>/<file>.parquet
//! trace_index/tenant=<tenant>/<file>.parquet       (see crate::trace_index)
//! ```
//!
//! `<file>` is `<collector id>-<write-ahead-log segment>` ([`segment_file`]) or a UUID v7
//! ([`new_file`]) when no log is kept.
//!
//! A span lives in the hour partition of its start time (UTC); a payload in the hour of the first
//! span that referenced it when it was written, and spans at most [`PAYLOAD_REUSE_HOURS`] later
//! refer to that copy. A payload file is always committed before the
//! span file that refers to it. File names are unique
//! across collectors sharing a bucket. A file is written with one PUT, so it is either absent or
//! whole; nothing else (no manifest) has to be updated for it to become visible.

use chrono::{DateTime, NaiveDateTime, Utc};
use object_store::path::Path;

use crate::tenant::Tenant;

/// The tables kept in the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dataset {
    Spans,
    Payloads,
    /// Not hour-partitioned: see [`crate::trace_index`].
    TraceIndex,
}

impl Dataset {
    /// Top-level prefix of the dataset's files.
    pub fn prefix(self) -> &'static str {
        match self {
            Dataset::Spans => "spans",
            Dataset::Payloads => "payloads",
            Dataset::TraceIndex => "trace_index",
        }
    }
}
/// Spans refer to a stored payload for at most this many hours after the hour partition it was
/// stored in; later spans store it again. Retention keeps a payload partition this much longer
/// than span partitions, so no reference outlives its payload.
pub const PAYLOAD_REUSE_HOURS: i64 = 24;

/// Nanoseconds in one partition.
pub const HOUR_NANOS: i64 = 3_600_000_000_000;
const HOUR_FORMAT: &str = "%Y-%m-%dT%H";

/// The hour partition (hours since the Unix epoch) of a timestamp in nanoseconds.
pub fn hour_of(unix_nanos: i64) -> i64 {
    unix_nanos.div_euclid(HOUR_NANOS)
}

/// `YYYY-MM-DDTHH` of an hour partition.
pub fn format_hour(hour: i64) -> String {
    DateTime::<Utc>::from_timestamp(hour * 3600, 0)
        .unwrap_or_default()
        .format(HOUR_FORMAT)
        .to_string()
}

/// Inverse of [`format_hour`].
pub fn parse_hour(text: &str) -> Option<i64> {
    let t = NaiveDateTime::parse_from_str(&format!("{text}:00"), "%Y-%m-%dT%H:%M").ok()?;
    Some(t.and_utc().timestamp().div_euclid(3600))
}

/// `<dataset>/tenant=<t>/`
pub fn tenant_prefix(dataset: Dataset, tenant: &Tenant) -> Path {
    Path::from(format!("{}/tenant={tenant}", dataset.prefix()))
}

/// `<dataset>/tenant=<t>/hour=<h>/`
pub fn hour_prefix(dataset: Dataset, tenant: &Tenant, hour: i64) -> Path {
    Path::from(format!(
        "{}/tenant={tenant}/hour={}",
        dataset.prefix(),
        format_hour(hour)
    ))
}

/// The hour of a partition directory name such as `hour=2026-11-28T03`.
pub fn parse_hour_segment(segment: &str) -> Option<i64> {
    parse_hour(segment.strip_prefix("hour=")?)
}

/// A new, unique file path in the partition.
pub fn new_file(dataset: Dataset, tenant: &Tenant, hour: i64) -> Path {
    hour_prefix(dataset, tenant, hour).join(format!("{}.parquet", uuid::Uuid::now_v7()))
}

/// The file of one write-ahead-log segment's spans (or payloads) in a partition. The name is a
/// function of the collector and the segment, so writing the segment again after a crash
/// replaces the same files instead of adding copies.
pub fn segment_file(
    dataset: Dataset,
    tenant: &Tenant,
    hour: i64,
    collector: &str,
    segment: u64,
) -> Path {
    hour_prefix(dataset, tenant, hour).join(format!("{collector}-{segment:020}.parquet"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hours_round_trip() {
        let t = Tenant::new("acme").unwrap();
        let nanos = 1_764_290_000_000_000_000i64; // 2025-11-28T00:33:20Z
        let h = hour_of(nanos);
        assert_eq!(format_hour(h), "2025-11-28T00");
        assert_eq!(parse_hour("2025-11-28T00"), Some(h));
        assert_eq!(parse_hour_segment("hour=2025-11-28T00"), Some(h));
        assert_eq!(parse_hour_segment("hours=2025"), None);
        assert_eq!(
            hour_prefix(Dataset::Spans, &t, h).as_ref(),
            "spans/tenant=acme/hour=2025-11-28T00"
        );
        assert!(new_file(Dataset::Payloads, &t, h)
            .as_ref()
            .starts_with("payloads/tenant=acme/hour=2025-11-28T00/"));
        assert_eq!(hour_of(-1), -1);
    }
}
