//! The Postgres schema, shared by the worker (which writes votes) and the
//! result service (which reads tallies), and the queries both rely on.

use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, Error};

use crate::{Tally, VoteOptions};

/// Channel the database notifies after a commit that changed a tally.
pub const TALLY_CHANNEL: &str = "tally_changed";

/// The version `schema.sql` brings a database to: raise it with every change
/// to the script, or running services never apply the change.
pub const VERSION: i32 = 3;

const SCHEMA: &str = include_str!("schema.sql");

/// Arbitrary but fixed: serializes migrations across every process.
const MIGRATION_LOCK: i64 = 0x766f_7465_7321;

/// How long a migration waits for a lock on a table. While an ALTER waits,
/// every writer of that table queues behind it, so it gives up quickly and
/// its caller retries later (see [`is_lock_timeout`]).
const LOCK_TIMEOUT: &str = "250ms";

/// Fails as [`is_not_permitted`] unless the role may create in the schema.
const MAY_CREATE: &str = "DO $$ BEGIN \
    IF NOT has_schema_privilege(current_schema(), 'CREATE') THEN \
        RAISE EXCEPTION 'permission denied for schema %', current_schema() \
            USING ERRCODE = 'insufficient_privilege'; \
    END IF; END $$";

/// What [`migrate`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Migration {
    /// The schema was current: nothing was locked beyond reading its version.
    Current,
    /// The schema was brought from this version to [`VERSION`] (0: none).
    Upgraded { from: i32 },
}

/// Creates or upgrades the schema unless it is already current. Safe to run
/// from many processes at once. A current schema costs one read and takes
/// no lock a running worker could wait on, so restarts never stall writes.
pub async fn migrate(client: &Client) -> Result<Migration, Error> {
    if version(client).await? >= VERSION {
        return Ok(Migration::Current);
    }
    // A role that may not create in the schema (the services' own, which
    // wait for `worker migrate`) fails here, in a short statement, rather
    // than with the whole script in the server's log at every retry.
    client.batch_execute(MAY_CREATE).await?;
    // A session lock, taken outside the transaction: the transaction that
    // starts once it is held sees the catalog as the last migrator left it.
    client
        .batch_execute(&format!("SELECT pg_advisory_lock({MIGRATION_LOCK})"))
        .await?;
    let upgraded = upgrade(client).await;
    let end = if upgraded.is_ok() {
        "COMMIT"
    } else {
        "ROLLBACK"
    };
    // After a failure the transaction must still end, or it stays open on
    // this connection; the first error is the one worth reporting.
    let ended = client
        .batch_execute(&format!(
            "{end}; SELECT pg_advisory_unlock({MIGRATION_LOCK})"
        ))
        .await;
    let migration = upgraded?;
    ended?;
    Ok(migration)
}

/// Another process may have upgraded the schema while this one waited.
async fn upgrade(client: &Client) -> Result<Migration, Error> {
    client
        .batch_execute("BEGIN; SET LOCAL client_min_messages = warning")
        .await?;
    let from = version(client).await?;
    if from >= VERSION {
        return Ok(Migration::Current);
    }
    let script = SCHEMA.replace("$VERSION", &VERSION.to_string());
    client
        .batch_execute(&format!(
            "SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'; {script}"
        ))
        .await?;
    Ok(Migration::Upgraded { from })
}

/// The schema version recorded in the database; 0 if there is none.
pub async fn version(client: &Client) -> Result<i32, Error> {
    // to_regclass is NULL for a missing table, where a plain SELECT would fail.
    let row = client
        .query_one("SELECT to_regclass('vote_schema') IS NOT NULL", &[])
        .await?;
    if !row.get::<_, bool>(0) {
        return Ok(0);
    }
    let row = client
        .query_opt("SELECT version FROM vote_schema", &[])
        .await?;
    Ok(row.map_or(0, |r| r.get(0)))
}

/// The migration gave up waiting for a table lock another session holds:
/// transient, retry later.
pub fn is_lock_timeout(e: &Error) -> bool {
    e.code() == Some(&SqlState::LOCK_NOT_AVAILABLE)
}

/// The role may not create or change the schema: wait for `worker migrate`,
/// which runs as the schema's owner.
pub fn is_not_permitted(e: &Error) -> bool {
    e.code() == Some(&SqlState::INSUFFICIENT_PRIVILEGE)
}

/// Current counts per option: one row per option, never a scan of votes.
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

    #[test]
    fn schema_records_its_version() {
        assert_eq!(SCHEMA.matches("$VERSION").count(), 1);
    }
}
