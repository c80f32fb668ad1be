//! Waiting out an outage of something a service depends on: capped
//! exponential backoff, and one log line when it goes down and one when it
//! comes back, not one per retry or per request.

use std::fmt::Display;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

const FIRST_DELAY: Duration = Duration::from_millis(100);
const MAX_DELAY: Duration = Duration::from_secs(2);

/// One dependency's state, shared by whoever uses it (a loop, or every
/// request of a server).
pub struct Outage {
    what: &'static str,
    /// What the service does until it is back, for the log line.
    meanwhile: &'static str,
    /// What the log lines say of it when it fails and when it works again.
    says: (&'static str, &'static str),
    /// Read on every success: a plain load while nothing changes.
    down: AtomicBool,
    state: Mutex<State>,
    max_delay: Duration,
}

struct State {
    down_since: Option<Instant>,
    delay: Duration,
}

impl Outage {
    /// `what` names the dependency in the log ("redis", "postgres").
    pub fn new(what: &'static str) -> Self {
        Outage {
            what,
            meanwhile: "retrying with backoff",
            says: ("unavailable", "is back"),
            down: AtomicBool::new(false),
            state: Mutex::new(State {
                down_since: None,
                delay: FIRST_DELAY,
            }),
            max_delay: MAX_DELAY,
        }
    }

    /// What the log line says happens while it is down, instead of
    /// "retrying with backoff" (for a server that retries nothing itself).
    pub fn meanwhile(mut self, meanwhile: &'static str) -> Self {
        self.meanwhile = meanwhile;
        self
    }

    /// What the log lines say when it fails and when it works again, instead
    /// of "unavailable" and "is back" (for something that is there but unusable).
    pub fn says(mut self, down: &'static str, up: &'static str) -> Self {
        self.says = (down, up);
        self
    }

    /// Backoff up to `max` instead of the default 2 s.
    pub fn with_max_delay(mut self, max: Duration) -> Self {
        self.max_delay = max;
        self
    }

    /// True from the first failure until the next success.
    pub fn is_down(&self) -> bool {
        self.down.load(Ordering::Relaxed)
    }

    /// It answered: logged if it was down; the backoff starts over.
    pub fn up(&self) {
        if !self.is_down() {
            return;
        }
        let mut state = self.lock();
        if let Some(since) = state.down_since.take() {
            tracing::info!(after = ?since.elapsed(), "{} {}", self.what, self.says.1);
        }
        state.delay = FIRST_DELAY;
        self.down.store(false, Ordering::Relaxed);
    }

    /// It failed: logged if it was up. Returns how long to wait before
    /// trying again (doubling up to the cap).
    pub fn down(&self, error: &(dyn Display + Sync)) -> Duration {
        let mut state = self.lock();
        if state.down_since.is_none() {
            state.down_since = Some(Instant::now());
            self.down.store(true, Ordering::Relaxed);
            tracing::warn!(%error, "{} {}; {}", self.what, self.says.0, self.meanwhile);
        } else {
            tracing::debug!(%error, "{} still {}", self.what, self.says.0);
        }
        let delay = state.delay;
        state.delay = (delay * 2).min(self.max_delay);
        delay
    }

    /// [`Outage::down`], then the wait; false if `shutdown` came first.
    pub async fn wait(&self, error: &(dyn Display + Sync), shutdown: &CancellationToken) -> bool {
        let delay = self.down(error);
        tokio::select! {
            () = tokio::time::sleep(delay) => true,
            () = shutdown.cancelled() => false,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn backoff_doubles_up_to_the_cap_and_resets() {
        let outage = Outage::new("thing");
        let shutdown = CancellationToken::new();
        shutdown.cancel();
        assert!(!outage.wait(&"refused", &shutdown).await);
        assert_eq!(outage.lock().delay, FIRST_DELAY * 2);
        assert!(outage.is_down());
        for _ in 0..10 {
            outage.wait(&"refused", &shutdown).await;
        }
        assert_eq!(outage.lock().delay, MAX_DELAY);
        outage.up();
        assert_eq!(outage.lock().delay, FIRST_DELAY);
        assert!(outage.lock().down_since.is_none());
        assert!(!outage.is_down());
    }

    #[tokio::test]
    async fn retries_after_the_delay() {
        let outage = Outage::new("thing");
        let started = Instant::now();
        assert!(outage.wait(&"refused", &CancellationToken::new()).await);
        assert!(started.elapsed() >= FIRST_DELAY);
    }

    #[test]
    fn the_cap_can_be_set() {
        let outage = Outage::new("thing").with_max_delay(Duration::from_millis(300));
        let delays: Vec<u128> = (0..4).map(|_| outage.down(&"x").as_millis()).collect();
        assert_eq!(delays, [100, 200, 300, 300]);
    }
}
