use std::process::ExitCode;

use result::{Command, Config};

#[rocket::main]
async fn main() -> ExitCode {
    let config: Config = kit::settings::parse();
    if let Some(Command::Healthcheck) = config.command {
        return kit::healthcheck::probe(config.port);
    }
    let log_format = config.log.log_format;
    kit::telemetry::init_as(log_format);
    // Each client is a file descriptor, and Rocket holds idle and half-open
    // connections indefinitely: a soft limit of 1,024 lets so many lock
    // everyone out.
    kit::limits::raise_open_files_logged();
    match result::rocket(config).launch().await {
        Ok(rocket) => {
            result::close_sockets(&rocket).await;
            match rocket.state::<result::Unusable>().and_then(|u| u.line()) {
                Some(line) => {
                    kit::telemetry::fatal(log_format, "result", &line);
                    ExitCode::from(2)
                }
                None => ExitCode::SUCCESS,
            }
        }
        Err(error) => {
            kit::telemetry::fatal(log_format, "result", &error);
            ExitCode::FAILURE
        }
    }
}
