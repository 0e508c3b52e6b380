//! Renaming or removing one of a user's tags on every task that carries it, written once for
//! both backends over sqlx: each backend opens the transaction, this runs its statements.

use sqlx::{Connection, Database, Encode, Executor, IntoArguments, Type};

use super::common;
use super::pool::Tx;
use super::statements::{self, Stamp, TextList};
use crate::error::{Error, Result};
use crate::model::{Tag, Task, now};

/// In `tx`: every task of `user` that carries `from` gets `to` in its place (keeping its
/// position; a task that already carries `to` keeps one) or, when `to` is `None`, loses it. Each
/// changed task gets a new version and update time. Commits, and returns how many tasks changed;
/// [`Error::NotFound`] when none carries `from`. On an error `tx` is dropped, which rolls back.
pub(crate) async fn retag<C>(
    mut tx: Tx<C>,
    user: &str,
    from: &Tag,
    to: Option<&Tag>,
    task: fn(&<C::Database as Database>::Row) -> Result<Task>,
    from_sqlx: fn(sqlx::Error) -> Error,
) -> Result<u64>
where
    C: Connection + 'static,
    for<'c> &'c mut C: Executor<'c, Database = C::Database>,
    for<'q> <C::Database as Database>::Arguments<'q>: IntoArguments<'q, C::Database>,
    for<'q> String: Encode<'q, C::Database> + Type<C::Database>,
    for<'q> i64: Encode<'q, C::Database> + Type<C::Database>,
    for<'q> Stamp: Encode<'q, C::Database> + Type<C::Database>,
    for<'q> TextList: Encode<'q, C::Database> + Type<C::Database>,
{
    let tagged = sqlx::query(statements::TAGGED_TASKS)
        .bind(user.to_owned())
        .bind(from.key())
        .fetch_all(tx.conn()?)
        .await
        .map_err(from_sqlx)?;
    if tagged.is_empty() {
        return Err(Error::NotFound);
    }
    let now = now();
    for row in &tagged {
        let before = task(row)?;
        let tags = common::retagged(&before.tags, from, to)?;
        sqlx::query(statements::SET_TAGS)
            .bind(before.id)
            .bind(user.to_owned())
            .bind(TextList(tags.names()))
            .bind(TextList(tags.keys()))
            .bind(Stamp(now))
            .execute(tx.conn()?)
            .await
            .map_err(from_sqlx)?;
    }
    tx.commit().await?;
    Ok(tagged.len() as u64)
}
