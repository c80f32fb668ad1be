use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::Duration;

use test_servers::{Postgres, Redis};

fn redis_cmd(port: u16, cmd: &str) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.write_all(cmd.as_bytes()).unwrap();
    let mut buf = [0u8; 64];
    let n = s.read(&mut buf).unwrap();
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

#[test]
fn redis_keeps_data_across_restart() {
    let redis = Redis::start();
    assert_eq!(redis_cmd(redis.port(), "SET k v\r\n"), "+OK\r\n");
    redis.stop();
    assert!(TcpStream::connect(("127.0.0.1", redis.port())).is_err());
    redis.resume();
    assert_eq!(redis_cmd(redis.port(), "GET k\r\n"), "$1\r\nv\r\n");
}

#[test]
fn a_paused_redis_answers_nothing_until_unpaused_then_runs_what_waited() {
    let redis = Redis::start();
    let mut client = TcpStream::connect(("127.0.0.1", redis.port())).unwrap();
    client
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    redis.pause();
    client.write_all(b"SET k paused\r\n").unwrap();
    let mut reply = [0u8; 16];
    let waited = client.read(&mut reply).unwrap_err().kind();
    assert!(
        matches!(waited, ErrorKind::WouldBlock | ErrorKind::TimedOut),
        "{waited:?}"
    );
    redis.unpause();
    let n = client.read(&mut reply).unwrap();
    assert_eq!(&reply[..n], b"+OK\r\n");
    assert_eq!(redis_cmd(redis.port(), "GET k\r\n"), "$6\r\npaused\r\n");
    // Stopping a paused server does not hang.
    redis.pause();
    redis.stop();
    assert!(TcpStream::connect(("127.0.0.1", redis.port())).is_err());
}

#[test]
fn shared_redis_hands_out_distinct_databases() {
    let redis = Redis::shared();
    assert_ne!(redis.fresh_db_url(), redis.fresh_db_url());
}

/// Runs `sql` with psql against `url`; its output, trimmed.
fn psql(url: &str, sql: &str) -> String {
    let output = Command::new("psql")
        .args([url, "-tAc", sql])
        .output()
        .unwrap_or_else(|e| match e.kind() {
            ErrorKind::NotFound => {
                panic!("psql not found: install it with `apt-get install postgresql-client`")
            }
            _ => panic!("cannot run psql: {e}"),
        });
    assert!(
        output.status.success(),
        "psql {sql:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

#[test]
fn postgres_restarts_and_creates_databases() {
    let pg = Postgres::start();
    let url = pg.fresh_database();
    psql(&url, "CREATE TABLE t AS SELECT 7 AS x");
    pg.stop();
    pg.resume();
    assert_eq!(psql(&url, "SELECT x FROM t"), "7");
}

#[test]
fn a_standby_follows_its_primary_and_takes_over_when_promoted() {
    let (primary, standby) = Postgres::start_replicated();
    // Listed first, the standby is passed over for the primary.
    let url = Postgres::read_write_url(&[&standby, &primary]);
    psql(&url, "CREATE TABLE t AS SELECT 7 AS x");
    let port = |url: &str| psql(url, "SHOW port");
    assert_eq!(port(&url), primary.port().to_string());
    // Synchronous: the commit above is on the standby already.
    assert_eq!(psql(&standby.url(), "SELECT x FROM t"), "7");
    assert_eq!(psql(&standby.url(), "SELECT pg_is_in_recovery()"), "t");

    primary.make_read_only();
    assert_eq!(psql(&primary.url(), "SHOW transaction_read_only"), "on");
    standby.promote();
    assert_eq!(port(&url), standby.port().to_string());
    psql(&url, "INSERT INTO t VALUES (8)");
    primary.crash();
    assert_eq!(psql(&url, "SELECT sum(x) FROM t"), "15");
}

#[tokio::test]
async fn browser_renders_a_page() {
    let browser = test_servers::Browser::start();
    let page = browser.session(390, 844).await;
    page.goto("data:text/html,<h1 id=t>hello</h1>")
        .await
        .unwrap();
    let text = page
        .find(fantoccini::Locator::Css("#t"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(text, "hello");
    page.close().await.unwrap();
}
