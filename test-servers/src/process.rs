use std::fs::File;
use std::io;
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus};
use std::sync::mpsc::{channel, Sender};
use std::sync::{Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

/// A loopback port that is free now and stays this test process's until
/// it ends, so a server stopped and started again finds its port still free.
///
/// A port the kernel hands out for `bind(0)` or an outgoing connection can be
/// taken by anyone the moment its server stops (a worker's listener once took
/// the port of a Postgres stopped for an outage test, and the Postgres could
/// not start again). So ports come from below the kernel's ephemeral range,
/// where nothing is handed out by chance, and each is claimed with a lock
/// file that the test binaries running beside this one respect.
pub fn free_port() -> u16 {
    static CLAIMED: Mutex<Vec<File>> = Mutex::new(Vec::new());
    let dir = std::env::temp_dir().join("test-servers-ports");
    std::fs::create_dir_all(&dir).expect("create the port claims directory");
    let (low, high) = unclaimed_range();
    let span = u32::from(high - low);
    // Start where this process's id points, so processes rarely contend.
    let offset = std::process::id().wrapping_mul(7919);
    (0..span)
        .map(|i| low + ((offset + i) % span) as u16)
        .find_map(|port| {
            let claim = claim(&dir, port)?;
            // Something outside the test kit may still listen there.
            TcpListener::bind(("127.0.0.1", port)).ok()?;
            CLAIMED.lock().unwrap().push(claim);
            Some(port)
        })
        .unwrap_or_else(|| panic!("no free loopback port in {low}..{high}"))
}

/// The ports below the kernel's ephemeral range (or above it, if it starts low).
fn unclaimed_range() -> (u16, u16) {
    let ephemeral = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| {
            let mut ends = range.split_whitespace().map(str::parse::<u16>);
            Some((ends.next()?.ok()?, ends.next()?.ok()?))
        })
        .unwrap_or((32768, 60999));
    match ephemeral {
        (low, _) if low > 12_000 => (10_000, low),
        (_, high) if high < 63_000 => (high + 1, 65_535),
        _ => panic!("net.ipv4.ip_local_port_range leaves no ports for test servers: narrow it"),
    }
}

/// An exclusive lock on `port`'s claim file, held as long as the file is open.
fn claim(dir: &Path, port: u16) -> Option<File> {
    let file = File::create(dir.join(port.to_string())).ok()?;
    // SAFETY: flock(2) on a descriptor this function owns.
    let locked = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0;
    locked.then_some(file)
}

type SpawnRequest = (Command, Sender<io::Result<Child>>);

/// Starts `command` so that it receives `death_signal` when this process
/// ends, however it ends. Linux sends that signal when the *thread* that
/// spawned the child exits, so every child is spawned from one thread that
/// lives as long as the process.
pub fn spawn(mut command: Command, death_signal: libc::c_int) -> Child {
    static SPAWNER: OnceLock<Mutex<Sender<SpawnRequest>>> = OnceLock::new();
    let spawner = SPAWNER.get_or_init(|| {
        let (tx, rx) = channel::<SpawnRequest>();
        thread::Builder::new()
            .name("test-servers-spawner".into())
            .spawn(move || {
                for (mut command, reply) in rx {
                    let _ = reply.send(command.spawn());
                }
            })
            .expect("start the spawner thread");
        Mutex::new(tx)
    });
    unsafe {
        command.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, death_signal) != 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let program = command.get_program().to_string_lossy().into_owned();
    let (tx, rx) = channel();
    spawner
        .lock()
        .unwrap()
        .send((command, tx))
        .expect("spawner alive");
    rx.recv()
        .expect("spawner alive")
        .unwrap_or_else(|e| panic!("cannot start {program}: {e}"))
}

/// Finds `name` on PATH or in `extra_dirs`, or fails the test with one line
/// saying what to install.
pub fn find_binary(name: &str, extra_dirs: &[PathBuf], package: &str) -> PathBuf {
    let path_dirs = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default();
    path_dirs
        .iter()
        .chain(extra_dirs)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| panic!("{name} not found: install it with `apt-get install {package}`"))
}

/// Polls `ready` until it holds, or fails the test after `limit` showing
/// the end of the server's log.
pub fn wait_until(what: &str, limit: Duration, log: &Path, mut ready: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ready() {
        if start.elapsed() > limit {
            let log = std::fs::read_to_string(log).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(5).collect();
            panic!("{what} not ready after {limit:?}; its log ends: {tail:?}");
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// Sends SIGTERM to `child` (as Docker and Kubernetes stop a container)
/// and waits for it to exit; fails the test if it still runs after `limit`.
pub fn terminate(child: &mut Child, limit: Duration) -> ExitStatus {
    // SAFETY: kill(2) on a child we own and have not waited for yet.
    assert_eq!(
        unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) },
        0
    );
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().expect("wait for the child") {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "still running {limit:?} after SIGTERM"
        );
        thread::sleep(Duration::from_millis(20));
    }
}

/// A size field of /proc/<pid>/status, such as "VmRSS:" (resident now) or
/// "VmHWM:" (the most it has been resident), in KiB.
pub fn memory_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_else(|e| panic!("process {pid} is not alive: {e}"));
    status
        .lines()
        .find_map(|line| line.strip_prefix(field))
        .and_then(|value| value.split_whitespace().next())
        .and_then(|kib| kib.parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
}

pub fn port_open(port: u16) -> bool {
    TcpStream::connect(("127.0.0.1", port)).is_ok()
}

/// A server process that tests stop and start again.
#[derive(Default)]
pub struct ServerProcess(Mutex<Option<Child>>);

impl ServerProcess {
    /// Runs `start` unless the server is already running; true if it ran.
    pub fn start_unless_running(&self, start: impl FnOnce() -> Child) -> bool {
        let mut process = self.lock();
        if process.is_some() {
            return false;
        }
        *process = Some(start());
        true
    }

    /// Sends `signal` and waits for the process to exit, if it is running.
    pub fn stop(&self, signal: libc::c_int) {
        if let Some(mut child) = self.lock().take() {
            unsafe { libc::kill(child.id() as libc::pid_t, signal) };
            // A paused process acts on the signal only once it runs again.
            unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGCONT) };
            let _ = child.wait();
        }
    }

    /// Sends `signal` to the process if it is running; true if it was.
    pub fn signal(&self, signal: libc::c_int) -> bool {
        match self.lock().as_ref() {
            Some(child) => unsafe { libc::kill(child.id() as libc::pid_t, signal) == 0 },
            None => false,
        }
    }

    /// Freezes the process (SIGSTOP): its port still accepts connections
    /// (the kernel completes them) but nothing is answered, as when a server
    /// hangs. Panics if it is not running.
    pub fn pause(&self) {
        assert!(
            self.signal(libc::SIGSTOP),
            "pause: the server is not running"
        );
    }

    /// Lets a paused process run again (SIGCONT); it answers what waited.
    pub fn unpause(&self) {
        assert!(
            self.signal(libc::SIGCONT),
            "unpause: the server is not running"
        );
    }

    /// Teardown runs after a failed test too: a poisoned lock still holds the child.
    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Child>> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Process teardown for servers that live in statics (never dropped):
/// registered once, run by `exit()` at the end of the test binary.
pub fn at_exit(cleanup: extern "C" fn()) {
    unsafe { libc::atexit(cleanup) };
}

pub fn remove_dir(dir: &Path) {
    let _ = std::fs::remove_dir_all(dir);
}
