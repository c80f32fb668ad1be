//! The Postgres side: one multi-row upsert per batch. The schema's triggers
//! keep `tallies` exact and NOTIFY at commit, so this only writes `votes`.

use std::time::Duration;

use ballot::schema::Migration;
use kit::db_error;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, NoTls, Statement};
use tracing::{debug, info};

use crate::batch::Votes;

/// Only a strictly newer ballot replaces a voter's vote, so replays and
/// batches committed out of order change nothing.
const UPSERT: &str = "\
    INSERT INTO votes (id, vote, cast_at, queue_seq) \
    SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[]) \
    ON CONFLICT (id) DO UPDATE \
    SET vote = EXCLUDED.vote, cast_at = EXCLUDED.cast_at, queue_seq = EXCLUDED.queue_seq \
    WHERE (votes.cast_at, votes.queue_seq) < (EXCLUDED.cast_at, EXCLUDED.queue_seq)";

/// Why a write did not happen.
#[derive(Debug)]
pub enum Failure {
    /// Lost a race with another writer (deadlock, serialization): retry now.
    Conflict(tokio_postgres::Error),
    /// Postgres is unreachable, unwell, or no longer the primary (a
    /// read-only standby now): back off, then retry on a new connection.
    Outage(tokio_postgres::Error),
    /// No answer within the write timeout (the `Duration`): the host may
    /// be cut off, its reply never coming and no FIN or RST ending the
    /// connection. The connection is dropped: back off, then retry on a
    /// new one, as for an outage.
    Stalled(Duration),
}

/// Connects once and creates or upgrades the schema (`worker migrate`).
pub async fn migrate(config: tokio_postgres::Config) -> Result<Migration, tokio_postgres::Error> {
    let client = open(&with_connect_timeout(config)).await?;
    ballot::schema::migrate(&client).await
}

/// A connect timeout, unless `DATABASE_URL` gives one.
fn with_connect_timeout(mut config: tokio_postgres::Config) -> tokio_postgres::Config {
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(Duration::from_secs(5));
    }
    config
}

/// A new connection, driven by a task of its own.
async fn open(config: &tokio_postgres::Config) -> Result<Client, tokio_postgres::Error> {
    let (client, connection) = config.connect(NoTls).await?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            debug!(error = %e, "postgres connection ended");
        }
    });
    // The migration's "already exists, skipping" notices are noise here.
    client
        .batch_execute("SET client_min_messages = warning")
        .await?;
    Ok(client)
}

pub struct Store {
    config: tokio_postgres::Config,
    connected: Option<(Client, Statement)>,
    /// Longest one upsert (with the connect before it) may take.
    write_timeout: Duration,
}

impl Store {
    pub fn new(config: tokio_postgres::Config, write_timeout: Duration) -> Self {
        Store {
            config: with_connect_timeout(config),
            connected: None,
            write_timeout,
        }
    }

    /// Connects, migrates and prepares the upsert, unless already
    /// connected; bounded as a write is (the upsert's preparing waits for
    /// any lock on `votes`, and a cut-off host never answers).
    pub async fn open(&mut self) -> Result<(), Failure> {
        let bound = self.write_timeout;
        let opened = tokio::time::timeout(bound, self.connect()).await;
        self.settle(opened)?.map_err(classify)
    }

    async fn connect(&mut self) -> Result<(), tokio_postgres::Error> {
        if self.connected.as_ref().is_some_and(|(c, _)| !c.is_closed()) {
            return Ok(());
        }
        self.connected = None;
        let client = open(&self.config).await?;
        // Every (re)connect: the database may be new since the last one.
        // A current schema costs a read and locks nothing writers wait on.
        // Connected as voting_worker, which may not change tables, an old
        // or missing schema fails here as not permitted: the worker waits
        // (not ready) until `worker migrate` has run as the owner.
        if let Migration::Upgraded { from } = ballot::schema::migrate(&client).await? {
            info!(from, to = ballot::schema::VERSION, "schema upgraded");
        }
        let upsert = client.prepare(UPSERT).await?;
        self.connected = Some((client, upsert));
        Ok(())
    }

    /// Commits `votes` in one statement. Ballots Postgres refuses as bad
    /// data are found one by one and returned (batch position, reason)
    /// instead of failing the others.
    pub async fn save(&mut self, votes: &Votes) -> Result<Vec<(usize, String)>, Failure> {
        if votes.is_empty() {
            return Ok(Vec::new());
        }
        match self.upsert(votes).await? {
            Err(e) if is_bad_data(&e) => {}
            other => return other.map(|()| Vec::new()).map_err(classify),
        }
        let mut refused = Vec::new();
        for row in votes.rows() {
            match self.upsert(&row).await? {
                Ok(()) => {}
                Err(e) if is_bad_data(&e) => refused.push((row.entries[0], db_error::explain(&e))),
                // Rows already written are replayed as no-ops on the retry.
                Err(e) => return Err(classify(e)),
            }
        }
        Ok(refused)
    }

    /// The place of the latest ballot stored: (cast_at, queue_seq), or
    /// (0, 0) with none. Reads the whole table, so only for starting the
    /// order on a new or emptied Redis. Bounded as a write is (below).
    pub async fn latest_place(&mut self) -> Result<(i64, i64), Failure> {
        let bound = self.write_timeout;
        let read = async {
            self.connect().await?;
            let (client, _) = self.connected.as_ref().expect("connected above");
            client
                .query_opt(
                    "SELECT cast_at, queue_seq FROM votes \
                     ORDER BY cast_at DESC, queue_seq DESC LIMIT 1",
                    &[],
                )
                .await
        };
        let read = tokio::time::timeout(bound, read).await;
        let row = self.settle(read)?.map_err(classify)?;
        Ok(row.map_or((0, 0), |r| (r.get(0), r.get(1))))
    }

    /// One upsert, bounded by the write timeout.
    async fn upsert(
        &mut self,
        votes: &Votes,
    ) -> Result<Result<(), tokio_postgres::Error>, Failure> {
        let bound = self.write_timeout;
        let write = async {
            self.connect().await?;
            let (client, upsert) = self.connected.as_ref().expect("connected above");
            let columns: [&(dyn ToSql + Sync); 4] = [
                &votes.voter_ids,
                &votes.votes,
                &votes.cast_at,
                &votes.queue_seq,
            ];
            client.execute(upsert, &columns).await
        };
        let write = tokio::time::timeout(bound, write).await;
        Ok(self.settle(write)?.map(drop))
    }

    /// What came of work on the connection bounded by the write timeout
    /// (the upsert, the read of the latest place). Over a cut network a
    /// reply never comes and nothing closes the connection, so unbounded
    /// the worker would wait for TCP to give up (minutes) while another
    /// host has been promoted. On expiry the connection is dropped; a batch
    /// stays taken and its replay on the next connection is a no-op for
    /// whatever did commit (see UPSERT).
    fn settle<T>(
        &mut self,
        bounded: Result<Result<T, tokio_postgres::Error>, tokio::time::error::Elapsed>,
    ) -> Result<Result<T, tokio_postgres::Error>, Failure> {
        match bounded {
            Ok(done) => Ok(self.forget_on_outage(done)),
            Err(_) => {
                self.connected = None;
                Err(Failure::Stalled(self.write_timeout))
            }
        }
    }

    /// Forgets the connection when `result` failed for a reason other than
    /// the data or a lost race: the server may be gone, or demoted to a
    /// read-only standby (25006 read_only_sql_transaction) with the
    /// connection still open. The next try opens a new one, which, with
    /// several hosts and `target_session_attrs=read-write` in DATABASE_URL,
    /// finds whichever host takes writes now.
    fn forget_on_outage<T>(
        &mut self,
        result: Result<T, tokio_postgres::Error>,
    ) -> Result<T, tokio_postgres::Error> {
        if let Err(e) = &result {
            if !is_bad_data(e) && !is_conflict(e) {
                self.connected = None;
            }
        }
        result
    }
}

/// Errors about the data itself (a NUL byte, an over-long id): retrying
/// the same ballot can never succeed.
fn is_bad_data(e: &tokio_postgres::Error) -> bool {
    e.code()
        .is_some_and(|code| code.code().starts_with("22") || code.code().starts_with("23"))
}

/// A lost race with another writer: the same write may succeed at once.
fn is_conflict(e: &tokio_postgres::Error) -> bool {
    matches!(
        e.code(),
        Some(&SqlState::T_R_DEADLOCK_DETECTED) | Some(&SqlState::T_R_SERIALIZATION_FAILURE)
    )
}

fn classify(e: tokio_postgres::Error) -> Failure {
    if is_conflict(&e) {
        Failure::Conflict(e)
    } else {
        Failure::Outage(e)
    }
}
