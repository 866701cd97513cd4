//! The query HTTP API (default port 3200).
//!
//! - `POST /api/v1/sql` `{"sql": "…"}`: rows as JSON (default), CSV (`Accept: text/csv`) or Arrow
//!   IPC (`Accept: application/vnd.apache.arrow.stream`).
//! - `GET /api/v1/traces/{trace_id}`: the trace as OTLP JSON.
//! - `GET /api/v1/whoami`: the tenant and role of the request's principal (the web UI asks it
//!   to check a token before keeping it, and to show the token's tenant).
//! - The lineage, governance and replay API of [`crate::api`].
//! - `GET /health`: liveness.
//! - Any other path: the web UI ([`cairn_ui`]).
//!
//! Answers are gzip-compressed when the client accepts it.
//! Every API request is scoped to a tenant by [`cairn_auth`]: with auth off the one its
//! `X-Scope-OrgID` header names (default `default`), with it on the one of its bearer token
//! (role read or admin; an admin names any tenant). `/health`, `/ready`, `/live`, `/metrics` and
//! the UI's assets answer without a token.
//! Path ids and query parameters are typed ([`crate::api::extract`]): an unknown or malformed one
//! is a 400 naming it. Errors are JSON `{"error": "…"}` with a 4xx/5xx status; a fault of ours
//! (500, 502) says only `internal error (error id …)` with `error_id`, the id the log line
//! carries. Among them: 400 for a statement beyond the guard's size limits, 503 when a query needs more memory or spill space than is
//! left, 504 when it runs longer than the query timeout. A client that goes away cancels its
//! query.

use std::task::Poll;

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures::StreamExt;
use serde::Deserialize;
use tower_http::compression::CompressionLayer;

use crate::api::extract::{ApiPath, TenantOf, TraceId};
use crate::format::Format;
use crate::{trace, Error, QueryEngine, Result};

impl IntoResponse for Error {
    /// The one mapping of errors to answers. A fault of the client's is explained to it; one of
    /// ours (a bug, a failing store) is logged with an id, and the client gets only the id to
    /// quote, not our internals.
    fn into_response(self) -> Response {
        let body = match &self {
            Error::Internal(_) | Error::Storage(_) => {
                let id = uuid::Uuid::now_v7().simple().to_string();
                tracing::warn!(error = %self, error_id = %id, "query failed");
                let what = match self {
                    Error::Storage(_) => "storage error",
                    _ => "internal error",
                };
                serde_json::json!({ "error": format!("{what} (error id {id})"), "error_id": id })
            }
            Error::ResourcesExhausted(_) => {
                crate::metrics::memory_refused();
                serde_json::json!({ "error": self.to_string() })
            }
            _ => serde_json::json!({ "error": self.to_string() }),
        };
        let retry = self.retry_after_secs();
        let mut response = (self.http_status(), Json(body)).into_response();
        if let Some(secs) = retry {
            response
                .headers_mut()
                .insert(http::header::RETRY_AFTER, http::HeaderValue::from(secs));
        }
        response
    }
}

/// The query API router.
pub fn router(engine: QueryEngine, auth: cairn_auth::Auth) -> Router {
    Router::new()
        .route("/api/v1/sql", post(sql))
        .route("/api/v1/traces/{trace_id}", get(trace_by_id))
        .route("/api/v1/whoami", get(whoami))
        .merge(crate::api::routes())
        .merge(crate::tempo::routes())
        // Every route above needs a principal; those below and the UI's assets do not.
        .route_layer(axum::middleware::from_fn_with_state(
            auth,
            cairn_auth::http::require_read,
        ))
        .route("/health", get(|| async { "ok" }))
        .merge(cairn_telemetry::router())
        .fallback_service(cairn_ui::router())
        .layer(axum::middleware::from_fn(crate::metrics::track))
        // Answers gzip-compressed for clients that accept it (a run's steps shrink ~10×), at
        // the fastest level; the UI's assets come compressed already and pass as they are.
        .layer(
            CompressionLayer::new()
                .gzip(true)
                .quality(tower_http::CompressionLevel::Fastest),
        )
        .with_state(engine)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SqlRequest {
    sql: String,
}

async fn sql(
    State(engine): State<QueryEngine>,
    TenantOf(tenant): TenantOf,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response> {
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

/// `{"tenant": …, "role": …}` of the principal the gate resolved: with auth on the token's
/// tenant (or, for an admin, the one `X-Scope-OrgID` names) and role; with it off the header's
/// tenant and `admin`.
async fn whoami(
    axum::Extension(principal): axum::Extension<cairn_auth::Principal>,
) -> Json<serde_json::Value> {
    Json(serde_json::json!({
        "tenant": principal.tenant.as_str(),
        "role": principal.role.as_str(),
    }))
}

async fn trace_by_id(
    State(engine): State<QueryEngine>,
    TenantOf(tenant): TenantOf,
    ApiPath(trace_id): ApiPath<TraceId>,
) -> Result<Response> {
    let data = trace::fetch(&engine, &tenant, trace_id.as_str()).await?;
    Ok(Json(data).into_response())
}
