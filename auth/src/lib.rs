//! `cairn-auth`: who a request is, for every listener (OTLP/gRPC, OTLP/HTTP, the query API, the
//! Postgres wire).
//!
//! Data flow: each surface hands [`Auth::resolve`] the values of its `Authorization` and
//! `X-Scope-OrgID` headers (gRPC metadata, the Postgres password and user name) and the peer's
//! address, and gets a [`Principal`] (tenant and role) or an [`AuthError`] to answer with.
//! Either header given twice is refused, auth on or off.
//!
//! With auth off (no `--auth-tokens`) the principal is the tenant the header names (default
//! `default`) with every right. With it on, the bearer token `cairn_<id>_<secret>` ([`token`])
//! is looked up by id in the token file ([`file`]) and its secret checked against the argon2id
//! hash there, once per distinct token on a blocking thread: successful checks are remembered
//! in a bounded cache keyed by a BLAKE3 hash of the whole token, emptied whenever the file is
//! re-read (on SIGHUP, and when its modification time changes, looked at every
//! [`POLL_INTERVAL`]). A file that no longer parses keeps the tokens in force and logs an
//! error. Checks the cache does not answer count against the source address's quota
//! ([`limiter`]). The role must allow the surface ([`Need`]), and an ingest or read token is
//! bound to its tenant: a tenant header naming another is refused (403).

pub mod error;
pub mod file;
pub mod http;
pub mod limiter;
mod metrics;
pub mod token;

use std::net::IpAddr;
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

use cairn_schema::tenant::{single_value, Tenant, TENANT_HEADER};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

pub use error::{AuthError, Failure, Result};
use file::{Entry, TokenFile};
use limiter::Limiter;
pub use token::Token;

/// How often the token file's modification time is looked at.
pub const POLL_INTERVAL: Duration = Duration::from_secs(2);
/// Verified tokens remembered at most.
const CACHE_ENTRIES: usize = 16_384;
/// Argon2 verifications running at once (each takes a blocking thread and ~19 MiB).
const VERIFICATIONS: usize = 4;

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// OTLP export of its tenant's spans.
    Ingest,
    /// SQL, the query and Tempo API, the UI and the Postgres wire, of its tenant.
    Read,
    /// Everything, for every tenant (named with `X-Scope-OrgID` or the Postgres user name).
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Ingest => "ingest",
            Role::Read => "read",
            Role::Admin => "admin",
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a surface needs of a request's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// OTLP export: ingest or admin.
    Ingest,
    /// Reading (query API, Postgres): read or admin.
    Read,
}

/// Who a request is: the tenant it is scoped to and its role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub tenant: Tenant,
    pub role: Role,
}

/// The settings of authentication.
#[derive(Debug, Clone, clap::Args)]
pub struct AuthConfig {
    /// Token file (TOML, managed with `cairn token`): with it every listener requires a bearer
    /// token bound to a tenant and a role; without it there is no authentication and
    /// `X-Scope-OrgID` names the tenant.
    #[arg(long, env = "CAIRN_AUTH_TOKENS")]
    pub auth_tokens: Option<PathBuf>,
    /// Token checks not answered from the cache of verified tokens allowed per minute from one
    /// source address (IPv6: one /64), in a burst of as many; beyond them 429.
    #[arg(long, env = "CAIRN_AUTH_ATTEMPTS_PER_MINUTE", default_value = "30", value_parser = cairn_config::parse::positive)]
    pub auth_attempts_per_minute: usize,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            auth_tokens: None,
            auth_attempts_per_minute: 30,
        }
    }
}

/// Authentication of every listener of a process: off, or the tokens of a file. Cheap to clone.
#[derive(Clone, Default)]
pub struct Auth(Option<Arc<Inner>>);

struct Inner {
    path: PathBuf,
    tokens: RwLock<Loaded>,
    verified: Mutex<lru::LruCache<[u8; 32], Arc<Entry>>>,
    limiter: Limiter,
    verifications: Semaphore,
}

/// The tokens in force, by id, and what file they came from.
struct Loaded {
    by_id: std::collections::HashMap<String, Arc<Entry>>,
    stamp: Option<(SystemTime, u64)>,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            None => f.write_str("Auth(off)"),
            Some(inner) => write!(f, "Auth({})", inner.path.display()),
        }
    }
}

impl Auth {
    /// No authentication.
    pub fn off() -> Self {
        Self(None)
    }

    /// Authentication as configured: off without a token file, else its tokens (a file that
    /// cannot be read or parsed is an error).
    pub fn new(config: &AuthConfig) -> Result<Self> {
        let Some(path) = &config.auth_tokens else {
            return Ok(Self::off());
        };
        let (file, stamp) = read(path)?;
        metrics::init();
        Ok(Self(Some(Arc::new(Inner {
            path: path.clone(),
            tokens: RwLock::new(Loaded::of(file, stamp)),
            verified: Mutex::new(lru::LruCache::new(
                NonZeroUsize::new(CACHE_ENTRIES).expect("positive"),
            )),
            limiter: Limiter::new(config.auth_attempts_per_minute),
            verifications: Semaphore::new(VERIFICATIONS),
        }))))
    }

    pub fn is_on(&self) -> bool {
        self.0.is_some()
    }

    /// Tokens in force (not revoked, not expired); 0 with auth off.
    pub fn active_tokens(&self) -> usize {
        let Some(inner) = &self.0 else { return 0 };
        let now = Utc::now();
        inner
            .tokens
            .read()
            .expect("tokens")
            .by_id
            .values()
            .filter(|e| usable(e, now).is_ok())
            .count()
    }

    /// Says at startup how requests are authenticated: with auth off, a warning naming every
    /// listener that is not on a loopback address (anyone who reaches it may read and write any
    /// tenant); with it on, how many tokens are in force.
    pub fn announce(&self, listeners: &[std::net::SocketAddr]) {
        match &self.0 {
            None => {
                let open: Vec<String> = listeners
                    .iter()
                    .filter(|a| !a.ip().is_loopback())
                    .map(ToString::to_string)
                    .collect();
                if !open.is_empty() {
                    tracing::warn!(
                        listeners = %open.join(", "),
                        "AUTHENTICATION IS OFF on listeners reachable from other hosts: anyone who reaches them can write and read every tenant. Set --auth-tokens (CAIRN_AUTH_TOKENS), or listen on 127.0.0.1"
                    );
                }
            }
            Some(inner) => tracing::info!(
                path = %inner.path.display(),
                tokens = self.active_tokens(),
                "authentication on: every request needs a bearer token"
            ),
        }
    }

    /// Re-reads the token file; one that fails keeps the tokens in force and logs an error.
    pub fn reload(&self) {
        let Some(inner) = &self.0 else { return };
        match read(&inner.path) {
            Ok((file, stamp)) => {
                let loaded = Loaded::of(file, stamp);
                let count = loaded.by_id.len();
                *inner.tokens.write().expect("tokens") = loaded;
                inner.verified.lock().expect("cache").clear();
                tracing::info!(path = %inner.path.display(), tokens = count, "token file re-read");
            }
            Err(e) => {
                // Not reading it again until it changes.
                inner.tokens.write().expect("tokens").stamp = stamp(&inner.path);
                tracing::error!(error = %e, "token file not re-read; the tokens read before stay in force");
            }
        }
    }

    /// Re-reads the token file on SIGHUP and when it changes, until `shutdown`; forgets
    /// refilled rate-limit sources every minute.
    pub fn watch(&self, shutdown: CancellationToken) {
        let Some(inner) = self.0.clone() else { return };
        let auth = self.clone();
        let mut wakeups = cairn_net::Wakeups::new(Some(POLL_INTERVAL));
        tokio::spawn(async move {
            let mut forget = tokio::time::interval(Duration::from_secs(60));
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    wakeup = wakeups.next() => match wakeup {
                        cairn_net::Wakeup::Hangup => {
                            tracing::info!("SIGHUP: re-reading the token file");
                            auth.reload();
                        }
                        cairn_net::Wakeup::Tick => {
                            let seen = inner.tokens.read().expect("tokens").stamp;
                            if stamp(&inner.path) != seen {
                                auth.reload();
                            }
                        }
                    },
                    _ = forget.tick() => inner.limiter.forget_refilled(),
                }
            }
        });
    }

    /// [`Self::resolve`] for an HTTP request (or gRPC call) with these `headers`.
    pub async fn resolve_headers(
        &self,
        headers: &::http::HeaderMap,
        peer: Option<IpAddr>,
        need: Need,
    ) -> Result<Principal> {
        self.resolve(
            headers
                .get_all(::http::header::AUTHORIZATION)
                .iter()
                .map(|v| v.as_bytes()),
            headers.get_all(TENANT_HEADER).iter().map(|v| v.as_bytes()),
            peer,
            need,
        )
        .await
    }

    /// The principal of a request: from the values of its `Authorization` header (gRPC:
    /// `authorization` metadata) and of its `X-Scope-OrgID`, and its peer's address. The one
    /// function every surface asks.
    pub async fn resolve<'a>(
        &self,
        authorization: impl IntoIterator<Item = &'a [u8]>,
        tenant: impl IntoIterator<Item = &'a [u8]>,
        peer: Option<IpAddr>,
        need: Need,
    ) -> Result<Principal> {
        let authorization = single_value(authorization, "Authorization")?;
        let tenant = single_value(tenant, "X-Scope-OrgID")?;
        let tenant_given = tenant.is_some_and(|v| !v.trim_ascii().is_empty());
        let named = Tenant::from_header_values(tenant)?;
        let Some(inner) = &self.0 else {
            return Ok(Principal {
                tenant: named,
                role: Role::Admin,
            });
        };
        let result = async {
            let token = bearer(authorization)?;
            inner.token_entry(token, peer).await
        }
        .await;
        let entry = match result {
            Ok(entry) => entry,
            Err(e) => {
                metrics::refused(&e);
                return Err(e);
            }
        };
        let principal = permit(&entry, named, tenant_given, need);
        if let Err(e) = &principal {
            metrics::refused(e);
        }
        principal
    }

    /// The principal of a Postgres login: the password is the token, the tenant the one the
    /// client named (user name or `cairn.tenant` option).
    pub async fn resolve_password(
        &self,
        password: &str,
        tenant: &Tenant,
        peer: Option<IpAddr>,
    ) -> Result<Principal> {
        let Some(inner) = &self.0 else {
            return Ok(Principal {
                tenant: tenant.clone(),
                role: Role::Admin,
            });
        };
        let entry = inner.token_entry(Token::parse(password.trim()), peer).await;
        let principal = entry.and_then(|e| permit(&e, tenant.clone(), true, Need::Read));
        if let Err(e) = &principal {
            metrics::refused(e);
        }
        principal
    }
}

/// The token of an `Authorization: Bearer <token>` value.
fn bearer(value: Option<&[u8]>) -> Result<Option<Token>> {
    let value = value.ok_or(AuthError::Unauthenticated(Failure::Missing))?;
    let text = std::str::from_utf8(value)
        .map_err(|_| AuthError::Unauthenticated(Failure::NotBearer))?
        .trim();
    let (scheme, token) = text
        .split_once(' ')
        .ok_or(AuthError::Unauthenticated(Failure::NotBearer))?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(AuthError::Unauthenticated(Failure::NotBearer));
    }
    Ok(Token::parse(token.trim()))
}

impl Inner {
    /// The file's entry for `token` (`None`: presented but not of a token's shape), from the
    /// cache or checked against its hash.
    async fn token_entry(&self, token: Option<Token>, peer: Option<IpAddr>) -> Result<Arc<Entry>> {
        let Some(token) = token else {
            return self.unparsable(peer);
        };
        let digest = token.digest();
        let cached = self.verified.lock().expect("cache").get(&digest).cloned();
        if let Some(entry) = cached {
            usable(&entry, Utc::now())?;
            return Ok(entry);
        }
        self.attempt(peer)?;
        let entry = self
            .tokens
            .read()
            .expect("tokens")
            .by_id
            .get(token.id())
            .cloned();
        let Some(entry) = entry else {
            return Err(AuthError::Unauthenticated(Failure::Invalid));
        };
        let _permit = self
            .verifications
            .acquire()
            .await
            .map_err(|e| AuthError::Internal(e.to_string()))?;
        let hash = entry.hash.clone();
        let verified = tokio::task::spawn_blocking(move || token.verify(&hash))
            .await
            .map_err(|e| AuthError::Internal(format!("verifying a token: {e}")))?;
        if !verified {
            return Err(AuthError::Unauthenticated(Failure::Invalid));
        }
        usable(&entry, Utc::now())?;
        // Only if the file was not re-read meanwhile (the entry is still the one in force).
        let current = self.tokens.read().expect("tokens");
        if current
            .by_id
            .get(&entry.id)
            .is_some_and(|e| Arc::ptr_eq(e, &entry))
        {
            self.verified
                .lock()
                .expect("cache")
                .put(digest, Arc::clone(&entry));
        }
        Ok(entry)
    }

    /// A credential that is not of a token's shape: a failed login all the same.
    fn unparsable(&self, peer: Option<IpAddr>) -> Result<Arc<Entry>> {
        self.attempt(peer)?;
        Err(AuthError::Unauthenticated(Failure::Invalid))
    }

    fn attempt(&self, peer: Option<IpAddr>) -> Result<()> {
        self.limiter.attempt(peer).map_err(|retry_after_secs| {
            metrics::rate_limited();
            AuthError::RateLimited { retry_after_secs }
        })
    }
}

/// Whether an entry is in force at `now`.
fn usable(entry: &Entry, now: DateTime<Utc>) -> Result<()> {
    if entry.revoked.is_some() {
        return Err(AuthError::Unauthenticated(Failure::Revoked));
    }
    if entry.expires.is_some_and(|at| at <= now) {
        return Err(AuthError::Unauthenticated(Failure::Expired));
    }
    Ok(())
}

/// The principal of a verified token for a request naming `named` (`given`: named explicitly).
fn permit(entry: &Entry, named: Tenant, given: bool, need: Need) -> Result<Principal> {
    let allowed = matches!(
        (entry.role, need),
        (Role::Admin, _) | (Role::Ingest, Need::Ingest) | (Role::Read, Need::Read)
    );
    if !allowed {
        let what = match need {
            Need::Ingest => "export spans (needs role ingest or admin)",
            Need::Read => "read (needs role read or admin)",
        };
        return Err(AuthError::Forbidden(format!(
            "a token of role {} may not {what}",
            entry.role
        )));
    }
    if entry.role == Role::Admin {
        let tenant = if given { named } else { entry.tenant.clone() };
        return Ok(Principal {
            tenant,
            role: Role::Admin,
        });
    }
    if given && named != entry.tenant {
        return Err(AuthError::Forbidden(format!(
            "the token is for tenant \"{}\", not \"{named}\"",
            entry.tenant
        )));
    }
    Ok(Principal {
        tenant: entry.tenant.clone(),
        role: entry.role,
    })
}

impl Loaded {
    fn of(file: TokenFile, stamp: Option<(SystemTime, u64)>) -> Self {
        Self {
            by_id: file
                .tokens
                .into_iter()
                .map(|e| (e.id.clone(), Arc::new(e)))
                .collect(),
            stamp,
        }
    }
}

/// The file and its modification stamp as read.
fn read(path: &Path) -> Result<(TokenFile, Option<(SystemTime, u64)>)> {
    let before = stamp(path);
    Ok((TokenFile::load(path)?, before))
}

/// What tells one version of the file from another: modification time and length.
fn stamp(path: &Path) -> Option<(SystemTime, u64)> {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.modified().ok()?, meta.len()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(token: &Token, tenant: &str, role: Role) -> Entry {
        Entry {
            id: token.id().to_owned(),
            tenant: Tenant::new(tenant).unwrap(),
            role,
            name: None,
            created: Utc::now(),
            expires: None,
            revoked: None,
            hash: token.hash().unwrap(),
        }
    }

    fn bearer(token: &Token) -> String {
        format!("Bearer {}", token.reveal())
    }

    async fn resolve(
        auth: &Auth,
        authorization: &[&str],
        tenant: &[&str],
        need: Need,
    ) -> Result<Principal> {
        auth.resolve(
            authorization.iter().map(|v| v.as_bytes()),
            tenant.iter().map(|v| v.as_bytes()),
            Some("192.0.2.1".parse().unwrap()),
            need,
        )
        .await
    }

    #[tokio::test]
    async fn off_names_the_tenant_and_refuses_duplicates() {
        let auth = Auth::off();
        let p = resolve(&auth, &[], &["acme"], Need::Read).await.unwrap();
        assert_eq!((p.tenant.as_str(), p.role), ("acme", Role::Admin));
        let p = resolve(&auth, &["Bearer x"], &[], Need::Ingest)
            .await
            .unwrap();
        assert_eq!(p.tenant.as_str(), "default");
        for (a, t) in [(&["a", "b"][..], &[][..]), (&[][..], &["acme", "acme"][..])] {
            let e = resolve(&auth, a, t, Need::Read).await.unwrap_err();
            assert_eq!(e.http_status(), 400, "{e}");
            assert_eq!(e.grpc_code(), tonic::Code::InvalidArgument);
        }
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn tokens_roles_tenants_expiry_and_reload() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens.toml");
        let (ingest, read, admin, old) = (
            Token::generate(),
            Token::generate(),
            Token::generate(),
            Token::generate(),
        );
        let mut expired = entry(&old, "acme", Role::Read);
        expired.expires = Some(Utc::now() - chrono::Duration::seconds(1));
        let mut file = TokenFile {
            tokens: vec![
                entry(&ingest, "acme", Role::Ingest),
                entry(&read, "acme", Role::Read),
                entry(&admin, "ops", Role::Admin),
                expired,
            ],
        };
        file.save(&path).unwrap();
        let auth = Auth::new(&AuthConfig {
            auth_tokens: Some(path.clone()),
            auth_attempts_per_minute: 1000,
        })
        .unwrap();
        assert_eq!(auth.active_tokens(), 3);
        let ok = |r: Result<Principal>| {
            let p = r.unwrap();
            (p.tenant.to_string(), p.role)
        };
        let code = |r: Result<Principal>| r.unwrap_err().http_status().as_u16();
        assert_eq!(
            ok(resolve(&auth, &[&bearer(&ingest)], &[], Need::Ingest).await),
            ("acme".into(), Role::Ingest)
        );
        // Verified once, then answered from the cache.
        assert_eq!(auth.0.as_ref().unwrap().verified.lock().unwrap().len(), 1);
        assert_eq!(
            ok(resolve(&auth, &[&bearer(&ingest)], &["acme"], Need::Ingest).await),
            ("acme".into(), Role::Ingest)
        );
        assert_eq!(
            code(resolve(&auth, &[&bearer(&ingest)], &["globex"], Need::Ingest).await),
            403
        );
        assert_eq!(
            code(resolve(&auth, &[&bearer(&ingest)], &[], Need::Read).await),
            403
        );
        assert_eq!(
            code(resolve(&auth, &[&bearer(&read)], &[], Need::Ingest).await),
            403
        );
        assert_eq!(
            ok(resolve(&auth, &[&bearer(&admin)], &["globex"], Need::Read).await),
            ("globex".into(), Role::Admin)
        );
        assert_eq!(
            ok(resolve(&auth, &[&bearer(&admin)], &[], Need::Ingest).await),
            ("ops".into(), Role::Admin)
        );
        let e = resolve(&auth, &[&bearer(&old)], &[], Need::Read)
            .await
            .unwrap_err();
        assert_eq!(e.to_string(), "token expired");
        assert_eq!(
            e.http_headers()["www-authenticate"],
            "Bearer realm=\"cairn\""
        );
        let forged = format!("Bearer {}_{}", &read.reveal()[..22], "0".repeat(64));
        assert_eq!(
            resolve(&auth, &[&forged], &[], Need::Read)
                .await
                .unwrap_err()
                .to_string(),
            "invalid token"
        );
        assert_eq!(code(resolve(&auth, &[], &[], Need::Read).await), 401);
        let password = auth
            .resolve_password(read.reveal(), &Tenant::new("acme").unwrap(), None)
            .await;
        assert_eq!(ok(password), ("acme".into(), Role::Read));

        // Revoked in the file: in force once re-read, and the cache forgets it.
        file.tokens[0].revoked = Some(Utc::now());
        file.save(&path).unwrap();
        auth.reload();
        let e = resolve(&auth, &[&bearer(&ingest)], &[], Need::Ingest)
            .await
            .unwrap_err();
        assert_eq!(e.to_string(), "token revoked");
        // A file that does not parse keeps the tokens read before.
        std::fs::write(&path, "not toml [").unwrap();
        auth.reload();
        assert_eq!(
            ok(resolve(&auth, &[&bearer(&read)], &[], Need::Read).await),
            ("acme".into(), Role::Read)
        );
    }

    #[tokio::test]
    async fn failed_logins_are_rate_limited_per_source() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens.toml");
        TokenFile::default().save(&path).unwrap();
        let auth = Auth::new(&AuthConfig {
            auth_tokens: Some(path),
            auth_attempts_per_minute: 2,
        })
        .unwrap();
        for _ in 0..2 {
            let e = resolve(&auth, &["Bearer guess"], &[], Need::Read)
                .await
                .unwrap_err();
            assert_eq!(e.http_status(), 401);
        }
        let e = resolve(&auth, &["Bearer guess"], &[], Need::Read)
            .await
            .unwrap_err();
        assert_eq!(e.http_status(), 429);
        assert_eq!(e.grpc_code(), tonic::Code::ResourceExhausted);
        assert!(e.retry_after_secs().is_some_and(|s| (1..=30).contains(&s)));
        // No token at all is not a guess.
        assert_eq!(
            resolve(&auth, &[], &[], Need::Read)
                .await
                .unwrap_err()
                .http_status(),
            401
        );
    }
}
