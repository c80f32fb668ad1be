//! Redis goes away mid-run: votes are refused quickly with a readable 503,
//! the page and /healthz keep working, and voting resumes by itself.

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
