//! What a Redis error means to a service that keeps going through outages:
//! whether the setting itself can never work.

use redis::{ErrorKind, RedisError};

/// One line naming `REDIS_URL` when the error means that setting can never
/// work (a password or user the server refuses, a database index it does
/// not have), so the service should stop instead of retrying forever.
/// `None` for outages: refused connections, timeouts, a server loading.
pub fn unusable_setting(e: &RedisError) -> Option<String> {
    let permanent = e.kind() == ErrorKind::AuthenticationFailed
        || matches!(e.code(), Some("NOAUTH" | "WRONGPASS" | "NOPERM"))
        // Connection set-up's SELECT was refused: the index does not exist.
        || e.to_string().contains("refused to switch database");
    permanent.then(|| format!("REDIS_URL cannot work: {e}"))
}
