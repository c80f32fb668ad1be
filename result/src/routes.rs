//! HTTP: the page and its assets, the tally as JSON and over a websocket,
//! and the health endpoints.

use std::sync::Arc;
use std::time::{Duration, Instant};

use askama::Template;
use ballot::VoteOptions;
use futures_util::{SinkExt, StreamExt};
use kit::metrics::Metrics;
use rocket::http::{ContentType, Status};
use rocket::response::content::RawHtml;
use rocket::{get, routes, Route, Shutdown, State};
use rocket_ws::frame::{CloseCode, CloseFrame};
use rocket_ws::stream::DuplexStream;
use rocket_ws::{Channel, Message, WebSocket};
use tokio::sync::watch;
use tokio::time::timeout;

use crate::feed::{Feed, Published};
use crate::page::ResultsPage;
use crate::Sockets;

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
/// Browsers send nothing but a close; a client may send this many messages
/// (pings and pongs included) at once and this many a second after that.
/// A client over it is closed with 1008 (policy violation).
const INCOMING_BURST: f64 = 16.0;
const INCOMING_PER_SECOND: f64 = 4.0;

type Unavailable = (Status, &'static str);
const DATABASE_DOWN: Unavailable = (Status::ServiceUnavailable, "database unavailable\n");

pub fn all() -> Vec<Route> {
    routes![page, script, style, favicon, tally, socket, healthz, readyz, metrics]
}

#[get("/metrics")]
fn metrics(metrics: &State<&'static Metrics>) -> (ContentType, String) {
    (
        ContentType::new("text", "plain").with_params(("version", "0.0.4")),
        metrics.render(),
    )
}

#[get("/")]
fn page(feed: &State<watch::Receiver<Feed>>, options: &State<VoteOptions>) -> RawHtml<String> {
    let feed = feed.borrow().clone();
    let tally = feed.latest.as_ref().map(|p| &p.tally);
    let page = ResultsPage::new(options, tally, feed.live);
    RawHtml(page.render().expect("the results page renders"))
}

#[get("/result.js")]
fn script() -> (ContentType, &'static str) {
    (ContentType::JavaScript, include_str!("../static/result.js"))
}

#[get("/result.css")]
fn style() -> (ContentType, &'static str) {
    (ContentType::CSS, include_str!("../static/result.css"))
}

#[get("/favicon.svg")]
fn favicon() -> (ContentType, &'static str) {
    (ContentType::SVG, include_str!("../static/favicon.svg"))
}

#[get("/api/tally")]
fn tally(feed: &State<watch::Receiver<Feed>>) -> Result<(ContentType, String), Unavailable> {
    let latest = current(feed).ok_or(DATABASE_DOWN)?;
    Ok((ContentType::JSON, latest.json.clone()))
}

/// While Postgres is away the upgrade is refused, so browsers show
/// "reconnecting" and retry.
#[get("/ws")]
fn socket(
    ws: WebSocket,
    feed: &State<watch::Receiver<Feed>>,
    sockets: &State<Sockets>,
    shutdown: Shutdown,
) -> Result<Channel<'static>, Unavailable> {
    current(feed).ok_or(DATABASE_DOWN)?;
    let feed = feed.inner().clone();
    let config = rocket_ws::Config {
        max_message_size: Some(MAX_CLIENT_MESSAGE),
        max_frame_size: Some(MAX_CLIENT_MESSAGE),
        // Hand every frame to the kernel at once; hold back no more than
        // MAX_UNSENT when it takes nothing.
        write_buffer_size: 0,
        max_write_buffer_size: MAX_UNSENT,
        ..Default::default()
    };
    let sockets = sockets.inner().clone();
    Ok(ws.config(config).channel(move |stream| {
        // Rocket holds the upgrade request, and the 16 KiB buffer it was
        // read into, until this future ends: a task of our own per socket
        // lets them go, halving the memory each client costs.
        sockets.spawn(async move {
            let _connected = Connected::count();
            if let Err(error) = stream_tallies(stream, feed, shutdown).await {
                tracing::debug!(%error, "websocket client dropped");
            }
        });
        Box::pin(async { Ok(()) })
    }))
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

#[get("/healthz")]
fn healthz() -> &'static str {
    "ok\n"
}

#[get("/readyz")]
fn readyz(feed: &State<watch::Receiver<Feed>>) -> Result<&'static str, Unavailable> {
    current(feed).ok_or(DATABASE_DOWN)?;
    Ok("ready\n")
}

/// The latest tally, if Postgres answers.
fn current(feed: &watch::Receiver<Feed>) -> Option<Arc<Published>> {
    let feed = feed.borrow();
    feed.live.then(|| feed.latest.clone()).flatten()
}

/// Sends the current tally, then each new one. The watch channel holds only
/// the latest value, and a send completes only once the kernel has taken
/// it, so a slow client skips stale tallies instead of queueing them; one
/// that stops reading is dropped after SEND_TIMEOUT.
async fn stream_tallies(
    stream: DuplexStream,
    mut feed: watch::Receiver<Feed>,
    mut shutdown: Shutdown,
) -> rocket_ws::result::Result<()> {
    let (mut sink, mut incoming) = stream.split();
    let mut sent: Option<Arc<Published>> = None;
    let mut allowance = Allowance::new(Instant::now());
    loop {
        let now = feed.borrow_and_update().clone();
        let Some(latest) = now.latest.filter(|_| now.live) else {
            return close(sink, CloseCode::Again, "database unavailable").await;
        };
        if !sent.as_ref().is_some_and(|s| Arc::ptr_eq(s, &latest)) {
            let message = Message::Text(latest.json.clone());
            match timeout(SEND_TIMEOUT, sink.send(message)).await {
                Ok(result) => result?,
                Err(_) => return Ok(()),
            }
            sent = Some(latest);
        }
        tokio::select! {
            changed = feed.changed() => {
                if changed.is_err() {
                    return close(sink, CloseCode::Away, "shutting down").await;
                }
            }
            message = incoming.next() => match message {
                Some(Ok(Message::Close(_))) => {
                    // tungstenite has queued the echo of the client's close.
                    let _ = timeout(CLOSE_TIMEOUT, sink.flush()).await;
                    return Ok(());
                }
                Some(Err(rocket_ws::result::Error::Capacity(_))) => {
                    return close(sink, CloseCode::Size, "message too big").await;
                }
                Some(Err(_)) | None => return Ok(()),
                Some(Ok(_)) if !allowance.take(Instant::now()) => {
                    return close(sink, CloseCode::Policy, "too many messages").await;
                }
                Some(Ok(_)) => {}
            },
            _ = &mut shutdown => return close(sink, CloseCode::Away, "shutting down").await,
        }
    }
}

async fn close(
    mut sink: futures_util::stream::SplitSink<DuplexStream, Message>,
    code: CloseCode,
    reason: &'static str,
) -> rocket_ws::result::Result<()> {
    let frame = CloseFrame {
        code,
        reason: reason.into(),
    };
    let _ = timeout(CLOSE_TIMEOUT, sink.send(Message::Close(Some(frame)))).await;
    Ok(())
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
