//! The query side's errors, classified by whose fault they are and mapped once to HTTP codes.

use datafusion::error::DataFusionError;
use thiserror::Error;

/// Errors of the query side.
#[derive(Debug, Error)]
pub enum Error {
    /// The request is malformed: bad SQL, unknown column, bad id, bad tenant.
    #[error("{0}")]
    BadRequest(String),
    /// The statement is not allowed: only read-only queries are.
    #[error("{0}")]
    Forbidden(String),
    /// Nothing matches.
    #[error("{0}")]
    NotFound(String),
    /// The query needs more memory or spill space than it may use. The budget is shared by all
    /// running queries, so the same query may pass later: 503, retryable.
    #[error("query exceeds its resources: {0}")]
    ResourcesExhausted(String),
    /// The query ran longer than the query timeout and was cancelled: 504. Not 503, because
    /// sending it again is expected to time out again, unlike a momentary lack of memory.
    #[error("{0}")]
    Timeout(String),
    /// Reading the object store failed.
    #[error("storage error: {0}")]
    Storage(String),
    /// A bug or an unexpected failure.
    #[error("internal error: {0}")]
    Internal(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn http_status(&self) -> http::StatusCode {
        use http::StatusCode as S;
        match self {
            Error::BadRequest(_) => S::BAD_REQUEST,
            Error::Forbidden(_) => S::FORBIDDEN,
            Error::NotFound(_) => S::NOT_FOUND,
            Error::ResourcesExhausted(_) => S::SERVICE_UNAVAILABLE,
            Error::Timeout(_) => S::GATEWAY_TIMEOUT,
            Error::Storage(_) => S::BAD_GATEWAY,
            Error::Internal(_) => S::INTERNAL_SERVER_ERROR,
        }
    }
}

impl From<DataFusionError> for Error {
    fn from(e: DataFusionError) -> Self {
        match e.find_root() {
            DataFusionError::SQL(..)
            | DataFusionError::Plan(_)
            | DataFusionError::SchemaError(..)
            | DataFusionError::NotImplemented(_) => Error::BadRequest(e.strip_backtrace()),
            DataFusionError::ResourcesExhausted(_) => {
                Error::ResourcesExhausted(e.strip_backtrace())
            }
            DataFusionError::ObjectStore(_) => Error::Storage(e.strip_backtrace()),
            DataFusionError::Execution(_) | DataFusionError::ArrowError(..) => {
                Error::BadRequest(e.strip_backtrace())
            }
            _ => Error::Internal(e.strip_backtrace()),
        }
    }
}

impl From<cairn_schema::Error> for Error {
    fn from(e: cairn_schema::Error) -> Self {
        match e {
            cairn_schema::Error::InvalidInput(m) => Error::BadRequest(m),
            other => Error::Internal(other.to_string()),
        }
    }
}

impl From<arrow::error::ArrowError> for Error {
    fn from(e: arrow::error::ArrowError) -> Self {
        Error::Internal(e.to_string())
    }
}
