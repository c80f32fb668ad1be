//! Redis with replicas and Sentinels (test_servers::RedisHa): vote and the
//! worker find the primary through the Sentinels, a ballot is answered 200
//! once a replica has it, and both follow a failover without a restart,
//! losing no ballot answered 200 and keeping each voter's later choice.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ballot::queue::{DEAD_LETTERS, VOTES};
use ballot::VoteOptions;
use clap::Parser;
use pipeline::client::db;
use pipeline::{Roles, Worker};
use reqwest::header::COOKIE;
use test_servers::{redis_connection, Postgres, Redis, RedisHa};
use tokio_postgres::Client;

/// Long enough for a failover on a busy machine; only a failing test waits it out.
const PATIENCE: Duration = Duration::from_secs(60);

/// REDIS_URL and the flags that find the primary through `ha`'s Sentinels,
/// as `user` with its password file. The URL's server is none of them:
/// with REDIS_SENTINELS only its user counts.
fn through_sentinels(ha: &RedisHa, user: &str) -> (String, Vec<String>) {
    let url = format!("redis://{user}@127.0.0.1:1");
    let file = ha.password_file(user).to_string_lossy().into_owned();
    let flags = vec![
        "--redis-password-file".to_string(),
        file,
        "--redis-sentinels".into(),
        ha.sentinels(),
    ];
    (url, flags)
}

fn words(flags: &[String]) -> Vec<&str> {
    flags.iter().map(String::as_str).collect()
}

/// vote in this process, through the Sentinels; its port.
async fn start_vote(ha: &RedisHa) -> u16 {
    let (url, flags) = through_sentinels(ha, "vote");
    let vote = pipeline::start_vote(&url, &words(&flags)).await;
    vote.detach()
}

fn start_worker(ha: &RedisHa, database_url: &str) -> Worker {
    let (url, flags) = through_sentinels(ha, "worker");
    Worker::start_with(&url, database_url, &words(&flags))
}

/// `POST /` as voter `voter` for `option`: the status, 0 if no answer.
async fn vote(port: u16, voter: &str, option: &str) -> u16 {
    reqwest::Client::new()
        .post(format!("http://127.0.0.1:{port}/"))
        .header(COOKIE, format!("voter_id={voter}"))
        .form(&[("vote", option)])
        .send()
        .await
        .map_or(0, |r| r.status().as_u16())
}

/// Every entry of list `key` on `member`.
async fn list(member: &Redis, key: &str) -> Vec<String> {
    let mut redis = redis_connection(&member.url()).await;
    redis::cmd("LRANGE")
        .arg(key)
        .arg(0)
        .arg(-1)
        .query_async(&mut redis)
        .await
        .unwrap()
}

/// The ids of vote's connections to `member` (CLIENT LIST), once only the
/// newest is left: a dropped connection closes once its last request ends.
async fn vote_connections(member: &Redis) -> Vec<u64> {
    let mut redis = redis_connection(&member.url()).await;
    let deadline = Instant::now() + PATIENCE;
    loop {
        let clients: String = redis::cmd("CLIENT")
            .arg("LIST")
            .query_async(&mut redis)
            .await
            .unwrap();
        let ids: Vec<u64> = clients
            .lines()
            .filter(|line| line.split(' ').any(|field| field == "user=vote"))
            .filter_map(|line| line.strip_prefix("id=")?.split(' ').next()?.parse().ok())
            .collect();
        if ids.len() <= 1 || Instant::now() > deadline {
            return ids;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `status` answers, polled until one is `expected` (bounded).
async fn vote_until(port: u16, voter: &str, option: &str, expected: u16) {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let status = vote(port, voter, option).await;
        if status == expected {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "vote answered {status}, never {expected}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The voters' stored choices, polled until `until` holds (bounded).
async fn stored_until(
    db: &Client,
    what: &str,
    until: impl Fn(&HashMap<String, String>) -> bool,
) -> HashMap<String, String> {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let stored: HashMap<String, String> = db
            .query("SELECT id, vote FROM votes", &[])
            .await
            .map(|rows| rows.iter().map(|r| (r.get(0), r.get(1))).collect())
            .unwrap_or_default();
        if until(&stored) {
            return stored;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: not stored after {PATIENCE:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A database with the stack's roles and schema; its superuser URL.
async fn database() -> (String, Roles) {
    let database_url = Postgres::shared().fresh_database();
    let roles = Roles::apply(&database_url);
    roles.migrate().await;
    (database_url, roles)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ballot_answered_200_is_on_a_replica_already() {
    let ha = RedisHa::start(1);
    let port = start_vote(&ha).await;
    for i in 0..20 {
        assert_eq!(vote(port, &format!("voter-{i}"), "a").await, 200);
    }
    // At once, so that one WAIT covers many of them (vote's `Replicas`).
    let at_once = (20..100).map(|i| async move { vote(port, &format!("voter-{i}"), "b").await });
    let statuses = futures_util::future::join_all(at_once).await;
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    // No waiting: each was answered only once the replica had it.
    let on_replica = list(&ha.members()[1], VOTES).await;
    assert_eq!(on_replica.len(), 100, "{on_replica:?}");

    // A name the Sentinels do not know can never work: vote and the worker
    // stop with one line naming it.
    let (url, mut flags) = through_sentinels(&ha, "vote");
    flags.extend(["--redis-master-name".into(), "nosuch".into()]);
    let mut args = vec!["vote", "--redis-url", &url];
    args.extend(words(&flags));
    let config = vote::Config::parse_from(args);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let stopped = tokio::time::timeout(PATIENCE, vote::serve_on(listener, config)).await;
    match stopped.expect("vote stops") {
        Err(vote::Stopped::Unusable(line)) => {
            assert!(line.starts_with("REDIS_MASTER_NAME"), "{line}")
        }
        other => panic!("vote went on: {other:?}"),
    }
    let (url, mut flags) = through_sentinels(&ha, "worker");
    flags.extend(["--redis-master-name".into(), "nosuch".into()]);
    let database_url = Postgres::shared().fresh_database();
    let config = worker::Config::embedded_with(&url, &database_url, &words(&flags));
    let stop = tokio_util::sync::CancellationToken::new();
    let stopped = tokio::time::timeout(PATIENCE, worker::run(config, stop)).await;
    match stopped.expect("the worker stops") {
        Err(worker::Stopped::Unusable(line)) => {
            assert!(line.starts_with("REDIS_MASTER_NAME"), "{line}")
        }
        other => panic!("the worker went on: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_replica_in_reach_a_vote_is_refused_and_nothing_queued() {
    let ha = RedisHa::start(1);
    let port = start_vote(&ha).await;
    assert_eq!(vote(port, "before", "a").await, 200);
    let replica = &ha.members()[1];
    replica.stop();
    // Until the primary has seen the replica go, a ballot may be queued and
    // not confirmed (504); then the primary refuses it (NOREPLICAS): 503.
    vote_until(port, "refused", "a", 503).await;
    let queued = list(&ha.members()[0], VOTES).await;
    for i in 0..5 {
        let before = vote_connections(&ha.members()[0]).await;
        assert_eq!(vote(port, &format!("refused-{i}"), "b").await, 503);
        // A refusal for want of replicas drops the connection, so the next
        // ballot asks the Sentinels again: a primary cut off from the
        // others, which they replaced, would otherwise keep refusing every
        // ballot of a vote replica that can still reach it.
        let after = vote_connections(&ha.members()[0]).await;
        assert!(
            after.iter().all(|id| !before.contains(id)),
            "vote kept its connection after NOREPLICAS: {before:?} then {after:?}"
        );
    }
    assert_eq!(
        list(&ha.members()[0], VOTES).await,
        queued,
        "a refused ballot was queued"
    );
    replica.resume();
    vote_until(port, "after", "a", 200).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_primary_killed_mid_load_loses_no_ballot_answered_200() {
    const VOTERS: usize = 240;
    const TASKS: usize = 6;
    let ha = RedisHa::start(2);
    let (database_url, roles) = database().await;
    let port = start_vote(&ha).await;
    let worker = start_worker(&ha, &roles.worker);
    let first = ha.primary();
    let mut admin = redis_connection(&first.url()).await;
    let () = redis::cmd("RPUSH")
        .arg(VOTES)
        .arg("not a ballot")
        .query_async(&mut admin)
        .await
        .unwrap();
    let deadline = Instant::now() + PATIENCE;
    while list(first, DEAD_LETTERS).await.is_empty() {
        assert!(Instant::now() < deadline, "no dead letter");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Each voter votes a, then changes to b; a 503 (certainly not queued)
    // is tried again, as a voter would.
    let answers: Arc<Mutex<HashMap<String, Vec<u16>>>> = Arc::default();
    let ok = Arc::new(AtomicUsize::new(0));
    let tasks: Vec<_> = (0..TASKS)
        .map(|task| {
            let (answers, ok) = (answers.clone(), ok.clone());
            tokio::spawn(async move {
                for i in (task..VOTERS).step_by(TASKS) {
                    let voter = format!("voter-{i}");
                    for option in ["a", "b"] {
                        let status = loop {
                            let status = vote(port, &voter, option).await;
                            if status != 503 || Instant::now() > deadline {
                                break status;
                            }
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        };
                        if status == 200 {
                            ok.fetch_add(1, Ordering::Relaxed);
                        }
                        let mut answers = answers.lock().unwrap();
                        answers.entry(voter.clone()).or_default().push(status);
                    }
                }
            })
        })
        .collect();
    while ok.load(Ordering::Relaxed) < VOTERS * 2 / 3 {
        assert!(Instant::now() < deadline, "the load did not start");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let killed_at = Instant::now();
    first.kill();
    let before = ok.load(Ordering::Relaxed);
    let promoted = ha.wait_for_failover(first.port());
    println!("failover: {:?} after SIGKILL", killed_at.elapsed());
    for task in tasks {
        task.await.unwrap();
    }
    let answers = answers.lock().unwrap().clone();
    let all: Vec<u16> = answers.values().flatten().copied().collect();
    let count = |s: u16| all.iter().filter(|a| **a == s).count();
    println!(
        "answers: {} x 200 ({} after the kill), {} x 504, {} x 503, {} other",
        count(200),
        count(200) - before,
        count(504),
        count(503),
        all.len() - count(200) - count(504) - count(503)
    );
    assert!(
        count(200) > before,
        "no ballot answered 200 after the failover"
    );

    // Each voter's choice is the later one answered 200; after a 504 it may
    // be either (that ballot may or may not have been recorded).
    let expected = |answers: &[u16]| -> Option<&'static [&'static str]> {
        match answers {
            [_, 200] => Some(&["b"]),
            [200, 503] | [200, 0] => Some(&["a"]),
            [200, _] => Some(&["a", "b"]),
            _ => None,
        }
    };
    let db = db(&database_url).await;
    let stored = stored_until(&db, "every ballot answered 200", |stored| {
        answers.iter().all(|(voter, a)| {
            expected(a).is_none_or(|options| {
                stored
                    .get(voter)
                    .is_some_and(|s| options.contains(&s.as_str()))
            })
        })
    })
    .await;
    // Each stored once in the tally the result service reads.
    let tally = ballot::schema::read_tally(&db, &VoteOptions::defaults())
        .await
        .unwrap();
    assert_eq!(tally.total as usize, stored.len(), "{tally:?}");
    // The dead letter was on the replica, and is on the new primary.
    assert_eq!(list(promoted, DEAD_LETTERS).await, ["not a ballot"]);
    worker.stop().await;
}

/// A new primary whose host clock is behind the old one's. `faketime` cannot
/// run redis-server here (libfaketime and Redis's jemalloc recurse at start
/// and Redis never serves), so the old primary is made to stamp as a host
/// 60 s ahead does: its queue clock (votes:clock, replicated) is set 60 s
/// ahead, and every stamp after it follows from there (`queue.lua`). To the
/// new primary, whose TIME is the real one, those stamps are 60 s ahead:
/// the same state a clock 60 s behind on its host leaves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_later_ballot_wins_when_the_new_primary_clock_is_60s_behind() {
    let ha = RedisHa::start(1);
    let old = ha.primary();
    let mut admin = redis_connection(&old.url()).await;
    let (seconds, _): (i64, i64) = redis::cmd("TIME").query_async(&mut admin).await.unwrap();
    let () = redis::cmd("SET")
        .arg(ballot::queue::CLOCK)
        .arg((seconds + 60) * 1_000_000)
        .query_async(&mut admin)
        .await
        .unwrap();
    let (database_url, roles) = database().await;
    let port = start_vote(&ha).await;
    let worker = start_worker(&ha, &roles.worker);
    let db = db(&database_url).await;
    // counted: a ballot stored before the failover; queued: one perhaps
    // still in the queue when it happens.
    assert_eq!(vote(port, "counted", "a").await, 200);
    stored_until(&db, "counted's first ballot", |s| s.contains_key("counted")).await;
    assert_eq!(vote(port, "queued", "a").await, 200);

    old.kill();
    ha.wait_for_failover(old.port());
    // The new primary refuses writes until it has a replica again: the old
    // primary, back after its crash, is made one.
    old.resume();
    ha.wait_until_replicating(old);
    vote_until(port, "counted", "b", 200).await;
    assert_eq!(vote(port, "queued", "b").await, 200);
    let stored = stored_until(&db, "the later ballots", |s| {
        s.get("counted").map(String::as_str) == Some("b")
            && s.get("queued").map(String::as_str) == Some("b")
    })
    .await;
    assert_eq!(stored.len(), 2, "{stored:?}");
    worker.stop().await;
}
