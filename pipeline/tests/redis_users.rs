//! Redis as the stacks run it: the users of redis/users.acl, started by
//! redis/start.sh from secret files. Each service does its whole job as its
//! own user; whatever is outside a user's role is refused.

use std::time::{Duration, Instant};

use ballot::queue::{processing_list, DEAD_LETTERS, VOTES};
use pipeline::client::*;
use pipeline::Worker;
use redis::aio::MultiplexedConnection;
use test_servers::{redis_connection, Postgres, Redis};

const PATIENCE: Duration = Duration::from_secs(30);

async fn as_user(redis: &Redis, user: &str) -> MultiplexedConnection {
    redis_connection(&redis.url_as(user)).await
}

/// Sends `command` (its words split on spaces) and returns Redis's answer,
/// an error reply as `Err(its text)`.
async fn send(connection: &mut MultiplexedConnection, command: &str) -> Result<(), String> {
    let mut words = command.split(' ');
    let mut cmd = redis::cmd(words.next().unwrap());
    for word in words {
        cmd.arg(word);
    }
    cmd.query_async::<redis::Value>(connection)
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// vote queues through the queue script, the worker takes, counts, hands
/// back a dead worker's batch, dead-letters poison and stops cleanly: every
/// command both use is in its user's ACL. vote reads its password from a
/// file (REDIS_PASSWORD_FILE), the worker from its URL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_service_does_its_whole_job_as_its_own_redis_user() {
    let redis = Redis::start_with_users();
    let database_url = Postgres::shared().fresh_database();
    let mut admin = as_user(&redis, "admin").await;
    // What a worker killed mid-batch leaves, and an entry that can never count.
    let orphan = r#"{"voter_id":"orphan","vote":"b"}"#;
    let () = redis::cmd("RPUSH")
        .arg(processing_list("gone"))
        .arg(orphan)
        .query_async(&mut admin)
        .await
        .unwrap();
    let () = redis::cmd("RPUSH")
        .arg(VOTES)
        .arg("not json")
        .query_async(&mut admin)
        .await
        .unwrap();

    let vote_url = format!("redis://vote@127.0.0.1:{}", redis.port());
    let password_file = redis.password_file("vote");
    let password_file = password_file.to_str().unwrap();
    let vote = pipeline::start_vote(&vote_url, &["--redis-password-file", password_file]).await;
    let vote_port = vote.port();
    wait_for_status(vote_port, "/readyz", 200).await;
    let worker = Worker::start(&redis.url_as("worker"), &database_url);

    let client = reqwest::Client::new();
    for _ in 0..20 {
        let response = client
            .post(format!("http://127.0.0.1:{vote_port}/"))
            .form(&[("vote", "a")])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 200, "a ballot refused");
    }
    let db = db(&database_url).await;
    let deadline = Instant::now() + PATIENCE;
    loop {
        // Until the worker has made the schema, there is no table.
        let counted: i64 = match db.query_one("SELECT count(*) FROM votes", &[]).await {
            Ok(row) => row.get(0),
            Err(_) => 0,
        };
        if counted == 21 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{counted} of 20 ballots and the orphan counted"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    worker.stop().await;
    let dead: Vec<String> = redis::cmd("LRANGE")
        .arg(DEAD_LETTERS)
        .arg(0)
        .arg(-1)
        .query_async(&mut admin)
        .await
        .unwrap();
    assert_eq!(dead, ["not json"]);
    let left: Vec<String> = redis::cmd("KEYS")
        .arg("votes:processing:*")
        .query_async(&mut admin)
        .await
        .unwrap();
    assert!(left.is_empty(), "{left:?}");
}

/// Redis replays its append-only file after a crash with the ACL in force:
/// every ballot vote queued (through its script, as its own user) is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ballots_queued_as_vote_survive_a_redis_crash() {
    let redis = Redis::start_with_users();
    let vote = pipeline::start_vote(&redis.url_as("vote"), &[]).await;
    let vote_port = vote.port();
    wait_for_status(vote_port, "/readyz", 200).await;
    let client = reqwest::Client::new();
    for _ in 0..10 {
        let response = client
            .post(format!("http://127.0.0.1:{vote_port}/"))
            .form(&[("vote", "b")])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 200, "a ballot refused");
    }
    redis.kill();
    redis.resume();
    let mut admin = as_user(&redis, "admin").await;
    let queued: i64 = redis::cmd("LLEN")
        .arg(VOTES)
        .query_async(&mut admin)
        .await
        .unwrap();
    assert_eq!(queued, 10, "ballots lost in the crash");
}

/// For every user, commands outside its role answer NOPERM (or, for keys
/// of its own commands it may not touch, the same), and what it needs works.
#[tokio::test]
async fn each_redis_user_is_refused_what_its_role_does_not_need() {
    let redis = Redis::start_with_users();
    let mut admin = as_user(&redis, "admin").await;
    send(&mut admin, "RPUSH votes ballot").await.unwrap();
    send(&mut admin, "SET votes:clock 1").await.unwrap();

    let refused: &[(&str, &[&str])] = &[
        (
            "vote",
            &[
                "DEL votes",
                "LRANGE votes 0 -1",
                "LLEN votes",
                "LPOP votes",
                "SET votes x",
                "RPUSH votes:clock x",
                "GET votes:order",
                "KEYS *",
                "SCAN 0",
                "FLUSHALL",
                "FLUSHDB",
                "CONFIG GET *",
                "EVAL return 1 0",
                "SCRIPT FLUSH",
                "SELECT 1",
                "ACL LIST",
            ],
        ),
        (
            "worker",
            &[
                "FLUSHALL",
                "FLUSHDB",
                "CONFIG SET appendonly no",
                "SCRIPT FLUSH",
                "CLIENT LIST",
                "BGSAVE",
                "SHUTDOWN",
                "KEYS *",
                "SET votes:clock 9",
                "GET votes:clock",
                "SET other x",
                "EVAL return 1 0",
                "ACL LIST",
            ],
        ),
        (
            "exporter",
            &[
                "DEL votes",
                "LRANGE votes 0 -1",
                "LPOP votes",
                "RPUSH votes x",
                "SET votes:clock 9",
                "GET votes:clock",
                "FLUSHALL",
                "CONFIG GET *",
                "KEYS *",
            ],
        ),
    ];
    for (user, commands) in refused {
        let mut connection = as_user(&redis, user).await;
        for command in *commands {
            match send(&mut connection, command).await {
                Err(e) if e.contains("NOPERM") || e.contains("no permissions") => {}
                other => panic!("{user}: {command} answered {other:?}, not NOPERM"),
            }
        }
    }

    // What each needs. (The queue and take scripts run in the test above.)
    let allowed: &[(&str, &[&str])] = &[
        (
            "vote",
            &["PING", "TIME", "GET votes:clock", "RPUSH votes b"],
        ),
        (
            "worker",
            &[
                "PING",
                "LLEN votes",
                "SET votes:worker:w alive PX 1000",
                "SCAN 0 MATCH votes:processing:* COUNT 10",
                "BLMOVE votes votes LEFT LEFT 1",
            ],
        ),
        ("exporter", &["INFO", "TYPE votes", "LLEN votes:dead"]),
        ("admin", &["FLUSHALL", "CONFIG GET maxmemory", "ACL LIST"]),
    ];
    for (user, commands) in allowed {
        let mut connection = as_user(&redis, user).await;
        for command in *commands {
            if let Err(e) = send(&mut connection, command).await {
                panic!("{user}: {command} refused: {e}");
            }
        }
    }
}

/// Without a user and password nothing works, and the default user is off.
#[tokio::test]
async fn redis_refuses_anyone_without_a_user() {
    let redis = Redis::start_with_users();
    let nobody = format!("redis://127.0.0.1:{}", redis.port());
    let mut connection = redis_connection(&nobody).await;
    let refused = send(&mut connection, "PING").await.unwrap_err();
    assert!(refused.contains("NOAUTH"), "{refused}");
    let refused = send(&mut connection, "AUTH default nopass")
        .await
        .unwrap_err();
    assert!(refused.contains("WRONGPASS"), "{refused}");
}

/// redis/start.sh, as the stacks run it: a user whose secret file is
/// missing stays off (the swarm stack and Kubernetes have no exporter); a
/// file without a password stops the start rather than hash an empty one.
#[tokio::test]
async fn a_missing_secret_leaves_its_user_off_and_an_empty_one_stops_redis() {
    let start = concat!(env!("CARGO_MANIFEST_DIR"), "/../redis/start.sh");
    let dir = std::env::temp_dir().join(format!("redis-secrets-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for user in ["vote", "worker", "admin"] {
        std::fs::write(
            dir.join(format!("redis_{user}_password")),
            format!("{user}-pw\n"),
        )
        .unwrap();
    }
    let port = test_servers::free_port();
    let mut redis = std::process::Command::new("sh")
        .args([
            start,
            "redis-server",
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
        ])
        .args(["--save", "", "--appendonly", "no", "--dir"])
        .arg(&dir)
        .env("REDIS_SECRETS_DIR", &dir)
        .env("REDIS_ACLFILE", dir.join("users.acl"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let admin_url = format!("redis://admin:admin-pw@127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(10);
    let client = redis::Client::open(admin_url).unwrap();
    let mut admin = loop {
        match client.get_multiplexed_async_connection().await {
            Ok(connection) => break connection,
            Err(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("redis did not start: {e}"),
        }
    };
    let flags: Vec<redis::Value> = redis::cmd("ACL")
        .arg("GETUSER")
        .arg("exporter")
        .query_async(&mut admin)
        .await
        .unwrap();
    let flags = format!("{flags:?}");
    assert!(
        flags.contains("off") && !flags.contains("\"on\""),
        "{flags}"
    );
    let _ = redis.kill();
    let _ = redis.wait();

    std::fs::write(dir.join("redis_worker_password"), "\n").unwrap();
    let refused = std::process::Command::new("sh")
        .args([start, "redis-server", "--port", &port.to_string()])
        .env("REDIS_SECRETS_DIR", &dir)
        .env("REDIS_ACLFILE", dir.join("users.acl"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("redis_worker_password holds no password"),
        "{stderr}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
