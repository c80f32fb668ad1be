//! Ballots are ordered by one clock all vote replicas share (Redis `TIME`),
//! not by the clock of whichever host queued them: a replica whose clock
//! runs 30 s ahead (`faketime`) cannot make an earlier vote beat a later one.

mod support;

use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use support::{queued, queued_ballots, vote_command, Running, Vote};
use test_servers::{free_port, Postgres, Redis};
use tokio_util::sync::CancellationToken;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_later_vote_wins_over_one_from_a_host_whose_clock_runs_30s_ahead() {
    let faketime = faketime();
    let faketime = faketime.to_str().unwrap();
    assert_clock_ahead(faketime);
    let redis = Redis::shared().fresh_db_url();
    let database = Postgres::shared().fresh_database();
    let (ahead_port, normal_port) = (free_port(), free_port());
    let ahead = Running::start(
        vote_command(&[faketime, "-f", "+30s"], ahead_port, &redis),
        ahead_port,
    );
    let normal = Running::start(vote_command(&[], normal_port, &redis), normal_port);

    let voter = "c10c5e1dc10c5e1dc10c5e1dc10c5e1d";
    let cookie = format!("voter_id={voter}");
    let first = Vote::at(ahead.port).vote("a", Some(&cookie)).await;
    assert_eq!(first.status, 200, "{}", first.body);
    let later = Vote::at(normal.port).vote("b", Some(&cookie)).await;
    assert_eq!(later.status, 200, "{}", later.body);

    let ballots = queued_ballots(&redis).await;
    assert_eq!(ballots.len(), 2, "{ballots:?}");
    assert_eq!(
        (ballots[0].vote.as_str(), ballots[1].vote.as_str()),
        ("a", "b")
    );
    assert!(
        ballots[0].cast_at < ballots[1].cast_at,
        "the later ballot must carry the later stamp: {ballots:?}"
    );

    let shutdown = CancellationToken::new();
    let worker = worker::Config::embedded(&redis, &database);
    let worker = tokio::spawn(worker::run(worker, shutdown.clone()));
    let stored = stored_once_drained(&redis, &database, voter).await;
    shutdown.cancel();
    worker.await.unwrap().unwrap();
    assert_eq!(
        stored.as_deref(),
        Some("b"),
        "the later vote is the one stored"
    );
}

/// The voter's stored choice once the worker has taken every ballot queued.
async fn stored_once_drained(redis: &str, database: &str, voter: &str) -> Option<String> {
    let (db, connection) = tokio_postgres::connect(database, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        // The table appears once the worker has migrated the schema.
        let stored = db
            .query_opt("SELECT vote FROM votes WHERE id = $1", &[&voter])
            .await
            .ok()
            .flatten()
            .map(|row| row.get::<_, String>(0));
        if stored.is_some() && queued(redis).await.is_empty() {
            return stored;
        }
        assert!(
            Instant::now() < deadline,
            "the worker did not store the vote: {stored:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `faketime` from PATH, or one line saying how to install it.
fn faketime() -> PathBuf {
    std::env::var_os("PATH")
        .and_then(|path| {
            std::env::split_paths(&path)
                .map(|dir| dir.join("faketime"))
                .find(|candidate| candidate.is_file())
        })
        .unwrap_or_else(|| panic!("faketime not found: install it with `apt-get install faketime`"))
}

/// The test means nothing unless `faketime` really moves a program's clock.
fn assert_clock_ahead(faketime: &str) {
    let output = std::process::Command::new(faketime)
        .args(["-f", "+30s", "date", "+%s"])
        .output()
        .expect("run faketime");
    let faked: u64 = String::from_utf8_lossy(&output.stdout)
        .trim()
        .parse()
        .expect("date prints seconds");
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(
        faked >= now + 25,
        "faketime did not move the clock: {faked} vs {now}"
    );
}
