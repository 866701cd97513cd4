//! The trace index against the real binary: a lookup by trace id reads only the hour partitions
//! holding the trace, the index always matches the spans stored, a store written without it is
//! answered by listing every hour, and `cairn reindex` indexes it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;

use serde_json::json;

use crate::harness::{client, index_entries, index_rows, temp_dir, Cairn};

const HOUR_NANOS: i64 = 3_600_000_000_000;

/// One export: `spans` spans of trace `trace` starting at `start` (nanoseconds), 1 ms apart.
fn export(trace: &str, start: i64, spans: i64) -> String {
    let spans: Vec<_> = (0..spans)
        .map(|i| {
            json!({
                "traceId": trace,
                "spanId": format!("{:08x}{:08x}", start / 1_000_000_000 % 0xffff_ffff, i + 1),
                "name": "step",
                "startTimeUnixNano": (start + i * 1_000_000).to_string(),
                "endTimeUnixNano": (start + i * 1_000_000 + 500).to_string(),
            })
        })
        .collect();
    json!({"resourceSpans": [{"scopeSpans": [{"spans": spans}]}]}).to_string()
}

fn trace(n: usize) -> String {
    format!("{:032x}", 0xabc0 + n)
}

/// The hour partitions the physical plan of `sql` reads.
async fn hours_read(cairn: &Cairn, sql: &str) -> BTreeSet<String> {
    let rows = cairn.sql(None, &format!("EXPLAIN {sql}")).await;
    let plan: String = rows
        .iter()
        .filter_map(|r| r["plan"].as_str())
        .collect::<Vec<_>>()
        .join("\n");
    assert!(!plan.contains("..."), "every file is named: {plan}");
    plan.match_indices("spans/tenant=default/hour=")
        .map(|(at, m)| plan[at + m.len()..at + m.len() + 13].to_owned())
        .collect()
}

fn hour_text(hour: i64) -> String {
    chrono::DateTime::from_timestamp(hour * 3600, 0)
        .unwrap()
        .format("%Y-%m-%dT%H")
        .to_string()
}

/// Span counts per trace, by lookups of each id (through the index when it is complete).
async fn counts_by_id(cairn: &Cairn, traces: &[String]) -> BTreeMap<String, i64> {
    let mut out = BTreeMap::new();
    for t in traces {
        let rows = cairn
            .sql(
                None,
                &format!("SELECT count(*) AS n FROM spans WHERE trace_id = '{t}'"),
            )
            .await;
        out.insert(t.clone(), rows[0]["n"].as_i64().unwrap());
    }
    out
}

pub(crate) fn reindex(store: &str) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_cairn"))
        .args(["reindex", "--store", store])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn lookups_read_the_hours_of_the_trace_and_reindex_indexes_an_old_store() {
    let dir = temp_dir();
    let data = dir.path().join("data");
    let store = data.display().to_string();
    let now = chrono::Utc::now().timestamp_nanos_opt().unwrap() / HOUR_NANOS;
    // Five traces, each in an hour of its own; trace 0 also has spans two hours later.
    let mut expected_entries = BTreeSet::new();
    let mut expected_counts = BTreeMap::new();
    let cairn = Cairn::start_on(&store, &[], &[]);
    for n in 0..5 {
        let hour = now - 10 + 2 * n as i64;
        cairn
            .send_json(export(&trace(n), hour * HOUR_NANOS + 5, 3))
            .await;
        expected_entries.insert((trace(n), hour));
        expected_counts.insert(trace(n), 3);
    }
    cairn
        .send_json(export(&trace(0), (now - 8) * HOUR_NANOS + 7, 2))
        .await;
    expected_entries.insert((trace(0), now - 8));
    *expected_counts.get_mut(&trace(0)).unwrap() += 2;
    let traces: Vec<String> = (0..5).map(trace).collect();

    // A new tenant is indexed from its first span.
    assert!(data
        .join("trace_index/tenant=default/complete.json")
        .exists());
    let entries: BTreeSet<(String, i64)> =
        index_entries(&store, "default").await.into_iter().collect();
    assert_eq!(entries, expected_entries);
    assert_eq!(counts_by_id(&cairn, &traces).await, expected_counts);
    let by_id = |n: usize| format!("SELECT * FROM spans WHERE trace_id = '{}'", trace(n));
    assert_eq!(
        hours_read(&cairn, &by_id(0)).await,
        BTreeSet::from([hour_text(now - 10), hour_text(now - 8)])
    );
    assert_eq!(
        hours_read(&cairn, &by_id(3)).await,
        BTreeSet::from([hour_text(now - 4)])
    );
    let unknown = format!("SELECT * FROM spans WHERE trace_id = '{}'", trace(99));
    assert!(hours_read(&cairn, &unknown).await.is_empty());
    // The run API finds its run through the index too.
    let run = cairn.run(None, &trace(0)).await;
    assert_eq!(run["run"]["span_count"], 5, "{run}");
    assert!(cairn.stop());

    // A store written before the index: every lookup lists every hour, and answers the same.
    std::fs::remove_dir_all(data.join("trace_index")).unwrap();
    let cairn = Cairn::start_on(&store, &[], &[]);
    assert_eq!(counts_by_id(&cairn, &traces).await, expected_counts);
    assert_eq!(hours_read(&cairn, &by_id(3)).await.len(), 5);
    // New spans of such a tenant get entries, but its index stays incomplete.
    cairn
        .send_json(export(&trace(5), now * HOUR_NANOS + 9, 4))
        .await;
    expected_entries.insert((trace(5), now));
    expected_counts.insert(trace(5), 4);
    assert!(!data
        .join("trace_index/tenant=default/complete.json")
        .exists());
    assert_eq!(
        index_entries(&store, "default").await,
        [(trace(5), now)],
        "entries of the new spans only"
    );
    assert!(cairn.stop());

    let report = reindex(&store);
    assert!(
        report.contains("indexed 1 tenant(s): 6 hour partitions"),
        "{report}"
    );
    assert!(data
        .join("trace_index/tenant=default/complete.json")
        .exists());
    let entries: BTreeSet<(String, i64)> =
        index_entries(&store, "default").await.into_iter().collect();
    assert_eq!(entries, expected_entries);
    let cairn = Cairn::start_on(&store, &[], &[]);
    let traces: Vec<String> = (0..6).map(trace).collect();
    assert_eq!(counts_by_id(&cairn, &traces).await, expected_counts);
    assert_eq!(
        hours_read(&cairn, &by_id(3)).await,
        BTreeSet::from([hour_text(now - 4)])
    );
    // A lookup of more ids than one index scan prunes by (in parts), the stored ones last.
    let mut many: Vec<String> = (0..114).map(|k| format!("{k:032x}")).collect();
    many.extend(traces.iter().cloned());
    let list = many
        .iter()
        .map(|t| format!("'{t}'"))
        .collect::<Vec<_>>()
        .join(",");
    let sql = format!(
        "SELECT trace_id, count(*) AS n FROM spans WHERE trace_id IN ({list}) GROUP BY trace_id"
    );
    let found: BTreeMap<String, i64> = cairn
        .sql(None, &sql)
        .await
        .iter()
        .map(|r| {
            (
                r["trace_id"].as_str().unwrap().to_owned(),
                r["n"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(found, expected_counts);
    assert_eq!(
        hours_read(&cairn, &sql).await.len(),
        expected_entries
            .iter()
            .map(|(_, h)| h)
            .collect::<BTreeSet<_>>()
            .len()
    );
    assert!(cairn.stop());
    assert!(reindex(&store).contains("1 already complete"));
}

/// Compaction merges the index into one entry per (trace, hour), and the entries stay exactly
/// those of the spans stored.
#[tokio::test(flavor = "multi_thread")]
async fn compaction_merges_the_index_into_one_entry_per_trace_and_hour() {
    let dir = temp_dir();
    let data = dir.path().join("data");
    let store = data.display().to_string();
    let now = chrono::Utc::now().timestamp_nanos_opt().unwrap() / HOUR_NANOS;
    let cairn = Cairn::start_on(&store, &["--flush-interval", "50ms"], &[]);
    // The same traces in many flushes: many index files, each repeating entries.
    for round in 0..6 {
        for n in 0..4 {
            let hour = now - (n % 2) as i64;
            cairn
                .send_json(export(&trace(n), hour * HOUR_NANOS + round * 1000, 2))
                .await;
        }
    }
    let index_files = |dir: &Path| {
        std::fs::read_dir(dir)
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .ends_with(".parquet")
            })
            .count()
    };
    let index_dir = data.join("trace_index/tenant=default");
    assert!(index_files(&index_dir) >= 6);
    let before = index_entries(&store, "default").await;
    assert!(before.len() > 8, "entries repeat across files");
    assert!(cairn.stop());

    let cairn = Cairn::start_on(
        &store,
        &[
            "--compaction",
            "on",
            "--compaction-interval",
            "100ms",
            "--compaction-min-files",
            "2",
            "--compaction-grace",
            "100ms",
        ],
        &[],
    );
    let expected: Vec<(String, i64)> = (0..4).map(|n| (trace(n), now - (n % 2) as i64)).collect();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        if index_entries(&store, "default").await == expected && index_files(&index_dir) == 1 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "index not merged: {:?}",
            index_entries(&store, "default").await
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let counts = counts_by_id(&cairn, &(0..4).map(trace).collect::<Vec<_>>()).await;
    assert!(counts.values().all(|n| *n == 12), "{counts:?}");
}

/// A span refers only to a payload copy stored in its own hour or up to a day before, so the
/// trace API reads only those payload partitions: a late span of an earlier hour stores its own
/// copy instead of referring to a later one.
#[tokio::test(flavor = "multi_thread")]
async fn a_late_span_stores_its_own_payload_copy_and_reads_it_back() {
    let dir = temp_dir();
    let data = dir.path().join("data");
    let store = data.display().to_string();
    let now = chrono::Utc::now().timestamp_nanos_opt().unwrap() / HOUR_NANOS;
    let cairn = Cairn::start_on(&store, &[], &[]);
    let message =
        json!([{"role": "user", "parts": [{"type": "text", "content": "the same question"}]}])
            .to_string();
    let chat = |trace: &str, start: i64| {
        json!({"resourceSpans": [{"scopeSpans": [{"spans": [{
            "traceId": trace,
            "spanId": format!("{:016x}", start),
            "name": "chat",
            "startTimeUnixNano": start.to_string(),
            "endTimeUnixNano": (start + 1000).to_string(),
            "attributes": [
                {"key": "gen_ai.operation.name", "value": {"stringValue": "chat"}},
                {"key": "gen_ai.input.messages", "value": {"stringValue": message}},
            ],
        }]}]}]})
        .to_string()
    };
    cairn.send_json(chat(&trace(1), now * HOUR_NANOS + 1)).await;
    cairn
        .send_json(chat(&trace(2), (now - 3) * HOUR_NANOS + 1))
        .await;
    // Two hours later: the copy of three hours ago is reused.
    cairn
        .send_json(chat(&trace(3), (now - 1) * HOUR_NANOS + 1))
        .await;
    // Each index entry names the partition of the copy its span refers to.
    assert_eq!(
        index_rows(&store, "default").await,
        [
            (trace(1), now, Some(vec![now])),
            (trace(2), now - 3, Some(vec![now - 3])),
            (trace(3), now - 1, Some(vec![now - 3])),
        ]
    );
    let payload_hours: BTreeSet<String> = std::fs::read_dir(data.join("payloads/tenant=default"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        payload_hours,
        BTreeSet::from([
            format!("hour={}", hour_text(now - 3)),
            format!("hour={}", hour_text(now))
        ])
    );
    for t in [trace(1), trace(2), trace(3)] {
        let (status, body) = cairn.trace(None, &t).await;
        assert_eq!(status, 200, "{body}");
        assert!(body.to_string().contains("the same question"), "{body}");
        let run = client()
            .get(format!(
                "http://{}/api/v1/runs/{t}?payloads=true",
                cairn.http
            ))
            .send()
            .await
            .unwrap()
            .json::<serde_json::Value>()
            .await
            .unwrap();
        assert!(run.to_string().contains("the same question"), "{run}");
    }
}

/// A trace referring to more payloads than one scan prunes by (with bloom filters) reads them
/// all back.
#[tokio::test(flavor = "multi_thread")]
async fn a_trace_with_many_payloads_reads_every_one() {
    let cairn = Cairn::start(&[]);
    let start = chrono::Utc::now().timestamp_nanos_opt().unwrap() - 60_000_000_000;
    let spans: Vec<_> = (0..130)
        .map(|i| {
            let message = json!([{"role": "user", "parts": [
                {"type": "text", "content": format!("question number {i}")}
            ]}])
            .to_string();
            json!({
                "traceId": trace(77),
                "spanId": format!("{:016x}", i + 1),
                "name": "chat",
                "startTimeUnixNano": (start + i).to_string(),
                "endTimeUnixNano": (start + i + 1000).to_string(),
                "attributes": [
                    {"key": "gen_ai.operation.name", "value": {"stringValue": "chat"}},
                    {"key": "gen_ai.input.messages", "value": {"stringValue": message}},
                ],
            })
        })
        .collect();
    let body = json!({"resourceSpans": [{"scopeSpans": [{"spans": spans}]}]});
    cairn.send_json(body.to_string()).await;
    let (status, body) = cairn.trace(None, &trace(77)).await;
    assert_eq!(status, 200, "{body}");
    let text = body.to_string();
    let missing: Vec<i64> = (0..130)
        .filter(|i| !text.contains(&format!("question number {i}\\\"")))
        .collect();
    assert!(missing.is_empty(), "contents not read back: {missing:?}");
}
