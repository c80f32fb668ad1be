//! The vote binary gives back the memory a flood of connections took, once
//! the flood is over: without that (glibc's malloc keeps what was freed),
//! 2,000 half-open connections left vote at about 30 MB RSS instead of 5
//! for the rest of its life, and every further flood added more.

mod support;

use std::time::{Duration, Instant};

use support::{vote_command, Running};
use test_servers::half_open::{hold_half_open, open_files};
use test_servers::{free_port, memory_kib, Redis};

const FLOOD: usize = 2_000;
/// What the flood must have taken for the test to mean anything (it takes
/// about 15 KiB a connection).
const TAKEN_KIB: u64 = 16 * 1024;
/// How far above its RSS before the flood vote may stay after it: a few
/// MiB more than the flood left behind with the memory given back (0.2 MiB
/// in runs with it; 10.6 to 26.6 MiB in runs without).
const LEFT_KIB: u64 = 4 * 1024;

#[test]
fn memory_a_flood_of_connections_took_comes_back_once_they_close() {
    // This test holds the flood's sockets itself.
    kit::limits::raise_open_files().expect("raise this test's own open-file limit");
    let port = free_port();
    let vote = Running::start(
        vote_command(&[], port, &Redis::shared().fresh_db_url()),
        port,
    );
    let rss = || memory_kib(vote.id(), "VmRSS:");
    let before = rss();

    let held = hold_half_open(port, FLOOD, b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n");
    // Its peak: connections opened late may find the first ones already
    // cut (after 10 s) and their memory given back.
    let peak = || memory_kib(vote.id(), "VmHWM:");
    let during = wait_until(Duration::from_secs(20), || {
        (peak() >= before + TAKEN_KIB).then(peak)
    })
    .unwrap_or_else(|| {
        panic!(
            "the flood took too little memory to tell anything: {before} KiB RSS before, \
             a peak of {} KiB",
            peak()
        )
    });

    drop(held);
    // Closed on vote's side too, then given back within a few seconds.
    let after = wait_until(Duration::from_secs(30), || {
        let after = rss();
        (open_files(vote.id()) < 100 && after <= before + LEFT_KIB).then_some(after)
    });
    assert!(
        after.is_some(),
        "RSS {} KiB before the flood, a peak of {during} KiB during it, still {} KiB 30 s after it \
         ended ({} files open)",
        before,
        rss(),
        open_files(vote.id())
    );
    println!("RSS before {before} KiB, during {during} KiB, after {after:?} KiB");
}

/// Checks every 100 ms, for at most `limit`, until `check` gives a value.
fn wait_until<T>(limit: Duration, mut check: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(value) = check() {
            return Some(value);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
