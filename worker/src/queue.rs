//! The Redis side: ballots move atomically from `votes` into this worker's
//! processing list and stay there until Postgres has committed them.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use ballot::queue::scripts::{FILL, FINISH, HAND_BACK, START_ORDER};
use ballot::queue::{heartbeat_key, processing_list, DEAD_LETTERS, ORDER, VOTES};
use kit::redis_primary::RedisPrimary;
use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, RedisResult, Script};
use tracing::{info, warn};

/// How long a take blocks on an empty queue, so shutdown is noticed.
const BLOCK_SECONDS: f64 = 1.0;

/// Our entries are about 100 bytes. Longer ones are not ballots: they go
/// to the dead letters when taken and never into a batch, so a batch holds
/// at most `BATCH_SIZE` x 4 KiB and no entry can stall a round.
pub const MAX_ENTRY_BYTES: usize = 4096;

/// How far a `cast_at` may be ahead of the queue's clock (Redis `TIME`,
/// which stamps every ballot of ours) before it is not believed.
pub const MAX_AHEAD_MICROS: i64 = 5_000_000;

/// Most bytes of oversized entries one take moves to the dead letters, so
/// a flood of them holds Redis (and the heartbeat) up for a short while at
/// a time; the rest are moved by the following takes.
const OVERSIZED_BYTES_PER_TAKE: usize = 32 << 20;

/// A multiplexed connection made on first use; after a failure, the next
/// use makes a new one, to the primary as of then (with Sentinel, the one
/// the Sentinels name: after a failover, the new one). Cloning what `get`
/// returns is cheap.
///
/// Not redis's `ConnectionManager`: it reconnects only when the socket is
/// known to be closed, not after a reply timed out (redis 1.8 retries an
/// I/O timeout on the same connection). A Redis host that vanished without
/// closing its sockets would then hold the worker for the kernel's
/// retransmission timeout (minutes); this replaces the connection after the
/// first failure of any kind.
pub struct Connection {
    primary: Arc<RedisPrimary>,
    connection: Option<MultiplexedConnection>,
}

impl Connection {
    pub fn new(primary: Arc<RedisPrimary>) -> Self {
        Connection {
            primary,
            connection: None,
        }
    }

    pub async fn get(&mut self) -> RedisResult<MultiplexedConnection> {
        if let Some(connection) = &self.connection {
            return Ok(connection.clone());
        }
        // Replies may take as long as a blocking take; the default is shorter.
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_response_timeout(Some(Duration::from_secs_f64(BLOCK_SECONDS + 4.0)));
        let connection = self
            .primary
            .client()
            .await?
            .get_multiplexed_async_connection_with_config(&config)
            .await?;
        self.connection = Some(connection.clone());
        Ok(connection)
    }

    /// Drops a connection that failed, so the next `get` replaces it.
    pub fn reset(&mut self) {
        self.connection = None;
    }
}

/// One take: the batch in flight, and what the take set aside.
#[derive(Debug, Default)]
pub struct Taken {
    /// The batch, oldest first; empty if the queue stayed empty for a second.
    pub entries: Vec<Vec<u8>>,
    /// Entries over [`MAX_ENTRY_BYTES`], already dead-lettered: (size, start).
    pub oversized: Vec<(usize, Vec<u8>)>,
    /// The starts of entries whose `cast_at` was too far ahead and was
    /// replaced by their place in the queue.
    pub clamped: Vec<Vec<u8>>,
    /// Oldest dead letters dropped to keep the cap.
    pub dead_dropped: i64,
    /// Nothing was taken: Redis has no order yet (see [`Queue::start_order`]).
    pub needs_order: bool,
    /// The queue's clock (Redis `TIME`, microseconds) at the take.
    pub clock_micros: i64,
}

pub struct Queue {
    connection: Connection,
    processing: String,
    heartbeat: String,
    batch_size: usize,
    dead_letters_max: usize,
    fill: Script,
    finish: Script,
    hand_back: Script,
    start_order: Script,
}

impl Queue {
    pub fn new(
        primary: Arc<RedisPrimary>,
        worker_id: &str,
        batch_size: usize,
        dead_letters_max: usize,
    ) -> Self {
        Queue {
            connection: Connection::new(primary),
            processing: processing_list(worker_id),
            heartbeat: heartbeat_key(worker_id),
            batch_size,
            dead_letters_max,
            fill: Script::new(FILL),
            finish: Script::new(FINISH),
            hand_back: Script::new(HAND_BACK),
            start_order: Script::new(START_ORDER),
        }
    }

    /// The batch in flight, waiting up to a second for the queue to fill.
    pub async fn take(&mut self) -> RedisResult<Taken> {
        let taken = self.fill().await?;
        if !taken.entries.is_empty() || taken.needs_order {
            return Ok(taken);
        }
        // Moving the head of `votes` onto itself is a no-op that blocks
        // until there is one: every entry is still taken by the script.
        let mut connection = self.connection.get().await?;
        let head: Option<Vec<u8>> = redis::cmd("BLMOVE")
            .arg(VOTES)
            .arg(VOTES)
            .arg("LEFT")
            .arg("LEFT")
            .arg(BLOCK_SECONDS)
            .query_async(&mut connection)
            .await
            .inspect_err(|_| self.connection.reset())?;
        match head {
            Some(_) => Ok(self.fill().await?.merge(taken)),
            None => Ok(taken),
        }
    }

    /// After the commit: dead letters go to `votes:dead` and the batch
    /// leaves Redis, in one script. Returns the dead letters dropped to
    /// keep the cap (0 if none), or None if the batch had already gone.
    pub async fn finish(&mut self, dead: &[Cow<'_, [u8]>]) -> RedisResult<Option<i64>> {
        let mut connection = self.connection.get().await?;
        let dropped: i64 = self
            .finish
            .key(&self.processing)
            .key(DEAD_LETTERS)
            .arg(self.dead_letters_max)
            .arg(dead)
            .invoke_async(&mut connection)
            .await
            .inspect_err(|_| self.connection.reset())?;
        Ok((dropped >= 0).then_some(dropped))
    }

    /// On shutdown: any uncommitted batch goes back to the head of the
    /// queue and the heartbeat is dropped. Best effort: if Redis is down,
    /// peers reclaim the batch once the heartbeat expires.
    pub async fn retire(&mut self) {
        let attempt = async {
            let mut connection = self.connection.get().await?;
            self.hand_back
                .key(&self.processing)
                .key(VOTES)
                .key(&self.heartbeat)
                .arg("own")
                .invoke_async::<i64>(&mut connection)
                .await
        };
        match tokio::time::timeout(Duration::from_secs(3), attempt).await {
            Ok(Ok(0)) => {}
            Ok(Ok(moved)) => info!(moved, "handed the uncommitted batch back to the queue"),
            Ok(Err(e)) => warn!(error = %e, "could not hand back the batch; peers will reclaim it"),
            Err(_) => warn!("Redis did not answer; peers will reclaim the batch"),
        }
    }

    /// Where the order of a new (or emptied) Redis starts: the place of the
    /// latest ballot stored, so ballots taken from now on sort after it.
    pub async fn start_order(&mut self, (cast_at, queue_seq): (i64, i64)) -> RedisResult<()> {
        let mut connection = self.connection.get().await?;
        self.start_order
            .key(ORDER)
            .arg(cast_at)
            .arg(queue_seq)
            .invoke_async(&mut connection)
            .await
            .inspect_err(|_| self.connection.reset())
    }

    async fn fill(&mut self) -> RedisResult<Taken> {
        let mut connection = self.connection.get().await?;
        type Reply = (
            Vec<(usize, Vec<u8>)>,
            Vec<Vec<u8>>,
            i64,
            Vec<Vec<u8>>,
            i64,
            i64,
        );
        let (oversized, clamped, dead_dropped, entries, needs_order, clock_micros): Reply = self
            .fill
            .key(VOTES)
            .key(&self.processing)
            .key(ORDER)
            .key(DEAD_LETTERS)
            .arg(self.batch_size)
            .arg(MAX_ENTRY_BYTES)
            .arg(MAX_AHEAD_MICROS)
            .arg(self.dead_letters_max)
            .arg(OVERSIZED_BYTES_PER_TAKE)
            .invoke_async(&mut connection)
            .await
            .inspect_err(|_| self.connection.reset())?;
        Ok(Taken {
            entries,
            oversized,
            clamped,
            dead_dropped,
            needs_order: needs_order == 1,
            clock_micros,
        })
    }
}

impl Taken {
    /// This take, after `earlier` (an empty one whose set-asides still count).
    fn merge(mut self, earlier: Taken) -> Taken {
        let mut oversized = earlier.oversized;
        oversized.append(&mut self.oversized);
        let mut clamped = earlier.clamped;
        clamped.append(&mut self.clamped);
        Taken {
            oversized,
            clamped,
            dead_dropped: earlier.dead_dropped + self.dead_dropped,
            ..self
        }
    }
}

/// Returns the batches of workers whose heartbeat has expired to the head
/// of the queue. Returns the keys that kept a batch where it is (a list of
/// the wrong type, or `votes` itself), each with what is wrong with it; the
/// other batches are returned all the same.
pub async fn reclaim_orphans(
    connection: &mut MultiplexedConnection,
    own_worker_id: &str,
) -> RedisResult<Vec<String>> {
    let pattern = format!("{}*", ballot::queue::PROCESSING_PREFIX);
    let mut lists: Vec<String> = Vec::new();
    let mut cursor = 0u64;
    loop {
        let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(&pattern)
            .arg("COUNT")
            .arg(1000)
            .query_async(connection)
            .await?;
        lists.extend(keys);
        if next == 0 {
            break;
        }
        cursor = next;
    }
    let own = processing_list(own_worker_id);
    let hand_back = Script::new(HAND_BACK);
    let mut bad_keys = Vec::new();
    for list in lists.iter().filter(|l| **l != own) {
        let owner = &list[ballot::queue::PROCESSING_PREFIX.len()..];
        let moved: RedisResult<i64> = hand_back
            .key(list)
            .key(VOTES)
            .key(heartbeat_key(owner))
            .arg("orphaned")
            .invoke_async(connection)
            .await;
        match moved {
            Ok(moved) if moved > 0 => info!(
                worker_id = owner,
                moved, "returned a stopped worker's batch to the queue"
            ),
            Ok(_) => {}
            Err(e) => bad_keys.push(kit::redis_error::bad_key(&e).ok_or(e)?),
        }
    }
    Ok(bad_keys)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A finish retried after its reply was lost (or a batch a peer took
    /// back meanwhile) dead-letters nothing twice.
    #[tokio::test]
    async fn a_repeated_finish_dead_letters_once() {
        let url = test_servers::Redis::shared().fresh_db_url();
        let client = redis::Client::open(url.as_str()).unwrap();
        let client = Arc::new(RedisPrimary::direct(client));
        let mut redis = test_servers::redis_connection(&url).await;
        let poison = b"not a ballot".to_vec();
        redis::cmd("RPUSH")
            .arg(VOTES)
            .arg(&poison)
            .query_async::<()>(&mut redis)
            .await
            .unwrap();
        let mut queue = Queue::new(client, "w", 10, 100);
        queue.start_order((0, 0)).await.unwrap();
        let taken = queue.take().await.unwrap();
        assert_eq!(taken.entries, std::slice::from_ref(&poison));
        let dead = [Cow::Borrowed(poison.as_slice())];
        assert_eq!(queue.finish(&dead).await.unwrap(), Some(0));
        assert_eq!(queue.finish(&dead).await.unwrap(), None);
        let letters: Vec<Vec<u8>> = redis::cmd("LRANGE")
            .arg(DEAD_LETTERS)
            .arg(0)
            .arg(-1)
            .query_async(&mut redis)
            .await
            .unwrap();
        assert_eq!(letters, [poison]);
    }
}
