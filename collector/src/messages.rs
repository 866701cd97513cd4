//! What the receivers, the write-ahead log and the batcher send each other: spans waiting to be
//! written, the log's segment markers, and the answer an export waits for. Each stage imports
//! these from here, so the log and the batcher do not import each other.

use std::sync::Arc;

use cairn_normalize::encode::Partition;
use cairn_schema::tenant::Tenant;
use thiserror::Error;
use tokio::sync::oneshot;

use crate::admission::Charge;

/// Spans of one export waiting to be written.
pub struct Pending {
    pub tenant: Tenant,
    pub partitions: Vec<Partition>,
    pub bytes: usize,
    /// Memory budget held until the spans are written.
    pub permit: Charge,
    /// Answered with the outcome of the write (without a write-ahead log).
    pub done: Option<Reply>,
}

/// Answers an export that waits for its spans to be logged or stored.
pub type Reply = oneshot::Sender<Result<(), WriteError>>;

/// What the batcher receives.
pub enum Item {
    Spans(Pending),
    /// Everything received before this belongs to the sealed write-ahead-log segment.
    Sealed(u64),
}

/// Why spans could not be logged or stored. One failed flush answers every export it held, so
/// the causes are shared.
#[derive(Debug, Clone, Error)]
pub enum WriteError {
    /// The object store refused or failed a write.
    #[error("writing {path}: {source}")]
    Store {
        path: String,
        #[source]
        source: Arc<object_store::Error>,
    },
    /// Encoding a Parquet file failed.
    #[error("encoding a Parquet file: {0}")]
    Encode(#[source] Arc<cairn_store::Error>),
    /// The task encoding a file panicked or was cancelled.
    #[error("the encoder task failed: {0}")]
    Task(#[source] Arc<tokio::task::JoinError>),
    /// Appending to or syncing the write-ahead log failed (a full or failing disk).
    #[error("write-ahead log: {0}")]
    Log(#[source] Arc<std::io::Error>),
}

impl From<cairn_store::Error> for WriteError {
    fn from(e: cairn_store::Error) -> Self {
        WriteError::Encode(Arc::new(e))
    }
}

impl From<tokio::task::JoinError> for WriteError {
    fn from(e: tokio::task::JoinError) -> Self {
        WriteError::Task(Arc::new(e))
    }
}

impl From<std::io::Error> for WriteError {
    fn from(e: std::io::Error) -> Self {
        WriteError::Log(Arc::new(e))
    }
}
