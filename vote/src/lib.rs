//! The vote service: a page with one button per option; each click queues a
//! ballot on the Redis list `votes` for the worker to count.

mod ballot_box;
mod connection;
mod form;
mod page;
mod routes;
mod shield;
mod voter;

use std::net::Ipv4Addr;
use std::sync::Arc;

use ballot::config::RedisArgs;
use ballot::options::OptionArgs;
use clap::Parser;

pub use ballot::healthcheck::Command;
use rocket::fairing::AdHoc;

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

    #[command(flatten)]
    pub log: ballot::telemetry::LogArgs,

    #[command(subcommand)]
    pub command: Option<Command>,
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
    /// The `Set-Cookie` line that remembers each option as the choice.
    choice_cookies: Vec<(&'static str, String)>,
    /// `vote_ballots_total` by outcome, registered once.
    outcomes: routes::Outcomes,
}

impl App {
    fn new(options: ballot::VoteOptions, hostname: String, ballot_box: BallotBox) -> App {
        let labels: Vec<&str> = options.iter().map(|o| o.label.as_str()).collect();
        let title = format!("{}!", labels.join(" vs "));
        let pages = page::Pages::new(&options, &title, &hostname);
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
        }
    }

    /// `vote=<id>; HttpOnly; ...` for a configured option id.
    fn choice_cookie(&self, id: &str) -> &str {
        self.choice_cookies
            .iter()
            .find(|(option, _)| *option == id)
            .map(|(_, line)| line.as_str())
            .expect("only configured options are chosen")
    }
}

/// Why the service stopped other than on request.
#[derive(thiserror::Error, Debug)]
pub enum Stopped {
    /// A setting can never work (say, Redis refuses REDIS_URL's password):
    /// one line naming it.
    #[error("{0}")]
    Unusable(String),
    #[error("vote stopped: {0}")]
    Failed(#[from] Box<rocket::Error>),
}

/// Serves on the runtime `ROCKET_WORKERS` asks for (see [`runtime`]) until
/// shut down, like `rocket::execute(serve(config))`.
pub fn run(config: Config) -> Result<(), Stopped> {
    match runtime() {
        Some(runtime) => {
            let stopped = runtime.block_on(serve(config));
            // As Rocket's runtime does: tasks still running get half a second.
            runtime.shutdown_timeout(std::time::Duration::from_millis(500));
            stopped
        }
        None => rocket::execute(serve(config)),
    }
}

/// One thread runs everything (a tokio current-thread runtime), unless
/// `ROCKET_WORKERS` asks for more (then Rocket's own multi-thread runtime
/// with that many worker threads). On one thread a vote's tasks (the
/// request, Rocket's response body, the Redis connection's I/O) hand over
/// to each other without waking another thread (an eventfd write and a
/// futex per hand-over): on 2 cores, 54.6 -> 33.0 us of CPU per vote. To
/// use more cores, run more replicas or set `ROCKET_WORKERS`.
fn runtime() -> Option<tokio::runtime::Runtime> {
    match std::env::var("ROCKET_WORKERS") {
        Ok(workers) if workers.trim() != "1" => None,
        _ => Some(
            tokio::runtime::Builder::new_current_thread()
                // Rocket (debug builds) warns unless its threads have this name.
                .thread_name("rocket-worker-thread")
                .enable_all()
                .build()
                .expect("create tokio runtime"),
        ),
    }
}

/// Serves until shut down (SIGTERM, Ctrl-C), or until Redis refuses the
/// settings themselves.
pub async fn serve(config: Config) -> Result<(), Stopped> {
    let rocket = rocket(config).launch().await.map_err(Box::new)?;
    let app = rocket.state::<App>().expect("managed by rocket()");
    match app.ballot_box.unusable() {
        Some(reason) => Err(Stopped::Unusable(reason.to_string())),
        None => Ok(()),
    }
}

pub fn rocket(config: Config) -> rocket::Rocket<rocket::Build> {
    let metrics = ballot::metrics::Metrics::install("vote");
    let app = App::new(
        config.options.options(),
        hostname(),
        BallotBox::new(&config.redis.redis_url).expect("REDIS_URL is checked when parsed"),
    );
    let redis_url = config.redis.redis_url;
    // Rocket's own per-request log lines are costly at high request rates;
    // tracing (RUST_LOG) carries what matters.
    let figment = rocket::Config::figment()
        .merge(("address", Ipv4Addr::UNSPECIFIED))
        .merge(("port", config.port))
        .merge(("log_level", rocket::config::LogLevel::Critical));
    let (shield, security_headers) = shield::fairings();
    rocket::custom(figment)
        .attach(shield)
        .attach(security_headers)
        .attach(ballot::metrics::RequestTimer {
            metric: "vote_http_request_duration_seconds",
        })
        .manage(app)
        .manage(metrics)
        .mount("/", routes::routes())
        .register("/", routes::catchers())
        .attach(AdHoc::on_liftoff("REDIS_URL check", |rocket| {
            Box::pin(check_redis_settings(rocket, redis_url))
        }))
}

/// Vote connects to Redis lazily, so that it serves the page through an
/// outage. Once it serves, this checks in the background that REDIS_URL can
/// work at all, and shuts the service down if Redis refuses it.
async fn check_redis_settings(rocket: &rocket::Rocket<rocket::Orbit>, redis_url: String) {
    let ballot_box = Arc::clone(&rocket.state::<App>().expect("managed").ballot_box);
    let shutdown = rocket.shutdown();
    tokio::spawn(async move {
        tokio::select! {
            checked = ballot_box.check_settings(&redis_url) => {
                if checked.is_err() {
                    shutdown.notify();
                }
            }
            _ = shutdown.clone() => {}
        }
    });
}

/// The container ID under Docker (its hostname), else the machine's name.
fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|name| name.trim().to_string())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "unknown".into())
}
