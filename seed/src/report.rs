//! The summary printed at the end, and the one-line reason a run failed.

use std::fmt;
use std::time::Duration;

use ballot::Tally;
use reqwest::Url;

use crate::load::Sent;
use crate::verify::{Verification, SETTLE};

#[derive(Debug)]
pub struct Summary {
    pub target: Url,
    pub sent: Sent,
    pub verification: Option<Verification>,
    /// Stopped early on request (SIGTERM, Ctrl-C): verification was skipped.
    pub stopped: bool,
}

impl Summary {
    /// Why this run counts as failed, in one line; `None` when every request
    /// succeeded and, if asked, the tally matched. A request whose outcome is
    /// unknown counts as failed here too.
    pub fn problem(&self) -> Option<String> {
        let mut problems = Vec::new();
        let failed = self.sent.failed() + self.sent.unknown();
        if failed > 0 {
            let mut kinds = vec![self.failure_kinds()];
            if self.sent.unknown() > 0 {
                kinds.push(format!("unknown outcome: {}", self.unknown_kinds()));
            }
            kinds.retain(|kinds| !kinds.is_empty());
            problems.push(format!(
                "{failed} of {} requests failed ({})",
                self.sent.requests,
                kinds.join("; ")
            ));
        }
        if let Some(v) = self.verification.as_ref().filter(|v| !v.held()) {
            let last = match (&v.seen, &v.last_error) {
                (_, Some(error)) => format!("last read failed: {error}"),
                (Some(seen), None) => format!("last seen {}", show_tally(seen)),
                (None, None) => "never read".to_string(),
            };
            let wanted = match &v.range {
                None => format!("reach {}", show_tally(&v.expected)),
                Some((low, high)) => format!(
                    "settle between {} and {}",
                    show_tally(low),
                    show_tally(high)
                ),
            };
            problems.push(format!(
                "tally did not {wanted} within {:?}; {last}",
                v.timeout
            ));
        }
        (!problems.is_empty()).then(|| problems.join("; "))
    }

    fn failure_kinds(&self) -> String {
        show_kinds(&self.sent.failures)
    }

    fn unknown_kinds(&self) -> String {
        show_kinds(&self.sent.unknown)
    }
}

/// "HTTP 503: 2, connection reset: 1".
pub(crate) fn show_kinds(kinds: &std::collections::BTreeMap<String, u64>) -> String {
    let kinds: Vec<String> = kinds
        .iter()
        .map(|(kind, n)| format!("{kind}: {n}"))
        .collect();
    kinds.join(", ")
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sent = &self.sent;
        let seconds = sent.wall.as_secs_f64();
        writeln!(f, "target       {}", self.target)?;
        if self.stopped {
            writeln!(f, "stopped      early, on request: verification skipped")?;
        }
        write!(
            f,
            "requests     {} sent, {} succeeded, {} failed",
            sent.requests,
            sent.succeeded,
            sent.failed()
        )?;
        if sent.unknown() > 0 {
            write!(f, ", {} unknown outcome", sent.unknown())?;
        }
        writeln!(f)?;
        if sent.failed() > 0 {
            writeln!(f, "failures     {}", self.failure_kinds())?;
        }
        if sent.unknown() > 0 {
            writeln!(
                f,
                "unknown      {} (sent, not confirmed: each may or may not have counted)",
                self.unknown_kinds()
            )?;
        }
        if let Some((first, last)) = sent.failing {
            writeln!(
                f,
                "failing      from {} to {} after the start ({})",
                seconds_text(first),
                seconds_text(last),
                seconds_text(last - first)
            )?;
        }
        writeln!(
            f,
            "voters       {} ({} voted again for another option)",
            sent.voters, sent.changed
        )?;
        let gains: Vec<String> = sent.gains().map(|(id, n)| format!("{id} {n}")).collect();
        writeln!(f, "votes        {}", gains.join(", "))?;
        writeln!(f, "wall time    {seconds:.3} s")?;
        writeln!(
            f,
            "throughput   {:.0} req/s",
            sent.requests as f64 / seconds.max(f64::EPSILON)
        )?;
        if sent.latency.is_empty() {
            write!(f, "latency      none: no request succeeded")?;
        } else {
            let at = |q: f64| millis(sent.latency.value_at_quantile(q));
            write!(
                f,
                "latency      p50 {}, p90 {}, p99 {}, max {}",
                at(0.5),
                at(0.9),
                at(0.99),
                millis(sent.latency.max())
            )?;
        }
        if let Some(v) = &self.verification {
            match (v.consistent_after, &v.seen) {
                (Some(after), Some(seen)) => write!(
                    f,
                    "\nconsistent   after {}: {}",
                    seconds_text(after),
                    show_tally(seen)
                )?,
                _ => write!(f, "\nconsistent   no: expected {}", show_tally(&v.expected))?,
            }
            if let Some((low, high)) = &v.range {
                let how = if !v.held() {
                    "the range".to_string()
                } else if v.settled {
                    format!("within the range, unchanged for {}", seconds_text(SETTLE))
                } else {
                    "every one counted".to_string()
                };
                write!(
                    f,
                    "; {} unknown outcome{}: {how} {}",
                    v.unknown,
                    if v.unknown == 1 { "" } else { "s" },
                    show_range(low, high)
                )?;
            }
        }
        Ok(())
    }
}

/// `a 10..12, b 5..6 (total 16..17)`
fn show_range(low: &Tally, high: &Tally) -> String {
    let span = |low: i64, high: i64| match low == high {
        true => low.to_string(),
        false => format!("{low}..{high}"),
    };
    let votes: Vec<String> = low
        .votes
        .keys()
        .map(|id| format!("{id} {}", span(low.count(id), high.count(id))))
        .collect();
    format!(
        "({}, total {})",
        votes.join(", "),
        span(low.total, high.total)
    )
}

fn millis(micros: u64) -> String {
    format!("{:.2} ms", micros as f64 / 1_000.0)
}

fn seconds_text(d: Duration) -> String {
    format!("{:.3} s", d.as_secs_f64())
}

fn show_tally(tally: &Tally) -> String {
    let votes: Vec<String> = tally
        .votes
        .iter()
        .map(|(id, n)| format!("{id} {n}"))
        .collect();
    format!("{} (total {})", votes.join(", "), tally.total)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(failures: &[(&str, u64)], verification: Option<Verification>) -> Summary {
        let mut sent = crate::load::tests::sent_for_report();
        for &(kind, n) in failures {
            sent.failures.insert(kind.to_string(), n);
            sent.requests += n;
        }
        Summary {
            target: Url::parse("http://127.0.0.1:5000/").unwrap(),
            sent,
            verification,
            stopped: false,
        }
    }

    fn verification(consistent_after: Option<Duration>) -> Verification {
        let before = Tally::new(&ballot::VoteOptions::defaults(), []);
        let mut expected = before.clone();
        expected.add("a", 2);
        expected.add("b", 1);
        Verification {
            seen: Some(if consistent_after.is_some() {
                expected.clone()
            } else {
                before
            }),
            expected,
            range: None,
            unknown: 0,
            settled: false,
            last_error: None,
            consistent_after,
            timeout: Duration::from_secs(2),
        }
    }

    #[test]
    fn a_clean_run_has_no_problem() {
        let s = summary(&[], Some(verification(Some(Duration::from_millis(42)))));
        assert_eq!(s.problem(), None);
        let text = s.to_string();
        assert!(
            text.contains("requests     3 sent, 3 succeeded, 0 failed"),
            "{text}"
        );
        assert!(text.contains("votes        a 2, b 1"), "{text}");
        assert!(!text.contains("failing"), "{text}");
        assert!(text.contains("latency      p50 1.00 ms"), "{text}");
        assert!(
            text.contains("consistent   after 0.042 s: a 2, b 1 (total 3)"),
            "{text}"
        );
    }

    #[test]
    fn failures_and_a_stale_tally_make_one_line() {
        let s = summary(
            &[("HTTP 503", 2), ("connection failed", 1)],
            Some(verification(None)),
        );
        let problem = s.problem().unwrap();
        assert_eq!(
            problem,
            "3 of 6 requests failed (HTTP 503: 2, connection failed: 1); \
             tally did not reach a 2, b 1 (total 3) within 2s; last seen a 0, b 0 (total 0)"
        );
        assert!(!problem.contains('\n'));
        assert!(s
            .to_string()
            .contains("failures     HTTP 503: 2, connection failed: 1"));
    }

    /// Three accepted (a 2, b 1), one 503, and two 504s: a first ballot for
    /// b and a change from a to b.
    fn with_unknowns(verification: Option<Verification>) -> Summary {
        let mut s = summary(&[("HTTP 503", 1)], verification);
        s.sent.unknown.insert("HTTP 504".into(), 2);
        s.sent.requests += 2;
        s.sent.unknown_first = vec![0, 1];
        s.sent.unknown_from = vec![1, 0];
        s.sent.unknown_to = vec![0, 1];
        s.sent.failing = Some((Duration::from_millis(1_200), Duration::from_millis(3_450)));
        s
    }

    fn settled(after: Option<Duration>, seen: Tally, settled: bool) -> Verification {
        let before = Tally::new(&ballot::VoteOptions::defaults(), []);
        let expected = crate::verify::Expectation::new(&before, &with_unknowns(None).sent);
        Verification {
            expected: expected.all_landed,
            range: Some((expected.low, expected.high)),
            unknown: expected.unknown,
            settled,
            seen: Some(seen),
            last_error: None,
            consistent_after: after,
            timeout: Duration::from_secs(30),
        }
    }

    #[test]
    fn unknown_outcomes_are_counted_apart_and_the_range_is_shown() {
        let seen = Tally::new(
            &ballot::VoteOptions::defaults(),
            [("a".into(), 2), ("b".into(), 2)],
        );
        let s = with_unknowns(Some(settled(Some(Duration::from_millis(500)), seen, true)));
        let text = s.to_string();
        assert!(
            text.contains("requests     6 sent, 3 succeeded, 1 failed, 2 unknown outcome\n"),
            "{text}"
        );
        assert!(text.contains("failures     HTTP 503: 1\n"), "{text}");
        assert!(
            text.contains("unknown      HTTP 504: 2 (sent, not confirmed"),
            "{text}"
        );
        assert!(
            text.contains("failing      from 1.200 s to 3.450 s after the start (2.250 s)\n"),
            "{text}"
        );
        assert!(
            text.contains(
                "consistent   after 0.500 s: a 2, b 2 (total 4); 2 unknown outcomes: \
                 within the range, unchanged for 4.000 s (a 1..2, b 1..3, total 3..4)"
            ),
            "{text}"
        );
        // Still a failed run: not every request succeeded.
        assert_eq!(
            s.problem().as_deref(),
            Some("3 of 6 requests failed (HTTP 503: 1; unknown outcome: HTTP 504: 2)")
        );
    }

    #[test]
    fn a_tally_that_never_settles_in_range_names_the_range() {
        let seen = Tally::new(&ballot::VoteOptions::defaults(), [("a".into(), 1)]);
        let s = with_unknowns(Some(settled(None, seen, false)));
        let problem = s.problem().unwrap();
        assert!(
            problem.ends_with(
                "tally did not settle between a 1, b 1 (total 3) and a 2, b 3 (total 4) \
                 within 30s; last seen a 1, b 0 (total 1)"
            ),
            "{problem}"
        );
    }
}
