//! Throughput of each stage of ingest on a realistic agent workload: OTLP protobuf and JSON
//! decoding, normalisation into Arrow (agent columns, payload extraction and hashing), Parquet
//! encoding of spans and payloads, and hashing alone. Run with
//! `cargo bench -p cairn-collector --bench ingest`; see `benches/README.md`.

use std::hint::black_box;

use cairn_schema::encode::encode;
use cairn_schema::otlp::collector::trace::v1::ExportTraceServiceRequest;
use cairn_schema::otlp::common::v1::{any_value::Value, AnyValue, KeyValue};
use cairn_schema::otlp::resource::v1::Resource;
use cairn_schema::otlp::trace::v1::{ResourceSpans, ScopeSpans, Span};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use prost::Message;

/// A deterministic pseudo-random sequence.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Prose-like text of about `len` bytes from a 4,000-word vocabulary.
fn text(rng: &mut Rng, vocab: &[String], len: usize) -> String {
    let mut out = String::with_capacity(len + 16);
    while out.len() < len {
        out.push_str(&vocab[rng.below(vocab.len() as u64) as usize]);
        out.push(if rng.below(12) == 0 { '.' } else { ' ' });
    }
    out
}

fn kv(key: &str, value: Value) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(value) }),
        ..Default::default()
    }
}

fn s(key: &str, v: impl Into<String>) -> KeyValue {
    kv(key, Value::StringValue(v.into()))
}

/// `runs` agent runs of 10 spans: an agent span, four model turns carrying the growing
/// conversation (messages of 0.5–8 KB), four tool calls with arguments and results, and an
/// approval, with Kubernetes, sandbox and policy resource attributes.
fn workload(runs: u64) -> ExportTraceServiceRequest {
    let mut rng = Rng(0x5eed);
    let vocab: Vec<String> = (0..4000)
        .map(|_| {
            let n = 3 + rng.below(8);
            (0..n)
                .map(|_| (b'a' + rng.below(26) as u8) as char)
                .collect()
        })
        .collect();
    let mut spans = Vec::new();
    for run in 0..runs {
        let trace_id = (run as u128 + 1).to_be_bytes().to_vec();
        let id = |i: u64| ((run << 8) | i).to_be_bytes().to_vec();
        let t0 = 1_764_300_000_000_000_000u64 + run * 1_000_000_000;
        let mut conversation = vec![format!(
            r#"{{"role":"user","parts":[{{"type":"text","content":"{}"}}]}}"#,
            text(&mut rng, &vocab, 500)
        )];
        spans.push(Span {
            trace_id: trace_id.clone(),
            span_id: id(1),
            name: "invoke_agent planner".into(),
            start_time_unix_nano: t0,
            end_time_unix_nano: t0 + 900_000_000,
            attributes: vec![
                s("gen_ai.operation.name", "invoke_agent"),
                s("gen_ai.agent.name", "planner"),
                s("gen_ai.conversation.id", format!("conv-{run}")),
            ],
            ..Default::default()
        });
        for turn in 0..4u64 {
            let call = format!("call_{run}_{turn}");
            let answer = format!(
                r#"{{"role":"assistant","parts":[{{"type":"tool_call","id":"{call}","name":"search","arguments":{{"q":"{}"}}}}]}}"#,
                text(&mut rng, &vocab, 60)
            );
            let t = t0 + turn * 200_000_000;
            spans.push(Span {
                trace_id: trace_id.clone(),
                span_id: id(2 + turn * 2),
                parent_span_id: id(1),
                name: "chat gpt-4o".into(),
                start_time_unix_nano: t,
                end_time_unix_nano: t + 100_000_000,
                attributes: vec![
                    s("gen_ai.operation.name", "chat"),
                    s("gen_ai.request.model", "gpt-4o"),
                    s("gen_ai.response.model", "gpt-4o-2024-08-06"),
                    s("gen_ai.provider.name", "openai"),
                    kv(
                        "gen_ai.usage.input_tokens",
                        Value::IntValue(900 + turn as i64 * 300),
                    ),
                    kv("gen_ai.usage.output_tokens", Value::IntValue(120)),
                    s(
                        "gen_ai.input.messages",
                        format!("[{}]", conversation.join(",")),
                    ),
                    s("gen_ai.output.messages", format!("[{answer}]")),
                ],
                ..Default::default()
            });
            let len = 500 + rng.below(7500) as usize;
            let result = text(&mut rng, &vocab, len);
            spans.push(Span {
                trace_id: trace_id.clone(),
                span_id: id(3 + turn * 2),
                parent_span_id: id(1),
                name: "execute_tool search".into(),
                start_time_unix_nano: t + 100_000_000,
                end_time_unix_nano: t + 190_000_000,
                attributes: vec![
                    s("gen_ai.operation.name", "execute_tool"),
                    s("gen_ai.tool.name", "search"),
                    s("gen_ai.tool.call.id", call.clone()),
                    s("gen_ai.tool.call.arguments", r#"{"q":"refund policy"}"#),
                    s("gen_ai.tool.call.result", result.clone()),
                    kv(
                        "agent_trail.data.read",
                        Value::StringValue(format!("s3://kb/docs/{}.md", rng.below(500))),
                    ),
                ],
                ..Default::default()
            });
            conversation.push(answer);
            conversation.push(format!(
                r#"{{"role":"tool","parts":[{{"type":"tool_call_response","id":"{call}","response":"{}"}}]}}"#,
                &result[..result.len().min(2000)]
            ));
        }
        spans.push(Span {
            trace_id: trace_id.clone(),
            span_id: id(10),
            parent_span_id: id(1),
            name: "approval issue_refund".into(),
            start_time_unix_nano: t0 + 850_000_000,
            end_time_unix_nano: t0 + 880_000_000,
            attributes: vec![
                s("agent_trail.operation", "approval"),
                s("agent_trail.approval.state", "granted"),
                s("agent_trail.approval.approver.id", "alice"),
            ],
            ..Default::default()
        });
    }
    let resource = Resource {
        attributes: vec![
            s("service.name", "support-agent"),
            s("k8s.namespace.name", "agents"),
            s("k8s.pod.name", "support-agent-7d9f"),
            s("agent_trail.sandbox.id", "sbx-1"),
            s("agent_trail.policy.snapshot.id", "policy-2026-11"),
            s(
                "agent_trail.policy.document",
                r#"{"requires_approval":["issue_refund"]}"#,
            ),
        ],
        ..Default::default()
    };
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
}

fn stages(c: &mut Criterion) {
    let request = workload(20);
    let spans = 200u64;
    let protobuf = request.encode_to_vec();
    let json = serde_json::to_vec(&request).expect("json");
    let encoded = encode(&request).expect("encode");
    let span_batches: Vec<_> = encoded.partitions.iter().map(|p| p.spans.clone()).collect();
    let payload_batches: Vec<_> = encoded
        .partitions
        .iter()
        .map(|p| p.payloads.clone())
        .collect();

    let mut g = c.benchmark_group("ingest");
    g.throughput(Throughput::Bytes(protobuf.len() as u64));
    g.bench_function("decode_protobuf", |b| {
        b.iter(|| ExportTraceServiceRequest::decode(black_box(protobuf.as_slice())).unwrap())
    });
    g.bench_function("normalise_to_arrow", |b| {
        b.iter(|| encode(black_box(&request)).unwrap())
    });
    g.bench_function("parquet_spans", |b| {
        b.iter(|| cairn_collector::parquet::encode_spans(black_box(&span_batches)).unwrap())
    });
    g.bench_function("parquet_payloads", |b| {
        b.iter(|| cairn_collector::parquet::encode_payloads(black_box(&payload_batches)).unwrap())
    });
    g.throughput(Throughput::Bytes(json.len() as u64));
    g.bench_function("decode_json", |b| {
        b.iter(|| serde_json::from_slice::<ExportTraceServiceRequest>(black_box(&json)).unwrap())
    });
    g.finish();

    let mut g = c.benchmark_group("ingest_spans");
    g.throughput(Throughput::Elements(spans));
    g.bench_function("decode_normalise_encode", |b| {
        b.iter(|| {
            let r = ExportTraceServiceRequest::decode(black_box(protobuf.as_slice())).unwrap();
            let e = encode(&r).unwrap();
            for p in &e.partitions {
                cairn_collector::parquet::encode_spans(std::slice::from_ref(&p.spans)).unwrap();
                cairn_collector::parquet::encode_payloads(std::slice::from_ref(&p.payloads))
                    .unwrap();
            }
        })
    });
    g.finish();

    let message = "x".repeat(4096);
    let mut g = c.benchmark_group("payload");
    g.throughput(Throughput::Bytes(message.len() as u64));
    g.bench_function("hash_4k", |b| {
        b.iter(|| cairn_schema::payload::hash(black_box(&message)))
    });
    g.finish();
}

criterion_group!(benches, stages);
criterion_main!(benches);
