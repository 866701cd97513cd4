//! Golden fixtures of real instrumentations (tests/fixtures, produced by the real OpenInference,
//! OpenLLMetry and OpenTelemetry packages) sent over OTLP/HTTP JSON: every promoted column and
//! its source, payload dedupe, the views, and the lossless trace API.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::{json, Value};

use crate::harness::{client, Cairn};

pub(crate) fn fixture(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

pub(crate) async fn send_json(cairn: &Cairn, body: String, tenant: &str) {
    let resp = client()
        .post(format!("http://{}/v1/traces", cairn.otlp_http))
        .header("content-type", "application/json")
        .header("X-Scope-OrgID", tenant)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let v: Value = resp.json().await.unwrap();
    assert!(v["partialSuccess"].is_null(), "{v}");
}

/// Rows of `columns` for every span of a tenant, keyed by "name#n" in start order.
async fn rows(cairn: &Cairn, tenant: &str, columns: &str) -> BTreeMap<String, Value> {
    let rows = cairn
        .sql(
            Some(tenant),
            &format!("SELECT name, {columns} FROM spans ORDER BY start_time, span_id"),
        )
        .await;
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    rows.into_iter()
        .map(|r| {
            let name = r["name"].as_str().unwrap().to_owned();
            let n = seen.entry(name.clone()).or_default();
            *n += 1;
            (format!("{name}#{n}"), r)
        })
        .collect()
}

fn expect(rows: &BTreeMap<String, Value>, span: &str, expected: Value) {
    let row = rows
        .get(span)
        .unwrap_or_else(|| panic!("no span {span}: {:?}", rows.keys()));
    for (k, v) in expected.as_object().unwrap() {
        let got = row.get(k).cloned().unwrap_or(Value::Null);
        assert_eq!(&got, v, "{span}.{k} in {row}");
    }
}

const COLUMNS: &str = "operation, operation_src, agent_name, agent_name_src, agent_id, tool_name, tool_name_src,
    tool_call_id, tool_type, request_model, request_model_src, response_model, provider, provider_src,
    framework, framework_src, input_tokens, input_tokens_src, output_tokens, cache_read_tokens,
    cache_read_tokens_src, reasoning_tokens, reasoning_tokens_src, rollup_input_tokens,
    conversation_id, user_id, sandbox_id, sandbox_id_src, policy_ref, policy_ref_src,
    approval_state, approver, k8s_namespace, k8s_pod_name, k8s_pod_uid, k8s_node_name,
    cardinality(input_message_refs) AS input_messages, input_message_refs_src,
    cardinality(output_message_refs) AS output_messages, system_instructions_ref_src,
    tool_definitions_ref_src, tool_arguments_ref_src, tool_result_ref_src";

#[tokio::test(flavor = "multi_thread")]
async fn openinference_openai_agents() {
    let cairn = Cairn::start(&[]);
    send_json(&cairn, fixture("openinference_agents.otlp.json"), "oi").await;
    send_json(
        &cairn,
        fixture("openinference_agents_handoff.otlp.json"),
        "oi-handoff",
    )
    .await;
    let r = rows(&cairn, "oi", COLUMNS).await;
    assert_eq!(r.len(), 8);
    expect(
        &r,
        "weather_agent#1",
        json!({
            "operation": "agent_invoke", "operation_src": "openinference.span.kind",
            "agent_name": "weather_agent", "agent_name_src": "agent.name",
            "framework": "openai-agents", "framework_src": "scope.name",
        }),
    );
    expect(
        &r,
        "response#1",
        json!({
            "operation": "llm_call", "request_model": "gpt-4o-mini-2024-07-18",
            "request_model_src": "llm.invocation_parameters#model", "response_model": "gpt-4o-mini-2024-07-18",
            "provider": "openai", "provider_src": "llm.system",
            "input_tokens": 120, "input_tokens_src": "llm.token_count.prompt", "output_tokens": 30,
            "cache_read_tokens": 80, "cache_read_tokens_src": "llm.token_count.prompt_details.cache_read",
            "reasoning_tokens": 10, "reasoning_tokens_src": "llm.token_count.completion_details.reasoning",
        }),
    );
    expect(
        &r,
        "get_weather#1",
        json!({
            "operation": "tool_call", "tool_name": "get_weather", "tool_name_src": "tool.name",
            "tool_arguments_ref_src": "input.value", "tool_result_ref_src": "output.value",
        }),
    );
    expect(
        &r,
        "turn#1",
        json!({"operation": "step", "agent_name": "weather_agent", "input_tokens": null}),
    );
    let calls = cairn
        .sql(
            Some("oi"),
            "SELECT tool_name, arguments, result FROM tool_calls",
        )
        .await;
    assert_eq!(
        calls,
        vec![json!({
            "tool_name": "get_weather",
            "arguments": "{\"city\":\"Paris\"}",
            "result": "{\"city\": \"Paris\", \"condition\": \"sunny\", \"temperature_c\": 22}",
        })]
    );
    let runs = cairn
        .sql(
            Some("oi"),
            "SELECT llm_calls, tool_calls, input_tokens, output_tokens FROM runs",
        )
        .await;
    assert_eq!(
        runs,
        vec![json!({"llm_calls": 2, "tool_calls": 1, "input_tokens": 240, "output_tokens": 60})]
    );

    let h = rows(&cairn, "oi-handoff", "operation, operation_src, agent_name").await;
    expect(
        &h,
        "handoff to weather_agent#1",
        json!({"operation": "handoff", "operation_src": "rule:handoff"}),
    );
    expect(
        &h,
        "triage_agent#1",
        json!({"operation": "agent_invoke", "agent_name": "triage_agent"}),
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn openllmetry_multi_turn_dedupe_and_lossless_trace() {
    let cairn = Cairn::start(&[]);
    let raw = fixture("openllmetry_openai.otlp.json");
    send_json(&cairn, raw.clone(), "ol").await;
    let r = rows(&cairn, "ol", COLUMNS).await;
    expect(
        &r,
        "openai.chat#1",
        json!({
            "operation": "llm_call", "operation_src": "gen_ai.operation.name",
            "request_model": "gpt-4o-mini", "response_model": "gpt-4o-mini-2024-07-18",
            "provider": "openai", "provider_src": "gen_ai.provider.name",
            "framework": "openai-sdk", "user_id": "user-42",
            "input_tokens": 120, "output_tokens": 30, "cache_read_tokens": 80,
            "reasoning_tokens": 10, "reasoning_tokens_src": "gen_ai.usage.reasoning_tokens",
            "input_messages": 2, "input_message_refs_src": "gen_ai.input.messages", "output_messages": 1,
            "tool_definitions_ref_src": "gen_ai.tool.definitions",
        }),
    );
    expect(
        &r,
        "openai.chat#2",
        json!({"input_messages": 4, "output_messages": 1}),
    );
    // Turn two resends turn one's two messages: six message references, four stored inputs
    // plus two outputs.
    let kinds = cairn
        .sql(
            Some("ol"),
            "SELECT kind, count(*) AS n FROM payloads GROUP BY kind ORDER BY kind",
        )
        .await;
    assert_eq!(
        kinds,
        vec![
            json!({"kind": "message", "n": 6}),
            json!({"kind": "tool_definitions", "n": 1})
        ]
    );
    let messages = cairn
        .sql(Some("ol"), "SELECT direction, position, content FROM messages ORDER BY start_time, direction, position")
        .await;
    assert_eq!(messages.len(), 8);
    assert!(messages[0]["content"]
        .as_str()
        .unwrap()
        .starts_with("{\"role\": \"system\""));
    assert!(messages[6]["content"]
        .as_str()
        .unwrap()
        .starts_with("{\"role\": \"tool\""));

    // The trace API gives back exactly the attribute text that was sent.
    let sent: Value = serde_json::from_str(&raw).unwrap();
    for span in sent["resourceSpans"][0]["scopeSpans"][0]["spans"]
        .as_array()
        .unwrap()
    {
        let trace_id = span["traceId"].as_str().unwrap().to_ascii_lowercase();
        let (status, body) = cairn.trace(Some("ol"), &trace_id).await;
        assert_eq!(status, 200);
        let got = &body["resourceSpans"][0]["scopeSpans"][0]["spans"][0];
        let attrs = |s: &Value| -> BTreeMap<String, Value> {
            s["attributes"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| (a["key"].as_str().unwrap().to_owned(), a["value"].clone()))
                .collect()
        };
        assert_eq!(attrs(got), attrs(span), "trace {trace_id}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn otel_genai_with_our_namespace() {
    let cairn = Cairn::start(&[]);
    send_json(&cairn, fixture("otel_genai_manual.otlp.json"), "c").await;
    send_json(&cairn, fixture("otel_genai_deprecated.otlp.json"), "c-old").await;
    let r = rows(&cairn, "c", COLUMNS).await;
    let placement = json!({
        "sandbox_id": "sbx-7f3a9c", "sandbox_id_src": "resource:agent_trail.sandbox.id",
        "policy_ref": "polsnap-2024-06-01-001", "policy_ref_src": "resource:agent_trail.policy.snapshot.id",
        "k8s_namespace": "agents", "k8s_pod_name": "weather-agent-7d9f8b6c5-x2k4p",
        "k8s_pod_uid": "3f1c2b9e-8a4d-4e1f-9c7b-2d5e6f7a8b9c", "k8s_node_name": "node-a1",
    });
    for span in [
        "invoke_agent weather_agent#1",
        "chat gpt-4o-mini#1",
        "execute_tool get_weather#1",
        "chat gpt-4o-mini#2",
    ] {
        expect(&r, span, placement.clone());
    }
    expect(
        &r,
        "invoke_agent weather_agent#1",
        json!({
            "operation": "agent_invoke", "agent_name": "weather_agent", "agent_name_src": "gen_ai.agent.name",
            "agent_id": "asst_weather_001", "conversation_id": "conv_fixture_c1",
        }),
    );
    expect(
        &r,
        "chat gpt-4o-mini#1",
        json!({
            "operation": "llm_call", "input_tokens": 120, "cache_read_tokens": 80,
            "cache_read_tokens_src": "gen_ai.usage.cache_read.input_tokens",
            "reasoning_tokens": 10, "reasoning_tokens_src": "gen_ai.usage.reasoning.output_tokens",
            "system_instructions_ref_src": "gen_ai.system_instructions", "input_messages": 1,
        }),
    );
    expect(&r, "chat gpt-4o-mini#2", json!({"input_messages": 3}));
    expect(
        &r,
        "execute_tool get_weather#1",
        json!({
            "operation": "tool_call", "tool_name": "get_weather", "tool_name_src": "gen_ai.tool.name",
            "tool_call_id": "call_weather_1", "tool_type": "function",
            "approval_state": "granted", "approver": "alice",
            "tool_arguments_ref_src": "gen_ai.tool.call.arguments", "tool_result_ref_src": "gen_ai.tool.call.result",
        }),
    );
    let approvals = cairn
        .sql(
            Some("c"),
            "SELECT tool_name, tool_call_id, approval_state, approver, policy_ref FROM approvals",
        )
        .await;
    assert_eq!(
        approvals,
        vec![json!({
            "tool_name": "get_weather", "tool_call_id": "call_weather_1", "approval_state": "granted",
            "approver": "alice", "policy_ref": "polsnap-2024-06-01-001",
        })]
    );
    let policies = cairn
        .sql(Some("c"), "SELECT policy_ref, spans, runs FROM policies")
        .await;
    assert_eq!(
        policies,
        vec![json!({"policy_ref": "polsnap-2024-06-01-001", "spans": 4, "runs": 1})]
    );
    let llm = cairn
        .sql(
            Some("c"),
            "SELECT system_instructions FROM llm_calls ORDER BY start_time LIMIT 1",
        )
        .await;
    assert_eq!(
        llm[0]["system_instructions"],
        "[{\"type\":\"text\",\"content\":\"You are a helpful weather assistant. Use get_weather to answer.\"}]"
    );
    // Usage on the agent span is a rollup: the run total is the sum of its two model calls.
    let runs = cairn
        .sql(
            Some("c"),
            "SELECT input_tokens, output_tokens, reasoning_tokens FROM runs",
        )
        .await;
    assert_eq!(
        runs,
        vec![json!({"input_tokens": 240, "output_tokens": 60, "reasoning_tokens": 20})]
    );

    let old = rows(&cairn, "c-old", COLUMNS).await;
    expect(
        &old,
        "chat gpt-4o-mini#1",
        json!({
            "operation": "llm_call", "provider": "openai", "provider_src": "gen_ai.system",
            "input_tokens": 120, "input_tokens_src": "gen_ai.usage.prompt_tokens", "output_tokens": 30,
        }),
    );
}

/// A k-turn conversation that resends its history every turn stores k user and k assistant
/// messages, not k(k+1)/2.
#[tokio::test(flavor = "multi_thread")]
async fn k_turn_conversation_stores_each_message_once() {
    let cairn = Cairn::start(&[]);
    let k = 12usize;
    let mut history: Vec<Value> = Vec::new();
    let mut spans = Vec::new();
    for turn in 0..k {
        history.push(json!({"role": "user", "parts": [{"type": "text", "content": format!("question {turn}: {}", "lorem ipsum ".repeat(40))}]}));
        let answer = json!({"role": "assistant", "parts": [{"type": "text", "content": format!("answer {turn}: {}", "dolor sit ".repeat(60))}]});
        spans.push(json!({
            "traceId": "0a0b0c0d0e0f00112233445566778899",
            "spanId": format!("{:016x}", turn + 1),
            "name": "chat gpt-4o",
            "kind": 3,
            "startTimeUnixNano": (1_764_290_000_000_000_000u64 + turn as u64 * 1_000_000).to_string(),
            "endTimeUnixNano": (1_764_290_000_000_500_000u64 + turn as u64 * 1_000_000).to_string(),
            "attributes": [
                {"key": "gen_ai.operation.name", "value": {"stringValue": "chat"}},
                {"key": "gen_ai.input.messages", "value": {"stringValue": serde_json::to_string(&history).unwrap()}},
                {"key": "gen_ai.output.messages", "value": {"stringValue": serde_json::to_string(&vec![answer.clone()]).unwrap()}},
            ],
        }));
        history.push(answer);
    }
    // One export per turn, as an agent would send them.
    for span in spans {
        let body = json!({"resourceSpans": [{"scopeSpans": [{"spans": [span]}]}]});
        send_json(&cairn, body.to_string(), "conv").await;
    }
    let refs = cairn
        .sql(
            Some("conv"),
            "SELECT sum(cardinality(input_message_refs)) AS n FROM spans",
        )
        .await;
    // Turn t sends 2t+1 input messages: k² in all.
    assert_eq!(refs[0]["n"], json!(k * k));
    let stored = cairn
        .sql(
            Some("conv"),
            "SELECT count(*) AS n, count(DISTINCT hash) AS d FROM payloads",
        )
        .await;
    assert_eq!(stored, vec![json!({"n": 2 * k, "d": 2 * k})]);
    let ordered = cairn
        .sql(Some("conv"), "SELECT content FROM messages WHERE span_id = '000000000000000c' AND direction = 'input' ORDER BY position")
        .await;
    assert_eq!(ordered.len(), 2 * k - 1);
    for (i, m) in ordered.iter().enumerate() {
        let role = if i % 2 == 0 { "user" } else { "assistant" };
        let text = m["content"].as_str().unwrap();
        assert!(
            text.contains(&format!("\"role\":\"{role}\"")),
            "{i}: {text}"
        );
        assert!(
            text.contains(&format!(
                "{} {}:",
                if i % 2 == 0 { "question" } else { "answer" },
                i / 2
            )),
            "{i}: {text}"
        );
    }
}
