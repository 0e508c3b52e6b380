//! How PostgreSQL stores a task, read by the one decoder ([`task`]) over the rows of both of its
//! drivers (sqlx's for the pool, tokio-postgres's for the pipelined reads), how it stores an
//! instant ([`Stamp`]: `timestamptz`) and a list of texts ([`TextList`]: `text[]`).

use chrono::{DateTime, Utc};
use sqlx::encode::IsNull;
use sqlx::error::BoxDynError;
use sqlx::postgres::{PgArgumentBuffer, PgRow, PgTypeInfo};
use sqlx::{Encode, Postgres, Row as _, Type};

use super::error::{from_pg, from_sqlx};
use crate::error::Result;
use crate::fields::{Kind, Value};
use crate::model::{Priority, Task};
use crate::store::common::{AccountRow, HeldKey, list_counts, set_plain, task_stats, unknown_rank};
use crate::store::keyed::Rows;
use crate::store::statements::{Stamp, TextList};
use crate::store::{ListCounts, TagCount, TaskStats};

/// A column type both drivers decode.
pub(crate) trait Column:
    for<'r> sqlx::Decode<'r, Postgres> + Type<Postgres> + for<'a> tokio_postgres::types::FromSql<'a>
{
}

impl<T> Column for T where
    T: for<'r> sqlx::Decode<'r, Postgres>
        + Type<Postgres>
        + for<'a> tokio_postgres::types::FromSql<'a>
{
}

/// A row of either driver, read column by column.
pub(crate) trait Columns {
    /// Column `i` as a `T`.
    fn column<T: Column>(&self, i: usize) -> Result<T>;
}

impl Columns for PgRow {
    /// The columns' types are fixed by our own migrations, so sqlx's per-column
    /// type-compatibility check (a tenth of a list's decode time) is skipped; values still
    /// decode with their own checks.
    fn column<T: Column>(&self, i: usize) -> Result<T> {
        self.try_get_unchecked(i).map_err(from_sqlx)
    }
}

impl Columns for tokio_postgres::Row {
    fn column<T: Column>(&self, i: usize) -> Result<T> {
        self.try_get(i).map_err(from_pg)
    }
}

/// A task from the columns of [`task_columns`](crate::store::statements::task_columns), in order.
pub(crate) fn task(row: &impl Columns) -> Result<Task> {
    let rank: i16 = row.column(5)?;
    let mut task = Task {
        id: row.column(0)?,
        user_id: row.column(1)?,
        title: row.column(2)?,
        description: row.column(3)?,
        completed: row.column(4)?,
        priority: Priority::from_rank(rank).ok_or_else(|| unknown_rank(rank))?,
        due_date: row.column(6)?,
        created_at: row.column(7)?,
        updated_at: row.column(8)?,
        version: row.column(9)?,
        completed_at: row.column(10)?,
        tags: row.column(11)?,
        recurrence: row.column(12)?,
        ..Task::default()
    };
    set_plain(&mut task, |kind, i| {
        Ok(match kind {
            Kind::Int => Value::Int(row.column(i)?),
            Kind::Text => Value::Text(row.column(i)?),
            Kind::Instant => Value::Instant(row.column(i)?),
        })
    })?;
    Ok(task)
}

/// The PostgreSQL type of a plain field's column.
pub(crate) fn pg_type(kind: Kind) -> tokio_postgres::types::Type {
    use tokio_postgres::types::Type;
    match kind {
        Kind::Int => Type::INT8,
        Kind::Text => Type::TEXT,
        Kind::Instant => Type::TIMESTAMPTZ,
    }
}

/// A plain field's value as tokio-postgres binds it: as its column's type, `null` included.
impl tokio_postgres::types::ToSql for Value {
    fn to_sql(
        &self,
        ty: &tokio_postgres::types::Type,
        out: &mut bytes::BytesMut,
    ) -> std::result::Result<tokio_postgres::types::IsNull, BoxDynError> {
        match self {
            Self::Int(v) => v.to_sql(ty, out),
            Self::Text(v) => v.to_sql(ty, out),
            Self::Instant(v) => v.to_sql(ty, out),
        }
    }

    fn accepts(ty: &tokio_postgres::types::Type) -> bool {
        <Option<i64> as tokio_postgres::types::ToSql>::accepts(ty)
            || <Option<String> as tokio_postgres::types::ToSql>::accepts(ty)
            || <Option<DateTime<Utc>> as tokio_postgres::types::ToSql>::accepts(ty)
    }

    tokio_postgres::types::to_sql_checked!();
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
pub(crate) const KEYED: Rows<PgRow> = Rows { task, held_key };

/// A held idempotency key from the columns of `GET_IDEMPOTENCY_KEY`, in order.
pub(crate) fn held_key(row: &impl Columns) -> Result<HeldKey> {
    Ok(HeldKey {
        fingerprint: row.column(0)?,
        response: row.column(1)?,
    })
}

impl Type<Postgres> for Stamp {
    fn type_info() -> PgTypeInfo {
        <DateTime<Utc> as Type<Postgres>>::type_info()
    }
}

impl Encode<'_, Postgres> for Stamp {
    fn encode_by_ref(&self, buf: &mut PgArgumentBuffer) -> Result<IsNull, BoxDynError> {
        <DateTime<Utc> as Encode<'_, Postgres>>::encode_by_ref(&self.0, buf)
    }
}

impl Type<Postgres> for TextList {
    fn type_info() -> PgTypeInfo {
        <Vec<String> as Type<Postgres>>::type_info()
    }
}

impl Encode<'_, Postgres> for TextList {
    fn encode_by_ref(&self, buf: &mut PgArgumentBuffer) -> Result<IsNull, BoxDynError> {
        <Vec<String> as Encode<'_, Postgres>>::encode_by_ref(&self.0, buf)
    }
}
