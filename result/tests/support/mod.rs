//! Runs the real result service on a port of its own and talks to it over
//! real HTTP and websockets.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use test_servers::free_port;

pub use pipeline::client::*;

/// Starts the service against `database_url` and waits until it is ready.
pub async fn start_result(database_url: &str) -> u16 {
    let port = launch_result(database_url, &[]).await;
    wait_for_status(port, "/readyz", 200).await;
    port
}

/// Launches the service in this test's runtime, with `extra` flags such as
/// `--option-c`, without waiting for it to be ready; it serves until the
/// test ends. Its port is bound before it starts (see `test_servers::Served`).
pub async fn launch_result(database_url: &str, extra: &[&str]) -> u16 {
    pipeline::start_result(database_url, extra).await.detach()
}

/// The result binary in a process of its own, so that its memory and its
/// limits are its own; killed when dropped, even when a test fails.
pub struct ResultProcess {
    child: std::process::Child,
    pub port: u16,
    /// Every line it has written to stderr so far.
    log: Arc<Mutex<Vec<String>>>,
}

impl ResultProcess {
    /// Starts the binary against `database_url` on a free port (`adjust`
    /// may add to the command) and waits until it is ready.
    pub async fn start(
        database_url: &str,
        adjust: impl FnOnce(&mut std::process::Command),
    ) -> ResultProcess {
        use std::os::unix::process::CommandExt;
        let port = free_port();
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_result"));
        command
            .env_clear()
            .env("DATABASE_URL", database_url)
            .env("PORT", port.to_string())
            .env("RUST_LOG", "warn")
            .stderr(std::process::Stdio::piped());
        // SAFETY: prctl only sets a flag of the child about to exec.
        unsafe {
            command.pre_exec(|| {
                // Dies with the test binary, even if that is killed.
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        adjust(&mut command);
        let mut child = command.spawn().expect("start the result binary");
        let log = Arc::new(Mutex::new(Vec::new()));
        if let Some(stderr) = child.stderr.take() {
            let log = Arc::clone(&log);
            // Shown with the test's output, as if the binary wrote it there.
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    eprintln!("{line}");
                    log.lock().unwrap().push(line);
                }
            });
        }
        let process = ResultProcess { child, port, log };
        wait_for_status(port, "/readyz", 200).await;
        process
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGTERM and waits (up to `limit`) for the process to exit.
    pub fn terminate(&mut self, limit: Duration) -> std::process::ExitStatus {
        test_servers::terminate(&mut self.child, limit)
    }

    /// Sends SIGTERM and returns at once.
    pub fn signal_terminate(&self) {
        // SAFETY: kill(2) on a child we own and have not waited for yet.
        assert_eq!(
            unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) },
            0
        );
    }

    /// Waits up to `limit` for the process to exit by itself.
    pub async fn exit_within(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            if tokio::time::Instant::now() > deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// A size field of /proc/<pid>/status, in KiB: see [`test_servers::memory_kib`].
    pub fn memory_kib(&self, field: &str) -> u64 {
        test_servers::memory_kib(self.child.id(), field)
    }

    /// The lines it has written to stderr so far.
    pub fn log(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }
}

impl Drop for ResultProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
