//! Whether the process is ready for traffic (`GET /ready`) and alive (`GET /live`), for the
//! readiness and liveness probes of an orchestrator.
//!
//! A process is not ready until every role it runs is listening — a collector has replayed its
//! write-ahead log before it binds — and stops being ready the moment shutdown begins, so that
//! a load balancer sends no new exports or queries to a process that is draining. Liveness only
//! says that the process still answers HTTP.

use std::sync::atomic::{AtomicU8, Ordering};

use axum::http::StatusCode;

const STARTING: u8 = 0;
const READY: u8 = 1;
const DRAINING: u8 = 2;

static STATE: AtomicU8 = AtomicU8::new(STARTING);

/// Marks the process ready: every role is listening.
pub fn set_ready() {
    let _ = STATE.compare_exchange(STARTING, READY, Ordering::SeqCst, Ordering::SeqCst);
}

/// Marks the process as shutting down: `/ready` fails from now on.
pub fn set_draining() {
    STATE.store(DRAINING, Ordering::SeqCst);
}

/// The answer of `GET /ready`.
pub fn ready() -> (StatusCode, &'static str) {
    match STATE.load(Ordering::SeqCst) {
        READY => (StatusCode::OK, "ready\n"),
        DRAINING => (StatusCode::SERVICE_UNAVAILABLE, "shutting down\n"),
        _ => (StatusCode::SERVICE_UNAVAILABLE, "starting\n"),
    }
}

/// The answer of `GET /live`.
pub fn live() -> (StatusCode, &'static str) {
    (StatusCode::OK, "alive\n")
}
