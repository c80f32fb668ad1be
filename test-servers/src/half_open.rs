//! Clients that begin a request and never finish it, against a service
//! started with the soft open-file limit many systems start services with.

use std::io::Write;
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::process::Command;

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

/// How many files the process `pid` has open now.
pub fn open_files(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|fds| fds.count())
        .unwrap_or(0)
}
