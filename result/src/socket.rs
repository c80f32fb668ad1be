//! One websocket client: the tally at once, then every new one, within
//! bounds that a client that stops reading or floods the service cannot
//! push it past.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::ws::{close_code, CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::response::Response;
use futures_util::SinkExt;
use tokio::sync::watch;
use tokio::time::timeout;
use tokio_util::sync::CancellationToken;

use crate::feed::{Feed, Published};
use crate::App;

/// A client whose socket cannot take a whole message within this long is
/// dropped: it has stopped reading, and the kernel's buffers are full.
const SEND_TIMEOUT: Duration = Duration::from_secs(5);
/// A close frame is a courtesy: a client that cannot take it is dropped.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);
/// Bytes a socket may hold that the kernel has not taken: the one tally
/// being sent (well under 1 KiB) and pongs. tungstenite's default is
/// unbounded, so a client that sends pings and never reads made the
/// service queue a pong per ping without end. At the cap a pong waiting to
/// go out replaces the previous one and a tally send fails, which drops
/// the client.
const MAX_UNSENT: usize = 16 * 1024;
/// Clients only ever send close frames; anything large is not ours.
const MAX_CLIENT_MESSAGE: usize = 4096;
/// tungstenite allocates its read buffer up front, 128 KiB by default:
/// for thousands of clients that send nothing but a close, a small one.
const READ_BUFFER: usize = 4096;
/// Browsers send nothing but a close; a client may send this many messages
/// (pings and pongs included) at once and this many a second after that.
/// A client over it is closed with 1008 (policy violation).
const INCOMING_BURST: f64 = 16.0;
const INCOMING_PER_SECOND: f64 = 4.0;

/// Completes the upgrade; the socket then runs as a task of its own.
pub fn accept(upgrade: WebSocketUpgrade, app: &App) -> Response {
    let feed = app.feed.clone();
    let stop = app.stop.clone();
    // Counted from the upgrade on, so that a shutdown just after it still
    // waits for this socket's close frame.
    let tracked = app.sockets.token();
    upgrade
        .read_buffer_size(READ_BUFFER)
        .max_message_size(MAX_CLIENT_MESSAGE)
        .max_frame_size(MAX_CLIENT_MESSAGE)
        // Hand every frame to the kernel at once; hold back no more than
        // MAX_UNSENT when it takes nothing.
        .write_buffer_size(0)
        .max_write_buffer_size(MAX_UNSENT)
        .on_upgrade(move |socket| async move {
            let _tracked = tracked;
            let _connected = Connected::count();
            if let Err(error) = stream_tallies(socket, feed, stop).await {
                tracing::debug!(%error, "websocket client dropped");
            }
        })
}

/// One websocket client in `result_websocket_clients`, for as long as it lives.
struct Connected;

impl Connected {
    fn count() -> Connected {
        ::metrics::gauge!("result_websocket_clients").increment(1.0);
        Connected
    }
}

impl Drop for Connected {
    fn drop(&mut self) {
        ::metrics::gauge!("result_websocket_clients").decrement(1.0);
    }
}

/// Sends the current tally, then each new one. The watch channel holds only
/// the latest value, and a send completes only once the kernel has taken
/// it, so a slow client skips stale tallies instead of queueing them; one
/// that stops reading is dropped after SEND_TIMEOUT.
async fn stream_tallies(
    mut socket: WebSocket,
    mut feed: watch::Receiver<Feed>,
    stop: CancellationToken,
) -> Result<(), axum::Error> {
    let mut sent: Option<Arc<Published>> = None;
    let mut allowance = Allowance::new(Instant::now());
    loop {
        let now = feed.borrow_and_update().clone();
        let Some(latest) = now.latest.filter(|_| now.live) else {
            return close(socket, close_code::AGAIN, "database unavailable").await;
        };
        if !sent.as_ref().is_some_and(|s| Arc::ptr_eq(s, &latest)) {
            let message = Message::Text(latest.json.clone());
            match timeout(SEND_TIMEOUT, socket.send(message)).await {
                Ok(result) => result?,
                Err(_) => return Ok(()),
            }
            sent = Some(latest);
        }
        tokio::select! {
            changed = feed.changed() => {
                if changed.is_err() {
                    return close(socket, close_code::AWAY, "shutting down").await;
                }
            }
            message = socket.recv() => match message {
                Some(Ok(Message::Close(_))) => {
                    // tungstenite has queued the echo of the client's close.
                    let _ = timeout(CLOSE_TIMEOUT, socket.flush()).await;
                    return Ok(());
                }
                Some(Err(error)) if too_big(&error) => {
                    return close(socket, close_code::SIZE, "message too big").await;
                }
                Some(Err(_)) | None => return Ok(()),
                Some(Ok(_)) if !allowance.take(Instant::now()) => {
                    return close(socket, close_code::POLICY, "too many messages").await;
                }
                Some(Ok(_)) => {}
            },
            () = stop.cancelled() => {
                return close(socket, close_code::AWAY, "shutting down").await;
            }
        }
    }
}

async fn close(mut socket: WebSocket, code: u16, reason: &'static str) -> Result<(), axum::Error> {
    let reason = Utf8Bytes::from_static(reason);
    let frame = Message::Close(Some(CloseFrame { code, reason }));
    let _ = timeout(CLOSE_TIMEOUT, socket.send(frame)).await;
    Ok(())
}

/// A message or frame over [`MAX_CLIENT_MESSAGE`]: axum passes on
/// tungstenite's error, which says so.
fn too_big(error: &axum::Error) -> bool {
    std::error::Error::source(error)
        .and_then(|e| e.downcast_ref::<tungstenite::Error>())
        .is_some_and(|e| matches!(e, tungstenite::Error::Capacity(_)))
}

/// A token bucket: how many more messages a client may send now.
struct Allowance {
    left: f64,
    at: Instant,
}

impl Allowance {
    fn new(now: Instant) -> Allowance {
        Allowance {
            left: INCOMING_BURST,
            at: now,
        }
    }

    /// Spends one message; false if the client has none left.
    fn take(&mut self, now: Instant) -> bool {
        let earned = now.duration_since(self.at).as_secs_f64() * INCOMING_PER_SECOND;
        self.left = (self.left + earned).min(INCOMING_BURST);
        self.at = now;
        if self.left < 1.0 {
            return false;
        }
        self.left -= 1.0;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_then_a_steady_rate() {
        let start = Instant::now();
        let mut allowance = Allowance::new(start);
        assert!((0..16).all(|_| allowance.take(start)));
        assert!(!allowance.take(start));
        // Four a second: one more after 250 ms, and not two.
        let later = start + Duration::from_millis(250);
        assert!(allowance.take(later));
        assert!(!allowance.take(later));
        // Idle time refills the burst, never more.
        let much_later = later + Duration::from_secs(60);
        assert!((0..16).all(|_| allowance.take(much_later)));
        assert!(!allowance.take(much_later));
    }
}
