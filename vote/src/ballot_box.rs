//! The Redis side of voting: push a ballot, check Redis answers. Every call
//! gives up within `DEADLINE`, so a vote is refused quickly rather than hanging
//! while Redis is away; one shared multiplexed connection reconnects by itself.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

use ballot::Ballot;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::RedisError;

/// The longest a request waits on Redis before the voter is told to retry.
const DEADLINE: Duration = Duration::from_millis(1500);

#[derive(thiserror::Error, Debug)]
pub enum Unavailable {
    #[error("Redis is unreachable: {0}")]
    Redis(#[from] RedisError),
    #[error("Redis did not answer within {DEADLINE:?}")]
    TimedOut,
}

pub struct BallotBox {
    client: redis::Client,
    /// Made on first use: it needs the async runtime, which `rocket()` may not run in.
    redis: OnceLock<ConnectionManager>,
    /// Whether the last call succeeded, so outages are logged once, not per vote.
    reachable: AtomicBool,
}

impl BallotBox {
    /// Connects lazily: the service starts (and serves the page) without Redis.
    pub fn new(redis_url: &str) -> Result<BallotBox, RedisError> {
        Ok(BallotBox {
            client: redis::Client::open(redis_url)?,
            redis: OnceLock::new(),
            reachable: AtomicBool::new(true),
        })
    }

    fn connection(&self) -> ConnectionManager {
        let connect = || {
            let config = ConnectionManagerConfig::new()
                .set_connection_timeout(Some(Duration::from_millis(500)))
                .set_response_timeout(Some(Duration::from_secs(1)))
                .set_number_of_retries(1)
                .set_min_delay(Duration::from_millis(50))
                .set_max_delay(Duration::from_millis(200));
            ConnectionManager::new_lazy_with_config(self.client.clone(), config)
                .expect("a plain RESP2 configuration is always accepted")
        };
        self.redis.get_or_init(connect).clone()
    }

    /// Queues a ballot on the list the worker consumes.
    pub async fn push(&self, ballot: &Ballot) -> Result<(), Unavailable> {
        let mut redis = self.connection();
        let json = ballot.to_json();
        let rpush = redis::cmd("RPUSH")
            .arg(ballot::queue::VOTES)
            .arg(json)
            .to_owned();
        self.call(async move { rpush.query_async(&mut redis).await })
            .await
    }

    pub async fn ping(&self) -> Result<(), Unavailable> {
        let mut redis = self.connection();
        self.call(async move { redis::cmd("PING").query_async(&mut redis).await })
            .await
    }

    async fn call(
        &self,
        request: impl std::future::Future<Output = Result<(), RedisError>>,
    ) -> Result<(), Unavailable> {
        let outcome = match tokio::time::timeout(DEADLINE, request).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(Unavailable::Redis(e)),
            Err(_) => Err(Unavailable::TimedOut),
        };
        let was_reachable = self.reachable.swap(outcome.is_ok(), Ordering::Relaxed);
        match &outcome {
            Err(e) if was_reachable => tracing::warn!("{e}; refusing votes until it answers"),
            Ok(()) if !was_reachable => tracing::info!("Redis answers again; taking votes"),
            _ => {}
        }
        outcome
    }
}
