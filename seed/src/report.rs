//! The summary printed at the end, and the one-line reason a run failed.

use std::fmt;
use std::time::Duration;

use ballot::Tally;
use reqwest::Url;

use crate::load::Sent;
use crate::verify::Verification;

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
    /// succeeded and, if asked, the tally matched.
    pub fn problem(&self) -> Option<String> {
        let mut problems = Vec::new();
        if self.sent.failed() > 0 {
            problems.push(format!(
                "{} of {} requests failed ({})",
                self.sent.failed(),
                self.sent.requests,
                self.failure_kinds()
            ));
        }
        if let Some(v) = self.verification.as_ref().filter(|v| !v.held()) {
            let last = match (&v.seen, &v.last_error) {
                (_, Some(error)) => format!("last read failed: {error}"),
                (Some(seen), None) => format!("last seen {}", show_tally(seen)),
                (None, None) => "never read".to_string(),
            };
            problems.push(format!(
                "tally did not reach {} within {:?}; {last}",
                show_tally(&v.expected),
                v.timeout
            ));
        }
        (!problems.is_empty()).then(|| problems.join("; "))
    }

    fn failure_kinds(&self) -> String {
        let kinds: Vec<String> = self
            .sent
            .failures
            .iter()
            .map(|(kind, n)| format!("{kind}: {n}"))
            .collect();
        kinds.join(", ")
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sent = &self.sent;
        let seconds = sent.wall.as_secs_f64();
        writeln!(f, "target       {}", self.target)?;
        if self.stopped {
            writeln!(f, "stopped      early, on request: verification skipped")?;
        }
        writeln!(
            f,
            "requests     {} sent, {} succeeded, {} failed",
            sent.requests,
            sent.succeeded,
            sent.failed()
        )?;
        if sent.failed() > 0 {
            writeln!(f, "failures     {}", self.failure_kinds())?;
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
            match v.consistent_after {
                Some(after) => write!(
                    f,
                    "\nconsistent   after {}: {}",
                    seconds_text(after),
                    show_tally(&v.expected)
                )?,
                None => write!(f, "\nconsistent   no: expected {}", show_tally(&v.expected))?,
            }
        }
        Ok(())
    }
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
    use crate::verify::expected;

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
        Verification {
            expected: expected(&before, [("a", 2), ("b", 1)]),
            seen: Some(before),
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
        assert!(text.contains("latency      p50 1.00 ms"), "{text}");
        assert!(
            text.contains("consistent   after 0.042 s: a 2, b 1 (total 3)"),
            "{text}"
        );
    }

    #[test]
    fn failures_and_a_stale_tally_make_one_line() {
        let s = summary(&[("HTTP 503", 2), ("timeout", 1)], Some(verification(None)));
        let problem = s.problem().unwrap();
        assert_eq!(
            problem,
            "3 of 6 requests failed (HTTP 503: 2, timeout: 1); \
             tally did not reach a 2, b 1 (total 3) within 2s; last seen a 0, b 0 (total 0)"
        );
        assert!(!problem.contains('\n'));
        assert!(s
            .to_string()
            .contains("failures     HTTP 503: 2, timeout: 1"));
    }
}
