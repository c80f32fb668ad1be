//! Anonymous clients sending bad requests to the result binary: each gets a
//! short plain answer (or a closed connection), and none of them can make
//! the service write to its log, however many they send.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use support::*;
use test_servers::Postgres;

const EACH: usize = 500;
/// Lines the service may log for all of them together.
const MOST_LINES: usize = 3;

/// Sends `request` on a connection of its own: the answer, up to the
/// service closing the connection.
fn exchange(port: u16, request: &[u8]) -> String {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    stream.write_all(request).unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).unwrap();
    String::from_utf8_lossy(&answer).into_owned()
}

/// Sends `request` on a connection of its own and leaves at once.
fn leave(port: u16, request: &[u8]) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.write_all(request).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_leave_the_log_quiet() {
    let url = Postgres::shared().fresh_database();
    let result = ResultProcess::start(&url, |command| {
        command.env_remove("RUST_LOG"); // the default filter
    })
    .await;
    // The first line says which build started.
    let starting = format!(
        "result starting version=\"{}\" commit=\"{}\"",
        kit::version::VERSION,
        kit::version::COMMIT
    );
    let first = result.log().first().cloned().unwrap_or_default();
    assert!(first.ends_with(&starting), "{first}");
    let started_with = result.log().len();
    // Each request, and the start of the answer it gets (None: the client
    // leaves without reading one).
    let kinds: [(&str, &[u8], Option<&str>); 6] = [
        (
            "GET /ws without Upgrade",
            b"GET /ws HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
            Some("HTTP/1.1 400"),
        ),
        (
            "a POST body cut short",
            b"POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nab",
            Some("HTTP/1.1 404"),
        ),
        (
            "a GET body cut short",
            b"GET /api/tally HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nab",
            Some("HTTP/1.1 200"),
        ),
        (
            "a POST body cut short by a client that leaves",
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nab",
            None,
        ),
        (
            "a request head cut short by a client that leaves",
            b"GET /api/tally HTTP/1.1\r\nHo",
            None,
        ),
        (
            "not HTTP",
            b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n",
            Some("HTTP/1.1 400"),
        ),
    ];
    for (kind, request, answer) in kinds {
        let before = result.log().len();
        for n in 0..EACH {
            let Some(answer) = answer else {
                leave(result.port, request);
                continue;
            };
            let got = exchange(result.port, request);
            assert!(got.starts_with(answer), "{kind} #{n}: {got:?}");
            assert!(
                !got.to_ascii_lowercase().contains("\r\nserver:"),
                "{kind}: {got}"
            );
        }
        let logged = result.log().len() - before;
        println!("{EACH} x {kind}: {logged} log lines");
    }
    // Until the service has seen the last clients leave.
    assert_eq!(status(result.port, "/healthz").await, Some(200));
    tokio::time::sleep(Duration::from_millis(500)).await;
    let log = result.log();
    let new = &log[started_with..];
    assert!(new.len() <= MOST_LINES, "{} lines: {new:#?}", new.len());
}

/// A path or method result does not serve: 404 and a plain-text body, and
/// no header saying what serves it.
#[tokio::test]
async fn anything_else_is_a_plain_404() {
    let url = Postgres::shared().fresh_database();
    let result = ResultProcess::start(&url, |_| {}).await;
    for request in [
        "GET /wp-admin/setup.php",
        "POST /",
        "DELETE /api/tally",
        "GET /ws/",
    ] {
        let answer = exchange(
            result.port,
            format!(
                "{request} HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            )
            .as_bytes(),
        );
        let (head, body) = answer.split_once("\r\n\r\n").unwrap();
        let head = head.to_ascii_lowercase();
        assert!(head.starts_with("http/1.1 404"), "{request}: {answer}");
        assert!(
            head.contains("\r\ncontent-type: text/plain; charset=utf-8"),
            "{request}: {answer}"
        );
        assert!(!head.contains("\r\nserver:"), "{request}: {answer}");
        assert_eq!(body, "not found\n", "{request}");
    }
}
