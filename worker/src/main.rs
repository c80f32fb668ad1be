use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    let config: worker::Config = ballot::config::parse();
    if let Some(worker::Command::Healthcheck) = config.command {
        return ballot::healthcheck::probe(config.port);
    }
    let log_format = config.log.log_format;
    ballot::telemetry::init_as(log_format);
    // Finish or hand back the batch in flight, then exit.
    let shutdown = ballot::shutdown::cancel_on_signal("shutting down");
    match worker::run(config, shutdown).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            ballot::telemetry::fatal(log_format, "worker", &format_args!("{e:#}"));
            // Like a bad setting at start: status 2.
            match e.downcast_ref::<worker::UnusableSetting>() {
                Some(_) => ExitCode::from(2),
                None => ExitCode::FAILURE,
            }
        }
    }
}
