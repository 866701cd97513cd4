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
    /// The compactor's lease ended: the pass stopped before changing the store.
    #[error("no longer the leader: stopped before changing the store")]
    NotLeader,
    /// The merge read fewer rows than its input files hold: committing it would lose spans.
    #[error("the merge read {read} rows of {files} files that hold {expected}; not committed")]
    RowsMissing {
        files: usize,
        read: u64,
        expected: u64,
    },
    /// Another compactor committed a merge of some of the same inputs meanwhile; this merge's
    /// output stays uncommitted (deleted after the grace period).
    #[error("inputs superseded meanwhile by another compactor's commit")]
    Superseded,
    /// Files were written but their records could not be appended to the chain (the failures
    /// are logged): `cairn verify` reports them inserted until `cairn chain adopt`.
    #[error("{0} record(s) of written files could not be appended to the chain")]
    Unrecorded(usize),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
