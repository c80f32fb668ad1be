//! The real pages in headless Chromium, through the edge: a vote clicked on
//! the vote page shows up on an open results page without a reload.

use std::time::Duration;

use anyhow::{bail, Context};
use fantoccini::{Client, Locator};
use test_servers::Browser;

use crate::Stack;

pub struct LiveReport {
    /// The replica whose vote page took the click.
    pub voted_on: String,
    pub votes: i64,
    /// From the click to the results page showing every vote.
    pub shown_after: Duration,
}

/// Opens the results page, waits until it is live, clicks `a` on the vote
/// page, casts `more` ballots through the form, and waits until the results
/// page shows them all.
pub async fn live_page(stack: &Stack, more: u32, limit: Duration) -> anyhow::Result<LiveReport> {
    let browser = Browser::start();
    let results = browser.session(1280, 900).await;
    let voter = browser.session(1280, 900).await;
    let outcome = watch(stack, &results, &voter, more, limit).await;
    let _ = results.close().await;
    let _ = voter.close().await;
    outcome
}

async fn watch(
    stack: &Stack,
    results: &Client,
    voter: &Client,
    more: u32,
    limit: Duration,
) -> anyhow::Result<LiveReport> {
    results.goto(&format!("{}/", stack.result_url)).await?;
    wait_for_text(results, "#status", "Live", limit).await?;
    let before = stack.tally().await?.total;

    voter.goto(&format!("{}/", stack.vote_url)).await?;
    let voted_on = text(voter, "footer code").await?;
    let clicked = std::time::Instant::now();
    voter
        .find(Locator::Css("button[value=a]"))
        .await?
        .click()
        .await?;
    stack.cast(more, "b").await?;
    let votes = 1 + i64::from(more);
    let total = before + votes;
    wait_for_text(results, "#total", &format!("{total} votes"), limit).await?;
    Ok(LiveReport {
        voted_on,
        votes,
        shown_after: clicked.elapsed(),
    })
}

async fn text(client: &Client, css: &str) -> anyhow::Result<String> {
    Ok(client
        .find(Locator::Css(css))
        .await
        .with_context(|| format!("no {css} on the page"))?
        .text()
        .await?)
}

async fn wait_for_text(
    client: &Client,
    css: &str,
    expected: &str,
    limit: Duration,
) -> anyhow::Result<()> {
    let start = std::time::Instant::now();
    loop {
        let seen = text(client, css).await?;
        if seen == expected {
            return Ok(());
        }
        if start.elapsed() > limit {
            bail!("after {limit:?} the page shows {seen:?} in {css}, not {expected:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
