//! `GET /api/echo` (Grafana's "Save & test") and `GET /api/status/buildinfo`.

use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;

use super::TempoResult;

/// `echo` as plain text: all Grafana checks is the status.
pub async fn echo() -> TempoResult<Response> {
    Ok((
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        "echo",
    )
        .into_response())
}

/// Tempo's build information, with Cairn's version; the field names are Tempo's.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct BuildInfo {
    version: &'static str,
    revision: &'static str,
    branch: &'static str,
    build_date: &'static str,
    build_user: &'static str,
    go_version: &'static str,
}

pub async fn buildinfo() -> TempoResult<Response> {
    Ok(Json(BuildInfo {
        version: env!("CARGO_PKG_VERSION"),
        revision: "",
        branch: "",
        build_date: "",
        build_user: "",
        go_version: "rust",
    })
    .into_response())
}
