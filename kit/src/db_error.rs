//! What a Postgres error means to a service that keeps going through
//! outages: the server's own words for the log, and whether the setting
//! itself can never work.

use tokio_postgres::error::SqlState;
use tokio_postgres::Error;

/// The server's own message when there is one (the plain `Display` of a
/// database error says only "db error"), and what it means when it comes
/// from a schema upgrade (see `ballot::schema::migrate`).
pub fn explain(e: &Error) -> String {
    let Some(db) = e.as_db_error() else {
        // "error connecting to server" alone hides the cause (refused, ...).
        return match std::error::Error::source(e) {
            Some(cause) => format!("{e}: {cause}"),
            None => e.to_string(),
        };
    };
    let meaning = match *db.code() {
        SqlState::LOCK_NOT_AVAILABLE => {
            ": the schema upgrade waits for a lock another session holds; \
             it gives up quickly so writers are not held up, and retries"
        }
        SqlState::INSUFFICIENT_PRIVILEGE => {
            ": this role may not create or upgrade the schema; waiting for \
             `worker migrate` (run as the schema's owner)"
        }
        _ => "",
    };
    format!("{} ({}){meaning}", db.message(), db.code().code())
}

/// One line naming `DATABASE_URL` when the error means that setting can
/// never work (wrong password, unknown role, no such database), so the
/// service should stop instead of retrying forever. `None` for outages.
pub fn unusable_setting(e: &Error) -> Option<String> {
    let permanent = [
        SqlState::INVALID_PASSWORD,
        SqlState::INVALID_AUTHORIZATION_SPECIFICATION,
        SqlState::INVALID_CATALOG_NAME,
    ];
    let code = e.code()?;
    permanent
        .contains(code)
        .then(|| format!("DATABASE_URL cannot work: {}", explain(e)))
}
