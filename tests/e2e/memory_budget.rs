//! An oversized burst against a small memory budget: 16 connections over OTLP/gRPC, 16 more
//! sending gzip messages (a few KB each, inflating to megabytes) and then 64 over OTLP/HTTP,
//! each sending export requests of 4 to 15 MiB at once, far more than `--max-buffer-size`
//! holds. What does not fit is refused as retryable (RESOURCE_EXHAUSTED
//! with RetryInfo, or 429/503), never with a final error; every accepted span is stored exactly
//! once; the server stays up. The peak RSS read from `/proc` is reported beside the budget
//! (`benches/memory_budget.py` measures it against several budgets).

use std::sync::Arc;

use bytes::Bytes;
use cairn_bench::send::{Client, Outcome, Protocol};
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use prost::Message;
use tokio::sync::Mutex;

use crate::bad_input::{request, span};
use crate::harness::Cairn;

const BUDGET_MIB: u64 = 96;
const TENANT: &str = "burst";
/// Bytes of the one large attribute of every span.
const VALUE_BYTES: usize = 64 << 10;

/// An export of about `mib` MiB: spans of one trace per (connection, request), each with a
/// distinct 64 KiB attribute.
fn export(connection: u32, seq: u32, mib: usize) -> (Bytes, usize) {
    let spans = mib * (1 << 20) / VALUE_BYTES;
    let mut trace = [0u8; 16];
    trace[..4].copy_from_slice(&connection.to_be_bytes());
    trace[4..8].copy_from_slice(&seq.to_be_bytes());
    trace[15] = 1;
    let spans: Vec<_> = (0..spans)
        .map(|i| {
            let mut s = span(trace, 1, "burst");
            s.span_id = [
                &connection.to_be_bytes()[2..],
                &(seq as u16).to_be_bytes()[..],
                &(i as u32 + 1).to_be_bytes()[..],
            ]
            .concat();
            let fill = format!("{connection}-{seq}-{i}-");
            let value = fill.repeat(VALUE_BYTES / fill.len() + 1)[..VALUE_BYTES].to_owned();
            s.attributes.push(KeyValue {
                key: "tool.result".into(),
                value: Some(AnyValue {
                    value: Some(any_value::Value::StringValue(value)),
                }),
                ..Default::default()
            });
            s
        })
        .collect();
    let n = spans.len();
    (Bytes::from(request(spans).encode_to_vec()), n)
}

#[derive(Default)]
struct Tally {
    accepted_spans: usize,
    accepted: usize,
    refused: usize,
}

/// `connections` clients over `protocol` (gzip or not) each send `per_connection` exports of 4
/// to 15 MiB at once, none retried.
async fn burst(
    cairn: &Cairn,
    (protocol, gzip): (Protocol, bool),
    connections: u32,
    per_connection: u32,
    base: u32,
) -> Tally {
    let endpoint = match protocol {
        Protocol::Grpc => format!("http://{}", cairn.grpc),
        Protocol::Http => format!("http://{}", cairn.otlp_http),
    };
    let tally = Arc::new(Mutex::new(Tally::default()));
    let mut tasks = Vec::new();
    for c in 0..connections {
        let (endpoint, tally) = (endpoint.clone(), Arc::clone(&tally));
        tasks.push(tokio::spawn(async move {
            let mut client = Client::connect(protocol, &endpoint, TENANT, gzip)
                .await
                .unwrap();
            for seq in 0..per_connection {
                let mib = 4 + ((c + seq * 7) % 12) as usize;
                let (body, spans) = export(base + c, seq, mib);
                match client.send(body, 0).await {
                    Ok(Outcome::Accepted { rejected }) => {
                        assert_eq!(rejected, 0);
                        let mut t = tally.lock().await;
                        t.accepted += 1;
                        t.accepted_spans += spans;
                    }
                    Ok(Outcome::Retry(_)) => tally.lock().await.refused += 1,
                    Err(e) => panic!("a {mib} MiB export was not refused retryably: {e}"),
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    Arc::try_unwrap(tally).ok().unwrap().into_inner()
}

#[tokio::test(flavor = "multi_thread")]
async fn an_oversized_burst_is_refused_retryably_and_nothing_accepted_is_lost() {
    let budget = format!("{BUDGET_MIB}MiB");
    let mut cairn = Cairn::start(&["--max-buffer-size", &budget, "--flush-interval", "300ms"]);
    let mut accepted_spans = 0;
    for (wire, connections, per_connection, base) in [
        ((Protocol::Grpc, false), 16, 4, 0),
        ((Protocol::Grpc, true), 16, 3, 2000),
        ((Protocol::Http, false), 64, 2, 1000),
    ] {
        let t = burst(&cairn, wire, connections, per_connection, base).await;
        println!(
            "{wire:?}, {connections} connections: {} exports accepted ({} spans), {} refused; \
             peak RSS {} MiB against a {BUDGET_MIB} MiB budget",
            t.accepted,
            t.accepted_spans,
            t.refused,
            cairn_bench::process::peak_rss(cairn.pid()).unwrap_or(0) >> 20,
        );
        assert!(
            t.refused > 0,
            "{connections} connections of 4-15 MiB exports fit in {BUDGET_MIB} MiB?"
        );
        assert!(t.accepted > 0, "nothing was accepted");
        accepted_spans += t.accepted_spans;
    }
    assert!(cairn.alive(), "the process died");
    // Acknowledged once in the write-ahead log; visible once flushed, which a debug build
    // takes a while to do for this much.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(180);
    let stored = loop {
        let n = cairn.count(Some(TENANT), "spans").await;
        if n >= accepted_spans as i64 || std::time::Instant::now() > deadline {
            break n;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    assert_eq!(
        stored, accepted_spans as i64,
        "everything accepted is stored"
    );
    let distinct = cairn
        .count(
            Some(TENANT),
            "(SELECT DISTINCT trace_id, span_id FROM spans)",
        )
        .await;
    assert_eq!(distinct, stored, "once");
    // Every charge was given back: refused calls, accepted ones once written.
    let text = crate::harness::metrics_text(&cairn.metrics).await;
    assert!(text.contains("\ncairn_buffer_bytes "), "{text}");
    // The allocator's own account, beside it.
    let allocated = cairn.metric("cairn_memory_allocated_bytes", "").await;
    let resident = cairn.metric("cairn_memory_resident_bytes", "").await;
    println!(
        "after the burst: {} MiB allocated, {} MiB held by the allocator",
        allocated as u64 >> 20,
        resident as u64 >> 20
    );
    assert!(
        allocated >= (1 << 20) as f64 && resident >= allocated,
        "{text}"
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let held = cairn.metric("cairn_buffer_bytes", "").await;
        if held == 0.0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{held} bytes of the budget stay held"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}
