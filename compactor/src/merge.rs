//! Merging a run of files into one: read through DataFusion (spans sorted by (trace id, start
//! time) within the memory budget, spilling to disk beyond it; payloads in file order, first row
//! of each hash kept) and streamed into one Parquet file by multipart upload, which the store
//! makes visible only when complete. Each trace's steps take their agent from their ancestors
//! again, and tool calls without ids are matched to the model calls that
//! requested them ([`across_spans`]), now that the partition's later files are at hand. Trace
//! index files merge into one entry per (trace, hour), sorted, without the hours past retention.

use std::collections::HashSet;
use std::sync::Arc;

use arrow::array::{AsArray, BooleanArray, RecordBatch};
use arrow::compute::{concat_batches, filter_record_batch};
use arrow::datatypes::SchemaRef;
use cairn_normalize::agent::across_spans;
use cairn_schema::columns::payloads_schema;
use cairn_schema::columns::spans_schema;
use cairn_schema::layout::Dataset;
use cairn_schema::trace_index;
use cairn_store::file_format::{lookup_column, sort_keys, writer_properties, Effort};
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::execution::memory_pool::FairSpillPool;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::prelude::{col, lit, DataFrame, SessionConfig, SessionContext};
use futures::StreamExt;
use object_store::buffered::BufWriter;

use crate::hashing::HashingWriter;
use cairn_store::chain::FileRecord;
use object_store::path::Path;
use object_store::{ObjectMeta, ObjectStore, ObjectStoreExt};
use parquet::arrow::async_writer::AsyncArrowWriter;
use parquet::file::metadata::ParquetMetaDataReader;

use crate::Result;

const STORE_URL: &str = "cairn://compactor";

/// Merges `files` of `dataset` into a new file at `output`; returns its rows and its record.
/// Trace index entries of hours before `first_kept_hour` are left out (retention).
pub async fn merge(
    store: &Arc<dyn ObjectStore>,
    dataset: Dataset,
    files: &[ObjectMeta],
    output: &Path,
    memory_bytes: usize,
    first_kept_hour: Option<i64>,
) -> Result<(u64, FileRecord)> {
    let schema = match dataset {
        Dataset::Spans => spans_schema(),
        Dataset::Payloads => payloads_schema(),
        Dataset::TraceIndex => trace_index::schema(),
    };
    let keys = sort_keys(dataset);
    // Payloads keep file order, which one partition preserves.
    let partitions = if keys.is_empty() { 1 } else { 2 };
    let mut df = read(store, files, &schema, memory_bytes, partitions)?;
    if let (Dataset::TraceIndex, Some(first)) = (dataset, first_kept_hour) {
        df = df.filter(col(trace_index::column::HOUR).gt_eq(lit(first)))?;
    }
    if !keys.is_empty() {
        df = df.sort(keys.iter().map(|k| col(*k).sort(true, false)).collect())?;
    }
    // Answered from the files' statistics, without a scan.
    let distinct = df.clone().count().await? as u64;
    // Spans are never dropped by a merge: it reads every row of every input, or commits nothing
    // (a file the scan left out would vanish from queries with the inputs the merge replaces).
    if dataset == Dataset::Spans {
        let expected = parquet_rows(store, files).await?;
        if distinct != expected {
            return Err(crate::Error::RowsMissing {
                files: files.len(),
                read: distinct,
                expected,
            });
        }
    }
    let props = writer_properties(&schema, dataset, distinct, Effort::Compaction);
    let (sink, hashed) =
        HashingWriter::new(BufWriter::new(Arc::clone(store), output.clone()), output);
    let mut writer = AsyncArrowWriter::try_new(sink, Arc::clone(&schema), Some(props))?;
    let mut seen: HashSet<String> = HashSet::new();
    let mut stream = df.execute_stream().await?;
    let mut written = 0u64;
    // Spans come sorted by trace: each trace is resolved whole (agent identity inherited from
    // its ancestors), so the last trace of a batch is held back until the next one.
    let mut held: Option<RecordBatch> = None;
    while let Some(batch) = stream.next().await {
        let mut batch = batch?;
        if keys.is_empty() {
            // One row per payload hash.
            let hashes = batch
                .column_by_name(lookup_column(dataset))
                .expect("hash column")
                .as_string::<i32>();
            let keep: BooleanArray = hashes
                .iter()
                .map(|h| Some(h.is_some_and(|h| seen.insert(h.to_owned()))))
                .collect();
            batch = filter_record_batch(&batch, &keep)?;
        } else {
            let all = match held.take() {
                Some(h) => concat_batches(&schema, [&h, &batch])?,
                None => batch,
            };
            let cut = last_trace_start(&all);
            held = Some(all.slice(cut, all.num_rows() - cut));
            batch = resolve(dataset, &all.slice(0, cut))?;
        }
        if batch.num_rows() > 0 {
            written += batch.num_rows() as u64;
            writer.write(&batch).await?;
        }
    }
    if let Some(rest) = held {
        written += rest.num_rows() as u64;
        writer.write(&resolve(dataset, &rest)?).await?;
    }
    writer.close().await?;
    Ok((written, hashed.record()))
}

/// The rows the footers of `files` say they hold.
async fn parquet_rows(store: &Arc<dyn ObjectStore>, files: &[ObjectMeta]) -> Result<u64> {
    let mut rows = 0u64;
    for meta in files {
        // A Parquet file ends with its metadata, the metadata's length (4 bytes) and `PAR1`.
        let end = meta.size;
        let tail = store
            .get_range(&meta.location, end.saturating_sub(8)..end)
            .await?;
        let footer = tail
            .get(..4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as u64)
            .filter(|len| len + 8 <= end)
            .ok_or_else(|| {
                parquet::errors::ParquetError::General(format!("{}: no footer", meta.location))
            })?;
        let metadata = store
            .get_range(&meta.location, end - 8 - footer..end - 8)
            .await?;
        rows += ParquetMetaDataReader::decode_metadata(&metadata)?
            .file_metadata()
            .num_rows() as u64;
    }
    Ok(rows)
}

/// The rows of `files`, read through DataFusion in `partitions` streams within `memory_bytes`.
pub fn read(
    store: &Arc<dyn ObjectStore>,
    files: &[ObjectMeta],
    schema: &SchemaRef,
    memory_bytes: usize,
    partitions: usize,
) -> Result<DataFrame> {
    let ctx = context(store, memory_bytes, partitions)?;
    let paths: Vec<&Path> = files.iter().map(|m| &m.location).collect();
    Ok(ctx.read_table(Arc::new(table(&paths, schema)?))?)
}

/// A session over `store` that runs within `memory_bytes` in `partitions` streams.
pub fn context(
    store: &Arc<dyn ObjectStore>,
    memory_bytes: usize,
    partitions: usize,
) -> Result<SessionContext> {
    // A fair pool: each sort or aggregate that can spill gets its share and spills past it,
    // instead of the first one taking the whole budget and the next one failing.
    let runtime = RuntimeEnvBuilder::new()
        .with_memory_pool(Arc::new(FairSpillPool::new(memory_bytes)))
        .build_arc()?;
    let ctx = SessionContext::new_with_config_rt(
        SessionConfig::new().with_target_partitions(partitions),
        runtime,
    );
    let url = url::Url::parse(STORE_URL).expect("static url");
    ctx.register_object_store(&url, Arc::clone(store));
    Ok(ctx)
}

/// The Parquet files at `paths` (in a [`context`]'s store) as one table of `schema`.
pub fn table(paths: &[&Path], schema: &SchemaRef) -> Result<ListingTable> {
    let urls = paths
        .iter()
        .map(|p| ListingTableUrl::parse(format!("{STORE_URL}/{p}")))
        .collect::<datafusion::error::Result<Vec<_>>>()?;
    let options =
        ListingOptions::new(Arc::new(ParquetFormat::default())).with_file_extension(".parquet");
    Ok(ListingTable::try_new(
        ListingTableConfig::new_with_multi_paths(urls)
            .with_listing_options(options)
            .with_schema(Arc::clone(schema)),
    )?)
}

/// Rows of whole traces, sorted: spans take their agent identity from their ancestors; index
/// entries are combined into one per (trace, hour, linked from). Sorting and combining, rather
/// than aggregating, keeps the merge of an index of any size within the memory budget (the
/// sort spills; the combination streams).
fn resolve(dataset: Dataset, sorted: &RecordBatch) -> Result<RecordBatch> {
    Ok(match dataset {
        Dataset::TraceIndex => cairn_store::trace_index::combine(sorted)?,
        _ => across_spans(sorted),
    })
}

/// Most span rows held back for one trace; a larger trace is resolved in parts of this size.
const MAX_HELD_ROWS: usize = 1 << 20;

/// Where the last trace of `batch` (sorted by trace id) starts, or its end when that trace is
/// already [`MAX_HELD_ROWS`] long.
fn last_trace_start(batch: &RecordBatch) -> usize {
    let rows = batch.num_rows();
    let Some(traces) = batch
        .column_by_name(cairn_schema::columns::col::TRACE_ID)
        .and_then(|c| c.as_string_opt::<i32>())
    else {
        return rows;
    };
    if rows == 0 {
        return 0;
    }
    let last = traces.value(rows - 1);
    let mut start = rows - 1;
    while start > 0 && traces.value(start - 1) == last {
        start -= 1;
    }
    if rows - start >= MAX_HELD_ROWS {
        rows
    } else {
        start
    }
}
