//! The pod cache's metrics, registered in the process's registry (`cairn-telemetry`) when first
//! used and served on `GET /metrics` of the collector's OTLP/HTTP port.

use std::sync::LazyLock;

use cairn_telemetry::{register, Counter, EncodeLabelSet, Family, Gauge};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct By {
    pub by: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Reason {
    pub reason: &'static str,
}

/// Every metric of the pod cache.
pub struct Metrics {
    /// Export resources enriched, by the association that found their pod.
    pub enriched: Family<By, Counter>,
    /// Export resources stored without enrichment, by why.
    pub unenriched: Family<Reason, Counter>,
    /// Exports that waited for the watch to see a pod, and those whose wait found it.
    pub waits: Counter,
    pub waits_found: Counter,
    /// Pods in the cache (deleted ones kept for late spans included).
    pub pods: Gauge,
    /// Whether the last request to the API server succeeded (1) or failed (0).
    pub api_up: Gauge,
    /// Watch errors (unreachable API server, refused requests, expired resource versions).
    pub watch_errors: Counter,
    /// Full relists of the pods (start, and each restart the watch needed).
    pub relists: Counter,
}

static METRICS: LazyLock<Metrics> = LazyLock::new(|| {
    let m = Metrics {
        enriched: Family::default(),
        unenriched: Family::default(),
        waits: Counter::default(),
        waits_found: Counter::default(),
        pods: Gauge::default(),
        api_up: Gauge::default(),
        watch_errors: Counter::default(),
        relists: Counter::default(),
    };
    register(
        "k8s_resources_enriched",
        "Export resources given their pod's placement, by how the pod was found",
        m.enriched.clone(),
    );
    register(
        "k8s_resources_unenriched",
        "Export resources stored without Kubernetes placement, by reason",
        m.unenriched.clone(),
    );
    register(
        "k8s_pod_waits",
        "Exports that waited for the pod watch to see their pod",
        m.waits.clone(),
    );
    register(
        "k8s_pod_waits_found",
        "Exports whose wait for the pod watch found their pod",
        m.waits_found.clone(),
    );
    register("k8s_pods", "Pods in the cache", m.pods.clone());
    register(
        "k8s_api_up",
        "Whether the Kubernetes API server answered the last request (1) or not (0)",
        m.api_up.clone(),
    );
    register(
        "k8s_watch_errors",
        "Errors of the pod and sandbox watches",
        m.watch_errors.clone(),
    );
    register(
        "k8s_relists",
        "Complete lists of the watched pods",
        m.relists.clone(),
    );
    m
});

/// The metrics, registered on first use.
pub fn metrics() -> &'static Metrics {
    &METRICS
}
