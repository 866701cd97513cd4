//! Lineage, governance, replay and cost answers over multi-agent runs sent by the Python
//! OpenTelemetry SDK (`tests/python/lineage_runs.py`): a run with a retry, a hand-off to a
//! sub-agent, approvals, an async hand-off to another trace, a human-in-the-loop resume that
//! denies a request, a run under a changed policy with two bypasses, and a diverging re-run.
//! Every API answer is asserted exactly; every documented question in `docs/queries.md` is
//! asked over HTTP and SQL.

use std::collections::BTreeSet;

use serde_json::{json, Value};

use crate::harness::{client, python_script, run_python, Cairn};

pub(crate) fn tid(n: u32) -> String {
    format!("{:032x}", 0xa00 + n)
}

pub(crate) fn sid(label: &str) -> String {
    // a01.8b → 000000000000a18b; a01.12 → 000000000000a112
    let (run, span) = label.split_once('.').unwrap();
    format!("000000000000a{}{:0>2}", &run[2..], span)
}

pub(crate) async fn get(cairn: &Cairn, path: &str) -> (u16, Value) {
    cairn.get(None, path).await
}

pub(crate) async fn ok(cairn: &Cairn, path: &str) -> Value {
    let (status, body) = get(cairn, path).await;
    assert_eq!(status, 200, "{path}: {body}");
    body
}

pub(crate) fn strings(v: &Value, key: &str) -> Vec<String> {
    v.as_array()
        .unwrap_or_else(|| panic!("not an array: {v}"))
        .iter()
        .map(|x| x[key].as_str().unwrap_or_default().to_owned())
        .collect()
}

fn set(v: &Value) -> BTreeSet<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_str().unwrap().to_owned())
        .collect()
}

/// Every step of a trail, depth first.
fn flatten(steps: &Value, out: &mut Vec<(String, Option<String>)>) {
    for s in steps.as_array().unwrap() {
        out.push((
            s["span_id"].as_str().unwrap().to_owned(),
            s["parent_span_id"].as_str().map(str::to_owned),
        ));
        if let Some(children) = s.get("children") {
            for c in children.as_array().unwrap() {
                assert_eq!(c["parent_span_id"], s["span_id"], "nested under its parent");
            }
            flatten(children, out);
        }
    }
}

/// A Cairn whose rules gate `post_*` tools, with the runs of `tests/python/lineage_runs.py`
/// sent to tenant `default`: the Cairn, the OTLP/HTTP endpoint they were sent to, and the ids
/// the script printed.
pub(crate) fn with_lineage_runs() -> (Cairn, String, Value) {
    let cairn = Cairn::start(&["--approval-required", "post_*"]);
    let endpoint = format!("http://{}/v1/traces", cairn.otlp_http);
    let script = python_script("lineage_runs.py");
    let ids: Value = serde_json::from_str(&run_python(&[
        script.to_str().unwrap(),
        "--endpoint",
        &endpoint,
        "--tenant",
        "default",
    ]))
    .unwrap();
    (cairn, endpoint, ids)
}

#[tokio::test(flavor = "multi_thread")]
async fn lineage_governance_and_replay() {
    let (cairn, endpoint, ids) = with_lineage_runs();
    assert_eq!(ids["traces"]["a01"], tid(1));
    assert_eq!(ids["spans"]["a01.8b"], sid("a01.8b"));
    assert_eq!(cairn.count(None, "spans").await, 30);

    // Run trail: the whole tree, payloads on request.
    let trail = ok(&cairn, &format!("/api/v1/runs/{}?payloads=true", tid(1))).await;
    assert_eq!(trail["run"]["span_count"], 13);
    assert_eq!(trail["run"]["policy_ref"], "policy-v1");
    let mut all = Vec::new();
    flatten(&trail["steps"], &mut all);
    assert_eq!(all.len(), 13);
    assert_eq!(trail["steps"].as_array().unwrap().len(), 1, "one root");
    let notifier = &trail["steps"][0]["children"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["span_id"] == sid("a01.8b"))
        .unwrap()["children"][0];
    assert_eq!(notifier["agent_name"], "notifier");
    assert_eq!(notifier["children"].as_array().unwrap().len(), 2);
    let turn1 = &trail["steps"][0]["children"][0];
    assert_eq!(turn1["span_id"], sid("a01.2"));
    assert_eq!(
        turn1["input_messages"][1]["parts"][0]["content"],
        "Refund order A-1"
    );
    assert_eq!(turn1["output_messages"][0]["parts"][0]["id"], "call_lookup");
    assert_eq!(turn1["response_model"], "gpt-4o-2024-08-06");
    assert_eq!(turn1["sandbox_id"], "sbx-1");
    assert_eq!(turn1["k8s_pod_name"], "support-bot-7d9f");
    let bare = ok(&cairn, &format!("/api/v1/runs/{}", tid(1))).await;
    assert!(bare["steps"][0]["children"][0]
        .get("input_messages")
        .is_none());

    // Run search, filtered and paginated.
    let search = |q: &str| format!("/api/v1/runs?{q}");
    let traces = |v: &Value| strings(&v["runs"], "trace_id");
    let page = ok(&cairn, &search("agent=triage&limit=2")).await;
    assert_eq!(traces(&page), [tid(5), tid(4)]);
    let cursor = page["next_cursor"].as_str().unwrap().to_owned();
    let page2 = ok(
        &cairn,
        &search(&format!("agent=triage&limit=2&cursor={cursor}")),
    )
    .await;
    assert_eq!(traces(&page2), [tid(3), tid(1)]);
    assert!(page2["next_cursor"].is_null());
    for (q, expected) in [
        ("tool=post_ledger", vec![tid(2)]),
        ("status=error", vec![tid(1)]),
        ("approval=denied", vec![tid(3)]),
        ("model=gpt-4o-mini-2024-07-18", vec![tid(1)]),
        ("sandbox=sbx-2", vec![tid(2)]),
        ("min_cost=0.002", vec![tid(1)]),
        ("conversation=conv-42", vec![tid(3), tid(1)]),
        ("from=2026-11-20T11:30:00Z", vec![tid(5), tid(4)]),
        (
            "from=2026-11-20T10:00:00Z&to=2026-11-20T11:00:00Z",
            vec![tid(2), tid(1)],
        ),
        (
            "data=postgres://db/shop/refunds",
            vec![tid(5), tid(4), tid(2), tid(1)],
        ),
        ("attr.gen_ai.tool.name=send_email", vec![tid(4), tid(1)]),
    ] {
        assert_eq!(traces(&ok(&cairn, &search(q)).await), expected, "{q}");
    }
    // Without filters, pages of the newest runs (taken from the trace index) walk every run in
    // the order of the `runs` view.
    let all: Vec<String> = cairn
        .sql(
            None,
            "SELECT trace_id FROM runs ORDER BY start_time DESC, trace_id DESC",
        )
        .await
        .iter()
        .map(|r| r["trace_id"].as_str().unwrap().to_owned())
        .collect();
    assert!(all.len() >= 5);
    let mut walked = Vec::new();
    let mut page = ok(&cairn, &search("limit=2")).await;
    loop {
        walked.extend(traces(&page));
        let Some(cursor) = page["next_cursor"].as_str() else {
            break;
        };
        page = ok(&cairn, &search(&format!("limit=2&cursor={cursor}"))).await;
    }
    assert_eq!(walked, all);
    assert_eq!(get(&cairn, &search("colour=red")).await.0, 400);
    assert_eq!(get(&cairn, &search("from=yesterday")).await.0, 400);
    assert_eq!(get(&cairn, "/api/v1/runs/nothex").await.0, 400);
    assert_eq!(
        get(&cairn, &format!("/api/v1/runs/{}", tid(9))).await.0,
        404
    );

    // Why-chain: the turn that asked for the refund, its context, approval, policy, agents.
    let why = ok(
        &cairn,
        &format!("/api/v1/runs/{}/steps/{}/why", tid(1), sid("a01.7")),
    )
    .await;
    assert_eq!(why["requested_by"]["span_id"], sid("a01.5"));
    assert_eq!(
        why["requested_by"]["input_messages"]
            .as_array()
            .unwrap()
            .len(),
        4
    );
    assert!(why["requested_by"]["system_instructions"].is_array());
    assert_eq!(
        why["requested_by"]["output_messages"][0]["parts"][0]["arguments"]["amount"],
        40
    );
    assert_eq!(strings(&why["approvals"], "approval_state"), ["granted"]);
    assert_eq!(why["approval_gates"][0]["gate"], "apr-1");
    assert_eq!(why["policy"]["policy_ref"], "policy-v1");
    assert_eq!(
        why["policy"]["document"]["requires_approval"][0],
        "issue_refund"
    );
    assert_eq!(strings(&why["ancestors"], "span_id"), [sid("a01.1")]);
    let why = ok(
        &cairn,
        &format!("/api/v1/runs/{}/steps/{}/why", tid(1), sid("a01.11")),
    )
    .await;
    assert_eq!(why["requested_by"]["span_id"], sid("a01.10"));
    assert_eq!(
        strings(&why["ancestors"], "span_id"),
        [sid("a01.9"), sid("a01.8b"), sid("a01.1")]
    );
    assert_eq!(
        strings(&why["ancestors"], "agent_name"),
        ["notifier", "triage", "triage"]
    );
    // The request decided in the resumed run.
    let why = ok(
        &cairn,
        &format!("/api/v1/runs/{}/steps/{}/why", tid(1), sid("a01.12")),
    )
    .await;
    assert_eq!(why["approval_gates"][0]["state"], "denied");
    assert_eq!(why["approval_gates"][0]["runs"], 2);

    // Lineage graph across runs, bounded.
    let graph = ok(&cairn, &format!("/api/v1/runs/{}/lineage", tid(1))).await;
    let runs: BTreeSet<String> = strings(&graph["runs"], "trace_id").into_iter().collect();
    assert_eq!(runs, [tid(1), tid(2), tid(3)].into_iter().collect());
    assert_eq!(graph["nodes"].as_array().unwrap().len(), 13 + 2 + 3);
    let edges: BTreeSet<(String, String, String)> = graph["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["from_span_id"].as_str().unwrap().to_owned(),
                e["to_span_id"].as_str().unwrap().to_owned(),
                e["kind"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    for (from, to, kind) in [
        ("a01.1", "a01.2", "child"),
        ("a01.2", "a01.3", "requested"),
        ("a01.2", "a01.4", "requested"),
        ("a01.3", "a01.4", "retry_of"),
        ("a01.6", "a01.7", "gates"),
        ("a01.8", "a01.8b", "requested"),
        ("a01.8b", "a01.9", "child"),
        ("a01.7", "a02.1", "async_handoff"),
        ("a01.12", "a03.1", "resumes"),
        ("a01.12", "a03.2", "decided_by"),
        ("a01.1", "a03.1", "continues"),
    ] {
        assert!(
            edges.contains(&(sid(from), sid(to), kind.to_owned())),
            "{from} -{kind}-> {to} missing"
        );
    }
    let kinds: BTreeSet<&str> = edges.iter().map(|e| e.2.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "async_handoff",
            "child",
            "continues",
            "decided_by",
            "gates",
            "requested",
            "resumes",
            "retry_of"
        ]
        .into_iter()
        .collect()
    );
    let near = ok(&cairn, &format!("/api/v1/runs/{}/lineage?depth=0", tid(1))).await;
    assert_eq!(near["nodes"].as_array().unwrap().len(), 13);
    assert_eq!(near["edges_beyond_bounds"], 4);
    let (status, body) = get(&cairn, &format!("/api/v1/runs/{}/lineage?depth=x", tid(1))).await;
    assert_eq!((status, body["error"].is_string()), (400, true), "{body}");
    let small = ok(
        &cairn,
        &format!("/api/v1/runs/{}/lineage?max_nodes=5", tid(1)),
    )
    .await;
    assert_eq!(small["nodes"].as_array().unwrap().len(), 5);
    assert_eq!(small["truncated"], true);
    // From the resumed run, the graph reaches back to the first run and on to its hand-off.
    let back = ok(&cairn, &format!("/api/v1/runs/{}/lineage?depth=2", tid(3))).await;
    let runs: BTreeSet<String> = strings(&back["runs"], "trace_id").into_iter().collect();
    assert_eq!(runs, [tid(1), tid(2), tid(3)].into_iter().collect());

    // Data lineage, both ways.
    let data = ok(&cairn, &format!("/api/v1/runs/{}/data", tid(1))).await;
    assert_eq!(
        set(&data["read"]),
        ["postgres://db/shop/orders".to_owned()].into()
    );
    assert_eq!(
        set(&data["written"]),
        [
            "mailto:customer@example.com".to_owned(),
            "postgres://db/shop/refunds".to_owned()
        ]
        .into()
    );
    let who = ok(&cairn, "/api/v1/data?uri=postgres://db/shop/refunds").await;
    assert_eq!(
        set(&who["runs"]),
        [tid(1), tid(2), tid(4), tid(5)].into_iter().collect()
    );
    assert_eq!(
        set(&who["agents"]),
        ["ledger".to_owned(), "triage".to_owned()].into()
    );
    assert_eq!(
        set(&who["sandboxes"]),
        ["sbx-1".to_owned(), "sbx-2".to_owned()].into()
    );
    // Every access is a row of the `data_access` view, and every row of it is an access.
    let rows = |v: Vec<Value>| -> BTreeSet<String> { v.iter().map(Value::to_string).collect() };
    assert_eq!(
        rows(who["accesses"].as_array().unwrap().clone()),
        rows(
            cairn
                .sql(
                    None,
                    "SELECT * FROM data_access WHERE uri = 'postgres://db/shop/refunds'"
                )
                .await
        )
    );
    let window = ok(
        &cairn,
        "/api/v1/data?uri=postgres://db/shop/&match=prefix&from=2026-11-20T10:00:00Z&to=2026-11-20T11:00:00Z",
    )
    .await;
    assert_eq!(set(&window["runs"]), [tid(1), tid(2)].into_iter().collect());
    assert_eq!(window["accesses"].as_array().unwrap().len(), 5);
    assert_eq!(get(&cairn, "/api/v1/data").await.0, 400);
    assert_eq!(
        get(&cairn, &format!("/api/v1/runs/{}/data", tid(9)))
            .await
            .0,
        404
    );

    // Governance: gates, bypasses (policy documents and the configured rule), policy changes.
    let gates = ok(&cairn, "/api/v1/governance/approvals").await;
    assert_eq!(
        gates["counts"],
        json!({"granted": 2, "denied": 1, "timed_out": 1})
    );
    assert_eq!(
        strings(&gates["gates"], "gate"),
        ["apr-1", "apr-2", "apr-3", "apr-4"]
    );
    let denied = ok(&cairn, "/api/v1/governance/approvals?state=denied").await;
    assert_eq!(denied["gates"][0]["approver"], "carol");
    let bypasses = ok(&cairn, "/api/v1/governance/bypasses").await;
    let found: Vec<(String, String)> = bypasses["bypasses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            (
                b["span_id"].as_str().unwrap().to_owned(),
                b["reason"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        found,
        [
            (sid("a02.2"), "no_approval".to_owned()),
            (sid("a04.3"), "no_approval".to_owned()),
            (sid("a04.6"), "approval_timed_out".to_owned()),
        ]
    );
    let changes = ok(&cairn, "/api/v1/governance/policy-changes?agent=triage").await;
    assert_eq!(strings(&changes["changes"], "trace_id"), [tid(4), tid(5)]);
    assert_eq!(
        strings(&changes["changes"], "previous_trace_id"),
        [tid(3), tid(4)]
    );
    assert_eq!(
        strings(&changes["changes"], "policy_ref"),
        ["policy-v2", "policy-v1"]
    );

    // Replay: the decision path without the retried attempt, with inputs and outputs.
    let replay = ok(&cairn, &format!("/api/v1/runs/{}/replay", tid(1))).await;
    let steps = &replay["steps"];
    assert_eq!(
        strings(steps, "span_id"),
        [
            "a01.2", "a01.4", "a01.5", "a01.6", "a01.7", "a01.8", "a01.8b", "a01.10", "a01.11",
            "a01.12"
        ]
        .map(sid)
    );
    assert_eq!(
        strings(steps, "operation"),
        [
            "llm_call",
            "tool_call",
            "llm_call",
            "approval",
            "tool_call",
            "llm_call",
            "handoff",
            "llm_call",
            "tool_call",
            "approval"
        ]
    );
    assert_eq!(steps[1]["input"]["arguments"], json!({"order": "A-1"}));
    assert_eq!(steps[1]["output"]["result"]["amount"], 40);
    assert_eq!(
        steps[3]["output"],
        json!({"approval_state": "granted", "approver": "bob"})
    );
    assert_eq!(replay["total_steps"], 10);
    assert_eq!(replay["next_offset"], Value::Null);
    // A page of it: the same steps, indexed in the whole path, with their payloads.
    let page = ok(
        &cairn,
        &format!("/api/v1/runs/{}/replay?offset=1&limit=3", tid(1)),
    )
    .await;
    assert_eq!(
        page["steps"].as_array().unwrap()[..],
        steps.as_array().unwrap()[1..4]
    );
    assert_eq!(page["steps"][0]["index"], 1);
    assert_eq!(
        (page["total_steps"].clone(), page["next_offset"].clone()),
        (json!(10), json!(4))
    );
    let last = ok(
        &cairn,
        &format!("/api/v1/runs/{}/replay?offset=8&limit=3", tid(1)),
    )
    .await;
    assert_eq!(
        strings(&last["steps"], "span_id"),
        ["a01.11", "a01.12"].map(sid)
    );
    assert_eq!(last["next_offset"], Value::Null);
    let beyond = ok(&cairn, &format!("/api/v1/runs/{}/replay?offset=50", tid(1))).await;
    assert_eq!(beyond["steps"], json!([]));
    let bundle = ok(&cairn, &format!("/api/v1/runs/{}/replay/bundle", tid(5))).await;
    assert_eq!(bundle["format"], "cairn.replay.bundle/1");
    assert_eq!(
        strings(&bundle["model_calls"], "key"),
        ["triage#1", "triage#2"]
    );
    assert_eq!(
        strings(&bundle["tool_results"], "key"),
        [
            r#"lookup_order:{"order":"A-1"}"#,
            r#"issue_refund:{"amount":400,"order":"A-1"}"#
        ]
    );
    assert_eq!(
        strings(&bundle["approvals"], "key"),
        ["issue_refund:call_refund"]
    );
    // Run diff: the re-run diverges at the second model turn's output.
    let diff = ok(
        &cairn,
        &format!("/api/v1/diff?left={}&right={}", tid(1), tid(5)),
    )
    .await;
    assert_eq!(diff["identical"], false);
    assert_eq!(diff["first_divergence"]["index"], 2);
    assert_eq!(diff["first_divergence"]["fields"], json!(["output"]));
    assert_eq!(
        diff["first_divergence"]["right_step"]["output"]["output_messages"][0]["parts"][0]
            ["arguments"]["amount"],
        400
    );
    let same = ok(
        &cairn,
        &format!("/api/v1/diff?left={}&right={}", tid(5), tid(5)),
    )
    .await;
    assert_eq!(same["identical"], true);
    let (status, body) = get(&cairn, &format!("/api/v1/diff?left={}", tid(1))).await;
    assert_eq!((status, body["error"].is_string()), (400, true), "{body}");
    assert_eq!(
        bundle["policy"]["document"]["requires_approval"][0],
        "issue_refund"
    );
    // The documented example re-runs the recorded agent offline from the bundle; its run has
    // the same decision path.
    let example = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/docs/examples/replay_offline.py"
    );
    let rerun = format!("{:032x}", 0xb01);
    let out: Value = serde_json::from_str(&run_python(&[
        example,
        "--cairn",
        &format!("http://{}", cairn.http),
        "--run",
        &tid(5),
        "--trace-id",
        &rerun,
        "--endpoint",
        &endpoint,
        "--tenant",
        "default",
    ]))
    .unwrap();
    assert_eq!(out["steps"], 5);
    cairn
        .wait_for_count(None, &format!("spans WHERE trace_id = '{rerun}'"), 6)
        .await;
    let replayed = ok(
        &cairn,
        &format!("/api/v1/diff?left={}&right={rerun}", tid(5)),
    )
    .await;
    assert_eq!(replayed["identical"], true, "{replayed}");
    let policy = ok(
        &cairn,
        &format!("/api/v1/diff?left={}&right={}", tid(4), tid(5)),
    )
    .await;
    assert!(policy["first_divergence"]["fields"]
        .as_array()
        .unwrap()
        .contains(&json!("policy")));

    // Costs: per run equal to the run totals, per tenant equal to their sum.
    let by_run = ok(&cairn, "/api/v1/costs?by=run").await;
    let runs = cairn
        .sql(
            None,
            "SELECT trace_id, cost FROM runs WHERE cost IS NOT NULL",
        )
        .await;
    let priced = by_run["rows"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| !r["cost"].is_null());
    assert_eq!(priced.count(), runs.len());
    let mut total = 0.0;
    for r in &runs {
        let row = by_run["rows"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["key"] == r["trace_id"])
            .unwrap();
        assert!((row["cost"].as_f64().unwrap() - r["cost"].as_f64().unwrap()).abs() < 1e-12);
        total += r["cost"].as_f64().unwrap();
    }
    let tenant = ok(&cairn, "/api/v1/costs?by=tenant").await;
    assert_eq!(tenant["rows"][0]["key"], "default");
    assert!((tenant["rows"][0]["cost"].as_f64().unwrap() - total).abs() < 1e-12);
    let models = ok(&cairn, "/api/v1/costs?by=model").await;
    assert_eq!(
        strings(&models["rows"], "key"),
        ["gpt-4o-2024-08-06", "gpt-4o-mini-2024-07-18"]
    );
    assert_eq!(models["rows"][1]["calls"], 1);
    let agents = ok(&cairn, "/api/v1/costs?by=agent").await;
    assert_eq!(
        set(&json!(strings(&agents["rows"], "key"))),
        ["notifier".to_owned(), "triage".to_owned()].into()
    );
    // Four hours of recorded runs and the hour of the replay.
    assert_eq!(
        ok(&cairn, "/api/v1/costs?by=hour").await["rows"]
            .as_array()
            .unwrap()
            .len(),
        5
    );
    assert_eq!(get(&cairn, "/api/v1/costs?by=colour").await.0, 400);

    // Tenants see only their own runs.
    let (status, _) = {
        let resp = client()
            .get(format!("http://{}/api/v1/runs/{}", cairn.http, tid(1)))
            .header("X-Scope-OrgID", "other")
            .send()
            .await
            .unwrap();
        (resp.status().as_u16(), ())
    };
    assert_eq!(status, 404);

    documented_questions(&cairn).await;

    // A step that names its policy snapshot without carrying the document is judged by the
    // document another run sent for that snapshot.
    let body = json!({"resourceSpans": [{"resource": {"attributes": [
        {"key": "agent_trail.policy.snapshot.id", "value": {"stringValue": "policy-v2"}},
        {"key": "agent_trail.policy.snapshot.hash", "value": {"stringValue": "sha256:v2"}}]},
      "scopeSpans": [{"spans": [{
        "traceId": tid(0xc1), "spanId": "00000000000c1001", "name": "execute_tool delete_customer",
        "startTimeUnixNano": "1795168800000000000", "endTimeUnixNano": "1795168801000000000",
        "attributes": [
            {"key": "gen_ai.operation.name", "value": {"stringValue": "execute_tool"}},
            {"key": "gen_ai.tool.name", "value": {"stringValue": "delete_customer"}}]}]}]}]});
    let resp = client()
        .post(format!("http://{}/v1/traces", cairn.otlp_http))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let bypasses = ok(&cairn, "/api/v1/governance/bypasses").await;
    assert!(
        strings(&bypasses["bypasses"], "span_id").contains(&"00000000000c1001".to_owned()),
        "{bypasses}"
    );
}

/// Every `GET` line and SQL block of `docs/queries.md` answers on these runs.
async fn documented_questions(cairn: &Cairn) {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/queries.md"))
        .expect("docs/queries.md");
    let mut in_block: Option<String> = None;
    let mut body = String::new();
    let (mut gets, mut sqls) = (0, 0);
    for line in doc.lines() {
        if let Some(kind) = &in_block {
            if line.trim_start().starts_with("```") {
                if kind == "sql" {
                    let rows = cairn.sql(None, &body).await;
                    assert!(!rows.is_empty(), "no rows for documented SQL:\n{body}");
                    sqls += 1;
                }
                in_block = None;
                body.clear();
            } else if kind == "http" {
                if let Some(path) = line.trim().strip_prefix("GET ") {
                    let (status, answer) = get(cairn, path).await;
                    assert_eq!(status, 200, "documented {path}: {answer}");
                    gets += 1;
                }
            } else {
                body.push_str(line);
                body.push('\n');
            }
        } else if let Some(info) = line.trim_start().strip_prefix("```") {
            in_block = Some(info.trim().to_owned());
        }
    }
    assert!(
        gets >= 9 && sqls >= 9,
        "{gets} GET lines, {sqls} SQL blocks documented"
    );
}
