//! What the lineage explorer shows of one run, each view in one request:
//!
//! - `GET /api/v1/runs/{trace_id}/steps?offset=…&limit=…`: the waterfall: a page of the run's
//!   steps, flat, in start order, each with only the fields a timeline draws ([`WATERFALL`]),
//!   with the run's `runs` row and its step count.
//! - `GET /api/v1/runs/{trace_id}/steps/{span_id}`: the step inspector: the step's whole row (as
//!   the trail shows it, without payload contents), its payloads described (kind and size, the
//!   content inline up to [`INLINE_BYTES`]), its policy snapshot with the one in force for its
//!   agent before the run, its links to steps of other runs, and why it is a bypass (its row of
//!   the `bypasses` view), if it is one.
//! - `GET /api/v1/runs/{trace_id}/payloads/{hash}`: one payload the run refers to.
//! - `GET /api/v1/runs/{trace_id}/search?q=…`: the steps of the run whose text holds `q`, with
//!   where it was found.
//!
//! Each reads the run through the trace index (its steps, with the columns the view needs) and
//! its payloads through the payload lookup of the trace API, so a view of a step of a
//! 10,000-step run costs about what the same view of a short run does.

use std::collections::{HashMap, HashSet};

use arrow::array::{Array, AsArray};
use axum::extract::State;
use axum::Json;
use cairn_schema::tenant::Tenant;
use datafusion::common::ScalarValue;
use datafusion::prelude::{col, lit};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::extract::{ApiPath, Page, Params, PayloadHash, SpanId, TenantOf, TraceId};
use super::payloads::{self, Described};
use super::runs::{resolved_rows, rows_of, run_row, step_in, steps_with};
use super::step::{self, Column, Step, Timestamp};
use super::{field, text, Row};
use crate::{Error, QueryEngine, Result};

/// The fields of a waterfall step.
pub const WATERFALL: &[&str] = &[
    "span_id",
    "parent_span_id",
    "name",
    "operation",
    "start_time",
    "end_time",
    "duration_ns",
    "status_code",
    "status_message",
    "agent_name",
    "tool_name",
    "tool_call_id",
    "request_model",
    "response_model",
    "input_tokens",
    "output_tokens",
    "cost",
    "approval_state",
    "sandbox_id",
    "k8s_pod_name",
    "requested_tool_call_ids",
    "data_read",
    "data_written",
];

/// Steps of a waterfall page: default and maximum.
pub const DEFAULT_STEPS: usize = 20_000;
pub const MAX_STEPS: usize = 100_000;

/// A payload's content is shown in the step inspector up to this size (bytes); a larger one is
/// read with the payload endpoint.
pub const INLINE_BYTES: usize = 16 * 1024;

/// The waterfall answer.
#[derive(Serialize)]
pub struct Waterfall {
    run: Option<Row>,
    total: usize,
    offset: usize,
    next_offset: Option<usize>,
    steps: Vec<Step>,
}

/// A page of the waterfall (default [`DEFAULT_STEPS`] steps, at most [`MAX_STEPS`]).
pub async fn steps(
    State(engine): State<QueryEngine>,
    TenantOf(tenant): TenantOf,
    ApiPath(trace_id): ApiPath<TraceId>,
    Params(page): Params<Page>,
) -> Result<Json<Waterfall>> {
    let (offset, limit) = page.bounds(DEFAULT_STEPS, MAX_STEPS)?;
    // The waterfall's fields and those that resolve agents and tool calls, of every step.
    let resolved = super::inherit::RESOLVED_FROM;
    let mut columns = resolved.to_vec();
    columns.extend(WATERFALL.iter().filter(|c| !resolved.contains(c)));
    let (all, run) = tokio::try_join!(
        steps_with(&engine, &tenant, trace_id.as_str(), &columns),
        run_row(&engine, &tenant, &trace_id)
    )?;
    let total = all.len();
    let mut steps: Vec<Step> = all.into_iter().skip(offset).take(limit).collect();
    Step::keep_columns(&mut steps, WATERFALL);
    Ok(Json(Waterfall {
        run,
        total,
        offset,
        next_offset: super::next_offset(offset, limit, total),
        steps,
    }))
}

/// A payload reference of a step, described.
#[derive(Serialize)]
struct StepPayload<'a> {
    field: &'static str,
    #[serde(rename = "ref")]
    hash: &'a str,
    #[serde(flatten)]
    described: Option<&'a Described>,
}

/// A link between the step and a step of another run.
#[derive(Debug, Serialize)]
struct Link {
    kind: String,
    trace_id: String,
    span_id: String,
    /// `out` when the edge leaves the step, `in` when it arrives at it.
    direction: &'static str,
}

pub async fn step(
    State(engine): State<QueryEngine>,
    TenantOf(tenant): TenantOf,
    ApiPath((trace_id, span_id)): ApiPath<(TraceId, SpanId)>,
) -> Result<Json<Value>> {
    // At once: every step of the run, with what resolves agents and tool calls; the run's
    // summary; the step's rows, read whole.
    let ids = [span_id.as_str().to_owned()];
    let ((all, index), run, rows) = tokio::try_join!(
        step_in(
            &engine,
            &tenant,
            trace_id.as_str(),
            span_id.as_str(),
            super::inherit::RESOLVED_FROM,
        ),
        run_row(&engine, &tenant, &trace_id),
        rows_of(&engine, &tenant, trace_id.as_str(), &ids),
    )?;
    let step = resolved_rows(&rows, &[&all[index]])?.remove(0);
    let run_start = all.iter().filter_map(|s| s.start_time).min();
    let root = run.as_ref().and_then(|r| field(r, "root_span_id")) == Some(span_id.as_str());
    let refs = payloads::references(&step);
    let wanted: HashSet<String> = refs.iter().map(|(_, h)| (*h).clone()).collect();
    let (described, links, previous, bypass) = tokio::try_join!(
        payloads::describe(
            &engine,
            &tenant,
            wanted,
            std::slice::from_ref(&step),
            INLINE_BYTES
        ),
        links(&engine, &tenant, trace_id.as_str(), &step, root),
        previous_policy(&engine, &tenant, &step, run_start),
        bypass(&engine, &tenant, trace_id.as_str(), &step),
    )?;
    let payloads: Vec<StepPayload<'_>> = refs
        .iter()
        .map(|(field, hash)| StepPayload {
            field,
            hash,
            described: described.get(*hash),
        })
        .collect();
    Ok(Json(json!({
        "step": step,
        "payloads": payloads,
        "policy": {
            "ref": step.policy_ref,
            "hash": step.policy_hash,
            "document_ref": step.policy_document_ref,
            "previous": previous,
        },
        "links": links,
        "bypass": bypass,
    })))
}

/// Why `step` is a row of the `bypasses` view (`{"reason": …}`), or null. Only tool calls and
/// hand-offs can be: other steps are not looked up.
async fn bypass(
    engine: &QueryEngine,
    tenant: &Tenant,
    trace_id: &str,
    step: &Step,
) -> Result<Value> {
    if !matches!(step.operation.as_deref(), Some("tool_call" | "handoff")) {
        return Ok(Value::Null);
    }
    let rows = super::run_gates::bypass_rows(engine, tenant, &[trace_id.to_owned()]).await?;
    Ok(rows
        .iter()
        .find(|r| field(r, "span_id") == step.span_id.as_deref())
        .map_or(Value::Null, |r| json!({ "reason": field(r, "reason") })))
}

/// The edges of the `lineage_edges` view between `step` (of run `trace_id`, read whole) and
/// steps of other runs, found as the lineage graph finds a run's edges, ordered by the other
/// step (trace and span id), then kind; `continues` edges join runs' roots, so only a root
/// (`root`) looks for them.
async fn links(
    engine: &QueryEngine,
    tenant: &Tenant,
    trace_id: &str,
    step: &Step,
    root: bool,
) -> Result<Vec<Link>> {
    let Some(span_id) = step.span_id.as_deref() else {
        return Ok(Vec::new());
    };
    let mut of = step.clone();
    if !root {
        of.conversation_id = None;
    }
    let edges = super::lineage::edges(
        engine,
        tenant,
        &[trace_id.to_owned()],
        std::slice::from_ref(&of),
    )
    .await?;
    let this = |t: &str, s: &str| t == trace_id && s == span_id;
    let mut links: Vec<Link> = edges
        .into_iter()
        .filter_map(|(ft, fs, tt, ts, kind)| {
            if this(&ft, &fs) && tt != trace_id {
                Some(Link {
                    kind,
                    trace_id: tt,
                    span_id: ts,
                    direction: "out",
                })
            } else if this(&tt, &ts) && ft != trace_id {
                Some(Link {
                    kind,
                    trace_id: ft,
                    span_id: fs,
                    direction: "in",
                })
            } else {
                None
            }
        })
        .collect();
    links.sort_by(|a, b| {
        (&a.trace_id, &a.span_id, &a.kind, a.direction).cmp(&(
            &b.trace_id,
            &b.span_id,
            &b.kind,
            b.direction,
        ))
    });
    Ok(links)
}

/// The policy snapshot in force for the agent of `step` before its run started (at
/// `run_start`) that differs from the step's own (ref or hash): the latest step of that agent
/// under another snapshot, with its run (`ref`, `hash`, `document_ref`, `trace_id`). Where
/// each run keeps one snapshot, this is the `previous_*` of the `policy_changes` row of the
/// nearest change up to the run; read from the agent's steps in one scan that stops at the
/// latest, not from the summaries of every run of the tenant.
async fn previous_policy(
    engine: &QueryEngine,
    tenant: &Tenant,
    step: &Step,
    run_start: Option<Timestamp>,
) -> Result<Option<Row>> {
    let (Some(agent), Some(start)) = (&step.agent_name, run_start) else {
        return Ok(None);
    };
    let rows = engine
        .rows(
            tenant,
            "SELECT policy_ref AS \"ref\", policy_hash AS hash,
                    policy_document_ref AS document_ref, trace_id
             FROM spans
             WHERE agent_name = $1 AND start_time < $2 AND policy_ref IS NOT NULL
               AND (policy_ref <> $3 OR coalesce(policy_hash, '') <> $4)
             ORDER BY start_time DESC, trace_id DESC LIMIT 1",
            vec![
                text(agent),
                ScalarValue::TimestampNanosecond(Some(start.0), Some("UTC".into())),
                text(step.policy_ref.as_deref().unwrap_or_default()),
                text(step.policy_hash.as_deref().unwrap_or_default()),
            ],
        )
        .await?;
    Ok(rows.into_iter().next())
}

pub async fn payload(
    State(engine): State<QueryEngine>,
    TenantOf(tenant): TenantOf,
    ApiPath((trace_id, hash)): ApiPath<(TraceId, PayloadHash)>,
) -> Result<Json<Value>> {
    let hash = hash.as_str();
    // The run's steps that refer to it, for the hours its copies can be in.
    let sql = format!(
        "SELECT trace_id, start_time FROM spans WHERE trace_id = $1 AND ({})",
        payloads::refers_to("$2")
    );
    let referring = engine
        .decoded(
            &tenant,
            &sql,
            vec![trace_id.param(), text(hash)],
            Step::decode,
        )
        .await?;
    let not_found = || Error::NotFound(format!("run {trace_id} refers to no payload {hash}"));
    if referring.is_empty() {
        return Err(not_found());
    }
    let wanted = HashSet::from([hash.to_owned()]);
    let mut found = payloads::describe(&engine, &tenant, wanted, &referring, usize::MAX).await?;
    let payload = found.remove(hash).ok_or_else(not_found)?;
    Ok(Json(json!({
        "ref": hash,
        "kind": payload.kind,
        "bytes": payload.bytes,
        "content": payload.content,
    })))
}

/// Hits of a search: default and maximum.
pub const DEFAULT_HITS: usize = 1000;
pub const MAX_HITS: usize = MAX_STEPS;
/// The longest text searched for (bytes).
pub const MAX_QUERY: usize = 1024;

/// The text columns a search looks in, each named so in `matched`.
const SEARCHED: &[&str] = &[
    "name",
    "status_message",
    "service_name",
    "agent_name",
    "agent_id",
    "tool_name",
    "tool_call_id",
    "request_model",
    "response_model",
    "provider",
    "sandbox_id",
    "k8s_namespace",
    "k8s_pod_name",
    "k8s_node_name",
    "conversation_id",
    "approver",
    "approval_request_id",
    "policy_ref",
];

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SearchParams {
    /// The text searched for, case-insensitively.
    q: String,
    /// Hits returned (default [`DEFAULT_HITS`], at most [`MAX_HITS`]).
    limit: Option<usize>,
}

/// `text` as a `LIKE` pattern that matches any text containing it: its `%`, `_` and `\`
/// escaped.
fn containing(text: &str) -> String {
    let mut pattern = String::with_capacity(text.len() + 2);
    pattern.push('%');
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

/// Where a step matched, in the order `matched` lists it.
#[derive(Default)]
struct Matched {
    columns: Vec<&'static str>,
    data_read: bool,
    data_written: bool,
    attributes: Vec<String>,
    payloads: Vec<&'static str>,
}

impl Matched {
    fn any(&self) -> bool {
        !self.columns.is_empty()
            || self.data_read
            || self.data_written
            || !self.attributes.is_empty()
            || !self.payloads.is_empty()
    }

    fn list(self) -> Vec<String> {
        let mut out: Vec<String> = self.columns.into_iter().map(str::to_owned).collect();
        out.extend(self.data_read.then(|| "data_read".to_owned()));
        out.extend(self.data_written.then(|| "data_written".to_owned()));
        out.extend(
            self.attributes
                .into_iter()
                .map(|k| format!("attribute:{k}")),
        );
        out.extend(self.payloads.into_iter().map(|f| format!("payload:{f}")));
        out
    }
}

/// Whether `row`'s column `name` is true.
fn is_true(row: &Row, name: &str) -> bool {
    row.get(name) == Some(&Value::Bool(true))
}

/// The key of a step in a search: span id and start (nanoseconds).
fn key_of(row: &Row) -> Option<(String, i64)> {
    Some((
        field(row, "span_id")?.to_owned(),
        row.get("start_nanos")?.as_i64()?,
    ))
}

pub async fn search(
    State(engine): State<QueryEngine>,
    TenantOf(tenant): TenantOf,
    ApiPath(trace_id): ApiPath<TraceId>,
    Params(SearchParams { q, limit }): Params<SearchParams>,
) -> Result<Json<Value>> {
    if q.is_empty() || q.len() > MAX_QUERY {
        return Err(Error::BadRequest(format!(
            "q must be 1 to {MAX_QUERY} bytes of text"
        )));
    }
    let limit = limit.unwrap_or(DEFAULT_HITS);
    if !(1..=MAX_HITS).contains(&limit) {
        return Err(Error::BadRequest(format!(
            "limit={limit}: a search returns 1 to {MAX_HITS} hits"
        )));
    }
    let pattern = containing(&q);
    let params = || vec![trace_id.param(), text(&pattern)];
    // The steps with their payload references; the text columns that match; the attributes
    // and resources read or written that match.
    let refs_sql = format!(
        "SELECT trace_id, span_id, start_time, {} FROM spans WHERE trace_id = $1",
        payloads::ref_columns().collect::<Vec<_>>().join(", ")
    );
    let columns_sql = format!(
        "SELECT span_id, CAST(start_time AS BIGINT) AS start_nanos, {}
         FROM spans WHERE trace_id = $1 AND ({})",
        SEARCHED
            .iter()
            .map(|c| format!("{c} ILIKE $2 AS {c}"))
            .collect::<Vec<_>>()
            .join(", "),
        SEARCHED
            .iter()
            .map(|c| format!("{c} ILIKE $2"))
            .collect::<Vec<_>>()
            .join(" OR ")
    );
    let lists_sql = "SELECT span_id, start_nanos, k, (k ILIKE $2 OR v ILIKE $2) AS attribute,
            r ILIKE $2 AS data_read, w ILIKE $2 AS data_written
        FROM (
            SELECT span_id, CAST(start_time AS BIGINT) AS start_nanos,
                   unnest(map_keys(attributes)) AS k, unnest(map_values(attributes)) AS v,
                   unnest(data_read) AS r, unnest(data_written) AS w
            FROM spans WHERE trace_id = $1
        )
        WHERE k ILIKE $2 OR v ILIKE $2 OR r ILIKE $2 OR w ILIKE $2";
    let (mut steps, columns, lists) = tokio::try_join!(
        engine.decoded(&tenant, &refs_sql, vec![trace_id.param()], Step::decode),
        engine.rows(&tenant, &columns_sql, params()),
        engine.rows(&tenant, lists_sql, params()),
    )?;
    if steps.is_empty() {
        return Err(Error::NotFound(format!("run {trace_id} not found")));
    }
    step::sort(&mut steps);
    let matching = matching_payloads(&engine, &tenant, &steps, &pattern).await?;
    let mut found: HashMap<(String, i64), Matched> = HashMap::new();
    for r in &columns {
        if let Some(key) = key_of(r) {
            let m = found.entry(key).or_default();
            m.columns
                .extend(SEARCHED.iter().filter(|c| is_true(r, c)).copied());
        }
    }
    for r in &lists {
        if let Some(key) = key_of(r) {
            let m = found.entry(key).or_default();
            m.data_read |= is_true(r, "data_read");
            m.data_written |= is_true(r, "data_written");
            if let Some(k) = field(r, "k").filter(|_| is_true(r, "attribute")) {
                if !m.attributes.iter().any(|a| a == k) {
                    m.attributes.push(k.to_owned());
                }
            }
        }
    }
    let mut hits = Vec::new();
    let mut total = 0;
    for s in &steps {
        let (Some(id), Some(start)) = (&s.span_id, s.start_time) else {
            continue;
        };
        let mut m = found.remove(&(id.clone(), start.0)).unwrap_or_default();
        for (field, h) in payloads::references(s) {
            if matching.contains(h) && !m.payloads.contains(&field) {
                m.payloads.push(field);
            }
        }
        if m.any() {
            total += 1;
            if hits.len() < limit {
                hits.push(json!({"span_id": id, "matched": m.list()}));
            }
        }
    }
    Ok(Json(json!({ "q": q, "total": total, "hits": hits })))
}

/// The payloads `steps` refer to whose content matches `pattern` (case-insensitively).
async fn matching_payloads(
    engine: &QueryEngine,
    tenant: &Tenant,
    steps: &[Step],
    pattern: &str,
) -> Result<HashSet<String>> {
    let wanted: HashSet<String> = steps
        .iter()
        .flat_map(payloads::references)
        .map(|(_, h)| h.clone())
        .collect();
    let matches = col("content").ilike(lit(pattern));
    let batches = payloads::rows(engine, tenant, wanted, steps, vec![matches]).await?;
    let mut out = HashSet::new();
    for b in &batches {
        let hashes = String::read(b.column(0))?;
        let matched = b.column(1).as_boolean();
        for (i, h) in hashes.into_iter().enumerate() {
            if let Some(h) = h.filter(|_| matched.is_valid(i) && matched.value(i)) {
                out.insert(h);
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_search_text_is_literal_in_its_pattern() {
        assert_eq!(containing("refund"), "%refund%");
        assert_eq!(containing(r"50%_off\x"), r"%50\%\_off\\x%");
    }

    #[tokio::test]
    async fn escaped_patterns_match_literally_and_ignore_case() {
        let ctx = datafusion::prelude::SessionContext::new();
        for (text, q, expected) in [
            ("Refund 50% of A_1", "50%", true),
            ("Refund 50 of A_1", "50%", false),
            ("Refund 50% of A_1", "a_1", true),
            ("Refund 50% of AB1", "a_1", false),
            (r"C:\Temp", r"c:\t", true),
            (r"C:Temp", r"c:\t", false),
            ("naïve", "NAÏVE", true),
        ] {
            let df = ctx
                .sql("SELECT $1 ILIKE $2 AS m")
                .await
                .unwrap()
                .with_param_values(vec![
                    ScalarValue::Utf8(Some(text.into())),
                    ScalarValue::Utf8(Some(containing(q))),
                ])
                .unwrap();
            let b = df.collect().await.unwrap();
            assert_eq!(
                b[0].column(0).as_boolean().value(0),
                expected,
                "{text} / {q}"
            );
        }
    }
}
