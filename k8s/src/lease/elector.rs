//! The campaign loop: one attempt to take or renew the lease every retry period, each bounded
//! in time; leadership published as the instant it ends (see the module above for why that
//! instant is safe).

use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::jiff::Timestamp;
use kube::api::PostParams;
use kube::Api;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::metrics::metrics;
use super::{record, Leadership};

/// The elector's clocks, all derived from the lease duration as client-go's defaults are
/// (15 s / 10 s / 2 s there; 15 s / 10 s / 3 s here).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// How long a record not renewed stays taken.
    pub duration: Duration,
    /// How long after sending its last successful renewal the holder still leads (2/3).
    pub renew_deadline: Duration,
    /// Time between attempts (1/5).
    pub retry_period: Duration,
    /// The longest one request may take (half the renew deadline).
    pub request_timeout: Duration,
}

impl Timing {
    pub fn of(duration: Duration) -> Self {
        let renew_deadline = duration * 2 / 3;
        Self {
            duration,
            renew_deadline,
            retry_period: duration / 5,
            request_timeout: renew_deadline / 2,
        }
    }
}

/// What one attempt found.
enum Outcome {
    /// This process holds the lease, renewed by a request sent at this instant.
    Leading(Instant),
    /// Another holder's record is still valid.
    Held(String),
    /// Another writer got there first (409); try again.
    Conflict,
}

pub struct Elector {
    api: Api<Lease>,
    name: String,
    identity: String,
    timing: Timing,
    leadership: watch::Sender<Option<Instant>>,
    /// The last record seen, and when it was first seen in that state (by this clock).
    observed: Option<(Lease, Instant)>,
    /// Until when this process leads.
    leading_until: Option<Instant>,
    /// Whether the last attempt failed (to log a failing API once, not every retry).
    failing: bool,
}

/// Sleeps until `until`; never returns when there is none.
async fn until(until: Option<Instant>) {
    match until {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

impl Elector {
    pub fn new(
        api: Api<Lease>,
        name: String,
        identity: String,
        timing: Timing,
    ) -> (Self, Leadership) {
        // Registers the metrics, so that a process that never leads shows 0.
        metrics().leader.set(0);
        let (leadership, receiver) = watch::channel(None);
        let elector = Self {
            api,
            name,
            identity,
            timing,
            leadership,
            observed: None,
            leading_until: None,
            failing: false,
        };
        (elector, receiver)
    }

    fn leading(&self) -> bool {
        self.leading_until.is_some_and(|t| t > Instant::now())
    }

    /// Campaigns until `stop`; returns itself, no longer leading, for [`Self::release`].
    pub async fn run(mut self, stop: CancellationToken) -> Self {
        const OVERDUE: &str = "could not renew the lease in time";
        loop {
            let next = Instant::now() + self.timing.retry_period;
            let deadline = self.leading_until;
            let step = {
                let attempt = tokio::time::timeout(self.timing.request_timeout, self.attempt());
                tokio::select! {
                    biased;
                    _ = stop.cancelled() => break,
                    _ = until(deadline) => None,
                    outcome = attempt => Some(outcome),
                }
            };
            match step {
                None => self.step_down(OVERDUE),
                Some(Ok(Ok(outcome))) => self.settle(outcome),
                Some(Ok(Err(e))) => self.failed(&e.to_string()),
                Some(Err(_)) => self.failed("request timed out"),
            }
            tokio::select! {
                biased;
                _ = stop.cancelled() => break,
                _ = until(self.leading_until) => self.step_down(OVERDUE),
                _ = tokio::time::sleep_until(next) => {}
            }
        }
        if self.leading_until.is_some() {
            self.step_down("shutting down");
        }
        self
    }

    /// Takes the lease, renews it, or finds it held.
    async fn attempt(&mut self) -> kube::Result<Outcome> {
        let sent = Instant::now();
        // A leader renews from its own last write (no read); anybody else reads first.
        let current = match &self.observed {
            Some((lease, _)) if self.leading() => Some(lease.clone()),
            _ => self.api.get_opt(&self.name).await?,
        };
        let Some(current) = current else {
            let lease = record::claim(
                None,
                &self.name,
                &self.identity,
                self.timing.duration,
                Timestamp::now(),
            );
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(created) => {
                    self.observe(created);
                    Ok(Outcome::Leading(sent))
                }
                Err(kube::Error::Api(s)) if s.code == 409 => Ok(Outcome::Conflict),
                Err(e) => Err(e),
            };
        };
        self.observe(current.clone());
        if let Some(holder) = record::holder(&current).filter(|h| *h != self.identity) {
            let first_seen = self.observed.as_ref().map_or(sent, |(_, at)| *at);
            let valid = record::duration(&current).unwrap_or(self.timing.duration);
            if first_seen + valid > Instant::now() {
                return Ok(Outcome::Held(holder.to_owned()));
            }
            tracing::info!(lease = %self.name, previous = holder, "the lease expired; taking it over");
        }
        let next = record::claim(
            Some(&current),
            &self.name,
            &self.identity,
            self.timing.duration,
            Timestamp::now(),
        );
        match self
            .api
            .replace(&self.name, &PostParams::default(), &next)
            .await
        {
            Ok(written) => {
                self.observe(written);
                Ok(Outcome::Leading(sent))
            }
            Err(e) => {
                // Read afresh next time.
                self.observed = None;
                match e {
                    kube::Error::Api(s) if s.code == 409 => Ok(Outcome::Conflict),
                    e => Err(e),
                }
            }
        }
    }

    /// Keeps `lease` as the last record seen; its clock restarts when the record changed.
    fn observe(&mut self, lease: Lease) {
        let at = match &self.observed {
            Some((old, at)) if old.spec == lease.spec => *at,
            _ => Instant::now(),
        };
        self.observed = Some((lease, at));
    }

    fn settle(&mut self, outcome: Outcome) {
        if self.failing {
            tracing::info!(lease = %self.name, "the Kubernetes API answers again");
            self.failing = false;
        }
        match outcome {
            Outcome::Leading(sent) => {
                let until = sent + self.timing.renew_deadline;
                if until <= Instant::now() {
                    // Renewed, but too late to lead on it; the next renewal counts.
                    return self.failed("the renewal took longer than the renew deadline");
                }
                if !self.leading() {
                    tracing::info!(lease = %self.name, identity = %self.identity, "leading: this process compacts");
                    metrics().changed(true);
                }
                self.leading_until = Some(until);
                self.leadership.send_replace(Some(until));
            }
            Outcome::Held(holder) => {
                if self.leading_until.is_some() {
                    self.step_down(&format!("{holder} holds the lease"));
                }
                tracing::debug!(lease = %self.name, %holder, "the lease is held");
            }
            Outcome::Conflict => {
                tracing::debug!(lease = %self.name, "the lease changed meanwhile (409); retrying")
            }
        }
    }

    fn failed(&mut self, error: &str) {
        metrics().errors.inc();
        if !self.failing {
            tracing::warn!(lease = %self.name, %error, "lease request failed; retrying");
            self.failing = true;
        } else {
            tracing::debug!(lease = %self.name, %error, "lease request failed");
        }
    }

    fn step_down(&mut self, why: &str) {
        self.leading_until = None;
        self.leadership.send_replace(None);
        metrics().changed(false);
        tracing::warn!(lease = %self.name, reason = why, "no longer leading: compaction stops");
    }

    /// Gives the lease up if the last record seen names this process (a conditional write:
    /// it fails harmlessly if anybody wrote meanwhile). Bounded by the request timeout.
    pub async fn release(self) {
        let Some((lease, _)) = &self.observed else {
            return;
        };
        if record::holder(lease) != Some(self.identity.as_str()) {
            return;
        }
        let released = record::released(lease, Timestamp::now());
        let params = PostParams::default();
        let request = self.api.replace(&self.name, &params, &released);
        match tokio::time::timeout(self.timing.request_timeout, request).await {
            Ok(Ok(_)) => tracing::info!(lease = %self.name, "lease released"),
            Ok(Err(e)) => {
                tracing::warn!(lease = %self.name, error = %e, "releasing the lease failed")
            }
            Err(_) => tracing::warn!(lease = %self.name, "releasing the lease timed out"),
        }
    }
}
