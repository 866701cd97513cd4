//! Views every session has, over the `spans` table.

/// `(name, SQL)` of each view, created in order.
pub const VIEWS: &[(&str, &str)] = &[(
    "runs",
    "SELECT
        trace_id, root_span_id, root_name, service_name, agent_name, start_time, end_time,
        CAST(end_time AS BIGINT) - CAST(start_time AS BIGINT) AS duration_ns,
        status, span_count, error_count
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
            count(*) FILTER (WHERE status_code = 'error') AS error_count
        FROM spans
        GROUP BY trace_id
    )",
)];
