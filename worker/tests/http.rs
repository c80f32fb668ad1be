//! The worker binary's HTTP listener: health, readiness that follows Redis
//! and Postgres, the metrics a dashboard relies on, and the healthcheck
//! subcommand.

mod support;

use kit::version::{COMMIT, VERSION};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::*;
use test_servers::{free_port, Postgres, Redis};

const WORKER: &str = env!("CARGO_BIN_EXE_worker");

/// `/metrics` once the sample `name` reads `value` (within 20 s).
async fn wait_for_sample(port: u16, name: &str, value: f64) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let metrics = wait_for(port, "/metrics", 200).await;
        if sample(&metrics, name) == Some(value) {
            return metrics;
        }
        assert!(
            Instant::now() < deadline,
            "{name} never read {value}: {metrics}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The value of the sample `name` (with its labels, as rendered), if any.
fn sample(metrics: &str, name: &str) -> Option<f64> {
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

#[tokio::test]
async fn ready_only_while_redis_and_postgres_answer() {
    let redis = Redis::start();
    let pg = Postgres::start();
    let port = free_port();
    let worker = Worker::start(&redis.url(), &pg.url(), port);
    wait_for(port, "/readyz", 200).await;
    assert_eq!(get(port, "/healthz").await.unwrap().0, 200);

    let (redis, pg) = tokio::task::spawn_blocking(move || {
        redis.stop();
        (redis, pg)
    })
    .await
    .unwrap();
    // The body says only "not ready" (anyone who reaches the port may
    // ask); why is in the log, once however often it is asked.
    assert_eq!(wait_for(port, "/readyz", 503).await, "not ready\n");
    for _ in 0..3 {
        assert_eq!(get(port, "/readyz").await.unwrap().0, 503);
    }
    let why = worker.logged("not ready:");
    assert_eq!(why.len(), 1, "{why:#?}");
    assert!(why[0].contains("not ready: redis: "), "{why:#?}");
    assert_eq!(get(port, "/healthz").await.unwrap().0, 200);
    let (redis, pg) = tokio::task::spawn_blocking(move || {
        redis.resume();
        pg.stop();
        (redis, pg)
    })
    .await
    .unwrap();
    assert_eq!(wait_for(port, "/readyz", 503).await, "not ready\n");
    let why = worker.logged("not ready:");
    assert_eq!(why.len(), 2, "{why:#?}");
    assert!(why[1].contains("not ready: postgres: "), "{why:#?}");
    assert!(!why[1].contains("redis"), "{why:#?}");
    let _servers = tokio::task::spawn_blocking(move || {
        pg.resume();
        (redis, pg)
    })
    .await
    .unwrap();
    wait_for(port, "/readyz", 200).await;
}

/// The readiness switch vote and result have: off, /readyz answers 503
/// with both stores up, and it is logged once; on again, 200.
#[tokio::test]
async fn the_readiness_switch_turns_readyz_off_and_on() {
    let (redis_url, database_url) = fresh();
    let port = free_port();
    let worker = Worker::start(&redis_url, &database_url, port);
    wait_for(port, "/readyz", 200).await;
    let http = reqwest::Client::new();
    let switch = |to: &str| {
        http.post(format!("http://127.0.0.1:{port}/readyz/{to}"))
            .send()
    };
    assert_eq!(switch("disable").await.unwrap().status().as_u16(), 200);
    assert_eq!(
        get(port, "/readyz").await.unwrap(),
        (503, "not ready\n".into())
    );
    assert_eq!(switch("disable").await.unwrap().status().as_u16(), 200);
    assert_eq!(worker.logged("readiness switched off").len(), 1);
    assert_eq!(switch("enable").await.unwrap().status().as_u16(), 200);
    assert_eq!(get(port, "/readyz").await.unwrap().0, 200);
}

#[tokio::test]
async fn metrics_follow_the_ballots() {
    let (redis_url, db_url) = fresh();
    let port = free_port();
    let _worker = Worker::start(&redis_url, &db_url, port);
    wait_for(port, "/readyz", 200).await;
    let before = wait_for(port, "/metrics", 200).await;
    assert_eq!(sample(&before, "worker_ballots_applied_total"), Some(0.0));
    assert_eq!(sample(&before, "worker_ballots_dead_total"), Some(0.0));
    let build = format!(
        "worker_build_info{{version=\"{}\",commit=\"{}\"}}",
        VERSION, COMMIT
    );
    assert_eq!(sample(&before, &build), Some(1.0), "{before}");
    let version = wait_for(port, "/version", 200).await;
    // Keys in alphabetical order.
    assert_eq!(
        version,
        format!(r#"{{"commit":"{COMMIT}","service":"worker","version":"{VERSION}"}}"#)
    );
    for process_metric in ["process_resident_memory_bytes", "process_open_fds"] {
        assert!(
            sample(&before, process_metric).is_some_and(|v| v > 0.0),
            "{process_metric} missing: {before}"
        );
    }
    assert!(sample(&before, "process_cpu_seconds_total").is_some());

    let mut redis = redis(&redis_url).await;
    let mut entries = json(&ballots(20, 15));
    entries.push("not a ballot".into());
    enqueue(&mut redis, &entries).await;
    wait_drained(&mut redis, Duration::from_secs(20)).await;
    // The heartbeat samples the queue depth every TTL/3 (2 s / 3 here).
    let after = wait_for_sample(port, "worker_queue_depth", 0.0).await;
    assert_eq!(sample(&after, "worker_ballots_applied_total"), Some(20.0));
    assert_eq!(sample(&after, "worker_ballots_dead_total"), Some(1.0));
    assert!(sample(&after, "worker_batch_duration_seconds_count").is_some_and(|n| n >= 1.0));
    assert_eq!(sample(&after, "worker_queue_depth"), Some(0.0));
    // These ballots were cast in 2023: the lag says how old the newest is.
    let lag = sample(&after, "worker_lag_seconds").expect("worker_lag_seconds");
    assert!(lag > 3600.0, "{lag}");
    assert!(
        sample(
            &after,
            "worker_http_request_duration_seconds_count{route=\"metrics\",status=\"2xx\"}"
        )
        .is_some_and(|n| n >= 1.0),
        "{after}"
    );
}

#[test]
fn the_healthcheck_subcommand_probes_the_port() {
    let healthcheck = |port: u16| {
        Command::new(WORKER)
            .args(["healthcheck", "--port", &port.to_string()])
            .stderr(Stdio::null())
            .status()
            .unwrap()
            .success()
    };
    let port = free_port();
    assert!(!healthcheck(port), "nothing listens yet");
    let (redis_url, db_url) = fresh();
    let _worker = Worker::start(&redis_url, &db_url, port);
    let deadline = Instant::now() + Duration::from_secs(20);
    while !healthcheck(port) {
        assert!(Instant::now() < deadline, "the worker never became healthy");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_port_in_use_stops_the_worker_with_one_line_naming_port() {
    let taken = std::net::TcpListener::bind("0.0.0.0:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let (redis_url, db_url) = fresh();
    let output = Command::new(WORKER)
        .env("REDIS_URL", redis_url)
        .env("DATABASE_URL", db_url)
        .env("PORT", port.to_string())
        .env("RUST_LOG", "error")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("PORT"), "{stderr}");
}

#[test]
fn log_format_json_makes_every_line_a_json_object() {
    let (redis_url, _) = fresh();
    let output = Command::new(WORKER)
        .env("REDIS_URL", redis_url)
        .env(
            "DATABASE_URL",
            Postgres::shared().db_url("no_such_database"),
        )
        .env("PORT", "0")
        .env("LOG_FORMAT", "json")
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    let lines: Vec<serde_json::Value> = stderr
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect();
    assert!(lines.len() >= 2, "{stderr}");
    // The first says which build started (kit::telemetry::init_service).
    let first = &lines[0]["fields"];
    assert_eq!(first["version"], VERSION, "{stderr}");
    assert_eq!(first["commit"], COMMIT, "{stderr}");
    assert_eq!(first["message"], "worker starting", "{stderr}");
    let last = lines.last().unwrap();
    assert_eq!(last["level"], "ERROR", "{last}");
    let message = last["fields"]["message"].as_str().unwrap();
    assert!(message.contains("DATABASE_URL"), "{message}");
    assert!(lines.iter().all(|l| l["timestamp"].is_string()), "{stderr}");
}

#[test]
fn a_bad_log_format_is_named() {
    let output = Command::new(WORKER)
        .env("LOG_FORMAT", "xml")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("LOG_FORMAT"), "{stderr}");
}
