//! The scheduler's jobs as metrics, served on `cairn scheduler`'s `/metrics`: jobs by how they
//! ended, how long finished ones took from being queued, and the tasks waiting for a free slot
//! on an executor.

use std::sync::LazyLock;

use ballista_core::error::Result;
use ballista_core::JobId;
use ballista_scheduler::metrics::SchedulerMetricsCollector;
use cairn_telemetry::{register, seconds_histogram, Counter, Family, Gauge, OutcomeLabel};
use prometheus_client::metrics::histogram::Histogram;

struct Metrics {
    jobs: Family<OutcomeLabel, Counter>,
    seconds: Family<OutcomeLabel, Histogram>,
    pending_tasks: Gauge,
}

static METRICS: LazyLock<Metrics> = LazyLock::new(|| {
    let m = Metrics {
        jobs: Family::default(),
        seconds: Family::new_with_constructor(seconds_histogram),
        pending_tasks: Gauge::default(),
    };
    register(
        "scheduler_jobs",
        "Jobs (distributed statements) by outcome: submitted, completed, failed, cancelled",
        m.jobs.clone(),
    );
    register(
        "scheduler_job_seconds",
        "Time from a job being queued to its completion or failure, by outcome",
        m.seconds.clone(),
    );
    register(
        "scheduler_pending_tasks",
        "Tasks ready to run that wait for a free slot on an executor",
        m.pending_tasks.clone(),
    );
    for outcome in ["submitted", "completed", "failed", "cancelled"] {
        let _ = m.jobs.get_or_create(&OutcomeLabel { outcome });
    }
    m
});

/// Records the scheduler's jobs in Cairn's metrics.
#[derive(Debug, Default)]
pub struct JobMetrics;

impl JobMetrics {
    /// Registers the metrics, so that `/metrics` lists them before the first job.
    pub fn init() -> Self {
        LazyLock::force(&METRICS);
        Self
    }

    fn ended(outcome: &'static str, queued_at: u64, at: u64) {
        let m = &*METRICS;
        m.jobs.get_or_create(&OutcomeLabel { outcome }).inc();
        let seconds = at.saturating_sub(queued_at) as f64 / 1000.0;
        m.seconds
            .get_or_create(&OutcomeLabel { outcome })
            .observe(seconds);
    }
}

impl SchedulerMetricsCollector for JobMetrics {
    fn record_submitted(&self, _job: &JobId, _queued_at: u64, _submitted_at: u64) {
        let outcome = "submitted";
        METRICS.jobs.get_or_create(&OutcomeLabel { outcome }).inc();
    }

    fn record_completed(&self, _job: &JobId, queued_at: u64, completed_at: u64) {
        Self::ended("completed", queued_at, completed_at);
    }

    fn record_failed(&self, _job: &JobId, queued_at: u64, failed_at: u64) {
        Self::ended("failed", queued_at, failed_at);
    }

    fn record_cancelled(&self, _job: &JobId) {
        let outcome = "cancelled";
        METRICS.jobs.get_or_create(&OutcomeLabel { outcome }).inc();
    }

    fn set_pending_tasks_queue_size(&self, value: u64) {
        METRICS.pending_tasks.set(value as i64);
    }

    /// Nothing: the metrics are served with the process's own, not by Ballista's REST API.
    fn gather_metrics(&self) -> Result<Option<(Vec<u8>, String)>> {
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jobs_are_counted_by_outcome() {
        let jobs = JobMetrics::init();
        let job = JobId::new("j");
        jobs.record_submitted(&job, 1_000, 1_010);
        jobs.record_completed(&job, 1_000, 3_500);
        jobs.record_cancelled(&job);
        jobs.set_pending_tasks_queue_size(7);
        let text = cairn_telemetry::render();
        for line in [
            "cairn_scheduler_jobs_total{outcome=\"submitted\"} 1",
            "cairn_scheduler_jobs_total{outcome=\"completed\"} 1",
            "cairn_scheduler_jobs_total{outcome=\"cancelled\"} 1",
            "cairn_scheduler_jobs_total{outcome=\"failed\"} 0",
            "cairn_scheduler_job_seconds_sum{outcome=\"completed\"} 2.5",
            "cairn_scheduler_pending_tasks 7",
        ] {
            assert!(text.contains(line), "{line} not in\n{text}");
        }
    }
}
