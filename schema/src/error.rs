use thiserror::Error;

/// Errors of the schema crate, classified by whose fault they are.
#[derive(Debug, Error)]
pub enum Error {
    /// The caller sent something invalid (a bad tenant, a malformed id).
    #[error("invalid input: {0}")]
    InvalidInput(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
