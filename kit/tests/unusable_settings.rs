//! Settings that parse but can never work are told apart from outages,
//! against real servers.

use std::time::Duration;

use kit::{db_error, redis_error};
use test_servers::{free_port, Postgres, Redis};
use tokio_postgres::NoTls;

async fn redis_error(url: &str) -> redis::RedisError {
    let config =
        redis::AsyncConnectionConfig::new().set_connection_timeout(Some(Duration::from_secs(2)));
    redis::Client::open(url)
        .unwrap()
        .get_multiplexed_async_connection_with_config(&config)
        .await
        .expect_err("a connection that cannot work")
}

#[tokio::test]
async fn a_redis_database_the_server_lacks_or_a_refused_password_cannot_work() {
    let redis = Redis::shared();
    let no_such_db = format!("redis://127.0.0.1:{}/20000", redis.port());
    let wrong_password = format!("redis://:secret@127.0.0.1:{}/0", redis.port());
    for url in [no_such_db, wrong_password] {
        let line = redis_error::unusable_setting(&redis_error(&url).await);
        let line = line.unwrap_or_else(|| panic!("{url} taken for an outage"));
        assert!(line.starts_with("REDIS_URL"), "{line}");
        assert!(!line.contains('\n'), "{line}");
    }
    let nobody_listens = format!("redis://127.0.0.1:{}", free_port());
    assert_eq!(
        redis_error::unusable_setting(&redis_error(&nobody_listens).await),
        None
    );
}

#[tokio::test]
async fn an_unknown_database_or_role_cannot_work_but_a_stopped_server_can_return() {
    let pg = Postgres::shared();
    let cases = [
        pg.db_url("no_such_database"),
        format!("postgres://nobody@127.0.0.1:{}/postgres", pg.port()),
    ];
    for url in cases {
        let error = tokio_postgres::connect(&url, NoTls).await.err().unwrap();
        let line = db_error::unusable_setting(&error)
            .unwrap_or_else(|| panic!("{url} taken for an outage: {error}"));
        assert!(line.starts_with("DATABASE_URL"), "{line}");
    }
    let nobody_listens = format!("postgres://postgres@127.0.0.1:{}/postgres", free_port());
    let error = tokio_postgres::connect(&nobody_listens, NoTls)
        .await
        .err()
        .unwrap();
    assert_eq!(db_error::unusable_setting(&error), None);
}
