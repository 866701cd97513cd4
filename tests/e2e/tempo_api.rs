//! The Tempo API under `/tempo`, checked the way Grafana's Tempo data source reads it: the
//! requests it sends (its parameters and headers), the v2 trace as a protobuf
//! `TraceByIDResponse` (not a bare `TracesData`), JSON parsed as strictly as Go's `jsonpb` (no
//! unknown field, tempopb's names) and 64-bit numbers as strings, ids that link search rows to
//! traces, errors as plain text, and every endpoint scoped to the tenant of `X-Scope-OrgID`.
//!
//! The data is `tests/fixtures/tempo/agents.otlp.json` (its README lists the spans); the TraceQL
//! suite (`traceql.rs`) shares the fixture and the helpers here.

use std::collections::{BTreeMap, BTreeSet};

use opentelemetry_proto::tonic::common::v1::any_value::Value as Any;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, TracesData};
use prost::Message;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::harness::{client, Cairn};
use tempopb::*;

// ---------------------------------------------------------------------------------------------
// The fixture and the requests.

/// Trace ids of the fixture.
pub const TRACE_A: &str = "a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a1";
pub const TRACE_B: &str = "b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b2";
pub const TRACE_C: &str = "c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c3";
pub const TRACE_D: &str = "00000000000000000000000000d0d0d4";
/// Spans in the fixture.
pub const SPANS: i64 = 12;

/// A Cairn holding the fixture, sent `base` seconds (a whole minute about 20 minutes ago) plus
/// each span's offset.
pub struct Tempo {
    pub cairn: Cairn,
    pub base: i64,
}

/// An answer: status, content type and body.
pub struct Reply {
    pub status: u16,
    pub content_type: String,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as `T`, which must be a 200 whose JSON follows proto3's rules (see
    /// [`check_proto3_json`]) and has only `T`'s fields.
    pub fn strict<T: DeserializeOwned>(&self, what: &str) -> T {
        assert_eq!(self.status, 200, "{what}: {}", self.text());
        assert!(
            self.content_type.starts_with("application/json"),
            "{what}: content type {:?}",
            self.content_type
        );
        let value: Value = serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("{what}: not JSON ({e}): {}", self.text()));
        check_proto3_json(&value, what);
        serde_json::from_value(value)
            .unwrap_or_else(|e| panic!("{what}: not tempopb's shape ({e}): {}", self.text()))
    }

    /// Asserts a plain-text error with `status`; returns its message.
    pub fn plain_error(&self, status: u16, what: &str) -> String {
        assert_eq!(self.status, status, "{what}: {}", self.text());
        assert!(
            self.content_type.starts_with("text/plain"),
            "{what}: an error must be plain text, got {:?}: {}",
            self.content_type,
            self.text()
        );
        let text = self.text();
        assert!(!text.trim().is_empty(), "{what}: empty error message");
        text
    }
}

impl Tempo {
    /// Starts Cairn and sends the fixture as `tenant` (the default tenant if `None`).
    pub async fn start(tenant: Option<&str>) -> Self {
        let cairn = Cairn::start(&[]);
        let now = chrono::Utc::now().timestamp();
        let base = now - now.rem_euclid(60) - 20 * 60;
        let tempo = Self { cairn, base };
        tempo.send(tenant).await;
        tempo
    }

    /// Sends the fixture as `tenant` and waits until its spans are queryable.
    pub async fn send(&self, tenant: Option<&str>) {
        let mut req = client()
            .post(format!("http://{}/v1/traces", self.cairn.otlp_http))
            .header("content-type", "application/json")
            .body(fixture(self.base).to_string());
        if let Some(t) = tenant {
            req = req.header("X-Scope-OrgID", t);
        }
        let resp = req.send().await.expect("send fixture");
        assert_eq!(resp.status(), 200, "{:?}", resp.text().await);
        let seen = self.cairn.wait_for_count(tenant, "spans", SPANS).await;
        assert_eq!(seen, SPANS, "fixture spans stored");
    }

    /// `GET /tempo{path}` with query `params` as `tenant`, with `Accept: accept` if given.
    /// `path` is sent as written (already percent-encoded).
    pub async fn get(
        &self,
        tenant: Option<&str>,
        path: &str,
        params: &[(&str, String)],
        accept: Option<&str>,
    ) -> Reply {
        let mut req = client()
            .get(format!("http://{}/tempo{path}", self.cairn.http))
            .query(params);
        if let Some(t) = tenant {
            req = req.header("X-Scope-OrgID", t);
        }
        if let Some(a) = accept {
            req = req.header("Accept", a);
        }
        let resp = req.send().await.unwrap_or_else(|e| panic!("{path}: {e}"));
        let status = resp.status().as_u16();
        let content_type = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let body = resp.bytes().await.expect("body").to_vec();
        Reply {
            status,
            content_type,
            body,
        }
    }

    /// `start` and `end` (unix seconds) around all of the fixture, as Grafana sends them.
    pub fn window(&self) -> Vec<(&'static str, String)> {
        self.between(-600, 600)
    }

    /// `start` and `end` at these offsets (seconds) from the base.
    pub fn between(&self, from: i64, to: i64) -> Vec<(&'static str, String)> {
        vec![
            ("start", (self.base + from).to_string()),
            ("end", (self.base + to).to_string()),
        ]
    }

    /// A search as Grafana sends it (`q`, `limit`, `spss`, `start`, `end`), with `params`
    /// replacing or adding to those, as the default tenant; the answer must be a strict 200.
    pub async fn search(&self, q: &str, params: &[(&'static str, String)]) -> SearchResponse {
        let mut all = vec![
            ("q", q.to_owned()),
            ("limit", "20".to_owned()),
            ("spss", "3".to_owned()),
        ];
        all.extend(self.window());
        for (k, v) in params {
            all.retain(|(name, _)| name != k);
            all.push((k, v.clone()));
        }
        all.retain(|(_, v)| !v.is_empty());
        self.get(None, "/api/search", &all, Some("application/json"))
            .await
            .strict(&format!("search {q:?} {params:?}"))
    }

    /// The v2 trace by id as protobuf, as Grafana fetches it.
    pub async fn trace_v2(&self, tenant: Option<&str>, id: &str) -> Reply {
        self.get(
            tenant,
            &format!("/api/v2/traces/{id}"),
            &[],
            Some("application/protobuf"),
        )
        .await
    }
}

/// The fixture with its offsets moved to `base` (unix seconds).
pub fn fixture(base: i64) -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/tempo/agents.otlp.json"
    );
    let mut doc: Value = serde_json::from_str(&std::fs::read_to_string(path).expect("fixture"))
        .expect("fixture JSON");
    shift(&mut doc, base * 1_000_000_000);
    doc
}

fn shift(v: &mut Value, by: i64) {
    match v {
        Value::Object(map) => {
            for (k, v) in map.iter_mut() {
                if k.ends_with("TimeUnixNano") {
                    let offset: i64 = v.as_str().and_then(|s| s.parse().ok()).expect("offset");
                    *v = Value::String((offset + by).to_string());
                } else {
                    shift(v, by);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|i| shift(i, by)),
        _ => {}
    }
}

/// A trace id as 32 digits (Tempo's search trims leading zeros; Grafana pads them back).
pub fn padded(id: &str) -> String {
    format!("{id:0>32}")
}

// ---------------------------------------------------------------------------------------------
// Tempo's JSON, as tempopb names it (`grafana/tempo:pkg/tempopb/tempo.proto`).

/// The answers' models: exactly tempopb's fields (any other field is refused, as Go's `jsonpb`
/// refuses it), 64-bit numbers as strings. Tests read only some fields; the others are there
/// to be accepted.
#[allow(dead_code)]
pub mod tempopb {
    use std::collections::BTreeMap;

    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    pub struct SearchResponse {
        #[serde(default)]
        pub traces: Vec<TraceSearchMetadata>,
        pub metrics: Option<SearchMetrics>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    pub struct TraceSearchMetadata {
        #[serde(rename = "traceID")]
        pub trace_id: String,
        #[serde(default)]
        pub root_service_name: String,
        #[serde(default)]
        pub root_trace_name: String,
        pub start_time_unix_nano: String,
        #[serde(default)]
        pub duration_ms: u32,
        /// Deprecated: the first of `spanSets`.
        pub span_set: Option<SpanSet>,
        #[serde(default)]
        pub span_sets: Vec<SpanSet>,
        #[serde(default)]
        pub service_stats: BTreeMap<String, ServiceStats>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    pub struct ServiceStats {
        #[serde(default)]
        pub span_count: u32,
        #[serde(default)]
        pub error_count: u32,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    pub struct SpanSet {
        #[serde(default)]
        pub spans: Vec<SearchSpan>,
        #[serde(default)]
        pub matched: u32,
        #[serde(default)]
        pub attributes: Vec<KeyValue>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    pub struct SearchSpan {
        #[serde(rename = "spanID")]
        pub span_id: String,
        #[serde(default)]
        pub name: String,
        pub start_time_unix_nano: String,
        pub duration_nanos: String,
        #[serde(default)]
        pub attributes: Vec<KeyValue>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    pub struct KeyValue {
        pub key: String,
        pub value: AnyValue,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    pub struct AnyValue {
        pub string_value: Option<String>,
        pub bool_value: Option<bool>,
        pub int_value: Option<String>,
        pub double_value: Option<f64>,
        pub array_value: Option<ArrayValue>,
        pub kvlist_value: Option<KeyValueList>,
        pub bytes_value: Option<String>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct ArrayValue {
        #[serde(default)]
        pub values: Vec<AnyValue>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct KeyValueList {
        #[serde(default)]
        pub values: Vec<KeyValue>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    pub struct SearchMetrics {
        pub inspected_traces: Option<u32>,
        pub inspected_bytes: Option<String>,
        pub total_blocks: Option<u32>,
        pub completed_jobs: Option<u32>,
        pub total_jobs: Option<u32>,
        pub total_block_bytes: Option<String>,
        pub inspected_spans: Option<String>,
        pub backend_reads: Option<String>,
        pub backend_bytes: Option<String>,
        pub additional_metrics: Option<BTreeMap<String, String>>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    pub struct MetadataMetrics {
        pub inspected_bytes: Option<String>,
        pub total_jobs: Option<u32>,
        pub completed_jobs: Option<u32>,
        pub total_blocks: Option<u32>,
        pub total_block_bytes: Option<String>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct SearchTagsV2Response {
        #[serde(default)]
        pub scopes: Vec<SearchTagsV2Scope>,
        pub metrics: Option<MetadataMetrics>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct SearchTagsV2Scope {
        pub name: String,
        #[serde(default)]
        pub tags: Vec<String>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    pub struct SearchTagValuesV2Response {
        #[serde(default)]
        pub tag_values: Vec<TagValue>,
        pub metrics: Option<MetadataMetrics>,
    }

    #[derive(Debug, Deserialize, PartialEq, Eq, PartialOrd, Ord, Clone)]
    #[serde(deny_unknown_fields)]
    pub struct TagValue {
        #[serde(rename = "type")]
        pub kind: String,
        pub value: String,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    pub struct SearchTagsResponse {
        #[serde(default)]
        pub tag_names: Vec<String>,
        pub metrics: Option<MetadataMetrics>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    pub struct SearchTagValuesResponse {
        #[serde(default)]
        pub tag_values: Vec<String>,
        pub metrics: Option<MetadataMetrics>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct QueryRangeResponse {
        #[serde(default)]
        pub series: Vec<TimeSeries>,
        pub metrics: Option<SearchMetrics>,
        pub status: Option<String>,
        pub message: Option<String>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    pub struct TimeSeries {
        #[serde(default)]
        pub labels: Vec<KeyValue>,
        #[serde(default)]
        pub samples: Vec<Sample>,
        pub prom_labels: Option<String>,
        #[serde(default)]
        pub exemplars: Vec<Exemplar>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    pub struct Sample {
        #[serde(default)]
        pub timestamp_ms: String,
        #[serde(default)]
        pub value: f64,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    pub struct Exemplar {
        #[serde(default)]
        pub labels: Vec<KeyValue>,
        #[serde(default)]
        pub value: f64,
        #[serde(default)]
        pub timestamp_ms: String,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct QueryInstantResponse {
        #[serde(default)]
        pub series: Vec<InstantSeries>,
        pub metrics: Option<SearchMetrics>,
        pub status: Option<String>,
        pub message: Option<String>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    pub struct InstantSeries {
        #[serde(default)]
        pub labels: Vec<KeyValue>,
        #[serde(default)]
        pub value: f64,
        pub prom_labels: Option<String>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    pub struct BuildInfo {
        pub version: String,
        pub revision: String,
        pub branch: String,
        pub build_date: String,
        pub build_user: String,
        pub go_version: String,
    }
}

/// Fields proto3 JSON writes as strings (uint64/int64/fixed64).
const SIXTY_FOUR_BIT: &[&str] = &[
    "startTimeUnixNano",
    "endTimeUnixNano",
    "timeUnixNano",
    "durationNanos",
    "timestampMs",
    "intValue",
    "inspectedBytes",
    "totalBlockBytes",
    "inspectedSpans",
    "backendReads",
    "backendBytes",
];

/// uint32 fields, written as JSON numbers.
const THIRTY_TWO_BIT: &[&str] = &[
    "durationMs",
    "matched",
    "inspectedTraces",
    "totalBlocks",
    "completedJobs",
    "totalJobs",
    "spanCount",
    "errorCount",
    "droppedAttributesCount",
    "droppedEventsCount",
    "droppedLinksCount",
];

/// Asserts proto3 JSON's number rules everywhere in `v`: 64-bit fields are strings of digits
/// (Grafana 12's decoder reads them into Go strings), 32-bit ones numbers; `status` of a
/// metrics answer is a `PartialStatus` name.
pub fn check_proto3_json(v: &Value, what: &str) {
    match v {
        Value::Object(map) => {
            for (k, v) in map {
                if SIXTY_FOUR_BIT.contains(&k.as_str()) {
                    let ok = v.as_str().is_some_and(|s| {
                        let digits = s.strip_prefix('-').unwrap_or(s);
                        !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
                    });
                    assert!(ok, "{what}: {k} must be a string of digits, got {v}");
                } else if THIRTY_TWO_BIT.contains(&k.as_str()) {
                    assert!(v.is_u64(), "{what}: {k} must be a uint32 number, got {v}");
                } else if k == "status" && v.is_string() {
                    assert!(
                        matches!(v.as_str(), Some("COMPLETE" | "PARTIAL")),
                        "{what}: status {v}"
                    );
                } else {
                    check_proto3_json(v, what);
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|i| check_proto3_json(i, what)),
        _ => {}
    }
}

/// `s` is `digits` lowercase hex digits.
pub fn is_hex(s: &str, digits: usize) -> bool {
    s.len() == digits && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

// ---------------------------------------------------------------------------------------------
// tempopb's protobuf trace messages, for decoding as Grafana's Go code does.

/// `tempopb.TraceByIDResponse` (the metrics, field 2, are skipped).
#[derive(Clone, PartialEq, Message)]
pub struct PbTraceByIdResponse {
    #[prost(message, optional, tag = "1")]
    pub trace: Option<PbTrace>,
    #[prost(int32, tag = "3")]
    pub status: i32,
    #[prost(string, tag = "4")]
    pub message: String,
}

/// `tempopb.Trace`.
#[derive(Clone, PartialEq, Message)]
pub struct PbTrace {
    #[prost(message, repeated, tag = "1")]
    pub resource_spans: Vec<ResourceSpans>,
}

/// Hex span id → (hex parent span id, name) of every span in `resource_spans`, asserting
/// that each belongs to `trace_id` and that every resource names its service; plus the service
/// of each span.
fn spans_of(
    resource_spans: &[ResourceSpans],
    trace_id: &str,
) -> BTreeMap<String, (String, String, String)> {
    let mut out = BTreeMap::new();
    for rs in resource_spans {
        let resource = rs.resource.as_ref().expect("resource");
        let service = resource
            .attributes
            .iter()
            .find(|kv| kv.key == "service.name")
            .and_then(|kv| kv.value.as_ref()?.value.as_ref())
            .and_then(|v| match v {
                Any::StringValue(s) => Some(s.clone()),
                _ => None,
            })
            .unwrap_or_else(|| panic!("a resource without a string service.name: {resource:?}"));
        assert!(!rs.scope_spans.is_empty(), "a resource without scope spans");
        for span in rs.scope_spans.iter().flat_map(|s| &s.spans) {
            assert_eq!(
                hex::encode(&span.trace_id),
                trace_id,
                "span of another trace"
            );
            assert_eq!(span.span_id.len(), 8, "span id of 8 bytes");
            out.insert(
                hex::encode(&span.span_id),
                (
                    hex::encode(&span.parent_span_id),
                    span.name.clone(),
                    service.clone(),
                ),
            );
        }
    }
    out
}

/// The spans of trace A: id → (parent, name, service).
fn trace_a_spans() -> BTreeMap<String, (String, String, String)> {
    [
        ("a000000000000001", "", "invoke_agent planner"),
        ("a000000000000002", "a000000000000001", "chat gpt-4o"),
        ("a000000000000003", "a000000000000001", "execute_tool shell"),
        ("a000000000000004", "a000000000000003", "exec"),
    ]
    .into_iter()
    .map(|(id, parent, name)| {
        (
            id.to_owned(),
            (parent.to_owned(), name.to_owned(), "planner-svc".to_owned()),
        )
    })
    .collect()
}

// ---------------------------------------------------------------------------------------------
// The tests.

#[tokio::test]
async fn tempo_echo_and_buildinfo() {
    let t = Tempo::start(None).await;
    let echo = t.get(None, "/api/echo", &[], None).await;
    assert_eq!((echo.status, echo.text().as_str()), (200, "echo"));
    assert!(
        echo.content_type.starts_with("text/plain"),
        "{}",
        echo.content_type
    );

    let info: BuildInfo = t
        .get(None, "/api/status/buildinfo", &[], None)
        .await
        .strict("buildinfo");
    assert_eq!(info.version, env!("CARGO_PKG_VERSION"));
    assert!(!info.go_version.is_empty(), "goVersion names the toolchain");
}

#[tokio::test]
async fn tempo_trace_by_id_protobuf() {
    let t = Tempo::start(None).await;
    // Grafana: GET /api/v2/traces/<id> with Accept: application/protobuf, no time range.
    let reply = t.trace_v2(None, TRACE_A).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert!(
        reply.content_type.starts_with("application/protobuf"),
        "{}",
        reply.content_type
    );
    let v2 = PbTraceByIdResponse::decode(reply.body.as_slice()).expect("a TraceByIDResponse");
    assert_eq!(v2.status, 0, "COMPLETE");
    assert_eq!(v2.message, "");
    let trace = v2.trace.expect("field 1: the trace");
    assert_eq!(spans_of(&trace.resource_spans, TRACE_A), trace_a_spans());

    // The timestamps, kinds and statuses come back as sent.
    let a3 = trace
        .resource_spans
        .iter()
        .flat_map(|rs| rs.scope_spans.iter().flat_map(|s| &s.spans))
        .find(|s| hex::encode(&s.span_id) == "a000000000000003")
        .expect("span a3");
    let start = (t.base as u64) * 1_000_000_000 + 1_400_000_000;
    assert_eq!(a3.start_time_unix_nano, start);
    assert_eq!(a3.end_time_unix_nano, start + 400_000_000);
    assert_eq!(a3.kind, 1, "internal");
    let status = a3.status.as_ref().expect("status");
    assert_eq!((status.code, status.message.as_str()), (2, "exit status 1"));

    // The wrapper is there: the same bytes read as a bare TracesData do not give the trace.
    let spans_bare = TracesData::decode(reply.body.as_slice())
        .map(|td| {
            td.resource_spans
                .iter()
                .flat_map(|rs| rs.scope_spans.iter().flat_map(|s| &s.spans))
                .filter(|s| hex::encode(&s.trace_id) == TRACE_A)
                .count()
        })
        .unwrap_or(0);
    assert_eq!(
        spans_bare, 0,
        "v2 must be TraceByIDResponse, not a bare TracesData"
    );

    // v1: the bare Trace (TracesData on the wire).
    let v1 = t
        .get(
            None,
            &format!("/api/traces/{TRACE_A}"),
            &[],
            Some("application/protobuf"),
        )
        .await;
    assert_eq!(v1.status, 200, "{}", v1.text());
    let bare = PbTrace::decode(v1.body.as_slice()).expect("a Trace");
    assert_eq!(spans_of(&bare.resource_spans, TRACE_A), trace_a_spans());
    let as_traces_data = TracesData::decode(v1.body.as_slice()).expect("TracesData");
    assert_eq!(as_traces_data.resource_spans, bare.resource_spans);

    // A short id is left-padded with zeros; a resource without service.name gets Tempo's
    // default, so that Grafana does not skip it.
    let d = t.trace_v2(None, "d0d0d4").await;
    assert_eq!(d.status, 200, "{}", d.text());
    let d = PbTraceByIdResponse::decode(d.body.as_slice()).expect("TraceByIDResponse");
    let spans = spans_of(&d.trace.expect("trace").resource_spans, TRACE_D);
    assert_eq!(
        spans.get("d000000000000001").map(|s| s.2.as_str()),
        Some("unknown_service")
    );
    // Upper case is the same id.
    let upper = t.trace_v2(None, &TRACE_B.to_uppercase()).await;
    assert_eq!(upper.status, 200, "{}", upper.text());
}

#[tokio::test]
async fn tempo_trace_by_id_json() {
    let t = Tempo::start(None).await;
    for accept in [None, Some("application/json")] {
        let v2 = t
            .get(None, &format!("/api/v2/traces/{TRACE_A}"), &[], accept)
            .await;
        let body: Value = v2.strict("v2 trace JSON");
        let keys: Vec<&String> = body.as_object().expect("object").keys().collect();
        assert_eq!(keys, ["trace"], "only the trace is set: {body}");
        let trace = &body["trace"];
        assert!(trace["resourceSpans"].is_array(), "{body}");
        for span in trace["resourceSpans"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|rs| rs["scopeSpans"].as_array().unwrap())
            .flat_map(|ss| ss["spans"].as_array().unwrap())
        {
            assert!(is_hex(span["traceId"].as_str().unwrap(), 32), "{span}");
            assert!(is_hex(span["spanId"].as_str().unwrap(), 16), "{span}");
        }
        let data: TracesData = serde_json::from_value(trace.clone()).expect("OTLP JSON");
        assert_eq!(spans_of(&data.resource_spans, TRACE_A), trace_a_spans());

        let v1 = t
            .get(None, &format!("/api/traces/{TRACE_A}"), &[], accept)
            .await;
        let body: Value = v1.strict("v1 trace JSON");
        let data: TracesData = serde_json::from_value(body).expect("OTLP JSON");
        assert_eq!(spans_of(&data.resource_spans, TRACE_A), trace_a_spans());
    }
}

#[tokio::test]
async fn tempo_trace_errors_and_ranges() {
    let t = Tempo::start(None).await;
    let unknown = "1234567890abcdef1234567890abcdef";
    for path in ["/api/v2/traces", "/api/traces"] {
        for accept in [Some("application/protobuf"), None] {
            let what = format!("{path} unknown ({accept:?})");
            t.get(None, &format!("{path}/{unknown}"), &[], accept)
                .await
                .plain_error(404, &what);
        }
        for bad in ["xyz", "a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a1a"] {
            let what = format!("{path} malformed {bad}");
            let msg = t
                .get(
                    None,
                    &format!("{path}/{bad}"),
                    &[],
                    Some("application/protobuf"),
                )
                .await
                .plain_error(400, &what);
            assert!(msg.to_lowercase().contains("hex"), "{what}: {msg}");
        }
        // Tempo pads "0" to the id of zeros, which no trace has.
        t.get(None, &format!("{path}/0"), &[], None)
            .await
            .plain_error(404, &format!("{path} zeros"));
    }

    // start/end (unix seconds): a range around the trace finds it, one a day before does not.
    let path = format!("/api/v2/traces/{TRACE_B}");
    let pb = Some("application/protobuf");
    let around = t.get(None, &path, &t.between(5, 15), pb).await;
    assert_eq!(around.status, 200, "{}", around.text());
    let got = PbTraceByIdResponse::decode(around.body.as_slice()).expect("decode");
    assert_eq!(
        spans_of(&got.trace.unwrap().resource_spans, TRACE_B).len(),
        4
    );
    t.get(None, &path, &t.between(-86_400, -86_000), pb)
        .await
        .plain_error(404, "a range a day before the trace");
    t.get(None, &path, &t.between(60, 0), pb)
        .await
        .plain_error(400, "start after end");
}

#[tokio::test]
async fn tempo_search_contract() {
    let t = Tempo::start(None).await;
    // Grafana: q={}, limit=20, spss=3, start/end in unix seconds, Accept: application/json.
    let found = t.search("{}", &[]).await;
    let mut ids = BTreeSet::new();
    for trace in &found.traces {
        let id = padded(&trace.trace_id);
        assert!(is_hex(&id, 32), "traceID {:?}", trace.trace_id);
        assert!(trace.start_time_unix_nano.parse::<u64>().is_ok());
        ids.insert(id.clone());
        // The row links to the trace view: the same id fetches the trace, and every span of
        // the row is in it.
        let reply = t.trace_v2(None, &trace.trace_id).await;
        assert_eq!(
            reply.status,
            200,
            "trace {}: {}",
            trace.trace_id,
            reply.text()
        );
        let got = PbTraceByIdResponse::decode(reply.body.as_slice()).expect("decode");
        let spans = spans_of(&got.trace.unwrap().resource_spans, &id);
        assert!(!trace.span_sets.is_empty(), "{trace:?}");
        for set in &trace.span_sets {
            assert!(set.spans.len() <= 3, "spss=3: {set:?}");
            assert!(set.matched as usize >= set.spans.len(), "{set:?}");
            for span in &set.spans {
                assert!(is_hex(&span.span_id, 16), "spanID {:?}", span.span_id);
                assert!(
                    spans.contains_key(&span.span_id),
                    "{} in {id}",
                    span.span_id
                );
                assert!(span.duration_nanos.parse::<u64>().is_ok());
            }
        }
    }
    let expected: BTreeSet<String> = [TRACE_A, TRACE_B, TRACE_C, TRACE_D]
        .map(String::from)
        .into();
    assert_eq!(ids, expected);

    let a = found
        .traces
        .iter()
        .find(|tr| padded(&tr.trace_id) == TRACE_A)
        .unwrap();
    assert_eq!(a.root_service_name, "planner-svc");
    assert_eq!(a.root_trace_name, "invoke_agent planner");
    assert_eq!(a.duration_ms, 900);
    let start = t.base * 1_000_000_000 + 1_000_000_000;
    assert_eq!(a.start_time_unix_nano, start.to_string());
    assert_eq!(a.span_sets[0].matched, 4);

    // A span row: its id, name, start and duration, as Grafana lists them.
    let found = t.search(r#"{ span.target = "/bin/ls" }"#, &[]).await;
    let spans: Vec<&SearchSpan> = found
        .traces
        .iter()
        .flat_map(|tr| &tr.span_sets)
        .flat_map(|set| &set.spans)
        .collect();
    assert_eq!(spans.len(), 1, "{found:?}");
    let a3 = spans[0];
    assert_eq!(a3.span_id, "a000000000000003");
    assert_eq!(a3.name, "execute_tool shell");
    assert_eq!(a3.start_time_unix_nano, (start + 400_000_000).to_string());
    assert_eq!(a3.duration_nanos, "400000000");

    // A TraceQL syntax error: 400, plain text, saying what is wrong.
    let q = "{ span.foo = }";
    let mut params = vec![
        ("q", q.to_owned()),
        ("limit", "20".into()),
        ("spss", "3".into()),
    ];
    params.extend(t.window());
    let msg = t
        .get(None, "/api/search", &params, Some("application/json"))
        .await
        .plain_error(400, "syntax error");
    assert!(
        !msg.trim_start().starts_with('<'),
        "not an HTML page: {msg}"
    );
    let lower = msg.to_lowercase();
    assert!(
        ["syntax", "parse", "unexpected", "expected"]
            .iter()
            .any(|w| lower.contains(w)),
        "the message says what is wrong: {msg}"
    );
}

#[tokio::test]
async fn tempo_tags_contract() {
    let t = Tempo::start(None).await;
    // Grafana: /api/v2/search/tags?limit=5000 (and start/end).
    let mut params = vec![("limit", "5000".to_owned())];
    params.extend(t.window());
    let tags: SearchTagsV2Response = t
        .get(None, "/api/v2/search/tags", &params, None)
        .await
        .strict("v2 tags");
    let scope = |name: &str| -> BTreeSet<String> {
        tags.scopes
            .iter()
            .filter(|s| s.name == name)
            .flat_map(|s| s.tags.iter().cloned())
            .collect()
    };
    assert!(scope("resource").contains("service.name"), "{tags:?}");
    assert!(scope("span").contains("gen_ai.tool.name"), "{tags:?}");
    assert!(scope("intrinsic").contains("duration"), "{tags:?}");

    // The tag is URL-encoded in the path: with plain dots, and with %2E (Grafana encodes it;
    // the browser of Grafana ≤ 12 encoded it twice and its proxy decoded it once).
    let mut seen = Vec::new();
    for path in [
        "/api/v2/search/tag/span.gen_ai.tool.name/values",
        "/api/v2/search/tag/span%2Egen_ai%2Etool%2Ename/values",
    ] {
        let values: SearchTagValuesV2Response =
            t.get(None, path, &t.window(), None).await.strict(path);
        let values: BTreeSet<TagValue> = values.tag_values.into_iter().collect();
        seen.push(values);
    }
    assert_eq!(seen[0], seen[1], "both encodings name the same tag");
    let value = |v: &str| TagValue {
        kind: "string".into(),
        value: v.into(),
    };
    assert!(seen[0].contains(&value("shell")), "{:?}", seen[0]);
    assert!(seen[0].contains(&value("search_web")), "{:?}", seen[0]);

    // q: the TraceQL of the other filters narrows the values.
    let mut params = vec![(
        "q",
        r#"{ resource.deployment.environment = "prod" }"#.to_owned(),
    )];
    params.extend(t.window());
    let narrowed: SearchTagValuesV2Response = t
        .get(
            None,
            "/api/v2/search/tag/span.gen_ai.tool.name/values",
            &params,
            None,
        )
        .await
        .strict("values with q");
    assert_eq!(narrowed.tag_values, vec![value("shell")]);

    // The v1 pair of older Grafana.
    let v1: SearchTagsResponse = t
        .get(None, "/api/search/tags", &t.window(), None)
        .await
        .strict("v1 tags");
    assert!(
        v1.tag_names.iter().any(|n| n == "gen_ai.tool.name"),
        "{v1:?}"
    );
    let v1: SearchTagValuesResponse = t
        .get(
            None,
            "/api/search/tag/gen_ai.tool.name/values",
            &t.window(),
            None,
        )
        .await
        .strict("v1 values");
    let v1: BTreeSet<String> = v1.tag_values.into_iter().collect();
    assert!(v1.contains("shell") && v1.contains("search_web"), "{v1:?}");
}

#[tokio::test]
async fn tempo_metrics_contract() {
    let t = Tempo::start(None).await;
    let mut params = vec![
        ("q", "{ } | count_over_time()".to_owned()),
        ("step", "60s".to_owned()),
    ];
    params.extend(t.window());
    let range: QueryRangeResponse = t
        .get(
            None,
            "/api/metrics/query_range",
            &params,
            Some("application/json"),
        )
        .await
        .strict("query_range");
    let total: f64 = range
        .series
        .iter()
        .flat_map(|s| &s.samples)
        .map(|s| s.value)
        .sum();
    assert_eq!(total, SPANS as f64, "{range:?}");
    for sample in range.series.iter().flat_map(|s| &s.samples) {
        let ms: i64 = sample.timestamp_ms.parse().expect("timestampMs");
        assert!(
            ms >= (t.base - 600) * 1000 && ms <= (t.base + 600) * 1000,
            "{ms} within the range"
        );
    }

    params.retain(|(k, _)| *k != "step");
    let instant: QueryInstantResponse = t
        .get(
            None,
            "/api/metrics/query",
            &params,
            Some("application/json"),
        )
        .await
        .strict("query");
    let total: f64 = instant.series.iter().map(|s| s.value).sum();
    assert_eq!(total, SPANS as f64, "{instant:?}");
}

#[tokio::test]
async fn tempo_tenant_isolation() {
    let t = Tempo::start(Some("team-a")).await;
    for (tenant, sees) in [
        (Some("team-a"), true),
        (Some("team-b"), false),
        (None, false),
    ] {
        let who = format!("{tenant:?}");
        let v2 = t.trace_v2(tenant, TRACE_A).await;
        let v1 = t
            .get(tenant, &format!("/api/traces/{TRACE_A}"), &[], None)
            .await;
        if sees {
            assert_eq!((v2.status, v1.status), (200, 200), "{who}");
        } else {
            v2.plain_error(404, &format!("v2 trace as {who}"));
            v1.plain_error(404, &format!("v1 trace as {who}"));
        }

        let mut params = vec![
            ("q", "{}".to_owned()),
            ("limit", "20".into()),
            ("spss", "3".into()),
        ];
        params.extend(t.window());
        let search: SearchResponse = t
            .get(tenant, "/api/search", &params, Some("application/json"))
            .await
            .strict(&format!("search as {who}"));
        assert_eq!(search.traces.len(), if sees { 4 } else { 0 }, "{who}");

        let mut params = vec![("limit", "5000".to_owned())];
        params.extend(t.window());
        let tags: SearchTagsV2Response = t
            .get(tenant, "/api/v2/search/tags", &params, None)
            .await
            .strict(&format!("tags as {who}"));
        let has_attempt = tags
            .scopes
            .iter()
            .any(|s| s.tags.iter().any(|n| n == "attempt"));
        assert_eq!(has_attempt, sees, "{who}: {tags:?}");

        let values: SearchTagValuesV2Response = t
            .get(
                tenant,
                "/api/v2/search/tag/span.attempt/values",
                &t.window(),
                None,
            )
            .await
            .strict(&format!("values as {who}"));
        assert_eq!(values.tag_values.len(), if sees { 3 } else { 0 }, "{who}");
        let v1: SearchTagValuesResponse = t
            .get(tenant, "/api/search/tag/attempt/values", &t.window(), None)
            .await
            .strict(&format!("v1 values as {who}"));
        assert_eq!(v1.tag_values.len(), if sees { 3 } else { 0 }, "{who}");

        let mut params = vec![
            ("q", "{ } | count_over_time()".to_owned()),
            ("step", "60s".to_owned()),
        ];
        params.extend(t.window());
        let range: QueryRangeResponse = t
            .get(tenant, "/api/metrics/query_range", &params, None)
            .await
            .strict(&format!("query_range as {who}"));
        let total: f64 = range
            .series
            .iter()
            .flat_map(|s| &s.samples)
            .map(|s| s.value)
            .sum();
        assert_eq!(total, if sees { SPANS as f64 } else { 0.0 }, "{who}");
        params.retain(|(k, _)| *k != "step");
        let instant: QueryInstantResponse = t
            .get(tenant, "/api/metrics/query", &params, None)
            .await
            .strict(&format!("query as {who}"));
        let total: f64 = instant.series.iter().map(|s| s.value).sum();
        assert_eq!(total, if sees { SPANS as f64 } else { 0.0 }, "{who}");
    }
}
