//! The why-chain of one step (`GET /api/v1/runs/{trace_id}/steps/{span_id}/why`): the model
//! turn whose output requested it (matched by tool call id) with the context that turn had
//! (input messages, system instructions, tool definitions) and what it answered, the approvals
//! that gated it, the policy snapshot in force, and the chain of agents and steps above it up to
//! the root.

use std::collections::{HashMap, HashSet};

use axum::extract::State;
use axum::Json;
use serde_json::{json, Value};

use serde::Deserialize;

use super::extract::{ApiPath, Params, SpanId, TenantOf, TraceId};
use super::payloads;
use super::runs::{step_in, whole};
use super::step::{self, Step};
use crate::{QueryEngine, Result};

/// Whether `turn` (a model call) asked for `tool_call_id`.
fn requested(turn: &Step, tool_call_id: &str) -> bool {
    turn.operation.as_deref() == Some("llm_call")
        && turn
            .requested_tool_call_ids
            .as_ref()
            .is_some_and(|ids| ids.iter().any(|i| i == tool_call_id))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WhyParams {
    /// Include payload contents (default true); the step inspector, which loads large payloads
    /// only when opened, asks without.
    payloads: Option<bool>,
}

pub async fn why(
    State(engine): State<QueryEngine>,
    TenantOf(tenant): TenantOf,
    ApiPath((trace_id, span_id)): ApiPath<(TraceId, SpanId)>,
    Params(q): Params<WhyParams>,
) -> Result<Json<Value>> {
    let span_id = span_id.as_str().to_owned();
    // Every step of the run, with what resolves agents and tool calls and walks the chain; the
    // steps the answer shows are read whole below.
    let mut columns = super::inherit::RESOLVED_FROM.to_vec();
    columns.push("name");
    let (all, index) = step_in(&engine, &tenant, trace_id.as_str(), &span_id, &columns).await?;
    let step = &all[index];
    let start = step.start_time;
    let call_id = step.tool_call_id.as_deref();
    // The latest model turn before the step that asked for its tool call.
    let turn = call_id.and_then(|id| {
        all.iter()
            .rfind(|t| requested(t, id) && t.start_time <= start)
            .or_else(|| all.iter().find(|t| requested(t, id)))
    });
    let approvals: Vec<&Step> = call_id
        .map(|id| {
            all.iter()
                .filter(|a| {
                    a.operation.as_deref() == Some("approval")
                        && a.tool_call_id.as_deref() == Some(id)
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
                if let Some(id) = s.span_id.as_deref() {
                    m.entry(id).or_insert(i);
                }
                m
            });
    let mut seen: HashSet<usize> = HashSet::from([index]);
    let mut chain = Vec::new();
    let mut ancestor_cycle = false;
    let mut parent = step.parent_span_id.as_deref();
    while let Some(&a) = parent.and_then(|p| by_id.get(p)) {
        if !seen.insert(a) {
            ancestor_cycle = true;
            break;
        }
        let a = &all[a];
        chain.push(json!({
            "span_id": a.span_id,
            "name": a.name,
            "operation": a.operation,
            "agent_name": a.agent_name,
            "agent_id": a.agent_id,
        }));
        parent = a.parent_span_id.as_deref();
    }
    // The step, the turn and the approvals, whole (resolved as read with the run), with the
    // step's and the turn's payloads.
    let shown: Vec<&Step> = [step].into_iter().chain(turn).chain(approvals).collect();
    let mut whole = whole(&engine, &tenant, trace_id.as_str(), &shown).await?;
    let approvals = whole.split_off(1 + usize::from(turn.is_some()));
    if q.payloads.unwrap_or(true) {
        payloads::attach(&engine, &tenant, &mut whole).await?;
    }
    let mut detail = whole.into_iter();
    let step = detail.next().expect("the step");
    let turn = detail.next();
    // Decisions taken on the same approval requests in other runs (a resumed run), in one
    // query for all of them.
    let request_ids = step::distinct(&approvals, |a| &a.approval_request_id);
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
            "policy_ref": step.policy_ref,
            "policy_hash": step.policy_hash,
            "document": step.policy_document,
        },
        "ancestors": chain,
        "ancestor_cycle": ancestor_cycle,
    })))
}
