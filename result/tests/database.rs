//! The result binary and the database it reads: Postgres's errors in the
//! server's own words, a DATABASE_URL that can never work. (The tests of
//! result with the worker and vote are in the `pipeline` crate.)

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use support::*;
use test_servers::{free_port, Postgres};

/// The result binary, its stderr lines sent to a channel as they come.
struct Binary {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Binary {
    fn start(database_url: &str, port: u16) -> Binary {
        let mut child = Command::new(env!("CARGO_BIN_EXE_result"))
            .env("DATABASE_URL", database_url)
            .env("PORT", port.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (sender, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = sender.send(line);
            }
        });
        Binary { child, lines }
    }

    /// The first line containing `text`, waiting up to `limit`.
    fn line_with(&self, text: &str, limit: Duration) -> String {
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.contains(text) => return line,
                Ok(_) => {}
                Err(_) => panic!("no line with {text:?} within {limit:?}"),
            }
        }
    }
}

impl Drop for Binary {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn postgres_errors_are_logged_in_the_servers_own_words() {
    let pg = Postgres::shared();
    let owner_url = pg.fresh_database();
    let admin = db(&owner_url).await;
    ballot::schema::migrate(&admin).await.unwrap();
    admin
        .batch_execute(
            "DO $$ BEGIN CREATE ROLE limited LOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$; \
             ALTER ROLE limited CONNECTION LIMIT 0; \
             GRANT SELECT ON ALL TABLES IN SCHEMA public TO limited",
        )
        .await
        .unwrap();
    let database = owner_url.rsplit('/').next().unwrap();
    let url = format!("postgres://limited@127.0.0.1:{}/{database}", pg.port());
    let port = free_port();
    let result = Binary::start(&url, port);

    let line = result.line_with("postgres unavailable", Duration::from_secs(10));
    assert!(
        line.contains("too many connections for role \"limited\" (53300)"),
        "{line}"
    );
    admin
        .batch_execute("ALTER ROLE limited CONNECTION LIMIT -1")
        .await
        .unwrap();
    wait_for_status(port, "/readyz", 200).await;
}

#[tokio::test]
async fn a_database_url_that_cannot_work_stops_the_binary_with_one_line() {
    let url = Postgres::shared().db_url("no_such_database");
    let mut result = Binary::start(&url, free_port());
    let started = Instant::now();
    let status = loop {
        if let Some(status) = result.child.try_wait().unwrap() {
            break status;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "still running");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(status.code(), Some(2));
    // Every line, up to the end of its stderr (the reader may lag the exit).
    let lines: Vec<String> = result.lines.iter().collect();
    let naming: Vec<&String> = lines
        .iter()
        .filter(|l| l.contains("DATABASE_URL"))
        .collect();
    assert_eq!(naming.len(), 1, "{lines:#?}");
    // The verdict is the last line: nothing it started logs after it.
    assert_eq!(lines.last(), Some(naming[0]), "{lines:#?}");
    assert!(
        naming[0].contains("database \"no_such_database\" does not exist"),
        "{lines:#?}"
    );
    assert!(
        !lines.iter().any(|l| l.contains("retrying")),
        "retried a setting that cannot work: {lines:#?}"
    );
}
