//! Redis with replicas and three Sentinels, as the HA stack runs it: every
//! member and Sentinel started by `redis/start.sh` with the shipped users
//! and one set of password files, on loopback ports. Fault tests kill the
//! primary and wait for the Sentinels to promote a replica.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::process::{find_binary, free_port, spawn, wait_until, ServerProcess};
use crate::redis::{password_file, password_in, ping, start_script, write_secrets, Redis};

/// The name the Sentinels know the members by (REDIS_MASTER_NAME's default).
pub const MASTER_NAME: &str = "voting";

/// Time for the Sentinels to agree and promote, and for a member to sync.
const PATIENCE: Duration = Duration::from_secs(60);

pub struct RedisHa {
    dir: TempDir,
    /// The first is the first primary; the others start as its replicas.
    members: Vec<Redis>,
    sentinels: Vec<Sentinel>,
}

struct Sentinel {
    port: u16,
    dir: PathBuf,
    process: ServerProcess,
    admin_password: String,
}

impl RedisHa {
    /// A primary, `replicas` replicas and three Sentinels (quorum 2, a
    /// member silent for 1 s is down). Every member refuses writes while
    /// it has no replica in reach (`min-replicas-to-write 1`, lag up to 5 s),
    /// as in the HA stack. Returns once the Sentinels know every member and
    /// each other, so that a failover can start at once.
    pub fn start(replicas: usize) -> RedisHa {
        let dir = tempfile::Builder::new()
            .prefix("test-redis-ha-")
            .tempdir()
            .expect("temp dir");
        let secrets = dir.path().join("secrets");
        write_secrets(&secrets, "ha");
        let guard = vec![
            "--min-replicas-to-write".to_string(),
            "1".into(),
            "--min-replicas-max-lag".into(),
            "5".into(),
            // A replica syncs at once, not after the default 5 s wait for
            // more replicas to share the transfer.
            "--repl-diskless-sync-delay".into(),
            "0".into(),
        ];
        let primary = Redis::start_member(&secrets, guard.clone());
        let mut members = vec![primary];
        for _ in 0..replicas {
            let mut extra = guard.clone();
            extra.extend(["--replicaof".into(), "127.0.0.1".into()]);
            extra.push(members[0].port().to_string());
            members.push(Redis::start_member(&secrets, extra));
        }
        let primary_port = members[0].port();
        let sentinels = (0..3)
            .map(|i| Sentinel::start(dir.path(), i, primary_port, &secrets))
            .collect();
        let ha = RedisHa {
            dir,
            members,
            sentinels,
        };
        ha.wait_until_known(replicas);
        ha
    }

    /// REDIS_SENTINELS: `127.0.0.1:<port>,...`
    pub fn sentinels(&self) -> String {
        let addresses: Vec<String> = self
            .sentinels
            .iter()
            .map(|s| format!("127.0.0.1:{}", s.port))
            .collect();
        addresses.join(",")
    }

    /// A REDIS_URL logging in as `user` of `redis/users.acl` (password
    /// included). With REDIS_SENTINELS its host is not used: it names the
    /// first primary, for tests' own checks.
    pub fn url_as(&self, user: &str) -> String {
        self.members[0].url_as(user)
    }

    /// The password file of `user`, shared by every member and Sentinel.
    pub fn password_file(&self, user: &str) -> PathBuf {
        password_file(&self.dir.path().join("secrets"), user)
    }

    pub fn members(&self) -> &[Redis] {
        &self.members
    }

    /// The member the Sentinels name as the primary now.
    pub fn primary(&self) -> &Redis {
        let port = self.primary_port().expect("a Sentinel names a primary");
        self.member_on(port)
    }

    /// Waits until the Sentinels name a primary other than the member on
    /// `old_port`, and it answers as one; returns it.
    pub fn wait_for_failover(&self, old_port: u16) -> &Redis {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(port) = self.primary_port().filter(|p| *p != old_port) {
                let member = self.member_on(port);
                if role(member) == "master" {
                    return member;
                }
            }
            assert!(
                Instant::now() < deadline,
                "no failover from {old_port} within {PATIENCE:?}; a Sentinel's log ends: {:?}",
                self.sentinels[0].log_tail()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits until `member` is a replica whose link to the primary is up,
    /// and has written the append-only file of what it copied: until then
    /// it refuses to shut down ("Writing initial AOF, can't exit") and
    /// ignores the SIGTERM of a test's `stop`.
    pub fn wait_until_replicating(&self, member: &Redis) {
        let deadline = Instant::now() + PATIENCE;
        let settled = |info: &String| {
            info.contains("master_link_status:up")
                && info.contains("aof_rewrite_in_progress:0")
                && info.contains("aof_rewrite_scheduled:0")
        };
        while !admin_query::<String>(member, &redis::cmd("INFO")).is_ok_and(|info| settled(&info)) {
            assert!(
                Instant::now() < deadline,
                "member {} is not replicating after {PATIENCE:?}",
                member.port()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn member_on(&self, port: u16) -> &Redis {
        self.members
            .iter()
            .find(|m| m.port() == port)
            .unwrap_or_else(|| panic!("no member on port {port}"))
    }

    /// The primary's port as the first Sentinel that answers names it.
    fn primary_port(&self) -> Option<u16> {
        self.sentinels.iter().find_map(|s| {
            let mut cmd = redis::cmd("SENTINEL");
            cmd.arg("GET-MASTER-ADDR-BY-NAME").arg(MASTER_NAME);
            let (_host, port): (String, u16) = s.query(&cmd).ok()?;
            Some(port)
        })
    }

    /// Until every Sentinel sees the replicas in sync and the two other
    /// Sentinels: before that a failover could not reach its quorum.
    fn wait_until_known(&self, replicas: usize) {
        for replica in &self.members[1..] {
            self.wait_until_replicating(replica);
        }
        let deadline = Instant::now() + PATIENCE;
        for sentinel in &self.sentinels {
            loop {
                let known = |what: &str| {
                    let mut cmd = redis::cmd("SENTINEL");
                    cmd.arg(what).arg(MASTER_NAME);
                    sentinel
                        .query::<Vec<redis::Value>>(&cmd)
                        .map_or(0, |found| found.len())
                };
                if known("REPLICAS") == replicas && known("SENTINELS") == 2 {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "the Sentinel on {} does not know every member after {PATIENCE:?}: {:?}",
                    sentinel.port,
                    sentinel.log_tail()
                );
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

impl Drop for RedisHa {
    fn drop(&mut self) {
        for sentinel in &self.sentinels {
            sentinel.process.stop(libc::SIGKILL);
        }
    }
}

impl Sentinel {
    fn start(dir: &Path, index: usize, primary_port: u16, secrets: &Path) -> Sentinel {
        let dir = dir.join(format!("sentinel-{index}"));
        std::fs::create_dir(&dir).expect("a Sentinel's dir");
        let sentinel = Sentinel {
            port: free_port(),
            dir,
            process: ServerProcess::default(),
            admin_password: password_in(&password_file(secrets, "admin")),
        };
        sentinel
            .process
            .start_unless_running(|| sentinel.spawn(primary_port, secrets));
        let login = format!("AUTH admin {}\r\n", sentinel.admin_password);
        let log = sentinel.dir.join("sentinel.log");
        wait_until("redis-server --sentinel", PATIENCE, &log, || {
            ping(sentinel.port, Some(&login))
        });
        sentinel
    }

    fn spawn(&self, primary_port: u16, secrets: &Path) -> Child {
        let binary = find_binary("redis-server", &[], "redis-server");
        let mut command = Command::new("sh");
        command
            .arg(start_script())
            .arg(binary)
            .arg("--sentinel")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--dir", &self.dir.to_string_lossy()])
            .args(["--protected-mode", "no", "--daemonize", "no"])
            .args([
                "--logfile",
                &self.dir.join("sentinel.log").to_string_lossy(),
            ])
            .env("REDIS_SECRETS_DIR", secrets)
            .env("REDIS_ACLFILE", self.dir.join("users.acl"))
            .env("REDIS_SENTINEL_CONF", self.dir.join("sentinel.conf"))
            .env("REDIS_PRIMARY", format!("127.0.0.1:{primary_port}"))
            .env("REDIS_DOWN_AFTER_MS", "1000")
            .env("REDIS_FAILOVER_TIMEOUT_MS", "5000")
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        spawn(command, libc::SIGKILL)
    }

    /// `cmd`, sent as admin.
    fn query<T: redis::FromRedisValue>(&self, cmd: &redis::Cmd) -> redis::RedisResult<T> {
        let url = format!(
            "redis://admin:{}@127.0.0.1:{}",
            self.admin_password, self.port
        );
        query(&url, cmd)
    }

    fn log_tail(&self) -> Vec<String> {
        let log = std::fs::read_to_string(self.dir.join("sentinel.log")).unwrap_or_default();
        log.lines().rev().take(8).map(String::from).collect()
    }
}

/// What `member` says it is: "master" or "slave" (ROLE), or "" if it does
/// not answer.
pub fn role(member: &Redis) -> String {
    admin_query::<Vec<redis::Value>>(member, &redis::cmd("ROLE"))
        .ok()
        .and_then(|reply| match reply.first() {
            Some(redis::Value::BulkString(role)) => Some(String::from_utf8_lossy(role).into()),
            _ => None,
        })
        .unwrap_or_default()
}

fn admin_query<T: redis::FromRedisValue>(
    member: &Redis,
    cmd: &redis::Cmd,
) -> redis::RedisResult<T> {
    query(&member.url(), cmd)
}

/// One command on a new connection that gives up within seconds.
fn query<T: redis::FromRedisValue>(url: &str, cmd: &redis::Cmd) -> redis::RedisResult<T> {
    let client = redis::Client::open(url)?;
    let mut connection = client.get_connection_with_timeout(Duration::from_secs(2))?;
    connection.set_read_timeout(Some(Duration::from_secs(5)))?;
    cmd.query(&mut connection)
}
