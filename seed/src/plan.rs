//! Which option each voter picks, decided up front so the split is exact and
//! the choices are spread evenly over the run rather than sent in blocks.

use crate::config::Split;

/// `--changes` is kept in parts per million so that the number of voters who
/// change is exact integer arithmetic, not a float rounding accident.
const PER_MILLION: u64 = 1_000_000;

pub struct Plan {
    /// One round of the split, as long as the weights add up to: 2:1 is `a a b`
    /// interleaved as `a b a`.
    round: Vec<u8>,
    /// Rounds before `tail` takes over; all of them when running by time.
    full_rounds: u64,
    /// The last, partial round of a fixed count, itself split exactly.
    tail: Vec<u8>,
    changes_ppm: u64,
    options: usize,
}

impl Plan {
    /// `voters`: the exact number to plan for, or `None` to run by time.
    pub fn new(split: &Split, voters: Option<u64>, changes: f64) -> Plan {
        let weights: Vec<u64> = split.0.iter().map(|&w| u64::from(w)).collect();
        let round_len: u64 = weights.iter().sum();
        let (full_rounds, tail) = match voters {
            Some(n) => (n / round_len, largest_remainder(n % round_len, &weights)),
            None => (u64::MAX, vec![0; weights.len()]),
        };
        Plan {
            round: interleave(&weights),
            full_rounds,
            tail: interleave(&tail),
            changes_ppm: (changes * PER_MILLION as f64).round() as u64,
            options: weights.len(),
        }
    }

    /// Index of the option voter number `voter` (from 0) votes for first.
    pub fn first_choice(&self, voter: u64) -> usize {
        let round_len = self.round.len() as u64;
        let round = voter / round_len;
        let choice = if round < self.full_rounds {
            self.round[(voter % round_len) as usize]
        } else {
            self.tail[(voter - self.full_rounds * round_len) as usize]
        };
        usize::from(choice)
    }

    /// The option this voter switches to, for the share of voters who change
    /// their mind: the next option in the split. Spread evenly: of every
    /// 100 voters at 10%, exactly 10 change.
    pub fn second_choice(&self, voter: u64) -> Option<usize> {
        (self.changes_among(voter + 1) > self.changes_among(voter))
            .then(|| (self.first_choice(voter) + 1) % self.options)
    }

    /// How many of the first `voters` vote a second time.
    pub fn changes_among(&self, voters: u64) -> u64 {
        if self.options < 2 {
            return 0;
        }
        (u128::from(voters) * u128::from(self.changes_ppm) / u128::from(PER_MILLION)) as u64
    }
}

/// Divides `n` exactly by `weights`: each option gets the whole part of its
/// share, and what is left goes one each to the largest remainders (ties to
/// the earlier option), so 2:1 of 3,000 is exactly 2,000 and 1,000.
pub fn largest_remainder(n: u64, weights: &[u64]) -> Vec<u64> {
    let total: u128 = weights.iter().map(|&w| u128::from(w)).sum();
    let exact: Vec<(u64, u128)> = weights
        .iter()
        .map(|&w| {
            let share = u128::from(n) * u128::from(w);
            ((share / total) as u64, share % total)
        })
        .collect();
    let mut counts: Vec<u64> = exact.iter().map(|&(whole, _)| whole).collect();
    let left = n - counts.iter().sum::<u64>();
    let mut by_remainder: Vec<usize> = (0..weights.len()).collect();
    by_remainder.sort_by_key(|&i| std::cmp::Reverse(exact[i].1));
    for &i in by_remainder.iter().take(left as usize) {
        counts[i] += 1;
    }
    counts
}

/// Orders `counts[k]` copies of each option `k` so that every prefix is as
/// close to the final proportions as it can be: each step picks the option
/// furthest behind its share.
fn interleave(counts: &[u64]) -> Vec<u8> {
    let total: u64 = counts.iter().sum();
    let mut sent = vec![0u64; counts.len()];
    (1..=total)
        .map(|step| {
            let behind = |k: usize| {
                i128::from(counts[k]) * i128::from(step) - i128::from(sent[k]) * i128::from(total)
            };
            let pick = (0..counts.len())
                .filter(|&k| sent[k] < counts[k])
                .max_by_key(|&k| (behind(k), std::cmp::Reverse(k)))
                .expect("a step for every ballot left");
            sent[pick] += 1;
            pick as u8
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(weights: &[u32]) -> Split {
        Split(weights.to_vec())
    }

    fn first_counts(plan: &Plan, voters: u64, options: usize) -> Vec<u64> {
        let mut counts = vec![0; options];
        for v in 0..voters {
            counts[plan.first_choice(v)] += 1;
        }
        counts
    }

    #[test]
    fn largest_remainder_is_exact() {
        assert_eq!(largest_remainder(3_000, &[2, 1]), [2_000, 1_000]);
        assert_eq!(largest_remainder(10, &[1, 1, 1]), [4, 3, 3]);
        assert_eq!(largest_remainder(7, &[1, 2, 4]), [1, 2, 4]);
        // 5 of 1:3 is 1.25 and 3.75: the larger remainder gets the spare one.
        assert_eq!(largest_remainder(5, &[1, 3]), [1, 4]);
        assert_eq!(largest_remainder(1, &[0, 1]), [0, 1]);
        assert_eq!(largest_remainder(0, &[2, 1]), [0, 0]);
    }

    #[test]
    fn plans_follow_the_split_exactly() {
        for (weights, n) in [
            (&[2, 1][..], 3_000),
            (&[2, 1][..], 3_001),
            (&[1, 1, 1][..], 10),
            (&[1, 3][..], 5),
            (&[5, 0, 2][..], 1_234),
            (&[7][..], 3),
            (&[3, 3, 1, 1, 9, 2, 4, 1][..], 99_999),
        ] {
            let plan = Plan::new(&split(weights), Some(n), 0.0);
            let wide: Vec<u64> = weights.iter().map(|&w| u64::from(w)).collect();
            assert_eq!(
                first_counts(&plan, n, weights.len()),
                largest_remainder(n, &wide),
                "{weights:?} of {n}"
            );
        }
    }

    #[test]
    fn choices_are_interleaved() {
        let plan = Plan::new(&split(&[2, 1]), Some(6), 0.0);
        let order: Vec<usize> = (0..6).map(|v| plan.first_choice(v)).collect();
        assert_eq!(order, [0, 1, 0, 0, 1, 0]);
    }

    #[test]
    fn running_by_time_repeats_the_round() {
        let plan = Plan::new(&split(&[1, 2]), None, 0.0);
        assert_eq!(first_counts(&plan, 3_000_000, 2), [1_000_000, 2_000_000]);
    }

    #[test]
    fn the_share_of_changes_is_exact_and_moves_to_the_next_option() {
        let plan = Plan::new(&split(&[1, 1, 1]), Some(1_000), 0.29);
        let changes: Vec<(usize, usize)> = (0..1_000)
            .filter_map(|v| {
                plan.second_choice(v)
                    .map(|second| (plan.first_choice(v), second))
            })
            .collect();
        assert_eq!(changes.len(), 290);
        assert_eq!(plan.changes_among(1_000), 290);
        assert!(changes
            .iter()
            .all(|&(first, second)| second == (first + 1) % 3));
        assert!(changes.iter().any(|&(first, _)| first == 2), "c wraps to a");
    }

    #[test]
    fn nobody_changes_by_default_or_with_one_option() {
        let none = Plan::new(&split(&[2, 1]), Some(100), 0.0);
        assert!((0..100).all(|v| none.second_choice(v).is_none()));
        let single = Plan::new(&split(&[1]), Some(100), 1.0);
        assert!((0..100).all(|v| single.second_choice(v).is_none()));
        let all = Plan::new(&split(&[2, 1]), Some(100), 1.0);
        assert!((0..100).all(|v| all.second_choice(v).is_some()));
    }
}
