//! Issue #17: several collectors, a compactor and queriers as separate processes on one bucket
//! of a real S3-compatible server (s3s-fs).
//!
//! Three `cairn collector`s (two acknowledging from their write-ahead logs, one once stored), one
//! `cairn compact` merging aggressively and one `cairn query` share `s3://traces/cluster`. Several
//! clients (raw OTLP/HTTP protobuf, plain and gzip, raw OTLP/gRPC, and the Rust
//! `opentelemetry-otlp` SDK exporter over both) send traces of three tenants whose spans are
//! split across the collectors and across two hour partitions. Meanwhile a poller asks the
//! querier for every span id of every tenant: never a span twice, never one that was visible
//! missing later, never one that was not sent (to that tenant), and every span the
//! `--ack stored` collector acknowledged visible. Then one log collector is killed with SIGKILL
//! mid-stream and restarted on the same log directory: every acknowledged span ends up stored
//! exactly once (spans of exports that failed at most once). The trail API assembles runs whose
//! spans came through different collectors; a second querier started at the end answers
//! exactly as the first; compaction merged files (its own `/metrics` says so, and the bucket
//! holds fewer span files than the collectors wrote); tenants never see each other's rows.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write as _;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use opentelemetry::trace::{Span as _, TraceContextExt, Tracer, TracerProvider as _};
use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig, WithTonicConfig};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue as PbKeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource as PbResource;
use opentelemetry_proto::tonic::trace::v1::{span::SpanKind, ResourceSpans, ScopeSpans, Span};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SdkTracerProvider, SpanData, SpanExporter};
use prost::Message as _;
use serde_json::Value;

use crate::agent_run::InRuntime;
use crate::harness::{client, parquet_files, temp_dir, Cairn};
use crate::s3::{s3_env, start_s3};

const TENANTS: [&str; 3] = ["acme", "globex", "initech"];
/// The tenant the SDK clients export as.
const SDK_TENANT: usize = 0;
const SPANS_PER_TRACE: usize = 6;
const TRACES_PER_BATCH: usize = 6;
/// Batches each tenant's client sends while every collector runs, then while one is killed.
const STEADY_BATCHES: u32 = 5;
const CRASH_BATCHES: u32 = 7;
const SDK_RUNS: usize = 3;
/// Poll rounds at least, one at least after the last export.
const MIN_ROUNDS: usize = 3;
const BUCKET: &str = "traces";
const PREFIX: &str = "cluster";
const SECOND: u64 = 1_000_000_000;

/// What the clients did, per tenant.
#[derive(Debug, Default)]
struct Ledger {
    /// Span ids handed to a collector, acknowledged or not.
    sent: BTreeSet<String>,
    /// Span ids acknowledged, with the collector (0, 1, 2) that acknowledged them.
    acked: BTreeMap<String, usize>,
    /// Acknowledged by the `--ack stored` collector: visible from then on.
    stored: BTreeSet<String>,
    /// Sent in exports that failed (the collector was killed or down): stored at most once.
    unacked: BTreeSet<String>,
    /// Trace id → its span ids.
    traces: BTreeMap<String, BTreeSet<String>>,
}

type Ledgers = Arc<Mutex<Vec<Ledger>>>;

fn kv(key: &str, value: any_value::Value) -> PbKeyValue {
    PbKeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(value) }),
        ..Default::default()
    }
}

fn text(key: &str, value: &str) -> PbKeyValue {
    kv(key, any_value::Value::StringValue(value.into()))
}

fn int(key: &str, value: i64) -> PbKeyValue {
    kv(key, any_value::Value::IntValue(value))
}

/// One export per collector: the spans of `TRACES_PER_BATCH` traces of a tenant's batch, span
/// `i` of each trace going to collector `i % 3`. Each trace is an agent run of six steps, three
/// in the hour before `boundary` (nanoseconds, an hour start) and three after it.
struct Batch {
    requests: [ExportTraceServiceRequest; 3],
    ids: [Vec<String>; 3],
    traces: Vec<(String, BTreeSet<String>)>,
}

/// A step of a run: name, parent step, start and end (seconds from the hour boundary),
/// attributes.
type Step = (&'static str, Option<usize>, i64, i64, Vec<PbKeyValue>);

fn batch(tenant: usize, phase: u32, n: u32, boundary: u64) -> Batch {
    let mut spans: [Vec<Span>; 3] = Default::default();
    let mut ids: [Vec<String>; 3] = Default::default();
    let mut traces = Vec::new();
    for t in 0..TRACES_PER_BATCH {
        let trace = (0xca17_u128 << 112)
            | ((tenant as u128 + 1) << 96)
            | ((phase as u128 + 1) << 88)
            | ((n as u128) << 16)
            | (t as u128 + 1);
        let span_id = |i: usize| {
            ((tenant as u64 + 1) << 56)
                | ((phase as u64 + 1) << 48)
                | ((n as u64) << 24)
                | ((t as u64 + 1) << 8)
                | (i as u64 + 1)
        };
        let offset = u64::from(phase) * 1_000_000_000 + u64::from(n) * 10_000_000 + t as u64;
        let at = |seconds: i64| (boundary as i64 + seconds * SECOND as i64) as u64 + offset;
        // A system message every run shares and a user message of the run's own.
        let messages = |turn: usize| {
            let part = |text: String| serde_json::json!([{"type": "text", "content": text}]);
            let user = format!("{} {trace:032x} turn {turn}", TENANTS[tenant]);
            serde_json::json!([
                {"role": "system", "parts": part("You are a careful planner.".into())},
                {"role": "user", "parts": part(user)},
            ])
            .to_string()
        };
        let steps: [Step; SPANS_PER_TRACE] = [
            (
                "invoke_agent planner",
                None,
                -20,
                10,
                vec![
                    text("gen_ai.operation.name", "invoke_agent"),
                    text("gen_ai.agent.name", "planner"),
                ],
            ),
            (
                "chat gpt-4o",
                Some(0),
                -19,
                -18,
                vec![
                    text("gen_ai.operation.name", "chat"),
                    text("gen_ai.request.model", "gpt-4o"),
                    text("gen_ai.provider.name", "openai"),
                    int("gen_ai.usage.input_tokens", 100),
                    int("gen_ai.usage.output_tokens", 10),
                    text("gen_ai.input.messages", &messages(1)),
                ],
            ),
            (
                "execute_tool search",
                Some(0),
                -10,
                -9,
                vec![
                    text("gen_ai.operation.name", "execute_tool"),
                    text("gen_ai.tool.name", "search"),
                    text("gen_ai.tool.call.id", &format!("call_{trace:x}_1")),
                ],
            ),
            (
                "chat gpt-4o",
                Some(0),
                1,
                2,
                vec![
                    text("gen_ai.operation.name", "chat"),
                    text("gen_ai.request.model", "gpt-4o"),
                    text("gen_ai.provider.name", "openai"),
                    int("gen_ai.usage.input_tokens", 200),
                    int("gen_ai.usage.output_tokens", 20),
                    text("gen_ai.input.messages", &messages(2)),
                ],
            ),
            (
                "execute_tool fetch",
                Some(3),
                3,
                4,
                vec![
                    text("gen_ai.operation.name", "execute_tool"),
                    text("gen_ai.tool.name", "fetch"),
                    text("gen_ai.tool.call.id", &format!("call_{trace:x}_2")),
                ],
            ),
            (
                "invoke_agent reviewer",
                Some(0),
                5,
                9,
                vec![
                    text("gen_ai.operation.name", "invoke_agent"),
                    text("gen_ai.agent.name", "reviewer"),
                ],
            ),
        ];
        let mut all = BTreeSet::new();
        for (i, (name, parent, start, end, attributes)) in steps.into_iter().enumerate() {
            let id = span_id(i);
            all.insert(format!("{id:016x}"));
            ids[i % 3].push(format!("{id:016x}"));
            spans[i % 3].push(Span {
                trace_id: trace.to_be_bytes().to_vec(),
                span_id: id.to_be_bytes().to_vec(),
                parent_span_id: parent
                    .map(|p| span_id(p).to_be_bytes().to_vec())
                    .unwrap_or_default(),
                name: name.into(),
                kind: SpanKind::Internal as i32,
                start_time_unix_nano: at(start),
                end_time_unix_nano: at(end),
                attributes,
                ..Default::default()
            });
        }
        traces.push((format!("{trace:032x}"), all));
    }
    let mut k = 0;
    let requests = spans.map(|spans| {
        let resource = PbResource {
            attributes: vec![text("service.name", &format!("via-c{k}"))],
            ..Default::default()
        };
        k += 1;
        ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                resource: Some(resource),
                scope_spans: vec![ScopeSpans {
                    spans,
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
    });
    Batch {
        requests,
        ids,
        traces,
    }
}

/// Checks an export answer: acknowledged whole, nothing rejected.
fn whole(answer: ExportTraceServiceResponse, to: &str) -> Result<(), String> {
    match answer.partial_success {
        Some(p) if p.rejected_spans != 0 => Err(format!(
            "{to}: {} spans rejected: {}",
            p.rejected_spans, p.error_message
        )),
        _ => Ok(()),
    }
}

/// One OTLP/HTTP protobuf export (gzip-compressed if `gzip`).
async fn send_http(
    http: &reqwest::Client,
    addr: &str,
    tenant: &str,
    req: &ExportTraceServiceRequest,
    gzip: bool,
) -> Result<(), String> {
    let mut body = req.encode_to_vec();
    let mut builder = http
        .post(format!("http://{addr}/v1/traces"))
        .header("content-type", "application/x-protobuf")
        .header("X-Scope-OrgID", tenant);
    if gzip {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(&body).unwrap();
        body = enc.finish().unwrap();
        builder = builder.header("content-encoding", "gzip");
    }
    let resp = builder
        .body(body)
        .send()
        .await
        .map_err(|e| format!("HTTP {addr}: {e}"))?;
    let status = resp.status();
    let bytes = resp
        .bytes()
        .await
        .map_err(|e| format!("HTTP {addr}: reading the answer: {e}"))?;
    if status != 200 {
        return Err(format!(
            "HTTP {addr}: {status}: {}",
            String::from_utf8_lossy(&bytes)
        ));
    }
    let answer = ExportTraceServiceResponse::decode(bytes.as_ref())
        .map_err(|e| format!("HTTP {addr}: answer: {e}"))?;
    whole(answer, addr)
}

/// One OTLP/gRPC export.
async fn send_grpc(
    grpc: &mut TraceServiceClient<tonic::transport::Channel>,
    tenant: &str,
    req: ExportTraceServiceRequest,
) -> Result<(), String> {
    let mut request = tonic::Request::new(req);
    request
        .metadata_mut()
        .insert("x-scope-orgid", tenant.parse().unwrap());
    let answer = grpc
        .export(request)
        .await
        .map_err(|s| format!("gRPC: {s}"))?;
    whole(answer.into_inner(), "gRPC")
}

/// Where the clients reach the collectors: c0 (OTLP/HTTP; it is restarted, so its address
/// changes), c1 (OTLP/gRPC), c2 (OTLP/HTTP with gzip, `--ack stored`).
struct Addrs {
    c0_http: RwLock<String>,
    c1_grpc: String,
    c2_http: String,
}

/// One tenant's client: `batches` batches, each as three concurrent exports, one per collector.
/// Failed exports to c0 are tolerated (and recorded) when `c0_may_fail`; any other is an error.
async fn client_run(
    tenant: usize,
    phase: u32,
    batches: u32,
    boundary: u64,
    addrs: Arc<Addrs>,
    ledgers: Ledgers,
    c0_may_fail: bool,
) -> Result<(), String> {
    let name = TENANTS[tenant];
    let http = client();
    let mut grpc = TraceServiceClient::connect(format!("http://{}", addrs.c1_grpc))
        .await
        .map_err(|e| format!("gRPC connect: {e}"))?;
    for n in 0..batches {
        let Batch {
            requests: [r0, r1, r2],
            ids,
            traces,
        } = batch(tenant, phase, n, boundary);
        {
            let mut ledgers = ledgers.lock().unwrap();
            let ledger = &mut ledgers[tenant];
            ledger.sent.extend(ids.iter().flatten().cloned());
            ledger.traces.extend(traces);
        }
        let c0 = addrs.c0_http.read().unwrap().clone();
        let (a0, a1, a2) = tokio::join!(
            send_http(&http, &c0, name, &r0, false),
            send_grpc(&mut grpc, name, r1),
            send_http(&http, &addrs.c2_http, name, &r2, true),
        );
        record(&ledgers, tenant, [a0, a1, a2], ids, c0_may_fail)
            .map_err(|e| format!("{name} phase {phase} batch {n}: {e}"))?;
    }
    Ok(())
}

/// Records the answers of one batch's exports; an error for a failed export that may not fail.
fn record(
    ledgers: &Ledgers,
    tenant: usize,
    answers: [Result<(), String>; 3],
    ids: [Vec<String>; 3],
    c0_may_fail: bool,
) -> Result<(), String> {
    let mut ledgers = ledgers.lock().unwrap();
    let ledger = &mut ledgers[tenant];
    let mut failed = Ok(());
    for (c, (answer, ids)) in answers.into_iter().zip(ids).enumerate() {
        match answer {
            Ok(()) => {
                if c == 2 {
                    ledger.stored.extend(ids.iter().cloned());
                }
                ledger.acked.extend(ids.into_iter().map(|id| (id, c)));
            }
            Err(e) => {
                ledger.unacked.extend(ids);
                if !(c == 0 && c0_may_fail) {
                    failed = Err(format!("export to c{c} failed: {e}"));
                }
            }
        }
    }
    failed
}

/// Records, for the SDK clients, what was handed to the exporter and what it acknowledged.
/// Exports are polled inside the test's Tokio runtime, from the SDK's own export thread.
#[derive(Debug)]
struct Recorder<E> {
    inner: E,
    runtime: tokio::runtime::Handle,
    ledgers: Ledgers,
    failures: Arc<Mutex<Vec<String>>>,
    collector: usize,
}

impl<E: SpanExporter> SpanExporter for Recorder<E> {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let ids: Vec<(String, String)> = batch
            .iter()
            .map(|s| {
                (
                    s.span_context.trace_id().to_string(),
                    s.span_context.span_id().to_string(),
                )
            })
            .collect();
        {
            let mut ledgers = self.ledgers.lock().unwrap();
            let ledger = &mut ledgers[SDK_TENANT];
            for (trace, span) in &ids {
                ledger.sent.insert(span.clone());
                ledger
                    .traces
                    .entry(trace.clone())
                    .or_default()
                    .insert(span.clone());
            }
        }
        let result = InRuntime {
            runtime: &self.runtime,
            future: Box::pin(self.inner.export(batch)),
        }
        .await;
        let mut ledgers = self.ledgers.lock().unwrap();
        let ledger = &mut ledgers[SDK_TENANT];
        match &result {
            Ok(()) => ledger
                .acked
                .extend(ids.into_iter().map(|(_, s)| (s, self.collector))),
            Err(e) => {
                ledger.unacked.extend(ids.into_iter().map(|(_, s)| s));
                self.failures.lock().unwrap().push(e.to_string());
            }
        }
        result
    }

    fn shutdown(&self) -> OTelSdkResult {
        self.inner.shutdown()
    }

    fn set_resource(&mut self, resource: &opentelemetry_sdk::Resource) {
        self.inner.set_resource(resource);
    }
}

/// A tracer provider whose batch exporter sends to one collector, recording into `ledgers`.
fn sdk_provider(
    exporter: opentelemetry_otlp::SpanExporter,
    service: &str,
    collector: usize,
    ledgers: &Ledgers,
    failures: &Arc<Mutex<Vec<String>>>,
) -> SdkTracerProvider {
    let recorder = Recorder {
        inner: exporter,
        runtime: tokio::runtime::Handle::current(),
        ledgers: Arc::clone(ledgers),
        failures: Arc::clone(failures),
        collector,
    };
    SdkTracerProvider::builder()
        .with_batch_exporter(recorder)
        .with_resource(
            opentelemetry_sdk::Resource::builder_empty()
                .with_attributes([opentelemetry::KeyValue::new(
                    "service.name",
                    service.to_owned(),
                )])
                .build(),
        )
        .build()
}

/// Agent runs traced by two services, as a distributed trace: the planner (exporting with the
/// SDK's gRPC exporter to c1) starts the run, the sandbox (the SDK's HTTP/protobuf exporter to
/// c0) runs its tools as children of the planner's span, one on each side of `boundary`.
/// Returns the trace ids.
async fn sdk_runs(addrs: &Addrs, boundary: u64, ledgers: &Ledgers) -> Vec<String> {
    let tenant = TENANTS[SDK_TENANT];
    let failures = Arc::new(Mutex::new(Vec::new()));
    let mut metadata = tonic::metadata::MetadataMap::new();
    metadata.insert("x-scope-orgid", tenant.parse().unwrap());
    let grpc = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .with_endpoint(format!("http://{}", addrs.c1_grpc))
        .with_timeout(Duration::from_secs(30))
        .with_metadata(metadata)
        .build()
        .expect("gRPC exporter");
    let http = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary)
        .with_endpoint(format!(
            "http://{}/v1/traces",
            addrs.c0_http.read().unwrap()
        ))
        .with_timeout(Duration::from_secs(30))
        .with_headers([("X-Scope-OrgID".to_owned(), tenant.to_owned())].into())
        .build()
        .expect("HTTP exporter");
    let planner = sdk_provider(grpc, "planner-sdk-via-c1", 1, ledgers, &failures);
    let sandbox = sdk_provider(http, "sandbox-sdk-via-c0", 0, ledgers, &failures);
    let planner_tracer = planner.tracer("cluster-e2e");
    let sandbox_tracer = sandbox.tracer("cluster-e2e");
    let at = |seconds: i64, run: usize| {
        UNIX_EPOCH
            + Duration::from_nanos((boundary as i64 + seconds * SECOND as i64) as u64)
            + Duration::from_millis(run as u64)
    };
    let mut traces = Vec::new();
    for run in 0..SDK_RUNS {
        let root = planner_tracer
            .span_builder("invoke_agent planner")
            .with_start_time(at(-15, run))
            .with_attributes([
                opentelemetry::KeyValue::new("gen_ai.operation.name", "invoke_agent"),
                opentelemetry::KeyValue::new("gen_ai.agent.name", "planner"),
            ])
            .start(&planner_tracer);
        traces.push(root.span_context().trace_id().to_string());
        let cx = opentelemetry::Context::current_with_span(root);
        for (tool, start) in [("shell", -5), ("upload", 2)] {
            let mut span = sandbox_tracer
                .span_builder(format!("execute_tool {tool}"))
                .with_start_time(at(start, run))
                .with_attributes([
                    opentelemetry::KeyValue::new("gen_ai.operation.name", "execute_tool"),
                    opentelemetry::KeyValue::new("gen_ai.tool.name", tool),
                ])
                .start_with_context(&sandbox_tracer, &cx);
            span.end_with_timestamp(at(start + 1, run));
        }
        cx.span().end_with_timestamp(at(5, run));
    }
    let shutdown = tokio::task::spawn_blocking(move || (planner.shutdown(), sandbox.shutdown()))
        .await
        .expect("join");
    let failures = failures.lock().unwrap().clone();
    assert!(failures.is_empty(), "SDK exports failed: {failures:?}");
    shutdown.0.expect("planner provider shutdown");
    shutdown.1.expect("sandbox provider shutdown");
    traces
}

/// Rows of a query, or why it failed.
async fn try_rows(q: &Cairn, tenant: Option<&str>, sql: &str) -> Result<Vec<Value>, String> {
    let (status, body) = q.sql_raw(tenant, sql, "application/json").await;
    if status != 200 {
        return Err(format!(
            "{tenant:?} {sql}: {status} {}",
            String::from_utf8_lossy(&body)
        ));
    }
    match serde_json::from_slice(&body) {
        Ok(Value::Array(rows)) => Ok(rows),
        other => Err(format!("{sql}: not rows: {other:?}")),
    }
}

fn int_of(row: &Value, key: &str) -> i64 {
    row[key]
        .as_i64()
        .unwrap_or_else(|| panic!("{key} in {row}"))
}

/// At most 20 ids of a set, for messages.
fn some<'a>(ids: impl IntoIterator<Item = &'a String>) -> String {
    let ids: Vec<&String> = ids.into_iter().collect();
    let shown: Vec<&&String> = ids.iter().take(20).collect();
    format!(
        "{} ids{}: {shown:?}",
        ids.len(),
        if ids.len() > 20 { " (first 20)" } else { "" }
    )
}

/// Every span id of `tenant` as `q` sees it, and the ids seen more than once.
async fn span_ids(q: &Cairn, tenant: &str) -> Result<(BTreeSet<String>, BTreeSet<String>), String> {
    let rows = try_rows(q, Some(tenant), "SELECT span_id FROM spans").await?;
    let mut ids = BTreeSet::new();
    let mut twice = BTreeSet::new();
    for row in rows {
        let id = row["span_id"].as_str().expect("span_id").to_owned();
        if !ids.insert(id.clone()) {
            twice.insert(id);
        }
    }
    Ok((ids, twice))
}

/// What the poller has seen: each tenant's span ids at its last round, and rounds done.
#[derive(Default)]
struct Polled {
    seen: Vec<BTreeSet<String>>,
    rounds: usize,
}

/// One round of checks of what the querier shows while clients export and files are merged:
/// every tenant's span ids (none twice, none that was visible missing, none not sent to the
/// tenant, every one the `--ack stored` collector acknowledged), the same counted by SQL, and
/// for one tenant a round (it is the dearest query) the spans counted by the runs view.
async fn poll_round(q: &Cairn, ledgers: &Ledgers, polled: &Mutex<Polled>) -> Result<(), String> {
    let started = Instant::now();
    let round = polled.lock().unwrap().rounds;
    let mut took = Vec::new();
    for (t, tenant) in TENANTS.iter().enumerate() {
        let at = Instant::now();
        let must = ledgers.lock().unwrap()[t].stored.clone();
        let (ids, twice) = span_ids(q, tenant).await?;
        let sent = ledgers.lock().unwrap()[t].sent.clone();
        let before = std::mem::take(&mut polled.lock().unwrap().seen[t]);
        if !twice.is_empty() {
            return Err(format!(
                "round {round}, {tenant}: spans seen twice: {}",
                some(&twice)
            ));
        }
        let gone: Vec<&String> = before.difference(&ids).collect();
        if !gone.is_empty() {
            return Err(format!(
                "round {round}, {tenant}: spans visible before are missing now: {}",
                some(gone)
            ));
        }
        let missing: Vec<&String> = must.difference(&ids).collect();
        if !missing.is_empty() {
            return Err(format!(
                "round {round}, {tenant}: spans acknowledged as stored are not visible: {}",
                some(missing)
            ));
        }
        let foreign: Vec<&String> = ids.difference(&sent).collect();
        if !foreign.is_empty() {
            return Err(format!(
                "round {round}, {tenant}: spans never sent to this tenant: {}",
                some(foreign)
            ));
        }
        let visible = ids.len() as i64;
        polled.lock().unwrap().seen[t] = ids;
        let listed = at.elapsed();
        // The same through SQL aggregates (and the runs view: run summaries and the span files
        // without one), each a later snapshot.
        let runs = round % TENANTS.len() == t;
        let sql = if runs {
            "SELECT count(*) AS n, count(DISTINCT span_id) AS d, \
             (SELECT coalesce(sum(span_count), 0) FROM runs) AS r FROM spans"
        } else {
            "SELECT count(*) AS n, count(DISTINCT span_id) AS d, 0 AS r FROM spans"
        };
        let rows = try_rows(q, Some(tenant), sql).await?;
        let (n, d, r) = (
            int_of(&rows[0], "n"),
            int_of(&rows[0], "d"),
            int_of(&rows[0], "r"),
        );
        let sent = ledgers.lock().unwrap()[t].sent.len() as i64;
        if n != d || n < visible || n > sent {
            return Err(format!(
                "round {round}, {tenant}: count(*) {n}, count(DISTINCT span_id) {d}, \
                 {visible} ids visible before, {sent} sent"
            ));
        }
        if runs && (r < visible || r > sent) {
            return Err(format!(
                "round {round}, {tenant}: the runs view counts {r} spans; \
                 {visible} visible before, {sent} sent"
            ));
        }
        took.push(format!(
            "{tenant} {visible} spans {listed:.1?} + {:.1?}{}",
            at.elapsed() - listed,
            if runs { " with runs" } else { "" }
        ));
    }
    eprintln!(
        "poll round {round}: {:.1?} ({})",
        started.elapsed(),
        took.join(", ")
    );
    polled.lock().unwrap().rounds += 1;
    Ok(())
}

/// Every step of a trail answer, depth first.
fn steps_of(trail: &Value) -> Vec<&Value> {
    let mut out = Vec::new();
    let mut stack: Vec<&Value> = trail["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .rev()
        .collect();
    while let Some(step) = stack.pop() {
        out.push(step);
        if let Some(children) = step["children"].as_array() {
            stack.extend(children.iter().rev());
        }
    }
    out
}

/// A trail's span ids and the services its steps came from.
fn trail_summary(trail: &Value) -> (BTreeSet<String>, BTreeSet<String>) {
    let steps = steps_of(trail);
    let ids: BTreeSet<String> = steps
        .iter()
        .map(|s| s["span_id"].as_str().expect("span_id").to_owned())
        .collect();
    assert_eq!(ids.len(), steps.len(), "a step listed twice: {trail}");
    let services = steps
        .iter()
        .map(|s| s["service_name"].as_str().unwrap_or("?").to_owned())
        .collect();
    (ids, services)
}

/// What a querier answers about one tenant.
#[derive(Debug, PartialEq)]
struct Answers {
    ids: BTreeSet<String>,
    /// count(*), count(DISTINCT span_id), count(DISTINCT trace_id), sum(input_tokens), and the
    /// messages view's rows and resolved contents.
    counts: Value,
    /// Spans per trace, counted from the spans.
    spans_by_trace: BTreeMap<String, i64>,
    /// Spans per trace, from the runs view.
    runs: BTreeMap<String, i64>,
    /// The runs view's rows.
    run_rows: Vec<Value>,
}

/// What `q` answers about every tenant, and the trails of `trails`: (span ids, services, run).
async fn answers(
    q: &Cairn,
    trails: &[(usize, String)],
) -> (
    Vec<Answers>,
    Vec<(BTreeSet<String>, BTreeSet<String>, Value)>,
) {
    let mut out = Vec::new();
    for tenant in TENANTS {
        let rows = q
            .sql(Some(tenant), "SELECT trace_id, span_id FROM spans")
            .await;
        let mut ids = BTreeSet::new();
        let mut spans_by_trace = BTreeMap::new();
        for row in &rows {
            let id = row["span_id"].as_str().expect("span_id").to_owned();
            assert!(ids.insert(id.clone()), "{tenant}: {id} seen twice");
            let trace = row["trace_id"].as_str().expect("trace_id").to_owned();
            *spans_by_trace.entry(trace).or_insert(0) += 1;
        }
        let counts = q
            .sql(
                Some(tenant),
                "SELECT count(*) AS n, count(DISTINCT span_id) AS d, \
                 count(DISTINCT trace_id) AS t, sum(input_tokens) AS tokens, \
                 (SELECT count(*) FROM messages) AS messages, \
                 (SELECT count(content) FROM messages) AS resolved FROM spans",
            )
            .await
            .remove(0);
        let run_rows = q
            .sql(
                Some(tenant),
                "SELECT trace_id, span_count, root_name, input_tokens FROM runs ORDER BY trace_id",
            )
            .await;
        out.push(Answers {
            ids,
            counts,
            spans_by_trace,
            runs: run_rows
                .iter()
                .map(|r| {
                    let trace = r["trace_id"].as_str().expect("trace_id").to_owned();
                    (trace, int_of(r, "span_count"))
                })
                .collect(),
            run_rows,
        });
    }
    let mut runs = Vec::new();
    for (t, trace) in trails {
        let trail = q.run(Some(TENANTS[*t]), trace).await;
        let (ids, services) = trail_summary(&trail);
        runs.push((ids, services, trail["run"].clone()));
    }
    (out, runs)
}

/// Span-file counts in the bucket: (all `.parquet`, compaction outputs).
fn span_files(root: &Path) -> (usize, usize) {
    let all = parquet_files(&root.join(BUCKET).join(PREFIX).join("spans"));
    let compacted = all
        .iter()
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("compacted-"))
        })
        .count();
    (all.len(), compacted)
}

#[tokio::test(flavor = "multi_thread")]
async fn collectors_and_queriers_share_one_bucket() {
    let started = Instant::now();
    let s3 = start_s3();
    let env = s3_env(s3.port);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let store = format!("s3://{BUCKET}/{PREFIX}");
    let wal = temp_dir();
    let wal_dir = |k: usize| wal.path().join(format!("c{k}")).display().to_string();
    let (w0, w1) = (wal_dir(0), wal_dir(1));
    // Every file is a request of every query and an input of a merge: few, larger ones.
    let flush = ["--flush-interval", "1s"];
    let c0_flags = [&["--ack", "wal", "--wal-dir", w0.as_str()][..], &flush].concat();
    let collector = |flags: &[&str]| Cairn::start_role("collector", &store, flags, &env);
    let mut c0 = collector(&c0_flags);
    let c1 = collector(&[&["--ack", "wal", "--wal-dir", w1.as_str()][..], &flush].concat());
    let c2 = collector(&[&["--ack", "stored"][..], &flush].concat());
    let compactor = Cairn::start_role(
        "compact",
        &store,
        &[
            "--compaction",
            "on",
            "--compaction-interval",
            "1s",
            "--compaction-min-files",
            "2",
            // Longer than any query of this test takes on a loaded machine (a few seconds):
            // a merged file's inputs stay readable that long.
            "--compaction-grace",
            "10s",
        ],
        &env,
    );
    let q1 = Arc::new(Cairn::start_role(
        "query",
        &store,
        &["--pg-addr", "off"],
        &env,
    ));
    eprintln!("cluster up in {:.1?}", started.elapsed());

    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    // The start of the previous hour: each run has steps in the hour before it and in the one
    // after it, two hours that are over (so compaction merges them from two files).
    let boundary = (now / 3600 - 1) * 3600 * SECOND;
    let addrs = Arc::new(Addrs {
        c0_http: RwLock::new(c0.otlp_http.clone()),
        c1_grpc: c1.grpc.clone(),
        c2_http: c2.otlp_http.clone(),
    });
    let ledgers: Ledgers = Arc::new(Mutex::new(
        TENANTS.iter().map(|_| Ledger::default()).collect(),
    ));
    let merges_before = compactor
        .metric("cairn_compaction_merges_total", "spans")
        .await;

    // The poller runs from the first export until every span is visible.
    let stop = Arc::new(AtomicBool::new(false));
    let polled = Arc::new(Mutex::new(Polled {
        seen: vec![BTreeSet::new(); TENANTS.len()],
        rounds: 0,
    }));
    let poller = {
        let (q, ledgers, stop) = (Arc::clone(&q1), Arc::clone(&ledgers), Arc::clone(&stop));
        let polled = Arc::clone(&polled);
        tokio::spawn(async move {
            while !stop.load(Ordering::SeqCst) {
                poll_round(&q, &ledgers, &polled).await?;
            }
            Ok::<(), String>(())
        })
    };
    let clients = |phase: u32, batches: u32, c0_may_fail: bool| {
        TENANTS
            .iter()
            .enumerate()
            .map(|(t, _)| {
                tokio::spawn(client_run(
                    t,
                    phase,
                    batches,
                    boundary,
                    Arc::clone(&addrs),
                    Arc::clone(&ledgers),
                    c0_may_fail,
                ))
            })
            .collect::<Vec<_>>()
    };

    // Phase 1: every collector up; raw clients of three tenants and the SDK clients at once.
    let steady = clients(0, STEADY_BATCHES, false);
    let sdk_traces = sdk_runs(&addrs, boundary, &ledgers).await;
    for c in steady {
        c.await.unwrap().unwrap_or_else(|e| panic!("{e}"));
    }
    if poller.is_finished() {
        panic!("poller: {:?}", poller.await.unwrap());
    }
    eprintln!("steady phase done at {:.1?}", started.elapsed());

    // Phase 2: c0 is killed with SIGKILL mid-stream and restarted on the same log directory.
    let acked_by_c0 = || {
        ledgers
            .lock()
            .unwrap()
            .iter()
            .map(|l| l.acked.values().filter(|c| **c == 0).count())
            .sum::<usize>()
    };
    let acked_before_phase = acked_by_c0();
    let crashing = clients(1, CRASH_BATCHES, true);
    // Killed once c0 has acknowledged the first batch of this phase, with the other batches
    // still to send: however fast the machine, the kill lands mid-stream.
    let deadline = Instant::now() + Duration::from_secs(20);
    while acked_by_c0() == acked_before_phase && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut written = c0.metric("cairn_files_written_total", "spans").await;
    assert!(c0.alive());
    let acked_by_c0_before = acked_by_c0();
    c0.crash();
    let left: Vec<String> = std::fs::read_dir(&w0)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    eprintln!(
        "c0 killed after acknowledging {acked_by_c0_before} spans; its log directory holds {left:?}"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    c0 = collector(&c0_flags);
    *addrs.c0_http.write().unwrap() = c0.otlp_http.clone();
    for c in crashing {
        c.await.unwrap().unwrap_or_else(|e| panic!("{e}"));
    }
    if poller.is_finished() {
        panic!("poller: {:?}", poller.await.unwrap());
    }
    eprintln!("crash phase done at {:.1?}", started.elapsed());

    // Every acknowledged span becomes visible (c0's log replayed) while the poller goes on
    // checking, and it checks a few more rounds while compaction merges what was written.
    let rounds_before = polled.lock().unwrap().rounds;
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        let (missing, rounds) = {
            let polled = polled.lock().unwrap();
            let ledgers = ledgers.lock().unwrap();
            let missing: usize = (ledgers.iter().zip(&polled.seen))
                .map(|(l, seen)| l.acked.keys().filter(|id| !seen.contains(*id)).count())
                .sum();
            (missing, polled.rounds)
        };
        if poller.is_finished() || (missing == 0 && rounds > rounds_before && rounds >= MIN_ROUNDS)
        {
            break;
        }
        if Instant::now() > deadline {
            eprintln!("{missing} acknowledged spans not visible after 40 s");
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    stop.store(true, Ordering::SeqCst);
    poller.await.unwrap().unwrap_or_else(|e| panic!("{e}"));
    let rounds = polled.lock().unwrap().rounds;
    let merges_polled = compactor
        .metric("cairn_compaction_merges_total", "spans")
        .await
        - merges_before;
    eprintln!(
        "{rounds} poll rounds while compaction committed {merges_polled} span merges ({:.1?})",
        started.elapsed()
    );
    assert!(rounds >= MIN_ROUNDS, "only {rounds} poll rounds");
    assert!(
        merges_polled >= 1.0,
        "no merge was committed while the poller ran"
    );
    // The clients are done: what they did, by tenant.
    let ledgers = std::mem::take(&mut *ledgers.lock().unwrap());
    // A second querier, started after everything was written (compared with the first below).
    let q2 = Cairn::start_role("query", &store, &["--pg-addr", "off"], &env);

    // Exactly once: every acknowledged span, no span twice, nothing not sent; spans of failed
    // exports at most once.
    let mut failures = Vec::new();
    for (t, tenant) in TENANTS.iter().enumerate() {
        let (ids, twice) = span_ids(&q1, tenant).await.unwrap();
        let ledger = &ledgers[t];
        if !twice.is_empty() {
            failures.push(format!("{tenant}: stored twice: {}", some(&twice)));
        }
        for c in 0..3 {
            let lost: Vec<&String> = ledger
                .acked
                .iter()
                .filter(|(id, by)| **by == c && !ids.contains(*id))
                .map(|(id, _)| id)
                .collect();
            if !lost.is_empty() {
                failures.push(format!(
                    "{tenant}: acknowledged by c{c} but missing: {}",
                    some(lost)
                ));
            }
        }
        let extra: Vec<&String> = ids
            .iter()
            .filter(|id| !ledger.acked.contains_key(*id) && !ledger.unacked.contains(*id))
            .collect();
        if !extra.is_empty() {
            failures.push(format!("{tenant}: stored but never sent: {}", some(extra)));
        }
        let counts = q1
            .sql(
                Some(tenant),
                "SELECT count(*) AS n, count(DISTINCT span_id) AS d FROM spans",
            )
            .await;
        let (n, d) = (int_of(&counts[0], "n"), int_of(&counts[0], "d"));
        if n != d || n != ids.len() as i64 {
            failures.push(format!(
                "{tenant}: count(*) {n}, count(DISTINCT span_id) {d}, {} ids",
                ids.len()
            ));
        }
        let failed_stored = ids.iter().filter(|id| ledger.unacked.contains(*id)).count();
        eprintln!(
            "{tenant}: {} spans stored: {} acknowledged ({} by c0), \
             {failed_stored} of {} from failed exports",
            ids.len(),
            ledger.acked.len(),
            ledger.acked.values().filter(|c| **c == 0).count(),
            ledger.unacked.len()
        );
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(
        ledgers.iter().any(|l| !l.unacked.is_empty()),
        "the kill failed no export: it was not mid-stream"
    );

    eprintln!("exactly once: checked at {:.1?}", started.elapsed());

    // Tenants are separate: nothing without a tenant, nothing of another tenant by trace id.
    assert_eq!(q1.count(None, "spans").await, 0, "the default tenant");
    for (t, tenant) in TENANTS.iter().enumerate() {
        let other = TENANTS[(t + 1) % TENANTS.len()];
        let theirs: Vec<String> = ledgers[(t + 1) % TENANTS.len()]
            .traces
            .keys()
            .take(3)
            .cloned()
            .collect();
        let list = theirs
            .iter()
            .map(|id| format!("'{id}'"))
            .collect::<Vec<_>>()
            .join(", ");
        assert_eq!(
            q1.count(Some(tenant), &format!("spans WHERE trace_id IN ({list})"))
                .await,
            0,
            "{tenant} sees {other}'s traces"
        );
        let (status, _) = q1
            .get(Some(tenant), &format!("/api/v1/runs/{}", theirs[0]))
            .await;
        assert_eq!(status, 404, "{tenant} reads {other}'s run {}", theirs[0]);
    }

    // Trails of runs whose steps came through all three collectors (and both hours), and of the
    // SDK's distributed traces.
    let mut trails = Vec::new();
    for (t, tenant) in TENANTS.iter().enumerate() {
        let whole_runs: Vec<(String, BTreeSet<String>)> = {
            let ledger = &ledgers[t];
            ledger
                .traces
                .iter()
                .filter(|(trace, spans)| {
                    trace.starts_with("ca17") && spans.iter().all(|s| ledger.acked.contains_key(s))
                })
                .map(|(trace, spans)| (trace.clone(), spans.clone()))
                .collect()
        };
        assert!(whole_runs.len() >= 10, "{tenant}: few whole runs");
        // The first run of the steady phase and the last of the crash phase.
        for (trace, spans) in [whole_runs.first(), whole_runs.last()]
            .into_iter()
            .flatten()
        {
            let trail = q1.run(Some(tenant), trace).await;
            let (ids, services) = trail_summary(&trail);
            assert_eq!(&ids, spans, "{tenant} run {trace}: {trail}");
            assert_eq!(
                services,
                BTreeSet::from(["via-c0".into(), "via-c1".into(), "via-c2".into()]),
                "{tenant} run {trace}"
            );
            assert_eq!(trail["steps"].as_array().unwrap().len(), 1, "one root");
            assert_eq!(
                trail["run"]["span_count"], SPANS_PER_TRACE,
                "{tenant} run {trace}: {}",
                trail["run"]
            );
            trails.push((t, trace.clone()));
        }
    }
    for trace in &sdk_traces {
        let expected = ledgers[SDK_TENANT].traces[trace].clone();
        assert_eq!(expected.len(), 3, "SDK run {trace}");
        let trail = q1.run(Some(TENANTS[SDK_TENANT]), trace).await;
        let (ids, services) = trail_summary(&trail);
        assert_eq!(ids, expected, "SDK run {trace}: {trail}");
        assert_eq!(
            services,
            BTreeSet::from(["planner-sdk-via-c1".into(), "sandbox-sdk-via-c0".into()]),
            "SDK run {trace}"
        );
        assert_eq!(trail["run"]["span_count"], 3, "SDK run {trace}");
    }
    trails.push((SDK_TENANT, sdk_traces[0].clone()));

    eprintln!("tenants and trails checked at {:.1?}", started.elapsed());

    // Compaction happened: the compactor's own /metrics counts merges and deletions, and the
    // bucket holds fewer span files than the collectors wrote.
    for c in [&c0, &c1, &c2] {
        written += c.metric("cairn_files_written_total", "spans").await;
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    let (files, compacted) = loop {
        let (files, compacted) = span_files(s3.root.path());
        let deleted = compactor
            .metric("cairn_compaction_files_deleted_total", "spans")
            .await;
        if (files as f64) < written && compacted > 0 && deleted > 0.0 {
            break (files, compacted);
        }
        assert!(
            Instant::now() < deadline,
            "compaction did not merge: {files} span files ({compacted} merged) in the bucket, \
             {written} written, {deleted} deleted"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    let merges = compactor
        .metric("cairn_compaction_merges_total", "spans")
        .await;
    eprintln!(
        "{written} span files written, {files} in the bucket ({compacted} merged), {merges} merges"
    );

    // A querier started now answers exactly as the first one; the runs view agrees with the
    // spans, run by run; every message (stored by whichever collector) is resolved.
    let (first, second) = tokio::join!(answers(&q1, &trails), answers(&q2, &trails));
    for (tenant, (a, b)) in TENANTS.iter().zip(first.0.iter().zip(&second.0)) {
        assert!(a == b, "{tenant}: the queriers disagree:\n{a:?}\n{b:?}");
        if a.spans_by_trace != a.runs {
            let differ: Vec<String> = (a.spans_by_trace.keys().chain(a.runs.keys()))
                .filter(|k| a.spans_by_trace.get(*k) != a.runs.get(*k))
                .take(10)
                .map(|k| {
                    format!(
                        "{k}: {:?} spans, {:?} in runs",
                        a.spans_by_trace.get(k),
                        a.runs.get(k)
                    )
                })
                .collect();
            panic!("{tenant}: the runs view disagrees with the spans: {differ:?}");
        }
        assert_eq!(a.counts["messages"], a.counts["resolved"], "{tenant}");
        assert!(int_of(&a.counts, "messages") > 0, "{tenant}: no messages");
    }
    assert_eq!(first.1, second.1, "the queriers' trails disagree");
    eprintln!("done in {:.1?}", started.elapsed());
    for c in [c0, c1, c2] {
        assert!(c.stop(), "a collector did not stop cleanly");
    }
    assert!(compactor.stop(), "the compactor did not stop cleanly");
    drop(q2);
}

/// The `runs` view (and with it the trail's `run`, run search and every view over runs) reads
/// the span files and run summaries of an `s3://bucket/prefix` store, as it does those of a
/// local directory. Minimal reproduction of what the scenario above first ran into: one
/// process, one trace.
#[tokio::test(flavor = "multi_thread")]
async fn runs_view_reads_a_prefixed_bucket() {
    let s3 = start_s3();
    let env = s3_env(s3.port);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let cairn = Cairn::start_on(
        &format!("s3://{BUCKET}/{PREFIX}"),
        &["--ack", "stored"],
        &env,
    );
    let span = serde_json::json!({
        "traceId": "0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a",
        "spanId": "0102030405060708",
        "name": "invoke_agent planner",
        "startTimeUnixNano": "1764290000000000000",
        "endTimeUnixNano": "1764290000000001000",
    });
    let export = serde_json::json!({"resourceSpans": [{"scopeSpans": [{"spans": [span]}]}]});
    cairn.send_json(export.to_string()).await;
    assert_eq!(cairn.count(None, "spans").await, 1);
    let runs = cairn
        .sql(None, "SELECT trace_id, span_count FROM runs")
        .await;
    assert_eq!(
        runs,
        [serde_json::json!({"trace_id": "0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a", "span_count": 1})],
        "the runs view misses the span files and summaries of an s3://bucket/prefix store"
    );
    let trail = cairn.run(None, "0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a").await;
    assert_eq!(trail["run"]["span_count"], 1, "{trail}");
}

/// Compaction on an `s3://bucket/prefix` store keeps every row of the files it merges.
/// Minimal reproduction of the data loss the scenario above runs into: one process, two small
/// files in an hour that is over.
#[tokio::test(flavor = "multi_thread")]
async fn compaction_keeps_rows_on_a_prefixed_bucket() {
    let s3 = start_s3();
    let env = s3_env(s3.port);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let cairn = Cairn::start_on(
        &format!("s3://{BUCKET}/{PREFIX}"),
        &[
            "--ack",
            "stored",
            "--compaction",
            "on",
            "--compaction-interval",
            "200ms",
            "--compaction-min-files",
            "2",
            "--compaction-grace",
            "30s",
        ],
        &env,
    );
    let past_hour = (SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        / 3600
        - 2)
        * 3600
        * SECOND;
    for file in 0..2u64 {
        let spans: Vec<Value> = (0..5u64)
            .map(|i| {
                serde_json::json!({
                    "traceId": format!("{:032x}", file + 1),
                    "spanId": format!("{:016x}", file * 16 + i + 1),
                    "name": "step",
                    "startTimeUnixNano": (past_hour + i).to_string(),
                    "endTimeUnixNano": (past_hour + i + 1000).to_string(),
                })
            })
            .collect();
        cairn
            .send_json(
                serde_json::json!({"resourceSpans": [{"scopeSpans": [{"spans": spans}]}]})
                    .to_string(),
            )
            .await;
    }
    assert_eq!(cairn.count(None, "spans").await, 10);
    let deadline = Instant::now() + Duration::from_secs(30);
    while cairn.metric("cairn_compaction_merges_total", "spans").await < 1.0 {
        assert!(Instant::now() < deadline, "no merge");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        cairn.count(None, "spans").await,
        10,
        "merging the two files of a prefixed bucket lost rows"
    );
}
