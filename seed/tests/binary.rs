//! The `seed` binary against the whole pipeline (started in this process by
//! the `pipeline` crate): its exit status, its report, SIGTERM.

use std::process::{Output, Stdio};
use std::time::Duration;

use pipeline::Stack;
use test_servers::free_port;
use tokio::process::{Child, Command};

const SEED: &str = env!("CARGO_BIN_EXE_seed");

/// The real `seed` binary aimed at `stack`, verifying through its result
/// service; the stack keeps serving while it runs.
fn seed_binary(stack: &Stack, args: &[&str]) -> Command {
    let mut command = seed_command(&["--verify", &stack.result]);
    command.args(args).arg(&stack.vote);
    command
}

/// The real `seed` binary run to its end against `stack`.
async fn run_seed_binary(stack: &Stack, args: &[&str]) -> Output {
    seed_binary(stack, args).output().await.expect("run seed")
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
async fn the_binary_exits_zero_when_every_vote_is_counted() {
    let stack = Stack::start().await;
    let output = run_seed_binary(&stack, &["--votes", "300"]).await;
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
    let output = run_seed_binary(&stack, &["--votes", "50", "--timeout", "2s"]).await;
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
    let seed = seed_binary(&stack, &["--duration", "60s", "--rate", "100"])
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
