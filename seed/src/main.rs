use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    let config: seed::Config = kit::settings::parse();
    kit::telemetry::init_as(config.log.log_format);
    let stop = kit::shutdown::cancel_on_signal(
        "stopping: no new voters, finishing the requests in flight",
    );
    match seed::run_until(config, stop).await {
        Ok(summary) => {
            println!("{summary}");
            match summary.problem() {
                None => ExitCode::SUCCESS,
                Some(reason) => {
                    eprintln!("seed: {reason}");
                    ExitCode::FAILURE
                }
            }
        }
        Err(e) => {
            eprintln!("seed: {e:#}");
            ExitCode::FAILURE
        }
    }
}
