//! The create with an idempotency key, written once for both backends over sqlx: each backend
//! opens the transaction (and takes what locks it needs), this runs its statements.

use chrono::{DateTime, Utc};
use sqlx::{Connection, Database, Encode, Executor, IntoArguments, Type};

use super::IDEMPOTENCY_KEY_TTL;
use super::common::{self, Common, HeldKey};
use super::pool::Tx;
use super::statements::{self, Stamp, TextList};
use crate::error::{Error, Result};
use crate::model::{Created, IdempotencyKey, NewTask, Task};

/// How a backend reads the rows this needs.
pub(crate) struct Rows<R> {
    /// A task, from the columns of `task_columns!`.
    pub(crate) task: fn(&R) -> Result<Task>,
    /// An idempotency key, from the columns of [`statements::GET_IDEMPOTENCY_KEY`].
    pub(crate) held_key: fn(&R) -> Result<HeldKey>,
}

/// What the create is and what limits it.
pub(crate) struct KeyedCreate<'a> {
    pub(crate) user: &'a str,
    pub(crate) task: &'a NewTask,
    pub(crate) key: &'a IdempotencyKey,
    pub(crate) now: DateTime<Utc>,
    /// [`crate::StoreOptions::max_tasks_per_user`].
    pub(crate) max_tasks: Option<u64>,
    /// [`crate::StoreOptions::max_idempotency_keys_per_user`].
    pub(crate) max_keys: Option<u64>,
}

impl<'a> KeyedCreate<'a> {
    /// The create of `task` by `user` with `key`, now, under `common`'s quotas.
    pub(crate) fn new(
        common: &Common,
        user: &'a str,
        task: &'a NewTask,
        key: &'a IdempotencyKey,
    ) -> Self {
        Self {
            user,
            task,
            key,
            now: crate::model::now(),
            max_tasks: common.max_tasks,
            max_keys: common.max_keys,
        }
    }
}

/// In `tx`: purges expired keys, claims the key (within the key quota), and if it was claimed
/// inserts the task (within the task quota) and saves it as the key's answer; if the user
/// already holds the key, replays its answer or refuses a different request
/// ([`common::replayed_or_refused`]). Commits when it succeeds; on an error `tx` is dropped,
/// which rolls back.
pub(crate) async fn create<C>(
    mut tx: Tx<C>,
    create: KeyedCreate<'_>,
    rows: Rows<<C::Database as Database>::Row>,
    from_sqlx: fn(sqlx::Error) -> Error,
) -> Result<Created>
where
    C: Connection + 'static,
    C::Database: sqlx::database::HasStatementCache,
    for<'c> &'c mut C: Executor<'c, Database = C::Database>,
    for<'q> <C::Database as Database>::Arguments<'q>: IntoArguments<'q, C::Database>,
    for<'q> String: Encode<'q, C::Database> + Type<C::Database>,
    for<'q> Option<String>: Encode<'q, C::Database> + Type<C::Database>,
    for<'q> i16: Encode<'q, C::Database> + Type<C::Database>,
    for<'q> i64: Encode<'q, C::Database> + Type<C::Database>,
    for<'q> Stamp: Encode<'q, C::Database> + Type<C::Database>,
    for<'q> Option<Stamp>: Encode<'q, C::Database> + Type<C::Database>,
    for<'q> Option<i64>: Encode<'q, C::Database> + Type<C::Database>,
    for<'q> TextList: Encode<'q, C::Database> + Type<C::Database>,
{
    let KeyedCreate {
        user,
        task,
        key,
        now,
        max_tasks,
        max_keys,
    } = create;
    let fingerprint = task.fingerprint();
    let cutoff = now - chrono::Duration::from_std(IDEMPOTENCY_KEY_TTL).unwrap_or_default();
    sqlx::query(statements::PURGE_IDEMPOTENCY_KEYS)
        .bind(Stamp(cutoff))
        .persistent(tx.persistent())
        .execute(tx.conn()?)
        .await
        .map_err(from_sqlx)?;
    // The user's keys left after the purge are their unexpired ones: with a quota, a new key is
    // claimed only while they hold fewer.
    let claim = match max_keys {
        None => sqlx::query(statements::CLAIM_IDEMPOTENCY_KEY),
        Some(_) => sqlx::query(statements::CLAIM_IDEMPOTENCY_KEY_WITHIN_QUOTA),
    }
    .bind(user.to_owned())
    .bind(key.as_str().to_owned())
    .bind(fingerprint.clone())
    .bind(Stamp(now));
    let claim = match max_keys {
        None => claim,
        Some(limit) => claim.bind(common::quota_arg(Some(limit))),
    };
    let claimed = claim
        .persistent(tx.persistent())
        .fetch_optional(tx.conn()?)
        .await
        .map_err(from_sqlx)?;
    if claimed.is_some() {
        let sql = match max_tasks {
            None => statements::INSERT_TASK.as_str(),
            Some(_) => statements::INSERT_TASK_WITHIN_QUOTA.as_str(),
        };
        let args = statements::insert_args::<<C::Database as Database>::Arguments<'_>>(
            user, task, now, max_tasks,
        )?;
        let row = sqlx::query_with(sql, args)
            .persistent(tx.persistent())
            .fetch_optional(tx.conn()?)
            .await
            .map_err(from_sqlx)?;
        let created = common::inserted(row.as_ref().map(rows.task).transpose()?, max_tasks)?;
        let response = serde_json::to_string(&created).map_err(|e| Error::Storage(Box::new(e)))?;
        sqlx::query(statements::SAVE_IDEMPOTENT_RESPONSE)
            .bind(user.to_owned())
            .bind(key.as_str().to_owned())
            .bind(response)
            .persistent(tx.persistent())
            .execute(tx.conn()?)
            .await
            .map_err(from_sqlx)?;
        tx.commit().await?;
        return Ok(Created {
            task: created,
            replayed: false,
        });
    }
    let held = sqlx::query(statements::GET_IDEMPOTENCY_KEY)
        .bind(user.to_owned())
        .bind(key.as_str().to_owned())
        .persistent(tx.persistent())
        .fetch_optional(tx.conn()?)
        .await
        .map_err(from_sqlx)?
        .as_ref()
        .map(rows.held_key)
        .transpose()?;
    tx.commit().await?;
    common::replayed_or_refused(held, &fingerprint, max_keys)
}
