use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    let config: worker::Config = kit::settings::parse();
    if let Some(worker::Command::Kit(kit::healthcheck::Command::Healthcheck)) = config.command {
        return kit::healthcheck::probe(config.port);
    }
    let log_format = config.log.log_format;
    kit::telemetry::init_service("worker", log_format);
    if let Some(worker::Command::Migrate) = config.command {
        let shutdown = kit::shutdown::cancel_on_signal("stopping the migration");
        return kit::exit_status(
            "worker",
            log_format,
            worker::migrate(config, shutdown).await,
        );
    }
    // Finish or hand back the batch in flight, then exit.
    let shutdown = kit::shutdown::cancel_on_signal("shutting down");
    kit::exit_status("worker", log_format, worker::run(config, shutdown).await)
}
