//! Crash safety of the write-ahead log and compaction: `kill -9` at random points while clients
//! stream spans and files are merged; after each restart every acknowledged span is present
//! exactly once, and the trace index names exactly the traces and hours stored.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};

use crate::harness::{temp_dir, Cairn};

const CLIENTS: u32 = 3;
const SPANS_PER_EXPORT: u32 = 10;
const EXPORTS_PER_CLIENT: u32 = 400;

fn request(iteration: u32, client: u32, seq: u32) -> (ExportTraceServiceRequest, Vec<String>) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let mut trace_id = [0u8; 16];
    trace_id[..4].copy_from_slice(&(iteration + 1).to_be_bytes());
    trace_id[4..8].copy_from_slice(&(client + 1).to_be_bytes());
    trace_id[8..12].copy_from_slice(&(seq + 1).to_be_bytes());
    let spans: Vec<Span> = (0..SPANS_PER_EXPORT)
        .map(|i| {
            let mut span_id = [0u8; 8];
            span_id[..2].copy_from_slice(&(iteration as u16 + 1).to_be_bytes());
            span_id[2] = client as u8 + 1;
            span_id[3..6].copy_from_slice(&(seq + 1).to_be_bytes()[1..]);
            span_id[6..].copy_from_slice(&(i as u16 + 1).to_be_bytes());
            Span {
                trace_id: trace_id.to_vec(),
                span_id: span_id.to_vec(),
                name: "step".into(),
                start_time_unix_nano: now,
                end_time_unix_nano: now + 1_000,
                ..Default::default()
            }
        })
        .collect();
    let ids = spans.iter().map(|s| hex::encode(&s.span_id)).collect();
    let req = ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            scope_spans: vec![ScopeSpans {
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    (req, ids)
}

/// A small deterministic generator for kill points.
fn next(state: &mut u64) -> u64 {
    *state = state
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    *state >> 33
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_9_loses_nothing_acknowledged() {
    let iterations: u32 = std::env::var("CAIRN_CRASH_ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let dir = temp_dir();
    let store = dir.path().join("data").display().to_string();
    // Compaction runs too, so crashes also land mid-merge and segments replayed after a crash
    // may already have been merged away.
    let flags = [
        "--ack",
        "wal",
        "--flush-interval",
        "150ms",
        "--compaction",
        "on",
        "--compaction-interval",
        "200ms",
        "--compaction-grace",
        "500ms",
        "--compaction-min-files",
        "4",
    ];
    let acked: Arc<Mutex<Vec<String>>> = Arc::default();
    let acked_traces: Arc<Mutex<HashSet<String>>> = Arc::default();
    let mut rng = 0x5eed_u64;
    for iteration in 0..iterations {
        let cairn = Cairn::start_on(&store, &flags, &[]);
        let endpoint = format!("http://{}", cairn.grpc);
        let stop = Arc::new(AtomicBool::new(false));
        let mut clients = Vec::new();
        for client in 0..CLIENTS {
            let (endpoint, stop, acked) = (endpoint.clone(), Arc::clone(&stop), Arc::clone(&acked));
            let acked_traces = Arc::clone(&acked_traces);
            clients.push(tokio::spawn(async move {
                let Ok(mut grpc) = TraceServiceClient::connect(endpoint).await else {
                    return;
                };
                for seq in 0..EXPORTS_PER_CLIENT {
                    if stop.load(Ordering::Relaxed) {
                        return;
                    }
                    let (req, ids) = request(iteration, client, seq);
                    let trace =
                        hex::encode(&req.resource_spans[0].scope_spans[0].spans[0].trace_id);
                    match grpc.export(req).await {
                        Ok(_) => {
                            acked.lock().unwrap().extend(ids);
                            acked_traces.lock().unwrap().insert(trace);
                        }
                        Err(_) => return,
                    }
                }
            }));
        }
        tokio::time::sleep(Duration::from_millis(50 + next(&mut rng) % 600)).await;
        cairn.crash();
        stop.store(true, Ordering::Relaxed);
        for c in clients {
            let _ = c.await;
        }
    }
    // A last start replays the log; then every acknowledged span is there exactly once. Its
    // compactor also gets to finish merges (and write their run summaries) among the files,
    // outputs and summaries the kills left.
    let cairn = Cairn::start_on(&store, &flags, &[]);
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    while crate::harness::files_ending(std::path::Path::new(&store), "runs").is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "compaction wrote no run summary"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let rows = cairn
        .sql(
            None,
            "SELECT span_id, count(*) AS n FROM spans GROUP BY span_id",
        )
        .await;
    let stored: HashMap<String, i64> = rows
        .iter()
        .map(|r| {
            (
                r["span_id"].as_str().unwrap().to_owned(),
                r["n"].as_i64().unwrap(),
            )
        })
        .collect();
    let acked: HashSet<String> = acked.lock().unwrap().iter().cloned().collect();
    assert!(
        acked.len() > 1000,
        "the clients got {} spans acknowledged",
        acked.len()
    );
    let missing: Vec<&String> = acked
        .iter()
        .filter(|id| !stored.contains_key(*id))
        .collect();
    let doubled: Vec<(&String, &i64)> = stored.iter().filter(|(_, n)| **n != 1).collect();
    println!(
        "crash loop: {iterations} kills, {} spans acknowledged, {} stored, {} missing, {} stored more than once",
        acked.len(),
        stored.len(),
        missing.len(),
        doubled.len()
    );
    assert!(
        missing.is_empty(),
        "{} acknowledged spans lost, e.g. {:?}",
        missing.len(),
        &missing[..missing.len().min(5)]
    );
    assert!(
        doubled.is_empty(),
        "spans stored twice: {:?}",
        &doubled[..doubled.len().min(5)]
    );

    // The trace index names exactly the (trace, hour) pairs stored: no entry without spans, no
    // stored trace without its entry; and every acknowledged trace is whole through it. Checked
    // with compaction off, whose short grace period here is shorter than these queries.
    assert!(cairn.stop());
    let cairn = Cairn::start_on(&store, &["--ack", "wal", "--compaction", "off"], &[]);
    let rows = cairn
        .sql(
            None,
            "SELECT DISTINCT trace_id, CAST(start_time AS BIGINT) / 3600000000000 AS hour FROM spans",
        )
        .await;
    let stored_pairs: HashSet<(String, i64)> = rows
        .iter()
        .map(|r| {
            (
                r["trace_id"].as_str().unwrap().to_owned(),
                r["hour"].as_i64().unwrap(),
            )
        })
        .collect();
    let indexed: HashSet<(String, i64)> = crate::harness::index_entries(&store, "default")
        .await
        .into_iter()
        .collect();
    assert!(std::path::Path::new(&store)
        .join("trace_index/tenant=default/complete.json")
        .exists());
    let dangling: Vec<_> = indexed.difference(&stored_pairs).collect();
    let unindexed: Vec<_> = stored_pairs.difference(&indexed).collect();
    assert!(
        dangling.is_empty(),
        "index entries without spans: {dangling:?}"
    );
    assert!(
        unindexed.is_empty(),
        "spans without index entries: {unindexed:?}"
    );
    let traces: Vec<String> = acked_traces.lock().unwrap().iter().cloned().collect();
    for chunk in traces.chunks(1000) {
        let list = chunk
            .iter()
            .map(|t| format!("'{t}'"))
            .collect::<Vec<_>>()
            .join(",");
        let rows = cairn
            .sql(
                None,
                &format!("SELECT trace_id, count(*) AS n FROM spans WHERE trace_id IN ({list}) GROUP BY trace_id"),
            )
            .await;
        let found: HashMap<&str, i64> = rows
            .iter()
            .map(|r| (r["trace_id"].as_str().unwrap(), r["n"].as_i64().unwrap()))
            .collect();
        for t in chunk {
            assert_eq!(
                found.get(t.as_str()),
                Some(&i64::from(SPANS_PER_EXPORT)),
                "acknowledged trace {t} through the index"
            );
        }
    }

    // Run summaries count every span once too: each run's span count (from summaries, and
    // from span files without one) is its spans'.
    let by_spans = cairn
        .sql(
            None,
            "SELECT trace_id, count(*) AS n FROM spans GROUP BY trace_id ORDER BY trace_id",
        )
        .await;
    let by_runs = cairn
        .sql(
            None,
            "SELECT trace_id, span_count AS n FROM runs ORDER BY trace_id",
        )
        .await;
    assert_eq!(by_runs.len(), by_spans.len(), "runs");
    assert!(
        by_runs == by_spans,
        "span counts of runs differ from their spans'"
    );
}
