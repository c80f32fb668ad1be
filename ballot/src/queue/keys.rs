//! Redis key names shared by the vote service and the worker.

/// The list the vote service RPUSHes ballots onto (the reference's key).
pub const VOTES: &str = "votes";

/// The queue's clock: the last `cast_at` (microseconds, Redis `TIME`) the
/// vote service stamped a ballot with. Every vote replica stamps from it in
/// the same script as the RPUSH, so ballots are ordered by one clock that
/// never runs backwards, whatever the replicas' own clocks say.
pub const CLOCK: &str = "votes:clock";

/// Where the worker's take script keeps the place of the queue it has
/// taken up to: the latest `cast_at` taken and the last `queue_seq` it gave
/// a reference-format entry (see [`crate::Ballot`]).
pub const ORDER: &str = "votes:order";

/// Entries that can never be counted, kept verbatim for inspection.
pub const DEAD_LETTERS: &str = "votes:dead";

/// A worker's in-flight ballots: `votes:processing:<worker id>`.
pub fn processing_list(worker_id: &str) -> String {
    format!("{PROCESSING_PREFIX}{worker_id}")
}

/// A worker's liveness key, with a TTL: `votes:worker:<worker id>`.
pub fn heartbeat_key(worker_id: &str) -> String {
    format!("{HEARTBEAT_PREFIX}{worker_id}")
}

pub const PROCESSING_PREFIX: &str = "votes:processing:";
pub const HEARTBEAT_PREFIX: &str = "votes:worker:";
