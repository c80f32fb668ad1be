//! The worker: moves ballots from the Redis list `votes` into Postgres,
//! losing none (a ballot leaves Redis only after Postgres committed it) and
//! applying each voter's latest ballot however batches interleave.

mod batch;
mod health;
mod heartbeat;
mod queue;
mod store;

use std::time::{Duration, Instant};

use ballot::config::{DatabaseArgs, RedisArgs};
use ballot::options::OptionArgs;
use ballot::VoteOptions;
use clap::Parser;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use batch::{Batch, Clock, Votes};

use health::Health;
use heartbeat::Heartbeat;
use queue::Queue;
use store::{Failure, Store};

/// How long shutdown waits for a commit already under way.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);

/// Settings, each an environment variable and a `--flag`.
#[derive(Parser, Clone, Debug)]
#[command(name = "worker", about = "Moves ballots from Redis into Postgres")]
pub struct Config {
    #[command(flatten)]
    pub redis: RedisArgs,
    #[command(flatten)]
    pub database: DatabaseArgs,
    #[command(flatten)]
    pub options: OptionArgs,
    /// Most ballots taken from the queue and written in one transaction.
    #[arg(long, env = "BATCH_SIZE", default_value_t = 1000,
          value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub batch_size: u32,
    /// Seconds a worker's heartbeat outlives it: after that, other workers
    /// return the ballots it held to the queue.
    #[arg(long, env = "HEARTBEAT_TTL", default_value_t = 10,
          value_parser = clap::value_parser!(u64).range(2..=3600))]
    pub heartbeat_ttl: u64,
}

/// Works until `shutdown` is cancelled, then hands back whatever batch it
/// has not committed and returns. Outages are waited out, never returned.
pub async fn run(config: Config, shutdown: CancellationToken) -> anyhow::Result<()> {
    let worker_id = format!("{:016x}", rand::random::<u64>());
    let redis = redis::Client::open(config.redis.redis_url.as_str())?;
    let ttl = Duration::from_secs(config.heartbeat_ttl);
    let options = config.options.options();
    info!(%worker_id, batch_size = config.batch_size, "worker starting");

    // Claim liveness before taking any ballot, or a peer could reclaim them.
    let mut heartbeat = Heartbeat::new(redis.clone(), &worker_id, ttl);
    if !heartbeat.first_beat(&shutdown).await {
        return Ok(());
    }
    let beating = tokio::spawn(heartbeat.keep_beating(shutdown.clone()));

    let mut worker = Worker {
        queue: Queue::new(redis, &worker_id, config.batch_size as usize),
        store: Store::new(config.database.pg_config()),
        options,
        clock: Clock::default(),
        redis_health: Health::new("redis"),
        postgres_health: Health::new("postgres"),
    };
    if worker.prepare_store(&shutdown).await {
        info!(%worker_id, "worker ready");
        while worker.round(&shutdown).await {}
    }

    let _ = beating.await;
    worker.queue.retire().await;
    info!(%worker_id, "worker stopped");
    Ok(())
}

struct Worker {
    queue: Queue,
    store: Store,
    options: VoteOptions,
    clock: Clock,
    redis_health: Health,
    postgres_health: Health,
}

impl Worker {
    /// Connects and migrates before the first ballot; false if shut down first.
    async fn prepare_store(&mut self, shutdown: &CancellationToken) -> bool {
        loop {
            match self.store.connect().await {
                Ok(()) => {
                    self.postgres_health.up();
                    return true;
                }
                Err(e) => {
                    let reason = store::explain(&e);
                    if !self.postgres_health.down(&reason, shutdown).await {
                        return false;
                    }
                }
            }
        }
    }

    /// Takes one batch (waiting a second at most for the first ballot),
    /// commits it, then clears it from Redis. False once shut down.
    async fn round(&mut self, shutdown: &CancellationToken) -> bool {
        if shutdown.is_cancelled() {
            return false;
        }
        let started = Instant::now();
        let entries = match self.queue.take().await {
            Ok(entries) => {
                self.redis_health.up();
                entries
            }
            Err(e) => return self.redis_health.down(&e, shutdown).await,
        };
        if entries.is_empty() {
            return true;
        }
        let taken = started.elapsed();
        let batch = Batch::sort_out(&entries, &self.options, &mut self.clock);
        let sorted = started.elapsed();
        for (index, reason) in &batch.poison {
            warn!(entry = %preview(&entries[*index]), %reason, "dead-lettering a poison ballot");
        }
        let Some(refused) = self.commit(&batch.votes, shutdown).await else {
            return false;
        };
        let committed = started.elapsed();
        for (index, reason) in &refused {
            warn!(entry = %preview(&entries[*index]), %reason, "dead-lettering a ballot Postgres refused");
        }
        let dead: Vec<&[u8]> = batch
            .poison
            .iter()
            .map(|(i, _)| *i)
            .chain(refused.iter().map(|(i, _)| *i))
            .map(|i| entries[i].as_slice())
            .collect();
        loop {
            match self.queue.finish(&dead).await {
                Ok(()) => {
                    self.redis_health.up();
                    debug!(
                        entries = entries.len(),
                        voters = batch.votes.len(),
                        dead = dead.len(),
                        ?taken,
                        sort = ?(sorted - taken),
                        commit = ?(committed - sorted),
                        finish = ?(started.elapsed() - committed),
                        "batch done"
                    );
                    return true;
                }
                // Committed but not cleared: a replay later is a no-op.
                Err(e) => {
                    if !self.redis_health.down(&e, shutdown).await {
                        return false;
                    }
                }
            }
        }
    }

    /// Retries until Postgres commits `votes`; returns the ballots it refused
    /// as bad data, or None if shut down first (the batch is then handed back).
    async fn commit(
        &mut self,
        votes: &Votes,
        shutdown: &CancellationToken,
    ) -> Option<Vec<(usize, String)>> {
        loop {
            // A commit under way when shutdown comes gets a short grace; if
            // abandoned, the batch is handed back and its replay is a no-op.
            let grace = async {
                shutdown.cancelled().await;
                tokio::time::sleep(SHUTDOWN_GRACE).await;
            };
            let saved = tokio::select! {
                saved = self.store.save(votes) => saved,
                () = grace => return None,
            };
            match saved {
                Ok(refused) => {
                    self.postgres_health.up();
                    return Some(refused);
                }
                Err(Failure::Conflict(e)) => {
                    debug!(error = %store::explain(&e), "write conflict; retrying");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                Err(Failure::Outage(e)) => {
                    let reason = store::explain(&e);
                    if !self.postgres_health.down(&reason, shutdown).await {
                        return None;
                    }
                }
            }
        }
    }
}

/// The start of a queue entry, printable, for logs.
fn preview(entry: &[u8]) -> String {
    let text = String::from_utf8_lossy(&entry[..entry.len().min(200)]);
    text.escape_debug().to_string()
}
