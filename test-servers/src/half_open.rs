//! Clients that begin a request and never finish it, against a service
//! started with the soft open-file limit many systems start services with.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::time::{Duration, Instant};

/// Starts `command` with a soft open-file limit of `soft`, under the hard
/// limit it would have had.
pub fn with_soft_open_file_limit(command: &mut Command, soft: libc::rlim_t) {
    // SAFETY: getrlimit and setrlimit are system calls that only read and
    // write the struct they are given, safe between fork and exec.
    unsafe {
        command.pre_exec(move || {
            let mut limit = libc::rlimit {
                rlim_cur: 0,
                rlim_max: 0,
            };
            if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            limit.rlim_cur = soft.min(limit.rlim_max);
            if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// `connections` connections to `port`, each having sent `head` (the start
/// of a request head) and nothing more; closed when dropped.
pub fn hold_half_open(port: u16, connections: usize, head: &[u8]) -> Vec<TcpStream> {
    (0..connections)
        .map(|_| {
            let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
            stream.write_all(head).expect("send a partial request head");
            stream
        })
        .collect()
}

/// Sends `start` of a request on one connection and nothing more: what the
/// service answers before it closes the connection, and how long that took
/// (up to 15 s; a connection still open then fails the test).
pub fn answer_to_unfinished(port: u16, start: &[u8]) -> (String, Duration) {
    let mut stream = hold_half_open(port, 1, start).into_iter().next().unwrap();
    let started = Instant::now();
    stream
        .set_read_timeout(Some(Duration::from_secs(15)))
        .unwrap();
    let mut answer = Vec::new();
    // Returns at end of file, once the service has closed the connection.
    stream
        .read_to_end(&mut answer)
        .expect("closed by the service, not left open");
    let after = started.elapsed();
    (String::from_utf8_lossy(&answer).into_owned(), after)
}

/// How many files the process `pid` has open now.
pub fn open_files(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|fds| fds.count())
        .unwrap_or(0)
}

/// The resident memory (KiB) of the service `pid` around floods of
/// half-open connections: see [`rss_around_floods`].
#[derive(Debug)]
pub struct FloodRss {
    /// Before the first flood.
    pub before: u64,
    /// The most it ever held (VmHWM), during the floods.
    pub peak: u64,
    /// After the last flood: as soon as it is at most `before + slack`,
    /// else when the wait for that ran out.
    pub after: u64,
}

impl FloodRss {
    /// The floods took at least `taken` KiB (so the measurement tells
    /// something), and RSS came back within `slack` KiB of its start.
    pub fn assert_given_back(&self, taken: u64, slack: u64) {
        assert!(
            self.peak >= self.before + taken,
            "the floods took too little to tell: {self:?}"
        );
        assert!(
            self.after <= self.before + slack,
            "RSS not back within {slack} KiB of its start after the floods: {self:?}"
        );
    }
}

/// `floods` floods, one after another, of `connections` connections to
/// `port` that each send `head` and nothing more, closed by this side once
/// the service `pid` holds them all (or after 10 s); then up to `within` for
/// the service's RSS to come back to at most `slack` KiB above its start.
pub fn rss_around_floods(
    pid: u32,
    port: u16,
    (floods, connections): (usize, usize),
    head: &[u8],
    (within, slack): (Duration, u64),
) -> FloodRss {
    let rss = || crate::memory_kib(pid, "VmRSS:");
    let before = rss();
    let until = |limit: Duration, done: &dyn Fn() -> bool| {
        let deadline = Instant::now() + limit;
        while !done() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    for _ in 0..floods {
        let held = hold_half_open(port, connections, head);
        until(Duration::from_secs(10), &|| open_files(pid) >= connections);
        drop(held);
        until(Duration::from_secs(10), &|| {
            open_files(pid) < connections / 10
        });
    }
    until(within, &|| rss() <= before + slack);
    FloodRss {
        before,
        peak: crate::memory_kib(pid, "VmHWM:"),
        after: rss(),
    }
}
