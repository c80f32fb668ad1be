use std::process::ExitCode;

use result::{Command, Config};

#[rocket::main]
async fn main() -> ExitCode {
    let config: Config = ballot::config::parse();
    if let Some(Command::Healthcheck) = config.command {
        return ballot::healthcheck::probe(config.port);
    }
    let log_format = config.log.log_format;
    ballot::telemetry::init_as(log_format);
    // Each client is a file descriptor, and Rocket holds idle and half-open
    // connections indefinitely: a soft limit of 1,024 lets so many lock
    // everyone out.
    ballot::limits::raise_open_files_logged();
    match result::rocket(config).launch().await {
        Ok(rocket) => {
            result::close_sockets(&rocket).await;
            match rocket.state::<result::Unusable>().and_then(|u| u.line()) {
                Some(line) => {
                    ballot::telemetry::fatal(log_format, "result", &line);
                    ExitCode::from(2)
                }
                None => ExitCode::SUCCESS,
            }
        }
        Err(error) => {
            ballot::telemetry::fatal(log_format, "result", &error);
            ExitCode::FAILURE
        }
    }
}
