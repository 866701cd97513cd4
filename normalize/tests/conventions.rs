//! The convention table applied to span shapes of each flavour: every promoted column and the
//! source it came from.

use std::collections::HashMap;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{Float64Type, Int64Type};
use cairn_normalize::encode::encode;
use cairn_normalize::otlp::collector::trace::v1::ExportTraceServiceRequest;
use cairn_normalize::otlp::common::v1::{
    any_value::Value, AnyValue, ArrayValue, InstrumentationScope, KeyValue,
};
use cairn_normalize::otlp::resource::v1::Resource;
use cairn_normalize::otlp::trace::v1::{ResourceSpans, ScopeSpans, Span};

mod common;
use common::kv;
fn s(key: &str, v: &str) -> KeyValue {
    kv(key, Value::StringValue(v.into()))
}
fn i(key: &str, v: i64) -> KeyValue {
    kv(key, Value::IntValue(v))
}

/// Encodes one span and returns its promoted columns as text (null → None).
fn promoted(
    name: &str,
    attrs: Vec<KeyValue>,
    resource: Vec<KeyValue>,
    scope: &str,
) -> HashMap<String, Option<String>> {
    let req = ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: resource,
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                scope: Some(InstrumentationScope {
                    name: scope.into(),
                    ..Default::default()
                }),
                spans: vec![Span {
                    trace_id: vec![1; 16],
                    span_id: vec![2; 8],
                    name: name.into(),
                    start_time_unix_nano: 1,
                    end_time_unix_nano: 2,
                    attributes: attrs,
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    let encoded = encode(&req).unwrap();
    assert_eq!(encoded.accepted, 1);
    row(&encoded.partitions[0].spans)
}

fn row(batch: &RecordBatch) -> HashMap<String, Option<String>> {
    let start = batch.schema().index_of("operation").unwrap();
    (start..batch.num_columns())
        .map(|c| {
            let col = batch.column(c);
            let name = batch.schema().field(c).name().clone();
            let v = col.is_valid(0).then(|| match col.data_type() {
                arrow::datatypes::DataType::Int64 => {
                    col.as_primitive::<Int64Type>().value(0).to_string()
                }
                arrow::datatypes::DataType::Float64 => {
                    col.as_primitive::<Float64Type>().value(0).to_string()
                }
                _ => arrow::util::display::array_value_to_string(col, 0).unwrap(),
            });
            (name, v)
        })
        .collect()
}

fn check(row: &HashMap<String, Option<String>>, expected: &[(&str, &str, &str)]) {
    for (column, value, source) in expected {
        assert_eq!(row[*column].as_deref(), Some(*value), "{column}: {row:?}");
        assert_eq!(
            row[&format!("{column}_src")].as_deref(),
            Some(*source),
            "{column}_src"
        );
    }
}

fn nulls(row: &HashMap<String, Option<String>>, columns: &[&str]) {
    for c in columns {
        assert_eq!(row[*c], None, "{c} should be null: {row:?}");
    }
}

#[test]
fn otel_genai_current() {
    let r = promoted(
        "chat gpt-4o",
        vec![
            s("gen_ai.operation.name", "chat"),
            s("gen_ai.provider.name", "openai"),
            s("gen_ai.request.model", "gpt-4o"),
            s("gen_ai.response.model", "gpt-4o-2024-08-06"),
            i("gen_ai.usage.input_tokens", 1200),
            i("gen_ai.usage.output_tokens", 80),
            i("gen_ai.usage.cache_read.input_tokens", 1000),
            i("gen_ai.usage.reasoning.output_tokens", 12),
            s("gen_ai.conversation.id", "conv-1"),
            s("gen_ai.agent.name", "planner"),
            kv("gen_ai.usage.cost.amount", Value::DoubleValue(0.0125)),
            s("gen_ai.usage.cost.currency", "USD"),
        ],
        vec![
            s("k8s.namespace.name", "agents"),
            s("k8s.pod.name", "sandbox-7f9c"),
            s("k8s.pod.uid", "275ecb36-5aa8-4c2a-9c47-d8bb681b9aff"),
            s("k8s.node.name", "node-1"),
            s("agent_trail.sandbox.id", "sbx-42"),
            s("agent_trail.policy.snapshot.id", "pol-7"),
        ],
        "opentelemetry.instrumentation.genai.openai",
    );
    check(
        &r,
        &[
            ("operation", "llm_call", "gen_ai.operation.name"),
            ("operation_raw", "chat", "gen_ai.operation.name"),
            ("provider", "openai", "gen_ai.provider.name"),
            ("request_model", "gpt-4o", "gen_ai.request.model"),
            (
                "response_model",
                "gpt-4o-2024-08-06",
                "gen_ai.response.model",
            ),
            ("input_tokens", "1200", "gen_ai.usage.input_tokens"),
            ("output_tokens", "80", "gen_ai.usage.output_tokens"),
            (
                "cache_read_tokens",
                "1000",
                "gen_ai.usage.cache_read.input_tokens",
            ),
            (
                "reasoning_tokens",
                "12",
                "gen_ai.usage.reasoning.output_tokens",
            ),
            ("conversation_id", "conv-1", "gen_ai.conversation.id"),
            ("agent_name", "planner", "gen_ai.agent.name"),
            ("cost", "0.0125", "gen_ai.usage.cost.amount"),
            ("cost_currency", "USD", "gen_ai.usage.cost.currency"),
            ("sandbox_id", "sbx-42", "resource:agent_trail.sandbox.id"),
            (
                "policy_ref",
                "pol-7",
                "resource:agent_trail.policy.snapshot.id",
            ),
            ("k8s_namespace", "agents", "resource:k8s.namespace.name"),
            ("k8s_pod_name", "sandbox-7f9c", "resource:k8s.pod.name"),
            (
                "k8s_pod_uid",
                "275ecb36-5aa8-4c2a-9c47-d8bb681b9aff",
                "resource:k8s.pod.uid",
            ),
            ("k8s_node_name", "node-1", "resource:k8s.node.name"),
        ],
    );
    nulls(
        &r,
        &[
            "tool_name",
            "tool_call_id",
            "approval_state",
            "framework",
            "rollup_input_tokens",
        ],
    );
}

#[test]
fn otel_genai_deprecated_names() {
    let r = promoted(
        "chat",
        vec![
            s("gen_ai.system", "az.ai.openai"),
            s("gen_ai.request.model", "gpt-4"),
            i("gen_ai.usage.prompt_tokens", 10),
            i("gen_ai.usage.completion_tokens", 3),
        ],
        vec![
            s("k8s.pod.uid", "uid-1"),
            s("service.instance.id", "instance-1"),
            s("host.name", "laptop"),
            s("container.id", "c0ffee"),
            i("process.pid", 4242),
        ],
        "",
    );
    check(
        &r,
        &[
            ("operation", "llm_call", "rule:model_attributes"),
            ("provider", "azure.ai.openai", "gen_ai.system"),
            ("input_tokens", "10", "gen_ai.usage.prompt_tokens"),
            ("output_tokens", "3", "gen_ai.usage.completion_tokens"),
            ("k8s_pod_uid", "uid-1", "resource:k8s.pod.uid"),
            (
                "service_instance_id",
                "instance-1",
                "resource:service.instance.id",
            ),
            ("host_name", "laptop", "resource:host.name"),
            ("container_id", "c0ffee", "resource:container.id"),
            ("process_pid", "4242", "resource:process.pid"),
        ],
    );
    // A process, container, pod or host is not a sandbox.
    nulls(&r, &["sandbox_id"]);
}

#[test]
fn openinference_tool_and_handoff() {
    let r = promoted(
        "get_weather",
        vec![
            s("openinference.span.kind", "TOOL"),
            s("tool.name", "get_weather"),
            s("input.value", "{\"city\": \"Paris\"}"),
            s("llm.provider", "openai"),
        ],
        vec![],
        "openinference.instrumentation.openai_agents",
    );
    check(
        &r,
        &[
            ("operation", "tool_call", "openinference.span.kind"),
            ("operation_raw", "TOOL", "openinference.span.kind"),
            ("tool_name", "get_weather", "tool.name"),
            ("framework", "openai-agents", "scope.name"),
            ("provider", "openai", "llm.provider"),
        ],
    );
    let r = promoted(
        "handoff to billing_agent",
        vec![
            s("openinference.span.kind", "TOOL"),
            s("tool.name", "transfer_to_billing_agent"),
        ],
        vec![],
        "openinference.instrumentation.openai_agents",
    );
    check(&r, &[("operation", "handoff", "rule:handoff")]);
    let r = promoted(
        "weather_agent",
        vec![
            s("openinference.span.kind", "AGENT"),
            s("graph.node.id", "weather_agent"),
        ],
        vec![],
        "openinference.instrumentation.openai_agents",
    );
    check(
        &r,
        &[
            ("operation", "agent_invoke", "openinference.span.kind"),
            ("agent_name", "weather_agent", "graph.node.id"),
        ],
    );
    let r = promoted(
        "ChatCompletion",
        vec![
            s("openinference.span.kind", "LLM"),
            s("llm.model_name", "gpt-4o-mini"),
            i("llm.token_count.prompt", 120),
            i("llm.token_count.completion", 30),
            i("llm.token_count.prompt_details.cache_read", 64),
        ],
        vec![],
        "openinference.instrumentation.openai",
    );
    check(
        &r,
        &[
            ("operation", "llm_call", "openinference.span.kind"),
            ("request_model", "gpt-4o-mini", "llm.model_name"),
            ("response_model", "gpt-4o-mini", "llm.model_name"),
            ("input_tokens", "120", "llm.token_count.prompt"),
            ("output_tokens", "30", "llm.token_count.completion"),
            (
                "cache_read_tokens",
                "64",
                "llm.token_count.prompt_details.cache_read",
            ),
        ],
    );
}

#[test]
fn traceloop_entities_frameworks_and_placeholders() {
    let r = promoted(
        "search.tool",
        vec![
            s("traceloop.span.kind", "tool"),
            s("traceloop.entity.name", "search"),
            s("gen_ai.system", "crewai"),
            s("gen_ai.tool.call.id", "<not specified>"),
            s("server.address", "api.anthropic.com"),
        ],
        vec![],
        "opentelemetry.instrumentation.crewai",
    );
    check(
        &r,
        &[
            ("operation", "tool_call", "traceloop.span.kind"),
            ("tool_name", "search", "traceloop.entity.name"),
            ("framework", "crewai", "gen_ai.system"),
            ("provider", "anthropic", "server.address"),
        ],
    );
    nulls(&r, &["tool_call_id"]);
    let r = promoted(
        "researcher.agent",
        vec![
            s("traceloop.span.kind", "agent"),
            s("traceloop.entity.name", "researcher"),
        ],
        vec![],
        "",
    );
    check(
        &r,
        &[
            ("operation", "agent_invoke", "traceloop.span.kind"),
            ("agent_name", "researcher", "traceloop.entity.name"),
        ],
    );
}

#[test]
fn span_names_overrides_and_our_namespace() {
    let r = promoted(
        "invoke_agent Support Bot",
        vec![s("gen_ai.operation.name", "invoke_agent")],
        vec![],
        "",
    );
    check(
        &r,
        &[("agent_name", "Support Bot", "span.name:^invoke_agent (.+)$")],
    );
    let r = promoted(
        "execute_tool lookup_order",
        vec![s("gen_ai.operation.name", "execute_tool")],
        vec![],
        "",
    );
    check(
        &r,
        &[(
            "tool_name",
            "lookup_order",
            "span.name:^execute_tool (\\S+)",
        )],
    );

    let r = promoted(
        "execute_tool refund",
        vec![
            s("gen_ai.operation.name", "execute_tool"),
            s("gen_ai.tool.name", "refund"),
            s("gen_ai.tool.call.id", "call_9"),
            s("agent_trail.operation", "approval"),
            s("agent_trail.agent.name", "override-agent"),
            s("gen_ai.agent.name", "sdk-agent"),
            s("agent_trail.approval.state", "granted"),
            s("agent_trail.approval.approver.id", "alice"),
            s("agent_trail.approval.request.id", "apr-1"),
            s("agent_trail.sandbox.id", "span-sbx"),
            s("agent_trail.policy.snapshot.id", "pol-span"),
            s("agent_trail.policy.snapshot.hash", "sha256:abc"),
            kv("agent_trail.cost", Value::IntValue(2)),
            kv(
                "agent_trail.data.accessed",
                Value::ArrayValue(ArrayValue { values: vec![] }),
            ),
        ],
        vec![
            s("agent_trail.sandbox.id", "res-sbx"),
            s("agent_trail.policy.snapshot.id", "pol-res"),
        ],
        "",
    );
    check(
        &r,
        &[
            ("operation", "approval", "agent_trail.operation"),
            ("agent_name", "override-agent", "agent_trail.agent.name"),
            ("approval_state", "granted", "agent_trail.approval.state"),
            ("approver", "alice", "agent_trail.approval.approver.id"),
            (
                "approval_request_id",
                "apr-1",
                "agent_trail.approval.request.id",
            ),
            ("sandbox_id", "span-sbx", "agent_trail.sandbox.id"),
            ("policy_ref", "pol-span", "agent_trail.policy.snapshot.id"),
            (
                "policy_hash",
                "sha256:abc",
                "agent_trail.policy.snapshot.hash",
            ),
            ("cost", "2", "agent_trail.cost"),
        ],
    );

    // A plain HTTP span is not an agent span: nothing promoted.
    let r = promoted(
        "GET /health",
        vec![s("http.request.method", "GET")],
        vec![],
        "",
    );
    nulls(
        &r,
        &[
            "operation",
            "operation_src",
            "agent_name",
            "provider",
            "framework",
            "request_model",
        ],
    );
}

#[test]
fn vercel_ai_sdk() {
    let r = promoted(
        "ai.generateText.doGenerate",
        vec![
            s("ai.operationId", "ai.generateText.doGenerate"),
            s("ai.model.provider", "openai.chat"),
            s("ai.model.id", "gpt-4o-mini"),
            s("ai.response.model", "gpt-4o-mini-2024-07-18"),
            i("ai.usage.promptTokens", 50),
            i("ai.usage.completionTokens", 7),
            s("ai.telemetry.metadata.sessionId", "sess-9"),
        ],
        vec![],
        "ai",
    );
    check(
        &r,
        &[
            ("operation", "llm_call", "ai.operationId"),
            ("provider", "openai", "ai.model.provider"),
            ("request_model", "gpt-4o-mini", "ai.model.id"),
            (
                "response_model",
                "gpt-4o-mini-2024-07-18",
                "ai.response.model",
            ),
            ("input_tokens", "50", "ai.usage.promptTokens"),
            ("output_tokens", "7", "ai.usage.completionTokens"),
            (
                "conversation_id",
                "sess-9",
                "ai.telemetry.metadata.sessionId",
            ),
        ],
    );
    let r = promoted(
        "ai.toolCall",
        vec![
            s("ai.operationId", "ai.toolCall"),
            s("ai.toolCall.name", "search"),
            s("ai.toolCall.id", "tc-1"),
        ],
        vec![],
        "ai",
    );
    check(
        &r,
        &[
            ("operation", "tool_call", "ai.operationId"),
            ("tool_name", "search", "ai.toolCall.name"),
            ("tool_call_id", "tc-1", "ai.toolCall.id"),
        ],
    );
}

#[test]
fn google_adk_placeholders_and_mcp() {
    let r = promoted(
        "execute_tool get_weather",
        vec![
            s("gen_ai.system", "gcp.vertex.agent"),
            s("gen_ai.operation.name", "execute_tool"),
            s("gen_ai.tool.name", "get_weather"),
            s("gen_ai.tool.call.id", "<not specified>"),
            s("gcp.vertex.agent.session_id", "adk-session"),
        ],
        vec![],
        "gcp.vertex.agent",
    );
    check(
        &r,
        &[
            ("operation", "tool_call", "gen_ai.operation.name"),
            ("framework", "gcp.vertex.agent", "gen_ai.system"),
            (
                "conversation_id",
                "adk-session",
                "gcp.vertex.agent.session_id",
            ),
        ],
    );
    nulls(&r, &["tool_call_id", "provider"]);
    let r = promoted(
        "tools/call lookup",
        vec![
            s("mcp.method.name", "tools/call"),
            s("gen_ai.tool.name", "lookup"),
            s("mcp.resource.uri", "FILE:///srv/data/"),
        ],
        vec![],
        "",
    );
    check(
        &r,
        &[
            ("operation", "tool_call", "mcp.method.name"),
            ("tool_name", "lookup", "gen_ai.tool.name"),
            ("data_read", "[file:///srv/data]", "mcp.resource.uri"),
        ],
    );
    let r = promoted(
        "resources/read",
        vec![s("mcp.method.name", "resources/read")],
        vec![],
        "",
    );
    check(&r, &[("operation", "mcp", "mcp.method.name")]);
}

#[test]
fn pydantic_ai_rollups_and_data_lineage() {
    let r = promoted(
        "agent run",
        vec![
            s("gen_ai.agent.name", "support"),
            s("model_name", "gpt-4o"),
            i("gen_ai.aggregated_usage.input_tokens", 900),
            i("gen_ai.usage.output_tokens", 120),
            kv(
                "agent_trail.data.accessed",
                Value::ArrayValue(ArrayValue {
                    values: [
                        "read:s3://a/b.csv",
                        "write:db://pg/shop/orders",
                        "delete:s3://tmp/x",
                        "s3://c/d/",
                    ]
                    .into_iter()
                    .map(|u| AnyValue {
                        value: Some(Value::StringValue(u.into())),
                    })
                    .collect(),
                }),
            ),
        ],
        vec![],
        "pydantic-ai",
    );
    check(
        &r,
        &[
            ("operation", "agent_invoke", "rule:agent_identity"),
            ("agent_name", "support", "gen_ai.agent.name"),
            (
                "rollup_input_tokens",
                "900",
                "gen_ai.aggregated_usage.input_tokens",
            ),
            ("rollup_output_tokens", "120", "gen_ai.usage.output_tokens"),
            ("framework", "pydantic-ai", "scope.name"),
            (
                "data_read",
                "[s3://a/b.csv, s3://c/d]",
                "agent_trail.data.accessed",
            ),
            (
                "data_written",
                "[db://pg/shop/orders, s3://tmp/x]",
                "agent_trail.data.accessed",
            ),
        ],
    );
    nulls(&r, &["input_tokens", "output_tokens", "cost"]);
    let r = promoted(
        "SELECT orders",
        vec![
            s("db.system.name", "postgresql"),
            s("db.namespace", "shop"),
            s("db.collection.name", "orders"),
            s("db.operation.name", "SELECT"),
        ],
        vec![],
        "",
    );
    check(
        &r,
        &[("data_read", "[db://postgresql/shop/orders]", "db.system")],
    );
    nulls(&r, &["operation", "data_written"]);
}

#[test]
fn providers_from_api_suffixes_model_prefixes_and_model_families() {
    let call = |attrs: Vec<KeyValue>| promoted("chat", attrs, vec![], "");
    // An API suffix on the provider id.
    let r = call(vec![
        s("gen_ai.operation.name", "chat"),
        s("gen_ai.provider.name", "openai.responses"),
        s("gen_ai.request.model", "gpt-4o-mini"),
        i("gen_ai.usage.input_tokens", 1_000_000),
        i("gen_ai.usage.output_tokens", 0),
    ]);
    check(&r, &[("provider", "openai", "gen_ai.provider.name")]);
    assert_eq!(r["cost"].as_deref(), Some("0.15"));
    // A provider prefix on the model name, and nothing else naming the provider.
    let r = call(vec![
        s("gen_ai.operation.name", "chat"),
        s("gen_ai.request.model", "openai/gpt-4o-mini"),
        i("gen_ai.usage.input_tokens", 1_000_000),
        i("gen_ai.usage.output_tokens", 0),
    ]);
    check(&r, &[("provider", "openai", "rule:model_prefix")]);
    assert_eq!(r["cost"].as_deref(), Some("0.15"));
    // A priced model, then a model family.
    let r = call(vec![
        s("llm.model_name", "claude-sonnet-4-5"),
        i("llm.token_count.prompt", 10),
    ]);
    assert_eq!(r["provider"].as_deref(), Some("anthropic"));
    assert!(r["provider_src"]
        .as_deref()
        .unwrap()
        .starts_with("price_table:"));
    assert!(r["cost"].is_some(), "{r:?}");
    let r = call(vec![s("gen_ai.request.model", "gemini-9-ultra")]);
    check(&r, &[("provider", "gcp.gemini", "rule:model_family")]);
    let r = call(vec![s("gen_ai.request.model", "my-own-model")]);
    nulls(&r, &["provider"]);
}

#[test]
fn a_leading_system_message_is_the_system_instructions() {
    let r = promoted(
        "chat",
        vec![
            s("gen_ai.operation.name", "chat"),
            s(
                "gen_ai.input.messages",
                r#"[{"role":"system","parts":[{"content":"Be brief.","type":"text"}]},{"role":"user","parts":[{"content":"Hi","type":"text"}]}]"#,
            ),
        ],
        vec![],
        "",
    );
    assert_eq!(
        r["system_instructions_ref_src"].as_deref(),
        Some("gen_ai.input.messages[0]"),
        "{r:?}"
    );
}
