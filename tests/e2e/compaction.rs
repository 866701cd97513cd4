//! Compaction and retention against the real binary: small files merged while queries run keep
//! every count exact, superseded files are deleted after the grace period, and partitions past
//! retention go (payloads later than the spans that refer to them).

use std::path::Path;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::harness::{files_ending, parquet_files, temp_dir, Cairn};

pub const SPANS_PER_EXPORT: i64 = 10;
pub const HOUR_NANOS: i64 = 3_600_000_000_000;

/// One export of `SPANS_PER_EXPORT` spans starting at `start` (nanoseconds), each with a model
/// system message shared by every span and a user message of its own.
pub fn export(seq: i64, start: i64) -> String {
    let spans: Vec<_> = (0..SPANS_PER_EXPORT)
        .map(|i| {
            let messages = json!([
                {"role": "system", "parts": [{"type": "text", "content": "You are a careful agent."}]},
                {"role": "user", "parts": [{"type": "text", "content": format!("request {seq}-{i}")}]},
            ])
            .to_string();
            json!({
                "traceId": format!("{:016x}{:016x}", seq + 1, 7),
                "spanId": format!("{:08x}{:08x}", seq + 1, i + 1),
                "name": "chat",
                "startTimeUnixNano": (start + seq * 1_000_000 + i).to_string(),
                "endTimeUnixNano": (start + seq * 1_000_000 + i + 500).to_string(),
                "attributes": [
                    {"key": "gen_ai.operation.name", "value": {"stringValue": "chat"}},
                    {"key": "gen_ai.input.messages", "value": {"stringValue": messages}},
                ],
            })
        })
        .collect();
    json!({"resourceSpans": [{"scopeSpans": [{"spans": spans}]}]}).to_string()
}

/// `(readable-looking .parquet files, compaction outputs)` under `dir`.
fn files(dir: &Path) -> (usize, usize) {
    let all = parquet_files(dir);
    let compacted = all
        .iter()
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("compacted-")
        })
        .count();
    (all.len(), compacted)
}

/// Spans, distinct span ids, resolved messages and unresolved messages. Each table is listed
/// by its own scan, so spans and messages may be counted at different moments.
async fn counts(cairn: &Cairn) -> (i64, i64, i64, i64) {
    let rows = cairn
        .sql(
            None,
            "SELECT count(*) AS n, count(DISTINCT span_id) AS d, \
             (SELECT count(content) FROM messages) AS m, \
             (SELECT count(*) - count(content) FROM messages) AS u FROM spans",
        )
        .await;
    let get = |k: &str| rows[0][k].as_i64().unwrap();
    (get("n"), get("d"), get("m"), get("u"))
}

/// Spans and runs counted through the `runs` view (from run summaries, and from span files
/// without one yet).
async fn run_counts(cairn: &Cairn) -> (i64, i64) {
    let rows = cairn
        .sql(
            None,
            "SELECT coalesce(sum(span_count), 0) AS spans, count(*) AS runs FROM runs",
        )
        .await;
    (
        rows[0]["spans"].as_i64().unwrap(),
        rows[0]["runs"].as_i64().unwrap(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn counts_stay_exact_while_files_are_merged() {
    let dir = temp_dir();
    let store = dir.path().join("data");
    let cairn = Cairn::start_on(
        &store.display().to_string(),
        &[
            "--compaction",
            "on",
            "--compaction-interval",
            "150ms",
            // Longer than any of the queries below takes, also on a loaded machine: a file
            // is deleted only once no query can still be reading it.
            "--compaction-grace",
            "4s",
            "--compaction-min-files",
            "4",
            "--flush-interval",
            "20ms",
        ],
        &[],
    );
    let cairn = Arc::new(cairn);
    // Spans in an hour that is over (merged from two files) and in the current one.
    let past = (chrono::Utc::now().timestamp_nanos_opt().unwrap() / HOUR_NANOS - 3) * HOUR_NANOS;
    let now = chrono::Utc::now().timestamp_nanos_opt().unwrap() - 60_000_000_000;
    let exports = 80;
    let acked = Arc::new(AtomicI64::new(0));
    let sent = Arc::new(AtomicI64::new(0));
    let writer = {
        let (cairn, acked, sent) = (Arc::clone(&cairn), Arc::clone(&acked), Arc::clone(&sent));
        tokio::spawn(async move {
            for seq in 0..exports {
                let start = if seq % 2 == 0 { past } else { now };
                sent.fetch_add(SPANS_PER_EXPORT, Ordering::SeqCst);
                cairn.send_json(export(seq, start)).await;
                acked.fetch_add(SPANS_PER_EXPORT, Ordering::SeqCst);
            }
        })
    };
    // Queries while files are written and merged: never a span twice, never one acknowledged
    // span missing, every message resolvable.
    let mut checks = 0;
    while !writer.is_finished() || checks < 40 {
        let before = acked.load(Ordering::SeqCst);
        let (n, distinct, messages, unresolved) = counts(&cairn).await;
        let after = sent.load(Ordering::SeqCst);
        assert_eq!(n, distinct, "a span seen twice (check {checks})");
        assert!(
            n >= before && n <= after,
            "{before} <= {n} <= {after} (check {checks})"
        );
        assert_eq!(unresolved, 0, "unresolved messages (check {checks})");
        assert!(
            messages >= 2 * before && messages <= 2 * after,
            "{messages} messages for {before}..{after} spans (check {checks})"
        );
        // Each export is one run of its own, written whole: a run counted from both a summary
        // and its span file would count twice its spans.
        let before = acked.load(Ordering::SeqCst);
        let (spans, runs) = run_counts(&cairn).await;
        let after = sent.load(Ordering::SeqCst);
        assert_eq!(spans, runs * SPANS_PER_EXPORT, "check {checks}");
        assert!(
            spans >= before && spans <= after,
            "{before} <= {spans} spans of runs <= {after} (check {checks})"
        );
        checks += 1;
    }
    writer.await.unwrap();
    let total = exports * SPANS_PER_EXPORT;

    // Compaction runs to the end: the hour that is over ends as one file per dataset, its inputs
    // deleted (the current hour keeps collecting until it has enough small files).
    let past_hour = chrono::DateTime::from_timestamp(past / 1_000_000_000, 0)
        .unwrap()
        .format("%Y-%m-%dT%H")
        .to_string();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (all, compacted) = ["spans", "payloads"]
            .iter()
            .map(|d| files(&store.join(format!("{d}/tenant=default/hour={past_hour}"))))
            .fold((0, 0), |(a, c), (x, y)| (a + x, c + y));
        let (n, distinct, messages, unresolved) = counts(&cairn).await;
        assert_eq!(
            (n, distinct, messages, unresolved),
            (total, total, 2 * total, 0)
        );
        assert_eq!(run_counts(&cairn).await, (total, exports));
        // The merged file's run summary is left, those of its inputs are gone with them.
        let summaries = files_ending(
            &store.join(format!("spans/tenant=default/hour={past_hour}")),
            "runs",
        );
        let merged_summary = summaries.len() == 1
            && summaries[0]
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("compacted-"));
        if all == 2 && compacted == 2 && merged_summary {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "compaction did not converge: {all} files, {compacted} compacted, summaries {summaries:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(cairn.metric("cairn_compaction_merges_total", "spans").await >= 2.0);
    assert!(
        cairn
            .metric("cairn_compaction_files_deleted_total", "")
            .await
            >= 8.0
    );
    // Merging keeps one row per hash in a partition: the shared system message once per hour,
    // plus one user message per span.
    let payloads = cairn.count(None, "payloads").await;
    assert!(payloads <= 2 + total, "{payloads} payload rows");
    assert_eq!(
        cairn
            .count(None, "(SELECT DISTINCT hash FROM payloads)")
            .await,
        1 + total
    );
    // Merged files keep the sort order that trace lookups rely on.
    let trace = format!("{:016x}{:016x}", 3, 7);
    let (status, body) = cairn.trace(None, &trace).await;
    assert_eq!(status, 200);
    let spans = body["resourceSpans"][0]["scopeSpans"][0]["spans"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(spans as i64, SPANS_PER_EXPORT);
    drop(cairn);
}

#[tokio::test(flavor = "multi_thread")]
async fn retention_deletes_old_partitions_payloads_last() {
    let dir = temp_dir();
    let store = dir.path().join("data");
    let cairn = Cairn::start_on(&store.display().to_string(), &["--compaction", "off"], &[]);
    let hour = chrono::Utc::now().timestamp_nanos_opt().unwrap() / HOUR_NANOS;
    // 5 hours old: spans past a 2 h retention, payloads still referable (kept 24 h longer).
    cairn.send_json(export(0, (hour - 5) * HOUR_NANOS)).await;
    // 30 hours old: both past.
    cairn.send_json(export(1, (hour - 30) * HOUR_NANOS)).await;
    cairn.send_json(export(2, hour * HOUR_NANOS)).await;
    assert_eq!(cairn.count(None, "spans").await, 3 * SPANS_PER_EXPORT);
    assert!(cairn.stop());

    // Retention applies per tenant: another tenant's override keeps nothing back here.
    let cairn = Cairn::start_on(
        &store.display().to_string(),
        &[
            "--compaction",
            "on",
            "--compaction-interval",
            "100ms",
            "--retention",
            "2h",
            "--tenant-retention",
            "other=1000d",
        ],
        &[],
    );
    let partition = |dataset: &str, h: i64| {
        let text = chrono::DateTime::from_timestamp(h * 3600, 0)
            .unwrap()
            .format("%Y-%m-%dT%H")
            .to_string();
        store.join(format!("{dataset}/tenant=default/hour={text}"))
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while partition("spans", hour - 5).exists() || partition("payloads", hour - 30).exists() {
        assert!(Instant::now() < deadline, "retention did not run");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The index lost the expired hours' entries no later than their spans.
    let hours: Vec<i64> = crate::harness::index_entries(&store.display().to_string(), "default")
        .await
        .into_iter()
        .map(|(_, h)| h)
        .collect();
    assert_eq!(hours, [hour], "entries of expired hours are gone");
    assert!(!partition("spans", hour - 30).exists());
    assert!(
        partition("payloads", hour - 5).exists(),
        "payloads outlive spans"
    );
    assert!(partition("spans", hour).exists());
    assert_eq!(cairn.count(None, "spans").await, SPANS_PER_EXPORT);
    let (_, _, messages, unresolved) = counts(&cairn).await;
    assert_eq!((messages, unresolved), (2 * SPANS_PER_EXPORT, 0));
    assert!(
        cairn
            .metric("cairn_retention_partitions_deleted_total", "")
            .await
            >= 3.0
    );
}
