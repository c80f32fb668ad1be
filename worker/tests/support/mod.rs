//! What the worker tests share: real servers, ballots, and checks.

#![allow(dead_code)] // each test binary uses its own subset

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ballot::queue::{DEAD_LETTERS, HEARTBEAT_PREFIX, PROCESSING_PREFIX, VOTES};
use ballot::schema::{count_votes, read_tally};
use ballot::{Ballot, VoteOptions};
use clap::Parser;
use redis::aio::MultiplexedConnection;
use test_servers::{Postgres, Redis};
use tokio::task::JoinHandle;
use tokio_postgres::{Client, NoTls};
use tokio_util::sync::CancellationToken;

/// A Redis database and a Postgres database of this test's own, on the shared servers.
pub fn fresh() -> (String, String) {
    (
        Redis::shared().fresh_db_url(),
        Postgres::shared().fresh_database(),
    )
}

/// `worker migrate` on `db_url`, which must succeed.
pub fn migrate(db_url: &str) {
    let status = Command::new(env!("CARGO_BIN_EXE_worker"))
        .arg("migrate")
        .env("DATABASE_URL", db_url)
        .env("RUST_LOG", "error")
        .status()
        .unwrap();
    assert!(status.success(), "worker migrate: {status}");
}

pub async fn redis(url: &str) -> MultiplexedConnection {
    test_servers::redis_connection(url).await
}

pub async fn postgres(url: &str) -> Client {
    let (client, connection) = tokio_postgres::connect(url, NoTls).await.unwrap();
    tokio::spawn(connection);
    client
}

/// RPUSHes `entries` onto `votes` in chunks.
pub async fn enqueue(redis: &mut MultiplexedConnection, entries: &[String]) {
    for chunk in entries.chunks(10_000) {
        redis::cmd("RPUSH")
            .arg(VOTES)
            .arg(chunk)
            .query_async::<()>(redis)
            .await
            .unwrap();
    }
}

/// `count` ballots for `voters` voters, cast one microsecond apart, in a
/// reproducible mix of options.
pub fn ballots(count: usize, voters: usize) -> Vec<Ballot> {
    (0..count)
        .map(|i| Ballot {
            voter_id: format!("voter-{}", i % voters),
            vote: ["a", "b", "c"][(i * 7 + i / voters) % 3].to_string(),
            cast_at: Some(1_700_000_000_000_000 + i as i64),
            queue_seq: None,
        })
        .collect()
}

pub fn json(ballots: &[Ballot]) -> Vec<String> {
    ballots.iter().map(Ballot::to_json).collect()
}

/// Each voter's ballot with the highest `cast_at`.
pub fn last_ballots(ballots: &[Ballot]) -> BTreeMap<String, String> {
    let mut latest: BTreeMap<String, &Ballot> = BTreeMap::new();
    for b in ballots {
        let entry = latest.entry(b.voter_id.clone()).or_insert(b);
        if b.cast_at > entry.cast_at {
            *entry = b;
        }
    }
    latest
        .into_iter()
        .map(|(voter, b)| (voter, b.vote.clone()))
        .collect()
}

/// a, b and c: the options the ballots below vote for.
pub fn three_options() -> VoteOptions {
    ballot::options::OptionArgs {
        option_c: Some("Fish".into()),
        ..Default::default()
    }
    .options()
}

pub fn config(redis_url: &str, database_url: &str, extra: &[&str]) -> worker::Config {
    let mut args = vec![
        "worker",
        "--redis-url",
        redis_url,
        "--database-url",
        database_url,
        "--heartbeat-ttl",
        "2",
        "--port",
        "0",
    ];
    args.extend_from_slice(extra);
    worker::Config::parse_from(args)
}

/// A worker running in this process until stopped.
pub struct InProcess {
    shutdown: CancellationToken,
    task: JoinHandle<Result<(), worker::Stopped>>,
}

impl InProcess {
    pub fn start(redis_url: &str, database_url: &str, extra: &[&str]) -> InProcess {
        kit::telemetry::init();
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(worker::run(
            config(redis_url, database_url, extra),
            shutdown.clone(),
        ));
        InProcess { shutdown, task }
    }

    pub async fn stop(self) {
        self.shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .expect("worker stops within 10 s")
            .unwrap()
            .unwrap();
    }
}

/// How many ballots wait in `votes` and in processing lists, read atomically.
pub async fn queued(redis: &mut MultiplexedConnection) -> (usize, Vec<String>) {
    redis::pipe()
        .atomic()
        .llen(VOTES)
        .keys(format!("{PROCESSING_PREFIX}*"))
        .query_async(redis)
        .await
        .unwrap()
}

/// Waits until every ballot has left Redis, which happens only after its commit.
pub async fn wait_drained(redis: &mut MultiplexedConnection, limit: Duration) {
    let start = Instant::now();
    loop {
        let (waiting, processing) = queued(redis).await;
        if waiting == 0 && processing.is_empty() {
            return;
        }
        assert!(
            start.elapsed() < limit,
            "not drained after {limit:?}: {waiting} queued, in flight: {processing:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until fewer than `below` ballots wait in `votes`.
pub async fn wait_queue_below(redis: &mut MultiplexedConnection, below: usize) {
    let start = Instant::now();
    while queued(redis).await.0 >= below {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "queue stuck at or above {below}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

pub async fn dead_letters(redis: &mut MultiplexedConnection) -> Vec<String> {
    redis::cmd("LRANGE")
        .arg(DEAD_LETTERS)
        .arg(0)
        .arg(-1)
        .query_async(redis)
        .await
        .unwrap()
}

pub async fn heartbeats(redis: &mut MultiplexedConnection) -> Vec<String> {
    redis::cmd("KEYS")
        .arg(format!("{HEARTBEAT_PREFIX}*"))
        .query_async(redis)
        .await
        .unwrap()
}

/// Voter id -> (vote, cast_at) as stored.
pub async fn stored(db: &Client) -> BTreeMap<String, (String, i64)> {
    db.query("SELECT id, vote, cast_at FROM votes", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), (r.get(1), r.get(2))))
        .collect()
}

/// The table holds exactly `expected` and the tallies equal the reference GROUP BY.
pub async fn assert_stored(db: &Client, expected: &BTreeMap<String, String>) {
    let votes: BTreeMap<String, String> = stored(db)
        .await
        .into_iter()
        .map(|(voter, (vote, _))| (voter, vote))
        .collect();
    if &votes != expected {
        let wrong = expected
            .iter()
            .filter(|(voter, vote)| votes.get(*voter) != Some(*vote))
            .count();
        panic!(
            "{} rows stored, {} expected, {wrong} voters wrong or missing",
            votes.len(),
            expected.len()
        );
    }
    assert_tallies_exact(db).await;
}

pub async fn assert_tallies_exact(db: &Client) {
    let options = three_options();
    let tally = read_tally(db, &options).await.unwrap();
    assert_eq!(tally, count_votes(db, &options).await.unwrap());
    let rows: i64 = db
        .query_one("SELECT COALESCE(SUM(count), 0)::BIGINT FROM tallies", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(rows, tally.total, "tallies hold an unconfigured option");
}

/// The worker binary on `port`, killed when dropped; its log is kept.
pub struct Worker {
    child: Child,
    log: tempfile::NamedTempFile,
}

impl Worker {
    pub fn start(redis_url: &str, database_url: &str, port: u16) -> Worker {
        let log = tempfile::NamedTempFile::new().unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_worker"))
            .env("REDIS_URL", redis_url)
            .env("DATABASE_URL", database_url)
            .env("PORT", port.to_string())
            .env("HEARTBEAT_TTL", "2")
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log.reopen().unwrap())
            .spawn()
            .unwrap();
        Worker { child, log }
    }

    /// What it has logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log.path()).unwrap()
    }

    /// The lines of its log so far that contain `text`.
    pub fn logged(&self, text: &str) -> Vec<String> {
        let log = self.log();
        log.lines()
            .filter(|line| line.contains(text))
            .map(String::from)
            .collect()
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub async fn get(port: u16, path: &str) -> Option<(u16, String)> {
    let response = reqwest::get(format!("http://127.0.0.1:{port}{path}"))
        .await
        .ok()?;
    let status = response.status().as_u16();
    Some((status, response.text().await.unwrap()))
}

pub async fn wait_for(port: u16, path: &str, status: u16) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let answer = get(port, path).await;
        if let Some((seen, body)) = &answer {
            if *seen == status {
                return body.clone();
            }
        }
        assert!(
            Instant::now() < deadline,
            "{path} never answered {status}; last: {answer:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
