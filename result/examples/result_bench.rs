//! Benchmark clients for bench/result.sh, against a running result service.
//!
//! `latency`: RPUSHes ballots at a steady rate (the real worker moves them
//! into Postgres) and times each one from RPUSH to the first websocket
//! message whose total includes it.
//!
//! `fanout`: holds thousands of websockets open, commits single votes, and
//! times how long each update takes to reach every client; reports the
//! service's memory.

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use ballot::{Ballot, Tally};
use clap::{Parser, Subcommand};
use futures_util::future::join_all;
use futures_util::stream::{self, StreamExt};
use hdrhistogram::Histogram;
use redis::AsyncCommands;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Every wait in the benchmark gives up after this long.
const PATIENCE: Duration = Duration::from_secs(60);

#[derive(Parser)]
struct Cli {
    /// The result service's port on 127.0.0.1.
    #[arg(long)]
    port: u16,
    #[command(subcommand)]
    run: Run,
}

#[derive(Subcommand)]
enum Run {
    Latency {
        #[arg(long)]
        redis_url: String,
        #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
        ballots: u64,
        /// Ballots per second.
        #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=100_000))]
        rate: u64,
    },
    Fanout {
        #[arg(long)]
        database_url: String,
        #[arg(long, default_value_t = 5000, value_parser = clap::value_parser!(u64).range(1..=15_000))]
        clients: u64,
        #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=100))]
        updates: u64,
        /// The service's process id, to read its memory from /proc.
        #[arg(long)]
        pid: u32,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.run {
        Run::Latency {
            redis_url,
            ballots,
            rate,
        } => latency(cli.port, &redis_url, ballots, rate).await,
        Run::Fanout {
            database_url,
            clients,
            updates,
            pid,
        } => fanout(cli.port, &database_url, clients, updates, pid).await,
    }
}

async fn latency(port: u16, redis_url: &str, ballots: u64, rate: u64) -> anyhow::Result<()> {
    let mut socket = connect(port).await?;
    let start_total = next_tally(&mut socket).await?.total;
    let target = start_total + ballots as i64;
    // Each message's arrival time and total, read while ballots are pushed.
    let reader = tokio::spawn(async move {
        let mut seen = Vec::new();
        loop {
            let tally = next_tally(&mut socket).await?;
            seen.push((Instant::now(), tally.total));
            if tally.total >= target {
                return anyhow::Ok(seen);
            }
        }
    });

    let mut redis = redis::Client::open(redis_url)?
        .get_multiplexed_async_connection()
        .await?;
    let run = format!("{:x}", rand_suffix());
    let mut pushed_at = Vec::with_capacity(ballots as usize);
    let mut ticks = tokio::time::interval(Duration::from_secs_f64(1.0 / rate as f64));
    let started = Instant::now();
    for i in 0..ballots {
        ticks.tick().await;
        let ballot = Ballot::cast(
            format!("bench-{run}-{i}"),
            if i % 2 == 0 { "a" } else { "b" },
        );
        pushed_at.push(Instant::now());
        let _: i64 = redis.rpush(ballot::queue::VOTES, ballot.to_json()).await?;
    }
    let pushing = started.elapsed();
    let seen = tokio::time::timeout(PATIENCE, reader)
        .await
        .context("not every ballot reached the websocket")???;

    let mut micros = Histogram::<u64>::new(3)?;
    for (i, pushed) in pushed_at.iter().enumerate() {
        let needed = start_total + i as i64 + 1;
        let shown = seen.partition_point(|(_, total)| *total < needed);
        let (at, _) = seen[shown];
        micros.record(at.duration_since(*pushed).as_micros() as u64)?;
    }
    let ms = |q: f64| micros.value_at_quantile(q) as f64 / 1000.0;
    println!(
        "latency: {ballots} ballots pushed in {:.2} s ({:.0}/s) through the worker",
        pushing.as_secs_f64(),
        ballots as f64 / pushing.as_secs_f64()
    );
    println!(
        "  RPUSH -> websocket message: p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        ms(0.5),
        ms(0.9),
        ms(0.99),
        micros.max() as f64 / 1000.0
    );
    let span = seen
        .last()
        .unwrap()
        .0
        .duration_since(seen[0].0)
        .as_secs_f64();
    println!(
        "  {} websocket messages in {:.2} s ({:.1}/s; the service caps it near 20/s)",
        seen.len(),
        span,
        (seen.len().saturating_sub(1)) as f64 / span.max(0.001)
    );
    Ok(())
}

async fn fanout(
    port: u16,
    database_url: &str,
    clients: u64,
    updates: u64,
    pid: u32,
) -> anyhow::Result<()> {
    let idle_rss = memory(pid)?;
    // Connect in bounded parallel waves; each client reports when it has its
    // first tally, then the arrival time of every later one.
    let (arrivals, mut arrived) = mpsc::unbounded_channel::<(u64, Instant)>();
    let (stop, stopped) = watch::channel(false);
    let connecting = Instant::now();
    let sockets: Vec<Socket> = stream::iter(0..clients)
        .map(|_| async move {
            let mut socket = connect(port).await?;
            next_tally(&mut socket).await?;
            anyhow::Ok(socket)
        })
        .buffer_unordered(200)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<anyhow::Result<_>>()?;
    println!(
        "fan-out: {clients} websocket clients connected in {:.2} s; result RSS {:.1} MiB idle, {:.1} MiB with clients",
        connecting.elapsed().as_secs_f64(),
        idle_rss,
        memory(pid)?
    );
    let readers: Vec<_> = sockets
        .into_iter()
        .map(|mut socket| {
            let arrivals = arrivals.clone();
            let mut stopped = stopped.clone();
            tokio::spawn(async move {
                loop {
                    tokio::select! {
                        tally = next_tally(&mut socket) => {
                            let tally = tally?;
                            let _ = arrivals.send((tally.total as u64, Instant::now()));
                        }
                        _ = stopped.changed() => return anyhow::Ok(()),
                    }
                }
            })
        })
        .collect();
    drop(arrivals);

    let (db, connection) = tokio_postgres::connect(database_url, tokio_postgres::NoTls).await?;
    tokio::spawn(connection);
    let before = db
        .query_one("SELECT COALESCE(SUM(count), 0)::BIGINT FROM tallies", &[])
        .await?
        .get::<_, i64>(0) as u64;
    let mut worst = Vec::new();
    let cpu_before = cpu_seconds(pid)?;
    for update in 1..=updates {
        let committed = Instant::now();
        db.execute(
            "INSERT INTO votes (id, vote) VALUES ($1, 'a')",
            &[&format!("fanout-{:x}-{update}", rand_suffix())],
        )
        .await?;
        let mut received = 0;
        let mut last = committed;
        let mut first = None;
        while received < clients {
            let (total, at) = tokio::time::timeout(PATIENCE, arrived.recv())
                .await
                .context("an update did not reach every client")?
                .context("clients ended")?;
            if total == before + update {
                received += 1;
                first.get_or_insert(at);
                last = at;
            }
        }
        let first = first.unwrap_or(committed);
        println!(
            "  update {update}: commit -> first client {:.1} ms, -> all {clients} clients {:.1} ms",
            first.duration_since(committed).as_secs_f64() * 1000.0,
            last.duration_since(committed).as_secs_f64() * 1000.0
        );
        worst.push(last.duration_since(committed));
        // Past the service's 50 ms coalescing window: one update each.
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let cpu = cpu_seconds(pid)? - cpu_before;
    worst.sort();
    println!(
        "  result CPU per update to {clients} clients: {:.2} ms ({:.2} us per client per update)",
        cpu * 1000.0 / updates as f64,
        cpu * 1e6 / (updates * clients) as f64
    );
    println!(
        "  one update reaches all {clients} clients in {:.1} ms median, {:.1} ms worst; result peak RSS {:.1} MiB",
        worst[worst.len() / 2].as_secs_f64() * 1000.0,
        worst.last().unwrap().as_secs_f64() * 1000.0,
        peak_memory(pid)?
    );
    let _ = stop.send(true);
    for reader in join_all(readers).await {
        reader??;
    }
    Ok(())
}

async fn connect(port: u16) -> anyhow::Result<Socket> {
    let url = format!("ws://127.0.0.1:{port}/ws");
    let (socket, _) = tokio::time::timeout(PATIENCE, tokio_tungstenite::connect_async(url))
        .await
        .context("websocket connect timed out")??;
    Ok(socket)
}

async fn next_tally(socket: &mut Socket) -> anyhow::Result<Tally> {
    loop {
        match tokio::time::timeout(PATIENCE, socket.next()).await {
            Err(_) => bail!("no tally for {PATIENCE:?}"),
            Ok(Some(Ok(Message::Text(text)))) => return Ok(serde_json::from_str(&text)?),
            Ok(Some(Ok(Message::Close(frame)))) => bail!("socket closed: {frame:?}"),
            Ok(Some(Ok(_))) => {}
            Ok(Some(Err(e))) => return Err(e.into()),
            Ok(None) => bail!("socket ended"),
        }
    }
}

/// CPU time `pid` has used (user and system), in seconds: /proc's ticks
/// are 10 ms, so measure over many updates.
fn cpu_seconds(pid: u32) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The fields after the command name (which may hold spaces) in parentheses.
    let fields: Vec<&str> = stat
        .rsplit_once(") ")
        .context("a /proc stat line")?
        .1
        .split_whitespace()
        .collect();
    // utime and stime are the 14th and 15th fields, 12th and 13th after the name.
    let ticks: f64 = fields[11].parse::<f64>()? + fields[12].parse::<f64>()?;
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    Ok(ticks / per_second)
}

/// Resident memory of `pid` now, in MiB.
fn memory(pid: u32) -> anyhow::Result<f64> {
    status_field(pid, "VmRSS:")
}

/// Largest resident memory `pid` has had, in MiB.
fn peak_memory(pid: u32) -> anyhow::Result<f64> {
    status_field(pid, "VmHWM:")
}

fn status_field(pid: u32, field: &str) -> anyhow::Result<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next())
        .context("no such field in /proc status")?
        .parse()?;
    Ok(kib / 1024.0)
}

/// Keeps voter ids of separate runs apart.
fn rand_suffix() -> u64 {
    ballot::now_micros() as u64
}
