//! Tempo's answers as proto3 JSON (`tempopb`): camelCase field names, 64-bit integers as
//! strings, 32-bit ones as numbers, empty fields left out as Go's `jsonpb` leaves them out, and
//! no field that `tempo.proto` does not have (Grafana 13.2+ refuses unknown fields).

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

/// `tempopb.SearchResponse`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SearchResponse {
    pub traces: Vec<TraceSearchMetadata>,
    pub metrics: SearchMetrics,
}

/// `tempopb.TraceSearchMetadata`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TraceSearchMetadata {
    #[serde(rename = "traceID")]
    pub trace_id: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub root_service_name: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub root_trace_name: String,
    /// uint64.
    pub start_time_unix_nano: String,
    /// uint32.
    #[serde(skip_serializing_if = "is_zero")]
    pub duration_ms: u32,
    /// Deprecated: the first of `span_sets`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub span_set: Option<SpanSet>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub span_sets: Vec<SpanSet>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub service_stats: BTreeMap<String, ServiceStats>,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// `tempopb.ServiceStats`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceStats {
    pub span_count: u32,
    #[serde(skip_serializing_if = "is_zero")]
    pub error_count: u32,
}

/// `tempopb.SpanSet`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SpanSet {
    pub spans: Vec<Span>,
    pub matched: u32,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub attributes: Vec<KeyValue>,
}

/// `tempopb.Span`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Span {
    #[serde(rename = "spanID")]
    pub span_id: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// uint64.
    pub start_time_unix_nano: String,
    /// uint64.
    pub duration_nanos: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub attributes: Vec<KeyValue>,
}

/// OTLP `KeyValue`; `value` is an `AnyValue` (`{"stringValue": …}`, `{"intValue": "…"}`, …).
#[derive(Debug, Clone, Serialize)]
pub struct KeyValue {
    pub key: String,
    pub value: Value,
}

impl KeyValue {
    pub fn new(key: impl Into<String>, value: Value) -> Self {
        Self {
            key: key.into(),
            value,
        }
    }
}

/// `tempopb.SearchMetrics` (the fields Cairn knows).
#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SearchMetrics {
    #[serde(skip_serializing_if = "is_zero")]
    pub inspected_traces: u32,
    /// uint64.
    pub inspected_bytes: String,
    #[serde(skip_serializing_if = "is_zero")]
    pub completed_jobs: u32,
    #[serde(skip_serializing_if = "is_zero")]
    pub total_jobs: u32,
}

/// `tempopb.SearchTagsV2Response`.
#[derive(Debug, Serialize)]
pub struct SearchTagsV2Response {
    pub scopes: Vec<SearchTagsV2Scope>,
}

#[derive(Debug, Serialize)]
pub struct SearchTagsV2Scope {
    pub name: String,
    pub tags: Vec<String>,
}

/// `tempopb.SearchTagsResponse`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SearchTagsResponse {
    pub tag_names: Vec<String>,
}

/// `tempopb.SearchTagValuesV2Response`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SearchTagValuesV2Response {
    pub tag_values: Vec<TagValue>,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct TagValue {
    #[serde(rename = "type")]
    pub value_type: String,
    pub value: String,
}

/// `tempopb.SearchTagValuesResponse`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SearchTagValuesResponse {
    pub tag_values: Vec<String>,
}

/// `tempopb.QueryRangeResponse`.
#[derive(Debug, Serialize)]
pub struct QueryRangeResponse {
    pub series: Vec<TimeSeries>,
    pub metrics: SearchMetrics,
    pub status: &'static str,
}

/// `tempopb.TimeSeries`.
#[derive(Debug, Serialize)]
pub struct TimeSeries {
    pub labels: Vec<KeyValue>,
    pub samples: Vec<Sample>,
}

/// `tempopb.Sample`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Sample {
    /// int64.
    pub timestamp_ms: String,
    pub value: f64,
}

/// `tempopb.QueryInstantResponse`.
#[derive(Debug, Serialize)]
pub struct QueryInstantResponse {
    pub series: Vec<InstantSeries>,
    pub metrics: SearchMetrics,
    pub status: &'static str,
}

/// `tempopb.InstantSeries`.
#[derive(Debug, Serialize)]
pub struct InstantSeries {
    pub labels: Vec<KeyValue>,
    pub value: f64,
}
