//! One multiplexed Redis connection that every request shares, made on first
//! use and dropped after a failure so that the next request makes a new one.
//!
//! Unlike redis's `ConnectionManager`, this one lets a caller tell "never
//! sent" from "sent, then lost": a connection is handed out only while the
//! task that does its I/O still runs (a socket Redis closed ends that task),
//! and making one either succeeds, with nothing of ours sent yet, or fails.
//! Each new connection goes to the primary as of then (with Sentinel, the
//! one the Sentinels name), so after a failover the next one reaches the
//! new primary.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use kit::redis_primary::RedisPrimary;
use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, ConnectionAddr, ErrorKind, RedisError, RedisResult};
use tokio::net::{TcpStream, UnixStream};
use tokio::task::JoinHandle;

/// The longest a new connection (TCP and Redis's handshake) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);

pub struct SharedConnection {
    primary: RedisPrimary,
    current: Mutex<Option<Live>>,
    /// One attempt to connect at a time: requests that arrive meanwhile
    /// wait for it and share the connection it makes.
    connecting: tokio::sync::Mutex<()>,
    made: AtomicU64,
}

struct Live {
    connection: MultiplexedConnection,
    /// Writes commands and reads replies; finished once the socket failed.
    io: JoinHandle<()>,
    id: u64,
}

/// A connection handed to one caller, and which one it is, so that a caller
/// who saw it fail drops it and not a newer one.
#[derive(Clone)]
pub struct Link {
    pub connection: MultiplexedConnection,
    pub id: u64,
}

impl SharedConnection {
    pub fn new(primary: RedisPrimary) -> Self {
        SharedConnection {
            primary,
            current: Mutex::new(None),
            connecting: tokio::sync::Mutex::new(()),
            made: AtomicU64::new(0),
        }
    }

    /// The live connection, or a new one. An error means nothing was sent.
    pub async fn get(&self) -> RedisResult<Link> {
        if let Some(link) = self.live() {
            return Ok(link);
        }
        let _turn = self.connecting.lock().await;
        if let Some(link) = self.live() {
            return Ok(link);
        }
        let live = tokio::time::timeout(CONNECT_TIMEOUT, self.connect())
            .await
            .unwrap_or_else(|_| {
                Err(RedisError::from(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("no connection within {CONNECT_TIMEOUT:?}"),
                )))
            })?;
        let link = Link {
            connection: live.connection.clone(),
            id: live.id,
        };
        *self.lock() = Some(live);
        Ok(link)
    }

    /// Drops the connection a `Link` with this `id` had, unless it was
    /// already replaced. Requests still waiting on it keep it open until
    /// they give up.
    pub fn reset(&self, id: u64) {
        let mut current = self.lock();
        if current.as_ref().is_some_and(|live| live.id == id) {
            *current = None;
        }
    }

    /// The hot path: a lock held for one clone.
    pub fn live(&self) -> Option<Link> {
        let current = self.lock();
        let live = current.as_ref().filter(|live| !live.io.is_finished())?;
        Some(Link {
            connection: live.connection.clone(),
            id: live.id,
        })
    }

    /// A new connection whose I/O runs on a task of our own, so that we can
    /// see when the socket is gone.
    async fn connect(&self) -> RedisResult<Live> {
        let client = self.primary.client().await?;
        let info = client.get_connection_info();
        // Each caller bounds its own wait for a reply.
        let config = AsyncConnectionConfig::new().set_response_timeout(None);
        let (connection, io) = match info.addr() {
            ConnectionAddr::Tcp(host, port) => {
                let stream = TcpStream::connect((host.as_str(), *port)).await?;
                stream.set_nodelay(true)?;
                let (connection, io) =
                    MultiplexedConnection::new_with_config(info.redis_settings(), stream, config)
                        .await?;
                (connection, tokio::spawn(io))
            }
            ConnectionAddr::Unix(path) => {
                let stream = UnixStream::connect(path).await?;
                let (connection, io) =
                    MultiplexedConnection::new_with_config(info.redis_settings(), stream, config)
                        .await?;
                (connection, tokio::spawn(io))
            }
            _ => {
                return Err(RedisError::from((
                    ErrorKind::InvalidClientConfig,
                    "TLS connections to Redis are not supported",
                )))
            }
        };
        Ok(Live {
            connection,
            io,
            id: self.made.fetch_add(1, Ordering::Relaxed),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Live>> {
        self.current
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
