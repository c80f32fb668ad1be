//! A key the queue scripts use, set to the wrong type or value while the
//! worker runs: no ballot is lost. The scripts check every key before they
//! change anything, so the worker takes nothing, answers `/readyz` 503, logs
//! one line naming the key, and counts every ballot once the key is fixed.
//! Heartbeats no live worker wrote do not keep a batch from the queue.

mod support;

use std::time::Duration;

use ballot::queue::{heartbeat_key, processing_list, DEAD_LETTERS, ORDER, VOTES};
use redis::aio::MultiplexedConnection;
use support::*;
use test_servers::free_port;

/// Long enough for the worker to have tried the take a few times.
const RETRIES: Duration = Duration::from_millis(1500);

async fn run(redis: &mut MultiplexedConnection, command: &[&str]) {
    let mut cmd = redis::cmd(command[0]);
    cmd.arg(&command[1..]);
    cmd.query_async::<()>(redis).await.unwrap();
}

/// A ready worker, its Redis and Postgres, and a connection to each.
struct Running {
    worker: Worker,
    port: u16,
    redis: MultiplexedConnection,
    db: tokio_postgres::Client,
}

async fn running() -> Running {
    let (redis_url, db_url) = fresh();
    let port = free_port();
    let worker = Worker::start(&redis_url, &db_url, port);
    wait_for(port, "/readyz", 200).await;
    let mut redis = redis(&redis_url).await;
    // The queue's order is started by the first take.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !redis::cmd("EXISTS")
        .arg(ORDER)
        .query_async::<bool>(&mut redis)
        .await
        .unwrap()
    {
        assert!(std::time::Instant::now() < deadline, "no order started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Running {
        worker,
        port,
        redis,
        db: postgres(&db_url).await,
    }
}

impl Running {
    /// The id in the worker's first line, which names its keys.
    fn worker_id(&self) -> String {
        let log = self.worker.log();
        let at = log.find("worker_id=").expect("the worker logs its id") + "worker_id=".len();
        log[at..at + 16].to_string()
    }

    /// The log lines that say `key` is unusable.
    fn reports(&self, key: &str) -> usize {
        self.worker
            .log()
            .lines()
            .filter(|line| line.contains("unusable") && line.contains(&format!("{key} ")))
            .count()
    }
}

/// `spoil` makes `key` bad; ballots queued then stay queued, untouched,
/// while the worker says it is not ready and names the key once; after
/// `fix`, every ballot is counted and the worker is ready again.
async fn kept_until_fixed(key: &str, spoil: &[&[&str]], fix: &[&[&str]]) {
    let mut stack = running().await;
    for command in spoil {
        run(&mut stack.redis, command).await;
    }
    let cast = ballots(500, 200);
    let mut entries = json(&cast);
    entries.push("not a ballot".into());
    enqueue(&mut stack.redis, &entries).await;
    wait_for(stack.port, "/readyz", 503).await;
    tokio::time::sleep(RETRIES).await;

    let (waiting, _) = queued(&mut stack.redis).await;
    assert_eq!(waiting, entries.len(), "ballots left the queue");
    assert!(stored(&stack.db).await.is_empty(), "stored with a bad key");
    assert_eq!(stack.reports(key), 1, "{}", stack.worker.log());

    for command in fix {
        run(&mut stack.redis, command).await;
    }
    wait_drained(&mut stack.redis, Duration::from_secs(20)).await;
    assert_stored(&stack.db, &last_ballots(&cast)).await;
    assert_eq!(dead_letters(&mut stack.redis).await, ["not a ballot"]);
    wait_for(stack.port, "/readyz", 200).await;
    assert!(stack.worker.log().contains("usable again"));
}

#[tokio::test]
async fn an_order_whose_place_is_not_a_number() {
    kept_until_fixed(
        ORDER,
        &[&["HSET", ORDER, "cast_at", "notanumber"]],
        &[&["DEL", ORDER]],
    )
    .await;
}

#[tokio::test]
async fn an_order_whose_sequence_is_not_an_integer() {
    kept_until_fixed(
        ORDER,
        &[&["HSET", ORDER, "seq", "1.5"]],
        &[&["HSET", ORDER, "seq", "0"]],
    )
    .await;
}

#[tokio::test]
async fn an_order_without_a_place() {
    kept_until_fixed(ORDER, &[&["HDEL", ORDER, "cast_at"]], &[&["DEL", ORDER]]).await;
}

#[tokio::test]
async fn an_order_of_the_wrong_type() {
    kept_until_fixed(
        ORDER,
        &[&["DEL", ORDER], &["SET", ORDER, "0"]],
        &[&["DEL", ORDER]],
    )
    .await;
}

#[tokio::test]
async fn dead_letters_of_the_wrong_type() {
    kept_until_fixed(
        DEAD_LETTERS,
        &[&["SET", DEAD_LETTERS, "x"]],
        &[&["DEL", DEAD_LETTERS]],
    )
    .await;
}

#[tokio::test]
async fn its_own_processing_list_of_the_wrong_type() {
    // The list's name holds the worker's id: spoiled in two steps, here
    // for the key's name, the spoiling itself below.
    let mut stack = running().await;
    let list = processing_list(&stack.worker_id());
    run(&mut stack.redis, &["HSET", &list, "not", "a list"]).await;
    let cast = ballots(300, 100);
    enqueue(&mut stack.redis, &json(&cast)).await;
    wait_for(stack.port, "/readyz", 503).await;
    tokio::time::sleep(RETRIES).await;
    assert_eq!(queued(&mut stack.redis).await.0, cast.len());
    assert_eq!(stack.reports(&list), 1, "{}", stack.worker.log());
    run(&mut stack.redis, &["DEL", &list]).await;
    wait_drained(&mut stack.redis, Duration::from_secs(20)).await;
    assert_stored(&stack.db, &last_ballots(&cast)).await;
    wait_for(stack.port, "/readyz", 200).await;
}

/// A key named like a processing list but not a list holds no ballot: the
/// worker goes on counting, says it is not ready, and names the key.
#[tokio::test]
async fn a_processing_list_of_the_wrong_type() {
    let mut stack = running().await;
    let junk = processing_list("junk");
    run(&mut stack.redis, &["SET", &junk, "x"]).await;
    let cast = ballots(300, 100);
    enqueue(&mut stack.redis, &json(&cast)).await;
    wait_for(stack.port, "/readyz", 503).await;
    let lines = stack
        .worker
        .log()
        .lines()
        .filter(|line| line.contains("cannot be returned") && line.contains(&junk))
        .count();
    assert_eq!(lines, 1, "{}", stack.worker.log());
    let (waiting, _) = queued(&mut stack.redis).await;
    assert_eq!(waiting, 0, "counting stopped");
    assert_stored(&stack.db, &last_ballots(&cast)).await;
    run(&mut stack.redis, &["DEL", &junk]).await;
    wait_for(stack.port, "/readyz", 200).await;
}

/// A stopped worker's batch, its heartbeat spoiled by `spoil`: taken back
/// into the queue and counted all the same, as no live worker wrote it.
async fn reclaimed_despite(spoil: &[&str]) {
    let mut stack = running().await;
    let cast = ballots(300, 100);
    let gone = processing_list("gone");
    let mut command = vec!["RPUSH", gone.as_str()];
    let entries = json(&cast);
    command.extend(entries.iter().map(String::as_str));
    run(&mut stack.redis, &command).await;
    let heartbeat = heartbeat_key("gone");
    let mut spoil: Vec<&str> = spoil.to_vec();
    spoil.insert(1, &heartbeat);
    run(&mut stack.redis, &spoil).await;
    wait_drained(&mut stack.redis, Duration::from_secs(20)).await;
    assert_stored(&stack.db, &last_ballots(&cast)).await;
    let left: bool = redis::cmd("EXISTS")
        .arg(&heartbeat)
        .query_async(&mut stack.redis)
        .await
        .unwrap();
    assert!(!left, "the spoiled heartbeat stayed");
}

#[tokio::test]
async fn a_heartbeat_that_never_expires() {
    reclaimed_despite(&["SET", "alive"]).await;
}

#[tokio::test]
async fn a_heartbeat_of_the_wrong_type() {
    reclaimed_despite(&["HSET", "alive", "forever"]).await;
}

/// `votes` itself: nothing can be queued, and nothing is taken.
#[tokio::test]
async fn a_queue_of_the_wrong_type() {
    let mut stack = running().await;
    run(&mut stack.redis, &["HSET", VOTES, "not", "a list"]).await;
    wait_for(stack.port, "/readyz", 503).await;
    assert_eq!(stack.reports(VOTES), 1, "{}", stack.worker.log());
    run(&mut stack.redis, &["DEL", VOTES]).await;
    let cast = ballots(100, 100);
    enqueue(&mut stack.redis, &json(&cast)).await;
    wait_drained(&mut stack.redis, Duration::from_secs(20)).await;
    assert_stored(&stack.db, &last_ballots(&cast)).await;
    wait_for(stack.port, "/readyz", 200).await;
}
