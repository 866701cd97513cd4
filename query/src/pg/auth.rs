//! Who a Postgres client is: its tenant, and whether it knows the password.
//!
//! Data flow: the startup message names a user (and maybe `options`); [`Admit`] refuses the
//! connection unless they name a valid tenant ([`tenant`]: the `cairn.tenant` option when given,
//! else the user name), then hands the startup to the authentication proper: with auth on
//! (`--auth-tokens`), a cleartext password that is a token of role read or admin, checked by
//! [`cairn_auth`] for that tenant ([`TokenLogin`]; the password crosses the wire as it is, so
//! TLS should be on); otherwise pgwire's own handlers, trust when no password is configured,
//! SCRAM-SHA-256 against [`Password`] when one is. Queries find the tenant again in the
//! connection's startup parameters.

use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::{Arc, LazyLock};

use async_trait::async_trait;
use cairn_schema::tenant::Tenant;
use datafusion_postgres::pgwire;
use futures::{Sink, SinkExt};
use pgwire::api::auth::noop::NoopStartupHandler;
use pgwire::api::auth::sasl::scram::{gen_salted_password, ScramAuth, SCRAM_ITERATIONS};
use pgwire::api::auth::sasl::SASLAuthStartupHandler;
use pgwire::api::auth::{AuthSource, DefaultServerParameterProvider, LoginInfo, StartupHandler};
use pgwire::api::{
    ClientInfo, ConnectionGuard, ConnectionHandle, ConnectionManager, PgWireConnectionState,
    PidSecretKeyGenerator, RandomPidSecretKeyGenerator, METADATA_USER,
};
use pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use pgwire::messages::startup::Authentication;
use pgwire::messages::{PgWireBackendMessage, PgWireFrontendMessage};

/// The startup option naming the tenant, as in `options='-c cairn.tenant=acme'`.
pub const TENANT_OPTION: &str = "cairn.tenant";

/// The tenant a client named at startup: the `cairn.tenant` option of `options` when given,
/// else the user name.
pub fn tenant(parameters: &HashMap<String, String>) -> Result<Tenant, PgWireError> {
    let option = parameters
        .get("options")
        .and_then(|options| option(options, TENANT_OPTION));
    let name = option
        .or_else(|| parameters.get(METADATA_USER).map(String::as_str))
        .unwrap_or_default();
    Tenant::new(name).map_err(|e| {
        fatal(
            "28000",
            format!("{name:?} is not a tenant: {e} (the user name, or the {TENANT_OPTION} option, names the tenant)"),
        )
    })
}

/// The value of `-c key=value` (or `--key=value`) in a startup `options` string.
fn option<'a>(options: &'a str, key: &str) -> Option<&'a str> {
    let mut words = options.split_whitespace();
    while let Some(word) = words.next() {
        let setting = match word {
            "-c" => words.next(),
            w => w.strip_prefix("--").or_else(|| w.strip_prefix("-c")),
        };
        if let Some((k, v)) = setting.and_then(|s| s.split_once('=')) {
            if k == key {
                return Some(v);
            }
        }
    }
    None
}

fn fatal(code: &str, message: String) -> PgWireError {
    PgWireError::UserError(Box::new(ErrorInfo::new(
        "FATAL".to_owned(),
        code.to_owned(),
        message,
    )))
}

/// The server parameters clients are told at startup (pgwire's defaults), and that
/// `current_setting` reads.
pub fn parameters() -> DefaultServerParameterProvider {
    let mut parameters = DefaultServerParameterProvider::default();
    parameters.search_path = "\"$user\", public".to_owned();
    parameters.default_transaction_read_only = true;
    parameters.is_superuser = false;
    parameters
}

/// The one password of the listener, salted once as Postgres stores a SCRAM verifier, for
/// pgwire's SCRAM exchange.
#[derive(Debug)]
pub struct Password {
    salt: Vec<u8>,
    salted: Vec<u8>,
}

impl Password {
    pub fn new(password: &str) -> Self {
        let salt = uuid::Uuid::now_v7().as_bytes().to_vec();
        let salted = gen_salted_password(password, &salt, SCRAM_ITERATIONS);
        Self { salt, salted }
    }
}

#[async_trait]
impl AuthSource for Password {
    async fn get_password(&self, _login: &LoginInfo) -> PgWireResult<pgwire::api::auth::Password> {
        Ok(pgwire::api::auth::Password::new(
            Some(self.salt.clone()),
            self.salted.clone(),
        ))
    }
}

/// Trust: no password asked.
pub struct Trust(Arc<ConnectionManager>);

impl NoopStartupHandler for Trust {
    fn connection_manager(&self) -> Option<Arc<ConnectionManager>> {
        Some(Arc::clone(&self.0))
    }
}

/// With auth on: asks for a cleartext password and admits the connection if it is a token that
/// may read the tenant the client named.
pub struct TokenLogin {
    auth: cairn_auth::Auth,
    manager: Arc<ConnectionManager>,
}

static PIDS: LazyLock<RandomPidSecretKeyGenerator> =
    LazyLock::new(RandomPidSecretKeyGenerator::default);

#[async_trait]
impl StartupHandler for TokenLogin {
    async fn on_startup<C>(
        &self,
        client: &mut C,
        message: PgWireFrontendMessage,
    ) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        match message {
            PgWireFrontendMessage::Startup(ref startup) => {
                pgwire::api::auth::protocol_negotiation(client, startup).await?;
                pgwire::api::auth::save_startup_parameters_to_metadata(client, startup);
                client.set_state(PgWireConnectionState::AuthenticationInProgress);
                client
                    .send(PgWireBackendMessage::Authentication(
                        Authentication::CleartextPassword,
                    ))
                    .await?;
            }
            PgWireFrontendMessage::PasswordMessageFamily(message) => {
                let password = message.into_password()?.password;
                let tenant = tenant(client.metadata())?;
                let peer = Some(client.socket_addr().ip());
                if let Err(e) = self.auth.resolve_password(&password, &tenant, peer).await {
                    return Err(refused(&e, &startup_user(client)));
                }
                let (pid, secret_key) = PIDS.generate(client);
                client.set_pid_and_secret_key(pid, secret_key.clone());
                let (handle, guard) = self.manager.register(pid, secret_key);
                client
                    .session_extensions()
                    .insert::<Arc<ConnectionHandle>>(handle);
                client.session_extensions().insert::<ConnectionGuard>(guard);
                pgwire::api::auth::finish_authentication(client, &parameters()).await?;
            }
            _ => {}
        }
        Ok(())
    }
}

/// The user the client named at startup (empty when it named none).
fn startup_user<C: ClientInfo>(client: &C) -> String {
    client
        .metadata()
        .get(METADATA_USER)
        .cloned()
        .unwrap_or_default()
}

/// A refused login in Postgres's terms.
fn refused(error: &cairn_auth::AuthError, user: &str) -> PgWireError {
    use cairn_auth::AuthError as E;
    match error {
        E::Unauthenticated(why) => fatal(
            "28P01",
            format!("password authentication failed for user \"{user}\": {why}"),
        ),
        E::Forbidden(why) => fatal("28000", why.clone()),
        E::RateLimited { .. } => fatal("53300", error.to_string()),
        E::BadRequest(why) => fatal("28000", why.clone()),
        E::TokenFile { .. } | E::Internal(_) => {
            tracing::warn!(%error, "postgres login failed on our side");
            fatal("XX000", "internal error".to_owned())
        }
    }
}

/// Admits a connection naming a valid tenant to `inner`, the authentication proper.
pub struct Admit<H>(pub H);

#[async_trait]
impl<H: StartupHandler> StartupHandler for Admit<H> {
    async fn on_startup<C>(
        &self,
        client: &mut C,
        message: PgWireFrontendMessage,
    ) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        if let PgWireFrontendMessage::Startup(startup) = &message {
            let parameters: HashMap<String, String> =
                startup.parameters.clone().into_iter().collect();
            tenant(&parameters)?;
        }
        match self.0.on_startup(client, message).await {
            // In Postgres's words, with the user of the startup (SCRAM's own is empty).
            Err(PgWireError::InvalidPassword(_)) => {
                let user = startup_user(client);
                Err(fatal(
                    "28P01",
                    format!("password authentication failed for user \"{user}\""),
                ))
            }
            other => other,
        }
    }
}

/// The authentication of one connection: SCRAM-SHA-256 with `password` if there is one, trust
/// otherwise. Connections register with `manager`, so that clients can cancel their queries.
pub fn startup(
    password: Option<&Arc<Password>>,
    auth: &cairn_auth::Auth,
    manager: &Arc<ConnectionManager>,
) -> Startup {
    if auth.is_on() {
        return Startup::Token(Admit(TokenLogin {
            auth: auth.clone(),
            manager: Arc::clone(manager),
        }));
    }
    match password {
        Some(password) => {
            let scram = ScramAuth::new(Arc::clone(password) as Arc<dyn AuthSource>);
            Startup::Scram(Admit(
                SASLAuthStartupHandler::new(Arc::new(parameters()))
                    .with_scram(scram)
                    .with_connection_manager(Arc::clone(manager)),
            ))
        }
        None => Startup::Trust(Admit(Trust(Arc::clone(manager)))),
    }
}

/// Either way of authenticating, as one handler type.
pub enum Startup {
    Trust(Admit<Trust>),
    Scram(Admit<SASLAuthStartupHandler<DefaultServerParameterProvider>>),
    Token(Admit<TokenLogin>),
}

#[async_trait]
impl StartupHandler for Startup {
    async fn on_startup<C>(
        &self,
        client: &mut C,
        message: PgWireFrontendMessage,
    ) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        match self {
            Startup::Trust(h) => h.on_startup(client, message).await,
            Startup::Scram(h) => h.on_startup(client, message).await,
            Startup::Token(h) => h.on_startup(client, message).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn the_tenant_is_the_option_else_the_user() {
        let of = |pairs: &[(&str, &str)]| tenant(&params(pairs)).map(|t| t.to_string());
        assert_eq!(of(&[("user", "acme")]).unwrap(), "acme");
        assert_eq!(
            of(&[("user", "grafana"), ("options", "-c cairn.tenant=globex")]).unwrap(),
            "globex"
        );
        assert_eq!(
            of(&[
                ("user", "grafana"),
                ("options", "--cairn.tenant=globex -c x=y")
            ])
            .unwrap(),
            "globex"
        );
        assert_eq!(
            of(&[("user", "acme"), ("options", "-c search_path=public")]).unwrap(),
            "acme"
        );
        assert!(of(&[("user", "../etc")]).is_err());
        assert!(of(&[]).is_err());
    }
}
