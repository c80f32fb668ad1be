//! A real browser (headless Chromium) votes by clicking; the page comes back
//! with that option marked. Screenshots go to `target/screenshots/`.

mod support;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use fantoccini::{Client, Locator};
use support::{queued, Vote};
use test_servers::{Browser, Redis};

#[tokio::test]
async fn clicking_an_option_votes_and_marks_it() {
    let url = Redis::shared().fresh_db_url();
    let vote = Vote::start(&url, &[]).await;
    let browser = Browser::start();

    let desktop = browser.session(1280, 800).await;
    vote_for_dogs(&desktop, &vote.base).await;
    save_screenshot(&desktop, "vote.png").await;
    desktop.close().await.unwrap();

    let phone = browser.session(390, 844).await;
    vote_for_dogs(&phone, &vote.base).await;
    // Headless Chromium's window is at least 500px wide, so the phone view is
    // the page in a 390x844 frame (same origin: it still sends the cookies).
    phone
        .execute(
            "document.body.innerHTML = '<iframe id=\"phone\" src=\"/\" width=\"390\" \
             height=\"844\" style=\"border:0;display:block\"></iframe>';",
            vec![],
        )
        .await
        .unwrap();
    let frame = phone.find(Locator::Id("phone")).await.unwrap();
    let script = "const d = document.getElementById('phone').contentDocument; \
        return d.readyState === 'complete' && !!d.querySelector('.chosen') \
        && d.documentElement.scrollWidth <= 390";
    let deadline = Instant::now() + Duration::from_secs(10);
    while phone.execute(script, vec![]).await.unwrap() != serde_json::json!(true) {
        assert!(
            Instant::now() < deadline,
            "the framed page never showed the choice within 390px"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    save_png(&frame.screenshot().await.unwrap(), "vote-phone.png");
    phone.close().await.unwrap();

    assert_eq!(queued(&url).await.len(), 2, "one ballot per click");
}

async fn vote_for_dogs(client: &Client, base: &str) {
    client.goto(base).await.unwrap();
    assert_eq!(client.title().await.unwrap(), "Cats vs Dogs!");
    let status = client.find(Locator::Css(".status")).await.unwrap();
    assert_eq!(status.text().await.unwrap(), "Tap an option to vote.");

    client
        .find(Locator::Css(r#"button[value="b"]"#))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();

    let chosen = client
        .wait()
        .for_element(Locator::Css(r#"button[value="b"][aria-pressed="true"]"#))
        .await
        .expect("Dogs marked as chosen");
    assert!(chosen.text().await.unwrap().contains("Your vote"));
    let status = client.find(Locator::Css(".status")).await.unwrap();
    assert_eq!(status.text().await.unwrap(), "You voted for Dogs.");
    let other = client
        .find(Locator::Css(r#"button[value="a"]"#))
        .await
        .unwrap();
    assert_eq!(
        other.attr("aria-pressed").await.unwrap().as_deref(),
        Some("false")
    );
}

async fn save_screenshot(client: &Client, name: &str) {
    save_png(&client.screenshot().await.unwrap(), name);
}

fn save_png(png: &[u8], name: &str) {
    // target/<profile>/deps/<test binary> -> target/screenshots/
    let exe = std::env::current_exe().unwrap();
    let dir: PathBuf = exe.ancestors().nth(3).unwrap().join("screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(name), png).unwrap();
}
