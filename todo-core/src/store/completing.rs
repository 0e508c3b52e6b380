//! A write that may complete a recurring task, with the task's next occurrence, in one
//! transaction; written once for both backends over sqlx (each backend opens the transaction).
//! SQLite on a file does the same inside its group commit (`GroupCommit::write_then`).

use sqlx::query::Query;
use sqlx::{Connection, Database, Encode, Executor, IntoArguments, Type};

use super::pool::Tx;
use super::statements::{self, Stamp};
use crate::error::{Error, Result};
use crate::model::{Task, now};

/// In `tx`: runs `write`, decodes the task it returned with `task`, and when that task calls
/// for a next occurrence ([`statements::spawn_args`]) inserts it with `spawn`, the backend's
/// [`statements::SPAWN_NEXT`] or [`statements::SPAWN_NEXT_MARKING`].
/// Commits, and returns the written task, if any; on an error `tx` is dropped, which rolls back.
pub(crate) async fn write<'q, C>(
    mut tx: Tx<C>,
    write: Query<'q, C::Database, <C::Database as Database>::Arguments<'q>>,
    spawn: &'static str,
    task: fn(&<C::Database as Database>::Row) -> Result<Task>,
    from_sqlx: fn(sqlx::Error) -> Error,
) -> Result<Option<Task>>
where
    C: Connection + 'static,
    C::Database: sqlx::database::HasStatementCache,
    for<'c> &'c mut C: Executor<'c, Database = C::Database>,
    for<'a> <C::Database as Database>::Arguments<'a>: IntoArguments<'a, C::Database>,
    for<'a> String: Encode<'a, C::Database> + Type<C::Database>,
    for<'a> i64: Encode<'a, C::Database> + Type<C::Database>,
    for<'a> Stamp: Encode<'a, C::Database> + Type<C::Database>,
    for<'a> Option<Stamp>: Encode<'a, C::Database> + Type<C::Database>,
    for<'a> Option<i64>: Encode<'a, C::Database> + Type<C::Database>,
    for<'a> Option<String>: Encode<'a, C::Database> + Type<C::Database>,
{
    let row = write
        .persistent(tx.persistent())
        .fetch_optional(tx.conn()?)
        .await
        .map_err(from_sqlx)?;
    let written = row.as_ref().map(task).transpose()?;
    let next = match &written {
        Some(t) => statements::spawn_args::<<C::Database as Database>::Arguments<'_>>(t, now())?,
        None => None,
    };
    if let Some(args) = next {
        sqlx::query_with(spawn, args)
            .persistent(tx.persistent())
            .execute(tx.conn()?)
            .await
            .map_err(from_sqlx)?;
    }
    tx.commit().await?;
    Ok(written)
}
