//! OTLP/HTTP: `POST /v1/traces` with protobuf or JSON bodies, optionally gzip-compressed.
//! Responses use the request's encoding; errors carry a `google.rpc.Status` body.

use axum::body::{to_bytes, Body};
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use cairn_schema::tenant::{Tenant, TENANT_HEADER};
use prost::Message;

use crate::body::{decode_content, decode_request, Format};
use crate::grpc::response;
use crate::ingest::Ingester;
use crate::Error;

/// `google.rpc.Status`, the OTLP/HTTP error body.
#[derive(Clone, PartialEq, prost::Message, serde::Serialize)]
struct RpcStatus {
    #[prost(int32, tag = "1")]
    code: i32,
    #[prost(string, tag = "2")]
    message: String,
}

#[derive(Clone)]
struct AppState {
    ingester: Ingester,
    max_message_bytes: usize,
}

/// The OTLP/HTTP router.
pub fn router(ingester: Ingester, max_message_bytes: usize) -> Router {
    Router::new()
        .route("/v1/traces", post(export))
        .route(
            "/metrics",
            axum::routing::get(|| async {
                (
                    [(
                        header::CONTENT_TYPE,
                        "text/plain; version=0.0.4; charset=utf-8",
                    )],
                    crate::metrics::metrics().render(),
                )
            }),
        )
        .with_state(AppState {
            ingester,
            max_message_bytes,
        })
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Result<Option<&'a str>, Error> {
    headers
        .get(name)
        .map(|v| {
            v.to_str()
                .map_err(|_| Error::BadRequest(format!("header {name} is not ASCII")))
        })
        .transpose()
}

async fn export(State(state): State<AppState>, headers: HeaderMap, body: Body) -> Response {
    let format = Format::from_content_type(
        header_str(&headers, header::CONTENT_TYPE.as_str())
            .ok()
            .flatten(),
    );
    let reply_format = *format.as_ref().unwrap_or(&Format::Protobuf);
    match handle(&state, &headers, format, body).await {
        Ok(resp) => encoded(
            reply_format,
            http::StatusCode::OK,
            resp.encode_to_vec(),
            || serde_json::to_vec(&resp).unwrap_or_default(),
        ),
        Err(e) => error_response(reply_format, e),
    }
}

async fn handle(
    state: &AppState,
    headers: &HeaderMap,
    format: Result<Format, Error>,
    body: Body,
) -> Result<cairn_schema::otlp::collector::trace::v1::ExportTraceServiceResponse, Error> {
    let format = format?;
    let tenant = Tenant::from_header_bytes(headers.get(TENANT_HEADER).map(|v| v.as_bytes()))?;
    let raw = to_bytes(body, state.max_message_bytes).await.map_err(|e| {
        Error::TooLarge(format!(
            "body is larger than {} bytes or unreadable: {e}",
            state.max_message_bytes
        ))
    })?;
    let bytes = decode_content(
        header_str(headers, header::CONTENT_ENCODING.as_str())?,
        &raw,
        state.max_message_bytes,
    )?;
    let request = decode_request(format, &bytes)?;
    let outcome = state.ingester.export(tenant, request).await?;
    Ok(response(outcome))
}

fn encoded(
    format: Format,
    status: http::StatusCode,
    protobuf: Vec<u8>,
    json: impl FnOnce() -> Vec<u8>,
) -> Response {
    let body = match format {
        Format::Protobuf => protobuf,
        Format::Json => json(),
    };
    (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static(format.content_type()),
        )],
        body,
    )
        .into_response()
}

fn error_response(format: Format, error: Error) -> Response {
    crate::metrics::refused(error.reason());
    if matches!(error, Error::Internal(_) | Error::Storage(_)) {
        tracing::warn!(%error, "OTLP/HTTP export failed");
    }
    let status = RpcStatus {
        code: error.grpc_code() as i32,
        message: error.to_string(),
    };
    let mut resp = encoded(format, error.http_status(), status.encode_to_vec(), || {
        serde_json::to_vec(&status).unwrap_or_default()
    });
    if let Some(secs) = error.retry_after_secs() {
        resp.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    resp
}
