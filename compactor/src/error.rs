//! The compactor's errors. None is a client's fault: the store failed, or a file in it is not
//! what Cairn writes.

use thiserror::Error;

#[derive(Debug, Error)]
pub enum Error {
    /// The object store failed; the pass is retried at the next interval.
    #[error("object store: {0}")]
    Store(#[from] object_store::Error),
    /// Reading or writing Parquet failed (a damaged or foreign file in the store).
    #[error("parquet: {0}")]
    Parquet(#[from] parquet::errors::ParquetError),
    /// Filtering rows failed.
    #[error("arrow: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
    /// The merge query failed.
    #[error("merge: {0}")]
    Merge(#[from] datafusion::error::DataFusionError),
    /// A manifest could not be encoded.
    #[error("encoding: {0}")]
    Encode(#[from] cairn_store::Error),
    #[error("manifest: {0}")]
    Manifest(#[from] serde_json::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
