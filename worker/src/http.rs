//! The worker's small HTTP listener, so it can be watched like the other
//! services: `/healthz` (the process serves), `/readyz` (Redis and Postgres
//! both answer now, and the schema is current; `POST /readyz/disable` and
//! `/readyz/enable` switch it) and `/metrics`.

use std::sync::Arc;

use kit::redis_primary::RedisPrimary;
use std::time::Duration;

use axum::extract::State;
use axum::response::Response;
use kit::http::{not_found, App, Readiness, Routes};
use tokio::time::timeout;
use tokio_postgres::NoTls;

/// How long `/readyz` waits for each store.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// What `/readyz` asks: a fresh connection to each store, so it tells the
/// truth even while the worker's own loop sits idle in a blocking take.
pub struct Probe {
    pub redis: Arc<RedisPrimary>,
    pub database: tokio_postgres::Config,
    /// The worker's own finding: a queue key it cannot use.
    pub bad_keys: Arc<crate::BadKeys>,
}

/// The listener's state: the probe, and what `/readyz` last logged.
struct Ready {
    probe: Probe,
    readiness: Readiness,
}

pub fn app(probe: Probe) -> App {
    let ready = Arc::new(Ready {
        probe,
        readiness: Readiness::default(),
    });
    // The switch as on vote and result, for one way to watch every
    // service; the worker is in no load balancer's rotation, so switching
    // it off changes only what /readyz answers (Kubernetes' rollouts and
    // `docker ps` follow it), never which ballots it takes.
    Routes::new()
        .readyz(readyz, &ready.readiness)
        .finish(Arc::clone(&ready), "worker", not_found)
}

async fn readyz(State(ready): State<Arc<Ready>>) -> Response {
    let probe = &ready.probe;
    let (redis, postgres) = tokio::join!(ping_redis(&probe.redis), ping_postgres(&probe.database));
    let mut down: Vec<String> = [("redis", redis), ("postgres", postgres)]
        .into_iter()
        .filter_map(|(name, r)| r.err().map(|e| format!("{name}: {e}")))
        .collect();
    if probe.bad_keys.any() {
        down.push("a redis key is unusable (logged above)".into());
    }
    ready.readiness.answer(if down.is_empty() {
        Ok(())
    } else {
        Err(down.join("; "))
    })
}

async fn ping_redis(primary: &RedisPrimary) -> Result<(), String> {
    let ping = async {
        let client = primary.client().await?;
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
        ballot::schema::version(&client).await
    };
    match timeout(PROBE_TIMEOUT, ping).await {
        // Not ready to write until the schema is this build's (the worker
        // itself waits for it; see store.rs).
        Ok(Ok(version)) if version < ballot::schema::VERSION => Err(format!(
            "the schema is at version {version}, this worker needs {}: waiting for \
             `worker migrate`",
            ballot::schema::VERSION
        )),
        Ok(result) => result.map(drop).map_err(|e| kit::db_error::explain(&e)),
        Err(_) => Err(format!("no answer within {PROBE_TIMEOUT:?}")),
    }
}
