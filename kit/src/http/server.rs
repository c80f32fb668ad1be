//! HTTP/1.1 connections, served by hyper: keep-alive, a bound on how long a
//! request head (and the wait for the next one) may take, websocket
//! upgrades, and a graceful stop.

use std::time::{Duration, Instant};

use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use metrics::Counter;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::time::MissedTickBehavior;
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

/// How often the server looks whether connections have closed since it
/// last looked, and if so gives the memory they used back to the system
/// (see [`crate::memory`]): a flood of connections then costs memory only
/// while it lasts, not for the rest of the process's life.
const GIVE_BACK_EVERY: Duration = Duration::from_secs(5);

/// Pause after a failed accept (out of file descriptors, say), so the loop
/// does not spin while nothing can be accepted.
const ACCEPT_RETRY: Duration = Duration::from_millis(50);

/// Serves `app` on `listener` until `stop` is cancelled, then stops
/// accepting, lets requests in flight finish (up to [`GRACE`]) and returns.
/// A connection upgraded to a websocket is the route's from then on.
pub async fn serve(listener: TcpListener, app: super::App, stop: CancellationToken) {
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    let errors = ConnectionErrors::register(app.service);
    let service = TowerToHyperService::new(app.into_service());
    // Tells every connection to finish its request in flight and close. A
    // watch, not the CancellationToken: each connection polls it whenever it
    // wakes, and a token's poll takes a lock.
    let (stopping, stopped) = watch::channel(());
    let connections = TaskTracker::new();
    let mut accept_failing = false;
    let mut give_back = tokio::time::interval(GIVE_BACK_EVERY);
    give_back.set_missed_tick_behavior(MissedTickBehavior::Delay);
    // The most connections open at once since the last look.
    let mut most_open = 0;
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
            _ = give_back.tick() => {
                let open = connections.len();
                if open < most_open {
                    let started = Instant::now();
                    crate::memory::give_back();
                    tracing::debug!(open, most_open, took = ?started.elapsed(), "gave memory back");
                }
                most_open = open;
                continue;
            }
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
        most_open = most_open.max(connections.len() + 1);
        let (mut stopped, errors) = (stopped.clone(), errors.clone());
        connections.spawn(async move {
            // A client that leaves or misbehaves ends only its connection,
            // counted but not logged: a scanner must not flood the log.
            tokio::pin!(connection);
            let ended = tokio::select! {
                ended = connection.as_mut() => Some(ended),
                _ = stopped.changed() => None,
            };
            let ended = match ended {
                Some(ended) => ended,
                None => {
                    connection.as_mut().graceful_shutdown();
                    connection.await
                }
            };
            if let Err(error) = ended {
                errors.count(&error);
            }
        });
    }
    drop(listener);
    let _ = stopping.send(());
    connections.close();
    if tokio::time::timeout(GRACE, connections.wait())
        .await
        .is_err()
    {
        tracing::warn!("requests still in flight after {GRACE:?}; stopping anyway");
    }
}

/// `<service>_http_connection_errors_total{kind}`: connections that ended
/// on an error before or instead of an answer, by what went wrong. Handles
/// registered once, so counting is one atomic add.
#[derive(Clone)]
struct ConnectionErrors {
    /// The request head (or the next one, on keep-alive) took too long.
    timeout: Counter,
    /// Not HTTP, or a head over hyper's limits.
    malformed: Counter,
    /// The client left in the middle of a request.
    incomplete: Counter,
    /// Anything else: a reset, a write that failed.
    other: Counter,
}

impl ConnectionErrors {
    fn register(service: &str) -> ConnectionErrors {
        let name = format!("{service}_http_connection_errors_total");
        metrics::describe_counter!(
            name.clone(),
            "HTTP connections that ended on an error (a slow or malformed request, a client \
             that left mid-request), by kind; none of them is logged."
        );
        let kind = |kind: &'static str| metrics::counter!(name.clone(), "kind" => kind);
        ConnectionErrors {
            timeout: kind("timeout"),
            malformed: kind("malformed"),
            incomplete: kind("incomplete"),
            other: kind("other"),
        }
    }

    fn count(&self, error: &hyper::Error) {
        let counter = if error.is_timeout() {
            &self.timeout
        } else if error.is_parse() || error.is_parse_too_large() {
            &self.malformed
        } else if error.is_incomplete_message() {
            &self.incomplete
        } else {
            &self.other
        };
        counter.increment(1);
    }
}
