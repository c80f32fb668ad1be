use std::process::ExitCode;

use vote::{Command, Config};

/// Rocket logs several lines per request at `info`; keep them out of the
/// default so logging does not cost more than voting.
const DEFAULT_LOG: &str = "info,rocket=warn";

fn main() -> ExitCode {
    let config: Config = ballot::config::parse();
    if let Some(Command::Healthcheck) = config.command {
        return ballot::healthcheck::probe(config.port);
    }
    if let Err(line) = vote::check(&config) {
        eprintln!("{line}");
        return ExitCode::from(2);
    }
    if std::env::var_os("RUST_LOG").is_none() {
        std::env::set_var("RUST_LOG", DEFAULT_LOG);
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
