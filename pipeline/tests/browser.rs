//! The results page in headless Chromium, fed by the real vote service and
//! the real worker: a vote cast in one window shows up in the other without
//! a reload, and the page says when it lost its connection. The two pages
//! link to each other, and each names the replica and build that served it.

use std::path::PathBuf;
use std::time::Duration;

use fantoccini::{Client, Locator};
use futures_util::FutureExt;
use pipeline::client::*;
use std::panic::AssertUnwindSafe;
use test_servers::{Browser, Postgres, Redis, Served};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vote_appears_live_and_outages_are_shown() {
    let redis = Redis::shared().fresh_db_url();
    let pg = Postgres::start();
    let database = pg.url();
    // Each page links to the other: vote's port is bound before result starts.
    let vote_listener = Served::bind().await;
    let vote_url = format!(
        "http://127.0.0.1:{}/",
        vote_listener.local_addr().unwrap().port()
    );
    let result = pipeline::start_result(&database, &["--vote-page-url", &vote_url]).await;
    let result_url = format!("{}/", result.url());
    let vote = pipeline::start_vote_on(vote_listener, &redis, &["--result-page-url", &result_url]);
    let (result_port, vote_port) = (result.port(), vote.port());
    wait_for_status(result_port, "/readyz", 200).await;
    let worker = pipeline::Worker::start(&redis, &database);

    let browser = Browser::start();
    let sessions = [
        browser.session(1280, 900).await,
        browser.session(1280, 900).await,
        browser.session(390, 844).await,
    ];
    // Closed whatever happens, so no browser outlives a failed run.
    let outcome = AssertUnwindSafe(vote_and_watch(&sessions, &pg, result_port, vote_port))
        .catch_unwind()
        .await;
    for session in sessions {
        let _ = session.close().await;
    }
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
    worker.stop().await;
}

async fn vote_and_watch(sessions: &[Client; 3], pg: &Postgres, result_port: u16, vote_port: u16) {
    let [results, voter, phone] = sessions;
    let results_url = format!("http://127.0.0.1:{result_port}/");
    let vote_url = format!("http://127.0.0.1:{vote_port}/");
    results.goto(&results_url).await.unwrap();
    wait_for_text(results, "#status", "Live").await;
    assert_eq!(text(results, "#total").await, "No votes yet");
    // Nothing counted: no share to show, not an even split.
    for option in ["a", "b"] {
        let percent = format!(".option-{option} .percent");
        assert_eq!(text(results, &percent).await, "–");
        assert_eq!(
            text(results, &format!(".option-{option} .count")).await,
            "0 votes"
        );
    }
    assert!(!text(results, "main").await.contains('%'));
    screenshot(results, "result-empty.png").await;
    assert_footer_names_the_build(results).await;

    // Each page links to the other: from the results to the vote and back.
    click(results, ".other-page a").await;
    wait_for_url(results, &vote_url).await;
    assert_footer_names_the_build(results).await;
    click(results, ".other-page a").await;
    wait_for_url(results, &results_url).await;
    wait_for_text(results, "#status", "Live").await;

    voter.goto(&vote_url).await.unwrap();
    click(voter, "button[value=a]").await;

    // The results window was never reloaded.
    wait_for_text(results, "#total", "1 vote").await;
    wait_for_text(results, ".option-a .percent", "100%").await;
    assert_eq!(text(results, ".option-b .percent").await, "0%");
    wait_for_width(results, ".option-a .fill", "100%").await;

    // More voters (each a new client, so a new voter id), for a fuller picture.
    for vote in ["a", "b", "b", "a", "b", "a", "a"] {
        let response = reqwest::Client::new()
            .post(format!("http://127.0.0.1:{vote_port}/"))
            .form(&[("vote", vote)])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 200);
    }
    wait_for_text(results, "#total", "8 votes").await;
    wait_for_text(results, ".option-a .percent", "63%").await;
    // 62.5 and 37.5: the tie goes to the first option.
    assert_eq!(text(results, ".option-b .percent").await, "37%");
    assert_eq!(text(results, ".option-a .count").await, "5 votes");
    wait_for_transitions(results, ".fill").await;
    screenshot(results, "result.png").await;

    phone.goto(&results_url).await.unwrap();
    wait_for_text(phone, "#status", "Live").await;
    screenshot(phone, "result-phone.png").await;

    // Postgres goes away: the page says so and keeps the last tally...
    pg.stop();
    wait_for_text(results, "#status", "Reconnecting…").await;
    assert_eq!(text(results, "#total").await, "8 votes");
    screenshot(results, "result-reconnecting.png").await;
    // ...and picks up by itself when it is back.
    pg.resume();
    wait_for_text(results, "#status", "Live").await;
    click(voter, "button[value=b]").await;
    wait_for_text(results, ".option-b .count", "4 votes").await;
    wait_for_text(results, "#total", "8 votes").await;
}

/// The footer names this replica's build, as `kit::version` has it.
async fn assert_footer_names_the_build(client: &Client) {
    let footer = text(client, "footer").await;
    let build = format!(
        "version {}, commit {}",
        kit::version::VERSION,
        kit::version::COMMIT
    );
    assert!(footer.starts_with("Processed by container ID "), "{footer}");
    assert!(footer.ends_with(&build), "{footer}");
}

async fn wait_for_url(client: &Client, expected: &str) {
    let waiting = async {
        while client.current_url().await.unwrap().as_str() != expected {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    tokio::time::timeout(PATIENCE, waiting)
        .await
        .unwrap_or_else(|_| panic!("never went to {expected}"));
}

async fn click(client: &Client, css: &str) {
    client
        .find(Locator::Css(css))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
}

async fn text(client: &Client, css: &str) -> String {
    client
        .find(Locator::Css(css))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

async fn wait_for_text(client: &Client, css: &str, expected: &str) {
    let mut seen = String::new();
    let waiting = async {
        loop {
            seen = text(client, css).await;
            if seen == expected {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    if tokio::time::timeout(PATIENCE, waiting).await.is_err() {
        panic!("{css} shows {seen:?}, not {expected:?}");
    }
}

async fn wait_for_width(client: &Client, css: &str, expected: &str) {
    let waiting = async {
        loop {
            let element = client.find(Locator::Css(css)).await.unwrap();
            let style = element.attr("style").await.unwrap().unwrap_or_default();
            if style.contains(&format!("width: {expected}")) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    tokio::time::timeout(PATIENCE, waiting)
        .await
        .unwrap_or_else(|_| panic!("{css} never became {expected} wide"));
}

/// Until no element matching `css` is in a CSS transition (the bars grow).
async fn wait_for_transitions(client: &Client, css: &str) {
    let script = format!(
        "return [...document.querySelectorAll({css:?})].some(e => e.getAnimations().length > 0)"
    );
    let waiting = async {
        while client.execute(&script, vec![]).await.unwrap() != serde_json::Value::Bool(false) {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    tokio::time::timeout(PATIENCE, waiting)
        .await
        .unwrap_or_else(|_| panic!("{css} still moving after {PATIENCE:?}"));
}

/// Into target/screenshots, never over tracked files.
async fn screenshot(client: &Client, name: &str) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    let png = client.screenshot().await.unwrap();
    std::fs::write(dir.join(name), png).unwrap();
}
