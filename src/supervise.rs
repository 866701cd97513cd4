//! Runs the roles of one process together: when one of them ends before shutdown was asked —
//! with an error, or without one — the others are told to stop (they drain what they hold),
//! and the process exits with that role's error. A process never goes on serving with a part
//! of it dead.

use std::future::Future;
use std::pin::Pin;

use futures::future::join_all;
use tokio_util::sync::CancellationToken;

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// One role of the process, named for the error it ends with.
pub struct Role<'a> {
    pub name: &'static str,
    pub task: Pin<Box<dyn Future<Output = Result<(), BoxError>> + Send + 'a>>,
}

impl<'a> Role<'a> {
    pub fn new(
        name: &'static str,
        task: impl Future<Output = Result<(), BoxError>> + Send + 'a,
    ) -> Self {
        Self {
            name,
            task: Box::pin(task),
        }
    }
}

/// Runs `roles` until all have ended; the first to end before `shutdown` was cancelled
/// cancels it. Returns the first error, naming its role.
pub async fn supervise(roles: Vec<Role<'_>>, shutdown: &CancellationToken) -> Result<(), BoxError> {
    let results = join_all(roles.into_iter().map(|role| async move {
        let result = role.task.await;
        let early = !shutdown.is_cancelled();
        if early {
            match &result {
                Ok(()) => {
                    tracing::error!(role = role.name, "stopped on its own; stopping the others")
                }
                Err(e) => {
                    tracing::error!(role = role.name, error = %e, "failed; stopping the others")
                }
            }
            shutdown.cancel();
        }
        match result {
            Err(e) => Err(BoxError::from(format!("{}: {e}", role.name))),
            Ok(()) if early => Err(BoxError::from(format!("{} stopped on its own", role.name))),
            Ok(()) => Ok(()),
        }
    }))
    .await;
    results.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;

    /// A role that serves until shutdown, then drains (notes that it did).
    fn serving<'a>(shutdown: &'a CancellationToken, drained: &'a AtomicBool) -> Role<'a> {
        Role::new("serving", async move {
            shutdown.cancelled().await;
            tokio::time::sleep(Duration::from_millis(10)).await;
            drained.store(true, Ordering::SeqCst);
            Ok(())
        })
    }

    #[tokio::test]
    async fn a_failing_role_stops_the_others_after_they_drain() {
        let shutdown = CancellationToken::new();
        let drained = AtomicBool::new(false);
        let failing = Role::new("collector", async {
            Err(BoxError::from("the write-ahead log is gone"))
        });
        let result = supervise(vec![serving(&shutdown, &drained), failing], &shutdown).await;
        let error = result.unwrap_err().to_string();
        assert!(
            error.contains("collector: the write-ahead log is gone"),
            "{error}"
        );
        assert!(
            drained.load(Ordering::SeqCst),
            "the other role did not drain"
        );
        assert!(shutdown.is_cancelled());
    }

    #[tokio::test]
    async fn a_role_ending_on_its_own_is_an_error() {
        let shutdown = CancellationToken::new();
        let drained = AtomicBool::new(false);
        let quitting = Role::new("query", async { Ok(()) });
        let error = supervise(vec![quitting, serving(&shutdown, &drained)], &shutdown)
            .await
            .unwrap_err();
        assert!(error.to_string().contains("query stopped on its own"));
        assert!(drained.load(Ordering::SeqCst));
    }

    #[tokio::test]
    async fn shutdown_ends_every_role_cleanly() {
        let shutdown = Arc::new(CancellationToken::new());
        let drained = AtomicBool::new(false);
        let stopper = {
            let shutdown = Arc::clone(&shutdown);
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(10)).await;
                shutdown.cancel();
            })
        };
        supervise(vec![serving(&shutdown, &drained)], &shutdown)
            .await
            .unwrap();
        stopper.await.unwrap();
        assert!(drained.load(Ordering::SeqCst));
    }
}
