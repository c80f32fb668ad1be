//! The vote binary's /metrics: each outcome of a vote is counted apart,
//! and requests are timed by route and status class. Its own process, so
//! no other test's service shares its counters.

use kit::version::{COMMIT, VERSION};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use test_servers::{free_port, Redis};

struct Vote {
    child: Child,
    base: String,
    http: reqwest::Client,
}

impl Drop for Vote {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Vote {
    async fn start(redis_url: &str) -> Vote {
        let port = free_port();
        let child = Command::new(env!("CARGO_BIN_EXE_vote"))
            .env("REDIS_URL", redis_url)
            .env("PORT", port.to_string())
            .env("RUST_LOG", "error")
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let vote = Vote {
            child,
            base: format!("http://127.0.0.1:{port}"),
            http: reqwest::Client::new(),
        };
        let deadline = Instant::now() + Duration::from_secs(15);
        while vote
            .http
            .get(format!("{}/healthz", vote.base))
            .send()
            .await
            .is_err()
        {
            assert!(Instant::now() < deadline, "vote did not start");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        vote
    }

    async fn post(&self, body: &'static str) -> u16 {
        self.http
            .post(format!("{}/", self.base))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    }

    async fn metrics(&self) -> String {
        let response = self
            .http
            .get(format!("{}/metrics", self.base))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 200);
        let kind = response.headers()["content-type"].to_str().unwrap();
        assert!(kind.starts_with("text/plain"), "{kind}");
        response.text().await.unwrap()
    }
}

fn sample(metrics: &str, name: &str) -> Option<f64> {
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

fn outcome(metrics: &str, outcome: &str) -> f64 {
    sample(
        metrics,
        &format!("vote_ballots_total{{outcome=\"{outcome}\"}}"),
    )
    .unwrap_or_else(|| panic!("no {outcome} count:\n{metrics}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_outcome_is_counted_apart() {
    let redis = Redis::start();
    let vote = Vote::start(&redis.url()).await;
    let before = vote.metrics().await;
    for name in ["queued", "refused", "unknown", "invalid"] {
        assert_eq!(outcome(&before, name), 0.0, "{name}");
    }
    let build = format!(
        "vote_build_info{{version=\"{}\",commit=\"{}\"}}",
        VERSION, COMMIT
    );
    assert_eq!(sample(&before, &build), Some(1.0), "{before}");
    // The same build at /version, on vote's own port, keys in alphabetical order.
    let version = vote.http.get(format!("{}/version", vote.base));
    let version = version.send().await.unwrap();
    assert_eq!(version.headers()["content-type"], "application/json");
    assert_eq!(
        version.text().await.unwrap(),
        format!(r#"{{"commit":"{COMMIT}","service":"vote","version":"{VERSION}"}}"#)
    );
    assert!(sample(&before, "process_resident_memory_bytes").is_some_and(|v| v > 0.0));

    assert_eq!(vote.post("vote=a").await, 200);
    assert_eq!(vote.post("vote=b").await, 200);
    assert_eq!(vote.post("vote=z").await, 400);
    // Redis hangs: the vote is sent but unconfirmed.
    let redis = tokio::task::spawn_blocking(move || {
        redis.pause();
        redis
    })
    .await
    .unwrap();
    assert_eq!(vote.post("vote=a").await, 504);
    // Redis gone: certainly not queued.
    let redis = tokio::task::spawn_blocking(move || {
        redis.stop();
        redis
    })
    .await
    .unwrap();
    assert_eq!(vote.post("vote=a").await, 503);

    let after = vote.metrics().await;
    assert_eq!(outcome(&after, "queued"), 2.0);
    assert_eq!(outcome(&after, "invalid"), 1.0);
    assert_eq!(outcome(&after, "unknown"), 1.0);
    assert_eq!(outcome(&after, "refused"), 1.0);
    let timed = |route: &str, class: &str| {
        sample(
            &after,
            &format!(
                "vote_http_request_duration_seconds_count{{route=\"{route}\",status=\"{class}\"}}"
            ),
        )
    };
    assert_eq!(timed("vote", "2xx"), Some(2.0), "{after}");
    assert_eq!(timed("vote", "4xx"), Some(1.0), "{after}");
    assert_eq!(timed("vote", "5xx"), Some(2.0), "{after}");
    drop(redis);
}
