//! HTTP/1.1 connections, served by hyper: keep-alive, a bound on how long a
//! request head (and the wait for the next one) may take, websocket
//! upgrades, and a graceful stop.

use std::time::Duration;

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// A client must send a whole request head within this, or the connection
/// is closed (with a 408 if it had begun one); hyper also applies it to the
/// wait for a keep-alive connection's next request. So neither a half-open
/// nor an idle connection holds a file descriptor for longer. Longer than
/// the edge keeps an idle connection (5 s), so the edge always closes first.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// A route that reads a body must have it within this, as the head (see
/// [`HEADER_READ_TIMEOUT`]): a client trickling it holds a connection and a
/// request in flight no longer.
pub const BODY_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// After a shutdown is asked for, requests in flight get this long to finish.
const GRACE: Duration = Duration::from_secs(5);

/// Pause after a failed accept (out of file descriptors, say), so the loop
/// does not spin while nothing can be accepted.
const ACCEPT_RETRY: Duration = Duration::from_millis(50);

/// Serves `router` on `listener` until `stop` is cancelled, then stops
/// accepting, lets requests in flight finish (up to [`GRACE`]) and returns.
/// A connection upgraded to a websocket is the route's from then on.
pub async fn serve(listener: TcpListener, router: Router, stop: CancellationToken) {
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    let service = TowerToHyperService::new(router);
    let connections = TaskTracker::new();
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
            _ = stop.cancelled() => break,
        };
        if std::mem::take(&mut accept_failing) {
            tracing::info!("accepting connections again");
        }
        // The answer goes out in one write; do not hold it back.
        let _ = stream.set_nodelay(true);
        let connection = http
            .serve_connection(TokioIo::new(stream), service.clone())
            .with_upgrades();
        let stop = stop.clone();
        connections.spawn(async move {
            // A client that leaves or misbehaves ends only its connection.
            tokio::pin!(connection);
            tokio::select! {
                _ = connection.as_mut() => return,
                _ = stop.cancelled() => connection.as_mut().graceful_shutdown(),
            }
            let _ = connection.await;
        });
    }
    drop(listener);
    connections.close();
    if tokio::time::timeout(GRACE, connections.wait())
        .await
        .is_err()
    {
        tracing::warn!("requests still in flight after {GRACE:?}; stopping anyway");
    }
}
