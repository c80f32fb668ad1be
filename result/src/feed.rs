//! The one Postgres connection behind every page and socket: it LISTENs for
//! the trigger's notifications, re-reads the per-option tallies, and
//! publishes each new tally once, serialized, through a watch channel.

use std::convert::Infallible;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::Utf8Bytes;
use ballot::schema::{migrate, read_tally, Migration, TALLY_CHANNEL};
use ballot::{Tally, VoteOptions};
use futures_util::future::poll_fn;
use kit::db_error::{explain, unusable_setting};
use kit::outage::Outage;
use tokio::sync::{watch, Notify};
use tokio::time::{sleep_until, timeout, Instant};
use tokio_postgres::config::TargetSessionAttrs;
use tokio_postgres::{AsyncMessage, NoTls, SimpleQueryMessage};
use tokio_util::sync::CancellationToken;

/// Bursts of notifications collapse into at most one read per interval,
/// so clients see at most 20 updates a second however fast votes arrive.
const MIN_READ_INTERVAL: Duration = Duration::from_millis(50);
/// Re-read even without a notification, in case one was missed.
const REFRESH_INTERVAL: Duration = Duration::from_secs(3);
/// A query or connect that takes longer than this means Postgres is gone.
const DATABASE_TIMEOUT: Duration = Duration::from_secs(5);
/// Retries back off from 0.1 s (the outage's first delay) up to this.
const LAST_RETRY: Duration = Duration::from_secs(5);

/// A tally as every client receives it, serialized once for all of them
/// (and shared, not copied, per message).
#[derive(Debug)]
pub struct Published {
    pub tally: Tally,
    pub json: Utf8Bytes,
}

/// What the page, `/api/tally`, `/readyz` and every socket show.
#[derive(Clone, Debug, Default)]
pub struct Feed {
    /// The latest tally read; kept while Postgres is away.
    pub latest: Option<Arc<Published>>,
    /// True while Postgres answers and `latest` is current.
    pub live: bool,
}

/// Why following the tallies stopped.
#[derive(Debug)]
enum Failure {
    /// Postgres is away or unwell: retry with backoff.
    Outage(String),
    /// DATABASE_URL can never work (one line naming it): stop the service.
    Unusable(String),
}

impl From<tokio_postgres::Error> for Failure {
    fn from(e: tokio_postgres::Error) -> Self {
        match unusable_setting(&e) {
            Some(line) => Failure::Unusable(line),
            None => Failure::Outage(explain(&e)),
        }
    }
}

/// Keeps `feed` current through outages until `stop`; returns early only
/// when DATABASE_URL can never work, with one line naming it.
pub async fn run(
    db: tokio_postgres::Config,
    options: VoteOptions,
    feed: watch::Sender<Feed>,
    stop: CancellationToken,
) -> Option<String> {
    let postgres = Outage::new("postgres").with_max_delay(LAST_RETRY);
    loop {
        let failure = tokio::select! {
            failure = follow(&db, &options, &feed, &postgres) => failure,
            () = stop.cancelled() => return None,
        };
        let error = match failure {
            Failure::Unusable(line) => return Some(line),
            Failure::Outage(error) => error,
        };
        feed.send_if_modified(|f| std::mem::replace(&mut f.live, false));
        if !postgres.wait(&error, &stop).await {
            return None;
        }
    }
}

/// One connection's life: publishes tallies until the connection fails.
async fn follow(
    db: &tokio_postgres::Config,
    options: &VoteOptions,
    feed: &watch::Sender<Feed>,
    postgres: &Outage,
) -> Failure {
    let (client, mut connection) = match timeout(DATABASE_TIMEOUT, db.connect(NoTls)).await {
        Ok(Ok(pair)) => pair,
        Ok(Err(e)) => return e.into(),
        Err(_) => return Failure::Outage("connecting timed out".into()),
    };
    let notified = Notify::new();
    // The newest cast_at the notifications since the last read brought.
    let newest = AtomicI64::new(0);
    // Queries only make progress while the connection is polled, so both run
    // side by side; notify_one keeps one permit, which coalesces a burst.
    let receive = async {
        loop {
            match poll_fn(|cx| connection.poll_message(cx)).await {
                Some(Ok(AsyncMessage::Notification(n))) => {
                    if let Ok(cast_at) = n.payload().parse() {
                        newest.fetch_max(cast_at, Ordering::Relaxed);
                    }
                    notified.notify_one();
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => return e.into(),
                None => return Failure::Outage("connection closed".into()),
            }
        }
    };
    // With several hosts, the one taking writes is the one to follow: only
    // its tallies move, and only its commits notify.
    let primary_only = db.get_target_session_attrs() == TargetSessionAttrs::ReadWrite;
    let publishing = keep_publishing(
        &client,
        options,
        feed,
        postgres,
        &notified,
        &newest,
        primary_only,
    );
    tokio::select! {
        failure = receive => failure,
        result = publishing => {
            let Err(failure) = result;
            failure
        }
    }
}

/// Makes sure of the schema and LISTENs, then re-reads the tally after
/// every notification (at most once per interval) and every refresh
/// interval. A current schema is only read: result needs no rights to
/// change it (its role, voting_result, may not), and a database without a
/// current one waits for `worker migrate`, with the outage backoff.
/// `primary_only`: a refresh without a notification also checks that the
/// server still takes writes; one demoted to a read-only standby with this
/// connection open is left, and the next connection finds the new primary.
async fn keep_publishing(
    client: &tokio_postgres::Client,
    options: &VoteOptions,
    feed: &watch::Sender<Feed>,
    postgres: &Outage,
    notified: &Notify,
    newest: &AtomicI64,
    primary_only: bool,
) -> Result<Infallible, Failure> {
    if let Migration::Upgraded { from } = within_timeout(migrate(client)).await? {
        tracing::info!(from, to = ballot::schema::VERSION, "schema upgraded");
    }
    within_timeout(client.batch_execute(&format!("LISTEN {TALLY_CHANNEL}"))).await?;
    tracing::info!("following tallies in postgres");
    let mut unlabelled = std::collections::BTreeSet::new();
    loop {
        let tally = within_timeout(read_tally(client, options)).await?;
        postgres.up();
        for id in tally.votes.keys() {
            if options.get(id).is_none() && unlabelled.insert(id.clone()) {
                tracing::warn!(
                    "votes are counted for option {id}, which has no label here: \
                     set OPTION_{} on result (shown as \"{}\")",
                    id.to_uppercase(),
                    options.label(id)
                );
            }
        }
        let newest = newest.swap(0, Ordering::Relaxed);
        if publish(feed, tally) {
            record_push(feed, newest);
        }
        let next_read = Instant::now() + MIN_READ_INTERVAL;
        let quiet = timeout(REFRESH_INTERVAL, notified.notified())
            .await
            .is_err();
        if quiet && primary_only && read_only(client).await? {
            return Err(Failure::Outage(
                "the server is read-only now (demoted to a standby?); \
                 looking for the primary"
                    .into(),
            ));
        }
        sleep_until(next_read).await;
    }
}

/// True if the server refuses writes, as a standby does: the test
/// `target_session_attrs=read-write` makes when connecting, so the two agree.
async fn read_only(client: &tokio_postgres::Client) -> Result<bool, Failure> {
    let rows = within_timeout(client.simple_query("SHOW transaction_read_only")).await?;
    let value = rows.iter().find_map(|message| match message {
        SimpleQueryMessage::Row(row) => row.get(0).map(str::to_owned),
        _ => None,
    });
    Ok(value.as_deref() == Some("on"))
}

async fn within_timeout<T>(
    query: impl std::future::Future<Output = Result<T, tokio_postgres::Error>>,
) -> Result<T, Failure> {
    match timeout(DATABASE_TIMEOUT, query).await {
        Ok(result) => Ok(result?),
        Err(_) => Err(Failure::Outage("query timed out".into())),
    }
}

/// Wakes the clients only when the tally moved or the feed came back;
/// true if the tally moved.
fn publish(feed: &watch::Sender<Feed>, tally: Tally) -> bool {
    let mut moved = false;
    feed.send_if_modified(|f| {
        let unchanged = f.latest.as_ref().is_some_and(|p| p.tally == tally);
        if unchanged && f.live {
            return false;
        }
        if !unchanged {
            let json = serde_json::to_string(&tally).expect("a tally always serializes");
            let json = json.into();
            f.latest = Some(Arc::new(Published { tally, json }));
            moved = true;
        }
        f.live = true;
        true
    });
    moved
}

/// A new tally went out: count it, show the counts, and time the newest
/// ballot it brought from its cast_at (the queue's clock, Redis TIME; the
/// same clock as this host's wherever both run on one machine).
fn record_push(feed: &watch::Sender<Feed>, newest_cast_at: i64) {
    metrics::counter!("result_tally_pushes_total").increment(1);
    if let Some(published) = &feed.borrow().latest {
        for (option, count) in &published.tally.votes {
            metrics::gauge!("result_votes", "option" => option.clone()).set(*count as f64);
        }
    }
    let age = (ballot::now_micros() - newest_cast_at) as f64 / 1e6;
    if newest_cast_at > 0 && age >= 0.0 {
        metrics::histogram!("result_ballot_to_push_seconds").record(age);
    }
}

/// Declares the result service's metrics, so each has its help text and
/// shows from the start.
pub fn describe_metrics() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_gauge!(
        "result_websocket_clients",
        "Websocket clients connected now."
    );
    describe_counter!(
        "result_tally_pushes_total",
        "New tallies sent to the websocket clients (each once, to all of them)."
    );
    describe_histogram!(
        "result_ballot_to_push_seconds",
        Unit::Seconds,
        "From a ballot's cast_at (queued at the vote service) to the push of the first tally counting it."
    );
    describe_gauge!("result_votes", "Votes per option in the tally last pushed.");
    metrics::gauge!("result_websocket_clients").set(0.0);
    metrics::counter!("result_tally_pushes_total").increment(0);
}
