//! `worker migrate`, the one-shot step the stacks run as the schema's owner
//! before the workers: it waits for Postgres (a swarm starts it with no
//! order), migrates, and exits 0.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use test_servers::Postgres;
use tokio_postgres::NoTls;

const WORKER: &str = env!("CARGO_BIN_EXE_worker");

#[tokio::test]
async fn migrate_waits_for_postgres_then_creates_the_schema_and_exits_0() {
    let pg = Postgres::start();
    let url = pg.url();
    pg.stop();
    let mut migrate = Command::new(WORKER)
        .arg("migrate")
        .env("DATABASE_URL", &url)
        .env("RUST_LOG", "error")
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    assert!(
        migrate.try_wait().unwrap().is_none(),
        "worker migrate gave up while Postgres was down"
    );

    pg.resume();
    let started = Instant::now();
    let status = loop {
        if let Some(status) = migrate.try_wait().unwrap() {
            break status;
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "worker migrate still running after Postgres came back"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status}");
    let (client, connection) = tokio_postgres::connect(&url, NoTls).await.unwrap();
    tokio::spawn(connection);
    assert_eq!(
        ballot::schema::version(&client).await.unwrap(),
        ballot::schema::VERSION
    );
}
