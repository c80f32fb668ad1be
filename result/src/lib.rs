//! The result service: shows the tally and pushes every change to the
//! browser over a websocket.

mod feed;
mod page;
mod routes;
mod share;
mod socket;

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use ballot::options::OptionArgs;
use ballot::VoteOptions;
use clap::Parser;
use kit::settings::DatabaseArgs;
use kit::shutdown::Drain;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use kit::healthcheck::Command;
pub use kit::Stopped;

pub use feed::{Feed, Published};
pub use share::{percentages, total_text};

#[derive(Parser, Clone, Debug)]
#[command(name = "result", about = "Live results of the vote")]
pub struct Config {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub database: DatabaseArgs,
    /// Port the results page listens on (all interfaces).
    #[arg(long, env = "PORT", default_value_t = 5001)]
    pub port: u16,
    #[command(flatten)]
    pub options: OptionArgs,
    /// The vote page's address, which the results page links to (as a
    /// browser reaches it: the edge's port 5000 on this machine by default).
    #[arg(long, env = "VOTE_PAGE_URL", default_value = "http://localhost:5000",
          value_parser = kit::settings::page_url)]
    pub vote_page_url: String,
    #[command(flatten)]
    pub log: kit::telemetry::LogArgs,
    /// Seconds result goes on serving after SIGTERM while `/readyz` answers
    /// 503, so that a load balancer takes it out of rotation before its
    /// websockets are told to go elsewhere (the edge needs up to 2.5 s).
    /// A second signal stops it at once.
    #[arg(long, env = "SHUTDOWN_DRAIN", default_value_t = 4,
          value_parser = clap::value_parser!(u64).range(0..=60))]
    pub shutdown_drain: u64,
    #[command(flatten)]
    pub demo: kit::demo::DemoArgs,
}

/// What every request handler and socket needs, built once at start.
struct App {
    /// The latest tally, as the feed publishes it.
    feed: watch::Receiver<Feed>,
    options: VoteOptions,
    /// What the page says around the tally: this replica, the vote page.
    page: page::Surroundings,
    /// The websockets' tasks, so that the process can wait for each to
    /// have sent its close frame before it exits.
    sockets: TaskTracker,
    /// Cancelled once shutting down: `/readyz` answers 503 from then on.
    draining: CancellationToken,
    readiness: kit::http::Readiness,
    /// Cancelled when the server stops: every websocket says goodbye.
    stop: CancellationToken,
}

/// How long, once the server has stopped, the websockets get to say goodbye.
const SOCKETS_CLOSE_WITHIN: Duration = Duration::from_secs(2);

/// Serves on all interfaces at the configured port until shut down
/// (SIGTERM, Ctrl-C), or until DATABASE_URL turns out never to work.
pub async fn serve(config: Config) -> Result<(), Stopped> {
    let listener = TcpListener::bind((Ipv4Addr::UNSPECIFIED, config.port)).await?;
    serve_on(listener, config).await
}

/// [`serve`] on a listener already bound.
pub async fn serve_on(listener: TcpListener, config: Config) -> Result<(), Stopped> {
    let shutdown = Drain::on_signal(Duration::from_secs(config.shutdown_drain));
    kit::metrics::Metrics::install("result");
    feed::describe_metrics();
    let options = config.options.options();
    let (publish, feed) = watch::channel(Feed::default());
    let app = Arc::new(App {
        feed,
        options: options.clone(),
        page: page::Surroundings {
            hostname: kit::version::hostname(),
            vote_page_url: config.vote_page_url,
        },
        sockets: TaskTracker::new(),
        draining: shutdown.draining,
        readiness: kit::http::Readiness::new(!config.demo.demo_start_not_ready),
        stop: shutdown.stop.clone(),
    });
    tracing::info!("serving on {}", listener.local_addr()?);
    let database = config.database.pg_config();
    let stop = shutdown.stop.clone();
    let following = tokio::spawn(async move {
        let unusable = feed::run(database, options, publish, stop.clone()).await;
        // A DATABASE_URL that can never work stops the service.
        stop.cancel();
        unusable
    });
    let routes = routes::app(Arc::clone(&app), config.demo.demo_delay);
    kit::http::serve(listener, routes, shutdown.stop).await;
    close_sockets(&app.sockets).await;
    match following.await {
        Ok(Some(line)) => Err(Stopped::Unusable(line)),
        Ok(None) => Ok(()),
        Err(panicked) => Err(std::io::Error::other(panicked).into()),
    }
}

/// Waits (at most [`SOCKETS_CLOSE_WITHIN`]) until every websocket has sent
/// its close frame and ended, so that no client is cut off without one
/// when the process exits.
async fn close_sockets(sockets: &TaskTracker) {
    sockets.close();
    if tokio::time::timeout(SOCKETS_CLOSE_WITHIN, sockets.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            left = sockets.len(),
            "websockets not closed within {SOCKETS_CLOSE_WITHIN:?}; exiting anyway"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_defaults_to_5001() {
        let command = <Config as clap::CommandFactory>::command();
        let port = command
            .get_arguments()
            .find(|a| a.get_id() == "port")
            .unwrap();
        assert_eq!(port.get_default_values(), ["5001"]);
    }

    #[test]
    fn a_bad_setting_is_named() {
        let error = Config::try_parse_from(["result", "--port", "five"]).unwrap_err();
        assert!(error.to_string().contains("PORT"), "{error}");
        let error = Config::try_parse_from(["result", "--database-url", "db"]).unwrap_err();
        assert!(error.to_string().contains("DATABASE_URL"), "{error}");
        let error = Config::try_parse_from(["result", "--shutdown-drain", "61"]).unwrap_err();
        assert!(error.to_string().contains("SHUTDOWN_DRAIN"), "{error}");
        let error = Config::try_parse_from(["result", "--vote-page-url", "vote:5000"]).unwrap_err();
        assert!(error.to_string().contains("VOTE_PAGE_URL"), "{error}");
    }
}
