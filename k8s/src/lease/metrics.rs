//! The lease's metrics, registered in the process's registry (`cairn-telemetry`) when the
//! first campaign starts.

use std::sync::LazyLock;

use cairn_telemetry::{register, Counter, EncodeLabelSet, Family, Gauge};

/// Which way leadership changed.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ChangeLabel {
    pub change: &'static str,
}

pub struct Metrics {
    pub leader: Gauge,
    pub transitions: Family<ChangeLabel, Counter>,
    pub errors: Counter,
}

impl Metrics {
    fn new() -> Self {
        let m = Self {
            leader: Gauge::default(),
            transitions: Family::default(),
            errors: Counter::default(),
        };
        register(
            "compactor_leader",
            "1 while this process holds the compactor lease (and may compact), else 0",
            m.leader.clone(),
        );
        register(
            "compactor_leader_transitions",
            "Times this process became (acquired) or stopped being (lost) the compactor leader",
            m.transitions.clone(),
        );
        register(
            "lease_errors",
            "Lease requests to the Kubernetes API that failed or timed out",
            m.errors.clone(),
        );
        m
    }

    /// Counts a change of leadership.
    pub fn changed(&self, leading: bool) {
        self.leader.set(i64::from(leading));
        let change = if leading { "acquired" } else { "lost" };
        self.transitions
            .get_or_create(&ChangeLabel { change })
            .inc();
    }
}

static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);

pub fn metrics() -> &'static Metrics {
    &METRICS
}
