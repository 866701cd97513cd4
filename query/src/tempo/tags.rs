//! Attribute names and values: `GET /api/v2/search/tags`, `GET /api/v2/search/tag/{tag}/values`
//! and their v1 forms.
//!
//! Names are Cairn's promoted names (always searchable) and the keys present in the tenant's
//! span and resource attribute maps, read from at most [`SAMPLED_SPANS`] spans of the time range
//! (`start`/`end`, unix seconds), so that listing stays fast on any store. Values are the
//! distinct values among the spans of the range meeting the TraceQL filter `q` (ignored when it
//! does not parse, as Tempo ignores it), at most `limit`.

use std::collections::{BTreeSet, HashMap};

use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use cairn_schema::tenant::Tenant;
use serde_json::Value;

use super::json::{
    SearchTagValuesResponse, SearchTagValuesV2Response, SearchTagsResponse, SearchTagsV2Response,
    SearchTagsV2Scope, TagValue,
};
use super::search::{count_param, range};
use super::TempoResult;
use crate::api::extract::TenantOf;
use crate::traceql::ast::{Attr, Intrinsic, Scope, SpansetExpr};
use crate::traceql::attrs::{target, Target, ValueType, INTRINSICS, PROMOTED};
use crate::traceql::search::{source, Range};
use crate::traceql::sql::{condition, typed_text, Params};
use crate::{traceql, Error, QueryEngine, Result};

/// Spans whose attribute keys a tag listing reads at most.
pub const SAMPLED_SPANS: usize = 100_000;
const DEFAULT_TAG_LIMIT: usize = 5_000;
const DEFAULT_VALUE_LIMIT: usize = 1_000;
const MAX_LIMIT: usize = 100_000;

/// Query-string parameters.
type QueryParams = HashMap<String, String>;

pub async fn tags_v2(
    State(engine): State<QueryEngine>,
    TenantOf(tenant): TenantOf,
    Query(params): Query<QueryParams>,
) -> TempoResult<Response> {
    let scope = params.get("scope").map(String::as_str).unwrap_or("all");
    let limit = count_param(&params, "limit", DEFAULT_TAG_LIMIT, MAX_LIMIT)?;
    let wanted: &[&str] = match scope {
        "" | "all" => &["span", "resource", "intrinsic"],
        "span" => &["span"],
        "resource" => &["resource"],
        "intrinsic" => &["intrinsic"],
        "event" | "link" | "instrumentation" => &[],
        other => {
            return Err(Error::BadRequest(format!(
                "invalid scope {other:?}: one of span, resource, intrinsic, all"
            ))
            .into())
        }
    };
    let (span, resource) = if wanted.iter().any(|s| *s != "intrinsic") {
        names(&engine, &tenant, &range(&params)?).await?
    } else {
        Default::default()
    };
    let scopes = wanted
        .iter()
        .map(|scope| SearchTagsV2Scope {
            name: (*scope).to_owned(),
            tags: match *scope {
                "span" => span.iter().take(limit).cloned().collect(),
                "resource" => resource.iter().take(limit).cloned().collect(),
                _ => INTRINSICS.iter().map(|i| i.name().to_owned()).collect(),
            },
        })
        .collect();
    Ok(Json(SearchTagsV2Response { scopes }).into_response())
}

pub async fn tags_v1(
    State(engine): State<QueryEngine>,
    TenantOf(tenant): TenantOf,
    Query(params): Query<QueryParams>,
) -> TempoResult<Response> {
    let limit = count_param(&params, "limit", DEFAULT_TAG_LIMIT, MAX_LIMIT)?;
    let (span, resource) = names(&engine, &tenant, &range(&params)?).await?;
    let all: BTreeSet<String> = span.into_iter().chain(resource).collect();
    Ok(Json(SearchTagsResponse {
        tag_names: all.into_iter().take(limit).collect(),
    })
    .into_response())
}

pub async fn values_v2(
    State(engine): State<QueryEngine>,
    TenantOf(tenant): TenantOf,
    Path(tag): Path<String>,
    Query(params): Query<QueryParams>,
) -> TempoResult<Response> {
    let attr = traceql::attribute(&decoded(&tag))?;
    let tag_values = values(&engine, &tenant, &attr, &params).await?;
    Ok(Json(SearchTagValuesV2Response { tag_values }).into_response())
}

pub async fn values_v1(
    State(engine): State<QueryEngine>,
    TenantOf(tenant): TenantOf,
    Path(tag): Path<String>,
    Query(params): Query<QueryParams>,
) -> TempoResult<Response> {
    let tag = decoded(&tag);
    // v1 names are unscoped: `service.name`, or an intrinsic.
    let attr = match traceql::attribute(&tag) {
        Ok(attr @ Attr::Intrinsic(_)) => attr,
        _ => Attr::Named(Scope::Any, tag),
    };
    let values = values(&engine, &tenant, &attr, &params).await?;
    Ok(Json(SearchTagValuesResponse {
        tag_values: values.into_iter().map(|v| v.value).collect(),
    })
    .into_response())
}

/// `tag` with a second level of percent-encoding removed (older Grafana encoded twice).
fn decoded(tag: &str) -> String {
    if !tag.contains('%') {
        return tag.to_owned();
    }
    let bytes = tag.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8(out).unwrap_or_else(|_| tag.to_owned())
}

/// Searchable span and resource attribute names: promoted names and the keys of the sampled
/// spans' maps, sorted.
async fn names(
    engine: &QueryEngine,
    tenant: &Tenant,
    range: &Range,
) -> Result<(BTreeSet<String>, BTreeSet<String>)> {
    let mut span: BTreeSet<String> = BTreeSet::new();
    let mut resource: BTreeSet<String> = BTreeSet::new();
    for p in PROMOTED {
        match p.scope {
            Scope::Resource => resource.insert(p.name.to_owned()),
            _ => span.insert(p.name.to_owned()),
        };
    }
    let mut params = Params::default();
    let bounds = range.sql("start_time", &mut params);
    let sql = "SELECT DISTINCT scope, k FROM (
            SELECT 'span' AS scope, unnest(map_keys(attributes)) AS k FROM sampled
            UNION ALL
            SELECT 'resource' AS scope, unnest(map_keys(resource_attributes)) AS k FROM sampled
         )"
    .replace(
        "sampled",
        &format!(
            "(SELECT attributes, resource_attributes FROM spans WHERE {bounds} LIMIT {SAMPLED_SPANS})"
        ),
    );
    for row in engine.rows(tenant, &sql, params.values).await? {
        let (Some(scope), Some(key)) = (
            row.get("scope").and_then(Value::as_str),
            row.get("k").and_then(Value::as_str),
        ) else {
            continue;
        };
        if scope == "span" {
            span.insert(key.to_owned());
        } else {
            resource.insert(key.to_owned());
        }
    }
    Ok((span, resource))
}

/// The distinct values of `attr` among the spans of the request's range that meet its `q`.
async fn values(
    engine: &QueryEngine,
    tenant: &Tenant,
    attr: &Attr,
    params: &QueryParams,
) -> Result<Vec<TagValue>> {
    let limit = count_param(params, "limit", DEFAULT_VALUE_LIMIT, MAX_LIMIT)?;
    let keyword = |values: &[&str]| {
        values
            .iter()
            .map(|v| TagValue {
                value_type: "keyword".into(),
                value: (*v).to_owned(),
            })
            .collect()
    };
    match attr {
        Attr::Intrinsic(Intrinsic::Status) => return Ok(keyword(&["error", "ok", "unset"])),
        Attr::Intrinsic(Intrinsic::Kind) => {
            return Ok(keyword(&[
                "client",
                "consumer",
                "internal",
                "producer",
                "server",
                "unspecified",
            ]))
        }
        Attr::Intrinsic(Intrinsic::Duration | Intrinsic::TraceDuration) => return Ok(Vec::new()),
        _ => {}
    }
    let mut sql_params = Params::default();
    let bounds = range(params)?.sql("start_time", &mut sql_params);
    // The other filters of the search being written; ignored when incomplete.
    let filter = params
        .get("q")
        .and_then(|q| traceql::parse(q).ok())
        .and_then(|q| match q.spansets {
            SpansetExpr::Filter(Some(cond)) => Some(cond),
            _ => None,
        });
    let trace_columns = matches!(attr, Attr::Intrinsic(i) if i.is_trace_level())
        || filter.as_ref().is_some_and(|c| {
            format!("{c:?}").contains("RootName")
                || format!("{c:?}").contains("RootService")
                || format!("{c:?}").contains("TraceDuration")
        });
    let condition = match &filter {
        Some(c) => condition(c, &mut sql_params),
        None => "TRUE".to_owned(),
    };
    let (value, tag) = match target(attr) {
        Target::Column(column, ValueType::TextList) => {
            (format!("unnest({column})"), "'string'".to_owned())
        }
        _ => typed_text(attr),
    };
    let sql = format!(
        "SELECT DISTINCT v, t FROM (
            SELECT {value} AS v, {tag} AS t FROM {} WHERE {bounds} AND {condition}
         ) WHERE v IS NOT NULL AND v <> '' LIMIT {limit}",
        source(trace_columns, &bounds)
    );
    let mut out: Vec<TagValue> = engine
        .rows(tenant, &sql, sql_params.values)
        .await?
        .into_iter()
        .filter_map(|row| {
            let value = row.get("v").and_then(Value::as_str)?.to_owned();
            let value_type = match row.get("t").and_then(Value::as_str) {
                Some("int") => "int",
                Some("double") => "float",
                Some("bool") => "bool",
                _ => "string",
            };
            Some(TagValue {
                value_type: value_type.into(),
                value,
            })
        })
        .collect();
    out.sort();
    out.dedup();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceql_tags_in_paths_are_decoded_once_more_when_encoded_twice() {
        assert_eq!(decoded("span.gen_ai.tool.name"), "span.gen_ai.tool.name");
        assert_eq!(
            decoded("resource%2Eservice%2Ename"),
            "resource.service.name"
        );
        assert_eq!(decoded("a%2"), "a%2");
        assert_eq!(decoded("100%"), "100%");
    }
}
