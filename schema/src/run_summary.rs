//! Run summaries: what the `runs` view computes for each trace, stored beside the span files so
//! that listing and searching runs reads one row per trace and file instead of every span.
//!
//! ```text
//! spans/tenant=<t>/hour=<h>/<file>.parquet     spans
//! spans/tenant=<t>/hour=<h>/<file>.runs        their summary: one row per trace, by trace id
//! ```
//!
//! A summary holds the *partial* aggregates of [`PARTIAL`] over the spans of its one span file:
//! counts and sums, earliest start and latest end, and each first-value column with the key it
//! was chosen by, so that summaries of several files (a trace spread over hours, or over files of
//! one hour) combine into exactly what aggregating all the spans at once gives. Readers combine
//! summaries of the span files they see with [`PARTIAL`] computed on the fly for span files
//! that have none yet (fresh collector files), then aggregate once more per trace.
//!
//! A summary counts exactly when its span file does: it is written before the span file is
//! committed (before the manifest of a compaction output) or after it exists (for a file that
//! was written without one), and a reader lists the partition once and pairs each visible span
//! file with its summary ([`crate::compaction::PartitionFiles`]). A summary whose span file is
//! superseded, deleted or never committed is ignored, and compaction deletes it. A crash at any
//! moment therefore leaves every span counted once: through its file's summary, or directly.
//!
//! The columns of a summary are those [`PARTIAL`] produces; changing it means a new [`SUFFIX`].

use std::collections::HashSet;
use std::sync::LazyLock;

use object_store::ObjectMeta;

/// Name suffix of summaries.
pub const SUFFIX: &str = ".runs";
const DATA: &str = ".parquet";

/// The summary of the span file named `data` (`<file>.parquet` → `<file>.runs`).
pub fn summary_of(data: &str) -> Option<String> {
    Some(format!("{}{SUFFIX}", data.strip_suffix(DATA)?))
}

/// The span file a summary named `summary` summarises.
pub fn data_of(summary: &str) -> Option<String> {
    Some(format!("{}{DATA}", summary.strip_suffix(SUFFIX)?))
}

/// The span files among `data` without a summary among `summaries` (one partition's files).
pub fn unsummarised<'a>(data: &'a [ObjectMeta], summaries: &[ObjectMeta]) -> Vec<&'a ObjectMeta> {
    let summarised: HashSet<String> = (summaries.iter())
        .filter_map(|m| data_of(m.location.filename()?))
        .collect();
    (data.iter())
        .filter(|m| {
            !m.location
                .filename()
                .is_some_and(|n| summarised.contains(n))
        })
        .collect()
}

/// Columns of a run taken from its first span (by start) that has them; a partial keeps each
/// with the start of the span it came from (`<column>_at`), which chooses among partials.
const FIRST_SEEN: [&str; 6] = [
    "agent_name",
    "conversation_id",
    "user_id",
    "policy_ref",
    "policy_hash",
    "sandbox_id",
];

/// Aggregates whose partial values add up: (column of the view, its partial over spans).
const ADDED: [(&str, &str); 9] = [
    ("span_count", "count(*)"),
    (
        "error_count",
        "count(*) FILTER (WHERE status_code = 'error')",
    ),
    (
        "llm_calls",
        "count(*) FILTER (WHERE operation = 'llm_call')",
    ),
    (
        "tool_calls",
        "count(*) FILTER (WHERE operation IN ('tool_call', 'handoff'))",
    ),
    (
        "input_tokens",
        "sum(input_tokens) FILTER (WHERE operation IN ('llm_call', 'embeddings'))",
    ),
    (
        "output_tokens",
        "sum(output_tokens) FILTER (WHERE operation IN ('llm_call', 'embeddings'))",
    ),
    (
        "cache_read_tokens",
        "sum(cache_read_tokens) FILTER (WHERE operation IN ('llm_call', 'embeddings'))",
    ),
    (
        "reasoning_tokens",
        "sum(reasoning_tokens) FILTER (WHERE operation IN ('llm_call', 'embeddings'))",
    ),
    (
        "cost",
        "sum(cost) FILTER (WHERE operation IN ('llm_call', 'embeddings'))",
    ),
];

/// `each` of `items`, as a list of select items.
fn items<T>(items: &[T], each: impl Fn(&T) -> String) -> String {
    items
        .iter()
        .map(each)
        .collect::<Vec<_>>()
        .join(",\n        ")
}

/// Partial aggregates per trace over a table `spans` (any set of span files). The root is the
/// earliest span without a parent (else the earliest span); first values are chosen by start.
/// Token and cost totals count leaf model calls only.
pub static PARTIAL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT
        trace_id,
        first_value(span_id ORDER BY parent_span_id IS NOT NULL, start_time) AS root_span_id,
        first_value(name ORDER BY parent_span_id IS NOT NULL, start_time) AS root_name,
        first_value(service_name ORDER BY parent_span_id IS NOT NULL, start_time) AS service_name,
        bool_and(parent_span_id IS NOT NULL) AS root_has_parent,
        first_value(start_time ORDER BY parent_span_id IS NOT NULL, start_time) AS root_start,
        {first},
        min(start_time) AS start_time,
        max(end_time) AS end_time,
        bool_or(status_code = 'error') AS any_error,
        bool_or(status_code = 'ok') AS any_ok,
        {added}
    FROM spans
    GROUP BY trace_id",
        first = items(&FIRST_SEEN, |c| format!(
            "first_value({c} ORDER BY start_time) FILTER (WHERE {c} IS NOT NULL) AS {c},\n        \
             min(start_time) FILTER (WHERE {c} IS NOT NULL) AS {c}_at"
        )),
        added = items(&ADDED, |(c, partial)| format!("{partial} AS {c}")),
    )
});

/// One row per trace from partial aggregates in a table `run_parts` (rows of [`PARTIAL`]):
/// the `runs` view.
pub static FINAL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT
        trace_id, root_span_id, root_name, service_name, agent_name, conversation_id, user_id,
        start_time, end_time, CAST(end_time AS BIGINT) - CAST(start_time AS BIGINT) AS duration_ns,
        status, span_count, error_count, llm_calls, tool_calls,
        input_tokens, output_tokens, cache_read_tokens, reasoning_tokens, cost,
        policy_ref, policy_hash, sandbox_id
    FROM (
        SELECT
        trace_id,
        first_value(root_span_id ORDER BY root_has_parent, root_start) AS root_span_id,
        first_value(root_name ORDER BY root_has_parent, root_start) AS root_name,
        first_value(service_name ORDER BY root_has_parent, root_start) AS service_name,
        {first},
        min(start_time) AS start_time,
        max(end_time) AS end_time,
        CASE
            WHEN bool_or(any_error) THEN 'error'
            WHEN bool_or(any_ok) THEN 'ok'
            ELSE 'unset'
        END AS status,
        {added}
        FROM run_parts
        GROUP BY trace_id
    )",
        first = items(&FIRST_SEEN, |c| format!(
            "first_value({c} ORDER BY {c}_at) FILTER (WHERE {c} IS NOT NULL) AS {c}"
        )),
        added = items(&ADDED, |(c, _)| format!("sum({c}) AS {c}")),
    )
});

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(summary_of("c-1.parquet").as_deref(), Some("c-1.runs"));
        assert_eq!(data_of("c-1.runs").as_deref(), Some("c-1.parquet"));
        assert_eq!(summary_of("c-1.json"), None);
        assert_eq!(data_of("c-1.parquet"), None);
    }
}
