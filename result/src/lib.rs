//! The result service: shows the tally and pushes every change to the
//! browser over a websocket.

mod feed;
mod page;
mod rocket_timer;
mod routes;
mod share;

use ballot::options::OptionArgs;
use kit::settings::DatabaseArgs;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use clap::Parser;

pub use kit::healthcheck::Command;
use rocket::fairing::AdHoc;
use tokio::sync::watch;
use tokio_util::task::TaskTracker;

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
    #[command(flatten)]
    pub log: kit::telemetry::LogArgs,
}

/// Set when DATABASE_URL turned out never to work: the one line that says
/// so. The service shuts down; `main` prints it and exits non-zero.
#[derive(Default)]
pub struct Unusable(Arc<OnceLock<String>>);

impl Unusable {
    pub fn line(&self) -> Option<&str> {
        self.0.get().map(String::as_str)
    }
}

/// The websocket clients' tasks: at shutdown each sends its close frame
/// (1001, "shutting down"), and `close_sockets` waits for them to.
#[derive(Clone, Default)]
pub struct Sockets(TaskTracker);

impl Sockets {
    pub(crate) fn spawn(&self, socket: impl std::future::Future<Output = ()> + Send + 'static) {
        self.0.spawn(socket);
    }
}

/// How long, once Rocket has stopped, the websockets get to say goodbye.
const SOCKETS_CLOSE_WITHIN: Duration = Duration::from_secs(2);

/// After `launch` has returned: waits (at most [`SOCKETS_CLOSE_WITHIN`])
/// until every websocket has sent its close frame and ended, so that no
/// client is cut off without one when the process exits.
pub async fn close_sockets(rocket: &rocket::Rocket<rocket::Ignite>) {
    let Some(Sockets(sockets)) = rocket.state::<Sockets>() else {
        return;
    };
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

/// The service, ready to launch on 0.0.0.0:PORT. The tally feed starts at
/// liftoff and stops at shutdown.
pub fn rocket(config: Config) -> rocket::Rocket<rocket::Build> {
    let options = config.options.options();
    let (sender, receiver) = watch::channel(Feed::default());
    let db = config.database.pg_config();
    let feed_options = options.clone();
    let figment = rocket::Config::figment()
        .merge(("address", "0.0.0.0"))
        .merge(("port", config.port))
        // Rocket logs a line per request, costly with thousands of sockets;
        // tracing (RUST_LOG) carries what matters.
        .merge(("log_level", rocket::config::LogLevel::Critical));
    let metrics = kit::metrics::Metrics::install("result");
    feed::describe_metrics();
    rocket::custom(figment)
        .manage(receiver)
        .manage(options)
        .manage(Unusable::default())
        .manage(Sockets::default())
        .manage(metrics)
        .attach(rocket_timer::RequestTimer {
            metric: "result_http_request_duration_seconds",
        })
        .mount("/", routes::all())
        .attach(AdHoc::on_liftoff("tally feed", move |rocket| {
            let shutdown = rocket.shutdown();
            let unusable = rocket.state::<Unusable>().map(|u| u.0.clone());
            tracing::info!(port = rocket.config().port, "result service listening");
            Box::pin(async move {
                tokio::spawn(async move {
                    tokio::select! {
                        line = feed::run(db, feed_options, sender) => {
                            if let Some(slot) = unusable {
                                let _ = slot.set(line);
                            }
                            shutdown.notify();
                        }
                        _ = shutdown.clone() => {}
                    }
                });
            })
        }))
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
    }
}
