//! Leader election on a `coordination.k8s.io/v1` Lease, with client-go's semantics, so that one
//! compactor at a time changes a store.
//!
//! A holder renews the lease every retry period; a candidate takes it over only once the record
//! it sees has not changed for a whole lease duration, measured on its own monotonic clock from
//! when it first saw that record (never by comparing `renewTime` with its wall clock, so clock
//! skew between nodes does not matter). Every write is a replace carrying the resourceVersion
//! read, so two candidates cannot both win: the loser gets 409 Conflict.
//!
//! The holder considers itself the leader only until the moment it *sent* its last successful
//! renewal plus the renew deadline (2/3 of the lease duration). A candidate can first see that
//! renewal after it was sent and takes over a whole lease duration later, so a leader cut off
//! from the API server (down, slow, partitioned) steps down at least `duration − deadline`
//! (a third of the lease duration) before anyone else can lead. Leadership is published as the
//! instant it ends ([`Leadership`]): a consumer compares it with the clock itself instead of
//! trusting a flag that a busy runtime might lower late.
//!
//! On a clean shutdown, once the work the lease guards has stopped, [`Lease::release`] empties
//! `holderIdentity` so that another candidate takes over at its next retry instead of after a
//! whole lease duration.
//!
//! (Checked first: kube 5's runtime has no elector; `kube-leader-election` and `kube-coordinate`
//! target older kube releases; `kube-lease-manager` 0.13 fits kube 5 but keeps a leader leading
//! while its renewals fail, and judges expiry by wall-clock `renewTime`.)

mod elector;
mod metrics;
mod record;

use std::time::Duration;

use cairn_config::parse;
use k8s_openapi::api::coordination::v1::Lease as LeaseObject;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::Result;

pub use elector::Timing;

/// Until when this process leads: `Some(t)` while `t` is in the future, `None` when it does
/// not lead. Compare with [`Instant::now`]: the value is not lowered at `t` by itself.
pub type Leadership = watch::Receiver<Option<Instant>>;

/// Where the compactor's lock lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LeaseMode {
    /// No lock: only one compactor may run against a store.
    Off,
    /// A Kubernetes Lease: compactors of any number of replicas take turns.
    Kube,
}

/// Settings of the compactor's lease: each `--flag`, its `CAIRN_*` variable and config key.
/// The API server is the one of `--kubeconfig` ([`crate::KubeConfig`]), or in-cluster.
#[derive(Debug, Clone, clap::Args)]
pub struct LeaseConfig {
    /// Compact only while holding a Kubernetes Lease (`kube`), so that several replicas of
    /// `cairn compact` (or `serve`) can run: `off` or `kube`.
    #[arg(long, env = "CAIRN_COMPACTOR_LEASE", value_enum, default_value = "off")]
    pub compactor_lease: LeaseMode,
    /// Name of the Lease object.
    #[arg(long, env = "CAIRN_LEASE_NAME", default_value = "cairn-compactor")]
    pub lease_name: String,
    /// Namespace of the Lease (default: the pod's own namespace, else `default`).
    #[arg(long, env = "CAIRN_LEASE_NAMESPACE")]
    pub lease_namespace: Option<String>,
    /// This process's identity in the Lease (default: the host name, which is the pod name
    /// in Kubernetes, with a random suffix: two processes must never share one).
    #[arg(long, env = "CAIRN_LEASE_IDENTITY")]
    pub lease_identity: Option<String>,
    /// How long a Lease not renewed stays taken (whole seconds). The holder renews every fifth
    /// of it and stops compacting when it could not renew for two thirds of it.
    #[arg(long, env = "CAIRN_LEASE_DURATION", default_value = "15s", value_parser = whole_seconds)]
    pub lease_duration: Duration,
}

impl Default for LeaseConfig {
    fn default() -> Self {
        cairn_config::defaults()
    }
}

/// A duration of whole seconds (a Lease counts in seconds).
fn whole_seconds(text: &str) -> Result<Duration, String> {
    parse::span(text)
        .ok()
        .filter(|d| d.subsec_nanos() == 0)
        .ok_or_else(|| "not a whole number of seconds such as 15s".to_owned())
}

/// The namespace a pod runs in, from its service account mount.
const POD_NAMESPACE: &str = "/var/run/secrets/kubernetes.io/serviceaccount/namespace";

impl LeaseConfig {
    pub fn enabled(&self) -> bool {
        self.compactor_lease == LeaseMode::Kube
    }

    /// The Lease's namespace: configured, else the pod's own, else `default`.
    pub fn namespace(&self) -> String {
        self.lease_namespace.clone().unwrap_or_else(|| {
            std::fs::read_to_string(POD_NAMESPACE)
                .ok()
                .map(|ns| ns.trim().to_owned())
                .filter(|ns| !ns.is_empty())
                .unwrap_or_else(|| "default".to_owned())
        })
    }

    /// This process's identity: configured, else `<host name>_<random>`.
    pub fn identity(&self) -> String {
        self.lease_identity.clone().unwrap_or_else(|| {
            use std::hash::{BuildHasher, Hasher};
            let host = std::env::var("HOSTNAME")
                .ok()
                .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
                .map(|h| h.trim().to_owned())
                .filter(|h| !h.is_empty())
                .unwrap_or_else(|| "cairn".to_owned());
            let mut random = std::collections::hash_map::RandomState::new().build_hasher();
            random.write_u32(std::process::id());
            format!("{host}_{:08x}", random.finish() as u32)
        })
    }
}

/// A campaign for the lease, running in the background until released.
pub struct Lease {
    leadership: Leadership,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<elector::Elector>,
    identity: String,
}

impl Lease {
    /// Starts campaigning for the lease `config` names on the API server of `client`.
    pub fn start(client: kube::Client, config: &LeaseConfig) -> Self {
        let namespace = config.namespace();
        let identity = config.identity();
        let api = kube::Api::<LeaseObject>::namespaced(client, &namespace);
        let timing = Timing::of(config.lease_duration);
        tracing::info!(lease = %config.lease_name, %namespace, %identity, duration = ?timing.duration, "campaigning for the compactor lease");
        let (elector, leadership) =
            elector::Elector::new(api, config.lease_name.clone(), identity.clone(), timing);
        let stop = CancellationToken::new();
        let task = tokio::spawn(elector.run(stop.clone()));
        Self {
            leadership,
            stop,
            task,
            identity,
        }
    }

    /// Until when this process leads (see [`Leadership`]).
    pub fn leadership(&self) -> Leadership {
        self.leadership.clone()
    }

    /// This process's identity in the Lease.
    pub fn identity(&self) -> &str {
        &self.identity
    }

    /// Stops campaigning and, if this process holds the lease, gives it up so that another
    /// takes over at once. Call it once the work the lease guards has stopped.
    pub async fn release(self) {
        self.stop.cancel();
        match self.task.await {
            Ok(elector) => elector.release().await,
            Err(e) => tracing::warn!(error = %e, "the lease campaign failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults() {
        let c = LeaseConfig::default();
        assert_eq!(c.compactor_lease, LeaseMode::Off);
        assert_eq!(c.lease_name, "cairn-compactor");
        assert_eq!(c.lease_duration, Duration::from_secs(15));
        assert!(!c.enabled());
        assert_ne!(c.identity(), c.identity(), "identities are unique per call");
        assert!(whole_seconds("1500ms").is_err());
        assert_eq!(whole_seconds("2s"), Ok(Duration::from_secs(2)));
    }
}
