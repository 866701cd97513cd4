//! A whole trace as OTLP JSON (`TracesData`), rebuilt losslessly from the stored rows and the
//! payloads they reference.

use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;

use arrow::array::{Array, AsArray, BooleanArray, RecordBatch};
use arrow::compute::filter_record_batch;
use arrow::datatypes::TimestampNanosecondType;
use cairn_normalize::decode::{decode, referenced_payloads};
use cairn_normalize::otlp::trace::v1::TracesData;
use cairn_normalize::payload::Contents;
use cairn_schema::ids::parse_trace_id;
use cairn_schema::layout::{hour_of, PAYLOAD_REUSE_HOURS};
use cairn_schema::tenant::Tenant;
use datafusion::common::ScalarValue;
use datafusion::prelude::{col, lit, DataFrame, Expr, SessionContext};

use crate::catalog::TenantTable;
use crate::{Error, QueryEngine, Result};

/// The spans of `trace_id` for `tenant`, in start order (run on the query runtime).
pub async fn fetch(engine: &QueryEngine, tenant: &Tenant, trace_id: &str) -> Result<TracesData> {
    fetch_within(engine, tenant, trace_id, None).await
}

/// As [`fetch`], reading only the spans that start within `starts` (inclusive nanoseconds)
/// when given, which also bounds the hour partitions scanned.
pub async fn fetch_within(
    engine: &QueryEngine,
    tenant: &Tenant,
    trace_id: &str,
    starts: Option<(i64, i64)>,
) -> Result<TracesData> {
    let trace_id = parse_trace_id(trace_id)?;
    let (runner, owned) = (engine.clone(), tenant.clone());
    let engine = engine.clone();
    runner
        .run(tenant, async move {
            fetch_on(&engine, &owned, trace_id, starts).await
        })
        .await
}

async fn fetch_on(
    engine: &QueryEngine,
    tenant: &Tenant,
    trace_id: String,
    starts: Option<(i64, i64)>,
) -> Result<TracesData> {
    let ctx = engine.session(tenant).await?;
    let mut filter = col("trace_id").eq(lit(trace_id.as_str()));
    if let Some((lo, hi)) = starts {
        let at = |nanos: i64| {
            lit(ScalarValue::TimestampNanosecond(
                Some(nanos),
                Some("UTC".into()),
            ))
        };
        let start = || col(cairn_schema::columns::col::START_TIME);
        filter = filter.and(start().gt_eq(at(lo))).and(start().lt_eq(at(hi)));
    }
    let batches = ctx
        .table("spans")
        .await?
        .filter(filter)?
        .sort(vec![col("start_time").sort(true, false)])?
        .collect()
        .await?;
    if batches.iter().all(|b| b.num_rows() == 0) {
        return Err(Error::NotFound(format!("trace {trace_id} not found")));
    }
    let contents = contents_of(
        &payload_rows(
            engine,
            &ctx,
            tenant,
            referenced_payloads(&batches)?,
            &BTreeSet::from([trace_id]),
            span_hours(&batches),
            vec![col("content")],
        )
        .await?,
    );
    Ok(TracesData {
        resource_spans: decode(&batches, &contents)?,
    })
}

/// The first and last hour partition of the spans in `batches`.
fn span_hours(batches: &[RecordBatch]) -> Option<(i64, i64)> {
    hour_range(batches.iter().flat_map(|b| {
        b.column_by_name(cairn_schema::columns::col::START_TIME)
            .into_iter()
            .flat_map(|starts| {
                starts
                    .as_primitive::<TimestampNanosecondType>()
                    .iter()
                    .flatten()
            })
    }))
}

/// The first and last hour partition of start times `starts` (nanoseconds); `None` if there
/// are none.
pub fn hour_range(starts: impl IntoIterator<Item = i64>) -> Option<(i64, i64)> {
    starts.into_iter().map(hour_of).fold(None, |range, h| {
        Some(range.map_or((h, h), |(lo, hi): (i64, i64)| (lo.min(h), hi.max(h))))
    })
}

/// The contents of payload rows whose columns are the hash and the content (as
/// [`payload_rows`] reads them).
fn contents_of(batches: &[RecordBatch]) -> Contents {
    let mut contents = Contents::new();
    for b in batches {
        let (h, c) = (
            b.column(0).as_string::<i32>(),
            b.column(1).as_string::<i32>(),
        );
        for i in 0..b.num_rows() {
            if c.is_valid(i) {
                contents.insert(h.value(i).to_owned(), c.value(i).to_owned());
            }
        }
    }
    contents
}

/// One row per payload of `hashes` found, referred to by spans of `traces`: its `hash`, then
/// `columns` (expressions over `payloads`: `kind`, `content`, …). Read from the `payloads`
/// table in three steps, each for the hashes the previous one did not find:
///
/// 1. the payload partitions the traces' index entries name (`payload_hours`): usually the
///    hour of the spans and the few hours whose copies they reuse;
/// 2. given the first and last hour of the spans, the partitions that can hold them (a span
///    refers to a copy stored in its hour or up to [`PAYLOAD_REUSE_HOURS`] before);
/// 3. every partition (payloads written under an earlier layout).
pub async fn payload_rows(
    engine: &QueryEngine,
    ctx: &SessionContext,
    tenant: &Tenant,
    hashes: HashSet<String>,
    traces: &BTreeSet<String>,
    span_hours: Option<(i64, i64)>,
    columns: Vec<Expr>,
) -> Result<Vec<RecordBatch>> {
    let mut found = Vec::new();
    let mut missing = hashes;
    let mut select = vec![col("hash")];
    select.extend(columns);
    let payloads = || TenantTable::payloads(engine.store(), tenant.clone());
    for step in 0..3 {
        if missing.is_empty() {
            break;
        }
        let table = match step {
            0 => match crate::catalog::payload_hours(&ctx.state(), tenant, traces).await? {
                Some(hours) => Some(ctx.read_table(Arc::new(payloads().in_hours(hours)))?),
                None => None,
            },
            1 => match span_hours {
                Some((lo, hi)) => Some(ctx.read_table(Arc::new(
                    payloads().within_hours(lo - PAYLOAD_REUSE_HOURS, hi),
                ))?),
                None => None,
            },
            _ => Some(ctx.table("payloads").await?),
        };
        if let Some(table) = table {
            read_rows(table, &select, &mut missing, &mut found).await?;
        }
    }
    Ok(found)
}

/// Reads `select` (the hash first) of the `missing` hashes from `payloads` into `found`, the
/// first row of each hash only, leaving in `missing` those not found.
async fn read_rows(
    payloads: DataFrame,
    select: &[Expr],
    missing: &mut HashSet<String>,
    found: &mut Vec<RecordBatch>,
) -> Result<()> {
    let list = missing.iter().map(|h| lit(h.as_str())).collect();
    let batches = payloads
        .filter(col("hash").in_list(list, false))?
        .select(select.to_vec())?
        .collect()
        .await?;
    for b in &batches {
        let h = b.column(0).as_string::<i32>();
        let first: BooleanArray = (0..b.num_rows())
            .map(|i| Some(h.is_valid(i) && missing.remove(h.value(i))))
            .collect();
        found.push(filter_record_batch(b, &first)?);
    }
    Ok(())
}
