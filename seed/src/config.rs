//! Settings: every flag is also an environment variable, and a bad value
//! stops `seed` before it sends anything, with one line naming the setting.

use std::time::Duration;

use ballot::options::OPTION_IDS;
use clap::Parser;
use reqwest::Url;

/// Votes used when neither `--votes` nor `--duration` is given.
pub const DEFAULT_VOTES: u64 = 3_000;

/// Sum of split weights we accept: one period of the ballot pattern is that
/// long, and nobody needs a finer split than 1:9999.
const MAX_SPLIT_TOTAL: u32 = 10_000;

#[derive(Parser, Clone, Debug)]
#[command(
    name = "seed",
    version,
    about = "Casts ballots at the vote service and checks they are counted"
)]
pub struct Config {
    /// The vote service: ballots are form POSTs to this URL.
    #[arg(env = "SEED_URL", default_value = "http://127.0.0.1:5000/", value_parser = http_url)]
    pub url: Url,

    /// Ballots to cast, each from a new voter [default: 3000]. With
    /// --duration: an upper bound, none unless given.
    #[arg(long, env = "SEED_VOTES", value_parser = clap::value_parser!(u64).range(1..))]
    pub votes: Option<u64>,

    /// Requests in flight at once.
    #[arg(long, env = "SEED_CONCURRENCY", default_value_t = 50, value_parser = clap::value_parser!(u16).range(1..))]
    pub concurrency: u16,

    /// Weights of options a, b, c... in order: 2:1 sends two thirds to a.
    #[arg(long, env = "SEED_SPLIT", default_value = "2:1", value_parser = Split::parse)]
    pub split: Split,

    /// Most requests per second (default: as fast as the target answers).
    #[arg(long, env = "SEED_RATE", value_parser = rate)]
    pub rate: Option<f64>,

    /// Cast ballots for this long instead of a fixed number (e.g. 30s, 2m, 500ms).
    #[arg(long, env = "SEED_DURATION", value_parser = duration)]
    pub duration: Option<Duration>,

    /// Share of voters who then vote again for the next option (0.1 or 10%).
    #[arg(long, env = "SEED_CHANGES", default_value = "0", value_parser = share)]
    pub changes: f64,

    /// Result service to check: poll its /api/tally until it shows every ballot sent.
    #[arg(long, env = "SEED_VERIFY", value_name = "RESULT_URL", value_parser = http_url)]
    pub verify: Option<Url>,

    /// Longest wait for the target to come up, for one response, and for the
    /// tally to converge under --verify.
    #[arg(long, env = "SEED_TIMEOUT", default_value = "30s", value_parser = duration)]
    pub timeout: Duration,

    #[command(flatten)]
    pub log: kit::telemetry::LogArgs,
}

impl Config {
    /// How many voters to start: a fixed count, or a bound when running by time.
    pub fn voter_limit(&self) -> Option<u64> {
        match (self.votes, self.duration) {
            (Some(votes), _) => Some(votes),
            (None, None) => Some(DEFAULT_VOTES),
            (None, Some(_)) => None,
        }
    }
}

/// Relative weights of options `a`, `b`, ... (`2:1`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Split(pub Vec<u32>);

impl Split {
    fn parse(value: &str) -> Result<Split, String> {
        const EXPECTED: &str = "expected weights like 2:1, one per option a..h";
        let weights = value
            .split(':')
            .map(|part| part.trim().parse::<u32>())
            .collect::<Result<Vec<u32>, _>>()
            .map_err(|_| EXPECTED.to_string())?;
        let total: u64 = weights.iter().map(|&w| u64::from(w)).sum();
        if weights.len() > OPTION_IDS.len() {
            Err(format!("{EXPECTED} (at most 8 options)"))
        } else if total == 0 {
            Err("at least one weight must be above 0".into())
        } else if total > u64::from(MAX_SPLIT_TOTAL) {
            Err(format!("weights must add up to at most {MAX_SPLIT_TOTAL}"))
        } else {
            Ok(Split(weights))
        }
    }
}

fn http_url(value: &str) -> Result<Url, String> {
    let url = Url::parse(value)
        .map_err(|e| format!("{e}: expected a URL like http://127.0.0.1:5000/"))?;
    match (url.scheme(), url.host_str()) {
        ("http", Some(_)) => Ok(url),
        _ => Err("expected an http:// URL with a host, like http://127.0.0.1:5000/".into()),
    }
}

fn rate(value: &str) -> Result<f64, String> {
    match value.parse::<f64>() {
        Ok(r) if r.is_finite() && r > 0.0 => Ok(r),
        _ => Err("expected requests per second above 0, like 500".into()),
    }
}

/// A fraction (`0.1`) or a percentage (`10%`) between 0 and 1.
fn share(value: &str) -> Result<f64, String> {
    let parsed = match value.strip_suffix('%') {
        Some(percent) => percent.trim().parse::<f64>().map(|p| p / 100.0),
        None => value.parse::<f64>(),
    };
    match parsed {
        Ok(p) if (0.0..=1.0).contains(&p) => Ok(p),
        _ => Err("expected a share between 0 and 1, like 0.1 or 10%".into()),
    }
}

/// `500ms`, `30s`, `2m`, or plain seconds (`1.5`).
fn duration(value: &str) -> Result<Duration, String> {
    let value = value.trim();
    let (number, unit_secs) = if let Some(n) = value.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = value.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = value.strip_suffix('m') {
        (n, 60.0)
    } else {
        (value, 1.0)
    };
    match number.trim().parse::<f64>() {
        Ok(n) if n.is_finite() && n > 0.0 => Ok(Duration::from_secs_f64(n * unit_secs)),
        _ => Err("expected a duration above 0, like 500ms, 30s or 2m".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Config, clap::Error> {
        Config::try_parse_from(std::iter::once("seed").chain(args.iter().copied()))
    }

    #[test]
    fn defaults_match_the_reference_seed() {
        let config = parse(&[]).unwrap();
        assert_eq!(config.voter_limit(), Some(3_000));
        assert_eq!(config.concurrency, 50);
        assert_eq!(config.split, Split(vec![2, 1]));
        assert_eq!(config.url.as_str(), "http://127.0.0.1:5000/");
        assert_eq!(config.timeout, Duration::from_secs(30));
        assert_eq!(config.changes, 0.0);
    }

    #[test]
    fn duration_runs_unbounded_unless_votes_given() {
        assert_eq!(parse(&["--duration", "2m"]).unwrap().voter_limit(), None);
        let both = parse(&["--duration", "500ms", "--votes", "9"]).unwrap();
        assert_eq!(both.voter_limit(), Some(9));
        assert_eq!(both.duration, Some(Duration::from_millis(500)));
    }

    #[test]
    fn changes_take_fractions_and_percentages() {
        assert_eq!(parse(&["--changes", "25%"]).unwrap().changes, 0.25);
        assert_eq!(parse(&["--changes", "0.5"]).unwrap().changes, 0.5);
        assert!(parse(&["--changes", "2"]).is_err());
    }

    #[test]
    fn bad_settings_name_themselves() {
        for (args, name) in [
            (&["--split", "2:x"][..], "--split"),
            (&["--split", "0:0"][..], "--split"),
            (&["--split", "1:1:1:1:1:1:1:1:1"][..], "--split"),
            (&["--votes", "0"][..], "--votes"),
            (&["--rate=-3"][..], "--rate"),
            (&["--rate", "0"][..], "--rate"),
            (&["--timeout", "soon"][..], "--timeout"),
            (&["ftp://example.org/"][..], "URL"),
            (&["not a url"][..], "URL"),
            (&["--verify", "localhost:5001"][..], "--verify"),
        ] {
            let err = parse(args).unwrap_err().to_string();
            assert!(err.contains(name), "{args:?}: {err}");
        }
    }
}
