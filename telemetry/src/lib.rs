//! `cairn-telemetry`: Cairn's own metrics.
//!
//! One registry per process ([`register`]), into which each crate registers the metrics of its
//! part when they are first used: the collector its ingest counters, the compactor its merges,
//! the store its object-store requests, the query side its queries. Every role serves the whole
//! registry as Prometheus text on `GET /metrics` of its own port ([`router`]), so a process
//! running several roles shows all of them on each.
//!
//! The same router answers the readiness and liveness probes, `GET /ready` and `GET /live`
//! ([`health`]). Logging and Cairn's own traces are set up here too ([`tracing_setup`]).
//!
//! Depends on no other Cairn crate, so that any crate may report here.

pub mod health;
pub mod tracing_setup;

use std::sync::{LazyLock, Mutex};

use axum::http::header;
use axum::routing::get;
use axum::Router;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::{Metric, Registry};

pub use prometheus_client::encoding::EncodeLabelSet;
pub use prometheus_client::metrics::counter::Counter;
pub use prometheus_client::metrics::family::Family;
pub use prometheus_client::metrics::gauge::Gauge;

static REGISTRY: LazyLock<Mutex<Registry>> =
    LazyLock::new(|| Mutex::new(Registry::with_prefix("cairn")));

/// Registers `metric` as `cairn_<name>` (counters gain `_total`). Metrics are cheap handles:
/// register a clone and keep the original.
pub fn register(name: &str, help: &str, metric: impl Metric) {
    REGISTRY
        .lock()
        .expect("metrics registry")
        .register(name, help, metric);
}

/// Every registered metric in the Prometheus text format.
pub fn render() -> String {
    let mut out = String::new();
    encode(&mut out, &REGISTRY.lock().expect("metrics registry")).expect("writing to a string");
    out
}

/// `GET /metrics`, `GET /ready` and `GET /live`, to merge into a role's router.
pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/ready", get(|| async { health::ready() }))
        .route("/live", get(|| async { health::live() }))
        .route(
            "/metrics",
            get(|| async {
                (
                    [(
                        header::CONTENT_TYPE,
                        "text/plain; version=0.0.4; charset=utf-8",
                    )],
                    render(),
                )
            }),
        )
}

/// The label of metrics kept per dataset (`spans`, `payloads`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DatasetLabel {
    pub dataset: &'static str,
}

/// The label of metrics counted by how something ended (`ok`, `failed`, `cancelled`, …).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabel {
    pub outcome: &'static str,
}

/// A latency histogram in seconds, from 1 ms to about 65 s.
pub fn seconds_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 17))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registered_metrics_are_rendered() {
        let counter = Counter::<u64>::default();
        register(
            "telemetry_test_events",
            "Events of the test",
            counter.clone(),
        );
        counter.inc_by(3);
        let text = render();
        assert!(
            text.contains("cairn_telemetry_test_events_total 3"),
            "{text}"
        );
    }
}

/// Distinct tenants named in metric labels; the ones after them share the label `other`, so
/// that clients naming ever new tenants cannot grow `/metrics` without bound.
pub const MAX_TENANT_LABELS: usize = 100;

static TENANT_LABELS: LazyLock<Mutex<std::collections::HashSet<String>>> =
    LazyLock::new(Default::default);

/// The `tenant` label value of `tenant`: itself for the first [`MAX_TENANT_LABELS`] tenants
/// seen, `other` after.
pub fn tenant_label(tenant: &str) -> String {
    let mut seen = TENANT_LABELS.lock().expect("tenant labels");
    if seen.contains(tenant) {
        return tenant.to_owned();
    }
    if seen.len() < MAX_TENANT_LABELS {
        seen.insert(tenant.to_owned());
        return tenant.to_owned();
    }
    "other".to_owned()
}

/// Labels of a per-tenant limit's refusals.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TenantLimitLabels {
    pub tenant: String,
    pub limit: &'static str,
}

static TENANT_REFUSED: LazyLock<Family<TenantLimitLabels, Counter>> = LazyLock::new(|| {
    let family = Family::default();
    register(
        "tenant_refused",
        "Requests refused by a per-tenant limit (ingest_rate, storage_quota, concurrent_queries)",
        family.clone(),
    );
    family
});

/// Counts a request of `tenant` refused by the per-tenant `limit`. Shared by the collector and
/// the query API, which may run in one process.
pub fn tenant_refused(tenant: &str, limit: &'static str) {
    TENANT_REFUSED
        .get_or_create(&TenantLimitLabels {
            tenant: tenant_label(tenant),
            limit,
        })
        .inc();
}
