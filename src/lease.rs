//! The compactor's lease (`--compactor-lease kube`): compaction changes the store only while
//! this process holds the Kubernetes Lease ([`cairn_compactor::Gate`]), and gives it up once
//! compaction has stopped, so that another replica takes over at once.

use cairn_compactor::Gate;
use cairn_k8s::lease::{Lease, LeaseConfig};
use cairn_k8s::KubeConfig;

use crate::supervise::BoxError;

/// Starts campaigning for the lease when it is on (the API server is `--kubeconfig`'s, else
/// the pod's own); `None` when off.
pub async fn start(config: &LeaseConfig, kube: &KubeConfig) -> Result<Option<Lease>, BoxError> {
    if !config.enabled() {
        return Ok(None);
    }
    let client = kube
        .client()
        .await
        .map_err(|e| format!("compactor lease: {e}"))?;
    Ok(Some(Lease::start(client, config)))
}

/// The compactor's gate: open while the lease is held, always open without one.
pub fn gate(lease: Option<&Lease>) -> Gate {
    lease.map_or_else(Gate::always, |l| Gate::lease(l.leadership()))
}
