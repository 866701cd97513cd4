//! TraceQL metrics: the spans of one spanset filter counted (or their values aggregated) per
//! step of a time range, per value of the `by` attributes, in one SQL statement.
//!
//! Series are labelled as Tempo labels them: `__name__` with the function's name, each `by`
//! attribute as TraceQL writes it, `p` for each quantile and `__bucket` for each histogram
//! bucket. Durations are in seconds, as Tempo reports them. Quantiles are t-digest estimates (Tempo's are from log2 buckets).

use std::collections::BTreeMap;

use cairn_schema::tenant::Tenant;
use datafusion::common::ScalarValue;
use serde_json::{json, Value};

use super::ast::{Attr, Intrinsic, MetricsFn, Query, SpansetExpr};
use super::attrs::{needs_trace_columns, target, Target, ValueType};
use super::histogram::{log2_bucket, BUCKET_LABEL};
use super::search::{any_value, source, Range};
use super::sql::{condition, numeric, typed_text, Params};
use crate::{Error, QueryEngine, Result};

/// Most steps in one range.
pub const MAX_STEPS: i64 = 11_000;
/// Most series one query answers.
pub const MAX_SERIES: usize = 1_000;

/// One series: labels (`AnyValue` JSON) and samples `(timestamp in ms, value)`.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub labels: Vec<(String, Value)>,
    pub samples: Vec<(i64, f64)>,
}

/// The series of `query` over `start_ns..end_ns` in steps of `step_ns`.
pub async fn query_range(
    engine: &QueryEngine,
    tenant: &Tenant,
    query: &Query,
    start_ns: i64,
    end_ns: i64,
    step_ns: i64,
) -> Result<Vec<Series>> {
    let Some(metrics) = &query.metrics else {
        return Err(Error::BadRequest(
            "not a metrics query: end it with a metrics function such as | rate()".into(),
        ));
    };
    let SpansetExpr::Filter(filter) = &query.spansets else {
        return Err(Error::BadRequest(
            "unsupported TraceQL: metrics over spanset or structural operators (use one { … })"
                .into(),
        ));
    };
    if !query.stages.is_empty() {
        return Err(Error::BadRequest(
            "unsupported TraceQL: pipeline stages before a metrics function".into(),
        ));
    }
    if step_ns <= 0 || (end_ns - start_ns) / step_ns > MAX_STEPS {
        return Err(Error::BadRequest(format!(
            "invalid step: at most {MAX_STEPS} steps per range"
        )));
    }
    let mut params = Params::default();
    let range = Range {
        start_ns: Some(start_ns),
        end_ns: Some(end_ns),
    };
    let bounds = range.sql("start_time", &mut params);
    let cond = match filter {
        Some(c) => condition(c, &mut params),
        None => "TRUE".to_owned(),
    };
    let start = params.bind(ScalarValue::Int64(Some(start_ns)));
    let step = params.bind(ScalarValue::Int64(Some(step_ns)));
    let mut items = vec![format!(
        "CAST((CAST(start_time AS BIGINT) - {start}) / {step} AS BIGINT) AS bucket"
    )];
    let mut group = vec!["bucket".to_owned()];
    for (j, attr) in metrics.by.iter().enumerate() {
        let (text, tag) = typed_text(attr);
        items.push(format!("{text} AS b{j}"));
        items.push(format!("{tag} AS t{j}"));
        group.push(format!("b{j}"));
        group.push(format!("t{j}"));
    }
    let value = |attr: &Attr| -> Result<String> {
        match target(attr) {
            Target::Column(_, ValueType::Duration) => Ok(format!("{} / 1e9", numeric(attr))),
            Target::Column(_, t) if !t.is_numeric() => Err(not_numeric(attr)),
            _ => Ok(numeric(attr)),
        }
    };
    let (name, outputs): (&str, Vec<(String, Option<f64>)>) = match &metrics.function {
        MetricsFn::Rate => ("rate", vec![("count(*)".into(), None)]),
        MetricsFn::CountOverTime => ("count_over_time", vec![("count(*)".into(), None)]),
        MetricsFn::AvgOverTime(a) => ("avg_over_time", vec![(format!("avg({})", value(a)?), None)]),
        MetricsFn::MinOverTime(a) => ("min_over_time", vec![(format!("min({})", value(a)?), None)]),
        MetricsFn::MaxOverTime(a) => ("max_over_time", vec![(format!("max({})", value(a)?), None)]),
        MetricsFn::SumOverTime(a) => ("sum_over_time", vec![(format!("sum({})", value(a)?), None)]),
        MetricsFn::HistogramOverTime(_) => ("histogram_over_time", vec![("count(*)".into(), None)]),
        MetricsFn::Quantile(a, qs) => {
            let v = value(a)?;
            (
                "quantile_over_time",
                qs.iter()
                    .map(|q| (format!("approx_percentile_cont({v}, {q:?})"), Some(*q)))
                    .collect(),
            )
        }
    };
    let mut bucketed = String::new();
    if let MetricsFn::HistogramOverTime(a) = &metrics.function {
        let bucket = log2_bucket(a)?;
        bucketed = format!(" AND {bucket} IS NOT NULL");
        items.push(format!("{bucket} AS hb"));
        group.push("hb".to_owned());
    }
    for (k, (expr, _)) in outputs.iter().enumerate() {
        items.push(format!("CAST({expr} AS DOUBLE) AS y{k}"));
    }
    let mut attrs: Vec<&Attr> = metrics.by.iter().collect();
    let measured = match &metrics.function {
        MetricsFn::Quantile(a, _)
        | MetricsFn::AvgOverTime(a)
        | MetricsFn::MinOverTime(a)
        | MetricsFn::MaxOverTime(a)
        | MetricsFn::SumOverTime(a)
        | MetricsFn::HistogramOverTime(a) => Some(a),
        _ => None,
    };
    attrs.extend(measured);
    let mut cond_attrs = Vec::new();
    if let Some(c) = filter {
        collect(c, &mut cond_attrs);
    }
    attrs.extend(cond_attrs.iter());
    let trace_columns = needs_trace_columns(attrs.into_iter());
    let sql = format!(
        "SELECT {} FROM {} WHERE {bounds} AND {cond}{bucketed} GROUP BY {}",
        items.join(", "),
        source(trace_columns, &bounds),
        group.join(", ")
    );
    let rows = engine.rows(tenant, &sql, params.values).await?;
    let step_seconds = step_ns as f64 / 1e9;
    let rate = matches!(metrics.function, MetricsFn::Rate);
    let mut series: BTreeMap<String, Series> = BTreeMap::new();
    for row in rows {
        let bucket = row.get("bucket").and_then(Value::as_i64).unwrap_or(0);
        let ts_ms = (start_ns + bucket * step_ns) / 1_000_000;
        let mut labels = vec![("__name__".to_owned(), json!({ "stringValue": name }))];
        for (j, attr) in metrics.by.iter().enumerate() {
            let value = any_value(row.get(&format!("b{j}")), row.get(&format!("t{j}")))
                .unwrap_or_else(|| json!({ "stringValue": "nil" }));
            labels.push((attr.to_traceql(), value));
        }
        if let Some(bound) = row.get("hb").and_then(Value::as_f64) {
            labels.push((BUCKET_LABEL.to_owned(), json!({ "doubleValue": bound })));
        }
        for (k, (_, q)) in outputs.iter().enumerate() {
            let Some(mut y) = row.get(&format!("y{k}")).and_then(Value::as_f64) else {
                continue;
            };
            if rate {
                y /= step_seconds;
            }
            let mut labels = labels.clone();
            if let Some(q) = q {
                labels.push(("p".to_owned(), json!({ "doubleValue": q })));
            }
            let key = serde_json::to_string(&labels).unwrap_or_default();
            if !series.contains_key(&key) && series.len() >= MAX_SERIES {
                return Err(Error::BadRequest(format!(
                    "the query makes more than {MAX_SERIES} series: narrow its by()"
                )));
            }
            series
                .entry(key)
                .or_insert_with(|| Series {
                    labels,
                    samples: Vec::new(),
                })
                .samples
                .push((ts_ms, y));
        }
    }
    let mut out: Vec<Series> = series.into_values().collect();
    for s in &mut out {
        s.samples.sort_by_key(|(t, _)| *t);
    }
    Ok(out)
}

fn collect(c: &super::ast::Cond, out: &mut Vec<Attr>) {
    use super::ast::Cond;
    match c {
        Cond::And(a, b) | Cond::Or(a, b) => {
            collect(a, out);
            collect(b, out);
        }
        Cond::Not(a) => collect(a, out),
        Cond::Compare(a, ..) => out.push(a.clone()),
        Cond::Const(_) => {}
    }
}

/// The error for a metrics function over an attribute that has no numbers.
pub(super) fn not_numeric(attr: &Attr) -> Error {
    Error::BadRequest(format!(
        "unsupported TraceQL: {} is not numeric",
        attr.to_traceql()
    ))
}

/// Whether `attr` is the span duration.
pub fn is_duration(attr: &Attr) -> bool {
    matches!(attr, Attr::Intrinsic(Intrinsic::Duration))
}
