//! The Redis side: ballots move atomically from `votes` into this worker's
//! processing list and stay there until Postgres has committed them.

use std::time::Duration;

use ballot::queue::{heartbeat_key, processing_list, DEAD_LETTERS, VOTES};
use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, RedisResult, Script};
use tracing::{info, warn};

/// How long a take blocks on an empty queue, so shutdown is noticed.
const BLOCK_SECONDS: f64 = 1.0;

/// Tops the processing list up to the batch size from the head of `votes`
/// and returns all of it: a batch whose commit failed, or whose reply was
/// lost on the way, is taken again before anything new.
const FILL: &str = r"
local room = tonumber(ARGV[1]) - redis.call('LLEN', KEYS[2])
if room > 0 then
  local taken = redis.call('LPOP', KEYS[1], room)
  if taken then
    for i = 1, #taken, 1000 do
      redis.call('RPUSH', KEYS[2], unpack(taken, i, math.min(i + 999, #taken)))
    end
  end
end
return redis.call('LRANGE', KEYS[2], 0, -1)
";

/// Moves a processing list back to the head of `votes` in its order and
/// drops the heartbeat; with ARGV[1] = 'orphaned' only if the heartbeat has
/// expired. Returns how many ballots moved, or -1 if the owner is alive.
const HAND_BACK: &str = r"
if ARGV[1] == 'orphaned' and redis.call('EXISTS', KEYS[3]) == 1 then
  return -1
end
local moved = 0
while redis.call('LMOVE', KEYS[1], KEYS[2], 'RIGHT', 'LEFT') do
  moved = moved + 1
end
redis.call('DEL', KEYS[3])
return moved
";

/// A multiplexed connection made on first use; after a failure, the next
/// use makes a new one. Cloning what `get` returns is cheap.
pub struct Connection {
    client: redis::Client,
    connection: Option<MultiplexedConnection>,
}

impl Connection {
    pub fn new(client: redis::Client) -> Self {
        Connection {
            client,
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
            .client
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

pub struct Queue {
    connection: Connection,
    processing: String,
    heartbeat: String,
    batch_size: usize,
    fill: Script,
    hand_back: Script,
}

impl Queue {
    pub fn new(client: redis::Client, worker_id: &str, batch_size: usize) -> Self {
        Queue {
            connection: Connection::new(client),
            processing: processing_list(worker_id),
            heartbeat: heartbeat_key(worker_id),
            batch_size,
            fill: Script::new(FILL),
            hand_back: Script::new(HAND_BACK),
        }
    }

    /// The batch in flight, oldest first; empty if the queue stayed empty
    /// for a second.
    pub async fn take(&mut self) -> RedisResult<Vec<Vec<u8>>> {
        let batch = self.fill().await?;
        if !batch.is_empty() {
            return Ok(batch);
        }
        let mut connection = self.connection.get().await?;
        let moved: Option<Vec<u8>> = redis::cmd("BLMOVE")
            .arg(VOTES)
            .arg(&self.processing)
            .arg("LEFT")
            .arg("RIGHT")
            .arg(BLOCK_SECONDS)
            .query_async(&mut connection)
            .await
            .inspect_err(|_| self.connection.reset())?;
        match moved {
            Some(_) => self.fill().await,
            None => Ok(Vec::new()),
        }
    }

    /// After the commit: dead letters go to `votes:dead` and the batch
    /// leaves Redis, in one transaction.
    pub async fn finish(&mut self, dead: &[&[u8]]) -> RedisResult<()> {
        let mut connection = self.connection.get().await?;
        let mut pipe = redis::pipe();
        pipe.atomic();
        if !dead.is_empty() {
            pipe.rpush(DEAD_LETTERS, dead).ignore();
        }
        pipe.del(&self.processing).ignore();
        pipe.query_async::<()>(&mut connection)
            .await
            .inspect_err(|_| self.connection.reset())
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

    async fn fill(&mut self) -> RedisResult<Vec<Vec<u8>>> {
        let mut connection = self.connection.get().await?;
        self.fill
            .key(VOTES)
            .key(&self.processing)
            .arg(self.batch_size)
            .invoke_async(&mut connection)
            .await
            .inspect_err(|_| self.connection.reset())
    }
}

/// Returns the batches of workers whose heartbeat has expired to the head
/// of the queue; returns how many ballots came back.
pub async fn reclaim_orphans(
    connection: &mut MultiplexedConnection,
    own_worker_id: &str,
) -> RedisResult<i64> {
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
    let mut reclaimed = 0;
    for list in lists.iter().filter(|l| **l != own) {
        let owner = &list[ballot::queue::PROCESSING_PREFIX.len()..];
        let moved: i64 = hand_back
            .key(list)
            .key(VOTES)
            .key(heartbeat_key(owner))
            .arg("orphaned")
            .invoke_async(connection)
            .await?;
        if moved > 0 {
            info!(
                worker_id = owner,
                moved, "returned a stopped worker's batch to the queue"
            );
            reclaimed += moved;
        }
    }
    Ok(reclaimed)
}
