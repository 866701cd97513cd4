//! `cairn-k8s`: what Cairn knows from the Kubernetes API.
//!
//! Data flow: a watch on pods (and, when enabled, on agent-sandbox resources) feeds a bounded
//! in-memory pod cache ([`pods`]); the collector asks it, for each resource of an export, which
//! pod sent it (by pod uid, then pod IP, then the connection's peer address) and fills the
//! placement columns the spans lack ([`cairn_normalize::placement`]), never overwriting what they
//! carry. The API server is never on the ingest path: when it is slow or down, exports go on
//! unenriched and a metric counts them. [`lease`] elects the one active compactor with a
//! `coordination.k8s.io` Lease.

mod config;
mod error;
#[cfg(feature = "fake")]
pub mod fake;
pub mod lease;
pub mod metrics;
pub mod pods;

pub use config::{client, in_cluster, Access, Association, KubeConfig};
pub use error::{Error, Result};
pub use pods::PodCache;
