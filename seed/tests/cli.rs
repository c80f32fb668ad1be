//! The `seed` binary on its own: bad settings and a dead target end with one
//! line that says why, and a non-zero exit, never a panic.

use std::process::{Command, Output};

const SEED: &str = env!("CARGO_BIN_EXE_seed");

fn seed(args: &[&str]) -> Output {
    Command::new(SEED)
        .args(args)
        .env_clear()
        .env("RUST_LOG", "warn")
        .output()
        .expect("run seed")
}

/// The whole of stderr, which must be exactly one line.
fn one_line(output: &Output) -> String {
    let stderr = String::from_utf8_lossy(&output.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(
        lines.len(),
        1,
        "expected one line on stderr, got:\n{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    lines[0].to_string()
}

#[test]
fn a_dead_target_is_a_clear_error() {
    let port = test_servers::free_port();
    let url = format!("http://127.0.0.1:{port}/");
    let output = seed(&["--timeout", "1s", &url]);
    assert_eq!(output.status.code(), Some(1));
    let line = one_line(&output);
    assert!(
        line.starts_with(&format!("seed: {url} did not answer within 1s")),
        "{line}"
    );
    assert!(line.contains("refused"), "{line}");
    assert!(output.stdout.is_empty(), "nothing was sent, so no summary");
}

#[test]
fn a_bad_split_names_the_setting() {
    let output = seed(&["--split", "2:x"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(one_line(&output).contains("--split"));
}

#[test]
fn a_bad_url_names_the_setting() {
    for url in ["ftp://127.0.0.1/", "127.0.0.1:5000", "http://"] {
        let output = seed(&[url]);
        assert_eq!(output.status.code(), Some(2), "{url}");
        assert!(one_line(&output).contains("URL"), "{url}");
    }
}

#[test]
fn settings_come_from_the_environment_too() {
    let output = Command::new(SEED)
        .env_clear()
        .env("SEED_CONCURRENCY", "none")
        .output()
        .expect("run seed");
    assert_eq!(output.status.code(), Some(2));
    assert!(one_line(&output).contains("--concurrency"));
}

#[test]
fn changes_need_a_second_option() {
    let output = seed(&["--split", "1", "--changes", "10%"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(one_line(&output).contains("--changes needs a --split of two or more options"));
}
