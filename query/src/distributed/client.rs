//! The querier's side of the cluster: where each statement goes, and per tenant a session whose
//! plans run on the cluster.

use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex};

use ballista::prelude::SessionConfigExt;
use ballista_core::config::{BallistaConfig, BALLISTA_CLIENT_PULL};
use ballista_core::extension::SessionStateExt;
use cairn_schema::tenant::Tenant;
use datafusion::common::DataFusionError;
use datafusion::execution::SessionState;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::prelude::{SessionConfig, SessionContext};
use lru::LruCache;

use super::cancel::Cancelling;
use super::codec::{LogicalCodec, PhysicalCodec};
use super::route::{hint, Placement};
use crate::{DistributeConfig, Error, Result};

/// A Ballista cluster this querier sends statements to.
pub struct Remote {
    /// `df://host:port` of the scheduler.
    url: String,
    placement: Placement,
    above: u64,
    partitions: usize,
    sessions: Mutex<LruCache<Tenant, SessionContext>>,
}

impl Remote {
    /// The cluster of the scheduler at `url` (`host:port` or `df://host:port`).
    pub fn new(url: &str, config: &DistributeConfig) -> Result<Self> {
        let (host, port) = super::scheduler_endpoint(url).map_err(Error::BadRequest)?;
        let capacity = NonZeroUsize::new(crate::engine::MAX_SESSIONS).expect("non-zero");
        Ok(Self {
            url: format!("df://{host}:{port}"),
            placement: config.distribute,
            above: config.distribute_above as u64,
            partitions: config.distribute_partitions,
            sessions: Mutex::new(LruCache::new(capacity)),
        })
    }

    /// Where `sql` runs: its hint, or the configured placement.
    pub fn placement(&self, sql: &str) -> Placement {
        hint(sql).unwrap_or(self.placement)
    }

    /// Stored bytes above which `auto` sends a statement to the cluster.
    pub fn above(&self) -> u64 {
        self.above
    }

    /// `config` for a session whose plans go to the cluster: Cairn's codecs, and as many
    /// partitions per stage as the cluster should run at once.
    ///
    /// The querier polls the scheduler for the job's state rather than waiting for it to be
    /// pushed: a polled job is named as soon as the scheduler takes it, and only a named job can
    /// be cancelled when the statement is dropped ([`super::cancel`]); a pushed one is named
    /// with its first change of state, which an endless first stage never makes.
    ///
    /// Dynamic filters are off: they are shared state between the operators of one process
    /// (a join's build side narrowing its probe side's scan, a top-k's threshold), which a plan
    /// cut into stages on several processes does not have; a top-k's filter decoded on an
    /// executor also counts no producer, which DataFusion asserts against.
    pub fn configure(&self, mut config: SessionConfig) -> SessionConfig {
        let optimizer = &mut config.options_mut().optimizer;
        optimizer.enable_dynamic_filter_pushdown = false;
        optimizer.enable_topk_dynamic_filter_pushdown = false;
        optimizer.enable_join_dynamic_filter_pushdown = false;
        optimizer.enable_aggregate_dynamic_filter_pushdown = false;
        let config = match config.options().extensions.get::<BallistaConfig>() {
            Some(_) => config,
            None => config.with_option_extension(BallistaConfig::default()),
        };
        config
            .set_bool(BALLISTA_CLIENT_PULL, true)
            .with_target_partitions(self.partitions)
            .with_ballista_logical_extension_codec(Arc::new(LogicalCodec::default()))
            .with_ballista_physical_extension_codec(Arc::new(PhysicalCodec::default()))
    }

    /// `state` (configured by [`Self::configure`]) planning for the cluster.
    pub fn upgrade(&self, state: SessionState) -> Result<SessionState> {
        Ok(state.upgrade_for_ballista(self.url.clone())?)
    }

    /// The kept cluster session of `tenant`.
    pub fn session(&self, tenant: &Tenant) -> Option<SessionContext> {
        self.sessions.lock().expect("sessions").get(tenant).cloned()
    }

    /// Keeps `ctx` as `tenant`'s cluster session.
    pub fn keep(&self, tenant: &Tenant, ctx: SessionContext) {
        self.sessions
            .lock()
            .expect("sessions")
            .put(tenant.clone(), ctx);
    }

    /// `batches` of `plan` running on the cluster, its job cancelled when they are dropped
    /// before the last one.
    pub fn cancelling<S>(&self, batches: S, plan: Arc<dyn ExecutionPlan>) -> Cancelling<S> {
        let grpc = self.url.replacen("df://", "http://", 1);
        Cancelling::new(batches, grpc, plan)
    }

    /// The error of a statement that failed on the cluster. Its causes arrive as text: a lack
    /// of memory stays one, everything else is the cluster's failure (502), its text kept.
    pub fn failed(&self, e: DataFusionError) -> Error {
        let text = e.strip_backtrace();
        let reason = innermost(&text).unwrap_or(text.clone());
        if text.contains("Resources exhausted") {
            return Error::ResourcesExhausted(format!("on the cluster ({}): {reason}", self.url));
        }
        Error::Distributed(format!(
            "the query failed on the cluster ({}): {reason}; `/*+ LOCAL */` runs it here",
            self.url
        ))
    }
}

/// The innermost message of a failure on the cluster: Ballista reports a task's error as the
/// debug form of the errors that wrap it, `…(External(DataFusionError(Execution("repeat: …"))))`.
fn innermost(text: &str) -> Option<String> {
    let start = text.rfind("(\"")? + 2;
    let end = start + text[start..].find("\")")?;
    let inner = text[start..end].replace("\\\"", "\"");
    (!inner.trim().is_empty()).then_some(inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jobs_are_polled_so_that_they_can_be_cancelled() {
        let remote = Remote::new("127.0.0.1:50050", &DistributeConfig::default()).unwrap();
        assert!(!SessionConfig::new().ballista_config().client_pull());
        let config = remote.configure(SessionConfig::new());
        assert!(config.ballista_config().client_pull());
        assert_eq!(config.target_partitions(), remote.partitions);
    }

    #[test]
    fn a_tasks_own_message_is_kept() {
        let remote = Remote::new("127.0.0.1:50050", &DistributeConfig::default()).unwrap();
        let text = "Job 038 failed: Job failed due to stage 0 failed: Task failed due to runtime \
            execution error: DataFusionError(Shared(External(DataFusionError(Execution(\"repeat: \
            a result of 2000000000 bytes is larger than the 64 MiB a generated value may have\")))))";
        let e = remote.failed(DataFusionError::Execution(text.into()));
        assert_eq!(e.http_status(), http::StatusCode::BAD_GATEWAY);
        assert_eq!(
            e.to_string(),
            "the query failed on the cluster (df://127.0.0.1:50050): repeat: a result of \
             2000000000 bytes is larger than the 64 MiB a generated value may have; \
             `/*+ LOCAL */` runs it here"
        );
        // A failure of the cluster itself keeps its whole text.
        let lost = "Job 1 failed: all executors were lost";
        let e = remote.failed(DataFusionError::Execution(lost.into()));
        assert!(e.to_string().contains(lost), "{e}");
        let e = remote.failed(DataFusionError::ResourcesExhausted("no memory".into()));
        assert_eq!(e.http_status(), http::StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(remote.placement("SELECT /*+ LOCAL */ 1"), Placement::Local);
        assert_eq!(remote.placement("SELECT 1"), Placement::Auto);
    }
}
