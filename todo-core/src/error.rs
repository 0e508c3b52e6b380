//! The errors of `todo-core`. They know nothing of HTTP: a server maps them to statuses in one place.

use std::fmt;

use serde::Serialize;

/// A boxed source error, kept for logs and never shown to clients.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Everything a [`TaskStore`](crate::TaskStore) or an [`Authenticator`](crate::Authenticator) can
/// fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The input breaks a rule; nothing was read or written.
    #[error(transparent)]
    Validation(#[from] ValidationError),
    /// No such task for this user. Another user's task gets exactly this answer too.
    #[error("task not found")]
    NotFound,
    /// The caller's expected version is stale; nothing was changed.
    #[error("the task has changed since version {expected} (it is at version {current})")]
    VersionMismatch {
        /// The version the caller expected.
        expected: i64,
        /// The version the task is at now.
        current: i64,
    },
    /// The idempotency key was already used by this user for a different request.
    #[error("the idempotency key was already used for a different request")]
    IdempotencyConflict,
    /// The database cannot be reached (down, dropped connection, pool exhausted), or a password
    /// hash found no turn in time. Retrying later may succeed; a server answers 503.
    #[error("the database is unavailable")]
    Unavailable(#[source] BoxError),
    /// The database has no room left: SQLite's `SQLITE_FULL` (the disk is full, or the file
    /// reached [`StoreOptions::sqlite_max_size_bytes`](crate::StoreOptions::sqlite_max_size_bytes))
    /// or PostgreSQL's SQLSTATE 53100 `disk_full`. Nothing of the failed write was stored; reads
    /// still work, and writes succeed again once room is made. A server answers 507.
    #[error("the database has no room left")]
    OutOfSpace(#[source] BoxError),
    /// A per-user quota of [`StoreOptions`](crate::StoreOptions) would be exceeded; nothing was
    /// written. Not worth retrying until the user has deleted something (or their idempotency
    /// keys have expired).
    #[error("quota exceeded: at most {limit} {what} per user")]
    QuotaExceeded {
        /// What is counted.
        what: Quota,
        /// The configured limit.
        limit: u64,
    },
    /// This user already has as many expensive lists (searches, filters) running as
    /// [`StoreOptions::max_concurrent_scans_per_user`](crate::StoreOptions::max_concurrent_scans_per_user)
    /// allows, and none finished within 10 s. Retrying later may succeed; a server answers 429.
    #[error("too many of this user's lists are running")]
    Busy,
    /// Any other database failure. The source is for logs only.
    #[error("storage error")]
    Storage(#[source] BoxError),
    /// Registration with an email that already has an account.
    #[error("an account with this email already exists")]
    EmailTaken,
    /// Login with an unknown email or a wrong password (deliberately indistinguishable).
    #[error("invalid email or password")]
    InvalidCredentials,
    /// The store could not be opened with the given configuration.
    #[error("invalid configuration: {0}")]
    Config(String),
}

/// What a per-user quota counts ([`Error::QuotaExceeded`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Quota {
    /// The user's tasks ([`StoreOptions::max_tasks_per_user`](crate::StoreOptions::max_tasks_per_user)).
    Tasks,
    /// The user's unexpired idempotency keys
    /// ([`StoreOptions::max_idempotency_keys_per_user`](crate::StoreOptions::max_idempotency_keys_per_user)).
    IdempotencyKeys,
}

impl fmt::Display for Quota {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Tasks => "tasks",
            Self::IdempotencyKeys => "idempotency keys",
        })
    }
}

/// A convenient alias.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// One invalid field and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    /// The field's name as clients spell it (`title`, `description`, `limit`, ...).
    pub field: String,
    /// A human sentence fragment: "must not be empty".
    pub message: String,
}

/// One or more invalid fields. Never empty when returned as an error.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ValidationError {
    /// Each invalid field, in the order they were checked.
    pub errors: Vec<FieldError>,
}

impl ValidationError {
    /// An error for a single field.
    pub fn field(field: &str, message: impl Into<String>) -> Self {
        Self {
            errors: vec![FieldError {
                field: field.to_owned(),
                message: message.into(),
            }],
        }
    }

    /// Keeps the value of `r`, or records its errors and returns `None`.
    pub fn collect<T>(&mut self, r: Result<T, ValidationError>) -> Option<T> {
        match r {
            Ok(v) => Some(v),
            Err(e) => {
                self.errors.extend(e.errors);
                None
            }
        }
    }

    /// `Err(self)` when any error was collected.
    pub fn into_result(self) -> Result<(), ValidationError> {
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(self)
        }
    }
}

impl fmt::Display for ValidationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("invalid input: ")?;
        for (i, e) in self.errors.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{} {}", e.field, e.message)?;
        }
        Ok(())
    }
}

impl std::error::Error for ValidationError {}
