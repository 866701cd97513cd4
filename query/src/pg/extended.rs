//! The extended query protocol: statements prepared by `Parse`, described, bound to parameters
//! and executed, for psycopg, JDBC and other drivers. pgwire runs the protocol (statements and
//! portals by name, `Sync`, `Close`, `max_rows` and portal suspension); this answers its steps
//! with the simple protocol's own ([`super::handler`]).
//!
//! Data flow: `Parse` bounds and parses the text as a query string is, one statement at most;
//! a `SET`, `SHOW` or transaction statement is kept for the hooks, any other is planned in the
//! tenant's session by the engine (the guard, on the query runtime) with the declared parameter
//! types cast in ([`super::params`]), keeping its columns and parameter types. `Describe`
//! answers those, as the rows will be sent ([`super::rows`]). `Execute` decodes the bound
//! values with arrow-pg (text or binary) and runs the statement like a simple query, with the
//! values bound, its rows in the formats `Bind` asked for. Errors are the simple protocol's.

use std::fmt::Debug;
use std::sync::Arc;

use arrow::datatypes::{DataType, SchemaRef};
use async_trait::async_trait;
use datafusion::common::ParamValues;
use datafusion::logical_expr::LogicalPlan;
use datafusion::sql::sqlparser::ast::Statement;
use datafusion_postgres::arrow_pg::datatypes::df::deserialize_parameters_with_server_types;
use datafusion_postgres::arrow_pg::datatypes::into_pg_type;
use datafusion_postgres::pgwire;
use futures::Sink;
use pgwire::api::portal::{Format, Portal};
use pgwire::api::query::ExtendedQueryHandler;
use pgwire::api::results::{FieldInfo, Response};
use pgwire::api::stmt::QueryParser;
use pgwire::api::store::PortalStore;
use pgwire::api::{ClientInfo, ClientPortalStore, Type};
use pgwire::error::{PgWireError, PgWireResult};
use pgwire::messages::PgWireBackendMessage;

use super::handler::{user_error, Handler, HOOKS};
use super::params;
use crate::Error;

/// A statement prepared by `Parse`.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// The statement as it runs, with `$1`, `$2`, … in place.
    sql: String,
    /// A statement the hooks answer (`SET`, `SHOW`, transactions) rather than the engine.
    hooked: Option<Arc<Statement>>,
    /// The columns of its rows, as planned.
    schema: SchemaRef,
    /// Its parameters' types by position; `None` where nothing tells.
    params: Vec<Option<DataType>>,
}

/// The values bound to `portal`'s parameters, decoded by arrow-pg as the client declared them,
/// else as planned, else as text.
fn values(portal: &Portal<Prepared>) -> PgWireResult<ParamValues> {
    let planned = &portal.statement.statement.params;
    let count = portal.parameter_len();
    let types: Vec<Option<&DataType>> = (0..count)
        .map(|i| planned.get(i).and_then(Option::as_ref))
        .collect();
    // Given a type, arrow-pg keeps an untyped NULL rather than dropping it.
    let text: Vec<Option<&Type>> = types
        .iter()
        .map(|t| t.is_none().then_some(&Type::TEXT))
        .collect();
    let values = deserialize_parameters_with_server_types(portal, &types, &text)?;
    match &values {
        ParamValues::List(list) if list.len() != count => {
            Err(user_error(&Error::BadRequest(format!(
                "{} of the {count} parameters could not be decoded: a NULL of a type that is \
                 not supported",
                count - list.len()
            ))))
        }
        _ => Ok(values),
    }
}

/// What `Describe` needs of a planned statement.
fn described(plan: &LogicalPlan) -> crate::Result<(SchemaRef, Vec<Option<DataType>>)> {
    let schema = Arc::new(plan.schema().as_arrow().clone());
    Ok((schema, params::planned(plan)?))
}

#[async_trait]
impl QueryParser for Handler {
    type Statement = Prepared;

    async fn parse_sql<C>(
        &self,
        client: &C,
        sql: &str,
        types: &[Option<Type>],
    ) -> PgWireResult<Option<Prepared>>
    where
        C: ClientInfo + Unpin + Send + Sync,
    {
        let _running = self.running();
        let mut statements = self.statements(client.metadata(), sql)?;
        let statement = match statements.len() {
            0 => return Ok(None),
            1 => statements.remove(0),
            _ => {
                return Err(user_error(&Error::BadRequest(
                    "cannot insert multiple commands into a prepared statement".into(),
                )))
            }
        };
        let ctx = self.session(client.metadata()).await?;
        let info: &(dyn ClientInfo + Send + Sync) = client;
        for hook in HOOKS {
            if let Some(plan) = hook
                .handle_extended_parse_query(&statement, &ctx, info)
                .await
            {
                return Ok(Some(Prepared {
                    sql: statement.to_string(),
                    schema: Arc::new(plan?.schema().as_arrow().clone()),
                    params: Vec::new(),
                    hooked: Some(Arc::new(statement)),
                }));
            }
        }
        // Re-rendered without its comments, but with its placement hint.
        let sql = crate::distributed::route::with_hint(
            params::declare(statement, types).to_string(),
            crate::distributed::route::hint(sql),
        );
        let (schema, params) = (self.engine().describe_in(ctx, &sql, described))
            .await
            .map_err(|e| user_error(&e))?;
        Ok(Some(Prepared {
            sql,
            hooked: None,
            schema,
            params,
        }))
    }

    fn get_parameter_types(&self, prepared: &Prepared) -> PgWireResult<Vec<Type>> {
        (prepared.params.iter())
            .map(|t| t.as_ref().map_or(Ok(Type::UNKNOWN), into_pg_type))
            .collect()
    }

    fn get_result_schema(
        &self,
        prepared: &Prepared,
        format: Option<&Format>,
    ) -> PgWireResult<Vec<FieldInfo>> {
        let format = format.unwrap_or(&Format::UnifiedText);
        Ok(super::rows::fields(&prepared.schema, format, None)?.info)
    }
}

#[async_trait]
impl ExtendedQueryHandler for Handler {
    type Statement = Prepared;
    type QueryParser = Handler;

    fn query_parser(&self) -> Arc<Handler> {
        Arc::new(self.clone())
    }

    /// All rows at once: pgwire holds them back beyond `max_rows` and suspends the portal.
    async fn do_query<C>(
        &self,
        client: &mut C,
        portal: &Portal<Prepared>,
        _max_rows: usize,
    ) -> PgWireResult<Response>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Prepared>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let _running = self.running();
        let prepared = &portal.statement.statement;
        let ctx = self.session(client.metadata()).await?;
        let hooked = match &prepared.hooked {
            Some(statement) => self.hooked(statement, &ctx, client).await,
            None => None,
        };
        let response = match hooked {
            Some(response) => response?,
            None => {
                let values = values(portal)?;
                let format = &portal.result_column_format;
                (self.query(ctx, &prepared.sql, values, format, client.metadata())).await?
            }
        };
        match response {
            // Failed like any other step, so that pgwire skips to the next `Sync`.
            Response::Error(info) => Err(PgWireError::UserError(info)),
            response => Ok(response),
        }
    }
}
