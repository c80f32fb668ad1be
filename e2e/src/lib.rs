//! The whole-stack checks `e2e/run.sh` makes from outside the containers,
//! through the published ports, as a browser would; for the checks of the
//! edge, HAProxy's stats port on the compose network; for the monitoring
//! profile, Prometheus's HTTP API.

mod browser;
pub mod edge;
pub mod monitoring;
mod public;
mod slow_clients;
mod stack;
mod websocket;

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{bail, ensure, Context};
use ballot::Tally;
use clap::{Args, Parser, Subcommand};

pub use stack::{Page, Stack};

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

#[derive(Args, Debug)]
pub struct StatsUrl {
    /// The edge's stats port, e.g. http://172.18.0.9:8404 (not published:
    /// its address on a compose network).
    #[arg(long = "stats")]
    pub url: String,
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
    /// Print the edge's servers of BACKEND with an address, as JSON.
    EdgeServers {
        #[command(flatten)]
        stats: StatsUrl,
        #[arg(long, default_value = "vote")]
        backend: String,
    },
    /// Print how many requests the edge has sent to vote replicas so far.
    Traffic {
        #[command(flatten)]
        stats: StatsUrl,
    },
    /// Wait until the edge has sent at least ABOVE requests to vote
    /// replicas (a count printed by `traffic`, plus some): a load has begun.
    WaitTraffic {
        #[command(flatten)]
        stats: StatsUrl,
        #[arg(long)]
        above: u64,
    },
    /// Wait until exactly this many vote and result replicas are in the
    /// edge's rotation.
    InRotation {
        #[command(flatten)]
        stats: StatsUrl,
        #[arg(long)]
        vote: usize,
        #[arg(long)]
        result: usize,
    },
    /// Load the vote page REQUESTS times; the "Processed by container ID"
    /// lines must name exactly the EXPECT hostnames, each at least once.
    ServedBy {
        #[arg(long, default_value = "30")]
        requests: u32,
        /// A vote replica's hostname (its short container ID); repeatable.
        #[arg(long, required = true)]
        expect: Vec<String>,
    },
    /// Load PAGE REQUESTS times, each on a new connection through the edge,
    /// and print which commits (and replicas) the footers show; with
    /// EXPECT_COMMIT, every one must show it.
    Builds {
        #[arg(long, value_enum)]
        page: Page,
        #[arg(long, default_value = "20")]
        requests: u32,
        #[arg(long)]
        expect_commit: Option<String>,
    },
    /// GET URL/version on one replica itself (its own port, not through
    /// the edge): it must name SERVICE, this workspace's version and COMMIT.
    Version {
        #[arg(long)]
        url: String,
        #[arg(long)]
        service: String,
        #[arg(long)]
        commit: String,
    },
    /// Every vote replica in rotation answered at least MIN_SHARE of the
    /// 2xx responses since SINCE (printed earlier by `edge-servers`).
    Shares {
        #[command(flatten)]
        stats: StatsUrl,
        #[arg(long, value_parser = servers)]
        since: ServerList,
        #[arg(long, default_value = "0.10")]
        min_share: f64,
    },
    /// Print the name of the edge's vote server slot that holds the replica
    /// at IP (for `drain`).
    ServerName {
        #[command(flatten)]
        stats: StatsUrl,
        /// The replica's address; repeatable (one per network).
        #[arg(long = "ip", required = true)]
        ips: Vec<String>,
    },
    /// Call at the moment the vote replica in the edge's server slot NAME is
    /// stopped: fails unless the edge takes it out of rotation, and sends it
    /// nothing more, within WITHIN.
    Drain {
        #[command(flatten)]
        stats: StatsUrl,
        #[arg(long)]
        name: String,
        #[arg(long, default_value = "5", value_parser = seconds)]
        within: Duration,
    },
    /// Hold CONNECTIONS half-open requests to the vote URL (SLOW_BODIES of
    /// them with the head whole and the body begun); VOTES legitimate votes
    /// beside them must each be answered within WITHIN_MS, and the edge must
    /// cut every half-open one within CUT_WITHIN.
    HalfOpen {
        #[arg(long, default_value = "1100")]
        connections: usize,
        #[arg(long, default_value = "0")]
        slow_bodies: usize,
        #[arg(long, default_value = "10")]
        votes: u32,
        #[arg(long, default_value = "1000")]
        within_ms: u64,
        #[arg(long, default_value = "15", value_parser = seconds)]
        cut_within: Duration,
    },
    /// A result websocket through the edge stays open and quiet for IDLE,
    /// then shows a vote; prints `replica <ip>` and waits for that replica
    /// to be stopped, then must reconnect and show another vote.
    WebsocketIdle {
        #[command(flatten)]
        stats: StatsUrl,
        #[arg(long, default_value = "60", value_parser = seconds)]
        idle: Duration,
    },
    /// Follow the result websocket through the edge for FOR seconds
    /// (reconnecting when it closes) and print `<unix ms> <total>` for each
    /// tally it receives.
    WebsocketLog {
        #[arg(long = "for", value_parser = seconds)]
        duration: Duration,
    },
    /// Headless Chromium: the results page through the edge goes live and
    /// shows a vote clicked on the vote page, and MORE cast by the form.
    BrowserLive {
        #[arg(long, default_value = "9")]
        more: u32,
    },
    /// Through the edge, every public path of vote and result answers and
    /// every internal one (/metrics, /readyz, POST /readyz/disable...) gets
    /// the edge's 404.
    PublicRoutes,
    /// One client address floods FLOOD_URL (vote through the edge) with
    /// ballots: past LIMIT it must get 429s with Retry-After, while the
    /// vote URL (the edge from another address) answers every one of
    /// BYSTANDER_VOTES ballots 200; every 200 is counted, and the flooder
    /// is served again once it stops.
    RateLimit {
        #[arg(long)]
        flood_url: String,
        /// The edge's EDGE_RATE_LIMIT (requests per address per 10 s).
        #[arg(long)]
        limit: u64,
        /// The most ballots the flood sends.
        #[arg(long, default_value = "20000", value_parser = clap::value_parser!(u64).range(1..=100_000))]
        max_requests: u64,
        #[arg(long, default_value = "32", value_parser = clap::value_parser!(u16).range(1..=256))]
        concurrency: u16,
        #[arg(long, default_value = "20")]
        bystander_votes: u32,
    },
    /// The monitoring profile, through Prometheus.
    #[command(flatten)]
    Monitoring(monitoring::Check),
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
        Check::EdgeServers { stats, backend } => {
            let servers = edge::Stats::new(&stats.url)?.servers(&backend).await?;
            println!("{}", serde_json::to_string(&servers)?);
        }
        Check::Traffic { stats } => {
            println!("{}", edge::Stats::new(&stats.url)?.sent("vote").await?);
        }
        Check::WaitTraffic { stats, above } => {
            let stats = edge::Stats::new(&stats.url)?;
            let start = std::time::Instant::now();
            loop {
                let sent = stats.sent("vote").await?;
                if sent >= above {
                    println!("the edge has sent {sent} requests to vote replicas");
                    break;
                }
                ensure!(
                    start.elapsed() < cli.timeout,
                    "after {:?} the edge has sent {sent} requests to vote replicas, not {above}",
                    cli.timeout
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        Check::InRotation {
            stats,
            vote,
            result,
        } => {
            let waited =
                edge::wait_in_rotation(&edge::Stats::new(&stats.url)?, vote, result, cli.timeout)
                    .await?;
            println!("the edge has {vote} vote and {result} result replicas in rotation after {waited:?}");
        }
        Check::ServedBy { requests, expect } => {
            let mut seen = BTreeMap::<String, u32>::new();
            for _ in 0..requests {
                *seen
                    .entry(stack.served_by(Page::Vote).await?.replica)
                    .or_default() += 1;
            }
            let counts = seen
                .iter()
                .map(|(host, n)| format!("{host} {n}"))
                .collect::<Vec<_>>()
                .join(", ");
            let mut expected = expect.clone();
            expected.sort();
            expected.dedup();
            ensure!(
                seen.keys().eq(expected.iter()),
                "{requests} vote pages were processed by {counts}; expected each of {}",
                expected.join(", ")
            );
            println!("{requests} vote pages through the edge were processed by {counts}");
        }
        Check::Builds {
            page,
            requests,
            expect_commit,
        } => {
            // commit -> replicas that showed it, with how often.
            let mut seen = BTreeMap::<String, BTreeMap<String, u32>>::new();
            for _ in 0..requests {
                let footer = stack.served_by(page).await?;
                *seen
                    .entry(footer.commit)
                    .or_default()
                    .entry(footer.replica)
                    .or_default() += 1;
            }
            let shown = seen
                .iter()
                .map(|(commit, replicas)| {
                    let by: Vec<String> =
                        replicas.iter().map(|(r, n)| format!("{r} {n}")).collect();
                    format!("commit {commit} ({})", by.join(", "))
                })
                .collect::<Vec<_>>()
                .join("; ");
            let page = format!("{page:?}").to_lowercase();
            if let Some(commit) = expect_commit {
                ensure!(
                    seen.keys().eq([&commit]),
                    "{requests} {page} pages through the edge showed {shown}; expected commit {commit} on every one"
                );
            }
            println!("{requests} {page} pages through the edge showed {shown}");
        }
        Check::Version {
            url,
            service,
            commit,
        } => {
            let url = format!("{}/version", url.trim_end_matches('/'));
            let response = reqwest::get(&url).await.context(url.clone())?;
            ensure!(
                response.status().is_success(),
                "GET {url} answered {}",
                response.status()
            );
            let text = response.text().await.context(url.clone())?;
            // The exact text: the keys in alphabetical order.
            let expected = format!(
                r#"{{"commit":"{commit}","service":"{service}","version":"{}"}}"#,
                env!("CARGO_PKG_VERSION")
            );
            ensure!(
                text == expected,
                "GET {url} answered {text}, not {expected}"
            );
            println!("{url}: {text}");
        }
        Check::Shares {
            stats,
            since,
            min_share,
        } => {
            let after = edge::Stats::new(&stats.url)?.servers("vote").await?;
            println!("{}", edge::shares(&since.0, &after, min_share)?);
        }
        Check::ServerName { stats, ips } => {
            let stats = edge::Stats::new(&stats.url)?;
            println!("{}", edge::slot_of(&stats, "vote", &ips).await?.name);
        }
        Check::Drain {
            stats,
            name,
            within,
        } => {
            let stats = edge::Stats::new(&stats.url)?;
            let drained = edge::follow_drain(&stats, "vote", &name, cli.timeout).await?;
            println!(
                "the edge took {} ({}) out of rotation {:.1} s after the stop; it sent it \
                 {} requests after the stop, the last {:.1} s after",
                drained.name,
                drained.ip,
                drained.out_of_rotation.as_secs_f64(),
                drained.sent_after_stop,
                drained.last_sent.as_secs_f64()
            );
            ensure!(
                drained.out_of_rotation <= within && drained.last_sent <= within,
                "the edge should stop sending to a stopped replica within {within:?}"
            );
        }
        Check::HalfOpen {
            connections,
            slow_bodies,
            votes,
            within_ms,
            cut_within,
        } => {
            let within = Duration::from_millis(within_ms);
            let report = slow_clients::half_open(
                &stack,
                connections,
                slow_bodies,
                votes,
                within,
                cut_within,
            )
            .await?;
            let slowest = report.votes.iter().max().copied().unwrap_or_default();
            let first = report.votes.first().copied().unwrap_or_default();
            println!(
                "{} half-open connections held ({slow_bodies} with a body begun); {} votes beside them answered 200, the first in \
                 {:.1} ms, the slowest in {:.1} ms (limit {within_ms} ms); the edge cut all {} \
                 within {:.1} s of opening",
                report.opened,
                report.votes.len(),
                first.as_secs_f64() * 1000.0,
                slowest.as_secs_f64() * 1000.0,
                report.cut,
                report.last_cut.as_secs_f64()
            );
        }
        Check::WebsocketIdle { stats, idle } => {
            let stats = edge::Stats::new(&stats.url)?;
            let survived =
                websocket::idle_then_replica_lost(&stack, &stats, idle, cli.timeout).await?;
            println!(
                "the websocket closed {:.1} s after replica {} was to stop; a new one through \
                 the edge gave a tally {:.2} s later and showed the next vote",
                survived.closed_after.as_secs_f64(),
                survived.replica,
                survived.reconnected_after.as_secs_f64()
            );
        }
        Check::WebsocketLog { duration } => {
            let seen = websocket::log_tallies(&stack, duration).await?;
            eprintln!("{seen} tallies received in {duration:?}");
        }
        Check::BrowserLive { more } => {
            let report = browser::live_page(&stack, more, cli.timeout).await?;
            println!(
                "the results page in Chromium showed {} new votes {:.2} s after the click \
                 (the vote page was processed by {})",
                report.votes,
                report.shown_after.as_secs_f64(),
                report.voted_on
            );
        }
        Check::PublicRoutes => println!("{}", public::routes(&stack).await?),
        Check::RateLimit {
            flood_url,
            limit,
            max_requests,
            concurrency,
            bystander_votes,
        } => {
            let report = public::rate_limit(
                &stack,
                &flood_url,
                limit,
                max_requests,
                usize::from(concurrency),
                bystander_votes,
                cli.timeout,
            )
            .await?;
            println!(
                "one address sent {} ballots: {} answered 200 (limit {limit} per 10 s), {} \
                 answered 429 (Retry-After: {}); meanwhile all {} from another address \
                 answered 200; every 200 counted; the flooder was served again {:.0} s after \
                 it stopped",
                report.sent,
                report.accepted,
                report.limited,
                report.retry_after,
                report.bystander_votes,
                report.lifted_after.as_secs_f64()
            );
        }
        Check::Monitoring(check) => monitoring::run(check, cli.timeout).await?,
    }
    Ok(())
}

/// The JSON `edge-servers` prints.
#[derive(Clone, Debug)]
pub struct ServerList(pub Vec<edge::Server>);

fn servers(value: &str) -> Result<ServerList, String> {
    serde_json::from_str(value)
        .map(ServerList)
        .map_err(|e| format!("not a list of edge servers: {e}"))
}

pub(crate) fn seconds(value: &str) -> Result<Duration, String> {
    match value.parse::<u64>() {
        Ok(s) if (1..=3600).contains(&s) => Ok(Duration::from_secs(s)),
        _ => Err("expected whole seconds, 1 to 3600".into()),
    }
}

fn tally(value: &str) -> Result<Tally, String> {
    serde_json::from_str(value).map_err(|e| format!("not a tally: {e}"))
}

pub(crate) fn addition(value: &str) -> anyhow::Result<(String, i64)> {
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
