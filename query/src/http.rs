//! The query HTTP API (default port 3200).
//!
//! - `POST /api/v1/sql` `{"sql": "…"}`: rows as JSON (default), CSV (`Accept: text/csv`) or Arrow
//!   IPC (`Accept: application/vnd.apache.arrow.stream`).
//! - `GET /api/v1/traces/{trace_id}`: the trace as OTLP JSON.
//! - The lineage, governance and replay API of [`crate::api`].
//! - `GET /health`: liveness.
//!
//! Every request is scoped to the tenant of its `X-Scope-OrgID` header (default `default`).
//! Errors are JSON `{"error": "…"}` with a 4xx/5xx status: among them 400 for a statement
//! beyond the guard's size limits, 503 when a query needs more memory or spill space than is
//! left, 504 when it runs longer than the query timeout. A client that goes away cancels its
//! query.

use std::task::Poll;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use cairn_schema::tenant::{Tenant, TENANT_HEADER};
use futures::StreamExt;
use serde::Deserialize;

use crate::format::Format;
use crate::{trace, Error, QueryEngine, Result};

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        match self {
            Error::Internal(_) | Error::Storage(_) => tracing::warn!(error = %self, "query failed"),
            Error::ResourcesExhausted(_) => crate::metrics::memory_refused(),
            _ => {}
        }
        (
            self.http_status(),
            Json(serde_json::json!({ "error": self.to_string() })),
        )
            .into_response()
    }
}

/// The query API router.
pub fn router(engine: QueryEngine) -> Router {
    Router::new()
        .route("/api/v1/sql", post(sql))
        .route("/api/v1/traces/{trace_id}", get(trace_by_id))
        .route("/health", get(|| async { "ok" }))
        .merge(crate::api::routes())
        .merge(cairn_telemetry::router())
        .layer(axum::middleware::from_fn(crate::metrics::track))
        .with_state(engine)
}

pub(crate) fn tenant(headers: &HeaderMap) -> Result<Tenant> {
    Ok(Tenant::from_header_bytes(
        headers.get(TENANT_HEADER).map(|v| v.as_bytes()),
    )?)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SqlRequest {
    sql: String,
}

async fn sql(
    State(engine): State<QueryEngine>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response> {
    let tenant = tenant(&headers)?;
    let request: SqlRequest = serde_json::from_slice(&body)
        .map_err(|e| Error::BadRequest(format!("body must be JSON {{\"sql\": \"…\"}}: {e}")))?;
    let format = Format::from_accept(headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()));
    let encoded = engine.sql_encoded(&tenant, &request.sql, format).await?;
    let (bytes, reservation) = (encoded.bytes, encoded.reservation);
    let length = bytes.len();
    // The result stays charged to the query memory until the body is sent and dropped.
    let body = futures::stream::once(async move {
        Ok::<_, std::convert::Infallible>(axum::body::Bytes::from(bytes))
    })
    .chain(futures::stream::poll_fn(move |_| {
        let _charged = &reservation;
        Poll::Ready(None)
    }));
    Ok((
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static(format.content_type()),
            ),
            (header::CONTENT_LENGTH, HeaderValue::from(length)),
        ],
        Body::from_stream(body),
    )
        .into_response())
}

async fn trace_by_id(
    State(engine): State<QueryEngine>,
    headers: HeaderMap,
    Path(trace_id): Path<String>,
) -> Result<Response> {
    let tenant = tenant(&headers)?;
    let data = trace::fetch(&engine, &tenant, &trace_id).await?;
    Ok(Json(data).into_response())
}
