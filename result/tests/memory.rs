//! The result binary gives back the memory floods of connections took, once
//! they are over. It serves on two threads: without one heap for both
//! (kit::memory::one_heap), glibc's malloc kept a heap for each thread and
//! did not give back the free top of the second one.

mod support;

use std::time::Duration;

use support::ResultProcess;
use test_servers::half_open::rss_around_floods;
use test_servers::Postgres;

/// What the floods must take for the test to mean anything (2,000
/// connections take about 30 MiB).
const TAKEN_KIB: u64 = 16 * 1024;
/// How far above its RSS before the floods result may stay after them
/// (0.5-0.6 MiB in runs with one heap, 4.5-6.2 MiB in runs without).
const SLACK_KIB: u64 = 2 * 1024;

#[tokio::test]
async fn memory_floods_of_connections_took_comes_back_once_they_close() {
    // This test holds the floods' sockets itself.
    let (_, hard) = kit::limits::raise_open_files().expect("raise this test's own limit");
    assert!(
        hard >= 2_100,
        "needs a hard open-file limit of at least 2,100 (ulimit -Hn), not {hard}"
    );
    let result = ResultProcess::start(&Postgres::shared().fresh_database(), |_| {}).await;
    let (pid, port) = (result.pid(), result.port);
    let rss = tokio::task::spawn_blocking(move || {
        rss_around_floods(
            pid,
            port,
            (3, 2_000),
            b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n",
            (Duration::from_secs(30), SLACK_KIB),
        )
    })
    .await
    .unwrap();
    println!("{rss:?}");
    rss.assert_given_back(TAKEN_KIB, SLACK_KIB);
}
