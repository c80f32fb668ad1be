//! The worker's small HTTP listener, so it can be watched like the other
//! services: `/healthz` (the process serves), `/readyz` (Redis and Postgres
//! both answer now) and `/metrics`.

use std::net::Ipv4Addr;
use std::time::Duration;

use ballot::metrics::{content_type, Metrics, RequestTimer};
use rocket::http::{ContentType, Status};
use rocket::{get, routes, State};
use tokio::time::timeout;
use tokio_postgres::NoTls;

/// How long `/readyz` waits for each store.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// What `/readyz` asks: a fresh connection to each store, so it tells the
/// truth even while the worker's own loop sits idle in a blocking take.
pub struct Probe {
    pub redis: redis::Client,
    pub database: tokio_postgres::Config,
}

pub fn rocket(port: u16, probe: Probe, metrics: &'static Metrics) -> rocket::Rocket<rocket::Build> {
    let figment = rocket::Config::figment()
        // Release defaults in every build, as in the images: in a debug build
        // Rocket warns about the custom runtime from a detached thread, a
        // line that can land after the worker's last one.
        .select(rocket::Config::RELEASE_PROFILE)
        .merge(("address", Ipv4Addr::UNSPECIFIED))
        .merge(("port", port))
        .merge(("log_level", rocket::config::LogLevel::Critical))
        // The worker handles SIGTERM itself (finish or hand back the batch)
        // and then stops this listener.
        .merge(("shutdown.ctrlc", false))
        .merge(("shutdown.signals", Vec::<String>::new()))
        .merge(("shutdown.grace", 1))
        .merge(("shutdown.mercy", 1));
    rocket::custom(figment)
        .manage(probe)
        .manage(metrics)
        .attach(RequestTimer {
            metric: "worker_http_request_duration_seconds",
        })
        .mount("/", routes![healthz, readyz, metrics])
}

#[get("/healthz")]
fn healthz() -> &'static str {
    "ok\n"
}

#[get("/readyz")]
async fn readyz(probe: &State<Probe>) -> (Status, String) {
    let (redis, postgres) = tokio::join!(ping_redis(&probe.redis), ping_postgres(&probe.database));
    match (redis, postgres) {
        (Ok(()), Ok(())) => (Status::Ok, "ready\n".into()),
        (redis, postgres) => {
            let down: Vec<String> = [("redis", redis), ("postgres", postgres)]
                .into_iter()
                .filter_map(|(name, r)| r.err().map(|e| format!("{name}: {e}")))
                .collect();
            (
                Status::ServiceUnavailable,
                format!("not ready: {}\n", down.join("; ")),
            )
        }
    }
}

#[get("/metrics")]
fn metrics(metrics: &State<&'static Metrics>) -> (ContentType, String) {
    (content_type(), metrics.render())
}

async fn ping_redis(client: &redis::Client) -> Result<(), String> {
    let ping = async {
        let mut connection = client.get_multiplexed_async_connection().await?;
        redis::cmd("PING").query_async::<()>(&mut connection).await
    };
    match timeout(PROBE_TIMEOUT, ping).await {
        Ok(result) => result.map_err(|e| e.to_string()),
        Err(_) => Err(format!("no answer within {PROBE_TIMEOUT:?}")),
    }
}

async fn ping_postgres(config: &tokio_postgres::Config) -> Result<(), String> {
    let ping = async {
        let (client, connection) = config.connect(NoTls).await?;
        tokio::spawn(connection);
        client.simple_query("SELECT 1").await.map(drop)
    };
    match timeout(PROBE_TIMEOUT, ping).await {
        Ok(result) => result.map_err(|e| ballot::db_error::explain(&e)),
        Err(_) => Err(format!("no answer within {PROBE_TIMEOUT:?}")),
    }
}
