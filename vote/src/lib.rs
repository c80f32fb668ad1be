//! The vote service: a page with one button per option; each click queues a
//! ballot on the Redis list `votes` for the worker to count.

mod ballot_box;
mod connection;
mod form;
mod page;
mod replicas;
mod routes;
mod voter;

use std::net::Ipv4Addr;
use std::num::NonZeroUsize;
use std::sync::Arc;
use std::time::Duration;

use axum::http::HeaderValue;
use ballot::options::OptionArgs;
use bytes::Bytes;
use clap::Parser;
use kit::settings::RedisArgs;
use kit::shutdown::Drain;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use kit::healthcheck::Command;
pub use kit::Stopped;

pub use ballot_box::BallotBox;

#[derive(Parser, Clone, Debug)]
#[command(name = "vote", about = "The voting page: queues each ballot on Redis")]
pub struct Config {
    #[command(flatten)]
    pub redis: RedisArgs,

    /// Port to serve the page on (all interfaces).
    #[arg(long, env = "PORT", default_value_t = 5000, global = true)]
    pub port: u16,

    #[command(flatten)]
    pub options: OptionArgs,

    /// The results page's address, which the vote page links to (as a
    /// browser reaches it: the edge's port 5001 on this machine by default).
    #[arg(long, env = "RESULT_PAGE_URL", default_value = "http://localhost:5001",
          value_parser = kit::settings::page_url, global = true)]
    pub result_page_url: String,

    #[command(flatten)]
    pub log: kit::telemetry::LogArgs,

    /// Threads serving requests. One (the default) runs everything on one
    /// thread, the cheapest per vote; to use more cores, run more replicas.
    #[arg(long, env = "WORKER_THREADS", global = true)]
    pub worker_threads: Option<NonZeroUsize>,

    /// Seconds vote goes on serving after SIGTERM while `/readyz` answers
    /// 503, so that a load balancer takes it out of rotation before it
    /// stops (the edge needs up to 2.5 s). A second signal stops it at once.
    #[arg(long, env = "SHUTDOWN_DRAIN", default_value_t = 4, global = true,
          value_parser = clap::value_parser!(u64).range(0..=60))]
    pub shutdown_drain: u64,

    #[command(flatten)]
    pub demo: kit::demo::DemoArgs,

    /// Demo fault: refuse this fraction of votes (0 to 1, e.g. 0.1), picked
    /// at random, as when Redis is down: 503 "not recorded", nothing
    /// queued, counted as `vote_ballots_total{outcome="refused"}`. Off
    /// unless set.
    #[arg(long, env = "DEMO_REFUSE_FRACTION", value_parser = kit::demo::fraction, global = true)]
    pub demo_refuse_fraction: Option<kit::demo::Fraction>,

    /// The old name of WORKER_THREADS, from when vote ran on Rocket.
    #[arg(long, env = "ROCKET_WORKERS", hide = true, global = true)]
    pub rocket_workers: Option<NonZeroUsize>,

    #[command(subcommand)]
    pub command: Option<Command>,
}

impl Config {
    /// How many threads serve: `WORKER_THREADS`, else `ROCKET_WORKERS`, else 1.
    pub fn threads(&self) -> usize {
        self.worker_threads
            .or(self.rocket_workers)
            .map_or(1, NonZeroUsize::get)
    }
}

/// What every request handler needs, built once at start.
pub struct App {
    pub options: ballot::VoteOptions,
    /// "Cats vs Dogs!": the page heading, from the option labels.
    pub title: String,
    /// Shown on the page so people can see which replica answered.
    pub hostname: String,
    pub ballot_box: Arc<BallotBox>,
    /// Every variant of the page a vote can get, rendered at start.
    pages: page::Pages,
    /// The `Set-Cookie` value that remembers each option as the choice.
    choice_cookies: Vec<(&'static str, HeaderValue)>,
    /// `vote_ballots_total` by outcome, registered once.
    outcomes: routes::Outcomes,
    /// Cancelled once shutting down: `/readyz` answers 503 from then on.
    draining: CancellationToken,
    readiness: kit::http::Readiness,
    /// `DEMO_REFUSE_FRACTION`: votes refused on purpose.
    refuse: Option<kit::demo::Fraction>,
}

impl App {
    fn new(
        options: ballot::VoteOptions,
        hostname: String,
        result_page_url: &str,
        ballot_box: BallotBox,
        draining: CancellationToken,
        config: &Config,
    ) -> App {
        let labels: Vec<&str> = options.iter().map(|o| o.label.as_str()).collect();
        let title = format!("{}!", labels.join(" vs "));
        let pages = page::Pages::new(&options, &title, &hostname, result_page_url);
        let choice_cookies = options
            .iter()
            .map(|o| (o.id, voter::set_cookie(voter::CHOICE, o.id)))
            .collect();
        App {
            options,
            title,
            hostname,
            ballot_box: Arc::new(ballot_box),
            pages,
            choice_cookies,
            outcomes: routes::Outcomes::register(),
            draining,
            readiness: kit::http::Readiness::new(!config.demo.demo_start_not_ready),
            refuse: config.demo_refuse_fraction,
        }
    }

    /// `vote=<id>; HttpOnly; ...` for a configured option id.
    fn choice_cookie(&self, id: &str) -> HeaderValue {
        self.choice_cookies
            .iter()
            .find(|(option, _)| *option == id)
            .map(|(_, line)| line.clone())
            .expect("only configured options are chosen")
    }

    /// The page marking `choice` with a fixed `notice`, shared, not copied.
    fn page(&self, choice: Option<&str>, notice: page::Notice) -> Bytes {
        self.pages.get(choice, notice).clone()
    }
}

/// Serves on as many threads as the settings ask for (see [`runtime`])
/// until shut down.
pub fn run(config: Config) -> Result<(), Stopped> {
    let runtime = runtime(config.threads())?;
    let stopped = runtime.block_on(serve(config));
    // Tasks still running (connections past the grace period) are dropped.
    runtime.shutdown_timeout(std::time::Duration::from_millis(500));
    stopped
}

/// One thread runs everything (a tokio current-thread runtime) unless more
/// are asked for. On one thread a vote's tasks (the connection, the Redis
/// connection's I/O) hand over to each other without waking another thread
/// (an eventfd write and a futex per hand-over): on 2 cores, under Rocket,
/// that took the CPU per vote from 54.6 to 33.0 us. To use more cores, run
/// more replicas or set `WORKER_THREADS`.
fn runtime(threads: usize) -> std::io::Result<tokio::runtime::Runtime> {
    let mut builder = if threads == 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut builder = tokio::runtime::Builder::new_multi_thread();
        builder.worker_threads(threads);
        builder
    };
    builder.thread_name("vote-worker").enable_all().build()
}

/// Serves on all interfaces at the configured port until shut down
/// (SIGTERM, Ctrl-C), or until Redis refuses the settings themselves.
pub async fn serve(config: Config) -> Result<(), Stopped> {
    let listener = TcpListener::bind((Ipv4Addr::UNSPECIFIED, config.port)).await?;
    serve_on(listener, config).await
}

/// [`serve`] on a listener already bound.
pub async fn serve_on(listener: TcpListener, config: Config) -> Result<(), Stopped> {
    let shutdown = Drain::on_signal(Duration::from_secs(config.shutdown_drain));
    // Before the counters App registers, so they are recorded.
    kit::metrics::Metrics::install("vote");
    let app = Arc::new(App::new(
        config.options.options(),
        kit::version::hostname(),
        &config.result_page_url,
        BallotBox::new(config.redis.primary()),
        shutdown.draining,
        &config,
    ));
    if let Some(refuse) = app.refuse {
        tracing::warn!("demo fault: refusing a fraction {refuse} of votes (DEMO_REFUSE_FRACTION)");
    }
    tracing::info!("serving on {}", listener.local_addr()?);
    check_redis_settings(&app, config.redis.redis_url, shutdown.stop.clone());
    let routes = routes::app(Arc::clone(&app), config.demo.demo_delay);
    kit::http::serve(listener, routes, shutdown.stop).await;
    match app.ballot_box.unusable() {
        Some(reason) => Err(Stopped::Unusable(reason.to_string())),
        None => Ok(()),
    }
}

/// Vote connects to Redis lazily, so that it serves the page through an
/// outage. Once it serves, this checks in the background that REDIS_URL can
/// work at all, and shuts the service down if Redis refuses it.
fn check_redis_settings(app: &App, redis_url: String, shutdown: CancellationToken) {
    let ballot_box = Arc::clone(&app.ballot_box);
    tokio::spawn(async move {
        tokio::select! {
            checked = ballot_box.check_settings(&redis_url) => {
                if checked.is_err() {
                    shutdown.cancel();
                }
            }
            _ = shutdown.cancelled() => {}
        }
    });
}
