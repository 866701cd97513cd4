//! The why-chain of one step (`GET /api/v1/runs/{trace_id}/steps/{span_id}/why`): the model
//! turn whose output requested it (matched by tool call id) with the context that turn had
//! (input messages, system instructions, tool definitions) and what it answered, the approvals
//! that gated it, the policy snapshot in force, and the chain of agents and steps above it up to
//! the root.

use std::collections::{BTreeSet, HashMap, HashSet};

use axum::extract::State;
use axum::Json;
use serde_json::{json, Value};

use super::extract::{ApiPath, SpanId, TenantOf, TraceId};
use super::runs::steps;
use super::{field, payloads, Row};
use crate::{Error, QueryEngine, Result};

/// Whether `turn` (a model call) asked for `tool_call_id`.
fn requested(turn: &Row, tool_call_id: &str) -> bool {
    field(turn, "operation") == Some("llm_call")
        && turn
            .get("requested_tool_call_ids")
            .and_then(Value::as_array)
            .is_some_and(|ids| ids.iter().any(|i| i.as_str() == Some(tool_call_id)))
}

pub async fn why(
    State(engine): State<QueryEngine>,
    TenantOf(tenant): TenantOf,
    ApiPath((trace_id, span_id)): ApiPath<(TraceId, SpanId)>,
) -> Result<Json<Value>> {
    let span_id = span_id.as_str().to_owned();
    let all = steps(&engine, &tenant, trace_id.as_str(), false).await?;
    let index = all
        .iter()
        .position(|s| field(s, "span_id") == Some(span_id.as_str()))
        .ok_or_else(|| Error::NotFound(format!("step {span_id} not in run {trace_id}")))?;
    let step = &all[index];
    let start = field(step, "start_time").unwrap_or_default();
    let call_id = field(step, "tool_call_id");
    // The latest model turn before the step that asked for its tool call.
    let turn = call_id.and_then(|id| {
        all.iter()
            .rfind(|t| requested(t, id) && field(t, "start_time").unwrap_or_default() <= start)
            .or_else(|| all.iter().find(|t| requested(t, id)))
    });
    let approvals: Vec<&Row> = call_id
        .map(|id| {
            all.iter()
                .filter(|a| {
                    field(a, "operation") == Some("approval")
                        && field(a, "tool_call_id") == Some(id)
                })
                .collect()
        })
        .unwrap_or_default();
    // Ancestors, nearest first, through an index by span id (the earliest step of a duplicated
    // id); a parent link back into the chain (a cycle in bad data) ends it.
    let by_id: HashMap<&str, usize> =
        all.iter()
            .enumerate()
            .fold(HashMap::with_capacity(all.len()), |mut m, (i, s)| {
                if let Some(id) = field(s, "span_id") {
                    m.entry(id).or_insert(i);
                }
                m
            });
    let mut seen: HashSet<usize> = HashSet::from([index]);
    let mut chain = Vec::new();
    let mut ancestor_cycle = false;
    let mut parent = field(step, "parent_span_id");
    while let Some(&a) = parent.and_then(|p| by_id.get(p)) {
        if !seen.insert(a) {
            ancestor_cycle = true;
            break;
        }
        let a = &all[a];
        chain.push(json!({
            "span_id": a.get("span_id"),
            "name": a.get("name"),
            "operation": a.get("operation"),
            "agent_name": a.get("agent_name"),
            "agent_id": a.get("agent_id"),
        }));
        parent = field(a, "parent_span_id");
    }
    let mut detail: Vec<Row> = vec![step.clone()];
    detail.extend(turn.cloned());
    let contents = payloads::contents(&engine, &tenant, &detail).await?;
    payloads::resolve(&mut detail, &contents);
    let mut detail = detail.into_iter();
    let step = detail.next().expect("the step");
    let turn = detail.next();
    // Decisions taken on the same approval requests in other runs (a resumed run), in one
    // query for all of them.
    let request_ids: Vec<String> = approvals
        .iter()
        .filter_map(|a| field(a, "approval_request_id").map(str::to_owned))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let gates = super::rows_in(&engine, &tenant, &request_ids, |list| {
        format!("SELECT * FROM approval_gates WHERE gate IN ({list}) ORDER BY requested_at, gate")
    })
    .await?;
    Ok(Json(json!({
        "step": step,
        "requested_by": turn,
        "approvals": approvals,
        "approval_gates": gates,
        "policy": {
            "policy_ref": step.get("policy_ref"),
            "policy_hash": step.get("policy_hash"),
            "document": step.get("policy_document"),
        },
        "ancestors": chain,
        "ancestor_cycle": ancestor_cycle,
    })))
}
