//! The whole pipeline and the database it counts in: restarts while another
//! session holds a lock, a result role that may only read, and an option
//! only vote knows.

use std::time::{Duration, Instant};

use pipeline::client::*;
use pipeline::Worker;
use test_servers::{Postgres, Redis};

/// result on `database_url`, serving until the test ends; its port, once ready.
async fn start_result(database_url: &str) -> u16 {
    let port = launch_result(database_url).await;
    wait_for_status(port, "/readyz", 200).await;
    port
}

/// result on `database_url`, serving until the test ends, not yet ready.
async fn launch_result(database_url: &str) -> u16 {
    pipeline::start_result(database_url, &[]).await.detach()
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
    let first_worker = Worker::start(&redis_url, &database_url);
    start_result(&database_url).await;
    let check = db(&database_url).await;
    let reader = db(&database_url).await;
    reader
        .batch_execute("BEGIN; SELECT count(*) FROM votes")
        .await
        .unwrap();

    let held_since = Instant::now();
    let second_worker = Worker::start(&redis_url, &database_url);
    let restarted = launch_result(&database_url).await;
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
    first_worker.stop().await;
    second_worker.stop().await;
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

    let port = launch_result(&viewer_url).await;
    wait_for_status(port, "/healthz", 200).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(status(port, "/readyz").await, Some(503), "no schema yet");

    let worker = Worker::start(&Redis::shared().fresh_db_url(), &owner_url);
    // result retries with a backoff of at most 5 s.
    wait_for_status(port, "/readyz", 200).await;
    let mut socket = connect(port).await;
    assert_eq!(next_tally(&mut socket).await.total, 0);
    insert_votes(&admin, &[("v1", "b")]).await;
    assert_eq!(
        next_text(&mut socket).await,
        r#"{"votes":{"a":0,"b":1},"total":1}"#
    );
    worker.stop().await;
}

/// vote offers a third option the worker and result have no label for:
/// the ballot is counted and shown, never dropped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ballot_for_an_option_only_vote_knows_is_counted_and_shown() {
    let redis_url = Redis::shared().fresh_db_url();
    let database_url = Postgres::shared().fresh_database();
    let vote = pipeline::start_vote(&redis_url, &["--option-c", "Fish"]).await;
    let vote_port = vote.port();
    let worker = Worker::start(&redis_url, &database_url);
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
    worker.stop().await;
}
