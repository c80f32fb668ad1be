//! The contract between the voting services: what a ballot is, where it is
//! queued, which options exist, how Postgres stores and counts votes, and the
//! settings every service shares.

pub mod config;
pub mod db_error;
pub mod healthcheck;
pub mod limits;
pub mod metrics;
pub mod options;
pub mod queue;
pub mod redis_error;
pub mod schema;
pub mod shutdown;
pub mod telemetry;

mod tally;

pub use options::{VoteOption, VoteOptions};
pub use queue::{now_micros, Ballot, Poison};
pub use tally::Tally;
