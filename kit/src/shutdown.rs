//! SIGTERM (`docker stop`) or Ctrl-C, as tokens the service's loops watch.

use std::time::Duration;

use tokio::signal::unix::{signal, Signal, SignalKind};
use tokio_util::sync::CancellationToken;

/// A token cancelled on the first SIGTERM or Ctrl-C, after logging `message`.
/// Needs a running tokio runtime.
pub fn cancel_on_signal(message: &'static str) -> CancellationToken {
    let token = CancellationToken::new();
    let cancel = token.clone();
    let mut terminate = sigterm();
    tokio::spawn(async move {
        next_signal(&mut terminate).await;
        tracing::info!("{message}");
        cancel.cancel();
    });
    token
}

/// A server's stop in two steps. On the first SIGTERM or Ctrl-C `draining`
/// is cancelled: the replica says it is not ready and goes on serving, so
/// that a load balancer checking readiness takes it out of rotation while
/// no request is on its way to it. `drain` later (or at a second signal)
/// `stop` is cancelled: it stops accepting and closes its connections.
/// Stopping at once instead races the balancer: a request sent on a
/// keep-alive connection just as the replica closes it gets no answer.
pub struct Drain {
    pub draining: CancellationToken,
    pub stop: CancellationToken,
}

impl Drain {
    /// Needs a running tokio runtime.
    pub fn on_signal(drain: Duration) -> Drain {
        let draining = CancellationToken::new();
        let stop = CancellationToken::new();
        let mut terminate = sigterm();
        let (signalled, stopping) = (draining.clone(), stop.clone());
        tokio::spawn(async move {
            tokio::select! {
                _ = next_signal(&mut terminate) => {}
                // Stopped for another reason (a setting that cannot work).
                _ = stopping.cancelled() => return,
            }
            tracing::info!(
                "shutting down: not ready, serving for {drain:?} more while \
                 load balancers take this replica out"
            );
            signalled.cancel();
            tokio::select! {
                _ = tokio::time::sleep(drain) => {}
                _ = next_signal(&mut terminate) => {}
                _ = stopping.cancelled() => {}
            }
            tracing::info!("shutting down: finishing requests in flight");
            stopping.cancel();
        });
        Drain { draining, stop }
    }
}

fn sigterm() -> Signal {
    signal(SignalKind::terminate()).expect("install a SIGTERM handler")
}

async fn next_signal(terminate: &mut Signal) {
    tokio::select! {
        _ = terminate.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
