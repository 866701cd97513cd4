//! The partial run aggregates the `runs` view combines ([`cairn_schema::run_summary`]): the
//! stored summaries of the span files a scan sees, and the same aggregates computed on the fly
//! for the span files that have none yet.
//!
//! Each hour partition is listed once, through the store as readers see it, so that a span file
//! and its summary are counted together or not at all, while compaction replaces files. A scan
//! by trace id reads only the hours the trace index names, and in each summary only the row
//! group its bloom filter admits.

use std::collections::BTreeSet;
use std::sync::Arc;

use arrow::array::AsArray;
use arrow::datatypes::DataType;
use async_trait::async_trait;
use cairn_schema::columns::{col, spans_schema};
use cairn_schema::layout::{self, Dataset};
use cairn_schema::run_summary;
use cairn_schema::tenant::Tenant;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::Session;
use datafusion::common::project_schema;
use datafusion::datasource::empty::EmptyTable;
use datafusion::datasource::{TableProvider, TableType};
use datafusion::error::Result;
use datafusion::execution::SessionStateBuilder;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use datafusion::physical_plan::empty::EmptyExec;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::prelude::{cast, col as column, lit, DataFrame, SessionContext};
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::ObjectStore;

use crate::catalog::{index_entries, listing, TenantTable};

/// Hour partitions listed at once.
const LISTINGS_AT_ONCE: usize = 16;

/// The schema of [`run_summary::PARTIAL`]'s rows (planned once).
pub async fn schema() -> Result<SchemaRef> {
    static SCHEMA: tokio::sync::OnceCell<SchemaRef> = tokio::sync::OnceCell::const_new();
    let schema = SCHEMA
        .get_or_try_init(|| async {
            let ctx = SessionContext::new();
            ctx.register_table("spans", Arc::new(EmptyTable::new(spans_schema())))?;
            let df = ctx.sql(&run_summary::PARTIAL).await?;
            Ok::<_, datafusion::error::DataFusionError>(Arc::new(df.schema().as_arrow().clone()))
        })
        .await?;
    Ok(Arc::clone(schema))
}

/// One tenant's partial run aggregates, one row per (trace, span file).
#[derive(Debug)]
pub struct RunParts {
    store: Arc<dyn ObjectStore>,
    tenant: Tenant,
    schema: SchemaRef,
    /// The tenant's spans, for their hours (listed, or found through the trace index).
    spans: TenantTable,
}

impl RunParts {
    /// `store` as readers see it; `schema` from [`schema`].
    pub fn new(store: Arc<dyn ObjectStore>, tenant: Tenant, schema: SchemaRef) -> Self {
        Self {
            spans: TenantTable::spans(Arc::clone(&store), tenant.clone()),
            store,
            tenant,
            schema,
        }
    }

    /// The same table, reading only hours `lo..=hi`.
    pub fn within_hours(self, lo: i64, hi: i64) -> Self {
        Self {
            spans: self.spans.within_hours(lo, hi),
            ..self
        }
    }

    /// What names this table in a plan sent to another process (its spans' hours).
    pub fn spec(&self) -> crate::catalog::TableSpec {
        self.spans.spec()
    }

    /// The table `spec` names, over `store` (as readers see it), with `schema` from [`schema`].
    pub fn from_spec(
        store: Arc<dyn ObjectStore>,
        spec: &crate::catalog::TableSpec,
        schema: SchemaRef,
    ) -> Result<Self> {
        let spans = TenantTable::from_spec(Arc::clone(&store), spec)?;
        Ok(Self {
            tenant: spans.tenant.clone(),
            spans,
            store,
            schema,
        })
    }

    /// The summaries, and the span files without one, of `hours`.
    async fn files(&self, hours: Vec<i64>) -> Result<(Vec<Path>, Vec<Path>)> {
        let listings: Vec<_> = futures::stream::iter(hours)
            .map(|hour| {
                let prefix = layout::hour_prefix(Dataset::Spans, &self.tenant, hour);
                let store = Arc::clone(&self.store);
                async move { store.list_with_delimiter(Some(&prefix)).await }
            })
            .buffered(LISTINGS_AT_ONCE)
            .try_collect()
            .await?;
        let (mut summaries, mut unsummarised) = (Vec::new(), Vec::new());
        for listing in listings {
            // Listed as readers see the store: visible span files, and summaries of those.
            let (found, data): (Vec<_>, Vec<_>) = (listing.objects.into_iter())
                .partition(|m| m.location.as_ref().ends_with(run_summary::SUFFIX));
            unsummarised.extend(
                run_summary::unsummarised(&data, &found)
                    .into_iter()
                    .map(|m| m.location.clone()),
            );
            summaries.extend(found.into_iter().map(|m| m.location));
        }
        Ok((summaries, unsummarised))
    }
}

/// A session of its own (sharing `state`'s runtime: memory, spill, object stores), so that the
/// tables registered in it stay out of the caller's catalog. It has a default catalog of its
/// own, also when the caller's was given to it rather than created.
fn private_session(state: &dyn Session) -> SessionContext {
    SessionContext::new_with_state(
        SessionStateBuilder::new()
            .with_config(
                state
                    .config()
                    .clone()
                    .with_create_default_catalog_and_schema(true),
            )
            .with_runtime_env(Arc::clone(state.runtime_env()))
            .with_default_features()
            .build(),
    )
}

/// The `limit` traces of `tenant` that started last (by their earliest span, then trace id,
/// both descending), only those that started before `before` (start in nanoseconds, trace id)
/// when given; `ctx` is the tenant's session, its trace index complete.
///
/// Read from the run summaries of the newest hours alone: a trace that started in hour `H` has
/// all its spans in hours from `H` on, so among the runs of a window of the newest hours, those
/// the trace index names no earlier hour for are exactly the runs that started in the window,
/// each whole. The window widens until it holds a page of them.
pub async fn newest_traces(
    ctx: &SessionContext,
    store: Arc<dyn ObjectStore>,
    tenant: &Tenant,
    before: Option<(i64, String)>,
    limit: usize,
) -> Result<Vec<String>> {
    let spans = TenantTable::spans(Arc::clone(&store), tenant.clone());
    let last = before.as_ref().map(|(nanos, _)| layout::hour_of(*nanos));
    let mut hours = spans.hours(None, last).await?;
    hours.reverse();
    let schema = schema().await?;
    // Runs read beyond the page, for those that turn out to have started earlier.
    let spare = limit + 16;
    let mut width = 2;
    loop {
        let window = &hours[..width.min(hours.len())];
        let (Some(&hi), Some(&lo)) = (window.first(), window.last()) else {
            return Ok(Vec::new());
        };
        let whole = window.len() == hours.len();
        let table = RunParts::new(Arc::clone(&store), tenant.clone(), Arc::clone(&schema))
            .within_hours(lo, hi);
        let session = private_session(&ctx.state());
        session.register_table("run_parts", Arc::new(table))?;
        let started = || cast(column(col::START_TIME), DataType::Int64);
        let mut df = session.sql(&run_summary::FINAL).await?;
        if let Some((nanos, id)) = &before {
            df = df.filter(
                started().lt(lit(*nanos)).or(started()
                    .eq(lit(*nanos))
                    .and(column(col::TRACE_ID).lt(lit(id.as_str())))),
            )?;
        }
        let batches = df
            .sort(vec![
                started().sort(false, false),
                column(col::TRACE_ID).sort(false, false),
            ])?
            .limit(0, Some(if whole { limit } else { limit + spare }))?
            .select_columns(&[col::TRACE_ID])?
            .collect()
            .await?;
        let found: Vec<String> = batches
            .iter()
            .flat_map(|b| {
                let ids = b.column(0).as_string::<i32>();
                (0..b.num_rows()).map(move |i| ids.value(i).to_owned())
            })
            .collect();
        if whole {
            return Ok(found);
        }
        let ids: BTreeSet<String> = found.iter().cloned().collect();
        let earlier: BTreeSet<String> = index_entries(&ctx.state(), tenant, &ids)
            .await?
            .into_iter()
            .filter(|e| e.linked_from.is_none() && e.hour < lo)
            .map(|e| e.trace_id)
            .collect();
        let kept: Vec<String> = found.into_iter().filter(|t| !earlier.contains(t)).collect();
        if kept.len() >= limit {
            return Ok(kept.into_iter().take(limit).collect());
        }
        width *= 4;
    }
}

#[async_trait]
impl TableProvider for RunParts {
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
        _limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let hours = self.spans.scan_hours(state, filters).await?;
        let (summaries, unsummarised) = self.files(hours).await?;
        let ctx = private_session(state);
        let mut parts: Vec<DataFrame> = Vec::new();
        if !summaries.is_empty() {
            let table = listing(state, &summaries, run_summary::SUFFIX, self.schema(), &[])?;
            parts.push(ctx.read_table(Arc::new(table))?);
        }
        if !unsummarised.is_empty() {
            let table = listing(state, &unsummarised, ".parquet", spans_schema(), &[])?;
            ctx.register_table("spans", Arc::new(table))?;
            parts.push(ctx.sql(&run_summary::PARTIAL).await?);
        }
        let Some(mut df) = parts.pop() else {
            let schema = project_schema(&self.schema, projection)?;
            return Ok(Arc::new(EmptyExec::new(schema)));
        };
        for other in parts {
            df = other.union(df)?;
        }
        for filter in filters {
            df = df.filter(filter.clone())?;
        }
        if let Some(projection) = projection {
            let names: Vec<&str> = projection
                .iter()
                .map(|i| self.schema.field(*i).name().as_str())
                .collect();
            df = df.select_columns(&names)?;
        }
        df.create_physical_plan().await
    }
}
