//! The contract between the voting services, and only that: what a ballot
//! is, how it is queued, which options exist, how Postgres stores and
//! counts votes. What the services do alike at run time is in `kit`.

pub mod options;
pub mod queue;
pub mod schema;

mod tally;

pub use options::{VoteOption, VoteOptions};
pub use queue::{now_micros, Ballot, Poison};
pub use tally::Tally;
