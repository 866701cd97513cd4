//! Views every session has, over the `spans` and `payloads` tables.
//!
//! Payload contents are joined in by hash; a hash may have been written more than once (by
//! several collectors, or after a restart), so views read one row per hash.

/// One row per payload hash.
const CONTENTS: &str = "(SELECT hash, first_value(kind) AS kind, first_value(content) AS content FROM payloads GROUP BY hash)";

/// `(name, SQL)` of each view, created in order.
pub fn views() -> Vec<(&'static str, String)> {
    vec![
        ("runs", cairn_schema::run_summary::FINAL.clone()),
        ("messages", MESSAGES.replace("{contents}", CONTENTS)),
        ("llm_calls", LLM_CALLS.replace("{contents}", CONTENTS)),
        ("tool_calls", TOOL_CALLS.replace("{contents}", CONTENTS)),
        ("approvals", APPROVALS.to_owned()),
        ("policies", POLICIES.replace("{contents}", CONTENTS)),
        ("span_links", SPAN_LINKS.to_owned()),
        ("data_access", DATA_ACCESS.to_owned()),
        ("lineage_edges", LINEAGE_EDGES.to_owned()),
        ("approval_gates", APPROVAL_GATES.to_owned()),
        ("bypasses", bypasses_over("policies")),
        ("policy_changes", POLICY_CHANGES.to_owned()),
    ]
}

/// Every input and output message of every model call, in order, with its content (agent and
/// chain spans that repeat their steps' messages are not model calls).
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
            FROM spans WHERE operation = 'llm_call'
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

/// Policy snapshots seen, one row each, with the document when any span sent it.
const POLICIES: &str = "SELECT s.policy_ref, s.policy_hash, max(c.content) AS document,
        min(s.start_time) AS first_seen, max(s.start_time) AS last_seen,
        count(*) AS spans, count(DISTINCT s.trace_id) AS runs
    FROM spans s
    LEFT JOIN {contents} c ON c.hash = s.policy_document_ref
    WHERE s.policy_ref IS NOT NULL
    GROUP BY s.policy_ref, s.policy_hash";

/// One row per span link, with its kind (`agent_trail.link.kind`, else OTel `link.type`, else
/// `link`): the linking span is the later one (`retry_of`, `async_handoff`, `resumes`, …).
const SPAN_LINKS: &str = "SELECT trace_id, span_id, start_time,
        l['trace_id'] AS linked_trace_id, l['span_id'] AS linked_span_id,
        coalesce(l['attributes']['agent_trail.link.kind'], l['attributes']['link.type'], 'link') AS kind
    FROM (SELECT trace_id, span_id, start_time, unnest(links) AS l FROM spans WHERE cardinality(links) > 0)";

/// One row per resource a step read or wrote.
const DATA_ACCESS: &str = "SELECT trace_id, span_id, start_time, operation, agent_name, tool_name,
        sandbox_id, k8s_namespace, k8s_pod_name, access, uri
    FROM (
        SELECT trace_id, span_id, start_time, operation, agent_name, tool_name, sandbox_id,
               k8s_namespace, k8s_pod_name, 'read' AS access, unnest(data_read) AS uri
        FROM spans WHERE cardinality(data_read) > 0
        UNION ALL
        SELECT trace_id, span_id, start_time, operation, agent_name, tool_name, sandbox_id,
               k8s_namespace, k8s_pod_name, 'write' AS access, unnest(data_written) AS uri
        FROM spans WHERE cardinality(data_written) > 0
    )";

/// Every edge between steps, within and across runs: `child` (parent to child), `requested`
/// (model turn to the tool call its output asked for), `gates` (approval to the tool call it
/// decided), span links by kind (linked span to linking span), `decided_by` (approval request
/// to its decision, often in a later run) and `continues` (a run to the next run of its
/// conversation).
const LINEAGE_EDGES: &str = "
    SELECT trace_id AS from_trace_id, parent_span_id AS from_span_id,
           trace_id AS to_trace_id, span_id AS to_span_id, 'child' AS kind
    FROM spans WHERE parent_span_id IS NOT NULL
    UNION ALL
    SELECT q.trace_id, q.span_id, s.trace_id, s.span_id, 'requested'
    FROM spans s JOIN (
        SELECT trace_id, span_id, unnest(requested_tool_call_ids) AS tool_call_id
        FROM spans WHERE cardinality(requested_tool_call_ids) > 0
    ) q ON q.trace_id = s.trace_id AND q.tool_call_id = s.tool_call_id
    WHERE s.operation IN ('tool_call', 'handoff')
    UNION ALL
    SELECT a.trace_id, a.span_id, s.trace_id, s.span_id, 'gates'
    FROM spans a JOIN spans s ON a.trace_id = s.trace_id AND a.tool_call_id = s.tool_call_id
    WHERE a.operation = 'approval' AND s.operation IN ('tool_call', 'handoff')
    UNION ALL
    SELECT linked_trace_id, linked_span_id, trace_id, span_id, kind FROM span_links
    UNION ALL
    SELECT r.trace_id, r.span_id, d.trace_id, d.span_id, 'decided_by'
    FROM spans r JOIN spans d ON r.approval_request_id = d.approval_request_id
    WHERE r.approval_state = 'requested' AND d.approval_state <> 'requested'
    UNION ALL
    SELECT previous_trace_id, previous_root_span_id, trace_id, root_span_id, 'continues'
    FROM (
        SELECT trace_id, root_span_id,
               lag(trace_id) OVER w AS previous_trace_id,
               lag(root_span_id) OVER w AS previous_root_span_id
        FROM runs WHERE conversation_id IS NOT NULL
        WINDOW w AS (PARTITION BY conversation_id ORDER BY start_time, trace_id)
    ) WHERE previous_trace_id IS NOT NULL";

/// One row per approval gate (its request id, else the run and tool call it is about), with
/// its latest state; a gate may be requested in one run and decided in a later one.
const APPROVAL_GATES: &str = "SELECT
        coalesce(approval_request_id, trace_id || '/' || tool_call_id) AS gate,
        first_value(trace_id ORDER BY start_time) AS trace_id,
        first_value(tool_name ORDER BY start_time) FILTER (WHERE tool_name IS NOT NULL) AS tool_name,
        first_value(tool_call_id ORDER BY start_time) FILTER (WHERE tool_call_id IS NOT NULL) AS tool_call_id,
        first_value(agent_name ORDER BY start_time) FILTER (WHERE agent_name IS NOT NULL) AS agent_name,
        min(start_time) AS requested_at,
        max(end_time) AS decided_at,
        last_value(approval_state ORDER BY start_time) AS state,
        last_value(approver ORDER BY start_time) FILTER (WHERE approver IS NOT NULL) AS approver,
        first_value(policy_ref ORDER BY start_time) AS policy_ref,
        count(DISTINCT trace_id) AS runs
    FROM spans WHERE approval_state IS NOT NULL
    GROUP BY coalesce(approval_request_id, trace_id || '/' || tool_call_id)";

/// Tool calls that the policy in force (or the configured rule list) gates behind an approval
/// but that ran without a granted one: `no_approval`, or `approval_<state>` for a request that
/// was denied, timed out or never decided. The policy is the step's snapshot (ref and hash),
/// whose document any span of any run may have carried: the `document` of the snapshot's row
/// in `policies` (the view), or in a relation of the same columns that holds the documents of
/// the snapshots a few runs name, looked up without reading every policy document stored.
pub fn bypasses_over(policies: &str) -> String {
    BYPASSES.replace("{policies}", policies)
}

const BYPASSES: &str = "SELECT s.trace_id, s.span_id, s.start_time, s.agent_name, s.tool_name,
        s.tool_call_id, s.policy_ref, s.policy_hash, s.sandbox_id,
        CASE WHEN g.last_state IS NULL THEN 'no_approval' ELSE 'approval_' || g.last_state END AS reason
    FROM spans s
    LEFT JOIN {policies} p
        ON p.policy_ref = s.policy_ref AND coalesce(p.policy_hash, '') = coalesce(s.policy_hash, '')
    LEFT JOIN (
        SELECT trace_id, tool_call_id, bool_or(approval_state = 'granted') AS granted,
               last_value(approval_state ORDER BY start_time) AS last_state
        FROM spans
        WHERE approval_state IS NOT NULL AND tool_call_id IS NOT NULL AND operation = 'approval'
        GROUP BY trace_id, tool_call_id
    ) g ON g.trace_id = s.trace_id AND g.tool_call_id = s.tool_call_id
    WHERE s.operation = 'tool_call'
      AND requires_approval(p.document, s.tool_name)
      AND coalesce(s.approval_state, '') <> 'granted'
      AND NOT coalesce(g.granted, false)";

/// Consecutive runs of the same agent under different policy snapshots.
const POLICY_CHANGES: &str = "SELECT agent_name, previous_trace_id, trace_id,
        previous_policy_ref, previous_policy_hash, policy_ref, policy_hash, start_time AS changed_at
    FROM (
        SELECT agent_name, trace_id, start_time, policy_ref, policy_hash,
               lag(trace_id) OVER (PARTITION BY agent_name ORDER BY start_time, trace_id) AS previous_trace_id,
               lag(policy_ref) OVER (PARTITION BY agent_name ORDER BY start_time, trace_id) AS previous_policy_ref,
               lag(policy_hash) OVER (PARTITION BY agent_name ORDER BY start_time, trace_id) AS previous_policy_hash
        FROM runs WHERE agent_name IS NOT NULL
    )
    WHERE previous_trace_id IS NOT NULL
      AND (coalesce(policy_hash, '') <> coalesce(previous_policy_hash, '')
           OR coalesce(policy_ref, '') <> coalesce(previous_policy_ref, ''))";
