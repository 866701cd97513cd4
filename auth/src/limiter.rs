//! Failed logins per source: every credential check that the cache of verified tokens does not
//! answer takes one cell of its source's quota (`--auth-attempts-per-minute`, a burst of as
//! many); a source out of cells is refused (429) until one refills. IPv6 sources are counted by
//! their /64, which one client usually holds whole. Memory stays bounded: sources whose quota
//! refilled are forgotten every minute, and at once when more than [`MAX_SOURCES`] are kept.

use std::net::{IpAddr, Ipv6Addr};
use std::num::NonZeroU32;
use std::sync::Arc;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

/// Sources kept at most before the refilled ones are forgotten at once.
const MAX_SOURCES: usize = 100_000;

#[derive(Clone)]
pub struct Limiter {
    limiter: Arc<DefaultKeyedRateLimiter<IpAddr>>,
    clock: DefaultClock,
}

impl Limiter {
    pub fn new(per_minute: usize) -> Self {
        let n = NonZeroU32::new(u32::try_from(per_minute.max(1)).unwrap_or(u32::MAX))
            .expect("at least one");
        Self {
            limiter: Arc::new(RateLimiter::keyed(Quota::per_minute(n))),
            clock: DefaultClock::default(),
        }
    }

    /// Takes one attempt of `peer`'s quota, or the seconds until one is left.
    pub fn attempt(&self, peer: Option<IpAddr>) -> Result<(), u64> {
        if self.limiter.len() > MAX_SOURCES {
            self.limiter.retain_recent();
        }
        self.limiter.check_key(&source(peer)).map_err(|not_until| {
            not_until
                .wait_time_from(self.clock.now())
                .as_secs_f64()
                .ceil()
                .max(1.0) as u64
        })
    }

    /// Forgets sources whose quota is full again (called every minute).
    pub fn forget_refilled(&self) {
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
    }
}

fn source(peer: Option<IpAddr>) -> IpAddr {
    match peer {
        Some(IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let mut segments = v6.segments();
                segments[4..].fill(0);
                IpAddr::V6(Ipv6Addr::from(segments))
            }
        },
        Some(v4) => v4,
        None => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_source_runs_out_and_others_do_not() {
        let limiter = Limiter::new(3);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        for _ in 0..3 {
            limiter.attempt(Some(a)).unwrap();
        }
        let wait = limiter.attempt(Some(a)).unwrap_err();
        assert!((1..=20).contains(&wait), "{wait}");
        limiter.attempt(Some("10.0.0.2".parse().unwrap())).unwrap();
        // One /64 is one source.
        let v6 = |s: &str| Some(s.parse::<IpAddr>().unwrap());
        for _ in 0..3 {
            limiter.attempt(v6("2001:db8::1")).unwrap();
        }
        assert!(limiter.attempt(v6("2001:db8::ffff:2")).is_err());
        assert!(limiter.attempt(v6("2001:db8:0:1::1")).is_ok());
    }
}
