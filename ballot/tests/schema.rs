//! The schema against a real Postgres: tallies follow every change to votes.

use std::time::{Duration, Instant};

use ballot::schema::{
    count_votes, is_lock_timeout, migrate, read_tally, version, Migration, TALLY_CHANNEL, VERSION,
};
use ballot::VoteOptions;
use futures_util::{future::join_all, stream, StreamExt};
use test_servers::Postgres;
use tokio_postgres::{AsyncMessage, Client, NoTls};

async fn connect(url: &str) -> Client {
    let (client, connection) = tokio_postgres::connect(url, NoTls).await.unwrap();
    tokio::spawn(connection);
    client
}

async fn assert_tallies_match(client: &Client) {
    let options = VoteOptions::defaults();
    assert_eq!(
        read_tally(client, &options).await.unwrap(),
        count_votes(client, &options).await.unwrap()
    );
}

#[tokio::test]
async fn migration_is_idempotent_and_concurrent() {
    let url = Postgres::shared().fresh_database();
    let clients = [
        connect(&url).await,
        connect(&url).await,
        connect(&url).await,
    ];
    let runs = clients.iter().map(migrate);
    let mut upgrades = 0;
    for result in join_all(runs).await {
        upgrades += usize::from(result.unwrap() == Migration::Upgraded { from: 0 });
    }
    assert_eq!(
        upgrades, 1,
        "one process upgrades, the others find it current"
    );
    assert_eq!(migrate(&clients[0]).await.unwrap(), Migration::Current);
}

#[tokio::test]
async fn the_migrated_schema_has_its_columns_triggers_and_version() {
    let url = Postgres::shared().fresh_database();
    let db = connect(&url).await;
    assert_eq!(version(&db).await.unwrap(), 0);
    assert_eq!(migrate(&db).await.unwrap(), Migration::Upgraded { from: 0 });
    let columns: Vec<(String, String)> = db
        .query(
            "SELECT column_name::text, data_type::text FROM information_schema.columns \
             WHERE table_name = 'votes' ORDER BY ordinal_position",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let expected = [
        ("id", "character varying"),
        ("vote", "character varying"),
        ("cast_at", "bigint"),
        ("queue_seq", "bigint"),
    ];
    assert_eq!(
        columns,
        expected.map(|(c, t)| (c.to_string(), t.to_string()))
    );
    let triggers: Vec<String> = db
        .query(
            "SELECT tgname::text FROM pg_trigger \
             WHERE tgrelid = 'votes'::regclass AND NOT tgisinternal ORDER BY tgname",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(
        triggers,
        [
            "tallies_delete",
            "tallies_insert",
            "tallies_truncate",
            "tallies_update"
        ]
    );
    assert_eq!(version(&db).await.unwrap(), VERSION);

    // A second run changes nothing: not even the functions' definitions.
    let snapshot = "SELECT string_agg(md5(pg_get_functiondef(p.oid)) || xmin::text, ',' \
                    ORDER BY proname) FROM pg_proc p WHERE proname LIKE 'tallies_%'";
    let before: String = db.query_one(snapshot, &[]).await.unwrap().get(0);
    assert_eq!(migrate(&db).await.unwrap(), Migration::Current);
    let after: String = db.query_one(snapshot, &[]).await.unwrap().get(0);
    assert_eq!(before, after);
}

#[tokio::test]
async fn a_current_schema_takes_no_lock_a_reader_of_votes_holds_up() {
    let url = Postgres::shared().fresh_database();
    let db = connect(&url).await;
    migrate(&db).await.unwrap();
    let reader = connect(&url).await;
    reader
        .batch_execute("BEGIN; SELECT count(*) FROM votes")
        .await
        .unwrap();
    let started = Instant::now();
    let again = tokio::time::timeout(Duration::from_secs(2), migrate(&connect(&url).await)).await;
    assert_eq!(
        again.expect("migrate waited on the reader").unwrap(),
        Migration::Current
    );
    assert!(started.elapsed() < Duration::from_secs(1));
    reader.batch_execute("COMMIT").await.unwrap();
}

#[tokio::test]
async fn an_upgrade_blocked_by_a_reader_gives_up_quickly_and_holds_up_no_writer() {
    let url = Postgres::shared().fresh_database();
    let db = connect(&url).await;
    migrate(&db).await.unwrap();
    // As if written by an older release: the next start upgrades.
    db.batch_execute("UPDATE vote_schema SET version = 1")
        .await
        .unwrap();
    let reader = connect(&url).await;
    reader
        .batch_execute("BEGIN; SELECT count(*) FROM votes")
        .await
        .unwrap();

    let migrating = connect(&url).await;
    let started = Instant::now();
    let blocked = migrate(&migrating).await.unwrap_err();
    assert!(is_lock_timeout(&blocked), "{blocked:?}");
    assert!(started.elapsed() < Duration::from_secs(2));
    // The failed attempt left no transaction open: the connection works.
    migrating.batch_execute("SELECT 1").await.unwrap();

    // While upgrades keep trying, writers get through. (The retries have a
    // connection of their own: one dropped mid-query is closed, not reused.)
    let writer = connect(&url).await;
    let retrying = connect(&url).await;
    let retries = async {
        loop {
            let _ = migrate(&retrying).await;
        }
    };
    // Each attempt holds writers up for its 250 ms lock_timeout at most (a
    // loaded machine adds some); one that waited for the reader would wait
    // until the end of the test.
    let writes = async {
        for i in 0..20 {
            let voter = format!("w{i}");
            let params: [&(dyn tokio_postgres::types::ToSql + Sync); 1] = [&voter];
            let insert = writer.execute("INSERT INTO votes (id, vote) VALUES ($1, 'a')", &params);
            tokio::time::timeout(Duration::from_millis(1500), insert)
                .await
                .unwrap_or_else(|_| panic!("write {i} waited behind the upgrade"))
                .unwrap();
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    tokio::select! {
        () = retries => unreachable!(),
        () = writes => {}
    }
    drop(retrying);

    reader.batch_execute("COMMIT").await.unwrap();
    assert_eq!(
        migrate(&migrating).await.unwrap(),
        Migration::Upgraded { from: 1 }
    );
    assert_tallies_match(&db).await;
}

#[tokio::test]
async fn tallies_follow_inserts_updates_deletes_and_truncates() {
    let url = Postgres::shared().fresh_database();
    let db = connect(&url).await;
    migrate(&db).await.unwrap();
    db.batch_execute("INSERT INTO votes (id, vote) VALUES ('1','a'),('2','a'),('3','b')")
        .await
        .unwrap();
    assert_tallies_match(&db).await;
    let tally = read_tally(&db, &VoteOptions::defaults()).await.unwrap();
    assert_eq!((tally.count("a"), tally.count("b"), tally.total), (2, 1, 3));

    // The reference worker's statements keep working and keep tallies exact.
    db.batch_execute("UPDATE votes SET vote = 'b' WHERE id = '1'")
        .await
        .unwrap();
    assert_tallies_match(&db).await;
    db.batch_execute(
        "INSERT INTO votes (id, vote) VALUES ('2','b'),('4','a') \
         ON CONFLICT (id) DO UPDATE SET vote = EXCLUDED.vote",
    )
    .await
    .unwrap();
    assert_tallies_match(&db).await;
    db.batch_execute("DELETE FROM votes WHERE id = '3'")
        .await
        .unwrap();
    assert_tallies_match(&db).await;
    db.batch_execute("TRUNCATE votes").await.unwrap();
    assert_tallies_match(&db).await;
}

#[tokio::test]
async fn existing_reference_votes_are_counted_on_first_migration() {
    let url = Postgres::shared().fresh_database();
    let db = connect(&url).await;
    db.batch_execute(
        "CREATE TABLE votes (id VARCHAR(255) NOT NULL UNIQUE, vote VARCHAR(255) NOT NULL); \
         INSERT INTO votes VALUES ('x','a'),('y','b'),('z','b')",
    )
    .await
    .unwrap();
    migrate(&db).await.unwrap();
    migrate(&db).await.unwrap();
    let tally = read_tally(&db, &VoteOptions::defaults()).await.unwrap();
    assert_eq!((tally.count("a"), tally.count("b")), (1, 2));
}

#[tokio::test]
async fn commits_that_change_a_tally_notify() {
    let url = Postgres::shared().fresh_database();
    let (listener, mut connection) = tokio_postgres::connect(&url, NoTls).await.unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut messages = stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(Ok(message)) = messages.next().await {
            if let AsyncMessage::Notification(n) = message {
                let _ = tx.send((n.channel().to_string(), n.payload().to_string()));
            }
        }
    });
    let db = connect(&url).await;
    migrate(&db).await.unwrap();
    listener
        .batch_execute(&format!("LISTEN {TALLY_CHANNEL}"))
        .await
        .unwrap();
    // The payload is the newest cast_at the commit brought.
    db.batch_execute("INSERT INTO votes (id, vote, cast_at) VALUES ('1','a', 42), ('2','b', 7)")
        .await
        .unwrap();
    let mut next_payload = async || {
        let notification = tokio::time::timeout(std::time::Duration::from_secs(5), rx.recv())
            .await
            .expect("a notification within 5 s")
            .expect("the listener is connected");
        assert_eq!(notification.0, TALLY_CHANNEL);
        notification.1
    };
    assert_eq!(next_payload().await, "42");
    // A delete brings no ballot: an empty payload.
    db.batch_execute("DELETE FROM votes WHERE id = '2'")
        .await
        .unwrap();
    assert_eq!(next_payload().await, "");
    // Same vote again: no count moves, so no notification.
    db.batch_execute("UPDATE votes SET vote = 'a' WHERE id = '1'")
        .await
        .unwrap();
    let quiet = tokio::time::timeout(std::time::Duration::from_millis(300), rx.recv()).await;
    assert!(quiet.is_err(), "unexpected notification");
}
