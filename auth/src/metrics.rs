//! `cairn_auth_failures_total{reason}` and `cairn_auth_rate_limited_total`, in the process's
//! registry (`cairn-telemetry`), registered when first used.

use std::sync::LazyLock;

use cairn_telemetry::{register, Counter, EncodeLabelSet, Family};

use crate::AuthError;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Reason {
    reason: &'static str,
}

struct Metrics {
    failures: Family<Reason, Counter>,
    rate_limited: Counter,
}

static METRICS: LazyLock<Metrics> = LazyLock::new(|| {
    let m = Metrics {
        failures: Family::default(),
        rate_limited: Counter::default(),
    };
    register(
        "auth_failures",
        "Requests refused by authentication, by reason",
        m.failures.clone(),
    );
    register(
        "auth_rate_limited",
        "Requests refused because their source failed to log in too often",
        m.rate_limited.clone(),
    );
    m
});

/// Registers the metrics (so that they show at 0 before the first refusal).
pub fn init() {
    LazyLock::force(&METRICS);
}

pub fn refused(error: &AuthError) {
    let reason = match error {
        AuthError::BadRequest(_) => "bad_request",
        AuthError::Unauthenticated(failure) => failure.reason(),
        AuthError::Forbidden(_) => "forbidden",
        AuthError::RateLimited { .. } => "rate_limited",
        AuthError::TokenFile { .. } | AuthError::Internal(_) => "internal",
    };
    METRICS.failures.get_or_create(&Reason { reason }).inc();
}

pub fn rate_limited() {
    METRICS.rate_limited.inc();
}
