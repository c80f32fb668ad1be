//! The services around the load: waiting for them to answer before starting,
//! and `--verify`: the tally before sending, then polling until it shows
//! exactly what was sent.

use std::time::Duration;

use anyhow::{bail, Context};
use ballot::Tally;
use reqwest::{Client, Response, Url};
use tokio::time::{sleep, Instant};

use crate::root_cause;

/// Pause between tries while a service comes up.
const RETRY_EVERY: Duration = Duration::from_millis(100);
/// Pause between tally reads: fine enough to time consistency in
/// milliseconds, light enough not to load the result service.
const POLL_EVERY: Duration = Duration::from_millis(10);

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

/// The tally once every ballot in `gains` is counted on top of `before`.
pub fn expected(before: &Tally, gains: impl IntoIterator<Item = (&'static str, u64)>) -> Tally {
    let mut expected = before.clone();
    for (id, votes) in gains.into_iter().filter(|&(_, votes)| votes > 0) {
        expected.add(id, votes as i64);
    }
    expected
}

/// How `--verify` ended.
#[derive(Debug)]
pub struct Verification {
    pub expected: Tally,
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

/// Polls `url` until its tally equals `expected`, for at most `limit`.
pub async fn converge(
    client: &Client,
    url: &Url,
    expected: Tally,
    limit: Duration,
) -> Verification {
    let started = Instant::now();
    let mut verification = Verification {
        expected,
        seen: None,
        last_error: None,
        consistent_after: None,
        timeout: limit,
    };
    loop {
        match read_tally(client, url).await {
            Ok(tally) => {
                let matched = tally == verification.expected;
                verification.seen = Some(tally);
                verification.last_error = None;
                if matched {
                    verification.consistent_after = Some(started.elapsed());
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

    #[test]
    fn expected_adds_gains_to_what_was_there() {
        assert_eq!(
            expected(&tally(5, 1), [("a", 2_000), ("b", 1_000)]),
            tally(2_005, 1_001)
        );
    }

    #[test]
    fn options_without_gains_stay_as_the_service_shows_them() {
        let before = tally(0, 0);
        let after = expected(&before, [("a", 3), ("b", 0), ("c", 0)]);
        assert_eq!(after, tally(3, 0));
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
