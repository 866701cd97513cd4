//! The run trail (`GET /api/v1/runs/{trace_id}`): every step of a run as a tree, with timing,
//! status, model, tool, tokens, cost, sandbox and pod, policy and approval, and payloads when
//! `?payloads=true`. Run search (`GET /api/v1/runs?…`): runs filtered by time, agent, tool,
//! model, sandbox, status, cost, approval state, data touched and attributes, newest first,
//! paginated by cursor.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::Json;
use datafusion::common::ScalarValue;
use serde_json::{json, Value};

use super::{field, payloads, text, time_param, trace_param, Conditions, Row};
use crate::http::tenant;
use crate::{Error, QueryEngine, Result};

/// The columns of a step.
pub const STEP_COLUMNS: &str = "trace_id, span_id, parent_span_id, name, operation, start_time,
    end_time, duration_ns, status_code, status_message, service_name, agent_name, agent_id,
    conversation_id, tool_name, tool_call_id, tool_type, provider, request_model, response_model,
    input_tokens, output_tokens, cache_read_tokens, cache_write_tokens, reasoning_tokens,
    rollup_input_tokens, rollup_output_tokens, cost, cost_currency, sandbox_id, k8s_namespace,
    k8s_pod_name, k8s_node_name, k8s_service_account, policy_ref, policy_hash, guardrail_verdict,
    approval_state, approver, approval_request_id, data_read, data_written,
    requested_tool_call_ids, input_message_refs, output_message_refs, system_instructions_ref,
    tool_definitions_ref, tool_arguments_ref, tool_result_ref, policy_document_ref";

/// The steps of a run in start order (optionally with payload contents).
pub async fn steps(
    engine: &QueryEngine,
    tenant: &cairn_schema::tenant::Tenant,
    trace_id: &str,
    with_payloads: bool,
) -> Result<Vec<Row>> {
    let sql = format!(
        "SELECT {STEP_COLUMNS} FROM spans WHERE trace_id = $1 ORDER BY start_time, span_id"
    );
    let mut rows = engine
        .rows(tenant, &sql, vec![trace_param(trace_id)?])
        .await?;
    if rows.is_empty() {
        return Err(Error::NotFound(format!("run {trace_id} not found")));
    }
    if with_payloads {
        let contents = payloads::contents(engine, tenant, &rows).await?;
        payloads::resolve(&mut rows, &contents);
    }
    Ok(rows)
}

/// Nests `steps` under their parents; steps whose parent is not in the run are roots.
pub fn tree(steps: Vec<Row>) -> Vec<Value> {
    let ids: HashMap<String, usize> = steps
        .iter()
        .enumerate()
        .filter_map(|(i, s)| Some((field(s, "span_id")?.to_owned(), i)))
        .collect();
    let mut children: Vec<Vec<usize>> = vec![Vec::new(); steps.len()];
    let mut roots = Vec::new();
    for (i, s) in steps.iter().enumerate() {
        match field(s, "parent_span_id").and_then(|p| ids.get(p)) {
            Some(&p) if p != i => children[p].push(i),
            _ => roots.push(i),
        }
    }
    let mut slots: Vec<Option<Row>> = steps.into_iter().map(Some).collect();
    // Children start after their parents, so building from the last step up sees each
    // child complete before its parent takes it.
    let mut built: Vec<Option<Value>> = vec![None; slots.len()];
    for i in (0..slots.len()).rev() {
        let mut row = slots[i].take().expect("each step once");
        let kids: Vec<Value> = children[i]
            .iter()
            .filter_map(|c| built[*c].take())
            .collect();
        if !kids.is_empty() {
            row.insert("children".into(), Value::Array(kids));
        }
        built[i] = Some(Value::Object(row));
    }
    roots.iter().filter_map(|r| built[*r].take()).collect()
}

pub async fn trail(
    State(engine): State<QueryEngine>,
    headers: HeaderMap,
    Path(trace_id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<Value>> {
    let tenant = tenant(&headers)?;
    let payloads = super::number::<bool>(&q, "payloads")?.unwrap_or(false);
    let steps = steps(&engine, &tenant, &trace_id, payloads).await?;
    let run = engine
        .rows(
            &tenant,
            "SELECT * FROM runs WHERE trace_id = $1",
            vec![trace_param(&trace_id)?],
        )
        .await?;
    Ok(Json(json!({
        "run": run.into_iter().next(),
        "steps": tree(steps),
    })))
}

const PAGE: usize = 100;
const MAX_PAGE: usize = 1000;

/// Run search. Filters: `from`, `to` (RFC 3339, on span start), `agent`, `tool`, `model`
/// (request or response), `sandbox`, `pod`, `status` (`ok`, `error`, `unset`), `min_cost`,
/// `approval` (a state any step had), `data` (a URI any step read or wrote), `conversation`,
/// `attr.<key>=<value>` (a span attribute); `limit` (default 100) and `cursor` (from the
/// previous page).
pub async fn search(
    State(engine): State<QueryEngine>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<Value>> {
    let tenant = tenant(&headers)?;
    let mut span = Conditions::default();
    for (key, value) in &q {
        match key.as_str() {
            "from" => span.add("start_time >= $?", time_param(key, value)?),
            "to" => span.add("start_time < $?", time_param(key, value)?),
            "agent" => span.add("agent_name = $?", text(value)),
            "tool" => span.add("tool_name = $?", text(value)),
            "model" => span.add("(request_model = $? OR response_model = $?)", text(value)),
            "sandbox" => span.add("sandbox_id = $?", text(value)),
            "pod" => span.add("k8s_pod_name = $?", text(value)),
            "approval" => span.add("approval_state = $?", text(value)),
            "conversation" => span.add("conversation_id = $?", text(value)),
            "data" => span.add(
                "(array_has(data_read, $?) OR array_has(data_written, $?))",
                text(value),
            ),
            k if k.starts_with("attr.") => {
                let name = &k["attr.".len()..];
                if name.is_empty()
                    || !name
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"._-/".contains(&b))
                {
                    return Err(Error::BadRequest(format!(
                        "attribute name {name:?} is not valid"
                    )));
                }
                span.add(&format!("attributes['{name}'] = $?"), text(value));
            }
            "status" | "min_cost" | "limit" | "cursor" => {}
            other => return Err(Error::BadRequest(format!("unknown filter {other:?}"))),
        }
    }
    let mut run = Conditions {
        sql: Vec::new(),
        params: span.params.clone(),
    };
    if let Some(status) = q.get("status") {
        run.add("status = $?", text(status));
    }
    if let Some(min) = q.get("min_cost") {
        let v: f64 = min
            .parse()
            .map_err(|_| Error::BadRequest(format!("min_cost={min:?} is not a number")))?;
        run.add("cost >= $?", ScalarValue::Float64(Some(v)));
    }
    if let Some(cursor) = q.get("cursor") {
        let (nanos, id) = cursor
            .split_once('.')
            .and_then(|(n, id)| Some((n.parse::<i64>().ok()?, id)))
            .ok_or_else(|| Error::BadRequest(format!("cursor {cursor:?} is not valid")))?;
        let n = run.param(ScalarValue::Int64(Some(nanos)));
        let t = run.param(text(id));
        run.sql.push(format!(
            "(CAST(start_time AS BIGINT) < {n} OR (CAST(start_time AS BIGINT) = {n} AND trace_id < {t}))"
        ));
    }
    let limit = match q.get("limit") {
        None => PAGE,
        Some(l) => l
            .parse::<usize>()
            .ok()
            .filter(|l| (1..=MAX_PAGE).contains(l))
            .ok_or_else(|| Error::BadRequest(format!("limit must be 1 to {MAX_PAGE}")))?,
    };
    let sql = format!(
        "SELECT *, CAST(start_time AS BIGINT) AS start_nanos FROM runs
         WHERE trace_id IN (SELECT DISTINCT trace_id FROM spans WHERE {})
           AND {}
         ORDER BY start_time DESC, trace_id DESC LIMIT {}",
        span.clause(),
        run.clause(),
        limit + 1
    );
    let mut rows = engine.rows(&tenant, &sql, run.params).await?;
    let next = (rows.len() > limit).then(|| {
        rows.truncate(limit);
        let last = rows.last().expect("a full page");
        format!(
            "{}.{}",
            last.get("start_nanos")
                .and_then(Value::as_i64)
                .unwrap_or_default(),
            field(last, "trace_id").unwrap_or_default()
        )
    });
    for r in rows.iter_mut() {
        r.remove("start_nanos");
    }
    Ok(Json(json!({ "runs": rows, "next_cursor": next })))
}
