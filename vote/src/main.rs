use std::process::ExitCode;

use vote::{Command, Config, Stopped};

fn main() -> ExitCode {
    let config: Config = ballot::config::parse();
    if let Some(Command::Healthcheck) = config.command {
        return ballot::healthcheck::probe(config.port);
    }
    let log_format = config.log.log_format;
    ballot::telemetry::init_as(log_format);
    // Every connection, idle or slow, holds a file descriptor until it is
    // closed: allow as many as the system does.
    ballot::limits::raise_open_files_logged();
    match vote::run(config) {
        Ok(()) => ExitCode::SUCCESS,
        // Like a bad setting found while parsing: one line, status 2.
        Err(Stopped::Unusable(line)) => {
            ballot::telemetry::fatal(log_format, "vote", &line);
            ExitCode::from(2)
        }
        Err(e @ Stopped::Failed(_)) => {
            ballot::telemetry::fatal(log_format, "vote", &e);
            ExitCode::FAILURE
        }
    }
}
