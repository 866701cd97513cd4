//! What an export must pass besides the memory budget, all off unless configured: redaction of
//! its content ([`cairn_normalize::redact`], rules from `--redaction-rules`), and the limits of
//! its tenant (`--tenant-*` defaults, `--tenant-limits` overrides): an ingest rate in spans and
//! request bytes per second (token buckets, refused as retryable) and a storage quota (refused
//! as final once the tenant's stored bytes reach it).
//!
//! Stored bytes come from a listing of each tenant's prefixes in the store every
//! `--tenant-usage-interval`, plus the bytes of the exports accepted since (their protobuf size,
//! more than their Parquet size, so the estimate errs towards refusing early and the next
//! listing corrects it). The rules and limits files are re-read on SIGHUP; a file that no
//! longer parses keeps the previous rules in force, with an error in the log.

use std::collections::HashMap;
use std::num::{NonZeroU32, NonZeroUsize};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use cairn_config::tenant_limits::{LimitsTable, TenantLimits};
use cairn_normalize::redact::{Redactor, Rules};
use cairn_schema::layout::Dataset;
use cairn_schema::tenant::Tenant;
use futures::TryStreamExt;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, Quota};
use lru::LruCache;
use object_store::ObjectStore;
use tokio_util::sync::CancellationToken;

use crate::metrics::{metrics, RuleLabel, TenantLabel};
use crate::{CollectorConfig, Error, Result};

/// Tenants whose token buckets are kept; the least recently seen beyond it start afresh.
const MAX_BUCKETS: usize = 4096;

/// A token bucket refilled at `rate` per second, holding one second of it.
struct Bucket {
    rate: u64,
    limiter: DefaultDirectRateLimiter,
}

impl Bucket {
    fn new(rate: u64) -> Self {
        let per_second = NonZeroU32::new(rate.clamp(1, u32::MAX as u64) as u32).expect("positive");
        Self {
            rate,
            limiter: DefaultDirectRateLimiter::direct(Quota::per_second(per_second)),
        }
    }

    /// Takes `n` tokens, or says how long until they are there. A request larger than the
    /// bucket passes when the bucket is full (and empties it).
    fn take(&self, n: u64) -> Result<(), Duration> {
        let n = n.clamp(1, self.rate.min(u32::MAX as u64)) as u32;
        match self.limiter.check_n(NonZeroU32::new(n).expect("positive")) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(not_until)) => Err(not_until.wait_time_from(DefaultClock::default().now())),
            Err(_) => Ok(()),
        }
    }
}

#[derive(Default)]
struct Buckets {
    spans: Option<Bucket>,
    bytes: Option<Bucket>,
}

/// Redaction and per-tenant limits of one collector. Cheap to share.
pub struct Guards {
    rules_path: Option<PathBuf>,
    key_path: Option<PathBuf>,
    redactor: RwLock<Arc<Redactor>>,
    limits_path: Option<PathBuf>,
    defaults: TenantLimits,
    table: RwLock<Arc<LimitsTable>>,
    buckets: Mutex<LruCache<Tenant, Buckets>>,
    /// Stored bytes of tenants with a quota: the last listing plus exports accepted since.
    usage: Mutex<HashMap<Tenant, u64>>,
}

fn read_redactor(rules: Option<&Path>, key: Option<&Path>) -> Result<Redactor> {
    let bad = Error::Config;
    let Some(rules) = rules else {
        return Ok(Redactor::none());
    };
    let text = std::fs::read_to_string(rules)
        .map_err(|e| bad(format!("cannot read {}: {e}", rules.display())))?;
    let parsed = Rules::parse(&text).map_err(|e| bad(format!("{}: {e}", rules.display())))?;
    let key = match key {
        Some(path) => {
            let k = std::fs::read(path)
                .map_err(|e| bad(format!("cannot read {}: {e}", path.display())))?;
            if k.len() < 16 {
                return Err(bad(format!(
                    "{}: a redaction key needs at least 16 bytes",
                    path.display()
                )));
            }
            Some(k)
        }
        None => None,
    };
    Ok(Redactor::new(parsed, key.as_deref()))
}

impl Guards {
    /// No redaction and no limits.
    pub fn off() -> Self {
        Self {
            rules_path: None,
            key_path: None,
            redactor: RwLock::new(Arc::new(Redactor::none())),
            limits_path: None,
            defaults: TenantLimits::default(),
            table: RwLock::new(Arc::new(LimitsTable::default())),
            buckets: Mutex::new(LruCache::new(
                NonZeroUsize::new(MAX_BUCKETS).expect("non-zero"),
            )),
            usage: Mutex::new(HashMap::new()),
        }
    }

    /// Reads the rules and limits `config` names (refusing to start on a bad file).
    pub fn load(config: &CollectorConfig) -> Result<Self> {
        let redactor = read_redactor(
            config.redaction_rules.as_deref(),
            config.redaction_key.as_deref(),
        )?;
        if !redactor.rules().is_empty() {
            if config.redaction_key.is_none()
                && redactor
                    .rules()
                    .rules
                    .iter()
                    .any(|r| r.action == cairn_normalize::redact::Action::Hash)
            {
                tracing::warn!("redaction rules hash values without --redaction-key: the hashes are unkeyed, so a guessed value can be confirmed by hashing it");
            }
            tracing::info!(rules = ?redactor.rules().names().collect::<Vec<_>>(), "redaction at ingest on");
        }
        let defaults = config.tenant_defaults();
        let table =
            LimitsTable::load(defaults, config.tenant_limits.as_deref()).map_err(Error::Config)?;
        Ok(Self {
            rules_path: config.redaction_rules.clone(),
            key_path: config.redaction_key.clone(),
            redactor: RwLock::new(Arc::new(redactor)),
            limits_path: config.tenant_limits.clone(),
            defaults,
            table: RwLock::new(Arc::new(table)),
            ..Self::off()
        })
    }

    /// Re-reads the rules and limits files; a file that fails keeps what was in force.
    pub fn reload(&self) {
        if self.rules_path.is_some() {
            match read_redactor(self.rules_path.as_deref(), self.key_path.as_deref()) {
                Ok(r) => {
                    tracing::info!(rules = ?r.rules().names().collect::<Vec<_>>(), "redaction rules reloaded");
                    *self.redactor.write().expect("redactor") = Arc::new(r);
                }
                Err(e) => {
                    tracing::error!(error = %e, "redaction rules not reloaded; the previous ones stay in force")
                }
            }
        }
        if self.limits_path.is_some() {
            match LimitsTable::load(self.defaults, self.limits_path.as_deref()) {
                Ok(t) => {
                    *self.table.write().expect("limits") = Arc::new(t);
                    self.buckets.lock().expect("buckets").clear();
                    tracing::info!("tenant limits reloaded");
                }
                Err(e) => {
                    tracing::error!(error = %e, "tenant limits not reloaded; the previous ones stay in force")
                }
            }
        }
    }

    /// Spawns the SIGHUP listener and the usage listing (every `interval`, after the one of
    /// [`Self::prime`]), both stopping at `shutdown`.
    pub fn spawn(
        self: &Arc<Self>,
        store: Arc<dyn ObjectStore>,
        interval: Duration,
        shutdown: CancellationToken,
    ) {
        let guards = Arc::clone(self);
        // Compiling rules is CPU work: `on_hangup` runs it off the IO threads.
        cairn_net::on_hangup(shutdown.clone(), move || guards.reload());
        let guards = Arc::clone(self);
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(interval) => {}
                }
                if guards.table().any_quota() {
                    if let Err(e) = guards.list_usage(store.as_ref()).await {
                        tracing::warn!(error = %e, "listing tenant storage failed; usage estimates kept");
                    }
                }
            }
        });
    }

    /// Lists the stored bytes of tenants with a quota once, before the listeners open, so that
    /// a tenant already at its quota is refused from the first export on.
    pub async fn prime(&self, store: &dyn ObjectStore) {
        if self.table().any_quota() {
            if let Err(e) = self.list_usage(store).await {
                tracing::warn!(error = %e, "listing tenant storage failed; quotas count from zero until the next listing");
            }
        }
    }

    fn table(&self) -> Arc<LimitsTable> {
        Arc::clone(&self.table.read().expect("limits"))
    }

    /// The redactor in force.
    pub fn redactor(&self) -> Arc<Redactor> {
        Arc::clone(&self.redactor.read().expect("redactor"))
    }

    /// Counts what one redaction replaced.
    pub fn count_redactions(counts: &[(String, u64)]) {
        for (rule, n) in counts {
            metrics()
                .redactions
                .get_or_create(&RuleLabel { rule: rule.clone() })
                .inc_by(*n);
        }
    }

    /// Refuses an export of `bytes` request bytes from `tenant` over its byte rate or quota.
    pub fn admit(&self, tenant: &Tenant, bytes: usize) -> Result<()> {
        let limits = self.table().get(tenant.as_str());
        if let Some(quota) = limits.storage_quota {
            let used = self
                .usage
                .lock()
                .expect("usage")
                .get(tenant)
                .copied()
                .unwrap_or(0);
            if used >= quota {
                cairn_telemetry::tenant_refused(tenant.as_str(), "storage_quota");
                return Err(Error::QuotaExceeded(format!(
                    "tenant {tenant} stores {used} bytes, its storage quota is {quota} bytes; \
                     exports are refused until data expires or the quota is raised"
                )));
            }
        }
        self.take(
            tenant,
            limits.bytes_per_second,
            bytes as u64,
            "bytes",
            |b| &mut b.bytes,
        )
    }

    /// Refuses `spans` spans of `tenant` over its span rate.
    pub fn admit_spans(&self, tenant: &Tenant, spans: usize) -> Result<()> {
        let rate = self.table().get(tenant.as_str()).spans_per_second;
        self.take(tenant, rate, spans as u64, "spans", |b| &mut b.spans)
    }

    fn take(
        &self,
        tenant: &Tenant,
        rate: Option<u64>,
        n: u64,
        unit: &str,
        slot: fn(&mut Buckets) -> &mut Option<Bucket>,
    ) -> Result<()> {
        let Some(rate) = rate else {
            return Ok(());
        };
        let mut buckets = self.buckets.lock().expect("buckets");
        let bucket = slot(buckets.get_or_insert_mut(tenant.clone(), Buckets::default));
        if bucket.as_ref().is_none_or(|b| b.rate != rate) {
            *bucket = Some(Bucket::new(rate));
        }
        let wait = match bucket.as_ref().expect("set").take(n) {
            Ok(()) => return Ok(()),
            Err(wait) => wait,
        };
        drop(buckets);
        cairn_telemetry::tenant_refused(tenant.as_str(), "ingest_rate");
        Err(Error::RateLimited {
            message: format!(
                "tenant {tenant} exports more than its ingest rate of {rate} {unit} per second; retry later"
            ),
            retry_after_secs: wait.as_secs_f64().ceil().max(1.0) as u64,
        })
    }

    /// Adds the bytes of an accepted export to `tenant`'s usage, when it has a quota.
    pub fn stored(&self, tenant: &Tenant, bytes: usize) {
        if self.table().get(tenant.as_str()).storage_quota.is_none() {
            return;
        }
        let mut usage = self.usage.lock().expect("usage");
        let used = usage.entry(tenant.clone()).or_insert(0);
        *used += bytes as u64;
        set_gauge(tenant, *used);
    }

    /// Lists the store's bytes of every tenant with a quota.
    async fn list_usage(&self, store: &dyn ObjectStore) -> Result<()> {
        let table = self.table();
        let mut listed: HashMap<Tenant, u64> = HashMap::new();
        for dataset in [Dataset::Spans, Dataset::Payloads, Dataset::TraceIndex] {
            let root = object_store::path::Path::from(dataset.prefix());
            let tenants = store
                .list_with_delimiter(Some(&root))
                .await
                .map_err(|e| Error::Storage(e.to_string()))?;
            for prefix in tenants.common_prefixes {
                let Some(name) = prefix
                    .parts()
                    .next_back()
                    .and_then(|p| p.as_ref().strip_prefix("tenant=").map(str::to_owned))
                else {
                    continue;
                };
                let Ok(tenant) = Tenant::new(&name) else {
                    continue;
                };
                if table.get(tenant.as_str()).storage_quota.is_none() {
                    continue;
                }
                let bytes: u64 = store
                    .list(Some(&prefix))
                    .try_fold(0u64, |sum, meta| async move { Ok(sum + meta.size) })
                    .await
                    .map_err(|e| Error::Storage(e.to_string()))?;
                *listed.entry(tenant).or_insert(0) += bytes;
            }
        }
        for (tenant, bytes) in &listed {
            set_gauge(tenant, *bytes);
        }
        *self.usage.lock().expect("usage") = listed;
        Ok(())
    }
}

fn set_gauge(tenant: &Tenant, bytes: u64) {
    metrics()
        .tenant_storage_bytes
        .get_or_create(&TenantLabel {
            tenant: cairn_telemetry::tenant_label(tenant.as_str()),
        })
        .set(bytes.min(i64::MAX as u64) as i64);
}
