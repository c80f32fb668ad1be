//! The vote service: a page with one button per option; each click queues a
//! ballot on the Redis list `votes` for the worker to count.

mod ballot_box;
mod connection;
mod form;
mod page;
mod routes;
mod voter;

use std::net::Ipv4Addr;

use ballot::config::RedisArgs;
use ballot::options::OptionArgs;
use clap::{Parser, Subcommand};

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

    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Subcommand, Clone, Debug)]
pub enum Command {
    /// Exit 0 if the service on PORT answers /healthz (for container healthchecks).
    Healthcheck,
}

/// What every request handler needs, built once at start.
pub struct App {
    pub options: ballot::VoteOptions,
    /// "Cats vs Dogs!": the page heading, from the option labels.
    pub title: String,
    /// Shown on the page so people can see which replica answered.
    pub hostname: String,
    pub ballot_box: BallotBox,
}

pub fn rocket(config: Config) -> rocket::Rocket<rocket::Build> {
    let options = config.options.options();
    let labels: Vec<&str> = options.iter().map(|o| o.label.as_str()).collect();
    let app = App {
        title: format!("{}!", labels.join(" vs ")),
        options,
        hostname: hostname(),
        ballot_box: BallotBox::new(&config.redis.redis_url)
            .expect("REDIS_URL is checked when parsed"),
    };
    // Rocket's own per-request log lines are costly at high request rates;
    // tracing (RUST_LOG) carries what matters.
    let figment = rocket::Config::figment()
        .merge(("address", Ipv4Addr::UNSPECIFIED))
        .merge(("port", config.port))
        .merge(("log_level", rocket::config::LogLevel::Critical));
    rocket::custom(figment)
        .manage(app)
        .mount("/", routes::routes())
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
