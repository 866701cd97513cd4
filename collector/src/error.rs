//! The collector's errors, classified by whose fault they are and mapped once to gRPC and
//! OTLP/HTTP status codes.

use thiserror::Error;

/// Errors of the collector.
#[derive(Debug, Error)]
pub enum Error {
    /// The client sent a malformed request (bad protobuf or JSON, bad tenant, bad encoding).
    #[error("bad request: {0}")]
    BadRequest(String),
    /// The request's content type is not one OTLP/HTTP allows.
    #[error("unsupported media type: {0}")]
    UnsupportedMediaType(String),
    /// The request is larger than the configured limit; retrying will not help.
    #[error("request too large: {0}")]
    TooLarge(String),
    /// The collector's buffers are full; the client should retry later.
    #[error("overloaded: {0}")]
    Overloaded(String),
    /// The tenant sends faster than its ingest rate; the client should retry after
    /// `retry_after_secs`.
    #[error("rate limited: {message}")]
    RateLimited {
        message: String,
        retry_after_secs: u64,
    },
    /// The tenant's stored bytes reached its storage quota; retrying will not help until data
    /// expires or the quota is raised.
    #[error("storage quota reached: {0}")]
    QuotaExceeded(String),
    /// The object store failed; the client should retry later.
    #[error("storage unavailable: {0}")]
    Storage(String),
    /// The spans could not be logged or stored (disk or object store); retry later.
    #[error("storage unavailable: {0}")]
    Write(#[from] crate::messages::WriteError),
    /// The collector is shutting down.
    #[error("shutting down")]
    ShuttingDown,
    /// A file the collector was configured with cannot be used (redaction rules, tenant limits);
    /// refuses the start, or keeps the previous file in force on a reload.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// A bug or an unexpected failure inside the collector.
    #[error("internal error: {0}")]
    Internal(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// The gRPC status code for this error, following the OTLP retry rules: `UNAVAILABLE` is
    /// retried; `RESOURCE_EXHAUSTED` only when it carries `RetryInfo` (full buffers do, an
    /// oversized request does not).
    pub fn grpc_code(&self) -> tonic::Code {
        match self {
            Error::BadRequest(_) | Error::UnsupportedMediaType(_) => tonic::Code::InvalidArgument,
            Error::TooLarge(_) | Error::Overloaded(_) | Error::RateLimited { .. } => {
                tonic::Code::ResourceExhausted
            }
            // Not RESOURCE_EXHAUSTED: some SDKs retry that code even without `RetryInfo`.
            Error::QuotaExceeded(_) => tonic::Code::FailedPrecondition,
            Error::Storage(_) | Error::Write(_) | Error::ShuttingDown => tonic::Code::Unavailable,
            Error::Config(_) | Error::Internal(_) => tonic::Code::Internal,
        }
    }

    /// The HTTP status code: 4xx are final, 429/503 are retried (with `Retry-After`).
    pub fn http_status(&self) -> http::StatusCode {
        use http::StatusCode as S;
        match self {
            Error::BadRequest(_) => S::BAD_REQUEST,
            Error::UnsupportedMediaType(_) => S::UNSUPPORTED_MEDIA_TYPE,
            Error::TooLarge(_) => S::PAYLOAD_TOO_LARGE,
            Error::Overloaded(_) | Error::RateLimited { .. } => S::TOO_MANY_REQUESTS,
            // A 4xx other than 429 (and 408): final for every OTLP/HTTP client; a 5xx would be
            // retried by some.
            Error::QuotaExceeded(_) => S::FORBIDDEN,
            Error::Storage(_) | Error::Write(_) | Error::ShuttingDown => S::SERVICE_UNAVAILABLE,
            Error::Config(_) | Error::Internal(_) => S::INTERNAL_SERVER_ERROR,
        }
    }

    /// A short label for metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            Error::BadRequest(_) => "bad_request",
            Error::UnsupportedMediaType(_) => "unsupported_media_type",
            Error::TooLarge(_) => "too_large",
            Error::Overloaded(_) => "overloaded",
            Error::RateLimited { .. } => "tenant_rate",
            Error::QuotaExceeded(_) => "tenant_quota",
            Error::Storage(_) | Error::Write(_) => "storage",
            Error::ShuttingDown => "shutting_down",
            Error::Config(_) => "config",
            Error::Internal(_) => "internal",
        }
    }

    /// Seconds a client should wait before retrying, for retryable errors.
    pub fn retry_after_secs(&self) -> Option<u64> {
        match self {
            Error::Overloaded(_) | Error::ShuttingDown => Some(1),
            Error::RateLimited {
                retry_after_secs, ..
            } => Some(*retry_after_secs),
            Error::Storage(_) | Error::Write(_) => Some(5),
            _ => None,
        }
    }
}

impl From<Error> for tonic::Status {
    fn from(e: Error) -> Self {
        cairn_net::grpc::status(e.grpc_code(), e.to_string(), e.retry_after_secs())
    }
}

impl From<cairn_schema::Error> for Error {
    fn from(e: cairn_schema::Error) -> Self {
        match e {
            cairn_schema::Error::InvalidInput(m) => Error::BadRequest(m),
        }
    }
}

impl From<cairn_normalize::Error> for Error {
    fn from(e: cairn_normalize::Error) -> Self {
        match e {
            cairn_normalize::Error::InvalidInput(m) => Error::BadRequest(m),
            other => Error::Internal(other.to_string()),
        }
    }
}

impl From<cairn_store::Error> for Error {
    fn from(e: cairn_store::Error) -> Self {
        match e {
            cairn_store::Error::InvalidInput(m) => Error::BadRequest(m),
            cairn_store::Error::ObjectStore(e) => Error::Storage(e.to_string()),
            cairn_store::Error::Internal(m) => Error::Internal(m),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic_types::StatusExt;

    #[test]
    fn retryable_grpc_refusals_carry_retry_info() {
        let status = tonic::Status::from(Error::Overloaded("full".into()));
        assert_eq!(status.code(), tonic::Code::ResourceExhausted);
        let info = status.get_details_retry_info().expect("retry info");
        assert_eq!(info.retry_delay, Some(std::time::Duration::from_secs(1)));
        let status = tonic::Status::from(Error::Storage("down".into()));
        assert_eq!(status.code(), tonic::Code::Unavailable);
        assert!(status.get_details_retry_info().is_some());
        let status = tonic::Status::from(Error::TooLarge("big".into()));
        assert_eq!(status.code(), tonic::Code::ResourceExhausted);
        assert!(status.get_details_retry_info().is_none());
        let status = tonic::Status::from(Error::RateLimited {
            message: "fast".into(),
            retry_after_secs: 3,
        });
        assert_eq!(status.code(), tonic::Code::ResourceExhausted);
        let info = status.get_details_retry_info().expect("retry info");
        assert_eq!(info.retry_delay, Some(std::time::Duration::from_secs(3)));
        let quota = Error::QuotaExceeded("full".into());
        assert_eq!(quota.http_status(), http::StatusCode::FORBIDDEN);
        let status = tonic::Status::from(quota);
        assert_eq!(status.code(), tonic::Code::FailedPrecondition);
        assert!(status.get_details_retry_info().is_none());
    }
}
