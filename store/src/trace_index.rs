//! Entries of the trace index ([`cairn_schema::trace_index`]): one per (trace, hour) of a batch
//! of spans, with the earliest start and latest end, and how entries of the same trace and hour
//! combine.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use arrow::array::{
    Array, AsArray, Int64Array, Int64Builder, ListBuilder, RecordBatch, StringArray,
    TimestampNanosecondArray,
};
use arrow::datatypes::TimestampNanosecondType;
use cairn_schema::columns::col;
use cairn_schema::layout::{self, Dataset};
use cairn_schema::promoted::PAYLOAD_REFS;
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

/// The content of a tenant's [`trace_index::marker`].
pub const MARKER: &[u8] = b"{}";

/// Marks the tenant's index complete.
pub async fn mark_complete(store: &dyn ObjectStore, tenant: &Tenant) -> object_store::Result<()> {
    store
        .put(
            &trace_index::marker(tenant),
            PutPayload::from_static(MARKER),
        )
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

/// The hours of the payloads a trace's spans in one partition refer to: `None` when one of
/// them is not known.
type PayloadHours = Option<BTreeSet<i64>>;

/// The payload hashes span `i` of `spans` refers to, by column.
fn payload_refs(spans: &RecordBatch, i: usize) -> impl Iterator<Item = &str> + '_ {
    PAYLOAD_REFS.iter().flat_map(move |(name, list)| {
        let column = spans.column_by_name(name);
        let hashes: Vec<&str> = match (column, list) {
            (Some(c), false) => c
                .as_string_opt::<i32>()
                .filter(|c| c.is_valid(i))
                .map(|c| c.value(i))
                .into_iter()
                .collect(),
            (Some(c), true) => c
                .as_list_opt::<i32>()
                .filter(|c| c.is_valid(i))
                .map(|c| {
                    let (from, to) = (c.offsets()[i] as usize, c.offsets()[i + 1] as usize);
                    let values = c.values().as_string::<i32>();
                    (from..to)
                        .filter(|j| values.is_valid(*j))
                        .map(|j| values.value(j))
                        .collect()
                })
                .unwrap_or_default(),
            (None, _) => Vec::new(),
        };
        hashes
    })
}

/// The index entries of `spans`, all stored in the partition of `hour`, sorted: one per trace,
/// and one per (linked trace, linking trace) for spans that link to another trace.
/// `payload_hour` says which partition holds a payload the spans refer to (`None`: not known).
pub fn entries(
    spans: &RecordBatch,
    hour: i64,
    payload_hour: impl Fn(&str) -> Option<i64>,
) -> Result<RecordBatch> {
    let column = |name: &str| {
        spans
            .column_by_name(name)
            .ok_or_else(|| Error::Internal(format!("spans without {name}")))
    };
    let traces = column(col::TRACE_ID)?.as_string::<i32>();
    let starts = column(col::START_TIME)?.as_primitive::<TimestampNanosecondType>();
    let ends = column(col::END_TIME)?.as_primitive::<TimestampNanosecondType>();
    let links = spans.column_by_name(col::LINKS).map(|l| l.as_list::<i32>());
    let mut by_key: Entries<'_> = BTreeMap::new();
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
        let hours: PayloadHours = payload_refs(spans, i).map(&payload_hour).collect();
        add(&mut by_key, (trace, None), s, e, hours);
        if let Some((offsets, Some(targets))) = &linked {
            for j in offsets[i] as usize..offsets[i + 1] as usize {
                if targets.is_valid(j) && targets.value(j) != trace && !targets.value(j).is_empty()
                {
                    add(&mut by_key, (targets.value(j), Some(trace)), s, e, None);
                }
            }
        }
    }
    build(
        by_key
            .into_iter()
            .map(|((t, from), (s, e, hours))| (t, hour, s, e, from, hours)),
    )
}

/// Entries by (trace, linked from): first start, last end, payload hours.
type Entries<'a> = BTreeMap<(&'a str, Option<&'a str>), (i64, i64, PayloadHours)>;

/// Adds an entry for spans of `key` from `s` to `e` referring to payloads in `hours`.
fn add<'a>(
    by_key: &mut Entries<'a>,
    key: (&'a str, Option<&'a str>),
    s: i64,
    e: i64,
    hours: PayloadHours,
) {
    // Link entries say nothing of payloads.
    let hours = if key.1.is_some() { None } else { hours };
    match by_key.get_mut(&key) {
        Some((first, last, known)) => {
            *first = (*first).min(s);
            *last = (*last).max(e);
            *known = unite(known.take(), hours);
        }
        None => {
            by_key.insert(key, (s, e, hours));
        }
    }
}

/// The payload hours of two entries of one key: all of both, unless one is not known.
fn unite(a: PayloadHours, b: PayloadHours) -> PayloadHours {
    let (mut a, b) = (a?, b?);
    a.extend(b);
    Some(a)
}

/// One entry per (trace, hour, linked from) of index rows sorted by those columns, keeping the
/// earliest start and the latest end of the entries it combines, and all their payload hours.
pub fn combine(sorted: &RecordBatch) -> Result<RecordBatch> {
    let traces = sorted.column(0).as_string::<i32>();
    let hours = sorted
        .column(1)
        .as_primitive::<arrow::datatypes::Int64Type>();
    let starts = sorted.column(2).as_primitive::<TimestampNanosecondType>();
    let ends = sorted.column(3).as_primitive::<TimestampNanosecondType>();
    let from = sorted.column(4).as_string::<i32>();
    // Files written before payload hours have no such column: their entries' are not known.
    let payload_hours = sorted
        .column_by_name(trace_index::column::PAYLOAD_HOURS)
        .and_then(|c| c.as_list_opt::<i32>().cloned());
    let known = |i: usize| -> PayloadHours {
        let list = payload_hours.as_ref().filter(|l| l.is_valid(i))?;
        let values = list.value(i);
        Some(
            values
                .as_primitive::<arrow::datatypes::Int64Type>()
                .iter()
                .flatten()
                .collect(),
        )
    };
    type Row<'a> = (&'a str, i64, i64, i64, Option<&'a str>, PayloadHours);
    let mut out: Vec<Row<'_>> = Vec::with_capacity(sorted.num_rows());
    for i in 0..sorted.num_rows() {
        let row = (
            traces.value(i),
            hours.value(i),
            starts.value(i),
            ends.value(i),
            from.is_valid(i).then(|| from.value(i)),
            known(i),
        );
        match out.last_mut() {
            Some(last) if (last.0, last.1, last.4) == (row.0, row.1, row.4) => {
                last.2 = last.2.min(row.2);
                last.3 = last.3.max(row.3);
                last.5 = unite(last.5.take(), row.5);
            }
            _ => out.push(row),
        }
    }
    build(out.into_iter())
}

fn build<'a>(
    rows: impl Iterator<Item = (&'a str, i64, i64, i64, Option<&'a str>, PayloadHours)>,
) -> Result<RecordBatch> {
    let rows: Vec<_> = rows.collect();
    let utc = |v: TimestampNanosecondArray| v.with_timezone("UTC");
    let mut payload_hours = ListBuilder::new(Int64Builder::new());
    for r in &rows {
        match &r.5 {
            Some(hours) => {
                payload_hours
                    .values()
                    .append_slice(&hours.iter().copied().collect::<Vec<_>>());
                payload_hours.append(true);
            }
            None => payload_hours.append_null(),
        }
    }
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
            Arc::new(payload_hours.finish()),
        ],
    )
    .map_err(|e| Error::Internal(format!("trace index entries: {e}")))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::file_format::Effort;
    use arrow::array::ArrayRef;
    use arrow::compute::concat_batches;

    /// Span rows of (trace id, start, end), every other column null.
    pub(crate) fn spans(rows: &[(&str, i64, i64)]) -> RecordBatch {
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
        let e = entries(&spans(&rows), 3, |_| None).unwrap();
        let (bytes, n) = crate::parquet::encode_trace_index(&[e], Effort::Ingest).unwrap();
        assert_eq!(n, 20_000);
        let reader = SerializedFileReader::new(bytes::Bytes::from(bytes)).unwrap();
        let groups = reader.metadata().row_groups();
        assert_eq!(groups.len(), 20, "1,024 rows a group");
        for g in groups {
            let bloom = g.column(0).bloom_filter_length().unwrap();
            assert!(
                bloom < 64 << 10,
                "a filter sized for the group's rows: {bloom} bytes"
            );
        }
    }

    /// The payload hours of each entry of `batch`, by trace.
    fn payload_hours(batch: &RecordBatch) -> Vec<(String, Option<Vec<i64>>)> {
        let traces = batch.column(0).as_string::<i32>();
        let lists = batch.column(5).as_list::<i32>();
        (0..batch.num_rows())
            .map(|i| {
                let hours = lists.is_valid(i).then(|| {
                    lists
                        .value(i)
                        .as_primitive::<arrow::datatypes::Int64Type>()
                        .values()
                        .to_vec()
                });
                (traces.value(i).to_owned(), hours)
            })
            .collect()
    }

    #[test]
    fn entries_name_the_payload_partitions_their_spans_refer_to() {
        // Trace a refers to h1 (stored in this hour, 9) and h2 (reused from hour 4); trace b
        // to h3, whose copy is not known; trace c to none.
        let mut batch = spans(&[("a", 1, 2), ("a", 3, 4), ("b", 1, 2), ("c", 1, 2)]);
        let refs = StringArray::from(vec![Some("h1"), Some("h2"), Some("h3"), None]);
        let i = batch.schema().index_of("tool_result_ref").unwrap();
        let mut columns = batch.columns().to_vec();
        columns[i] = Arc::new(refs);
        batch = RecordBatch::try_new(batch.schema(), columns).unwrap();
        let hour_of = |h: &str| match h {
            "h1" => Some(9),
            "h2" => Some(4),
            _ => None,
        };
        let e = entries(&batch, 9, hour_of).unwrap();
        assert_eq!(
            payload_hours(&e),
            [
                ("a".into(), Some(vec![4, 9])),
                ("b".into(), None),
                ("c".into(), Some(vec![]))
            ]
        );
        // Merged: hours united, an unknown entry makes the key unknown.
        let again = entries(&batch, 9, |h| (h == "h1").then_some(7)).unwrap();
        let all = concat_batches(&schema(), [&e, &again]).unwrap();
        let merged = combine(&crate::parquet::sort_index(&[all]).unwrap()).unwrap();
        assert_eq!(
            payload_hours(&merged),
            [
                ("a".into(), None),
                ("b".into(), None),
                ("c".into(), Some(vec![]))
            ]
        );
        let known = entries(&batch, 9, |_| Some(2)).unwrap();
        let all = concat_batches(&schema(), [&e, &known]).unwrap();
        let merged = combine(&crate::parquet::sort_index(&[all]).unwrap()).unwrap();
        assert_eq!(payload_hours(&merged)[0], ("a".into(), Some(vec![2, 4, 9])));
    }

    #[test]
    fn one_entry_per_trace_with_its_extent() {
        let e = entries(
            &spans(&[("b", 5, 9), ("a", 3, 4), ("b", 2, 6), ("a", 1, 8)]),
            7,
            |_| None,
        )
        .unwrap();
        assert_eq!(rows(&e), [("a".into(), 7, 1, 8), ("b".into(), 7, 2, 9)]);
        // Entries written twice, or of several files, combine into one per trace and hour.
        let other = entries(&spans(&[("a", 0, 2)]), 7, |_| None).unwrap();
        let later = entries(&spans(&[("a", 50, 60)]), 8, |_| None).unwrap();
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
