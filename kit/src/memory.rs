//! Giving memory back to the system once a burst of connections is over.
//!
//! Each connection allocates its buffers on the heap. When a flood of them
//! (thousands of half-open connections, say) ends, glibc's malloc keeps the
//! freed memory for later: it returns only the top of the heap by itself,
//! and a few allocations that live on above the freed ones pin all of it.
//! Measured with `bench/flood-memory.sh` (six floods of 2,000 half-open
//! connections, 60 s idle after each), vote went from 5.3 to 56.3 MB RSS
//! and result from 5.7 to 37.9 MB, and stayed there.
//!
//! Two things bring it back: the HTTP server calls [`give_back`] once
//! connections have closed, and every thread allocates from one heap
//! ([`one_heap`]), the only one whose free top `malloc_trim` returns too.

/// Returns the heap's free pages to the system (glibc's `malloc_trim(0)`).
/// Costs a walk over the free chunks (0.4-1.2 ms after a flood of 2,000
/// connections): call it after memory was freed in bulk, not per request.
/// Does nothing where the C library is not glibc.
pub fn give_back() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only works on malloc's own bookkeeping, under
    // malloc's own lock; any thread may call it at any time.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Makes every thread allocate from the one main heap (glibc's
/// `M_ARENA_MAX` of 1). By default each thread that allocates while
/// another holds the heap gets a heap (arena) of its own, and `malloc_trim`
/// leaves the free top of those: result, on two threads, kept 11-14 MB of
/// the floods' memory that way, 6 MB with one heap. Threads keep small
/// chunks in caches of their own, so they seldom wait for each other.
/// Call it first thing in `main`, before any other thread is started: a
/// thread keeps the heap it had.
pub fn one_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets malloc's own parameters.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
}
