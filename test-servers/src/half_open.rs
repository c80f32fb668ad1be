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
