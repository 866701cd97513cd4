//! OTLP/HTTP: `POST /v1/traces` with protobuf or JSON bodies, optionally gzip-compressed.
//! Responses use the request's encoding; errors carry a `google.rpc.Status` body.
//! Each request is admitted by [`cairn_auth`] (role ingest or admin with auth on) before its
//! body is read; its principal's tenant is the one written.

use std::net::{IpAddr, SocketAddr};

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::extract::State;
use axum::http::{header, Extensions, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use bytes::{Bytes, BytesMut};
use cairn_auth::{Auth, AuthError, Need};
use cairn_schema::tenant::Tenant;
use futures::StreamExt;
use prost::Message;

use crate::admission::Charge;
use crate::body::Format;
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
    auth: Auth,
}

/// The OTLP/HTTP router.
pub fn router(ingester: Ingester, auth: Auth) -> Router {
    Router::new()
        .route("/v1/traces", post(export))
        .merge(cairn_telemetry::router())
        .with_state(AppState { ingester, auth })
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

async fn export(
    State(state): State<AppState>,
    extensions: Extensions,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let peer = extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    let format = Format::from_content_type(
        header_str(&headers, header::CONTENT_TYPE.as_str())
            .ok()
            .flatten(),
    );
    let reply_format = *format.as_ref().unwrap_or(&Format::Protobuf);
    let principal = state
        .auth
        .resolve_headers(&headers, peer, Need::Ingest)
        .await;
    let tenant = match principal {
        Ok(principal) => principal.tenant,
        Err(refusal) => {
            cairn_net::drain(body, state.ingester.limits().max_message_bytes);
            return auth_refusal(reply_format, refusal);
        }
    };
    match handle(&state, tenant, peer, &headers, format, body).await {
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
    tenant: Tenant,
    peer: Option<IpAddr>,
    headers: &HeaderMap,
    format: Result<Format, Error>,
    body: Body,
) -> Result<cairn_normalize::otlp::collector::trace::v1::ExportTraceServiceResponse, Error> {
    let format = format?;
    let encoding = header_str(headers, header::CONTENT_ENCODING.as_str())?.map(str::to_owned);
    let length = header_str(headers, header::CONTENT_LENGTH.as_str())?
        .map(|v| {
            v.trim()
                .parse::<usize>()
                .map_err(|_| Error::BadRequest(format!("Content-Length {v:?} is not a number")))
        })
        .transpose()?;
    let mut charge = state.ingester.budget().charge();
    let bytes = read_body(
        body,
        length,
        state.ingester.limits().max_message_bytes,
        &mut charge,
    )
    .await?;
    let body = crate::ingest::Body {
        format,
        encoding,
        bytes,
    };
    let outcome = state.ingester.export(tenant, peer, body, charge).await?;
    Ok(response(outcome))
}

/// Reads a request body of at most `limit` bytes, charging it to `charge` before each part is
/// buffered (all of it up front when the length is declared).
async fn read_body(
    body: Body,
    length: Option<usize>,
    limit: usize,
    charge: &mut Charge,
) -> Result<Bytes, Error> {
    let too_large = || Error::TooLarge(format!("body is larger than {limit} bytes"));
    if length.is_some_and(|n| n > limit) {
        cairn_net::drain(body, limit);
        return Err(too_large());
    }
    let mut buf = BytesMut::with_capacity(0);
    if let Some(n) = length {
        if let Err(refused) = charge.grow_to(n, "the request body") {
            cairn_net::drain(body, limit);
            return Err(refused);
        }
        buf.reserve(n);
    }
    let mut frames = body.into_data_stream();
    while let Some(chunk) = frames.next().await {
        let chunk =
            chunk.map_err(|e| Error::BadRequest(format!("request body is unreadable: {e}")))?;
        let len = buf.len() + chunk.len();
        if len > limit {
            return Err(too_large());
        }
        if len > buf.capacity() {
            let grown = len.max(buf.capacity().saturating_mul(2)).min(limit);
            charge.grow_to(grown, "the request body")?;
            buf.reserve(grown - buf.len());
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf.freeze())
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

/// A request [`cairn_auth`] refused: its status (401 with `WWW-Authenticate`, 403, 400, 429
/// with `Retry-After`) and a `google.rpc.Status` body.
fn auth_refusal(format: Format, error: AuthError) -> Response {
    crate::metrics::refused(error.reason());
    let status = RpcStatus {
        code: error.grpc_code() as i32,
        message: error.to_string(),
    };
    let mut resp = encoded(format, error.http_status(), status.encode_to_vec(), || {
        serde_json::to_vec(&status).unwrap_or_default()
    });
    resp.headers_mut().extend(error.http_headers());
    resp
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
