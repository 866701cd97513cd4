//! Offered load far above what a small buffer budget holds: exports beyond it are refused as
//! retryable, memory stays bounded, and everything accepted is stored exactly once.

use std::sync::{Arc, Mutex};

use serde_json::json;

use crate::harness::{client, Cairn};

const CLIENTS: u32 = 24;
const EXPORTS: u32 = 30;

fn body(client: u32, seq: u32) -> String {
    let spans: Vec<_> = (0..20u32)
        .map(|i| {
            json!({
                "traceId": format!("{:08x}{:08x}{:016x}", client + 1, seq + 1, 1),
                "spanId": format!("{:04x}{:04x}{:08x}", client + 1, seq + 1, i + 1),
                "name": "step",
                "startTimeUnixNano": "1764290000000000000",
                "endTimeUnixNano": "1764290000000001000",
                "attributes": [{"key": "blob", "value": {"stringValue": format!("{client}-{seq}-{i}-{}", "y".repeat(4096))}}],
            })
        })
        .collect();
    json!({"resourceSpans": [{"scopeSpans": [{"spans": spans}]}]}).to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn overload_is_refused_not_buffered() {
    let cairn = Cairn::start(&[
        "--ack",
        "wal",
        "--max-buffer-size",
        "2MiB",
        "--flush-interval",
        "300ms",
    ]);
    let accepted: Arc<Mutex<u32>> = Arc::default();
    let refused: Arc<Mutex<u32>> = Arc::default();
    let mut tasks = Vec::new();
    for c in 0..CLIENTS {
        let (url, accepted, refused) = (
            format!("http://{}/v1/traces", cairn.otlp_http),
            Arc::clone(&accepted),
            Arc::clone(&refused),
        );
        tasks.push(tokio::spawn(async move {
            let http = client();
            for seq in 0..EXPORTS {
                let resp = http
                    .post(&url)
                    .header("content-type", "application/json")
                    .body(body(c, seq))
                    .send()
                    .await
                    .unwrap();
                match resp.status().as_u16() {
                    200 => *accepted.lock().unwrap() += 1,
                    429 | 503 => {
                        assert!(resp.headers().contains_key("retry-after"));
                        *refused.lock().unwrap() += 1;
                    }
                    other => panic!("unexpected status {other}"),
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let (accepted, refused) = (*accepted.lock().unwrap(), *refused.lock().unwrap());
    println!(
        "overload: {accepted} exports accepted, {refused} refused, peak RSS {} MiB",
        cairn_bench::process::peak_rss(cairn.pid()).unwrap_or(0) >> 20
    );
    assert!(
        refused > 0,
        "a 2 MiB budget cannot hold {CLIENTS} clients' bursts"
    );
    assert!(accepted > 0);
    let stored = cairn
        .wait_for_count(None, "spans", (accepted * 20) as i64)
        .await;
    assert_eq!(
        stored,
        (accepted * 20) as i64,
        "everything accepted is stored"
    );
    let distinct = cairn
        .count(None, "(SELECT DISTINCT span_id FROM spans)")
        .await;
    assert_eq!(distinct, stored, "once");
}
