//! The ingest path shared by both receivers: normalise off the IO runtime, reserve memory, then
//! either append to the write-ahead log (acknowledged once durable there) or queue for the
//! batcher and wait until the spans are in the object store.

use std::sync::Arc;

use cairn_schema::encode::encode;
use cairn_schema::otlp::collector::trace::v1::ExportTraceServiceRequest;
use cairn_schema::tenant::Tenant;
use prost::Message;
use tokio::sync::{mpsc, oneshot, Semaphore};

use crate::batcher::{Item, Pending};
use crate::wal::WalSender;
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

/// Where accepted spans go.
#[derive(Clone)]
pub enum Sink {
    /// Straight to the batcher; the export waits for the object store.
    Batcher(mpsc::Sender<Item>),
    /// Through the write-ahead log; the export waits for the local disk.
    Wal(WalSender),
}

/// Accepts export requests from the receivers. Cheap to clone.
#[derive(Clone)]
pub struct Ingester {
    sink: Sink,
    budget: Arc<Semaphore>,
    budget_units: usize,
}

impl Ingester {
    /// An ingester feeding `sink`, holding at most `max_buffer_bytes` of unwritten spans.
    pub fn new(sink: Sink, max_buffer_bytes: usize) -> Self {
        let budget_units = (max_buffer_bytes / UNIT).max(1);
        Self {
            sink,
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
        let result = self.store(tenant, request).await;
        if let Ok(o) = &result {
            let m = crate::metrics::metrics();
            m.spans_received.inc_by((o.accepted + o.rejected) as u64);
            m.spans_accepted.inc_by(o.accepted as u64);
            m.spans_rejected.inc_by(o.rejected as u64);
        }
        result
    }

    async fn store(&self, tenant: Tenant, request: ExportTraceServiceRequest) -> Result<Outcome> {
        let with_log = matches!(self.sink, Sink::Wal(_));
        let (encoded, bytes) = tokio::task::spawn_blocking(move || {
            let encoded = encode(&request);
            let bytes = with_log.then(|| request.encode_to_vec());
            (encoded, bytes)
        })
        .await
        .map_err(|e| Error::Internal(format!("normaliser task failed: {e}")))?;
        let encoded = encoded?;
        let outcome = Outcome {
            accepted: encoded.accepted,
            rejected: encoded.rejected,
            message: encoded.rejection_message(),
        };
        if encoded.accepted == 0 {
            return Ok(outcome);
        }
        let memory: usize = encoded
            .partitions
            .iter()
            .map(|p| p.spans.get_array_memory_size() + p.payloads.get_array_memory_size())
            .sum();
        let units = memory.div_ceil(UNIT);
        if units > self.budget_units {
            return Err(Error::TooLarge(format!(
                "the request needs {memory} bytes of buffer, more than the whole budget"
            )));
        }
        let permit = Arc::clone(&self.budget)
            .try_acquire_many_owned(units as u32)
            .map_err(|_| Error::Overloaded("span buffer is full, retry later".into()))?;
        let mut pending = Pending {
            tenant: tenant.clone(),
            partitions: encoded.partitions,
            bytes: memory,
            permit,
            done: None,
        };
        match &self.sink {
            Sink::Wal(wal) => {
                wal.append(tenant, bytes.expect("encoded for the log"), pending)
                    .await?;
                Ok(outcome)
            }
            Sink::Batcher(tx) => {
                let (done, wait) = oneshot::channel();
                pending.done = Some(done);
                tx.try_send(Item::Spans(pending)).map_err(|e| match e {
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
    }
}
