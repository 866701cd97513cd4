//! `cairn reindex`: builds the trace index ([`cairn_schema::trace_index`]) of tenants whose
//! spans were written before it existed. For each hour partition, the entries of the visible span
//! files (read a batch at a time) are written as one index file named after the hour (so a run
//! that is stopped and started again rewrites the same files); once every hour is done, the files
//! are merged into one as compaction would, and the tenant's index is marked complete: readers
//! start to use it. Spans written meanwhile are indexed by the collectors themselves. Every span
//! file without a run summary ([`cairn_schema::run_summary`]) gets one, in every tenant.
//!
//! Every file it writes is recorded in the tenant's tamper-evident chain as the compactor
//! records its own (writer `reindex`): each hour's index file and run summaries as `add` once
//! written, the merge as `replace`, the completion marker as `add`; so `cairn verify` is clean
//! after a reindex.

use std::sync::Arc;

use cairn_schema::columns::{col, spans_schema};
use cairn_schema::layout::{self, Dataset};
use cairn_schema::tenant::Tenant;
use cairn_schema::trace_index;
use cairn_store::chain::{Chain, FileRecord};
use cairn_store::file_format::Effort;
use cairn_store::visible::VisibleStore;
use futures::StreamExt;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

use crate::record::Recorder;
use crate::{merge, summary, CompactionConfig, Compactor, Error, Result};

/// What a reindex did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ReindexReport {
    /// Tenants indexed now.
    pub tenants: usize,
    /// Tenants whose index was already complete (left alone without `force`).
    pub already_complete: usize,
    /// Hour partitions read.
    pub hours: usize,
    /// Index entries written.
    pub entries: u64,
    /// Run summaries written (for span files without one).
    pub summaries: usize,
}

/// Indexes `tenants` (every tenant with spans when empty); tenants already complete are skipped
/// unless `force`. Reads with at most `memory_bytes` per hour partition. Records what it writes
/// in `chain`; fails with [`Error::Unrecorded`] if a record could not be appended.
pub async fn reindex(
    store: Arc<dyn ObjectStore>,
    tenants: &[Tenant],
    force: bool,
    memory_bytes: usize,
    chain: Chain,
) -> Result<ReindexReport> {
    let recorder = Arc::new(Recorder::new(chain, "reindex"));
    let tenants = if tenants.is_empty() {
        let listing = store
            .list_with_delimiter(Some(&object_store::path::Path::from(
                Dataset::Spans.prefix(),
            )))
            .await?;
        listing
            .common_prefixes
            .iter()
            .filter_map(|p| Tenant::new(p.filename()?.strip_prefix("tenant=")?).ok())
            .collect()
    } else {
        tenants.to_vec()
    };
    let compactor = Compactor::new(
        Arc::clone(&store),
        CompactionConfig {
            compaction_memory: memory_bytes,
            ..CompactionConfig::default()
        },
    )
    .with_recorder(Arc::clone(&recorder));
    let mut report = ReindexReport::default();
    for tenant in tenants {
        report.summaries += summarise_tenant(&store, &recorder, &tenant, memory_bytes).await?;
        if !force && cairn_store::trace_index::is_complete(store.as_ref(), &tenant).await? {
            report.already_complete += 1;
            continue;
        }
        tenant_index(&store, &recorder, &tenant, memory_bytes, &mut report).await?;
        compactor.merge_index(&tenant).await?;
        cairn_store::trace_index::mark_complete(store.as_ref(), &tenant).await?;
        let marker = trace_index::marker(&tenant);
        let marked = FileRecord::of_bytes(&marker, cairn_store::trace_index::MARKER);
        recorder.written(&tenant, vec![marked]).await;
        report.tenants += 1;
        tracing::info!(%tenant, "trace index built");
    }
    recorder.retry().await;
    match recorder.unrecorded() {
        0 => Ok(report),
        n => Err(Error::Unrecorded(n)),
    }
}

/// Writes the run summary of every visible span file of `tenant` that has none; returns how many.
async fn summarise_tenant(
    store: &Arc<dyn ObjectStore>,
    recorder: &Recorder,
    tenant: &Tenant,
    memory_bytes: usize,
) -> Result<usize> {
    let visible = VisibleStore::new(Arc::clone(store));
    let mut written = 0;
    for hour in hours(store, tenant).await? {
        let prefix = layout::hour_prefix(Dataset::Spans, tenant, hour);
        let objects = store.list_with_delimiter(Some(&prefix)).await?.objects;
        let files = visible.partition(objects).await?;
        let mut summaries = Vec::new();
        for meta in files.unsummarised() {
            summaries.extend(summary::summarise(store, &meta.location, memory_bytes).await?);
            written += 1;
        }
        if !summaries.is_empty() {
            recorder.written(tenant, summaries).await;
        }
    }
    Ok(written)
}

/// The hour partitions of `tenant`'s spans.
async fn hours(store: &Arc<dyn ObjectStore>, tenant: &Tenant) -> Result<Vec<i64>> {
    let listing = store
        .list_with_delimiter(Some(&layout::tenant_prefix(Dataset::Spans, tenant)))
        .await?;
    Ok(listing
        .common_prefixes
        .iter()
        .filter_map(|p| layout::parse_hour_segment(p.filename()?))
        .collect())
}

async fn tenant_index(
    store: &Arc<dyn ObjectStore>,
    recorder: &Recorder,
    tenant: &Tenant,
    memory_bytes: usize,
    report: &mut ReindexReport,
) -> Result<()> {
    let visible = VisibleStore::new(Arc::clone(store));
    for hour in hours(store, tenant).await? {
        let prefix = layout::hour_prefix(Dataset::Spans, tenant, hour);
        let objects = store.list_with_delimiter(Some(&prefix)).await?.objects;
        let files = visible.partition(objects).await?.visible;
        report.hours += 1;
        if files.is_empty() {
            continue;
        }
        let mut stream = merge::read(store, &files, &spans_schema(), memory_bytes, 2)?
            .select_columns(&[col::TRACE_ID, col::START_TIME, col::END_TIME, col::LINKS])?
            .execute_stream()
            .await?;
        let mut entries = Vec::new();
        while let Some(batch) = stream.next().await {
            let batch = cairn_store::trace_index::entries(&batch?, hour, |_| None)?;
            entries.push(batch);
        }
        let (bytes, rows) = cairn_store::parquet::encode_trace_index(&entries, Effort::Compaction)?;
        report.entries += rows as u64;
        let path = trace_index::dir(tenant).join(trace_index::reindex_name(hour).as_str());
        let record = FileRecord::of_bytes(&path, &bytes);
        store.put(&path, PutPayload::from(bytes)).await?;
        recorder.written(tenant, vec![record]).await;
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use arrow::array::{Int64Array, RecordBatch, StringArray, TimestampNanosecondArray};
    use cairn_store::file_format::Effort;
    use object_store::memory::InMemory;
    use object_store::PutPayload;

    use super::*;

    /// `n` index entries, one per trace, of traces `first..first + n` in `hour`.
    pub(crate) fn entries(first: usize, n: usize, hour: i64) -> RecordBatch {
        let ids: Vec<String> = (first..first + n)
            .map(|i| format!("{:032x}", (i as u128).wrapping_mul(0x9e37_79b9_7f4a_7c15)))
            .collect();
        let times = || TimestampNanosecondArray::from(vec![hour * 3_600_000_000_000; n]);
        RecordBatch::try_new(
            cairn_schema::trace_index::schema(),
            vec![
                Arc::new(StringArray::from(ids)),
                Arc::new(Int64Array::from(vec![hour; n])),
                Arc::new(times().with_timezone("UTC")),
                Arc::new(times().with_timezone("UTC")),
                Arc::new(StringArray::from(vec![None::<&str>; n])),
                arrow::array::new_null_array(&cairn_schema::trace_index::hours_type(), n),
            ],
        )
        .unwrap()
    }

    const FILES: usize = 8;
    const PER_FILE: usize = 50_000;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_index_far_larger_than_the_memory_merges_by_spilling() {
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let tenant = Tenant::new("t").unwrap();
        for f in 0..FILES {
            let batch = entries(f * PER_FILE, PER_FILE, 490_000 + f as i64);
            let (bytes, _) =
                cairn_store::parquet::encode_trace_index(&[batch], Effort::Ingest).unwrap();
            let name = cairn_schema::trace_index::reindex_name(490_000 + f as i64);
            let path = cairn_schema::trace_index::dir(&tenant).join(name.as_str());
            store.put(&path, PutPayload::from(bytes)).await.unwrap();
        }
        // Two sorts and two aggregates share 8 MiB: each spills past its share.
        let compactor = Compactor::new(
            Arc::clone(&store),
            CompactionConfig {
                compaction_memory: 8 << 20,
                ..CompactionConfig::default()
            },
        );
        compactor.merge_index(&tenant).await.unwrap();
        // One visible file, holding every entry once.
        use futures::TryStreamExt;
        let objects: Vec<_> = store
            .list(Some(&cairn_schema::trace_index::dir(&tenant)))
            .try_collect()
            .await
            .unwrap();
        let files = cairn_store::visible::VisibleStore::new(Arc::clone(&store))
            .partition(objects)
            .await
            .unwrap();
        assert_eq!(files.visible.len(), 1, "{:?}", files.visible);
        let rows: usize = crate::merge::read(
            &store,
            &files.visible,
            &cairn_schema::trace_index::schema(),
            64 << 20,
            1,
        )
        .unwrap()
        .collect()
        .await
        .unwrap()
        .iter()
        .map(RecordBatch::num_rows)
        .sum();
        assert_eq!(rows, FILES * PER_FILE);
    }
}
