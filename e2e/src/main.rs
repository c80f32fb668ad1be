use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    let cli: e2e::Cli = kit::settings::parse();
    match e2e::run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("e2e: {e:#}");
            ExitCode::FAILURE
        }
    }
}
