//! `seed`: casts ballots at the vote service as fast as it takes them, each
//! from a new voter, split exactly between the options; optionally checks
//! through the result service that every one of them was counted.

pub mod config;
mod load;
mod plan;
mod progress;
mod report;
mod verify;

use std::sync::Arc;

use anyhow::{bail, Context};
use reqwest::{redirect, Client};
use tokio_util::sync::CancellationToken;

pub use config::{Config, Split};
pub use load::Sent;
pub use report::Summary;
pub use verify::{Expectation, Verification};

use plan::Plan;
use progress::{Counters, Progress};

/// Sends every planned ballot, then verifies the tally when asked.
/// `Err` means the run could not start or went wrong on our side; failed
/// requests and a tally that never matched are in the `Summary`
/// (see [`Summary::problem`]).
pub async fn run(config: Config) -> anyhow::Result<Summary> {
    run_until(config, CancellationToken::new()).await
}

/// As [`run`], but once `stop` is cancelled no new voter starts: the
/// requests in flight finish, verification is skipped, and the summary
/// covers what was sent.
pub async fn run_until(config: Config, stop: CancellationToken) -> anyhow::Result<Summary> {
    if config.changes > 0.0 && config.split.0.len() < 2 {
        bail!("--changes needs a --split of two or more options to change between");
    }
    let client = Client::builder()
        .pool_max_idle_per_host(usize::from(config.concurrency))
        .pool_idle_timeout(kit::limits::CLIENT_IDLE_TIMEOUT)
        .tcp_nodelay(true)
        .timeout(config.timeout)
        // A vote is accepted with 200; anything else should show as it is.
        .redirect(redirect::Policy::none())
        .build()
        .context("cannot set up the HTTP client")?;
    let tally_url = config.verify.as_ref().map(verify::tally_url).transpose()?;

    let ready = stop
        .run_until_cancelled(tally_before(&client, &config, tally_url.as_ref()))
        .await;
    let Some(before) = ready.transpose()? else {
        return Ok(Summary {
            sent: Sent::new(config.split.0.len()),
            target: config.url,
            verification: None,
            stopped: true,
        });
    };

    let plan = Plan::new(&config.split, config.voter_limit(), config.changes);
    let planned = config
        .voter_limit()
        .map(|voters| voters + plan.changes_among(voters));
    let counters = Arc::new(Counters::default());
    let progress = Progress::start(Arc::clone(&counters), planned);
    let sent = load::cast(client.clone(), &config, plan, counters, stop.clone()).await;
    progress.finish();
    let sent = sent?;

    let verification = match (tally_url, before) {
        (Some(url), Some(before)) if !stop.is_cancelled() => {
            let expected = verify::Expectation::new(&before, &sent);
            let converged = verify::converge(&client, &url, expected, config.timeout);
            stop.run_until_cancelled(converged).await
        }
        _ => None,
    };
    Ok(Summary {
        target: config.url,
        sent,
        verification,
        stopped: stop.is_cancelled(),
    })
}

/// Waits for the vote service to answer, and with `--verify` for the result
/// service too, whose tally before we start it returns.
async fn tally_before(
    client: &Client,
    config: &Config,
    tally_url: Option<&reqwest::Url>,
) -> anyhow::Result<Option<ballot::Tally>> {
    verify::wait_until_up(client, &config.url, config.timeout).await?;
    match tally_url {
        Some(url) => Ok(Some(
            verify::tally_when_up(client, url, config.timeout).await?,
        )),
        None => Ok(None),
    }
}

/// The innermost cause of an error: "Connection refused (os error 111)"
/// says more than "error sending request".
fn root_cause(error: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = error;
    while let Some(source) = cause.source() {
        cause = source;
    }
    cause.to_string()
}
