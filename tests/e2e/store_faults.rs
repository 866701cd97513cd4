//! An object store that fails a third of its writes (half of those after the write took
//! effect): uploads are retried, merges abandoned and redone, and every acknowledged span is
//! stored exactly once.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::harness::{client, Cairn};

const EXPORTS: i64 = 60;
const SPANS: i64 = 10;

fn export(seq: i64, start: i64) -> String {
    let spans: Vec<_> = (0..SPANS)
        .map(|i| {
            json!({
                "traceId": format!("{:016x}{:016x}", seq + 1, 9),
                "spanId": format!("{:08x}{:08x}", seq + 1, i + 1),
                "name": "execute_tool",
                "startTimeUnixNano": (start + seq * 1000 + i).to_string(),
                "endTimeUnixNano": (start + seq * 1000 + i + 10).to_string(),
                "attributes": [
                    {"key": "gen_ai.tool.call.arguments", "value": {"stringValue": format!("{{\"n\": {seq}, \"i\": {i}, \"pad\": \"{}\"}}", "z".repeat(600))}},
                ],
            })
        })
        .collect();
    json!({"resourceSpans": [{"scopeSpans": [{"spans": spans}]}]}).to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn failing_writes_lose_and_duplicate_nothing() {
    let cairn = Cairn::start_with_env(
        &[
            "--ack",
            "wal",
            "--flush-interval",
            "50ms",
            "--compaction",
            "on",
            "--compaction-interval",
            "100ms",
            "--compaction-grace",
            "300ms",
            "--compaction-min-files",
            "3",
        ],
        &[(cairn_store::faults::ENV, "0.33")],
    );
    let hour_ago = chrono::Utc::now().timestamp_nanos_opt().unwrap() - 3_600_000_000_000;
    let http = client();
    for seq in 0..EXPORTS {
        let resp = http
            .post(format!("http://{}/v1/traces", cairn.otlp_http))
            .header("content-type", "application/json")
            .body(export(seq, hour_ago))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
    }
    let total = EXPORTS * SPANS;
    // Visible once every retried upload went through; exact from then on, through merges that
    // fail and are redone.
    assert_eq!(cairn.wait_for_count(None, "spans", total).await, total);
    let until = Instant::now() + Duration::from_secs(5);
    while Instant::now() < until {
        let rows = cairn
            .sql(
                None,
                "SELECT count(*) AS n, count(DISTINCT span_id) AS d, \
                 count(tool_arguments_ref) AS r FROM spans",
            )
            .await;
        assert_eq!(rows[0]["n"], total, "{rows:?}");
        assert_eq!(rows[0]["d"], total, "{rows:?}");
        assert_eq!(rows[0]["r"], total, "{rows:?}");
        let resolved = cairn
            .count(
                None,
                "spans s JOIN (SELECT DISTINCT hash FROM payloads) p ON p.hash = s.tool_arguments_ref",
            )
            .await;
        assert_eq!(resolved, total, "every payload stored");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(cairn.metric("cairn_upload_failures_total", "").await > 0.0);
    assert!(cairn.metric("cairn_compaction_merges_total", "").await > 0.0);
    assert!(cairn.metric("cairn_compaction_failures_total", "").await > 0.0);
}
