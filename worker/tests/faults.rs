//! The worker through outages and crashes: Redis or Postgres stopped
//! mid-stream, the process killed with SIGKILL or stopped with SIGTERM.

mod support;

use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use support::*;
use test_servers::{Postgres, Redis};

const DRAIN: Duration = Duration::from_secs(90);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_stopped_and_resumed_mid_stream_loses_nothing() {
    let server = Redis::start();
    let (redis_url, db_url) = (server.url(), Postgres::shared().fresh_database());
    outage_mid_stream(server, &redis_url, &db_url, Redis::stop, Redis::resume).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_stopped_and_resumed_mid_stream_loses_nothing() {
    let pg = Postgres::start();
    let (redis_url, db_url) = (Redis::shared().fresh_db_url(), pg.url());
    outage_mid_stream(pg, &redis_url, &db_url, Postgres::stop, Postgres::resume).await;
}

/// Once a worker is well into 30,000 queued ballots, `server` is stopped for
/// a second and resumed; then every voter's latest ballot must be stored.
async fn outage_mid_stream<S: Send + 'static>(
    server: S,
    redis_url: &str,
    db_url: &str,
    stop: fn(&S),
    resume: fn(&S),
) {
    let mut redis = redis(redis_url).await;
    let cast = ballots(30_000, 10_000);
    enqueue(&mut redis, &json(&cast)).await;
    let worker = InProcess::start(redis_url, db_url, &["--batch-size", "100"]);
    wait_queue_below(&mut redis, 25_000).await;
    assert!(queued(&mut redis).await.0 > 0, "drained before the outage");

    let _server = tokio::task::spawn_blocking(move || {
        stop(&server);
        std::thread::sleep(Duration::from_secs(1));
        resume(&server);
        server
    })
    .await
    .unwrap();

    // A new connection: the one above may have died with Redis.
    let mut redis = support::redis(redis_url).await;
    wait_drained(&mut redis, DRAIN).await;
    worker.stop().await;
    assert_stored(&postgres(db_url).await, &last_ballots(&cast)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn started_while_postgres_is_down_it_waits_then_drains() {
    let redis_url = Redis::shared().fresh_db_url();
    let pg = Postgres::start();
    let db_url = pg.url();
    let pg = tokio::task::spawn_blocking(move || {
        pg.stop();
        pg
    })
    .await
    .unwrap();
    let mut redis = redis(&redis_url).await;
    let cast = ballots(1_000, 400);
    enqueue(&mut redis, &json(&cast)).await;
    let worker = InProcess::start(&redis_url, &db_url, &[]);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        queued(&mut redis).await.0,
        1_000,
        "took ballots it cannot store"
    );

    let pg = tokio::task::spawn_blocking(move || {
        pg.resume();
        pg
    })
    .await
    .unwrap();
    wait_drained(&mut redis, DRAIN).await;
    worker.stop().await;
    assert_stored(&postgres(&pg.url()).await, &last_ballots(&cast)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn started_while_redis_is_down_it_waits_then_drains() {
    let server = Redis::start();
    let (redis_url, db_url) = (server.url(), Postgres::shared().fresh_database());
    let cast = ballots(1_000, 400);
    enqueue(&mut redis(&redis_url).await, &json(&cast)).await;
    // Stopped cleanly, the server keeps the queue for its restart.
    let server = tokio::task::spawn_blocking(move || {
        server.stop();
        server
    })
    .await
    .unwrap();
    let worker = InProcess::start(&redis_url, &db_url, &[]);
    tokio::time::sleep(Duration::from_secs(1)).await;

    let _server = tokio::task::spawn_blocking(move || {
        server.resume();
        server
    })
    .await
    .unwrap();
    let mut redis = redis(&redis_url).await;
    wait_drained(&mut redis, DRAIN).await;
    worker.stop().await;
    assert_stored(&postgres(&db_url).await, &last_ballots(&cast)).await;
}

/// The worker binary, killed when the test ends however it ends.
struct Process(Child);

impl Process {
    fn start(redis_url: &str, database_url: &str) -> Process {
        let child = Command::new(env!("CARGO_BIN_EXE_worker"))
            .env("REDIS_URL", redis_url)
            .env("DATABASE_URL", database_url)
            .env("OPTION_C", "Fish")
            .env("BATCH_SIZE", "500")
            .env("HEARTBEAT_TTL", "2")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .expect("start the worker binary");
        Process(child)
    }

    fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.0.id().to_string())
            .status()
            .unwrap();
        assert!(status.success());
    }

    async fn exit_status(&mut self, limit: Duration) -> ExitStatus {
        let start = Instant::now();
        loop {
            if let Some(status) = self.0.try_wait().unwrap() {
                return status;
            }
            assert!(
                start.elapsed() < limit,
                "worker still running after {limit:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn sigkill_mid_drain_then_restart_loses_nothing() {
    let (redis_url, db_url) = fresh();
    let mut redis = redis(&redis_url).await;
    let cast = ballots(100_000, 40_000);
    enqueue(&mut redis, &json(&cast)).await;

    let mut first = Process::start(&redis_url, &db_url);
    wait_queue_below(&mut redis, 70_000).await;
    first.signal("KILL");
    first.exit_status(Duration::from_secs(5)).await;
    let (waiting, in_flight) = queued(&mut redis).await;
    assert!(waiting > 0, "drained before the kill; nothing was tested");
    drop(first);

    // Restarted under a new id: the dead worker's batch comes back once its
    // heartbeat expires.
    let mut second = Process::start(&redis_url, &db_url);
    wait_drained(&mut redis, DRAIN).await;
    second.signal("TERM");
    assert!(second.exit_status(Duration::from_secs(5)).await.success());
    assert_stored(&postgres(&db_url).await, &last_ballots(&cast)).await;
    eprintln!(
        "killed with {waiting} queued and {} batch(es) in flight",
        in_flight.len()
    );
}

#[tokio::test]
async fn sigterm_hands_back_or_finishes_the_batch_and_exits_zero() {
    let (redis_url, db_url) = fresh();
    let mut redis = redis(&redis_url).await;
    let cast = ballots(40_000, 15_000);
    enqueue(&mut redis, &json(&cast)).await;

    let mut worker = Process::start(&redis_url, &db_url);
    wait_queue_below(&mut redis, 30_000).await;
    worker.signal("TERM");
    let status = worker.exit_status(Duration::from_secs(5)).await;
    assert!(status.success(), "exited with {status}");
    let (waiting, in_flight) = queued(&mut redis).await;
    assert!(in_flight.is_empty(), "batch left in flight: {in_flight:?}");
    assert!(
        heartbeats(&mut redis).await.is_empty(),
        "heartbeat left behind"
    );
    assert!(waiting > 0, "drained before the signal; nothing was tested");

    let rest = InProcess::start(&redis_url, &db_url, &[]);
    wait_drained(&mut redis, DRAIN).await;
    rest.stop().await;
    assert_stored(&postgres(&db_url).await, &last_ballots(&cast)).await;
}

#[test]
fn a_bad_setting_stops_the_binary_with_one_line_naming_it() {
    let output = Command::new(env!("CARGO_BIN_EXE_worker"))
        .env("BATCH_SIZE", "0")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("BATCH_SIZE"), "{stderr}");
}
