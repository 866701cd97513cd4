//! When this process may change the store: always (one compactor per store, the default), or
//! while it holds a lease that the binary campaigns for (`cairn-k8s`'s Kubernetes Lease; this
//! crate knows nothing of Kubernetes). The lease is seen as the instant leadership ends, and
//! the gate compares it with the clock at every use, so a late notification never stretches it.

use tokio::sync::watch;
use tokio::time::Instant;

/// Whether compaction may change the store now.
#[derive(Debug, Clone)]
pub struct Gate {
    /// `None`: always open. Otherwise the instant leadership ends (`None` inside: not leading).
    lease: Option<watch::Receiver<Option<Instant>>>,
}

impl Default for Gate {
    fn default() -> Self {
        Self::always()
    }
}

impl Gate {
    /// A gate that is always open.
    pub fn always() -> Self {
        Self { lease: None }
    }

    /// A gate open while `lease` holds an instant in the future.
    pub fn lease(lease: watch::Receiver<Option<Instant>>) -> Self {
        Self { lease: Some(lease) }
    }

    /// Whether it follows a lease (several compactors may share the store).
    pub fn is_lease(&self) -> bool {
        self.lease.is_some()
    }

    /// Until when the gate is open (`None`: closed; `Some(None)`: open for good).
    fn open_until(&self) -> Option<Option<Instant>> {
        match &self.lease {
            None => Some(None),
            Some(lease) => {
                let until = (*lease.borrow())?;
                (until > Instant::now()).then_some(Some(until))
            }
        }
    }

    /// Whether the store may be changed now.
    pub fn is_open(&self) -> bool {
        self.open_until().is_some()
    }

    /// Waits until the gate is open.
    pub async fn opened(&self) {
        let Some(lease) = &self.lease else {
            return;
        };
        let mut lease = lease.clone();
        loop {
            if self.is_open() {
                return;
            }
            if lease.changed().await.is_err() {
                // Nobody campaigns any more: it stays closed.
                std::future::pending::<()>().await;
            }
        }
    }

    /// Waits until the gate is closed (never, for a gate that is always open).
    pub async fn closed(&self) {
        let Some(lease) = &self.lease else {
            return std::future::pending().await;
        };
        let mut lease = lease.clone();
        loop {
            let Some(Some(until)) = self.open_until() else {
                return;
            };
            tokio::select! {
                _ = tokio::time::sleep_until(until) => return,
                changed = lease.changed() => {
                    if changed.is_err() {
                        tokio::time::sleep_until(until).await;
                        return;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn open_while_the_lease_lasts() {
        let ms = Duration::from_millis;
        assert!(Gate::always().is_open());
        let (tx, rx) = watch::channel(None);
        let gate = Gate::lease(rx);
        assert!(!gate.is_open());
        let opened = tokio::spawn({
            let gate = gate.clone();
            async move { gate.opened().await }
        });
        tx.send_replace(Some(Instant::now() + ms(400)));
        opened.await.unwrap();
        assert!(gate.is_open());
        // Renewed once, then never again: closed at the last deadline, not later.
        tokio::time::sleep(ms(200)).await;
        let deadline = Instant::now() + ms(400);
        tx.send_replace(Some(deadline));
        gate.closed().await;
        let now = Instant::now();
        assert!(now >= deadline && now < deadline + ms(100));
        assert!(!gate.is_open());
        // Stepping down closes it at once.
        tx.send_replace(Some(Instant::now() + Duration::from_secs(60)));
        let closed = tokio::spawn({
            let gate = gate.clone();
            async move { gate.closed().await }
        });
        tokio::time::sleep(ms(50)).await;
        tx.send_replace(None);
        tokio::time::timeout(ms(500), closed)
            .await
            .unwrap()
            .unwrap();
        assert!(!gate.is_open());
    }
}
