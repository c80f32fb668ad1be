//! The worker through outages and crashes: Redis or Postgres stopped
//! mid-stream, a Postgres primary lost to its standby, the process killed
//! with SIGKILL or stopped with SIGTERM.

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

/// A crash, not a clean stop: Redis killed with SIGKILL. With the
/// append-only file on (as in compose), every acknowledged write survives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_killed_mid_stream_loses_nothing_with_its_append_only_file() {
    let server = Redis::start_with_aof();
    let (redis_url, db_url) = (server.url(), Postgres::shared().fresh_database());
    outage_mid_stream(server, &redis_url, &db_url, Redis::kill, Redis::resume).await;
}

/// Postgres stopped with `-m immediate` (no checkpoint; recovery from the
/// WAL at restart). With synchronous_commit on, every commit the worker saw
/// survives, so every ballot it cleared from Redis is stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_crashed_mid_stream_loses_nothing_with_synchronous_commit() {
    let pg = Postgres::start_with_synchronous_commit();
    let (redis_url, db_url) = (Redis::shared().fresh_db_url(), pg.url());
    outage_mid_stream(pg, &redis_url, &db_url, Postgres::crash, Postgres::resume).await;
}

/// Several hosts in DATABASE_URL with target_session_attrs=read-write, the
/// standby first: `worker migrate` and the worker pass it over and write to
/// the primary.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_multi_host_url_finds_the_primary_listed_after_its_standby() {
    let (primary, standby) = Postgres::start_replicated();
    let db_url = Postgres::read_write_url(&[&standby, &primary]);
    let redis_url = Redis::shared().fresh_db_url();
    migrate(&db_url);
    let mut redis = redis(&redis_url).await;
    let cast = ballots(2_000, 700);
    enqueue(&mut redis, &json(&cast)).await;
    let worker = InProcess::start(&redis_url, &db_url, &[]);
    wait_drained(&mut redis, DRAIN).await;
    worker.stop().await;
    assert_eq!(dead_letters(&mut redis).await, Vec::<String>::new());
    assert_stored(&postgres(&primary.url()).await, &last_ballots(&cast)).await;
}

/// A failover as Patroni makes one: the primary dies mid-stream (immediate
/// shutdown, every connection cut) and its synchronous standby is promoted
/// a second later. The worker finds the new primary by itself, and every
/// ballot is counted once, each voter's latest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn primary_killed_mid_stream_then_its_standby_promoted_loses_nothing() {
    failover_mid_stream(Postgres::crash).await;
}

/// The primary demoted with the worker's connection open: it stays up but
/// refuses writes (25006 read_only_sql_transaction), then the standby is
/// promoted. The worker takes the refusal for what it is, leaves the old
/// server for the new primary, and dead-letters no ballot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn primary_turned_read_only_mid_stream_the_worker_moves_to_the_new_one() {
    failover_mid_stream(Postgres::make_read_only).await;
}

/// A primary and its synchronous standby, listed in that order: mid-stream,
/// `lose` is done to the primary and, a second later, the standby promoted.
async fn failover_mid_stream(lose: fn(&Postgres)) {
    let (primary, standby) = Postgres::start_replicated();
    let db_url = Postgres::read_write_url(&[&primary, &standby]);
    let redis_url = Redis::shared().fresh_db_url();
    let pair = (primary, standby);
    let lose_primary = move |(primary, _): &(Postgres, Postgres)| lose(primary);
    let promote_standby = |(_, standby): &(Postgres, Postgres)| standby.promote();
    outage_mid_stream(pair, &redis_url, &db_url, lose_primary, promote_standby).await;
}

/// A write that never answers, as on a primary cut off the network (here:
/// another session holds `votes` locked). After `--write-timeout` the
/// worker drops the connection and retries on a new one with backoff, so
/// several of its sessions come to wait; once the lock goes, the batch is
/// replayed, and the stalled sessions' writes, landing too, change nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_that_never_answers_is_dropped_after_the_write_timeout_and_replayed() {
    let (redis_url, db_url) = fresh();
    let mut redis = redis(&redis_url).await;
    let first = ballots(100, 100);
    enqueue(&mut redis, &json(&first)).await;
    let worker = InProcess::start(&redis_url, &db_url, &["--write-timeout", "1"]);
    wait_drained(&mut redis, DRAIN).await;

    let blocker = postgres(&db_url).await;
    blocker
        .batch_execute("BEGIN; LOCK TABLE votes IN ACCESS EXCLUSIVE MODE")
        .await
        .unwrap();
    let cast: Vec<_> = first.into_iter().chain(ballots(2_000, 300)).collect();
    enqueue(&mut redis, &json(&cast[100..])).await;
    wait_given_up_on_a_stalled_session(&db_url).await;
    let (left, taken) = queued(&mut redis).await;
    assert!(
        left > 0 || !taken.is_empty(),
        "drained while votes was locked"
    );
    blocker.batch_execute("ROLLBACK").await.unwrap();

    drained_and_counted_exactly(&mut redis, worker, &db_url, &cast).await;
}

/// `votes` never answering (another session holds it locked) when the
/// worker starts, then again when Redis is emptied under it: its connect
/// (preparing the upsert waits for the lock) and its read of the latest
/// ballot stored (to start the queue's order again) are bounded as a write
/// is. It gives up on each, tries again on a new connection, and counts
/// everything once the table answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_start_or_restart_of_the_order_that_never_answers_is_given_up_and_retried() {
    let (redis_url, db_url) = fresh();
    migrate(&db_url);
    let mut redis = redis(&redis_url).await;
    let first = ballots(500, 200);
    enqueue(&mut redis, &json(&first)).await;
    let blocker = postgres(&db_url).await;
    blocker
        .batch_execute("BEGIN; LOCK TABLE votes IN ACCESS EXCLUSIVE MODE")
        .await
        .unwrap();
    let worker = InProcess::start(&redis_url, &db_url, &["--write-timeout", "1"]);
    wait_given_up_on_a_stalled_session(&db_url).await;
    blocker.batch_execute("ROLLBACK").await.unwrap();
    wait_drained(&mut redis, DRAIN).await;

    // As after a Redis failover to an empty member: the order is gone, and
    // the worker must read where Postgres stands before taking more.
    blocker
        .batch_execute("BEGIN; LOCK TABLE votes IN ACCESS EXCLUSIVE MODE")
        .await
        .unwrap();
    let _: () = redis::cmd("DEL")
        .arg(ballot::queue::ORDER)
        .query_async(&mut redis)
        .await
        .unwrap();
    let cast: Vec<_> = first.into_iter().chain(ballots(500, 300)).collect();
    enqueue(&mut redis, &json(&cast[500..])).await;
    wait_given_up_on_a_stalled_session(&db_url).await;
    blocker.batch_execute("ROLLBACK").await.unwrap();

    drained_and_counted_exactly(&mut redis, worker, &db_url, &cast).await;
}

/// Waits until the queue is drained, stops the worker, and checks that
/// nothing was dead-lettered and every voter's latest ballot is stored, the
/// tallies matching.
async fn drained_and_counted_exactly(
    redis: &mut redis::aio::MultiplexedConnection,
    worker: InProcess,
    db_url: &str,
    cast: &[ballot::Ballot],
) {
    wait_drained(redis, DRAIN).await;
    worker.stop().await;
    assert_eq!(dead_letters(redis).await, Vec::<String>::new());
    let db = postgres(db_url).await;
    assert_stored(&db, &last_ballots(cast)).await;
    assert_tallies_exact(&db).await;
}

/// Waits until two of the worker's sessions wait on a lock: it gave up on
/// the first after its write timeout and tried again on a new connection.
async fn wait_given_up_on_a_stalled_session(db_url: &str) {
    // Asked on a connection of its own: inside the blocker's transaction
    // pg_stat_activity would stay as first read.
    let observer = postgres(db_url).await;
    let waiting = "SELECT count(*) FROM pg_stat_activity \
                   WHERE datname = current_database() AND wait_event_type = 'Lock'";
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let sessions: i64 = observer.query_one(waiting, &[]).await.unwrap().get(0);
        if sessions >= 2 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the worker never gave up on its stalled session"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Once a worker is well into 30,000 queued ballots, `server` is stopped for
/// a second and resumed; then every voter's latest ballot must be stored,
/// and none dead-lettered.
async fn outage_mid_stream<S: Send + 'static>(
    server: S,
    redis_url: &str,
    db_url: &str,
    stop: impl Fn(&S) + Send + 'static,
    resume: impl Fn(&S) + Send + 'static,
) {
    let mut redis = redis(redis_url).await;
    let cast = ballots(30_000, 10_000);
    enqueue(&mut redis, &json(&cast)).await;
    let worker = InProcess::start(redis_url, db_url, &["--batch-size", "100"]);
    wait_queue_below(&mut redis, 25_000).await;
    assert!(queued(&mut redis).await.0 > 0, "drained before the outage");

    let _server = tokio::task::spawn_blocking(move || {
        stop(&server);
        // How long the outage lasts, not a wait for something.
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
    assert_eq!(dead_letters(&mut redis).await, Vec::<String>::new());
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
    // A second of the worker retrying against the outage: nothing to wait
    // for, it must not take a ballot meanwhile.
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
    // A second of the worker retrying against the outage.
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
            .env("PORT", "0")
            .env("BATCH_SIZE", "500")
            .env("HEARTBEAT_TTL", "2")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .expect("start the worker binary");
        Process(child)
    }

    /// The most memory the process has held (VmHWM), in MiB.
    fn peak_rss_mib(&self) -> f64 {
        test_servers::memory_kib(self.0.id(), "VmHWM:") as f64 / 1024.0
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_entries_stall_no_worker_and_miss_no_heartbeat() {
    let (redis_url, db_url) = fresh();
    let mut redis = redis(&redis_url).await;
    let workers = [
        Process::start(&redis_url, &db_url),
        Process::start(&redis_url, &db_url),
    ];
    let deadline = Instant::now() + Duration::from_secs(20);
    while heartbeats(&mut redis).await.len() < 2 {
        assert!(Instant::now() < deadline, "workers did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let db = postgres(&db_url).await;

    // 300 entries of 1 MB, then one good ballot.
    let huge = format!(
        "{{\"voter_id\":\"{}\",\"vote\":\"a\"}}",
        "x".repeat(1 << 20)
    );
    for _ in 0..30 {
        enqueue(&mut redis, &vec![huge.clone(); 10]).await;
    }
    let good = ballots(1, 1);
    enqueue(&mut redis, &json(&good)).await;
    let queued_at = Instant::now();
    loop {
        // Two beats are lost before peers count a worker gone; both stay.
        assert_eq!(heartbeats(&mut redis).await.len(), 2, "a heartbeat expired");
        if !stored(&db).await.is_empty() {
            break;
        }
        assert!(
            queued_at.elapsed() < Duration::from_secs(5),
            "the good ballot was not counted within 5 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let counted_after = queued_at.elapsed();
    assert_stored(&db, &last_ballots(&good)).await;
    let dead: usize = redis::cmd("LLEN")
        .arg(ballot::queue::DEAD_LETTERS)
        .query_async(&mut redis)
        .await
        .unwrap();
    assert_eq!(dead, 300);
    for worker in &workers {
        let peak = worker.peak_rss_mib();
        assert!(peak < 100.0, "a worker peaked at {peak:.0} MiB");
    }
    eprintln!(
        "good ballot counted {counted_after:?} after 300 MB of oversized entries; peak RSS {:.1} / {:.1} MiB",
        workers[0].peak_rss_mib(),
        workers[1].peak_rss_mib()
    );
}

/// A setting that can never work stops the worker within 30 s, with one
/// line naming it and a non-zero exit, instead of retrying forever.
#[tokio::test]
async fn an_unusable_setting_stops_the_binary_with_one_line_naming_it() {
    let redis = Redis::shared();
    let pg = Postgres::shared();
    // Redis as the stacks run it; the worker's user with a wrong password.
    let with_users = Redis::start_with_users();
    let wrong = with_users.password_file("worker").with_file_name("wrong");
    std::fs::write(&wrong, "wrong").unwrap();
    let cases = [
        (
            "DATABASE_URL",
            redis.fresh_db_url(),
            None,
            pg.db_url("no_such_database"),
        ),
        (
            "REDIS_URL",
            format!("redis://127.0.0.1:{}/20000", redis.port()),
            None,
            pg.fresh_database(),
        ),
        (
            "REDIS_PASSWORD_FILE",
            format!("redis://worker@127.0.0.1:{}", with_users.port()),
            Some(wrong),
            pg.fresh_database(),
        ),
    ];
    for (setting, redis_url, password_file, database_url) in cases {
        let output = tokio::task::spawn_blocking(move || {
            let mut command = Command::new(env!("CARGO_BIN_EXE_worker"));
            if let Some(file) = password_file {
                command.env("REDIS_PASSWORD_FILE", file);
            }
            let mut child = command
                .env("REDIS_URL", redis_url)
                .env("DATABASE_URL", database_url)
                .env("PORT", "0")
                .env_remove("RUST_LOG")
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            let started = Instant::now();
            while child.try_wait().unwrap().is_none() {
                if started.elapsed() > Duration::from_secs(30) {
                    let _ = child.kill();
                    panic!("still running after 30 s");
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            child.wait_with_output().unwrap()
        })
        .await
        .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{setting}: {stderr}");
        // The worker logs its start and its HTTP listener; the verdict is
        // the one line naming the setting, and the last, with no retry
        // before it.
        let naming: Vec<&str> = stderr.lines().filter(|l| l.contains(setting)).collect();
        assert_eq!(naming.len(), 1, "{setting}: {stderr}");
        assert_eq!(
            stderr.lines().last(),
            Some(naming[0]),
            "{setting}: {stderr}"
        );
        assert!(!stderr.contains("retrying"), "{setting}: {stderr}");
    }
}
