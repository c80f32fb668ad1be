use std::process::ExitCode;

use tokio::signal::unix::{signal, SignalKind};
use tokio_util::sync::CancellationToken;

#[tokio::main]
async fn main() -> ExitCode {
    let config: seed::Config = ballot::config::parse();
    ballot::telemetry::init();
    let stop = CancellationToken::new();
    tokio::spawn(cancel_on_signal(stop.clone()));
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

/// SIGTERM (docker stop) or Ctrl-C: stop starting voters and report.
async fn cancel_on_signal(stop: CancellationToken) {
    let Ok(mut terminate) = signal(SignalKind::terminate()) else {
        return;
    };
    tokio::select! {
        _ = terminate.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    tracing::info!("stopping: no new voters, finishing the requests in flight");
    stop.cancel();
}
