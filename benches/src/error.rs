//! The bench's one error type, classified by whose fault it is.

/// Why a bench could not run or finish.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bad arguments or an unusable local path: the operator's to fix.
    #[error("usage: {0}")]
    Usage(String),
    /// The server under test refused, failed or did not answer.
    #[error("server: {0}")]
    Server(String),
    /// A defect in the bench or the encoder it drives.
    #[error("internal: {0}")]
    Internal(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
