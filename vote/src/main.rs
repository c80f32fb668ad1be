use std::process::ExitCode;

use vote::{Command, Config};

fn main() -> ExitCode {
    let config: Config = ballot::config::parse();
    if let Some(Command::Healthcheck) = config.command {
        return ballot::healthcheck::probe(config.port);
    }
    ballot::telemetry::init();
    match rocket::execute(vote::rocket(config).launch()) {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("vote stopped: {e}");
            ExitCode::FAILURE
        }
    }
}
