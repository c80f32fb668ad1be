//! One result websocket through the edge, kept for a long quiet spell and
//! across the loss of the replica it was on.

use std::io::Write;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};
use ballot::Tally;
use futures_util::StreamExt;
use tokio::net::TcpStream;
use tokio::time::{sleep, timeout, timeout_at};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::edge::{describe, Stats};
use crate::Stack;

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// What the client saw.
pub struct Survived {
    pub replica: String,
    /// From printing the replica to the socket closing.
    pub closed_after: Duration,
    /// From the close to a new socket's first tally.
    pub reconnected_after: Duration,
}

/// Connects to the result websocket through the edge; the connection must
/// carry nothing and stay open for `idle`, then show a vote cast through the
/// vote form. Then prints `replica <ip>` (the result replica the edge put it
/// on, by the stats) on stdout and waits up to `limit` for that connection to
/// close (whoever runs this stops that replica); then reconnects, as the
/// results page does, until a new connection gives a tally and shows another
/// vote.
pub async fn idle_then_replica_lost(
    stack: &Stack,
    stats: &Stats,
    idle: Duration,
    limit: Duration,
) -> anyhow::Result<Survived> {
    let url = stack.websocket_url();
    let mut socket = connect(&url, limit).await?;
    let tally = next_tally(&mut socket, limit)
        .await
        .context("no tally on connect")?;

    let quiet_since = Instant::now();
    match timeout(idle, socket.next()).await {
        Err(_) => {}
        Ok(Some(Ok(Message::Close(frame)))) => bail!(
            "{url}: the idle connection was closed after {:?}: {frame:?}",
            quiet_since.elapsed()
        ),
        Ok(Some(Ok(message))) => bail!(
            "{url}: a message after {:?}, so the connection was not idle: {message:?}",
            quiet_since.elapsed()
        ),
        Ok(ended) => bail!(
            "{url}: the idle connection ended after {:?}: {ended:?}",
            quiet_since.elapsed()
        ),
    }
    println!(
        "websocket through the edge idle for {:?} without being cut",
        quiet_since.elapsed()
    );
    vote_and_see(stack, &mut socket, tally, limit)
        .await
        .context("after the idle spell")?;

    let replica = replica_of_the_one_websocket(stats).await?;
    println!("replica {replica}");
    std::io::stdout().flush()?;

    let waiting = Instant::now();
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        match timeout_at(deadline, socket.next()).await {
            Err(_) => bail!("{url}: still open {limit:?} after replica {replica} was to stop"),
            Ok(None | Some(Err(_)) | Some(Ok(Message::Close(_)))) => break,
            Ok(Some(Ok(_))) => {}
        }
    }
    let closed_after = waiting.elapsed();
    drop(socket);

    let lost = Instant::now();
    let (mut socket, tally) = loop {
        let attempt = async {
            let mut socket = connect(&url, Duration::from_secs(2)).await?;
            let tally = next_tally(&mut socket, Duration::from_secs(2)).await?;
            anyhow::Ok((socket, tally))
        };
        match attempt.await {
            Ok(connected) => break connected,
            Err(e) if lost.elapsed() > limit => {
                return Err(e.context(format!("no reconnection within {limit:?}")))
            }
            Err(_) => sleep(Duration::from_millis(250)).await,
        }
    };
    let reconnected_after = lost.elapsed();
    vote_and_see(stack, &mut socket, tally, limit)
        .await
        .context("after reconnecting")?;
    Ok(Survived {
        replica,
        closed_after,
        reconnected_after,
    })
}

/// The address of the result replica holding the only open websocket.
async fn replica_of_the_one_websocket(stats: &Stats) -> anyhow::Result<String> {
    let servers = stats.servers("result").await?;
    let holding: Vec<_> = servers.iter().filter(|s| s.current > 0).collect();
    ensure!(
        holding.len() == 1 && holding[0].current == 1,
        "expected one result replica with one open connection (this websocket), saw: {}",
        servers
            .iter()
            .map(|s| format!("{} {} open {}", s.name, s.addr, s.current))
            .collect::<Vec<_>>()
            .join(", ")
            + &format!(" ({})", describe(&servers))
    );
    Ok(holding[0].ip().to_string())
}

async fn connect(url: &str, limit: Duration) -> anyhow::Result<Socket> {
    let (socket, _) = timeout(limit, tokio_tungstenite::connect_async(url))
        .await
        .with_context(|| format!("{url}: no connection within {limit:?}"))?
        .with_context(|| format!("{url}: could not connect"))?;
    Ok(socket)
}

async fn next_tally(socket: &mut Socket, limit: Duration) -> anyhow::Result<Tally> {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let message = timeout_at(deadline, socket.next())
            .await
            .with_context(|| format!("no message within {limit:?}"))?
            .context("closed")??;
        if let Message::Text(text) = message {
            return serde_json::from_str(&text)
                .with_context(|| format!("a message that is not a tally: {text}"));
        }
    }
}

/// Votes for `a` through the vote form; the socket must then show `tally`
/// plus that vote (later tallies that do not yet are skipped).
async fn vote_and_see(
    stack: &Stack,
    socket: &mut Socket,
    tally: Tally,
    limit: Duration,
) -> anyhow::Result<Tally> {
    let mut expected = tally;
    expected.add("a", 1);
    stack.vote("a").await?;
    let deadline = Instant::now() + limit;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let seen = next_tally(socket, left).await.with_context(|| {
            format!(
                "waiting for {}",
                serde_json::to_string(&expected).unwrap_or_default()
            )
        })?;
        if seen == expected {
            return Ok(seen);
        }
    }
}

/// Follows the result websocket for `duration`, reconnecting (as the results
/// page does) whenever it closes, and prints one line per tally received:
/// `<unix milliseconds> <total>`, flushed at once, so that a script can tell
/// when the tally moved relative to an event it timed itself (e2e/ha.sh: a
/// failover). Fails only if no tally arrives at all.
pub async fn log_tallies(stack: &Stack, duration: Duration) -> anyhow::Result<u64> {
    let url = stack.websocket_url();
    let end = Instant::now() + duration;
    let mut seen = 0;
    while Instant::now() < end {
        let Ok(mut socket) = connect(&url, Duration::from_secs(2)).await else {
            sleep(Duration::from_millis(250)).await;
            continue;
        };
        loop {
            let left = end.saturating_duration_since(Instant::now());
            match next_tally(&mut socket, left).await {
                Ok(tally) => {
                    let now = std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)?
                        .as_millis();
                    println!("{now} {}", tally.total);
                    std::io::stdout().flush()?;
                    seen += 1;
                }
                // Closed (the replica went) or the time is up.
                Err(_) => break,
            }
        }
    }
    ensure!(seen > 0, "{url}: no tally in {duration:?}");
    Ok(seen)
}
