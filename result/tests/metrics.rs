//! The result binary's /metrics: each metric moves as the tally and the
//! websocket clients do. Its own process, so no other test's service
//! shares its counters.

mod support;

use kit::version::{COMMIT, VERSION};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use support::*;
use test_servers::{free_port, Postgres};

struct Binary(Child);

impl Drop for Binary {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The value of the sample `name` (with its labels, as rendered), if any.
fn sample(metrics: &str, name: &str) -> Option<f64> {
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

/// Polls /metrics until `holds`, for at most PATIENCE.
async fn metrics_until(port: u16, what: &str, holds: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let metrics = get_text(port, "/metrics").await;
        if holds(&metrics) {
            return metrics;
        }
        assert!(Instant::now() < deadline, "{what} never held:\n{metrics}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn metrics_follow_the_tally_and_the_websocket_clients() {
    let url = Postgres::shared().fresh_database();
    let port = free_port();
    let _result = Binary(
        Command::new(env!("CARGO_BIN_EXE_result"))
            .env("DATABASE_URL", &url)
            .env("PORT", port.to_string())
            .env("RUST_LOG", "error")
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_for_status(port, "/readyz", 200).await;
    let start = get_text(port, "/metrics").await;
    assert_eq!(sample(&start, "result_websocket_clients"), Some(0.0));
    let build = format!(
        "result_build_info{{version=\"{}\",commit=\"{}\"}}",
        VERSION, COMMIT
    );
    assert_eq!(sample(&start, &build), Some(1.0), "{start}");
    let version = get_text(port, "/version").await;
    // Keys in alphabetical order.
    assert_eq!(
        version,
        format!(r#"{{"commit":"{COMMIT}","service":"result","version":"{VERSION}"}}"#)
    );
    assert!(sample(&start, "process_resident_memory_bytes").is_some_and(|v| v > 0.0));
    let pushes = sample(&start, "result_tally_pushes_total").unwrap();

    let mut sockets = vec![connect(port).await, connect(port).await];
    metrics_until(port, "two clients", |m| {
        sample(m, "result_websocket_clients") == Some(2.0)
    })
    .await;

    // A ballot cast now, as the worker writes it.
    db(&url)
        .await
        .execute(
            "INSERT INTO votes (id, vote, cast_at) VALUES ('v1', 'b', $1)",
            &[&ballot::now_micros()],
        )
        .await
        .unwrap();
    for socket in &mut sockets {
        while next_tally(socket).await.total < 1 {}
    }
    let pushed = metrics_until(port, "a push", |m| {
        sample(m, "result_tally_pushes_total") > Some(pushes)
    })
    .await;
    assert_eq!(sample(&pushed, "result_votes{option=\"b\"}"), Some(1.0));
    assert_eq!(sample(&pushed, "result_votes{option=\"a\"}"), Some(0.0));
    assert_eq!(
        sample(&pushed, "result_ballot_to_push_seconds_count"),
        Some(1.0)
    );
    let seconds = sample(&pushed, "result_ballot_to_push_seconds_sum").unwrap();
    assert!((0.0..5.0).contains(&seconds), "{seconds}");

    sockets.pop();
    metrics_until(port, "one client left", |m| {
        sample(m, "result_websocket_clients") == Some(1.0)
    })
    .await;

    // Requests are timed under the route names Rocket gave them.
    get_text(port, "/api/tally").await;
    assert_eq!(status(port, "/nowhere").await, Some(404));
    let timed = metrics_until(port, "the tally request timed", |m| {
        sample(m, &duration_count("tally", "2xx")) == Some(1.0)
    })
    .await;
    assert_eq!(sample(&timed, &duration_count("socket", "1xx")), Some(2.0));
    assert_eq!(
        sample(&timed, &duration_count("unmatched", "4xx")),
        Some(1.0)
    );
    assert!(sample(&timed, &duration_count("readyz", "2xx")) >= Some(1.0));
}

fn duration_count(route: &str, status: &str) -> String {
    format!("result_http_request_duration_seconds_count{{route=\"{route}\",status=\"{status}\"}}")
}
