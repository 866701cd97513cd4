use thiserror::Error;

/// Errors of the store crate, classified by whose fault they are.
#[derive(Debug, Error)]
pub enum Error {
    /// The caller named a store that cannot be (a bad URL, a missing bucket).
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// The object store could not be opened.
    #[error(transparent)]
    ObjectStore(#[from] object_store::Error),
    /// Encoding a batch failed: a bug, since every batch has the span schema.
    #[error("internal error: {0}")]
    Internal(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
