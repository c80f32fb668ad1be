//! Faults on demand, for demos: a replica made slow, refusing or not ready
//! on purpose, so that alerts, a drain and a rollback can be shown without
//! breaking any configuration. Every one is off unless set.

use std::fmt;
use std::time::Duration;

use clap::builder::BoolishValueParser;
use clap::{ArgAction, Args};

/// The demo settings vote and result share (vote adds
/// `DEMO_REFUSE_FRACTION`, a [`Fraction`]).
#[derive(Args, Clone, Debug, Default)]
pub struct DemoArgs {
    /// Demo fault: wait a random time in this range (`100ms..500ms`, or one
    /// duration such as `1s`) before answering each request but the probes
    /// (/healthz, /readyz and its switches, /metrics). Off unless set.
    #[arg(long, env = "DEMO_DELAY", value_parser = delay_range, global = true)]
    pub demo_delay: Option<DelayRange>,

    /// Demo fault: start with /readyz answering 503 (out of the edge's
    /// rotation) until `POST /readyz/enable` on this replica's own port.
    #[arg(long, env = "DEMO_START_NOT_READY", default_value_t = false, global = true,
          action = ArgAction::Set, value_parser = BoolishValueParser::new())]
    pub demo_start_not_ready: bool,
}

/// The longest a demo delay may be: past the edge's 30 s server timeout a
/// delayed request would fail for another reason than the one shown.
const LONGEST_DELAY: Duration = Duration::from_secs(30);

/// `DEMO_DELAY`: each delayed request waits a time drawn evenly from
/// `min..=max`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DelayRange {
    pub min: Duration,
    pub max: Duration,
}

impl DelayRange {
    /// One draw from the range.
    pub fn draw(&self) -> Duration {
        if self.min == self.max {
            return self.min;
        }
        rand::random_range(self.min..=self.max)
    }

    /// Waits one draw.
    pub async fn wait(&self) {
        tokio::time::sleep(self.draw()).await;
    }
}

impl fmt::Display for DelayRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}..{:?}", self.min, self.max)
    }
}

/// `100ms..500ms`, `1s..2s`, or one duration (`250ms`) for a fixed delay.
pub fn delay_range(value: &str) -> Result<DelayRange, String> {
    let (min, max) = match value.split_once("..") {
        Some((min, max)) => (duration(min)?, duration(max)?),
        None => (duration(value)?, duration(value)?),
    };
    if min > max {
        return Err(format!(
            "{value}: the first duration must not be longer than the second"
        ));
    }
    if max > LONGEST_DELAY {
        return Err(format!("{value}: at most {LONGEST_DELAY:?}"));
    }
    Ok(DelayRange { min, max })
}

/// A whole number of milliseconds (`250ms`) or seconds (`2s`).
fn duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let expected = || format!("{text:?} is no duration: expected e.g. 100ms..500ms or 2s");
    let (number, unit) = if let Some(number) = text.strip_suffix("ms") {
        (number, 1)
    } else if let Some(number) = text.strip_suffix('s') {
        (number, 1000)
    } else {
        return Err(expected());
    };
    let number: u64 = number.parse().map_err(|_| expected())?;
    Ok(Duration::from_millis(number.saturating_mul(unit)))
}

/// `DEMO_REFUSE_FRACTION`: a share between 0 and 1 of requests picked at
/// random.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Fraction(f64);

impl Fraction {
    /// Whether this request is among the fraction.
    pub fn hit(&self) -> bool {
        rand::random_bool(self.0)
    }
}

impl fmt::Display for Fraction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// `0.1` (one in ten); 0 and 1 included.
pub fn fraction(value: &str) -> Result<Fraction, String> {
    match value.trim().parse::<f64>() {
        Ok(share) if (0.0..=1.0).contains(&share) => Ok(Fraction(share)),
        _ => Err(format!(
            "{value:?}: expected a fraction from 0 to 1, such as 0.1"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser, Debug)]
    struct Cli {
        #[command(flatten)]
        demo: DemoArgs,
        #[arg(long, value_parser = fraction)]
        refuse: Option<Fraction>,
    }

    #[test]
    fn every_fault_is_off_unless_set() {
        let cli = Cli::try_parse_from(["x"]).unwrap();
        assert_eq!(cli.demo.demo_delay, None);
        assert!(!cli.demo.demo_start_not_ready);
        assert_eq!(cli.refuse, None);
    }

    #[test]
    fn delays_read_as_a_range_or_one_duration() {
        let ms = Duration::from_millis;
        for (text, min, max) in [
            ("100ms..500ms", ms(100), ms(500)),
            ("1s..2s", ms(1000), ms(2000)),
            ("250ms", ms(250), ms(250)),
            ("0ms..30s", ms(0), ms(30_000)),
        ] {
            assert_eq!(delay_range(text), Ok(DelayRange { min, max }), "{text}");
        }
        let range = delay_range("10ms..20ms").unwrap();
        assert!((0..200)
            .map(|_| range.draw())
            .all(|d| d >= ms(10) && d <= ms(20)));
        assert_eq!(delay_range("250ms").unwrap().draw(), ms(250));
    }

    #[test]
    fn a_bad_value_is_refused_naming_the_setting() {
        for bad in ["500ms..100ms", "100", "1m", "-1s", "1.5s", "31s", "ms"] {
            let err = Cli::try_parse_from(["x", &format!("--demo-delay={bad}")]).unwrap_err();
            let line = err.render().to_string();
            let line = line.lines().next().unwrap();
            assert!(line.contains("DEMO_DELAY"), "{bad}: {line}");
        }
        for bad in ["1.5", "-0.1", "half", "NaN"] {
            let err = Cli::try_parse_from(["x", &format!("--refuse={bad}")]).unwrap_err();
            assert!(err.to_string().contains("fraction"), "{bad}: {err}");
        }
        let err = Cli::try_parse_from(["x", "--demo-start-not-ready", "maybe"]).unwrap_err();
        assert!(err.to_string().contains("DEMO_START_NOT_READY"), "{err}");
    }

    #[test]
    fn start_not_ready_reads_true_or_false() {
        for (text, on) in [("true", true), ("1", true), ("yes", true), ("false", false)] {
            let cli = Cli::try_parse_from(["x", "--demo-start-not-ready", text]).unwrap();
            assert_eq!(cli.demo.demo_start_not_ready, on, "{text}");
        }
    }

    #[test]
    fn the_fraction_picks_none_all_or_some() {
        assert!(!(0..1000).any(|_| fraction("0").unwrap().hit()));
        assert!((0..1000).all(|_| fraction("1").unwrap().hit()));
        let half = fraction("0.5").unwrap();
        let hits = (0..10_000).filter(|_| half.hit()).count();
        // 10 standard deviations (50 each) from 5,000: never by chance.
        assert!((4_500..=5_500).contains(&hits), "{hits}");
    }
}
