//! Giving memory back to the system once a burst of connections is over.
//!
//! Each connection allocates its buffers on the heap. When a flood of them
//! (thousands of half-open connections, say) ends, glibc's malloc keeps the
//! freed memory for later: it only returns the top of the heap, and a few
//! allocations that live on above the freed ones pin all of it. Measured
//! with `bench/flood-memory.sh`, vote went from 5 to 52 MB RSS over three
//! floods of 2,000 connections and stayed there however long it was idle.
//! `malloc_trim` returns every free page, wherever it is in the heap.

/// Returns the heap's free pages to the system (glibc's `malloc_trim(0)`).
/// Costs a walk over the free chunks: call it after memory was freed in
/// bulk, not per request. Does nothing where the C library is not glibc.
pub fn give_back() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only works on malloc's own bookkeeping, under
    // malloc's own lock; any thread may call it at any time.
    unsafe {
        libc::malloc_trim(0);
    }
}
