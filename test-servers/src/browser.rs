use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::Duration;

use hyper_util::client::legacy::connect::HttpConnector;
use tempfile::TempDir;

use crate::process::{find_binary, free_port, port_open, spawn, wait_until};

/// Headless Chromium driven through a real `chromedriver` (WebDriver).
pub struct Browser {
    port: u16,
    /// Chromium as found on PATH, for every session.
    chromium: std::path::PathBuf,
    profile: TempDir,
    process: Mutex<Option<Child>>,
}

impl Browser {
    pub fn start() -> Browser {
        let chromedriver = find_binary("chromedriver", &[], "chromium-driver");
        let chromium = find_binary("chromium", &[], "chromium");
        let port = free_port();
        let profile = tempfile::Builder::new()
            .prefix("test-chromium-")
            .tempdir()
            .expect("temp dir");
        let log = profile.path().join("chromedriver.log");
        let mut command = Command::new(chromedriver);
        // Its own process group, so the Chromium instances it starts are
        // killed with it even when a test never closed its session.
        command.process_group(0);
        command
            .arg(format!("--port={port}"))
            .arg(format!("--log-path={}", log.display()))
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let child = spawn(command, libc::SIGKILL);
        wait_until("chromedriver", Duration::from_secs(15), &log, || {
            port_open(port)
        });
        Browser {
            port,
            chromium,
            profile,
            process: Mutex::new(Some(child)),
        }
    }

    /// A new headless session; `width`x`height` is the window (a phone is 390x844).
    pub async fn session(&self, width: u32, height: u32) -> fantoccini::Client {
        let user_data = self.profile.path().join(format!("profile-{}", free_port()));
        let args = serde_json::json!([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            format!("--window-size={width},{height}"),
            format!("--user-data-dir={}", user_data.display()),
        ]);
        let mut capabilities = serde_json::Map::new();
        capabilities.insert(
            "goog:chromeOptions".into(),
            serde_json::json!({ "binary": self.chromium, "args": args }),
        );
        fantoccini::ClientBuilder::new(HttpConnector::new())
            .capabilities(capabilities)
            .connect(&format!("http://127.0.0.1:{}", self.port))
            .await
            .expect("start a chromium session")
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if let Some(mut child) = self.process.lock().unwrap().take() {
            unsafe { libc::kill(-(child.id() as libc::pid_t), libc::SIGKILL) };
            let _ = child.wait();
        }
    }
}
