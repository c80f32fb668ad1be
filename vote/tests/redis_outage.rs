//! Redis goes away or hangs mid-run: every vote is answered within 2 s,
//! with 503 only when the ballot was certainly not queued and 504 when it
//! was sent but not confirmed; the page and /healthz keep working, and
//! voting resumes by itself.

mod support;

use std::time::{Duration, Instant};

use support::{queued, Vote};
use test_servers::Redis;

#[tokio::test]
async fn votes_are_refused_quickly_while_redis_is_down_and_resume_after() {
    let redis = Redis::start();
    let vote = Vote::start(&redis.url(), &[]).await;
    assert_eq!(vote.vote("a", None).await.status, 200);

    redis.stop();
    for attempt in 0..3 {
        let started = Instant::now();
        let page = vote.vote("b", Some("vote=a")).await;
        let took = started.elapsed();
        assert_eq!(page.status, 503, "attempt {attempt}: {}", page.body);
        assert!(
            took < Duration::from_secs(2),
            "attempt {attempt} took {took:?}"
        );
        assert!(page.body.contains("not recorded"), "{}", page.body);
        // The earlier choice is still the one shown.
        page.assert_marks("Cats");
        assert_eq!(page.cookie_value("vote"), None);
    }
    let started = Instant::now();
    assert_eq!(vote.get("/readyz", None).await.status(), 503);
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(vote.get("/healthz", None).await.status(), 200);
    assert_eq!(vote.get("/", None).await.status(), 200);

    redis.resume();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let page = vote.vote("b", None).await;
        if page.status == 200 {
            break;
        }
        assert_eq!(page.status, 503, "{}", page.body);
        assert!(Instant::now() < deadline, "vote did not recover");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(vote.get("/readyz", None).await.status(), 200);
    let entries = queued(&redis.url()).await;
    assert_eq!(
        entries.len(),
        2,
        "the first vote and the one after recovery: {entries:?}"
    );
}

#[tokio::test]
async fn starts_and_serves_the_page_without_redis() {
    let redis = Redis::start();
    redis.stop();
    let vote = Vote::start(&redis.url(), &[]).await;
    assert_eq!(vote.get("/", None).await.status(), 200);
    assert_eq!(vote.get("/readyz", None).await.status(), 503);
    assert_eq!(vote.vote("a", None).await.status, 503);

    redis.resume();
    let deadline = Instant::now() + Duration::from_secs(10);
    while vote.vote("a", None).await.status != 200 {
        assert!(
            Instant::now() < deadline,
            "vote did not connect once Redis started"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(queued(&redis.url()).await.len(), 1);
}

#[tokio::test]
async fn a_vote_sent_to_a_hung_redis_is_unconfirmed_not_refused_and_lands_when_it_wakes() {
    let redis = Redis::start();
    let vote = Vote::start(&redis.url(), &[]).await;
    let cookie = "voter_id=4b3a2d1e4b3a2d1e4b3a2d1e4b3a2d1e; vote=a";
    assert_eq!(vote.vote("a", Some(cookie)).await.status, 200);

    redis.pause();
    let paused = Instant::now();
    let started = Instant::now();
    let page = vote.vote("b", Some(cookie)).await;
    let took = started.elapsed();
    assert!(took < Duration::from_secs(2), "answered after {took:?}");
    assert_eq!(page.status, 504, "{}", page.body);
    assert!(
        page.body.contains("may or may not have been recorded"),
        "{}",
        page.body
    );
    assert!(page.body.contains("Voting again is safe"), "{}", page.body);
    // The page still shows the choice that is certain.
    page.assert_marks("Cats");
    assert_eq!(page.cookie_value("vote"), None);

    // No connection can be set up while Redis hangs: that vote was never
    // sent, so it is refused outright.
    let page = vote
        .vote("a", Some("voter_id=0000000000000000000000000000dead"))
        .await;
    assert_eq!(page.status, 503, "{}", page.body);
    assert!(page.body.contains("not recorded"), "{}", page.body);

    assert!(paused.elapsed() < Duration::from_secs(3));
    redis.unpause();
    let deadline = Instant::now() + Duration::from_secs(5);
    let landed = r#""voter_id":"4b3a2d1e4b3a2d1e4b3a2d1e4b3a2d1e","vote":"b""#;
    loop {
        let entries = queued(&redis.url()).await;
        if entries.iter().any(|e| e.contains(landed)) {
            assert_eq!(entries.len(), 2, "{entries:?}");
            assert!(
                !entries
                    .iter()
                    .any(|e| e.contains("0000000000000000000000000000dead")),
                "{entries:?}"
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the unconfirmed ballot never landed: {entries:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The next vote reconnects by itself.
    assert_eq!(vote.vote("a", Some(cookie)).await.status, 200);
}

#[tokio::test]
async fn a_vote_redis_refuses_with_an_error_reply_is_not_recorded() {
    let redis = Redis::start();
    let vote = Vote::start(&redis.url(), &[]).await;
    assert_eq!(vote.vote("a", None).await.status, 200);

    let mut admin = test_servers::redis_connection(&redis.url()).await;
    let set_maxmemory = |bytes: &str| {
        redis::cmd("CONFIG")
            .arg("SET")
            .arg("maxmemory")
            .arg(bytes)
            .to_owned()
    };
    // Every write is refused with "OOM command not allowed ...".
    let () = set_maxmemory("1").query_async(&mut admin).await.unwrap();
    let started = Instant::now();
    let page = vote.vote("b", Some("vote=a")).await;
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(page.status, 503, "{}", page.body);
    assert!(page.body.contains("not recorded"), "{}", page.body);
    page.assert_marks("Cats");

    let () = set_maxmemory("0").query_async(&mut admin).await.unwrap();
    assert_eq!(vote.vote("b", None).await.status, 200);
    assert_eq!(queued(&redis.url()).await.len(), 2);
}
