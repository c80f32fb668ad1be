//! The result service against a real Postgres: what clients see on
//! connect, after commits, and when nothing changes.

mod support;

use std::time::{Duration, Instant};

use futures_util::future::join_all;
use futures_util::StreamExt;
use support::*;
use test_servers::Postgres;
use tokio_tungstenite::tungstenite::Message;

#[tokio::test]
async fn starts_on_an_empty_database_and_shows_zeros() {
    let url = Postgres::shared().fresh_database();
    let port = start_result(&url).await;
    let mut socket = connect(port).await;
    let first = next_text(&mut socket).await;
    assert_eq!(first, r#"{"votes":{"a":0,"b":0},"total":0}"#);
    assert_eq!(get_text(port, "/api/tally").await, first);
    assert_eq!(status(port, "/healthz").await, Some(200));
    assert_eq!(status(port, "/readyz").await, Some(200));
}

#[tokio::test]
async fn a_committed_ballot_is_pushed_and_matches_the_api() {
    let url = Postgres::shared().fresh_database();
    let port = start_result(&url).await;
    let db = db(&url).await;
    insert_votes(&db, &[("v1", "a"), ("v2", "b")]).await;
    let mut socket = connect(port).await;
    // The first message is the tally as it stands.
    let mut first = next_tally(&mut socket).await;
    while first.total < 2 {
        first = next_tally(&mut socket).await;
    }
    assert_eq!((first.count("a"), first.count("b")), (1, 1));

    insert_votes(&db, &[("v3", "b")]).await;
    let pushed = next_text(&mut socket).await;
    assert_eq!(pushed, r#"{"votes":{"a":1,"b":2},"total":3}"#);
    assert_eq!(get_text(port, "/api/tally").await, pushed);
}

#[tokio::test]
async fn nothing_is_sent_while_nothing_changes() {
    let url = Postgres::shared().fresh_database();
    let port = start_result(&url).await;
    let db = db(&url).await;
    insert_votes(&db, &[("v1", "a")]).await;
    let mut socket = connect(port).await;
    while next_tally(&mut socket).await.total < 1 {}

    // The same ballot again moves no count: no notification, and the
    // periodic re-read (every 3 s) finds nothing new either.
    insert_votes(&db, &[("v1", "a")]).await;
    db.execute("UPDATE tallies SET count = count WHERE vote = 'a'", &[])
        .await
        .unwrap();
    let quiet = next_within(&mut socket, Duration::from_millis(3500)).await;
    assert_eq!(quiet, None, "a message although nothing changed");

    // A changed vote is one update: a down, b up.
    insert_votes(&db, &[("v1", "b")]).await;
    assert_eq!(
        next_text(&mut socket).await,
        r#"{"votes":{"a":0,"b":1},"total":1}"#
    );
}

#[tokio::test]
async fn a_change_without_a_notification_still_arrives() {
    let url = Postgres::shared().fresh_database();
    let port = start_result(&url).await;
    let db = db(&url).await;
    let mut socket = connect(port).await;
    assert_eq!(next_tally(&mut socket).await.total, 0);

    // Written straight to tallies, past the triggers: no notification, so
    // only the periodic re-read (every 3 s) can find it.
    db.execute("INSERT INTO tallies (vote, count) VALUES ('a', 4)", &[])
        .await
        .unwrap();
    let refreshed = next_within(&mut socket, Duration::from_secs(5)).await;
    assert_eq!(
        refreshed.as_deref(),
        Some(r#"{"votes":{"a":4,"b":0},"total":4}"#),
        "a missed notification is never caught up"
    );
}

#[tokio::test]
async fn many_clients_get_the_same_updates() {
    let url = Postgres::shared().fresh_database();
    let port = start_result(&url).await;
    let db = db(&url).await;
    let mut sockets = join_all((0..200).map(|_| connect(port))).await;
    for socket in &mut sockets {
        assert_eq!(next_tally(socket).await.total, 0);
    }
    for round in 1..=3 {
        let voter = format!("v{round}");
        insert_votes(&db, &[(voter.as_str(), "a")]).await;
        let seen = join_all(sockets.iter_mut().map(next_text)).await;
        let expected = format!(r#"{{"votes":{{"a":{round},"b":0}},"total":{round}}}"#);
        assert!(
            seen.iter().all(|s| *s == expected),
            "round {round}: {seen:?}"
        );
    }
}

#[tokio::test]
async fn bursts_are_coalesced() {
    let url = Postgres::shared().fresh_database();
    let port = start_result(&url).await;
    let db = db(&url).await;
    let mut socket = connect(port).await;
    next_tally(&mut socket).await;

    // 300 commits, each one a notification, as fast as Postgres takes them.
    let started = std::time::Instant::now();
    for i in 0..300 {
        insert_votes(&db, &[(format!("v{i}").as_str(), "a")]).await;
    }
    let mut messages = 0;
    loop {
        messages += 1;
        if next_tally(&mut socket).await.total == 300 {
            break;
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    // At most one read per 50 ms, plus the one already under way.
    let most = (seconds * 20.0).ceil() as usize + 2;
    assert!(
        messages <= most,
        "{messages} messages in {seconds:.2}s; at most {most} expected"
    );
}

#[tokio::test]
async fn a_client_that_closes_gets_the_close_echoed() {
    let url = Postgres::shared().fresh_database();
    let port = start_result(&url).await;
    let mut socket = connect(port).await;
    next_tally(&mut socket).await;
    socket.close(None).await.unwrap();
    // The echo completes the closing handshake (RFC 6455 5.5.1).
    let echo = tokio::time::timeout(PATIENCE, socket.next()).await;
    assert!(
        matches!(echo, Ok(Some(Ok(Message::Close(_))))),
        "expected the close echoed; got {echo:?}"
    );
}

/// The service's documented bound: a client whose socket cannot take a whole
/// message within 5 s is dropped.
const STALLED_CLIENT_DROPPED_AFTER: Duration = Duration::from_secs(5);
/// Updates come every 50-100 ms; the check runs after each.
const SLACK: Duration = Duration::from_secs(1);

#[tokio::test]
async fn a_client_that_never_reads_holds_up_no_one_and_is_dropped() {
    let url = Postgres::shared().fresh_database();
    // Eight options, so that every update is the largest tally message
    // there can be (about 230 bytes with 19-digit counts).
    let flags: Vec<String> = ('c'..='h')
        .flat_map(|id| {
            [
                format!("--option-{id}"),
                id.to_ascii_uppercase().to_string(),
            ]
        })
        .collect();
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let port = launch_result(&url, &flags).await;
    wait_for_status(port, "/readyz", 200).await;
    let db = db(&url).await;
    let (mut stalled, stalled_port) = connect_never_reading(port).await;
    let mut readers = [connect(port).await, connect(port).await];
    for reader in &mut readers {
        next_tally(reader).await;
    }

    // Update after update, each only once both readers have it, until the
    // server has closed the stalled connection. The server's unsent bytes
    // for it (its Send-Q) grow while the kernel takes them; the send that
    // the kernel refuses must be given up within the bound.
    let base: i64 = 1_000_000_000_000_000_000;
    let mut updates = 0;
    let (mut queued, mut last_taken) = (0, Instant::now());
    let started = Instant::now();
    let dropped_at = loop {
        assert!(
            updates < 2_000 && started.elapsed() < Duration::from_secs(120),
            "still connected after {updates} updates; {queued} bytes queued for it"
        );
        updates += 1;
        set_every_count(&db, base + updates).await;
        for reader in &mut readers {
            let seen = tokio::time::timeout(Duration::from_secs(1), async {
                while next_tally(reader).await.count("a") < base + updates {}
            })
            .await;
            assert!(
                seen.is_ok(),
                "update {updates} took over 1 s to reach a reader"
            );
        }
        match server_side(port, stalled_port) {
            Some((ESTABLISHED, send_queue)) if send_queue > queued => {
                (queued, last_taken) = (send_queue, Instant::now());
            }
            Some((ESTABLISHED, _)) => assert!(
                last_taken.elapsed() < STALLED_CLIENT_DROPPED_AFTER + SLACK,
                "still connected {:?} after its socket last took data ({queued} bytes queued)",
                last_taken.elapsed()
            ),
            _ => break Instant::now(),
        }
    };
    let waited = dropped_at - last_taken;
    eprintln!(
        "stalled client dropped after {updates} updates, {queued} bytes in the server's \
         Send-Q, {waited:?} after the kernel last took any"
    );
    // A Send-Q means the client's receive buffer was full; the wait before
    // the drop, that the server's send buffer was too.
    assert!(
        queued > 0,
        "the stalled client's receive buffer never filled"
    );
    assert!(
        waited > STALLED_CLIENT_DROPPED_AFTER - SLACK,
        "dropped {waited:?} after its socket last took data: it was still taking it"
    );
    // Read at last, the stalled socket gives what was queued, then its end.
    let drained = tokio::time::timeout(PATIENCE, async {
        while let Some(Ok(_)) = stalled.next().await {}
    })
    .await;
    assert!(drained.is_ok(), "the stalled connection is still open");
}

#[tokio::test]
async fn the_page_shows_every_option_without_javascript() {
    let url = Postgres::shared().fresh_database();
    let port = start_result(&url).await;
    let page = get_text(port, "/").await;
    for expected in [
        "Cats",
        "Dogs",
        r#"<span class="percent none">–</span>"#,
        "No votes yet",
        "/result.js",
        "/result.css",
    ] {
        assert!(page.contains(expected), "page lacks {expected}");
    }
    // No votes, no shares: not an even split.
    assert!(!page.contains("%</span>"), "{page}");
    let db = db(&url).await;
    insert_votes(&db, &[("v1", "a"), ("v2", "a"), ("v3", "b")]).await;
    wait_until_total(port, 3).await;
    let page = get_text(port, "/").await;
    for expected in ["67%", "33%", "3 votes"] {
        assert!(page.contains(expected), "page lacks {expected}");
    }
    assert!(get_text(port, "/result.js").await.contains("WebSocket"));
    assert!(get_text(port, "/result.css").await.contains(".fill"));
}

#[tokio::test]
async fn more_options_from_settings() {
    let url = Postgres::shared().fresh_database();
    let port = launch_result(&url, &["--option-c", "Birds"]).await;
    wait_for_status(port, "/readyz", 200).await;
    let mut socket = connect(port).await;
    assert_eq!(
        next_text(&mut socket).await,
        r#"{"votes":{"a":0,"b":0,"c":0},"total":0}"#
    );
    let page = get_text(port, "/").await;
    assert!(page.contains("Birds"), "{page}");
    assert_eq!(page.matches("percent none").count(), 3, "{page}");
    let db = db(&url).await;
    insert_votes(&db, &[("v1", "a"), ("v2", "b"), ("v3", "c")]).await;
    wait_until_total(port, 3).await;
    let page = get_text(port, "/").await;
    assert!(
        page.contains(">34%</span>") && page.contains(">33%</span>"),
        "{page}"
    );
}

async fn wait_until_total(port: u16, total: i64) {
    let waiting = async {
        loop {
            let tally: ballot::Tally =
                serde_json::from_str(&get_text(port, "/api/tally").await).unwrap();
            if tally.total == total {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(PATIENCE, waiting).await.unwrap();
}

/// A websocket client that never reads after the handshake, with receive
/// buffers as small as Linux allows, so its backlog passes the kernel's
/// buffers in seconds: a tiny SO_RCVBUF, and a small MSS (Linux sizes the
/// server's send buffer from the peer's MSS: with loopback's 64 KiB MSS it
/// grew to 4 MiB, minutes of tallies; with 300 bytes, about 20 KB).
/// Returns it and its local port.
async fn connect_never_reading(port: u16) -> (Socket, u16) {
    use std::os::fd::AsRawFd;
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(1).unwrap();
    let mss: libc::c_int = 300;
    // SAFETY: setsockopt reads an int from a live local for a socket we own.
    let set = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_MAXSEG,
            &mss as *const libc::c_int as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    assert_eq!(set, 0, "TCP_MAXSEG: {}", std::io::Error::last_os_error());
    let stream = socket.connect(([127, 0, 0, 1], port).into()).await.unwrap();
    let local_port = stream.local_addr().unwrap().port();
    let (socket, _) = tokio_tungstenite::client_async(
        format!("ws://127.0.0.1:{port}/ws"),
        tokio_tungstenite::MaybeTlsStream::Plain(stream),
    )
    .await
    .expect("websocket upgrade");
    (socket, local_port)
}

/// Every option's count set straight in `tallies`, with the notification the
/// triggers would send, in one transaction.
async fn set_every_count(db: &tokio_postgres::Client, count: i64) {
    db.batch_execute(&format!(
        "INSERT INTO tallies (vote, count) \
         SELECT option, {count} FROM unnest('{{a,b,c,d,e,f,g,h}}'::text[]) AS option \
         ON CONFLICT (vote) DO UPDATE SET count = EXCLUDED.count; \
         SELECT pg_notify('{}', '')",
        ballot::schema::TALLY_CHANNEL
    ))
    .await
    .unwrap();
}

const ESTABLISHED: u8 = 1;

/// The server's end of the connection from `client_port` to `server_port`,
/// from /proc/net/tcp: its TCP state and the bytes it has not yet had
/// acknowledged (Send-Q). None once the kernel has forgotten it.
fn server_side(server_port: u16, client_port: u16) -> Option<(u8, u64)> {
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap();
    let port_of = |address: &str| u16::from_str_radix(address.rsplit(':').next()?, 16).ok();
    table.lines().skip(1).find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if port_of(fields[1])? != server_port || port_of(fields[2])? != client_port {
            return None;
        }
        let state = u8::from_str_radix(fields[3], 16).ok()?;
        let send_queue = u64::from_str_radix(fields[4].split(':').next()?, 16).ok()?;
        Some((state, send_queue))
    })
}

/// A stop (SIGTERM, as Docker and Kubernetes send) says goodbye to every
/// client: each socket gets a close frame, 1001 "going away", so browsers
/// reconnect at once (through the edge, to another replica), and the
/// process exits 0.
#[tokio::test]
async fn on_sigterm_every_websocket_is_told_the_service_is_going_away() {
    let url = Postgres::shared().fresh_database();
    ballot::schema::migrate(&db(&url).await).await.unwrap();
    let mut result = ResultProcess::start(&url, |_| {}).await;
    let mut sockets = Vec::new();
    // Enough that, without the wait for them, some are cut off unclosed.
    for _ in 0..300 {
        let mut socket = connect(result.port).await;
        next_tally(&mut socket).await;
        sockets.push(socket);
    }

    let status = result.terminate(PATIENCE);
    assert!(status.success(), "result exited with {status}");
    for (n, mut socket) in sockets.into_iter().enumerate() {
        let frame = match tokio::time::timeout(PATIENCE, socket.next()).await {
            Ok(Some(Ok(Message::Close(Some(frame))))) => frame,
            other => panic!("socket {n}: no close frame but {other:?}"),
        };
        assert_eq!(u16::from(frame.code), 1001, "socket {n}: {frame:?}");
    }
}

/// On SIGTERM result first says it is not ready and serves on for
/// SHUTDOWN_DRAIN, websockets included, so that the edge takes it out of
/// rotation before its clients are sent elsewhere; then each socket gets
/// 1001 and the process exits 0.
#[tokio::test]
async fn on_sigterm_it_is_not_ready_but_serves_for_the_drain_then_exits() {
    let url = Postgres::shared().fresh_database();
    let mut result = ResultProcess::start(&url, |command| {
        command.env("SHUTDOWN_DRAIN", "2");
    })
    .await;
    let mut socket = connect(result.port).await;
    assert_eq!(next_tally(&mut socket).await.total, 0);

    let signalled = Instant::now();
    result.signal_terminate();
    wait_for_status(result.port, "/readyz", 503).await;
    let readyz = reqwest::get(format!("http://127.0.0.1:{}/readyz", result.port))
        .await
        .unwrap();
    // Why, only in the log: the body is for anyone who asks.
    assert_eq!(readyz.text().await.unwrap(), "not ready\n");
    // Still serving: the tally, new sockets, and changes to open ones.
    assert_eq!(
        get_text(result.port, "/api/tally").await,
        r#"{"votes":{"a":0,"b":0},"total":0}"#
    );
    let mut late = connect(result.port).await;
    assert_eq!(next_tally(&mut late).await.total, 0);
    insert_votes(&db(&url).await, &[("v1", "a")]).await;
    assert_eq!(next_tally(&mut socket).await.total, 1);
    assert!(
        signalled.elapsed() < Duration::from_secs(2),
        "the checks above took the whole drain"
    );

    for socket in [&mut socket, &mut late] {
        loop {
            match tokio::time::timeout(PATIENCE, socket.next()).await {
                Ok(Some(Ok(Message::Text(_)))) => {}
                Ok(Some(Ok(Message::Close(Some(frame))))) => {
                    assert_eq!(u16::from(frame.code), 1001, "{frame:?}");
                    assert_eq!(frame.reason, "shutting down");
                    break;
                }
                other => panic!("no close frame but {other:?}"),
            }
        }
    }
    let took = signalled.elapsed();
    assert!(
        took >= Duration::from_secs(2),
        "sockets closed {took:?} after SIGTERM, before the drain was over"
    );
    let status = result.exit_within(PATIENCE).await;
    assert_eq!(status.and_then(|s| s.code()), Some(0));
    // /readyz was asked many times while draining: logged once.
    let log = result.log();
    let not_ready: Vec<&String> = log.iter().filter(|l| l.contains("not ready:")).collect();
    assert_eq!(not_ready.len(), 1, "{log:#?}");
    assert!(
        not_ready[0].contains("not ready: shutting down"),
        "{log:#?}"
    );
}
