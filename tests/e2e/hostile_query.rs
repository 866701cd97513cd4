//! Hostile SQL against the real binary: statements too deep or too large to plan, results larger
//! than the query memory, functions asked for gigabytes, queries that never end, and a client
//! that goes away. Each must get a clear JSON error (or be cancelled), the server must stay up,
//! and a normal query must answer afterwards. Memory and CPU are read from `/proc` and printed.

use std::time::{Duration, Instant};

use cairn_bench::process;

use crate::agent_run::{send_agent_runs, Transport};
use crate::harness::{client, Cairn};

/// `VmHWM` (peak resident memory) and `VmRSS` of a process, in MiB.
fn memory_mib(pid: u32) -> (u64, u64) {
    let mib = |bytes: cairn_bench::Result<u64>| bytes.expect("/proc") >> 20;
    (mib(process::peak_rss(pid)), mib(process::rss(pid)))
}

/// CPU the process uses over `window`, once it should be idle.
async fn cpu_over(pid: u32, window: Duration) -> Duration {
    let cpu = || process::cpu_seconds(pid).expect("/proc");
    let before = cpu();
    tokio::time::sleep(window).await;
    Duration::from_secs_f64((cpu() - before).max(0.0))
}

fn chain(n: usize, head: &str, term: &str, sep: &str) -> String {
    let mut s = String::from(head);
    for i in 0..n {
        if i > 0 {
            s.push_str(sep);
        }
        s.push_str(&term.replace("{i}", &i.to_string()));
    }
    s
}

fn cte_chain(n: usize) -> String {
    let mut s = String::from("WITH t0 AS (SELECT 1 AS x)");
    for i in 1..n {
        s.push_str(&format!(", t{i} AS (SELECT x + 1 AS x FROM t{})", i - 1));
    }
    s + &format!(" SELECT * FROM t{}", n - 1)
}

/// Sends `sql`, expects `status` with a JSON error naming `needle`, then checks the server is up
/// and answers a normal query; prints what it took and the server's memory.
async fn expect_refused(cairn: &mut Cairn, label: &str, sql: &str, status: u16, needle: &str) {
    let started = Instant::now();
    let (got, body) = cairn.sql_raw(None, sql, "application/json").await;
    let took = started.elapsed();
    let text = String::from_utf8_lossy(&body);
    assert!(cairn.alive(), "{label}: the server died");
    assert_eq!(got, status, "{label}: {text}");
    let error: serde_json::Value = serde_json::from_slice(&body).expect("JSON error");
    let message = error["error"].as_str().expect("error message");
    assert!(message.contains(needle), "{label}: {message}");
    let normal = Instant::now();
    let count = cairn.count(None, "spans").await;
    assert_eq!(count, 6, "{label}: a normal query after it");
    let (hwm, rss) = memory_mib(cairn.pid());
    println!(
        "{label}: {got} in {took:?}; then count(*) in {:?}; VmHWM {} MiB, VmRSS {} MiB; {}",
        normal.elapsed(),
        hwm,
        rss,
        message.chars().take(120).collect::<String>()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn hostile_queries_are_refused_or_cancelled() {
    let mut cairn = Cairn::start(&["--query-timeout", "3s", "--query-memory", "32MiB"]);
    send_agent_runs(
        &cairn,
        Transport::HttpProtobuf { gzip: false },
        None,
        "svc",
        2,
    )
    .await;
    assert_eq!(cairn.wait_for_count(None, "spans", 6).await, 6);
    let (hwm, rss) = memory_mib(cairn.pid());
    println!("start: VmHWM {hwm} MiB, VmRSS {rss} MiB");

    // Too deep or too large to plan: refused by the guard before planning.
    for n in [1_000, 10_000] {
        expect_refused(
            &mut cairn,
            &format!("1+1+… ({n} terms)"),
            &chain(n, "SELECT ", "1", "+"),
            400,
            "nested too deeply",
        )
        .await;
        expect_refused(
            &mut cairn,
            &format!("OR chain ({n} terms)"),
            &chain(
                n,
                "SELECT count(*) FROM spans WHERE ",
                "name = 'a{i}'",
                " OR ",
            ),
            400,
            "nested too deeply",
        )
        .await;
    }
    for n in [500, 5_000] {
        expect_refused(
            &mut cairn,
            &format!("UNION ALL chain ({n})"),
            &chain(n, "", "SELECT {i}", " UNION ALL "),
            400,
            "statement",
        )
        .await;
    }
    for n in [300, 3_000] {
        expect_refused(
            &mut cairn,
            &format!("CTE chain ({n})"),
            &cte_chain(n),
            400,
            "common table expressions",
        )
        .await;
    }
    // 140 bytes that make the parser backtrack exponentially (without the bound, ~30 s in a
    // debug build, then another error): refused for its parse budget.
    expect_refused(
        &mut cairn,
        "NOT + … (22 levels)",
        &format!("SELECT {} )", "NOT + ".repeat(22)),
        400,
        "too complex to parse",
    )
    .await;
    // The same filter as a list is fine.
    let list = chain(
        1_000,
        "SELECT count(*) AS n FROM spans WHERE name IN (",
        "'a{i}'",
        ", ",
    );
    let rows = cairn.sql(None, &(list + ")")).await;
    assert_eq!(rows[0]["n"], 0);

    // Results larger than the query memory.
    expect_refused(
        &mut cairn,
        "generate_series(1, 4e8)",
        "SELECT value FROM generate_series(1, 400000000)",
        503,
        "query memory",
    )
    .await;
    expect_refused(
        &mut cairn,
        "generate_series(1, 4e8) as Arrow",
        "SELECT value FROM generate_series(1, 400000000)",
        503,
        "query memory",
    )
    .await;
    // Functions asked for more than a value may be, or than the pool holds.
    expect_refused(
        &mut cairn,
        "repeat('x', 2e9)",
        "SELECT repeat('x', 2000000000)",
        400,
        "a generated value may have",
    )
    .await;
    expect_refused(
        &mut cairn,
        "lpad('x', 2e9)",
        "SELECT lpad('x', 2000000000, 'ab')",
        400,
        "a generated value may have",
    )
    .await;
    expect_refused(
        &mut cairn,
        "range(1, 1e10)",
        "SELECT cardinality(range(1, 10000000000))",
        400,
        "a generated value may have",
    )
    .await;
    expect_refused(
        &mut cairn,
        "repeat 50 MB × 100 rows",
        "SELECT length(repeat('x', 50000000 + value % 2)) FROM generate_series(1, 100)",
        503,
        "query memory",
    )
    .await;
    expect_refused(
        &mut cairn,
        "repeat 1 MB, a constant, × 100,000 rows",
        "SELECT repeat('x', 1000000) FROM generate_series(1, 100000)",
        503,
        "query memory",
    )
    .await;

    // Work that never ends: cancelled at the query timeout.
    for (label, sql) in [
        (
            "unbounded recursive CTE",
            "WITH RECURSIVE t(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM t) SELECT count(*) FROM t",
        ),
        (
            "1e6 × 1e6 cross join",
            "SELECT count(*) FROM generate_series(1, 1000000) a, generate_series(1, 1000000) b",
        ),
        (
            "generate_series(1, 1e13)",
            "SELECT count(*) FROM generate_series(1, 10000000000000)",
        ),
    ] {
        expect_refused(&mut cairn, label, sql, 504, "query timeout").await;
        let cpu = cpu_over(cairn.pid(), Duration::from_secs(2)).await;
        println!("{label}: CPU over the 2 s after the timeout: {cpu:?}");
        assert!(
            cpu < Duration::from_millis(1_000),
            "{label}: still running after the timeout ({cpu:?} CPU in 2 s)"
        );
    }
    let (hwm, rss) = memory_mib(cairn.pid());
    println!("end: VmHWM {hwm} MiB, VmRSS {rss} MiB");
}

/// A client that goes away cancels its query: the server's CPU goes idle long before the
/// query timeout would have stopped it.
#[tokio::test(flavor = "multi_thread")]
async fn disconnect_cancels_the_query() {
    let mut cairn = Cairn::start(&["--query-timeout", "10m"]);
    for sql in [
        "SELECT count(*) FROM generate_series(1, 1000000) a, generate_series(1, 1000000) b",
        "SELECT count(*) FROM generate_series(1, 10000000000000)",
    ] {
        let impatient = reqwest::Client::builder()
            .timeout(Duration::from_millis(1_500))
            .build()
            .unwrap();
        let started = Instant::now();
        let sent = impatient
            .post(format!("http://{}/api/v1/sql", cairn.http))
            .json(&serde_json::json!({ "sql": sql }))
            .send()
            .await;
        assert!(sent.is_err(), "{sql}: answered before the client gave up");
        let busy = cpu_over(cairn.pid(), Duration::from_millis(500)).await;
        let idle = cpu_over(cairn.pid(), Duration::from_secs(2)).await;
        println!(
            "{sql}: client gone after {:?}; CPU 0-0.5 s after: {busy:?}, 0.5-2.5 s after: {idle:?}",
            started.elapsed()
        );
        assert!(
            idle < Duration::from_millis(1_000),
            "{sql}: still running after the client went away ({idle:?} CPU in 2 s)"
        );
        assert!(cairn.alive());
        let normal = Instant::now();
        assert_eq!(cairn.count(None, "spans").await, 0);
        println!("then count(*) in {:?}", normal.elapsed());
    }
    let ok = client()
        .get(format!("http://{}/health", cairn.http))
        .send()
        .await
        .unwrap();
    assert!(ok.status().is_success());
}
