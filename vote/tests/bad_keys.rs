//! A queue key of the wrong type or value (`votes:clock`, `votes`): the
//! queue script refuses before it changes anything, so vote answers 503
//! ("not recorded"), nothing is queued or overwritten, and voting resumes
//! once the key is fixed.

mod support;

use ballot::queue::{CLOCK, VOTES};
use redis::aio::MultiplexedConnection;
use support::{queued, Vote};
use test_servers::Redis;

async fn run(redis: &mut MultiplexedConnection, command: &[&str]) {
    let mut cmd = redis::cmd(command[0]);
    cmd.arg(&command[1..]);
    cmd.query_async::<()>(redis).await.unwrap();
}

/// `spoil` sets a bad key; votes are refused while it stands, and the key
/// is as it was left; after `fix` they are queued again.
async fn refused_until_fixed(spoil: &[&[&str]], dump: &[&str], fix: &[&[&str]]) {
    let url = Redis::shared().fresh_db_url();
    let vote = Vote::start(&url, &[]).await;
    let mut redis = test_servers::redis_connection(&url).await;
    assert_eq!(vote.vote("a", None).await.status, 200);
    for command in spoil {
        run(&mut redis, command).await;
    }
    let before: redis::Value = redis::cmd(dump[0])
        .arg(&dump[1..])
        .query_async(&mut redis)
        .await
        .unwrap();
    for _ in 0..5 {
        let page = vote.vote("b", None).await;
        assert_eq!(page.status, 503, "{}", page.body);
        assert!(page.body.contains("not recorded"), "{}", page.body);
    }
    let after: redis::Value = redis::cmd(dump[0])
        .arg(&dump[1..])
        .query_async(&mut redis)
        .await
        .unwrap();
    assert_eq!(before, after, "the refused script changed the bad key");
    for command in fix {
        run(&mut redis, command).await;
    }
    assert_eq!(vote.vote("b", None).await.status, 200);
}

#[tokio::test]
async fn a_clock_that_is_not_a_number_refuses_votes_until_fixed() {
    refused_until_fixed(
        &[&["SET", CLOCK, "notanumber"]],
        &["GET", CLOCK],
        &[&["DEL", CLOCK]],
    )
    .await;
}

#[tokio::test]
async fn a_clock_of_the_wrong_type_refuses_votes_until_fixed() {
    refused_until_fixed(
        &[&["DEL", CLOCK], &["RPUSH", CLOCK, "x"]],
        &["LRANGE", CLOCK, "0", "-1"],
        &[&["DEL", CLOCK]],
    )
    .await;
}

#[tokio::test]
async fn a_queue_of_the_wrong_type_refuses_votes_and_keeps_the_clock() {
    let url = Redis::shared().fresh_db_url();
    let vote = Vote::start(&url, &[]).await;
    let mut redis = test_servers::redis_connection(&url).await;
    assert_eq!(vote.vote("a", None).await.status, 200);
    let clock: String = redis::cmd("GET")
        .arg(CLOCK)
        .query_async(&mut redis)
        .await
        .unwrap();
    run(&mut redis, &["RENAME", VOTES, "saved"]).await;
    run(&mut redis, &["HSET", VOTES, "not", "a list"]).await;
    assert_eq!(vote.vote("b", None).await.status, 503);
    let after: String = redis::cmd("GET")
        .arg(CLOCK)
        .query_async(&mut redis)
        .await
        .unwrap();
    assert_eq!(clock, after, "a refused vote moved the clock");
    run(&mut redis, &["RENAME", "saved", VOTES]).await;
    assert_eq!(vote.vote("b", None).await.status, 200);
    assert_eq!(queued(&url).await.len(), 2);
}
