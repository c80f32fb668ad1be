//! The kit's server against a real TCP client: a connection that ends on a
//! malformed request or one left unfinished is counted by kind, not logged.

use std::time::{Duration, Instant};

use kit::http::{not_found, serve, Routes};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

async fn metrics(port: u16) -> String {
    reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

fn sample(metrics: &str, kind: &str) -> u64 {
    let name = format!("kit_test_http_connection_errors_total{{kind=\"{kind}\"}} ");
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(&name))
        .map_or(0, |n| n.parse().unwrap())
}

/// Sends `bytes`, then reads until the server closes the connection.
async fn send_and_wait_for_close(port: u16, bytes: &[u8], then_leave: bool) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    stream.write_all(bytes).await.unwrap();
    if then_leave {
        return;
    }
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut answer));
    read.await.expect("closed within 5 s").unwrap();
}

#[tokio::test]
async fn malformed_and_unfinished_requests_are_counted_by_kind() {
    kit::metrics::Metrics::install("kit_test");
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let app = Routes::new().finish((), "kit_test", not_found);
    let stop = CancellationToken::new();
    tokio::spawn(serve(listener, app, stop.clone()));

    for _ in 0..3 {
        send_and_wait_for_close(port, b"NOT HTTP AT ALL\r\n\r\n", false).await;
    }
    for _ in 0..2 {
        send_and_wait_for_close(port, b"GET /healthz HTTP/1.1\r\nHost: x", true).await;
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = metrics(port).await;
        if (sample(&text, "malformed"), sample(&text, "incomplete")) == (3, 2) {
            break;
        }
        assert!(Instant::now() < deadline, "not counted: {text}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.cancel();
}
