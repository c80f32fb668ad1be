//! A service of ours run inside the test process, on a listener bound before
//! it starts: its port takes connections as soon as `start` returns, and no
//! other test can take the port in between, as one picked by `free_port`
//! and bound later could be.

use std::future::Future;

use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// The running service; it stops when this is dropped.
pub struct Served {
    port: u16,
    task: JoinHandle<()>,
}

impl Served {
    /// Binds 127.0.0.1 on a port the system picks and runs `serve` on it.
    pub async fn start<F, Fut>(serve: F) -> Served
    where
        F: FnOnce(TcpListener) -> Fut,
        Fut: Future + Send + 'static,
    {
        Served::start_on(Served::bind().await, serve)
    }

    /// A loopback listener on a port the system picks, for [`Served::start_on`]
    /// when another service must know the port before this one starts.
    pub async fn bind() -> TcpListener {
        TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a loopback port")
    }

    /// Runs `serve` on `listener`, bound already.
    pub fn start_on<F, Fut>(listener: TcpListener, serve: F) -> Served
    where
        F: FnOnce(TcpListener) -> Fut,
        Fut: Future + Send + 'static,
    {
        let port = listener.local_addr().expect("a bound address").port();
        let serving = serve(listener);
        let task = tokio::spawn(async move {
            serving.await;
        });
        Served { port, task }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Lets it serve until the test's runtime ends; its port.
    pub fn detach(self) -> u16 {
        // Not dropped, so not aborted: the task runs on, as spawned tasks do.
        std::mem::ManuallyDrop::new(self).port
    }

    /// `http://127.0.0.1:<port>`
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        self.task.abort();
    }
}
