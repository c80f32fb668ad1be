//! The vote binary gives back the memory a flood of connections took, once
//! the flood is over: without that (glibc's malloc keeps what was freed),
//! 2,000 half-open connections left vote at about 30 MB RSS instead of 5
//! for the rest of its life, and every further flood added more.

mod support;

use std::time::Duration;

use support::{vote_command, Running};
use test_servers::half_open::rss_around_floods;
use test_servers::{free_port, Redis};

/// What a flood must take for the test to mean anything (2,000
/// connections take about 30 MiB).
const TAKEN_KIB: u64 = 16 * 1024;
/// How far above its RSS before the flood vote may stay after it: a few
/// MiB more than the flood left behind with the memory given back (0.1 to
/// 1.2 MiB in runs with it; 10.6 to 25.9 MiB in runs without).
const SLACK_KIB: u64 = 4 * 1024;

#[test]
fn memory_a_flood_of_connections_took_comes_back_once_they_close() {
    // This test holds the flood's sockets itself.
    let (_, hard) = kit::limits::raise_open_files().expect("raise this test's own limit");
    assert!(
        hard >= 2_100,
        "needs a hard open-file limit of at least 2,100 (ulimit -Hn), not {hard}"
    );
    let port = free_port();
    let vote = Running::start(
        vote_command(&[], port, &Redis::shared().fresh_db_url()),
        port,
    );
    let rss = rss_around_floods(
        vote.id(),
        port,
        (1, 2_000),
        b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n",
        (Duration::from_secs(30), SLACK_KIB),
    );
    println!("{rss:?}");
    rss.assert_given_back(TAKEN_KIB, SLACK_KIB);
}
