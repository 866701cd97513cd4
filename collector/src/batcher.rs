//! Groups queued spans by (tenant, hour) and writes each group as one Parquet file per flush.
//!
//! Without a write-ahead log, a flush starts every interval (or sooner, past a byte threshold)
//! and each waiting export is answered when every file holding its spans is committed, or with
//! the error that prevented it. With the log, exports were answered when their spans became
//! durable; a flush then asks the log to seal its segment, writes everything that precedes the
//! `Sealed` marker under names derived from the segment (retrying until it succeeds: those spans
//! are acknowledged), and releases the segment. At most [`MAX_CONCURRENT_FLUSHES`] run at once
//! while the next batch accumulates. When the queue closes, what is buffered is written before
//! the batcher returns.
//!
//! Each file's BLAKE3 hash is taken from the encoded bytes on the blocking pool, beside the
//! encoding; once every file of a flush is committed, one entry per tenant records them in the
//! tenant's tamper-evident chain ([`cairn_store::chain`]) before the flush counts as done. A
//! replayed segment rewrites the same names: files the chain already records with the same hash
//! are not recorded again.

use std::collections::BTreeMap;

use foldhash::{HashMap, HashMapExt, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arrow::array::{AsArray, RecordBatch};
use cairn_normalize::encode::Partition;
use cairn_schema::layout::{self, Dataset};
use cairn_schema::tenant::Tenant;
use cairn_store::chain::{self, Chain, FileRecord, Kind, Record};
use cairn_store::file_format::Effort;
use cairn_store::trace_index;
use futures::{stream, StreamExt};
use object_store::{path::Path, ObjectStore, ObjectStoreExt, PutPayload};
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use crate::admission::Charge;
use crate::messages::{Item, Pending, Reply, WriteError};
use crate::wal::WalControl;

/// Flushes in flight at once.
const MAX_CONCURRENT_FLUSHES: usize = 2;
/// Partition files written in parallel within one flush.
const PARALLEL_FILES: usize = 4;
/// Longest wait between attempts to write an acknowledged segment.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Payload hashes remembered per tenant as already stored, with the hour partition they were
/// stored in, so that a message resent on every turn of a conversation is written once. A stored
/// payload is referred to only from spans at most [`layout::PAYLOAD_REUSE_HOURS`] later, so
/// retention can delete payload partitions safely. Bounded: forgotten wholesale when full, which
/// only costs a rewrite of a payload (queries read one row per hash).
const REMEMBERED_HASHES: usize = 1 << 20;

#[derive(Default)]
struct KnownPayloads {
    by_tenant: HashMap<Tenant, HashMap<String, i64>>,
    count: usize,
    /// Tenants whose trace index marker was checked ([`trace_index::prepare_tenant`]).
    index_checked: HashSet<Tenant>,
}

impl KnownPayloads {
    /// The hour of the stored copy of `hash` that spans of `hour` may refer to: only a copy in
    /// their own hour or up to [`layout::PAYLOAD_REUSE_HOURS`] before it, never a later one, so
    /// readers find a span's payloads in those hours.
    fn reusable(&self, tenant: &Tenant, hash: &str, hour: i64) -> Option<i64> {
        self.by_tenant
            .get(tenant)
            .and_then(|s| s.get(hash))
            .copied()
            .filter(|stored| (0..=layout::PAYLOAD_REUSE_HOURS).contains(&(hour - stored)))
    }

    fn remember(&mut self, tenant: &Tenant, hour: i64, hashes: impl Iterator<Item = String>) {
        if self.count >= REMEMBERED_HASHES {
            self.by_tenant.clear();
            self.count = 0;
        }
        let set = self.by_tenant.entry(tenant.clone()).or_default();
        for h in hashes {
            if set.insert(h, hour).is_none() {
                self.count += 1;
            }
        }
    }
}

type Known = Arc<Mutex<KnownPayloads>>;

/// How flushed files are named.
#[derive(Clone)]
enum Naming {
    Unique,
    Segment { collector: String, segment: u64 },
}

impl Naming {
    fn path(&self, dataset: Dataset, tenant: &Tenant, hour: i64) -> Path {
        match self {
            Naming::Unique => layout::new_file(dataset, tenant, hour),
            Naming::Segment { collector, segment } => {
                layout::segment_file(dataset, tenant, hour, collector, *segment)
            }
        }
    }
}

#[derive(Default, Clone)]
struct Group {
    spans: Vec<RecordBatch>,
    payloads: Vec<RecordBatch>,
}

#[derive(Default)]
struct Buffer {
    groups: BTreeMap<(Tenant, i64), Group>,
    waiters: Vec<(Option<Reply>, Charge)>,
    bytes: usize,
}

impl Buffer {
    fn is_empty(&self) -> bool {
        self.waiters.is_empty()
    }

    fn add_partitions(&mut self, tenant: &Tenant, partitions: Vec<Partition>) {
        for part in partitions {
            let group = self.groups.entry((tenant.clone(), part.hour)).or_default();
            group.spans.push(part.spans);
            if part.payloads.num_rows() > 0 {
                group.payloads.push(part.payloads);
            }
        }
    }

    fn add(&mut self, p: Pending) {
        self.add_partitions(&p.tenant, p.partitions);
        self.bytes += p.bytes;
        self.waiters.push((p.done, p.permit));
    }
}

/// Where flushed files go: the store, and the chain that records them.
#[derive(Clone)]
pub struct Output {
    pub store: Arc<dyn ObjectStore>,
    pub chain: Option<Chain>,
}

/// How long before a replayed segment's start its files may have been recorded (clock steps).
const REPLAY_CLOCK_SLACK: chrono::TimeDelta = chrono::TimeDelta::minutes(5);

/// Writes a write-ahead-log segment left by a previous run under its own file names (replacing
/// whatever part of it that run had written), retrying until it succeeds.
pub async fn replay_segment(
    output: Output,
    collector: &str,
    segment: u64,
    records: Vec<(Tenant, Vec<Partition>)>,
) {
    let mut buffer = Buffer::default();
    for (tenant, partitions) in records {
        buffer.add_partitions(&tenant, partitions);
    }
    let naming = Naming::Segment {
        collector: collector.to_owned(),
        segment,
    };
    // Segment ids are the microsecond they were started at.
    let since = chrono::DateTime::from_timestamp_micros(segment as i64)
        .map(|t| (t - REPLAY_CLOCK_SLACK).to_rfc3339_opts(chrono::SecondsFormat::Millis, true));
    flush_until_written(output, Known::default(), buffer, naming, since).await;
}

/// When a flush starts: every `interval`, or sooner once `bytes` are buffered or spans of
/// `partitions` distinct (tenant, hour) partitions are (each becomes a file).
#[derive(Debug, Clone, Copy)]
pub struct FlushTriggers {
    pub interval: Duration,
    pub bytes: usize,
    pub partitions: usize,
}

/// Runs the batcher until `rx` closes and everything buffered is written.
pub async fn run(
    output: Output,
    mut rx: mpsc::Receiver<Item>,
    triggers: FlushTriggers,
    wal: Option<WalControl>,
) {
    let mut buffer = Buffer::default();
    let known = Known::default();
    let mut flushes = JoinSet::new();
    let mut tick = tokio::time::interval(triggers.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let due = tokio::select! {
            item = rx.recv() => match item {
                Some(Item::Spans(p)) => {
                    buffer.add(p);
                    buffer.bytes >= triggers.bytes || buffer.groups.len() >= triggers.partitions
                }
                Some(Item::Sealed(segment)) => {
                    let Some(wal) = &wal else { continue };
                    let naming = Naming::Segment { collector: wal.collector_id.clone(), segment };
                    while flushes.len() >= MAX_CONCURRENT_FLUSHES {
                        flushes.join_next().await;
                    }
                    let (output, known, wal) = (output.clone(), Arc::clone(&known), wal.clone());
                    let taken = std::mem::take(&mut buffer);
                    flushes.spawn(async move {
                        flush_until_written(output, known, taken, naming, None).await;
                        wal.release(segment);
                    });
                    false
                }
                None => break,
            },
            _ = tick.tick() => !buffer.is_empty(),
        };
        if due {
            match &wal {
                // The flush starts when the log's `Sealed` marker arrives.
                Some(wal) => wal.rotate(),
                None => {
                    while flushes.len() >= MAX_CONCURRENT_FLUSHES {
                        flushes.join_next().await;
                    }
                    let taken = std::mem::take(&mut buffer);
                    flushes.spawn(flush(
                        output.clone(),
                        Arc::clone(&known),
                        taken,
                        Naming::Unique,
                    ));
                }
            }
        }
    }
    if !buffer.is_empty() {
        flushes.spawn(flush(output.clone(), known, buffer, Naming::Unique));
    }
    while flushes.join_next().await.is_some() {}
}

/// Writes a buffer of acknowledged spans, retrying with backoff until every file is committed.
/// `replayed_since`: the buffer is a replayed segment, whose files may have been recorded
/// since then.
async fn flush_until_written(
    output: Output,
    known: Known,
    buffer: Buffer,
    naming: Naming,
    replayed_since: Option<String>,
) {
    let mut backoff = Duration::from_millis(100);
    let mut progress = Progress::default();
    loop {
        let before = progress.written.len();
        match write_all(
            &output,
            &known,
            &buffer.groups,
            &naming,
            replayed_since.as_deref(),
            &mut progress,
        )
        .await
        {
            Ok(rows) => {
                tracing::debug!(rows, files = buffer.groups.len(), "segment written");
                return;
            }
            Err(e) => {
                // A store that fails some requests, not all, lets each attempt get further:
                // waiting longer is for a store that lets none through.
                if progress.written.len() > before {
                    backoff = Duration::from_millis(100);
                }
                let wait = jittered(backoff);
                tracing::error!(error = %e, retry_in = ?wait, "writing an acknowledged segment failed; retrying");
                tokio::time::sleep(wait).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}

/// What the attempts at writing one buffer have done so far: a retry writes only the
/// partitions not yet written, then records every file in the chain.
#[derive(Default)]
struct Progress {
    /// Partitions written, with their files.
    written: BTreeMap<(Tenant, i64), Written>,
    /// Files written for the flush besides partitions (a tenant's trace index marker).
    records: BTreeMap<Tenant, Vec<FileRecord>>,
}

/// `backoff` scaled by a random factor in [0.5, 1), so collectors that failed together do not
/// retry together.
fn jittered(backoff: Duration) -> Duration {
    use std::hash::{BuildHasher, Hasher};
    let random = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    backoff.mul_f64(0.5 + (random % 1000) as f64 / 2000.0)
}

#[tracing::instrument(name = "flush", skip_all, fields(partitions = groups.len()))]
async fn write_all(
    output: &Output,
    known: &Known,
    groups: &BTreeMap<(Tenant, i64), Group>,
    naming: &Naming,
    replayed_since: Option<&str>,
    progress: &mut Progress,
) -> Result<usize, WriteError> {
    let store = &output.store;
    let unchecked: Vec<Tenant> = {
        let k = known.lock().expect("known payloads");
        let mut t: Vec<Tenant> = groups.keys().map(|(t, _)| t.clone()).collect();
        t.dedup();
        t.retain(|t| !k.index_checked.contains(t));
        t
    };
    for tenant in unchecked {
        let marker = cairn_schema::trace_index::marker(&tenant);
        let store_error = |e| WriteError::Store {
            path: marker.to_string(),
            source: Arc::new(e),
        };
        let before = trace_index::is_complete(store.as_ref(), &tenant)
            .await
            .map_err(store_error)?;
        if !before
            && trace_index::prepare_tenant(store.as_ref(), &tenant)
                .await
                .map_err(store_error)?
        {
            // The marker was written now: recorded with the flush.
            progress
                .records
                .entry(tenant.clone())
                .or_default()
                .push(FileRecord::of_bytes(&marker, trace_index::MARKER));
        }
        known
            .lock()
            .expect("known payloads")
            .index_checked
            .insert(tenant);
    }
    let owned: Vec<((Tenant, i64), Group)> = groups
        .iter()
        .filter(|(k, _)| !progress.written.contains_key(*k))
        .map(|(k, g)| (k.clone(), g.clone()))
        .collect();
    let results: Vec<Result<Written, WriteError>> = stream::iter(owned)
        .map(|((tenant, hour), group)| {
            write_partition(
                Arc::clone(store),
                Arc::clone(known),
                tenant,
                hour,
                group,
                naming.clone(),
            )
        })
        .buffer_unordered(PARALLEL_FILES)
        .collect()
        .await;
    // Every partition written is kept, whatever failed beside it.
    let mut failed = None;
    for r in results {
        match r {
            Ok(written) => {
                progress
                    .written
                    .insert((written.tenant.clone(), written.hour), written);
            }
            Err(e) => failed = Some(e),
        }
    }
    if let Some(e) = failed {
        return Err(e);
    }
    let mut records = progress.records.clone();
    let mut rows = 0;
    let mut hashes = Vec::new();
    for written in progress.written.values() {
        rows += written.rows;
        hashes.extend(written.payloads.iter().cloned());
        records
            .entry(written.tenant.clone())
            .or_default()
            .extend(written.files.iter().cloned());
    }
    if let Some(chain) = &output.chain {
        record(chain, records, replayed_since).await?;
    }
    crate::metrics::metrics().flushes.inc();
    let mut k = known.lock().expect("known payloads");
    for (tenant, hour, h) in hashes {
        k.remember(&tenant, hour, h.into_iter());
    }
    Ok(rows)
}

/// Records the files of one flush, one entry per tenant.
async fn record(
    chain: &Chain,
    records: BTreeMap<Tenant, Vec<FileRecord>>,
    replayed_since: Option<&str>,
) -> Result<(), WriteError> {
    let appends = records.into_iter().map(|(tenant, files)| async move {
        let mut record = Record::new(Kind::Add);
        record.files = files;
        let appended = match replayed_since {
            Some(since) => chain.append_replayed(&tenant, record, since).await,
            None => chain.append(&tenant, record).await,
        };
        appended.map_err(|e| WriteError::Store {
            path: chain::dir(&tenant).to_string(),
            source: Arc::new(object_store::Error::Generic {
                store: "chain",
                source: Box::new(e),
            }),
        })
    });
    futures::future::try_join_all(appends).await?;
    Ok(())
}

/// Writes a buffer and answers its waiters with the outcome.
async fn flush(output: Output, known: Known, buffer: Buffer, naming: Naming) {
    let mut progress = Progress::default();
    let result = write_all(
        &output,
        &known,
        &buffer.groups,
        &naming,
        None,
        &mut progress,
    )
    .await;
    if let Err(e) = &result {
        tracing::error!(error = %e, "flush failed; exports answered as unavailable");
    }
    for (done, permit) in buffer.waiters {
        if let Some(done) = done {
            let _ = done.send(result.clone().map(|_| ()));
        }
        drop(permit);
    }
}

async fn put(store: &dyn ObjectStore, path: Path, bytes: Vec<u8>) -> Result<(), WriteError> {
    let m = crate::metrics::metrics();
    let dataset = crate::metrics::DatasetLabel {
        dataset: [Dataset::Payloads, Dataset::TraceIndex]
            .into_iter()
            .find(|d| path.as_ref().starts_with(d.prefix()))
            .unwrap_or(Dataset::Spans)
            .prefix(),
    };
    let size = bytes.len() as u64;
    let started = std::time::Instant::now();
    let result = put_once(store, path, bytes).await;
    m.upload_seconds.observe(started.elapsed().as_secs_f64());
    match &result {
        Ok(()) => {
            m.files_written.get_or_create(&dataset).inc();
            m.bytes_written.get_or_create(&dataset).inc_by(size);
        }
        Err(_) => {
            m.upload_failures.inc();
        }
    }
    result
}

async fn put_once(store: &dyn ObjectStore, path: Path, bytes: Vec<u8>) -> Result<(), WriteError> {
    store
        .put(&path, PutPayload::from(bytes))
        .await
        .map(|_| ())
        .map_err(|e| WriteError::Store {
            path: path.to_string(),
            source: std::sync::Arc::new(e),
        })
}

/// What writing one partition committed.
struct Written {
    hour: i64,
    rows: usize,
    /// Payload hashes stored, by tenant and hour.
    payloads: Vec<(Tenant, i64, Vec<String>)>,
    tenant: Tenant,
    /// The files written, for the chain.
    files: Vec<FileRecord>,
}

/// The chain's record of `bytes` at `path`, whose BLAKE3 hash is `digest`.
fn file_record(path: &Path, bytes: &[u8], digest: String) -> FileRecord {
    FileRecord {
        path: path.to_string(),
        size: bytes.len() as u64,
        blake3: digest,
    }
}

/// Writes the group's new payloads, then its spans, then their trace index entries: a span file
/// never refers to a payload that is not yet stored. The payload hashes are remembered by the caller only once the whole flush
/// has succeeded, because a failed flush of a segment is written again under the same names.
async fn write_partition(
    store: Arc<dyn ObjectStore>,
    known: Known,
    tenant: Tenant,
    hour: i64,
    group: Group,
    naming: Naming,
) -> Result<Written, WriteError> {
    let mut committed = Vec::new();
    let mut files = Vec::new();
    // Where each payload the spans refer to is stored: in this hour when written now, in the
    // hour of the copy they reuse otherwise. The spans' index entries record these hours.
    let mut placed: HashMap<String, i64> = HashMap::new();
    if !group.payloads.is_empty() {
        let seen = Arc::clone(&known);
        let t = tenant.clone();
        let payloads = group.payloads;
        let encoded = tokio::task::spawn_blocking(move || {
            let mut reused = HashMap::new();
            let rows = {
                let k = seen.lock().expect("known payloads");
                cairn_store::parquet::payload_rows(&payloads, |h| {
                    k.reusable(&t, h, hour)
                        .map(|stored| reused.insert(h.to_owned(), stored))
                        .is_some()
                })
            };
            if rows.is_empty() {
                return Ok((None, reused));
            }
            let hashes: Vec<String> = rows
                .iter()
                .map(|&(b, r)| payloads[b].column(0).as_string::<i32>().value(r).to_owned())
                .collect();
            cairn_store::parquet::encode_payload_rows(&payloads, &rows, Effort::Ingest).map(
                |(bytes, _)| {
                    let digest = chain::digest(&bytes);
                    (Some((bytes, digest, hashes)), reused)
                },
            )
        })
        .await??;
        let (encoded, reused) = encoded;
        placed = reused;
        if let Some((bytes, digest, hashes)) = encoded {
            placed.extend(hashes.iter().map(|h| (h.clone(), hour)));
            let path = naming.path(Dataset::Payloads, &tenant, hour);
            files.push(file_record(&path, &bytes, digest));
            put(store.as_ref(), path, bytes).await?;
            committed.push((tenant.clone(), hour, hashes));
        }
    }
    let spans = group.spans;
    let file = tokio::task::spawn_blocking(move || {
        // Steps take their agent from ancestors flushed with them, and tool calls without ids the
        // model call that asked for them; compaction (and for agents the run API) resolves
        // those whose relatives arrive later.
        let all = arrow::compute::concat_batches(&cairn_schema::columns::spans_schema(), &spans)
            .map_err(|e| cairn_store::Error::Internal(format!("concatenating spans: {e}")))?;
        let all = cairn_normalize::agent::across_spans(&all);
        let file = cairn_store::parquet::encode_span_file(
            &all,
            hour,
            |h| placed.get(h).copied(),
            Effort::Ingest,
        )?;
        let digests = (chain::digest(&file.spans), chain::digest(&file.index));
        Ok::<_, cairn_store::Error>((file, digests))
    })
    .await??;
    let (file, (spans_digest, index_digest)) = file;
    let path = naming.path(Dataset::Spans, &tenant, hour);
    let index_path = cairn_schema::trace_index::delta_path(&tenant, hour, &path);
    files.push(file_record(&path, &file.spans, spans_digest));
    files.push(file_record(&index_path, &file.index, index_digest));
    put(store.as_ref(), path, file.spans).await?;
    // After the span file: an index entry never points at spans not yet stored. The segment (or
    // the waiting exports) is released only once both are written.
    put(store.as_ref(), index_path, file.index).await?;
    Ok(Written {
        hour,
        rows: file.rows,
        payloads: committed,
        tenant,
        files,
    })
}
