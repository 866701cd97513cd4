//! The lineage graph of a run and beyond it (`GET /api/v1/runs/{trace_id}/lineage`): its steps
//! and the edges of the `lineage_edges` view — parent/child, model turn to requested tool call,
//! approval to gated call, span links by kind (retries, async hand-offs, resumes, …), approval
//! requests decided in later runs, and runs continuing a conversation — followed into other
//! runs breadth first. `depth` bounds the hops between runs (default 2, at most 10),
//! `max_nodes` the steps returned (default 2000, at most 20000); each run is visited once, so
//! cycles end.

use std::collections::{BTreeSet, HashMap, HashSet};

use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::Json;
use serde_json::{json, Value};

use super::{field, number, trace_param, Row};
use crate::http::tenant;
use crate::{Error, QueryEngine, Result};

fn key(row: &Row, trace: &str, span: &str) -> Option<(String, String)> {
    Some((field(row, trace)?.to_owned(), field(row, span)?.to_owned()))
}

pub async fn lineage(
    State(engine): State<QueryEngine>,
    headers: HeaderMap,
    Path(trace_id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<Value>> {
    let tenant = tenant(&headers)?;
    let depth = number(&q, "depth")?.unwrap_or(2).min(10);
    let max_nodes = number(&q, "max_nodes")?.unwrap_or(2000).clamp(1, 20_000);
    let start = cairn_schema::ids::parse_trace_id(&trace_id)?;
    let mut visited: HashSet<String> = HashSet::from([start.clone()]);
    let mut frontier = vec![start.clone()];
    let mut nodes: Vec<Row> = Vec::new();
    let mut node_keys: HashSet<(String, String)> = HashSet::new();
    let mut edges: BTreeSet<(String, String, String, String, String)> = BTreeSet::new();
    let mut runs: Vec<Row> = Vec::new();
    let mut truncated = false;
    for hop in 0..=depth {
        let mut next = Vec::new();
        for trace in &frontier {
            let param = || trace_param(trace);
            runs.extend(
                engine
                    .rows(&tenant, "SELECT trace_id, root_name, agent_name, conversation_id, start_time, status FROM runs WHERE trace_id = $1", vec![param()?])
                    .await?,
            );
            let spans = engine
                .rows(
                    &tenant,
                    "SELECT trace_id, span_id, parent_span_id, name, operation, agent_name, tool_name,
                            tool_call_id, status_code, approval_state, start_time, end_time
                     FROM spans WHERE trace_id = $1 ORDER BY start_time, span_id",
                    vec![param()?],
                )
                .await?;
            for s in spans {
                if nodes.len() >= max_nodes {
                    truncated = true;
                    break;
                }
                if let Some(k) = key(&s, "trace_id", "span_id") {
                    node_keys.insert(k);
                    nodes.push(s);
                }
            }
            let found = engine
                .rows(
                    &tenant,
                    "SELECT * FROM lineage_edges WHERE from_trace_id = $1 OR to_trace_id = $1",
                    vec![param()?],
                )
                .await?;
            for e in found {
                let (Some((ft, fs)), Some((tt, ts)), Some(kind)) = (
                    key(&e, "from_trace_id", "from_span_id"),
                    key(&e, "to_trace_id", "to_span_id"),
                    field(&e, "kind"),
                ) else {
                    continue;
                };
                for other in [&ft, &tt] {
                    if hop < depth && visited.insert(other.clone()) {
                        next.push(other.clone());
                    }
                }
                edges.insert((ft, fs, tt, ts, kind.to_owned()));
            }
        }
        if next.is_empty() || truncated {
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
        "truncated": truncated,
    })))
}
