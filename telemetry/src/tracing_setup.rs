//! Logging, and Cairn's own traces: the spans of its request paths (exports, flushes, queries,
//! compaction passes) go to the log at debug level and, when an endpoint is configured, to any
//! OTLP/gRPC receiver — Cairn itself included, into tenant [`SELF_TENANT`].
//!
//! Sending its own traces to itself cannot feed back: the collector opens no span for exports
//! of [`SELF_TENANT`] (see [`export_span`]), so tracing an export of self-traces is never itself
//! traced.

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{WithExportConfig, WithTonicConfig};
use opentelemetry_sdk::runtime::Tokio;
use opentelemetry_sdk::trace::span_processor_with_async_runtime::BatchSpanProcessor;
use opentelemetry_sdk::trace::SdkTracerProvider;
use opentelemetry_sdk::Resource;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// The tenant Cairn's own traces are sent as.
pub const SELF_TENANT: &str = "cairn-self";

/// Flushes Cairn's own traces when dropped (at the end of `main`).
pub struct TracingGuard {
    provider: Option<SdkTracerProvider>,
}

impl Drop for TracingGuard {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take() {
            // The exporter runs on the Tokio runtime; wait for it without blocking a worker.
            tokio::task::block_in_place(|| {
                let _ = provider.shutdown();
            });
        }
    }
}

/// Crates that log every job or task at `info`: Ballista's, several lines per distributed
/// statement. Their warnings and errors are kept.
const QUIET_CRATES: [&str; 3] = ["ballista_core", "ballista_scheduler", "ballista_executor"];

/// `filter` with the [`QUIET_CRATES`] it does not name at `warn`.
fn with_quiet_crates(filter: &str) -> String {
    let mut out = filter.to_owned();
    for name in QUIET_CRATES {
        if !filter.contains(name) {
            out.push_str(&format!(",{name}=warn"));
        }
    }
    out
}

/// Installs the log (`filter`, e.g. `info`) and, with `self_traces` (an OTLP/gRPC endpoint such
/// as `http://127.0.0.1:4317`), the export of Cairn's own spans as service `cairn`.
pub fn init(filter: &str, self_traces: Option<&str>) -> Result<TracingGuard, String> {
    let filter = with_quiet_crates(filter);
    let log_filter = EnvFilter::try_new(&filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let log = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_filter(log_filter);
    let Some(endpoint) = self_traces else {
        let _ = tracing_subscriber::registry().with(log).try_init();
        return Ok(TracingGuard { provider: None });
    };
    let mut metadata = tonic::metadata::MetadataMap::new();
    metadata.insert(
        "x-scope-orgid",
        SELF_TENANT.parse().expect("an ASCII tenant"),
    );
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .with_endpoint(endpoint)
        .with_metadata(metadata)
        .build()
        .map_err(|e| format!("self traces to {endpoint}: {e}"))?;
    // Exported from a task of the Tokio runtime (the gRPC client needs it); must be called
    // within the runtime.
    let provider = SdkTracerProvider::builder()
        .with_span_processor(BatchSpanProcessor::builder(exporter, Tokio).build())
        .with_resource(Resource::builder().with_service_name("cairn").build())
        .build();
    let spans = tracing_opentelemetry::layer()
        .with_tracer(provider.tracer("cairn"))
        .with_filter(EnvFilter::new("info"));
    let _ = tracing_subscriber::registry()
        .with(log)
        .with(spans)
        .try_init();
    Ok(TracingGuard {
        provider: Some(provider),
    })
}

/// The span of one OTLP export, or none for exports of Cairn's own traces.
pub fn export_span(format: &'static str, tenant: &str) -> tracing::Span {
    if tenant == SELF_TENANT {
        tracing::Span::none()
    } else {
        tracing::info_span!("otlp.export", format, tenant, spans = tracing::field::Empty)
    }
}

#[cfg(test)]
mod quiet_tests {
    use super::*;

    #[test]
    fn ballista_logs_warnings_unless_named() {
        assert_eq!(
            with_quiet_crates("info"),
            "info,ballista_core=warn,ballista_scheduler=warn,ballista_executor=warn"
        );
        let named = with_quiet_crates("info,ballista_scheduler=debug");
        assert!(
            named.ends_with("ballista_scheduler=debug,ballista_core=warn,ballista_executor=warn")
        );
        assert!(EnvFilter::try_new(with_quiet_crates("debug")).is_ok());
    }
}
