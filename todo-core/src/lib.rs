//! # todo-core
//!
//! Per-user task storage on SQLite (embedded default) and PostgreSQL (production), with user
//! isolation enforced by construction:
//!
//! - Every [`TaskStore`] method takes a [`Principal`], which request data cannot produce: it comes
//!   from an [`Authenticator`] or from the explicitly named escape hatch
//!   [`Principal::assume_authenticated`].
//! - Every statement filters by the principal's user id, and another user's task is answered
//!   exactly like a missing one ([`Error::NotFound`]).
//! - Input is parsed into validated types ([`Title`], [`Description`], ...) before it can reach
//!   the database.
//!
//! ```no_run
//! # async fn demo() -> todo_core::Result<()> {
//! use todo_core::{ListQuery, NewTask, Principal, StoreOptions, Title, UserId};
//!
//! let store = todo_core::open("sqlite::memory:", StoreOptions::default()).await?;
//! let alice = Principal::assume_authenticated(UserId::parse("alice")?);
//! let created = store.create(&alice, NewTask::new(Title::parse("Buy milk")?), None).await?;
//! let page = store.list(&alice, &ListQuery::default()).await?;
//! assert_eq!(page.tasks[0].id, created.task.id);
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]

mod accounts;
mod auth;
mod cursor;
mod error;
pub mod fields;
mod model;
mod options;
mod principal;
mod recurrence;
mod session;
mod store;

pub use accounts::{Account, AccountStore, Email, PASSWORD_MAX_CHARS, PASSWORD_MIN_CHARS};
pub use auth::{
    AuthError, Authenticator, JwtAuthenticator, JwtAuthenticatorBuilder, JwtRules, TokenIssuer,
};
pub use error::{BoxError, Error, FieldError, Quota, Result, ValidationError};
pub use model::{
    Created, DESCRIPTION_MAX_CHARS, Description, FIELDS, IdempotencyKey, Limit, ListQuery, NewTask,
    Offset, Page, Priority, Replacement, SearchText, SortField, SortOrder, StatusFilter,
    TAG_MAX_CHARS, TAGS_MAX, TITLE_MAX_CHARS, Tag, Tags, Task, TaskId, TaskPatch, Title,
    USER_ID_MAX_CHARS, UserId, check_due_date, check_instant, fold_case, to_stored_precision,
};
pub use options::{Pooler, StoreOptions};
pub use principal::Principal;
pub use recurrence::{
    Frequency, RECURRENCE_MAX_CHARS, RECURRENCE_MAX_COUNT, RECURRENCE_MAX_INTERVAL, Recurrence,
    RecurrenceEnd,
};
pub use session::{SessionTable, SessionTableAuthenticator};
pub use store::{
    DynTaskStore, IDEMPOTENCY_KEY_TTL, ListCounts, PriorityCounts, Store, TAGS_LISTED_MAX,
    TagCount, TaskStats, TaskStore,
};

use std::sync::Arc;

/// Opens a store from a database URL and applies the embedded migrations:
///
/// - `sqlite:` URLs (`sqlite://todo.db`, `sqlite::memory:`): WAL journal, 30 s busy timeout,
///   foreign keys on; the file is created if missing. On a file, writes are group-committed by
///   one writer, and reads run on read-only rusqlite connections: lookups by key and plain list
///   pages on the calling task (they take microseconds), searches and filtered lists on tokio's
///   blocking threads.
/// - `postgres://` or `postgresql://` URLs: a connection pool for writes, reads pipelined on a
///   few shared connections ([`StoreOptions::read_connections`]) and, with them, creates
///   group-committed on two more; TLS through rustls, so `sslmode=require` works.
///
/// Fails with [`Error::Config`] for an unknown scheme or a malformed URL, and with
/// [`Error::Unavailable`] when the database cannot be reached.
pub async fn open(url: &str, options: StoreOptions) -> Result<DynTaskStore> {
    Ok(open_store(url, options).await?.tasks)
}

/// Like [`open`], and also gives the built-in [`AccountStore`] of the same database.
pub async fn open_store(url: &str, options: StoreOptions) -> Result<Store> {
    let secret = options.cursor_secret.clone().unwrap_or_else(|| {
        use rand::RngCore;
        let mut key = vec![0u8; 32];
        rand::thread_rng().fill_bytes(&mut key);
        key
    });
    if url.starts_with("sqlite:") {
        let s = Arc::new(store::sqlite::SqliteStore::open(url, secret, &options).await?);
        Ok(Store {
            tasks: s.clone(),
            accounts: s,
        })
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let s = Arc::new(store::postgres::PgStore::open(url, secret, &options).await?);
        Ok(Store {
            tasks: s.clone(),
            accounts: s,
        })
    } else {
        Err(Error::Config(
            "the database URL must start with sqlite:, postgres:// or postgresql://".into(),
        ))
    }
}
