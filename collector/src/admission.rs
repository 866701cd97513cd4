//! The ingest memory budget, and the one admission rule both receivers follow.
//!
//! A request is charged against the budget at every stage that holds its bytes, before the
//! stage allocates them: its body as it is read, its decompressed bytes as they inflate, an
//! estimate of its decoded structs before decoding ([`crate::estimate`]), and, once normalised,
//! the Arrow batches and log record it keeps until they are written together with the copies
//! their flush will make (concatenating, gathering in sorted order, encoding). OTLP/gRPC bodies
//! are charged frame by frame as they arrive, OTLP/HTTP bodies likewise (or at once when their
//! length is declared). A charge that cannot grow
//! refuses the request: as retryable (`Overloaded`) while other requests hold the budget, as
//! final (`TooLarge`) when the request alone would need more than the whole budget. The
//! charge is returned when the request's spans are written, or when it is refused.

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::{Error, Result};

/// Budget granularity in bytes.
const UNIT: usize = 1024;

fn units(bytes: usize) -> usize {
    bytes.div_ceil(UNIT)
}

/// The memory budget of one collector. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Budget {
    semaphore: Arc<Semaphore>,
    total_units: usize,
}

/// Memory held by one request against the [`Budget`]; returned when dropped.
#[derive(Debug)]
pub struct Charge {
    budget: Budget,
    permit: Option<OwnedSemaphorePermit>,
}

impl Budget {
    /// A budget of `bytes` (at least one unit).
    pub fn new(bytes: usize) -> Self {
        let total_units = units(bytes).clamp(1, Semaphore::MAX_PERMITS);
        Self {
            semaphore: Arc::new(Semaphore::new(total_units)),
            total_units,
        }
    }

    /// Bytes of the budget in use now.
    pub fn used_bytes(&self) -> usize {
        (self.total_units - self.semaphore.available_permits()) * UNIT
    }

    /// Publishes the bytes in use (`cairn_buffer_bytes`).
    fn report(&self) {
        crate::metrics::metrics()
            .buffer_bytes
            .set(self.used_bytes() as i64);
    }

    /// An empty charge, to grow as the request is read.
    pub fn charge(&self) -> Charge {
        Charge {
            budget: self.clone(),
            permit: None,
        }
    }
}

impl Charge {
    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.permit.as_ref().map_or(0, |p| p.num_permits()) * UNIT
    }

    /// Grows the charge to at least `bytes`, or refuses: `TooLarge` if `bytes` is more than the
    /// whole budget, `Overloaded` if the budget is busy. `what` names the stage for the message.
    pub fn grow_to(&mut self, bytes: usize, what: &str) -> Result<()> {
        let want = units(bytes);
        let held = self.permit.as_ref().map_or(0, |p| p.num_permits());
        if want <= held {
            return Ok(());
        }
        if want > self.budget.total_units {
            return Err(Error::TooLarge(format!(
                "{what} needs about {bytes} bytes of memory, more than the collector's whole buffer ({} bytes); send smaller requests",
                self.budget.total_units * UNIT
            )));
        }
        let extra = u32::try_from(want - held)
            .map_err(|_| Error::TooLarge(format!("{what} needs about {bytes} bytes of memory")))?;
        let more = Arc::clone(&self.budget.semaphore)
            .try_acquire_many_owned(extra)
            .map_err(|_| {
                Error::Overloaded(format!(
                    "span buffer is full ({what} needs about {bytes} bytes), retry later"
                ))
            })?;
        match &mut self.permit {
            Some(p) => p.merge(more),
            None => self.permit = Some(more),
        }
        self.budget.report();
        Ok(())
    }

    /// Adds `bytes` to the charge.
    pub fn grow_by(&mut self, bytes: usize, what: &str) -> Result<()> {
        self.grow_to(self.bytes().saturating_add(bytes), what)
    }

    /// Sets the charge to exactly `bytes` (rounded up to the unit): grows, or returns the excess.
    pub fn set(&mut self, bytes: usize, what: &str) -> Result<()> {
        let want = units(bytes);
        let held = self.permit.as_ref().map_or(0, |p| p.num_permits());
        if want > held {
            return self.grow_to(bytes, what);
        }
        if let Some(p) = &mut self.permit {
            if want == 0 {
                self.permit = None;
            } else if let Some(excess) = p.split(held - want) {
                drop(excess);
            }
        }
        self.budget.report();
        Ok(())
    }
}

impl Drop for Charge {
    fn drop(&mut self) {
        if self.permit.take().is_some() {
            self.budget.report();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charges_grow_shrink_and_return() {
        let budget = Budget::new(10 * UNIT);
        let mut a = budget.charge();
        a.grow_to(4 * UNIT, "a").unwrap();
        a.grow_by(UNIT + 1, "a").unwrap();
        assert_eq!(a.bytes(), 6 * UNIT);
        let mut b = budget.charge();
        assert!(matches!(
            b.grow_to(5 * UNIT, "b"),
            Err(Error::Overloaded(_))
        ));
        assert!(matches!(b.grow_to(11 * UNIT, "b"), Err(Error::TooLarge(_))));
        a.set(2 * UNIT, "a").unwrap();
        assert_eq!(budget.used_bytes(), 2 * UNIT);
        b.grow_to(8 * UNIT, "b").unwrap();
        drop(a);
        drop(b);
        assert_eq!(budget.used_bytes(), 0);
    }
}
