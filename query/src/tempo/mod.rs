//! The Tempo-compatible HTTP API, under `/tempo`: Grafana's built-in Tempo data source pointed at
//! `http://<cairn>:3200/tempo` shows traces, searches them with TraceQL and lists attributes.
//!
//! Data flow: every request is scoped to the tenant of `X-Scope-OrgID`, as Tempo does. Trace by
//! id ([`trace`]) re-encodes the stored spans as Tempo's protobuf or proto3 JSON; search and the
//! metrics queries ([`search`], [`metrics`]) parse TraceQL ([`crate::traceql`]) and run it as SQL
//! over `spans`; tags and their values ([`tags`]) list the attributes a person can search,
//! Cairn's promoted agent columns among them. Answers use Tempo's JSON shapes exactly (proto3
//! JSON: camelCase, 64-bit numbers as strings, no extra fields). Errors are plain text with the
//! status of [`crate::Error`], which is what Grafana shows.

mod info;
mod json;
mod metrics;
mod search;
mod tags;
mod trace;

use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use crate::{Error, QueryEngine};

/// The path the Tempo API is served under; Grafana's data source URL ends with it.
pub const PREFIX: &str = "/tempo";

/// The Tempo API routes, under [`PREFIX`].
pub fn routes() -> Router<QueryEngine> {
    let api = Router::new()
        .route("/api/echo", get(info::echo))
        .route("/api/status/buildinfo", get(info::buildinfo))
        .route("/api/v2/traces/{trace_id}", get(trace::v2))
        .route("/api/traces/{trace_id}", get(trace::v1))
        .route("/api/search", get(search::search))
        .route("/api/v2/search/tags", get(tags::tags_v2))
        .route("/api/search/tags", get(tags::tags_v1))
        .route("/api/v2/search/tag/{tag}/values", get(tags::values_v2))
        .route("/api/search/tag/{tag}/values", get(tags::values_v1))
        .route("/api/metrics/query_range", get(metrics::query_range))
        .route("/api/metrics/query", get(metrics::query_instant));
    Router::new().nest(PREFIX, api)
}

/// An error answered the way Tempo answers it: the message as plain text, with the status of
/// the error's class (400 for a TraceQL syntax error, 404 for an unknown trace, …).
pub struct TempoError(pub Error);

impl From<Error> for TempoError {
    fn from(e: Error) -> Self {
        Self(e)
    }
}

impl IntoResponse for TempoError {
    fn into_response(self) -> Response {
        let status = self.0.http_status();
        if status.is_server_error() {
            // Ours: logged with an id, answered with the id only (as the JSON API does).
            let id = uuid::Uuid::now_v7().simple().to_string();
            tracing::warn!(error = %self.0, error_id = %id, "tempo api request failed");
            return (status, format!("internal error (error id {id})")).into_response();
        }
        let retry = self.0.retry_after_secs();
        let mut response = (status, self.0.to_string()).into_response();
        if let Some(secs) = retry {
            response
                .headers_mut()
                .insert(http::header::RETRY_AFTER, http::HeaderValue::from(secs));
        }
        response
    }
}

/// What Tempo handlers return.
pub type TempoResult<T> = std::result::Result<T, TempoError>;
