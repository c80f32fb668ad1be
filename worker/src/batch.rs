//! Turning raw queue entries into one write: poison set aside, one ballot per
//! voter (the latest), sorted by voter so concurrent workers lock rows alike.

use std::collections::HashMap;

use ballot::{Ballot, VoteOptions};

/// One batch of queue entries, sorted out.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Batch {
    /// The latest ballot of each voter in the batch.
    pub votes: Votes,
    /// Entries that can never be counted: (position in the batch, reason).
    pub poison: Vec<(usize, String)>,
}

/// Ballots as the columns of one multi-row upsert, one row per voter.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Votes {
    pub voter_ids: Vec<String>,
    pub votes: Vec<String>,
    pub cast_at: Vec<i64>,
    pub queue_seq: Vec<i64>,
    /// Where each row came from in the batch, to dead-letter it verbatim.
    pub entries: Vec<usize>,
}

impl Votes {
    pub fn len(&self) -> usize {
        self.voter_ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.voter_ids.is_empty()
    }

    /// Each row on its own, to find the one Postgres refuses.
    pub fn rows(&self) -> impl Iterator<Item = Votes> + '_ {
        (0..self.len()).map(|i| Votes {
            voter_ids: vec![self.voter_ids[i].clone()],
            votes: vec![self.votes[i].clone()],
            cast_at: vec![self.cast_at[i]],
            queue_seq: vec![self.queue_seq[i]],
            entries: vec![self.entries[i]],
        })
    }
}

impl Batch {
    /// `entries` in queue order, oldest first, as the take script left them:
    /// every ballot has its place (`cast_at`, `queue_seq`) by then.
    pub fn sort_out(entries: &[Vec<u8>], options: &VoteOptions) -> Batch {
        let mut poison = Vec::new();
        let mut latest: HashMap<String, (usize, Ballot)> = HashMap::new();
        for (index, entry) in entries.iter().enumerate() {
            match Ballot::parse(entry, options) {
                Err(reason) => poison.push((index, reason.to_string())),
                Ok(ballot) => match latest.get(&ballot.voter_id) {
                    // On equal places the first one stays, as in Postgres,
                    // so where batches split the queue cannot matter.
                    Some((_, seen)) if seen.order() >= ballot.order() => {}
                    _ => {
                        latest.insert(ballot.voter_id.clone(), (index, ballot));
                    }
                },
            }
        }
        let mut rows: Vec<_> = latest.into_values().collect();
        rows.sort_unstable_by(|a, b| a.1.voter_id.cmp(&b.1.voter_id));
        let mut votes = Votes::default();
        for (index, ballot) in rows {
            let (cast_at, queue_seq) = ballot.order();
            votes.voter_ids.push(ballot.voter_id);
            votes.votes.push(ballot.vote);
            votes.cast_at.push(cast_at);
            votes.queue_seq.push(queue_seq);
            votes.entries.push(index);
        }
        Batch { votes, poison }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sort_out(entries: &[&str]) -> Batch {
        let entries: Vec<Vec<u8>> = entries.iter().map(|e| e.as_bytes().to_vec()).collect();
        Batch::sort_out(&entries, &VoteOptions::every_id())
    }

    #[test]
    fn latest_ballot_per_voter_sorted_by_voter() {
        let batch = sort_out(&[
            r#"{"voter_id":"v2","vote":"a","cast_at":20}"#,
            r#"{"voter_id":"v1","vote":"a","cast_at":30}"#,
            r#"{"voter_id":"v2","vote":"b","cast_at":10}"#,
            r#"{"voter_id":"v1","vote":"b","cast_at":30}"#,
        ]);
        assert_eq!(batch.votes.voter_ids, ["v1", "v2"]);
        assert_eq!(batch.votes.votes, ["a", "a"]);
        assert_eq!(batch.votes.cast_at, [30, 20]);
        assert_eq!(batch.votes.queue_seq, [0, 0]);
        assert_eq!(batch.votes.entries, [1, 0]);
        assert!(batch.poison.is_empty());
    }

    #[test]
    fn a_place_in_the_queue_sorts_after_the_ballot_before_it() {
        let batch = sort_out(&[
            r#"{"voter_id":"v","vote":"a","cast_at":30}"#,
            r#"{"cast_at":30,"queue_seq":7,"voter_id":"v","vote":"b"}"#,
            r#"{"cast_at":30,"queue_seq":8,"voter_id":"w","vote":"a"}"#,
            r#"{"voter_id":"w","vote":"c","cast_at":31}"#,
        ]);
        assert_eq!(batch.votes.votes, ["b", "c"]);
        assert_eq!(batch.votes.queue_seq, [7, 0]);
    }

    #[test]
    fn every_option_id_counts_whatever_is_labelled() {
        let batch = sort_out(&[
            r#"{"voter_id":"v","vote":"h","cast_at":1}"#,
            r#"{"voter_id":"w","vote":"i","cast_at":1}"#,
        ]);
        assert_eq!(batch.votes.votes, ["h"]);
        assert_eq!(batch.poison.len(), 1);
    }

    #[test]
    fn poison_is_set_aside_with_its_position() {
        let batch = sort_out(&[
            "not json",
            r#"{"voter_id":"v","vote":"a"}"#,
            r#"{"voter_id":"v","vote":"z"}"#,
            r#"{"vote":"a"}"#,
        ]);
        let positions: Vec<usize> = batch.poison.iter().map(|(i, _)| *i).collect();
        assert_eq!(positions, [0, 2, 3]);
        assert!(batch.poison[1].1.contains("unknown option"));
        assert_eq!(batch.votes.len(), 1);
    }

    #[test]
    fn rows_split_a_batch() {
        let batch = sort_out(&[
            r#"{"voter_id":"a","vote":"a","cast_at":1}"#,
            r#"{"voter_id":"b","vote":"b","cast_at":2}"#,
        ]);
        let rows: Vec<Votes> = batch.votes.rows().collect();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[1].voter_ids, ["b"]);
        assert_eq!(rows[1].entries, [1]);
    }
}
