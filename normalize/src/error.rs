use thiserror::Error;

/// Errors of normalisation, classified by whose fault they are.
#[derive(Debug, Error)]
pub enum Error {
    /// The sender's data is invalid (a malformed id, an impossible time, a value nested too
    /// deeply).
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// Stored data does not match the schema (a corrupt or foreign file).
    #[error("stored data does not match the span schema: {0}")]
    Corrupt(String),
    /// Arrow failed while building or reading a batch.
    #[error(transparent)]
    Arrow(#[from] arrow::error::ArrowError),
}

impl From<cairn_schema::Error> for Error {
    fn from(e: cairn_schema::Error) -> Self {
        match e {
            cairn_schema::Error::InvalidInput(m) => Error::InvalidInput(m),
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
