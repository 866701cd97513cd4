//! The ingest path shared by both receivers: normalise off the IO runtime, reserve memory,
//! queue for the batcher, wait for the durable write.

use std::sync::Arc;

use cairn_schema::encode::encode;
use cairn_schema::otlp::collector::trace::v1::ExportTraceServiceRequest;
use cairn_schema::tenant::Tenant;
use tokio::sync::{mpsc, oneshot, Semaphore};

use crate::batcher::Pending;
use crate::{Error, Result};

/// Memory budget granularity.
const UNIT: usize = 1024;

/// What happened to an export that was not refused outright.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// Spans stored.
    pub accepted: usize,
    /// Spans rejected as invalid (OTLP partial success).
    pub rejected: usize,
    /// Why spans were rejected; empty when none were.
    pub message: String,
}

/// Accepts export requests from the receivers. Cheap to clone.
#[derive(Clone)]
pub struct Ingester {
    tx: mpsc::Sender<Pending>,
    budget: Arc<Semaphore>,
    budget_units: usize,
}

impl Ingester {
    /// An ingester feeding `tx`, holding at most `max_buffer_bytes` of unwritten spans.
    pub fn new(tx: mpsc::Sender<Pending>, max_buffer_bytes: usize) -> Self {
        let budget_units = (max_buffer_bytes / UNIT).max(1);
        Self {
            tx,
            budget: Arc::new(Semaphore::new(budget_units)),
            budget_units,
        }
    }

    /// Stores the valid spans of `request` for `tenant`; returns once they are durable.
    pub async fn export(
        &self,
        tenant: Tenant,
        request: ExportTraceServiceRequest,
    ) -> Result<Outcome> {
        let encoded = tokio::task::spawn_blocking(move || encode(&request))
            .await
            .map_err(|e| Error::Internal(format!("normaliser task failed: {e}")))??;
        let outcome = Outcome {
            accepted: encoded.accepted,
            rejected: encoded.rejected,
            message: encoded.rejection_message(),
        };
        if encoded.accepted == 0 {
            return Ok(outcome);
        }
        let bytes: usize = encoded
            .partitions
            .iter()
            .map(|p| p.spans.get_array_memory_size() + p.payloads.get_array_memory_size())
            .sum();
        let units = bytes.div_ceil(UNIT);
        if units > self.budget_units {
            return Err(Error::TooLarge(format!(
                "the request needs {bytes} bytes of buffer, more than the whole budget"
            )));
        }
        let permit = Arc::clone(&self.budget)
            .try_acquire_many_owned(units as u32)
            .map_err(|_| Error::Overloaded("span buffer is full, retry later".into()))?;
        let (done, wait) = oneshot::channel();
        let pending = Pending {
            tenant,
            partitions: encoded.partitions,
            bytes,
            permit,
            done,
        };
        self.tx.try_send(pending).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => {
                Error::Overloaded("write queue is full, retry later".into())
            }
            mpsc::error::TrySendError::Closed(_) => Error::ShuttingDown,
        })?;
        match wait.await {
            Ok(Ok(())) => Ok(outcome),
            Ok(Err(message)) => Err(Error::Storage(message)),
            Err(_) => Err(Error::ShuttingDown),
        }
    }
}
