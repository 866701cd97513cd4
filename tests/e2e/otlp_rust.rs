//! The Rust `opentelemetry-otlp` exporter over gRPC and HTTP/protobuf, plain and gzip.

use crate::agent_run::{assert_stored, send_agent_runs, Transport};
use crate::harness::Cairn;

async fn round_trip(transport: Transport, service: &str) {
    let cairn = Cairn::start(&["--ack", "wal"]);
    let sent = send_agent_runs(&cairn, transport, None, service, 3).await;
    assert_stored(&cairn, None, &sent, service).await;
    assert_eq!(cairn.count(None, "spans").await, 9);
    let runs = cairn
        .sql(
            None,
            "SELECT root_name, agent_name, span_count, status, error_count FROM runs",
        )
        .await;
    assert_eq!(runs.len(), 3);
    for run in runs {
        assert_eq!(run["root_name"], "invoke_agent planner");
        assert_eq!(run["agent_name"], "planner");
        assert_eq!(run["span_count"], 3);
        assert_eq!(run["status"], "error");
        assert_eq!(run["error_count"], 1);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn grpc() {
    round_trip(Transport::Grpc { gzip: false }, "rust-grpc").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn grpc_gzip() {
    round_trip(Transport::Grpc { gzip: true }, "rust-grpc-gzip").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn http_protobuf() {
    round_trip(Transport::HttpProtobuf { gzip: false }, "rust-http").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn http_protobuf_gzip() {
    round_trip(Transport::HttpProtobuf { gzip: true }, "rust-http-gzip").await;
}

/// Acknowledged spans survive a graceful stop and are readable by `cairn sql` on the store.
#[tokio::test(flavor = "multi_thread")]
async fn survives_restart_and_cli_reads_store() {
    let dir = crate::harness::temp_dir();
    let store = dir.path().join("data").display().to_string();
    let cairn = Cairn::start_on(&store, &["--flush-interval", "2s", "--ack", "wal"], &[]);
    let sent = send_agent_runs(&cairn, Transport::Grpc { gzip: false }, None, "restart", 2).await;
    assert!(cairn.stop(), "clean exit on SIGTERM");

    let out = std::process::Command::new(env!("CARGO_BIN_EXE_cairn"))
        .args([
            "sql",
            "--store",
            &store,
            "--format",
            "csv",
            "SELECT count(*) AS n FROM spans",
        ])
        .output()
        .expect("cairn sql");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "n\n6\n");

    let table = std::process::Command::new(env!("CARGO_BIN_EXE_cairn"))
        .args([
            "sql",
            "--store",
            &store,
            "SELECT name FROM spans ORDER BY start_time LIMIT 1",
        ])
        .output()
        .expect("cairn sql");
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(text.contains("| invoke_agent planner |"), "{text}");

    let refused = std::process::Command::new(env!("CARGO_BIN_EXE_cairn"))
        .args(["sql", "--store", &store, "DROP TABLE spans"])
        .output()
        .expect("cairn sql");
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("read-only"));

    let again = Cairn::start_on(&store, &[], &[]);
    assert_stored(&again, None, &sent, "restart").await;
}
