//! Logging for every service: `tracing` to stderr, level from `RUST_LOG`.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// Without `RUST_LOG`: what a service does, not a line per request (no
/// service logs requests; a scanner cannot flood the log).
const DEFAULT_FILTER: &str = "info";

/// How log lines look: `LOG_FORMAT` / `--log-format`.
#[derive(clap::ValueEnum, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LogFormat {
    /// One human-readable line per event.
    #[default]
    Text,
    /// One JSON object per line (timestamp, level, target, fields), for log
    /// collectors.
    Json,
}

/// Every service's logging setting, flattened into its `Config`.
#[derive(clap::Args, Clone, Debug)]
pub struct LogArgs {
    /// Log lines as text for people, or one JSON object per line.
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value_t = LogFormat::Text, global = true)]
    pub log_format: LogFormat,
}

/// Human-readable lines to stderr.
pub fn init() {
    init_as(LogFormat::Text);
}

/// A service's logging: to stderr in `format`, and first a line saying
/// which build starts (`vote starting version="0.1.0" commit="4f2a9c1"`;
/// in JSON, `version` and `commit` are fields), so every log shows what ran.
pub fn init_service(service: &str, format: LogFormat) {
    init_as(format);
    tracing::info!(
        version = crate::version::VERSION,
        commit = crate::version::COMMIT,
        "{service} starting"
    );
}

/// Logs to stderr in `format`, filtered by `RUST_LOG`.
pub fn init_as(format: LogFormat) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // A second call (several apps in one test binary) keeps the first subscriber.
    let _ = match format {
        // Colour codes only where a person reads them, not in `docker logs`.
        LogFormat::Text => subscriber
            .with_ansi(std::io::stderr().is_terminal())
            .try_init(),
        LogFormat::Json => subscriber.json().try_init(),
    };
}

/// The line a service ends with when it stops on an error: plain
/// `service: why` for people, or one more JSON object on `LOG_FORMAT=json`.
pub fn fatal(format: LogFormat, service: &str, why: &dyn std::fmt::Display) {
    match format {
        LogFormat::Text => eprintln!("{service}: {why}"),
        LogFormat::Json => tracing::error!("{service}: {why}"),
    }
}
