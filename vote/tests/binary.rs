//! The `vote` binary itself: settings from the environment, one-line errors
//! for bad settings (also those only Redis can refuse), the healthcheck
//! subcommand, and a clean exit on SIGTERM.

mod support;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use support::{vote_command, Running};
use test_servers::{free_port, terminate, Redis};

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

    let status = terminate(&mut vote, Duration::from_secs(10));
    assert_eq!(status.code(), Some(0), "exit after SIGTERM");
}

/// On SIGTERM vote first says it is not ready and goes on serving for
/// SHUTDOWN_DRAIN, on connections it had and on new ones, so that the edge
/// takes it out of rotation before it closes any; then it exits 0.
#[test]
fn on_sigterm_it_is_not_ready_but_serves_for_the_drain_then_exits() {
    use std::io::{BufRead, BufReader, Read, Write};
    let url = Redis::shared().fresh_db_url();
    let port = free_port();
    let mut command = vote_command(&[], port, &url);
    command.env("SHUTDOWN_DRAIN", "2");
    let mut vote = Running::start(command, port);
    assert!(get(port, "/readyz").starts_with("HTTP/1.1 200"));
    // A keep-alive connection made before the signal, as the edge keeps.
    let mut kept = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    let mut reader = BufReader::new(kept.try_clone().unwrap());
    let mut ask_on_kept = |path: &str| {
        write!(kept, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        let mut status = String::new();
        reader.read_line(&mut status).unwrap();
        let mut length = 0;
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            if let Some(n) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                length = n.trim().parse().unwrap();
            }
            if line == "\r\n" {
                break;
            }
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body).unwrap();
        status
    };
    assert!(ask_on_kept("/healthz").starts_with("HTTP/1.1 200"));

    let signalled = Instant::now();
    // SAFETY: plain kill(2) on the child we started and still own.
    assert_eq!(unsafe { libc::kill(vote.id() as i32, libc::SIGTERM) }, 0);
    let deadline = Instant::now() + Duration::from_secs(1);
    while get(port, "/readyz").starts_with("HTTP/1.1 200") {
        assert!(Instant::now() < deadline, "still ready 1 s after SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    }
    let readyz = get(port, "/readyz");
    assert!(readyz.starts_with("HTTP/1.1 503"), "{readyz}");
    // Why, only in the log (below): the body is for anyone who asks.
    assert!(readyz.ends_with("\r\n\r\nnot ready\n"), "{readyz}");
    // Still serving, on the kept connection and on new ones, votes too.
    assert!(ask_on_kept("/healthz").starts_with("HTTP/1.1 200"));
    let voted = post_vote(port, "a");
    assert!(voted.starts_with("HTTP/1.1 200"), "{voted}");
    assert_eq!(support::queued_blocking(&url).len(), 1);
    assert!(
        signalled.elapsed() < Duration::from_secs(2),
        "the checks above took the whole drain"
    );

    let status = vote.exit_within(Duration::from_secs(10));
    assert_eq!(status.and_then(|s| s.code()), Some(0));
    let took = signalled.elapsed();
    assert!(
        took >= Duration::from_secs(2),
        "stopped {took:?} after SIGTERM, before the drain was over"
    );
    // /readyz was asked many times while draining: logged once.
    let log = vote.stderr();
    let not_ready: Vec<&str> = log.lines().filter(|l| l.contains("not ready:")).collect();
    assert_eq!(not_ready.len(), 1, "{log}");
    assert!(not_ready[0].contains("not ready: shutting down"), "{log}");
}

#[test]
fn a_bad_setting_stops_start_up_with_one_line_naming_it() {
    let cases = [
        ("PORT", "eighty"),
        ("REDIS_URL", "localhost:6379"),
        ("REDIS_URL", "redis://host:notaport"),
        ("OPTION_A", " "),
        ("RESULT_PAGE_URL", "localhost:5001"),
        // Read by no service since they left Rocket: refused, not ignored.
        ("ROCKET_PORT", "8000"),
        ("ROCKET_KEEP_ALIVE", "5"),
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

/// Starts vote against `redis_url` (and the password in `password_file`)
/// and expects it to stop by itself with status 2 and one line on stderr
/// naming REDIS_URL (and no password). RUST_LOG=error leaves out the
/// start-up lines, logged at INFO.
fn assert_refused_at_start(redis_url: &str, password_file: Option<&str>, cause: &str) {
    let port = free_port();
    let mut command = vote_command(&[], port, redis_url);
    command.env("RUST_LOG", "error");
    if let Some(file) = password_file {
        command.env("REDIS_PASSWORD_FILE", file);
    }
    let mut vote = Running::spawn(command, port);
    let status = vote.exit_within(Duration::from_secs(30));
    let stderr = vote.stderr();
    let Some(status) = status else {
        panic!("{redis_url}: still running after 30 s: {stderr}");
    };
    assert_eq!(status.code(), Some(2), "{redis_url}: {stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{redis_url}: {stderr}");
    assert!(
        lines[0].starts_with("vote: REDIS_URL cannot work: "),
        "{stderr}"
    );
    assert!(lines[0].contains(cause), "{redis_url}: {stderr}");
    assert!(
        !lines[0].contains("s3cret") && !lines[0].contains("wrong"),
        "{stderr}"
    );
}

#[test]
fn a_database_index_redis_refuses_stops_vote_with_one_line() {
    let url = format!("redis://127.0.0.1:{}/20000", Redis::shared().port());
    assert_refused_at_start(&url, None, "DB index is out of range");
}

#[test]
fn credentials_redis_refuses_stop_vote_with_one_line() {
    let redis = Redis::start();
    let client = redis::Client::open(redis.url()).unwrap();
    let mut admin = client.get_connection().unwrap();
    let () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("requirepass")
        .arg("s3cret")
        .query(&mut admin)
        .unwrap();
    let port = redis.port();
    for (url, cause) in [
        (format!("redis://127.0.0.1:{port}"), "NOAUTH"),
        (
            format!("redis://:wrong@127.0.0.1:{port}"),
            "authentication failed",
        ),
        (
            format!("redis://nobody:wrong@127.0.0.1:{port}/3"),
            "authentication failed",
        ),
    ] {
        assert_refused_at_start(&url, None, cause);
    }
    // The right password works, and the check lets vote keep serving.
    let port = free_port();
    let url = format!("redis://:s3cret@127.0.0.1:{}/3", redis.port());
    let mut vote = Running::start(vote_command(&[], port, &url), port);
    assert_eq!(vote.exit_within(Duration::from_secs(2)), None);
    assert!(get(port, "/readyz").starts_with("HTTP/1.1 200"));
}

/// Redis as the stacks run it (redis/users.acl): vote's user with the
/// password from REDIS_PASSWORD_FILE. A wrong password in the file, or
/// another user's, stops vote with one line that names the file's setting.
#[test]
fn a_password_file_redis_refuses_stops_vote_with_one_line_naming_it() {
    let redis = Redis::start_with_users();
    let url = format!("redis://vote@127.0.0.1:{}", redis.port());
    let wrong = redis.password_file("vote").with_file_name("wrong");
    std::fs::write(&wrong, "wrong\n").unwrap();
    let wrong = wrong.to_str().unwrap();
    assert_refused_at_start(&url, Some(wrong), "REDIS_PASSWORD_FILE");
    let nobody = format!("redis://nobody@127.0.0.1:{}", redis.port());
    let right = redis.password_file("vote");
    let right = right.to_str().unwrap();
    assert_refused_at_start(&nobody, Some(right), "REDIS_PASSWORD_FILE");
    // The right one: vote serves, ready.
    let port = free_port();
    let mut command = vote_command(&[], port, &url);
    command.env("REDIS_PASSWORD_FILE", right);
    let mut vote = Running::start(command, port);
    assert_eq!(vote.exit_within(Duration::from_secs(2)), None);
    assert!(get(port, "/readyz").starts_with("HTTP/1.1 200"));
}

#[test]
fn vote_waits_out_a_redis_that_is_not_there_yet() {
    let redis = Redis::start();
    redis.stop();
    let port = free_port();
    let mut vote = Running::start(vote_command(&[], port, &redis.url()), port);
    // Refused connections are an outage, not a bad setting: it keeps serving.
    assert_eq!(vote.exit_within(Duration::from_secs(3)), None);
    assert!(get(port, "/").starts_with("HTTP/1.1 200"));
    // However often asked, /readyz says only "not ready"; the Redis error
    // is logged, once.
    for _ in 0..5 {
        let readyz = get(port, "/readyz");
        assert!(readyz.starts_with("HTTP/1.1 503"), "{readyz}");
        assert!(readyz.ends_with("\r\n\r\nnot ready\n"), "{readyz}");
    }
    redis.resume();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !get(port, "/readyz").starts_with("HTTP/1.1 200") {
        assert!(
            Instant::now() < deadline,
            "vote did not reach Redis once it started"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(vote.exit_within(Duration::from_millis(100)), None);
    let log = vote.stderr();
    let not_ready: Vec<&str> = log.lines().filter(|l| l.contains("not ready:")).collect();
    assert_eq!(not_ready.len(), 1, "{log}");
    assert!(not_ready[0].contains("refused"), "{log}");
}

#[test]
fn a_scanner_gets_404s_and_leaves_no_error_or_warning_in_the_log() {
    let port = free_port();
    let mut command = vote_command(&[], port, &Redis::shared().fresh_db_url());
    command.env_remove("RUST_LOG"); // the default filter
    let mut vote = Running::start(command, port);
    for (method, path, status) in [
        ("GET", "/wp-admin/setup.php", "404"),
        ("GET", "/.env", "404"),
        ("POST", "/cgi-bin/login", "404"),
        ("PUT", "/vote", "404"),
        ("DELETE", "/", "404"),
        ("HEAD", "/.git/config", "404"),
        // HEAD is answered by the GET route, as it was on Rocket.
        ("HEAD", "/", "200"),
    ] {
        let response = request(port, method, path);
        assert!(
            response.starts_with(&format!("HTTP/1.1 {status}")),
            "{method} {path}: {response}"
        );
    }
    let stderr = vote.stderr();
    let noisy: Vec<&str> = stderr
        .lines()
        .filter(|line| line.contains(" ERROR ") || line.contains(" WARN "))
        .collect();
    assert!(noisy.is_empty(), "{stderr}");
}

/// A bare-bones request without a body; the whole response.
fn request(port: u16, method: &str, path: &str) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response
}

/// One thread by default; `ROCKET_WORKERS=2` (the old name of
/// `WORKER_THREADS`) runs tokio's multi-thread runtime instead. Either way
/// votes are queued and SIGTERM ends it with 0.
#[test]
fn votes_are_taken_on_one_thread_and_with_rocket_workers_on_several() {
    for workers in [None, Some("2")] {
        let url = Redis::shared().fresh_db_url();
        let port = free_port();
        let mut command = vote_command(&[], port, &url);
        if let Some(workers) = workers {
            command.env("ROCKET_WORKERS", workers);
        }
        let mut vote = Running::start(command, port);
        let threads = std::fs::read_dir(format!("/proc/{}/task", vote.id()))
            .unwrap()
            .count();
        for _ in 0..20 {
            let response = post_vote(port, "b");
            assert!(
                response.starts_with("HTTP/1.1 200"),
                "{workers:?}: {response}"
            );
        }
        assert_eq!(
            support::queued_blocking(&url).len(),
            20,
            "{workers:?}, {threads} threads"
        );
        // SAFETY: plain kill(2) on the child we started and still own.
        assert_eq!(unsafe { libc::kill(vote.id() as i32, libc::SIGTERM) }, 0);
        let status = vote.exit_within(Duration::from_secs(10));
        assert_eq!(status.and_then(|s| s.code()), Some(0), "{workers:?}");
    }
}

/// `POST /` with `vote=<option>`; the whole response.
fn post_vote(port: u16, option: &str) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    let body = format!("vote={option}");
    let request = format!(
        "POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response
}
