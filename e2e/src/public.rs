//! What the edge shows the public on its ports 5000 and 5001: only the
//! public routes (the internal ones, the readiness switches among them,
//! answer the edge's own 404), and at most
//! a set number of requests per client address (then 429 with
//! `Retry-After`), one flooding client never holding up another.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};
use futures_util::future::join_all;
use reqwest::StatusCode;
use tokio::time::sleep;

use crate::Stack;

/// The body of the edge's own 404 (edge/haproxy.cfg); the services' 404s
/// say something else, so this one shows the request never reached them.
const EDGE_NOT_FOUND: &str = "Not found.\n";

/// Paths a browser uses on vote's port, each with the status it must get
/// through the edge.
const VOTE_PUBLIC: &[(&str, u16)] = &[("/", 200), ("/static/vote.css", 200), ("/favicon.svg", 200)];

/// The same on result's port. `/ws` without an upgrade is result's own 400.
const RESULT_PUBLIC: &[(&str, u16)] = &[
    ("/", 200),
    ("/result.js", 200),
    ("/result.css", 200),
    ("/favicon.svg", 200),
    ("/api/tally", 200),
    ("/ws", 400),
];

/// Paths every service serves that are no business of the public's (a
/// version tells an attacker which known bugs to try).
const INTERNAL: &[&str] = &["/metrics", "/readyz", "/healthz", "/version", "/stats"];

/// The readiness switches (`POST`): reached on a replica's own port only.
const SWITCHES: &[&str] = &["/readyz/disable", "/readyz/enable"];

/// Every public path answers as it should through the edge; every internal
/// one gets the edge's 404. One line per port on success.
pub async fn routes(stack: &Stack) -> anyhow::Result<String> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()?;
    let mut report = Vec::new();
    for (base, public) in [
        (&stack.vote_url, VOTE_PUBLIC),
        (&stack.result_url, RESULT_PUBLIC),
    ] {
        for (path, expected) in public {
            let url = format!("{base}{path}");
            let status = http.get(&url).send().await.context(url.clone())?.status();
            ensure!(
                status.as_u16() == *expected,
                "GET {url} answered {status}, not {expected}"
            );
        }
        let gets = INTERNAL.iter().map(|path| (reqwest::Method::GET, path));
        let posts = SWITCHES.iter().map(|path| (reqwest::Method::POST, path));
        for (method, path) in gets.chain(posts) {
            let url = format!("{base}{path}");
            let response = http.request(method.clone(), &url).send().await;
            let response = response.context(url.clone())?;
            let status = response.status();
            let body = response.text().await.unwrap_or_default();
            ensure!(
                status == StatusCode::NOT_FOUND && body == EDGE_NOT_FOUND,
                "{method} {url} answered {status} ({:?}): internal routes must get the edge's 404",
                body.chars().take(80).collect::<String>()
            );
        }
        report.push(format!(
            "{base}: {} public paths served, {} internal ones 404 at the edge",
            public.len(),
            INTERNAL.len() + SWITCHES.len()
        ));
    }
    Ok(report.join("; "))
}

/// What one address's flood got.
#[derive(Default)]
struct Flood {
    /// Requests begun (at most the bound).
    begun: AtomicU64,
    accepted: AtomicU64,
    limited: AtomicU64,
    /// Any other answer or error: how many, and the first few.
    failed: AtomicU64,
    other: Mutex<Vec<String>>,
    /// The first 429's Retry-After and body.
    first_limited: Mutex<Option<(Option<String>, String)>>,
    /// Set to stop the flood.
    stop: AtomicBool,
}

pub struct RateLimitReport {
    pub sent: u64,
    pub accepted: u64,
    pub limited: u64,
    pub retry_after: String,
    pub bystander_votes: u32,
    pub lifted_after: Duration,
}

/// One client floods `flood_url` (the vote service through the edge, from
/// one address) with ballots, each from a new voter, `concurrency` at a
/// time, at most `max_requests`: it must get 429s with `Retry-After` once
/// past `limit`. While it floods, `bystander_votes` ballots from the
/// stack's own URL (another address) must each be answered 200. Every
/// ballot answered 200, from either, must be counted, none refused; the
/// flooder must be served again once it stops (polled once a second).
pub async fn rate_limit(
    stack: &Stack,
    flood_url: &str,
    limit: u64,
    max_requests: u64,
    concurrency: usize,
    bystander_votes: u32,
    timeout: Duration,
) -> anyhow::Result<RateLimitReport> {
    let flood_url = format!("{}/", flood_url.trim_end_matches('/'));
    let before = stack.tally().await?;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()?;
    let flood = Arc::new(Flood::default());
    let flooders = (0..concurrency).map(|_| {
        let (http, flood, url) = (http.clone(), Arc::clone(&flood), flood_url.clone());
        tokio::spawn(async move {
            while !flood.stop.load(Ordering::Relaxed)
                && flood.begun.fetch_add(1, Ordering::Relaxed) < max_requests
            {
                let answer = http.post(&url).form(&[("vote", "a")]).send().await;
                match answer {
                    Ok(response) if response.status() == StatusCode::OK => {
                        flood.accepted.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(response) if response.status() == StatusCode::TOO_MANY_REQUESTS => {
                        flood.limited.fetch_add(1, Ordering::Relaxed);
                        let retry_after = response
                            .headers()
                            .get(reqwest::header::RETRY_AFTER)
                            .and_then(|v| v.to_str().ok())
                            .map(str::to_string);
                        let body = response.text().await.unwrap_or_default();
                        let mut first = flood.first_limited.lock().unwrap();
                        first.get_or_insert((retry_after, body));
                    }
                    other => {
                        flood.failed.fetch_add(1, Ordering::Relaxed);
                        let mut others = flood.other.lock().unwrap();
                        if others.len() < 5 {
                            others.push(match other {
                                Ok(response) => format!("answered {}", response.status()),
                                Err(e) => format!("failed: {e}"),
                            });
                        }
                    }
                }
            }
        })
    });
    let flooders: Vec<_> = flooders.collect();
    let flooding = || flooders.iter().any(|f| !f.is_finished());

    // The bystander votes once the flooder is being refused, while it goes on.
    let started = Instant::now();
    while flood.limited.load(Ordering::Relaxed) == 0 {
        if !flooding() || started.elapsed() > timeout {
            flood.stop.store(true, Ordering::Relaxed);
            join_all(flooders).await;
            bail!(
                "no 429 after {} ballots from one address ({} answered 200; the limit is {limit})",
                flood.begun.load(Ordering::Relaxed).min(max_requests),
                flood.accepted.load(Ordering::Relaxed)
            );
        }
        sleep(Duration::from_millis(10)).await;
    }
    let mut bystander = Ok(());
    for _ in 0..bystander_votes {
        bystander = stack.vote("b").await;
        if bystander.is_err() {
            break;
        }
    }
    let overlapped = flooding();
    flood.stop.store(true, Ordering::Relaxed);
    for flooder in join_all(flooders).await {
        flooder?;
    }
    bystander.context("a vote from another address while one address flooded")?;
    ensure!(
        overlapped,
        "the flood ({max_requests} requests) ended before the other address's {bystander_votes} \
         votes did: raise --max-requests"
    );
    let (accepted, limited) = (
        flood.accepted.load(Ordering::Relaxed),
        flood.limited.load(Ordering::Relaxed),
    );
    let sent = accepted + limited + flood.failed.load(Ordering::Relaxed);
    let others = flood.other.lock().unwrap().clone();
    ensure!(
        others.is_empty(),
        "the flood got answers other than 200 and 429: {}",
        others.join("; ")
    );
    let (retry_after, body) = flood
        .first_limited
        .lock()
        .unwrap()
        .clone()
        .unwrap_or_default();
    let retry_after = retry_after.context("a 429 without Retry-After")?;
    ensure!(
        retry_after.parse::<u32>().is_ok_and(|s| s > 0),
        "Retry-After: {retry_after:?} is not a number of seconds"
    );
    ensure!(
        body.starts_with("Too many requests"),
        "the 429's body says {body:?}"
    );
    // HAProxy's rate is over a sliding 10 s: at most the limit, plus what
    // the part of the previous period that slid out of it let in.
    ensure!(
        accepted <= 2 * limit,
        "{accepted} of one address's ballots answered 200; the limit is {limit} per 10 s"
    );

    // Every 200 counted; the 429s never reached a replica.
    let mut expected = before;
    expected.add("a", accepted as i64);
    expected.add("b", i64::from(bystander_votes));
    stack.wait_for_tally(&expected, timeout).await?;

    // Once it stops, the flooder is served again: asked once a second,
    // well under any limit.
    let stopped = Instant::now();
    loop {
        let status = http.get(&flood_url).send().await.map(|r| r.status());
        if matches!(status, Ok(StatusCode::OK)) {
            break;
        }
        ensure!(
            stopped.elapsed() < timeout,
            "the flooding address still gets {status:?} {timeout:?} after it stopped"
        );
        sleep(Duration::from_secs(1)).await;
    }
    Ok(RateLimitReport {
        sent,
        accepted,
        limited,
        retry_after,
        bystander_votes,
        lifted_after: stopped.elapsed(),
    })
}
