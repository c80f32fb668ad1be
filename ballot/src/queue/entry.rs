//! One queue entry: a ballot as JSON, and reading it back (or naming why
//! it can never be counted).

use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::VoteOptions;

/// Longest voter id Postgres accepts (`votes.id` is `VARCHAR(255)`).
pub const MAX_VOTER_ID_LEN: usize = 255;

/// One vote as it travels through the Redis list `votes`.
///
/// The reference app's entries carry only `voter_id` and `vote`. Ours add
/// `cast_at`: microseconds of the queue's clock (Redis `TIME`, see
/// [`crate::queue::CLOCK`]) when the vote service queued the ballot, so a
/// voter's latest ballot wins even when two workers commit out of order.
/// The worker gives a reference-format entry both fields when it takes it
/// from the queue (`cast_at` of the latest ballot queued before it, and its
/// `queue_seq`), so it is ordered by its place in the queue.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Ballot {
    pub voter_id: String,
    pub vote: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cast_at: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue_seq: Option<i64>,
}

/// Why a queue entry cannot be counted; it goes to the dead-letter list.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum Poison {
    #[error("not a ballot: {0}")]
    Malformed(String),
    #[error("missing or empty voter_id")]
    MissingVoter,
    #[error("voter_id longer than {MAX_VOTER_ID_LEN} bytes")]
    VoterTooLong,
    #[error("unknown option {0:?}")]
    UnknownOption(String),
}

impl Ballot {
    /// A ballot cast now, by this host's clock.
    pub fn cast(voter_id: impl Into<String>, vote: impl Into<String>) -> Self {
        Ballot {
            voter_id: voter_id.into(),
            vote: vote.into(),
            cast_at: Some(now_micros()),
            queue_seq: None,
        }
    }

    /// Where the ballot stands among the voter's ballots: later wins.
    pub fn order(&self) -> (i64, i64) {
        (self.cast_at.unwrap_or(0), self.queue_seq.unwrap_or(0))
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a ballot always serializes")
    }

    /// Reads one queue entry, accepting only ballots for a configured option.
    pub fn parse(raw: &[u8], options: &VoteOptions) -> Result<Self, Poison> {
        let ballot: Ballot =
            serde_json::from_slice(raw).map_err(|e| Poison::Malformed(e.to_string()))?;
        if ballot.voter_id.trim().is_empty() {
            return Err(Poison::MissingVoter);
        }
        if ballot.voter_id.len() > MAX_VOTER_ID_LEN {
            return Err(Poison::VoterTooLong);
        }
        if options.get(&ballot.vote).is_none() {
            return Err(Poison::UnknownOption(ballot.vote));
        }
        Ok(ballot)
    }
}

/// Microseconds since the Unix epoch, the unit of `cast_at`.
pub fn now_micros() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options() -> VoteOptions {
        VoteOptions::defaults()
    }

    #[test]
    fn reference_format_is_accepted() {
        let b = Ballot::parse(br#"{"voter_id":"abc","vote":"b"}"#, &options()).unwrap();
        assert_eq!(b.voter_id, "abc");
        assert_eq!(b.vote, "b");
        assert_eq!(b.cast_at, None);
    }

    #[test]
    fn a_stamped_reference_ballot_orders_by_its_place() {
        let b = Ballot::parse(
            br#"{"cast_at":17,"queue_seq":3,"voter_id":"abc","vote":"b"}"#,
            &options(),
        )
        .unwrap();
        assert_eq!(b.order(), (17, 3));
        assert!(b.order() > (17, 0) && b.order() < (18, 0));
    }

    #[test]
    fn round_trips_with_timestamp() {
        let b = Ballot::cast("v1", "a");
        assert_eq!(Ballot::parse(b.to_json().as_bytes(), &options()), Ok(b));
    }

    #[test]
    fn poison_is_named() {
        let o = options();
        assert!(matches!(
            Ballot::parse(b"not json", &o),
            Err(Poison::Malformed(_))
        ));
        assert_eq!(
            Ballot::parse(br#"{"voter_id":"","vote":"a"}"#, &o),
            Err(Poison::MissingVoter)
        );
        assert!(matches!(
            Ballot::parse(br#"{"vote":"a"}"#, &o),
            Err(Poison::Malformed(_))
        ));
        assert_eq!(
            Ballot::parse(br#"{"voter_id":"x","vote":"z"}"#, &o),
            Err(Poison::UnknownOption("z".into()))
        );
        let long = format!(r#"{{"voter_id":"{}","vote":"a"}}"#, "x".repeat(256));
        assert_eq!(
            Ballot::parse(long.as_bytes(), &o),
            Err(Poison::VoterTooLong)
        );
    }
}
