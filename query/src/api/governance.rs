//! Data lineage, governance and cost roll-ups, each a filtered read of a view:
//!
//! - `GET /api/v1/runs/{trace_id}/data`: what a run read and wrote (`data_access`).
//! - `GET /api/v1/data?uri=…[&match=prefix][&from=…&to=…]`: who touched a resource: the runs,
//!   agents and sandboxes, with every access.
//! - `GET /api/v1/governance/approvals[?state=…&from=…&to=…]`: approval gates and their outcome
//!   (`approval_gates`).
//! - `GET /api/v1/governance/bypasses[?from=…&to=…]`: gated tool calls that ran without a granted
//!   approval (`bypasses`).
//! - `GET /api/v1/governance/policy-changes[?agent=…]`: consecutive runs of an agent under
//!   different policy snapshots (`policy_changes`).
//! - `GET /api/v1/costs?by=run|agent|model|tenant|hour|day[&from=…&to=…]`: tokens and cost of
//!   model calls, grouped.

use std::collections::{BTreeSet, HashMap};

use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::Json;
use serde_json::{json, Value};

use super::{field, text, time_param, trace_param, Conditions};
use crate::http::tenant;
use crate::{Error, QueryEngine, Result};

/// `from`/`to` bounds on `column`, from the query string.
fn time_bounds(q: &HashMap<String, String>, column: &str, c: &mut Conditions) -> Result<()> {
    if let Some(v) = q.get("from") {
        c.add(&format!("{column} >= $?"), time_param("from", v)?);
    }
    if let Some(v) = q.get("to") {
        c.add(&format!("{column} < $?"), time_param("to", v)?);
    }
    Ok(())
}

pub async fn run_data(
    State(engine): State<QueryEngine>,
    headers: HeaderMap,
    Path(trace_id): Path<String>,
) -> Result<Json<Value>> {
    let tenant = tenant(&headers)?;
    let rows = engine
        .rows(
            &tenant,
            "SELECT * FROM data_access WHERE trace_id = $1 ORDER BY start_time, span_id, access, uri",
            vec![trace_param(&trace_id)?],
        )
        .await?;
    if rows.is_empty() {
        let known = engine
            .rows(
                &tenant,
                "SELECT 1 AS one FROM spans WHERE trace_id = $1 LIMIT 1",
                vec![trace_param(&trace_id)?],
            )
            .await?;
        if known.is_empty() {
            return Err(Error::NotFound(format!("run {trace_id} not found")));
        }
    }
    let set = |access: &str| -> BTreeSet<String> {
        rows.iter()
            .filter(|r| field(r, "access") == Some(access))
            .filter_map(|r| field(r, "uri").map(str::to_owned))
            .collect()
    };
    Ok(Json(json!({
        "trace_id": trace_id.to_ascii_lowercase(),
        "read": set("read"),
        "written": set("write"),
        "accesses": rows,
    })))
}

pub async fn data_users(
    State(engine): State<QueryEngine>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<Value>> {
    let tenant = tenant(&headers)?;
    let uri = q
        .get("uri")
        .filter(|u| !u.is_empty())
        .ok_or_else(|| Error::BadRequest("uri is required".into()))?;
    let mut c = Conditions::default();
    match q.get("match").map(String::as_str) {
        None | Some("exact") => c.add("uri = $?", text(uri)),
        Some("prefix") => c.add("starts_with(uri, $?)", text(uri)),
        Some(other) => {
            return Err(Error::BadRequest(format!(
                "match={other:?} is not exact or prefix"
            )))
        }
    }
    time_bounds(&q, "start_time", &mut c)?;
    let rows = c
        .select(
            &engine,
            &tenant,
            "data_access",
            "start_time, trace_id, span_id",
        )
        .await?;
    let distinct = |k: &str| -> BTreeSet<String> {
        rows.iter()
            .filter_map(|r| field(r, k).map(str::to_owned))
            .collect()
    };
    Ok(Json(json!({
        "uri": uri,
        "runs": distinct("trace_id"),
        "agents": distinct("agent_name"),
        "sandboxes": distinct("sandbox_id"),
        "pods": distinct("k8s_pod_name"),
        "accesses": rows,
    })))
}

pub async fn approvals(
    State(engine): State<QueryEngine>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<Value>> {
    let tenant = tenant(&headers)?;
    let mut c = Conditions::default();
    if let Some(state) = q.get("state") {
        c.add("state = $?", text(state));
    }
    time_bounds(&q, "requested_at", &mut c)?;
    let gates = c
        .select(&engine, &tenant, "approval_gates", "requested_at, gate")
        .await?;
    let mut counts: HashMap<String, u64> = HashMap::new();
    for g in &gates {
        *counts
            .entry(field(g, "state").unwrap_or("unknown").to_owned())
            .or_default() += 1;
    }
    Ok(Json(json!({ "counts": counts, "gates": gates })))
}

pub async fn bypasses(
    State(engine): State<QueryEngine>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<Value>> {
    let tenant = tenant(&headers)?;
    let mut c = Conditions::default();
    time_bounds(&q, "start_time", &mut c)?;
    let rows = c
        .select(&engine, &tenant, "bypasses", "start_time, span_id")
        .await?;
    Ok(Json(json!({ "bypasses": rows })))
}

pub async fn policy_changes(
    State(engine): State<QueryEngine>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<Value>> {
    let tenant = tenant(&headers)?;
    let mut c = Conditions::default();
    if let Some(agent) = q.get("agent") {
        c.add("agent_name = $?", text(agent));
    }
    let rows = c
        .select(&engine, &tenant, "policy_changes", "changed_at, trace_id")
        .await?;
    Ok(Json(json!({ "changes": rows })))
}

pub async fn costs(
    State(engine): State<QueryEngine>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<Value>> {
    let tenant = tenant(&headers)?;
    let by = q.get("by").map(String::as_str).unwrap_or("run");
    // Time buckets in time order, the rest by cost.
    let order = if matches!(by, "hour" | "day") {
        "key"
    } else {
        "cost DESC NULLS LAST, key"
    };
    let key = match by {
        "run" => "trace_id".to_owned(),
        "agent" => "agent_name".to_owned(),
        "model" => "coalesce(response_model, request_model)".to_owned(),
        "tenant" => format!("'{tenant}'"),
        "hour" => "date_trunc('hour', start_time)".to_owned(),
        "day" => "date_trunc('day', start_time)".to_owned(),
        other => {
            return Err(Error::BadRequest(format!(
                "by={other:?} is not run, agent, model, tenant, hour or day"
            )))
        }
    };
    let mut c = Conditions::default();
    time_bounds(&q, "start_time", &mut c)?;
    let sql = format!(
        "SELECT {key} AS key, count(*) AS calls,
                sum(input_tokens) AS input_tokens, sum(output_tokens) AS output_tokens,
                sum(cache_read_tokens) AS cache_read_tokens, sum(cache_write_tokens) AS cache_write_tokens,
                sum(reasoning_tokens) AS reasoning_tokens, sum(cost) AS cost,
                first_value(cost_currency) FILTER (WHERE cost_currency IS NOT NULL) AS currency
         FROM spans
         WHERE operation IN ('llm_call', 'embeddings') AND {}
         GROUP BY {key} ORDER BY {order}",
        c.clause()
    );
    let rows = engine.rows(&tenant, &sql, c.params).await?;
    Ok(Json(json!({ "by": by, "rows": rows })))
}
