//! The result service against a real Postgres: what clients see on
//! connect, after commits, and when nothing changes.

mod support;

use std::time::Duration;

use futures_util::future::join_all;
use support::*;
use test_servers::Postgres;

#[tokio::test]
async fn starts_on_an_empty_database_and_shows_zeros() {
    let url = Postgres::shared().fresh_database();
    let port = start_result(&url).await;
    let mut socket = connect(port).await;
    let first = next_text(&mut socket).await;
    assert_eq!(first, r#"{"votes":{"a":0,"b":0},"total":0}"#);
    assert_eq!(get_text(port, "/api/tally").await, first);
    assert_eq!(status(port, "/healthz").await, Some(200));
    assert_eq!(status(port, "/readyz").await, Some(200));
}

#[tokio::test]
async fn a_committed_ballot_is_pushed_and_matches_the_api() {
    let url = Postgres::shared().fresh_database();
    let port = start_result(&url).await;
    let db = db(&url).await;
    insert_votes(&db, &[("v1", "a"), ("v2", "b")]).await;
    let mut socket = connect(port).await;
    // The first message is the tally as it stands.
    let mut first = next_tally(&mut socket).await;
    while first.total < 2 {
        first = next_tally(&mut socket).await;
    }
    assert_eq!((first.count("a"), first.count("b")), (1, 1));

    insert_votes(&db, &[("v3", "b")]).await;
    let pushed = next_text(&mut socket).await;
    assert_eq!(pushed, r#"{"votes":{"a":1,"b":2},"total":3}"#);
    assert_eq!(get_text(port, "/api/tally").await, pushed);
}

#[tokio::test]
async fn nothing_is_sent_while_nothing_changes() {
    let url = Postgres::shared().fresh_database();
    let port = start_result(&url).await;
    let db = db(&url).await;
    insert_votes(&db, &[("v1", "a")]).await;
    let mut socket = connect(port).await;
    while next_tally(&mut socket).await.total < 1 {}

    // The same ballot again moves no count: no notification, and the
    // periodic re-read (every 3 s) finds nothing new either.
    insert_votes(&db, &[("v1", "a")]).await;
    db.execute("UPDATE tallies SET count = count WHERE vote = 'a'", &[])
        .await
        .unwrap();
    let quiet = next_within(&mut socket, Duration::from_millis(3500)).await;
    assert_eq!(quiet, None, "a message although nothing changed");

    // A changed vote is one update: a down, b up.
    insert_votes(&db, &[("v1", "b")]).await;
    assert_eq!(
        next_text(&mut socket).await,
        r#"{"votes":{"a":0,"b":1},"total":1}"#
    );
}

#[tokio::test]
async fn a_change_without_a_notification_still_arrives() {
    let url = Postgres::shared().fresh_database();
    let port = start_result(&url).await;
    let db = db(&url).await;
    let mut socket = connect(port).await;
    assert_eq!(next_tally(&mut socket).await.total, 0);

    // Written straight to tallies, past the triggers: no notification, so
    // only the periodic re-read (every 3 s) can find it.
    db.execute("INSERT INTO tallies (vote, count) VALUES ('a', 4)", &[])
        .await
        .unwrap();
    let refreshed = next_within(&mut socket, Duration::from_secs(5)).await;
    assert_eq!(
        refreshed.as_deref(),
        Some(r#"{"votes":{"a":4,"b":0},"total":4}"#),
        "a missed notification is never caught up"
    );
}

#[tokio::test]
async fn many_clients_get_the_same_updates() {
    let url = Postgres::shared().fresh_database();
    let port = start_result(&url).await;
    let db = db(&url).await;
    let mut sockets = join_all((0..200).map(|_| connect(port))).await;
    for socket in &mut sockets {
        assert_eq!(next_tally(socket).await.total, 0);
    }
    for round in 1..=3 {
        let voter = format!("v{round}");
        insert_votes(&db, &[(voter.as_str(), "a")]).await;
        let seen = join_all(sockets.iter_mut().map(next_text)).await;
        let expected = format!(r#"{{"votes":{{"a":{round},"b":0}},"total":{round}}}"#);
        assert!(
            seen.iter().all(|s| *s == expected),
            "round {round}: {seen:?}"
        );
    }
}

#[tokio::test]
async fn bursts_are_coalesced() {
    let url = Postgres::shared().fresh_database();
    let port = start_result(&url).await;
    let db = db(&url).await;
    let mut socket = connect(port).await;
    next_tally(&mut socket).await;

    // 300 commits, each one a notification, as fast as Postgres takes them.
    let started = std::time::Instant::now();
    for i in 0..300 {
        insert_votes(&db, &[(format!("v{i}").as_str(), "a")]).await;
    }
    let mut messages = 0;
    loop {
        messages += 1;
        if next_tally(&mut socket).await.total == 300 {
            break;
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    // At most one read per 50 ms, plus the one already under way.
    let most = (seconds * 20.0).ceil() as usize + 2;
    assert!(
        messages <= most,
        "{messages} messages in {seconds:.2}s; at most {most} expected"
    );
}

#[tokio::test]
async fn a_client_that_never_reads_holds_up_no_one() {
    let url = Postgres::shared().fresh_database();
    let port = start_result(&url).await;
    let db = db(&url).await;
    // Connected, then never read from again.
    let _stalled = connect(port).await;
    let mut reader = connect(port).await;
    next_tally(&mut reader).await;
    for i in 1..=20 {
        insert_votes(&db, &[(format!("v{i}").as_str(), "b")]).await;
        while next_tally(&mut reader).await.count("b") < i {}
    }
}

#[tokio::test]
async fn the_page_shows_every_option_without_javascript() {
    let url = Postgres::shared().fresh_database();
    let port = start_result(&url).await;
    let page = get_text(port, "/").await;
    for expected in [
        "Cats",
        "Dogs",
        "50%",
        "No votes yet",
        "/result.js",
        "/result.css",
    ] {
        assert!(page.contains(expected), "page lacks {expected}");
    }
    let db = db(&url).await;
    insert_votes(&db, &[("v1", "a"), ("v2", "a"), ("v3", "b")]).await;
    wait_until_total(port, 3).await;
    let page = get_text(port, "/").await;
    for expected in ["67%", "33%", "3 votes"] {
        assert!(page.contains(expected), "page lacks {expected}");
    }
    assert!(get_text(port, "/result.js").await.contains("WebSocket"));
    assert!(get_text(port, "/result.css").await.contains(".fill"));
}

#[tokio::test]
async fn more_options_from_settings() {
    let url = Postgres::shared().fresh_database();
    let port = launch_result(&url, &["--option-c", "Birds"]);
    wait_for_status(port, "/readyz", 200).await;
    let mut socket = connect(port).await;
    assert_eq!(
        next_text(&mut socket).await,
        r#"{"votes":{"a":0,"b":0,"c":0},"total":0}"#
    );
    let page = get_text(port, "/").await;
    assert!(page.contains("Birds") && page.contains("34%") && page.contains("33%"));
}

async fn wait_until_total(port: u16, total: i64) {
    let waiting = async {
        loop {
            let tally: ballot::Tally =
                serde_json::from_str(&get_text(port, "/api/tally").await).unwrap();
            if tally.total == total {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(PATIENCE, waiting).await.unwrap();
}
