//! What a Redis error means to a service that keeps going through outages:
//! whether the setting itself can never work.

use redis::{ErrorKind, RedisError};

/// One line naming `REDIS_URL` when the error means that setting can never
/// work (a password or user the server refuses, a command the user may not
/// run, a database index the server does not have), so the service should
/// stop instead of retrying forever. A refused login also names
/// `REDIS_PASSWORD_FILE`, where the password may have come from.
/// `None` for outages: refused connections, timeouts, a server loading.
pub fn unusable_setting(e: &RedisError) -> Option<String> {
    // Raised by the client itself for a setting it cannot use (a name no
    // Sentinel monitors, see `redis_primary`): its text names the setting.
    if e.kind() == ErrorKind::InvalidClientConfig {
        let line = e.to_string();
        return Some(match line.starts_with("REDIS_") {
            true => line,
            false => format!("REDIS_URL cannot work: {line}"),
        });
    }
    let login_refused = e.kind() == ErrorKind::AuthenticationFailed
        || matches!(e.code(), Some("NOAUTH" | "WRONGPASS"));
    // NOPERM: the user exists, but its ACL lacks a command the service needs.
    let permanent = login_refused
        || e.code() == Some("NOPERM")
        // Connection set-up's SELECT was refused: the index does not exist.
        || e.to_string().contains("refused to switch database");
    let check = if login_refused {
        " (check the user in REDIS_URL, and the password in it or in REDIS_PASSWORD_FILE)"
    } else {
        ""
    };
    permanent.then(|| format!("REDIS_URL cannot work: {e}{check}"))
}

/// The key and what is wrong with it, when a queue script refused to run
/// because a key has the wrong type or value: its error code is `BADKEY`
/// (ballot's `checks.lua`), and such a script changed nothing.
pub fn bad_key(e: &RedisError) -> Option<String> {
    if e.code() != Some("BADKEY") {
        return None;
    }
    let detail = e.detail().unwrap_or_default();
    // Redis appends where the error was raised: " script: <sha>, on @user_script:7."
    let detail = detail.split(" script: ").next().unwrap_or(detail);
    Some(detail.trim().to_string())
}
