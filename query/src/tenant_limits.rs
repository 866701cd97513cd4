//! Concurrent queries per tenant: every statement the engine runs for a tenant (the SQL and
//! trace APIs, the Tempo API, the Postgres listener) holds one of the tenant's slots while it
//! runs. With all of them taken the statement is refused at once as retryable (HTTP 429 with
//! `Retry-After`, SQLSTATE 53400 on the Postgres wire) and counted in
//! `cairn_tenant_refused_total{limit="concurrent_queries"}`; other tenants are unaffected. The
//! limit is `--tenant-max-concurrent-queries` for every tenant, overridden per tenant by the
//! `--tenant-limits` file, which is re-read on SIGHUP.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};

use cairn_config::tenant_limits::{LimitsTable, TenantLimits};
use cairn_schema::tenant::Tenant;
use tokio_util::sync::CancellationToken;

use crate::{Error, Result};

/// Seconds a refused client is told to wait.
const RETRY_AFTER_SECS: u64 = 1;

/// The tenant a session belongs to, kept in its config so that statements planned in it (the
/// Postgres listener's) are counted against that tenant.
#[derive(Debug, Clone)]
pub struct SessionTenant(pub Tenant);

/// The per-tenant query limits and the statements running.
#[derive(Debug)]
pub struct QueryLimits {
    defaults: TenantLimits,
    path: Mutex<Option<PathBuf>>,
    table: RwLock<Arc<LimitsTable>>,
    running: Arc<Mutex<HashMap<Tenant, u64>>>,
}

/// One running statement's slot; given back when dropped.
#[derive(Debug)]
pub struct Slot {
    tenant: Option<Tenant>,
    running: Arc<Mutex<HashMap<Tenant, u64>>>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Some(tenant) = self.tenant.take() {
            let mut running = self.running.lock().expect("running queries");
            if let Some(n) = running.get_mut(&tenant) {
                *n -= 1;
                if *n == 0 {
                    running.remove(&tenant);
                }
            }
        }
    }
}

impl QueryLimits {
    /// `max_concurrent` queries for every tenant (none: no limit).
    pub fn new(max_concurrent: Option<usize>) -> Self {
        let defaults = TenantLimits {
            max_concurrent_queries: max_concurrent.map(|n| n as u64),
            ..Default::default()
        };
        Self {
            defaults,
            path: Mutex::new(None),
            table: RwLock::new(Arc::new(
                LimitsTable::load(defaults, None).expect("no file to read"),
            )),
            running: Arc::default(),
        }
    }

    /// Reads the per-tenant overrides of `path` (and again at every [`Self::reload`]).
    pub fn load_file(&self, path: Option<PathBuf>) -> Result<()> {
        let table = LimitsTable::load(self.defaults, path.as_deref()).map_err(Error::BadRequest)?;
        *self.path.lock().expect("limits path") = path;
        *self.table.write().expect("limits") = Arc::new(table);
        Ok(())
    }

    /// Re-reads the overrides file; one that fails keeps the limits in force.
    pub fn reload(&self) {
        let path = self.path.lock().expect("limits path").clone();
        if path.is_none() {
            return;
        }
        match LimitsTable::load(self.defaults, path.as_deref()) {
            Ok(t) => {
                *self.table.write().expect("limits") = Arc::new(t);
                tracing::info!("tenant query limits reloaded");
            }
            Err(e) => {
                tracing::error!(error = %e, "tenant query limits not reloaded; the previous ones stay in force")
            }
        }
    }

    /// Re-reads the overrides file on every SIGHUP until `shutdown`.
    pub fn watch(self: &Arc<Self>, shutdown: CancellationToken) {
        let limits = Arc::clone(self);
        cairn_net::on_hangup(shutdown, move || limits.reload());
    }

    /// A slot for one statement of `tenant`, or a retryable refusal when its slots are taken.
    pub fn acquire(&self, tenant: &Tenant) -> Result<Slot> {
        let limit = self
            .table
            .read()
            .expect("limits")
            .get(tenant.as_str())
            .max_concurrent_queries;
        let Some(limit) = limit else {
            return Ok(Slot {
                tenant: None,
                running: Arc::clone(&self.running),
            });
        };
        let mut running = self.running.lock().expect("running queries");
        let n = running.entry(tenant.clone()).or_insert(0);
        if *n >= limit {
            drop(running);
            cairn_telemetry::tenant_refused(tenant.as_str(), "concurrent_queries");
            return Err(Error::TooManyQueries {
                message: format!(
                    "tenant {tenant} already runs {limit} queries, its limit of concurrent \
                     queries; retry later"
                ),
                retry_after_secs: RETRY_AFTER_SECS,
            });
        }
        *n += 1;
        Ok(Slot {
            tenant: Some(tenant.clone()),
            running: Arc::clone(&self.running),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_per_tenant_and_given_back() {
        let limits = QueryLimits::new(Some(1));
        let (a, b) = (Tenant::new("a").unwrap(), Tenant::new("b").unwrap());
        let held = limits.acquire(&a).unwrap();
        let refused = limits.acquire(&a).unwrap_err();
        assert_eq!(refused.http_status(), http::StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(refused.sqlstate(), "53400");
        let _other = limits.acquire(&b).unwrap();
        drop(held);
        limits.acquire(&a).unwrap();
        let unlimited = QueryLimits::new(None);
        let _x = unlimited.acquire(&a).unwrap();
        let _y = unlimited.acquire(&a).unwrap();
    }
}
