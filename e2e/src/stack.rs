//! The running stack as seen from the host: the vote form, the tally API
//! and the tally websocket.

use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};
use ballot::Tally;
use futures_util::{stream, StreamExt, TryStreamExt};
use tokio::time::{sleep, timeout_at};
use tokio_tungstenite::tungstenite::Message;

/// Requests in flight while casting; enough to be quick, few enough that the
/// check never becomes a load test.
const CASTING_CONCURRENCY: usize = 8;

pub struct Stack {
    http: reqwest::Client,
    pub vote_url: String,
    pub result_url: String,
}

impl Stack {
    pub fn new(vote_url: &str, result_url: &str) -> anyhow::Result<Self> {
        // No cookie store: every ballot comes from a new voter.
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .pool_idle_timeout(kit::limits::CLIENT_IDLE_TIMEOUT)
            .build()?;
        Ok(Stack {
            http,
            vote_url: vote_url.trim_end_matches('/').to_string(),
            result_url: result_url.trim_end_matches('/').to_string(),
        })
    }

    /// One ballot from a new voter, through the form as a browser posts it.
    pub async fn vote(&self, option: &str) -> anyhow::Result<()> {
        let response = self
            .http
            .post(format!("{}/", self.vote_url))
            .form(&[("vote", option)])
            .send()
            .await
            .with_context(|| format!("POST {}/", self.vote_url))?;
        ensure!(
            response.status() == reqwest::StatusCode::OK,
            "POST {}/ answered {}",
            self.vote_url,
            response.status()
        );
        Ok(())
    }

    /// Loads the vote page (`Page::Vote`) or the results page, as a new
    /// visitor on a connection of its own; who answered, as the page's
    /// footer says. (The edge keeps a client connection with one replica.)
    pub async fn served_by(&self, page: Page) -> anyhow::Result<Footer> {
        let base = match page {
            Page::Vote => &self.vote_url,
            Page::Result => &self.result_url,
        };
        let url = format!("{base}/");
        let response = self
            .http
            .get(&url)
            .header(reqwest::header::CONNECTION, "close")
            .send()
            .await
            .context(url.clone())?;
        ensure!(
            response.status() == reqwest::StatusCode::OK,
            "GET {url} answered {}",
            response.status()
        );
        let page = response.text().await?;
        footer(&page).with_context(|| {
            format!("GET {url}: no \"Processed by container ID ... version ..., commit ...\"")
        })
    }

    pub async fn cast(&self, count: u32, option: &str) -> anyhow::Result<()> {
        stream::iter(0..count)
            .map(|_| self.vote(option))
            .buffer_unordered(CASTING_CONCURRENCY)
            .try_collect::<()>()
            .await
    }

    pub async fn tally(&self) -> anyhow::Result<Tally> {
        let url = format!("{}/api/tally", self.result_url);
        let response = self.http.get(&url).send().await.context(url.clone())?;
        ensure!(
            response.status().is_success(),
            "GET {url} answered {}",
            response.status()
        );
        response
            .json()
            .await
            .with_context(|| format!("GET {url}: not a tally"))
    }

    /// Polls the tally API until it equals `expected`; how long that took.
    pub async fn wait_for_tally(
        &self,
        expected: &Tally,
        limit: Duration,
    ) -> anyhow::Result<Duration> {
        let start = Instant::now();
        loop {
            let seen = self.tally().await?;
            if &seen == expected {
                return Ok(start.elapsed());
            }
            if start.elapsed() > limit {
                bail!(
                    "after {limit:?} the tally is {} but should be {}",
                    serde_json::to_string(&seen)?,
                    serde_json::to_string(expected)?
                );
            }
            sleep(Duration::from_millis(250)).await;
        }
    }

    pub fn websocket_url(&self) -> String {
        format!("{}/ws", self.result_url.replacen("http", "ws", 1))
    }

    /// Opens the result websocket, votes through the vote form, and waits for
    /// a message showing that one more vote; the time from vote to message.
    pub async fn vote_reaches_websocket(
        &self,
        option: &str,
        limit: Duration,
    ) -> anyhow::Result<Duration> {
        let ws_url = self.websocket_url();
        let deadline = tokio::time::Instant::now() + limit;
        let (mut socket, _) = timeout_at(deadline, tokio_tungstenite::connect_async(&ws_url))
            .await
            .with_context(|| format!("{ws_url}: no connection within {limit:?}"))?
            .with_context(|| format!("{ws_url}: could not connect"))?;
        let mut next_tally = async || -> anyhow::Result<Tally> {
            loop {
                let message = timeout_at(deadline, socket.next())
                    .await
                    .with_context(|| format!("{ws_url}: nothing new within {limit:?}"))?
                    .with_context(|| format!("{ws_url}: closed"))??;
                if let Message::Text(text) = message {
                    return serde_json::from_str(&text).with_context(|| {
                        format!("{ws_url} sent a message that is not a tally: {text}")
                    });
                }
            }
        };
        let before = next_tally().await.context("no tally on connect")?;
        let mut expected = before.clone();
        expected.add(option, 1);

        let cast = Instant::now();
        self.vote(option).await?;
        loop {
            let seen = next_tally().await.with_context(|| {
                format!(
                    "waiting for {}",
                    serde_json::to_string(&expected).unwrap_or_default()
                )
            })?;
            if seen == expected {
                return Ok(cast.elapsed());
            }
        }
    }
}

/// Which of the two pages.
#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum Page {
    Vote,
    Result,
}

/// Who answered a page, as its footer says: "Processed by container ID
/// <code>HOST</code> · version <code>V</code>, commit <code>C</code>".
#[derive(Debug, PartialEq, Eq)]
pub struct Footer {
    pub replica: String,
    pub version: String,
    pub commit: String,
}

/// The footer's replica and build; `None` unless all three are there.
pub fn footer(page: &str) -> Option<Footer> {
    let (_, rest) = page.split_once("Processed by container ID")?;
    let (replica, rest) = code(rest)?;
    let (_, rest) = rest.split_once("version")?;
    let (version, rest) = code(rest)?;
    let (_, rest) = rest.split_once("commit")?;
    let (commit, _) = code(rest)?;
    Some(Footer {
        replica,
        version,
        commit,
    })
}

/// The text of the next `<code>...</code>` in `text` (not empty), and what
/// follows it.
fn code(text: &str) -> Option<(String, &str)> {
    let (_, rest) = text.split_once("<code>")?;
    let (value, rest) = rest.split_once("</code>")?;
    let value = value.trim();
    (!value.is_empty()).then(|| (value.to_string(), rest))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_names_the_replica_and_its_build() {
        let page = "<footer>Processed by container ID <code>3f2a9c1b7d40</code> · version \
                    <code>0.1.0</code>, commit <code>4f2a9c1</code></footer>";
        let expected = Footer {
            replica: "3f2a9c1b7d40".into(),
            version: "0.1.0".into(),
            commit: "4f2a9c1".into(),
        };
        assert_eq!(footer(page), Some(expected));
        assert_eq!(
            footer("<footer>Processed by container ID <code></code> · version <code>1</code>, commit <code>2</code>"),
            None
        );
        assert_eq!(
            footer("<footer>Processed by container ID <code>3f2a</code></footer>"),
            None
        );
        assert_eq!(footer("<p>hello</p>"), None);
    }
}
