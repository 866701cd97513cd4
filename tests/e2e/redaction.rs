//! Redaction at ingest against the real binary: secrets in a resource attribute, a span
//! attribute, an event and a message payload (sent twice, differing only in the redacted
//! email) are masked or hashed before anything is written. The write-ahead log of a collector
//! killed before its flush holds no secret; once replayed, SQL and the trace API show the masks,
//! the `redactions` column names each rule and place, the two prompts are one payload, and no
//! secret is in any stored file. A rules file changed and signalled (SIGHUP) takes effect.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::harness::{files_ending, parquet_files, temp_dir, Cairn};

const RULES: &str = r#"
[[rule]]
name = "email"
preset = "email"

[[rule]]
name = "openai"
values = ['sk-[A-Za-z0-9]{20,}']

[[rule]]
name = "keys"
keys = ["*.api_key"]
action = "hash"
"#;

/// Every secret sent; none may reach the disk.
const SECRETS: &[&str] = &[
    "alice.leak@victim.example",
    "bob.leak@victim.example",
    "carol.leak@victim.example",
    "dave.leak@victim.example",
    "sk-LeakLeakLeakLeakLeakLeak0001",
    "sk-LeakLeakLeakLeakLeakLeak0002",
];

fn attr(key: &str, value: &str) -> Value {
    json!({ "key": key, "value": { "stringValue": value } })
}

fn now_nanos() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

/// One model call of `trace` whose prompt names `email`.
fn export(trace: u8, email: &str, extra: Vec<Value>) -> String {
    let now = now_nanos();
    let messages = json!([{
        "role": "user",
        "parts": [{
            "type": "text",
            "content": format!(
                "Hello, I am {email} and my key is sk-LeakLeakLeakLeakLeakLeak0001. Please \
                 summarise the quarterly report in three bullet points for the board meeting."
            )
        }]
    }])
    .to_string();
    let mut attributes = vec![
        attr("gen_ai.operation.name", "chat"),
        attr("gen_ai.request.model", "gpt-4o"),
        attr("gen_ai.input.messages", &messages),
        attr("llm.api_key", "sk-LeakLeakLeakLeakLeakLeak0002"),
    ];
    attributes.extend(extra);
    json!({ "resourceSpans": [{
        "resource": { "attributes": [
            attr("service.name", "agent"),
            attr("user.email", "alice.leak@victim.example"),
        ]},
        "scopeSpans": [{ "spans": [{
            "traceId": format!("{trace:032x}"),
            "spanId": format!("{trace:016x}"),
            "name": "chat gpt-4o",
            "kind": 3,
            "startTimeUnixNano": now.to_string(),
            "endTimeUnixNano": (now + 1_000_000).to_string(),
            "attributes": attributes,
            "events": [{
                "name": "gen_ai.user.message",
                "timeUnixNano": now.to_string(),
                "attributes": [attr("content", "call me at bob.leak@victim.example")]
            }]
        }]}]
    }]})
    .to_string()
}

/// Files under `dir` holding any secret, read as raw bytes.
fn raw_hits(dir: &Path, extension: &str) -> Vec<String> {
    files_ending(dir, extension)
        .into_iter()
        .flat_map(|f| {
            let bytes = std::fs::read(&f).unwrap();
            let text = String::from_utf8_lossy(&bytes).into_owned();
            SECRETS
                .iter()
                .filter(|s| text.contains(*s))
                .map(|s| format!("{}: {s}", f.display()))
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Every stored Parquet file, decompressed and printed, must hold no secret.
fn stored_hits(dir: &Path) -> (usize, Vec<String>) {
    let files = parquet_files(dir);
    let mut hits = Vec::new();
    for f in &files {
        let bytes = bytes::Bytes::from(std::fs::read(f).unwrap());
        let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(bytes)
            .unwrap()
            .build()
            .unwrap();
        let batches: Vec<_> = reader.map(|b| b.unwrap()).collect();
        let text = arrow::util::pretty::pretty_format_batches(&batches)
            .unwrap()
            .to_string();
        for s in SECRETS {
            if text.contains(s) {
                hits.push(format!("{}: {s}", f.display()));
            }
        }
    }
    (files.len(), hits)
}

#[tokio::test(flavor = "multi_thread")]
async fn secrets_are_redacted_before_the_log_and_recorded() {
    let dir = temp_dir();
    let store = dir.path().join("data").display().to_string();
    let wal = format!("{store}-wal");
    let rules = dir.path().join("rules.toml");
    std::fs::write(&rules, RULES).unwrap();
    let key = dir.path().join("redaction.key");
    std::fs::write(&key, "a secret key of more than sixteen bytes").unwrap();
    let flags = |flush: &'static str| {
        vec![
            "--ack".to_owned(),
            "wal".to_owned(),
            "--flush-interval".to_owned(),
            flush.to_owned(),
            "--redaction-rules".to_owned(),
            rules.display().to_string(),
            "--redaction-key".to_owned(),
            key.display().to_string(),
        ]
    };
    let args = flags("1h");
    let args: Vec<&str> = args.iter().map(String::as_str).collect();

    // Acknowledged into the log, never flushed: then killed.
    let cairn = Cairn::start_on(&store, &args, &[]);
    cairn
        .send_json(export(1, "carol.leak@victim.example", vec![]))
        .await;
    cairn
        .send_json(export(2, "dave.leak@victim.example", vec![]))
        .await;
    // Per export: the resource's email, the prompt's and the event's.
    assert_eq!(
        cairn
            .metric("cairn_redactions_total", "rule=\"email\"")
            .await,
        6.0
    );
    assert_eq!(
        cairn
            .metric("cairn_redactions_total", "rule=\"keys\"")
            .await,
        2.0
    );
    cairn.crash();
    let segments = files_ending(Path::new(&wal), "wal");
    assert!(!segments.is_empty(), "the exports are in the log");
    let logged: Vec<u8> = segments
        .iter()
        .flat_map(|f| std::fs::read(f).unwrap())
        .collect();
    assert!(
        String::from_utf8_lossy(&logged).contains("[REDACTED:email]"),
        "the log holds the redacted requests"
    );
    assert_eq!(raw_hits(Path::new(&wal), "wal"), Vec::<String>::new());

    // Replayed and flushed at the next start.
    let args = flags("200ms");
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let cairn = Cairn::start_on(&store, &args, &[]);
    assert_eq!(cairn.wait_for_count(None, "spans", 2).await, 2);
    let rows = cairn
        .sql(
            None,
            "SELECT trace_id, resource_attributes['user.email'] AS email, \
             attributes['llm.api_key'] AS api_key, redactions FROM spans ORDER BY trace_id",
        )
        .await;
    assert_eq!(rows.len(), 2);
    for row in &rows {
        assert_eq!(row["email"], "[REDACTED:email]");
        let api_key = row["api_key"].as_str().unwrap();
        assert!(api_key.starts_with("[HASHED:keys:"), "{api_key}");
        let mut record: Vec<&str> = row["redactions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        record.sort_unstable();
        assert_eq!(
            record,
            [
                "email@attribute:gen_ai.input.messages",
                "email@event:gen_ai.user.message:content",
                "email@resource:user.email",
                "keys@attribute:llm.api_key",
                "openai@attribute:gen_ai.input.messages",
            ]
        );
    }
    // Equal values hash equal: still joinable.
    assert_eq!(rows[0]["api_key"], rows[1]["api_key"]);
    // The two prompts differed only in the redacted email: one payload.
    let payloads = cairn
        .sql(
            None,
            "SELECT content FROM payloads WHERE content LIKE '%summarise the quarterly%'",
        )
        .await;
    assert_eq!(payloads.len(), 1, "{payloads:?}");
    let content = payloads[0]["content"].as_str().unwrap();
    assert!(
        content.contains("I am [REDACTED:email] and my key is [REDACTED:openai]"),
        "{content}"
    );
    // The trace API restores payloads: redacted.
    let (status, trace) = cairn.trace(None, &format!("{:032x}", 1)).await;
    assert_eq!(status, 200);
    let text = trace.to_string();
    assert!(text.contains("[REDACTED:email]") && text.contains("cairn.redactions"));
    for s in SECRETS {
        assert!(!text.contains(s), "{s} in the trace API");
    }
    let (files, hits) = stored_hits(Path::new(&store));
    assert!(files > 0);
    assert_eq!(hits, Vec::<String>::new());

    // A rule added to the file applies once the collector is signalled.
    std::fs::write(
        &rules,
        format!("{RULES}\n[[rule]]\nname = \"ticket\"\nvalues = ['TICKET-[0-9]{{4}}']\n"),
    )
    .unwrap();
    let hup = Command::new("kill")
        .args(["-HUP", &cairn.pid().to_string()])
        .status()
        .unwrap();
    assert!(hup.success());
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut trace = 10u8;
    while cairn
        .metric("cairn_redactions_total", "rule=\"ticket\"")
        .await
        == 0.0
    {
        assert!(Instant::now() < deadline, "the reloaded rule never applied");
        trace += 1;
        cairn
            .send_json(export(
                trace,
                "erin@victim.example",
                vec![attr("note", "see TICKET-1234")],
            ))
            .await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let id = format!("{trace:032x}");
    assert_eq!(
        cairn
            .wait_for_count(None, &format!("spans WHERE trace_id = '{id}'"), 1)
            .await,
        1
    );
    let rows = cairn
        .sql(
            None,
            &format!(
                "SELECT attributes['note'] AS note, array_has(redactions, \
                 'ticket@attribute:note') AS recorded FROM spans WHERE trace_id = '{id}'"
            ),
        )
        .await;
    assert_eq!(rows[0]["note"], "see [REDACTED:ticket]");
    assert_eq!(rows[0]["recorded"], true);
    assert!(cairn.stop());
}
