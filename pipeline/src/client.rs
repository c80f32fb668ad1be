//! A test's side of the services: HTTP status and text, the result
//! service's websocket, and Postgres, each wait bounded by [`PATIENCE`].

use std::time::Duration;

use ballot::Tally;
use futures_util::StreamExt;
use tokio::net::TcpStream;
use tokio_postgres::{Client, NoTls};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Long enough for any real update; tests only wait this long when failing.
pub const PATIENCE: Duration = Duration::from_secs(10);

pub async fn status(port: u16, path: &str) -> Option<u16> {
    let response = reqwest::get(format!("http://127.0.0.1:{port}{path}")).await;
    response.ok().map(|r| r.status().as_u16())
}

pub async fn wait_for_status(port: u16, path: &str, expected: u16) {
    let waiting = async {
        while status(port, path).await != Some(expected) {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    tokio::time::timeout(PATIENCE, waiting)
        .await
        .unwrap_or_else(|_| panic!("{path} never answered {expected}"));
}

pub async fn get_text(port: u16, path: &str) -> String {
    let response = reqwest::get(format!("http://127.0.0.1:{port}{path}"))
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200, "GET {path}");
    response.text().await.unwrap()
}

pub async fn connect(port: u16) -> Socket {
    let (socket, _) = tokio_tungstenite::connect_async(format!("ws://127.0.0.1:{port}/ws"))
        .await
        .expect("websocket upgrade");
    socket
}

/// The next tally on the socket, as raw JSON text.
pub async fn next_text(socket: &mut Socket) -> String {
    next_within(socket, PATIENCE)
        .await
        .expect("a tally message in time")
}

/// The next text message, or None if none came within `limit`.
pub async fn next_within(socket: &mut Socket, limit: Duration) -> Option<String> {
    let receiving = async {
        loop {
            match socket.next().await {
                Some(Ok(Message::Text(text))) => return text,
                Some(Ok(Message::Close(frame))) => panic!("socket closed: {frame:?}"),
                Some(Ok(_)) => {}
                other => panic!("socket ended: {other:?}"),
            }
        }
    };
    tokio::time::timeout(limit, receiving).await.ok()
}

pub async fn next_tally(socket: &mut Socket) -> Tally {
    serde_json::from_str(&next_text(socket).await).expect("a tally")
}

pub async fn db(url: &str) -> Client {
    let (client, connection) = tokio_postgres::connect(url, NoTls).await.unwrap();
    tokio::spawn(connection);
    client
}

/// Inserts one vote per voter, the way any writer does; triggers do the rest.
pub async fn insert_votes(db: &Client, votes: &[(&str, &str)]) {
    for (voter, vote) in votes {
        db.execute(
            "INSERT INTO votes (id, vote) VALUES ($1, $2) \
             ON CONFLICT (id) DO UPDATE SET vote = EXCLUDED.vote",
            &[voter, vote],
        )
        .await
        .unwrap();
    }
}
