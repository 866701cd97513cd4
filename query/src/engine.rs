//! Sessions scoped to one tenant, and read-only SQL over them.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use cairn_schema::tenant::Tenant;
use cairn_schema::visible::VisibleStore;
use datafusion::catalog::view::ViewTable;
use datafusion::common::ScalarValue;
use datafusion::execution::context::SQLOptions;
use datafusion::execution::runtime_env::{RuntimeEnv, RuntimeEnvBuilder};
use datafusion::prelude::{SessionConfig, SessionContext};
use object_store::ObjectStore;
use url::Url;

use crate::catalog::{TenantTable, STORE_URL};
use crate::views::views;
use crate::{guard, Error, Result};

/// The runtime queries execute on, apart from the one serving network IO, so that a heavy
/// query cannot stall ingest or other requests. Its threads live as long as the process.
fn query_runtime() -> &'static tokio::runtime::Handle {
    static HANDLE: std::sync::LazyLock<tokio::runtime::Handle> = std::sync::LazyLock::new(|| {
        let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .thread_name("cairn-query")
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

/// Runs `work` on the query runtime.
pub async fn on_query_runtime<T: Send + 'static>(
    work: impl std::future::Future<Output = Result<T>> + Send + 'static,
) -> Result<T> {
    query_runtime()
        .spawn(work)
        .await
        .map_err(|e| Error::Internal(format!("query task failed: {e}")))?
}

/// Result of a query: the schema (also for zero rows) and the rows.
pub struct QueryResult {
    pub schema: SchemaRef,
    pub batches: Vec<RecordBatch>,
}

/// The part of the query memory (1/n) kept for parsed Parquet metadata, across queries.
const METADATA_CACHE_SHARE: usize = 4;

/// Tenants whose sessions are kept; beyond this many the cache starts over.
const MAX_SESSIONS: usize = 256;

/// Plans and runs queries over the store.
#[derive(Clone)]
pub struct QueryEngine {
    store: Arc<dyn ObjectStore>,
    runtime: Arc<RuntimeEnv>,
    approval_rules: Arc<Vec<String>>,
    /// One session per tenant, built once: tables list the store on every scan, so a session
    /// never goes stale, and planning the views is not repeated for every query.
    sessions: Arc<std::sync::Mutex<HashMap<Tenant, SessionContext>>>,
}

impl QueryEngine {
    /// An engine over `store`; all queries together use at most `memory_limit` bytes.
    pub fn new(store: Arc<dyn ObjectStore>, memory_limit: usize) -> Result<Self> {
        // Listings show each span once, also while compaction replaces files.
        let store: Arc<dyn ObjectStore> = Arc::new(VisibleStore::new(store));
        let runtime = RuntimeEnvBuilder::new()
            .with_memory_limit(memory_limit, 1.0)
            // Parsed footers and page indexes of ~100 columns take far more memory than their
            // bytes on disk; a week of hourly files overflows DataFusion's default 50 MB and every
            // query would parse them again.
            .with_metadata_cache_limit(memory_limit / METADATA_CACHE_SHARE)
            // New files land in existing partitions all the time: never cache listings.
            .with_object_list_cache_limit(0)
            .build_arc()?;
        let url = Url::parse(STORE_URL).expect("static URL");
        runtime.register_object_store(&url, Arc::clone(&store));
        Ok(Self {
            store,
            runtime,
            approval_rules: Arc::default(),
            sessions: Arc::default(),
        })
    }

    /// Tool name patterns that always need an approval (see [`crate::policy`]).
    pub fn with_approval_rules(self, rules: Vec<String>) -> Self {
        Self {
            approval_rules: Arc::new(rules),
            sessions: Arc::default(),
            ..self
        }
    }

    /// A session in which `spans` and the views show only `tenant`'s rows.
    pub async fn session(&self, tenant: &Tenant) -> Result<SessionContext> {
        if let Some(ctx) = self.sessions.lock().expect("sessions").get(tenant) {
            return Ok(ctx.clone());
        }
        let ctx = self.new_session(tenant).await?;
        let mut sessions = self.sessions.lock().expect("sessions");
        if sessions.len() >= MAX_SESSIONS {
            sessions.clear();
        }
        sessions.insert(tenant.clone(), ctx.clone());
        Ok(ctx)
    }

    async fn new_session(&self, tenant: &Tenant) -> Result<SessionContext> {
        let mut config = SessionConfig::new()
            .with_information_schema(true)
            .with_target_partitions(std::thread::available_parallelism().map_or(2, |n| n.get()));
        let options = config.options_mut();
        options.execution.parquet.pushdown_filters = true;
        options.execution.parquet.reorder_filters = true;
        let ctx = SessionContext::new_with_config_rt(config, Arc::clone(&self.runtime));
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
        for (name, sql) in views() {
            let plan = ctx.sql(&sql).await?.into_unoptimized_plan();
            ctx.register_table(name, Arc::new(ViewTable::new(plan, Some(sql))))?;
        }
        Ok(ctx)
    }

    /// Runs one read-only statement as `tenant`, on the query runtime.
    pub async fn sql(&self, tenant: &Tenant, sql: &str) -> Result<QueryResult> {
        guard::check(sql)?;
        let (engine, tenant, sql) = (self.clone(), tenant.clone(), sql.to_owned());
        on_query_runtime(async move { engine.execute(&tenant, &sql).await }).await
    }

    /// Runs one of Cairn's own statements with `$1`, `$2`, … bound to `params`, as JSON rows.
    /// Only for statements written here: user SQL goes through [`Self::sql`].
    pub async fn rows(
        &self,
        tenant: &Tenant,
        sql: &str,
        params: Vec<ScalarValue>,
    ) -> Result<Vec<serde_json::Map<String, serde_json::Value>>> {
        let (engine, tenant, sql) = (self.clone(), tenant.clone(), sql.to_owned());
        on_query_runtime(async move {
            let ctx = engine.session(&tenant).await?;
            let df = ctx.sql(&sql).await?.with_param_values(params)?;
            let schema: SchemaRef = Arc::new(df.schema().as_arrow().clone());
            let batches = df.collect().await?;
            let bytes = crate::format::encode(
                &QueryResult { schema, batches },
                crate::format::Format::Json,
            )?;
            serde_json::from_slice(&bytes).map_err(|e| Error::Internal(e.to_string()))
        })
        .await
    }

    async fn execute(&self, tenant: &Tenant, sql: &str) -> Result<QueryResult> {
        let ctx = self.session(tenant).await?;
        let options = SQLOptions::new()
            .with_allow_ddl(false)
            .with_allow_dml(false)
            .with_allow_statements(false);
        let df = ctx
            .sql_with_options(sql, options)
            .await
            .map_err(|e| match Error::from(e) {
                Error::BadRequest(m) if m.contains("not supported") => Error::Forbidden(m),
                other => other,
            })?;
        let schema: SchemaRef = Arc::new(df.schema().as_arrow().clone());
        let batches = df.collect().await?;
        Ok(QueryResult { schema, batches })
    }
}
