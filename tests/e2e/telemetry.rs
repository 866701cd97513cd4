//! Every role reports on its own port: `cairn collector`, `cairn query` and `cairn compact` run
//! as separate processes on one store, and each one's `/metrics` counts its own work — spans
//! and uploads, queries by endpoint and what they scanned, compaction passes — and the
//! object-store requests it made.

use crate::agent_run::{send_agent_runs, Transport};
use crate::harness::{client, temp_dir, Cairn};

#[tokio::test(flavor = "multi_thread")]
async fn each_role_reports_on_its_own_port() {
    let dir = temp_dir();
    let store = dir.path().join("data").display().to_string();
    let collector = Cairn::start_role("collector", &store, &[], &[]);
    let sent = send_agent_runs(
        &collector,
        Transport::HttpProtobuf { gzip: false },
        None,
        "svc",
        2,
    )
    .await;
    let spans = sent.len() as f64;
    let query = Cairn::start_role("query", &store, &[], &[]);
    assert_eq!(
        query.wait_for_count(None, "spans", spans as i64).await,
        spans as i64
    );
    let compactor = Cairn::start_role(
        "compact",
        &store,
        &["--compaction", "on", "--compaction-interval", "100ms"],
        &[],
    );

    // The collector: what it accepted and uploaded.
    assert_eq!(
        collector.metric("cairn_spans_accepted_total", "").await,
        spans
    );
    assert!(
        collector
            .metric("cairn_store_requests_total", r#"op="put",outcome="ok""#)
            .await
            >= collector.metric("cairn_files_written_total", "").await,
        "every file written was a put"
    );
    assert!(collector.metric("cairn_files_written_total", "").await >= 1.0);
    assert!(
        collector
            .metric("cairn_store_bytes_total", r#"op="put""#)
            .await
            > 0.0
    );
    assert_eq!(
        collector.metric("cairn_query_requests_total", "").await,
        0.0
    );

    // The query side: requests by route and outcome, scans, store reads.
    let rows = query.sql(None, "SELECT name FROM spans").await;
    assert_eq!(rows.len() as f64, spans);
    let (status, _) = query
        .sql_raw(None, "SELEC nonsense", "application/json")
        .await;
    assert_eq!(status, 400);
    let trace = rows_trace(&query).await;
    let resp = client()
        .get(format!("http://{}/api/v1/runs/{trace}", query.http))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let sql_ok = r#"endpoint="/api/v1/sql",outcome="ok""#;
    assert!(query.metric("cairn_query_requests_total", sql_ok).await >= 2.0);
    let sql_bad = r#"endpoint="/api/v1/sql",outcome="client_error""#;
    assert_eq!(
        query.metric("cairn_query_requests_total", sql_bad).await,
        1.0
    );
    let run = r#"endpoint="/api/v1/runs/{trace_id}",outcome="ok""#;
    assert_eq!(query.metric("cairn_query_requests_total", run).await, 1.0);
    assert!(
        query
            .metric(
                "cairn_query_request_seconds_count",
                r#"endpoint="/api/v1/sql""#
            )
            .await
            >= 3.0
    );
    assert!(query.metric("cairn_query_rows_scanned_total", "").await >= spans);
    assert!(query.metric("cairn_query_bytes_scanned_total", "").await > 0.0);
    assert!(query.metric("cairn_query_files_scanned_total", "").await > 0.0);
    assert!(
        query
            .metric("cairn_store_requests_total", r#"op="get",outcome="ok""#)
            .await
            > 0.0
    );
    assert_eq!(query.metric("cairn_spans_accepted_total", "").await, 0.0);

    // The compactor: its passes, and the listings they made.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while compactor.metric("cairn_partition_files_count", "").await == 0.0 {
        assert!(
            std::time::Instant::now() < deadline,
            "no compaction pass reported"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(
        compactor
            .metric("cairn_store_requests_total", r#"op="list",outcome="ok""#)
            .await
            > 0.0
    );
    assert_eq!(
        compactor.metric("cairn_query_requests_total", "").await,
        0.0
    );
}

/// A trace id of the stored runs.
async fn rows_trace(query: &Cairn) -> String {
    let rows = query
        .sql(
            None,
            "SELECT trace_id FROM spans WHERE parent_span_id IS NULL LIMIT 1",
        )
        .await;
    rows[0]["trace_id"].as_str().expect("trace id").to_owned()
}

/// Cairn sends its own traces to itself, into tenant `cairn-self`: exports, flushes and queries
/// of other tenants appear there as spans of service `cairn`, and the exports of its own traces
/// are not traced again (no feedback).
#[tokio::test(flavor = "multi_thread")]
async fn traces_itself_into_its_own_tenant() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let grpc = format!("127.0.0.1:{port}");
    let endpoint = format!("http://{grpc}");
    let cairn = Cairn::start(&["--otlp-grpc-addr", &grpc, "--self-traces", &endpoint]);
    let sent = send_agent_runs(
        &cairn,
        Transport::HttpProtobuf { gzip: false },
        None,
        "svc",
        1,
    )
    .await;
    cairn.wait_for_count(None, "spans", sent.len() as i64).await;
    let self_tenant = Some("cairn-self");
    let names = "SELECT name, count(*) AS n FROM spans GROUP BY name";
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let seen = loop {
        let rows = cairn.sql(self_tenant, names).await;
        let has = |name: &str| rows.iter().any(|r| r["name"] == name);
        if has("otlp.export") && has("query.request") && has("flush") {
            break rows;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "own spans missing: {rows:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    };
    let services = cairn
        .sql(self_tenant, "SELECT DISTINCT service_name FROM spans")
        .await;
    assert_eq!(services.len(), 1, "{services:?}");
    assert_eq!(services[0]["service_name"], "cairn");
    // Every traced export was of another tenant.
    let exports = cairn
        .sql(
            self_tenant,
            "SELECT attributes['tenant'] AS tenant, count(*) AS n FROM spans \
             WHERE name = 'otlp.export' GROUP BY 1",
        )
        .await;
    assert!(
        exports.iter().all(|r| r["tenant"] == "default"),
        "exports of the self tenant traced: {exports:?} (all: {seen:?})"
    );
}
