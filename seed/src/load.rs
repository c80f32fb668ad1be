//! The HTTP engine: `concurrency` tasks share one keep-alive connection pool
//! and take voters from a shared counter until the count or the time is up.
//! Each task keeps its own tallies and histogram, merged at the end, so the
//! only shared writes on the hot path are two atomic counters.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ballot::options::OPTION_IDS;
use hdrhistogram::Histogram;
use reqwest::header::{HeaderMap, CONTENT_TYPE, COOKIE, SET_COOKIE};
use reqwest::{Client, StatusCode, Url};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::plan::Plan;
use crate::progress::Counters;

const FORM_BODIES: [&str; 8] = [
    "vote=a", "vote=b", "vote=c", "vote=d", "vote=e", "vote=f", "vote=g", "vote=h",
];

/// Latencies are recorded in microseconds, up to a minute.
const SLOWEST_MICROS: u64 = 60_000_000;

/// What one run sent and how the target answered.
#[derive(Debug)]
pub struct Sent {
    pub requests: u64,
    pub succeeded: u64,
    /// Requests certainly not counted, by kind: `HTTP 503`, `HTTP 400`,
    /// `connection refused` (or another failure to connect).
    pub failures: BTreeMap<String, u64>,
    /// Requests that may or may not have been counted, by kind: `HTTP 504`
    /// (sent, not confirmed), other 5xx but 503, `timed out`, `connection
    /// reset`, `closed before the answer`, `broken response`.
    pub unknown: BTreeMap<String, u64>,
    /// Voters whose first ballot was accepted.
    pub voters: u64,
    /// Voters whose second ballot, for another option, was accepted too.
    pub changed: u64,
    /// Per option, in split order: voters whose last accepted ballot is for it.
    pub counted: Vec<u64>,
    /// Per option: voters whose first ballot, for it, has an unknown outcome
    /// (the option gains 0 or 1; they did not vote again).
    pub unknown_first: Vec<u64>,
    /// Per option: voters whose change away from it has an unknown outcome
    /// (counted above for it; their vote may have moved instead).
    pub unknown_from: Vec<u64>,
    /// Per option: voters whose change to it has an unknown outcome.
    pub unknown_to: Vec<u64>,
    /// Microseconds from sending a ballot to the end of its accepted response.
    pub latency: Histogram<u64>,
    /// When the first and the last request that failed or had an unknown
    /// outcome ended, from the start of the run: how long the target
    /// answered so (a failover's 503s and 504s).
    pub failing: Option<(Duration, Duration)>,
    pub wall: Duration,
}

impl Sent {
    /// Nothing sent yet, to `options` options.
    pub fn new(options: usize) -> Sent {
        Sent {
            requests: 0,
            succeeded: 0,
            failures: BTreeMap::new(),
            unknown: BTreeMap::new(),
            voters: 0,
            changed: 0,
            counted: vec![0; options],
            unknown_first: vec![0; options],
            unknown_from: vec![0; options],
            unknown_to: vec![0; options],
            latency: Histogram::new_with_bounds(1, SLOWEST_MICROS, 3).expect("valid bounds"),
            failing: None,
            wall: Duration::ZERO,
        }
    }

    /// A request that failed or had an unknown outcome ended `at`.
    fn failing_at(&mut self, at: Duration) {
        self.failing = Some(match self.failing {
            None => (at, at),
            Some((first, last)) => (first.min(at), last.max(at)),
        });
    }

    fn merge(&mut self, other: Sent) {
        self.requests += other.requests;
        self.succeeded += other.succeeded;
        for (kind, n) in other.failures {
            *self.failures.entry(kind).or_default() += n;
        }
        for (kind, n) in other.unknown {
            *self.unknown.entry(kind).or_default() += n;
        }
        self.voters += other.voters;
        self.changed += other.changed;
        for (mine, theirs) in [
            (&mut self.counted, other.counted),
            (&mut self.unknown_first, other.unknown_first),
            (&mut self.unknown_from, other.unknown_from),
            (&mut self.unknown_to, other.unknown_to),
        ] {
            for (mine, theirs) in mine.iter_mut().zip(theirs) {
                *mine += theirs;
            }
        }
        self.latency
            .add(other.latency)
            .expect("histograms share bounds");
        if let Some((first, last)) = other.failing {
            self.failing_at(first);
            self.failing_at(last);
        }
    }

    /// Requests certainly not counted.
    pub fn failed(&self) -> u64 {
        self.failures.values().sum()
    }

    /// Requests that may or may not have been counted.
    pub fn unknown(&self) -> u64 {
        self.unknown.values().sum()
    }

    /// Votes the tally should gain, by option id.
    pub fn gains(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        OPTION_IDS.iter().copied().zip(self.counted.iter().copied())
    }
}

/// Casts every planned ballot and waits for the last answer. Stops starting
/// voters once `stop` is cancelled.
pub async fn cast(
    client: Client,
    config: &Config,
    plan: Plan,
    counters: Arc<Counters>,
    stop: CancellationToken,
) -> anyhow::Result<Sent> {
    let started = Instant::now();
    let options = config.split.0.len();
    let run = Arc::new(Run {
        started,
        client,
        url: config.url.clone(),
        plan,
        voter_limit: config.voter_limit(),
        options,
        deadline: config.duration.map(|d| started + d),
        pacer: config.rate.map(|rate| Pacer::new(started, rate)),
        next_voter: AtomicU64::new(0),
        warned: AtomicBool::new(false),
        counters,
        stop,
    });
    let tasks: Vec<_> = (0..config.concurrency)
        .map(|_| tokio::spawn(Arc::clone(&run).vote_as_new_voters()))
        .collect();
    let mut sent = Sent::new(options);
    for task in tasks {
        sent.merge(task.await?);
    }
    sent.wall = started.elapsed();
    Ok(sent)
}

struct Run {
    started: Instant,
    client: Client,
    url: Url,
    plan: Plan,
    voter_limit: Option<u64>,
    options: usize,
    deadline: Option<Instant>,
    pacer: Option<Pacer>,
    next_voter: AtomicU64,
    warned: AtomicBool,
    counters: Arc<Counters>,
    stop: CancellationToken,
}

/// How the target answered one ballot.
enum Answer {
    /// Accepted, with the voter's cookie if the response set one.
    Accepted { voter_cookie: Option<String> },
    /// Certainly not counted: refused (4xx, 503) or never delivered.
    Failed,
    /// Sent, but whether it counts is unknown: 504 and other 5xx, a timeout
    /// or a broken response.
    Unknown,
}

impl Run {
    async fn vote_as_new_voters(self: Arc<Self>) -> Sent {
        let mut sent = Sent::new(self.options);
        while let Some(voter) = self.take_voter() {
            let first = self.plan.first_choice(voter);
            let voter_cookie = match self.post(first, None, &mut sent).await {
                Answer::Accepted { voter_cookie } => voter_cookie,
                Answer::Failed => continue,
                // Such a voter does not vote again: the ballot may count.
                Answer::Unknown => {
                    sent.unknown_first[first] += 1;
                    continue;
                }
            };
            sent.voters += 1;
            sent.counted[first] += 1;
            let Some(second) = self.plan.second_choice(voter) else {
                continue;
            };
            // The same voter votes again only if we send back its cookie;
            // without one, the second ballot counts as a failed request.
            let Some(cookie) = voter_cookie else {
                self.count_request(&mut sent);
                self.fail(&mut sent, "no voter_id cookie to vote again with", None);
                continue;
            };
            match self.post(second, Some(&cookie), &mut sent).await {
                Answer::Accepted { .. } => {
                    sent.changed += 1;
                    sent.counted[first] -= 1;
                    sent.counted[second] += 1;
                }
                Answer::Failed => {}
                Answer::Unknown => {
                    sent.unknown_from[first] += 1;
                    sent.unknown_to[second] += 1;
                }
            }
        }
        sent
    }

    fn take_voter(&self) -> Option<u64> {
        if self.stop.is_cancelled() || self.deadline.is_some_and(|end| Instant::now() >= end) {
            return None;
        }
        let voter = self.next_voter.fetch_add(1, Ordering::Relaxed);
        self.voter_limit.is_none_or(|n| voter < n).then_some(voter)
    }

    async fn post(&self, choice: usize, cookie: Option<&str>, sent: &mut Sent) -> Answer {
        if let Some(pacer) = &self.pacer {
            pacer.wait_turn().await;
        }
        let mut request = self
            .client
            .post(self.url.clone())
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(FORM_BODIES[choice]);
        if let Some(cookie) = cookie {
            request = request.header(COOKIE, cookie);
        }
        let began = Instant::now();
        self.count_request(sent);
        let response = match request.send().await {
            Ok(response) => response,
            // Never connected: the ballot never reached the service.
            Err(e) if e.is_connect() => {
                self.fail(sent, failure_kind(&e), Some(&e));
                return Answer::Failed;
            }
            Err(e) => {
                self.unsure(sent, failure_kind(&e), Some(&e));
                return Answer::Unknown;
            }
        };
        let status = response.status();
        let voter_cookie = voter_cookie(response.headers());
        // Reading the body to its end lets the connection go back to the pool.
        if let Err(e) = response.bytes().await {
            self.unsure(sent, failure_kind(&e), Some(&e));
            return Answer::Unknown;
        }
        let kind = format!("HTTP {}", status.as_u16());
        if status.is_server_error() && status != StatusCode::SERVICE_UNAVAILABLE {
            // The vote service's 504: sent to Redis, not confirmed. Other 5xx
            // (a proxy's 502, a panic's 500) say no more than that either.
            self.unsure(sent, &kind, None);
            return Answer::Unknown;
        }
        if !status.is_success() {
            self.fail(sent, &kind, None);
            return Answer::Failed;
        }
        sent.latency
            .saturating_record(began.elapsed().as_micros() as u64);
        sent.succeeded += 1;
        Answer::Accepted { voter_cookie }
    }

    fn count_request(&self, sent: &mut Sent) {
        sent.requests += 1;
        self.counters.requests.fetch_add(1, Ordering::Relaxed);
    }

    /// A request certainly not counted.
    fn fail(&self, sent: &mut Sent, kind: &str, error: Option<&reqwest::Error>) {
        *sent.failures.entry(kind.to_string()).or_default() += 1;
        sent.failing_at(self.started.elapsed());
        self.warn_once(kind, error);
    }

    /// A request that may or may not have been counted.
    fn unsure(&self, sent: &mut Sent, kind: &str, error: Option<&reqwest::Error>) {
        *sent.unknown.entry(kind.to_string()).or_default() += 1;
        sent.failing_at(self.started.elapsed());
        self.warn_once(kind, error);
    }

    fn warn_once(&self, kind: &str, error: Option<&reqwest::Error>) {
        self.counters.failed(kind);
        // One warning with the full cause; the summary counts the rest.
        if !self.warned.swap(true, Ordering::Relaxed) {
            match error {
                Some(e) => tracing::warn!("first failed request: {}", crate::root_cause(e)),
                None => tracing::warn!("first failed request: {kind}"),
            }
        }
    }
}

/// What went wrong below HTTP, named so that a report says what it was:
/// whether the connection was refused, reset, closed before the answer or
/// too slow. Whether the ballot can have counted is decided by the caller
/// (a failure to connect never sent it).
fn failure_kind(e: &reqwest::Error) -> &'static str {
    if e.is_timeout() {
        return "timed out";
    }
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(error) = cause {
        if let Some(kind) = transport_kind(error) {
            return kind;
        }
        cause = error.source();
    }
    if e.is_connect() {
        "connection failed"
    } else if e.is_body() || e.is_decode() {
        "broken response"
    } else {
        "request error"
    }
}

/// The kind of one link of an error's chain, when it names one.
fn transport_kind(error: &(dyn std::error::Error + 'static)) -> Option<&'static str> {
    use std::io::ErrorKind;
    if let Some(error) = error.downcast_ref::<hyper::Error>() {
        if error.is_incomplete_message() {
            return Some("closed before the answer");
        }
        if error.is_timeout() {
            return Some("timed out");
        }
    }
    let kind = match error.downcast_ref::<std::io::Error>()?.kind() {
        ErrorKind::ConnectionRefused => "connection refused",
        ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted | ErrorKind::BrokenPipe => {
            "connection reset"
        }
        ErrorKind::UnexpectedEof => "closed before the answer",
        ErrorKind::TimedOut => "timed out",
        _ => return None,
    };
    Some(kind)
}

/// `voter_id=...` from the response's `Set-Cookie` headers, ready to send back.
fn voter_cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .filter_map(|cookie| cookie.split(';').next())
        .map(str::trim)
        .find(|pair| pair.starts_with("voter_id="))
        .map(str::to_string)
}

/// `--rate`: request number n may start no earlier than n / rate seconds in.
/// Tickets keep the pace across all tasks without a shared timer.
struct Pacer {
    start: Instant,
    rate: f64,
    tickets: AtomicU64,
}

impl Pacer {
    fn new(start: Instant, rate: f64) -> Pacer {
        Pacer {
            start,
            rate,
            tickets: AtomicU64::new(0),
        }
    }

    async fn wait_turn(&self) {
        let ticket = self.tickets.fetch_add(1, Ordering::Relaxed);
        tokio::time::sleep_until(self.start + Duration::from_secs_f64(ticket as f64 / self.rate))
            .await;
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    /// Three accepted ballots, 2:1, each answered in a millisecond.
    pub(crate) fn sent_for_report() -> Sent {
        let mut sent = Sent::new(2);
        sent.requests = 3;
        sent.succeeded = 3;
        sent.voters = 3;
        sent.counted = vec![2, 1];
        sent.latency.record_n(1_000, 3).unwrap();
        sent.wall = Duration::from_secs(1);
        sent
    }

    #[test]
    fn finds_the_voter_cookie_among_others() {
        let mut headers = HeaderMap::new();
        headers.append(SET_COOKIE, HeaderValue::from_static("theme=dark; Path=/"));
        headers.append(
            SET_COOKIE,
            HeaderValue::from_static("voter_id=3f2a; Path=/; HttpOnly; SameSite=Lax"),
        );
        assert_eq!(voter_cookie(&headers).as_deref(), Some("voter_id=3f2a"));
        assert_eq!(voter_cookie(&HeaderMap::new()), None);
    }

    #[test]
    fn merging_adds_everything_up() {
        let mut total = Sent::new(2);
        for i in 0..3 {
            let mut part = Sent::new(2);
            part.requests = 5;
            part.succeeded = 3;
            part.failures.insert("HTTP 503".into(), 1);
            part.unknown.insert("HTTP 504".into(), 1);
            part.voters = 3;
            part.counted = vec![2, 1];
            part.unknown_first = vec![1, 0];
            part.unknown_from = vec![0, 1];
            part.unknown_to = vec![1, 0];
            part.latency.record(1_000).unwrap();
            part.failing = Some((Duration::from_secs(5 - i), Duration::from_secs(6 + i)));
            total.merge(part);
        }
        assert_eq!(
            (
                total.requests,
                total.succeeded,
                total.failed(),
                total.unknown()
            ),
            (15, 9, 3, 3)
        );
        assert_eq!(total.counted, [6, 3]);
        assert_eq!(
            (&total.unknown_first, &total.unknown_from, &total.unknown_to),
            (&vec![3, 0], &vec![0, 3], &vec![3, 0])
        );
        assert_eq!(total.latency.len(), 3);
        // From the earliest first failure to the latest last one.
        assert_eq!(
            total.failing,
            Some((Duration::from_secs(3), Duration::from_secs(8)))
        );
        assert_eq!(total.gains().collect::<Vec<_>>(), [("a", 6), ("b", 3)]);
    }

    #[tokio::test(start_paused = true)]
    async fn the_pacer_spaces_requests_evenly() {
        let start = Instant::now();
        let pacer = Pacer::new(start, 100.0);
        for _ in 0..51 {
            pacer.wait_turn().await;
        }
        assert_eq!(start.elapsed(), Duration::from_millis(500));
    }
}
