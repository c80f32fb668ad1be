//! The database's roles (db/postgres-roles.sh), as compose, swarm and
//! Kubernetes make them: the owner migrates; the services wait for it, not
//! ready, then count under their own roles; the worker's role cannot change
//! a table, result's cannot write, the exporter's reads only statistics.
//! (The other pipeline tests run their stacks under these roles too.)

use std::time::Duration;

use pipeline::client::*;
use pipeline::Roles;
use test_servers::{free_port, Postgres, Redis};
use tokio_postgres::error::SqlState;
use tokio_util::sync::CancellationToken;

/// `sql` fails as not permitted for the role of `client`.
async fn refused(client: &tokio_postgres::Client, sql: &str) {
    let error = client
        .batch_execute(sql)
        .await
        .expect_err(&format!("{sql}: allowed"));
    assert_eq!(
        error.code(),
        Some(&SqlState::INSUFFICIENT_PRIVILEGE),
        "{sql}: {error:?}"
    );
}

/// A database with the roles and the schema, and a vote in it.
async fn migrated_with_a_vote() -> Roles {
    let roles = Roles::apply(&Postgres::shared().fresh_database());
    roles.migrate().await;
    insert_votes(&db(&roles.worker).await, &[("v1", "a")]).await;
    roles
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_services_wait_for_the_owner_to_migrate_then_count_under_their_roles() {
    let roles = Roles::apply(&Postgres::shared().fresh_database());
    let redis_url = Redis::shared().fresh_db_url();
    let result = pipeline::start_result(&roles.result, &[]).await;
    let result_port = result.port();
    let worker_port = free_port();
    let config = worker::Config::embedded(&redis_url, &roles.worker);
    let config = worker::Config {
        port: worker_port,
        ..config
    };
    let stop = CancellationToken::new();
    let worker = tokio::spawn(worker::run(config, stop.clone()));

    // Both serve, neither is ready: no schema, and no right to make one.
    wait_for_status(worker_port, "/healthz", 200).await;
    wait_for_status(result_port, "/healthz", 200).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(status(worker_port, "/readyz").await, Some(503));
    assert_eq!(status(result_port, "/readyz").await, Some(503));
    assert!(!worker.is_finished(), "the worker gave up waiting");

    roles.migrate().await;
    // They retry with the outage backoff (at most 2 s and 5 s).
    wait_for_status(worker_port, "/readyz", 200).await;
    wait_for_status(result_port, "/readyz", 200).await;

    // A ballot through Redis, the worker's upsert and its triggers, and
    // result's LISTEN: the socket gets the new tally.
    let mut socket = connect(result_port).await;
    assert_eq!(next_tally(&mut socket).await.total, 0);
    let mut redis = test_servers::redis_connection(&redis_url).await;
    redis::cmd("RPUSH")
        .arg(ballot::queue::VOTES)
        .arg(r#"{"voter_id":"v1","vote":"b"}"#)
        .query_async::<()>(&mut redis)
        .await
        .unwrap();
    assert_eq!(
        next_text(&mut socket).await,
        r#"{"votes":{"a":0,"b":1},"total":1}"#
    );
    stop.cancel();
    worker.await.unwrap().expect("the worker stops cleanly");
}

#[tokio::test]
async fn the_worker_role_writes_rows_but_cannot_change_a_table() {
    let roles = migrated_with_a_vote().await;
    let worker = db(&roles.worker).await;
    for sql in [
        "DROP TABLE votes",
        "DROP TABLE tallies",
        "TRUNCATE votes",
        "TRUNCATE tallies",
        "ALTER TABLE votes ADD COLUMN extra TEXT",
        "ALTER TABLE votes DISABLE TRIGGER tallies_insert",
        "CREATE TABLE extra (id INT)",
        "CREATE TEMP TABLE extra (id INT)",
        "CREATE FUNCTION extra() RETURNS INT LANGUAGE sql AS 'SELECT 1'",
        "DELETE FROM votes",
        "DELETE FROM tallies",
        "CREATE ROLE extra",
        "CREATE DATABASE extra",
    ] {
        refused(&worker, sql).await;
    }
    // Unchanged: the reference's query still counts the vote.
    let counted = ballot::schema::count_votes(&worker, &ballot::VoteOptions::defaults())
        .await
        .unwrap();
    assert_eq!(counted.total, 1);
}

#[tokio::test]
async fn the_result_role_reads_and_listens_but_cannot_write() {
    let roles = migrated_with_a_vote().await;
    let result = db(&roles.result).await;
    for sql in [
        "INSERT INTO votes (id, vote) VALUES ('v2', 'b')",
        "UPDATE votes SET vote = 'b'",
        "DELETE FROM votes",
        "TRUNCATE votes",
        "INSERT INTO tallies (vote, count) VALUES ('c', 1)",
        "UPDATE tallies SET count = count + 1",
        "DELETE FROM tallies",
        "UPDATE vote_schema SET version = 0",
        "DROP TABLE votes",
        "CREATE TABLE extra (id INT)",
    ] {
        refused(&result, sql).await;
    }
    let tally = ballot::schema::read_tally(&result, &ballot::VoteOptions::defaults())
        .await
        .unwrap();
    assert_eq!(tally.total, 1);
    result
        .batch_execute(&format!("LISTEN {}", ballot::schema::TALLY_CHANNEL))
        .await
        .unwrap();
}

#[tokio::test]
async fn the_exporter_role_reads_statistics_and_nothing_of_the_apps() {
    let roles = migrated_with_a_vote().await;
    let exporter = db(&roles.exporter).await;
    let row = exporter
        .query_one(
            "SELECT pg_has_role('pg_monitor', 'MEMBER'), \
             (SELECT count(*) FROM pg_stat_database WHERE datname = current_database())",
            &[],
        )
        .await
        .unwrap();
    assert!(
        row.get::<_, bool>(0),
        "voting_exporter is not in pg_monitor"
    );
    assert_eq!(row.get::<_, i64>(1), 1);
    refused(&exporter, "SELECT * FROM votes").await;
    refused(&exporter, "SELECT * FROM tallies").await;
}

#[tokio::test]
async fn only_the_owner_may_migrate() {
    let roles = Roles::apply(&Postgres::shared().fresh_database());
    for url in [&roles.worker, &roles.result] {
        let error = ballot::schema::migrate(&db(url).await).await.unwrap_err();
        assert!(ballot::schema::is_not_permitted(&error), "{url}: {error:?}");
        // `worker migrate` with a role that can never migrate: one line.
        let config = worker::Config::embedded("redis://127.0.0.1:1", url);
        let stopped = worker::migrate(config, CancellationToken::new()).await;
        match stopped {
            Err(worker::Stopped::Unusable(line)) => {
                assert!(line.starts_with("DATABASE_URL cannot work"), "{line}");
                assert!(line.contains("voting_owner"), "{line}");
            }
            other => panic!("{url}: {other:?}"),
        }
    }
    roles.migrate().await;
    let owners = db(&roles.owner).await;
    let row = owners
        .query_one(
            "SELECT count(*) FROM pg_tables WHERE schemaname = 'public' \
             AND tableowner <> 'voting_owner'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, i64>(0), 0, "a table not owned by voting_owner");
}

/// A database the services migrated as the superuser, before the roles:
/// the script hands its tables to the owner, the roles work on it.
#[tokio::test]
async fn the_script_takes_over_a_database_the_superuser_migrated() {
    let database_url = Postgres::shared().fresh_database();
    let superuser = db(&database_url).await;
    ballot::schema::migrate(&superuser).await.unwrap();
    insert_votes(&superuser, &[("v1", "a")]).await;
    let roles = Roles::apply(&database_url);
    let owners = superuser
        .query(
            "SELECT tableowner FROM pg_tables WHERE schemaname = 'public' \
             UNION SELECT pg_get_userbyid(proowner) FROM pg_proc \
             WHERE pronamespace = 'public'::regnamespace",
            &[],
        )
        .await
        .unwrap();
    let owners: Vec<String> = owners.iter().map(|r| r.get(0)).collect();
    assert_eq!(owners, ["voting_owner"]);
    roles.migrate().await;
    insert_votes(&db(&roles.worker).await, &[("v2", "b")]).await;
    let tally =
        ballot::schema::read_tally(&db(&roles.result).await, &ballot::VoteOptions::defaults())
            .await
            .unwrap();
    assert_eq!(tally.total, 2);
    // Running it again changes nothing that works.
    let roles = Roles::apply(&database_url);
    insert_votes(&db(&roles.worker).await, &[("v3", "b")]).await;
}
