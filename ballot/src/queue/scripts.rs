//! The Lua scripts that queue and move entries, each in its own file under
//! `scripts/`. What a script expects in KEYS and ARGV is written here, where
//! the services that call it read it.

/// Queues one ballot, stamped with the queue's clock: Redis `TIME` in
/// microseconds, made strictly later than the last stamp any vote replica
/// gave (kept at `KEYS[1]`). So ballots are ordered by one clock that never
/// runs backwards, whatever the clocks of the hosts that queued them say.
/// `ARGV[1]` is the ballot's JSON without its closing brace; the script adds
/// `"cast_at"` and the brace. RPUSH is its first write, and the clock's SET
/// after it cannot fail, so an error reply means the ballot was not queued.
/// A clock that is not an integer is refused (`BADKEY`). This script runs
/// once per vote, so it checks without `checks.lua`'s helpers: defining them
/// on every call cost about a sixth of the script's time in Redis
/// (`usec_per_call`). (Writing after TIME needs Redis 5 or later.)
///
/// KEYS: [`CLOCK`](super::CLOCK), [`VOTES`](super::VOTES).
/// ARGV: the entry from [`unstamped_entry`](super::unstamped_entry).
pub const QUEUE: &str = include_str!("scripts/queue.lua");

// Every other script starts with `checks.lua`: it checks the type and value of
// each key it uses before changing any, and otherwise fails with an error
// whose code is `BADKEY`, naming the key (`kit::redis_error::bad_key` reads it).
//
// FILL and FINISH dead-letter, so both also start with `trim_dead.lua`: it keeps
// the dead letters to the newest `cap` entries and returns how many it
// dropped, so the worker can log the drop.

/// Tops the processing list up to the batch size from the head of `votes`
/// and returns {oversized, clamped, dead letters dropped, the batch, 1 if
/// the order must be started first (with [`START_ORDER`]), Redis's clock in
/// microseconds}. The batch is all of the processing list, so one whose
/// commit failed, or whose reply was lost on the way, is taken again before
/// anything new.
///
/// Ordering happens here, atomically with the take, so it follows the
/// queue: an entry without a `cast_at` (the reference format), or with one
/// too far ahead of the queue's clock, gets the place of the latest ballot
/// taken before it (`cast_at`) plus a `queue_seq` that grows with every
/// such entry. The place is written into the entry, so a batch handed back
/// to the queue keeps it; [`as_queued`](super::as_queued) takes it off a
/// reference-format entry again. Oversized entries go to the dead letters.
///
/// KEYS: votes, processing list, order, dead letters.
/// ARGV: batch size, max entry bytes, max ahead (us), dead-letter cap,
/// oversized bytes per take.
pub const FILL: &str = concat!(
    include_str!("scripts/checks.lua"),
    include_str!("scripts/trim_dead.lua"),
    include_str!("scripts/fill.lua")
);

/// Sets where the order starts, unless a peer set it first.
/// KEYS: order. ARGV: cast_at, queue_seq.
pub const START_ORDER: &str = concat!(
    include_str!("scripts/checks.lua"),
    include_str!("scripts/start_order.lua")
);

/// After the commit: dead letters go to `votes:dead` and the batch leaves
/// Redis, at once. Only if the batch is still there: a retry after a lost
/// reply, or a batch a peer reclaimed meanwhile, dead-letters nothing
/// twice. Returns the dead letters dropped to keep the cap, or -1.
///
/// KEYS: processing list, dead letters. ARGV: cap, then the dead letters.
pub const FINISH: &str = concat!(
    include_str!("scripts/checks.lua"),
    include_str!("scripts/trim_dead.lua"),
    include_str!("scripts/finish.lua")
);

/// Moves a processing list back to the head of `votes` in its order and
/// drops the heartbeat; with `ARGV[1]` = `'orphaned'` only if the heartbeat has
/// expired (one that is not a string or never expires was written by no
/// live worker, whose beat is one `SET ... PX`, and counts as expired). Returns how many ballots moved, or -1 if the owner is alive.
///
/// KEYS: processing list, votes, heartbeat. ARGV: 'own' or 'orphaned'.
pub const HAND_BACK: &str = concat!(
    include_str!("scripts/checks.lua"),
    include_str!("scripts/hand_back.lua")
);
