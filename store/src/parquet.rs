//! Parquet encoding of one partition's files, with the settings of
//! [`crate::file_format`]. Spans: sorted by (trace id, start time). Payloads: one row per
//! hash, in arrival order. Trace index: sorted by (trace id, hour), one row per pair.
//!
//! Encoding copies as little as it can, since a collector's flushes are charged to its memory
//! budget: spans are sorted by index and gathered [`SLICE_ROWS`] rows at a time into the
//! writer, never as a whole sorted copy; payloads to keep are gathered once from every batch.

use crate::file_format::{sort_keys, writer_properties, Effort};
use arrow::array::UInt32Array;
use arrow::array::{Array, AsArray, RecordBatch};
use arrow::compute::{
    concat_batches, interleave_record_batch, lexsort_to_indices, take_record_batch, SortColumn,
};
use arrow::datatypes::SchemaRef;
use cairn_schema::columns::{payloads_schema, spans_schema};
use cairn_schema::layout::Dataset;

use parquet::arrow::ArrowWriter;

use crate::{Error, Result};

fn internal(e: arrow::error::ArrowError) -> Error {
    Error::Internal(e.to_string())
}

/// Rows gathered into the writer at a time when writing in sorted order.
pub const SLICE_ROWS: usize = 4096;

/// The order of `batch`'s rows sorted by `keys`.
fn sort_indices(batch: &RecordBatch, keys: &[&str]) -> Result<UInt32Array> {
    let columns: Vec<SortColumn> = keys
        .iter()
        .map(|name| SortColumn {
            values: batch.column_by_name(name).expect("sort column").clone(),
            options: None,
        })
        .collect();
    lexsort_to_indices(&columns, None).map_err(internal)
}

/// Concatenates `batches` and sorts the rows by `keys`.
fn sort(schema: &SchemaRef, batches: &[RecordBatch], keys: &[&str]) -> Result<RecordBatch> {
    let batch = concat_batches(schema, batches).map_err(internal)?;
    let indices = sort_indices(&batch, keys)?;
    take_record_batch(&batch, &indices).map_err(internal)
}

/// Distinct values of string column `name` taken in the order `order` (rows in order when
/// none), counting a value again only when it differs from the previous row's.
fn runs(batch: &RecordBatch, name: &str, order: Option<&UInt32Array>) -> u64 {
    let values = batch
        .column_by_name(name)
        .expect("column")
        .as_string::<i32>();
    let at = |i: usize| match order {
        Some(o) => values.value(o.value(i) as usize),
        None => values.value(i),
    };
    (0..values.len())
        .filter(|&i| i == 0 || at(i) != at(i - 1))
        .count() as u64
}

fn write(batch: &RecordBatch, dataset: Dataset, effort: Effort) -> Result<(Vec<u8>, usize)> {
    write_in_order(batch, None, dataset, effort)
}

/// Encodes `batch` with its rows in `order` (as they are when none), gathering
/// [`SLICE_ROWS`] at a time.
fn write_in_order(
    batch: &RecordBatch,
    order: Option<&UInt32Array>,
    dataset: Dataset,
    effort: Effort,
) -> Result<(Vec<u8>, usize)> {
    let distinct = match sort_keys(dataset).first() {
        Some(key) => runs(batch, key, order),
        None => batch.num_rows() as u64,
    };
    let mut out = Vec::with_capacity(batch.get_array_memory_size() / 8);
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
    match order {
        None => writer.write(batch).map_err(parquet_err)?,
        Some(order) => {
            for start in (0..order.len()).step_by(SLICE_ROWS) {
                let rows = order.slice(start, SLICE_ROWS.min(order.len() - start));
                let slice = take_record_batch(batch, &rows).map_err(internal)?;
                writer.write(&slice).map_err(parquet_err)?;
            }
        }
    }
    writer.close().map_err(parquet_err)?;
    Ok((out, batch.num_rows()))
}

/// Sorts span batches by (trace id, start time) and encodes them as one Parquet file.
pub fn encode_spans(batches: &[RecordBatch], effort: Effort) -> Result<(Vec<u8>, usize)> {
    let schema = batches
        .first()
        .map_or_else(spans_schema, RecordBatch::schema);
    let batch = concat_batches(&schema, batches).map_err(internal)?;
    let order = sort_indices(&batch, sort_keys(Dataset::Spans))?;
    write_in_order(&batch, Some(&order), Dataset::Spans, effort)
}

/// The rows of payload batches to store, as (batch, row): the first row of each hash, in
/// arrival order, leaving out hashes `known` says are stored already.
pub fn payload_rows(
    batches: &[RecordBatch],
    mut known: impl FnMut(&str) -> bool,
) -> Vec<(usize, usize)> {
    let mut seen = foldhash::HashSet::default();
    let mut rows = Vec::new();
    for (b, batch) in batches.iter().enumerate() {
        let hashes = batch.column(0).as_string::<i32>();
        for r in 0..hashes.len() {
            let h = hashes.value(r);
            if seen.insert(h) && !known(h) {
                rows.push((b, r));
            }
        }
    }
    rows
}

/// Encodes `rows` of payload batches (see [`payload_rows`]) as one file, gathered in one copy.
pub fn encode_payload_rows(
    batches: &[RecordBatch],
    rows: &[(usize, usize)],
    effort: Effort,
) -> Result<(Vec<u8>, usize)> {
    let all = if batches.is_empty() {
        RecordBatch::new_empty(payloads_schema())
    } else {
        let refs: Vec<&RecordBatch> = batches.iter().collect();
        interleave_record_batch(&refs, rows).map_err(internal)?
    };
    write(&all, Dataset::Payloads, effort)
}

/// Keeps the first row of each hash of payload batches, in arrival order (messages of one
/// conversation stay together, which compresses far better than hash order; lookups by hash
/// use the bloom filter), and encodes them as one file.
pub fn encode_payloads(batches: &[RecordBatch], effort: Effort) -> Result<(Vec<u8>, usize)> {
    encode_payload_rows(batches, &payload_rows(batches, |_| false), effort)
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
        // Known hashes are left out, the first row of each other hash kept, in arrival order.
        let b = payloads(&["a", "d", "b"]);
        assert_eq!(
            payload_rows(&[a.clone(), b.clone()], |h| h == "a"),
            vec![(0, 0), (1, 1)]
        );
        let (_, rows) = encode_payload_rows(&[a, b], &[(0, 0), (1, 1)], Effort::Ingest).unwrap();
        assert_eq!(rows, 2);
    }

    #[test]
    fn spans_gathered_slice_by_slice_come_out_sorted() {
        use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
        // Traces in a scrambled order over two batches, more rows than several slices.
        let rows = 3 * SLICE_ROWS + 5;
        let ids: Vec<(String, i64)> = (0..rows)
            .map(|i| {
                (
                    format!("{:032x}", (i * 7919) % 1000),
                    ((i * 104_729) % 9973) as i64,
                )
            })
            .collect();
        let batch = |range: std::ops::Range<usize>| {
            let r: Vec<(&str, i64, i64)> = ids[range]
                .iter()
                .map(|(t, s)| (t.as_str(), *s, *s + 1))
                .collect();
            crate::trace_index::tests::spans(&r)
        };
        let (bytes, n) =
            encode_spans(&[batch(0..rows / 2), batch(rows / 2..rows)], Effort::Ingest).unwrap();
        assert_eq!(n, rows);
        let reader = ParquetRecordBatchReaderBuilder::try_new(bytes::Bytes::from(bytes))
            .unwrap()
            .build()
            .unwrap();
        let mut got = Vec::new();
        for b in reader {
            let b = b.unwrap();
            let trace = b.column_by_name("trace_id").unwrap().as_string::<i32>();
            let start = b
                .column_by_name("start_time")
                .unwrap()
                .as_primitive::<arrow::datatypes::TimestampNanosecondType>();
            got.extend((0..b.num_rows()).map(|i| (trace.value(i).to_owned(), start.value(i))));
        }
        let mut want = ids.clone();
        want.sort();
        assert_eq!(got, want);
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
