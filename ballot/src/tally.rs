use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::options::OPTION_IDS;
use crate::VoteOptions;

/// Votes per option, as `/api/tally` and every websocket message show it:
/// `{"votes": {"a": 2, "b": 1}, "total": 3}`, every configured option present.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
pub struct Tally {
    pub votes: BTreeMap<String, i64>,
    pub total: i64,
}

impl Tally {
    /// Counts for every configured option (0 where none), and for any other
    /// option id `a`..`h` that has votes, so votes counted for an option this
    /// service has no label for still show. Anything else is left out of
    /// both the options and the total.
    pub fn new(options: &VoteOptions, counts: impl IntoIterator<Item = (String, i64)>) -> Self {
        let mut votes: BTreeMap<String, i64> =
            options.iter().map(|o| (o.id.to_string(), 0)).collect();
        for (id, count) in counts {
            if OPTION_IDS.contains(&id.as_str()) && (count != 0 || votes.contains_key(&id)) {
                *votes.entry(id).or_default() += count;
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
    fn ids_outside_a_to_h_are_ignored() {
        let t = Tally::new(
            &VoteOptions::defaults(),
            [("a".to_string(), 1), ("z".to_string(), 5)],
        );
        assert_eq!(t.total, 1);
        assert_eq!(t.count("z"), 0);
        assert!(!t.votes.contains_key("z"));
    }

    #[test]
    fn unlabelled_options_with_votes_are_shown() {
        let t = Tally::new(
            &VoteOptions::defaults(),
            [("c".to_string(), 2), ("d".to_string(), 0)],
        );
        assert_eq!(
            serde_json::to_string(&t).unwrap(),
            r#"{"votes":{"a":0,"b":0,"c":2},"total":2}"#
        );
    }
}
