//! A TraceQL search over a tenant's spans: the newest traces with a matching spanset, each with
//! its spansets (at most `spss` spans each, with the number that matched) and its root.
//!
//! Three statements: the candidate traces (spans in the time range meeting any filter, grouped
//! by trace, newest first, kept when the combination of filters can hold: exactly the answer
//! when the query is one filter with at most `count()` stages), the candidates' spans with the
//! flags of each filter (whole traces when a structural operator needs their parent links),
//! evaluated per trace ([`super::eval`]), and the roots of the traces kept, from `runs`.

use std::collections::{BTreeMap, HashMap};

use cairn_schema::tenant::Tenant;
use datafusion::common::ScalarValue;
use serde_json::{json, Map, Value};

use super::ast::{Aggregate, Query, SpansetExpr, Stage};
use super::attrs::needs_trace_columns;
use super::eval::{evaluate, Plan, SpanRow, SpanSet};
use super::sql::{condition, numeric, typed_text, Params};
use crate::{Error, QueryEngine, Result};

/// Trace ids per lookup statement: short enough for Parquet scans to prune by them.
pub const IDS_PER_LOOKUP: usize = crate::catalog::MAX_PRUNED_IN_LIST;
/// Candidates read beyond `limit` when the combination of filters is checked per trace.
const CANDIDATE_FACTOR: usize = 5;
/// Most candidate traces one search evaluates.
const MAX_CANDIDATES: usize = 2_000;
/// Most traces one search returns.
pub const MAX_LIMIT: usize = 1_000;

/// A time range in nanoseconds since the epoch (inclusive, either end open).
#[derive(Debug, Clone, Copy, Default)]
pub struct Range {
    pub start_ns: Option<i64>,
    pub end_ns: Option<i64>,
}

impl Range {
    /// `start_time` within the range, as SQL (the bounds prune hour partitions).
    pub fn sql(&self, column: &str, params: &mut Params) -> String {
        let ts = |v: i64| ScalarValue::TimestampNanosecond(Some(v), Some("UTC".into()));
        let mut parts = Vec::new();
        if let Some(s) = self.start_ns {
            parts.push(format!("{column} >= {}", params.bind(ts(s))));
        }
        if let Some(e) = self.end_ns {
            parts.push(format!("{column} <= {}", params.bind(ts(e))));
        }
        if parts.is_empty() {
            "TRUE".to_owned()
        } else {
            parts.join(" AND ")
        }
    }
}

/// What to search.
#[derive(Debug, Clone)]
pub struct Request {
    pub query: Query,
    pub range: Range,
    pub limit: usize,
    pub spans_per_spanset: usize,
}

/// A trace found, with its spansets.
#[derive(Debug, Clone)]
pub struct Found {
    pub trace_id: String,
    pub root_service: Option<String>,
    pub root_name: Option<String>,
    pub start_ns: i64,
    pub duration_ns: i64,
    pub spansets: Vec<FoundSet>,
}

/// A spanset: its first spans, how many matched, and its own attributes.
#[derive(Debug, Clone)]
pub struct FoundSet {
    pub spans: Vec<FoundSpan>,
    pub matched: usize,
    pub attributes: Vec<(String, Value)>,
}

#[derive(Debug, Clone)]
pub struct FoundSpan {
    pub span_id: String,
    pub name: String,
    pub start_ns: i64,
    pub duration_ns: i64,
    /// `(key, AnyValue JSON)`.
    pub attributes: Vec<(String, Value)>,
}

/// The answer to a search.
#[derive(Debug, Clone, Default)]
pub struct Answer {
    pub traces: Vec<Found>,
    /// Traces whose spans were evaluated.
    pub inspected_traces: usize,
}

/// The span source of a statement: `spans`, or `spans` with the trace-level intrinsics joined
/// in, computed over the spans meeting `trace_where`.
pub fn source(trace_columns: bool, trace_where: &str) -> String {
    if !trace_columns {
        return "spans".to_owned();
    }
    format!(
        "(SELECT s.*, t.trace_root_name, t.trace_root_service, t.trace_duration_ns
          FROM spans s JOIN (
            SELECT trace_id,
                   first_value(name ORDER BY parent_span_id IS NOT NULL, start_time) AS trace_root_name,
                   first_value(service_name ORDER BY parent_span_id IS NOT NULL, start_time) AS trace_root_service,
                   CAST(max(end_time) AS BIGINT) - CAST(min(start_time) AS BIGINT) AS trace_duration_ns
            FROM spans WHERE {trace_where} GROUP BY trace_id
          ) t ON s.trace_id = t.trace_id) AS src"
    )
}

/// Whether the query reads trace-level intrinsics.
fn uses_trace_columns(plan: &Plan, stages: &[Stage]) -> bool {
    let mut attrs: Vec<&super::ast::Attr> = Vec::new();
    let mut conds = Vec::new();
    for c in plan.filters.iter().flatten() {
        conds.push(c);
    }
    let mut found = Vec::new();
    for c in conds {
        cond_attrs(c, &mut found);
    }
    attrs.extend(found.iter());
    attrs.extend(plan.returned.iter());
    attrs.extend(plan.numeric.iter());
    for s in stages {
        if let Stage::Select(a) | Stage::By(a) = s {
            attrs.extend(a.iter());
        }
    }
    needs_trace_columns(attrs.into_iter())
}

fn cond_attrs(c: &super::ast::Cond, out: &mut Vec<super::ast::Attr>) {
    use super::ast::Cond;
    match c {
        Cond::And(a, b) | Cond::Or(a, b) => {
            cond_attrs(a, out);
            cond_attrs(b, out);
        }
        Cond::Not(a) => cond_attrs(a, out),
        Cond::Compare(a, ..) => out.push(a.clone()),
        Cond::Const(_) => {}
    }
}

fn has_structure(expr: &SpansetExpr) -> bool {
    match expr {
        SpansetExpr::Filter(_) => false,
        SpansetExpr::And(a, b) | SpansetExpr::Or(a, b) => has_structure(a) || has_structure(b),
        SpansetExpr::Structural(..) => true,
    }
}

/// The trace-level condition the candidates must meet for `expr` to hold (necessary; exact
/// without structural operators).
fn prefilter(expr: &SpansetExpr, next: &mut usize) -> String {
    match expr {
        SpansetExpr::Filter(_) => {
            let i = *next;
            *next += 1;
            format!("n{i} > 0")
        }
        SpansetExpr::And(a, b) => format!("({} AND {})", prefilter(a, next), prefilter(b, next)),
        SpansetExpr::Or(a, b) => format!("({} OR {})", prefilter(a, next), prefilter(b, next)),
        SpansetExpr::Structural(r, a, b) => {
            let left = prefilter(a, next);
            let right = prefilter(b, next);
            if r.negated {
                right
            } else {
                format!("({left} AND {right})")
            }
        }
    }
}

/// Runs `request` as `tenant`.
pub async fn search(engine: &QueryEngine, tenant: &Tenant, request: &Request) -> Result<Answer> {
    let query = &request.query;
    if query.metrics.is_some() {
        return Err(Error::BadRequest(
            "a metrics query is answered by /api/metrics/query_range, not by search".into(),
        ));
    }
    let plan = Plan::of(&query.spansets, &query.stages);
    let trace_columns = uses_trace_columns(&plan, &query.stages);
    let structural = has_structure(&query.spansets);
    let count_only = query
        .stages
        .iter()
        .all(|s| matches!(s, Stage::Select(_) | Stage::Filter(Aggregate::Count, ..)));
    let exact = !structural && plan.filters.len() == 1 && count_only;

    // 1. Candidate traces, newest first.
    let mut params = Params::default();
    let bounds = request.range.sql("start_time", &mut params);
    let conds = conditions(&plan, &mut params);
    let counts: Vec<String> = conds
        .iter()
        .enumerate()
        .map(|(i, c)| format!("count(*) FILTER (WHERE {c}) AS n{i}"))
        .collect();
    let mut having = prefilter(&query.spansets, &mut 0);
    if exact {
        for stage in &query.stages {
            if let Stage::Filter(Aggregate::Count, op, value) = stage {
                let n = match value {
                    super::ast::Literal::Int(n) => *n as f64,
                    super::ast::Literal::Float(f) => *f,
                    super::ast::Literal::Duration(d) => *d as f64,
                    _ => f64::NAN,
                };
                let op = match op {
                    super::ast::Op::Ne => "<>",
                    other => other.as_str(),
                };
                having = format!(
                    "{having} AND CAST(n0 AS DOUBLE) {op} {}",
                    params.bind(ScalarValue::Float64(Some(n)))
                );
            }
        }
    }
    let wanted = if exact {
        request.limit
    } else {
        (request.limit * CANDIDATE_FACTOR).min(MAX_CANDIDATES)
    };
    let any = conds
        .iter()
        .map(|c| format!("({c})"))
        .collect::<Vec<_>>()
        .join(" OR ");
    let sql = format!(
        "SELECT trace_id, CAST(min(start_time) AS BIGINT) AS first_ns, {}
         FROM {} WHERE {bounds} AND ({any})
         GROUP BY trace_id HAVING {having}
         ORDER BY first_ns DESC, trace_id DESC LIMIT {wanted}",
        counts.join(", "),
        source(trace_columns, &bounds),
    );
    let rows = engine.rows(tenant, &sql, params.values.clone()).await?;
    let candidates: Vec<String> = rows
        .iter()
        .filter_map(|r| r.get("trace_id").and_then(Value::as_str).map(str::to_owned))
        .collect();

    // 2. Their spans, evaluated per trace, chunk by chunk until `limit` traces matched.
    let mut matched: Vec<(String, Vec<SpanSet>, Vec<SpanRow>)> = Vec::new();
    let mut inspected = 0;
    for chunk in candidates.chunks(IDS_PER_LOOKUP) {
        if matched.len() >= request.limit {
            break;
        }
        let spans = fetch_spans(
            engine,
            tenant,
            &plan,
            &request.range,
            chunk,
            structural,
            trace_columns,
        )
        .await?;
        for trace_id in chunk {
            if matched.len() >= request.limit {
                break;
            }
            inspected += 1;
            let Some(rows) = spans.get(trace_id) else {
                continue;
            };
            let sets = evaluate(&plan, &query.spansets, &query.stages, rows);
            if !sets.is_empty() {
                matched.push((trace_id.clone(), sets, rows.clone()));
            }
        }
    }

    // 3. Their roots.
    let ids: Vec<String> = matched.iter().map(|(id, ..)| id.clone()).collect();
    let roots = roots(engine, tenant, &ids).await?;
    let mut traces: Vec<Found> = matched
        .into_iter()
        .map(|(trace_id, sets, rows)| {
            let root = roots.get(&trace_id);
            let spansets = sets
                .into_iter()
                .map(|set| FoundSet {
                    matched: set.spans.len(),
                    spans: set
                        .spans
                        .iter()
                        .take(request.spans_per_spanset)
                        .map(|i| found_span(&plan, &rows[*i]))
                        .collect(),
                    attributes: set.attributes,
                })
                .collect();
            let (start_ns, end_ns) = rows.iter().fold((i64::MAX, i64::MIN), |(s, e), r| {
                (s.min(r.start_ns), e.max(r.start_ns + r.duration_ns))
            });
            Found {
                root_service: root.and_then(|r| r.service.clone()),
                root_name: root.and_then(|r| r.name.clone()),
                start_ns: root.map_or(start_ns, |r| r.start_ns),
                duration_ns: root.map_or(end_ns - start_ns, |r| r.duration_ns),
                trace_id,
                spansets,
            }
        })
        .collect();
    traces.sort_by(|a, b| {
        b.start_ns
            .cmp(&a.start_ns)
            .then_with(|| b.trace_id.cmp(&a.trace_id))
    });
    Ok(Answer {
        traces,
        inspected_traces: inspected,
    })
}

/// Each spanset filter of `plan` as a SQL condition (`TRUE` for `{}`), its values in `params`.
fn conditions(plan: &Plan, params: &mut Params) -> Vec<String> {
    plan.filters
        .iter()
        .map(|c| match c {
            Some(c) => condition(c, params),
            None => "TRUE".to_owned(),
        })
        .collect()
}

fn found_span(plan: &Plan, row: &SpanRow) -> FoundSpan {
    FoundSpan {
        span_id: row.span_id.clone(),
        name: row.name.clone(),
        start_ns: row.start_ns,
        duration_ns: row.duration_ns,
        attributes: plan
            .returned
            .iter()
            .zip(&row.values)
            .filter_map(|(a, v)| Some((a.key(), v.clone()?)))
            .collect(),
    }
}

/// The spans of traces `ids` a search evaluates, by trace, in start order.
async fn fetch_spans(
    engine: &QueryEngine,
    tenant: &Tenant,
    plan: &Plan,
    range: &Range,
    ids: &[String],
    whole_traces: bool,
    trace_columns: bool,
) -> Result<HashMap<String, Vec<SpanRow>>> {
    let mut params = Params::default();
    let list: Vec<String> = ids.iter().map(|id| params.text(id)).collect();
    let in_list = format!("trace_id IN ({})", list.join(", "));
    let bounds = range.sql("start_time", &mut params);
    let conds = conditions(plan, &mut params);
    let mut items = vec![
        "trace_id".to_owned(),
        "span_id".to_owned(),
        "parent_span_id".to_owned(),
        "name".to_owned(),
        "CAST(start_time AS BIGINT) AS start_ns".to_owned(),
        "duration_ns".to_owned(),
    ];
    for (j, attr) in plan.returned.iter().enumerate() {
        let (text, tag) = typed_text(attr);
        items.push(format!("{text} AS v{j}"));
        items.push(format!("{tag} AS t{j}"));
    }
    for (k, attr) in plan.numeric.iter().enumerate() {
        items.push(format!("{} AS x{k}", numeric(attr)));
    }
    for (i, c) in conds.iter().enumerate() {
        let flag = if whole_traces {
            format!("coalesce(({c}) AND {bounds}, FALSE)")
        } else {
            format!("coalesce({c}, FALSE)")
        };
        items.push(format!("{flag} AS m{i}"));
    }
    let trace_where = format!("{in_list} AND {bounds}");
    let span_where = if whole_traces {
        in_list.clone()
    } else {
        let any = conds
            .iter()
            .map(|c| format!("({c})"))
            .collect::<Vec<_>>()
            .join(" OR ");
        format!("{in_list} AND {bounds} AND ({any})")
    };
    let sql = format!(
        "SELECT {} FROM {} WHERE {span_where}",
        items.join(", "),
        source(trace_columns, &trace_where)
    );
    let rows = engine.rows(tenant, &sql, params.values).await?;
    let mut by_trace: HashMap<String, Vec<SpanRow>> = HashMap::new();
    for row in rows {
        let Some(trace_id) = text(&row, "trace_id") else {
            continue;
        };
        let span = SpanRow {
            span_id: text(&row, "span_id").unwrap_or_default(),
            parent_span_id: text(&row, "parent_span_id"),
            name: text(&row, "name").unwrap_or_default(),
            start_ns: row.get("start_ns").and_then(Value::as_i64).unwrap_or(0),
            duration_ns: row.get("duration_ns").and_then(Value::as_i64).unwrap_or(0),
            matched: (0..conds.len())
                .map(|i| {
                    row.get(&format!("m{i}"))
                        .and_then(Value::as_bool)
                        .unwrap_or(false)
                })
                .collect(),
            values: (0..plan.returned.len())
                .map(|j| any_value(row.get(&format!("v{j}")), row.get(&format!("t{j}"))))
                .collect(),
            numbers: (0..plan.numeric.len())
                .map(|k| row.get(&format!("x{k}")).and_then(Value::as_f64))
                .collect(),
        };
        by_trace.entry(trace_id).or_default().push(span);
    }
    for spans in by_trace.values_mut() {
        spans.sort_by(|a, b| (a.start_ns, &a.span_id).cmp(&(b.start_ns, &b.span_id)));
    }
    Ok(by_trace)
}

fn text(row: &Map<String, Value>, key: &str) -> Option<String> {
    row.get(key).and_then(Value::as_str).map(str::to_owned)
}

/// An attribute value (as stored: text and OTLP type) as OTLP `AnyValue` JSON.
pub fn any_value(value: Option<&Value>, tag: Option<&Value>) -> Option<Value> {
    let value = match value? {
        Value::String(s) => s.clone(),
        Value::Null => return None,
        other => other.to_string(),
    };
    Some(match tag.and_then(Value::as_str) {
        Some("int") => json!({ "intValue": value }),
        Some("double") => match value.parse::<f64>() {
            Ok(f) if f.is_finite() => json!({ "doubleValue": f }),
            _ => json!({ "stringValue": value }),
        },
        Some("bool") => json!({ "boolValue": value == "true" }),
        _ => json!({ "stringValue": value }),
    })
}

/// The root of a trace, as `runs` has it.
#[derive(Debug, Clone)]
pub struct Root {
    pub name: Option<String>,
    pub service: Option<String>,
    pub start_ns: i64,
    pub duration_ns: i64,
}

/// The roots of traces `ids`, from the run summaries.
pub async fn roots(
    engine: &QueryEngine,
    tenant: &Tenant,
    ids: &[String],
) -> Result<BTreeMap<String, Root>> {
    let mut out = BTreeMap::new();
    for chunk in ids.chunks(IDS_PER_LOOKUP) {
        let mut params = Params::default();
        let list: Vec<String> = chunk.iter().map(|id| params.text(id)).collect();
        let sql = format!(
            "SELECT trace_id, root_name, service_name, CAST(start_time AS BIGINT) AS start_ns,
                    duration_ns
             FROM runs WHERE trace_id IN ({})",
            list.join(", ")
        );
        for row in engine.rows(tenant, &sql, params.values).await? {
            let Some(id) = text(&row, "trace_id") else {
                continue;
            };
            out.insert(
                id,
                Root {
                    name: text(&row, "root_name"),
                    service: text(&row, "service_name"),
                    start_ns: row.get("start_ns").and_then(Value::as_i64).unwrap_or(0),
                    duration_ns: row.get("duration_ns").and_then(Value::as_i64).unwrap_or(0),
                },
            );
        }
    }
    Ok(out)
}
