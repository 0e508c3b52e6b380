//! How SQLite stores a task, read by the one decoder ([`task`]) over the rows of both of its
//! drivers, how it stores an instant ([`Stamp`]: microseconds since the epoch) and a list of
//! texts ([`TextList`]: a JSON array).

use sqlx::encode::IsNull;
use sqlx::error::BoxDynError;
use sqlx::sqlite::{SqliteArgumentValue, SqliteRow, SqliteTypeInfo};
use sqlx::{Encode, Row as _, Sqlite, Type};

use super::error::{from_rusqlite, from_sqlx};
use crate::error::{Error, Result};
use crate::fields::{Kind, Value};
use crate::model::{Priority, Task};
use crate::store::common::{AccountRow, HeldKey, list_counts, set_plain, task_stats, unknown_rank};
use crate::store::keyed::Rows;
use crate::store::statements::{Stamp, TextList, micros_to_time};
use crate::store::{ListCounts, TagCount, TaskStats};

/// A column type both drivers decode.
pub(crate) trait Column:
    rusqlite::types::FromSql + for<'r> sqlx::Decode<'r, Sqlite> + Type<Sqlite>
{
}

impl<T> Column for T where
    T: rusqlite::types::FromSql + for<'r> sqlx::Decode<'r, Sqlite> + Type<Sqlite>
{
}

/// A row of either driver, read column by column.
pub(crate) trait Columns {
    /// Column `i` as a `T`.
    fn column<T: Column>(&self, i: usize) -> Result<T>;
}

impl Columns for SqliteRow {
    /// The columns' types are fixed by our own migrations, so sqlx's per-column
    /// type-compatibility check (a tenth of a list's decode time) is skipped; values still
    /// decode with their own checks.
    fn column<T: Column>(&self, i: usize) -> Result<T> {
        self.try_get_unchecked(i).map_err(from_sqlx)
    }
}

impl Columns for rusqlite::Row<'_> {
    fn column<T: Column>(&self, i: usize) -> Result<T> {
        self.get(i).map_err(from_rusqlite)
    }
}

/// A task from the columns of [`task_columns`](crate::store::statements::task_columns), in order. Instants are stored as microseconds
/// since the epoch.
pub(crate) fn task(row: &impl Columns) -> Result<Task> {
    let rank: i16 = row.column(5)?;
    let mut task = Task {
        id: row.column(0)?,
        user_id: row.column(1)?,
        title: row.column(2)?,
        description: row.column(3)?,
        completed: row.column(4)?,
        priority: Priority::from_rank(rank).ok_or_else(|| unknown_rank(rank))?,
        due_date: row.column::<Option<i64>>(6)?.map(micros_to_time),
        created_at: micros_to_time(row.column(7)?),
        updated_at: micros_to_time(row.column(8)?),
        version: row.column(9)?,
        completed_at: row.column::<Option<i64>>(10)?.map(micros_to_time),
        tags: texts(&row.column::<String>(11)?)?,
        recurrence: row.column(12)?,
        ..Task::default()
    };
    set_plain(&mut task, |kind, i| {
        Ok(match kind {
            Kind::Int => Value::Int(row.column(i)?),
            Kind::Text => Value::Text(row.column(i)?),
            Kind::Instant => Value::Instant(row.column::<Option<i64>>(i)?.map(micros_to_time)),
        })
    })?;
    Ok(task)
}

/// A [`TextList`] as stored: a JSON array of strings.
fn texts(json: &str) -> Result<Vec<String>> {
    if json == "[]" {
        return Ok(Vec::new());
    }
    serde_json::from_str(json).map_err(|e| Error::Storage(Box::new(e)))
}

/// Task counts from the columns of `TASK_STATS`, in order.
pub(crate) fn stats(row: &impl Columns) -> Result<TaskStats> {
    task_stats(|i| row.column(i))
}

/// A list's counts from the columns of `statements::count`, in order.
pub(crate) fn counts(row: &impl Columns) -> Result<ListCounts> {
    list_counts(|i| row.column(i))
}

/// A tag and its count from the columns of `TAG_COUNTS`, in order.
pub(crate) fn tag_count(row: &impl Columns) -> Result<TagCount> {
    let count: i64 = row.column(1)?;
    Ok(TagCount {
        name: row.column(0)?,
        count: u64::try_from(count).unwrap_or_default(),
    })
}

/// An account from the columns of `GET_ACCOUNT_BY_EMAIL`, in order.
pub(crate) fn account(row: &impl Columns) -> Result<AccountRow> {
    Ok(AccountRow {
        id: row.column(0)?,
        email: row.column(1)?,
        name: row.column(2)?,
        password_hash: row.column(3)?,
    })
}

/// How [`keyed::create`](crate::store::keyed::create) reads this backend's rows.
pub(crate) const KEYED: Rows<SqliteRow> = Rows { task, held_key };

/// An idempotency key from the columns of `GET_IDEMPOTENCY_KEY`, in order.
pub(crate) fn held_key(row: &impl Columns) -> Result<HeldKey> {
    Ok(HeldKey {
        fingerprint: row.column(0)?,
        response: row.column(1)?,
    })
}

impl Type<Sqlite> for Stamp {
    fn type_info() -> SqliteTypeInfo {
        <i64 as Type<Sqlite>>::type_info()
    }
}

impl<'q> Encode<'q, Sqlite> for Stamp {
    fn encode_by_ref(&self, buf: &mut Vec<SqliteArgumentValue<'q>>) -> Result<IsNull, BoxDynError> {
        <i64 as Encode<'q, Sqlite>>::encode(self.0.timestamp_micros(), buf)
    }
}

impl rusqlite::ToSql for Stamp {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        Ok(self.0.timestamp_micros().into())
    }
}

impl Type<Sqlite> for TextList {
    fn type_info() -> SqliteTypeInfo {
        <String as Type<Sqlite>>::type_info()
    }
}

impl<'q> Encode<'q, Sqlite> for TextList {
    fn encode_by_ref(&self, buf: &mut Vec<SqliteArgumentValue<'q>>) -> Result<IsNull, BoxDynError> {
        <String as Encode<'q, Sqlite>>::encode(serde_json::to_string(&self.0)?, buf)
    }
}
