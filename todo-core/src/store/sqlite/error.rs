//! SQLite's errors, from both of its drivers (sqlx and rusqlite), as [`todo_core::Error`]s.
//!
//! [`todo_core::Error`]: crate::Error

use rusqlite::ErrorCode;

use crate::error::{BoxError, Error};
use crate::recurrence::Recurrence;

/// SQLite's primary result code for "database or disk is full".
const FULL: i32 = 13;

/// SQLite's extended result code for a failed CHECK constraint.
const CONSTRAINT_CHECK: i32 = 275;

/// The error for SQLite's (extended) result `code`, with `source` kept for logs: the schema's
/// one CHECK constraint (a recurrence rule needs a due date) is [`Error::Validation`]; a full
/// database or disk is [`Error::OutOfSpace`]; a lock held past the busy timeout (BUSY, LOCKED),
/// an I/O error and a file that cannot be opened are [`Error::Unavailable`] (the file cannot be
/// used now); anything else (CORRUPT, NOTADB, a constraint...) is [`Error::Storage`].
fn by_code(code: Option<i32>, source: BoxError) -> Error {
    if code == Some(CONSTRAINT_CHECK) {
        // What the schema's one CHECK constraint on `tasks` means.
        return Error::Validation(Recurrence::needs_due_date());
    }
    // SQLite reports extended result codes; the primary code is the low byte.
    match code.map(|c| c & 0xff) {
        Some(FULL) => Error::OutOfSpace(source),
        Some(5 | 6 | 10 | 14) => Error::Unavailable(source),
        _ => Error::Storage(source),
    }
}

/// An error of sqlx's SQLite driver. A connection or worker that is gone, or a pool that has
/// none to give, is [`Error::Unavailable`].
pub(crate) fn from_sqlx(e: sqlx::Error) -> Error {
    match &e {
        sqlx::Error::Database(db) => {
            let code = db.code().and_then(|c| c.parse::<i32>().ok());
            by_code(code, Box::new(e))
        }
        sqlx::Error::Io(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => Error::Unavailable(Box::new(e)),
        _ => Error::Storage(Box::new(e)),
    }
}

/// An error of rusqlite.
pub(crate) fn from_rusqlite(e: rusqlite::Error) -> Error {
    let code = match &e {
        rusqlite::Error::SqliteFailure(failure, _) => Some(failure.extended_code),
        _ => None,
    };
    by_code(code, Box::new(e))
}

/// A failed migration.
pub(crate) fn from_migrate(e: sqlx::migrate::MigrateError) -> Error {
    match e {
        sqlx::migrate::MigrateError::Execute(inner) => from_sqlx(inner),
        other => Error::Storage(Box::new(other)),
    }
}

/// Whether `e` is a rusqlite read refused because another connection held a lock it would
/// have had to wait for.
pub(crate) fn is_locked(e: &Error) -> bool {
    let Error::Unavailable(source) = e else {
        return false;
    };
    source
        .downcast_ref::<rusqlite::Error>()
        .and_then(rusqlite::Error::sqlite_error_code)
        .is_some_and(|c| matches!(c, ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked))
}

/// Whether a sqlx error leaves its connection unusable, so it must not go back to its pool.
/// SQLite's own errors never do, which matters in memory: the database lives only as long as
/// its one connection.
pub(crate) fn breaks_connection(e: &sqlx::Error) -> bool {
    matches!(
        e,
        sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::Protocol(_)
            | sqlx::Error::WorkerCrashed
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// SQLite reports extended result codes (`5` busy, `517` busy snapshot, `261` busy
    /// recovery, `13` full...): each is classified by its primary code.
    #[test]
    fn extended_codes_are_classified_by_their_primary_code() {
        let e = || -> BoxError { "x".into() };
        assert!(matches!(by_code(Some(517), e()), Error::Unavailable(_)));
        assert!(matches!(by_code(Some(261), e()), Error::Unavailable(_)));
        assert!(matches!(by_code(Some(13), e()), Error::OutOfSpace(_)));
        assert!(matches!(by_code(Some(11), e()), Error::Storage(_)));
        assert!(matches!(by_code(None, e()), Error::Storage(_)));
    }
}
