//! The database's roles as the db container makes them: the same script,
//! db/postgres-roles.sh, run on a test's own database (as the superuser
//! `postgres`), and the URL each role connects with. The test servers
//! trust local connections, so the passwords are not checked here; the
//! rights are.

use std::path::Path;
use std::process::Command;
use std::sync::Mutex;

use test_servers::Postgres;

/// The URLs of the four roles, on one database.
pub struct Roles {
    /// voting_owner: `worker migrate` connects as it.
    pub owner: String,
    pub worker: String,
    pub result: String,
    pub exporter: String,
}

/// Roles belong to the whole server: two scripts changing one role at the
/// same moment fail ("tuple concurrently updated"), so tests take turns.
static APPLYING: Mutex<()> = Mutex::new(());

impl Roles {
    /// Runs db/postgres-roles.sh on the database of `database_url`, a URL
    /// of the shared test server (`Postgres::shared`).
    pub fn apply(database_url: &str) -> Roles {
        let pg = Postgres::shared();
        let database = database_url.rsplit('/').next().expect("a database URL");
        let secrets = tempfile::tempdir().expect("temp dir");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../db/postgres-roles.sh");
        let path = format!(
            "{}:{}",
            pg.bin_dir().display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let mut command = Command::new("bash");
        command
            .arg(&script)
            .env("PATH", path)
            .env("PGHOST", "127.0.0.1")
            .env("PGPORT", pg.port().to_string())
            .env("POSTGRES_USER", "postgres")
            .env("POSTGRES_DB", database);
        for role in ["owner", "worker", "result", "exporter"] {
            let file = secrets.path().join(role);
            std::fs::write(&file, format!("test-{role}\n")).expect("write a password file");
            command.env(
                format!("POSTGRES_{}_PASSWORD_FILE", role.to_uppercase()),
                file,
            );
        }
        let output = {
            let _turn = APPLYING.lock().unwrap_or_else(|p| p.into_inner());
            command.output().expect("run db/postgres-roles.sh")
        };
        assert!(
            output.status.success(),
            "db/postgres-roles.sh failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let url = |role: &str| {
            format!(
                "postgres://voting_{role}@127.0.0.1:{}/{database}",
                pg.port()
            )
        };
        Roles {
            owner: url("owner"),
            worker: url("worker"),
            result: url("result"),
            exporter: url("exporter"),
        }
    }

    /// `worker migrate` as the owner, as compose runs it before the
    /// services; panics unless it succeeds.
    pub async fn migrate(&self) {
        let config = worker::Config::embedded("redis://127.0.0.1:1", &self.owner);
        worker::migrate(config, tokio_util::sync::CancellationToken::new())
            .await
            .expect("worker migrate as voting_owner");
    }
}
