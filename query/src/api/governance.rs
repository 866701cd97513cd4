//! Data lineage, governance and cost roll-ups, each a filtered read of a view:
//!
//! - `GET /api/v1/runs/{trace_id}/data`: what a run read and wrote (`data_access`).
//! - `GET /api/v1/data?uri=…[&match=prefix][&from=…&to=…]`: who touched a resource: the runs,
//!   agents and sandboxes, with every access (the rows of `data_access`, found through the
//!   steps' own lists).
//! - `GET /api/v1/governance/approvals[?state=…&from=…&to=…]`: approval gates and their outcome
//!   (`approval_gates`).
//! - `GET /api/v1/governance/bypasses[?from=…&to=…]`: gated tool calls that ran without a granted
//!   approval (`bypasses`).
//! - `GET /api/v1/governance/policy-changes[?agent=…]`: consecutive runs of an agent under
//!   different policy snapshots (`policy_changes`).
//! - `GET /api/v1/costs?by=run|agent|model|tenant|hour|day[&from=…&to=…]`: tokens and cost of
//!   model calls, grouped.

use std::collections::{BTreeSet, HashMap};

use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::extract::{ApiPath, Params, TenantOf, Time, TraceId};
use super::step::{self, Step};
use super::{field, text, Conditions};
use crate::{Error, QueryEngine};

type Result<T> = crate::Result<T>;

/// `from`/`to` bounds on `column`.
fn time_bounds(from: Option<Time>, to: Option<Time>, column: &str, c: &mut Conditions) {
    if let Some(from) = from {
        c.add(&format!("{column} >= $?"), from.0);
    }
    if let Some(to) = to {
        c.add(&format!("{column} < $?"), to.0);
    }
}

pub async fn run_data(
    State(engine): State<QueryEngine>,
    TenantOf(tenant): TenantOf,
    ApiPath(trace_id): ApiPath<TraceId>,
) -> Result<Json<Value>> {
    let rows = engine
        .rows(
            &tenant,
            "SELECT * FROM data_access WHERE trace_id = $1 ORDER BY start_time, span_id, access, uri",
            vec![trace_id.param()],
        )
        .await?;
    if rows.is_empty() {
        let known = engine
            .rows(
                &tenant,
                "SELECT 1 AS one FROM spans WHERE trace_id = $1 LIMIT 1",
                vec![trace_id.param()],
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
        "trace_id": trace_id.as_str(),
        "read": set("read"),
        "written": set("write"),
        "accesses": rows,
    })))
}

#[derive(Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Match {
    Exact,
    Prefix,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataParams {
    uri: String,
    #[serde(rename = "match")]
    mode: Option<Match>,
    from: Option<Time>,
    to: Option<Time>,
}

/// The columns of a step that an access shows, and the lists it is found in.
const ACCESS_COLUMNS: &str = "trace_id, span_id, start_time, operation, agent_name, tool_name,
    sandbox_id, k8s_namespace, k8s_pod_name, data_read, data_written";

/// One read or write of a resource by a step: a row of the `data_access` view.
#[derive(Serialize)]
struct Access<'a> {
    #[serde(flatten)]
    step: &'a Step,
    access: &'static str,
    uri: &'a str,
}

/// Who touched a resource. The steps are found by their own lists (`array_has`, evaluated in
/// the scan) rather than by filtering the `data_access` view, which unnests every list of the
/// tenant before the filter can apply.
pub async fn data_users(
    State(engine): State<QueryEngine>,
    TenantOf(tenant): TenantOf,
    Params(q): Params<DataParams>,
) -> Result<Json<Value>> {
    let uri = q.uri.as_str();
    if uri.is_empty() {
        return Err(Error::BadRequest("uri must not be empty".into()));
    }
    let mut c = Conditions::default();
    let prefix = matches!(q.mode, Some(Match::Prefix));
    if prefix {
        c.sql
            .push("(cardinality(data_read) > 0 OR cardinality(data_written) > 0)".into());
    } else {
        c.add(
            "(array_has(data_read, $?) OR array_has(data_written, $?))",
            text(uri),
        );
    }
    time_bounds(q.from, q.to, "start_time", &mut c);
    let sql = format!("SELECT {ACCESS_COLUMNS} FROM spans WHERE {}", c.clause());
    let mut steps = engine
        .decoded(&tenant, &sql, c.params, Step::decode)
        .await?;
    steps.sort_by(|a, b| {
        (a.start_time, &a.trace_id, &a.span_id).cmp(&(b.start_time, &b.trace_id, &b.span_id))
    });
    let touches = |u: &str| if prefix { u.starts_with(uri) } else { u == uri };
    // (step, access, uri), in step order; the lists are taken out of the steps, which an
    // access shows without them.
    let mut found: Vec<(usize, &'static str, String)> = Vec::new();
    for (i, step) in steps.iter_mut().enumerate() {
        for (access, list) in [
            ("read", step.data_read.take()),
            ("write", step.data_written.take()),
        ] {
            found.extend(
                list.into_iter()
                    .flatten()
                    .filter(|u| touches(u))
                    .map(|u| (i, access, u)),
            );
        }
    }
    let accesses: Vec<Access<'_>> = found
        .iter()
        .map(|(i, access, uri)| Access {
            step: &steps[*i],
            access,
            uri,
        })
        .collect();
    let distinct = |key| step::distinct(accesses.iter().map(|a| a.step), key);
    Ok(Json(json!({
        "uri": uri,
        "runs": distinct(|s| &s.trace_id),
        "agents": distinct(|s| &s.agent_name),
        "sandboxes": distinct(|s| &s.sandbox_id),
        "pods": distinct(|s| &s.k8s_pod_name),
        "accesses": accesses,
    })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApprovalParams {
    state: Option<String>,
    from: Option<Time>,
    to: Option<Time>,
}

pub async fn approvals(
    State(engine): State<QueryEngine>,
    TenantOf(tenant): TenantOf,
    Params(q): Params<ApprovalParams>,
) -> Result<Json<Value>> {
    let mut c = Conditions::default();
    if let Some(state) = &q.state {
        c.add("state = $?", text(state));
    }
    time_bounds(q.from, q.to, "requested_at", &mut c);
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

/// Only `from` and `to`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BoundsParams {
    from: Option<Time>,
    to: Option<Time>,
}

pub async fn bypasses(
    State(engine): State<QueryEngine>,
    TenantOf(tenant): TenantOf,
    Params(q): Params<BoundsParams>,
) -> Result<Json<Value>> {
    let mut c = Conditions::default();
    time_bounds(q.from, q.to, "start_time", &mut c);
    let rows = c
        .select(&engine, &tenant, "bypasses", "start_time, span_id")
        .await?;
    Ok(Json(json!({ "bypasses": rows })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyParams {
    agent: Option<String>,
}

pub async fn policy_changes(
    State(engine): State<QueryEngine>,
    TenantOf(tenant): TenantOf,
    Params(q): Params<PolicyParams>,
) -> Result<Json<Value>> {
    let mut c = Conditions::default();
    if let Some(agent) = &q.agent {
        c.add("agent_name = $?", text(agent));
    }
    let rows = c
        .select(&engine, &tenant, "policy_changes", "changed_at, trace_id")
        .await?;
    Ok(Json(json!({ "changes": rows })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CostParams {
    by: Option<String>,
    from: Option<Time>,
    to: Option<Time>,
}

pub async fn costs(
    State(engine): State<QueryEngine>,
    TenantOf(tenant): TenantOf,
    Params(q): Params<CostParams>,
) -> Result<Json<Value>> {
    let by = q.by.as_deref().unwrap_or("run");
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
    time_bounds(q.from, q.to, "start_time", &mut c);
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
