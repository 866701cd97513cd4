use thiserror::Error;

/// Errors of the schema crate, classified by whose fault they are.
#[derive(Debug, Error)]
pub enum Error {
    /// The caller sent something invalid (a bad tenant, a malformed id, a bad store URL).
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// Stored data does not match the schema (a corrupt or foreign file).
    #[error("stored data does not match the span schema: {0}")]
    Corrupt(String),
    /// Arrow failed while building or reading a batch.
    #[error(transparent)]
    Arrow(#[from] arrow::error::ArrowError),
    /// The object store could not be opened.
    #[error(transparent)]
    ObjectStore(#[from] object_store::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
