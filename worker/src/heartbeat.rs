//! A worker's liveness key in Redis, refreshed on a connection of its own
//! (the batch loop's connection sits in a blocking BLMOVE), and the periodic
//! sweep that returns the batches of workers whose key expired.

use std::sync::Arc;
use std::time::Duration;

use ballot::queue::heartbeat_key;
use kit::redis_primary::RedisPrimary;
use redis::RedisResult;
use tokio_util::sync::CancellationToken;

use crate::queue::{reclaim_orphans, Connection};
use crate::BadKeys;
use kit::outage::Outage;

/// Beats per TTL: two may be lost before peers think this worker is gone.
const BEATS_PER_TTL: u32 = 3;

pub struct Heartbeat {
    connection: Connection,
    worker_id: String,
    key: String,
    ttl: Duration,
    health: Outage,
    bad_keys: Arc<BadKeys>,
}

impl Heartbeat {
    pub fn new(
        primary: Arc<RedisPrimary>,
        worker_id: &str,
        ttl: Duration,
        bad_keys: Arc<BadKeys>,
    ) -> Self {
        Heartbeat {
            connection: Connection::new(primary),
            worker_id: worker_id.to_string(),
            key: heartbeat_key(worker_id),
            ttl,
            health: Outage::new("redis (heartbeat)"),
            bad_keys,
        }
    }

    /// The first beat and sweep, retried through outages; false if shut
    /// down first, an error of one line if REDIS_URL can never work.
    pub async fn first_beat(&mut self, shutdown: &CancellationToken) -> Result<bool, String> {
        loop {
            match self.beat(true).await {
                Ok(()) => {
                    self.health.up();
                    return Ok(true);
                }
                Err(e) => {
                    if let Some(unusable) = kit::redis_error::unusable_setting(&e) {
                        return Err(unusable);
                    }
                    if !self.health.wait(&e, shutdown).await {
                        return Ok(false);
                    }
                }
            }
        }
    }

    /// Beats until shutdown, sweeping for orphaned batches once per TTL.
    pub async fn keep_beating(mut self, shutdown: CancellationToken) {
        let interval = self.ttl / BEATS_PER_TTL;
        let mut beats = 0u32;
        loop {
            tokio::select! {
                () = tokio::time::sleep(interval) => {}
                () = shutdown.cancelled() => return,
            }
            beats += 1;
            match self.beat(beats.is_multiple_of(BEATS_PER_TTL)).await {
                Ok(()) => self.health.up(),
                Err(e) => {
                    if !self.health.wait(&e, &shutdown).await {
                        return;
                    }
                }
            }
        }
    }

    async fn beat(&mut self, sweep: bool) -> RedisResult<()> {
        let result = self.try_beat(sweep).await;
        if result.is_err() {
            self.connection.reset();
        }
        result
    }

    async fn try_beat(&mut self, sweep: bool) -> RedisResult<()> {
        let mut connection = self.connection.get().await?;
        redis::cmd("SET")
            .arg(&self.key)
            .arg("alive")
            .arg("PX")
            .arg(self.ttl.as_millis() as u64)
            .query_async::<()>(&mut connection)
            .await?;
        if sweep {
            let bad_keys = reclaim_orphans(&mut connection, &self.worker_id).await?;
            match bad_keys.is_empty() {
                true => self.bad_keys.sweep.up(),
                false => drop(self.bad_keys.sweep.down(&bad_keys.join("; "))),
            }
        }
        // Only a gauge: `votes` of the wrong type is the batch loop's to
        // report, and an outage shows at the next beat's SET.
        let depth: RedisResult<u64> = redis::cmd("LLEN")
            .arg(ballot::queue::VOTES)
            .query_async(&mut connection)
            .await;
        if let Ok(depth) = depth {
            metrics::gauge!("worker_queue_depth").set(depth as f64);
        }
        Ok(())
    }
}
