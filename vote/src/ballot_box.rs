//! The Redis side of voting: queue a ballot, check Redis answers. Every call
//! is over within `DEADLINE`, so a voter is answered quickly while Redis is
//! away or hung, and a failure says truthfully whether the ballot could
//! have been queued ([`Failure::certainly_not_run`]).

use std::sync::OnceLock;
use std::time::Duration;

use ballot::queue::{scripts, unstamped_entry, CLOCK, VOTES};
use redis::{ErrorKind, RedisError, RedisResult, Script, ServerErrorKind};
use tokio::time::{timeout_at, Instant};

use kit::outage::Outage;
use kit::redis_primary::RedisPrimary;

use crate::connection::{Link, SharedConnection};
use crate::replicas::Replicas;

/// The longest a request waits on Redis, connecting included.
const DEADLINE: Duration = Duration::from_millis(1500);

/// Pause between the start-up check's attempts while Redis is away.
const CHECK_EVERY: Duration = Duration::from_secs(1);

#[derive(thiserror::Error, Debug)]
pub enum Failure {
    /// No connection: nothing was sent.
    #[error("cannot connect to Redis: {0}")]
    NoConnection(RedisError),
    /// Redis answered with an error (OOM, READONLY, LOADING, ...): it did
    /// not run the command.
    #[error("Redis refused the command: {0}")]
    Refused(RedisError),
    /// Sent on a live connection that then failed before Redis answered.
    #[error("the connection to Redis failed before it answered: {0}")]
    Lost(RedisError),
    /// Sent, and no answer came in time.
    #[error("Redis did not answer within {DEADLINE:?}")]
    NoAnswer,
    /// With Sentinel: queued on the primary, but no replica confirmed it
    /// (WAIT) in time; a failover now could lose it.
    #[error("queued, but no replica confirmed it: {0}")]
    NotReplicated(String),
}

impl Failure {
    /// True when Redis certainly did not run the command; otherwise it may
    /// have run it, or may still.
    pub fn certainly_not_run(&self) -> bool {
        matches!(self, Failure::NoConnection(_) | Failure::Refused(_))
    }
}

pub struct BallotBox {
    redis: SharedConnection,
    /// With Sentinel: a ballot counts once a replica has it too (WAIT).
    replicas: Option<Replicas>,
    queue: Script,
    /// Whether the last call succeeded, so outages are logged once, not per vote.
    outage: Outage,
    /// Set when Redis refused the settings themselves (see `check_settings`).
    unusable: OnceLock<String>,
}

impl BallotBox {
    /// Connects lazily: the service starts (and serves the page) without Redis.
    pub fn new(primary: RedisPrimary) -> BallotBox {
        BallotBox {
            replicas: primary.replicated().then(Replicas::new),
            redis: SharedConnection::new(primary),
            queue: Script::new(scripts::QUEUE),
            outage: Outage::new("redis").meanwhile("votes fail until Redis takes them"),
            unusable: OnceLock::new(),
        }
    }

    /// Queues `voter_id`'s ballot for `option`; Redis stamps it. One
    /// `EVALSHA`; the script is loaded (and the call repeated) only when
    /// Redis does not have it yet, as `redis::Script` does. With Sentinel,
    /// then a `WAIT 1` on the same connection, sent after the script's
    /// reply came, confirms a replica has it ([`Replicas`]). A primary
    /// without replicas in reach refuses the script (NOREPLICAS): 503.
    pub async fn push(&self, voter_id: &str, option: &str) -> Result<(), Failure> {
        let mut queue = redis::cmd("EVALSHA");
        queue
            .arg(self.queue.get_hash())
            .arg(2)
            .arg(CLOCK)
            .arg(VOTES)
            .arg(unstamped_entry(voter_id, option));
        let outcome = self
            .call(|link| async move {
                let mut redis = link.connection.clone();
                match queue.query_async::<()>(&mut redis).await {
                    Err(e) if e.kind() == ErrorKind::Server(ServerErrorKind::NoScript) => {
                        self.queue.load_async(&mut redis).await?;
                        queue.query_async(&mut redis).await?
                    }
                    outcome => outcome?,
                }
                let Some(replicas) = &self.replicas else {
                    return Ok(Ok(()));
                };
                let ticket = replicas.ticket();
                // Queued already: from here on no answer is a refusal.
                let confirmed = replicas.confirm(ticket, &link).await?;
                Ok(confirmed.map_err(Failure::NotReplicated))
            })
            .await
            .and_then(|queued| queued);
        self.note(&outcome);
        outcome
    }

    pub async fn ping(&self) -> Result<(), Failure> {
        let outcome = self.ping_quietly().await;
        self.note(&outcome);
        outcome
    }

    /// Checks, until Redis answers, that the settings can work at all.
    /// Returns one line naming REDIS_URL if Redis refuses them (a password
    /// or user it does not accept, a database index it does not have).
    /// Outages are waited out, logged once, while votes get 503.
    pub async fn check_settings(&self, redis_url: &str) -> Result<(), String> {
        loop {
            let outcome = self.ping_quietly().await;
            if let Err(Failure::NoConnection(e) | Failure::Refused(e)) = &outcome {
                if let Some(line) = kit::redis_error::unusable_setting(e) {
                    let line = format!("{line} ({})", redacted(redis_url));
                    let _ = self.unusable.set(line.clone());
                    return Err(line);
                }
            }
            self.note(&outcome);
            if outcome.is_ok() {
                return Ok(());
            }
            tokio::time::sleep(CHECK_EVERY).await;
        }
    }

    /// Why the service stopped on its own, if `check_settings` found the
    /// settings unusable.
    pub fn unusable(&self) -> Option<&str> {
        self.unusable.get().map(String::as_str)
    }

    async fn ping_quietly(&self) -> Result<(), Failure> {
        self.call(|link| async move {
            let mut redis = link.connection;
            redis::cmd("PING").query_async::<()>(&mut redis).await
        })
        .await
    }

    /// Runs `send` on the shared connection within `DEADLINE` and says what
    /// became of the command. A connection that failed is dropped, so the
    /// next call makes a new one.
    async fn call<T, F>(&self, send: impl FnOnce(Link) -> F) -> Result<T, Failure>
    where
        F: std::future::Future<Output = RedisResult<T>>,
    {
        let deadline = Instant::now() + DEADLINE;
        // The live connection if there is one, without waiting: the hot path.
        let link = match self.redis.live() {
            Some(link) => link,
            None => match timeout_at(deadline, self.redis.get()).await {
                Ok(Ok(link)) => link,
                Ok(Err(e)) => return Err(Failure::NoConnection(e)),
                Err(_) => return Err(Failure::NoConnection(no_connection_in_time())),
            },
        };
        let id = link.id;
        match timeout_at(deadline, send(link)).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) if is_error_reply(&e) => {
                // A primary demoted to a replica (READONLY), or one cut off
                // from its replicas (NOREPLICAS), which the Sentinels may
                // have replaced meanwhile while this vote replica can still
                // reach it: the next call asks the Sentinels again.
                if matches!(e.code(), Some("READONLY" | "NOREPLICAS")) {
                    self.redis.reset(id);
                }
                Err(Failure::Refused(e))
            }
            Ok(Err(e)) => {
                self.redis.reset(id);
                Err(Failure::Lost(e))
            }
            Err(_) => {
                self.redis.reset(id);
                Err(Failure::NoAnswer)
            }
        }
    }

    /// Redis's state, logged once per change, not once per vote.
    fn note<T>(&self, outcome: &Result<T, Failure>) {
        match outcome {
            Ok(_) => self.outage.up(),
            Err(e) => {
                self.outage.down(e);
            }
        }
    }
}

/// Redis answered with an error of its own, rather than the connection failing.
fn is_error_reply(e: &RedisError) -> bool {
    e.code().is_some()
}

fn no_connection_in_time() -> RedisError {
    RedisError::from(std::io::Error::new(
        std::io::ErrorKind::TimedOut,
        format!("no connection within {DEADLINE:?}"),
    ))
}

/// The URL with any password replaced by `***`, fit for a log line.
fn redacted(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let Some(at) = rest[..authority_end].rfind('@') else {
        return url.to_string();
    };
    let user = match rest[..at].split_once(':') {
        Some((user, _password)) => format!("{user}:***"),
        None => rest[..at].to_string(),
    };
    format!("{scheme}://{user}{}", &rest[at..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_left_out_of_the_url() {
        for (url, shown) in [
            ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),
            ("redis://:secret@redis:6379", "redis://:***@redis:6379"),
            ("redis://app:se:cr@t@redis/2", "redis://app:***@redis/2"),
            ("redis://app@redis/2", "redis://app@redis/2"),
        ] {
            assert_eq!(redacted(url), shown);
        }
    }
}
