//! The allocator's own figures as metrics, read twice a second until shutdown:
//! `cairn_memory_allocated_bytes` (bytes the process has allocated and not freed) and
//! `cairn_memory_resident_bytes` (pages jemalloc holds in memory, freed ones it has not yet
//! returned included). Beside `cairn_buffer_bytes` they show what the ingest budget does not
//! count.

use std::time::Duration;

use cairn_telemetry::{register, Gauge};
use tikv_jemalloc_ctl::{epoch, stats};
use tokio_util::sync::CancellationToken;

const EVERY: Duration = Duration::from_millis(500);

/// Registers the gauges and refreshes them until `shutdown`.
pub fn spawn(shutdown: CancellationToken) {
    let (allocated, resident): (Gauge, Gauge) = Default::default();
    register(
        "memory_allocated_bytes",
        "Bytes allocated and not yet freed (jemalloc)",
        allocated.clone(),
    );
    register(
        "memory_resident_bytes",
        "Bytes of pages the allocator holds in memory, freed ones not yet returned included (jemalloc)",
        resident.clone(),
    );
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(EVERY);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tick.tick() => {}
            }
            if epoch::advance().is_err() {
                return;
            }
            if let (Ok(a), Ok(r)) = (stats::allocated::read(), stats::resident::read()) {
                allocated.set(a as i64);
                resident.set(r as i64);
            }
        }
    });
}
