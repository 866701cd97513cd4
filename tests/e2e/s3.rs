//! The S3 path against a real S3-compatible server (s3s-fs) on loopback.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::agent_run::{assert_stored, send_agent_runs, Transport};
use crate::harness::{free_port, parquet_files, temp_dir, Cairn};

/// An s3s-fs server; killed on drop.
pub struct S3Server {
    child: Child,
    pub port: u16,
    pub root: tempfile::TempDir,
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn s3s_fs_binary() -> PathBuf {
    std::env::var_os("CAIRN_TEST_S3S_FS")
        .map(PathBuf::from)
        .expect("CAIRN_TEST_S3S_FS must name the s3s-fs binary (.ci/run installs it)")
}

/// s3s-fs on a free loopback port, serving an empty bucket `traces`.
pub fn start_s3() -> S3Server {
    let root = temp_dir();
    std::fs::create_dir_all(root.path().join("traces")).unwrap();
    let port = free_port();
    let child = Command::new(s3s_fs_binary())
        .args(["--host", "127.0.0.1", "--port", &port.to_string()])
        .args(["--access-key", "cairn-ak", "--secret-key", "cairn-sk"])
        .arg(root.path())
        .stdin(Stdio::null())
        .spawn()
        .expect("spawn s3s-fs");
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "s3s-fs did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    S3Server { child, port, root }
}

/// The `AWS_*` variables that point Cairn at the server on `port`.
pub fn s3_env(port: u16) -> Vec<(&'static str, String)> {
    vec![
        ("AWS_ACCESS_KEY_ID", "cairn-ak".into()),
        ("AWS_SECRET_ACCESS_KEY", "cairn-sk".into()),
        ("AWS_REGION", "us-east-1".into()),
        ("AWS_ENDPOINT_URL", format!("http://127.0.0.1:{port}")),
        ("AWS_ALLOW_HTTP", "true".into()),
    ]
}

#[tokio::test(flavor = "multi_thread")]
async fn spans_round_trip_through_s3() {
    let s3 = start_s3();
    let env = s3_env(s3.port);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let store = "s3://traces/cairn/prod";
    let cairn = Cairn::start_on(store, &["--ack", "wal"], &env);
    let sent = send_agent_runs(
        &cairn,
        Transport::Grpc { gzip: false },
        Some("acme"),
        "s3-agent",
        3,
    )
    .await;
    assert_stored(&cairn, Some("acme"), &sent, "s3-agent").await;

    let files = parquet_files(&s3.root.path().join("traces/cairn/prod/spans/tenant=acme"));
    assert!(
        !files.is_empty(),
        "Parquet files are in the bucket under the prefix"
    );
    let time_pruned = cairn
        .count(
            Some("acme"),
            "spans WHERE start_time > now() - INTERVAL '1 day'",
        )
        .await;
    assert_eq!(time_pruned, 9);
    assert_eq!(
        cairn
            .count(
                Some("acme"),
                "spans WHERE start_time < TIMESTAMP '2000-01-01T00:00:00Z'"
            )
            .await,
        0
    );
    assert!(cairn.stop());

    // A second process (the query role alone) reads the same bucket.
    let query_only = Command::new(env!("CARGO_BIN_EXE_cairn"))
        .args([
            "sql", "--store", store, "--tenant", "acme", "--format", "csv",
        ])
        .arg("SELECT count(*) AS n FROM spans")
        .envs(env.iter().copied())
        .output()
        .expect("cairn sql");
    assert!(
        query_only.status.success(),
        "{}",
        String::from_utf8_lossy(&query_only.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&query_only.stdout), "n\n9\n");
}

#[tokio::test(flavor = "multi_thread")]
async fn wrong_credentials_are_not_acknowledged() {
    let s3 = start_s3();
    let mut env = s3_env(s3.port);
    env[1].1 = "wrong-secret".into();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let cairn = Cairn::start_on("s3://traces/x", &["--flush-interval", "100ms"], &env);
    let resp = crate::harness::client()
        .post(format!("http://{}/v1/traces", cairn.otlp_http))
        .header("content-type", "application/json")
        .body(r#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"0A0A0A0A0A0A0A0A0A0A0A0A0A0A0A0A","spanId":"0102030405060708","name":"x","startTimeUnixNano":"1764290000000000000","endTimeUnixNano":"1764290000000001000"}]}]}]}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.status(),
        503,
        "a failed write is retryable, not acknowledged"
    );
    assert!(resp.headers().contains_key("retry-after"));
    assert!(parquet_files(s3.root.path()).is_empty());
}

/// The S3 server goes away mid-run and comes back: exports keep being acknowledged from the
/// write-ahead log, uploads are retried, and every acknowledged span lands exactly once.
#[tokio::test(flavor = "multi_thread")]
async fn s3_outage_loses_and_duplicates_nothing() {
    let mut s3 = start_s3();
    let env = s3_env(s3.port);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let cairn = Cairn::start_on(
        "s3://traces/outage",
        &["--ack", "wal", "--flush-interval", "100ms"],
        &env,
    );
    let mut acked = 0u32;
    let send = |n: u32| {
        let url = format!("http://{}/v1/traces", cairn.otlp_http);
        async move {
            let body = serde_json::json!({"resourceSpans": [{"scopeSpans": [{"spans": [{
                "traceId": format!("{:032x}", n + 1),
                "spanId": format!("{:016x}", n + 1),
                "name": format!("span-{n}"),
                "startTimeUnixNano": "1764290000000000000",
                "endTimeUnixNano": "1764290000000001000",
            }]}]}]});
            crate::harness::client()
                .post(url)
                .header("content-type", "application/json")
                .body(body.to_string())
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    for n in 0..30 {
        assert_eq!(send(n).await, 200);
        acked += 1;
    }
    // The object store goes down; ingest goes on.
    let _ = s3.child.kill();
    let _ = s3.child.wait();
    for n in 30..60 {
        assert_eq!(
            send(n).await,
            200,
            "acknowledged from the log while S3 is down"
        );
        acked += 1;
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    // It comes back on the same port with the same data.
    s3.child = Command::new(s3s_fs_binary())
        .args(["--host", "127.0.0.1", "--port", &s3.port.to_string()])
        .args(["--access-key", "cairn-ak", "--secret-key", "cairn-sk"])
        .arg(s3.root.path())
        .stdin(Stdio::null())
        .spawn()
        .expect("restart s3s-fs");
    let n = cairn.wait_for_count(None, "spans", acked as i64).await;
    assert_eq!(
        n, acked as i64,
        "every acknowledged span arrives once S3 is back"
    );
    let distinct = cairn
        .count(None, "(SELECT DISTINCT span_id FROM spans)")
        .await;
    assert_eq!(distinct, acked as i64, "and none twice");
}
