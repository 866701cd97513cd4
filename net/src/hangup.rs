//! SIGHUP as "re-read your files": a task that runs a reload, off the IO threads, on every
//! SIGHUP until shutdown.

use tokio_util::sync::CancellationToken;

/// Runs `reload` on a blocking thread on every SIGHUP until `shutdown`. Listening starts at
/// once, so a SIGHUP right after the call never ends the process; where signals cannot be
/// listened to, nothing is spawned.
pub fn on_hangup(shutdown: CancellationToken, reload: impl Fn() + Clone + Send + 'static) {
    let Ok(mut hangup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
    else {
        return;
    };
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = hangup.recv() => {
                    let _ = tokio::task::spawn_blocking(reload.clone()).await;
                }
            }
        }
    });
}
