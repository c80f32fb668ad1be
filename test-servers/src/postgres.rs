use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

use tempfile::TempDir;

use crate::process::{self, find_binary, free_port, port_open, spawn, wait_until, ServerProcess};

/// A PostgreSQL server in a temp dir, trusting local connections as
/// `postgres`. Durability is traded for speed (fsync off): it is thrown away.
pub struct Postgres {
    port: u16,
    dir: TempDir,
    bin: PathBuf,
    owner: Option<(u32, u32)>,
    process: ServerProcess,
    next_db: AtomicU32,
    /// `-c name=value` settings of this server beyond the common ones.
    settings: Vec<String>,
}

impl Postgres {
    pub fn start() -> Postgres {
        Postgres::start_with(&["synchronous_commit=off"])
    }

    /// With `synchronous_commit` on: a commit is acknowledged only once its
    /// WAL is written, so it survives `crash`. (`fsync` stays off: the
    /// machine itself does not crash in a test.)
    pub fn start_with_synchronous_commit() -> Postgres {
        Postgres::start_with(&["synchronous_commit=on"])
    }

    /// A primary and its hot standby (a `pg_basebackup` of it, with
    /// `standby.signal` and `primary_conninfo`), replicating synchronously
    /// as Patroni's `synchronous_mode` does: a commit is acknowledged only
    /// once the standby has its WAL, so a promoted standby holds every
    /// commit a client saw. Until the standby runs, commits on the primary
    /// wait for it.
    pub fn start_replicated() -> (Postgres, Postgres) {
        let primary =
            Postgres::start_with(&["synchronous_commit=on", "synchronous_standby_names=*"]);
        let standby = Postgres::in_new_dir(&["synchronous_commit=on"]);
        let mut basebackup = standby.command("pg_basebackup");
        basebackup
            .args(["-h", "127.0.0.1", "-U", "postgres"])
            .args(["-p", &primary.port.to_string()])
            .args(["-D", &standby.data().to_string_lossy()])
            // -R writes standby.signal and primary_conninfo.
            .args(["-R", "-X", "stream", "--no-sync"]);
        run(basebackup);
        standby.resume();
        (primary, standby)
    }

    fn start_with(settings: &[&str]) -> Postgres {
        let pg = Postgres::in_new_dir(settings);
        let mut initdb = pg.command("initdb");
        initdb.args(["-D", &pg.data().to_string_lossy()]).args([
            "-U",
            "postgres",
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--locale=C",
            "--no-sync",
        ]);
        run(initdb);
        pg.resume();
        pg
    }

    /// A server not started yet, with an empty temp dir and a port of its own.
    fn in_new_dir(settings: &[&str]) -> Postgres {
        // Resolve links: the other tools live beside the real initdb.
        let initdb = find_binary("initdb", &installed_bin_dirs(), "postgresql");
        let bin = std::fs::canonicalize(&initdb)
            .unwrap_or(initdb)
            .parent()
            .expect("initdb has a directory")
            .to_path_buf();
        let dir = tempfile::Builder::new()
            .prefix("test-postgres-")
            .tempdir()
            .expect("temp dir");
        // Postgres refuses to run as root: hand its directory to `postgres`.
        let owner = running_as_root().then(postgres_user);
        if let Some((uid, gid)) = owner {
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid)).expect("chown data dir");
        }
        Postgres {
            port: free_port(),
            dir,
            bin,
            owner,
            process: ServerProcess::default(),
            next_db: AtomicU32::new(1),
            settings: settings.iter().map(|s| s.to_string()).collect(),
        }
    }

    /// One server for the whole test binary, stopped when it exits.
    pub fn shared() -> &'static Postgres {
        static SHARED: OnceLock<Postgres> = OnceLock::new();
        extern "C" fn cleanup() {
            if let Some(pg) = SHARED.get() {
                pg.process.stop(libc::SIGQUIT);
                process::remove_dir(pg.dir.path());
            }
        }
        SHARED.get_or_init(|| {
            process::at_exit(cleanup);
            Postgres::start()
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Where its tools are (psql, ...): Debian keeps them off PATH.
    pub fn bin_dir(&self) -> &std::path::Path {
        &self.bin
    }

    /// URL of the `postgres` database.
    pub fn url(&self) -> String {
        self.db_url("postgres")
    }

    pub fn db_url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    /// A URL of the `postgres` database listing `servers` in this order, for
    /// a client that must find the one taking writes
    /// (`target_session_attrs=read-write`), as in front of a Patroni cluster.
    pub fn read_write_url(servers: &[&Postgres]) -> String {
        let hosts: Vec<String> = servers
            .iter()
            .map(|pg| format!("127.0.0.1:{}", pg.port))
            .collect();
        format!(
            "postgres://postgres@{}/postgres?target_session_attrs=read-write",
            hosts.join(",")
        )
    }

    /// Creates an empty database no other caller gets and returns its URL.
    pub fn fresh_database(&self) -> String {
        let name = format!("test_{}", self.next_db.fetch_add(1, Ordering::Relaxed));
        let mut createdb = self.client_command("createdb");
        createdb.arg(&name);
        run(createdb);
        self.db_url(&name)
    }

    /// Fast shutdown: open connections are cut, as when a database goes away.
    pub fn stop(&self) {
        self.process.stop(libc::SIGINT);
    }

    /// Immediate shutdown (SIGQUIT, `pg_ctl stop -m immediate`): no
    /// checkpoint, connections cut; the next start recovers from the WAL.
    pub fn crash(&self) {
        self.process.stop(libc::SIGQUIT);
    }

    /// Makes a standby the primary (`pg_ctl promote`, which waits until it
    /// takes writes).
    pub fn promote(&self) {
        let mut promote = self.command("pg_ctl");
        promote.args([
            "promote",
            "-w",
            "-t",
            "60",
            "-D",
            &self.data().to_string_lossy(),
        ]);
        run(promote);
    }

    /// Turns a running primary read-only, as a demoted one is: every new
    /// transaction, in open sessions too, refuses writes (SQLSTATE 25006)
    /// and `SHOW transaction_read_only` says `on`. Returns once new sessions
    /// see it.
    pub fn make_read_only(&self) {
        self.psql(&[
            "ALTER SYSTEM SET default_transaction_read_only = on",
            "SELECT pg_reload_conf()",
        ]);
        wait_until("read-only", Duration::from_secs(30), &self.log(), || {
            self.psql(&["SHOW default_transaction_read_only"]).trim() == "on"
        });
    }

    /// Runs each of `statements` in its own transaction as `postgres`; their
    /// output, unaligned.
    fn psql(&self, statements: &[&str]) -> String {
        let mut command = self.client_command("psql");
        command.args(["-d", "postgres", "-X", "-q", "-tA", "-v", "ON_ERROR_STOP=1"]);
        for statement in statements {
            command.args(["-c", statement]);
        }
        run(command)
    }

    /// Starts the server again on the same port with the same data.
    pub fn resume(&self) {
        if !self.process.start_unless_running(|| self.spawn()) {
            return;
        }
        let port = self.port;
        wait_until("postgres", Duration::from_secs(30), &self.log(), || {
            port_open(port) && self.is_ready()
        });
    }

    fn spawn(&self) -> Child {
        let mut command = self.command("postgres");
        command
            .args(["-D", &self.data().to_string_lossy()])
            .args([
                "-p",
                &self.port.to_string(),
                "-k",
                &self.dir.path().to_string_lossy(),
            ])
            .args([
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                "max_connections=300",
            ])
            .args(["-c", "fsync=off"])
            .args(["-c", "full_page_writes=off"])
            .args(self.settings.iter().flat_map(|s| ["-c", s.as_str()]))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(self.log()).map_or(Stdio::null(), Stdio::from));
        spawn(command, libc::SIGQUIT)
    }

    fn is_ready(&self) -> bool {
        self.client_command("pg_isready")
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    /// A client tool pointed at this server as `postgres`.
    fn client_command(&self, program: &str) -> Command {
        let mut command = self.command(program);
        command.args([
            "-h",
            "127.0.0.1",
            "-U",
            "postgres",
            "-p",
            &self.port.to_string(),
        ]);
        command
    }

    fn command(&self, program: &str) -> Command {
        let mut command = Command::new(self.bin.join(program));
        if let Some((uid, gid)) = self.owner {
            command.uid(uid).gid(gid);
        }
        command.current_dir(self.dir.path());
        command
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn log(&self) -> PathBuf {
        self.dir.path().join("postgres.log")
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        self.process.stop(libc::SIGQUIT);
    }
}

/// Runs one of Postgres's tools to completion and returns what it printed;
/// fails the test with its error output if it fails.
fn run(mut command: Command) -> String {
    let program = command.get_program().to_string_lossy().into_owned();
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    assert!(
        output.status.success(),
        "{program} {:?} failed: {}",
        command.get_args().collect::<Vec<_>>(),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Debian keeps the server binaries off PATH.
fn installed_bin_dirs() -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|entries| entries.flatten().map(|e| e.path().join("bin")).collect())
        .unwrap_or_default();
    dirs.sort();
    dirs.reverse();
    dirs
}

fn running_as_root() -> bool {
    unsafe { libc::geteuid() == 0 }
}

fn postgres_user() -> (u32, u32) {
    let name = c"postgres";
    let entry = unsafe { libc::getpwnam(name.as_ptr()) };
    assert!(
        !entry.is_null(),
        "running as root needs a `postgres` user: install it with `apt-get install postgresql`"
    );
    unsafe { ((*entry).pw_uid, (*entry).pw_gid) }
}
