//! `GET /api/search`: TraceQL search (`q`), or Tempo's tag search (`tags`, `minDuration`,
//! `maxDuration`), over `start`..`end` (unix seconds; no bound when absent, as `/api/v1/runs`),
//! `limit` traces (default 20), `spss` spans per spanset (default 3). Unknown parameters are
//! ignored, as Tempo ignores them.

use std::collections::HashMap;

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use axum::Json;

use super::json::{KeyValue, SearchMetrics, SearchResponse, Span, SpanSet, TraceSearchMetadata};
use super::TempoResult;
use crate::api::extract::TenantOf;
use crate::traceql::search::{self as run, Found, MAX_LIMIT};
use crate::{traceql, Error, QueryEngine, Result};

const DEFAULT_LIMIT: usize = 20;
const DEFAULT_SPSS: usize = 3;
/// Most spans per spanset an answer lists.
const MAX_SPSS: usize = 1_000;

pub async fn search(
    State(engine): State<QueryEngine>,
    TenantOf(tenant): TenantOf,
    Query(params): Query<HashMap<String, String>>,
) -> TempoResult<Response> {
    let request = request(&params)?;
    let answer = run::search(&engine, &tenant, &request).await?;
    let inspected = answer.inspected_traces;
    let traces = answer.traces.into_iter().map(metadata).collect();
    Ok(Json(SearchResponse {
        traces,
        metrics: SearchMetrics {
            inspected_traces: u32::try_from(inspected).unwrap_or(u32::MAX),
            inspected_bytes: "0".into(),
            completed_jobs: 1,
            total_jobs: 1,
        },
    })
    .into_response())
}

/// The search a request asks for.
fn request(params: &HashMap<String, String>) -> Result<run::Request> {
    let q = params.get("q").map(|q| q.trim()).filter(|q| !q.is_empty());
    let tags = params
        .get("tags")
        .map(|t| t.trim())
        .filter(|t| !t.is_empty());
    let min = duration_param(params, "minDuration")?;
    let max = duration_param(params, "maxDuration")?;
    let query = match (q, tags) {
        (Some(_), Some(_)) => {
            return Err(Error::BadRequest(
                "invalid request: q and tags cannot both be given".into(),
            ))
        }
        (Some(q), None) => with_trace_duration(traceql::parse(q)?, min, max),
        (None, tags) => traceql::legacy::query(tags.unwrap_or(""), min, max)?,
    };
    Ok(run::Request {
        query,
        range: range(params)?,
        limit: count_param(params, "limit", DEFAULT_LIMIT, MAX_LIMIT)?,
        spans_per_spanset: count_param(params, "spss", DEFAULT_SPSS, MAX_SPSS)?,
    })
}

/// `query` restricted to traces lasting `min`..`max`: every filter also requires it (the value
/// is the same for every span of a trace, so spansets are unchanged).
fn with_trace_duration(
    mut query: traceql::ast::Query,
    min: Option<i64>,
    max: Option<i64>,
) -> traceql::ast::Query {
    use traceql::ast::{Attr, Cond, Intrinsic, Literal, Op, SpansetExpr};
    fn each(expr: &mut SpansetExpr, extra: &Cond) {
        match expr {
            SpansetExpr::Filter(cond) => {
                *cond = Some(match cond.take() {
                    Some(c) => Cond::And(Box::new(c), Box::new(extra.clone())),
                    None => extra.clone(),
                })
            }
            SpansetExpr::And(a, b) | SpansetExpr::Or(a, b) | SpansetExpr::Structural(_, a, b) => {
                each(a, extra);
                each(b, extra);
            }
        }
    }
    let attr = Attr::Intrinsic(Intrinsic::TraceDuration);
    let mut extra = Vec::new();
    if let Some(min) = min {
        extra.push(Cond::Compare(attr.clone(), Op::Ge, Literal::Duration(min)));
    }
    if let Some(max) = max {
        extra.push(Cond::Compare(attr, Op::Le, Literal::Duration(max)));
    }
    if let Some(extra) = extra
        .into_iter()
        .reduce(|a, b| Cond::And(Box::new(a), Box::new(b)))
    {
        each(&mut query.spansets, &extra);
    }
    query
}

/// `start` and `end` (unix seconds) as a range in nanoseconds, `end` covering its whole second
/// (what search and tags scan).
pub(super) fn range(params: &HashMap<String, String>) -> Result<run::Range> {
    let (start_ns, end_ns) = bounds(params)?;
    Ok(run::Range {
        start_ns,
        end_ns: end_ns.map(|e| e + 999_999_999),
    })
}

/// `start` and `end` (unix seconds) in nanoseconds, as given: a metrics query's steps run from
/// one to the other exactly.
pub(super) fn bounds(params: &HashMap<String, String>) -> Result<(Option<i64>, Option<i64>)> {
    let seconds = |name: &str| -> Result<Option<i64>> {
        match params.get(name).map(|v| v.trim()).filter(|v| !v.is_empty()) {
            None => Ok(None),
            Some(v) => {
                let s: f64 = v.parse().map_err(|_| {
                    Error::BadRequest(format!("invalid {name}: {v:?} is not unix seconds"))
                })?;
                if !(0.0..=1e11).contains(&s) {
                    return Err(Error::BadRequest(format!(
                        "invalid {name}: {v} is out of range (unix seconds)"
                    )));
                }
                Ok(Some((s * 1e9) as i64))
            }
        }
    };
    let (start_ns, end_ns) = (seconds("start")?, seconds("end")?);
    if let (Some(s), Some(e)) = (start_ns, end_ns) {
        if s > e {
            return Err(Error::BadRequest(
                "invalid start and end: start is after end".into(),
            ));
        }
    }
    Ok((start_ns, end_ns))
}

/// A positive count parameter; 0 or absent means `default`.
pub(super) fn count_param(
    params: &HashMap<String, String>,
    name: &str,
    default: usize,
    max: usize,
) -> Result<usize> {
    match params.get(name).map(|v| v.trim()).filter(|v| !v.is_empty()) {
        None => Ok(default),
        Some(v) => match v.parse::<usize>() {
            Ok(0) => Ok(default),
            Ok(n) => Ok(n.min(max)),
            Err(_) => Err(Error::BadRequest(format!(
                "invalid {name}: {v:?} is not a positive integer"
            ))),
        },
    }
}

fn duration_param(params: &HashMap<String, String>, name: &str) -> Result<Option<i64>> {
    match params.get(name).map(|v| v.trim()).filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(v) => traceql::duration(v)
            .map(Some)
            .map_err(|e| Error::BadRequest(format!("invalid {name}: {e}"))),
    }
}

fn metadata(found: Found) -> TraceSearchMetadata {
    let span_sets: Vec<SpanSet> = found
        .spansets
        .into_iter()
        .map(|set| SpanSet {
            matched: u32::try_from(set.matched).unwrap_or(u32::MAX),
            attributes: set
                .attributes
                .into_iter()
                .map(|(k, v)| KeyValue::new(k, v))
                .collect(),
            spans: set
                .spans
                .into_iter()
                .map(|s| Span {
                    span_id: s.span_id,
                    name: s.name,
                    start_time_unix_nano: s.start_ns.max(0).to_string(),
                    duration_nanos: s.duration_ns.max(0).to_string(),
                    attributes: s
                        .attributes
                        .into_iter()
                        .map(|(k, v)| KeyValue::new(k, v))
                        .collect(),
                })
                .collect(),
        })
        .collect();
    TraceSearchMetadata {
        trace_id: found.trace_id,
        root_service_name: found.root_service.unwrap_or_default(),
        root_trace_name: found.root_name.unwrap_or_default(),
        start_time_unix_nano: found.start_ns.max(0).to_string(),
        duration_ms: u32::try_from(found.duration_ns.max(0) / 1_000_000).unwrap_or(u32::MAX),
        span_set: span_sets.first().cloned(),
        span_sets,
        service_stats: Default::default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn traceql_search_parameters_are_read_as_tempo_reads_them() {
        let r = request(&params(&[
            ("q", "{ name = \"x\" }"),
            ("start", "100"),
            ("end", "200"),
            ("limit", "5"),
            ("spss", "0"),
            ("whatever", "ignored"),
        ]))
        .unwrap();
        assert_eq!(r.limit, 5);
        assert_eq!(r.spans_per_spanset, DEFAULT_SPSS);
        assert_eq!(r.range.start_ns, Some(100_000_000_000));
        assert_eq!(r.range.end_ns, Some(200_999_999_999));
        let e = request(&params(&[("q", "{ name = }")]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("col 10"), "{e}");
        assert!(request(&params(&[("limit", "x")])).is_err());
        assert!(request(&params(&[("start", "300"), ("end", "200")])).is_err());
        let legacy = request(&params(&[("tags", "name=x"), ("minDuration", "1s")])).unwrap();
        assert!(format!("{:?}", legacy.query).contains("TraceDuration"));
    }

    #[test]
    fn traceql_search_answers_are_proto3_json() {
        let found = Found {
            trace_id: "0af7651916cd43dd8448eb211c80319c".into(),
            root_service: Some("svc".into()),
            root_name: Some("root".into()),
            start_ns: 1_700_000_000_000_000_000,
            duration_ns: 2_500_000,
            spansets: vec![run::FoundSet {
                spans: vec![run::FoundSpan {
                    span_id: "00f067aa0ba902b7".into(),
                    name: "tool".into(),
                    start_ns: 1_700_000_000_000_000_001,
                    duration_ns: 5,
                    attributes: vec![(
                        "status".into(),
                        serde_json::json!({"stringValue": "error"}),
                    )],
                }],
                matched: 4,
                attributes: vec![],
            }],
        };
        let v = serde_json::to_value(metadata(found)).unwrap();
        assert_eq!(v["traceID"], "0af7651916cd43dd8448eb211c80319c");
        assert_eq!(v["startTimeUnixNano"], "1700000000000000000");
        assert_eq!(v["durationMs"], 2);
        assert_eq!(v["spanSets"][0]["matched"], 4);
        assert_eq!(v["spanSets"][0]["spans"][0]["durationNanos"], "5");
        assert_eq!(v["spanSet"], v["spanSets"][0]);
        let keys: Vec<&String> = v.as_object().unwrap().keys().collect();
        for k in keys {
            assert!(
                [
                    "traceID",
                    "rootServiceName",
                    "rootTraceName",
                    "startTimeUnixNano",
                    "durationMs",
                    "spanSet",
                    "spanSets"
                ]
                .contains(&k.as_str()),
                "{k}"
            );
        }
    }
}
