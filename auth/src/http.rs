//! The query API's gate: an axum middleware that resolves each request's [`Principal`] (role
//! read or admin) and hands it to the handlers in the request's extensions, or answers the
//! refusal itself (JSON `{"error": "…"}`, `WWW-Authenticate` on 401, `Retry-After` on 429).

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::{Auth, Need, Principal};

/// Admits a request that may read, with its principal in its extensions.
pub async fn require_read(State(auth): State<Auth>, mut request: Request, next: Next) -> Response {
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    let principal = auth
        .resolve_headers(request.headers(), peer, Need::Read)
        .await;
    match principal {
        Ok(principal) => {
            request.extensions_mut().insert::<Principal>(principal);
            next.run(request).await
        }
        Err(e) => e.into_response(),
    }
}
