//! Progress while ballots go out: a bar on a terminal, a plain line every few
//! seconds anywhere else (containers, CI logs), both on stderr.

use std::collections::BTreeMap;
use std::fmt;
use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressState, ProgressStyle};
use tokio::task::JoinHandle;

const LINE_EVERY: Duration = Duration::from_secs(2);
const BAR_EVERY: Duration = Duration::from_millis(100);

/// Counts the load tasks bump as requests complete.
#[derive(Default)]
pub struct Counters {
    pub requests: AtomicU64,
    /// Failed requests and those of unknown outcome, by kind (`HTTP 503`,
    /// `connection reset`, ...): a failure shows what it was as it happens.
    /// Taken only on a failure, never for a request that succeeded.
    failures: Mutex<BTreeMap<String, u64>>,
}

impl Counters {
    /// Counts one request that failed or whose outcome is unknown.
    pub fn failed(&self, kind: &str) {
        *self.lock().entry(kind.to_string()).or_default() += 1;
    }

    /// "0 failed", or "3 failed (HTTP 503: 1, connection reset: 2)".
    fn failed_so_far(&self) -> String {
        let failures = self.lock();
        let total: u64 = failures.values().sum();
        if total == 0 {
            return "0 failed".to_string();
        }
        format!("{total} failed ({})", crate::report::show_kinds(&failures))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, u64>> {
        self.failures
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

pub struct Progress {
    bar: Option<ProgressBar>,
    ticker: JoinHandle<()>,
}

impl Progress {
    /// `planned`: the requests expected, when known in advance.
    pub fn start(counters: Arc<Counters>, planned: Option<u64>) -> Progress {
        if std::io::stderr().is_terminal() {
            let bar = terminal_bar(planned);
            let shown = bar.clone();
            let ticker = tokio::spawn(async move {
                let mut tick = tokio::time::interval(BAR_EVERY);
                loop {
                    tick.tick().await;
                    shown.set_position(counters.requests.load(Ordering::Relaxed));
                    shown.set_message(counters.failed_so_far());
                }
            });
            Progress {
                bar: Some(bar),
                ticker,
            }
        } else {
            let ticker = tokio::spawn(async move {
                let started = Instant::now();
                let mut tick = tokio::time::interval(LINE_EVERY);
                tick.tick().await;
                loop {
                    tick.tick().await;
                    eprintln!("{}", progress_line(&counters, planned, started.elapsed()));
                }
            });
            Progress { bar: None, ticker }
        }
    }

    pub fn finish(self) {
        self.ticker.abort();
        if let Some(bar) = self.bar {
            bar.finish_and_clear();
        }
    }
}

fn terminal_bar(planned: Option<u64>) -> ProgressBar {
    let (bar, template) = match planned {
        Some(n) => (
            ProgressBar::new(n),
            "{elapsed_precise} [{bar:30}] {pos}/{len} requests, {rate}, {msg}",
        ),
        None => (
            ProgressBar::new_spinner(),
            "{elapsed_precise} {spinner} {pos} requests, {rate}, {msg}",
        ),
    };
    bar.set_style(
        ProgressStyle::with_template(template)
            .expect("valid template")
            .with_key("rate", |state: &ProgressState, w: &mut dyn fmt::Write| {
                let _ = write!(w, "{:.0} req/s", state.per_sec());
            })
            .progress_chars("=> "),
    );
    bar
}

fn progress_line(counters: &Counters, planned: Option<u64>, elapsed: Duration) -> String {
    let done = counters.requests.load(Ordering::Relaxed);
    let failed = counters.failed_so_far();
    let of = planned.map(|n| format!("/{n}")).unwrap_or_default();
    let rate = done as f64 / elapsed.as_secs_f64().max(f64::EPSILON);
    format!(
        "seed: {done}{of} requests, {failed}, {rate:.0} req/s after {:.0} s",
        elapsed.as_secs_f64()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_lines_say_how_far_along() {
        let counters = Counters::default();
        counters.requests.store(1_500, Ordering::Relaxed);
        assert_eq!(
            progress_line(&counters, Some(3_000), Duration::from_secs(2)),
            "seed: 1500/3000 requests, 0 failed, 750 req/s after 2 s"
        );
        counters.failed("connection reset");
        counters.failed("HTTP 503");
        counters.failed("connection reset");
        assert_eq!(
            progress_line(&counters, None, Duration::from_secs(3)),
            "seed: 1500 requests, 3 failed (HTTP 503: 1, connection reset: 2), \
             500 req/s after 3 s"
        );
    }
}
