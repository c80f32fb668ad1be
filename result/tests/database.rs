//! The result service and the database it reads: restarts while another
//! session holds a lock, a role that may only read, the server's own words
//! in the log, settings that can never work, and options without labels.

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use clap::Parser;
use support::*;
use test_servers::{free_port, Postgres, Redis};
use tokio_util::sync::CancellationToken;

/// A worker running in this test until the token is cancelled.
fn start_worker(redis_url: &str, database_url: &str) -> CancellationToken {
    let config = worker::Config::embedded(redis_url, database_url);
    let stop = CancellationToken::new();
    tokio::spawn(worker::run(config, stop.clone()));
    stop
}

async fn queue_ballot(redis: &mut redis::aio::MultiplexedConnection, voter: &str, vote: &str) {
    let (seconds, micros): (i64, i64) = redis::cmd("TIME").query_async(redis).await.unwrap();
    let cast_at = seconds * 1_000_000 + micros;
    redis::cmd("RPUSH")
        .arg(ballot::queue::VOTES)
        .arg(format!(
            r#"{{"voter_id":"{voter}","vote":"{vote}","cast_at":{cast_at}}}"#
        ))
        .query_async::<()>(redis)
        .await
        .unwrap();
}

async fn counted(db: &tokio_postgres::Client) -> i64 {
    db.query_one("SELECT COALESCE(SUM(count), 0)::BIGINT FROM tallies", &[])
        .await
        .unwrap()
        .get(0)
}

/// A `pg_dump` or an idle-in-transaction session reading `votes` for 20 s
/// while a second worker and a result start: counting never stalls.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarts_never_stall_counting_while_a_session_reads_votes() {
    let redis_url = Redis::shared().fresh_db_url();
    let database_url = Postgres::shared().fresh_database();
    let first_worker = start_worker(&redis_url, &database_url);
    start_result(&database_url).await;
    let check = db(&database_url).await;
    let reader = db(&database_url).await;
    reader
        .batch_execute("BEGIN; SELECT count(*) FROM votes")
        .await
        .unwrap();

    let held_since = Instant::now();
    let second_worker = start_worker(&redis_url, &database_url);
    let restarted = launch_result(&database_url, &[]).await;
    let mut redis = test_servers::redis_connection(&redis_url).await;
    for i in 1..=10 {
        queue_ballot(&mut redis, &format!("v{i}"), "a").await;
        let cast = Instant::now();
        while counted(&check).await < i {
            assert!(
                cast.elapsed() < Duration::from_secs(2),
                "ballot {i} not counted within 2 s, {:?} into the read",
                held_since.elapsed()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        tokio::time::sleep_until((held_since + Duration::from_secs(2 * i as u64)).into()).await;
    }
    assert!(held_since.elapsed() >= Duration::from_secs(20));
    assert_eq!(status(restarted, "/readyz").await, Some(200));
    assert_eq!(
        get_text(restarted, "/api/tally").await,
        r#"{"votes":{"a":10,"b":0},"total":10}"#
    );
    reader.batch_execute("COMMIT").await.unwrap();
    first_worker.cancel();
    second_worker.cancel();
}

/// result only reads a current schema: a role with no right to create
/// tables serves the tally, and on an empty database waits for the worker.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_role_that_may_only_read_waits_for_the_worker_then_serves() {
    let pg = Postgres::shared();
    let owner_url = pg.fresh_database();
    let admin = db(&owner_url).await;
    admin
        .batch_execute(
            "DO $$ BEGIN CREATE ROLE viewer LOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$; \
             ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO viewer",
        )
        .await
        .unwrap();
    let database = owner_url.rsplit('/').next().unwrap();
    let viewer_url = format!("postgres://viewer@127.0.0.1:{}/{database}", pg.port());

    let port = launch_result(&viewer_url, &[]).await;
    wait_for_status(port, "/healthz", 200).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(status(port, "/readyz").await, Some(503), "no schema yet");

    let worker = start_worker(&Redis::shared().fresh_db_url(), &owner_url);
    // result retries with a backoff of at most 5 s.
    wait_for_status(port, "/readyz", 200).await;
    let mut socket = connect(port).await;
    assert_eq!(next_tally(&mut socket).await.total, 0);
    insert_votes(&admin, &[("v1", "b")]).await;
    assert_eq!(
        next_text(&mut socket).await,
        r#"{"votes":{"a":0,"b":1},"total":1}"#
    );
    worker.cancel();
}

/// The result binary, its stderr lines sent to a channel as they come.
struct Binary {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Binary {
    fn start(database_url: &str, port: u16) -> Binary {
        let mut child = Command::new(env!("CARGO_BIN_EXE_result"))
            .env("DATABASE_URL", database_url)
            .env("PORT", port.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (sender, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = sender.send(line);
            }
        });
        Binary { child, lines }
    }

    /// The first line containing `text`, waiting up to `limit`.
    fn line_with(&self, text: &str, limit: Duration) -> String {
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.contains(text) => return line,
                Ok(_) => {}
                Err(_) => panic!("no line with {text:?} within {limit:?}"),
            }
        }
    }
}

impl Drop for Binary {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn postgres_errors_are_logged_in_the_servers_own_words() {
    let pg = Postgres::shared();
    let owner_url = pg.fresh_database();
    let admin = db(&owner_url).await;
    ballot::schema::migrate(&admin).await.unwrap();
    admin
        .batch_execute(
            "DO $$ BEGIN CREATE ROLE limited LOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$; \
             ALTER ROLE limited CONNECTION LIMIT 0; \
             GRANT SELECT ON ALL TABLES IN SCHEMA public TO limited",
        )
        .await
        .unwrap();
    let database = owner_url.rsplit('/').next().unwrap();
    let url = format!("postgres://limited@127.0.0.1:{}/{database}", pg.port());
    let port = free_port();
    let result = Binary::start(&url, port);

    let line = result.line_with("postgres unavailable", Duration::from_secs(10));
    assert!(
        line.contains("too many connections for role \"limited\" (53300)"),
        "{line}"
    );
    admin
        .batch_execute("ALTER ROLE limited CONNECTION LIMIT -1")
        .await
        .unwrap();
    wait_for_status(port, "/readyz", 200).await;
}

#[tokio::test]
async fn a_database_url_that_cannot_work_stops_the_binary_with_one_line() {
    let url = Postgres::shared().db_url("no_such_database");
    let mut result = Binary::start(&url, free_port());
    let started = Instant::now();
    let status = loop {
        if let Some(status) = result.child.try_wait().unwrap() {
            break status;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "still running");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(status.code(), Some(2));
    // Every line, up to the end of its stderr (the reader may lag the exit).
    let lines: Vec<String> = result.lines.iter().collect();
    let naming: Vec<&String> = lines
        .iter()
        .filter(|l| l.contains("DATABASE_URL"))
        .collect();
    assert_eq!(naming.len(), 1, "{lines:#?}");
    // The verdict is the last line: nothing it started logs after it.
    assert_eq!(lines.last(), Some(naming[0]), "{lines:#?}");
    assert!(
        naming[0].contains("database \"no_such_database\" does not exist"),
        "{lines:#?}"
    );
    assert!(
        !lines.iter().any(|l| l.contains("retrying")),
        "retried a setting that cannot work: {lines:#?}"
    );
}

/// vote offers a third option the worker and result have no label for:
/// the ballot is counted and shown, never dropped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ballot_for_an_option_only_vote_knows_is_counted_and_shown() {
    let redis_url = Redis::shared().fresh_db_url();
    let database_url = Postgres::shared().fresh_database();
    let vote_port = free_port();
    let vote = vote::Config::parse_from([
        "vote",
        "--redis-url",
        &redis_url,
        "--port",
        &vote_port.to_string(),
        "--option-c",
        "Fish",
    ]);
    tokio::spawn(vote::serve(vote));
    wait_for_status(vote_port, "/healthz", 200).await;
    let worker = start_worker(&redis_url, &database_url);
    let result = start_result(&database_url).await;

    let response = reqwest::Client::new()
        .post(format!("http://127.0.0.1:{vote_port}/"))
        .form(&[("vote", "c")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let expected = r#"{"votes":{"a":0,"b":0,"c":1},"total":1}"#;
    let deadline = Instant::now() + PATIENCE;
    while get_text(result, "/api/tally").await != expected {
        assert!(
            Instant::now() < deadline,
            "the ballot for c was not counted"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let page = get_text(result, "/").await;
    assert!(
        page.contains("Option C") && page.contains("100%"),
        "the page does not show c"
    );
    worker.cancel();
}
