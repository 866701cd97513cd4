//! The compactor's lease against the fake API server: one leader at a time, renewals that keep
//! it, a leader cut off from the API that steps down before anyone can take over, a release that
//! hands over at once, and concurrent writers resolved by 409 Conflict.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use cairn_k8s::fake::{FakeApiServer, Fault, Resource, Verb};
use cairn_k8s::lease::{Leadership, Lease, LeaseConfig, LeaseMode, Timing};
use tokio::time::Instant;

const NAME: &str = "cairn-compactor";
const DURATION: Duration = Duration::from_secs(3);
const LEASE_PATH: &str = "/apis/coordination.k8s.io/v1/namespaces/default/leases/cairn-compactor";

fn config(identity: &str) -> LeaseConfig {
    LeaseConfig {
        compactor_lease: LeaseMode::Kube,
        lease_name: NAME.to_owned(),
        lease_namespace: Some("default".to_owned()),
        lease_identity: Some(identity.to_owned()),
        lease_duration: DURATION,
    }
}

/// A campaign whose API user and lease identity are both `identity`.
async fn candidate(server: &FakeApiServer, identity: &str) -> Lease {
    Lease::start(server.client_as(identity).await, &config(identity))
}

fn leads(leadership: &Leadership) -> bool {
    leadership.borrow().is_some_and(|t| t > Instant::now())
}

/// Waits until `cond` holds; panics after `within`.
async fn wait_until(what: &str, within: Duration, mut cond: impl FnMut() -> bool) -> Instant {
    let deadline = Instant::now() + within;
    loop {
        if cond() {
            return Instant::now();
        }
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Samples leaderships every few milliseconds; fails the test if two ever lead at once.
fn never_two_leaders(
    leaderships: Vec<Leadership>,
) -> (Arc<AtomicBool>, tokio::task::JoinHandle<()>) {
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::clone(&stop);
    let task = tokio::spawn(async move {
        while !done.load(Ordering::SeqCst) {
            let leading = leaderships.iter().filter(|l| leads(l)).count();
            assert!(leading <= 1, "{leading} leaders at once");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    });
    (stop, task)
}

/// The holder the stored lease names.
fn holder(server: &FakeApiServer) -> Option<String> {
    server
        .get(Resource::Lease, "default", NAME)
        .and_then(|l| l["spec"]["holderIdentity"].as_str().map(str::to_owned))
        .filter(|h| !h.is_empty())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lease_taken_renewed_and_held_exclusively() {
    let server = FakeApiServer::start().await.unwrap();
    let a = candidate(&server, "a").await;
    let la = a.leadership();
    wait_until("a leads", DURATION, || leads(&la)).await;
    let b = candidate(&server, "b").await;
    let lb = b.leadership();
    let (stop, monitor) = never_two_leaders(vec![la.clone(), lb.clone()]);
    // Three lease durations: a keeps renewing, b never gets it.
    tokio::time::sleep(DURATION * 3).await;
    assert!(leads(&la) && !leads(&lb));
    assert_eq!(holder(&server).as_deref(), Some("a"));

    let requests = server.requests();
    let lines = |user: &str| -> Vec<String> {
        requests
            .iter()
            .filter(|r| r.user.as_deref() == Some(user))
            .map(|r| r.line())
            .collect()
    };
    // a: looks the lease up, creates it, then only renews it (no read while leading).
    let a_lines = lines("a");
    assert_eq!(a_lines[0], format!("GET {LEASE_PATH}"));
    assert_eq!(
        a_lines[1],
        "POST /apis/coordination.k8s.io/v1/namespaces/default/leases"
    );
    assert!(
        a_lines[2..]
            .iter()
            .all(|l| *l == format!("PUT {LEASE_PATH}")),
        "{a_lines:?}"
    );
    // One renewal per retry period (3 s / 5), give or take scheduling.
    let timing = Timing::of(DURATION);
    let a_requests: Vec<_> = requests
        .iter()
        .filter(|r| r.user.as_deref() == Some("a"))
        .collect();
    let elapsed = a_requests.last().unwrap().at - a_requests[1].at;
    let renewals = a_requests.len() - 2;
    let expected = (elapsed.as_millis() / timing.retry_period.as_millis()) as usize;
    // (A loaded machine may renew late, never more often.)
    assert!(
        renewals >= expected / 2 && renewals <= expected + 1,
        "{renewals} renewals in {elapsed:?}, about {expected} expected"
    );
    // b only reads.
    let b_lines = lines("b");
    assert!(!b_lines.is_empty());
    assert!(
        b_lines.iter().all(|l| *l == format!("GET {LEASE_PATH}")),
        "{b_lines:?}"
    );
    // Every write was a's, renewals keep the acquire time and count no transition.
    let writes = server.writes();
    assert!(writes.iter().all(|w| w.holder() == Some("a")));
    let first = &writes[0].object["spec"];
    let last = &writes.last().unwrap().object["spec"];
    assert_eq!(first["acquireTime"], last["acquireTime"]);
    assert_ne!(first["renewTime"], last["renewTime"]);
    assert_eq!(last["leaseTransitions"], 0);
    assert_eq!(last["leaseDurationSeconds"], 3);

    stop.store(true, Ordering::SeqCst);
    monitor.await.unwrap();
    b.release().await;
    a.release().await;
}

/// A leader whose requests hang leads until its last renewal was sent plus the renew deadline;
/// the other takes over only a lease duration after it last saw a renewal, so the two never
/// lead at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lease_leader_whose_requests_hang_steps_down_before_the_other_takes_over() {
    leader_cut_off(Fault::Hang).await;
}

/// The same when the leader's requests fail with 503 (which kube's client retries by itself,
/// for longer than the renew deadline).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lease_leader_whose_requests_fail_steps_down_before_the_other_takes_over() {
    leader_cut_off(Fault::Fail(503)).await;
}

async fn leader_cut_off(fault: Fault) {
    let server = FakeApiServer::start().await.unwrap();
    let a = candidate(&server, "a").await;
    let la = a.leadership();
    wait_until("a leads", DURATION, || leads(&la)).await;
    let b = candidate(&server, "b").await;
    let lb = b.leadership();
    let (stop, monitor) = never_two_leaders(vec![la.clone(), lb.clone()]);
    tokio::time::sleep(DURATION).await;

    server.set_user_fault("a", fault);
    let cut = Instant::now();
    let a_until = la.borrow().expect("a leads when cut off");
    let a_down = wait_until("a steps down", DURATION, || !leads(&la)).await;
    let b_up = wait_until("b leads", DURATION * 3, || leads(&lb)).await;
    let timing = Timing::of(DURATION);
    // a stopped within the renew deadline of being cut off, b started after a lease duration.
    assert!(a_down <= cut + timing.renew_deadline + Duration::from_millis(500));
    assert!(a_down >= a_until, "a stepped down before its deadline");
    assert!(b_up - a_down >= DURATION - timing.renew_deadline - timing.retry_period);

    // At the server: b's take-over came a whole lease duration after a's last renewal.
    let writes = server.writes();
    let last_a = writes.iter().rfind(|w| w.holder() == Some("a")).unwrap();
    let take_over = writes.iter().find(|w| w.holder() == Some("b")).unwrap();
    assert!(take_over.at - last_a.at >= DURATION, "b took over early");
    assert_eq!(take_over.verb, Verb::Update);
    assert_eq!(take_over.object["spec"]["leaseTransitions"], 1);
    assert!(a_until.into_std() < take_over.at);

    // a comes back: it finds b holding the lease and stays a candidate.
    server.clear_faults();
    tokio::time::sleep(DURATION).await;
    assert!(!leads(&la) && leads(&lb));
    assert_eq!(holder(&server).as_deref(), Some("b"));
    stop.store(true, Ordering::SeqCst);
    monitor.await.unwrap();
    a.release().await;
    b.release().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lease_leader_steps_down_while_the_api_server_is_down() {
    let server = FakeApiServer::start().await.unwrap();
    let a = candidate(&server, "a").await;
    let la = a.leadership();
    wait_until("a leads", DURATION, || leads(&la)).await;
    let b = candidate(&server, "b").await;
    let lb = b.leadership();
    let (stop, monitor) = never_two_leaders(vec![la.clone(), lb.clone()]);
    tokio::time::sleep(DURATION).await;

    server.stop().await;
    let down = Instant::now();
    let timing = Timing::of(DURATION);
    wait_until("a steps down", DURATION, || !leads(&la)).await;
    assert!(Instant::now() - down <= timing.renew_deadline + Duration::from_millis(500));
    // Nobody leads while the API is unreachable.
    tokio::time::sleep(DURATION).await;
    assert!(!leads(&la) && !leads(&lb));

    server.restart().await.unwrap();
    wait_until("somebody leads again", DURATION * 2, || {
        leads(&la) || leads(&lb)
    })
    .await;
    stop.store(true, Ordering::SeqCst);
    monitor.await.unwrap();
    a.release().await;
    b.release().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lease_released_on_shutdown_is_taken_over_at_once() {
    let server = FakeApiServer::start().await.unwrap();
    let a = candidate(&server, "a").await;
    let la = a.leadership();
    wait_until("a leads", DURATION, || leads(&la)).await;
    let b = candidate(&server, "b").await;
    let lb = b.leadership();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let released = Instant::now();
    a.release().await;
    assert!(!leads(&la));
    assert_eq!(holder(&server), None, "released");
    let b_up = wait_until("b leads", DURATION, || leads(&lb)).await;
    let timing = Timing::of(DURATION);
    assert!(
        b_up - released <= timing.retry_period + Duration::from_secs(1),
        "b took {:?} after the release",
        b_up - released
    );
    let writes = server.writes();
    let release = writes.iter().rev().find(|w| w.holder().is_none()).unwrap();
    assert_eq!(release.user.as_deref(), Some("a"));
    assert_eq!(release.object["spec"]["leaseDurationSeconds"], 1);
    assert_eq!(holder(&server).as_deref(), Some("b"));
    b.release().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lease_concurrent_candidates_resolved_by_conflicts() {
    let server = FakeApiServer::start().await.unwrap();
    let mut candidates = Vec::new();
    for name in ["a", "b", "c", "d"] {
        candidates.push(candidate(&server, name).await);
    }
    let leaderships: Vec<Leadership> = candidates.iter().map(Lease::leadership).collect();
    let (stop, monitor) = never_two_leaders(leaderships.clone());
    wait_until("one leads", DURATION, || leaderships.iter().any(leads)).await;
    tokio::time::sleep(DURATION * 2).await;
    assert_eq!(leaderships.iter().filter(|l| leads(l)).count(), 1);
    let writes = server.writes();
    assert_eq!(
        writes.iter().filter(|w| w.verb == Verb::Create).count(),
        1,
        "one create won"
    );
    let leader = holder(&server).unwrap();
    assert!(writes.iter().all(|w| w.holder() == Some(leader.as_str())));

    // Somebody else writes the lease under the leader (kubectl, another elector): the leader's
    // next renewal conflicts, it reads the new holder and steps down at once.
    let index = ["a", "b", "c", "d"]
        .iter()
        .position(|n| *n == leader)
        .unwrap();
    let mut lease = server.get(Resource::Lease, "default", NAME).unwrap();
    lease["spec"]["holderIdentity"] = "intruder".into();
    server.apply(lease);
    wait_until("the leader steps down", DURATION, || {
        !leads(&leaderships[index])
    })
    .await;
    let conflicts = server
        .requests()
        .iter()
        .filter(|r| r.user.as_deref() == Some(leader.as_str()) && r.method == "PUT")
        .count();
    assert!(conflicts > 0);
    stop.store(true, Ordering::SeqCst);
    monitor.await.unwrap();
    for c in candidates {
        c.release().await;
    }
    // None of them held it: none released it.
    assert_eq!(holder(&server).as_deref(), Some("intruder"));
}

/// A candidate never trusts wall-clock `renewTime`: a recorded lease renewed long ago is taken
/// over only once it has stayed unchanged for a whole lease duration since first seen.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lease_stale_record_is_taken_over_after_a_full_duration() {
    let server = FakeApiServer::start().await.unwrap();
    let mut recorded: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(
            cairn_k8s::fake::fixtures_dir().join("lease-cairn-compactor.json"),
        )
        .unwrap(),
    )
    .unwrap();
    recorded["metadata"]["namespace"] = "default".into();
    recorded["spec"]["leaseDurationSeconds"] = 3.into();
    server.apply(recorded);
    let started = Instant::now();
    let a = candidate(&server, "a").await;
    let la = a.leadership();
    let up = wait_until("a leads", DURATION * 3, || leads(&la)).await;
    assert!(
        up - started >= DURATION,
        "took the lease after {:?}",
        up - started
    );
    let spec = server.get(Resource::Lease, "default", NAME).unwrap()["spec"].clone();
    assert_eq!(spec["holderIdentity"], "a");
    assert_eq!(spec["leaseTransitions"], 4);
    a.release().await;
}
