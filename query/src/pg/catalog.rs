//! The session a tenant's Postgres clients query: the tenant's own session
//! ([`crate::QueryEngine::session`]) with the catalog Postgres clients read added.
//!
//! Data flow: the tenant's `public` schema (its tables and views, shared, never copied) is
//! placed in a catalog of the Postgres session's own, next to datafusion-pg-catalog's
//! `pg_catalog` (what psql's `\d` reads) and an `information_schema` whose `columns` names
//! types as Postgres does (`timestamp with time zone`, `text`, … via [`super::types`]), which is
//! what Grafana's query builder reads. The session adds `current_setting`, plans `timestamptz`
//! in UTC, shares the engine's runtime (memory pool, spill space) and is built once per tenant.

use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex};

use arrow::array::{Array, ArrayRef, StringArray};
use arrow::datatypes::DataType;
use async_trait::async_trait;
use cairn_schema::tenant::Tenant;
use datafusion::catalog::information_schema::InformationSchemaProvider;
use datafusion::catalog::view::ViewTable;
use datafusion::catalog::{
    CatalogProvider, MemoryCatalogProvider, MemoryCatalogProviderList, SchemaProvider,
    TableProvider,
};
use datafusion::common::cast::as_string_array;
use datafusion::common::Column;
use datafusion::datasource::provider_as_source;
use datafusion::execution::SessionStateBuilder;
use datafusion::logical_expr::{
    ColumnarValue, Expr, LogicalPlanBuilder, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl,
    Signature, Volatility,
};
use datafusion::prelude::SessionContext;
use datafusion_postgres::datafusion_pg_catalog::pg_catalog::context::EmptyContextProvider;
use datafusion_postgres::datafusion_pg_catalog::pg_catalog::setup_pg_catalog;
use lru::LruCache;

use crate::engine::MAX_SESSIONS;
use crate::{Error, QueryEngine, Result};

/// The catalog every session's tables are in (DataFusion's default, what `current_database()`
/// answers).
const CATALOG: &str = "datafusion";

/// The Postgres sessions of the tenants that used the listener lately.
pub struct Sessions {
    cache: Mutex<LruCache<Tenant, SessionContext>>,
}

impl Default for Sessions {
    fn default() -> Self {
        let capacity = NonZeroUsize::new(MAX_SESSIONS).expect("non-zero");
        Self {
            cache: Mutex::new(LruCache::new(capacity)),
        }
    }
}

impl Sessions {
    /// `tenant`'s Postgres session, built from its engine session the first time.
    pub async fn get(&self, engine: &QueryEngine, tenant: &Tenant) -> Result<SessionContext> {
        if let Some(ctx) = self.cache.lock().expect("sessions").get(tenant) {
            return Ok(ctx.clone());
        }
        let base = engine.session(tenant).await?;
        let ctx = postgres_session(&base).await?;
        (self.cache.lock().expect("sessions")).put(tenant.clone(), ctx.clone());
        Ok(ctx)
    }
}

async fn postgres_session(base: &SessionContext) -> Result<SessionContext> {
    let public = base
        .catalog(CATALOG)
        .and_then(|c| c.schema("public"))
        .ok_or_else(|| Error::Internal("the session has no public schema".into()))?;
    let catalog = Arc::new(MemoryCatalogProvider::new());
    catalog.register_schema("public", public)?;
    // DataFusion's own information_schema would shadow the one registered here.
    let mut config = base.copied_config();
    config.options_mut().catalog.information_schema = false;
    // `timestamptz` (a literal's or a parameter's type) plans as a UTC timestamp, which is sent
    // as `timestamptz` like the tables' timestamps, rather than as a `timestamp`.
    config.options_mut().execution.time_zone = Some("UTC".into());
    let state = SessionStateBuilder::new_from_existing(base.state())
        .with_config(config)
        .with_catalog_list(Arc::new(MemoryCatalogProviderList::new()))
        .build();
    let ctx = SessionContext::new_with_state(state);
    // Registered once built: building adds an empty default catalog of this name.
    ctx.register_catalog(CATALOG, Arc::clone(&catalog) as Arc<dyn CatalogProvider>);
    let catalogs = Arc::clone(ctx.state().catalog_list());
    catalog.register_schema(
        "information_schema",
        Arc::new(PgInformationSchema(InformationSchemaProvider::new(
            catalogs,
        ))),
    )?;
    setup_pg_catalog(&ctx, CATALOG, EmptyContextProvider)
        .map_err(|e| Error::Internal(format!("pg_catalog: {e}")))?;
    ctx.register_udf(super::functions::current_setting(
        super::functions::settings(&super::auth::parameters()),
    ));
    Ok(ctx)
}

/// DataFusion's `information_schema`, with Postgres type names in `columns.data_type`.
#[derive(Debug)]
struct PgInformationSchema(InformationSchemaProvider);

#[async_trait]
impl SchemaProvider for PgInformationSchema {
    fn table_names(&self) -> Vec<String> {
        self.0.table_names()
    }

    async fn table(
        &self,
        name: &str,
    ) -> datafusion::common::Result<Option<Arc<dyn TableProvider>>> {
        let Some(table) = self.0.table(name).await? else {
            return Ok(None);
        };
        if !name.eq_ignore_ascii_case("columns") {
            return Ok(Some(table));
        }
        let schema = table.schema();
        let projection: Vec<Expr> = (schema.fields().iter())
            .map(|f| {
                let column = Expr::Column(Column::new(Some("columns"), f.name()));
                if f.name() == "data_type" {
                    pg_type_name().call(vec![column]).alias("data_type")
                } else {
                    column
                }
            })
            .collect();
        let plan = LogicalPlanBuilder::scan("columns", provider_as_source(table), None)?
            .project(projection)?
            .build()?;
        Ok(Some(Arc::new(ViewTable::new(plan, None))))
    }

    fn table_exist(&self, name: &str) -> bool {
        self.0.table_exist(name)
    }
}

/// `pg_type_name(arrow_type_text)`: the Postgres name of a type as DataFusion displays it.
fn pg_type_name() -> ScalarUDF {
    ScalarUDF::new_from_impl(PgTypeName {
        signature: Signature::exact(vec![DataType::Utf8], Volatility::Immutable),
    })
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct PgTypeName {
    signature: Signature,
}

impl ScalarUDFImpl for PgTypeName {
    fn name(&self) -> &str {
        "pg_type_name"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> datafusion::common::Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(
        &self,
        args: ScalarFunctionArgs,
    ) -> datafusion::common::Result<ColumnarValue> {
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let names = as_string_array(&arrays[0])?;
        let pg: StringArray = (0..names.len())
            .map(|i| (!names.is_null(i)).then(|| super::types::pg_name_of_display(names.value(i))))
            .collect();
        Ok(ColumnarValue::Array(Arc::new(pg) as ArrayRef))
    }
}
