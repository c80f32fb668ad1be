//! The demo faults result shares with vote, against a real Postgres:
//! starting not ready until switched on, and a delay on every request but
//! the probes.

mod support;

use std::time::{Duration, Instant};

use support::*;
use test_servers::Postgres;

async fn post(port: u16, path: &str) -> u16 {
    let client = reqwest::Client::new();
    let response = client.post(format!("http://127.0.0.1:{port}{path}")).send();
    response.await.unwrap().status().as_u16()
}

#[tokio::test]
async fn started_not_ready_it_joins_on_enable_and_delays_all_but_the_probes() {
    let url = Postgres::shared().fresh_database();
    let flags = ["--demo-start-not-ready=true", "--demo-delay=300ms..400ms"];
    let port = launch_result(&url, &flags).await;
    // The tally is read (Postgres answers), yet it is not ready.
    wait_for_status(port, "/api/tally", 200).await;
    assert_eq!(status(port, "/readyz").await, Some(503));
    assert_eq!(post(port, "/readyz/enable").await, 200);
    wait_for_status(port, "/readyz", 200).await;
    assert_eq!(post(port, "/readyz/disable").await, 200);
    assert_eq!(status(port, "/readyz").await, Some(503));
    assert_eq!(post(port, "/readyz/enable").await, 200);
    assert_eq!(status(port, "/readyz").await, Some(200));
    // A sleep never ends early; no upper bound is asserted.
    for path in ["/", "/api/tally", "/result.js"] {
        let begun = Instant::now();
        assert_eq!(status(port, path).await, Some(200), "{path}");
        let took = begun.elapsed();
        assert!(took >= Duration::from_millis(300), "{path} took {took:?}");
    }
}

#[tokio::test]
async fn every_fault_is_off_by_default() {
    let url = Postgres::shared().fresh_database();
    let port = launch_result(&url, &[]).await;
    wait_for_status(port, "/readyz", 200).await;
    // Switching on what is on changes nothing.
    assert_eq!(post(port, "/readyz/enable").await, 200);
    assert_eq!(status(port, "/readyz").await, Some(200));
}
