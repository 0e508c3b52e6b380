//! The [`TaskStore`] trait and its SQL implementation on SQLite and PostgreSQL.

mod common;
pub(crate) mod pool;
pub(crate) mod postgres;
pub(crate) mod sql;
pub(crate) mod sqlite;
mod statements;
mod turns;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::error::{Error, Quota, Result};
use crate::model::{
    Created, IdempotencyKey, ListQuery, NewTask, Page, Replacement, Task, TaskId, TaskPatch,
    check_due_date, fold_case, now,
};
use crate::options::StoreOptions;
use crate::principal::Principal;
use common::{Common, HeldKey, quota_arg};
use sql::{Commit, Db, Exec, Read, Value};

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

    /// Replaces every editable field (PUT semantics).
    async fn replace(
        &self,
        who: &Principal,
        id: TaskId,
        replacement: Replacement,
        expected_version: Option<i64>,
    ) -> Result<Task>;

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

    /// Checks that the database answers ([`Error::Unavailable`] when it does not).
    async fn ping(&self) -> Result<()>;

    /// Closes the connection pool after the connections in use are returned.
    async fn close(&self);

    /// `"sqlite"` or `"postgres"`.
    fn backend(&self) -> &'static str;
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

/// The one implementation of [`TaskStore`], generic over the backend.
pub(crate) struct SqlStore<D: Db> {
    db: D,
    /// Cursors, hashing, turns and quotas, as both backends hold them.
    common: Common,
}

impl<D: Db> SqlStore<D> {
    pub(crate) fn new(db: D, cursor_secret: Vec<u8>, options: &StoreOptions) -> Self {
        Self {
            db,
            // A quota needs a database lock (`Db::USER_LOCK`) where the backend has one.
            common: Common::new(cursor_secret, options, D::USER_LOCK.is_some()),
        }
    }

    /// Takes the user's quota lock inside `tx` when a quota is on and the backend needs one
    /// ([`Db::USER_LOCK`]), so the counts a quota checks cannot change until `tx` ends.
    async fn lock_user_for_quota(&self, tx: &mut D::Tx, user: &str) -> Result<()> {
        if let (Some(lock), true) = (
            D::USER_LOCK,
            self.common.max_tasks.is_some() || self.common.max_keys.is_some(),
        ) {
            tx.execute(lock, &[Value::Text(user)]).await?;
        }
        Ok(())
    }

    /// The answer for a write that matched no row: the task is missing (or not this user's), or
    /// it exists at another version than expected.
    async fn missing_or_stale(&self, who: &Principal, id: TaskId, expected: Option<i64>) -> Error {
        let args = [Value::I64(id), Value::Text(who.user_id().as_str())];
        match self.db.writer().int(statements::GET_VERSION, &args).await {
            Ok(current) => common::stale_or_missing(current, expected),
            Err(e) => e.into(),
        }
    }

    async fn create_idempotent(
        &self,
        who: &Principal,
        task: &NewTask,
        key: &IdempotencyKey,
    ) -> Result<Created> {
        let user = who.user_id().as_str();
        let now = now();
        let fingerprint = task.fingerprint();
        let cutoff = now - chrono::Duration::from_std(IDEMPOTENCY_KEY_TTL).unwrap_or_default();
        let _turn = self.common.quota_turn(user).await?;
        let mut tx = self.db.begin_write().await?;
        self.lock_user_for_quota(&mut tx, user).await?;
        tx.execute(statements::PURGE_IDEMPOTENCY_KEYS, &[Value::Time(cutoff)])
            .await?;
        // The user's keys left after the purge are their unexpired ones: with a quota, a new
        // key is claimed only while they hold fewer.
        let claim = [
            Value::Text(user),
            Value::Text(key.as_str()),
            Value::Text(&fingerprint),
            Value::Time(now),
            Value::I64(quota_arg(self.common.max_keys)),
        ];
        let claimed = match self.common.max_keys {
            None => {
                tx.execute(statements::CLAIM_IDEMPOTENCY_KEY, &claim[..4])
                    .await?
            }
            Some(_) => {
                tx.execute(statements::CLAIM_IDEMPOTENCY_KEY_WITHIN_QUOTA, &claim)
                    .await?
            }
        };
        if claimed == 1 {
            let created = insert(&mut tx, user, task, now, self.common.max_tasks).await?;
            let response =
                serde_json::to_string(&created).map_err(|e| Error::Storage(Box::new(e)))?;
            tx.execute(
                statements::SAVE_IDEMPOTENT_RESPONSE,
                &[
                    Value::Text(user),
                    Value::Text(key.as_str()),
                    Value::Text(&response),
                ],
            )
            .await?;
            tx.commit().await?;
            return Ok(Created {
                task: created,
                replayed: false,
            });
        }
        let previous = tx
            .texts(
                statements::GET_IDEMPOTENCY_KEY,
                &[Value::Text(user), Value::Text(key.as_str())],
            )
            .await?;
        tx.commit().await?;
        let held = previous.map(|(fingerprint, response)| HeldKey {
            fingerprint,
            response,
        });
        common::replayed_or_refused(held, &fingerprint, self.common.max_keys)
    }
}

/// Inserts `task` for `user`; with `max_tasks`, only while the user has fewer tasks than that
/// ([`Error::QuotaExceeded`] otherwise), counted by the insert statement itself.
async fn insert(
    exec: &mut impl Exec,
    user: &str,
    task: &NewTask,
    now: chrono::DateTime<chrono::Utc>,
    max_tasks: Option<u64>,
) -> Result<Task> {
    let due_date = task.due_date.map(check_due_date).transpose()?;
    let title_key = fold_case(task.title.as_str());
    let description = task.description.as_ref().map(|d| d.as_str());
    let description_key = description.map(fold_case);
    let args = [
        Value::Text(user),
        Value::Text(task.title.as_str()),
        Value::Text(&title_key),
        Value::OptText(description),
        Value::OptText(description_key.as_deref()),
        Value::I16(task.priority.rank()),
        Value::OptTime(due_date),
        Value::Time(now),
        Value::I64(quota_arg(max_tasks)),
    ];
    match max_tasks {
        None => exec
            .task(statements::INSERT_TASK, &args[..8])
            .await?
            .ok_or_else(|| Error::Storage("insert returned no row".into())),
        Some(limit) => exec
            .task(statements::INSERT_TASK_WITHIN_QUOTA, &args)
            .await?
            .ok_or(Error::QuotaExceeded {
                what: Quota::Tasks,
                limit,
            }),
    }
}

#[async_trait]
impl<D: Db> TaskStore for SqlStore<D> {
    #[tracing::instrument(level = "debug", skip_all, fields(user_id = %who.user_id(), backend = D::NAME))]
    async fn create(
        &self,
        who: &Principal,
        task: NewTask,
        idempotency_key: Option<&IdempotencyKey>,
    ) -> Result<Created> {
        let user = who.user_id().as_str();
        let task = match (idempotency_key, self.common.max_tasks, D::USER_LOCK) {
            (Some(key), _, _) => return self.create_idempotent(who, &task, key).await,
            // The count and the insert are one statement; where that alone does not stop
            // concurrent creates of the user from overshooting, they take turns on a lock.
            (None, Some(limit), Some(lock)) => {
                let _turn = self.common.quota_turn(user).await?;
                let mut tx = self.db.begin_write().await?;
                tx.execute(lock, &[Value::Text(user)]).await?;
                let task = insert(&mut tx, user, &task, now(), Some(limit)).await?;
                tx.commit().await?;
                task
            }
            (None, max_tasks, _) => {
                insert(&mut self.db.writer(), user, &task, now(), max_tasks).await?
            }
        };
        Ok(Created {
            task,
            replayed: false,
        })
    }

    #[tracing::instrument(level = "debug", skip_all, fields(user_id = %who.user_id(), task_id = id))]
    async fn get(&self, who: &Principal, id: TaskId) -> Result<Task> {
        let args = [Value::I64(id), Value::Text(who.user_id().as_str())];
        self.db
            .reader()
            .task(statements::GET_TASK, &args)
            .await?
            .ok_or(Error::NotFound)
    }

    #[tracing::instrument(level = "debug", skip_all, fields(user_id = %who.user_id()))]
    async fn list(&self, who: &Principal, query: &ListQuery) -> Result<Page> {
        let after = self.common.after(who, query)?;
        let user = who.user_id().as_str();
        let (statement, args) = sql::list_statement::<D>(user, query, after.as_ref());
        // A list that may read all the user's tasks waits for one of the user's turns.
        let _turn = self.common.scan_turn(who, query).await?;
        let rows = self.db.list(&statement, &args, query).await?;
        Ok(self.common.page(who, query, rows))
    }

    #[tracing::instrument(level = "debug", skip_all, fields(user_id = %who.user_id(), task_id = id))]
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

    #[tracing::instrument(level = "debug", skip_all, fields(user_id = %who.user_id(), task_id = id))]
    async fn patch(
        &self,
        who: &Principal,
        id: TaskId,
        patch: TaskPatch,
        expected_version: Option<i64>,
    ) -> Result<Task> {
        let due_date = patch.due_date.flatten().map(check_due_date).transpose()?;
        let title_key = patch.title.as_ref().map(|t| fold_case(t.as_str()));
        let description = patch
            .description
            .as_ref()
            .map(|d| d.as_ref().map(|d| d.as_str()));
        let description_key = description.flatten().map(fold_case);
        let args = [
            Value::I64(id),
            Value::Text(who.user_id().as_str()),
            Value::OptText(patch.title.as_ref().map(|t| t.as_str())),
            Value::OptText(title_key.as_deref()),
            Value::Bool(description.is_some()),
            Value::OptText(description.flatten()),
            Value::OptText(description_key.as_deref()),
            Value::OptBool(patch.completed),
            Value::OptI16(patch.priority.map(|p| p.rank())),
            Value::Bool(patch.due_date.is_some()),
            Value::OptTime(due_date),
            Value::Time(now()),
            Value::OptI64(expected_version),
        ];
        match self.db.writer().task(statements::PATCH_TASK, &args).await? {
            Some(task) => Ok(task),
            None => Err(self.missing_or_stale(who, id, expected_version).await),
        }
    }

    #[tracing::instrument(level = "debug", skip_all, fields(user_id = %who.user_id(), task_id = id))]
    async fn set_completed(
        &self,
        who: &Principal,
        id: TaskId,
        completed: Option<bool>,
        expected_version: Option<i64>,
    ) -> Result<Task> {
        let args = [
            Value::I64(id),
            Value::Text(who.user_id().as_str()),
            Value::OptBool(completed),
            Value::Time(now()),
            Value::OptI64(expected_version),
        ];
        match self
            .db
            .writer()
            .task(statements::SET_COMPLETED, &args)
            .await?
        {
            Some(task) => Ok(task),
            None => Err(self.missing_or_stale(who, id, expected_version).await),
        }
    }

    #[tracing::instrument(level = "debug", skip_all, fields(user_id = %who.user_id(), task_id = id))]
    async fn delete(
        &self,
        who: &Principal,
        id: TaskId,
        expected_version: Option<i64>,
    ) -> Result<()> {
        let args = [
            Value::I64(id),
            Value::Text(who.user_id().as_str()),
            Value::OptI64(expected_version),
        ];
        match self.db.writer().int(statements::DELETE_TASK, &args).await? {
            Some(_) => Ok(()),
            None => Err(self.missing_or_stale(who, id, expected_version).await),
        }
    }

    async fn ping(&self) -> Result<()> {
        Ok(self.db.ping().await?)
    }

    async fn close(&self) {
        self.db.close().await;
    }

    fn backend(&self) -> &'static str {
        D::NAME
    }
}

fn account_from_row(row: sql::AccountRow) -> Result<crate::accounts::Account> {
    let sql::AccountRow {
        id,
        email,
        name,
        password_hash: _,
    } = row;
    Ok(crate::accounts::Account {
        id: crate::model::UserId::parse(&id)?,
        email,
        name,
    })
}

#[async_trait]
impl<D: Db> crate::accounts::AccountStore for SqlStore<D> {
    #[tracing::instrument(level = "debug", skip_all)]
    async fn register(
        &self,
        email: &str,
        password: &str,
        name: Option<&str>,
    ) -> Result<crate::accounts::Account> {
        let reg = crate::accounts::Registration::parse(email, password, name)?;
        let id = crate::accounts::new_user_id()?;
        let hash = self.common.hasher.hash(reg.password).await?;
        let args = [
            Value::Text(id.as_str()),
            Value::Text(reg.email.as_str()),
            Value::OptText(reg.name.as_deref()),
            Value::Text(&hash),
            Value::Time(now()),
        ];
        match self
            .db
            .writer()
            .execute(statements::INSERT_ACCOUNT, &args)
            .await
        {
            Ok(_) => Ok(crate::accounts::Account {
                id,
                email: reg.email.as_str().to_owned(),
                name: reg.name,
            }),
            Err(e)
                if e.as_database_error()
                    .is_some_and(|d| d.is_unique_violation()) =>
            {
                Err(Error::EmailTaken)
            }
            Err(e) => Err(e.into()),
        }
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn login(&self, email: &str, password: &str) -> Result<crate::accounts::Account> {
        // A malformed email is just another unknown account: same answer, same time.
        let row = match crate::accounts::Email::parse(email) {
            Ok(email) => {
                self.db
                    .reader()
                    .account(
                        statements::GET_ACCOUNT_BY_EMAIL,
                        &[Value::Text(email.as_str())],
                    )
                    .await?
            }
            Err(_) => None,
        };
        let hash = row.as_ref().map(|r| r.password_hash.clone());
        if !self.common.hasher.verify(password.to_owned(), hash).await? {
            return Err(Error::InvalidCredentials);
        }
        match row {
            Some(row) => account_from_row(row),
            None => Err(Error::InvalidCredentials),
        }
    }
}
