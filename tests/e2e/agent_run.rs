//! A small agent run sent with the Rust `opentelemetry-otlp` exporter, and the field-by-field
//! check that Cairn stored exactly what the SDK exported.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use opentelemetry::trace::{
    Link, Span as _, SpanContext, SpanKind, Status, TraceContextExt, Tracer, TracerProvider as _,
};
use opentelemetry::{Array, InstrumentationScope, KeyValue, StringValue, Value};
use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig, WithTonicConfig};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SdkTracerProvider, SpanData, SpanExporter};
use opentelemetry_sdk::Resource;
use serde_json::{json, Value as Json};

use crate::harness::Cairn;

/// How the exporter reaches Cairn.
#[derive(Debug, Clone, Copy)]
pub enum Transport {
    Grpc { gzip: bool },
    HttpProtobuf { gzip: bool },
}

/// Records what was exported and whether Cairn acknowledged it. Exports are polled inside the
/// test's Tokio runtime, which the HTTP client needs, from the SDK's own export thread.
#[derive(Debug)]
struct Tee<E> {
    inner: E,
    runtime: tokio::runtime::Handle,
    sent: Arc<Mutex<Vec<SpanData>>>,
    failures: Arc<Mutex<Vec<String>>>,
}

/// Polls a future with a Tokio runtime entered.
pub struct InRuntime<'a, T> {
    pub runtime: &'a tokio::runtime::Handle,
    pub future: std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>,
}

impl<T> std::future::Future for InRuntime<'_, T> {
    type Output = T;
    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<T> {
        let _entered = self.runtime.enter();
        self.future.as_mut().poll(cx)
    }
}

impl<E: SpanExporter> SpanExporter for Tee<E> {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let copy = batch.clone();
        let result = InRuntime {
            runtime: &self.runtime,
            future: Box::pin(self.inner.export(batch)),
        }
        .await;
        match &result {
            Ok(()) => self.sent.lock().unwrap().extend(copy),
            Err(e) => self.failures.lock().unwrap().push(e.to_string()),
        }
        result
    }

    fn shutdown(&self) -> OTelSdkResult {
        self.inner.shutdown()
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

fn exporter(
    cairn: &Cairn,
    transport: Transport,
    tenant: Option<&str>,
) -> opentelemetry_otlp::SpanExporter {
    let builder = opentelemetry_otlp::SpanExporter::builder();
    match transport {
        Transport::Grpc { gzip } => {
            let mut metadata = tonic::metadata::MetadataMap::new();
            if let Some(t) = tenant {
                metadata.insert("x-scope-orgid", t.parse().unwrap());
            }
            let mut b = builder
                .with_tonic()
                .with_endpoint(format!("http://{}", cairn.grpc))
                .with_timeout(Duration::from_secs(30))
                .with_metadata(metadata);
            if gzip {
                b = b.with_compression(opentelemetry_otlp::Compression::Gzip);
            }
            b.build().expect("gRPC exporter")
        }
        Transport::HttpProtobuf { gzip } => {
            let mut headers = std::collections::HashMap::new();
            if let Some(t) = tenant {
                headers.insert("X-Scope-OrgID".to_owned(), t.to_owned());
            }
            let mut b = builder
                .with_http()
                .with_protocol(Protocol::HttpBinary)
                .with_endpoint(format!("http://{}/v1/traces", cairn.otlp_http))
                .with_timeout(Duration::from_secs(30))
                .with_headers(headers);
            if gzip {
                b = b.with_compression(opentelemetry_otlp::Compression::Gzip);
            }
            b.build().expect("HTTP exporter")
        }
    }
}

/// Sends one multi-step agent run (`runs` times, one trace each) and returns the spans the
/// exporter reported as acknowledged. Panics if any export failed.
pub async fn send_agent_runs(
    cairn: &Cairn,
    transport: Transport,
    tenant: Option<&str>,
    service: &str,
    runs: usize,
) -> Vec<SpanData> {
    let sent = Arc::new(Mutex::new(Vec::new()));
    let failures = Arc::new(Mutex::new(Vec::new()));
    let tee = Tee {
        inner: exporter(cairn, transport, tenant),
        runtime: tokio::runtime::Handle::current(),
        sent: Arc::clone(&sent),
        failures: Arc::clone(&failures),
    };
    let resource = Resource::builder_empty()
        .with_attributes([
            KeyValue::new("service.name", service.to_owned()),
            KeyValue::new("deployment.environment", "test"),
            KeyValue::new("host.cpu.count", 2i64),
        ])
        .build();
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(tee)
        .with_resource(resource)
        .build();
    let scope = InstrumentationScope::builder("cairn-e2e")
        .with_version("1.0.0")
        .build();
    let tracer = provider.tracer_with_scope(scope);
    let base = SystemTime::now() - Duration::from_secs(60);
    for run in 0..runs {
        let t = |ms: u64| base + Duration::from_millis(ms + 10 * run as u64);
        let root = tracer
            .span_builder("invoke_agent planner")
            .with_kind(SpanKind::Internal)
            .with_start_time(t(0))
            .with_attributes([
                KeyValue::new("gen_ai.operation.name", "invoke_agent"),
                KeyValue::new("gen_ai.agent.name", "planner"),
            ])
            .start(&tracer);
        let cx = opentelemetry::Context::current_with_span(root);
        let mut llm = tracer
            .span_builder("chat gpt-4o")
            .with_kind(SpanKind::Client)
            .with_start_time(t(1))
            .with_attributes([
                KeyValue::new("gen_ai.operation.name", "chat"),
                KeyValue::new("gen_ai.request.model", "gpt-4o"),
                KeyValue::new("gen_ai.response.model", "gpt-4o-2024-08-06"),
                KeyValue::new("gen_ai.provider.name", "openai"),
                KeyValue::new("gen_ai.usage.input_tokens", 1200i64),
                KeyValue::new("gen_ai.usage.output_tokens", 85i64),
                KeyValue::new("gen_ai.request.temperature", 0.25f64),
                KeyValue::new("gen_ai.request.stream", false),
                KeyValue::new(
                    "gen_ai.response.finish_reasons",
                    Value::Array(Array::String(vec![StringValue::from("tool_calls")])),
                ),
                KeyValue::new("token.ids", Value::Array(Array::I64(vec![1, -2, 3]))),
                KeyValue::new("weights", Value::Array(Array::F64(vec![1.5, 0.5]))),
                KeyValue::new("flags", Value::Array(Array::Bool(vec![true, false]))),
            ])
            .start_with_context(&tracer, &cx);
        llm.add_event_with_timestamp(
            "gen_ai.choice",
            t(5),
            vec![
                KeyValue::new("index", 0i64),
                KeyValue::new("finish_reason", "tool_calls"),
            ],
        );
        llm.set_status(Status::Ok);
        let llm_context: SpanContext = llm.span_context().clone();
        llm.end_with_timestamp(t(40));
        let mut tool = tracer
            .span_builder("execute_tool search")
            .with_kind(SpanKind::Internal)
            .with_start_time(t(41))
            .with_attributes([
                KeyValue::new("gen_ai.operation.name", "execute_tool"),
                KeyValue::new("gen_ai.tool.name", "search"),
                KeyValue::new("gen_ai.tool.call.id", format!("call_{run}")),
            ])
            .with_links(vec![Link::new(
                llm_context,
                vec![
                    KeyValue::new("link.kind", "requested_by"),
                    KeyValue::new("link.weight", 2i64),
                ],
                0,
            )])
            .start_with_context(&tracer, &cx);
        tool.add_event_with_timestamp(
            "exception",
            t(50),
            vec![KeyValue::new(
                "exception.message",
                "search backend timed out",
            )],
        );
        tool.set_status(Status::error("tool failed"));
        tool.end_with_timestamp(t(60));
        cx.span().end_with_timestamp(t(70));
    }
    let shutdown = tokio::task::spawn_blocking(move || provider.shutdown())
        .await
        .expect("join");
    let failures = failures.lock().unwrap().clone();
    assert!(failures.is_empty(), "exports failed: {failures:?}");
    shutdown.expect("provider shutdown");
    let sent = sent.lock().unwrap().clone();
    assert_eq!(sent.len(), runs * 3, "every span acknowledged");
    sent
}

fn nanos(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH).unwrap().as_nanos() as i64
}

/// The OTLP JSON rendering of one array element, written out independently of Cairn.
fn array_json(a: &Array) -> Json {
    let values: Vec<Json> = match a {
        Array::Bool(v) => v.iter().map(|b| json!({ "boolValue": b })).collect(),
        Array::I64(v) => v
            .iter()
            .map(|i| json!({ "intValue": i.to_string() }))
            .collect(),
        Array::F64(v) => v.iter().map(|f| json!({ "doubleValue": f })).collect(),
        Array::String(v) => v
            .iter()
            .map(|s| json!({ "stringValue": s.as_str() }))
            .collect(),
        _ => unreachable!("array kinds used by the test"),
    };
    json!({ "values": values })
}

/// (value text, type) the way Cairn documents it stores an attribute.
fn expected_attr(v: &Value) -> (Json, Option<&'static str>) {
    match v {
        Value::Bool(b) => (json!(b.to_string()), Some("bool")),
        Value::I64(i) => (json!(i.to_string()), Some("int")),
        Value::F64(f) => (json!(f.to_string()), Some("double")),
        Value::String(s) => (json!(s.as_str()), None),
        Value::Array(a) => (array_json(a), Some("array")),
        _ => unreachable!("value kinds used by the test"),
    }
}

/// Compares a stored (values, types) map pair with the attributes the SDK sent.
fn assert_attrs(what: &str, values: &Json, types: &Json, sent: &[KeyValue]) {
    let values = values
        .as_object()
        .unwrap_or_else(|| panic!("{what}: {values}"));
    let types = types
        .as_object()
        .unwrap_or_else(|| panic!("{what}: {types}"));
    assert_eq!(
        values.len(),
        sent.len(),
        "{what}: attribute count {values:?}"
    );
    let mut expected_types = BTreeMap::new();
    for kv in sent {
        let key = kv.key.as_str();
        let (value, ty) = expected_attr(&kv.value);
        let stored = &values[key];
        match ty {
            Some("array") => {
                let parsed: Json = serde_json::from_str(stored.as_str().expect("array as text"))
                    .unwrap_or_else(|e| panic!("{what}.{key}: {e}"));
                assert_eq!(parsed, value, "{what}.{key}");
            }
            _ => assert_eq!(stored, &value, "{what}.{key}"),
        }
        if let Some(ty) = ty {
            expected_types.insert(key.to_owned(), json!(ty));
        }
    }
    let stored_types: BTreeMap<String, Json> =
        types.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    assert_eq!(stored_types, expected_types, "{what}: attribute types");
}

fn kind_name(k: &SpanKind) -> &'static str {
    match k {
        SpanKind::Client => "client",
        SpanKind::Server => "server",
        SpanKind::Producer => "producer",
        SpanKind::Consumer => "consumer",
        SpanKind::Internal => "internal",
    }
}

fn rfc3339_nanos(v: &Json) -> i64 {
    chrono::DateTime::parse_from_rfc3339(v.as_str().expect("timestamp text"))
        .unwrap_or_else(|e| panic!("{v}: {e}"))
        .timestamp_nanos_opt()
        .expect("in range")
}

/// Asserts that every span in `sent` is stored exactly once for `tenant`, field by field, and
/// that the trace API returns each trace whole.
pub async fn assert_stored(cairn: &Cairn, tenant: Option<&str>, sent: &[SpanData], service: &str) {
    let ids: Vec<String> = sent
        .iter()
        .map(|s| format!("'{}'", s.span_context.span_id()))
        .collect();
    let visible = cairn
        .wait_for_count(
            tenant,
            &format!("spans WHERE span_id IN ({})", ids.join(",")),
            sent.len() as i64,
        )
        .await;
    assert_eq!(
        visible,
        sent.len() as i64,
        "acknowledged spans visible within the flush interval"
    );
    let rows = cairn
        .sql(
            tenant,
            &format!(
                "SELECT trace_id, span_id, parent_span_id, trace_state, flags, name, kind,
                        CAST(start_time AS BIGINT) AS start_ns, CAST(end_time AS BIGINT) AS end_ns,
                        duration_ns, status_code, status_message, service_name,
                        attributes, attribute_types, dropped_attributes_count, events, links,
                        resource_attributes, resource_attribute_types, scope_name, scope_version,
                        operation, operation_raw, operation_src, agent_name, agent_name_src, tool_name, tool_call_id, request_model,
                        response_model, provider, input_tokens, output_tokens
                 FROM spans WHERE span_id IN ({})",
                ids.join(",")
            ),
        )
        .await;
    assert_eq!(rows.len(), sent.len(), "each span stored exactly once");
    let by_id: BTreeMap<String, &Json> = rows
        .iter()
        .map(|r| (r["span_id"].as_str().unwrap().to_owned(), r))
        .collect();
    assert_eq!(by_id.len(), sent.len(), "no duplicate span ids");
    for s in sent {
        let id = s.span_context.span_id().to_string();
        let row = by_id[&id];
        let what = format!("span {} ({id})", s.name);
        assert_eq!(
            row["trace_id"],
            json!(s.span_context.trace_id().to_string()),
            "{what}"
        );
        let parent = (s.parent_span_id != opentelemetry::trace::SpanId::INVALID)
            .then(|| s.parent_span_id.to_string());
        assert_eq!(
            row.get("parent_span_id")
                .and_then(|v| v.as_str())
                .map(str::to_owned),
            parent,
            "{what}"
        );
        assert_eq!(row["name"], json!(s.name.as_ref()), "{what}");
        assert_eq!(row["kind"], json!(kind_name(&s.span_kind)), "{what}");
        assert_eq!(row["start_ns"], json!(nanos(s.start_time)), "{what}");
        assert_eq!(row["end_ns"], json!(nanos(s.end_time)), "{what}");
        assert_eq!(
            row["duration_ns"],
            json!(nanos(s.end_time) - nanos(s.start_time)),
            "{what}"
        );
        assert_eq!(
            row["flags"].as_u64().unwrap() & 0xff,
            u64::from(s.span_context.trace_flags().to_u8()),
            "{what}"
        );
        let (code, message) = match &s.status {
            Status::Unset => ("unset", None),
            Status::Ok => ("ok", None),
            Status::Error { description } => ("error", Some(description.to_string())),
        };
        assert_eq!(row["status_code"], json!(code), "{what}");
        assert_eq!(
            row.get("status_message")
                .and_then(|v| v.as_str())
                .map(str::to_owned),
            message,
            "{what}"
        );
        assert_eq!(row["service_name"], json!(service), "{what}");
        assert_eq!(row["scope_name"], json!("cairn-e2e"), "{what}");
        assert_eq!(row["scope_version"], json!("1.0.0"), "{what}");
        assert_attrs(
            &what,
            &row["attributes"],
            &row["attribute_types"],
            &s.attributes,
        );
        assert_attrs(
            &format!("{what} resource"),
            &row["resource_attributes"],
            &row["resource_attribute_types"],
            &[
                KeyValue::new("service.name", service.to_owned()),
                KeyValue::new("deployment.environment", "test"),
                KeyValue::new("host.cpu.count", 2i64),
            ],
        );
        let events = row["events"].as_array().expect("events list");
        assert_eq!(events.len(), s.events.events.len(), "{what}: events");
        for (stored, ev) in events.iter().zip(&s.events.events) {
            assert_eq!(stored["name"], json!(ev.name.as_ref()), "{what}: event");
            assert_eq!(
                rfc3339_nanos(&stored["time"]),
                nanos(ev.timestamp),
                "{what}: event time"
            );
            assert_attrs(
                &format!("{what} event"),
                &stored["attributes"],
                &stored["attribute_types"],
                &ev.attributes,
            );
        }
        let links = row["links"].as_array().expect("links list");
        assert_eq!(links.len(), s.links.links.len(), "{what}: links");
        for (stored, link) in links.iter().zip(&s.links.links) {
            assert_eq!(
                stored["trace_id"],
                json!(link.span_context.trace_id().to_string()),
                "{what}: link"
            );
            assert_eq!(
                stored["span_id"],
                json!(link.span_context.span_id().to_string()),
                "{what}: link"
            );
            assert_attrs(
                &format!("{what} link"),
                &stored["attributes"],
                &stored["attribute_types"],
                &link.attributes,
            );
        }
        // Promoted agent columns match the attributes they come from.
        let attr = |k: &str| {
            s.attributes
                .iter()
                .find(|kv| kv.key.as_str() == k)
                .map(|kv| kv.value.clone())
        };
        let operation = match attr("gen_ai.operation.name")
            .map(|v| v.as_str().to_string())
            .as_deref()
        {
            Some("chat") => "llm_call",
            Some("execute_tool") => "tool_call",
            Some("invoke_agent") => "agent_invoke",
            other => panic!("unexpected operation {other:?}"),
        };
        assert_eq!(row["operation"], json!(operation), "{what}: operation");
        assert_eq!(
            row["operation_src"],
            json!("gen_ai.operation.name"),
            "{what}: operation_src"
        );
        // A step naming no agent runs in its nearest agent ancestor's.
        match attr("gen_ai.agent.name") {
            Some(name) => {
                assert_eq!(
                    row["agent_name"],
                    json!(name.as_str().to_string()),
                    "{what}"
                );
                assert_eq!(row["agent_name_src"], json!("gen_ai.agent.name"), "{what}");
            }
            // Filled when the agent span was flushed with it (else by compaction and the run
            // API, tested in `inheritance`).
            None => {
                if let Some(src) = row["agent_name_src"].as_str() {
                    let from = src.strip_prefix("inherited:").expect("inherited agent");
                    assert_eq!(
                        row["agent_name"], by_id[from]["agent_name"],
                        "{what}: inherited"
                    );
                }
            }
        }
        for (column, key) in [
            ("operation_raw", "gen_ai.operation.name"),
            ("tool_name", "gen_ai.tool.name"),
            ("tool_call_id", "gen_ai.tool.call.id"),
            ("request_model", "gen_ai.request.model"),
            ("response_model", "gen_ai.response.model"),
            ("provider", "gen_ai.provider.name"),
        ] {
            let expected = attr(key).map(|v| json!(v.as_str().to_string()));
            assert_eq!(
                row.get(column).cloned().filter(|v| !v.is_null()),
                expected,
                "{what}: {column}"
            );
        }
        for (column, key) in [
            ("input_tokens", "gen_ai.usage.input_tokens"),
            ("output_tokens", "gen_ai.usage.output_tokens"),
        ] {
            let expected = attr(key).map(|v| match v {
                Value::I64(i) => json!(i),
                other => panic!("{other:?}"),
            });
            assert_eq!(
                row.get(column).cloned().filter(|v| !v.is_null()),
                expected,
                "{what}: {column}"
            );
        }
    }
    // The trace API returns each whole trace as OTLP JSON with the same spans.
    let mut traces: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for s in sent {
        traces
            .entry(s.span_context.trace_id().to_string())
            .or_default()
            .push(s.span_context.span_id().to_string());
    }
    for (trace_id, mut span_ids) in traces {
        let (status, body) = cairn.trace(tenant, &trace_id).await;
        assert_eq!(status, 200, "{body}");
        let mut got: Vec<String> = Vec::new();
        for rs in body["resourceSpans"].as_array().expect("resourceSpans") {
            let attrs = rs["resource"]["attributes"]
                .as_array()
                .expect("resource attributes");
            assert!(attrs
                .iter()
                .any(|a| a["key"] == "service.name" && a["value"]["stringValue"] == service));
            for ss in rs["scopeSpans"].as_array().unwrap() {
                for sp in ss["spans"].as_array().unwrap() {
                    assert_eq!(sp["traceId"], json!(trace_id));
                    got.push(sp["spanId"].as_str().unwrap().to_owned());
                }
            }
        }
        got.sort();
        span_ids.sort();
        assert_eq!(got, span_ids, "trace {trace_id}");
    }
}
