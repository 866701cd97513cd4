//! The Lease records the elector writes (taken, renewed, released) and what it reads from
//! them, as client-go's `LeaseLock` does.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;

/// The holder a record names (`None` when free or released).
pub fn holder(lease: &Lease) -> Option<&str> {
    lease
        .spec
        .as_ref()?
        .holder_identity
        .as_deref()
        .filter(|h| !h.is_empty())
}

/// How long the record stays taken without renewal, as its holder wrote it.
pub fn duration(lease: &Lease) -> Option<Duration> {
    let seconds = lease.spec.as_ref()?.lease_duration_seconds?;
    u64::try_from(seconds).ok().map(Duration::from_secs)
}

fn seconds(duration: Duration) -> i32 {
    i32::try_from(duration.as_secs().max(1)).unwrap_or(i32::MAX)
}

/// The record that makes `identity` the holder as of `now`: a renewal when it already holds
/// `current`, else a take-over (a new acquire time, one more transition). Keeps the
/// metadata of `current` (its resourceVersion makes the replace conditional).
pub fn claim(
    current: Option<&Lease>,
    name: &str,
    identity: &str,
    duration: Duration,
    now: Timestamp,
) -> Lease {
    let spec = current.and_then(|l| l.spec.clone()).unwrap_or_default();
    let renewing = current.and_then(holder) == Some(identity);
    let transitions = spec.lease_transitions.unwrap_or(0);
    Lease {
        metadata: current.map(|l| l.metadata.clone()).unwrap_or(ObjectMeta {
            name: Some(name.to_owned()),
            ..ObjectMeta::default()
        }),
        spec: Some(LeaseSpec {
            holder_identity: Some(identity.to_owned()),
            lease_duration_seconds: Some(seconds(duration)),
            acquire_time: if renewing {
                spec.acquire_time.clone()
            } else {
                Some(MicroTime(now))
            },
            renew_time: Some(MicroTime(now)),
            lease_transitions: Some(if renewing || current.is_none() {
                transitions
            } else {
                transitions + 1
            }),
            ..spec
        }),
    }
}

/// `current` given up: no holder, a one-second duration, so that any candidate takes it at once.
pub fn released(current: &Lease, now: Timestamp) -> Lease {
    let spec = current.spec.clone().unwrap_or_default();
    Lease {
        metadata: current.metadata.clone(),
        spec: Some(LeaseSpec {
            holder_identity: None,
            lease_duration_seconds: Some(1),
            acquire_time: Some(MicroTime(now)),
            renew_time: Some(MicroTime(now)),
            ..spec
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn take_renew_release() {
        let t0 = Timestamp::from_second(1_700_000_000).unwrap();
        let t1 = Timestamp::from_second(1_700_000_003).unwrap();
        let d = Duration::from_secs(15);
        let created = claim(None, "lock", "a", d, t0);
        assert_eq!(created.metadata.name.as_deref(), Some("lock"));
        assert_eq!(holder(&created), Some("a"));
        assert_eq!(duration(&created), Some(d));
        let spec = created.spec.clone().unwrap();
        assert_eq!(spec.lease_transitions, Some(0));

        let renewed = claim(Some(&created), "lock", "a", d, t1);
        let r = renewed.spec.clone().unwrap();
        assert_eq!(r.acquire_time, spec.acquire_time);
        assert_eq!(r.renew_time, Some(MicroTime(t1)));
        assert_eq!(r.lease_transitions, Some(0));

        let taken = claim(Some(&renewed), "lock", "b", d, t1);
        let t = taken.spec.clone().unwrap();
        assert_eq!(holder(&taken), Some("b"));
        assert_eq!(t.acquire_time, Some(MicroTime(t1)));
        assert_eq!(t.lease_transitions, Some(1));

        let free = released(&taken, t1);
        assert_eq!(holder(&free), None);
        assert_eq!(duration(&free), Some(Duration::from_secs(1)));
        assert_eq!(free.spec.unwrap().lease_transitions, Some(1));
    }
}
