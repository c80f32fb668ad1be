//! The `vote` binary itself: settings from the environment, one-line errors
//! for bad settings, the healthcheck subcommand, and a clean exit on SIGTERM.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use test_servers::{free_port, Redis};

const VOTE: &str = env!("CARGO_BIN_EXE_vote");

fn spawn_vote(port: u16, redis_url: &str) -> Child {
    Command::new(VOTE)
        .env_clear()
        .env("PORT", port.to_string())
        .env("REDIS_URL", redis_url)
        .env("OPTION_A", "Tabs")
        .env("OPTION_B", "Spaces")
        .env("RUST_LOG", "warn")
        .stderr(Stdio::piped())
        .spawn()
        .expect("start vote")
}

fn healthcheck(port: u16) -> bool {
    Command::new(VOTE)
        .arg("healthcheck")
        .env_clear()
        .env("PORT", port.to_string())
        .stderr(Stdio::null())
        .status()
        .unwrap()
        .success()
}

#[test]
fn serves_labels_from_the_environment_and_stops_cleanly_on_sigterm() {
    let port = free_port();
    let mut vote = spawn_vote(port, &Redis::shared().fresh_db_url());
    assert!(!healthcheck(free_port()), "nothing listens there");
    let deadline = Instant::now() + Duration::from_secs(15);
    while !healthcheck(port) {
        assert!(Instant::now() < deadline, "vote did not become healthy");
        std::thread::sleep(Duration::from_millis(50));
    }
    let page = get(port, "/");
    assert!(page.contains("Tabs vs Spaces!"), "{page}");

    let started = Instant::now();
    // SAFETY: plain kill(2) on the child we started and still own.
    assert_eq!(unsafe { libc::kill(vote.id() as i32, libc::SIGTERM) }, 0);
    let status = loop {
        if let Some(status) = vote.try_wait().unwrap() {
            break status;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "no exit after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(0), "exit after SIGTERM");
}

#[test]
fn a_bad_setting_stops_start_up_with_one_line_naming_it() {
    let cases = [
        ("PORT", "eighty"),
        ("REDIS_URL", "localhost:6379"),
        ("REDIS_URL", "redis://host:notaport"),
        ("OPTION_A", " "),
    ];
    for (name, value) in cases {
        let output = Command::new(VOTE)
            .env_clear()
            .env(name, value)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{name}={value}: {stderr}");
        assert_eq!(
            stderr.trim_end().lines().count(),
            1,
            "{name}={value}: {stderr}"
        );
        assert!(stderr.contains(name), "{name}={value}: {stderr}");
    }
}

/// A bare-bones GET, so this test needs nothing but the binary.
fn get(port: u16, path: &str) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response
}
