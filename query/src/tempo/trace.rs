//! Trace by id: `GET /api/v2/traces/{id}` (`TraceByIDResponse`) and `GET /api/traces/{id}`
//! (a bare `Trace`), as protobuf when `Accept` names `application/protobuf`, else proto3 JSON.
//!
//! The id is hex of up to 32 digits, left-padded with zeros as Tempo does. `start` and `end`
//! (unix seconds, optional) restrict the read to the hour partitions that overlap them, as Tempo
//! reads only the blocks that overlap them: the spans of the trace stored there are returned.
//! Every resource carries `service.name` (Grafana skips a resource without attributes).

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use axum::Json;
use cairn_normalize::otlp::common::v1::{any_value, AnyValue, KeyValue};
use cairn_normalize::otlp::trace::v1::ResourceSpans;
use cairn_schema::layout::HOUR_NANOS;
use prost::Message;
use serde::{Deserialize, Serialize};

use super::{TempoError, TempoResult};
use crate::api::extract::{Params, TenantOf};
use crate::{Error, QueryEngine};

/// `tempopb.Trace`: the spans of one trace, grouped by resource.
#[derive(Clone, PartialEq, Message, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Trace {
    #[prost(message, repeated, tag = "1")]
    pub resource_spans: Vec<ResourceSpans>,
}

/// `tempopb.TraceByIDResponse`, of which Cairn sets only the trace: its `metrics` (2) stay
/// empty, its `status` (3) `COMPLETE` and its `message` (4) empty, as proto3 omits them.
#[derive(Clone, PartialEq, Message, Serialize)]
pub struct TraceByIdResponse {
    #[prost(message, optional, tag = "1")]
    pub trace: Option<Trace>,
}

/// The time range of a trace lookup, in unix seconds. Other parameters Tempo knows
/// (`blockStart`, `mode`, …) are ignored rather than refused, as Tempo ignores unknown ones.
#[derive(Deserialize)]
pub struct Range {
    start: Option<i64>,
    end: Option<i64>,
}

/// The resource attribute Grafana names a span's service by.
const SERVICE_NAME: &str = "service.name";
/// The service of a resource that names none (the OpenTelemetry default).
const UNKNOWN_SERVICE: &str = "unknown_service";

pub async fn v2(
    state: State<QueryEngine>,
    tenant: Result<TenantOf, Error>,
    id: Path<String>,
    range: Result<Params<Range>, Error>,
    headers: HeaderMap,
) -> TempoResult<Response> {
    let trace = lookup(state, tenant, id, range).await?;
    Ok(answer(&TraceByIdResponse { trace: Some(trace) }, &headers))
}

pub async fn v1(
    state: State<QueryEngine>,
    tenant: Result<TenantOf, Error>,
    id: Path<String>,
    range: Result<Params<Range>, Error>,
    headers: HeaderMap,
) -> TempoResult<Response> {
    let trace = lookup(state, tenant, id, range).await?;
    Ok(answer(&trace, &headers))
}

/// The trace of the request's id and range for its tenant.
async fn lookup(
    State(engine): State<QueryEngine>,
    tenant: Result<TenantOf, Error>,
    Path(id): Path<String>,
    range: Result<Params<Range>, Error>,
) -> TempoResult<Trace> {
    let TenantOf(tenant) = tenant?;
    let Params(range) = range?;
    let id = padded_id(&id)?;
    let starts = hours_of(&range)?;
    let data = crate::trace::fetch_within(&engine, &tenant, &id, starts).await?;
    let mut resource_spans = data.resource_spans;
    resource_spans.iter_mut().for_each(name_service);
    Ok(Trace { resource_spans })
}

/// `text` as 32 lowercase hex digits, left-padded with zeros; a trace id of zeros is unknown.
fn padded_id(text: &str) -> Result<String, TempoError> {
    if text.is_empty() || text.len() > 32 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(
            Error::BadRequest(format!("trace id {text:?} is not 1 to 32 hex digits")).into(),
        );
    }
    if text.bytes().all(|b| b == b'0') {
        return Err(Error::NotFound(format!("trace {text} not found")).into());
    }
    Ok(format!("{:0>32}", text.to_ascii_lowercase()))
}

/// The start times (inclusive nanoseconds) of the hour partitions that overlap `range`, if it
/// bounds anything.
fn hours_of(range: &Range) -> Result<Option<(i64, i64)>, TempoError> {
    if range.start.is_none() && range.end.is_none() {
        return Ok(None);
    }
    let nanos = |s: i64| s.saturating_mul(1_000_000_000);
    let lo = range.start.map_or(i64::MIN, nanos);
    let hi = range.end.map_or(i64::MAX, nanos);
    if lo > hi {
        return Err(Error::BadRequest(format!(
            "start {} is after end {}",
            range.start.unwrap_or_default(),
            range.end.unwrap_or_default()
        ))
        .into());
    }
    let floor = |t: i64| t.div_euclid(HOUR_NANOS).saturating_mul(HOUR_NANOS);
    Ok(Some((floor(lo), floor(hi).saturating_add(HOUR_NANOS - 1))))
}

/// Adds `service.name` to a resource that has none: [`UNKNOWN_SERVICE`], as the stored
/// service name of its spans is that attribute.
fn name_service(rs: &mut ResourceSpans) {
    let resource = rs.resource.get_or_insert_with(Default::default);
    if !resource.attributes.iter().any(|kv| kv.key == SERVICE_NAME) {
        resource.attributes.insert(
            0,
            KeyValue {
                key: SERVICE_NAME.into(),
                value: Some(AnyValue {
                    value: Some(any_value::Value::StringValue(UNKNOWN_SERVICE.into())),
                }),
                ..Default::default()
            },
        );
    }
}

/// `message` as protobuf if the client accepts it, else as proto3 JSON.
fn answer<M: Message + Serialize>(message: &M, headers: &HeaderMap) -> Response {
    let protobuf = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("application/protobuf"));
    if protobuf {
        (
            [(header::CONTENT_TYPE, "application/protobuf")],
            message.encode_to_vec(),
        )
            .into_response()
    } else {
        Json(message).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_padded_and_checked() {
        assert_eq!(padded_id("ABC").ok().unwrap(), format!("{:0>32}", "abc"));
        assert!(padded_id(&"a".repeat(33)).is_err());
        assert!(padded_id("xyz").is_err());
        assert!(padded_id("").is_err());
        assert_eq!(padded_id("000").err().unwrap().0.http_status(), 404);
    }

    #[test]
    fn ranges_cover_whole_hours() {
        let r = |start, end| Range { start, end };
        assert_eq!(hours_of(&r(None, None)).ok().unwrap(), None);
        assert_eq!(
            hours_of(&r(Some(3600 + 5), Some(7200 + 1))).ok().unwrap(),
            Some((HOUR_NANOS, 3 * HOUR_NANOS - 1))
        );
        assert!(hours_of(&r(Some(10), Some(5))).is_err());
    }

    #[test]
    fn every_resource_names_its_service() {
        let mut rs = ResourceSpans::default();
        name_service(&mut rs);
        let attrs = &rs.resource.unwrap().attributes;
        assert_eq!(attrs[0].key, SERVICE_NAME);
    }
}
