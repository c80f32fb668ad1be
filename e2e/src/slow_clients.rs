//! Clients that open a connection and never finish their request (its head,
//! or its body): the edge must keep serving everyone else, and cut them
//! itself.

use std::time::{Duration, Instant};

use anyhow::{ensure, Context};
use futures_util::future::join_all;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout_at;

use crate::Stack;

/// The start of a vote, never finished: no blank line after the headers.
const HALF_A_REQUEST: &[u8] = b"POST / HTTP/1.1\r\nHost: edge\r\n\
    Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 6\r\n";

/// A whole head, then 2 of the 6 body bytes it announces.
const HALF_A_BODY: &[u8] = b"POST / HTTP/1.1\r\nHost: edge\r\n\
    Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 6\r\n\r\nvo";

pub struct HalfOpenReport {
    pub opened: usize,
    /// Each legitimate vote's time to its 200, in order.
    pub votes: Vec<Duration>,
    /// Half-open connections the edge closed (408 or close) within `cut_within`.
    pub cut: usize,
    /// When the last of them was cut, from when it was opened.
    pub last_cut: Duration,
}

/// Opens `connections` half-open requests to the vote URL's host and port
/// (the first `slow_bodies` of them with their head whole and their body
/// begun: more than the vote replicas' 3 x 256 slots, should the edge pass
/// them on before their body is in), then casts `votes` ballots one after another through the vote form, each
/// of which must be answered 200 within `within`; then waits up to
/// `cut_within` for the edge to cut every half-open connection.
pub async fn half_open(
    stack: &Stack,
    connections: usize,
    slow_bodies: usize,
    votes: u32,
    within: Duration,
    cut_within: Duration,
) -> anyhow::Result<HalfOpenReport> {
    let url = reqwest::Url::parse(&stack.vote_url)?;
    let address = format!(
        "{}:{}",
        url.host_str().context("the vote URL has no host")?,
        url.port_or_known_default()
            .context("the vote URL has no port")?
    );
    let opened_at = Instant::now();
    let mut sockets = Vec::with_capacity(connections);
    for chunk in 0..connections.div_ceil(100) {
        let batch = (chunk * 100..connections.min((chunk + 1) * 100)).map(|n| {
            let address = &address;
            async move {
                let mut socket = TcpStream::connect(address).await?;
                let start = if n < slow_bodies {
                    HALF_A_BODY
                } else {
                    HALF_A_REQUEST
                };
                socket.write_all(start).await?;
                anyhow::Ok(socket)
            }
        });
        for socket in join_all(batch).await {
            sockets.push(socket.with_context(|| {
                format!(
                    "opening half-open connection {} to {address}",
                    sockets.len() + 1
                )
            })?);
        }
    }
    let opened = sockets.len();

    let mut times = Vec::new();
    for n in 1..=votes {
        let start = Instant::now();
        let answered = tokio::time::timeout(within, stack.vote("a")).await;
        let took = start.elapsed();
        answered
            .with_context(|| {
                format!("vote {n} of {votes} beside {opened} half-open connections: no answer within {within:?}")
            })?
            .with_context(|| format!("vote {n} of {votes} beside {opened} half-open connections"))?;
        times.push(took);
    }

    // The edge answers a request (head or body) that never completes with
    // 408 and closes; either way the read ends.
    let deadline = tokio::time::Instant::from_std(opened_at + cut_within);
    let cuts = join_all(sockets.into_iter().map(|mut socket| async move {
        let mut buffer = [0u8; 512];
        loop {
            match timeout_at(deadline, socket.read(&mut buffer)).await {
                Err(_) => return None,
                Ok(Ok(0)) | Ok(Err(_)) => return Some(opened_at.elapsed()),
                Ok(Ok(_)) => continue,
            }
        }
    }))
    .await;
    let cut: Vec<Duration> = cuts.into_iter().flatten().collect();
    let report = HalfOpenReport {
        opened,
        votes: times,
        cut: cut.len(),
        last_cut: cut.iter().copied().max().unwrap_or_default(),
    };
    ensure!(
        report.cut == opened,
        "the edge cut {} of {opened} half-open connections within {cut_within:?}",
        report.cut
    );
    Ok(report)
}
