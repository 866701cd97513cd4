//! The lineage graph of a run and beyond it (`GET /api/v1/runs/{trace_id}/lineage`): its steps
//! and the edges of the `lineage_edges` view — parent/child, model turn to requested tool call,
//! approval to gated call, span links by kind (retries, async hand-offs, resumes, …), approval
//! requests decided in later runs, and runs continuing a conversation — followed into other
//! runs breadth first. The edges are those of the `lineage_edges` view, found without it.
//!
//! Both parameters bound the work, not only the answer:
//!
//! - `depth` (default 2, at most 10) bounds the hops between runs;
//! - `max_nodes` (default 2000, at most 20000) bounds the steps returned and the runs looked up:
//!   each run looked up is charged one unit of the budget (a run that exists has at least one
//!   step), runs beyond the budget are not looked up, and no query is issued once it is spent;
//!   it also bounds the edges read, to [`EDGES_PER_NODE`] per unit (in edge order).
//!
//! Each hop reads the steps of the runs it reaches once (looked up together by trace id,
//! [`super::MAX_IN_LIST`] per query, through the trace index), in trace id, start time and span
//! id order, returns at most the budget left of them, builds the runs' edges from them and a few
//! targeted lookups ([`super::lineage`]), and reads their `runs` rows. Each run is
//! visited once, so cycles end. `truncated` says that a budget cut the graph short;
//! `runs_beyond_bounds` counts the linked runs that were not looked up (by depth or budget);
//! `edges_beyond_bounds` the edges found with an end outside the returned steps.

use std::collections::{BTreeSet, HashSet};

use axum::extract::State;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::extract::{ApiPath, Params, TenantOf, TraceId};
use super::step::Step;
use super::{in_list, lineage, rows_in, Row, MAX_IN_LIST};
use crate::{Error, QueryEngine, Result};

/// Hops between runs: default and maximum.
pub const DEFAULT_DEPTH: usize = 2;
pub const MAX_DEPTH: usize = 10;
/// Steps returned (and runs looked up): default and maximum.
pub const DEFAULT_MAX_NODES: usize = 2000;
pub const MAX_NODES: usize = 20_000;
/// Edges read per step of the budget: at most `EDGES_PER_NODE * max_nodes` edges are read.
pub const EDGES_PER_NODE: usize = 10;

/// The columns of a node (a step).
const NODE_COLUMNS: &[&str] = &[
    "trace_id",
    "span_id",
    "parent_span_id",
    "name",
    "operation",
    "agent_name",
    "tool_name",
    "tool_call_id",
    "status_code",
    "approval_state",
    "start_time",
    "end_time",
];

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LineageParams {
    depth: Option<usize>,
    max_nodes: Option<usize>,
}

pub async fn lineage(
    State(engine): State<QueryEngine>,
    TenantOf(tenant): TenantOf,
    ApiPath(trace_id): ApiPath<TraceId>,
    Params(q): Params<LineageParams>,
) -> Result<Json<Value>> {
    let depth = q.depth.unwrap_or(DEFAULT_DEPTH).min(MAX_DEPTH);
    let max_nodes = q.max_nodes.unwrap_or(DEFAULT_MAX_NODES).clamp(1, MAX_NODES);
    let start = trace_id.as_str().to_owned();
    let mut visited: HashSet<String> = HashSet::from([start.clone()]);
    let mut frontier = vec![start.clone()];
    let mut looked_up = 0;
    let mut nodes: Vec<Step> = Vec::new();
    let mut node_keys: HashSet<(String, String)> = HashSet::new();
    let mut edges: BTreeSet<(String, String, String, String, String)> = BTreeSet::new();
    let mut runs: Vec<Row> = Vec::new();
    // Linked runs found but not looked up.
    let mut beyond: HashSet<String> = HashSet::new();
    let mut truncated = false;
    let edge_budget = EDGES_PER_NODE * max_nodes;
    let mut edges_read = 0;
    for hop in 0..=depth {
        // The runs of this hop that the budget allows, in trace id order.
        frontier.sort_unstable();
        let allowed = (max_nodes - looked_up).min(max_nodes - nodes.len());
        if frontier.len() > allowed {
            truncated = true;
            beyond.extend(frontier.drain(allowed..));
        }
        if frontier.is_empty() {
            break;
        }
        // Their steps, chunk by chunk in trace id order (each sorted), while the budget lasts;
        // runs of chunks after the budget is spent are not looked up. The steps also give the
        // runs' edges, so a run's steps are read whole (up to the edge budget's worth).
        let budget = max_nodes - nodes.len();
        let mut spans = Vec::new();
        let mut chunks = 0;
        for chunk in frontier.chunks(MAX_IN_LIST) {
            chunks += 1;
            let (list, params) = in_list(chunk);
            let sql = format!(
                "SELECT {}, {} FROM spans WHERE trace_id IN ({list})
                 ORDER BY trace_id, start_time, span_id LIMIT {}",
                NODE_COLUMNS.join(", "),
                lineage::EDGE_COLUMNS.join(", "),
                edge_budget.max(budget) - spans.len() + 1
            );
            spans.extend(engine.decoded(&tenant, &sql, params, Step::decode).await?);
            if spans.len() > budget {
                truncated = true;
                break;
            }
        }
        if hop == 0 && spans.is_empty() {
            return Err(Error::NotFound(format!("run {trace_id} not found")));
        }
        let looked = (chunks * MAX_IN_LIST).min(frontier.len());
        beyond.extend(frontier.drain(looked..));
        looked_up += frontier.len();
        // Their edges, at most the edge budget left (in edge order, so a cut is deterministic).
        let left = edge_budget - edges_read;
        let mut found = lineage::edges(&engine, &tenant, &frontier, &spans).await?;
        if found.len() > left {
            truncated = true;
            found.truncate(left);
        }
        edges_read += found.len();
        let mut with_steps: Vec<String> = Vec::new();
        for mut s in spans.into_iter().take(budget) {
            // A node shows its step, not the columns read for its edges.
            lineage::clear_edge_columns(&mut s);
            if let (Some(t), Some(id)) = (s.trace_id.clone(), s.span_id.clone()) {
                let k = (t, id);
                if with_steps.last() != Some(&k.0) {
                    with_steps.push(k.0.clone());
                }
                node_keys.insert(k);
                nodes.push(s);
            }
        }
        runs.extend(
            rows_in(&engine, &tenant, &with_steps, |list| {
                format!(
                    "SELECT trace_id, root_name, agent_name, conversation_id, start_time, status
                     FROM runs WHERE trace_id IN ({list}) ORDER BY trace_id"
                )
            })
            .await?,
        );
        let mut next = Vec::new();
        for (ft, fs, tt, ts, kind) in found {
            for other in [&ft, &tt] {
                if visited.contains(other.as_str()) {
                    continue;
                }
                if hop < depth && !truncated {
                    visited.insert(other.clone());
                    next.push(other.clone());
                } else {
                    beyond.insert(other.clone());
                }
            }
            edges.insert((ft, fs, tt, ts, kind));
        }
        if truncated {
            beyond.extend(next);
            break;
        }
        frontier = next;
    }
    if nodes.is_empty() {
        return Err(Error::NotFound(format!("run {trace_id} not found")));
    }
    let mut omitted = 0;
    let edges: Vec<Value> = edges
        .into_iter()
        .filter(|(ft, fs, tt, ts, _)| {
            let inside = node_keys.contains(&(ft.clone(), fs.clone()))
                && node_keys.contains(&(tt.clone(), ts.clone()));
            omitted += usize::from(!inside);
            inside
        })
        .map(|(ft, fs, tt, ts, kind)| {
            json!({"from_trace_id": ft, "from_span_id": fs, "to_trace_id": tt, "to_span_id": ts, "kind": kind})
        })
        .collect();
    Ok(Json(json!({
        "trace_id": start,
        "runs": runs,
        "nodes": nodes,
        "edges": edges,
        "edges_beyond_bounds": omitted,
        "runs_beyond_bounds": beyond.len(),
        "truncated": truncated,
    })))
}
