//! Parquet encoding of one partition's spans: sorted by (trace id, start time), zstd, page
//! statistics and page index, a bloom filter on trace id, the schema version in the metadata.

use std::sync::Arc;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::compute::{concat_batches, lexsort_to_indices, take_record_batch, SortColumn};
use cairn_schema::columns::{col, spans_schema, SCHEMA_VERSION, SCHEMA_VERSION_KEY};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::metadata::{KeyValue, SortingColumn};
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;

use crate::{Error, Result};

/// Rows per row group: small enough for statistics to prune, large enough to compress well.
const ROW_GROUP_ROWS: usize = 64 * 1024;

/// Concatenates and sorts `batches` by (trace id, start time).
pub fn sort(batches: &[RecordBatch]) -> Result<RecordBatch> {
    let internal = |e: arrow::error::ArrowError| Error::Internal(e.to_string());
    let batch = concat_batches(&spans_schema(), batches).map_err(internal)?;
    let column = |name: &str| SortColumn {
        values: batch.column_by_name(name).expect("span column").clone(),
        options: None,
    };
    let indices = lexsort_to_indices(&[column(col::TRACE_ID), column(col::START_TIME)], None)
        .map_err(internal)?;
    take_record_batch(&batch, &indices).map_err(internal)
}

fn distinct_sorted(batch: &RecordBatch, name: &str) -> u64 {
    let ids = batch
        .column_by_name(name)
        .expect("span column")
        .as_string::<i32>();
    (0..ids.len())
        .filter(|&i| i == 0 || ids.value(i) != ids.value(i - 1))
        .count() as u64
}

/// Writer settings for a file of `batch` (sorted).
fn properties(batch: &RecordBatch) -> WriterProperties {
    let schema = spans_schema();
    let idx = |name: &str| schema.index_of(name).expect("span column") as i32;
    let ascending = |column_idx| SortingColumn {
        column_idx,
        descending: false,
        nulls_first: false,
    };
    let trace_id = ColumnPath::from(col::TRACE_ID);
    WriterProperties::builder()
        .set_compression(Compression::ZSTD(
            ZstdLevel::try_new(3).expect("valid level"),
        ))
        .set_statistics_enabled(EnabledStatistics::Page)
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        .set_column_bloom_filter_enabled(trace_id.clone(), true)
        .set_column_bloom_filter_max_ndv(
            trace_id.clone(),
            distinct_sorted(batch, col::TRACE_ID).max(1),
        )
        .set_column_bloom_filter_fpp(trace_id, 0.01)
        .set_sorting_columns(Some(vec![
            ascending(idx(col::TRACE_ID)),
            ascending(idx(col::START_TIME)),
        ]))
        .set_key_value_metadata(Some(vec![KeyValue::new(
            SCHEMA_VERSION_KEY.to_owned(),
            SCHEMA_VERSION.to_owned(),
        )]))
        .build()
}

/// Sorts `batches` and encodes them as one Parquet file.
pub fn encode(batches: &[RecordBatch]) -> Result<(Vec<u8>, usize)> {
    let batch = sort(batches)?;
    let mut out = Vec::with_capacity(batch.get_array_memory_size() / 4);
    let parquet_err = |e: parquet::errors::ParquetError| Error::Internal(e.to_string());
    let mut writer = ArrowWriter::try_new(
        &mut out,
        Arc::clone(&batch.schema()),
        Some(properties(&batch)),
    )
    .map_err(parquet_err)?;
    writer.write(&batch).map_err(parquet_err)?;
    writer.close().map_err(parquet_err)?;
    Ok((out, batch.num_rows()))
}
