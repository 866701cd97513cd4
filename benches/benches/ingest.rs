//! Throughput of each stage of ingest on a realistic agent workload: OTLP protobuf and JSON
//! decoding, normalisation into Arrow (agent columns, payload extraction and hashing), Parquet
//! encoding of spans and payloads, the trace-wide pass each flush makes (agents inherited, tool
//! calls matched), and hashing alone. Run with
//! `cargo bench -p cairn-bench --bench ingest`; see `benches/README.md`.

use std::hint::black_box;

use cairn_bench::workload::{span_count, Workload, EPOCH_NANOS};
use cairn_normalize::encode::encode;
use cairn_normalize::otlp::collector::trace::v1::ExportTraceServiceRequest;
use cairn_store::file_format::Effort;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use prost::Message;

fn stages(c: &mut Criterion) {
    // 20 agent runs (about 220 spans), as one export request.
    let request = Workload::new(1).request(0, 20, EPOCH_NANOS, 1_000_000_000);
    let spans = span_count(&request) as u64;
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
    // The trace-wide pass each flush makes before writing (inherited agents, model calls
    // counted once, tool calls matched to the turn that asked for them).
    let all_spans = arrow::compute::concat_batches(&span_batches[0].schema(), &span_batches)
        .expect("one schema");
    g.bench_function("resolve_across_spans", |b| {
        b.iter(|| cairn_normalize::agent::across_spans(black_box(&all_spans)))
    });
    g.bench_function("parquet_spans", |b| {
        b.iter(|| {
            cairn_store::parquet::encode_spans(black_box(&span_batches), Effort::Ingest).unwrap()
        })
    });
    // The trace index entries written beside each span file, computed and encoded.
    g.bench_function("trace_index_entries", |b| {
        b.iter(|| {
            let entries =
                cairn_store::trace_index::entries(black_box(&all_spans), 0, |_| Some(0)).unwrap();
            cairn_store::parquet::encode_trace_index(&[entries], Effort::Ingest).unwrap()
        })
    });
    g.bench_function("parquet_payloads", |b| {
        b.iter(|| {
            cairn_store::parquet::encode_payloads(black_box(&payload_batches), Effort::Ingest)
                .unwrap()
        })
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
                cairn_store::parquet::encode_spans(std::slice::from_ref(&p.spans), Effort::Ingest)
                    .unwrap();
                cairn_store::parquet::encode_payloads(
                    std::slice::from_ref(&p.payloads),
                    Effort::Ingest,
                )
                .unwrap();
            }
        })
    });
    g.finish();

    let message = "x".repeat(4096);
    let mut g = c.benchmark_group("payload");
    g.throughput(Throughput::Bytes(message.len() as u64));
    g.bench_function("hash_4k", |b| {
        b.iter(|| cairn_normalize::payload::hash(black_box(&message)))
    });
    g.finish();
}

criterion_group!(benches, stages);
criterion_main!(benches);
