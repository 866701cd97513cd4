//! The query side's metrics, registered in the process's registry (`cairn-telemetry`) and served
//! on `GET /metrics` of the query port: requests by endpoint (route) and outcome with their
//! latency, what the executed plans scanned and pruned, and refusals for lack of query memory.

use std::sync::{Arc, LazyLock};
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use cairn_telemetry::{register, seconds_histogram, Counter, EncodeLabelSet, Family};
use datafusion::physical_plan::metrics::MetricValue;
use datafusion::physical_plan::ExecutionPlan;
use prometheus_client::metrics::histogram::Histogram;
use tracing::Instrument;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Endpoint {
    endpoint: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Outcome {
    endpoint: String,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Place {
    place: &'static str,
}

struct Metrics {
    requests: Family<Outcome, Counter>,
    placed: Family<Place, Counter>,
    seconds: Family<Endpoint, Histogram>,
    rows_scanned: Counter,
    bytes_scanned: Counter,
    files_scanned: Counter,
    files_pruned: Counter,
    row_groups_pruned: Counter,
    memory_refusals: Counter,
}

static METRICS: LazyLock<Metrics> = LazyLock::new(|| {
    let m = Metrics {
        requests: Family::default(),
        placed: Family::default(),
        seconds: Family::new_with_constructor(seconds_histogram),
        rows_scanned: Counter::default(),
        bytes_scanned: Counter::default(),
        files_scanned: Counter::default(),
        files_pruned: Counter::default(),
        row_groups_pruned: Counter::default(),
        memory_refusals: Counter::default(),
    };
    register(
        "query_requests",
        "Query API requests, by endpoint (route) and outcome",
        m.requests.clone(),
    );
    register(
        "query_request_seconds",
        "Latency of query API requests, by endpoint (route)",
        m.seconds.clone(),
    );
    register(
        "query_statements_placed",
        "User statements by where they ran: local, or distributed (on the Ballista cluster)",
        m.placed.clone(),
    );
    register(
        "query_rows_scanned",
        "Rows read from Parquet files by queries",
        m.rows_scanned.clone(),
    );
    register(
        "query_bytes_scanned",
        "Bytes read from Parquet files by queries",
        m.bytes_scanned.clone(),
    );
    register(
        "query_files_scanned",
        "Parquet files (or ranges of them) that queries opened",
        m.files_scanned.clone(),
    );
    register(
        "query_files_pruned",
        "Parquet files (or ranges of them) skipped by their statistics",
        m.files_pruned.clone(),
    );
    register(
        "query_row_groups_pruned",
        "Parquet row groups skipped by their statistics",
        m.row_groups_pruned.clone(),
    );
    register(
        "query_memory_refusals",
        "Queries refused or stopped for lack of query memory or spill space",
        m.memory_refusals.clone(),
    );
    m
});

/// Registers the metrics, so that `/metrics` lists them before the first query.
pub fn init() {
    LazyLock::force(&METRICS);
}

/// The outcome label of an HTTP status.
fn outcome(status: u16) -> &'static str {
    match status {
        200..=399 => "ok",
        503 => "overloaded",
        504 => "timeout",
        400..=499 => "client_error",
        _ => "server_error",
    }
}

/// Middleware counting each request by its route and outcome, and timing it.
pub async fn track(request: Request, next: Next) -> Response {
    let endpoint = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", MatchedPath::as_str)
        .to_owned();
    let started = Instant::now();
    let span = tracing::info_span!(
        "query.request",
        endpoint = %endpoint,
        status = tracing::field::Empty
    );
    let response = next.run(request).instrument(span.clone()).await;
    span.record("status", response.status().as_u16());
    let m = &*METRICS;
    m.seconds
        .get_or_create(&Endpoint {
            endpoint: endpoint.clone(),
        })
        .observe(started.elapsed().as_secs_f64());
    m.requests
        .get_or_create(&Outcome {
            endpoint,
            outcome: outcome(response.status().as_u16()),
        })
        .inc();
    response
}

/// Counts a user statement run `place` (`local` or `distributed`).
pub fn placed(place: &'static str) {
    METRICS.placed.get_or_create(&Place { place }).inc();
}

/// Counts a query refused or stopped for lack of memory or spill space.
pub fn memory_refused() {
    METRICS.memory_refusals.inc();
}

/// Adds what the scans of an executed plan read and skipped.
pub fn record_scans(plan: &Arc<dyn ExecutionPlan>) {
    let m = &*METRICS;
    // Plans are bounded in depth by the guard, but walked without recursion anyway.
    let mut stack = vec![Arc::clone(plan)];
    while let Some(node) = stack.pop() {
        stack.extend(node.children().into_iter().cloned());
        let Some(metrics) = node.metrics() else {
            continue;
        };
        let scan = node.name() == "DataSourceExec";
        for metric in metrics.iter() {
            match metric.value() {
                MetricValue::OutputRows(rows) if scan => {
                    m.rows_scanned.inc_by(rows.value() as u64);
                }
                MetricValue::Count { name, count } if name == "bytes_scanned" => {
                    m.bytes_scanned.inc_by(count.value() as u64);
                }
                MetricValue::PruningMetrics {
                    name,
                    pruning_metrics,
                } => match name.as_ref() {
                    "files_ranges_pruned_statistics" => {
                        m.files_pruned.inc_by(pruning_metrics.pruned() as u64);
                        m.files_scanned.inc_by(pruning_metrics.matched() as u64);
                    }
                    "row_groups_pruned_statistics" => {
                        m.row_groups_pruned.inc_by(pruning_metrics.pruned() as u64);
                    }
                    _ => {}
                },
                _ => {}
            }
        }
    }
}
