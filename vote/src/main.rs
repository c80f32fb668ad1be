use std::process::ExitCode;

use vote::{Command, Config};

fn main() -> ExitCode {
    // Before any thread starts (see kit::memory).
    kit::memory::one_heap();
    let config: Config = kit::settings::parse();
    if let Some(Command::Healthcheck) = config.command {
        return kit::healthcheck::probe(config.port);
    }
    let log_format = config.log.log_format;
    kit::telemetry::init_service("vote", log_format);
    // Every connection, idle or slow, holds a file descriptor until it is
    // closed: allow as many as the system does.
    kit::limits::raise_open_files_logged();
    kit::exit_status("vote", log_format, vote::run(config))
}
