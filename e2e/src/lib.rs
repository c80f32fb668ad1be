//! The whole-stack checks `e2e/run.sh` makes from outside the containers,
//! through the published ports, as a browser would.

mod stack;

use std::time::Duration;

use anyhow::{bail, Context};
use ballot::Tally;
use clap::{Parser, Subcommand};

pub use stack::Stack;

#[derive(Parser, Debug)]
#[command(about = "Whole-stack checks against a running voting app")]
pub struct Cli {
    /// The vote service, as published on the host.
    #[arg(long, env = "VOTE_URL", default_value = "http://127.0.0.1:5000")]
    pub vote_url: String,
    /// The result service, as published on the host.
    #[arg(long, env = "RESULT_URL", default_value = "http://127.0.0.1:5001")]
    pub result_url: String,
    /// How long a check waits for the stack to catch up.
    #[arg(long, default_value = "60", value_parser = seconds)]
    pub timeout: Duration,
    #[command(subcommand)]
    pub check: Check,
}

#[derive(Subcommand, Debug)]
pub enum Check {
    /// Vote once through the vote page; the result websocket must show it.
    VoteReachesWebsocket,
    /// Cast COUNT ballots for OPTION, each from a new voter.
    Cast {
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..=100_000))]
        count: u32,
        #[arg(long, default_value = "a")]
        option: String,
    },
    /// Print the current tally as JSON.
    Tally,
    /// Wait until the tally is exactly BEFORE plus the given votes.
    WaitTally {
        /// A tally printed earlier by `e2e tally`.
        #[arg(long, value_parser = tally)]
        since: Tally,
        /// Votes expected on top of it, as option=count (repeatable).
        #[arg(long = "plus", value_parser = addition)]
        plus: Vec<(String, i64)>,
    },
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let stack = Stack::new(&cli.vote_url, &cli.result_url)?;
    match cli.check {
        Check::VoteReachesWebsocket => {
            let latency = stack.vote_reaches_websocket("a", cli.timeout).await?;
            println!("a vote through the vote page reached the websocket in {latency:?}");
        }
        Check::Cast { count, option } => {
            stack.cast(count, &option).await?;
            println!("cast {count} ballots for {option}");
        }
        Check::Tally => println!("{}", serde_json::to_string(&stack.tally().await?)?),
        Check::WaitTally { since, plus } => {
            let mut expected = since;
            for (option, count) in plus {
                expected.add(&option, count);
            }
            let waited = stack.wait_for_tally(&expected, cli.timeout).await?;
            println!(
                "tally is exactly {} after {waited:?}",
                serde_json::to_string(&expected)?
            );
        }
    }
    Ok(())
}

fn seconds(value: &str) -> Result<Duration, String> {
    match value.parse::<u64>() {
        Ok(s) if (1..=3600).contains(&s) => Ok(Duration::from_secs(s)),
        _ => Err("expected whole seconds, 1 to 3600".into()),
    }
}

fn tally(value: &str) -> Result<Tally, String> {
    serde_json::from_str(value).map_err(|e| format!("not a tally: {e}"))
}

fn addition(value: &str) -> anyhow::Result<(String, i64)> {
    let (option, count) = value.split_once('=').context("expected option=count")?;
    let count: i64 = count.parse().context("count is not a number")?;
    if option.is_empty() || count < 0 {
        bail!("expected option=count with a count of 0 or more");
    }
    Ok((option.to_string(), count))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn additions_name_an_option_and_a_count() {
        assert_eq!(addition("a=2000").unwrap(), ("a".to_string(), 2000));
        assert!(addition("a").is_err());
        assert!(addition("=5").is_err());
        assert!(addition("a=-1").is_err());
        assert!(addition("a=many").is_err());
    }

    #[test]
    fn a_tally_reads_back_from_its_json() {
        let parsed = tally(r#"{"votes":{"a":2,"b":1},"total":3}"#).unwrap();
        assert_eq!(parsed.count("a"), 2);
        assert_eq!(parsed.total, 3);
        assert!(tally("{}").is_err());
    }

    #[test]
    fn timeouts_are_bounded_whole_seconds() {
        assert_eq!(seconds("60").unwrap(), Duration::from_secs(60));
        assert!(seconds("0").is_err());
        assert!(seconds("1.5").is_err());
        assert!(seconds("3601").is_err());
    }
}
