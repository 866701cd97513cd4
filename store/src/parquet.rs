//! Parquet encoding of one partition's files, with the settings of
//! [`crate::file_format`]. Spans: sorted by (trace id, start time). Payloads: one row per
//! hash, in arrival order. Trace index: sorted by (trace id, hour), one row per pair.

use crate::file_format::{sort_keys, writer_properties, Effort};
use arrow::array::{Array, AsArray, BooleanArray, RecordBatch};
use arrow::compute::{
    concat_batches, filter_record_batch, lexsort_to_indices, take_record_batch, SortColumn,
};
use arrow::datatypes::SchemaRef;
use cairn_schema::columns::{payloads_schema, spans_schema};
use cairn_schema::layout::Dataset;

use parquet::arrow::ArrowWriter;

use crate::{Error, Result};

fn internal(e: arrow::error::ArrowError) -> Error {
    Error::Internal(e.to_string())
}

/// Concatenates `batches` and sorts the rows by `keys`.
fn sort(schema: &SchemaRef, batches: &[RecordBatch], keys: &[&str]) -> Result<RecordBatch> {
    let batch = concat_batches(schema, batches).map_err(internal)?;
    let columns: Vec<SortColumn> = keys
        .iter()
        .map(|name| SortColumn {
            values: batch.column_by_name(name).expect("sort column").clone(),
            options: None,
        })
        .collect();
    let indices = lexsort_to_indices(&columns, None).map_err(internal)?;
    take_record_batch(&batch, &indices).map_err(internal)
}

/// Rows whose (sorted) string column `name` differs from the previous row's.
fn first_of_each(batch: &RecordBatch, name: &str) -> BooleanArray {
    let values = batch
        .column_by_name(name)
        .expect("column")
        .as_string::<i32>();
    (0..values.len())
        .map(|i| Some(i == 0 || values.value(i) != values.value(i - 1)))
        .collect()
}

fn write(batch: &RecordBatch, dataset: Dataset, effort: Effort) -> Result<(Vec<u8>, usize)> {
    let distinct = match sort_keys(dataset).first() {
        Some(key) => first_of_each(batch, key).true_count() as u64,
        None => batch.num_rows() as u64,
    };
    let mut out = Vec::with_capacity(batch.get_array_memory_size() / 4);
    let parquet_err = |e: parquet::errors::ParquetError| Error::Internal(e.to_string());
    let mut writer = ArrowWriter::try_new(
        &mut out,
        batch.schema(),
        Some(writer_properties(
            &batch.schema(),
            dataset,
            distinct,
            effort,
        )),
    )
    .map_err(parquet_err)?;
    writer.write(batch).map_err(parquet_err)?;
    writer.close().map_err(parquet_err)?;
    Ok((out, batch.num_rows()))
}

/// Sorts span batches by (trace id, start time) and encodes them as one Parquet file.
pub fn encode_spans(batches: &[RecordBatch], effort: Effort) -> Result<(Vec<u8>, usize)> {
    let batch = sort(&spans_schema(), batches, sort_keys(Dataset::Spans))?;
    write(&batch, Dataset::Spans, effort)
}

/// Keeps the first row of each hash of payload batches, in arrival order (messages of one
/// conversation stay together, which compresses far better than hash order; lookups by hash
/// use the bloom filter), and encodes them as one file.
pub fn encode_payloads(batches: &[RecordBatch], effort: Effort) -> Result<(Vec<u8>, usize)> {
    let all = concat_batches(&payloads_schema(), batches).map_err(internal)?;
    let hashes = all.column(0).as_string::<i32>();
    let mut seen = std::collections::HashSet::with_capacity(hashes.len());
    let keep: BooleanArray = (0..hashes.len())
        .map(|i| Some(seen.insert(hashes.value(i))))
        .collect();
    let distinct = filter_record_batch(&all, &keep).map_err(internal)?;
    write(&distinct, Dataset::Payloads, effort)
}

/// Index rows sorted by (trace id, hour, linked from).
pub fn sort_index(batches: &[RecordBatch]) -> Result<RecordBatch> {
    sort(
        &cairn_schema::trace_index::schema(),
        batches,
        sort_keys(Dataset::TraceIndex),
    )
}

/// Trace index rows as one file: sorted by (trace id, hour, linked from), one row per key
/// ([`crate::trace_index::combine`]).
pub fn encode_trace_index(batches: &[RecordBatch], effort: Effort) -> Result<(Vec<u8>, usize)> {
    let combined = crate::trace_index::combine(&sort_index(batches)?)?;
    write(&combined, Dataset::TraceIndex, effort)
}

/// A span file of `hour` and its trace index entries, both encoded: what a flush writes, the
/// spans file first. `payload_hour` says which partition holds each payload the spans refer to
/// (see [`crate::trace_index::entries`]).
pub fn encode_span_file(
    spans: &RecordBatch,
    hour: i64,
    payload_hour: impl Fn(&str) -> Option<i64>,
    effort: Effort,
) -> Result<SpanFile> {
    let (spans_bytes, rows) = encode_spans(std::slice::from_ref(spans), effort)?;
    let entries = crate::trace_index::entries(spans, hour, payload_hour)?;
    let (index_bytes, _) = encode_trace_index(&[entries], Effort::Ingest)?;
    Ok(SpanFile {
        spans: spans_bytes,
        rows,
        index: index_bytes,
    })
}

/// An encoded span file and its index entries.
pub struct SpanFile {
    pub spans: Vec<u8>,
    pub rows: usize,
    pub index: Vec<u8>,
}

/// Drops payload rows whose hash `known` says is already stored.
pub fn without_known(
    batch: &RecordBatch,
    mut known: impl FnMut(&str) -> bool,
) -> Result<RecordBatch> {
    let hashes = batch.column(0).as_string::<i32>();
    let keep: BooleanArray = (0..hashes.len())
        .map(|i| Some(!known(hashes.value(i))))
        .collect();
    filter_record_batch(batch, &keep).map_err(internal)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::StringArray;

    use super::*;

    fn payloads(hashes: &[&str]) -> RecordBatch {
        let column = |f: &dyn Fn(&str) -> String| {
            Arc::new(StringArray::from_iter_values(hashes.iter().map(|h| f(h)))) as _
        };
        RecordBatch::try_new(
            payloads_schema(),
            vec![
                column(&|h| h.to_owned()),
                column(&|_| "message".to_owned()),
                column(&|h| format!("content of {h}")),
            ],
        )
        .unwrap()
    }

    #[test]
    fn payloads_are_distinct() {
        let a = payloads(&["b", "a"]);
        let b = payloads(&["a", "c"]);
        let (bytes, rows) = encode_payloads(&[a.clone(), b], Effort::Ingest).unwrap();
        assert_eq!(rows, 3);
        assert!(bytes.starts_with(b"PAR1"));
        let filtered = without_known(&a, |h| h == "a").unwrap();
        assert_eq!(filtered.num_rows(), 1);
    }

    #[test]
    fn payload_files_keep_row_groups_small_each_with_its_own_bloom_filter() {
        use parquet::bloom_filter::Sbbf;
        use parquet::file::reader::{FileReader, SerializedFileReader};
        use parquet::file::serialized_reader::ReadOptionsBuilder;
        let hashes: Vec<String> = (0..5000).map(|i| format!("{i:032x}")).collect();
        let refs: Vec<&str> = hashes.iter().map(String::as_str).collect();
        let (bytes, n) = encode_payloads(&[payloads(&refs)], Effort::Compaction).unwrap();
        assert_eq!(n, 5000);
        let options = ReadOptionsBuilder::new().with_reader_properties(
            parquet::file::properties::ReaderProperties::builder()
                .set_read_bloom_filter(true)
                .build(),
        );
        let reader =
            SerializedFileReader::new_with_options(bytes::Bytes::from(bytes), options.build())
                .unwrap();
        let groups = reader.metadata().row_groups().len();
        assert_eq!(groups, 5, "1,024 rows a group");
        // Each group's filter admits its own hashes and, but for false positives, no other.
        let mut admitted = 0;
        for g in 0..groups {
            let row_group = reader.get_row_group(g).unwrap();
            let bloom: &Sbbf = row_group.get_column_bloom_filter(0).expect("a filter");
            let own = &refs[g * 1024..((g + 1) * 1024).min(refs.len())];
            assert!(own.iter().all(|h| bloom.check(h)));
            admitted += refs.iter().filter(|h| bloom.check(*h)).count();
        }
        assert!(admitted < 5000 + 250, "{admitted}");
    }
}
