//! Issue #20: scans on a Ballista cluster, the whole topology as processes on one bucket of a
//! real S3-compatible server (s3s-fs).
//!
//! Two `cairn collector`s take the runs of `tests/python/lineage_runs.py` and
//! `tests/python/big_run.py` (the OpenTelemetry Python SDK) for tenant `default` and a few
//! spans of tenant `other`; `cairn compact` merges their files; `cairn scheduler` and two
//! `cairn executor`s form the cluster; `cairn query --scheduler` sends statements to it. Every SQL
//! block of `docs/queries.md` and the SQL of the query suite (`benches/query_suite.py`) answers
//! the same run here and on the cluster; tenants never see each other's rows through a
//! distributed plan; `auto` sends scans and keeps statements without one; a statement its
//! querier stops waiting for is cancelled on the cluster, its task slots freed; and an executor
//! killed with SIGKILL while queries run gives answers equal to the local ones or a clear
//! error, never another answer, and the cluster answers again with the executor left.

use std::collections::BTreeSet;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::{
    client, free_port, metric_at, metrics_text, python_script, run_python, temp_dir, Cairn,
};
use crate::s3::{s3_env, start_s3};

const STORE: &str = "s3://traces/distributed";

/// A scheduler or executor process, killed when dropped.
struct Node {
    child: Child,
    /// Where it serves `/metrics`.
    metrics: String,
}

impl Node {
    fn start(role: &str, args: &[String], env: &[(&str, &str)]) -> Self {
        let metrics = format!("127.0.0.1:{}", free_port());
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_cairn"));
        cmd.args([role, "--store", STORE, "--metrics-addr", &metrics])
            .args(args)
            .env("CAIRN_LOG", "warn")
            .stdin(Stdio::null());
        for (k, v) in env {
            cmd.env(k, v);
        }
        Self {
            child: cmd.spawn().expect("spawn cairn"),
            metrics,
        }
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
    }
}

fn wait_for_port(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "nothing listens on {port}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `cairn executor` number `n` of the scheduler on `scheduler`.
fn executor(n: usize, scheduler: u16, work: &std::path::Path, env: &[(&str, &str)]) -> Node {
    let (flight, grpc) = (free_port(), free_port());
    let node = Node::start(
        "executor",
        &[
            format!("--scheduler=127.0.0.1:{scheduler}"),
            format!("--executor-addr=127.0.0.1:{flight}"),
            format!("--executor-grpc-addr=127.0.0.1:{grpc}"),
            format!(
                "--executor-work-dir={}",
                work.join(format!("executor-{n}")).display()
            ),
            "--executor-slots=2".into(),
            "--executor-memory=512MiB".into(),
            "--heartbeat-interval=1s".into(),
        ],
        env,
    );
    wait_for_port(flight);
    node
}

/// A statement's rows in an order of their own, numbers rounded to 12 significant digits:
/// sums of floating-point values differ in their last digits with the order they are added in,
/// which differs between partitionings. Rows are compared as sets because statements without
/// `ORDER BY` have no order, and those with one may tie.
fn canonical(rows: &[Value]) -> Vec<String> {
    fn round(v: &Value) -> Value {
        match v {
            Value::Number(n) if n.is_f64() => {
                let f = n.as_f64().unwrap();
                Value::String(format!("{f:.11e}"))
            }
            Value::Array(a) => Value::Array(a.iter().map(round).collect()),
            Value::Object(o) => {
                Value::Object(o.iter().map(|(k, v)| (k.clone(), round(v))).collect())
            }
            other => other.clone(),
        }
    }
    let mut out: Vec<String> = rows.iter().map(|r| round(r).to_string()).collect();
    out.sort();
    out
}

/// The SQL blocks of `docs/queries.md`.
fn documented_sql() -> Vec<String> {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/queries.md"))
        .expect("docs/queries.md");
    let (mut blocks, mut body, mut in_sql, mut in_other) =
        (Vec::new(), String::new(), false, false);
    for line in doc.lines() {
        let fence = line.trim_start().starts_with("```");
        if in_sql && fence {
            blocks.push(std::mem::take(&mut body));
            in_sql = false;
        } else if in_sql {
            body.push_str(line);
            body.push('\n');
        } else if in_other && fence {
            in_other = false;
        } else if let Some(info) = line.trim_start().strip_prefix("```") {
            in_sql = info.trim() == "sql";
            in_other = !in_sql;
        }
    }
    blocks
}

/// The SQL of `benches/query_suite.py`, with the run and pod it names in this store.
fn suite_sql(trace: &str, pod: &str) -> Vec<String> {
    vec![
        format!(
            "SELECT trace_id, span_id, parent_span_id, name, start_time, duration_ns, operation, \
             tool_name, agent_name FROM spans WHERE trace_id = '{trace}' ORDER BY start_time"
        ),
        format!(
            "SELECT trace_id, min(start_time) AS started, count(*) AS spans, \
             sum(input_tokens) AS input_tokens FROM spans WHERE trace_id IN (\
             SELECT trace_id FROM spans WHERE k8s_pod_name = '{pod}' AND tool_name IS NOT NULL) \
             GROUP BY trace_id ORDER BY started DESC LIMIT 50"
        ),
        "SELECT tool_name, date_trunc('hour', start_time) AS hour, count(*) AS calls \
         FROM spans WHERE tool_name IS NOT NULL GROUP BY 1, 2 ORDER BY 2, 1"
            .into(),
        "SELECT k8s_pod_name, request_model, sum(input_tokens) + sum(output_tokens) AS tokens, \
         count(*) AS calls FROM spans WHERE request_model IS NOT NULL GROUP BY 1, 2 \
         ORDER BY tokens DESC LIMIT 20"
            .into(),
        "SELECT trace_id, sum(input_tokens) + sum(output_tokens) AS tokens FROM spans \
         GROUP BY trace_id ORDER BY tokens DESC, trace_id LIMIT 20"
            .into(),
        "SELECT count(*) AS spans, count(DISTINCT trace_id) AS runs, sum(duration_ns) AS ns, \
         avg(duration_ns) AS mean_ns, approx_distinct(span_id) AS about FROM spans"
            .into(),
        "SELECT agent_name, count(*) AS steps, sum(cost) AS cost FROM spans \
         GROUP BY agent_name ORDER BY steps DESC"
            .into(),
    ]
}

/// Rows of `sql` as `tenant`, run where `hint` says.
async fn rows(querier: &Cairn, tenant: &str, hint: &str, sql: &str) -> Vec<Value> {
    querier
        .sql(Some(tenant), &format!("/*+ {hint} */ {sql}"))
        .await
}

#[tokio::test(flavor = "multi_thread")]
async fn statements_answer_the_same_on_the_cluster() {
    let s3 = start_s3();
    let env = s3_env(s3.port);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let work = temp_dir();

    // Collectors, the compactor, and what the clients send.
    let collectors = [
        Cairn::start_role("collector", STORE, &[], &env),
        Cairn::start_role("collector", STORE, &[], &env),
    ];
    let compactor = Cairn::start_role(
        "compact",
        STORE,
        &[
            "--compaction",
            "on",
            "--compaction-interval",
            "1s",
            "--compaction-min-files",
            "2",
            // A merged file's inputs stay readable longer than any plan of this test runs.
            "--compaction-grace",
            "60s",
        ],
        &env,
    );
    let endpoint = |i: usize| format!("http://{}/v1/traces", collectors[i].otlp_http);
    let ids: Value = serde_json::from_str(&run_python(&[
        python_script("lineage_runs.py").to_str().unwrap(),
        "--endpoint",
        &endpoint(0),
        "--tenant",
        "default",
    ]))
    .unwrap();
    let big: Value = serde_json::from_str(&run_python(&[
        python_script("big_run.py").to_str().unwrap(),
        "--endpoint",
        &endpoint(1),
        "--tenant",
        "default",
        "--spans",
        "6000",
    ]))
    .unwrap();
    let other = serde_json::json!({"resourceSpans": [{"resource": {"attributes": [
        {"key": "service.name", "value": {"stringValue": "other-bot"}}]},
      "scopeSpans": [{"spans": [
        {"traceId": "0000000000000000000000000000ff01", "spanId": "00000000000ff001",
         "name": "other-secret-step", "startTimeUnixNano": "1795000000000000000",
         "endTimeUnixNano": "1795000001000000000"},
        {"traceId": "0000000000000000000000000000ff01", "spanId": "00000000000ff002",
         "name": "other-secret-step", "startTimeUnixNano": "1795000002000000000",
         "endTimeUnixNano": "1795000003000000000"}]}]}]});
    let resp = client()
        .post(endpoint(1))
        .header("X-Scope-OrgID", "other")
        .json(&other)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);

    // The cluster, and a querier that sends every statement that scans to it.
    let scheduler_port = free_port();
    let scheduler_node = Node::start(
        "scheduler",
        &[
            format!("--scheduler-addr=127.0.0.1:{scheduler_port}"),
            // Heartbeats come every second; a loaded machine can delay a few.
            "--executor-timeout=10s".into(),
        ],
        &env,
    );
    wait_for_port(scheduler_port);
    let first = executor(1, scheduler_port, work.path(), &env);
    let mut second = executor(2, scheduler_port, work.path(), &env);
    let scheduler = format!("127.0.0.1:{scheduler_port}");
    let querier = Cairn::start_role(
        "query",
        STORE,
        &[
            "--scheduler",
            &scheduler,
            "--distribute-above",
            "1",
            "--distribute-partitions",
            "4",
            "--approval-required",
            "post_*",
            // Before the test's client gives up (60 s): a job the cluster cannot finish is
            // answered as timed out.
            "--query-timeout",
            "40s",
        ],
        &env,
    );
    let spans = querier
        .wait_for_count(Some("default"), "spans", 6_000 + 30)
        .await;
    assert_eq!(spans, 6_030, "every span sent is stored");
    // The cluster reads what the compactor merged too.
    let deadline = Instant::now() + Duration::from_secs(30);
    while compactor
        .metric("cairn_compaction_merges_total", "spans")
        .await
        < 1.0
    {
        assert!(Instant::now() < deadline, "the compactor merged nothing");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Everything documented, and the suite, answer the same here and on the cluster.
    let trace = ids["traces"]["a01"].as_str().unwrap().to_owned();
    let mut statements = documented_sql();
    assert!(
        statements.len() >= 9,
        "{} SQL blocks documented",
        statements.len()
    );
    statements.extend(suite_sql(&trace, "support-bot-7d9f"));
    let placed = |place: &'static str| {
        let querier = &querier;
        async move {
            querier
                .metric(
                    "cairn_query_statements_placed_total",
                    &format!("place=\"{place}\""),
                )
                .await
        }
    };
    let before = placed("distributed").await;
    for sql in &statements {
        let here = rows(&querier, "default", "LOCAL", sql).await;
        let there = rows(&querier, "default", "DISTRIBUTED", sql).await;
        assert!(!here.is_empty(), "no rows here for\n{sql}");
        assert_eq!(
            canonical(&here),
            canonical(&there),
            "answers differ for\n{sql}"
        );
    }
    assert_eq!(
        placed("distributed").await - before,
        statements.len() as f64,
        "each hinted statement ran on the cluster"
    );
    // The Postgres wire places statements as the HTTP API does.
    let scan = "SELECT count(*) AS n FROM spans WHERE duration_ns >= 0";
    let sent = placed("distributed").await;
    let over_pg = |hint: &str| {
        crate::pg_wire::query(&querier.pg, "default", &format!("/*+ {hint} */ {scan}"))
    };
    assert_eq!(over_pg("DISTRIBUTED"), over_pg("LOCAL"));
    assert!(over_pg("LOCAL").contains("6030"), "{}", over_pg("LOCAL"));
    assert_eq!(placed("distributed").await - sent, 1.0);

    // The read-only guard refuses before anything is sent.
    let sent = placed("distributed").await;
    let (status, body) = querier
        .sql_raw(
            Some("default"),
            "/*+ DISTRIBUTED */ DROP TABLE spans",
            "application/json",
        )
        .await;
    assert_eq!(status, 403, "{}", String::from_utf8_lossy(&body));
    assert_eq!(
        placed("distributed").await,
        sent,
        "a refused statement reached the cluster"
    );

    let big_trace = big["trace_id"].as_str().unwrap_or_default().to_owned();
    let by_id = format!("SELECT count(*) AS n FROM spans WHERE trace_id = '{big_trace}'");
    assert_eq!(
        rows(&querier, "default", "DISTRIBUTED", &by_id).await[0]["n"],
        6_000
    );

    // Both executors ran tasks: their work directories hold stage outputs.
    for n in 1..=2 {
        let dir = work.path().join(format!("executor-{n}"));
        let outputs = walk(&dir)
            .into_iter()
            .filter(|p| p.ends_with(".arrow"))
            .count();
        assert!(outputs > 0, "executor {n} ran no task");
    }

    // `auto`: a statement that scans goes to the cluster (more than one byte here), those that
    // scan nothing stay (a count the files' statistics answer, a constant); the API's answers
    // stay.
    let (local, distributed) = (placed("local").await, placed("distributed").await);
    querier
        .sql(
            Some("default"),
            "SELECT count(*) FROM spans WHERE duration_ns > 0",
        )
        .await;
    querier
        .sql(Some("default"), "SELECT count(*) FROM spans")
        .await;
    querier.sql(Some("default"), "SELECT 1 AS one").await;
    querier.run(Some("default"), &trace).await;
    assert_eq!(placed("distributed").await - distributed, 1.0);
    assert_eq!(placed("local").await - local, 2.0);

    // Tenants: the cluster reads only the asking tenant's files.
    let names = |rows: Vec<Value>| -> BTreeSet<String> {
        rows.iter()
            .map(|r| r["name"].as_str().unwrap_or_default().to_owned())
            .collect()
    };
    let theirs = rows(
        &querier,
        "other",
        "DISTRIBUTED",
        "SELECT DISTINCT name FROM spans",
    )
    .await;
    assert_eq!(
        names(theirs),
        BTreeSet::from(["other-secret-step".to_owned()])
    );
    let ours = rows(
        &querier,
        "default",
        "DISTRIBUTED",
        "SELECT DISTINCT name FROM spans",
    )
    .await;
    assert!(!names(ours).contains("other-secret-step"));
    let counted = rows(
        &querier,
        "other",
        "DISTRIBUTED",
        "SELECT count(*) AS n FROM spans JOIN runs USING (trace_id)",
    )
    .await;
    assert_eq!(counted[0]["n"], 2);

    // A statement its querier stops waiting for (here its query timeout) is cancelled on the
    // cluster. Three spans tables crossed never end; left running, the job would hold every
    // task slot and the next statement would wait behind it until its own timeout.
    let impatient = Cairn::start_role(
        "query",
        STORE,
        &["--scheduler", &scheduler, "--query-timeout", "3s"],
        &env,
    );
    let cancelled = || {
        let scheduler = &scheduler_node;
        async move {
            metric_at(
                &scheduler.metrics,
                "cairn_scheduler_jobs_total",
                "outcome=\"cancelled\"",
            )
            .await
        }
    };
    assert_eq!(cancelled().await, 0.0);
    let endless = "/*+ DISTRIBUTED */ SELECT sum(length(a.name || b.name || c.name)) AS n \
                   FROM spans a, spans b, spans c";
    let (status, body) = impatient
        .sql_raw(Some("default"), endless, "application/json")
        .await;
    let text = String::from_utf8_lossy(&body);
    assert_eq!(status, 504, "{text}");
    assert!(text.contains("query timeout"), "{text}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while cancelled().await < 1.0 {
        assert!(
            Instant::now() < deadline,
            "the scheduler cancelled no job:\n{}",
            metrics_text(&scheduler_node.metrics).await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Its tasks stopped on the executors (an abort takes effect when a task yields, and a cross
    // join yields only through the yield points every operator reads through).
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut running = 0.0;
        for node in [&first, &second] {
            running += metric_at(&node.metrics, "cairn_executor_tasks_running", "").await;
        }
        if running == 0.0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{running} tasks of the cancelled job still run"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut cancelled_tasks = 0.0;
    for node in [&first, &second] {
        cancelled_tasks += metric_at(
            &node.metrics,
            "cairn_executor_tasks_total",
            "outcome=\"cancelled\"",
        )
        .await;
    }
    assert!(cancelled_tasks >= 1.0, "no task was cancelled");
    // What the task spawned to drain its plan (the shuffle writer) stopped too, at the
    // cross join's output, instead of spinning on with nobody waiting for it.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut stopped = 0.0;
        for node in [&first, &second] {
            stopped += metric_at(&node.metrics, "cairn_executor_reads_stopped_total", "").await;
        }
        if stopped >= 1.0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the cancelled job's reads went on"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        rows(
            &querier,
            "default",
            "DISTRIBUTED",
            "SELECT count(*) AS n FROM spans WHERE duration_ns >= 0"
        )
        .await[0]["n"],
        6_030
    );
    drop(impatient);

    // An executor killed while queries run: each answer is the local one, or a clear error.
    let heavy = "SELECT agent_name, tool_name, count(*) AS n, sum(duration_ns) AS ns, \
                 count(DISTINCT span_id) AS ids FROM spans GROUP BY 1, 2";
    let expected = canonical(&rows(&querier, "default", "LOCAL", heavy).await);
    let querier = Arc::new(querier);
    let killed = Arc::new(AtomicBool::new(false));
    let (answered, failed, straddled) = (
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicUsize::new(0)),
    );
    let mut clients = Vec::new();
    for _ in 0..3 {
        let (querier, killed, expected) =
            (Arc::clone(&querier), Arc::clone(&killed), expected.clone());
        let (answered, failed, straddled) = (
            Arc::clone(&answered),
            Arc::clone(&failed),
            Arc::clone(&straddled),
        );
        clients.push(tokio::spawn(async move {
            let deadline = Instant::now() + Duration::from_secs(90);
            let mut after_kill = 0;
            while after_kill < 4 && Instant::now() < deadline {
                let started_before = !killed.load(Ordering::SeqCst);
                let (status, body) = querier
                    .sql_raw(
                        Some("default"),
                        &format!("/*+ DISTRIBUTED */ {heavy}"),
                        "application/json",
                    )
                    .await;
                let ended_after = killed.load(Ordering::SeqCst);
                if started_before && ended_after {
                    straddled.fetch_add(1, Ordering::SeqCst);
                }
                let text = String::from_utf8_lossy(&body).into_owned();
                if status == 200 {
                    let rows: Vec<Value> = serde_json::from_slice(&body).unwrap();
                    assert_eq!(canonical(&rows), expected, "a wrong answer");
                    answered.fetch_add(1, Ordering::SeqCst);
                } else {
                    let clear = (status == 502 && text.contains("failed on the cluster"))
                        || (status == 504 && text.contains("query timeout"));
                    assert!(clear, "{status}: {text}");
                    failed.fetch_add(1, Ordering::SeqCst);
                }
                if ended_after {
                    after_kill += 1;
                }
            }
        }));
    }
    // Once queries are under way.
    let deadline = Instant::now() + Duration::from_secs(30);
    while answered.load(Ordering::SeqCst) < 3 {
        assert!(
            Instant::now() < deadline,
            "no distributed answer before the kill"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    second.kill();
    killed.store(true, Ordering::SeqCst);
    for client in clients {
        client.await.unwrap();
    }
    assert!(
        straddled.load(Ordering::SeqCst) > 0,
        "no query ran across the kill"
    );
    // The cluster answers with the executor left.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (status, body) = querier
            .sql_raw(
                Some("default"),
                &format!("/*+ DISTRIBUTED */ {heavy}"),
                "application/json",
            )
            .await;
        if status == 200 {
            let rows: Vec<Value> = serde_json::from_slice(&body).unwrap();
            assert_eq!(canonical(&rows), expected);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{}",
            String::from_utf8_lossy(&body)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    eprintln!(
        "across the kill: {} answered, {} failed clearly",
        answered.load(Ordering::SeqCst),
        failed.load(Ordering::SeqCst)
    );
}

/// Every file under `dir`, as text.
fn walk(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push(path.display().to_string());
            }
        }
    }
    out
}

/// A querier whose scheduler cannot be reached answers a statement sent there with a clear
/// error naming the cluster, and keeps answering everything else itself.
#[tokio::test(flavor = "multi_thread")]
async fn an_unreachable_cluster_is_a_clear_error() {
    let closed = free_port();
    let scheduler = format!("127.0.0.1:{closed}");
    let querier = Cairn::start(&["--scheduler", &scheduler]);
    let (status, body) = querier
        .sql_raw(
            None,
            "/*+ DISTRIBUTED */ SELECT 1 AS one",
            "application/json",
        )
        .await;
    let text = String::from_utf8_lossy(&body);
    assert_eq!(status, 502, "{text}");
    assert!(
        text.contains(&format!("failed on the cluster (df://{scheduler})")),
        "{text}"
    );
    assert!(text.contains("/*+ LOCAL */"), "{text}");
    // Nothing to scan: `auto` keeps it here.
    assert_eq!(querier.sql(None, "SELECT 1 AS one").await[0]["one"], 1);
    assert_eq!(
        querier
            .sql(None, "/*+ LOCAL */ SELECT count(*) AS n FROM spans")
            .await[0]["n"],
        0
    );
}
