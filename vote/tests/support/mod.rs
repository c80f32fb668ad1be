//! Starts the vote service in-process on a free port, against a real Redis,
//! and reads back what it queued.

#![allow(dead_code)] // each test binary uses its own subset

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use clap::Parser;
use reqwest::header::{HeaderMap, CONTENT_TYPE, COOKIE, SET_COOKIE};

pub struct Vote {
    pub base: String,
    pub http: reqwest::Client,
    /// The service, when this test started it: it serves while this lives.
    served: Option<test_servers::Served>,
}

impl Vote {
    /// A client for a vote service already listening on `port`.
    pub fn at(port: u16) -> Vote {
        Vote {
            base: format!("http://127.0.0.1:{port}"),
            http: reqwest::Client::new(),
            served: None,
        }
    }

    /// `vote` in this process on a port bound for it, with `extra` flags
    /// such as `--option-c`; it takes connections at once.
    pub async fn start(redis_url: &str, extra: &[&str]) -> Vote {
        let mut args = vec!["vote", "--redis-url", redis_url];
        args.extend_from_slice(extra);
        let config = vote::Config::parse_from(args);
        let served = test_servers::Served::start(|listener| vote::serve_on(listener, config)).await;
        let port = served.port();
        Vote {
            served: Some(served),
            ..Vote::at(port)
        }
    }

    pub async fn get(&self, path: &str, cookie: Option<&str>) -> reqwest::Response {
        let mut request = self.http.get(format!("{}{path}", self.base));
        if let Some(cookie) = cookie {
            request = request.header(COOKIE, cookie);
        }
        request.send().await.expect("GET")
    }

    /// `POST /` with a raw body and content type, as any client could send.
    pub async fn post(&self, content_type: &str, body: &[u8], cookie: Option<&str>) -> Page {
        let mut request = self
            .http
            .post(format!("{}/", self.base))
            .header(CONTENT_TYPE, content_type)
            .body(body.to_vec());
        if let Some(cookie) = cookie {
            request = request.header(COOKIE, cookie);
        }
        Page::read(request.send().await.expect("POST")).await
    }

    /// A vote as the page's form sends it.
    pub async fn vote(&self, option: &str, cookie: Option<&str>) -> Page {
        let body = format!("vote={option}");
        self.post(FORM, body.as_bytes(), cookie).await
    }
}

pub const FORM: &str = "application/x-www-form-urlencoded";

pub struct Page {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: String,
}

impl Page {
    pub async fn read(response: reqwest::Response) -> Page {
        Page {
            status: response.status().as_u16(),
            headers: response.headers().clone(),
            body: response.text().await.expect("body"),
        }
    }

    /// The full `Set-Cookie` line for `name`, if the response sets it.
    pub fn set_cookie(&self, name: &str) -> Option<String> {
        self.headers
            .get_all(SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find(|v| v.starts_with(&format!("{name}=")))
            .map(str::to_string)
    }

    /// Fails unless the page marks `label` as the voter's choice.
    pub fn assert_marks(&self, label: &str) {
        let marked = format!("You voted for <strong>{label}</strong>");
        assert!(
            self.body.contains(&marked),
            "{marked:?} missing: {}",
            self.body
        );
    }

    /// Just the value of the cookie `name` set by the response.
    pub fn cookie_value(&self, name: &str) -> Option<String> {
        let line = self.set_cookie(name)?;
        let pair = line.split(';').next()?;
        Some(pair[name.len() + 1..].to_string())
    }
}

/// Every entry on the `votes` list, oldest first.
pub async fn queued(redis_url: &str) -> Vec<String> {
    let mut redis = test_servers::redis_connection(redis_url).await;
    redis::cmd("LRANGE")
        .arg(ballot::queue::VOTES)
        .arg(0)
        .arg(-1)
        .query_async(&mut redis)
        .await
        .unwrap()
}

/// Every ballot on the `votes` list, oldest first, parsed with the default
/// options (a test fails on one that does not parse).
pub async fn queued_ballots(redis_url: &str) -> Vec<ballot::Ballot> {
    let options = ballot::VoteOptions::defaults();
    queued(redis_url)
        .await
        .iter()
        .map(|raw| ballot::Ballot::parse(raw.as_bytes(), &options).expect("a queued ballot"))
        .collect()
}

/// Every entry on the `votes` list, oldest first, without an async runtime.
pub fn queued_blocking(redis_url: &str) -> Vec<String> {
    let client = redis::Client::open(redis_url).unwrap();
    let mut redis = client.get_connection().unwrap();
    redis::cmd("LRANGE")
        .arg(ballot::queue::VOTES)
        .arg(0)
        .arg(-1)
        .query(&mut redis)
        .unwrap()
}

/// The real `vote` binary, run by `prefix` (e.g. `faketime -f +30s`) if
/// given, with only the environment set here: `PORT`, `REDIS_URL` and
/// `RUST_LOG=warn`. Its stderr is kept for `Running::stderr`.
pub fn vote_command(prefix: &[&str], port: u16, redis_url: &str) -> Command {
    let vote = env!("CARGO_BIN_EXE_vote");
    let mut command = match prefix {
        [] => Command::new(vote),
        [program, args @ ..] => {
            let mut command = Command::new(program);
            command.args(args).arg(vote);
            command
        }
    };
    command
        .env_clear()
        .env("PORT", port.to_string())
        .env("REDIS_URL", redis_url)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    command
}

/// A `vote` process, killed when dropped. It runs in a process group of its
/// own, killed as a whole: `faketime` runs the program it wraps as a child
/// process, which would outlive a kill of `faketime` alone.
pub struct Running {
    child: Child,
    pub port: u16,
}

impl Running {
    /// Starts `command` (made by `vote_command` for `port`) and waits until
    /// it accepts connections.
    pub fn start(command: Command, port: u16) -> Running {
        let mut running = Running::spawn(command, port);
        let deadline = Instant::now() + Duration::from_secs(15);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Some(status) = running.child.try_wait().unwrap() {
                panic!("vote exited with {status}: {}", running.stderr());
            }
            assert!(Instant::now() < deadline, "vote did not start on {port}");
            std::thread::sleep(Duration::from_millis(20));
        }
        running
    }

    /// Starts `command` without waiting for it to serve.
    pub fn spawn(mut command: Command, port: u16) -> Running {
        let child = command.process_group(0).spawn().expect("start vote");
        Running { child, port }
    }

    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Waits up to `limit` for the process to exit on its own.
    pub fn exit_within(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Everything it wrote to stderr: kills it first if it still runs.
    pub fn stderr(&mut self) -> String {
        self.kill();
        let mut text = String::new();
        if let Some(mut stderr) = self.child.stderr.take() {
            stderr.read_to_string(&mut text).unwrap();
        }
        text
    }

    /// SIGKILL to its whole process group, then reaps it.
    fn kill(&mut self) {
        // SAFETY: kill(2) on the process group we created and still own.
        unsafe { libc::kill(-(self.child.id() as libc::pid_t), libc::SIGKILL) };
        let _ = self.child.wait();
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.kill();
    }
}
