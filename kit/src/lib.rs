//! What every service of the voting app does the same way, written once:
//! settings and the exit for one that can never work, logs, metrics, the
//! HTTP server with its timeouts, security headers and probes, a two-step
//! shutdown, waiting out an outage, which build and replica answered, and
//! faults on demand for demos.

pub mod db_error;
pub mod demo;
pub mod healthcheck;
pub mod http;
pub mod limits;
pub mod memory;
pub mod metrics;
pub mod outage;
pub mod redis_error;
pub mod redis_primary;
pub mod settings;
pub mod shutdown;
pub mod telemetry;
pub mod version;

use std::process::ExitCode;

use telemetry::LogFormat;

/// Why a service stopped other than on request.
#[derive(thiserror::Error, Debug)]
pub enum Stopped {
    /// A setting can never work (Redis refuses REDIS_URL's password, the
    /// port is taken): one line naming it. Exit status 2, as for a setting
    /// refused while parsing.
    #[error("{0}")]
    Unusable(String),
    #[error(transparent)]
    Failed(#[from] anyhow::Error),
}

impl From<std::io::Error> for Stopped {
    fn from(e: std::io::Error) -> Self {
        Stopped::Failed(e.into())
    }
}

/// The status a service's `main` returns, after the last line saying why
/// it stopped when it did not stop on request.
pub fn exit_status(service: &str, format: LogFormat, stopped: Result<(), Stopped>) -> ExitCode {
    match stopped {
        Ok(()) => ExitCode::SUCCESS,
        Err(Stopped::Unusable(line)) => {
            telemetry::fatal(format, service, &line);
            ExitCode::from(2)
        }
        Err(Stopped::Failed(e)) => {
            telemetry::fatal(format, service, &format_args!("{e:#}"));
            ExitCode::FAILURE
        }
    }
}
