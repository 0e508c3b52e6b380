//! PostgreSQL's errors, from both of its drivers (sqlx and tokio-postgres), as
//! [`todo_core::Error`]s, by what they mean for the caller: the server's own errors by their
//! SQLSTATE, the others by whether the connection could be made and kept.
//!
//! [`todo_core::Error`]: crate::Error

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::error::{BoxError, Error};
use crate::recurrence::Recurrence;

/// When (milliseconds since the Unix epoch) a statement this process prepared was last found
/// missing, already taken or replaced on its session (SQLSTATE 26000, 42P05 or 22P03); 0 for
/// never.
static STATEMENTS_LOST_AT: AtomicU64 = AtomicU64::new(0);

/// How long after such an error [`statements_lost_recently`] says so.
const STATEMENTS_LOST_FOR: Duration = Duration::from_secs(60);

/// Whether `code` says a prepared statement is missing (26000 `invalid_sql_statement_name`),
/// already exists (42P05 `duplicate_prepared_statement`), or is not the statement this
/// connection prepared under that name (22P03 `invalid_binary_representation`: both drivers
/// send parameters in the binary format of the types the statement was prepared with, so a
/// statement that cannot read them is another client's, met behind a transaction pooler with
/// the same name and other parameter types). Our statements are named per connection, so each
/// means the session under the connection is not the one they were prepared on, which is what
/// a pooler in transaction mode does.
fn is_statement_lost(code: &str) -> bool {
    matches!(code, "26000" | "42P05" | "22P03")
}

/// Notes a lost statement ([`is_statement_lost`]); the first one in a while is logged, naming
/// the setting that fixes it.
fn statements_lost() {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(1, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    let before = STATEMENTS_LOST_AT.swap(now, Ordering::Relaxed);
    if now.saturating_sub(before) > STATEMENTS_LOST_FOR.as_millis() as u64 {
        tracing::error!(
            "a prepared statement vanished from its PostgreSQL session (SQLSTATE 26000/42P05/22P03): \
             the database URL goes through a pooler in transaction mode (PgBouncer, Neon's \
             pooled URL, Supabase's pooler); set DATABASE_POOLER=transaction (or add \
             pgbouncer=true to the URL); until then /readyz fails and such requests answer 503"
        );
    }
}

/// Whether a statement this process prepared was lost ([`is_statement_lost`]) within the last
/// minute: a store not set up for a transaction pooler then reports itself not ready.
pub(crate) fn statements_lost_recently() -> bool {
    let at = STATEMENTS_LOST_AT.load(Ordering::Relaxed);
    if at == 0 {
        return false;
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    now.saturating_sub(at) < STATEMENTS_LOST_FOR.as_millis() as u64
}

/// The error for a server error with SQLSTATE `code`, with `source` kept for logs: 23514 (the
/// schema's CHECK constraint: a recurrence rule needs a due date) is [`Error::Validation`]; 53100
/// `disk_full` is [`Error::OutOfSpace`]; a session that is gone or could not start (class 08,
/// 57P) or 53300 `too_many_connections` is [`Error::Unavailable`]; anything else (a constraint,
/// the rest of class 53, a read-only session...) is [`Error::Storage`]. A prepared statement
/// lost from its session or replaced on it (26000, 42P05, 22P03: a transaction pooler the
/// store was not told about) is [`Error::Unavailable`], and noted
/// ([`statements_lost_recently`]): behind such a pooler a statement may even have run under
/// another's name, so a write's outcome is unknown; for the same reason, within the minute after
/// one, a data exception or a type or name error (classes 22 and 42, what our parameters and
/// columns meet in another client's statement) is [`Error::Unavailable`] too ([`unexplained`]).
fn by_sqlstate(code: &str, source: BoxError) -> Error {
    if is_statement_lost(code) {
        statements_lost();
    }
    classify(code, source, statements_lost_recently())
}

/// [`by_sqlstate`] without its note of a lost statement, told whether one was lost recently.
fn classify(code: &str, source: BoxError, lost_recently: bool) -> Error {
    match code {
        code if is_statement_lost(code) => Error::Unavailable(source),
        // The schema's one CHECK constraint: a recurring task needs a due date.
        "23514" => Error::Validation(Recurrence::needs_due_date()),
        "53100" => Error::OutOfSpace(source),
        "53300" => Error::Unavailable(source),
        code if is_connection_lost(code) => Error::Unavailable(source),
        code if code.starts_with("22") || code.starts_with("42") => {
            unexplained(source, lost_recently)
        }
        _ => Error::Storage(source),
    }
}

/// An error none of our statements should meet on its own session (a value the server cannot
/// read, a row that does not decode): [`Error::Storage`], or [`Error::Unavailable`] when a
/// statement was lost within the last minute (`lost_recently`, see [`statements_lost_recently`]).
/// Behind a transaction pooler the store was not told about, another client's statement can run
/// under our statement's name (SQLSTATE 22021 when our binary integer reaches its text
/// parameter, or rows our decoder cannot read), so the outcome is unknown, as on a lost
/// connection.
fn unexplained(source: BoxError, lost_recently: bool) -> Error {
    if lost_recently {
        Error::Unavailable(source)
    } else {
        Error::Storage(source)
    }
}

/// Whether a SQLSTATE says the session itself is gone or could not start: class 08 (connection
/// exception) and 57P (the server shut the session down: `pg_terminate_backend`, a restart,
/// "cannot connect now").
fn is_connection_lost(code: &str) -> bool {
    code.starts_with("08") || code.starts_with("57P")
}

/// An error of sqlx's PostgreSQL driver. A connection that cannot be made or kept, or a pool
/// that has none to give, is [`Error::Unavailable`]; a row that does not decode is
/// [`unexplained`].
pub(crate) fn from_sqlx(e: sqlx::Error) -> Error {
    match &e {
        sqlx::Error::Database(db) => match db.code() {
            Some(code) => {
                let code = code.into_owned();
                by_sqlstate(&code, Box::new(e))
            }
            None => unexplained(Box::new(e), statements_lost_recently()),
        },
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => Error::Unavailable(Box::new(e)),
        sqlx::Error::ColumnDecode { .. }
        | sqlx::Error::Decode(_)
        | sqlx::Error::ColumnIndexOutOfBounds { .. }
        | sqlx::Error::ColumnNotFound(_) => unexplained(Box::new(e), statements_lost_recently()),
        _ => Error::Storage(Box::new(e)),
    }
}

/// An error of tokio-postgres on an open connection: the server's own by SQLSTATE; a connection
/// that closed or failed under it ([`lost_connection`]) is [`Error::Unavailable`]; anything else
/// (a protocol or decoding failure) is [`unexplained`].
pub(crate) fn from_pg(e: tokio_postgres::Error) -> Error {
    if let Some(db) = e.as_db_error() {
        let code = db.code().code().to_owned();
        return by_sqlstate(&code, Box::new(e));
    }
    if lost_connection(&e) {
        Error::Unavailable(Box::new(e))
    } else {
        unexplained(Box::new(e), statements_lost_recently())
    }
}

/// An error of tokio-postgres while opening a connection: whatever it is (refused, timed out,
/// TLS, authentication), the database cannot be used now, as when the pool cannot open one.
pub(crate) fn from_pg_connect(e: tokio_postgres::Error) -> Error {
    Error::Unavailable(Box::new(e))
}

/// A failed migration.
pub(crate) fn from_migrate(e: sqlx::migrate::MigrateError) -> Error {
    match e {
        sqlx::migrate::MigrateError::Execute(inner) => from_sqlx(inner),
        other => Error::Storage(Box::new(other)),
    }
}

/// Whether `e` is sqlx's report of a unique violation (an email already registered).
pub(crate) fn is_unique_violation(e: &Error) -> bool {
    let Error::Storage(source) = e else {
        return false;
    };
    source
        .downcast_ref::<sqlx::Error>()
        .and_then(sqlx::Error::as_database_error)
        .is_some_and(|db| db.is_unique_violation())
}

/// Whether a sqlx error leaves its connection unusable, so it must not go back to the pool:
/// I/O, TLS, protocol and driver failures, and the server's connection-level errors (class 08
/// and 57P), and a session that lost the statements the connection prepared (26000, 42P05:
/// the connection's cache of them is wrong). A constraint, a bad value or a decode error leaves
/// it usable.
pub(crate) fn breaks_connection(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => db
            .code()
            .is_some_and(|code| is_connection_lost(&code) || is_statement_lost(&code)),
        _ => false,
    }
}

/// Whether a tokio-postgres error says the connection is gone, so a read that failed with it
/// may run once more on a new one: the connection closed, an I/O (or TLS) failure under it, or
/// the server ending the session (class 08, 57P).
pub(crate) fn lost_connection(e: &tokio_postgres::Error) -> bool {
    if let Some(db) = e.as_db_error() {
        return is_connection_lost(db.code().code());
    }
    if e.is_closed() {
        return true;
    }
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        if c.is::<std::io::Error>() || c.is::<rustls::Error>() {
            return true;
        }
        cause = c.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Out of space, unavailable and the rest, by SQLSTATE alone (through `classify`, so that
    /// no lost statement is noted for the other tests of this process).
    #[test]
    fn sqlstates_are_classified_by_what_they_mean_for_the_caller() {
        let e = || -> BoxError { "x".into() };
        assert!(matches!(
            classify("53100", e(), false),
            Error::OutOfSpace(_)
        ));
        for code in [
            "53300", "08006", "08001", "57P01", "57P03", "26000", "42P05", "22P03",
        ] {
            assert!(
                matches!(classify(code, e(), false), Error::Unavailable(_)),
                "{code}"
            );
        }
        for code in ["53200", "53400", "23505", "25006", "42P01", "22021"] {
            assert!(
                matches!(classify(code, e(), false), Error::Storage(_)),
                "{code}"
            );
        }
        // Within a minute of a lost statement, data, type and name errors are unavailable; a
        // constraint's answer or a read-only session's refusal stays as it was.
        for code in ["23505", "25006", "53200"] {
            assert!(
                matches!(classify(code, e(), true), Error::Storage(_)),
                "{code}"
            );
        }
        for code in ["22021", "22P02", "42P01", "42804"] {
            assert!(
                matches!(classify(code, e(), true), Error::Unavailable(_)),
                "{code}"
            );
        }
    }

    /// sqlx's own failures to reach the database are unavailable; the others are not.
    #[test]
    fn sqlx_failures_to_reach_the_database_are_unavailable() {
        let io = sqlx::Error::Io(std::io::Error::from(std::io::ErrorKind::ConnectionReset));
        assert!(breaks_connection(&io));
        assert!(matches!(from_sqlx(io), Error::Unavailable(_)));
        assert!(matches!(
            from_sqlx(sqlx::Error::PoolTimedOut),
            Error::Unavailable(_)
        ));
        assert!(!breaks_connection(&sqlx::Error::RowNotFound));
        assert!(matches!(
            from_sqlx(sqlx::Error::RowNotFound),
            Error::Storage(_)
        ));
        let protocol = sqlx::Error::Protocol("x".into());
        assert!(breaks_connection(&protocol));
        assert!(matches!(from_sqlx(protocol), Error::Storage(_)));
    }
}
