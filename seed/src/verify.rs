//! The services around the load: waiting for them to answer before starting,
//! and `--verify`: the tally before sending, then polling until it shows
//! exactly what was sent, or, when some answers left the outcome unknown
//! (504), a tally within the range those outcomes allow that has settled.

use std::time::Duration;

use anyhow::{bail, Context};
use ballot::options::OPTION_IDS;
use ballot::Tally;
use reqwest::{Client, Response, Url};
use tokio::time::{sleep, Instant};

use crate::load::Sent;
use crate::root_cause;

/// Pause between tries while a service comes up.
const RETRY_EVERY: Duration = Duration::from_millis(100);
/// Pause between tally reads: fine enough to time consistency in
/// milliseconds, light enough not to load the result service.
const POLL_EVERY: Duration = Duration::from_millis(10);
/// With unknown outcomes, how long a tally within their range must stay
/// unchanged before it is taken as final: a tally still catching up keeps
/// changing, and the result service re-reads at least every 3 s.
pub const SETTLE: Duration = Duration::from_secs(4);

/// GETs `url` until it answers 2xx, for at most `limit`.
pub async fn wait_until_up(
    client: &Client,
    url: &Url,
    limit: Duration,
) -> anyhow::Result<Response> {
    let deadline = Instant::now() + limit;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let problem = match client
            .get(url.clone())
            .timeout(left.max(RETRY_EVERY))
            .send()
            .await
        {
            Ok(response) if response.status().is_success() => return Ok(response),
            Ok(response) => format!("it answers HTTP {}", response.status().as_u16()),
            Err(e) => root_cause(&e),
        };
        if Instant::now() + RETRY_EVERY >= deadline {
            bail!("{url} did not answer within {limit:?}: {problem}");
        }
        sleep(RETRY_EVERY).await;
    }
}

/// Where the result service shows the tally.
pub fn tally_url(result: &Url) -> anyhow::Result<Url> {
    result.join("api/tally").context("--verify URL")
}

/// The tally as the result service shows it now, waiting up to `limit` for it to answer.
pub async fn tally_when_up(client: &Client, url: &Url, limit: Duration) -> anyhow::Result<Tally> {
    let response = wait_until_up(client, url, limit).await?;
    response
        .json()
        .await
        .with_context(|| format!("{url} did not answer with a tally"))
}

/// What the tally should show once every ballot sent is counted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expectation {
    /// The tally before plus every accepted ballot and every ballot whose
    /// outcome is unknown: exactly what was sent when every answer was sure.
    pub all_landed: Tally,
    /// Per option and in total, the fewest votes the tally may show without
    /// an accepted ballot lost: unknown first ballots did not count, unknown
    /// changes did not move the vote.
    pub low: Tally,
    /// ... and the most: every unknown ballot counted for its option.
    pub high: Tally,
    /// Requests whose outcome is unknown.
    pub unknown: u64,
}

impl Expectation {
    pub fn new(before: &Tally, sent: &Sent) -> Expectation {
        let options = || {
            OPTION_IDS
                .iter()
                .copied()
                .enumerate()
                .take(sent.counted.len())
        };
        let per_option = |gain: &dyn Fn(usize) -> i64| {
            let mut tally = before.clone();
            for (i, id) in options() {
                let votes = gain(i);
                // An option the result service does not show stays absent.
                if votes != 0 {
                    tally.add(id, votes);
                }
            }
            tally
        };
        let n = |v: &[u64], i: usize| v[i] as i64;
        let counted: i64 = sent.counted.iter().sum::<u64>() as i64;
        let firsts: i64 = sent.unknown_first.iter().sum::<u64>() as i64;
        let mut low = per_option(&|i| n(&sent.counted, i) - n(&sent.unknown_from, i));
        let mut high = per_option(&|i| {
            n(&sent.counted, i) + n(&sent.unknown_first, i) + n(&sent.unknown_to, i)
        });
        // A change moves a vote and leaves the total alone.
        low.total = before.total + counted;
        high.total = before.total + counted + firsts;
        Expectation {
            all_landed: per_option(&|i| {
                n(&sent.counted, i) + n(&sent.unknown_first, i) + n(&sent.unknown_to, i)
                    - n(&sent.unknown_from, i)
            }),
            low,
            high,
            unknown: sent.unknown(),
        }
    }

    /// Whether `tally` is one the unknown outcomes allow, with no accepted
    /// ballot missing.
    pub fn admits(&self, tally: &Tally) -> bool {
        let ids = self.low.votes.keys().chain(tally.votes.keys());
        let within = |low: i64, seen: i64, high: i64| low <= seen && seen <= high;
        within(self.low.total, tally.total, self.high.total)
            && ids
                .into_iter()
                .all(|id| within(self.low.count(id), tally.count(id), self.high.count(id)))
    }
}

/// How `--verify` ended.
#[derive(Debug)]
pub struct Verification {
    /// The tally with every accepted and every unknown ballot counted.
    pub expected: Tally,
    /// The range the unknown outcomes allow, if there were any.
    pub range: Option<(Tally, Tally)>,
    /// Requests whose outcome is unknown.
    pub unknown: u64,
    /// Accepted as a tally within `range` that stopped changing, rather
    /// than one equal to `expected`.
    pub settled: bool,
    /// The last tally read, if any read succeeded.
    pub seen: Option<Tally>,
    /// The last read that failed, if the last read did.
    pub last_error: Option<String>,
    /// From the last response to the tally matching; `None` if it never did.
    pub consistent_after: Option<Duration>,
    pub timeout: Duration,
}

impl Verification {
    pub fn held(&self) -> bool {
        self.consistent_after.is_some()
    }
}

/// Polls `url` for at most `limit` until its tally equals
/// `expected.all_landed`, or, with unknown outcomes, is one they allow and
/// has not changed for `SETTLE`.
pub async fn converge(
    client: &Client,
    url: &Url,
    expected: Expectation,
    limit: Duration,
) -> Verification {
    let started = Instant::now();
    let mut verification = Verification {
        range: (expected.unknown > 0).then(|| (expected.low.clone(), expected.high.clone())),
        unknown: expected.unknown,
        settled: false,
        expected: expected.all_landed.clone(),
        seen: None,
        last_error: None,
        consistent_after: None,
        timeout: limit,
    };
    let mut judge = Judge::new(expected);
    loop {
        match read_tally(client, url).await {
            Ok(tally) => {
                let verdict = judge.observe(&tally, started.elapsed());
                verification.seen = Some(tally);
                verification.last_error = None;
                if let Some(verdict) = verdict {
                    verification.settled = verdict.settled;
                    verification.consistent_after = Some(verdict.since);
                    return verification;
                }
            }
            Err(e) => verification.last_error = Some(e),
        }
        if started.elapsed() + POLL_EVERY > limit {
            return verification;
        }
        sleep(POLL_EVERY).await;
    }
}

/// Decides, one tally read at a time, whether the tally is final.
struct Judge {
    expected: Expectation,
    last: Option<Tally>,
    /// Since when the tally read has been the same one within range.
    unchanged_since: Option<Duration>,
}

/// A tally taken as final: since when it showed, and whether it was taken
/// because it settled within range rather than equalling `all_landed`.
#[derive(Debug, PartialEq, Eq)]
struct Verdict {
    since: Duration,
    settled: bool,
}

impl Judge {
    fn new(expected: Expectation) -> Judge {
        Judge {
            expected,
            last: None,
            unchanged_since: None,
        }
    }

    /// `tally` read at `now` (from the start of verification).
    fn observe(&mut self, tally: &Tally, now: Duration) -> Option<Verdict> {
        if *tally == self.expected.all_landed {
            return Some(Verdict {
                since: now,
                settled: false,
            });
        }
        let same = self.last.as_ref() == Some(tally);
        self.unchanged_since = match self.unchanged_since {
            Some(since) if same => Some(since),
            _ => self.expected.admits(tally).then_some(now),
        };
        self.last = Some(tally.clone());
        let since = self.unchanged_since?;
        (now - since >= SETTLE).then_some(Verdict {
            since,
            settled: true,
        })
    }
}

async fn read_tally(client: &Client, url: &Url) -> Result<Tally, String> {
    let response = client
        .get(url.clone())
        .send()
        .await
        .map_err(|e| root_cause(&e))?;
    if !response.status().is_success() {
        return Err(format!(
            "{url} answered HTTP {}",
            response.status().as_u16()
        ));
    }
    response
        .json()
        .await
        .map_err(|e| format!("{url}: {}", root_cause(&e)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tally(a: i64, b: i64) -> Tally {
        Tally {
            votes: [("a".to_string(), a), ("b".to_string(), b)].into(),
            total: a + b,
        }
    }

    fn sent(counted: &[u64]) -> Sent {
        let mut sent = Sent::new(counted.len());
        sent.counted = counted.to_vec();
        sent
    }

    #[test]
    fn with_sure_answers_exactly_what_was_sent_is_expected() {
        let expected = Expectation::new(&tally(5, 1), &sent(&[2_000, 1_000]));
        assert_eq!(expected.all_landed, tally(2_005, 1_001));
        assert_eq!(
            (&expected.low, &expected.high),
            (&expected.all_landed, &expected.all_landed)
        );
        assert!(expected.admits(&tally(2_005, 1_001)));
        assert!(!expected.admits(&tally(2_004, 1_001)));
        assert!(!expected.admits(&tally(2_005, 1_002)));
    }

    #[test]
    fn options_without_gains_stay_as_the_service_shows_them() {
        let expected = Expectation::new(&tally(0, 0), &sent(&[3, 0, 0]));
        assert_eq!(expected.all_landed, tally(3, 0));
    }

    /// Before: a 10, b 5. Accepted: 4 for a, 3 for b. Unknown: two first
    /// ballots for a, one for b, and one change from a to b.
    fn with_unknowns() -> Expectation {
        let mut sent = sent(&[4, 3]);
        sent.unknown_first = vec![2, 1];
        sent.unknown_from = vec![1, 0];
        sent.unknown_to = vec![0, 1];
        sent.unknown.insert("HTTP 504".into(), 4);
        Expectation::new(&tally(10, 5), &sent)
    }

    fn tally_of(a: i64, b: i64, total: i64) -> Tally {
        Tally {
            votes: [("a".to_string(), a), ("b".to_string(), b)].into(),
            total,
        }
    }

    #[test]
    fn unknown_outcomes_allow_a_range_and_no_loss() {
        let expected = with_unknowns();
        assert_eq!(expected.unknown, 4);
        // Every unknown ballot counted, the change included.
        assert_eq!(expected.all_landed, tally(15, 10));
        // None counted, the change did not move the vote: a 14 - 1.
        assert_eq!(expected.low, tally_of(13, 8, 22));
        assert_eq!(expected.high, tally_of(16, 10, 25));
        for (a, b) in [(14, 8), (13, 9), (16, 9), (15, 10), (14, 10)] {
            assert!(expected.admits(&tally(a, b)), "a {a}, b {b}");
        }
        // An accepted ballot missing: below the lower bound.
        assert!(!expected.admits(&tally(13, 8)), "total 21 < 22");
        assert!(!expected.admits(&tally(12, 10)));
        assert!(!expected.admits(&tally(14, 7)));
        // More than was sent.
        assert!(!expected.admits(&tally(17, 9)));
        assert!(!expected.admits(&tally(16, 10)), "total 26 > 25");
    }

    #[test]
    fn a_tally_within_range_is_taken_only_once_it_settles() {
        let secs = Duration::from_secs_f64;
        let mut judge = Judge::new(with_unknowns());
        // Still catching up: below the range, then moving within it.
        assert_eq!(judge.observe(&tally(12, 8), secs(0.0)), None);
        assert_eq!(judge.observe(&tally(14, 8), secs(1.0)), None);
        assert_eq!(judge.observe(&tally(14, 9), secs(2.0)), None);
        assert_eq!(
            judge.observe(&tally(14, 9), secs(2.0) + SETTLE - secs(0.01)),
            None
        );
        assert_eq!(
            judge.observe(&tally(14, 9), secs(2.0) + SETTLE),
            Some(Verdict {
                since: secs(2.0),
                settled: true
            })
        );
    }

    #[test]
    fn a_tally_with_every_unknown_ballot_counted_is_taken_at_once() {
        let mut judge = Judge::new(with_unknowns());
        assert_eq!(judge.observe(&tally(14, 9), Duration::ZERO), None);
        assert_eq!(
            judge.observe(&tally(15, 10), Duration::from_millis(30)),
            Some(Verdict {
                since: Duration::from_millis(30),
                settled: false
            })
        );
    }

    #[test]
    fn a_tally_below_the_range_is_never_taken() {
        let mut judge = Judge::new(with_unknowns());
        for second in 0..60 {
            let at = Duration::from_secs(second);
            assert_eq!(judge.observe(&tally(13, 8), at), None);
        }
    }

    #[test]
    fn the_tally_lives_under_the_result_url() {
        let at = |base: &str| tally_url(&Url::parse(base).unwrap()).unwrap().to_string();
        assert_eq!(
            at("http://127.0.0.1:5001"),
            "http://127.0.0.1:5001/api/tally"
        );
        assert_eq!(at("http://result/app/"), "http://result/app/api/tally");
    }
}
