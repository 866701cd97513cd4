//! Views every session has, over the `spans` and `payloads` tables.
//!
//! Payload contents are joined in by hash; a hash may have been written more than once (by
//! several collectors, or after a restart), so views read one row per hash.

/// One row per payload hash.
const CONTENTS: &str = "(SELECT hash, first_value(kind) AS kind, first_value(content) AS content FROM payloads GROUP BY hash)";

/// `(name, SQL)` of each view, created in order.
pub fn views() -> Vec<(&'static str, String)> {
    vec![
        ("runs", RUNS.to_owned()),
        ("messages", MESSAGES.replace("{contents}", CONTENTS)),
        ("llm_calls", LLM_CALLS.replace("{contents}", CONTENTS)),
        ("tool_calls", TOOL_CALLS.replace("{contents}", CONTENTS)),
        ("approvals", APPROVALS.to_owned()),
        ("policies", POLICIES.replace("{contents}", CONTENTS)),
    ]
}

/// One row per trace. Token and cost totals count leaf model calls only.
const RUNS: &str = "SELECT
        trace_id, root_span_id, root_name, service_name, agent_name, start_time, end_time,
        CAST(end_time AS BIGINT) - CAST(start_time AS BIGINT) AS duration_ns,
        status, span_count, error_count, llm_calls, tool_calls,
        input_tokens, output_tokens, cache_read_tokens, reasoning_tokens, cost
    FROM (
        SELECT
            trace_id,
            first_value(span_id ORDER BY parent_span_id IS NOT NULL, start_time) AS root_span_id,
            first_value(name ORDER BY parent_span_id IS NOT NULL, start_time) AS root_name,
            first_value(service_name ORDER BY parent_span_id IS NOT NULL, start_time) AS service_name,
            first_value(agent_name ORDER BY start_time) FILTER (WHERE agent_name IS NOT NULL) AS agent_name,
            min(start_time) AS start_time,
            max(end_time) AS end_time,
            CASE
                WHEN bool_or(status_code = 'error') THEN 'error'
                WHEN bool_or(status_code = 'ok') THEN 'ok'
                ELSE 'unset'
            END AS status,
            count(*) AS span_count,
            count(*) FILTER (WHERE status_code = 'error') AS error_count,
            count(*) FILTER (WHERE operation = 'llm_call') AS llm_calls,
            count(*) FILTER (WHERE operation IN ('tool_call', 'handoff')) AS tool_calls,
            sum(input_tokens) FILTER (WHERE operation IN ('llm_call', 'embeddings')) AS input_tokens,
            sum(output_tokens) FILTER (WHERE operation IN ('llm_call', 'embeddings')) AS output_tokens,
            sum(cache_read_tokens) FILTER (WHERE operation IN ('llm_call', 'embeddings')) AS cache_read_tokens,
            sum(reasoning_tokens) FILTER (WHERE operation IN ('llm_call', 'embeddings')) AS reasoning_tokens,
            sum(cost) FILTER (WHERE operation IN ('llm_call', 'embeddings')) AS cost
        FROM spans
        GROUP BY trace_id
    )";

/// Every input and output message of every model call, in order, with its content.
const MESSAGES: &str = "SELECT m.trace_id, m.span_id, m.start_time,
        CASE WHEN m.i < m.inputs THEN 'input' ELSE 'output' END AS direction,
        CASE WHEN m.i < m.inputs THEN m.i ELSE m.i - m.inputs END AS position,
        m.hash, c.content
    FROM (
        SELECT trace_id, span_id, start_time, inputs,
               unnest(range(0, cardinality(refs))) AS i, unnest(refs) AS hash
        FROM (
            SELECT trace_id, span_id, start_time,
                   coalesce(cardinality(input_message_refs), 0) AS inputs,
                   array_concat(input_message_refs, output_message_refs) AS refs
            FROM spans
        )
        WHERE cardinality(refs) > 0
    ) m
    LEFT JOIN {contents} c ON c.hash = m.hash";

/// Model calls with their model, usage, cost and context.
const LLM_CALLS: &str = "SELECT s.trace_id, s.span_id, s.parent_span_id, s.name, s.start_time, s.duration_ns,
        s.status_code, s.agent_name, s.conversation_id, s.provider, s.request_model, s.response_model,
        s.input_tokens, s.output_tokens, s.cache_read_tokens, s.cache_write_tokens, s.reasoning_tokens,
        s.cost, s.cost_currency, s.cost_src, s.input_message_refs, s.output_message_refs,
        s.requested_tool_call_ids,
        cardinality(s.input_message_refs) AS input_message_count,
        si.content AS system_instructions, td.content AS tool_definitions,
        s.sandbox_id, s.policy_ref
    FROM spans s
    LEFT JOIN {contents} si ON si.hash = s.system_instructions_ref
    LEFT JOIN {contents} td ON td.hash = s.tool_definitions_ref
    WHERE s.operation = 'llm_call'";

/// Tool executions (and hand-offs) with arguments, results, approval and policy.
const TOOL_CALLS: &str =
    "SELECT s.trace_id, s.span_id, s.parent_span_id, s.name, s.operation, s.start_time,
        s.duration_ns, s.status_code, s.status_message, s.agent_name, s.tool_name, s.tool_call_id,
        s.tool_type, a.content AS arguments, r.content AS result, s.approval_state, s.approver,
        s.policy_ref, s.sandbox_id, s.k8s_namespace, s.k8s_pod_name, s.data_read, s.data_written,
        q.span_id AS requested_by_span_id
    FROM spans s
    LEFT JOIN {contents} a ON a.hash = s.tool_arguments_ref
    LEFT JOIN {contents} r ON r.hash = s.tool_result_ref
    LEFT JOIN (
        SELECT trace_id, span_id, unnest(requested_tool_call_ids) AS tool_call_id
        FROM spans WHERE cardinality(requested_tool_call_ids) > 0
    ) q ON q.trace_id = s.trace_id AND q.tool_call_id = s.tool_call_id
    WHERE s.operation IN ('tool_call', 'handoff')";

/// Approval decisions recorded on steps.
const APPROVALS: &str =
    "SELECT trace_id, span_id, name, start_time, agent_name, tool_name, tool_call_id,
        approval_state, approver, approval_request_id, policy_ref, sandbox_id
    FROM spans WHERE approval_state IS NOT NULL";

/// Policy snapshots seen, with their documents when sent.
const POLICIES: &str = "SELECT s.policy_ref, s.policy_hash, c.content AS document,
        min(s.start_time) AS first_seen, max(s.start_time) AS last_seen,
        count(*) AS spans, count(DISTINCT s.trace_id) AS runs
    FROM spans s
    LEFT JOIN {contents} c ON c.hash = s.policy_document_ref
    WHERE s.policy_ref IS NOT NULL
    GROUP BY s.policy_ref, s.policy_hash, c.content";
