//! Replay and run diff.
//!
//! - `GET /api/v1/runs/{trace_id}/replay`: `{"steps": […]}`, the decision path — model turns,
//!   tool calls, hand-offs, approvals, guardrails, retrieval and memory steps in start order,
//!   without attempts that a later step retried (`retry_of` links) — each with its normalised
//!   `operation` and exactly what went in and came out; a page of it (`offset`, `limit`), with
//!   the payloads of that page only.
//! - `GET /api/v1/runs/{trace_id}/replay/bundle`: the recorded model responses and tool results
//!   of the run, keyed so that a re-run can be served from them (`docs/replay.md`).
//! - `GET /api/v1/diff?left=…&right=…`: the two runs' decision paths compared step by step, and
//!   the first divergence (operation, agent, tool, model, input, output, status, policy,
//!   approval).

use std::collections::{HashMap, HashSet};

use axum::extract::State;
use axum::Json;
use cairn_schema::tenant::Tenant;
use serde::Deserialize;
use serde_json::{json, Value};

use super::extract::{ApiPath, Page, Params, TenantOf, TraceId};
use super::runs::{steps_with, whole};
use super::step::{self, Step};
use super::{field, payloads, trace_param};
use crate::{QueryEngine, Result};

/// Operations on the decision path.
const DECISIONS: &[&str] = &[
    "llm_call",
    "tool_call",
    "handoff",
    "approval",
    "guardrail",
    "retrieval",
    "embeddings",
    "memory",
];

/// Bundle format identifier.
pub const BUNDLE_FORMAT: &str = "cairn.replay.bundle/1";

/// The decision path of a run's steps: decisions in start order, minus retried attempts.
pub fn decision_path(steps: Vec<Step>, retried: &HashSet<String>) -> Vec<Step> {
    steps
        .into_iter()
        .filter(|s| {
            s.operation
                .as_deref()
                .is_some_and(|op| DECISIONS.contains(&op))
        })
        .filter(|s| s.span_id.as_ref().is_none_or(|id| !retried.contains(id)))
        .collect()
}

/// The decision path of `trace_id`, its steps read with `columns` (resolved: see
/// [`steps_with`]), and the links that retried some of them, read at once.
async fn path_with(
    engine: &QueryEngine,
    tenant: &Tenant,
    trace_id: &str,
    columns: &[&str],
) -> Result<Vec<Step>> {
    let (all, links) = tokio::try_join!(
        steps_with(engine, tenant, trace_id, columns),
        engine.rows(
            tenant,
            "SELECT linked_span_id FROM span_links
             WHERE trace_id = $1 AND linked_trace_id = $1 AND kind = 'retry_of'",
            vec![trace_param(trace_id)?],
        )
    )?;
    let retried: HashSet<String> = links
        .iter()
        .filter_map(|r| field(r, "linked_span_id").map(str::to_owned))
        .collect();
    Ok(decision_path(all, &retried))
}

/// The whole decision path of `trace_id`, every step with its payloads.
async fn path_of(engine: &QueryEngine, tenant: &Tenant, trace_id: &str) -> Result<Vec<Step>> {
    let mut path = path_with(engine, tenant, trace_id, step::COLUMNS).await?;
    payloads::attach(engine, tenant, &mut path).await?;
    Ok(path)
}

fn pick(step: &Step, keys: &[&str]) -> Value {
    Value::Object(
        keys.iter()
            .filter_map(|k| Some(((*k).to_owned(), step.get(k)?)))
            .filter(|(_, v)| !v.is_null())
            .collect(),
    )
}

/// One step of the replay: what went in and what came out, by operation.
fn replay_step(index: usize, s: &Step) -> Value {
    let op = s.operation.as_deref().unwrap_or_default();
    let (input, output) = match op {
        "llm_call" | "embeddings" => (
            pick(
                s,
                &[
                    "request_model",
                    "system_instructions",
                    "tool_definitions",
                    "input_messages",
                ],
            ),
            pick(
                s,
                &[
                    "response_model",
                    "output_messages",
                    "requested_tool_call_ids",
                    "input_tokens",
                    "output_tokens",
                ],
            ),
        ),
        "tool_call" | "handoff" | "retrieval" | "memory" => (
            pick(s, &["tool_name", "tool_call_id", "arguments", "data_read"]),
            pick(
                s,
                &["result", "data_written", "status_code", "status_message"],
            ),
        ),
        "approval" => (
            pick(s, &["tool_name", "tool_call_id", "approval_request_id"]),
            pick(s, &["approval_state", "approver"]),
        ),
        _ => (
            pick(s, &["input_messages", "arguments"]),
            pick(s, &["guardrail_verdict", "output_messages", "result"]),
        ),
    };
    let mut step = json!({
        "index": index,
        "span_id": s.span_id,
        "parent_span_id": s.parent_span_id,
        "operation": op,
        "name": s.name,
        "agent_name": s.agent_name,
        "start_time": s.start_time,
        "status_code": s.status_code,
        "policy_ref": s.policy_ref,
        "policy_hash": s.policy_hash,
        "input": input,
        "output": output,
    });
    // What per-step deltas are computed from, when known.
    if let (Value::Object(step), Value::Object(measures)) = (&mut step, pick(s, MEASURES)) {
        step.extend(measures);
    }
    step
}

/// The measures of a step that a replay step shows at its top level, when known.
const MEASURES: &[&str] = &["duration_ns", "input_tokens", "output_tokens", "cost"];

/// Steps of a replay page: default and maximum.
pub const DEFAULT_PAGE: usize = 100;
pub const MAX_PAGE: usize = 1000;

/// A page of the decision path (default [`DEFAULT_PAGE`] steps, at most [`MAX_PAGE`]).
pub async fn replay(
    State(engine): State<QueryEngine>,
    TenantOf(tenant): TenantOf,
    ApiPath(trace_id): ApiPath<TraceId>,
    Params(page): Params<Page>,
) -> Result<Json<Value>> {
    let (offset, limit) = page.bounds(DEFAULT_PAGE, MAX_PAGE)?;
    // The path from the columns that resolve and order it; the page's steps read whole.
    let path = path_with(
        &engine,
        &tenant,
        trace_id.as_str(),
        super::inherit::RESOLVED_FROM,
    )
    .await?;
    let total = path.len();
    let shown: Vec<&Step> = path.iter().skip(offset).take(limit).collect();
    let mut page = whole(&engine, &tenant, trace_id.as_str(), &shown).await?;
    payloads::attach(&engine, &tenant, &mut page).await?;
    let steps: Vec<Value> = page
        .iter()
        .enumerate()
        .map(|(i, s)| replay_step(offset + i, s))
        .collect();
    Ok(Json(json!({
        "trace_id": trace_id.as_str(),
        "steps": steps,
        "total_steps": total,
        "next_offset": super::next_offset(offset, limit, total),
    })))
}

/// JSON with object keys sorted and no whitespace: the form tool arguments are keyed by.
pub fn canonical(value: &Value) -> String {
    // serde_json's maps are ordered by key.
    serde_json::to_string(value).unwrap_or_default()
}

pub async fn bundle(
    State(engine): State<QueryEngine>,
    TenantOf(tenant): TenantOf,
    ApiPath(trace_id): ApiPath<TraceId>,
) -> Result<Json<Value>> {
    let path = path_of(&engine, &tenant, trace_id.as_str()).await?;
    let mut turns: HashMap<String, usize> = HashMap::new();
    let mut model_calls = Vec::new();
    let mut tool_results = Vec::new();
    let mut approvals = Vec::new();
    for s in &path {
        let agent = s.agent_name.as_deref().unwrap_or("agent").to_owned();
        match s.operation.as_deref().unwrap_or_default() {
            "llm_call" => {
                let turn = turns.entry(agent.clone()).or_default();
                *turn += 1;
                model_calls.push(json!({
                    "key": format!("{agent}#{turn}"),
                    "agent": agent,
                    "turn": *turn,
                    "span_id": s.span_id,
                    "request_model": s.request_model,
                    "response_model": s.response_model,
                    "system_instructions": s.system_instructions,
                    "input_messages": s.input_messages,
                    "output_messages": s.output_messages,
                    "usage": pick(s, &["input_tokens", "output_tokens", "cache_read_tokens", "reasoning_tokens"]),
                }));
            }
            "tool_call" | "handoff" | "retrieval" | "memory" => {
                let tool = s.tool_name.as_deref().unwrap_or_default();
                let arguments = s.arguments.clone().unwrap_or(Value::Null);
                tool_results.push(json!({
                    "key": format!("{tool}:{}", canonical(&arguments)),
                    "operation": s.operation,
                    "tool": tool,
                    "call_id": s.tool_call_id,
                    "span_id": s.span_id,
                    "arguments": arguments,
                    "result": s.result,
                    "status": if s.status_code.as_deref() == Some("error") { "error" } else { "ok" },
                    "error": s.status_message,
                }));
            }
            "approval" => approvals.push(json!({
                "key": format!("{}:{}", s.tool_name.as_deref().unwrap_or_default(), s.tool_call_id.as_deref().unwrap_or_default()),
                "tool": s.tool_name,
                "call_id": s.tool_call_id,
                "request_id": s.approval_request_id,
                "state": s.approval_state,
                "approver": s.approver,
            })),
            _ => {}
        }
    }
    let policy = path.iter().find(|s| s.policy_ref.is_some());
    Ok(Json(json!({
        "format": BUNDLE_FORMAT,
        "trace_id": trace_id.as_str(),
        "policy": policy.map(|p| json!({
            "policy_ref": p.policy_ref,
            "policy_hash": p.policy_hash,
            "document": p.policy_document,
        })),
        "model_calls": model_calls,
        "tool_results": tool_results,
        "approvals": approvals,
    })))
}

/// What two steps are compared on, each as the fields that decide it. Payloads compare by
/// their parsed content, so a re-run that serialises the same messages differently (key order,
/// spacing) does not diverge.
const ASPECTS: &[(&str, &[&str])] = &[
    ("operation", &["operation"]),
    ("agent", &["agent_name"]),
    ("tool", &["tool_name"]),
    ("model", &["request_model", "response_model"]),
    (
        "input",
        &["input_messages", "system_instructions", "arguments"],
    ),
    ("output", &["output_messages", "result"]),
    ("status", &["status_code"]),
    ("policy", &["policy_hash", "policy_ref"]),
    ("approval", &["approval_state"]),
];

/// The aspects in which two steps (with payloads resolved) differ.
fn differences(a: &Step, b: &Step) -> Vec<&'static str> {
    ASPECTS
        .iter()
        .filter(|(_, cols)| cols.iter().any(|c| a.get(c) != b.get(c)))
        .map(|(name, _)| *name)
        .collect()
}

/// What lines up two steps of different runs: the operation, the tool (else the model) and the
/// agent.
fn signature(s: &Step) -> (Option<&str>, Option<&str>, Option<&str>) {
    let what = (s.tool_name.as_deref())
        .or(s.request_model.as_deref())
        .or(s.response_model.as_deref());
    (s.operation.as_deref(), what, s.agent_name.as_deref())
}

/// How long aligning two paths may take; past it the alignment is still complete, but a
/// common subsequence may be cut into gaps.
const ALIGN_DEADLINE: std::time::Duration = std::time::Duration::from_secs(2);

/// The two paths aligned by a longest common subsequence of their steps' [`signature`]s: each
/// row a step of both (`same` when they do not differ at all) or of one side only (a gap on the
/// other, `same` false), in path order.
pub fn align(left: &[Step], right: &[Step]) -> Vec<Value> {
    let (a, b): (Vec<_>, Vec<_>) = (
        left.iter().map(signature).collect(),
        right.iter().map(signature).collect(),
    );
    let deadline = std::time::Instant::now() + ALIGN_DEADLINE;
    let ops =
        similar::capture_diff_slices_deadline(similar::Algorithm::Myers, &a, &b, Some(deadline));
    let mut out = Vec::with_capacity(left.len().max(right.len()));
    for op in ops {
        let (tag, lefts, rights) = op.as_tag_tuple();
        if tag == similar::DiffTag::Equal {
            for (i, j) in lefts.zip(rights) {
                let same = differences(&left[i], &right[j]).is_empty();
                out.push(json!({"left": i, "right": j, "same": same}));
            }
        } else {
            // A replaced run: the left side's steps, then the right side's.
            out.extend(lefts.map(|i| json!({"left": i, "right": null, "same": false})));
            out.extend(rights.map(|j| json!({"left": null, "right": j, "same": false})));
        }
    }
    out
}

/// Compares two decision paths step by step, and aligns them ([`align`]).
pub fn diff(left: &[Step], right: &[Step]) -> Value {
    let mut out = first_divergence(left, right);
    out["aligned"] = Value::Array(align(left, right));
    out
}

/// Compares two decision paths index by index, up to the first divergence.
fn first_divergence(left: &[Step], right: &[Step]) -> Value {
    let summary = |s: &Step| {
        pick(
            s,
            &[
                "span_id",
                "operation",
                "name",
                "agent_name",
                "tool_name",
                "request_model",
                "status_code",
                "policy_ref",
            ],
        )
    };
    for i in 0..left.len().max(right.len()) {
        let (a, b) = (left.get(i), right.get(i));
        let fields = match (a, b) {
            (Some(a), Some(b)) => differences(a, b),
            _ => vec!["missing"],
        };
        if !fields.is_empty() {
            return json!({
                "identical": false,
                "left_steps": left.len(),
                "right_steps": right.len(),
                "first_divergence": {
                    "index": i,
                    "fields": fields,
                    "left": a.map(summary),
                    "right": b.map(summary),
                },
            });
        }
    }
    json!({
        "identical": true,
        "left_steps": left.len(),
        "right_steps": right.len(),
        "first_divergence": null,
    })
}

/// The two runs compared.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiffParams {
    left: TraceId,
    right: TraceId,
}

pub async fn diff_runs(
    State(engine): State<QueryEngine>,
    TenantOf(tenant): TenantOf,
    Params(q): Params<DiffParams>,
) -> Result<Json<Value>> {
    let left = path_of(&engine, &tenant, q.left.as_str()).await?;
    let right = path_of(&engine, &tenant, q.right.as_str()).await?;
    let mut out = diff(&left, &right);
    if let Some(d) = out.get_mut("first_divergence").filter(|d| !d.is_null()) {
        // What each side did at the divergence.
        let i = d["index"].as_u64().unwrap_or_default() as usize;
        d["left_step"] = left.get(i).map_or(Value::Null, |s| replay_step(i, s));
        d["right_step"] = right.get(i).map_or(Value::Null, |s| replay_step(i, s));
    }
    Ok(Json(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(operation: &str, tool: Option<&str>, model: Option<&str>, status: &str) -> Step {
        Step {
            operation: Some(operation.into()),
            tool_name: tool.map(str::to_owned),
            request_model: model.map(str::to_owned),
            agent_name: Some("triage".into()),
            status_code: Some(status.into()),
            ..Step::default()
        }
    }

    /// `aligned` as (left, right, same).
    fn aligned(left: &[Step], right: &[Step]) -> Vec<(Option<u64>, Option<u64>, bool)> {
        align(left, right)
            .iter()
            .map(|r| {
                (
                    r["left"].as_u64(),
                    r["right"].as_u64(),
                    r["same"].as_bool().unwrap(),
                )
            })
            .collect()
    }

    #[test]
    fn paths_align_by_a_longest_common_subsequence_of_signatures() {
        let model = step("llm_call", None, Some("gpt-4o"), "ok");
        let lookup = step("tool_call", Some("lookup"), None, "ok");
        let refund = step("tool_call", Some("refund"), None, "ok");
        let failed_refund = step("tool_call", Some("refund"), None, "error");
        let email = step("tool_call", Some("email"), None, "ok");
        // The right side inserts a lookup, its refund failed, and it sent no email.
        let left = [model.clone(), refund.clone(), model.clone(), email];
        let right = [model.clone(), lookup, failed_refund, model];
        assert_eq!(
            aligned(&left, &right),
            [
                (Some(0), Some(0), true),
                (None, Some(1), false),
                (Some(1), Some(2), false),
                (Some(2), Some(3), true),
                (Some(3), None, false),
            ]
        );
        assert_eq!(aligned(&left, &left).len(), 4);
        assert!(aligned(&left, &left).iter().all(|r| r.2));
        assert!(align(&[], &[]).is_empty());
        assert_eq!(aligned(&[], &[refund]), [(None, Some(0), false)]);
    }
}
