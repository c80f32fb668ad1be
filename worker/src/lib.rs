//! The worker: moves ballots from the Redis list `votes` into Postgres,
//! losing none (a ballot leaves Redis only after Postgres committed it) and
//! applying each voter's latest ballot however batches interleave.

mod batch;
mod heartbeat;
mod http;
mod queue;
mod store;

use std::borrow::Cow;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ballot::VoteOptions;
use clap::Parser;
use kit::redis_primary::RedisPrimary;
use kit::settings::{DatabaseArgs, RedisArgs};
use kit::{db_error, redis_error};

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use ballot::schema::{Migration, VERSION as SCHEMA_VERSION};
use batch::{Batch, Votes};

use heartbeat::Heartbeat;
use kit::outage::Outage;
pub use kit::Stopped;
use queue::{Queue, Taken};
use store::{Failure, Store};

/// How long shutdown waits for a commit already under way.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);

/// The worker's subcommands; without one it works.
#[derive(clap::Subcommand, Clone, Debug)]
pub enum Command {
    #[command(flatten)]
    Kit(kit::healthcheck::Command),
    /// Create or upgrade the schema, then exit 0. Run it with the schema
    /// owner's credentials (the role voting_owner) before the workers, which
    /// connect as a role that may write rows but not change tables.
    Migrate,
}

/// Settings, each an environment variable and a `--flag`.
#[derive(Parser, Clone, Debug)]
#[command(name = "worker", about = "Moves ballots from Redis into Postgres")]
pub struct Config {
    #[command(flatten)]
    pub redis: RedisArgs,
    #[command(flatten)]
    pub database: DatabaseArgs,
    /// Most ballots taken from the queue and written in one transaction.
    #[arg(long, env = "BATCH_SIZE", default_value_t = 1000,
          value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub batch_size: u32,
    /// Seconds one write to Postgres (a batch's upsert and commit, with the
    /// connect before it), a connect, or the read of the latest ballot
    /// stored may take before the worker drops the connection
    /// and retries on a new one, as in an outage: a primary cut off the
    /// network never answers and never closes the connection.
    #[arg(long, env = "WRITE_TIMEOUT", default_value_t = 10,
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub write_timeout: u64,
    /// Seconds a worker's heartbeat outlives it: after that, other workers
    /// return the ballots it held to the queue.
    #[arg(long, env = "HEARTBEAT_TTL", default_value_t = 10,
          value_parser = clap::value_parser!(u64).range(2..=3600))]
    pub heartbeat_ttl: u64,
    /// Most entries kept in the dead-letter list `votes:dead`; the oldest
    /// are dropped (and the drop logged) beyond it.
    #[arg(long, env = "DEAD_LETTERS_MAX", default_value_t = 10_000,
          value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    pub dead_letters_max: u64,
    /// Port of the worker's /healthz, /readyz and /metrics (all interfaces;
    /// 0 picks a free one).
    #[arg(long, env = "PORT", default_value_t = 5002, global = true)]
    pub port: u16,
    #[command(flatten)]
    pub log: kit::telemetry::LogArgs,
    #[command(subcommand)]
    pub command: Option<Command>,
}

impl Config {
    /// The settings for a worker run inside another program (the other
    /// crates' tests run one beside their service): these stores, its HTTP
    /// listener on any free port, everything else as the environment says.
    pub fn embedded(redis_url: &str, database_url: &str) -> Config {
        Config::embedded_with(redis_url, database_url, &[])
    }

    /// As `embedded`, with `extra` flags (`--redis-sentinels`, ...).
    pub fn embedded_with(redis_url: &str, database_url: &str, extra: &[&str]) -> Config {
        let mut args = vec![
            "worker",
            "--redis-url",
            redis_url,
            "--database-url",
            database_url,
            "--port",
            "0",
        ];
        args.extend_from_slice(extra);
        Config::parse_from(args)
    }
}

/// `worker migrate`: brings the schema to this build's version and returns.
/// Waits out outages and other sessions' locks (in a swarm it may start
/// before Postgres); a role that may not change the schema can never
/// work, so it stops with one line naming DATABASE_URL.
pub async fn migrate(config: Config, shutdown: CancellationToken) -> Result<(), Stopped> {
    let postgres = Outage::new("postgres");
    loop {
        let e = match store::migrate(config.database.pg_config()).await {
            Ok(Migration::Current) => {
                info!(version = SCHEMA_VERSION, "schema already current");
                return Ok(());
            }
            Ok(Migration::Upgraded { from }) => {
                info!(from, to = SCHEMA_VERSION, "schema upgraded");
                return Ok(());
            }
            Err(e) => e,
        };
        if let Some(line) = db_error::unusable_setting(&e) {
            return Err(Stopped::Unusable(line));
        }
        if ballot::schema::is_not_permitted(&e) {
            return Err(Stopped::Unusable(format!(
                "DATABASE_URL cannot work for `worker migrate`: {}; connect as the \
                 schema's owner (voting_owner)",
                e.as_db_error()
                    .map_or_else(|| e.to_string(), |db| db.message().to_string())
            )));
        }
        if !postgres.wait(&db_error::explain(&e), &shutdown).await {
            info!("shut down before the schema was migrated");
            return Ok(());
        }
    }
}

/// Works until `shutdown` is cancelled, then hands back whatever batch it
/// has not committed and returns. Outages are waited out, never returned;
/// a setting that can never work (a refused password, no such database, a
/// port taken) ends it with one line naming the setting.
pub async fn run(config: Config, shutdown: CancellationToken) -> Result<(), Stopped> {
    let worker_id = format!("{:016x}", rand::random::<u64>());
    let redis = Arc::new(config.redis.primary());
    let ttl = Duration::from_secs(config.heartbeat_ttl);
    info!(%worker_id, batch_size = config.batch_size, "worker starting");
    kit::metrics::Metrics::install("worker");
    describe_metrics();
    let bad_keys = Arc::new(BadKeys::new());
    let probe = http::Probe {
        redis: redis.clone(),
        database: config.database.pg_config(),
        bad_keys: bad_keys.clone(),
    };
    let listener = TcpListener::bind((Ipv4Addr::UNSPECIFIED, config.port))
        .await
        .map_err(|e| Stopped::Unusable(format!("PORT cannot work: {e}")))?;
    info!(
        port = listener.local_addr()?.port(),
        "serving /healthz, /readyz and /metrics"
    );
    // The worker handles SIGTERM itself (finish or hand back the batch),
    // then stops the listener and waits for it, so nothing it logs comes
    // after the worker's last line.
    let stop_serving = CancellationToken::new();
    let serving = tokio::spawn(kit::http::serve(
        listener,
        http::app(probe),
        stop_serving.clone(),
    ));
    let result = work(config, worker_id, redis, ttl, bad_keys, shutdown).await;
    stop_serving.cancel();
    let _ = serving.await;
    result
}

async fn work(
    config: Config,
    worker_id: String,
    redis: Arc<RedisPrimary>,
    ttl: Duration,
    bad_keys: Arc<BadKeys>,
    shutdown: CancellationToken,
) -> Result<(), Stopped> {
    // Claim liveness before taking any ballot, or a peer could reclaim them.
    let mut heartbeat = Heartbeat::new(redis.clone(), &worker_id, ttl, bad_keys.clone());
    match heartbeat.first_beat(&shutdown).await {
        Ok(true) => {}
        Ok(false) => return Ok(()),
        Err(unusable) => return Err(Stopped::Unusable(unusable)),
    }
    // Cancelled on shutdown, or when a setting turns out never to work.
    let stop = shutdown.child_token();
    let beating = tokio::spawn(heartbeat.keep_beating(stop.clone()));

    let mut worker = Worker {
        queue: Queue::new(
            redis,
            &worker_id,
            config.batch_size as usize,
            config.dead_letters_max as usize,
        ),
        store: Store::new(
            config.database.pg_config(),
            Duration::from_secs(config.write_timeout),
        ),
        // Every option id counts, labelled or not: a vote replica with more
        // options than this worker knows must not have its ballots dropped.
        options: VoteOptions::every_id(),
        redis_health: Outage::new("redis"),
        postgres_health: Outage::new("postgres"),
        bad_keys,
        unusable: None,
    };
    if worker.prepare_store(&stop).await {
        info!(%worker_id, "worker ready");
        while worker.round(&stop).await {}
    }

    stop.cancel();
    let _ = beating.await;
    worker.queue.retire().await;
    if let Some(unusable) = worker.unusable {
        return Err(Stopped::Unusable(unusable));
    }
    info!(%worker_id, "worker stopped");
    Ok(())
}

/// Queue keys of a type or value the scripts refuse (see ballot's
/// `checks.lua`). Such a script changes nothing, so no ballot is lost; the
/// worker is not ready, logs the key once, and goes on trying until it is
/// fixed.
pub(crate) struct BadKeys {
    /// Met taking or clearing a batch: counting waits.
    pub take: Outage,
    /// Met returning a stopped worker's batch to the queue: that batch waits.
    pub sweep: Outage,
}

impl BadKeys {
    fn new() -> Self {
        BadKeys {
            take: Outage::new("a queue key")
                .says("is unusable", "is usable again")
                .meanwhile("counting waits, every ballot stays queued, until it is fixed"),
            sweep: Outage::new("a stopped worker's batch")
                .says("cannot be returned to the queue", "can be returned again")
                .meanwhile("it stays where it is until the key is fixed"),
        }
    }

    pub fn any(&self) -> bool {
        self.take.is_down() || self.sweep.is_down()
    }
}

struct Worker {
    queue: Queue,
    store: Store,
    options: VoteOptions,
    redis_health: Outage,
    postgres_health: Outage,
    bad_keys: Arc<BadKeys>,
    /// Set when a setting turned out never to work: the worker stops.
    unusable: Option<String>,
}

impl Worker {
    /// Connects and migrates before the first ballot; false if shut down first.
    async fn prepare_store(&mut self, shutdown: &CancellationToken) -> bool {
        loop {
            match self.store.open().await {
                Ok(()) => {
                    self.postgres_health.up();
                    return true;
                }
                Err(failure) => {
                    if !self.postgres_failed(&failure, shutdown).await {
                        return false;
                    }
                }
            }
        }
    }

    /// Waits out a Redis failure; false if shut down first, or if the
    /// failure says REDIS_URL can never work.
    async fn redis_down(&mut self, e: &redis::RedisError, shutdown: &CancellationToken) -> bool {
        if let Some(unusable) = redis_error::unusable_setting(e) {
            self.unusable = Some(unusable);
            return false;
        }
        if let Some(problem) = redis_error::bad_key(e) {
            return self.bad_keys.take.wait(&problem, shutdown).await;
        }
        self.redis_health.wait(e, shutdown).await
    }

    /// A queue script ran: Redis answers and the keys it checked are sound.
    fn redis_up(&self) {
        self.redis_health.up();
        self.bad_keys.take.up();
    }

    /// As `redis_down`, for Postgres and DATABASE_URL.
    async fn postgres_down(
        &mut self,
        e: &tokio_postgres::Error,
        shutdown: &CancellationToken,
    ) -> bool {
        if let Some(unusable) = db_error::unusable_setting(e) {
            self.unusable = Some(unusable);
            return false;
        }
        self.postgres_health
            .wait(&db_error::explain(e), shutdown)
            .await
    }

    /// Takes one batch (waiting a second at most for the first ballot),
    /// commits it, then clears it from Redis. False once stopped.
    async fn round(&mut self, shutdown: &CancellationToken) -> bool {
        if shutdown.is_cancelled() {
            return false;
        }
        let started = Instant::now();
        let taken = match self.queue.take().await {
            Ok(taken) => {
                self.redis_up();
                taken
            }
            Err(e) => return self.redis_down(&e, shutdown).await,
        };
        report_set_asides(&taken);
        let taken_at = (taken.clock_micros, Instant::now());
        if taken.needs_order {
            return self.start_order(shutdown).await;
        }
        let entries = taken.entries;
        if entries.is_empty() {
            return true;
        }
        let took = started.elapsed();
        let batch = Batch::sort_out(&entries, &self.options);
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
        let dead: Vec<Cow<[u8]>> = batch
            .poison
            .iter()
            .map(|(i, _)| *i)
            .chain(refused.iter().map(|(i, _)| *i))
            .map(|i| ballot::queue::as_queued(&entries[i]))
            .collect();
        loop {
            match self.queue.finish(&dead).await {
                Ok(finished) => {
                    self.redis_up();
                    record_batch(&entries, dead.len(), &batch.votes, taken_at, started);
                    match finished {
                        Some(dropped) => report_dropped_dead_letters(dropped),
                        None => info!(
                            "the batch left Redis before it was cleared (a peer took it \
                             back, or a lost reply's retry); it is committed and its \
                             replay changes nothing"
                        ),
                    }
                    debug!(
                        entries = entries.len(),
                        voters = batch.votes.len(),
                        dead = dead.len(),
                        ?took,
                        sort = ?(sorted - took),
                        commit = ?(committed - sorted),
                        finish = ?(started.elapsed() - committed),
                        "batch done"
                    );
                    return true;
                }
                // Committed but not cleared: a replay later is a no-op.
                Err(e) => {
                    if !self.redis_down(&e, shutdown).await {
                        return false;
                    }
                }
            }
        }
    }

    /// Starts the queue's order where Postgres's latest ballot stands; true
    /// to go on (also after a failure: the next take asks again).
    async fn start_order(&mut self, shutdown: &CancellationToken) -> bool {
        let place = match self.store.latest_place().await {
            Ok(place) => place,
            Err(failure) => return self.postgres_failed(&failure, shutdown).await,
        };
        match self.queue.start_order(place).await {
            Ok(()) => {
                info!(
                    cast_at = place.0,
                    queue_seq = place.1,
                    "queue order started"
                );
                true
            }
            Err(e) => self.redis_down(&e, shutdown).await,
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
                    debug!(error = %db_error::explain(&e), "write conflict; retrying");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                Err(failure) => {
                    if !self.postgres_failed(&failure, shutdown).await {
                        return None;
                    }
                }
            }
        }
    }

    /// Waits out an outage or a stall of Postgres; false if stopped first
    /// (or the failure needs a person: a setting that cannot work).
    async fn postgres_failed(&mut self, failure: &Failure, shutdown: &CancellationToken) -> bool {
        match failure {
            Failure::Conflict(e) | Failure::Outage(e) => self.postgres_down(e, shutdown).await,
            Failure::Stalled(bound) => {
                let why = format!("no answer within {} s", bound.as_secs());
                self.postgres_health.wait(&why, shutdown).await
            }
        }
    }
}

/// The start of a queue entry, printable, for logs.
fn preview(entry: &[u8]) -> String {
    let text = String::from_utf8_lossy(&entry[..entry.len().min(200)]);
    text.escape_debug().to_string()
}

/// Declares every metric the worker records, so each shows (at 0) from the
/// start and has its help text.
fn describe_metrics() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_counter!(
        "worker_ballots_applied_total",
        "Queue entries committed to Postgres (a voter's superseded ballots included)."
    );
    describe_counter!(
        "worker_ballots_dead_total",
        "Queue entries moved to votes:dead: poison, refused by Postgres, or oversized."
    );
    describe_histogram!(
        "worker_batch_duration_seconds",
        Unit::Seconds,
        "From taking a batch to clearing it from Redis."
    );
    describe_gauge!(
        "worker_queue_depth",
        "Entries waiting in the Redis list votes (LLEN, sampled every heartbeat)."
    );
    describe_gauge!(
        "worker_lag_seconds",
        Unit::Seconds,
        "The queue's clock now minus the cast time of the newest ballot applied."
    );
    // Registered now, so they show as 0 before the first batch.
    metrics::counter!("worker_ballots_applied_total").increment(0);
    metrics::counter!("worker_ballots_dead_total").increment(0);
}

/// One committed and cleared batch: `taken_at` is the queue's clock
/// (microseconds) and this host's instant at the take.
fn record_batch(
    entries: &[Vec<u8>],
    dead: usize,
    votes: &Votes,
    (clock_micros, taken): (i64, Instant),
    started: Instant,
) {
    metrics::counter!("worker_ballots_applied_total").increment((entries.len() - dead) as u64);
    metrics::counter!("worker_ballots_dead_total").increment(dead as u64);
    metrics::histogram!("worker_batch_duration_seconds").record(started.elapsed());
    if let Some(newest) = votes.cast_at.iter().max() {
        let now = clock_micros as f64 / 1e6 + taken.elapsed().as_secs_f64();
        metrics::gauge!("worker_lag_seconds").set((now - *newest as f64 / 1e6).max(0.0));
    }
}

/// What the take set aside before the batch: entries too big to be ballots
/// (already dead-lettered) and ballots dated too far ahead (re-dated to
/// their place in the queue).
fn report_set_asides(taken: &Taken) {
    metrics::counter!("worker_ballots_dead_total").increment(taken.oversized.len() as u64);
    if let Some((size, start)) = taken.oversized.first() {
        let largest = taken.oversized.iter().map(|(size, _)| size).max();
        warn!(
            count = taken.oversized.len(),
            largest,
            first = %preview(start),
            first_size = size,
            "dead-lettering entries over {} bytes: not ballots",
            queue::MAX_ENTRY_BYTES
        );
    }
    for entry in &taken.clamped {
        warn!(
            entry = %preview(entry),
            "cast_at more than {} s ahead of the queue's clock: ordered by its place in the queue instead",
            queue::MAX_AHEAD_MICROS / 1_000_000
        );
    }
    report_dropped_dead_letters(taken.dead_dropped);
}

fn report_dropped_dead_letters(dropped: i64) {
    if dropped > 0 {
        warn!(
            dropped,
            "dropped the oldest dead letters to keep {} within DEAD_LETTERS_MAX",
            ballot::queue::DEAD_LETTERS
        );
    }
}
