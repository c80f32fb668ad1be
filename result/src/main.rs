use std::process::ExitCode;

use result::{Command, Config};

#[rocket::main]
async fn main() -> ExitCode {
    let config: Config = ballot::config::parse();
    if let Some(Command::Healthcheck) = config.command {
        return ballot::healthcheck::probe(config.port);
    }
    ballot::telemetry::init();
    match result::rocket(config).launch().await {
        Ok(_) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("result: {error}");
            ExitCode::FAILURE
        }
    }
}
