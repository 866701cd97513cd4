//! The statements of a connection, by the simple query protocol here and by the extended one in
//! [`super::extended`], through the same steps.
//!
//! Data flow: a query string is bounded by [`crate::guard::check_script`] before any other
//! parser sees it; Grafana's search path subquery is answered ([`super::search_path`]); then
//! datafusion-pg-catalog's parser rewrites the Postgres-isms DataFusion lacks (its blacklist
//! answers a few catalog queries of psql and others outright). `SET`, `SHOW` and transaction
//! statements are answered by datafusion-postgres's hooks, for the connection only; every other
//! statement runs as a read-only query through [`QueryEngine::sql_in`] — the guard again, the
//! query runtime, the timeout and the query memory — in the tenant's Postgres session
//! ([`super::catalog`]), and its rows are encoded by arrow-pg ([`super::rows`]). By the simple
//! protocol, the first failing statement ends the string, as in Postgres.

use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::common::ParamValues;
use datafusion::prelude::SessionContext;
use datafusion::sql::sqlparser::ast::{Set, Statement};
use datafusion_postgres::datafusion_pg_catalog::sql::PostgresCompatibilityParser;
use datafusion_postgres::hooks::set_show::SetShowHook;
use datafusion_postgres::hooks::transactions::TransactionStatementHook;
use datafusion_postgres::pgwire;
use datafusion_postgres::QueryHook;
use futures::Sink;
use pgwire::api::portal::Format;
use pgwire::api::query::SimpleQueryHandler;
use pgwire::api::results::{Response, Tag};
use pgwire::api::store::PortalStore;
use pgwire::api::{ClientInfo, ClientPortalStore, METADATA_USER};
use pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use pgwire::messages::PgWireBackendMessage;
use pgwire::types::format::FormatOptions;

use super::catalog::Sessions;
use crate::{guard, Error, QueryEngine};

/// datafusion-postgres's hooks that answer `SET`, `SHOW` and transaction statements.
pub(super) const HOOKS: [&dyn QueryHook; 2] = [&SetShowHook, &TransactionStatementHook];

/// Settings a client may change for its connection (datafusion-postgres keeps them in the
/// connection's metadata); other `SET`s are acknowledged and ignored, except the engine's own.
const CONNECTION_SETTINGS: &[&str] = &[
    "statement_timeout",
    "datestyle",
    "bytea_output",
    "intervalstyle",
    "application_name",
    "extra_float_digits",
    "search_path",
];

/// Runs the statements of every connection of the listener, by either protocol.
#[derive(Clone)]
pub struct Handler {
    engine: QueryEngine,
    sessions: Arc<Sessions>,
    parser: Arc<PostgresCompatibilityParser>,
    /// Query strings and prepared statements being answered, for shutdown to wait for.
    running: Arc<AtomicUsize>,
}

impl Handler {
    pub fn new(engine: QueryEngine, running: Arc<AtomicUsize>) -> Self {
        Self {
            engine,
            sessions: Arc::new(Sessions::default()),
            parser: Arc::new(PostgresCompatibilityParser::new()),
            running,
        }
    }

    pub(super) fn engine(&self) -> &QueryEngine {
        &self.engine
    }

    pub(super) fn running(&self) -> Running {
        Running::enter(&self.running)
    }

    /// The statements of `text`, bounded by the guard before any other parser sees it, with
    /// Grafana's search path subquery answered and the Postgres-isms DataFusion lacks rewritten.
    pub(super) fn statements(
        &self,
        metadata: &HashMap<String, String>,
        text: &str,
    ) -> PgWireResult<Vec<Statement>> {
        guard::check_script(text).map_err(|e| user_error(&e))?;
        let user = metadata.get(METADATA_USER).cloned().unwrap_or_default();
        let search_path = super::auth::parameters().search_path;
        let text = super::search_path::resolve(text, &search_path, &user);
        (self.parser.parse(&text)).map_err(|e| user_error(&Error::BadRequest(format!("SQL: {e}"))))
    }

    /// The Postgres session of the connection's tenant.
    pub(super) async fn session(
        &self,
        metadata: &HashMap<String, String>,
    ) -> PgWireResult<SessionContext> {
        let tenant = super::auth::tenant(metadata)?;
        (self.sessions.get(&self.engine, &tenant).await).map_err(|e| user_error(&e))
    }

    /// Runs one read-only statement with `$1`, `$2`, … bound to `params`; its rows in `format`.
    pub(super) async fn query(
        &self,
        ctx: SessionContext,
        sql: &str,
        params: ParamValues,
        format: &Format,
        metadata: &HashMap<String, String>,
    ) -> PgWireResult<Response> {
        let options = Arc::new(FormatOptions::from_client_metadata(metadata));
        let result = (self.engine.sql_in(ctx, sql, params).await).map_err(|e| user_error(&e))?;
        super::rows::response(result, format, options).map(Response::Query)
    }

    async fn simple<C>(&self, client: &mut C, text: &str) -> Vec<Response>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let statements = match self.statements(client.metadata(), text) {
            Ok(statements) => statements,
            Err(e) => return vec![error_response(e)],
        };
        if statements.is_empty() {
            return vec![Response::EmptyQuery];
        }
        let ctx = match self.session(client.metadata()).await {
            Ok(ctx) => ctx,
            Err(e) => return vec![error_response(e)],
        };
        // Statements are re-rendered without their comments: a placement hint applies to each.
        let hint = crate::distributed::route::hint(text);
        let mut responses = Vec::with_capacity(statements.len());
        for statement in statements {
            let response = match self.hooked(&statement, &ctx, client).await {
                Some(response) => response,
                None => {
                    let sql = crate::distributed::route::with_hint(statement.to_string(), hint);
                    let (params, format) = (ParamValues::List(vec![]), Format::UnifiedText);
                    (self.query(ctx.clone(), &sql, params, &format, client.metadata())).await
                }
            };
            let response = response.unwrap_or_else(error_response);
            let stop = matches!(response, Response::Error(_));
            responses.push(response);
            if stop {
                break;
            }
        }
        responses
    }

    /// The answer of datafusion-postgres's hooks to `SET`, `SHOW` and transaction statements.
    pub(super) async fn hooked<C>(
        &self,
        statement: &Statement,
        ctx: &SessionContext,
        client: &mut C,
    ) -> Option<PgWireResult<Response>>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        if let Statement::Set(set) = statement {
            match set {
                Set::SingleAssignment {
                    scope: None,
                    variable,
                    ..
                } if CONNECTION_SETTINGS
                    .contains(&variable.to_string().to_lowercase().as_str()) => {}
                Set::SetTimeZone { local: false, .. } => {}
                Set::SingleAssignment { variable, .. }
                    if variable
                        .to_string()
                        .to_lowercase()
                        .starts_with("datafusion.") =>
                {
                    return Some(Ok(failed(&Error::Forbidden(format!(
                        "the engine's settings cannot be changed: {variable}"
                    )))));
                }
                // Nothing else is kept: the session is shared by the tenant's connections.
                _ => return Some(Ok(Response::Execution(Tag::new("SET")))),
            }
        }
        for hook in HOOKS {
            if let Some(response) = hook.handle_simple_query(statement, ctx, client).await {
                return Some(response);
            }
        }
        None
    }
}

#[async_trait]
impl SimpleQueryHandler for Handler {
    async fn do_query<C>(&self, client: &mut C, query: &str) -> PgWireResult<Vec<Response>>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let _running = self.running();
        Ok(self.simple(client, query).await)
    }
}

/// Counts a query string or prepared statement as running while it lives.
pub(super) struct Running(Arc<AtomicUsize>);

impl Running {
    fn enter(count: &Arc<AtomicUsize>) -> Self {
        count.fetch_add(1, Ordering::SeqCst);
        Self(Arc::clone(count))
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// `e` as the client sees it: its class's SQLSTATE and its message.
pub(super) fn error_info(e: &Error) -> Box<ErrorInfo> {
    Box::new(ErrorInfo::new(
        "ERROR".to_owned(),
        e.sqlstate().to_owned(),
        e.to_string(),
    ))
}

pub(super) fn user_error(e: &Error) -> PgWireError {
    PgWireError::UserError(error_info(e))
}

fn failed(e: &Error) -> Response {
    Response::Error(error_info(e))
}

fn error_response(e: PgWireError) -> Response {
    match e {
        PgWireError::UserError(info) => Response::Error(info),
        other => failed(&Error::Internal(other.to_string())),
    }
}
