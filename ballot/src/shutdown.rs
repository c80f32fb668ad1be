//! SIGTERM (`docker stop`) or Ctrl-C, as a token the service's loops watch.

use tokio::signal::unix::{signal, SignalKind};
use tokio_util::sync::CancellationToken;

/// A token cancelled on the first SIGTERM or Ctrl-C, after logging `message`.
/// Needs a running tokio runtime.
pub fn cancel_on_signal(message: &'static str) -> CancellationToken {
    let token = CancellationToken::new();
    let cancel = token.clone();
    let mut terminate = signal(SignalKind::terminate()).expect("install a SIGTERM handler");
    tokio::spawn(async move {
        tokio::select! {
            _ = terminate.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
        tracing::info!("{message}");
        cancel.cancel();
    });
    token
}
