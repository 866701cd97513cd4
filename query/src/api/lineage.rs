//! Run-scoped lineage: the edges of a set of runs (those of the `lineage_edges` view with an end
//! in one of them), built from the runs' own steps, read once, and a few targeted lookups —
//! never a join over the tenant.
//!
//! - Within a run, in Rust from its steps: `child`, `requested` (a model turn to the tool call
//!   its output asked for, by tool call id) and `gates` (an approval to the call it decided).
//! - Span links: the runs' own links, and the links of the runs that point at them, found
//!   through the trace index's `linked_from` entries (the `span_links` view over the tenant when
//!   the index is not complete).
//! - `decided_by`: the steps sharing an approval request id with the runs' steps.
//! - `continues`: the runs of the conversations the runs' steps belong to, in start order.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use cairn_schema::tenant::Tenant;
use serde_json::Value;

use super::step::Step;
use super::{field, rows_in, Row};
use crate::{QueryEngine, Result};

/// An edge: from trace and span, to trace and span, kind.
pub type Edge = (String, String, String, String, String);

/// Columns a step needs for its edges besides those a lineage node shows.
pub const EDGE_COLUMNS: &[&str] = &[
    "requested_tool_call_ids",
    "approval_request_id",
    "conversation_id",
];

/// Clears the [`EDGE_COLUMNS`] of `step`.
pub fn clear_edge_columns(step: &mut Step) {
    step.requested_tool_call_ids = None;
    step.approval_request_id = None;
    step.conversation_id = None;
}

fn edge(from: (&str, &str), to: (&str, &str), kind: &str) -> Edge {
    (
        from.0.to_owned(),
        from.1.to_owned(),
        to.0.to_owned(),
        to.1.to_owned(),
        kind.to_owned(),
    )
}

/// Every edge with an end in `traces`, whose steps (all of them) are `steps`, sorted.
pub async fn edges(
    engine: &QueryEngine,
    tenant: &Tenant,
    traces: &[String],
    steps: &[Step],
) -> Result<Vec<Edge>> {
    let mut out = within(steps);
    out.extend(links(engine, tenant, traces).await?);
    out.extend(decisions(engine, tenant, steps).await?);
    out.extend(continuations(engine, tenant, steps).await?);
    let traces: BTreeSet<&str> = traces.iter().map(String::as_str).collect();
    out.retain(|e| traces.contains(e.0.as_str()) || traces.contains(e.2.as_str()));
    out.sort();
    out.dedup();
    Ok(out)
}

/// The `child`, `requested` and `gates` edges among `steps`.
pub fn within(steps: &[Step]) -> Vec<Edge> {
    let mut out = Vec::new();
    // Tool calls and hand-offs by (trace, tool call id).
    let mut calls: HashMap<(&str, &str), Vec<&str>> = HashMap::new();
    for s in steps {
        if let (Some(t), Some(id), Some(call), Some("tool_call" | "handoff")) = (
            s.trace_id.as_deref(),
            s.span_id.as_deref(),
            s.tool_call_id.as_deref(),
            s.operation.as_deref(),
        ) {
            calls.entry((t, call)).or_default().push(id);
        }
    }
    for s in steps {
        let (Some(t), Some(id)) = (s.trace_id.as_deref(), s.span_id.as_deref()) else {
            continue;
        };
        if let Some(parent) = s.parent_span_id.as_deref() {
            out.push(edge((t, parent), (t, id), "child"));
        }
        for call in s.requested_tool_call_ids.iter().flatten() {
            for to in calls.get(&(t, call.as_str())).into_iter().flatten() {
                out.push(edge((t, id), (t, to), "requested"));
            }
        }
        if s.operation.as_deref() == Some("approval") {
            if let Some(call) = s.tool_call_id.as_deref() {
                for to in calls.get(&(t, call)).into_iter().flatten() {
                    out.push(edge((t, id), (t, to), "gates"));
                }
            }
        }
    }
    out
}

/// Span link edges from and to `traces`.
async fn links(engine: &QueryEngine, tenant: &Tenant, traces: &[String]) -> Result<Vec<Edge>> {
    let set: BTreeSet<String> = traces.iter().cloned().collect();
    let of_traces = |list: &str| {
        format!(
            "SELECT trace_id, span_id, linked_trace_id, linked_span_id, kind
             FROM span_links WHERE trace_id IN ({list})"
        )
    };
    let mut rows = rows_in(engine, tenant, traces, of_traces).await?;
    match engine.linking_traces(tenant, &set).await? {
        Some(linking) => {
            let others: Vec<String> = linking.difference(&set).cloned().collect();
            rows.extend(rows_in(engine, tenant, &others, of_traces).await?);
        }
        None => rows.extend(
            rows_in(engine, tenant, traces, |list| {
                format!(
                    "SELECT trace_id, span_id, linked_trace_id, linked_span_id, kind
                     FROM span_links WHERE linked_trace_id IN ({list})"
                )
            })
            .await?,
        ),
    }
    Ok(rows
        .iter()
        .filter_map(|r| {
            Some(edge(
                (field(r, "linked_trace_id")?, field(r, "linked_span_id")?),
                (field(r, "trace_id")?, field(r, "span_id")?),
                field(r, "kind")?,
            ))
        })
        .collect())
}

/// `decided_by` edges of the approval requests that `steps` take part in.
async fn decisions(engine: &QueryEngine, tenant: &Tenant, steps: &[Step]) -> Result<Vec<Edge>> {
    let ids = super::step::distinct(steps, |s| &s.approval_request_id);
    let rows = rows_in(engine, tenant, &ids, |list| {
        format!(
            "SELECT trace_id, span_id, approval_state, approval_request_id
             FROM spans WHERE approval_request_id IN ({list})"
        )
    })
    .await?;
    let mut by_request: BTreeMap<&str, (Vec<&Row>, Vec<&Row>)> = BTreeMap::new();
    for r in &rows {
        let (Some(id), Some(state)) = (field(r, "approval_request_id"), field(r, "approval_state"))
        else {
            continue;
        };
        let (requests, decisions) = by_request.entry(id).or_default();
        if state == "requested" {
            requests.push(r);
        } else {
            decisions.push(r);
        }
    }
    fn key(r: &Row) -> Option<(&str, &str)> {
        Some((field(r, "trace_id")?, field(r, "span_id")?))
    }
    let mut out = Vec::new();
    for (requests, decisions) in by_request.values() {
        for r in requests.iter().filter_map(|r| key(r)) {
            for d in decisions.iter().filter_map(|d| key(d)) {
                out.push(edge(r, d, "decided_by"));
            }
        }
    }
    Ok(out)
}

/// `continues` edges between consecutive runs (by start time, then trace id) of the
/// conversations `steps` belong to.
async fn continuations(engine: &QueryEngine, tenant: &Tenant, steps: &[Step]) -> Result<Vec<Edge>> {
    let conversations = super::step::distinct(steps, |s| &s.conversation_id);
    let traces: Vec<String> = rows_in(engine, tenant, &conversations, |list| {
        format!("SELECT DISTINCT trace_id FROM spans WHERE conversation_id IN ({list})")
    })
    .await?
    .iter()
    .filter_map(|r| field(r, "trace_id").map(str::to_owned))
    .collect::<BTreeSet<_>>()
    .into_iter()
    .collect();
    let runs = rows_in(engine, tenant, &traces, |list| {
        format!(
            "SELECT trace_id, root_span_id, conversation_id,
                    CAST(start_time AS BIGINT) AS start_nanos
             FROM runs WHERE trace_id IN ({list})"
        )
    })
    .await?;
    let mut by_conversation: BTreeMap<&str, Vec<(i64, &str, &str)>> = BTreeMap::new();
    for r in &runs {
        if let (Some(c), Some(t), Some(root), Some(start)) = (
            field(r, "conversation_id"),
            field(r, "trace_id"),
            field(r, "root_span_id"),
            r.get("start_nanos").and_then(Value::as_i64),
        ) {
            by_conversation.entry(c).or_default().push((start, t, root));
        }
    }
    let mut out = Vec::new();
    for runs in by_conversation.values_mut() {
        runs.sort_unstable();
        for pair in runs.windows(2) {
            out.push(edge(
                (pair[0].1, pair[0].2),
                (pair[1].1, pair[1].2),
                "continues",
            ));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clearing_the_edge_columns_clears_each_of_them() {
        let mut step = Step {
            requested_tool_call_ids: Some(vec!["c".into()]),
            approval_request_id: Some("r".into()),
            conversation_id: Some("v".into()),
            span_id: Some("s".into()),
            ..Step::default()
        };
        clear_edge_columns(&mut step);
        for c in EDGE_COLUMNS {
            assert_eq!(step.get(c), None, "{c}");
        }
        assert_eq!(step.span_id.as_deref(), Some("s"));
    }
}
