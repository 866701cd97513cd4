//! Run summaries against the real binary: the `runs` view and the run API answer the same from
//! the summaries `cairn reindex` (and compaction) write as from the spans themselves, with runs
//! of every framework fixture and a run spread over hours and files, and read the summaries
//! instead of the spans once they exist.

use serde_json::{json, Value};

use crate::fixtures::{fixture, send_json};
use crate::frameworks::FIXTURES;
use crate::harness::{files_ending, temp_dir, Cairn};

const HOUR_NANOS: i64 = 3_600_000_000_000;
const TENANT: &str = "runs";
const SPREAD: &str = "5eed0000000000000000000000000001";

/// Spans of the run [`SPREAD`] starting at `start`: an agent root (when `root`), model calls
/// with tokens and cost, and a failed tool call.
fn spread_run(start: i64, root: bool, first: u32) -> String {
    let mut spans = Vec::new();
    if root {
        spans.push(json!({
            "traceId": SPREAD, "spanId": "00000000000000aa", "name": "invoke_agent planner",
            "startTimeUnixNano": start.to_string(), "endTimeUnixNano": (start + 10).to_string(),
            "attributes": [
                {"key": "gen_ai.operation.name", "value": {"stringValue": "invoke_agent"}},
                {"key": "gen_ai.agent.name", "value": {"stringValue": "planner"}},
                {"key": "gen_ai.conversation.id", "value": {"stringValue": "conv-7"}},
            ],
        }));
    }
    for i in 0..3u32 {
        let id = first + i;
        let t = start + 1_000 + i64::from(i) * 1_000;
        spans.push(json!({
            "traceId": SPREAD, "spanId": format!("{id:016x}"), "parentSpanId": "00000000000000aa",
            "name": "chat", "startTimeUnixNano": t.to_string(), "endTimeUnixNano": (t + 500).to_string(),
            "status": if i == 2 && !root { json!({"code": 2, "message": "boom"}) } else { json!({"code": 1}) },
            "attributes": [
                {"key": "gen_ai.operation.name", "value": {"stringValue": "chat"}},
                {"key": "gen_ai.request.model", "value": {"stringValue": "gpt-4o"}},
                {"key": "gen_ai.usage.input_tokens", "value": {"intValue": (100 + id).to_string()}},
                {"key": "gen_ai.usage.output_tokens", "value": {"intValue": (7 + id).to_string()}},
            ],
        }));
    }
    json!({"resourceSpans": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "planner-svc"}}]},
        "scopeSpans": [{"spans": spans}],
    }]})
    .to_string()
}

/// `a` equals `b`, but for the last bits of sums of floats (added in another order).
#[track_caller]
fn same(a: &[Value], b: &[Value]) {
    fn close(a: &Value, b: &Value) -> bool {
        match (a, b) {
            (Value::Number(x), Value::Number(y)) if x.is_f64() || y.is_f64() => {
                let (x, y) = (x.as_f64().unwrap(), y.as_f64().unwrap());
                (x - y).abs() <= 1e-12 * x.abs().max(y.abs())
            }
            (Value::Array(x), Value::Array(y)) => {
                x.len() == y.len() && x.iter().zip(y).all(|(x, y)| close(x, y))
            }
            (Value::Object(x), Value::Object(y)) => {
                x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| close(v, w)))
            }
            _ => a == b,
        }
    }
    let (a, b) = (Value::from(a.to_vec()), Value::from(b.to_vec()));
    assert!(close(&a, &b), "{a}\n!=\n{b}");
}

async fn runs(cairn: &Cairn) -> Vec<Value> {
    cairn
        .sql(Some(TENANT), "SELECT * FROM runs ORDER BY trace_id")
        .await
}

/// The physical plan of the `runs` view.
async fn plan(cairn: &Cairn) -> String {
    let rows = cairn.sql(Some(TENANT), "EXPLAIN SELECT * FROM runs").await;
    rows.iter()
        .filter_map(|r| r["plan"].as_str())
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test(flavor = "multi_thread")]
async fn runs_are_the_same_from_summaries_as_from_spans() {
    let dir = temp_dir();
    let data = dir.path().join("data");
    let store = data.display().to_string();
    let cairn = Cairn::start_on(&store, &[], &[]);
    for name in FIXTURES {
        send_json(&cairn, fixture(&format!("{name}.otlp.json")), TENANT).await;
    }
    // One run in three files over two hours: its root in the first, a failure in the last.
    let hour = chrono::Utc::now().timestamp_nanos_opt().unwrap() / HOUR_NANOS - 5;
    send_json(&cairn, spread_run(hour * HOUR_NANOS + 5, true, 1), TENANT).await;
    send_json(
        &cairn,
        spread_run(hour * HOUR_NANOS + 900_000, false, 10),
        TENANT,
    )
    .await;
    send_json(
        &cairn,
        spread_run((hour + 2) * HOUR_NANOS, false, 20),
        TENANT,
    )
    .await;

    let from_spans = runs(&cairn).await;
    let run_from_spans = cairn.run(Some(TENANT), SPREAD).await["run"].clone();
    assert!(files_ending(&data, "runs").is_empty());
    assert!(!plan(&cairn).await.contains(".runs"));
    assert!(cairn.stop());

    // The spread run, as aggregated from its spans.
    let spread = from_spans
        .iter()
        .find(|r| r["trace_id"] == SPREAD)
        .expect("the spread run");
    assert_eq!(spread["span_count"], 10);
    assert_eq!(spread["root_span_id"], "00000000000000aa");
    assert_eq!(spread["root_name"], "invoke_agent planner");
    assert_eq!(spread["service_name"], "planner-svc");
    assert_eq!(spread["agent_name"], "planner");
    assert_eq!(spread["conversation_id"], "conv-7");
    assert_eq!(spread["status"], "error");
    assert_eq!(spread["error_count"], 2);
    assert_eq!(spread["llm_calls"], 9);
    let ids = [1, 2, 3, 10, 11, 12, 20, 21, 22];
    assert_eq!(
        spread["input_tokens"],
        ids.iter().map(|i| 100 + i).sum::<i64>()
    );
    assert_eq!(
        spread["output_tokens"],
        ids.iter().map(|i| 7 + i).sum::<i64>()
    );
    assert!(
        from_spans.len() > FIXTURES.len(),
        "{} runs",
        from_spans.len()
    );

    // Summaries of every span file; the same answers, read from them alone.
    let report = crate::trace_index::reindex(&store);
    let span_files = files_ending(&data.join(format!("spans/tenant={TENANT}")), "parquet").len();
    assert!(
        report.contains(&format!("{span_files} run summaries")),
        "{report}"
    );
    assert_eq!(files_ending(&data, "runs").len(), span_files);
    let cairn = Cairn::start_on(&store, &[], &[]);
    let plan = plan(&cairn).await;
    assert!(plan.contains(".runs"), "{plan}");
    assert!(!plan.contains(".parquet"), "{plan}");
    same(&runs(&cairn).await, &from_spans);
    same(
        &[cairn.run(Some(TENANT), SPREAD).await["run"].clone()],
        &[run_from_spans],
    );

    // A new span file of the run is aggregated from its spans beside the others' summaries.
    send_json(
        &cairn,
        spread_run((hour + 3) * HOUR_NANOS, false, 30),
        TENANT,
    )
    .await;
    let run = cairn.run(Some(TENANT), SPREAD).await["run"].clone();
    assert_eq!(run["span_count"], 13, "{run}");
    assert_eq!(run["error_count"], 3, "{run}");
    assert_eq!(run["root_span_id"], "00000000000000aa", "{run}");

    // The newest runs go by their start, not by their latest spans: a run that started after
    // the spread run, but before its last spans, comes first.
    let late = "5eed0000000000000000000000000002";
    let start = (hour + 1) * HOUR_NANOS;
    let body = json!({"resourceSpans": [{"scopeSpans": [{"spans": [{
        "traceId": late, "spanId": "00000000000000bb", "name": "late",
        "startTimeUnixNano": start.to_string(), "endTimeUnixNano": (start + 1).to_string(),
    }]}]}]});
    send_json(&cairn, body.to_string(), TENANT).await;
    let (status, page) = cairn.get(Some(TENANT), "/api/v1/runs?limit=2").await;
    assert_eq!(status, 200, "{page}");
    let ids: Vec<&str> = page["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["trace_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [late, SPREAD], "{page}");
    assert!(cairn.stop());
}
