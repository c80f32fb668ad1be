//! The Redis queue between the vote service and the worker, in one place:
//! the key names, what an entry is and how it is written and read, the Lua
//! scripts that move entries, and how entries in the reference app's format
//! get their place in the queue. The vote service and the worker only call
//! into this module, so neither can drift from the other's idea of an entry.

mod entry;
mod keys;
mod reference;
pub mod scripts;
mod unstamped;

pub use entry::{now_micros, Ballot, Poison};
pub use keys::{
    heartbeat_key, processing_list, CLOCK, DEAD_LETTERS, HEARTBEAT_PREFIX, ORDER,
    PROCESSING_PREFIX, VOTES,
};
pub use reference::as_queued;
pub use unstamped::unstamped_entry;
