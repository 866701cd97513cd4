//! The query side's errors, classified by whose fault they are and mapped once to HTTP codes and
//! once to Postgres SQLSTATEs (for the Postgres wire listener).

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
    /// The tenant already runs as many queries as it may: 429, retry after `retry_after_secs`.
    #[error("{message}")]
    TooManyQueries {
        message: String,
        retry_after_secs: u64,
    },
    /// The Ballista cluster failed to run a statement (an executor lost more often than a task
    /// may be retried, the scheduler unreachable): 502, like a failing store.
    #[error("{0}")]
    Distributed(String),
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
            Error::Storage(_) | Error::Distributed(_) => S::BAD_GATEWAY,
            Error::TooManyQueries { .. } => S::TOO_MANY_REQUESTS,
            Error::Internal(_) => S::INTERNAL_SERVER_ERROR,
        }
    }

    /// Seconds a client should wait before retrying, for refusals that pass with time.
    pub fn retry_after_secs(&self) -> Option<u64> {
        match self {
            Error::TooManyQueries {
                retry_after_secs, ..
            } => Some(*retry_after_secs),
            _ => None,
        }
    }

    /// The Postgres error code of this class of error.
    pub fn sqlstate(&self) -> &'static str {
        match self {
            // syntax_error: also unknown tables and columns, as one class.
            Error::BadRequest(_) => "42601",
            // read_only_sql_transaction, what Postgres answers to a write in a read-only
            // transaction.
            Error::Forbidden(_) => "25006",
            // undefined_object
            Error::NotFound(_) => "42704",
            // insufficient_resources
            Error::ResourcesExhausted(_) => "53000",
            // query_canceled, what Postgres answers when a statement_timeout passes.
            Error::Timeout(_) => "57014",
            // io_error
            Error::Storage(_) => "58030",
            // system_error: outside the statement, in the system running it.
            Error::Distributed(_) => "58000",
            // configuration_limit_exceeded, of the insufficient_resources class.
            Error::TooManyQueries { .. } => "53400",
            // internal_error
            Error::Internal(_) => "XX000",
        }
    }
}

/// The error at the bottom of `e`, also through Arrow errors that carry one (a spill file's
/// writer reports DataFusion's "spill space exhausted" as an IO error).
fn root(e: &DataFusionError) -> &DataFusionError {
    let mut e = e.find_root();
    loop {
        let inner = match e {
            DataFusionError::ArrowError(arrow_error, _) => match arrow_error.as_ref() {
                arrow::error::ArrowError::IoError(_, io) => io.get_ref(),
                arrow::error::ArrowError::ExternalError(external) => Some(external.as_ref()),
                _ => None,
            },
            DataFusionError::IoError(io) => io.get_ref(),
            _ => None,
        };
        match inner.and_then(|i| i.downcast_ref::<DataFusionError>()) {
            Some(inner) => e = inner.find_root(),
            None => return e,
        }
    }
}

/// DataFusion's spill file reports its size limit as a plain IO error; this is its text.
const SPILL_LIMIT_TEXT: &str = "spilling process has exceeded the allowable limit";

impl From<DataFusionError> for Error {
    fn from(e: DataFusionError) -> Self {
        if e.to_string().contains(SPILL_LIMIT_TEXT) {
            return Error::ResourcesExhausted(format!(
                "the query needs more spill space than is left (--spill-size): {}",
                e.strip_backtrace()
            ));
        }
        match root(&e) {
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

impl From<arrow::error::ArrowError> for Error {
    fn from(e: arrow::error::ArrowError) -> Self {
        Error::Internal(e.to_string())
    }
}
