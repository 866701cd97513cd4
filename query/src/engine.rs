//! Sessions scoped to one tenant, and read-only SQL over them.

use std::future::Future;
use std::num::NonZeroUsize;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use cairn_schema::tenant::Tenant;

use crate::tenant_limits::{QueryLimits, SessionTenant};
use cairn_store::visible::VisibleStore;
use datafusion::catalog::view::ViewTable;
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{ParamValues, ScalarValue};
use datafusion::error::DataFusionError;
use datafusion::execution::context::SQLOptions;
use datafusion::execution::disk_manager::{DiskManagerBuilder, DiskManagerMode};
use datafusion::execution::memory_pool::{MemoryConsumer, MemoryReservation};
use datafusion::execution::runtime_env::{RuntimeEnv, RuntimeEnvBuilder};
use datafusion::execution::SessionStateBuilder;
use datafusion::execution::TaskContext;
use datafusion::logical_expr::LogicalPlan;
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::coop::CooperativeExec;
use datafusion::physical_plan::{execute_stream, ExecutionPlan};
use datafusion::prelude::{DataFrame, SessionConfig, SessionContext};
use futures::StreamExt;
use lru::LruCache;
use object_store::ObjectStore;
use url::Url;

use crate::catalog::{TenantTable, STORE_URL};
use crate::distributed::client::Remote;
use crate::distributed::route::{scanned_bytes, Placement};
use crate::format::{Encoder, Format};
use crate::run_parts::RunParts;
use crate::views::views;
use crate::{guard, EngineConfig, Error, Result};

/// Stack of each query thread. Planning and evaluating expressions recurse once per level of
/// nesting, and not every recursion in DataFusion grows its stack on demand; the guard's
/// [`guard::MAX_DEPTH`] is chosen so that the deepest admitted statement runs with this stack
/// (with a wide margin, also in debug builds). Untouched stack costs address space only.
pub const QUERY_THREAD_STACK: usize = 16 << 20;

/// The runtime queries execute on, apart from the one serving network IO, so that a heavy
/// query cannot stall ingest or other requests. Its threads live as long as the process.
fn query_runtime() -> &'static tokio::runtime::Handle {
    static HANDLE: std::sync::LazyLock<tokio::runtime::Handle> = std::sync::LazyLock::new(|| {
        let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .thread_name("cairn-query")
            .thread_stack_size(QUERY_THREAD_STACK)
            .enable_all()
            .build()
            .expect("query runtime");
        let handle = runtime.handle().clone();
        std::thread::Builder::new()
            .name("cairn-query-runtime".into())
            .spawn(move || runtime.block_on(std::future::pending::<()>()))
            .expect("query runtime thread");
        handle
    });
    &HANDLE
}

/// Runs `work` on the query runtime. Dropping the returned future (a client that went away)
/// aborts `work`, and with it the DataFusion streams and tasks it owns.
pub async fn on_query_runtime<T: Send + 'static>(
    work: impl Future<Output = Result<T>> + Send + 'static,
) -> Result<T> {
    AbortOnDrop(query_runtime().spawn(work))
        .await
        .map_err(|e| Error::Internal(format!("query task failed: {e}")))?
}

/// A spawned task that is aborted when its handle is dropped before it finished.
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl<T> Future for AbortOnDrop<T> {
    type Output = Result<T, tokio::task::JoinError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.0).poll(cx)
    }
}

/// Makes every operator of a plan give its thread back to the runtime once its task used up
/// its scheduling budget, so that a query can be cancelled (by the timeout or a client that went
/// away) whatever it is doing. DataFusion itself only makes the plan's leaves and exchanges
/// cooperative, which leaves loops such as a cross join's, producing batch after batch from
/// input it already holds, never yielding: its task could not be aborted. The check costs a
/// counter per batch and operator.
#[derive(Debug)]
struct YieldEverywhere;

impl PhysicalOptimizerRule for YieldEverywhere {
    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        _config: &ConfigOptions,
    ) -> datafusion::common::Result<Arc<dyn ExecutionPlan>> {
        plan.transform_up(|plan| {
            if plan.is::<CooperativeExec>() {
                return Ok(Transformed::no(plan));
            }
            let wrapped: Arc<dyn ExecutionPlan> = Arc::new(CooperativeExec::new(plan));
            Ok(Transformed::yes(wrapped))
        })
        .map(|t| t.data)
    }

    fn name(&self) -> &str {
        "YieldEverywhere"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

/// Result of a query: the schema (also for zero rows) and the rows.
pub struct QueryResult {
    pub schema: SchemaRef,
    pub batches: Vec<RecordBatch>,
}

/// A query's encoded result, still charged to the query memory until it is dropped.
pub struct Encoded {
    pub bytes: Vec<u8>,
    pub reservation: MemoryReservation,
}

/// The part of the query memory (1/n) kept for parsed Parquet metadata, across queries.
const METADATA_CACHE_SHARE: usize = 4;
/// The part of the query memory (1/n) kept for files' statistics, across queries.
const STATISTICS_CACHE_SHARE: usize = 16;

/// Tenants whose sessions are kept; beyond this many the least recently used is dropped.
pub const MAX_SESSIONS: usize = 256;

/// Plans and runs queries over the store.
#[derive(Clone)]
pub struct QueryEngine {
    store: Arc<dyn ObjectStore>,
    runtime: Arc<RuntimeEnv>,
    /// The Ballista cluster large statements go to, when one is configured.
    remote: Option<Arc<Remote>>,
    approval_rules: Arc<Vec<String>>,
    query_timeout: Duration,
    /// One session per tenant, built once: tables list the store on every scan, so a session
    /// never goes stale, and planning the views is not repeated for every query.
    sessions: Arc<std::sync::Mutex<LruCache<Tenant, SessionContext>>>,
    /// Concurrent statements per tenant.
    tenant_limits: Arc<QueryLimits>,
}

fn session_cache() -> Arc<std::sync::Mutex<LruCache<Tenant, SessionContext>>> {
    let capacity = NonZeroUsize::new(MAX_SESSIONS).expect("non-zero");
    Arc::new(std::sync::Mutex::new(LruCache::new(capacity)))
}

/// A statement planned to run, here or on the cluster.
struct Prepared {
    schema: SchemaRef,
    task: Arc<TaskContext>,
    plan: Arc<dyn ExecutionPlan>,
    /// The cluster it runs on, or `None` here.
    remote: Option<Arc<Remote>>,
}

impl Prepared {
    /// Plans `df` physically, to run on `remote` (or here).
    async fn new(df: DataFrame, remote: Option<Arc<Remote>>) -> Result<Self> {
        let schema: SchemaRef = Arc::new(df.schema().as_arrow().clone());
        let task = Arc::new(df.task_ctx());
        let plan = df.create_physical_plan().await;
        let plan = plan.map_err(|e| Self::error(remote.as_deref(), e))?;
        Ok(Self {
            schema,
            task,
            plan,
            remote,
        })
    }

    fn error(remote: Option<&Remote>, e: DataFusionError) -> Error {
        match remote {
            Some(remote) => remote.failed(e),
            None => Error::from(e),
        }
    }

    /// Starts the statement; its batches' errors are classified as where it runs. On the
    /// cluster, dropping the batches before the last cancels the statement's job there.
    fn execute(&self) -> Result<impl futures::Stream<Item = Result<RecordBatch>> + Send + 'static> {
        let stream = execute_stream(Arc::clone(&self.plan), Arc::clone(&self.task))
            .map_err(|e| Self::error(self.remote.as_deref(), e))?;
        let stream = match &self.remote {
            Some(remote) => remote.cancelling(stream, Arc::clone(&self.plan)).boxed(),
            None => stream.boxed(),
        };
        let remote = self.remote.clone();
        Ok(stream.map(move |batch| batch.map_err(|e| Self::error(remote.as_deref(), e))))
    }

    /// Where it ran, for metrics.
    fn place(&self) -> &'static str {
        match self.remote {
            Some(_) => Placement::Distributed.label(),
            None => Placement::Local.label(),
        }
    }
}

/// Plans one user statement the guard admitted in `ctx`, with DataFusion's own lock on DDL, DML
/// and statements.
async fn plan_in(ctx: &SessionContext, sql: &str) -> Result<DataFrame> {
    let options = SQLOptions::new()
        .with_allow_ddl(false)
        .with_allow_dml(false)
        .with_allow_statements(false);
    ctx.sql_with_options(sql, options)
        .await
        .map_err(|e| match Error::from(e) {
            Error::BadRequest(m) if m.contains("not supported") => Error::Forbidden(m),
            other => other,
        })
}

/// The tenant of a session built by [`QueryEngine::session`] (or derived from one).
fn session_tenant(ctx: &SessionContext) -> Result<Tenant> {
    ctx.state()
        .config()
        .get_extension::<SessionTenant>()
        .map(|t| t.0.clone())
        .ok_or_else(|| Error::Internal("a session without its tenant".into()))
}

/// Charges `reservation` with `bytes`, refusing with a clear message when the query memory is
/// spent.
fn charge(reservation: &MemoryReservation, bytes: usize) -> Result<()> {
    reservation.try_resize(bytes).map_err(|e| {
        Error::ResourcesExhausted(format!(
            "the result does not fit in the query memory (--query-memory): {}",
            e.strip_backtrace()
        ))
    })
}

/// The runtime of a process that reads the store: `store` registered under [`STORE_URL`],
/// `memory` for its queries (a share of it kept for parsed Parquet metadata and statistics),
/// spilling to a directory up to a size when given.
pub(crate) fn reader_runtime(
    store: Arc<dyn ObjectStore>,
    memory: usize,
    spill: Option<(std::path::PathBuf, usize)>,
) -> Result<Arc<RuntimeEnv>> {
    let mut builder = RuntimeEnvBuilder::new().with_memory_limit(memory, 1.0);
    builder = match spill {
        // Operators that run out of memory spill here, all together at most `size` bytes;
        // beyond it the query fails as out of resources.
        Some((dir, size)) => builder.with_disk_manager_builder(
            DiskManagerBuilder::default()
                .with_mode(DiskManagerMode::Directories(vec![dir]))
                .with_max_temp_directory_size(size as u64),
        ),
        None => builder.with_disk_manager_builder(
            DiskManagerBuilder::default().with_mode(DiskManagerMode::Disabled),
        ),
    };
    let runtime = builder
        // Parsed footers and page indexes of ~100 columns take far more memory than their
        // bytes on disk; a week of hourly files overflows DataFusion's default 50 MB and every
        // query would parse them again.
        .with_metadata_cache_limit(memory / METADATA_CACHE_SHARE)
        // And the statistics of each file, derived from its footer, likewise: computed for
        // every file a scan opens, they would cost a lookup of a few traces more than the
        // lookup itself.
        .with_file_statistics_cache_limit(memory / STATISTICS_CACHE_SHARE)
        // New files land in existing partitions all the time: never cache listings.
        .with_object_list_cache_limit(0)
        .build_arc()?;
    let url = Url::parse(STORE_URL).expect("static URL");
    runtime.register_object_store(&url, store);
    Ok(runtime)
}

impl QueryEngine {
    /// An engine over `store` with `config`'s memory, spill space, timeout and approval rules.
    pub fn new(store: Arc<dyn ObjectStore>, config: &EngineConfig) -> Result<Self> {
        // Listings show each span once, also while compaction replaces files.
        let store: Arc<dyn ObjectStore> = Arc::new(VisibleStore::new(store));
        let spill_dir = crate::spill::prepare(&config.spill_dir)?;
        let runtime = reader_runtime(
            Arc::clone(&store),
            config.query_memory,
            Some((spill_dir, config.spill_size)),
        )?;
        let remote = (config.distribute.scheduler.as_deref())
            .map(|url| Remote::new(url, &config.distribute))
            .transpose()?
            .map(Arc::new);
        Ok(Self {
            store,
            runtime,
            remote,
            approval_rules: Arc::new(
                (config.approval_required.iter())
                    .filter(|rule| !rule.is_empty())
                    .cloned()
                    .collect(),
            ),
            query_timeout: config.query_timeout,
            sessions: session_cache(),
            tenant_limits: Arc::new(QueryLimits::new(config.tenant_max_concurrent_queries)),
        })
    }

    /// The traces with spans that link to one of `ids`, from the trace index; `None` when the
    /// tenant's index is not complete.
    pub async fn linking_traces(
        &self,
        tenant: &Tenant,
        ids: &std::collections::BTreeSet<String>,
    ) -> Result<Option<std::collections::BTreeSet<String>>> {
        if !self.index_complete(tenant).await? {
            return Ok(None);
        }
        let ctx = self.session(tenant).await?;
        let (owned, ids) = (tenant.clone(), ids.clone());
        self.run(tenant, async move {
            let entries = crate::catalog::index_entries(&ctx.state(), &owned, &ids).await?;
            Ok(Some(
                entries.into_iter().filter_map(|e| e.linked_from).collect(),
            ))
        })
        .await
    }

    /// The `limit` traces that started last, before `before` (start in nanoseconds, trace id)
    /// when given, from the run summaries of the newest hours; `None` when the tenant's trace
    /// index is not complete.
    pub async fn newest_traces(
        &self,
        tenant: &Tenant,
        before: Option<(i64, String)>,
        limit: usize,
    ) -> Result<Option<Vec<String>>> {
        if !self.index_complete(tenant).await? {
            return Ok(None);
        }
        let ctx = self.session(tenant).await?;
        let (owned, store) = (tenant.clone(), self.store());
        self.run(tenant, async move {
            Ok(Some(
                crate::run_parts::newest_traces(&ctx, store, &owned, before, limit).await?,
            ))
        })
        .await
    }

    async fn index_complete(&self, tenant: &Tenant) -> Result<bool> {
        cairn_store::trace_index::is_complete(self.store.as_ref(), tenant)
            .await
            .map_err(|e| Error::Storage(e.to_string()))
    }

    /// The store, as readers see it.
    pub(crate) fn store(&self) -> Arc<dyn ObjectStore> {
        Arc::clone(&self.store)
    }

    /// Tool name patterns that always need an approval (see [`crate::policy`]).
    pub fn with_approval_rules(self, rules: Vec<String>) -> Self {
        Self {
            approval_rules: Arc::new(rules),
            sessions: session_cache(),
            ..self
        }
    }

    /// The per-tenant limits of concurrent statements.
    pub fn tenant_limits(&self) -> &Arc<QueryLimits> {
        &self.tenant_limits
    }

    /// A session in which `spans` and the views show only `tenant`'s rows.
    pub async fn session(&self, tenant: &Tenant) -> Result<SessionContext> {
        if let Some(ctx) = self.sessions.lock().expect("sessions").get(tenant) {
            return Ok(ctx.clone());
        }
        let ctx = self.build_session(tenant, None).await?;
        self.sessions
            .lock()
            .expect("sessions")
            .put(tenant.clone(), ctx.clone());
        Ok(ctx)
    }

    /// A new session of `tenant`'s, planning for `remote` when given.
    async fn build_session(
        &self,
        tenant: &Tenant,
        remote: Option<&Arc<Remote>>,
    ) -> Result<SessionContext> {
        let mut config = SessionConfig::new()
            .with_extension(Arc::new(SessionTenant(tenant.clone())))
            .with_information_schema(true)
            .with_target_partitions(std::thread::available_parallelism().map_or(2, |n| n.get()));
        let options = config.options_mut();
        options.execution.parquet.pushdown_filters = true;
        options.execution.parquet.reorder_filters = true;
        // Lookups by a list of trace ids (a page of runs) prune files, row groups and pages by
        // their id ranges and bloom filters: lists longer than the default 20 would not.
        options.execution.parquet.max_in_list_size = crate::catalog::MAX_PRUNED_IN_LIST;
        if let Some(remote) = remote {
            config = remote.configure(config);
        }
        let state = SessionStateBuilder::new()
            .with_config(config)
            .with_runtime_env(Arc::clone(&self.runtime))
            .with_default_features()
            .with_physical_optimizer_rule(Arc::new(YieldEverywhere))
            .build();
        let state = match remote {
            Some(remote) => remote.upgrade(state)?,
            None => state,
        };
        let ctx = SessionContext::new_with_state(state);
        for udf in crate::bounded::wrap_builtins(&ctx.state(), &self.runtime.memory_pool) {
            ctx.register_udf(udf);
        }
        ctx.register_udf(crate::policy::requires_approval_udf(Arc::clone(
            &self.approval_rules,
        )));
        ctx.register_table(
            "spans",
            Arc::new(TenantTable::spans(Arc::clone(&self.store), tenant.clone())),
        )?;
        ctx.register_table(
            "payloads",
            Arc::new(TenantTable::payloads(
                Arc::clone(&self.store),
                tenant.clone(),
            )),
        )?;
        // The partial run aggregates that `runs` combines: planned into the view, not a table
        // of the session's own.
        ctx.register_table(
            "run_parts",
            Arc::new(RunParts::new(
                Arc::clone(&self.store),
                tenant.clone(),
                crate::run_parts::schema().await?,
            )),
        )?;
        for (name, sql) in views() {
            let plan = ctx.sql(&sql).await?.into_unoptimized_plan();
            ctx.register_table(name, Arc::new(ViewTable::new(plan, Some(sql))))?;
        }
        ctx.deregister_table("run_parts")?;
        Ok(ctx)
    }

    /// Runs `work` for `tenant` on the query runtime, holding one of the tenant's query slots
    /// (refused at once when they are all taken), cancelled once it ran longer than the query
    /// timeout (and, like [`on_query_runtime`], when the returned future is dropped).
    pub async fn run<T: Send + 'static>(
        &self,
        tenant: &Tenant,
        work: impl Future<Output = Result<T>> + Send + 'static,
    ) -> Result<T> {
        let _slot = self.tenant_limits.acquire(tenant)?;
        let timeout = self.query_timeout;
        on_query_runtime(async move {
            tokio::time::timeout(timeout, work)
                .await
                .unwrap_or_else(|_| {
                    Err(Error::Timeout(format!(
                        "the query ran longer than the query timeout of {timeout:?} \
                     (--query-timeout) and was cancelled"
                    )))
                })
        })
        .await
    }

    /// Runs one read-only statement as `tenant` and returns its rows, charged to the query
    /// memory while they are collected.
    pub async fn sql(&self, tenant: &Tenant, sql: &str) -> Result<QueryResult> {
        let (engine, sql) = (self.clone(), sql.to_owned());
        let owned = tenant.clone();
        self.run(tenant, async move {
            let df = engine.plan(&owned, &sql).await?;
            engine.collect(df).await
        })
        .await
    }

    /// Like [`Self::sql`], in `ctx`: a session derived from a tenant's [`Self::session`] (the
    /// Postgres listener's, which adds the catalog clients expect), on this engine's memory,
    /// with `$1`, `$2`, … bound to `params`.
    pub async fn sql_in(
        &self,
        ctx: SessionContext,
        sql: &str,
        params: ParamValues,
    ) -> Result<QueryResult> {
        let (engine, sql) = (self.clone(), sql.to_owned());
        let tenant = session_tenant(&ctx)?;
        let owned = tenant.clone();
        self.run(&tenant, async move {
            guard::check(&sql)?;
            let df = plan_in(&ctx, &sql)
                .await?
                .with_param_values(params.clone())?;
            let prepared = engine.place(&owned, &sql, df, Some(params)).await?;
            engine.collect(prepared).await
        })
        .await
    }

    /// Plans `sql` in `ctx` as [`Self::sql_in`] would, without running it, and returns what
    /// `inspect` reads from the plan. Planning recurses, so it happens on the query runtime too.
    pub async fn describe_in<T: Send + 'static>(
        &self,
        ctx: SessionContext,
        sql: &str,
        inspect: fn(&LogicalPlan) -> Result<T>,
    ) -> Result<T> {
        let sql = sql.to_owned();
        self.run(&session_tenant(&ctx)?, async move {
            guard::check(&sql)?;
            inspect(plan_in(&ctx, &sql).await?.logical_plan())
        })
        .await
    }

    /// Executes `prepared` and collects its rows, charged to the query memory while they come.
    async fn collect(&self, prepared: Prepared) -> Result<QueryResult> {
        let schema = Arc::clone(&prepared.schema);
        let mut batches = Vec::new();
        self.each_batch(prepared, |batch| {
            batches.push(batch);
            Ok(())
        })
        .await?;
        Ok(QueryResult { schema, batches })
    }

    /// Runs one read-only statement as `tenant` and returns its result encoded in `format`. The
    /// rows are encoded as they come and the output is charged to the query memory as it grows,
    /// so a result larger than the query memory fails instead of growing the process.
    pub async fn sql_encoded(&self, tenant: &Tenant, sql: &str, format: Format) -> Result<Encoded> {
        let (engine, sql) = (self.clone(), sql.to_owned());
        let owned = tenant.clone();
        self.run(tenant, async move {
            let df = engine.plan(&owned, &sql).await?;
            engine.encode(df, format).await
        })
        .await
    }

    /// Runs one of Cairn's own statements with `$1`, `$2`, … bound to `params`, as JSON rows.
    /// Only for statements written here: user SQL goes through [`Self::sql`].
    pub async fn rows(
        &self,
        tenant: &Tenant,
        sql: &str,
        params: Vec<ScalarValue>,
    ) -> Result<Vec<serde_json::Map<String, serde_json::Value>>> {
        let (engine, sql) = (self.clone(), sql.to_owned());
        let owned = tenant.clone();
        self.run(tenant, async move {
            let ctx = engine.session(&owned).await?;
            let df = ctx.sql(&sql).await?.with_param_values(params)?;
            let encoded = engine
                .encode(Prepared::new(df, None).await?, Format::Json)
                .await?;
            // Parsed JSON values take about twice their text.
            charge(&encoded.reservation, 3 * encoded.bytes.len())?;
            serde_json::from_slice(&encoded.bytes).map_err(|e| Error::Internal(e.to_string()))
        })
        .await
    }

    /// Runs one of Cairn's own statements with `$1`, `$2`, … bound to `params`, turning each
    /// batch into values with `decode` as it comes (on the query runtime). The decoded values
    /// are charged to the query memory at the size of the batches they came from.
    pub async fn decoded<T: Send + 'static>(
        &self,
        tenant: &Tenant,
        sql: &str,
        params: Vec<ScalarValue>,
        decode: fn(&RecordBatch) -> Result<Vec<T>>,
    ) -> Result<Vec<T>> {
        let (engine, sql) = (self.clone(), sql.to_owned());
        let owned = tenant.clone();
        self.run(tenant, async move {
            let ctx = engine.session(&owned).await?;
            let df = ctx.sql(&sql).await?.with_param_values(params)?;
            let mut out = Vec::new();
            engine
                .each_batch(Prepared::new(df, None).await?, |batch| {
                    out.extend(decode(&batch)?);
                    Ok(())
                })
                .await?;
            Ok(out)
        })
        .await
    }

    /// Executes `prepared`, handing each batch to `take` as it comes; the batches are charged to
    /// the query memory until the last one is taken.
    async fn each_batch(
        &self,
        prepared: Prepared,
        mut take: impl FnMut(RecordBatch) -> Result<()>,
    ) -> Result<()> {
        let reservation = MemoryConsumer::new("query result").register(&self.runtime.memory_pool);
        let mut stream = std::pin::pin!(prepared.execute()?);
        let plan = &prepared.plan;
        while let Some(batch) = stream.next().await {
            let batch = batch?;
            charge(
                &reservation,
                reservation.size() + batch.get_array_memory_size(),
            )?;
            take(batch)?;
        }
        crate::metrics::record_scans(plan);
        Ok(())
    }

    /// Plans one user statement, after the guard admitted it, to run where [`Self::place`]
    /// decides.
    async fn plan(&self, tenant: &Tenant, sql: &str) -> Result<Prepared> {
        guard::check(sql)?;
        let ctx = self.session(tenant).await?;
        let df = plan_in(&ctx, sql).await?;
        self.place(tenant, sql, df, None).await
    }

    /// Plans `sql`, planned here as `df` (bound to `params`), to run here or on the cluster
    /// ([`crate::distributed::route`]).
    async fn place(
        &self,
        tenant: &Tenant,
        sql: &str,
        df: DataFrame,
        params: Option<ParamValues>,
    ) -> Result<Prepared> {
        let prepared = match &self.remote {
            None => Prepared::new(df, None).await?,
            Some(remote) => match remote.placement(sql) {
                Placement::Local => Prepared::new(df, None).await?,
                Placement::Distributed => self.distributed(remote, tenant, sql, params).await?,
                Placement::Auto => {
                    let here = Prepared::new(df, None).await?;
                    let bytes = scanned_bytes(&here.plan);
                    if bytes > remote.above() {
                        tracing::debug!(bytes, "sent to the cluster");
                        drop(here);
                        self.distributed(remote, tenant, sql, params).await?
                    } else {
                        here
                    }
                }
            },
        };
        crate::metrics::placed(prepared.place());
        Ok(prepared)
    }

    /// Plans `sql` in `tenant`'s cluster session.
    async fn distributed(
        &self,
        remote: &Arc<Remote>,
        tenant: &Tenant,
        sql: &str,
        params: Option<ParamValues>,
    ) -> Result<Prepared> {
        let ctx = match remote.session(tenant) {
            Some(ctx) => ctx,
            None => {
                let ctx = self.build_session(tenant, Some(remote)).await?;
                remote.keep(tenant, ctx.clone());
                ctx
            }
        };
        let mut df = plan_in(&ctx, sql).await?;
        if let Some(params) = params {
            df = df.with_param_values(params)?;
        }
        Prepared::new(df, Some(Arc::clone(remote))).await
    }

    /// Executes `prepared`, encoding its batches as they come, charged to the query memory.
    async fn encode(&self, prepared: Prepared, format: Format) -> Result<Encoded> {
        let reservation = MemoryConsumer::new("query result").register(&self.runtime.memory_pool);
        let mut encoder = Encoder::new(Arc::clone(&prepared.schema), format)?;
        let mut stream = std::pin::pin!(prepared.execute()?);
        while let Some(batch) = stream.next().await {
            let batch = batch?;
            // The batch is held while it is encoded.
            charge(&reservation, encoder.size() + batch.get_array_memory_size())?;
            encoder.write(&batch)?;
            drop(batch);
            charge(&reservation, encoder.size())?;
        }
        crate::metrics::record_scans(&prepared.plan);
        let bytes = encoder.finish()?;
        charge(&reservation, bytes.capacity())?;
        Ok(Encoded { bytes, reservation })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;

    fn engine(configure: impl FnOnce(&mut EngineConfig)) -> (QueryEngine, tempfile::TempDir) {
        let spill = tempfile::tempdir().unwrap();
        let mut config = EngineConfig {
            spill_dir: spill.path().join("spill"),
            ..EngineConfig::default()
        };
        configure(&mut config);
        let store = Arc::new(object_store::memory::InMemory::new());
        (QueryEngine::new(store, &config).unwrap(), spill)
    }

    fn tenant() -> Tenant {
        Tenant::new("default").unwrap()
    }

    fn reserved(engine: &QueryEngine) -> usize {
        engine.runtime.memory_pool.reserved()
    }

    #[tokio::test]
    async fn sessions_are_kept_least_recently_used_first() {
        const MAX_SESSIONS: usize = 4;
        let (mut engine, _dir) = engine(|_| {});
        engine.sessions = Arc::new(std::sync::Mutex::new(LruCache::new(
            NonZeroUsize::new(MAX_SESSIONS).unwrap(),
        )));
        let first = Tenant::new("t0").unwrap();
        let id = engine.session(&first).await.unwrap().session_id();
        for i in 1..=MAX_SESSIONS {
            // Using the first tenant keeps it; the others come and go.
            assert_eq!(engine.session(&first).await.unwrap().session_id(), id);
            engine
                .session(&Tenant::new(&format!("t{i}")).unwrap())
                .await
                .unwrap();
        }
        let sessions = engine.sessions.lock().unwrap();
        assert_eq!(sessions.len(), MAX_SESSIONS);
        assert!(sessions.contains(&first));
        assert!(!sessions.contains(&Tenant::new("t1").unwrap()));
        assert!(sessions.contains(&Tenant::new(&format!("t{MAX_SESSIONS}")).unwrap()));
    }

    #[tokio::test]
    async fn results_are_charged_to_the_query_memory() {
        let (engine, _dir) = engine(|c| c.query_memory = 16 << 20);
        let big = "SELECT value FROM generate_series(1, 100000000)";
        for format in [Format::Json, Format::Csv, Format::Arrow, Format::Table] {
            match engine.sql_encoded(&tenant(), big, format).await {
                Err(Error::ResourcesExhausted(m)) => assert!(m.contains("query memory"), "{m}"),
                Err(e) => panic!("{format:?}: {e}"),
                Ok(_) => panic!("{format:?}: answered"),
            }
        }
        assert!(matches!(
            engine.sql(&tenant(), big).await,
            Err(Error::ResourcesExhausted(_))
        ));
        assert!(matches!(
            engine.rows(&tenant(), big, vec![]).await,
            Err(Error::ResourcesExhausted(_))
        ));
        assert_eq!(reserved(&engine), 0, "released after the failure");
        // A result that fits stays charged until it is dropped.
        let small = engine
            .sql_encoded(
                &tenant(),
                "SELECT value FROM generate_series(1, 1000)",
                Format::Json,
            )
            .await
            .unwrap();
        assert!(reserved(&engine) >= small.bytes.len());
        drop(small);
        assert_eq!(reserved(&engine), 0);
        let rows = engine
            .rows(
                &tenant(),
                "SELECT $1 + 1 AS n",
                vec![ScalarValue::Int64(Some(1))],
            )
            .await
            .unwrap();
        assert_eq!(rows[0]["n"], 2);
    }

    #[tokio::test]
    async fn generated_values_are_bounded_before_they_are_allocated() {
        let (engine, _dir) = engine(|c| c.query_memory = 256 << 20);
        let rows = engine
            .rows(
                &tenant(),
                "SELECT repeat('ab', 3) AS r, lpad('x', 3, '0') AS l, rpad('x', 3) AS p, \
                 array_repeat(1, 3) AS a, range(3) AS g, generate_series(1, 3) AS s, \
                 array_resize([1], 3, 0) AS z, \
                 cardinality(range(DATE '2000-01-01', DATE '2000-01-10', INTERVAL '1 day')) AS d",
                vec![],
            )
            .await
            .unwrap();
        let row = serde_json::Value::Object(rows[0].clone());
        assert_eq!(
            row,
            serde_json::json!({"r": "ababab", "l": "00x", "p": "x  ", "a": [1, 1, 1],
                "g": [0, 1, 2], "s": [1, 2, 3], "z": [1, 0, 0], "d": 9})
        );
        for sql in [
            "SELECT repeat('x', 2000000000)",
            "SELECT lpad('x', 100000000)",
            "SELECT rpad('x', 30000000, '€')",
            "SELECT array_repeat('x', 100000000)",
            "SELECT array_resize([1], 100000000)",
            "SELECT range(10000000000)",
            "SELECT generate_series(1, 10000000000, 1)",
            "SELECT range(TIMESTAMP '1970-01-01', TIMESTAMP '2100-01-01', INTERVAL '1 second')",
            "SELECT repeat(name, 100000000) FROM (VALUES ('a'), ('b')) AS t(name)",
        ] {
            match engine.sql(&tenant(), sql).await {
                Err(Error::BadRequest(m)) => {
                    assert!(m.contains("a generated value may have"), "{sql}: {m}")
                }
                Err(e) => panic!("{sql}: {e}"),
                Ok(_) => panic!("{sql}: answered"),
            }
        }
        // Each value may be, but all together they do not fit the query memory; also when a
        // constant value would be repeated for every row.
        for sql in [
            "SELECT length(repeat('x', 50000000 + value % 2)) FROM generate_series(1, 100)",
            "SELECT repeat('x', 1000000) FROM generate_series(1, 100000)",
        ] {
            match engine.sql(&tenant(), sql).await {
                Err(Error::ResourcesExhausted(m)) => assert!(m.contains("query memory"), "{m}"),
                Err(e) => panic!("{sql}: {e}"),
                Ok(_) => panic!("{sql}: answered"),
            }
        }
        assert_eq!(reserved(&engine), 0);
    }

    #[tokio::test]
    async fn queries_stop_at_the_timeout() {
        let (engine, _dir) = engine(|c| c.query_timeout = Duration::from_millis(300));
        for sql in [
            "SELECT count(*) FROM generate_series(1, 1000000) a, generate_series(1, 1000000) b",
            "WITH RECURSIVE t(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM t) SELECT count(*) FROM t",
            "SELECT count(*) FROM generate_series(1, 10000000000000)",
        ] {
            let started = Instant::now();
            match engine.sql(&tenant(), sql).await {
                Err(e @ Error::Timeout(_)) => {
                    assert_eq!(e.http_status(), http::StatusCode::GATEWAY_TIMEOUT);
                    assert!(e.to_string().contains("query timeout of 300ms"), "{e}");
                }
                Err(e) => panic!("{sql}: {e}"),
                Ok(_) => panic!("{sql}: answered"),
            }
            assert!(started.elapsed() < Duration::from_secs(30), "{sql}");
        }
        assert_eq!(reserved(&engine), 0);
    }

    /// Dropping the caller's future aborts the query: the memory it held is given back.
    #[tokio::test]
    async fn dropping_the_caller_cancels_the_query() {
        let (engine, _dir) = engine(|c| c.query_memory = 1 << 30);
        let sql = "SELECT count(DISTINCT value) FROM generate_series(1, 10000000000000)";
        let tenant = tenant();
        let query = engine.sql(&tenant, sql);
        assert!(tokio::time::timeout(Duration::from_millis(1_500), query)
            .await
            .is_err());
        let deadline = Instant::now() + Duration::from_secs(10);
        while reserved(&engine) > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(reserved(&engine), 0, "the aborted query still holds memory");
    }

    #[tokio::test]
    async fn spills_are_bounded() {
        let (engine, dir) = engine(|c| {
            c.query_memory = 64 << 20;
            c.spill_size = 64 << 10;
        });
        assert!(dir.path().join("spill").is_dir());
        let sql = "SELECT max(r) FROM (SELECT row_number() OVER (ORDER BY value DESC) AS r \
                   FROM generate_series(1, 10000000)) AS t";
        match engine.sql(&tenant(), sql).await {
            Err(Error::ResourcesExhausted(m)) => assert!(m.contains("--spill-size"), "{m}"),
            Err(e) => panic!("{e}"),
            Ok(_) => panic!("sorted 10M rows in 64 MiB without spilling"),
        }
    }
}
