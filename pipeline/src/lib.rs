//! The whole pipeline in the test process: vote, the worker and result
//! against real Redis and Postgres servers, each stack on its own Redis
//! database and Postgres database, each service on a port bound before it
//! starts, each connecting to Postgres as its own role (db/postgres-roles.sh),
//! after `worker migrate` as the owner, as the compose stack runs them.
//! Tests of more than one service use this, not a copy of it.

pub mod client;
pub mod roles;

use ballot::{Tally, VoteOptions};
use clap::Parser;
pub use roles::Roles;
use test_servers::{Postgres, Redis, Served};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub struct Stack {
    /// `http://127.0.0.1:<port>/` of vote and of result.
    pub vote: String,
    pub result: String,
    pub redis_url: String,
    /// The superuser's, for checks from outside the services.
    pub database_url: String,
    pub roles: Roles,
    /// vote and result: they serve while the stack lives.
    _services: Vec<Served>,
    worker: Option<Worker>,
}

/// A worker in this process, stopped with the stack.
pub struct Worker {
    stop: CancellationToken,
    task: Option<JoinHandle<Result<(), worker::Stopped>>>,
}

impl Worker {
    pub fn start(redis_url: &str, database_url: &str) -> Worker {
        Worker::start_with(redis_url, database_url, &[])
    }

    /// As `start`, with `extra` flags (`--redis-sentinels`, ...).
    pub fn start_with(redis_url: &str, database_url: &str, extra: &[&str]) -> Worker {
        let stop = CancellationToken::new();
        let config = worker::Config::embedded_with(redis_url, database_url, extra);
        let task = tokio::spawn(worker::run(config, stop.clone()));
        Worker {
            stop,
            task: Some(task),
        }
    }

    /// Stops it as SIGTERM would (the batch in flight is finished or handed
    /// back) and checks it stopped cleanly.
    pub async fn stop(mut self) {
        self.stop.cancel();
        if let Some(task) = self.task.take() {
            task.await
                .expect("the worker task")
                .expect("the worker stops cleanly");
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl Stack {
    /// Vote, worker and result on fresh stores.
    pub async fn start() -> Stack {
        Stack::start_on(Redis::shared().fresh_db_url()).await
    }

    /// Vote, worker and result on `redis_url` and a fresh database.
    pub async fn start_on(redis_url: String) -> Stack {
        let mut stack = Stack::without_worker_on(redis_url).await;
        stack.worker = Some(Worker::start(&stack.redis_url, &stack.roles.worker));
        stack
    }

    /// Vote and result only: ballots are queued but nobody counts them.
    pub async fn without_worker() -> Stack {
        Stack::without_worker_on(Redis::shared().fresh_db_url()).await
    }

    pub async fn without_worker_on(redis_url: String) -> Stack {
        let database_url = Postgres::shared().fresh_database();
        let roles = Roles::apply(&database_url);
        roles.migrate().await;
        let vote = start_vote(&redis_url, &[]).await;
        let result = start_result(&roles.result, &[]).await;
        Stack {
            vote: format!("{}/", vote.url()),
            result: format!("{}/", result.url()),
            redis_url,
            database_url,
            roles,
            _services: vec![vote, result],
            worker: None,
        }
    }

    /// The votes table counted the reference way, straight from Postgres.
    pub async fn stored(&self) -> Tally {
        let (client, connection) =
            tokio_postgres::connect(&self.database_url, tokio_postgres::NoTls)
                .await
                .expect("connect to Postgres");
        tokio::spawn(connection);
        ballot::schema::count_votes(&client, &VoteOptions::defaults())
            .await
            .expect("count votes")
    }
}

/// vote on `redis_url` with `extra` flags (`--option-c`, ...), in this
/// process; it serves while the handle lives.
pub async fn start_vote(redis_url: &str, extra: &[&str]) -> Served {
    start_vote_on(Served::bind().await, redis_url, extra)
}

/// [`start_vote`] on a listener bound already (its port known to a service
/// started before it).
pub fn start_vote_on(listener: TcpListener, redis_url: &str, extra: &[&str]) -> Served {
    let mut args = vec!["vote", "--redis-url", redis_url];
    args.extend_from_slice(extra);
    let config = vote::Config::parse_from(args);
    Served::start_on(listener, |listener| vote::serve_on(listener, config))
}

/// result on `database_url` with `extra` flags, in this process; it serves
/// while the handle lives.
pub async fn start_result(database_url: &str, extra: &[&str]) -> Served {
    let mut args = vec!["result", "--database-url", database_url];
    args.extend_from_slice(extra);
    let config = result::Config::parse_from(args);
    Served::start(|listener| result::serve_on(listener, config)).await
}
