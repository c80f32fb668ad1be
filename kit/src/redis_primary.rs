//! Where the Redis primary is: the server of REDIS_URL, or, with Sentinel
//! (REDIS_SENTINELS), the member the Sentinels name as the primary now.
//! Services ask for it each time they open a connection, so that after a
//! failover the next connection reaches the new primary without a restart.

use std::time::Duration;

use redis::sentinel::{Sentinel, SentinelNodeConnectionInfo};
use redis::{ConnectionAddr, ErrorKind, IntoConnectionInfo, RedisError, RedisResult};

/// The longest one lookup through the Sentinels may take (a Sentinel host
/// that vanished would otherwise hold it for TCP's retransmission timeout).
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(3);

pub struct RedisPrimary {
    /// REDIS_URL's client, its password included.
    client: redis::Client,
    sentinels: Option<Sentinels>,
}

struct Sentinels {
    sentinel: tokio::sync::Mutex<Sentinel>,
    /// Each Sentinel's address, with the login the members get.
    addresses: Vec<redis::ConnectionInfo>,
    master_name: String,
    /// User, password and database of REDIS_URL, for the primary.
    node: SentinelNodeConnectionInfo,
}

impl RedisPrimary {
    /// The server of `client` (REDIS_URL), always.
    pub fn direct(client: redis::Client) -> RedisPrimary {
        RedisPrimary {
            client,
            sentinels: None,
        }
    }

    /// The primary the Sentinels at `addresses` name `master_name`, logging
    /// in to them and to it with the user and password of `client`
    /// (REDIS_URL, whose host and port are not used).
    pub fn through_sentinels(
        client: redis::Client,
        addresses: &[(String, u16)],
        master_name: &str,
    ) -> RedisPrimary {
        let settings = client.get_connection_info().redis_settings().clone();
        // A Sentinel has no databases: the login only.
        let login = settings.clone().set_db(0);
        let addresses: Vec<redis::ConnectionInfo> = addresses
            .iter()
            .map(|(host, port)| {
                ConnectionAddr::Tcp(host.clone(), *port)
                    .into_connection_info()
                    .expect("a TCP address")
                    .set_redis_settings(login.clone())
            })
            .collect();
        let sentinel = Sentinel::build(addresses.clone()).expect("at least one Sentinel");
        RedisPrimary {
            client,
            sentinels: Some(Sentinels {
                sentinel: tokio::sync::Mutex::new(sentinel),
                addresses,
                master_name: master_name.to_string(),
                node: SentinelNodeConnectionInfo::default().set_redis_connection_info(settings),
            }),
        }
    }

    /// True with Sentinel: the primary has replicas, and a write counts once
    /// one of them has it too (`WAIT`).
    pub fn replicated(&self) -> bool {
        self.sentinels.is_some()
    }

    /// A client for the primary as of now. With Sentinel, the Sentinels are
    /// asked and the member they name must say it is the primary (`ROLE`):
    /// an error while a failover is under way.
    pub async fn client(&self) -> RedisResult<redis::Client> {
        let Some(sentinels) = &self.sentinels else {
            return Ok(self.client.clone());
        };
        let lookup = async {
            let found = {
                let mut sentinel = sentinels.sentinel.lock().await;
                sentinel
                    .async_master_for(&sentinels.master_name, Some(&sentinels.node))
                    .await
            };
            match found {
                Err(e) if e.kind() == ErrorKind::MasterNameNotFoundBySentinel => {
                    Err(sentinels.unknown_name().await.unwrap_or(e))
                }
                found => found,
            }
        };
        tokio::time::timeout(LOOKUP_TIMEOUT, lookup)
            .await
            .unwrap_or_else(|_| {
                Err(RedisError::from(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("the Sentinels did not name a primary within {LOOKUP_TIMEOUT:?}"),
                )))
            })
    }
}

impl Sentinels {
    /// "Not found" also means a primary that is down or was demoted, while
    /// the Sentinels fail over. A name that no Sentinel monitors at all is
    /// a setting that can never work: that error, if so.
    async fn unknown_name(&self) -> Option<RedisError> {
        let mut answered = false;
        for address in &self.addresses {
            let Ok(client) = redis::Client::open(address.clone()) else {
                continue;
            };
            let Ok(mut connection) = client.get_multiplexed_async_connection().await else {
                continue;
            };
            let named: RedisResult<Option<(String, u16)>> = redis::cmd("SENTINEL")
                .arg("GET-MASTER-ADDR-BY-NAME")
                .arg(&self.master_name)
                .query_async(&mut connection)
                .await;
            match named {
                Ok(None) => answered = true,
                _ => return None,
            }
        }
        answered.then(|| {
            RedisError::from((
                ErrorKind::InvalidClientConfig,
                "REDIS_MASTER_NAME cannot work",
                format!(
                    "no Sentinel monitors a primary named {:?}",
                    self.master_name
                ),
            ))
        })
    }
}
