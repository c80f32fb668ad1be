//! The result binary started with a soft open-file limit of 1,024 under a
//! higher hard one, as Docker and systemd start services: connections that
//! begin a request and never finish it must not lock everyone else out.
//! result holds each such connection (and its file descriptor) until its
//! request-head timeout, 10 s, cuts it; a body never finished, or a
//! keep-alive connection left idle, holds one no longer.

mod support;

use std::time::{Duration, Instant};

use support::*;
use test_servers::half_open::{
    answer_to_unfinished, hold_half_open, open_files, with_soft_open_file_limit,
};
use test_servers::Postgres;
use tokio::time::{sleep, timeout};

const SOFT_LIMIT: libc::rlim_t = 1_024;
const HALF_OPEN: usize = 1_100;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_open_connections_past_the_soft_limit_lock_no_one_out() {
    // This test holds over a thousand sockets itself.
    let (_, hard) = kit::limits::raise_open_files().expect("raise this test's own limit");
    assert!(
        hard >= 2 * SOFT_LIMIT,
        "needs a hard open-file limit of at least {} (ulimit -Hn), not {hard}",
        2 * SOFT_LIMIT
    );
    let url = Postgres::shared().fresh_database();
    let result = ResultProcess::start(&url, |command| {
        with_soft_open_file_limit(command, SOFT_LIMIT)
    })
    .await;

    // Connected, a request head begun and never finished.
    let held = hold_half_open(
        result.port,
        HALF_OPEN,
        b"GET /api/tally HTTP/1.1\r\nHost: 127.0.0.1\r\n",
    );
    // Until the service holds them all: it never does if it cannot open
    // that many files, and then the request below waits behind them.
    let started = Instant::now();
    while open_files(result.pid()) < HALF_OPEN && started.elapsed() < Duration::from_secs(5) {
        sleep(Duration::from_millis(50)).await;
    }

    let answer = timeout(Duration::from_secs(1), status(result.port, "/api/tally")).await;
    assert_eq!(
        answer,
        Ok(Some(200)),
        "GET /api/tally with {HALF_OPEN} half-open connections held; the service has {} files open",
        open_files(result.pid())
    );
    // The service first: each connection closed under it logs a line.
    drop(result);
    drop(held);
}

/// hyper may answer 408 before it closes.
#[tokio::test]
async fn a_request_head_not_finished_within_10_s_is_cut() {
    let result = ResultProcess::start(&Postgres::shared().fresh_database(), |_| {}).await;
    let (answer, after) =
        answer_to_unfinished(result.port, b"GET /api/tally HTTP/1.1\r\nHost: x\r\n");
    println!("request head unfinished: cut after {after:?}; answer {answer:?}");
    assert!(
        (Duration::from_secs(9)..Duration::from_secs(12)).contains(&after),
        "cut after {after:?}, expected about 10 s; answer: {answer:?}"
    );
}

/// No route of result reads a body: whatever of one a client announces and
/// never sends, the answer comes at once and the connection closes with it.
#[tokio::test]
async fn a_body_not_finished_holds_no_connection() {
    let result = ResultProcess::start(&Postgres::shared().fresh_database(), |_| {}).await;
    for (request, status) in [
        ("POST /x", "404"),
        ("POST /", "404"),
        ("GET /api/tally", "200"),
    ] {
        // A whole head, then 2 of the 100 body bytes it announces.
        let start = format!("{request} HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nab");
        let (answer, after) = answer_to_unfinished(result.port, start.as_bytes());
        println!("{request} with a body unfinished: closed after {after:?}");
        assert!(
            answer.starts_with(&format!("HTTP/1.1 {status}")),
            "{request}: {answer}"
        );
        assert!(after < Duration::from_secs(12), "{request}: held {after:?}");
    }
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_after_10_s() {
    let result = ResultProcess::start(&Postgres::shared().fresh_database(), |_| {}).await;
    let request = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
    let (answer, after) = answer_to_unfinished(result.port, request);
    println!("idle after one request: closed after {after:?}");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(
        (Duration::from_secs(9)..Duration::from_secs(12)).contains(&after),
        "closed after {after:?}, expected about 10 s"
    );
}
