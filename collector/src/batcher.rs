//! Groups queued spans by (tenant, hour) and writes each group as one Parquet file per flush.
//!
//! A flush starts every interval, or sooner when the buffer passes its byte threshold; at most
//! [`MAX_CONCURRENT_FLUSHES`] run at once while the next batch accumulates. A waiter is answered
//! when every file holding its spans is committed, or with the error that prevented it (then the
//! client retries; nothing was acknowledged). When the queue closes, what is buffered is flushed
//! before the batcher returns.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arrow::array::{Array, AsArray, RecordBatch};
use cairn_schema::encode::Partition;
use cairn_schema::layout::{self, Dataset};
use cairn_schema::tenant::Tenant;
use futures::{stream, StreamExt};
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit};
use tokio::task::JoinSet;

/// Flushes in flight at once.
const MAX_CONCURRENT_FLUSHES: usize = 2;
/// Partition files written in parallel within one flush.
const PARALLEL_FILES: usize = 4;

/// Payload hashes remembered per tenant as already stored, so that a message resent on every
/// turn of a conversation is written once. Bounded: forgotten wholesale when full, which only
/// costs a rewrite of a payload (queries read one row per hash).
const REMEMBERED_HASHES: usize = 1 << 20;

#[derive(Default)]
struct KnownPayloads {
    by_tenant: HashMap<Tenant, HashSet<String>>,
    count: usize,
}

impl KnownPayloads {
    fn contains(&self, tenant: &Tenant, hash: &str) -> bool {
        self.by_tenant.get(tenant).is_some_and(|s| s.contains(hash))
    }

    fn remember(&mut self, tenant: &Tenant, hashes: impl Iterator<Item = String>) {
        if self.count >= REMEMBERED_HASHES {
            self.by_tenant.clear();
            self.count = 0;
        }
        let set = self.by_tenant.entry(tenant.clone()).or_default();
        for h in hashes {
            if set.insert(h) {
                self.count += 1;
            }
        }
    }
}

type Known = Arc<Mutex<KnownPayloads>>;

/// Spans of one export waiting to be written.
pub struct Pending {
    pub tenant: Tenant,
    pub partitions: Vec<Partition>,
    pub bytes: usize,
    /// Memory budget held until the spans are written.
    pub permit: OwnedSemaphorePermit,
    /// Answered with the outcome of the write.
    pub done: oneshot::Sender<Result<(), String>>,
}

#[derive(Default)]
struct Group {
    spans: Vec<RecordBatch>,
    payloads: Vec<RecordBatch>,
}

#[derive(Default)]
struct Buffer {
    groups: BTreeMap<(Tenant, i64), Group>,
    waiters: Vec<(oneshot::Sender<Result<(), String>>, OwnedSemaphorePermit)>,
    bytes: usize,
}

impl Buffer {
    fn add(&mut self, p: Pending) {
        for part in p.partitions {
            let group = self
                .groups
                .entry((p.tenant.clone(), part.hour))
                .or_default();
            group.spans.push(part.spans);
            if part.payloads.num_rows() > 0 {
                group.payloads.push(part.payloads);
            }
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
    let known = Known::default();
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
            flushes.spawn(flush(
                Arc::clone(&store),
                Arc::clone(&known),
                std::mem::take(&mut buffer),
            ));
        }
    }
    if !buffer.waiters.is_empty() {
        flushes.spawn(flush(Arc::clone(&store), Arc::clone(&known), buffer));
    }
    while flushes.join_next().await.is_some() {}
}

async fn flush(store: Arc<dyn ObjectStore>, known: Known, buffer: Buffer) {
    let started = std::time::Instant::now();
    let files = buffer.groups.len();
    let results: Vec<Result<usize, String>> = stream::iter(buffer.groups)
        .map(|((tenant, hour), group)| {
            write_partition(Arc::clone(&store), Arc::clone(&known), tenant, hour, group)
        })
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

async fn put(
    store: &dyn ObjectStore,
    dataset: Dataset,
    tenant: &Tenant,
    hour: i64,
    bytes: Vec<u8>,
) -> Result<(), String> {
    let path = layout::new_file(dataset, tenant, hour);
    store
        .put(&path, PutPayload::from(bytes))
        .await
        .map(|_| ())
        .map_err(|e| format!("writing {path}: {e}"))
}

/// Writes the group's new payloads, then its spans: a span file never refers to a payload that
/// is not yet stored.
async fn write_partition(
    store: Arc<dyn ObjectStore>,
    known: Known,
    tenant: Tenant,
    hour: i64,
    group: Group,
) -> Result<usize, String> {
    if !group.payloads.is_empty() {
        let seen = Arc::clone(&known);
        let t = tenant.clone();
        let encoded = tokio::task::spawn_blocking(move || {
            let fresh = group
                .payloads
                .iter()
                .map(|b| {
                    let k = seen.lock().expect("known payloads");
                    crate::parquet::without_known(b, |h| k.contains(&t, h))
                })
                .collect::<crate::Result<Vec<_>>>()?;
            let fresh: Vec<RecordBatch> = fresh.into_iter().filter(|b| b.num_rows() > 0).collect();
            if fresh.is_empty() {
                return Ok(None);
            }
            let hashes: Vec<String> = fresh
                .iter()
                .flat_map(|b| {
                    let col = b.column(0).as_string::<i32>();
                    (0..col.len())
                        .map(|i| col.value(i).to_owned())
                        .collect::<Vec<_>>()
                })
                .collect();
            crate::parquet::encode_payloads(&fresh).map(|(bytes, _)| Some((bytes, hashes)))
        })
        .await
        .map_err(|e| format!("encoder task failed: {e}"))?
        .map_err(|e| e.to_string())?;
        if let Some((bytes, hashes)) = encoded {
            put(store.as_ref(), Dataset::Payloads, &tenant, hour, bytes).await?;
            known
                .lock()
                .expect("known payloads")
                .remember(&tenant, hashes.into_iter());
        }
    }
    let spans = group.spans;
    let (bytes, rows) = tokio::task::spawn_blocking(move || crate::parquet::encode_spans(&spans))
        .await
        .map_err(|e| format!("encoder task failed: {e}"))?
        .map_err(|e| e.to_string())?;
    put(store.as_ref(), Dataset::Spans, &tenant, hour, bytes).await?;
    Ok(rows)
}
