//! With Sentinel a ballot counts once a replica has it. `WAIT 1` returns
//! once a replica has every write its connection sent before it. All votes
//! share one connection, and Redis runs nothing more from a connection
//! while a WAIT of it blocks: one WAIT per ballot would queue every ballot
//! behind the previous one's round trip to the replica. So one WAIT covers
//! every ballot whose queue reply came before it was sent (group commit):
//! at most one is in flight, and a ballot it covers takes its answer.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use redis::RedisResult;

use crate::connection::Link;

/// How long a WAIT waits for a replica.
pub const REPLICA_WAIT: Duration = Duration::from_millis(1000);

pub struct Replicas {
    /// Ballots queued so far; a ballot's ticket is this count once Redis
    /// answered its queue script.
    queued: AtomicU64,
    /// The last WAIT's answer; held while a WAIT is in flight.
    last: tokio::sync::Mutex<Round>,
}

struct Round {
    /// The connection it was sent on: it covers that connection's writes only.
    link: u64,
    /// Tickets below this were queued before it was sent.
    covered: u64,
    /// Ok if a replica confirmed, else why not.
    outcome: Result<(), String>,
}

impl Replicas {
    pub fn new() -> Replicas {
        Replicas {
            queued: AtomicU64::new(0),
            last: tokio::sync::Mutex::new(Round {
                link: u64::MAX,
                covered: 0,
                outcome: Ok(()),
            }),
        }
    }

    /// Taken once Redis answered a ballot's queue script, before `confirm`.
    pub fn ticket(&self) -> u64 {
        self.queued.fetch_add(1, Ordering::SeqCst)
    }

    /// Whether a replica has the ballot of `ticket`, queued on `link`: the
    /// answer of a WAIT sent after it on the same connection, this call's
    /// own if none yet. Err: the connection failed.
    pub async fn confirm(&self, ticket: u64, link: &Link) -> RedisResult<Result<(), String>> {
        let mut last = self.last.lock().await;
        if last.link == link.id && last.covered > ticket {
            return Ok(last.outcome.clone());
        }
        // Every ticket below this was taken after its queue reply came,
        // so before the WAIT below is sent.
        let covered = self.queued.load(Ordering::SeqCst);
        let copies = redis::cmd("WAIT")
            .arg(1)
            .arg(REPLICA_WAIT.as_millis() as u64)
            .query_async::<i64>(&mut link.connection.clone())
            .await;
        let outcome = match copies {
            Ok(copies) if copies >= 1 => Ok(()),
            Ok(_) => Err(format!("no replica confirmed it within {REPLICA_WAIT:?}")),
            Err(e) if e.code().is_some() => Err(format!("Redis refused WAIT: {e}")),
            Err(e) => return Err(e),
        };
        *last = Round {
            link: link.id,
            covered,
            outcome: outcome.clone(),
        };
        Ok(outcome)
    }
}
