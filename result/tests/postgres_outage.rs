//! Postgres goes away mid-stream and comes back: clients are told, the page
//! keeps the last tally, and the stream resumes by itself.

mod support;

use futures_util::StreamExt;
use support::*;
use test_servers::Postgres;
use tokio_tungstenite::tungstenite::Message;

#[tokio::test]
async fn the_stream_resumes_after_postgres_restarts() {
    let pg = Postgres::start();
    let url = pg.url();
    let port = start_result(&url).await;
    insert_votes(&db(&url).await, &[("v1", "a"), ("v2", "a")]).await;
    let mut socket = connect(port).await;
    while next_tally(&mut socket).await.total < 2 {}

    pg.stop();
    // The open socket is closed, saying why, so the page shows "reconnecting".
    let closed = tokio::time::timeout(PATIENCE, socket.next()).await.unwrap();
    match closed {
        Some(Ok(Message::Close(Some(frame)))) => {
            assert_eq!(frame.reason, "database unavailable")
        }
        other => panic!("expected a close frame, got {other:?}"),
    }
    wait_for_status(port, "/readyz", 503).await;
    assert_eq!(status(port, "/api/tally").await, Some(503));
    assert!(
        tokio_tungstenite::connect_async(format!("ws://127.0.0.1:{port}/ws"))
            .await
            .is_err(),
        "the upgrade must be refused while postgres is away"
    );
    let page = get_text(port, "/").await;
    assert!(page.contains("Reconnecting"), "page does not say so");
    assert!(
        page.contains("100%") && page.contains("2 votes"),
        "last tally lost"
    );

    pg.resume();
    wait_for_status(port, "/readyz", 200).await;
    let mut socket = connect(port).await;
    assert_eq!(next_tally(&mut socket).await.total, 2);
    insert_votes(&db(&url).await, &[("v3", "b")]).await;
    assert_eq!(
        next_text(&mut socket).await,
        r#"{"votes":{"a":2,"b":1},"total":3}"#
    );
}

#[tokio::test]
async fn starts_while_postgres_is_down_and_catches_up() {
    let pg = Postgres::start();
    let url = pg.url();
    pg.stop();
    let port = launch_result(&url, &[]).await;
    wait_for_status(port, "/healthz", 200).await;
    assert_eq!(status(port, "/readyz").await, Some(503));
    let page = get_text(port, "/").await;
    assert!(page.contains("No votes yet") && page.contains("Reconnecting"));

    pg.resume();
    wait_for_status(port, "/readyz", 200).await;
    let mut socket = connect(port).await;
    assert_eq!(
        next_text(&mut socket).await,
        r#"{"votes":{"a":0,"b":0},"total":0}"#
    );
}

/// A failover: the primary killed, its synchronous standby promoted. result
/// finds the new primary by itself (several hosts in DATABASE_URL, with
/// target_session_attrs=read-write), LISTENs there and re-reads the tally;
/// a client reconnecting as the page does goes on getting every change,
/// and /api/tally reads from the new primary.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stream_follows_a_failover_to_the_promoted_standby() {
    let (port, url, mut socket, _servers) = failover(Postgres::crash).await;
    // Told the database is away, the page reconnects; so does this client.
    let closed = tokio::time::timeout(PATIENCE, socket.next()).await.unwrap();
    assert!(
        matches!(&closed, Some(Ok(Message::Close(Some(frame)))) if frame.reason == "database unavailable"),
        "expected a close frame, got {closed:?}"
    );
    wait_for_status(port, "/readyz", 200).await;
    let mut socket = connect(port).await;
    assert_eq!(next_tally(&mut socket).await.total, 2);
    insert_votes(&db(&url).await, &[("v3", "b")]).await;
    let expected = r#"{"votes":{"a":2,"b":1},"total":3}"#;
    assert_eq!(next_text(&mut socket).await, expected);
    assert_eq!(get_text(port, "/api/tally").await, expected);
}

/// The primary demoted with result's connection open: the old server still
/// answers reads, but takes no writes and sends no notifications any more.
/// result notices it is read-only and moves to the promoted standby.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_demoted_primary_is_left_for_the_promoted_standby() {
    let (port, url, _socket, _servers) = failover(Postgres::make_read_only).await;
    // Written to the new primary: only there does the tally move.
    insert_votes(&db(&url).await, &[("v3", "b")]).await;
    let expected = r#"{"votes":{"a":2,"b":1},"total":3}"#;
    wait_for_tally(port, expected).await;
    wait_for_status(port, "/readyz", 200).await;
    let mut socket = connect(port).await;
    assert_eq!(next_text(&mut socket).await, expected);
    insert_votes(&db(&url).await, &[("v4", "b")]).await;
    assert_eq!(
        next_text(&mut socket).await,
        r#"{"votes":{"a":2,"b":2},"total":4}"#
    );
}

/// result on a primary and its synchronous standby (listed in that order)
/// with two votes counted and a client that has them; then `lose` is done
/// to the primary and the standby promoted. Returns result's port, the URL,
/// the client's socket and the servers.
async fn failover(lose: fn(&Postgres)) -> (u16, String, Socket, (Postgres, Postgres)) {
    let (primary, standby) = Postgres::start_replicated();
    let url = Postgres::read_write_url(&[&primary, &standby]);
    let port = start_result(&url).await;
    insert_votes(&db(&url).await, &[("v1", "a"), ("v2", "a")]).await;
    let mut socket = connect(port).await;
    while next_tally(&mut socket).await.total < 2 {}
    let servers = tokio::task::spawn_blocking(move || {
        lose(&primary);
        standby.promote();
        (primary, standby)
    })
    .await
    .unwrap();
    (port, url, socket, servers)
}

/// Polls /api/tally (503 while result looks for a primary) until it
/// answers `expected`, failing after a minute.
async fn wait_for_tally(port: u16, expected: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let mut last = None;
    while std::time::Instant::now() < deadline {
        if let Ok(response) = reqwest::get(format!("http://127.0.0.1:{port}/api/tally")).await {
            let text = response.text().await.unwrap_or_default();
            if text == expected {
                return;
            }
            last = Some(text);
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("/api/tally never answered {expected}; last: {last:?}");
}
