//! Logging for every service: `tracing` to stderr, level from `RUST_LOG`.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// Rocket logs several lines per request at `info`; by default they are left
/// out, so logging never costs more than the request itself.
const DEFAULT_FILTER: &str = "info,rocket=warn";

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
