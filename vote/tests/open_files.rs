//! The vote binary started with a soft open-file limit of 1,024 under a
//! higher hard one, as Docker and systemd start services: connections that
//! begin a request and never finish it must not lock voters out. Vote holds
//! each such connection (and its file descriptor) until its request-head
//! timeout, 10 s, cuts it.

mod support;

use std::time::{Duration, Instant};

use support::{vote_command, Running, Vote};
use test_servers::half_open::{
    answer_to_unfinished, hold_half_open, open_files, with_soft_open_file_limit,
};
use test_servers::{free_port, Redis};
use tokio::time::{sleep, timeout};

const SOFT_LIMIT: libc::rlim_t = 1_024;
const HALF_OPEN: usize = 1_100;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_open_connections_past_the_soft_limit_lock_no_voter_out() {
    // This test holds over a thousand sockets itself.
    let (_, hard) = kit::limits::raise_open_files().expect("raise this test's own limit");
    assert!(
        hard >= 2 * SOFT_LIMIT,
        "needs a hard open-file limit of at least {} (ulimit -Hn), not {hard}",
        2 * SOFT_LIMIT
    );
    let port = free_port();
    let mut command = vote_command(&[], port, &Redis::shared().fresh_db_url());
    with_soft_open_file_limit(&mut command, SOFT_LIMIT);
    let vote = Running::start(command, port);

    // Connected, a request head begun and never finished.
    let held = hold_half_open(port, HALF_OPEN, b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\n");
    // Until the service holds them all: it never does if it cannot open
    // that many files, and then the vote below waits behind them.
    let started = Instant::now();
    while open_files(vote.id()) < HALF_OPEN && started.elapsed() < Duration::from_secs(5) {
        sleep(Duration::from_millis(50)).await;
    }

    let started = Instant::now();
    let answer = timeout(Duration::from_secs(1), Vote::at(port).vote("a", None)).await;
    let status = answer.map(|page| page.status);
    assert_eq!(
        status,
        Ok(200),
        "a vote with {HALF_OPEN} half-open connections held; vote has {} files open",
        open_files(vote.id())
    );
    println!("answered in {:?}", started.elapsed());
    // The service first: each connection closed under it could log a line.
    drop(vote);
    drop(held);
}

#[tokio::test]
async fn a_request_head_not_finished_within_10_s_is_cut() {
    let port = free_port();
    let _vote = Running::start(
        vote_command(&[], port, &Redis::shared().fresh_db_url()),
        port,
    );
    // hyper may answer 408 before it closes.
    let (answer, after) = answer_to_unfinished(port, b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\n");
    assert!(
        (Duration::from_secs(9)..Duration::from_secs(13)).contains(&after),
        "cut after {after:?}, expected about 10 s; answer: {answer:?}"
    );
}

#[tokio::test]
async fn a_form_body_not_finished_within_10_s_gets_408_and_nothing_is_queued() {
    let port = free_port();
    let redis = Redis::shared().fresh_db_url();
    let _vote = Running::start(vote_command(&[], port, &redis), port);
    // A whole head, then 2 of the 6 body bytes it announces.
    let (answer, after) = answer_to_unfinished(
        port,
        b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\n\
          Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 6\r\n\r\nvo",
    );
    assert!(
        answer.starts_with("HTTP/1.1 408"),
        "after {after:?}: {answer}"
    );
    assert!(answer.contains("did not arrive within 10 s"), "{answer}");
    assert!(
        (Duration::from_secs(9)..Duration::from_secs(13)).contains(&after),
        "answered after {after:?}, expected about 10 s"
    );
    assert!(support::queued(&redis).await.is_empty());
}
