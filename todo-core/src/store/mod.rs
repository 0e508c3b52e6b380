//! The [`TaskStore`] trait, and its two implementations: `sqlite::SqliteStore` and
//! `postgres::PgStore`, each in its own module, sharing what is truly common (`common.rs`,
//! `statements.rs`, `pool.rs`, `turns.rs`).

mod common;
mod completing;
mod keyed;
pub(crate) mod pool;
pub(crate) mod postgres;
mod retag;
pub(crate) mod sqlite;
mod statements;
mod turns;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::error::Result;
use crate::model::{
    Created, IdempotencyKey, ListQuery, NewTask, Page, Replacement, Tag, Task, TaskId, TaskPatch,
};
use crate::principal::Principal;

/// How long an idempotency key is remembered.
pub const IDEMPOTENCY_KEY_TTL: Duration = Duration::from_secs(24 * 60 * 60);

/// Per-user task storage. Every method acts for one authenticated [`Principal`] and only ever
/// reads or writes that principal's tasks: another user's task is answered exactly like a missing
/// one ([`Error::NotFound`]). There is no method that reaches across users.
///
/// Writes take an optional `expected_version`: when it is given and the task is at another
/// version, the write fails with [`Error::VersionMismatch`] and changes nothing. Any write may
/// fail with [`Error::OutOfSpace`] when the database has no room left, and then changes nothing.
#[async_trait]
pub trait TaskStore: Send + Sync + 'static {
    /// Creates a task. With an idempotency key, a repeat of the same request by the same user
    /// within 24 hours returns the first task (`replayed = true`) and creates nothing, and the same
    /// key with a different request fails with [`Error::IdempotencyConflict`]. Under a quota
    /// ([`StoreOptions::max_tasks_per_user`], [`StoreOptions::max_idempotency_keys_per_user`]),
    /// a create that would exceed it fails with [`Error::QuotaExceeded`] and stores nothing; a
    /// replay is not a new task and still succeeds.
    async fn create(
        &self,
        who: &Principal,
        task: NewTask,
        idempotency_key: Option<&IdempotencyKey>,
    ) -> Result<Created>;

    /// One task.
    async fn get(&self, who: &Principal, id: TaskId) -> Result<Task>;

    /// A page of tasks, filtered, searched and sorted as `query` says. Pages are keyset-paged: a
    /// cursor continues exactly after the last task of its page, so concurrent inserts never make a
    /// walk skip or repeat a task. Every cursor a list issues is accepted by the next call. A list
    /// that may read all the user's tasks (a search, a status filter, the due-date sort, a page
    /// over 100) waits for one of the user's turns
    /// ([`StoreOptions::max_concurrent_scans_per_user`]), at most 10 s, else [`Error::Busy`].
    async fn list(&self, who: &Principal, query: &ListQuery) -> Result<Page>;

    /// Replaces every editable field (PUT semantics): a [`patch`](Self::patch) that sets them
    /// all.
    async fn replace(
        &self,
        who: &Principal,
        id: TaskId,
        replacement: Replacement,
        expected_version: Option<i64>,
    ) -> Result<Task> {
        self.patch(who, id, replacement.into(), expected_version)
            .await
    }

    /// Changes the fields the patch sets and leaves the others.
    async fn patch(
        &self,
        who: &Principal,
        id: TaskId,
        patch: TaskPatch,
        expected_version: Option<i64>,
    ) -> Result<Task>;

    /// Sets `completed` to the given value, or toggles it when `completed` is `None`.
    async fn set_completed(
        &self,
        who: &Principal,
        id: TaskId,
        completed: Option<bool>,
        expected_version: Option<i64>,
    ) -> Result<Task>;

    /// Toggles `completed`.
    async fn toggle_completed(
        &self,
        who: &Principal,
        id: TaskId,
        expected_version: Option<i64>,
    ) -> Result<Task> {
        self.set_completed(who, id, None, expected_version).await
    }

    /// Deletes a task.
    async fn delete(
        &self,
        who: &Principal,
        id: TaskId,
        expected_version: Option<i64>,
    ) -> Result<()>;

    /// The user's tags, each with how many of the user's tasks carry it, in the order of their
    /// keys ([`Tag::key`]); a tag spelled differently on different tasks is one tag, shown in
    /// the spelling that sorts first by code point. At most [`TAGS_LISTED_MAX`].
    async fn tags(&self, who: &Principal) -> Result<Vec<TagCount>>;

    /// How many tasks the user has: in all, completed, pending, overdue (not completed and due
    /// before now), and by priority. One pass over the user's own rows; it waits for the user's
    /// turn like a tag count, so one user cannot run many at once.
    async fn stats(&self, who: &Principal) -> Result<TaskStats>;

    /// How many of the user's tasks `query`'s filters match (status, search, tags, priorities,
    /// due dates, overdue), whatever its sort, page size, offset or cursor: in all, completed
    /// and pending. Like a scan, it waits for one of the user's turns.
    async fn count(&self, who: &Principal, query: &ListQuery) -> Result<ListCounts>;

    /// Renames the user's tag `from` to `to` on every task of the user that carries it, in one
    /// transaction; a task that carries both keeps one, in the place of the first. Each changed
    /// task gets a new version. Returns how many tasks changed; [`Error::NotFound`] when none
    /// carries `from`.
    ///
    /// [`Error::NotFound`]: crate::Error::NotFound
    async fn rename_tag(&self, who: &Principal, from: &Tag, to: &Tag) -> Result<u64>;

    /// Removes the user's tag `tag` from every task of the user that carries it, in one
    /// transaction. Each changed task gets a new version. Returns how many tasks changed;
    /// [`Error::NotFound`] when none carries it.
    ///
    /// [`Error::NotFound`]: crate::Error::NotFound
    async fn delete_tag(&self, who: &Principal, tag: &Tag) -> Result<u64>;

    /// Checks that the database answers ([`Error::Unavailable`] when it does not).
    async fn ping(&self) -> Result<()>;

    /// Closes the connection pool after the connections in use are returned.
    async fn close(&self);

    /// `"sqlite"` or `"postgres"`.
    fn backend(&self) -> &'static str;
}

/// The most tags [`TaskStore::tags`] returns.
pub const TAGS_LISTED_MAX: u32 = 1000;

/// One of a user's tags and how many of the user's tasks carry it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TagCount {
    /// The tag, as spelled on (one of) the tasks.
    pub name: String,
    /// How many of the user's tasks carry it.
    pub count: u64,
}

/// How many of a user's tasks there are, by state and priority ([`TaskStore::stats`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct TaskStats {
    /// All of the user's tasks.
    pub total: u64,
    /// Those completed.
    pub completed: u64,
    /// Those not completed.
    pub pending: u64,
    /// Those not completed and due before the time of the count.
    pub overdue: u64,
    /// How many have each priority.
    pub by_priority: PriorityCounts,
}

/// How many of a user's tasks a list's filters match ([`TaskStore::count`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct ListCounts {
    /// All that match.
    pub total: u64,
    /// Those of them completed.
    pub completed: u64,
    /// Those of them not completed.
    pub pending: u64,
}

/// Task counts by priority.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct PriorityCounts {
    /// Low priority.
    pub low: u64,
    /// Medium priority.
    pub medium: u64,
    /// High priority.
    pub high: u64,
}

/// A shared, type-erased store, as [`open`](crate::open) returns it.
pub type DynTaskStore = Arc<dyn TaskStore>;

/// Both faces of one opened database: its tasks and its built-in accounts.
#[derive(Clone)]
pub struct Store {
    /// Per-user tasks.
    pub tasks: DynTaskStore,
    /// Built-in accounts.
    pub accounts: Arc<dyn crate::accounts::AccountStore>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("backend", &self.tasks.backend())
            .finish()
    }
}
