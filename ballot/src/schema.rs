//! The Postgres schema, shared by the worker (which writes votes) and the
//! result service (which reads tallies), and the queries both rely on.

use tokio_postgres::{Client, Error};

use crate::{Tally, VoteOptions};

/// Channel the database notifies after a commit that changed a tally.
pub const TALLY_CHANNEL: &str = "tally_changed";

const SCHEMA: &str = include_str!("schema.sql");

/// Arbitrary but fixed: serializes migrations across every process.
const MIGRATION_LOCK: i64 = 0x766f_7465_7321;

/// Creates or upgrades the schema. Safe to run from many processes at once.
pub async fn migrate(client: &Client) -> Result<(), Error> {
    // The "already exists, skipping" notices of a re-run are noise.
    let script = format!(
        "BEGIN; SET LOCAL client_min_messages = warning; \
         SELECT pg_advisory_xact_lock({MIGRATION_LOCK}); {SCHEMA}; COMMIT;"
    );
    let result = client.batch_execute(&script).await;
    if result.is_err() {
        // A failed script leaves its transaction open on this connection.
        let _ = client.batch_execute("ROLLBACK").await;
    }
    result
}

/// Current counts per configured option: one row per option, never a scan of votes.
pub async fn read_tally(client: &Client, options: &VoteOptions) -> Result<Tally, Error> {
    let rows = client.query("SELECT vote, count FROM tallies", &[]).await?;
    Ok(Tally::new(
        options,
        rows.iter()
            .map(|r| (r.get::<_, String>(0), r.get::<_, i64>(1))),
    ))
}

/// The reference app's query: slow on big tables, used to check the tallies.
pub async fn count_votes(client: &Client, options: &VoteOptions) -> Result<Tally, Error> {
    let rows = client
        .query(
            "SELECT vote, COUNT(id) AS count FROM votes GROUP BY vote",
            &[],
        )
        .await?;
    Ok(Tally::new(
        options,
        rows.iter()
            .map(|r| (r.get::<_, String>(0), r.get::<_, i64>(1))),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_notifies_the_shared_channel() {
        assert!(SCHEMA.contains(&format!("pg_notify('{TALLY_CHANNEL}'")));
    }
}
