//! Limits the services and their clients keep to.
//!
//! The open-file limit. Every client connection is a file descriptor, and
//! the soft limit a process starts with is often 1,024: that many idle or
//! half-open connections would make every later one fail. Services raise
//! the soft limit to the hard limit the system allows them, as servers
//! written in Go or nginx's `worker_rlimit_nofile` do.

use std::io;
use std::time::Duration;

/// How long a client of the stack (seed, the e2e checks) keeps an idle
/// keep-alive connection: less than the server at the other end (the edge
/// closes idle ones after 5 s, vote after 10 s), so the client always closes
/// first. A client that reuses a connection just as the server closes it
/// gets no answer, and for a ballot cannot tell whether it counted.
pub const CLIENT_IDLE_TIMEOUT: Duration = Duration::from_secs(3);

/// Raises the soft open-file limit to the hard one; returns (before, after).
pub fn raise_open_files() -> io::Result<(u64, u64)> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct passed in.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let before = limit.rlim_cur;
    if limit.rlim_cur < limit.rlim_max {
        limit.rlim_cur = limit.rlim_max;
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) } != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok((before, limit.rlim_cur))
}

/// Raises the limit and logs the outcome once: a service's start-up step.
pub fn raise_open_files_logged() {
    match raise_open_files() {
        Ok((before, after)) if before != after => {
            tracing::info!(before, after, "raised the open-file limit")
        }
        Ok((_, after)) => tracing::debug!(limit = after, "open-file limit"),
        Err(error) => tracing::warn!(%error, "could not raise the open-file limit"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_soft_limit_ends_at_the_hard_limit() {
        let (_, after) = raise_open_files().unwrap();
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        assert_eq!(
            unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) },
            0
        );
        assert_eq!((after, limit.rlim_cur), (limit.rlim_max, limit.rlim_max));
    }
}
