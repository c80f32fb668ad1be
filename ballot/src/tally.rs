use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::VoteOptions;

/// Votes per option, as `/api/tally` and every websocket message show it:
/// `{"votes": {"a": 2, "b": 1}, "total": 3}`, every configured option present.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
pub struct Tally {
    pub votes: BTreeMap<String, i64>,
    pub total: i64,
}

impl Tally {
    /// Counts for the configured options; rows for options no longer
    /// configured are left out of both the options and the total.
    pub fn new(options: &VoteOptions, counts: impl IntoIterator<Item = (String, i64)>) -> Self {
        let mut votes: BTreeMap<String, i64> =
            options.iter().map(|o| (o.id.to_string(), 0)).collect();
        for (id, count) in counts {
            if let Some(slot) = votes.get_mut(&id) {
                *slot += count;
            }
        }
        let total = votes.values().sum();
        Tally { votes, total }
    }

    /// Counts `votes` more for option `id`, as the tally will show them.
    pub fn add(&mut self, id: &str, votes: i64) {
        *self.votes.entry(id.to_string()).or_default() += votes;
        self.total += votes;
    }

    pub fn count(&self, id: &str) -> i64 {
        self.votes.get(id).copied().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_option_is_present() {
        let t = Tally::new(&VoteOptions::defaults(), [("b".to_string(), 2)]);
        assert_eq!(
            serde_json::to_string(&t).unwrap(),
            r#"{"votes":{"a":0,"b":2},"total":2}"#
        );
    }

    #[test]
    fn added_votes_count_in_the_option_and_the_total() {
        let mut t = Tally::new(&VoteOptions::defaults(), [("a".to_string(), 1)]);
        t.add("a", 2);
        t.add("b", 1);
        assert_eq!((t.count("a"), t.count("b"), t.total), (3, 1, 4));
    }

    #[test]
    fn unconfigured_options_are_ignored() {
        let t = Tally::new(
            &VoteOptions::defaults(),
            [("a".to_string(), 1), ("z".to_string(), 5)],
        );
        assert_eq!(t.total, 1);
        assert_eq!(t.count("z"), 0);
    }
}
