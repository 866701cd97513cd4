//! Per-tenant limits against the real binary, two tenants side by side: one over its ingest
//! rate is refused retryably (HTTP 429 with `Retry-After`, gRPC RESOURCE_EXHAUSTED with
//! `RetryInfo`) while the other's exports pass; one over its concurrent queries is answered 429
//! (and SQLSTATE 53400 on the Postgres wire) while the other's queries run; one at its storage
//! quota is refused for good (HTTP 403, gRPC FAILED_PRECONDITION, a message naming the quota and
//! the usage) while its queries keep working. Every acknowledged span stays queryable, refusals
//! are counted in `/metrics`, and a changed limits file applies once signalled (SIGHUP).

use std::process::Command;
use std::time::{Duration, Instant};

use futures::future::join_all;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use serde_json::json;
use tonic_types::StatusExt;

use crate::harness::{client, temp_dir, Cairn};

/// One span of `trace` as OTLP/JSON.
fn export(trace: u32) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    json!({ "resourceSpans": [{ "scopeSpans": [{ "spans": [{
        "traceId": format!("{trace:032x}"),
        "spanId": format!("{:016x}", trace + 1),
        "name": "step",
        "startTimeUnixNano": now.to_string(),
        "endTimeUnixNano": (now + 1000).to_string(),
    }]}]}]})
    .to_string()
}

/// Posts one export as `tenant`: (status, Retry-After, body).
async fn post(cairn: &Cairn, tenant: &str, trace: u32) -> (u16, Option<u64>, String) {
    let resp = client()
        .post(format!("http://{}/v1/traces", cairn.otlp_http))
        .header("content-type", "application/json")
        .header("X-Scope-OrgID", tenant)
        .body(export(trace))
        .send()
        .await
        .unwrap();
    let retry = resp
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().parse().unwrap());
    (resp.status().as_u16(), retry, resp.text().await.unwrap())
}

fn grpc_request(tenant: &str, trace: u32) -> tonic::Request<ExportTraceServiceRequest> {
    let span = Span {
        trace_id: (trace as u128 + (1 << 100)).to_be_bytes().to_vec(),
        span_id: (trace as u64 + 1).to_be_bytes().to_vec(),
        name: "step".into(),
        start_time_unix_nano: 1_800_000_000_000_000_000,
        end_time_unix_nano: 1_800_000_000_000_001_000,
        ..Default::default()
    };
    let mut req = tonic::Request::new(ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            scope_spans: vec![ScopeSpans {
                spans: vec![span],
                ..Default::default()
            }],
            ..Default::default()
        }],
    });
    req.metadata_mut()
        .insert("x-scope-orgid", tenant.parse().unwrap());
    req
}

fn hup(cairn: &Cairn) {
    let ok = Command::new("kill")
        .args(["-HUP", &cairn.pid().to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
}

#[tokio::test(flavor = "multi_thread")]
async fn ingest_rate_refuses_one_tenant_retryably() {
    let dir = temp_dir();
    let limits = dir.path().join("limits.toml");
    std::fs::write(&limits, "[tenant.slow]\nspans_per_second = 1\n").unwrap();
    let cairn = Cairn::start(&["--tenant-limits", limits.to_str().unwrap()]);

    // Twelve at once over HTTP: one token a second lets few of them through.
    let slow = join_all((0..12).map(|i| post(&cairn, "slow", 100 + i))).await;
    let fast = join_all((0..12).map(|i| post(&cairn, "fast", 200 + i))).await;
    let refused: Vec<_> = slow.iter().filter(|(s, _, _)| *s == 429).collect();
    let accepted = slow.iter().filter(|(s, _, _)| *s == 200).count();
    assert!(!refused.is_empty() && accepted >= 1, "{slow:?}");
    assert_eq!(refused.len() + accepted, slow.len(), "{slow:?}");
    for (_, retry, body) in &refused {
        assert!(retry.is_some_and(|s| s >= 1), "{refused:?}");
        assert!(body.contains("ingest rate of 1 spans per second"), "{body}");
    }
    assert!(fast.iter().all(|(s, _, _)| *s == 200), "{fast:?}");

    // And over gRPC: RESOURCE_EXHAUSTED with RetryInfo.
    let grpc = TraceServiceClient::connect(format!("http://{}", cairn.grpc))
        .await
        .unwrap();
    let results = join_all((0..12).map(|i| {
        let mut g = grpc.clone();
        async move { g.export(grpc_request("slow", 300 + i)).await }
    }))
    .await;
    let grpc_accepted = results.iter().filter(|r| r.is_ok()).count();
    let grpc_refused: Vec<_> = results.iter().filter_map(|r| r.as_ref().err()).collect();
    assert!(!grpc_refused.is_empty(), "{results:?}");
    for status in &grpc_refused {
        assert_eq!(status.code(), tonic::Code::ResourceExhausted, "{status:?}");
        assert!(status.get_details_retry_info().is_some(), "{status:?}");
    }

    // Everything acknowledged is stored; refusals are counted.
    let want = (accepted + grpc_accepted) as i64;
    assert_eq!(
        cairn.wait_for_count(Some("slow"), "spans", want).await,
        want
    );
    assert_eq!(cairn.wait_for_count(Some("fast"), "spans", 12).await, 12);
    let counted = cairn
        .metric(
            "cairn_tenant_refused_total",
            "tenant=\"slow\",limit=\"ingest_rate\"",
        )
        .await;
    assert_eq!(counted as usize, refused.len() + grpc_refused.len());

    // Lifted in the file and signalled: the tenant's exports pass again.
    std::fs::write(&limits, "[tenant.slow]\nspans_per_second = 100000\n").unwrap();
    hup(&cairn);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let results = join_all((0..12).map(|i| post(&cairn, "slow", 400 + i))).await;
        if results.iter().all(|(s, _, _)| *s == 200) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the reloaded limit never applied"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(cairn.stop());
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_queries_over_the_limit_are_refused() {
    let dir = temp_dir();
    let limits = dir.path().join("limits.toml");
    std::fs::write(&limits, "[tenant.busy]\nmax_concurrent_queries = 1\n").unwrap();
    let cairn = Cairn::start(&[
        "--tenant-limits",
        limits.to_str().unwrap(),
        "--query-timeout",
        "20s",
    ]);
    let slow_query = "SELECT count(*) AS n FROM generate_series(1, 5000000) WHERE value % 7 = 3";
    let run = |tenant: &'static str| {
        let cairn = &cairn;
        async move {
            let resp = client()
                .post(format!("http://{}/api/v1/sql", cairn.http))
                .header("X-Scope-OrgID", tenant)
                .json(&json!({ "sql": slow_query }))
                .send()
                .await
                .unwrap();
            let retry = resp.headers().get("retry-after").cloned();
            (resp.status().as_u16(), retry, resp.text().await.unwrap())
        }
    };
    let busy = join_all((0..6).map(|_| run("busy"))).await;
    let refused: Vec<_> = busy.iter().filter(|(s, _, _)| *s == 429).collect();
    assert!(!refused.is_empty(), "{busy:?}");
    assert!(busy.iter().any(|(s, _, _)| *s == 200), "{busy:?}");
    for (_, retry, body) in &refused {
        assert!(retry.is_some(), "{body}");
        assert!(body.contains("limit of concurrent queries"), "{body}");
    }
    let other = join_all((0..3).map(|_| run("other"))).await;
    assert!(other.iter().all(|(s, _, _)| *s == 200), "{other:?}");
    assert_eq!(
        cairn
            .metric(
                "cairn_tenant_refused_total",
                "tenant=\"busy\",limit=\"concurrent_queries\""
            )
            .await as usize,
        refused.len()
    );

    // The Postgres wire: psql gets an ERROR of class 53 while the tenant's slot is taken. The
    // holder's statement would run for hours; the query timeout ends it. psql runs only once the
    // HTTP API has seen the slot taken, off the test's runtime (it blocks).
    let pg_port = cairn.pg.rsplit(':').next().unwrap().to_owned();
    let holder = tokio::spawn({
        let http = cairn.http.clone();
        async move {
            // Refused while a probe below holds the slot for a moment: asked again.
            loop {
                let status = client()
                    .post(format!("http://{http}/api/v1/sql"))
                    .header("X-Scope-OrgID", "busy")
                    .json(&json!({ "sql": "SELECT count(*) FROM generate_series(1, 100000000000) WHERE value % 7 = 3" }))
                    .send()
                    .await
                    .unwrap()
                    .status()
                    .as_u16();
                if status != 429 {
                    break status;
                }
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let resp = client()
            .post(format!("http://{}/api/v1/sql", cairn.http))
            .header("X-Scope-OrgID", "busy")
            .json(&json!({ "sql": "SELECT 1" }))
            .send()
            .await
            .unwrap();
        if resp.status().as_u16() == 429 {
            break;
        }
        assert!(Instant::now() < deadline, "the holder never took the slot");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let out = tokio::task::spawn_blocking(move || {
        Command::new("psql")
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &pg_port,
                "-U",
                "busy",
                "-d",
                "cairn",
                "-v",
                "ON_ERROR_STOP=1",
                "-v",
                "VERBOSITY=verbose",
                "-c",
                "SELECT 1",
            ])
            .env("PGCONNECT_TIMEOUT", "10")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "psql ran while the slot was taken");
    assert!(stderr.contains("53400"), "{stderr}");
    assert!(stderr.contains("retry later"), "{stderr}");
    assert!(
        !holder.is_finished(),
        "the holder ended before psql was refused"
    );
    holder.abort();
    assert!(cairn.stop());
}

#[tokio::test(flavor = "multi_thread")]
async fn storage_quota_refuses_for_good_and_queries_keep_working() {
    let dir = temp_dir();
    let limits = dir.path().join("limits.toml");
    std::fs::write(&limits, "[tenant.full]\nstorage_quota = 1\n").unwrap();
    let store = dir.path().join("data").display().to_string();
    let flags = [
        "--tenant-limits",
        limits.to_str().unwrap(),
        "--tenant-usage-interval",
        "1h",
    ];
    let cairn = Cairn::start_on(&store, &flags, &[]);
    // Under its quota when it starts: accepted, and counted towards it.
    let (status, _, body) = post(&cairn, "full", 1).await;
    assert_eq!(status, 200, "{body}");
    let (status, retry, body) = post(&cairn, "full", 2).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(retry, None);
    assert!(
        body.contains("storage quota is 1 bytes") && body.contains("tenant full stores"),
        "{body}"
    );
    let mut grpc = TraceServiceClient::connect(format!("http://{}", cairn.grpc))
        .await
        .unwrap();
    let status = grpc.export(grpc_request("full", 3)).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::FailedPrecondition, "{status:?}");
    assert!(status.get_details_retry_info().is_none());
    assert!(status.message().contains("storage quota"), "{status:?}");
    // Other tenants are unaffected, and the tenant's data stays queryable.
    for i in 0..3 {
        let (status, _, body) = post(&cairn, "roomy", 10 + i).await;
        assert_eq!(status, 200, "{body}");
    }
    assert_eq!(cairn.wait_for_count(Some("roomy"), "spans", 3).await, 3);
    assert_eq!(cairn.wait_for_count(Some("full"), "spans", 1).await, 1);
    assert!(
        cairn
            .metric("cairn_tenant_storage_bytes", "tenant=\"full\"")
            .await
            > 0.0
    );
    assert_eq!(
        cairn
            .metric(
                "cairn_tenant_refused_total",
                "tenant=\"full\",limit=\"storage_quota\""
            )
            .await,
        2.0
    );

    // Restarted: the listing of the store finds the tenant at its quota before any export.
    assert!(cairn.stop());
    let cairn = Cairn::start_on(&store, &flags, &[]);
    let (status, _, body) = post(&cairn, "full", 4).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(post(&cairn, "roomy", 20).await.0, 200);
    assert_eq!(cairn.count(Some("full"), "spans").await, 1);

    // The quota raised in the file and signalled: accepted again.
    std::fs::write(&limits, "[tenant.full]\nstorage_quota = \"1GiB\"\n").unwrap();
    hup(&cairn);
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut trace = 100;
    loop {
        trace += 1;
        if post(&cairn, "full", trace).await.0 == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "the raised quota never applied");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(cairn.wait_for_count(Some("full"), "spans", 2).await, 2);
    assert!(cairn.stop());
}
