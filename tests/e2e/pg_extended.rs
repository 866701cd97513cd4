//! The extended query protocol of the Postgres listener (prepared statements and parameters),
//! driven by psycopg 3's ordinary `cursor.execute(sql, params)`: the same answers, types,
//! refusals and limits as the simple protocol, tenant by tenant.

use crate::agent_run::{send_agent_runs, Transport};
use crate::harness::{python_script, run_python, Cairn};

#[tokio::test(flavor = "multi_thread")]
async fn pg_prepared_statements_and_parameters() {
    let cairn = Cairn::start(&["--query-memory", "96MiB", "--query-timeout", "3s"]);
    for (tenant, service) in [("acme", "acme-svc"), ("globex", "globex-svc")] {
        let transport = Transport::HttpProtobuf { gzip: false };
        send_agent_runs(&cairn, transport, Some(tenant), service, 1).await;
        assert!(cairn.wait_for_count(Some(tenant), "spans", 1).await > 0);
    }
    let (host, port) = cairn.pg.rsplit_once(':').unwrap();
    let script = python_script("pg_extended.py");
    let out = run_python(&[script.to_str().unwrap(), host, port, "acme", "globex-svc"]);
    assert_eq!(out.trim(), "ok");
    assert!(cairn.healthy().await);
    assert!(cairn.stop(), "clean shutdown");
}
