//! Writing the run summary ([`cairn_schema::run_summary`]) of one span file: the partial
//! aggregates per trace, computed by the same statement readers use for files without one,
//! sorted by trace id, beside the file.

use std::sync::Arc;

use cairn_schema::columns::{col, spans_schema};
use cairn_schema::run_summary;
use cairn_store::file_format::summary_properties;
use datafusion::prelude::col as column;
use object_store::buffered::BufWriter;
use object_store::path::Path;
use object_store::ObjectStore;
use parquet::arrow::async_writer::AsyncArrowWriter;

use crate::hashing::HashingWriter;
use crate::{merge, Result};
use cairn_store::chain::FileRecord;

/// The summary path of the span file at `data`, or `None` when `data` is not a span file name.
pub fn path_of(data: &Path) -> Option<Path> {
    let name = run_summary::summary_of(data.filename()?)?;
    Some(cairn_schema::compaction::parent(data).join(name.as_str()))
}

/// Writes the summary of the span file at `data` (which must exist) within `memory_bytes`;
/// returns the record of the file written (none when `data` is not a span file). Writing it
/// again writes the same rows.
pub async fn summarise(
    store: &Arc<dyn ObjectStore>,
    data: &Path,
    memory_bytes: usize,
) -> Result<Option<FileRecord>> {
    let Some(output) = path_of(data) else {
        return Ok(None);
    };
    let ctx = merge::context(store, memory_bytes, 1)?;
    ctx.register_table("spans", Arc::new(merge::table(&[data], &spans_schema())?))?;
    let df = ctx
        .sql(&run_summary::PARTIAL)
        .await?
        .sort(vec![column(col::TRACE_ID).sort(true, false)])?;
    let schema = Arc::new(df.schema().as_arrow().clone());
    let batches = df.collect().await?;
    let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
    let props = summary_properties(&schema, rows as u64);
    let (sink, written) =
        HashingWriter::new(BufWriter::new(Arc::clone(store), output.clone()), &output);
    let mut writer = AsyncArrowWriter::try_new(sink, schema, Some(props))?;
    for batch in &batches {
        writer.write(batch).await?;
    }
    writer.close().await?;
    Ok(Some(written.record()))
}
