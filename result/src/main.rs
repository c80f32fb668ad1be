use std::process::ExitCode;

use result::{Command, Config};

fn main() -> ExitCode {
    // Before the runtime starts its threads (see kit::memory).
    kit::memory::one_heap();
    let config: Config = kit::settings::parse();
    if let Some(Command::Healthcheck) = config.command {
        return kit::healthcheck::probe(config.port);
    }
    let log_format = config.log.log_format;
    kit::telemetry::init_service("result", log_format);
    // Each websocket client holds a file descriptor for as long as it
    // watches: allow as many as the system does.
    kit::limits::raise_open_files_logged();
    let stopped = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime.block_on(result::serve(config)),
        Err(e) => Err(e.into()),
    };
    kit::exit_status("result", log_format, stopped)
}
