//! What the worker guarantees, against real Redis and Postgres servers.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use ballot::Ballot;
use rand::seq::SliceRandom;
use support::*;

const DRAIN: Duration = Duration::from_secs(60);

#[tokio::test]
async fn reference_ballots_land_and_the_later_one_in_the_queue_wins() {
    let (redis_url, db_url) = fresh();
    let mut redis = redis(&redis_url).await;
    enqueue(
        &mut redis,
        &[
            r#"{"voter_id":"ann","vote":"a"}"#.to_string(),
            r#"{"voter_id":"bob","vote":"b"}"#.to_string(),
            r#"{"voter_id":"ann","vote":"b"}"#.to_string(),
        ],
    )
    .await;
    let worker = InProcess::start(&redis_url, &db_url, &[]);
    wait_drained(&mut redis, DRAIN).await;
    // Queue order holds across batches too.
    enqueue(
        &mut redis,
        &[r#"{"voter_id":"bob","vote":"c"}"#.to_string()],
    )
    .await;
    wait_drained(&mut redis, DRAIN).await;
    worker.stop().await;

    let db = postgres(&db_url).await;
    let expected = BTreeMap::from([("ann".into(), "b".into()), ("bob".into(), "c".into())]);
    assert_stored(&db, &expected).await;
    assert!(dead_letters(&mut redis).await.is_empty());
    assert!(
        heartbeats(&mut redis).await.is_empty(),
        "heartbeat left behind"
    );
}

#[tokio::test]
async fn latest_cast_wins_even_when_workers_commit_out_of_order() {
    let (redis_url, db_url) = fresh();
    let mut redis = redis(&redis_url).await;
    let older = ballots(300, 300);
    let newer: Vec<Ballot> = older
        .iter()
        .map(|b| Ballot {
            vote: if b.vote == "a" { "b" } else { "a" }.into(),
            cast_at: b.cast_at.map(|t| t + 1_000_000),
            ..b.clone()
        })
        .collect();

    // One worker commits the newer ballots, then another the older ones.
    enqueue(&mut redis, &json(&newer)).await;
    let first = InProcess::start(&redis_url, &db_url, &[]);
    wait_drained(&mut redis, DRAIN).await;
    first.stop().await;
    enqueue(&mut redis, &json(&older)).await;
    let second = InProcess::start(&redis_url, &db_url, &[]);
    wait_drained(&mut redis, DRAIN).await;
    second.stop().await;

    let db = postgres(&db_url).await;
    assert_stored(&db, &last_ballots(&newer)).await;
}

#[tokio::test]
async fn replaying_ballots_changes_nothing() {
    let (redis_url, db_url) = fresh();
    let mut redis = redis(&redis_url).await;
    let cast = ballots(2_000, 700);
    let worker = InProcess::start(&redis_url, &db_url, &["--batch-size", "128"]);
    enqueue(&mut redis, &json(&cast)).await;
    wait_drained(&mut redis, DRAIN).await;
    let db = postgres(&db_url).await;
    let before = stored(&db).await;
    let tallies_before = read_tallies(&db).await;

    let mut replay = json(&cast);
    replay.shuffle(&mut rand::rng());
    enqueue(&mut redis, &replay).await;
    wait_drained(&mut redis, DRAIN).await;
    worker.stop().await;

    assert_eq!(stored(&db).await, before);
    assert_eq!(read_tallies(&db).await, tallies_before);
    assert_stored(&db, &last_ballots(&cast)).await;
}

async fn read_tallies(db: &tokio_postgres::Client) -> Vec<(String, i64)> {
    db.query("SELECT vote, count FROM tallies ORDER BY vote", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

#[tokio::test]
async fn poison_goes_to_dead_letters_verbatim_and_the_worker_keeps_going() {
    let (redis_url, db_url) = fresh();
    let mut redis = redis(&redis_url).await;
    let poison = [
        "not json at all",
        r#"{"voter_id":"eve","vote":"z"}"#,
        r#"{"vote":"a"}"#,
        r#"{"voter_id":"  ","vote":"a"}"#,
        // Valid JSON that only Postgres refuses: text cannot hold NUL.
        r#"{"voter_id":"nul\u0000byte","vote":"a"}"#,
    ];
    let good = ballots(50, 50);
    let mut entries = json(&good[..25]);
    entries.extend(poison.iter().map(|p| p.to_string()));
    entries.extend(json(&good[25..]));
    let worker = InProcess::start(&redis_url, &db_url, &[]);
    enqueue(&mut redis, &entries).await;
    wait_drained(&mut redis, DRAIN).await;

    let later = ballots(60, 60);
    enqueue(&mut redis, &json(&later[50..])).await;
    wait_drained(&mut redis, DRAIN).await;
    worker.stop().await;

    let mut dead = dead_letters(&mut redis).await;
    dead.sort();
    let mut expected_dead: Vec<String> = poison.iter().map(|p| p.to_string()).collect();
    expected_dead.sort();
    assert_eq!(dead, expected_dead);
    let db = postgres(&db_url).await;
    assert_stored(&db, &last_ballots(&later)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_workers_at_once_keep_every_voters_latest_ballot() {
    let (redis_url, db_url) = fresh();
    let mut redis = redis(&redis_url).await;
    let mut cast = ballots(30_000, 4_000);
    // Out of order: a voter's later ballot is often queued before an earlier one.
    cast.shuffle(&mut rand::rng());
    enqueue(&mut redis, &json(&cast)).await;
    let workers: Vec<InProcess> = (0..3)
        .map(|_| InProcess::start(&redis_url, &db_url, &["--batch-size", "200"]))
        .collect();
    wait_drained(&mut redis, DRAIN).await;
    for worker in workers {
        worker.stop().await;
    }
    let db = postgres(&db_url).await;
    assert_stored(&db, &last_ballots(&cast)).await;
    assert!(heartbeats(&mut redis).await.is_empty());
}

#[tokio::test]
async fn a_dead_workers_batch_is_returned_to_the_head_of_the_queue() {
    let (redis_url, db_url) = fresh();
    let mut redis = redis(&redis_url).await;
    // What a worker killed mid-batch leaves: a processing list, no heartbeat.
    // Reference-format ballots carry no time: only the queue orders them, so
    // ann's outcome shows where the batch went back (at the tail, "a" wins).
    let orphaned = [
        r#"{"voter_id":"ann","vote":"a"}"#.to_string(),
        r#"{"voter_id":"bob","vote":"b"}"#.to_string(),
    ];
    let queued_after = [
        r#"{"voter_id":"ann","vote":"b"}"#.to_string(),
        r#"{"voter_id":"cat","vote":"c"}"#.to_string(),
    ];
    redis::cmd("RPUSH")
        .arg(ballot::queue::processing_list("gone"))
        .arg(&orphaned)
        .query_async::<()>(&mut redis)
        .await
        .unwrap();
    enqueue(&mut redis, &queued_after).await;
    let worker = InProcess::start(&redis_url, &db_url, &["--batch-size", "1"]);
    wait_drained(&mut redis, DRAIN).await;
    worker.stop().await;
    let expected = BTreeMap::from(
        [("ann", "b"), ("bob", "b"), ("cat", "c")]
            .map(|(voter, vote)| (voter.to_string(), vote.to_string())),
    );
    assert_stored(&postgres(&db_url).await, &expected).await;
}

#[tokio::test]
async fn a_live_workers_batch_is_left_alone() {
    let (redis_url, db_url) = fresh();
    let mut redis = redis(&redis_url).await;
    let held = json(&ballots(5, 5));
    let list = ballot::queue::processing_list("busy");
    redis::pipe()
        .rpush(&list, &held)
        .ignore()
        .set_ex(ballot::queue::heartbeat_key("busy"), "alive", 60)
        .ignore()
        .query_async::<()>(&mut redis)
        .await
        .unwrap();
    let worker = InProcess::start(&redis_url, &db_url, &[]);
    // Past the first sweep at start and the periodic one (every 2 s here):
    // a sweep leaves no trace to poll for when it rightly does nothing.
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    worker.stop().await;
    let still_held: Vec<String> = redis::cmd("LRANGE")
        .arg(&list)
        .arg(0)
        .arg(-1)
        .query_async(&mut redis)
        .await
        .unwrap();
    assert_eq!(still_held, held);
    assert_eq!(queued(&mut redis).await.0, 0);
}

/// The queue's clock now, in microseconds: what the vote service stamps
/// `cast_at` with.
async fn queue_clock(redis: &mut redis::aio::MultiplexedConnection) -> i64 {
    let (seconds, micros): (i64, i64) = redis::cmd("TIME").query_async(redis).await.unwrap();
    seconds * 1_000_000 + micros
}

#[tokio::test]
async fn reference_ballots_are_ordered_by_their_place_among_ours() {
    // For each batch size: entries split into batches differently, and
    // taken by the worker long after they were queued (a backlog).
    for batch_size in ["1", "2", "1000"] {
        let (redis_url, db_url) = fresh();
        let mut redis = redis(&redis_url).await;
        let ours = |voter: &str, vote: &str, cast_at: i64| {
            format!(r#"{{"voter_id":"{voter}","vote":"{vote}","cast_at":{cast_at}}}"#)
        };
        let reference =
            |voter: &str, vote: &str| format!(r#"{{"voter_id":"{voter}","vote":"{vote}"}}"#);
        let before = queue_clock(&mut redis).await;
        enqueue(
            &mut redis,
            &[
                ours("ann", "a", before),
                // Queued after ann's ballot of ours: it wins.
                reference("ann", "b"),
                // Queued before bob's ballot of ours: it loses.
                reference("bob", "a"),
                ours("bob", "b", before + 1),
                // Two of the reference's own: the later one wins.
                reference("cat", "a"),
                reference("cat", "c"),
                reference("dan", "c"),
            ],
        )
        .await;
        tokio::time::sleep(Duration::from_millis(20)).await;
        let worker = InProcess::start(&redis_url, &db_url, &["--batch-size", batch_size]);
        wait_drained(&mut redis, DRAIN).await;
        let later = queue_clock(&mut redis).await;
        enqueue(&mut redis, &[ours("dan", "a", later)]).await;
        wait_drained(&mut redis, DRAIN).await;
        worker.stop().await;
        let expected = BTreeMap::from(
            [("ann", "b"), ("bob", "b"), ("cat", "c"), ("dan", "a")]
                .map(|(voter, vote)| (voter.to_string(), vote.to_string())),
        );
        let db = postgres(&db_url).await;
        assert_eq!(
            stored(&db)
                .await
                .into_iter()
                .map(|(voter, (vote, _))| (voter, vote))
                .collect::<BTreeMap<_, _>>(),
            expected,
            "batch size {batch_size}"
        );
        assert_stored(&db, &expected).await;
    }
}

#[tokio::test]
async fn a_cast_at_far_ahead_of_the_queue_clock_does_not_freeze_the_voter() {
    let (redis_url, db_url) = fresh();
    let mut redis = redis(&redis_url).await;
    let now = queue_clock(&mut redis).await;
    enqueue(
        &mut redis,
        &[
            format!(r#"{{"voter_id":"eve","vote":"a","cast_at":{}}}"#, i64::MAX),
            format!(
                r#"{{"voter_id":"fay","vote":"a","cast_at":{}}}"#,
                now + 60_000_000
            ),
            format!(r#"{{"voter_id":"fay","vote":"b","cast_at":{now}}}"#),
        ],
    )
    .await;
    let worker = InProcess::start(&redis_url, &db_url, &["--batch-size", "1"]);
    wait_drained(&mut redis, DRAIN).await;
    // A later ballot, stamped by the queue's clock as the vote service does.
    let later = queue_clock(&mut redis).await;
    enqueue(
        &mut redis,
        &[format!(
            r#"{{"voter_id":"eve","vote":"b","cast_at":{later}}}"#
        )],
    )
    .await;
    wait_drained(&mut redis, DRAIN).await;
    worker.stop().await;
    let db = postgres(&db_url).await;
    // fay's future-dated ballot came first in the queue, so it loses too.
    let expected = BTreeMap::from([("eve".into(), "b".into()), ("fay".into(), "b".into())]);
    assert_stored(&db, &expected).await;
    let ahead: i64 = db
        .query_one("SELECT max(cast_at) FROM votes", &[])
        .await
        .unwrap()
        .get(0);
    assert!(
        ahead <= queue_clock(&mut redis).await,
        "a future cast_at was stored"
    );
}

#[tokio::test]
async fn ballots_for_any_option_letter_count_whatever_labels_the_worker_has() {
    let (redis_url, db_url) = fresh();
    let mut redis = redis(&redis_url).await;
    // What a vote replica with OPTION_H set queues; this worker has no labels.
    enqueue(
        &mut redis,
        &[
            r#"{"voter_id":"v1","vote":"h","cast_at":1}"#.to_string(),
            r#"{"voter_id":"v2","vote":"i","cast_at":1}"#.to_string(),
        ],
    )
    .await;
    let worker = InProcess::start(&redis_url, &db_url, &[]);
    wait_drained(&mut redis, DRAIN).await;
    worker.stop().await;
    let db = postgres(&db_url).await;
    let stored: Vec<String> = stored(&db)
        .await
        .into_values()
        .map(|(vote, _)| vote)
        .collect();
    assert_eq!(stored, ["h"]);
    assert_eq!(dead_letters(&mut redis).await.len(), 1, "i is no option");
}

#[tokio::test]
async fn dead_letters_are_capped_oldest_first() {
    let (redis_url, db_url) = fresh();
    let mut redis = redis(&redis_url).await;
    let poison: Vec<String> = (0..8).map(|i| format!("poison {i}")).collect();
    let oversized = format!("{{\"padding\":\"{}\"}}", "x".repeat(5_000));
    let mut entries = poison.clone();
    entries.push(oversized.clone());
    let worker = InProcess::start(
        &redis_url,
        &db_url,
        &["--dead-letters-max", "5", "--batch-size", "3"],
    );
    enqueue(&mut redis, &entries).await;
    wait_drained(&mut redis, DRAIN).await;
    worker.stop().await;
    let dead = dead_letters(&mut redis).await;
    assert_eq!(dead.len(), 5, "{dead:?}");
    let mut expected_newest = poison[4..].to_vec();
    expected_newest.push(oversized);
    let mut dead_sorted = dead.clone();
    dead_sorted.sort();
    expected_newest.sort();
    assert_eq!(dead_sorted, expected_newest);
}

#[tokio::test]
async fn after_redis_loses_its_order_reference_ballots_still_sort_after_what_is_stored() {
    let (redis_url, db_url) = fresh();
    let mut redis = redis(&redis_url).await;
    let worker = InProcess::start(&redis_url, &db_url, &[]);
    let cast_at = queue_clock(&mut redis).await;
    enqueue(
        &mut redis,
        &[format!(
            r#"{{"voter_id":"ann","vote":"a","cast_at":{cast_at}}}"#
        )],
    )
    .await;
    wait_drained(&mut redis, DRAIN).await;
    // A Redis restarted without its data: the order is gone, the votes stay.
    redis::cmd("FLUSHDB")
        .query_async::<()>(&mut redis)
        .await
        .unwrap();
    enqueue(
        &mut redis,
        &[r#"{"voter_id":"ann","vote":"b"}"#.to_string()],
    )
    .await;
    wait_drained(&mut redis, DRAIN).await;
    worker.stop().await;
    let expected = BTreeMap::from([("ann".into(), "b".into())]);
    assert_stored(&postgres(&db_url).await, &expected).await;
}
