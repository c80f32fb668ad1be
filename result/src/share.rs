//! How the page splits 100% between the options.

/// Whole percentages, one per count, that always sum to 100 (largest
/// remainder method: floor every share, then hand the missing points to the
/// largest fractions, earlier options first on ties). With nothing counted
/// yet there are none: no option has a share of nothing (the page shows no
/// percentage rather than an even split nobody voted for).
pub fn percentages(counts: &[i64]) -> Option<Vec<u32>> {
    let weights: Vec<i64> = counts.iter().map(|&c| c.max(0)).collect();
    let total: i64 = weights.iter().sum();
    if total == 0 {
        return None;
    }
    let mut shares: Vec<u32> = weights.iter().map(|w| (w * 100 / total) as u32).collect();
    let missing = 100 - shares.iter().sum::<u32>() as usize;
    let mut by_remainder: Vec<usize> = (0..weights.len()).collect();
    // A stable sort keeps option order among equal remainders.
    by_remainder.sort_by_key(|&i| std::cmp::Reverse(weights[i] * 100 % total));
    for &i in by_remainder.iter().take(missing) {
        shares[i] += 1;
    }
    Some(shares)
}

/// "No votes yet", "1 vote", "N votes".
pub fn total_text(total: i64) -> String {
    match total {
        0 => "No votes yet".to_string(),
        n => votes_text(n),
    }
}

/// "0 votes", "1 vote", "N votes".
pub fn votes_text(count: i64) -> String {
    match count {
        1 => "1 vote".to_string(),
        n => format!("{n} votes"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_counted_has_no_percentages() {
        assert_eq!(percentages(&[0, 0]), None);
        assert_eq!(percentages(&[0, 0, 0]), None);
        assert_eq!(percentages(&[]), None);
    }

    #[test]
    fn awkward_counts_still_sum_to_100() {
        let shares = |counts: &[i64]| percentages(counts).unwrap();
        assert_eq!(shares(&[1, 1, 1]), [34, 33, 33]);
        assert_eq!(shares(&[2, 1]), [67, 33]);
        assert_eq!(shares(&[1, 2]), [33, 67]);
        assert_eq!(shares(&[1, 0]), [100, 0]);
        assert_eq!(shares(&[1, 998, 1]), [0, 100, 0]);
        assert_eq!(shares(&[1, 1, 1, 1, 1, 1, 1]), [15, 15, 14, 14, 14, 14, 14]);
        for counts in [
            vec![1, 1, 1, 1, 1, 1, 1, 1],
            vec![7, 13, 29, 1, 0, 3],
            vec![333, 333, 334],
            vec![1, 1_000_000_007],
            vec![5, 5, 5, 5, 5, 5],
        ] {
            let shares = percentages(&counts).unwrap();
            assert_eq!(shares.iter().sum::<u32>(), 100, "{counts:?} -> {shares:?}");
            assert_eq!(shares.len(), counts.len());
        }
    }

    #[test]
    fn every_small_split_sums_to_100() {
        for a in 0..40 {
            for b in 0..40 {
                for c in 0..12 {
                    let Some(shares) = percentages(&[a, b, c]) else {
                        assert_eq!(a + b + c, 0);
                        continue;
                    };
                    assert_eq!(shares.iter().sum::<u32>(), 100, "{a} {b} {c}");
                }
            }
        }
    }

    #[test]
    fn totals_read_naturally() {
        assert_eq!(total_text(0), "No votes yet");
        assert_eq!(total_text(1), "1 vote");
        assert_eq!(total_text(2), "2 votes");
        assert_eq!(votes_text(0), "0 votes");
    }
}
