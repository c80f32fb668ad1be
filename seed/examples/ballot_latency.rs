//! Ballot-to-websocket latency through the whole stack, for bench/system.sh:
//! casts ballots at the vote service at a steady rate, one new voter each,
//! and times each from the start of its POST to the first websocket message
//! from the result service whose total includes it.
//!
//!     cargo run --release -p seed --example ballot_latency -- \
//!         --vote http://127.0.0.1:5000/ --result http://127.0.0.1:5001/
//!
//! Ballots are counted in the order they were queued, so the n-th ballot
//! sent is counted once the total has grown by n.

use std::time::Duration;

use anyhow::{bail, Context};
use ballot::Tally;
use clap::Parser;
use futures_util::StreamExt;
use hdrhistogram::Histogram;
use reqwest::Url;
use tokio::net::TcpStream;
use tokio::time::{timeout, Instant};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Longest wait for any one step before giving up.
const PATIENCE: Duration = Duration::from_secs(60);

#[derive(Parser)]
struct Cli {
    /// The vote service.
    #[arg(long, default_value = "http://127.0.0.1:5000/")]
    vote: Url,
    /// The result service; its websocket is at /ws.
    #[arg(long, default_value = "http://127.0.0.1:5001/")]
    result: Url,
    #[arg(long, default_value_t = 1_000, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    ballots: u64,
    /// Ballots per second.
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    rate: u64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let mut ws_url = cli.result.join("ws")?;
    ws_url
        .set_scheme("ws")
        .map_err(|()| anyhow::anyhow!("--result must be an http:// URL"))?;
    let (mut socket, _) = timeout(PATIENCE, tokio_tungstenite::connect_async(ws_url.as_str()))
        .await
        .context("websocket connect timed out")??;
    let start_total = next_total(&mut socket).await?;
    let target = start_total + cli.ballots as i64;

    // Every message's arrival and total, read while ballots go out.
    let reader = tokio::spawn(async move {
        let mut seen = Vec::new();
        loop {
            let total = next_total(&mut socket).await?;
            seen.push((Instant::now(), total));
            if total >= target {
                return anyhow::Ok(seen);
            }
        }
    });

    let client = reqwest::Client::builder().timeout(PATIENCE).build()?;
    let mut ticks = tokio::time::interval(Duration::from_secs_f64(1.0 / cli.rate as f64));
    let mut sent_at = Vec::with_capacity(cli.ballots as usize);
    for n in 0..cli.ballots {
        ticks.tick().await;
        let body = if n % 2 == 0 { "vote=a" } else { "vote=b" };
        sent_at.push(Instant::now());
        let response = client
            .post(cli.vote.clone())
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await?;
        if !response.status().is_success() {
            bail!(
                "the vote service answered HTTP {}",
                response.status().as_u16()
            );
        }
        response.bytes().await?;
    }
    let seen = timeout(PATIENCE, reader)
        .await
        .context("not every ballot reached the websocket in time")???;

    let mut micros = Histogram::<u64>::new(3)?;
    for (n, sent) in sent_at.iter().enumerate() {
        let needed = start_total + n as i64 + 1;
        let (shown, _) = seen[seen.partition_point(|&(_, total)| total < needed)];
        micros.record(shown.duration_since(*sent).as_micros() as u64)?;
    }
    let ms = |micros: u64| micros as f64 / 1_000.0;
    println!(
        "p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms ({} ballots at {}/s)",
        ms(micros.value_at_quantile(0.5)),
        ms(micros.value_at_quantile(0.99)),
        ms(micros.max()),
        cli.ballots,
        cli.rate
    );
    Ok(())
}

/// The total of the next tally message.
async fn next_total(socket: &mut Socket) -> anyhow::Result<i64> {
    loop {
        let message = timeout(PATIENCE, socket.next())
            .await
            .context("no websocket message in time")?
            .context("websocket closed")??;
        if let Message::Text(text) = message {
            let tally: Tally = serde_json::from_str(&text).context("a tally message")?;
            return Ok(tally.total);
        }
    }
}
