//! The errors of authentication, classified by whose fault they are and mapped once to HTTP and
//! gRPC answers.

use thiserror::Error;

/// Why a request carries no valid credential (HTTP 401, gRPC `UNAUTHENTICATED`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// No `Authorization` header.
    Missing,
    /// An `Authorization` header that is not `Bearer <token>`.
    NotBearer,
    /// Not a token of the file, or not its secret.
    Invalid,
    /// A token past its expiry.
    Expired,
    /// A revoked token.
    Revoked,
}

impl Failure {
    /// The label of `cairn_auth_failures_total`.
    pub fn reason(self) -> &'static str {
        match self {
            Failure::Missing => "missing",
            Failure::NotBearer => "malformed",
            Failure::Invalid => "invalid",
            Failure::Expired => "expired",
            Failure::Revoked => "revoked",
        }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Failure::Missing => "missing token: send `Authorization: Bearer <token>`",
            Failure::NotBearer => "the Authorization header must be `Bearer <token>`",
            Failure::Invalid => "invalid token",
            Failure::Expired => "token expired",
            Failure::Revoked => "token revoked",
        })
    }
}

/// Errors of authentication.
#[derive(Debug, Error)]
pub enum AuthError {
    /// The client's fault: a malformed request (a repeated `Authorization` or `X-Scope-OrgID`
    /// header, a bad tenant name).
    #[error("{0}")]
    BadRequest(String),
    /// The client's fault: no valid token.
    #[error("{0}")]
    Unauthenticated(Failure),
    /// The client's fault: a valid token that may not do this (its role, another tenant).
    #[error("{0}")]
    Forbidden(String),
    /// The client's fault: too many credentials checked from its address; retry later.
    #[error("too many failed logins from this address; retry in {retry_after_secs} s")]
    RateLimited { retry_after_secs: u64 },
    /// The operator's fault: the token file cannot be read or parsed.
    #[error("token file {path}: {message}")]
    TokenFile { path: String, message: String },
    /// A fault of ours.
    #[error("internal error: {0}")]
    Internal(String),
}

pub type Result<T, E = AuthError> = std::result::Result<T, E>;

impl AuthError {
    pub fn http_status(&self) -> http::StatusCode {
        use http::StatusCode as S;
        match self {
            AuthError::BadRequest(_) => S::BAD_REQUEST,
            AuthError::Unauthenticated(_) => S::UNAUTHORIZED,
            AuthError::Forbidden(_) => S::FORBIDDEN,
            AuthError::RateLimited { .. } => S::TOO_MANY_REQUESTS,
            AuthError::TokenFile { .. } | AuthError::Internal(_) => S::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn grpc_code(&self) -> tonic::Code {
        use tonic::Code as C;
        match self {
            AuthError::BadRequest(_) => C::InvalidArgument,
            AuthError::Unauthenticated(_) => C::Unauthenticated,
            AuthError::Forbidden(_) => C::PermissionDenied,
            AuthError::RateLimited { .. } => C::ResourceExhausted,
            AuthError::TokenFile { .. } | AuthError::Internal(_) => C::Internal,
        }
    }

    /// A short label for the refusal metrics of each surface.
    pub fn reason(&self) -> &'static str {
        match self {
            AuthError::BadRequest(_) => "bad_request",
            AuthError::Unauthenticated(_) => "unauthenticated",
            AuthError::Forbidden(_) => "forbidden",
            AuthError::RateLimited { .. } => "rate_limited",
            AuthError::TokenFile { .. } | AuthError::Internal(_) => "internal",
        }
    }

    /// Seconds to wait before retrying, when waiting helps.
    pub fn retry_after_secs(&self) -> Option<u64> {
        match self {
            AuthError::RateLimited { retry_after_secs } => Some(*retry_after_secs),
            _ => None,
        }
    }

    /// The headers an HTTP answer carries besides its body: `WWW-Authenticate: Bearer` on a
    /// 401, `Retry-After` on a 429.
    pub fn http_headers(&self) -> http::HeaderMap {
        let mut headers = http::HeaderMap::new();
        if let AuthError::Unauthenticated(_) = self {
            headers.insert(
                http::header::WWW_AUTHENTICATE,
                http::HeaderValue::from_static("Bearer realm=\"cairn\""),
            );
        }
        if let Some(secs) = self.retry_after_secs() {
            headers.insert(http::header::RETRY_AFTER, http::HeaderValue::from(secs));
        }
        headers
    }
}

impl From<cairn_schema::Error> for AuthError {
    fn from(e: cairn_schema::Error) -> Self {
        match e {
            cairn_schema::Error::InvalidInput(m) => AuthError::BadRequest(m),
        }
    }
}

impl From<AuthError> for tonic::Status {
    fn from(e: AuthError) -> Self {
        cairn_net::grpc::status(e.grpc_code(), e.to_string(), e.retry_after_secs())
    }
}

/// The query API's answer: JSON `{"error": "…"}` with the status and headers above.
impl axum::response::IntoResponse for AuthError {
    fn into_response(self) -> axum::response::Response {
        if matches!(self, AuthError::Internal(_) | AuthError::TokenFile { .. }) {
            tracing::warn!(error = %self, "authentication failed on our side");
        }
        let body = serde_json::json!({ "error": self.to_string() });
        (self.http_status(), self.http_headers(), axum::Json(body)).into_response()
    }
}
