//! Groups queued spans by (tenant, hour) and writes each group as one Parquet file per flush.
//!
//! A flush starts every interval, or sooner when the buffer passes its byte threshold; at most
//! [`MAX_CONCURRENT_FLUSHES`] run at once while the next batch accumulates. A waiter is answered
//! when every file holding its spans is committed, or with the error that prevented it (then the
//! client retries; nothing was acknowledged). When the queue closes, what is buffered is flushed
//! before the batcher returns.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use arrow::array::RecordBatch;
use cairn_schema::layout;
use cairn_schema::tenant::Tenant;
use futures::{stream, StreamExt};
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit};
use tokio::task::JoinSet;

/// Flushes in flight at once.
const MAX_CONCURRENT_FLUSHES: usize = 2;
/// Partition files written in parallel within one flush.
const PARALLEL_FILES: usize = 4;

/// Spans of one export waiting to be written.
pub struct Pending {
    pub tenant: Tenant,
    pub partitions: Vec<(i64, RecordBatch)>,
    pub bytes: usize,
    /// Memory budget held until the spans are written.
    pub permit: OwnedSemaphorePermit,
    /// Answered with the outcome of the write.
    pub done: oneshot::Sender<Result<(), String>>,
}

#[derive(Default)]
struct Buffer {
    groups: BTreeMap<(Tenant, i64), Vec<RecordBatch>>,
    waiters: Vec<(oneshot::Sender<Result<(), String>>, OwnedSemaphorePermit)>,
    bytes: usize,
}

impl Buffer {
    fn add(&mut self, p: Pending) {
        for (hour, batch) in p.partitions {
            self.groups
                .entry((p.tenant.clone(), hour))
                .or_default()
                .push(batch);
        }
        self.bytes += p.bytes;
        self.waiters.push((p.done, p.permit));
    }
}

/// Runs the batcher until `rx` closes and everything buffered is written.
pub async fn run(
    store: Arc<dyn ObjectStore>,
    mut rx: mpsc::Receiver<Pending>,
    flush_interval: Duration,
    flush_bytes: usize,
) {
    let mut buffer = Buffer::default();
    let mut flushes = JoinSet::new();
    let mut tick = tokio::time::interval(flush_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let flush_now = tokio::select! {
            msg = rx.recv() => match msg {
                Some(p) => {
                    buffer.add(p);
                    buffer.bytes >= flush_bytes
                }
                None => break,
            },
            _ = tick.tick() => !buffer.waiters.is_empty(),
        };
        if flush_now {
            while flushes.len() >= MAX_CONCURRENT_FLUSHES {
                flushes.join_next().await;
            }
            flushes.spawn(flush(Arc::clone(&store), std::mem::take(&mut buffer)));
        }
    }
    if !buffer.waiters.is_empty() {
        flushes.spawn(flush(Arc::clone(&store), buffer));
    }
    while flushes.join_next().await.is_some() {}
}

async fn flush(store: Arc<dyn ObjectStore>, buffer: Buffer) {
    let started = std::time::Instant::now();
    let files = buffer.groups.len();
    let results: Vec<Result<usize, String>> = stream::iter(buffer.groups)
        .map(|((tenant, hour), batches)| write_partition(Arc::clone(&store), tenant, hour, batches))
        .buffer_unordered(PARALLEL_FILES)
        .collect()
        .await;
    let error = results.iter().find_map(|r| r.as_ref().err().cloned());
    let rows: usize = results.iter().filter_map(|r| r.as_ref().ok()).sum();
    match &error {
        None => tracing::debug!(files, rows, elapsed = ?started.elapsed(), "flushed"),
        Some(e) => tracing::error!(error = %e, "flush failed; exports answered as unavailable"),
    }
    for (done, permit) in buffer.waiters {
        let _ = done.send(error.clone().map_or(Ok(()), Err));
        drop(permit);
    }
}

async fn write_partition(
    store: Arc<dyn ObjectStore>,
    tenant: Tenant,
    hour: i64,
    batches: Vec<RecordBatch>,
) -> Result<usize, String> {
    let (bytes, rows) = tokio::task::spawn_blocking(move || crate::parquet::encode(&batches))
        .await
        .map_err(|e| format!("encoder task failed: {e}"))?
        .map_err(|e| e.to_string())?;
    let path = layout::new_file(&tenant, hour);
    store
        .put(&path, PutPayload::from(bytes))
        .await
        .map_err(|e| format!("writing {path}: {e}"))?;
    Ok(rows)
}
