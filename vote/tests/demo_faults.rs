//! The demo faults and the readiness switch, on the real `vote` binary
//! against a real Redis: each fault is off unless set, does what its
//! setting says, and a bad value stops start-up naming the setting.

mod support;

use std::time::{Duration, Instant};

use support::{queued, vote_command, Running, FORM};
use test_servers::{free_port, Redis};

/// `vote` on a free port with `env` added to `vote_command`'s.
fn start(redis_url: &str, env: &[(&str, &str)]) -> Running {
    let port = free_port();
    let mut command = vote_command(&[], port, redis_url);
    command.envs(env.iter().copied());
    Running::start(command, port)
}

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

async fn status(request: reqwest::RequestBuilder) -> u16 {
    request.send().await.expect("an answer").status().as_u16()
}

/// The value of the sample `name` (with its labels, as rendered).
async fn sample(http: &reqwest::Client, base: &str, name: &str) -> f64 {
    let metrics = http.get(format!("{base}/metrics")).send().await.unwrap();
    let metrics = metrics.text().await.unwrap();
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0.0)
}

/// Waits (up to 15 s) until `/readyz` answers `want`.
async fn wait_ready(http: &reqwest::Client, base: &str, want: u16) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while status(http.get(format!("{base}/readyz"))).await != want {
        assert!(Instant::now() < deadline, "/readyz never answered {want}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_refusal_fraction_refuses_votes_as_an_outage_would_and_queues_none_of_them() {
    let url = Redis::shared().fresh_db_url();
    let vote = start(&url, &[("DEMO_REFUSE_FRACTION", "0.5")]);
    let base = format!("http://127.0.0.1:{}", vote.port);
    let http = http();
    let (mut queued_answers, mut refused) = (0, 0);
    for _ in 0..200 {
        // A new voter each time, as seed sends them.
        let response = http.post(&base).header("content-type", FORM).body("vote=a");
        let response = response.send().await.unwrap();
        match response.status().as_u16() {
            200 => queued_answers += 1,
            503 => {
                let page = response.text().await.unwrap();
                assert!(page.contains("not recorded"), "{page}");
                refused += 1;
            }
            other => panic!("a vote answered {other}"),
        }
    }
    // Each ballot is refused with probability 1/2: none of either in 200
    // has a chance of 2^-199.
    assert!(
        queued_answers > 0 && refused > 0,
        "{queued_answers} queued, {refused} refused"
    );
    assert_eq!(
        queued(&url).await.len(),
        queued_answers,
        "only accepted ballots are queued"
    );
    let outcome = |name| format!("vote_ballots_total{{outcome=\"{name}\"}}");
    assert_eq!(
        sample(&http, &base, &outcome("refused")).await,
        refused as f64
    );
    assert_eq!(
        sample(&http, &base, &outcome("queued")).await,
        queued_answers as f64
    );
    // Still ready: refusing is not an outage the edge should route around.
    assert_eq!(status(http.get(format!("{base}/readyz"))).await, 200);
}

#[tokio::test]
async fn a_refusal_fraction_of_one_refuses_every_vote_and_zero_none() {
    for (fraction, want) in [("1", 503), ("0", 200)] {
        let url = Redis::shared().fresh_db_url();
        let vote = start(&url, &[("DEMO_REFUSE_FRACTION", fraction)]);
        let base = format!("http://127.0.0.1:{}", vote.port);
        let http = http();
        for _ in 0..20 {
            let post = http.post(&base).header("content-type", FORM).body("vote=b");
            assert_eq!(status(post).await, want, "DEMO_REFUSE_FRACTION={fraction}");
        }
        let expected = if want == 200 { 20 } else { 0 };
        assert_eq!(queued(&url).await.len(), expected);
    }
}

#[tokio::test]
async fn a_delay_range_holds_every_request_but_the_probes() {
    let url = Redis::shared().fresh_db_url();
    let min = Duration::from_millis(300);
    let vote = start(&url, &[("DEMO_DELAY", "300ms..400ms")]);
    let base = format!("http://127.0.0.1:{}", vote.port);
    let http = http();
    // A sleep never ends early: each delayed answer takes at least `min`
    // (no upper bound is asserted: a busy machine can be slower).
    for _ in 0..5 {
        let begun = Instant::now();
        assert_eq!(status(http.get(&base)).await, 200);
        assert!(begun.elapsed() >= min, "GET / took {:?}", begun.elapsed());
        let begun = Instant::now();
        let post = http.post(&base).header("content-type", FORM).body("vote=a");
        assert_eq!(status(post).await, 200);
        assert!(begun.elapsed() >= min, "POST / took {:?}", begun.elapsed());
    }
    assert_eq!(queued(&url).await.len(), 5, "delayed votes are queued");
    // The delay shows in the request durations, as a slow replica's would.
    let page = "vote_http_request_duration_seconds";
    let fast = format!("{page}_bucket{{route=\"page\",status=\"2xx\",le=\"0.25\"}}");
    let all = format!("{page}_count{{route=\"page\",status=\"2xx\"}}");
    assert_eq!(sample(&http, &base, &fast).await, 0.0);
    assert_eq!(sample(&http, &base, &all).await, 5.0);
}

#[tokio::test]
async fn the_probes_are_not_delayed() {
    let url = Redis::shared().fresh_db_url();
    // So long that a probe answering at all before it shows it waited none.
    let vote = start(&url, &[("DEMO_DELAY", "30s")]);
    let base = format!("http://127.0.0.1:{}", vote.port);
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    let page = tokio::spawn({
        let (http, base) = (http.clone(), base.clone());
        async move { http.get(&base).send().await.map(|r| r.status()) }
    });
    for path in ["/healthz", "/readyz", "/metrics"] {
        assert_eq!(
            status(http.get(format!("{base}{path}"))).await,
            200,
            "{path}"
        );
    }
    assert_eq!(
        status(http.post(format!("{base}/readyz/disable"))).await,
        200
    );
    assert_eq!(
        status(http.post(format!("{base}/readyz/enable"))).await,
        200
    );
    assert!(
        !page.is_finished(),
        "the page should still be waiting its 30 s"
    );
    page.abort();
}

#[tokio::test]
async fn starting_not_ready_holds_readiness_off_until_enabled_and_the_switch_works_both_ways() {
    let url = Redis::shared().fresh_db_url();
    let vote = start(&url, &[("DEMO_START_NOT_READY", "true")]);
    let base = format!("http://127.0.0.1:{}", vote.port);
    let http = http();
    let readyz = || http.get(format!("{base}/readyz"));
    // Redis answers, yet it says it is not ready, with the usual body.
    let response = readyz().send().await.unwrap();
    assert_eq!(response.status().as_u16(), 503);
    assert_eq!(response.text().await.unwrap(), "not ready\n");
    // It serves whoever reaches it all the same (the switch only decides
    // whether a load balancer sends anyone).
    let post = http.post(&base).header("content-type", FORM).body("vote=a");
    assert_eq!(status(post).await, 200);
    assert_eq!(
        status(http.post(format!("{base}/readyz/enable"))).await,
        200
    );
    wait_ready(&http, &base, 200).await;
    assert_eq!(
        status(http.post(format!("{base}/readyz/disable"))).await,
        200
    );
    assert_eq!(status(readyz()).await, 503);
    // Switching twice is the same as once.
    assert_eq!(
        status(http.post(format!("{base}/readyz/disable"))).await,
        200
    );
    assert_eq!(status(readyz()).await, 503);
    assert_eq!(
        status(http.post(format!("{base}/readyz/enable"))).await,
        200
    );
    assert_eq!(status(readyz()).await, 200);
    // A GET does not switch anything.
    assert_eq!(
        status(http.get(format!("{base}/readyz/disable"))).await,
        404
    );
    assert_eq!(status(readyz()).await, 200);
}

#[test]
fn off_by_default_ready_at_start() {
    let url = Redis::shared().fresh_db_url();
    let vote = start(&url, &[]);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let base = format!("http://127.0.0.1:{}", vote.port);
        wait_ready(&http(), &base, 200).await;
    });
}

#[test]
fn a_bad_demo_setting_stops_start_up_with_one_line_naming_it() {
    let url = Redis::shared().fresh_db_url();
    for (name, value) in [
        ("DEMO_DELAY", "fast"),
        ("DEMO_DELAY", "500ms..100ms"),
        ("DEMO_REFUSE_FRACTION", "2"),
        ("DEMO_START_NOT_READY", "maybe"),
    ] {
        let port = free_port();
        let mut command = vote_command(&[], port, &url);
        command.env(name, value);
        let mut vote = Running::spawn(command, port);
        let status = vote.exit_within(Duration::from_secs(10));
        let stderr = vote.stderr();
        assert_eq!(
            status.and_then(|s| s.code()),
            Some(2),
            "{name}={value}: {stderr}"
        );
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(stderr.contains(name), "{name}={value}: {stderr}");
    }
}
