//! The measuring instruments measure the real thing: `cairn-bench load` against a running
//! server over both protocols, and a store written by `cairn-bench generate` served as is.

use cairn_bench::generate::{self, GenerateArgs};
use cairn_bench::load::{self, LoadArgs};
use cairn_bench::send::Protocol;

use crate::harness::{run_python, Cairn};

fn load_args(cairn: &Cairn, protocol: Protocol, store: &str, first_run: u64) -> LoadArgs {
    LoadArgs {
        endpoint: format!(
            "http://{}",
            match protocol {
                Protocol::Grpc => &cairn.grpc,
                Protocol::Http => &cairn.otlp_http,
            }
        ),
        protocol,
        spans: 1_500,
        runs_per_request: 10,
        rate: None,
        connections: 4,
        seed: 5,
        secrets_every: 0,
        first_run,
        gzip: protocol == Protocol::Http,
        tenant: "bench".into(),
        query: Some(format!("http://{}", cairn.http)),
        count_command: None,
        poll: std::time::Duration::from_millis(50),
        timeout: std::time::Duration::from_secs(60),
        pid: Some(cairn.pid()),
        storage: vec![store.into()],
        label: "e2e".into(),
        report: None,
        access: Default::default(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_reports_what_the_server_stored() {
    let dir = crate::harness::temp_dir();
    let store = dir.path().join("data").display().to_string();
    let cairn = Cairn::start_on(&store, &[], &[]);
    let mut total = 0;
    for (protocol, first_run) in [(Protocol::Grpc, 0), (Protocol::Http, 1_000)] {
        let report = load::run(load_args(&cairn, protocol, &store, first_run))
            .await
            .expect("load runs");
        total += report.spans;
        assert!(report.spans >= 1_500, "{report:?}");
        assert_eq!(report.rejected_spans, 0);
        assert_eq!(report.visible_spans, report.spans as u64);
        assert!(report.visible_seconds.is_some());
        assert!(report.lag_p50_seconds.is_some());
        assert!(report.cpu_seconds.unwrap() > 0.0);
        assert!(report.peak_rss_bytes.unwrap() > 1 << 20);
        let stored = report.stored_bytes.unwrap();
        assert!(stored > 0 && report.otlp_bytes > stored, "{report:?}");
    }
    // What the bench counted is what the server holds.
    assert_eq!(cairn.count(Some("bench"), "spans").await, total as i64);
    let runs = cairn
        .sql(
            Some("bench"),
            "SELECT count(*) AS n FROM runs WHERE tool_calls > 0",
        )
        .await;
    assert!(runs[0]["n"].as_i64().unwrap() > 100, "{runs:?}");
    assert!(cairn.stop());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_paces_its_requests_at_the_rate() {
    let dir = crate::harness::temp_dir();
    let store = dir.path().join("data").display().to_string();
    let cairn = Cairn::start_on(&store, &[], &[]);
    let mut args = load_args(&cairn, Protocol::Grpc, &store, 0);
    args.rate = Some(500.0);
    let report = load::run(args).await.expect("load runs");
    // The last request goes once the spans before it are due at 500 a second: never sooner.
    let last = report.spans as f64 / report.requests as f64;
    let due = (report.spans as f64 - 2.0 * last) / 500.0;
    assert!(report.send_seconds >= due, "{report:?}");
    assert_eq!(report.visible_spans, report.spans as u64);
    assert!(cairn.stop());
}

/// `cairn token create` of a token of `role` for the `bench` tenant in `file`.
fn bench_token(file: &std::path::Path, role: &str) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_cairn"))
        .args(["token", "create", "--tenant", "bench", "--role", role])
        .arg("--auth-tokens")
        .arg(file)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_sends_its_tokens_to_a_server_that_asks_for_them() {
    let dir = crate::harness::temp_dir();
    let store = dir.path().join("data").display().to_string();
    let tokens = dir.path().join("tokens.toml");
    let (ingest, read) = (bench_token(&tokens, "ingest"), bench_token(&tokens, "read"));
    let cairn = Cairn::start_on(&store, &["--auth-tokens", tokens.to_str().unwrap()], &[]);
    // Counted with the read token but exported without one: the first export is refused.
    let mut args = load_args(&cairn, Protocol::Grpc, &store, 0);
    args.access.query_token = Some(read.clone());
    match load::run(args).await {
        Err(cairn_bench::Error::Server(m)) => assert!(m.contains("Unauthenticated"), "{m}"),
        other => panic!("an export without a token: {other:?}"),
    }
    for (protocol, first_run) in [(Protocol::Grpc, 0), (Protocol::Http, 1_000)] {
        let mut args = load_args(&cairn, protocol, &store, first_run);
        args.access.token = Some(ingest.clone());
        args.access.query_token = Some(read.clone());
        let report = load::run(args).await.expect("load runs with tokens");
        // The ingest token exported, the read token counted: everything arrived.
        assert_eq!(report.visible_spans, report.spans as u64, "{report:?}");
    }
    // Each token is refused what its role may not do: a read token exporting, ...
    let mut args = load_args(&cairn, Protocol::Http, &store, 2_000);
    args.spans = 1;
    args.access.token = Some(read);
    match load::run(args).await {
        Err(cairn_bench::Error::Server(m)) => assert!(m.contains("403"), "{m}"),
        other => panic!("an export with a read token: {other:?}"),
    }
    // ... and an ingest token counting (`--token` counts when `--query-token` is not given).
    let mut args = load_args(&cairn, Protocol::Http, &store, 3_000);
    args.spans = 1;
    args.access.token = Some(ingest);
    match load::run(args).await {
        Err(cairn_bench::Error::Server(m)) => assert!(m.contains("403"), "{m}"),
        other => panic!("counting with an ingest token: {other:?}"),
    }
    assert!(cairn.stop());
}

/// A small generated store of the `bench` tenant with one large run.
fn generate_store(
    store: &std::path::Path,
    spans: u64,
    hours: u64,
    large_run: usize,
    seed: u64,
) -> generate::Summary {
    generate::run(&GenerateArgs {
        store: store.to_owned(),
        spans,
        hours,
        large_run,
        seed,
        tenant: "bench".into(),
        runs_per_request: 20,
        naive: None,
    })
    .expect("generates")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generated_store_is_served_as_written() {
    let dir = crate::harness::temp_dir();
    let store = dir.path().join("data");
    let summary = generate_store(&store, 3_000, 4, 600, 9);
    let cairn = Cairn::start_on(&store.display().to_string(), &[], &[]);
    assert_eq!(
        cairn.count(Some("bench"), "spans").await,
        summary.spans as i64
    );
    // Every payload reference resolves.
    let unresolved = cairn
        .sql(
            Some("bench"),
            "SELECT count(*) AS n FROM messages WHERE content IS NULL",
        )
        .await;
    assert_eq!(unresolved[0]["n"], 0, "{unresolved:?}");
    let large = summary.large_run_trace_id.as_deref().unwrap();
    let trail = cairn.run(Some("bench"), large).await;
    assert!(
        trail["run"]["span_count"].as_i64().unwrap() >= 600,
        "{trail}"
    );
    for id in &summary.sample_trace_ids[..3] {
        let (status, trace) = cairn.trace(Some("bench"), id).await;
        assert_eq!(status, 200, "{trace}");
    }
    assert!(cairn.stop());
}

/// The query suite runs every query on both engines and fails if their answers differ in size.
#[test]
fn query_suite_gets_the_same_answers_as_duckdb() {
    let dir = crate::harness::temp_dir();
    let store = dir.path().join("data");
    let summary = generate_store(&store, 2_000, 30, 300, 11);
    let summary_file = dir.path().join("summary.json");
    std::fs::write(&summary_file, serde_json::to_vec(&summary).unwrap()).unwrap();
    let results = dir.path().join("results.json");
    // The generator writes the trace index as a collector would, each entry naming the
    // payload partition of its spans (their own hour).
    assert!(store
        .join("trace_index/tenant=bench/complete.json")
        .exists());
    let rows = tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(crate::harness::index_rows(store.to_str().unwrap(), "bench"));
    let own_hour = rows
        .iter()
        .filter(|(_, hour, payloads)| payloads.as_deref() == Some(&[*hour][..]))
        .count();
    assert!(
        own_hour > 0 && own_hour >= rows.len() * 9 / 10,
        "{own_hour} of {}",
        rows.len()
    );
    for (trace, hour, payloads) in &rows {
        // Link entries say nothing of payloads; no entry names another hour.
        assert!(
            payloads.iter().flatten().all(|h| h == hour),
            "{trace} {hour}: {payloads:?}"
        );
    }
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/query_suite.py");
    let table = run_python(&[
        script.to_str().unwrap(),
        "--cairn",
        env!("CARGO_BIN_EXE_cairn"),
        "--store",
        store.to_str().unwrap(),
        "--summary",
        summary_file.to_str().unwrap(),
        "--warm",
        "3",
        "--cold",
        "1",
        "--memory",
        "512MiB",
        "--out",
        results.to_str().unwrap(),
        "--clients",
        "2",
        "--seconds",
        "2",
    ]);
    let results: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&results).unwrap()).unwrap();
    // The concurrent mix ran the API answers, every one answered.
    let mixed = &results["mixed"];
    assert!(mixed["answered"].as_u64() > Some(0), "{mixed}");
    assert_eq!(mixed["failed"], 0, "{mixed}");
    assert!(mixed["times"]
        .as_object()
        .unwrap()
        .keys()
        .all(|k| k.contains("(API")));
    let results = results["results"].as_object().unwrap();
    assert_eq!(results.len(), 14, "{table}");
    let mut compared = 0;
    for (name, r) in results {
        assert_eq!(r["cairn_warm"].as_array().unwrap().len(), 3, "{name}");
        assert_eq!(r["cairn_cold"].as_array().unwrap().len(), 1, "{name}");
        if name.ends_with("(SQL)") {
            assert_eq!(r["cairn_rows"], r["duck_rows"], "{name}");
            compared += 1;
        }
    }
    assert_eq!(compared, 6);
    // Lookups by id find their trace; aggregates have rows.
    let rows = |name: &str| results[name]["cairn_rows"].as_array().unwrap().clone();
    assert!(rows("trace by id (SQL)")
        .iter()
        .all(|n| n.as_u64() > Some(0)));
    assert!(rows("tool calls by tool and hour (SQL)")[0].as_u64() > Some(20));
}
