//! The SQL API: formats, read-only enforcement, tenant isolation, the trace API's errors.

use arrow::ipc::reader::StreamReader;

use crate::agent_run::{send_agent_runs, Transport};
use crate::harness::Cairn;

#[tokio::test(flavor = "multi_thread")]
async fn formats_and_read_only() {
    let cairn = Cairn::start(&[]);
    send_agent_runs(
        &cairn,
        Transport::HttpProtobuf { gzip: false },
        None,
        "svc",
        2,
    )
    .await;

    let (status, csv) = cairn
        .sql_raw(
            None,
            "SELECT name, kind FROM spans ORDER BY start_time, name LIMIT 2",
            "text/csv",
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        String::from_utf8(csv).unwrap(),
        "name,kind\ninvoke_agent planner,internal\nchat gpt-4o,client\n"
    );
    let (status, csv) = cairn
        .sql_raw(
            None,
            "SELECT name, attributes, events FROM spans LIMIT 1",
            "text/csv",
        )
        .await;
    assert_eq!(status, 200, "nested columns render as text in CSV");
    assert!(String::from_utf8(csv)
        .unwrap()
        .starts_with("name,attributes,events\n"));

    let (status, ipc) = cairn
        .sql_raw(
            None,
            "SELECT span_id, start_time FROM spans",
            "application/vnd.apache.arrow.stream",
        )
        .await;
    assert_eq!(status, 200);
    let reader = StreamReader::try_new(std::io::Cursor::new(ipc), None).expect("Arrow IPC stream");
    let rows: usize = reader.map(|b| b.expect("batch").num_rows()).sum();
    assert_eq!(rows, 6);

    let (status, empty) = cairn
        .sql_raw(None, "SELECT name FROM spans WHERE false", "text/csv")
        .await;
    assert_eq!(status, 200);
    assert_eq!(String::from_utf8(empty).unwrap(), "name\n");

    for sql in [
        "DROP TABLE spans",
        "CREATE TABLE t AS SELECT 1",
        "CREATE EXTERNAL TABLE t STORED AS PARQUET LOCATION '/etc/'",
        "COPY (SELECT 1) TO '/tmp/cairn-copy.parquet'",
        "INSERT INTO spans SELECT * FROM spans",
        "SET datafusion.execution.batch_size = 1",
        "CREATE VIEW v AS SELECT 1",
        "EXPLAIN COPY (SELECT 1) TO '/tmp/cairn-copy.parquet'",
    ] {
        let (status, body) = cairn.sql_raw(None, sql, "application/json").await;
        assert_eq!(status, 403, "{sql}: {}", String::from_utf8_lossy(&body));
    }
    assert!(!std::path::Path::new("/tmp/cairn-copy.parquet").exists());
    for sql in [
        "SELECT * FROM '/etc/passwd'",
        "SELECT * FROM read_parquet('/etc/passwd')",
        "SELEC 1",
        "SELECT nope FROM spans",
    ] {
        let (status, body) = cairn.sql_raw(None, sql, "application/json").await;
        let text = String::from_utf8_lossy(&body);
        assert_eq!(status, 400, "{sql}: {text}");
        assert!(text.contains("\"error\""), "{text}");
    }
    let (status, _) = cairn.sql_raw(None, "SHOW TABLES", "application/json").await;
    assert_eq!(status, 200);
    let rows = cairn.sql(None, "DESCRIBE spans").await;
    assert!(rows.iter().any(|r| r["column_name"] == "trace_id"));

    let resp = crate::harness::client()
        .post(format!("http://{}/api/v1/sql", cairn.http))
        .body("not json")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    assert!(cairn.healthy().await);
}

#[tokio::test(flavor = "multi_thread")]
async fn tenants_are_isolated() {
    let cairn = Cairn::start(&[]);
    let a = send_agent_runs(
        &cairn,
        Transport::Grpc { gzip: false },
        Some("acme"),
        "a",
        2,
    )
    .await;
    let b = send_agent_runs(
        &cairn,
        Transport::HttpProtobuf { gzip: false },
        Some("globex"),
        "b",
        1,
    )
    .await;
    assert_eq!(cairn.count(Some("acme"), "spans").await, 6);
    assert_eq!(cairn.count(Some("globex"), "spans").await, 3);
    assert_eq!(cairn.count(None, "spans").await, 0);
    assert_eq!(cairn.count(Some("acme"), "runs").await, 2);

    let a_trace = a[0].span_context.trace_id().to_string();
    let b_trace = b[0].span_context.trace_id().to_string();
    assert_eq!(
        cairn
            .count(
                Some("globex"),
                &format!("spans WHERE trace_id = '{a_trace}'")
            )
            .await,
        0
    );
    let (status, _) = cairn.trace(Some("globex"), &a_trace).await;
    assert_eq!(status, 404);
    let (status, _) = cairn.trace(Some("globex"), &b_trace).await;
    assert_eq!(status, 200);
    let tables = cairn
        .sql(Some("globex"), "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' ORDER BY table_name")
        .await;
    let names: Vec<&str> = tables
        .iter()
        .map(|t| t["table_name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "approval_gates",
            "approvals",
            "bypasses",
            "data_access",
            "lineage_edges",
            "llm_calls",
            "messages",
            "payloads",
            "policies",
            "policy_changes",
            "runs",
            "span_links",
            "spans",
            "tool_calls"
        ]
    );

    for bad in ["../acme", "acme/../globex", "a b"] {
        let (status, body) = cairn
            .sql_raw(Some(bad), "SELECT 1", "application/json")
            .await;
        assert_eq!(status, 400, "{bad}: {}", String::from_utf8_lossy(&body));
    }
    let (status, _) = cairn.trace(None, "not-hex").await;
    assert_eq!(status, 400);
    let (status, _) = cairn.trace(None, "0af7651916cd43dd8448eb211c80319c").await;
    assert_eq!(status, 404);
}
