//! seed names what went wrong below HTTP, against a real TCP server that
//! answers `GET /` (so seed starts) and then misbehaves on every ballot in
//! one way: closes without an answer, resets, never answers, or stops
//! listening.

use std::time::Duration;

use clap::Parser;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

#[derive(Clone, Copy)]
enum Misbehaviour {
    /// Reads the ballot, then closes the connection cleanly (FIN).
    Close,
    /// Reads the ballot, then resets the connection (RST).
    Reset,
    /// Reads the ballot and never answers.
    Hang,
    /// Answers the first `GET /` with `Connection: close` and stops listening.
    StopListening,
}

/// Serves until the test ends; returns the target URL.
async fn misbehaving_server(how: Misbehaviour) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            if matches!(how, Misbehaviour::StopListening) {
                serve(stream, how).await;
                return; // the listener is dropped: later connects are refused
            }
            tokio::spawn(serve(stream, how));
        }
    });
    url
}

async fn serve(mut stream: TcpStream, how: Misbehaviour) {
    let mut buffer = Vec::new();
    loop {
        let Some(request) = read_request(&mut stream, &mut buffer).await else {
            return;
        };
        if request.starts_with("GET ") {
            let close = matches!(how, Misbehaviour::StopListening);
            let head = if close { "connection: close\r\n" } else { "" };
            let answer = format!("HTTP/1.1 200 OK\r\n{head}content-length: 2\r\n\r\nok");
            stream.write_all(answer.as_bytes()).await.unwrap();
            if close {
                return;
            }
            continue;
        }
        match how {
            Misbehaviour::Close | Misbehaviour::StopListening => {}
            Misbehaviour::Reset => stream.set_zero_linger().unwrap(),
            Misbehaviour::Hang => {
                tokio::time::sleep(Duration::from_secs(60)).await;
            }
        }
        return;
    }
}

/// One whole request (head and `content-length` body) as text, or `None`
/// once the client has gone.
async fn read_request(stream: &mut TcpStream, buffer: &mut Vec<u8>) -> Option<String> {
    loop {
        if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buffer[..end]).to_ascii_lowercase();
            let body: usize = head
                .lines()
                .find_map(|line| line.strip_prefix("content-length:"))
                .map_or(0, |n| n.trim().parse().unwrap());
            let whole = end + 4 + body;
            if buffer.len() >= whole {
                let request = String::from_utf8_lossy(&buffer[..whole]).to_string();
                buffer.drain(..whole);
                return Some(request);
            }
        }
        let mut chunk = [0u8; 4096];
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => buffer.extend_from_slice(&chunk[..n]),
        }
    }
}

/// Casts `votes` ballots one at a time at a server misbehaving `how`.
async fn seed_against(how: Misbehaviour, votes: &str) -> seed::Summary {
    let url = misbehaving_server(how).await;
    let config = seed::Config::parse_from([
        "seed",
        "--votes",
        votes,
        "--concurrency",
        "1",
        "--timeout",
        "1s",
        &url,
    ]);
    seed::run(config).await.expect("seed runs")
}

fn kinds(map: &std::collections::BTreeMap<String, u64>) -> Vec<(&str, u64)> {
    map.iter().map(|(kind, n)| (kind.as_str(), *n)).collect()
}

#[tokio::test]
async fn a_connection_closed_before_the_answer_is_named_and_of_unknown_outcome() {
    let summary = seed_against(Misbehaviour::Close, "3").await;
    assert_eq!(
        kinds(&summary.sent.unknown),
        [("closed before the answer", 3)]
    );
    assert!(summary.sent.failures.is_empty(), "{summary}");
}

#[tokio::test]
async fn a_reset_after_the_ballot_went_out_is_named_and_of_unknown_outcome() {
    let summary = seed_against(Misbehaviour::Reset, "3").await;
    assert_eq!(kinds(&summary.sent.unknown), [("connection reset", 3)]);
    assert!(summary.sent.failures.is_empty(), "{summary}");
}

#[tokio::test]
async fn no_answer_in_time_is_named_and_of_unknown_outcome() {
    let summary = seed_against(Misbehaviour::Hang, "2").await;
    assert_eq!(kinds(&summary.sent.unknown), [("timed out", 2)]);
    assert!(summary.sent.failures.is_empty(), "{summary}");
}

#[tokio::test]
async fn a_refused_connection_is_named_and_certainly_not_counted() {
    let summary = seed_against(Misbehaviour::StopListening, "3").await;
    assert_eq!(kinds(&summary.sent.failures), [("connection refused", 3)]);
    assert!(summary.sent.unknown.is_empty(), "{summary}");
    let problem = summary.problem().unwrap();
    assert_eq!(problem, "3 of 3 requests failed (connection refused: 3)");
}
