//! Throwaway **real** Redis and PostgreSQL servers for tests.
//!
//! Each server runs from the binaries installed on the machine, in its own
//! temporary directory, on a free loopback port. `shared()` gives one server
//! per test binary (isolate tests with `fresh_db_url`/`fresh_database`);
//! `start()` gives a private one for tests that stop and restart it.
//! Servers die with the test process, even when it is killed.
//! `Browser` drives headless Chromium through chromedriver for page tests.
//! `RedisHa` is Redis with replicas and Sentinels, for failover tests.
//! `Served` runs one of our services in the test process on a bound port.

mod browser;
pub mod half_open;
mod postgres;
mod process;
mod redis;
mod sentinel;
mod served;

pub use browser::Browser;
pub use postgres::Postgres;
pub use process::{free_port, memory_kib, terminate};
pub use redis::{connect as redis_connection, Redis, USERS as REDIS_USERS};
pub use sentinel::{role as redis_role, RedisHa, MASTER_NAME as REDIS_MASTER_NAME};
pub use served::Served;
