//! The schema against a real Postgres: tallies follow every change to votes.

use ballot::schema::{count_votes, migrate, read_tally, TALLY_CHANNEL};
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
    for result in join_all(runs).await {
        result.unwrap();
    }
    migrate(&clients[0]).await.unwrap();
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
                let _ = tx.send(n.channel().to_string());
            }
        }
    });
    let db = connect(&url).await;
    migrate(&db).await.unwrap();
    listener
        .batch_execute(&format!("LISTEN {TALLY_CHANNEL}"))
        .await
        .unwrap();
    db.batch_execute("INSERT INTO votes (id, vote) VALUES ('1','a')")
        .await
        .unwrap();
    let channel = tokio::time::timeout(std::time::Duration::from_secs(5), rx.recv())
        .await
        .unwrap();
    assert_eq!(channel.as_deref(), Some(TALLY_CHANNEL));
    // Same vote again: no count moves, so no notification.
    db.batch_execute("UPDATE votes SET vote = 'a' WHERE id = '1'")
        .await
        .unwrap();
    let quiet = tokio::time::timeout(std::time::Duration::from_millis(300), rx.recv()).await;
    assert!(quiet.is_err(), "unexpected notification");
}
