//! `seed` against the real stack: vote, worker and result in this process,
//! real Redis and Postgres from the harness, each test with its own Redis
//! database, Postgres database and ports.

use std::process::{Output, Stdio};
use std::time::Duration;

use ballot::{Tally, VoteOptions};
use clap::Parser;
use test_servers::{free_port, Postgres, Redis};
use tokio::process::{Child, Command};
use tokio_util::sync::CancellationToken;

const SEED: &str = env!("CARGO_BIN_EXE_seed");

struct Stack {
    vote: String,
    result: String,
    redis_url: String,
    database_url: String,
    worker: CancellationToken,
}

impl Stack {
    /// Vote, worker and result on fresh stores.
    async fn start() -> Stack {
        Stack::start_on(Redis::shared().fresh_db_url()).await
    }

    /// Vote, worker and result on `redis_url` and a fresh database.
    async fn start_on(redis_url: String) -> Stack {
        let stack = Stack::without_worker_on(redis_url).await;
        let config = worker::Config::embedded(&stack.redis_url, &stack.database_url);
        tokio::spawn(worker::run(config, stack.worker.clone()));
        stack
    }

    /// Vote and result only: ballots are queued but nobody counts them.
    async fn without_worker() -> Stack {
        Stack::without_worker_on(Redis::shared().fresh_db_url()).await
    }

    async fn without_worker_on(redis_url: String) -> Stack {
        let database_url = Postgres::shared().fresh_database();
        let (vote_port, result_port) = (free_port().to_string(), free_port().to_string());
        let vote =
            vote::Config::parse_from(["vote", "--redis-url", &redis_url, "--port", &vote_port]);
        tokio::spawn(vote::serve(vote));
        let result = result::Config::parse_from([
            "result",
            "--database-url",
            &database_url,
            "--port",
            &result_port,
        ]);
        tokio::spawn(result::rocket(result).launch());
        Stack {
            vote: format!("http://127.0.0.1:{vote_port}/"),
            result: format!("http://127.0.0.1:{result_port}/"),
            redis_url,
            database_url,
            worker: CancellationToken::new(),
        }
    }

    /// `seed` aimed at this stack, verifying through its result service.
    fn seed(&self, args: &[&str]) -> seed::Config {
        let mut argv = vec!["seed", "--verify", &self.result];
        argv.extend_from_slice(args);
        argv.push(&self.vote);
        seed::Config::parse_from(argv)
    }

    /// The real `seed` binary aimed at this stack; the stack keeps serving
    /// while it runs.
    fn seed_binary(&self, args: &[&str]) -> Command {
        let mut command = seed_command(&["--verify", &self.result]);
        command.args(args).arg(&self.vote);
        command
    }

    /// The real `seed` binary run to its end against this stack.
    async fn run_seed_binary(&self, args: &[&str]) -> Output {
        self.seed_binary(args).output().await.expect("run seed")
    }

    /// The votes table counted the reference way, straight from Postgres.
    async fn stored(&self) -> Tally {
        let (client, connection) =
            tokio_postgres::connect(&self.database_url, tokio_postgres::NoTls)
                .await
                .expect("connect to Postgres");
        tokio::spawn(connection);
        ballot::schema::count_votes(&client, &VoteOptions::defaults())
            .await
            .expect("count votes")
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        self.worker.cancel();
    }
}

/// The real `seed` binary with only `args`, logging warnings, its output kept.
fn seed_command(args: &[&str]) -> Command {
    let mut command = Command::new(SEED);
    command
        .args(args)
        .env_clear()
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

/// SIGTERM to a `seed` a second after it started; its output once it has
/// exited, which must be soon after.
async fn terminate_after_a_second(seed: Child) -> Output {
    tokio::time::sleep(Duration::from_secs(1)).await;
    let pid = seed.id().expect("running").to_string();
    let killed = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .await
        .unwrap();
    assert!(killed.success());
    tokio::time::timeout(Duration::from_secs(10), seed.wait_with_output())
        .await
        .expect("seed exits soon after SIGTERM")
        .unwrap()
}

fn tally(a: i64, b: i64) -> Tally {
    Tally::new(&VoteOptions::defaults(), [("a".into(), a), ("b".into(), b)])
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Stdout of a run that must have exited 0; both streams shown if it did not.
fn stdout_of_success(output: &Output) -> String {
    let stdout = text(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        text(&output.stderr)
    );
    stdout
}

fn last_line(output: &Output) -> String {
    text(&output.stderr)
        .lines()
        .last()
        .unwrap_or_default()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_run_splits_3000_votes_exactly_and_all_are_counted() {
    let stack = Stack::start().await;
    let summary = seed::run(stack.seed(&[])).await.expect("seed runs");
    println!("{summary}");
    assert_eq!(summary.problem(), None);
    assert_eq!((summary.sent.requests, summary.sent.voters), (3_000, 3_000));
    assert_eq!(summary.sent.counted, [2_000, 1_000]);
    let verification = summary.verification.expect("asked to verify");
    assert!(verification.held());
    assert_eq!(verification.expected, tally(2_000, 1_000));
    assert_eq!(stack.stored().await, tally(2_000, 1_000));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn voters_who_change_their_minds_still_count_once() {
    let stack = Stack::start().await;
    let summary = seed::run(stack.seed(&["--votes", "1000", "--changes", "30%"]))
        .await
        .expect("seed runs");
    println!("{summary}");
    assert_eq!(summary.problem(), None);
    assert_eq!(summary.sent.requests, 1_300);
    assert_eq!((summary.sent.voters, summary.sent.changed), (1_000, 300));
    // 667 chose a and 333 b; of the 300 who switched, a's go to b and b's to a.
    let [a, b] = summary.sent.counted[..] else {
        panic!("two options")
    };
    assert_eq!(a + b, 1_000);
    assert_ne!((a, b), (667, 333), "the switches moved votes");
    assert!(summary.verification.as_ref().unwrap().held());
    assert_eq!(stack.stored().await, tally(a as i64, b as i64));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verification_counts_on_top_of_earlier_votes() {
    let stack = Stack::start().await;
    let first = seed::run(stack.seed(&["--votes", "30", "--split", "1:1"]))
        .await
        .unwrap();
    assert_eq!(first.problem(), None);
    let second = seed::run(stack.seed(&["--votes", "20", "--split", "0:1"]))
        .await
        .unwrap();
    assert_eq!(second.problem(), None);
    assert_eq!(second.verification.unwrap().expected, tally(15, 35));
    assert_eq!(stack.stored().await, tally(15, 35));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn running_by_time_at_a_capped_rate_is_counted_exactly() {
    let stack = Stack::start().await;
    let summary = seed::run(stack.seed(&["--duration", "1s", "--rate", "200", "--split", "1:1"]))
        .await
        .expect("seed runs");
    println!("{summary}");
    assert_eq!(summary.problem(), None);
    let sent = summary.sent.requests;
    // 200 start within the second; tasks already waiting for a turn may add
    // one each (50 tasks), never more. Stopping early, or ignoring the
    // rate or the duration, falls outside.
    assert!((150..=250).contains(&sent), "{sent} requests");
    assert_eq!(stack.stored().await.total, sent as i64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ballots_the_vote_service_refuses_are_failures_by_status() {
    let stack = Stack::start().await;
    // The stack offers a and b only: every ballot for c is refused.
    let summary = seed::run(stack.seed(&["--votes", "30", "--split", "1:1:1"]))
        .await
        .expect("seed runs");
    println!("{summary}");
    assert_eq!(summary.sent.failed(), 10);
    assert_eq!(
        summary.problem().as_deref(),
        Some("10 of 30 requests failed (HTTP 400: 10)")
    );
    // The accepted ones are all counted.
    assert!(summary.verification.unwrap().held());
    assert_eq!(stack.stored().await, tally(10, 10));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ballots_unconfirmed_while_redis_hangs_are_counted_apart_and_verified_within_range() {
    let redis = Redis::start();
    let stack = Stack::start_on(redis.url()).await;
    let config = stack.seed(&[
        "--duration",
        "6s",
        "--rate",
        "100",
        "--split",
        "1:1",
        "--changes",
        "30%",
    ]);
    // Redis hangs for 2.5 s mid-run: ballots already sent to it get 504,
    // later ones 503 (no connection); it then runs what it was sent.
    let hang = async {
        tokio::time::sleep(Duration::from_secs(2)).await;
        redis.pause();
        tokio::time::sleep(Duration::from_millis(2_500)).await;
        redis.unpause();
    };
    let (summary, ()) = tokio::join!(seed::run(config), hang);
    let summary = summary.expect("seed runs");
    println!("{summary}");
    let sent = &summary.sent;
    assert!(sent.unknown() > 0, "no unknown outcome: {summary}");
    assert_eq!(sent.unknown.keys().collect::<Vec<_>>(), ["HTTP 504"]);
    assert!(
        sent.failures.keys().all(|kind| kind == "HTTP 503"),
        "{summary}"
    );
    // Not every request succeeded: the run still counts as failed.
    let problem = summary.problem().expect("a failed run");
    assert!(problem.contains("unknown outcome: HTTP 504: "), "{problem}");

    let verification = summary.verification.as_ref().expect("asked to verify");
    assert!(verification.held(), "{summary}");
    assert_eq!(verification.unknown, sent.unknown());
    let expected = seed::Expectation::new(&tally(0, 0), sent);
    let stored = stack.stored().await;
    assert!(
        expected.admits(&stored),
        "stored {stored:?}, expected {expected:?}"
    );
    assert_eq!(verification.seen.as_ref(), Some(&stored));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_exits_zero_when_every_vote_is_counted() {
    let stack = Stack::start().await;
    let output = stack.run_seed_binary(&["--votes", "300"]).await;
    let stdout = stdout_of_success(&output);
    assert!(
        stdout.contains("requests     300 sent, 300 succeeded, 0 failed"),
        "{stdout}"
    );
    assert!(stdout.contains("consistent   after "), "{stdout}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_fails_when_no_worker_counts_the_votes() {
    let stack = Stack::without_worker().await;
    let output = stack
        .run_seed_binary(&["--votes", "50", "--timeout", "2s"])
        .await;
    assert_eq!(output.status.code(), Some(1));
    // 2:1 of 50 is 33.3 and 16.7: the larger remainder gets the spare vote.
    let reason = last_line(&output);
    assert!(
        reason.starts_with(
            "seed: tally did not reach a 33, b 17 (total 50) within 2s; last seen a 0, b 0"
        ),
        "{reason}"
    );
    let stdout = text(&output.stdout);
    assert!(
        stdout.contains("50 sent, 50 succeeded, 0 failed"),
        "{stdout}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_sending_and_reports_what_was_sent() {
    let stack = Stack::start().await;
    let seed = stack
        .seed_binary(&["--duration", "60s", "--rate", "100"])
        .spawn()
        .expect("start seed");
    let output = terminate_after_a_second(seed).await;
    let stdout = stdout_of_success(&output);
    assert!(
        stdout.contains("stopped      early, on request"),
        "{stdout}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_while_waiting_for_the_target_ends_the_wait() {
    // Nobody listens here: without the signal seed would retry for a minute.
    let url = format!("http://127.0.0.1:{}/", free_port());
    let seed = seed_command(&["--timeout", "60s", &url])
        .spawn()
        .expect("start seed");
    let output = terminate_after_a_second(seed).await;
    let stdout = stdout_of_success(&output);
    assert!(
        stdout.contains("stopped      early, on request"),
        "{stdout}"
    );
    assert!(
        stdout.contains("requests     0 sent, 0 succeeded, 0 failed"),
        "{stdout}"
    );
}
