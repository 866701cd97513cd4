//! TraceQL metrics: `GET /api/metrics/query_range` (`q`, `start`, `end`, `step`) and
//! `GET /api/metrics/query` (one value per series over the whole range). `step` is a duration
//! (`60s`, `1m`) or seconds; by default the range is divided into about 100 steps (at least one
//! second each). Without a range: the last hour, as Tempo.

use std::collections::HashMap;

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use axum::Json;

use super::json::{
    InstantSeries, KeyValue, QueryInstantResponse, QueryRangeResponse, Sample, SearchMetrics,
    TimeSeries,
};
use super::search::bounds;
use super::TempoResult;
use crate::api::extract::TenantOf;
use crate::traceql::metrics::{self as run, Series};
use crate::{traceql, Error, QueryEngine, Result};

/// Steps a range is divided into when no `step` is given.
const DEFAULT_STEPS: i64 = 100;
const DEFAULT_RANGE_NS: i64 = 3_600_000_000_000;

pub async fn query_range(
    State(engine): State<QueryEngine>,
    TenantOf(tenant): TenantOf,
    Query(params): Query<HashMap<String, String>>,
) -> TempoResult<Response> {
    let (query, start_ns, end_ns) = read(&params)?;
    let step_ns = step(&params, start_ns, end_ns)?;
    // Steps start at multiples of the step, as Tempo aligns them.
    let aligned = start_ns - start_ns.rem_euclid(step_ns);
    let series = run::query_range(&engine, &tenant, &query, aligned, end_ns, step_ns).await?;
    let series = series
        .into_iter()
        .map(|s| TimeSeries {
            labels: labels(&s),
            samples: s
                .samples
                .into_iter()
                .map(|(t, value)| Sample {
                    timestamp_ms: t.to_string(),
                    value,
                })
                .collect(),
        })
        .collect();
    Ok(Json(QueryRangeResponse {
        series,
        metrics: metrics(),
        status: "COMPLETE",
    })
    .into_response())
}

pub async fn query_instant(
    State(engine): State<QueryEngine>,
    TenantOf(tenant): TenantOf,
    Query(params): Query<HashMap<String, String>>,
) -> TempoResult<Response> {
    let (query, start_ns, end_ns) = read(&params)?;
    // One step over the whole range; a rate is per second of the range.
    let step_ns = (end_ns - start_ns).max(1);
    let series = run::query_range(&engine, &tenant, &query, start_ns, end_ns, step_ns).await?;
    let series = series
        .into_iter()
        .map(|s| InstantSeries {
            labels: labels(&s),
            value: s.samples.iter().map(|(_, v)| v).sum(),
        })
        .collect();
    Ok(Json(QueryInstantResponse {
        series,
        metrics: metrics(),
        status: "COMPLETE",
    })
    .into_response())
}

fn metrics() -> SearchMetrics {
    SearchMetrics {
        inspected_bytes: "0".into(),
        completed_jobs: 1,
        total_jobs: 1,
        ..SearchMetrics::default()
    }
}

fn labels(series: &Series) -> Vec<KeyValue> {
    series
        .labels
        .iter()
        .map(|(k, v)| KeyValue::new(k.clone(), v.clone()))
        .collect()
}

/// The query and its range (default: the last hour).
fn read(params: &HashMap<String, String>) -> Result<(traceql::ast::Query, i64, i64)> {
    let q = params
        .get("q")
        .map(|q| q.trim())
        .filter(|q| !q.is_empty())
        .ok_or_else(|| Error::BadRequest("invalid request: q is required".into()))?;
    let query = traceql::parse(q)?;
    let (start_ns, end_ns) = bounds(params)?;
    let now = chrono::Utc::now().timestamp_nanos_opt().unwrap_or(0);
    let end_ns = end_ns.unwrap_or(now);
    let start_ns = start_ns.unwrap_or(end_ns - DEFAULT_RANGE_NS);
    Ok((query, start_ns, end_ns))
}

/// `step` in nanoseconds: a duration or seconds; by default about [`DEFAULT_STEPS`] per range.
fn step(params: &HashMap<String, String>, start_ns: i64, end_ns: i64) -> Result<i64> {
    let given = params
        .get("step")
        .map(|s| s.trim())
        .filter(|s| !s.is_empty());
    let step = match given {
        None => ((end_ns - start_ns) / DEFAULT_STEPS).max(1_000_000_000),
        Some(s) => match s.parse::<f64>() {
            Ok(seconds) => (seconds * 1e9) as i64,
            Err(_) => {
                traceql::duration(s).map_err(|e| Error::BadRequest(format!("invalid step: {e}")))?
            }
        },
    };
    if step <= 0 {
        return Err(Error::BadRequest("invalid step: must be positive".into()));
    }
    Ok(step)
}
