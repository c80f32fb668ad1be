use std::process::ExitCode;

use result::{Command, Config};

#[tokio::main]
async fn main() -> ExitCode {
    let config: Config = kit::settings::parse();
    if let Some(Command::Healthcheck) = config.command {
        return kit::healthcheck::probe(config.port);
    }
    let log_format = config.log.log_format;
    kit::telemetry::init_as(log_format);
    // Each websocket client holds a file descriptor for as long as it
    // watches: allow as many as the system does.
    kit::limits::raise_open_files_logged();
    kit::exit_status("result", log_format, result::serve(config).await)
}
