//! Hostile websocket clients against the result binary in its own process:
//! pings sent as fast as the socket takes them, never a byte read. The
//! service's memory must stay put and a well-behaved client must keep
//! getting every change on time.

mod support;

use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use support::*;
use test_servers::Postgres;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{sleep, timeout};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

const FLOODERS: usize = 5;
/// The flood's first half changes no tally, its second a vote every 250 ms.
/// Both matter: with a tally to send, even a service without bounds drops a
/// flooder, once its socket is full and the send times out.
const QUIET: Duration = Duration::from_secs(10);
const VOTING: Duration = Duration::from_secs(10);
const VOTE_EVERY: Duration = Duration::from_millis(250);
/// How much the flood may raise the service's resident memory.
const MOST_GROWTH_KIB: u64 = 50 * 1024;
/// How late a tally change may reach the well-behaved client.
const MOST_DELAY: Duration = Duration::from_secs(1);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ping_floods_neither_grow_memory_nor_delay_other_clients() {
    let url = Postgres::shared().fresh_database();
    let result = ResultProcess::start(&url, |_| {}).await;
    let db = db(&url).await;
    let mut watcher = connect(result.port).await;
    assert_eq!(next_tally(&mut watcher).await.total, 0);
    let before = result.memory_kib("VmRSS:");
    // Sampled as the flood goes on, so that a run over the bound ends
    // early, before an unbounded service eats the machine.
    let within_bound = || result.memory_kib("VmRSS:") < before + MOST_GROWTH_KIB;

    let stop = CancellationToken::new();
    let quiet_until = Instant::now() + QUIET;
    let until = quiet_until + VOTING;
    let flooders: Vec<_> = (0..FLOODERS)
        .map(|_| tokio::spawn(flood(result.port, until, stop.clone())))
        .collect();

    while Instant::now() < quiet_until && within_bound() {
        sleep(Duration::from_millis(50)).await;
    }
    let mut votes = 0;
    let mut slowest = Duration::ZERO;
    while Instant::now() < until && within_bound() {
        votes += 1;
        insert_votes(&db, &[(format!("v{votes}").as_str(), "a")]).await;
        let committed = Instant::now();
        let seen = timeout(MOST_DELAY, async {
            while next_tally(&mut watcher).await.total < votes {}
        })
        .await;
        assert!(
            seen.is_ok(),
            "vote {votes} not on the well-behaved socket within {MOST_DELAY:?}"
        );
        slowest = slowest.max(committed.elapsed());
        sleep(VOTE_EVERY.saturating_sub(committed.elapsed())).await;
    }
    stop.cancel();
    let (mut connections, mut sent) = (0, 0);
    for flooder in flooders {
        let (c, s) = flooder.await.unwrap();
        connections += c;
        sent += s;
    }
    let peak = result.memory_kib("VmHWM:");
    eprintln!(
        "{FLOODERS} flooders: {connections} connections, {} MiB of pings written; result RSS \
         {before} KiB before, peak {peak} KiB; {votes} votes, slowest {slowest:?}",
        sent >> 20,
    );
    assert!(
        peak < before + MOST_GROWTH_KIB,
        "RSS peaked at {peak} KiB, from {before} KiB"
    );
    assert!(
        votes >= 30,
        "only {votes} votes: the flood ended the run early"
    );
    assert!(
        sent > MOST_GROWTH_KIB * 1024,
        "the flood sent too little to prove anything"
    );
}

#[tokio::test]
async fn a_client_over_the_message_rate_is_closed_with_1008() {
    let url = Postgres::shared().fresh_database();
    let port = start_result(&url).await;
    let mut socket = connect(port).await;
    next_tally(&mut socket).await;
    // A burst of 16 is allowed; 20 at once are too many.
    for _ in 0..20 {
        socket.feed(Message::Ping(b"hi".to_vec())).await.unwrap();
    }
    socket.flush().await.unwrap();
    let mut pongs = 0;
    let close = loop {
        match timeout(PATIENCE, socket.next()).await {
            Ok(Some(Ok(Message::Pong(_)))) => pongs += 1,
            Ok(Some(Ok(Message::Close(frame)))) => break frame,
            other => panic!("expected pongs, then a close frame; got {other:?}"),
        }
    };
    let close = close.expect("a close frame with a code");
    assert_eq!(close.code, CloseCode::Policy);
    assert_eq!(close.reason, "too many messages");
    assert!((16..20).contains(&pongs), "{pongs} pongs");
}

#[tokio::test]
async fn a_message_over_4_kib_is_refused_with_1009() {
    let url = Postgres::shared().fresh_database();
    let port = start_result(&url).await;
    let mut socket = connect(port).await;
    next_tally(&mut socket).await;
    socket.send(Message::Text("x".repeat(5000))).await.unwrap();
    match timeout(PATIENCE, socket.next()).await {
        Ok(Some(Ok(Message::Close(Some(frame))))) => {
            assert_eq!(frame.code, CloseCode::Size);
            assert_eq!(frame.reason, "message too big");
        }
        other => panic!("expected a close frame; got {other:?}"),
    }
}

/// One hostile client: opens a websocket, then writes masked pings as fast
/// as the socket takes them and never reads. Opens another when the server
/// closes it or stops taking bytes for a second. Returns the connections
/// made and the bytes sent.
async fn flood(port: u16, until: Instant, stop: CancellationToken) -> (u64, u64) {
    let pings = ping_frames(64);
    let (mut connections, mut sent) = (0, 0);
    while Instant::now() < until && !stop.is_cancelled() {
        let Ok(Ok(mut stream)) = timeout(Duration::from_secs(1), open_websocket(port)).await else {
            sleep(Duration::from_millis(10)).await;
            continue;
        };
        connections += 1;
        while Instant::now() < until && !stop.is_cancelled() {
            match timeout(Duration::from_secs(1), stream.write_all(&pings)).await {
                Ok(Ok(())) => sent += pings.len() as u64,
                _ => break,
            }
        }
    }
    (connections, sent)
}

/// The upgrade handshake by hand: the request, then the response head
/// (whatever of the first message came with it is ignored).
async fn open_websocket(port: u16) -> std::io::Result<TcpStream> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).await?;
    let request = format!(
        "GET /ws HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n\
         Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
         Sec-WebSocket-Version: 13\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await?;
    let mut head = Vec::new();
    let mut chunk = [0; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut chunk).await?;
        if n == 0 || head.len() > 16 * 1024 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        head.extend_from_slice(&chunk[..n]);
    }
    if !head.starts_with(b"HTTP/1.1 101") {
        return Err(std::io::ErrorKind::ConnectionRefused.into());
    }
    Ok(stream)
}

/// `count` ping frames as a client must send them (masked), each with the
/// largest payload a control frame may carry (125 bytes).
fn ping_frames(count: usize) -> Vec<u8> {
    let mask = [0x5a, 0x17, 0xc3, 0x08];
    let mut frame = vec![0x89, 0x80 | 125];
    frame.extend_from_slice(&mask);
    frame.extend((0..125).map(|i| b'p' ^ mask[i % 4]));
    frame.repeat(count)
}
