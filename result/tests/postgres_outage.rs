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
