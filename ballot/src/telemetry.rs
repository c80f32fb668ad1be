//! Logging for every service: `tracing` to stderr, level from `RUST_LOG`.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// Rocket logs several lines per request at `info`; by default they are left
/// out, so logging never costs more than the request itself. Rocket 0.5 also
/// logs every request no route matches ("No matching routes for GET /x", at
/// ERROR, and its catcher at WARN; a HEAD request even when the GET route
/// then answers it) under `rocket::server::_`, so a scanner would flood the
/// log; that target's other lines (a handler panicked, a client left while
/// being answered) are covered by the panic message and by nothing we need.
const DEFAULT_FILTER: &str = "info,rocket=warn,rocket::server::_=off";

pub fn init() {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    // A second call (several apps in one test binary) keeps the first subscriber.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colour codes only where a person reads them, not in `docker logs`.
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
}
