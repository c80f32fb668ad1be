use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

use tempfile::TempDir;

use crate::process::{self, find_binary, free_port, spawn, wait_until, ServerProcess};

/// Database numbers handed out by `fresh_db_url`; 0 is the default one.
const DATABASES: u32 = 10_000;

/// The users of `redis/users.acl`, the ACL the stacks run Redis with.
pub const USERS: [&str; 6] = ["vote", "worker", "exporter", "admin", "replica", "sentinel"];

/// A `redis-server` in a temp dir. Data survives `stop`/`start` (it saves on
/// shutdown), like a real server with persistence.
pub struct Redis {
    port: u16,
    dir: TempDir,
    process: ServerProcess,
    next_db: AtomicU32,
    append_only: bool,
    /// Started by `redis/start.sh` with the shipped ACL (`start_with_users`),
    /// the users' password files in this directory.
    secrets: Option<PathBuf>,
    /// More `redis-server` options (`--replicaof`, ...).
    extra: Vec<String>,
}

impl Redis {
    pub fn start() -> Redis {
        Redis::start_with(false)
    }

    /// With the append-only file on, as the compose stack runs Redis: every
    /// write it acknowledged survives `kill` (SIGKILL).
    pub fn start_with_aof() -> Redis {
        Redis::start_with(true)
    }

    /// Started as the stacks start Redis: by `redis/start.sh`, with the users
    /// of `redis/users.acl` (each with a password of its own, from a secret
    /// file as in the stacks), no default user, and the append-only file on.
    /// [`Redis::url`] and [`Redis::fresh_db_url`] log in as admin;
    /// [`Redis::url_as`] as another.
    pub fn start_with_users() -> Redis {
        let mut redis = Redis::unstarted(true);
        let secrets = redis.dir.path().join("secrets");
        write_secrets(&secrets, &redis.port.to_string());
        redis.secrets = Some(secrets);
        redis.resume();
        redis
    }

    /// A member of a replicated set (`RedisHa`): as `start_with_users`, with
    /// the passwords in `secrets` and more options.
    pub(crate) fn start_member(secrets: &Path, extra: Vec<String>) -> Redis {
        let mut redis = Redis::unstarted(true);
        redis.secrets = Some(secrets.to_path_buf());
        redis.extra = extra;
        redis.resume();
        redis
    }

    fn start_with(append_only: bool) -> Redis {
        let redis = Redis::unstarted(append_only);
        redis.resume();
        redis
    }

    fn unstarted(append_only: bool) -> Redis {
        Redis {
            port: free_port(),
            dir: tempfile::Builder::new()
                .prefix("test-redis-")
                .tempdir()
                .expect("temp dir"),
            process: ServerProcess::default(),
            next_db: AtomicU32::new(1),
            append_only,
            secrets: None,
            extra: Vec::new(),
        }
    }

    /// One server for the whole test binary, stopped when it exits.
    pub fn shared() -> &'static Redis {
        static SHARED: OnceLock<Redis> = OnceLock::new();
        extern "C" fn cleanup() {
            if let Some(redis) = SHARED.get() {
                redis.process.stop(libc::SIGKILL);
                process::remove_dir(redis.dir.path());
            }
        }
        SHARED.get_or_init(|| {
            process::at_exit(cleanup);
            Redis::start()
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// URL of database 0 (as admin on a server with users).
    pub fn url(&self) -> String {
        format!("redis://{}127.0.0.1:{}", self.admin_login(), self.port)
    }

    /// URL of a database no other caller gets: isolates tests that share a server.
    pub fn fresh_db_url(&self) -> String {
        let db = self.next_db.fetch_add(1, Ordering::Relaxed);
        assert!(db < DATABASES, "out of Redis databases");
        format!("redis://{}127.0.0.1:{}/{db}", self.admin_login(), self.port)
    }

    /// URL of database 0 as `user` of `redis/users.acl`, password included.
    pub fn url_as(&self, user: &str) -> String {
        format!(
            "redis://{user}:{}@127.0.0.1:{}",
            self.password(user),
            self.port
        )
    }

    /// The file holding `user`'s password, as a secret is mounted.
    pub fn password_file(&self, user: &str) -> PathBuf {
        let secrets = self.secrets.as_deref();
        password_file(
            secrets.expect("a server started with_users has users"),
            user,
        )
    }

    pub fn password(&self, user: &str) -> String {
        password_in(&self.password_file(user))
    }

    fn admin_login(&self) -> String {
        match self.secrets {
            Some(_) => format!("admin:{}@", self.password("admin")),
            None => String::new(),
        }
    }

    /// Shuts the server down cleanly (saving its data); clients see it gone.
    pub fn stop(&self) {
        self.process.stop(libc::SIGTERM);
    }

    /// Kills the server (SIGKILL): no shutdown save, as in a crash.
    pub fn kill(&self) {
        self.process.stop(libc::SIGKILL);
    }

    /// Freezes the server (SIGSTOP): connections are still accepted, but no
    /// command is answered or executed until `unpause`, as when Redis hangs.
    pub fn pause(&self) {
        self.process.pause();
    }

    /// Lets a paused server run again: it executes what was sent meanwhile.
    pub fn unpause(&self) {
        self.process.unpause();
    }

    /// Starts the server again on the same port with the same data.
    pub fn resume(&self) {
        if !self.process.start_unless_running(|| self.spawn()) {
            return;
        }
        let port = self.port;
        let login = self
            .secrets
            .as_ref()
            .map(|_| format!("AUTH admin {}\r\n", self.password("admin")));
        wait_until("redis-server", Duration::from_secs(10), &self.log(), || {
            ping(port, login.as_deref())
        });
    }

    fn spawn(&self) -> Child {
        let binary = find_binary("redis-server", &[], "redis-server");
        let mut command = match &self.secrets {
            Some(secrets) => {
                let mut command = Command::new("sh");
                command
                    .arg(start_script())
                    .arg(binary)
                    .env("REDIS_SECRETS_DIR", secrets)
                    .env("REDIS_ACLFILE", self.dir.path().join("users.acl"));
                command
            }
            None => Command::new(binary),
        };
        command
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--dir", &self.dir.path().to_string_lossy()])
            .args(["--save", "3600 1"])
            .args(["--appendonly", if self.append_only { "yes" } else { "no" }])
            .args(["--databases", &DATABASES.to_string()])
            .args(["--protected-mode", "no", "--daemonize", "no"])
            .args(["--logfile", &self.log().to_string_lossy()])
            .args(&self.extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        spawn(command, libc::SIGKILL)
    }

    pub(crate) fn log(&self) -> PathBuf {
        self.dir.path().join("redis.log")
    }
}

/// `redis/start.sh`, which starts Redis and the Sentinels in the stacks.
pub(crate) fn start_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../redis/start.sh")
}

/// A password file for each of [`USERS`] in a new directory `secrets`, as
/// the stacks mount their secrets; each password names `tag` and the time.
pub(crate) fn write_secrets(secrets: &Path, tag: &str) {
    std::fs::create_dir(secrets).expect("secrets dir");
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    for user in USERS {
        let password = format!("{user}-{tag}-{nanos:x}");
        std::fs::write(password_file(secrets, user), format!("{password}\n")).unwrap();
    }
}

pub(crate) fn password_file(secrets: &Path, user: &str) -> PathBuf {
    secrets.join(format!("redis_{user}_password"))
}

pub(crate) fn password_in(file: &Path) -> String {
    let text = std::fs::read_to_string(file).expect("a user of users.acl");
    text.trim_end().to_string()
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.process.stop(libc::SIGKILL);
    }
}

/// PING, after `login` (an AUTH command) on a server with users.
pub(crate) fn ping(port: u16, login: Option<&str>) -> bool {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    // A reply shorter than expected would otherwise block forever.
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let expected: &[u8] = match login {
        Some(_) => b"+OK\r\n+PONG\r\n",
        None => b"+PONG\r\n",
    };
    let mut reply = vec![0u8; expected.len()];
    let request = format!("{}PING\r\n", login.unwrap_or_default());
    stream.write_all(request.as_bytes()).is_ok()
        && stream.read_exact(&mut reply).is_ok()
        && reply == expected
}

/// A connection for a test's own commands to the Redis at `url`. The redis
/// crate gives up on a reply after 500 ms by default; an RPUSH of 10,000
/// ballots on a busy two-core CI machine can take longer (a test failed that
/// way), and a test should fail on what it checks, not on a busy machine.
/// Replies may take up to 30 s here.
pub async fn connect(url: &str) -> ::redis::aio::MultiplexedConnection {
    let config = ::redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(10)))
        .set_response_timeout(Some(Duration::from_secs(30)));
    ::redis::Client::open(url)
        .expect("a valid Redis URL")
        .get_multiplexed_async_connection_with_config(&config)
        .await
        .expect("connect to the test's Redis")
}
