//! The errors of the Kubernetes side, classified by whose fault they are. None of them reaches an
//! OTLP client: enrichment degrades to "unenriched" and the lease to "not the leader".

use thiserror::Error;

#[derive(Debug, Error)]
pub enum Error {
    /// The operator's settings are wrong (no kubeconfig, an unreadable file, a bad selector).
    #[error("kubernetes configuration: {0}")]
    Config(String),
    /// The API server refused or failed a request, or could not be reached.
    #[error("kubernetes API: {0}")]
    Api(#[from] kube::Error),
    /// A bug or an unexpected failure inside Cairn.
    #[error("internal error: {0}")]
    Internal(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
