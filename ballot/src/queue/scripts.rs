//! The Lua scripts that queue and move entries, each in its own file under
//! `scripts/`. What a script expects in KEYS and ARGV is written here, where
//! the services that call it read it.

/// Queues one ballot, stamped with the queue's clock: Redis `TIME` in
/// microseconds, made strictly later than the last stamp any vote replica
/// gave (kept at KEYS[1]). So ballots are ordered by one clock that never
/// runs backwards, whatever the clocks of the hosts that queued them say.
/// ARGV[1] is the ballot's JSON without its closing brace; the script adds
/// `"cast_at"` and the brace. RPUSH comes last, so an error reply means the
/// ballot was not queued. (Writing after TIME needs Redis 5 or later.)
///
/// KEYS: [`CLOCK`](super::CLOCK), [`VOTES`](super::VOTES).
/// ARGV: the entry from [`unstamped_entry`](super::unstamped_entry).
pub const QUEUE: &str = include_str!("scripts/queue.lua");
