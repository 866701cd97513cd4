//! Two `cairn compact` processes on one store take turns through a Kubernetes Lease on the fake
//! API server: exactly one leads and compacts; killed with SIGKILL, it is replaced within the
//! lease duration by the other, which goes on compacting, and the dead one's lease is never
//! used by two at once; stopped cleanly, it hands the lease over at once. Queries see every
//! span exactly once throughout.

use std::path::Path;
use std::time::{Duration, Instant};

use cairn_k8s::fake::{FakeApiServer, Resource, Verb, Write};
use serde_json::json;

use crate::harness::{temp_dir, Cairn};

const HOUR_NANOS: i64 = 3_600_000_000_000;
/// The lease duration the compactors run with (renewed every 600 ms).
const LEASE: Duration = Duration::from_secs(3);

/// One export of 5 spans of trace `seq`, starting at `start` (nanoseconds).
fn export(seq: i64, start: i64) -> String {
    let spans: Vec<_> = (0..5)
        .map(|i| {
            json!({
                "traceId": format!("{:016x}{:016x}", seq + 1, 11),
                "spanId": format!("{:08x}{:08x}", seq + 1, i + 1),
                "name": "chat",
                "startTimeUnixNano": (start + seq * 1_000_000 + i).to_string(),
                "endTimeUnixNano": (start + seq * 1_000_000 + i + 500).to_string(),
                "attributes": [{"key": "gen_ai.operation.name", "value": {"stringValue": "chat"}}],
            })
        })
        .collect();
    json!({"resourceSpans": [{"scopeSpans": [{"spans": spans}]}]}).to_string()
}

/// `cairn compact` on `store`, campaigning as `identity` (also its API user).
fn compactor(server: &FakeApiServer, dir: &Path, store: &str, identity: &str) -> Cairn {
    let kubeconfig = dir.join(format!("kubeconfig-{identity}"));
    server.write_kubeconfig_as(&kubeconfig, identity).unwrap();
    let kubeconfig = kubeconfig.display().to_string();
    Cairn::start_role(
        "compact",
        store,
        &[
            "--compaction",
            "on",
            "--compaction-interval",
            "200ms",
            "--compaction-min-files",
            "2",
            "--compaction-grace",
            "30s",
            "--compactor-lease",
            "kube",
            "--kubeconfig",
            &kubeconfig,
            "--lease-namespace",
            "default",
            "--lease-identity",
            identity,
            "--lease-duration",
            "3s",
        ],
        &[],
    )
}

async fn leads(c: &Cairn) -> bool {
    c.metric("cairn_compactor_leader", "").await == 1.0
}

/// Waits until `cond` holds for `c`; panics after `within`.
async fn wait_until(what: &str, within: Duration, mut cond: impl AsyncFnMut() -> bool) -> Instant {
    let deadline = Instant::now() + within;
    loop {
        if cond().await {
            return Instant::now();
        }
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The lease writes, as (holder, time) runs: asserts that a holder is replaced by another only
/// after releasing, or a whole lease duration after its last renewal.
fn assert_turns_never_overlap(writes: &[Write]) {
    let leases: Vec<&Write> = writes
        .iter()
        .filter(|w| w.resource == Resource::Lease)
        .collect();
    for pair in leases.windows(2) {
        let (before, after) = (pair[0], pair[1]);
        if let (Some(old), Some(new)) = (before.holder(), after.holder()) {
            if old != new {
                assert!(
                    after.at - before.at >= LEASE,
                    "{new} took the lease {:?} after {old} last renewed it",
                    after.at - before.at
                );
            }
        }
        // Each write is made by the holder it names (or by the holder releasing it).
        if let Some(holder) = after.holder() {
            assert_eq!(after.user.as_deref(), Some(holder));
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn lease_one_compactor_leads_and_a_killed_leader_is_replaced() {
    let server = FakeApiServer::start().await.unwrap();
    let dir = temp_dir();
    let store = dir.path().join("data").display().to_string();
    let collector = Cairn::start_role("collector", &store, &["--flush-interval", "50ms"], &[]);
    let a = compactor(&server, dir.path(), &store, "a");
    wait_until("a leads", LEASE * 2, async || leads(&a).await).await;
    let b = compactor(&server, dir.path(), &store, "b");
    // A second of campaigning: b reads the lease, a keeps it.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(leads(&a).await && !leads(&b).await, "exactly one leads");
    assert!(server
        .requests()
        .iter()
        .any(|r| r.user.as_deref() == Some("b")));

    // Small files of an hour that is over: the leader merges them.
    let past = (chrono::Utc::now().timestamp_nanos_opt().unwrap() / HOUR_NANOS - 2) * HOUR_NANOS;
    let mut sent = 0;
    for seq in 0..6 {
        collector.send_json(export(seq, past)).await;
        sent += 5;
    }
    wait_until("a compacts", Duration::from_secs(30), async || {
        a.metric("cairn_compaction_merges_total", "spans").await >= 1.0
    })
    .await;
    assert_eq!(b.metric("cairn_compaction_merges_total", "").await, 0.0);

    // The leader dies without a word; b takes over once the lease has expired, not before.
    a.crash();
    let killed = Instant::now();
    for seq in 6..12 {
        collector.send_json(export(seq, past)).await;
        sent += 5;
    }
    let took_over = wait_until("b leads", LEASE * 3, async || leads(&b).await).await;
    // a's last renewal was at most one retry period (600 ms) before it died, b saw it at most
    // one period later and takes over at the first attempt a lease duration after that.
    let after = took_over - killed;
    assert!(
        after <= LEASE + Duration::from_secs(3),
        "b led {after:?} after a died"
    );
    wait_until("b compacts", Duration::from_secs(30), async || {
        b.metric("cairn_compaction_merges_total", "spans").await >= 1.0
    })
    .await;

    let writes = server.writes();
    assert_turns_never_overlap(&writes);
    let first_b = writes.iter().position(|w| w.holder() == Some("b")).unwrap();
    assert_eq!(writes[first_b].verb, Verb::Update, "b took over a's lease");
    assert!(
        writes[first_b..]
            .iter()
            .all(|w| w.user.as_deref() == Some("b")),
        "a wrote after b took over"
    );
    assert_eq!(
        b.metric("cairn_compactor_leader_transitions_total", "acquired")
            .await,
        1.0
    );

    // Every span exactly once, through merges by both.
    let query = Cairn::start_role("query", &store, &["--pg-addr", "off"], &[]);
    let rows = query
        .sql(
            None,
            "SELECT count(*) AS n, count(DISTINCT span_id) AS d FROM spans",
        )
        .await;
    assert_eq!(rows[0]["n"], sent);
    assert_eq!(rows[0]["d"], sent);
    assert!(b.stop(), "b did not stop cleanly");
    let last = server.writes().pop().unwrap();
    assert_eq!(last.holder(), None, "b released the lease when stopped");
}

#[tokio::test(flavor = "multi_thread")]
async fn lease_stopped_leader_hands_over_at_once() {
    let server = FakeApiServer::start().await.unwrap();
    let dir = temp_dir();
    let store = dir.path().join("data").display().to_string();
    let a = compactor(&server, dir.path(), &store, "a");
    wait_until("a leads", LEASE * 2, async || leads(&a).await).await;
    let b = compactor(&server, dir.path(), &store, "b");
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(!leads(&b).await);
    let stopping = Instant::now();
    assert!(a.stop(), "a did not stop cleanly");
    let took_over = wait_until("b leads", LEASE * 2, async || leads(&b).await).await;
    assert!(
        took_over - stopping < LEASE,
        "b led {:?} after a stopped: the lease was not released",
        took_over - stopping
    );
    let writes = server.writes();
    let release = writes.iter().position(|w| w.holder().is_none()).unwrap();
    assert_eq!(writes[release].user.as_deref(), Some("a"));
    assert_eq!(writes[release + 1].holder(), Some("b"));
    assert_turns_never_overlap(&writes[..release]);
}
