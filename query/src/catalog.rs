//! One tenant's view of a dataset (`spans` or `payloads`): hour partitions pruned by
//! `start_time` bounds before any listing and, for spans filtered by trace id, found through the
//! trace index ([`cairn_schema::trace_index`]) without listing the tenant's hours at all; then a
//! Parquet listing scan over the surviving partitions (statistics, page index and bloom filters
//! prune within files).

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::Int64Type;

use async_trait::async_trait;
use cairn_schema::columns::payloads_schema;
use cairn_schema::columns::{col, spans_schema};
use cairn_schema::layout::{self, hour_of, Dataset};
use cairn_schema::tenant::Tenant;
use cairn_schema::trace_index;
use cairn_store::trace_index as trace_index_store;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::Session;
use datafusion::common::{project_schema, ScalarValue};
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::datasource::{TableProvider, TableType};
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::SessionState;
use datafusion::logical_expr::utils::split_conjunction;
use datafusion::logical_expr::{BinaryExpr, Expr, Operator, TableProviderFilterPushDown};
use datafusion::physical_plan::empty::EmptyExec;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::prelude::{col as column, lit, SessionContext};
use futures::{StreamExt, TryStreamExt};
use object_store::ObjectStore;

/// URL under which the Cairn store is registered in every session.
pub const STORE_URL: &str = "cairn://store";

/// One tenant's rows of a dataset.
#[derive(Debug)]
pub struct TenantTable {
    store: Arc<dyn ObjectStore>,
    pub(crate) tenant: Tenant,
    dataset: Dataset,
    schema: SchemaRef,
    sort: &'static [&'static str],
    /// Whether the tenant's trace index was seen complete (it stays so).
    indexed: AtomicBool,
    /// Hours (inclusive) outside which nothing is read, whatever the filters.
    within: Option<(i64, i64)>,
    /// Read only these hours (those that exist), when set.
    only: Option<BTreeSet<i64>>,
}

/// Most trace ids looked up in the index for one scan; a filter naming more lists every hour.
pub const MAX_INDEXED_IDS: usize = 10_000;

/// The longest `IN` list a Parquet scan prunes files, row groups and pages by (statistics and
/// bloom filters). DataFusion's default is 20; the cost of building the pruning predicate grows
/// faster than the list (measured planning a lookup of absent ids in the 10M-span store: 50
/// ids 11 ms, 200 ids 242 ms, 1,000 ids 42 s), so longer lists are not pruned by a scan, and
/// index lookups split them.
pub const MAX_PRUNED_IN_LIST: usize = 50;
/// Index lookups of one list of ids run at once.
const LOOKUPS_AT_ONCE: usize = 4;

impl TenantTable {
    /// The tenant's spans, sorted in each file by (trace id, start time).
    pub fn spans(store: Arc<dyn ObjectStore>, tenant: Tenant) -> Self {
        Self {
            store,
            tenant,
            dataset: Dataset::Spans,
            schema: spans_schema(),
            sort: &[col::TRACE_ID, col::START_TIME],
            indexed: AtomicBool::new(false),
            within: None,
            only: None,
        }
    }

    /// The tenant's payloads (files are not sorted; a bloom filter serves lookups by hash).
    pub fn payloads(store: Arc<dyn ObjectStore>, tenant: Tenant) -> Self {
        Self {
            store,
            tenant,
            dataset: Dataset::Payloads,
            schema: payloads_schema(),
            sort: &[],
            indexed: AtomicBool::new(false),
            within: None,
            only: None,
        }
    }

    /// The same table, reading only the hours `hours` (those that exist).
    pub fn in_hours(self, hours: BTreeSet<i64>) -> Self {
        Self {
            only: Some(hours),
            ..self
        }
    }

    /// The same table, reading only hours `lo..=hi`.
    pub fn within_hours(self, lo: i64, hi: i64) -> Self {
        Self {
            within: Some((lo, hi)),
            ..self
        }
    }

    /// Hour partitions of the tenant that overlap `[lo, hi]` (inclusive hours).
    pub(crate) async fn hours(&self, lo: Option<i64>, hi: Option<i64>) -> Result<Vec<i64>> {
        let prefix = layout::tenant_prefix(self.dataset, &self.tenant);
        let listing = self.store.list_with_delimiter(Some(&prefix)).await?;
        let mut hours: Vec<i64> = listing
            .common_prefixes
            .iter()
            .filter_map(|p| layout::parse_hour_segment(p.filename()?))
            .filter(|h| lo.is_none_or(|lo| *h >= lo) && hi.is_none_or(|hi| *h <= hi))
            .collect();
        hours.sort_unstable();
        Ok(hours)
    }
}

/// What names a [`TenantTable`] in a plan sent to another process: its tenant, dataset and
/// hours. The store is the receiving process's own.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TableSpec {
    pub tenant: String,
    /// `spans` or `payloads`.
    pub dataset: String,
    pub within: Option<(i64, i64)>,
    pub only: Option<BTreeSet<i64>>,
}

impl TenantTable {
    /// What names this table in a plan sent to another process.
    pub fn spec(&self) -> TableSpec {
        TableSpec {
            tenant: self.tenant.as_str().to_owned(),
            dataset: self.dataset.prefix().to_owned(),
            within: self.within,
            only: self.only.clone(),
        }
    }

    /// The table `spec` names, over `store` (the store as readers see it).
    pub fn from_spec(store: Arc<dyn ObjectStore>, spec: &TableSpec) -> Result<Self> {
        let tenant = Tenant::new(&spec.tenant).map_err(|e| {
            DataFusionError::Plan(format!("a table of tenant {:?}: {e}", spec.tenant))
        })?;
        let table = match spec.dataset.as_str() {
            "spans" => Self::spans(store, tenant),
            "payloads" => Self::payloads(store, tenant),
            other => {
                return Err(DataFusionError::Plan(format!("no dataset {other:?}")));
            }
        };
        Ok(Self {
            within: spec.within,
            only: spec.only.clone(),
            ..table
        })
    }
}

impl TenantTable {
    /// The hour partitions a scan with `filters` reads: those of the trace ids it names (through
    /// the trace index, when complete), or the table's own hours, or every hour, within the
    /// `start_time` bounds of `filters` and the table's.
    pub(crate) async fn scan_hours(
        &self,
        state: &dyn Session,
        filters: &[Expr],
    ) -> Result<Vec<i64>> {
        let (mut lo, mut hi) = hour_bounds(filters);
        if let Some((first, last)) = self.within {
            lo = Some(lo.map_or(first, |lo| lo.max(first)));
            hi = Some(hi.map_or(last, |hi| hi.min(last)));
        }
        let indexed = match (self.dataset, trace_ids(filters)) {
            (Dataset::Spans, Some(ids)) if ids.len() <= MAX_INDEXED_IDS => {
                self.indexed_hours(state, &ids).await?
            }
            _ => None,
        };
        Ok(match indexed.or_else(|| self.only.clone()) {
            Some(hours) => hours
                .into_iter()
                .filter(|h| lo.is_none_or(|lo| *h >= lo) && hi.is_none_or(|hi| *h <= hi))
                .collect(),
            None => self.hours(lo, hi).await?,
        })
    }

    /// The hours holding spans of `ids` according to the trace index, or `None` when the
    /// tenant's index is not complete (written before the index existed and not reindexed).
    async fn indexed_hours(
        &self,
        state: &dyn Session,
        ids: &BTreeSet<String>,
    ) -> Result<Option<BTreeSet<i64>>> {
        if !self.indexed.load(Ordering::Relaxed) {
            if !trace_index_store::is_complete(self.store.as_ref(), &self.tenant).await? {
                return Ok(None);
            }
            self.indexed.store(true, Ordering::Relaxed);
        }
        let entries = index_entries(state, &self.tenant, ids).await?;
        Ok(Some(
            entries
                .into_iter()
                .filter(|e| e.linked_from.is_none())
                .map(|e| e.hour)
                .collect(),
        ))
    }
}

/// The listing table of `tenant`'s trace index files.
fn index_table(state: &dyn Session, tenant: &Tenant) -> Result<ListingTable> {
    let dir = format!("{}/", trace_index::dir(tenant));
    listing(state, &[dir], ".parquet", trace_index::schema(), &[])
}

/// The Parquet files with names ending in `extension` at `paths` (files, or directories ending
/// in `/`) of the store, as one table of `schema` whose files are sorted by `sort`. Each file's
/// statistics are computed once and kept in the session's cache (files never change).
pub(crate) fn listing(
    state: &dyn Session,
    paths: &[impl std::fmt::Display],
    extension: &str,
    schema: SchemaRef,
    sort: &[&str],
) -> Result<ListingTable> {
    let urls = paths
        .iter()
        .map(|p| ListingTableUrl::parse(format!("{STORE_URL}/{p}")))
        .collect::<Result<Vec<_>>>()?;
    let order = if sort.is_empty() {
        vec![]
    } else {
        vec![sort.iter().map(|c| column(*c).sort(true, false)).collect()]
    };
    // The session's Parquet settings (filter pushdown, the longest `IN` list that prunes), not
    // the format's defaults.
    let format = ParquetFormat::default().with_options(state.default_table_options().parquet);
    let options = ListingOptions::new(Arc::new(format))
        .with_file_extension(extension)
        .with_file_sort_order(order);
    Ok(ListingTable::try_new(
        ListingTableConfig::new_with_multi_paths(urls)
            .with_listing_options(options)
            .with_schema(schema),
    )?
    .with_cache(state.runtime_env().cache_manager.get_file_statistic_cache()))
}

/// One entry of the trace index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexEntry {
    pub trace_id: String,
    pub hour: i64,
    /// The trace whose spans link to `trace_id` (`None`: `trace_id`'s own spans).
    pub linked_from: Option<String>,
    /// The payload partitions the spans refer to, when known.
    pub payload_hours: Option<Vec<i64>>,
}

/// The payload partitions that the spans of `ids` refer to, from their index entries; `None`
/// when one entry does not know its payloads' (or there is none).
pub async fn payload_hours(
    state: &dyn Session,
    tenant: &Tenant,
    ids: &BTreeSet<String>,
) -> Result<Option<BTreeSet<i64>>> {
    let mut out = BTreeSet::new();
    let mut any = false;
    for e in index_entries(state, tenant, ids).await? {
        if e.linked_from.is_none() {
            match e.payload_hours {
                Some(hours) => out.extend(hours),
                None => return Ok(None),
            }
            any = true;
        }
    }
    Ok(any.then_some(out))
}

/// The entries of `ids` in `tenant`'s trace index (whether or not it is complete), read from
/// the store registered as [`STORE_URL`] in `state`.
pub async fn index_entries(
    state: &dyn Session,
    tenant: &Tenant,
    ids: &BTreeSet<String>,
) -> Result<Vec<IndexEntry>> {
    let state = state
        .as_any()
        .downcast_ref::<SessionState>()
        .ok_or_else(|| DataFusionError::Internal("not a session state".into()))?;
    // Planned as a query, so that the filter reaches the Parquet scan: files, row groups and
    // pages are pruned by statistics, bloom filters and the page index, which the scan does for
    // lists of at most `MAX_PRUNED_IN_LIST` ids; longer lists are looked up in such parts, at
    // once. The rows that come through are checked here.
    let ids_list: Vec<&String> = ids.iter().collect();
    let mut lookups = Vec::new();
    for chunk in ids_list.chunks(MAX_PRUNED_IN_LIST) {
        let filter =
            column(col::TRACE_ID).in_list(chunk.iter().map(|id| lit(id.as_str())).collect(), false);
        let (state, table) = (state.clone(), index_table(state, tenant)?);
        lookups.push(async move {
            SessionContext::new_with_state(state)
                .read_table(Arc::new(table))?
                .filter(filter)?
                .select_columns(&[
                    col::TRACE_ID,
                    trace_index::column::HOUR,
                    trace_index::column::LINKED_FROM,
                    trace_index::column::PAYLOAD_HOURS,
                ])?
                .collect()
                .await
        });
    }
    let batches: Vec<RecordBatch> = futures::stream::iter(lookups)
        .buffer_unordered(LOOKUPS_AT_ONCE)
        .try_collect::<Vec<Vec<RecordBatch>>>()
        .await?
        .into_iter()
        .flatten()
        .collect();
    let mut out = Vec::new();
    for batch in batches {
        let traces = batch.column(0).as_string::<i32>();
        let hours = batch.column(1).as_primitive::<Int64Type>();
        let from = batch.column(2).as_string::<i32>();
        let payloads = batch.column(3).as_list::<i32>();
        for i in 0..batch.num_rows() {
            if ids.contains(traces.value(i)) {
                out.push(IndexEntry {
                    trace_id: traces.value(i).to_owned(),
                    hour: hours.value(i),
                    linked_from: from.is_valid(i).then(|| from.value(i).to_owned()),
                    payload_hours: payloads.is_valid(i).then(|| {
                        let hours = payloads.value(i);
                        hours.as_primitive::<Int64Type>().iter().flatten().collect()
                    }),
                });
            }
        }
    }
    Ok(out)
}

/// A string literal's text.
fn literal_text(expr: &Expr) -> Option<&str> {
    match expr {
        Expr::Literal(
            ScalarValue::Utf8(Some(v))
            | ScalarValue::Utf8View(Some(v))
            | ScalarValue::LargeUtf8(Some(v)),
            _,
        ) => Some(v),
        _ => None,
    }
}

fn is_trace_id(expr: &Expr) -> bool {
    matches!(expr, Expr::Column(c) if c.name == col::TRACE_ID)
}

/// The trace ids one conjunct allows, when it allows only listed ones: `trace_id = 'x'`,
/// `trace_id IN ('x', …)`, or a disjunction of such.
fn ids_of(expr: &Expr) -> Option<BTreeSet<String>> {
    match expr {
        Expr::BinaryExpr(BinaryExpr {
            left,
            op: Operator::Eq,
            right,
        }) => {
            let id = if is_trace_id(left) {
                literal_text(right)
            } else if is_trace_id(right) {
                literal_text(left)
            } else {
                None
            }?;
            Some(BTreeSet::from([id.to_owned()]))
        }
        Expr::BinaryExpr(BinaryExpr {
            left,
            op: Operator::Or,
            right,
        }) => {
            let mut ids = ids_of(left)?;
            ids.extend(ids_of(right)?);
            Some(ids)
        }
        Expr::InList(l) if !l.negated && is_trace_id(&l.expr) => l
            .list
            .iter()
            .map(|e| literal_text(e).map(str::to_owned))
            .collect(),
        _ => None,
    }
}

/// The trace ids `filters` restrict rows to, if any (the smallest such set of a conjunct).
pub fn trace_ids(filters: &[Expr]) -> Option<BTreeSet<String>> {
    filters
        .iter()
        .flat_map(split_conjunction)
        .filter_map(ids_of)
        .min_by_key(BTreeSet::len)
}

/// Nanoseconds of a timestamp literal.
fn literal_nanos(expr: &Expr) -> Option<i64> {
    let Expr::Literal(value, _) = expr else {
        return None;
    };
    match value {
        ScalarValue::TimestampNanosecond(Some(v), _) => Some(*v),
        ScalarValue::TimestampMicrosecond(Some(v), _) => v.checked_mul(1_000),
        ScalarValue::TimestampMillisecond(Some(v), _) => v.checked_mul(1_000_000),
        ScalarValue::TimestampSecond(Some(v), _) => v.checked_mul(1_000_000_000),
        _ => None,
    }
}

fn is_start_time(expr: &Expr) -> bool {
    matches!(expr, Expr::Column(c) if c.name == col::START_TIME)
}

/// Narrows `[lo, hi]` (nanoseconds, inclusive) by one conjunct of a filter.
fn narrow(expr: &Expr, lo: &mut Option<i64>, hi: &mut Option<i64>) {
    let mut lower = |v: i64| *lo = Some(lo.map_or(v, |l| l.max(v)));
    match expr {
        Expr::BinaryExpr(BinaryExpr {
            left,
            op: Operator::And,
            right,
        }) => {
            narrow(left, lo, hi);
            narrow(right, lo, hi);
        }
        Expr::BinaryExpr(BinaryExpr { left, op, right }) => {
            let (op, value) = if is_start_time(left) {
                (*op, literal_nanos(right))
            } else if is_start_time(right) {
                match op.swap() {
                    Some(op) => (op, literal_nanos(left)),
                    None => return,
                }
            } else {
                return;
            };
            let Some(v) = value else { return };
            match op {
                Operator::Gt | Operator::GtEq => lower(v),
                Operator::Lt | Operator::LtEq => *hi = Some(hi.map_or(v, |h| h.min(v))),
                Operator::Eq => {
                    lower(v);
                    *hi = Some(hi.map_or(v, |h| h.min(v)));
                }
                _ => {}
            }
        }
        Expr::Between(b) if !b.negated && is_start_time(&b.expr) => {
            if let Some(v) = literal_nanos(&b.low) {
                lower(v);
            }
            if let Some(v) = literal_nanos(&b.high) {
                *hi = Some(hi.map_or(v, |h| h.min(v)));
            }
        }
        _ => {}
    }
}

/// The inclusive range of hour partitions that `filters` allow.
pub fn hour_bounds(filters: &[Expr]) -> (Option<i64>, Option<i64>) {
    let (mut lo, mut hi) = (None, None);
    for f in filters {
        narrow(f, &mut lo, &mut hi);
    }
    (lo.map(hour_of), hi.map(hour_of))
}

#[async_trait]
impl TableProvider for TenantTable {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> Result<Vec<TableProviderFilterPushDown>> {
        Ok(vec![TableProviderFilterPushDown::Inexact; filters.len()])
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let hours = self.scan_hours(state, filters).await?;
        if hours.is_empty() {
            let schema = project_schema(&self.schema, projection)?;
            return Ok(Arc::new(EmptyExec::new(schema)));
        }
        let dirs: Vec<String> = hours
            .iter()
            .map(|h| format!("{}/", layout::hour_prefix(self.dataset, &self.tenant, *h)))
            .collect();
        listing(
            state,
            &dirs,
            ".parquet",
            Arc::clone(&self.schema),
            self.sort,
        )?
        .scan(state, projection, filters, limit)
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(nanos: i64) -> Expr {
        lit(ScalarValue::TimestampNanosecond(
            Some(nanos),
            Some("UTC".into()),
        ))
    }

    #[test]
    fn bounds_from_filters() {
        let h = layout::HOUR_NANOS;
        let f = column("start_time")
            .gt_eq(ts(5 * h + 1))
            .and(column("start_time").lt(ts(9 * h)));
        assert_eq!(hour_bounds(&[f]), (Some(5), Some(9)));
        let f = ts(3 * h).lt_eq(column("start_time"));
        assert_eq!(hour_bounds(&[f]), (Some(3), None));
        let f = column("start_time").between(ts(2 * h), ts(4 * h));
        assert_eq!(hour_bounds(&[f]), (Some(2), Some(4)));
        let f = column("end_time").gt(ts(2 * h));
        assert_eq!(hour_bounds(&[f]), (None, None));
        let f = column("start_time")
            .gt(ts(2 * h))
            .or(column("start_time").lt(ts(h)));
        assert_eq!(hour_bounds(&[f]), (None, None));
    }
}
