//! Entries of the trace index ([`cairn_schema::trace_index`]): one per (trace, hour) of a batch
//! of spans, with the earliest start and latest end, and how entries of the same trace and hour
//! combine.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{
    Array, AsArray, Int64Array, RecordBatch, StringArray, TimestampNanosecondArray,
};
use arrow::datatypes::TimestampNanosecondType;
use cairn_schema::columns::col;
use cairn_schema::layout::{self, Dataset};
use cairn_schema::tenant::Tenant;
use cairn_schema::trace_index::{self, schema};
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

use crate::{Error, Result};

/// Whether the tenant's index is complete (its marker exists).
pub async fn is_complete(store: &dyn ObjectStore, tenant: &Tenant) -> object_store::Result<bool> {
    match store.head(&trace_index::marker(tenant)).await {
        Ok(_) => Ok(true),
        Err(object_store::Error::NotFound { .. }) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Marks the tenant's index complete.
pub async fn mark_complete(store: &dyn ObjectStore, tenant: &Tenant) -> object_store::Result<()> {
    store
        .put(&trace_index::marker(tenant), PutPayload::from_static(b"{}"))
        .await
        .map(|_| ())
}

/// Called by a writer before it first writes spans of `tenant`: a tenant without spans yet is
/// indexed from its first span on, so its index is marked complete now. A tenant with spans but
/// no marker was written before the index existed: it stays unmarked until `cairn reindex`
/// (the writer's entries are kept meanwhile). Returns whether the index is complete.
pub async fn prepare_tenant(
    store: &dyn ObjectStore,
    tenant: &Tenant,
) -> object_store::Result<bool> {
    if is_complete(store, tenant).await? {
        return Ok(true);
    }
    let spans = store
        .list_with_delimiter(Some(&layout::tenant_prefix(Dataset::Spans, tenant)))
        .await?;
    if spans.common_prefixes.is_empty() && spans.objects.is_empty() {
        mark_complete(store, tenant).await?;
        return Ok(true);
    }
    tracing::warn!(%tenant, "this tenant's spans were written before the trace index: lookups by trace id read every hour until `cairn reindex` indexes them");
    Ok(false)
}

/// The index entries of `spans`, all stored in the partition of `hour`, sorted: one per trace,
/// and one per (linked trace, linking trace) for spans that link to another trace.
pub fn entries(spans: &RecordBatch, hour: i64) -> Result<RecordBatch> {
    let column = |name: &str| {
        spans
            .column_by_name(name)
            .ok_or_else(|| Error::Internal(format!("spans without {name}")))
    };
    let traces = column(col::TRACE_ID)?.as_string::<i32>();
    let starts = column(col::START_TIME)?.as_primitive::<TimestampNanosecondType>();
    let ends = column(col::END_TIME)?.as_primitive::<TimestampNanosecondType>();
    let links = spans.column_by_name(col::LINKS).map(|l| l.as_list::<i32>());
    let mut by_key: BTreeMap<(&str, Option<&str>), (i64, i64)> = BTreeMap::new();
    let mut add = |key, s: i64, e: i64| {
        by_key
            .entry(key)
            .and_modify(|(first, last)| {
                *first = (*first).min(s);
                *last = (*last).max(e);
            })
            .or_insert((s, e));
    };
    // Linked trace ids of each row, as offsets into one flat array.
    let linked = links.map(|l| {
        let targets = l
            .values()
            .as_struct()
            .column_by_name("trace_id")
            .map(|t| t.as_string::<i32>().clone());
        (l.offsets().clone(), targets)
    });
    for i in 0..spans.num_rows() {
        if traces.is_null(i) {
            continue;
        }
        let (trace, s, e) = (traces.value(i), starts.value(i), ends.value(i));
        add((trace, None), s, e);
        if let Some((offsets, Some(targets))) = &linked {
            for j in offsets[i] as usize..offsets[i + 1] as usize {
                if targets.is_valid(j) && targets.value(j) != trace && !targets.value(j).is_empty()
                {
                    add((targets.value(j), Some(trace)), s, e);
                }
            }
        }
    }
    build(
        by_key
            .into_iter()
            .map(|((t, from), (s, e))| (t, hour, s, e, from)),
    )
}

/// One entry per (trace, hour, linked from) of index rows sorted by those columns, keeping the
/// earliest start and the latest end of the entries it combines.
pub fn combine(sorted: &RecordBatch) -> Result<RecordBatch> {
    let traces = sorted.column(0).as_string::<i32>();
    let hours = sorted
        .column(1)
        .as_primitive::<arrow::datatypes::Int64Type>();
    let starts = sorted.column(2).as_primitive::<TimestampNanosecondType>();
    let ends = sorted.column(3).as_primitive::<TimestampNanosecondType>();
    let from = sorted.column(4).as_string::<i32>();
    let mut out: Vec<(&str, i64, i64, i64, Option<&str>)> = Vec::with_capacity(sorted.num_rows());
    for i in 0..sorted.num_rows() {
        let row = (
            traces.value(i),
            hours.value(i),
            starts.value(i),
            ends.value(i),
            from.is_valid(i).then(|| from.value(i)),
        );
        match out.last_mut() {
            Some(last) if (last.0, last.1, last.4) == (row.0, row.1, row.4) => {
                last.2 = last.2.min(row.2);
                last.3 = last.3.max(row.3);
            }
            _ => out.push(row),
        }
    }
    build(out.into_iter())
}

fn build<'a>(
    rows: impl Iterator<Item = (&'a str, i64, i64, i64, Option<&'a str>)>,
) -> Result<RecordBatch> {
    let rows: Vec<_> = rows.collect();
    let utc = |v: TimestampNanosecondArray| v.with_timezone("UTC");
    RecordBatch::try_new(
        schema(),
        vec![
            Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.0))),
            Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.1))),
            Arc::new(utc(TimestampNanosecondArray::from_iter_values(
                rows.iter().map(|r| r.2),
            ))),
            Arc::new(utc(TimestampNanosecondArray::from_iter_values(
                rows.iter().map(|r| r.3),
            ))),
            Arc::new(StringArray::from_iter(rows.iter().map(|r| r.4))),
        ],
    )
    .map_err(|e| Error::Internal(format!("trace index entries: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::file_format::Effort;
    use arrow::array::ArrayRef;
    use arrow::compute::concat_batches;

    fn spans(rows: &[(&str, i64, i64)]) -> RecordBatch {
        let fields = cairn_schema::columns::spans_schema();
        let mut columns: Vec<ArrayRef> = Vec::new();
        for f in fields.fields() {
            let a: ArrayRef = match f.name().as_str() {
                col::TRACE_ID => Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.0))),
                col::START_TIME => Arc::new(
                    TimestampNanosecondArray::from_iter_values(rows.iter().map(|r| r.1))
                        .with_timezone("UTC"),
                ),
                col::END_TIME => Arc::new(
                    TimestampNanosecondArray::from_iter_values(rows.iter().map(|r| r.2))
                        .with_timezone("UTC"),
                ),
                _ => arrow::array::new_null_array(f.data_type(), rows.len()),
            };
            columns.push(a);
        }
        RecordBatch::try_new_with_options(
            Arc::new(arrow::datatypes::Schema::new(
                fields
                    .fields()
                    .iter()
                    .map(|f| f.as_ref().clone().with_nullable(true))
                    .collect::<Vec<_>>(),
            )),
            columns,
            &Default::default(),
        )
        .unwrap()
    }

    fn rows(b: &RecordBatch) -> Vec<(String, i64, i64, i64)> {
        (0..b.num_rows())
            .map(|i| {
                (
                    b.column(0).as_string::<i32>().value(i).to_owned(),
                    b.column(1)
                        .as_primitive::<arrow::datatypes::Int64Type>()
                        .value(i),
                    b.column(2)
                        .as_primitive::<TimestampNanosecondType>()
                        .value(i),
                    b.column(3)
                        .as_primitive::<TimestampNanosecondType>()
                        .value(i),
                )
            })
            .collect()
    }

    #[test]
    fn index_files_keep_row_groups_small_each_with_its_own_bloom_filter() {
        use parquet::file::reader::{FileReader, SerializedFileReader};
        let ids: Vec<String> = (0..20_000).map(|i| format!("{i:032x}")).collect();
        let rows: Vec<(&str, i64, i64)> = ids.iter().map(|t| (t.as_str(), 1, 2)).collect();
        let e = entries(&spans(&rows), 3).unwrap();
        let (bytes, n) = crate::parquet::encode_trace_index(&[e], Effort::Ingest).unwrap();
        assert_eq!(n, 20_000);
        let reader = SerializedFileReader::new(bytes::Bytes::from(bytes)).unwrap();
        let groups = reader.metadata().row_groups();
        assert_eq!(groups.len(), 3, "8,192 rows a group");
        for g in groups {
            let bloom = g.column(0).bloom_filter_length().unwrap();
            assert!(
                bloom < 64 << 10,
                "a filter sized for the group's rows: {bloom} bytes"
            );
        }
    }

    #[test]
    fn one_entry_per_trace_with_its_extent() {
        let e = entries(
            &spans(&[("b", 5, 9), ("a", 3, 4), ("b", 2, 6), ("a", 1, 8)]),
            7,
        )
        .unwrap();
        assert_eq!(rows(&e), [("a".into(), 7, 1, 8), ("b".into(), 7, 2, 9)]);
        // Entries written twice, or of several files, combine into one per trace and hour.
        let other = entries(&spans(&[("a", 0, 2)]), 7).unwrap();
        let later = entries(&spans(&[("a", 50, 60)]), 8).unwrap();
        let all = concat_batches(&schema(), [&e, &other, &e, &later]).unwrap();
        let sorted = crate::parquet::sort_index(&[all]).unwrap();
        assert_eq!(
            rows(&combine(&sorted).unwrap()),
            [
                ("a".into(), 7, 0, 8),
                ("a".into(), 8, 50, 60),
                ("b".into(), 7, 2, 9)
            ]
        );
    }
}
