//! The views of the lineage explorer over the runs of `tests/python/lineage_runs.py` (the story
//! and span ids are in its docstring), each asserted on what it shows: the waterfall of a run
//! and its pages, the step inspector (payloads, policy and the one before it, links to other
//! runs), one payload (and that another run's or tenant's is not reachable), search inside a
//! run (payload-only hits, `LIKE` wildcards taken literally), the approvals and bypasses of a
//! page of runs and the pending-approval filter, and the aligned run diff.
//!
//! Besides the script's runs: `c2`, a run waiting on an approval that also returned a 24 KB
//! text report; `c4`, a tool call under `policy-v2` whose span names the snapshot without
//! carrying its document; `c5`, a run whose root has not arrived; and `c3`, a run of tenant
//! `other`.

use serde_json::{json, Value};

use crate::harness::{client, Cairn};
use crate::lineage::{get, ok, sid, strings, tid, with_lineage_runs};

/// Seconds since the epoch of the fixtures' BASE, 2026-11-20T10:00:00Z.
const BASE: u64 = 1_795_168_800;

/// The report `c2` returned: plain text, more than a step shows inline.
fn report() -> String {
    "report line\n".repeat(2000)
}

/// A span to export: trace id, span id, parent, name, seconds after BASE, attributes.
type Span<'a> = (
    String,
    &'a str,
    Option<&'a str>,
    &'a str,
    u64,
    Vec<(&'a str, String)>,
);

/// An OTLP/JSON export of spans of one resource.
fn export(resource: &[(&str, &str)], spans: &[Span<'_>]) -> Value {
    let attrs = |list: Vec<(&str, String)>| -> Vec<Value> {
        list.into_iter()
            .map(|(k, v)| json!({"key": k, "value": {"stringValue": v}}))
            .collect()
    };
    let resource = resource
        .iter()
        .map(|(k, v)| (*k, (*v).to_owned()))
        .collect();
    let spans: Vec<Value> = spans
        .iter()
        .map(|(trace, id, parent, name, at, attributes)| {
            let mut span = json!({
                "traceId": trace, "spanId": id, "name": name,
                "startTimeUnixNano": format!("{}", (BASE + at) * 1_000_000_000),
                "endTimeUnixNano": format!("{}", (BASE + at + 1) * 1_000_000_000),
                "attributes": attrs(attributes.clone()),
            });
            if let Some(p) = parent {
                span["parentSpanId"] = json!(p);
            }
            span
        })
        .collect();
    json!({"resourceSpans": [{"resource": {"attributes": attrs(resource)},
        "scopeSpans": [{"spans": spans}]}]})
}

/// Sends `body` as `tenant`.
async fn send(cairn: &Cairn, tenant: &str, body: &Value) {
    let resp = client()
        .post(format!("http://{}/v1/traces", cairn.otlp_http))
        .header("X-Scope-OrgID", tenant)
        .json(body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "{:?}", resp.text().await);
}

/// Sends the runs beside the script's: `c2`, `c4`, `c5` (tenant `default`) and `c3` (tenant
/// `other`).
async fn send_more(cairn: &Cairn) {
    let triage = |more: &[(&'static str, &str)]| -> Vec<(&'static str, String)> {
        let mut a = vec![("gen_ai.agent.name", "triage".to_owned())];
        a.extend(more.iter().map(|(k, v)| (*k, (*v).to_owned())));
        a
    };
    let c2 = export(
        &[("service.name", "support-bot")],
        &[
            (
                tid(0xc2),
                "00000000000c2001",
                None,
                "invoke_agent triage",
                5 * 3600,
                triage(&[("gen_ai.operation.name", "invoke_agent")]),
            ),
            (
                tid(0xc2),
                "00000000000c2002",
                Some("00000000000c2001"),
                "approval delete_customer",
                5 * 3600 + 1,
                triage(&[
                    ("agent_trail.operation", "approval"),
                    ("gen_ai.tool.name", "delete_customer"),
                    ("gen_ai.tool.call.id", "call_del9"),
                    ("agent_trail.approval.state", "requested"),
                    ("agent_trail.approval.request.id", "apr-9"),
                ]),
            ),
            (
                tid(0xc2),
                "00000000000c2003",
                Some("00000000000c2001"),
                "execute_tool export_report",
                5 * 3600 + 2,
                triage(&[
                    ("gen_ai.operation.name", "execute_tool"),
                    ("gen_ai.tool.name", "export_report"),
                    ("gen_ai.tool.call.id", "call_report"),
                    ("gen_ai.tool.call.result", &report()),
                ]),
            ),
        ],
    );
    send(cairn, "default", &c2).await;
    let c4 = export(
        &[
            ("service.name", "support-bot"),
            ("agent_trail.policy.snapshot.id", "policy-v2"),
            ("agent_trail.policy.snapshot.hash", "sha256:v2"),
        ],
        &[(
            tid(0xc4),
            "00000000000c4001",
            None,
            "execute_tool delete_customer",
            6 * 3600,
            triage(&[
                ("gen_ai.operation.name", "execute_tool"),
                ("gen_ai.tool.name", "delete_customer"),
            ]),
        )],
    );
    send(cairn, "default", &c4).await;
    // A run still going: a tool call of it has ended, its root (c5001) has not.
    let c5 = export(
        &[("service.name", "support-bot")],
        &[(
            tid(0xc5),
            "00000000000c5002",
            Some("00000000000c5001"),
            "execute_tool lookup_order",
            6 * 3600 + 60,
            triage(&[
                ("gen_ai.operation.name", "execute_tool"),
                ("gen_ai.tool.name", "lookup_order"),
            ]),
        )],
    );
    send(cairn, "default", &c5).await;
    let c3 = export(
        &[("service.name", "other-bot")],
        &[(
            tid(0xc3),
            "00000000000c3001",
            None,
            "execute_tool vault",
            7 * 3600,
            vec![
                ("gen_ai.operation.name", "execute_tool".to_owned()),
                ("gen_ai.tool.name", "vault".to_owned()),
                (
                    "gen_ai.tool.call.arguments",
                    r#"{"secret":"of the other tenant"}"#.to_owned(),
                ),
            ],
        )],
    );
    send(cairn, "other", &c3).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn ui_api_views_of_the_lineage_runs() {
    let (cairn, _, _) = with_lineage_runs();
    send_more(&cairn).await;
    assert_eq!(cairn.count(None, "spans").await, 30 + 3 + 1 + 1);
    waterfall(&cairn).await;
    inspector(&cairn).await;
    payloads(&cairn).await;
    search(&cairn).await;
    run_page(&cairn).await;
    diff_and_replay(&cairn).await;
}

/// The fields of a waterfall step (every one of them is set on some step of `a01`).
const SHOWN: &str = "span_id parent_span_id name operation start_time end_time duration_ns \
    status_code status_message agent_name tool_name tool_call_id request_model response_model \
    input_tokens output_tokens cost approval_state sandbox_id k8s_pod_name \
    requested_tool_call_ids data_read data_written";

/// Every step of a trail, depth first, by span id.
fn trail_steps(steps: &Value, out: &mut std::collections::HashMap<String, Value>) {
    for s in steps.as_array().unwrap() {
        out.insert(s["span_id"].as_str().unwrap().to_owned(), s.clone());
        if let Some(children) = s.get("children") {
            trail_steps(children, out);
        }
    }
}

async fn waterfall(cairn: &Cairn) {
    let steps = |q: &str| format!("/api/v1/runs/{}/steps{q}", tid(1));
    let all = ok(cairn, &steps("")).await;
    assert_eq!(
        (
            all["total"].clone(),
            all["offset"].clone(),
            all["next_offset"].clone()
        ),
        (json!(13), json!(0), Value::Null)
    );
    assert_eq!(all["run"]["trace_id"], tid(1));
    assert_eq!(all["run"]["span_count"], 13);
    // Flat, in start order, as SQL orders the run's spans.
    let order: Vec<String> = cairn
        .sql(
            None,
            &format!(
                "SELECT span_id FROM spans WHERE trace_id = '{}' ORDER BY start_time, span_id",
                tid(1)
            ),
        )
        .await
        .iter()
        .map(|r| r["span_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(strings(&all["steps"], "span_id"), order);
    assert_eq!(
        strings(&all["steps"], "span_id"),
        [
            "a01.1", "a01.2", "a01.3", "a01.4", "a01.5", "a01.6", "a01.7", "a01.8", "a01.8b",
            "a01.9", "a01.10", "a01.11", "a01.12"
        ]
        .map(sid)
    );
    // Each step is its row of the trail, cut to the fields a timeline draws.
    let trail = ok(cairn, &format!("/api/v1/runs/{}", tid(1))).await;
    let mut whole = std::collections::HashMap::new();
    trail_steps(&trail["steps"], &mut whole);
    let shown: std::collections::BTreeSet<&str> = SHOWN.split_whitespace().collect();
    let mut seen = std::collections::BTreeSet::new();
    for s in all["steps"].as_array().unwrap() {
        let row = &whole[s["span_id"].as_str().unwrap()];
        for (key, value) in row.as_object().unwrap() {
            if shown.contains(key.as_str()) {
                assert_eq!(&s[key], value, "{key} of {s}");
            }
        }
        for key in s.as_object().unwrap().keys() {
            assert!(shown.contains(key.as_str()), "{key} in {s}");
            seen.insert(key.as_str());
        }
    }
    assert_eq!(seen, shown);
    let s = &all["steps"];
    assert_eq!(s[1]["requested_tool_call_ids"], json!(["call_lookup"]));
    assert_eq!(
        (s[1]["input_tokens"].clone(), s[1]["output_tokens"].clone()),
        (json!(120), json!(30))
    );
    assert_eq!(s[1]["response_model"], "gpt-4o-2024-08-06");
    assert_eq!(s[1]["k8s_pod_name"], "support-bot-7d9f");
    assert_eq!(s[2]["status_code"], "error");
    assert_eq!(s[2]["status_message"], "timeout");
    assert_eq!(s[5]["approval_state"], "granted");
    assert_eq!(s[6]["data_written"], json!(["postgres://db/shop/refunds"]));
    assert_eq!(s[6]["duration_ns"], 1_000_000_000i64);
    assert_eq!(s[10]["agent_name"], "notifier");
    assert_eq!(s[9]["parent_span_id"], sid("a01.8b"));
    assert_eq!(trail["steps"][0]["agent_id"], "triage-1");
    assert!(s[0].get("agent_id").is_none());

    // Pages.
    let page = ok(cairn, &steps("?offset=4&limit=5")).await;
    assert_eq!(
        strings(&page["steps"], "span_id"),
        ["a01.5", "a01.6", "a01.7", "a01.8", "a01.8b"].map(sid)
    );
    assert_eq!(
        page["steps"].as_array().unwrap()[..],
        s.as_array().unwrap()[4..9]
    );
    assert_eq!(
        (
            page["total"].clone(),
            page["offset"].clone(),
            page["next_offset"].clone()
        ),
        (json!(13), json!(4), json!(9))
    );
    let last = ok(cairn, &steps("?offset=9&limit=5")).await;
    assert_eq!(
        strings(&last["steps"], "span_id"),
        ["a01.9", "a01.10", "a01.11", "a01.12"].map(sid)
    );
    assert_eq!(last["next_offset"], Value::Null);
    let beyond = ok(cairn, &steps("?offset=13")).await;
    assert_eq!(
        (beyond["steps"].clone(), beyond["total"].clone()),
        (json!([]), json!(13))
    );
    for bad in [
        "?limit=0",
        "?limit=100001",
        "?limit=many",
        "?offset=-1",
        "?page=2",
    ] {
        let (status, body) = get(cairn, &steps(bad)).await;
        assert_eq!(status, 400, "{bad}: {body}");
    }
    let (_, body) = get(cairn, &steps("?limit=many")).await;
    assert!(body["error"].as_str().unwrap().contains("limit"), "{body}");
    let (status, _) = get(cairn, &format!("/api/v1/runs/{}/steps", tid(9))).await;
    assert_eq!(status, 404);
    // Tenants see only their own runs.
    let (status, _) = cairn
        .get(Some("other"), &format!("/api/v1/runs/{}/steps", tid(1)))
        .await;
    assert_eq!(status, 404);
}

/// The `payloads` entries of an inspected step as (field, ref).
fn payload_refs(inspected: &Value) -> Vec<(String, String)> {
    let p = &inspected["payloads"];
    strings(p, "field")
        .into_iter()
        .zip(strings(p, "ref"))
        .collect()
}

/// A link as the inspector shows it.
fn link(kind: &str, trace: u32, span: &str, direction: &str) -> Value {
    json!({"kind": kind, "trace_id": tid(trace), "span_id": sid(span), "direction": direction})
}

async fn inspect(cairn: &Cairn, trace: u32, span: &str) -> Value {
    ok(
        cairn,
        &format!("/api/v1/runs/{}/steps/{}", tid(trace), sid(span)),
    )
    .await
}

async fn inspector(cairn: &Cairn) {
    // The why-chain without payloads (as the inspector asks for it): the same chain, no contents.
    let why = |payloads: &str| {
        format!(
            "/api/v1/runs/{}/steps/{}/why{payloads}",
            tid(1),
            sid("a01.7")
        )
    };
    let (whole, bare) = (
        ok(cairn, &why("")).await,
        ok(cairn, &why("?payloads=false")).await,
    );
    assert_eq!(
        whole["step"]["arguments"],
        json!({"amount": 40, "order": "A-1"})
    );
    assert!(
        whole["requested_by"]["input_messages"].is_array(),
        "{whole}"
    );
    assert!(bare["step"].get("arguments").is_none(), "{bare}");
    assert!(
        bare["requested_by"].get("input_messages").is_none(),
        "{bare}"
    );
    assert_eq!(bare["requested_by"]["span_id"], sid("a01.5"));
    assert_eq!(bare["ancestors"], whole["ancestors"]);
    assert_eq!(bare["approvals"][0]["approver"], "bob");

    // The refund: its arguments and result, the policy in force, the async hand-off it caused.
    let refund = inspect(cairn, 1, "a01.7").await;
    let step = &refund["step"];
    assert_eq!(step["span_id"], sid("a01.7"));
    assert_eq!(step["tool_name"], "issue_refund");
    assert_eq!(step["agent_id"], "triage-1", "the whole row");
    assert_eq!(step["k8s_namespace"], "agents");
    assert!(step.get("arguments").is_none() && step.get("result").is_none());
    let refs = payload_refs(&refund);
    assert_eq!(
        refs.iter().map(|(f, _)| f.as_str()).collect::<Vec<_>>(),
        ["tool_arguments", "tool_result", "policy_document"]
    );
    assert_eq!(refs[0].1, step["tool_arguments_ref"]);
    assert_eq!(refs[1].1, step["tool_result_ref"]);
    let p = &refund["payloads"];
    assert_eq!(p[0]["content"], json!({"order": "A-1", "amount": 40}));
    assert_eq!(
        p[1],
        json!({"field": "tool_result", "ref": refs[1].1, "kind": "tool_result", "bytes": 38,
               "content": {"refund_id": "rf-1", "status": "issued"}})
    );
    assert_eq!(p[2]["content"]["requires_approval"][0], "issue_refund");
    assert_eq!(
        refund["policy"],
        json!({"ref": "policy-v1", "hash": "sha256:v1", "document_ref": refs[2].1, "previous": null})
    );
    assert_eq!(
        refund["links"],
        json!([link("async_handoff", 2, "a02.1", "out")])
    );

    // The approval that gated it: granted by bob; links within the run are not listed.
    let approval = inspect(cairn, 1, "a01.6").await;
    assert_eq!(approval["step"]["approval_state"], "granted");
    assert_eq!(approval["step"]["approver"], "bob");
    assert_eq!(approval["step"]["approval_request_id"], "apr-1");
    assert_eq!(approval["links"], json!([]));
    assert_eq!(
        inspect(cairn, 1, "a01.4").await["links"],
        json!([]),
        "retry_of is within the run"
    );

    // A model turn: its messages one entry per reference, in order.
    let turn = inspect(cairn, 1, "a01.5").await;
    let refs = payload_refs(&turn);
    let fields: Vec<&str> = refs.iter().map(|(f, _)| f.as_str()).collect();
    assert_eq!(
        fields,
        [
            "input_messages",
            "input_messages",
            "input_messages",
            "input_messages",
            "output_messages",
            "system_instructions",
            "policy_document"
        ]
    );
    let input_refs: Vec<String> = refs[..4].iter().map(|(_, h)| h.clone()).collect();
    assert_eq!(json!(input_refs), turn["step"]["input_message_refs"]);
    let roles: Vec<&str> = turn["payloads"].as_array().unwrap()[..5]
        .iter()
        .map(|p| p["content"]["role"].as_str().unwrap())
        .collect();
    assert_eq!(roles, ["system", "user", "assistant", "tool", "assistant"]);
    assert_eq!(
        turn["payloads"][1]["content"]["parts"][0]["content"],
        "Refund order A-1"
    );
    assert_eq!(turn["payloads"][0]["kind"], "message");
    assert_eq!(
        turn["payloads"][4]["content"]["parts"][0]["arguments"]["amount"],
        40
    );

    // The pending delete, decided in the resumed run; that run's root, and the root before it.
    for (trace, span, expected) in [
        (
            1,
            "a01.12",
            [
                link("resumes", 3, "a03.1", "out"),
                link("decided_by", 3, "a03.2", "out"),
            ]
            .to_vec(),
        ),
        (
            3,
            "a03.1",
            [
                link("continues", 1, "a01.1", "in"),
                link("resumes", 1, "a01.12", "in"),
            ]
            .to_vec(),
        ),
        (1, "a01.1", [link("continues", 3, "a03.1", "out")].to_vec()),
    ] {
        let links = &inspect(cairn, trace, span).await["links"];
        assert_eq!(links, &json!(expected), "{span}");
    }

    // Policies: a04 runs under policy-v2, triage ran under policy-v1 before (in a03); a05 is
    // back on policy-v1 after a04. As policy_changes says.
    let bypass = inspect(cairn, 4, "a04.3").await;
    assert_eq!(bypass["policy"]["ref"], "policy-v2");
    assert_eq!(
        bypass["policy"]["previous"],
        json!({"ref": "policy-v1", "hash": "sha256:v1", "trace_id": tid(3),
               "document_ref": refund["policy"]["document_ref"]})
    );
    // Bypasses: a04 refunded without an approval and emailed after one timed out; a01's refund
    // was granted, and a model turn is never one.
    assert_eq!(bypass["bypass"], json!({"reason": "no_approval"}));
    assert_eq!(
        inspect(cairn, 4, "a04.6").await["bypass"],
        json!({"reason": "approval_timed_out"})
    );
    assert_eq!(refund["bypass"], Value::Null);
    assert_eq!(inspect(cairn, 4, "a04.2").await["bypass"], Value::Null);
    let rerun = inspect(cairn, 5, "a05.7").await;
    assert_eq!(rerun["policy"]["previous"]["ref"], "policy-v2");
    assert_eq!(rerun["policy"]["previous"]["trace_id"], tid(4));
    for (trace, inspected) in [(4, &bypass), (5, &rerun)] {
        let change = cairn
            .sql(
                None,
                &format!(
                    "SELECT previous_trace_id, previous_policy_ref FROM policy_changes
                     WHERE trace_id = '{}'",
                    tid(trace)
                ),
            )
            .await;
        assert_eq!(
            change[0]["previous_trace_id"],
            inspected["policy"]["previous"]["trace_id"]
        );
        assert_eq!(
            change[0]["previous_policy_ref"],
            inspected["policy"]["previous"]["ref"]
        );
    }
    // The first runs of triage under policy-v1 had none before.
    assert_eq!(
        inspect(cairn, 3, "a03.2").await["policy"]["previous"],
        Value::Null
    );

    // A payload larger than shown inline: described, its content left to the payload endpoint.
    let big = ok(
        cairn,
        &format!("/api/v1/runs/{}/steps/00000000000c2003", tid(0xc2)),
    )
    .await;
    assert_eq!(big["payloads"][0]["field"], "tool_result");
    assert_eq!(big["payloads"][0]["bytes"], report().len());
    assert!(big["payloads"][0].get("content").is_none(), "{big}");
    assert_eq!(big["policy"]["ref"], Value::Null);

    let path = |span: &str| format!("/api/v1/runs/{}/steps/{span}", tid(1));
    assert_eq!(get(cairn, &path("00000000000000ff")).await.0, 404);
    assert_eq!(get(cairn, &path("xyz")).await.0, 400);
    assert_eq!(cairn.get(Some("other"), &path(&sid("a01.7"))).await.0, 404);
}

async fn payloads(cairn: &Cairn) {
    let refund = inspect(cairn, 1, "a01.7").await;
    let result = refund["payloads"][1]["ref"].as_str().unwrap().to_owned();
    let path = |trace: u32, hash: &str| format!("/api/v1/runs/{}/payloads/{hash}", tid(trace));
    assert_eq!(
        ok(cairn, &path(1, &result)).await,
        json!({"ref": result, "kind": "tool_result", "bytes": 38,
               "content": {"refund_id": "rf-1", "status": "issued"}})
    );
    // Upper case is the same hash.
    assert_eq!(
        ok(cairn, &path(1, &result.to_uppercase())).await["ref"],
        result
    );
    // A run that does not refer to it does not show it.
    assert_eq!(get(cairn, &path(2, &result)).await.0, 404);
    assert_eq!(get(cairn, &path(9, &result)).await.0, 404);
    // Not JSON: text, whole, however large.
    let big = ok(
        cairn,
        &format!("/api/v1/runs/{}/steps/00000000000c2003", tid(0xc2)),
    )
    .await;
    let report_ref = big["payloads"][0]["ref"].as_str().unwrap().to_owned();
    let whole = ok(cairn, &path(0xc2, &report_ref)).await;
    assert_eq!(whole["content"], report());
    assert_eq!(whole["bytes"], report().len());
    // Another tenant's payload: not reachable through its run, nor through one of ours.
    let (status, theirs) = cairn
        .get(
            Some("other"),
            &format!("/api/v1/runs/{}/steps/00000000000c3001", tid(0xc3)),
        )
        .await;
    assert_eq!(status, 200, "{theirs}");
    let secret = theirs["payloads"][0]["ref"].as_str().unwrap().to_owned();
    assert_eq!(
        cairn.get(Some("other"), &path(0xc3, &secret)).await.1["content"],
        json!({"secret": "of the other tenant"})
    );
    assert_eq!(get(cairn, &path(0xc3, &secret)).await.0, 404);
    assert_eq!(get(cairn, &path(1, &secret)).await.0, 404);
    // Malformed hashes are refused, naming what is wrong.
    let (status, body) = get(cairn, &path(1, "nothex")).await;
    assert_eq!(status, 400);
    assert!(body["error"].as_str().unwrap().contains("hash"), "{body}");
}

/// The hits of a search as (span id, matched).
async fn hits(cairn: &Cairn, trace: u32, q: &str) -> (i64, Vec<(String, Vec<String>)>) {
    let found = ok(cairn, &format!("/api/v1/runs/{}/search?q={q}", tid(trace))).await;
    let hits = found["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            (
                h["span_id"].as_str().unwrap().to_owned(),
                h["matched"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|m| m.as_str().unwrap().to_owned())
                    .collect(),
            )
        })
        .collect();
    (found["total"].as_i64().unwrap(), hits)
}

fn hit(span: &str, matched: &[&str]) -> (String, Vec<String>) {
    (sid(span), matched.iter().map(|m| (*m).to_owned()).collect())
}

async fn search(cairn: &Cairn) {
    // Only in payloads: the refund's result, and the later turns that were told of it.
    assert_eq!(
        hits(cairn, 1, "rf-1").await,
        (
            3,
            vec![
                hit("a01.7", &["payload:tool_result"]),
                hit("a01.8", &["payload:input_messages"]),
                hit("a01.10", &["payload:input_messages"]),
            ]
        )
    );
    // Case-insensitive; columns and the attributes they came from.
    assert_eq!(
        hits(cairn, 1, "TIMEOUT").await,
        (
            1,
            vec![hit("a01.3", &["status_message", "attribute:error.type"])]
        )
    );
    assert_eq!(
        hits(cairn, 1, "Bob").await.1,
        [hit(
            "a01.6",
            &["approver", "attribute:agent_trail.approval.approver.id"]
        )]
    );
    assert_eq!(
        hits(cairn, 1, "shop/refunds").await.1,
        [hit(
            "a01.7",
            &["data_written", "attribute:agent_trail.data.written"]
        )]
    );
    let (total, notifier) = hits(cairn, 1, "notifier").await;
    assert_eq!(total, 5);
    assert_eq!(
        notifier[1],
        hit(
            "a01.8b",
            &[
                "name",
                "tool_name",
                "attribute:gen_ai.tool.name",
                "payload:tool_result"
            ]
        )
    );
    // `LIKE` wildcards are literal: `_` is not any character, `%` not any text.
    assert_eq!(hits(cairn, 1, "a_1").await.0, 0);
    assert_eq!(hits(cairn, 1, "a-1").await.0, 9);
    assert_eq!(hits(cairn, 1, "%25").await.0, 0);
    assert_eq!(hits(cairn, 1, "%25%25").await.0, 0);
    // In start order, cut at the limit; the total counts them all.
    let first = ok(
        cairn,
        &format!("/api/v1/runs/{}/search?q=a-1&limit=2", tid(1)),
    )
    .await;
    assert_eq!(first["total"], 9);
    assert_eq!(first["q"], "a-1");
    assert_eq!(
        strings(&first["hits"], "span_id"),
        ["a01.2", "a01.3"].map(sid)
    );
    let search = |q: &str| format!("/api/v1/runs/{}/search{q}", tid(1));
    for bad in ["?q=", "", "?q=x&limit=0", "?q=x&colour=red"] {
        assert_eq!(get(cairn, &search(bad)).await.0, 400, "{bad}");
    }
    assert_eq!(
        get(cairn, &format!("/api/v1/runs/{}/search?q=x", tid(9)))
            .await
            .0,
        404
    );
}

async fn run_page(cairn: &Cairn) {
    let page = ok(cairn, "/api/v1/runs").await;
    let runs = page["runs"].as_array().unwrap();
    let of = |trace: u32| {
        runs.iter()
            .find(|r| r["trace_id"] == tid(trace))
            .unwrap_or_else(|| panic!("run {trace:x} in {page}"))
    };
    assert_eq!(of(1)["approvals"], json!({"granted": 1, "requested": 1}));
    assert_eq!(of(3)["approvals"], json!({"denied": 1}));
    assert_eq!(of(4)["approvals"], json!({"timed_out": 1}));
    assert_eq!(of(5)["approvals"], json!({"granted": 1}));
    assert_eq!(of(0xc2)["approvals"], json!({"requested": 1}));
    assert!(of(2).get("approvals").is_none());
    // a04 ran a refund without approval and an email after a timed-out one; a02 posted to the
    // ledger (gated by the --approval-required rule); c4's snapshot document came from a04.
    assert_eq!(of(4)["bypasses"], 2);
    assert_eq!(of(2)["bypasses"], 1);
    assert_eq!(of(0xc4)["bypasses"], 1);
    for trace in [1, 3, 5, 0xc2] {
        assert!(of(trace).get("bypasses").is_none(), "{}", of(trace));
    }
    // Each count is that of the run's rows of the `bypasses` view.
    for r in runs {
        let trace = r["trace_id"].as_str().unwrap();
        let n = cairn
            .count(None, &format!("bypasses WHERE trace_id = '{trace}'"))
            .await;
        assert_eq!(
            r.get("bypasses").map_or(0, |b| b.as_i64().unwrap()),
            n,
            "{trace}"
        );
    }

    // A run none of whose steps is a root is still going; every other one has its root.
    assert_eq!(of(0xc5)["root_missing"], true, "{}", of(0xc5));
    for r in runs.iter().filter(|r| r["trace_id"] != tid(0xc5)) {
        assert!(r.get("root_missing").is_none(), "{r}");
    }

    // Waiting on approval: c2 only. a01 asked for apr-2 too, but a03 denied it.
    let gate = cairn
        .sql(
            None,
            "SELECT trace_id, state FROM approval_gates WHERE gate = 'apr-2'",
        )
        .await;
    assert_eq!(gate[0]["trace_id"], tid(1));
    assert_eq!(gate[0]["state"], "denied");
    let pending = ok(cairn, "/api/v1/runs?pending=approval").await;
    assert_eq!(strings(&pending["runs"], "trace_id"), [tid(0xc2)]);
    assert_eq!(pending["runs"][0]["approvals"], json!({"requested": 1}));
    let triage = ok(cairn, "/api/v1/runs?pending=approval&agent=triage").await;
    assert_eq!(strings(&triage["runs"], "trace_id"), [tid(0xc2)]);
    let notifier = ok(cairn, "/api/v1/runs?pending=approval&agent=notifier").await;
    assert_eq!(notifier["runs"], json!([]));
    let (status, body) = get(cairn, "/api/v1/runs?pending=yes").await;
    assert_eq!(status, 400);
    assert!(
        body["error"].as_str().unwrap().contains("pending"),
        "{body}"
    );
}

/// A row of `aligned`.
fn row(left: Option<usize>, right: Option<usize>, same: bool) -> Value {
    json!({"left": left, "right": right, "same": same})
}

async fn diff_and_replay(cairn: &Cairn) {
    let diff = ok(
        cairn,
        &format!("/api/v1/diff?left={}&right={}", tid(1), tid(5)),
    )
    .await;
    // a05 follows a01's first five decisions (the refund of 400 instead of 40 differs in the
    // turn that asked for it and in the call), then a01 goes on alone.
    let mut expected: Vec<Value> = [true, true, false, true, false]
        .into_iter()
        .enumerate()
        .map(|(i, same)| row(Some(i), Some(i), same))
        .collect();
    expected.extend((5..10).map(|i| row(Some(i), None, false)));
    assert_eq!(diff["aligned"], json!(expected));
    assert_eq!(diff["first_divergence"]["index"], 2);
    // a04 against a05: the model turns and the refund line up; a05's lookup and approval, and
    // a04's approval and email, are gaps.
    let other = ok(
        cairn,
        &format!("/api/v1/diff?left={}&right={}", tid(4), tid(5)),
    )
    .await;
    assert_eq!(
        other["aligned"],
        json!([
            row(Some(0), Some(0), false),
            row(None, Some(1), false),
            row(None, Some(2), false),
            row(None, Some(3), false),
            row(Some(1), Some(4), false),
            row(Some(2), None, false),
            row(Some(3), None, false),
            row(Some(4), None, false),
        ])
    );
    let same = ok(
        cairn,
        &format!("/api/v1/diff?left={}&right={}", tid(5), tid(5)),
    )
    .await;
    let expected: Vec<Value> = (0..5).map(|i| row(Some(i), Some(i), true)).collect();
    assert_eq!(same["aligned"], json!(expected));

    // Replay steps carry their measures at the top level, when known.
    let replay = ok(cairn, &format!("/api/v1/runs/{}/replay", tid(1))).await;
    let turn = &replay["steps"][0];
    assert_eq!(turn["span_id"], sid("a01.2"));
    assert_eq!(turn["duration_ns"], 2_000_000_000i64);
    assert_eq!(
        (turn["input_tokens"].clone(), turn["output_tokens"].clone()),
        (json!(120), json!(30))
    );
    let priced = cairn
        .sql(
            None,
            &format!("SELECT cost FROM spans WHERE span_id = '{}'", sid("a01.2")),
        )
        .await;
    assert_eq!(turn["cost"], priced[0]["cost"]);
    let call = &replay["steps"][1];
    assert_eq!(call["duration_ns"], 1_000_000_000i64);
    assert!(call.get("input_tokens").is_none() && call.get("cost").is_none());
    assert_eq!(diff["first_divergence"]["right_step"]["input_tokens"], 300);
}
