//! Waiting out an outage: capped exponential backoff, and one log line when
//! a dependency goes down and one when it comes back, not one per retry.

use std::fmt::Display;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

const FIRST_DELAY: Duration = Duration::from_millis(100);
const MAX_DELAY: Duration = Duration::from_secs(2);

pub struct Health {
    what: &'static str,
    down_since: Option<Instant>,
    delay: Duration,
}

impl Health {
    pub fn new(what: &'static str) -> Self {
        Health {
            what,
            down_since: None,
            delay: FIRST_DELAY,
        }
    }

    pub fn up(&mut self) {
        if let Some(since) = self.down_since.take() {
            info!(after = ?since.elapsed(), "{} is back", self.what);
        }
        self.delay = FIRST_DELAY;
    }

    /// Notes a failure and sleeps before the retry; false if shutdown came first.
    pub async fn down(
        &mut self,
        error: &(dyn Display + Sync),
        shutdown: &CancellationToken,
    ) -> bool {
        if self.down_since.is_none() {
            self.down_since = Some(Instant::now());
            warn!(%error, "{} unavailable; retrying with backoff", self.what);
        } else {
            debug!(%error, "{} still unavailable", self.what);
        }
        let delay = self.delay;
        self.delay = (self.delay * 2).min(MAX_DELAY);
        tokio::select! {
            () = tokio::time::sleep(delay) => true,
            () = shutdown.cancelled() => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn backoff_doubles_up_to_the_cap_and_resets() {
        let mut health = Health::new("thing");
        let shutdown = CancellationToken::new();
        shutdown.cancel();
        assert!(!health.down(&"refused", &shutdown).await);
        assert_eq!(health.delay, FIRST_DELAY * 2);
        for _ in 0..10 {
            health.down(&"refused", &shutdown).await;
        }
        assert_eq!(health.delay, MAX_DELAY);
        health.up();
        assert_eq!(health.delay, FIRST_DELAY);
        assert!(health.down_since.is_none());
    }

    #[tokio::test]
    async fn retries_after_the_delay() {
        let mut health = Health::new("thing");
        let started = Instant::now();
        assert!(health.down(&"refused", &CancellationToken::new()).await);
        assert!(started.elapsed() >= FIRST_DELAY);
    }
}
