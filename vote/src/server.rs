//! HTTP/1.1 connections, served by hyper: keep-alive, a bound on how long a
//! request head may take, and a graceful stop.

use std::time::Duration;

use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::around::Around;

/// A client must send a whole request head within this, or the connection
/// is closed; hyper also applies it to the wait for a keep-alive
/// connection's next request. So neither a half-open nor an idle connection
/// holds a file descriptor for longer.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// After a shutdown is asked for, requests in flight get this long to finish.
const GRACE: Duration = Duration::from_secs(5);

/// Pause after a failed accept (out of file descriptors, say), so the loop
/// does not spin while nothing can be accepted.
const ACCEPT_RETRY: Duration = Duration::from_millis(50);

/// Serves `service` on `listener` until `shutdown` is cancelled, then stops
/// accepting, lets requests in flight finish (up to [`GRACE`]) and returns.
pub async fn serve(listener: TcpListener, service: Around, shutdown: CancellationToken) {
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    let connections = GracefulShutdown::new();
    let mut accept_failing = false;
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Logged once until an accept succeeds again.
                    if !std::mem::replace(&mut accept_failing, true) {
                        tracing::warn!("cannot accept connections: {e}");
                    }
                    tokio::time::sleep(ACCEPT_RETRY).await;
                    continue;
                }
            },
            _ = shutdown.cancelled() => break,
        };
        if std::mem::take(&mut accept_failing) {
            tracing::info!("accepting connections again");
        }
        // The answer goes out in one write; do not hold it back.
        let _ = stream.set_nodelay(true);
        let connection = http.serve_connection(TokioIo::new(stream), service.clone());
        let connection = connections.watch(connection);
        tokio::spawn(async move {
            // A client that leaves or misbehaves ends only its connection.
            let _ = connection.await;
        });
    }
    drop(listener);
    if tokio::time::timeout(GRACE, connections.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("requests still in flight after {GRACE:?}; stopping anyway");
    }
}
