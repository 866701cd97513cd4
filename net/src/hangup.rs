//! SIGHUP as "re-read your files": [`Wakeups`] wakes a reloader on every SIGHUP and, when it
//! also polls its files, on every tick of an interval; [`on_hangup`] runs a reload off the IO
//! threads on every SIGHUP until shutdown.

use std::time::Duration;

use tokio::signal::unix::{signal, Signal, SignalKind};
use tokio::time::{Interval, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

/// Why a reloader woke.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wakeup {
    Hangup,
    Tick,
}

/// SIGHUP, and optionally a polling interval. Listening starts when it is made, so a SIGHUP
/// right after never ends the process; where signals cannot be listened to, only ticks come.
pub struct Wakeups {
    hangup: Option<Signal>,
    ticks: Option<Interval>,
}

impl Wakeups {
    /// SIGHUP, and a tick every `every` (the first one after `every`, not at once).
    pub fn new(every: Option<Duration>) -> Self {
        let ticks = every.map(|every| {
            let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
            ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
            ticks
        });
        Self {
            hangup: signal(SignalKind::hangup()).ok(),
            ticks,
        }
    }

    /// The next SIGHUP or tick; never, when there is neither.
    pub async fn next(&mut self) -> Wakeup {
        let hangup = async {
            let received = match self.hangup.as_mut() {
                Some(h) => h.recv().await.is_some(),
                None => false,
            };
            if !received {
                std::future::pending::<()>().await;
            }
        };
        let tick = async {
            match self.ticks.as_mut() {
                Some(t) => {
                    t.tick().await;
                }
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = hangup => Wakeup::Hangup,
            () = tick => Wakeup::Tick,
        }
    }
}

/// Runs `reload` on a blocking thread on every SIGHUP until `shutdown`.
pub fn on_hangup(shutdown: CancellationToken, reload: impl Fn() + Clone + Send + 'static) {
    let mut wakeups = Wakeups::new(None);
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = wakeups.next() => {
                    let _ = tokio::task::spawn_blocking(reload.clone()).await;
                }
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread")]
    async fn ticks_and_hangups_wake_and_a_hangup_does_not_end_the_process() {
        let mut wakeups = Wakeups::new(Some(Duration::from_millis(50)));
        let started = tokio::time::Instant::now();
        assert_eq!(wakeups.next().await, Wakeup::Tick);
        assert!(started.elapsed() >= Duration::from_millis(50));
        // SIGHUP to this test's own process (nextest runs each test in a process of its own).
        let pid = std::process::id().to_string();
        let status = std::process::Command::new("kill")
            .args(["-HUP", &pid])
            .status()
            .unwrap();
        assert!(status.success());
        let woke = tokio::time::timeout(Duration::from_secs(5), async {
            loop {
                if wakeups.next().await == Wakeup::Hangup {
                    return;
                }
            }
        })
        .await;
        assert!(woke.is_ok(), "no hangup wakeup");
    }

    #[tokio::test]
    async fn without_an_interval_nothing_ticks() {
        let mut wakeups = Wakeups::new(None);
        let waited = tokio::time::timeout(Duration::from_millis(100), wakeups.next()).await;
        assert!(waited.is_err());
    }
}
