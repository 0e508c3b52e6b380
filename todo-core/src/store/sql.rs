//! What the two SQL backends share: the bind values, the list statement, and the small execution
//! interface each backend implements (the fixed statements are in [`super::statements`]). The store
//! logic in [`super::SqlStore`] is written once against it, so SQLite and PostgreSQL run the same
//! statements in the same order.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::statements::TASK_COLUMNS;
use crate::cursor::{Key, Position};
use crate::model::{ListQuery, SortField, SortOrder, StatusFilter, Task};

/// A value bound to a `$n` placeholder. Both backends accept `$n` placeholders.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Value<'a> {
    I64(i64),
    OptI64(Option<i64>),
    I16(i16),
    OptI16(Option<i16>),
    Bool(bool),
    OptBool(Option<bool>),
    Text(&'a str),
    OptText(Option<&'a str>),
    Time(DateTime<Utc>),
    OptTime(Option<DateTime<Utc>>),
}

/// Runs reads: on a pool, on read-only or pipelined connections, or inside a transaction.
#[async_trait]
pub(crate) trait Read: Send {
    /// Every row, decoded as tasks.
    async fn tasks(&mut self, sql: &str, args: &[Value<'_>]) -> sqlx::Result<Vec<Task>>;
    /// At most one row, decoded as a task.
    async fn task(&mut self, sql: &str, args: &[Value<'_>]) -> sqlx::Result<Option<Task>>;
    /// At most one row of one `bigint` column.
    async fn int(&mut self, sql: &str, args: &[Value<'_>]) -> sqlx::Result<Option<i64>>;
    /// At most one row of a text and a nullable text column.
    async fn texts(
        &mut self,
        sql: &str,
        args: &[Value<'_>],
    ) -> sqlx::Result<Option<(String, Option<String>)>>;
    /// At most one account row: id, email, name, password hash.
    async fn account(&mut self, sql: &str, args: &[Value<'_>]) -> sqlx::Result<Option<AccountRow>>;
}

/// Runs writes as well as reads: on the pool, through the write queue, or inside a
/// transaction. Readers ([`Db::reader`]) cannot write: they are only [`Read`].
#[async_trait]
pub(crate) trait Exec: Read {
    /// Rows affected.
    async fn execute(&mut self, sql: &str, args: &[Value<'_>]) -> sqlx::Result<u64>;
}

pub(crate) use super::common::AccountRow;

/// A transaction that can be committed (dropping it rolls back).
#[async_trait]
pub(crate) trait Commit: Exec {
    async fn commit(self) -> sqlx::Result<()>;
}

/// One database backend.
#[async_trait]
pub(crate) trait Db: Send + Sync + 'static {
    /// A handle that runs single reads.
    type Reader<'a>: Read
    where
        Self: 'a;
    /// A handle that runs single statements that may write.
    type Conn<'a>: Exec
    where
        Self: 'a;
    /// A write transaction.
    type Tx: Commit;

    /// The backend's substring-position function: `instr` (SQLite) or `strpos` (PostgreSQL).
    const POSITION_FN: &'static str;
    /// The backend's name, for logs and diagnostics.
    const NAME: &'static str;
    /// A statement that, run first in a write transaction, makes the other write transactions
    /// of the user `$1` that run it wait until this one ends, so a quota counted inside it
    /// cannot be overshot by concurrent creates. `None` where writes are serialised anyway
    /// (SQLite: one writer at a time).
    const USER_LOCK: Option<&'static str>;

    /// Runs reads (never blocks behind writes on SQLite).
    fn reader(&self) -> Self::Reader<'_>;
    /// Runs the statement [`list_statement`] built for `query`; where it runs is the backend's
    /// choice (SQLite: `sqlite/schedule.rs`). By default on [`Db::reader`].
    async fn list(
        &self,
        sql: &str,
        args: &[Value<'_>],
        _query: &ListQuery,
    ) -> sqlx::Result<Vec<Task>> {
        self.reader().tasks(sql, args).await
    }
    /// Runs writes.
    fn writer(&self) -> Self::Conn<'_>;
    /// Starts a write transaction whose first statement takes the write lock.
    async fn begin_write(&self) -> sqlx::Result<Self::Tx>;
    /// Checks that the database answers.
    async fn ping(&self) -> sqlx::Result<()>;
    /// Closes every connection, waiting for those in use.
    async fn close(&self);
}

/// The column a sort orders by.
fn sort_column(sort: SortField) -> &'static str {
    match sort {
        SortField::Created => "created_at",
        SortField::Updated => "updated_at",
        SortField::Title => "title_key",
        SortField::DueDate => "due_date",
        SortField::Priority => "priority",
    }
}

/// Builds the list statement and its arguments. Placeholder numbers follow the order in which
/// arguments are pushed, so the text and the arguments cannot disagree.
pub(crate) fn list_statement<'a, D: Db>(
    user_id: &'a str,
    query: &'a ListQuery,
    after: Option<&'a Position>,
) -> (String, Vec<Value<'a>>) {
    use std::fmt::Write;

    let mut sql = String::with_capacity(384);
    let mut args: Vec<Value<'a>> = Vec::with_capacity(6);
    let mut arg = |v: Value<'a>| {
        args.push(v);
        args.len()
    };

    let position_fn = D::POSITION_FN;
    let _ = write!(
        sql,
        "select {TASK_COLUMNS} from tasks where user_id = ${}",
        arg(Value::Text(user_id))
    );
    match query.status {
        StatusFilter::All => {}
        StatusFilter::Pending => sql.push_str(" and completed = false"),
        StatusFilter::Completed => sql.push_str(" and completed = true"),
    }
    if let Some(q) = &query.search {
        let n = arg(Value::Text(q.as_str()));
        let _ = write!(
            sql,
            " and ({position_fn}(title_key, ${n}) > 0 or {position_fn}(coalesce(description_key, ''), ${n}) > 0)"
        );
    }
    let column = sort_column(query.sort);
    let (cmp, dir) = match query.order {
        SortOrder::Asc => (">", "asc"),
        SortOrder::Desc => ("<", "desc"),
    };
    if let Some(p) = after {
        let key = match &p.key {
            Key::Time(t) | Key::MaybeTime(Some(t)) => Some(Value::Time(micros_to_time(*t))),
            Key::MaybeTime(None) => None,
            Key::Text(s) => Some(Value::Text(s)),
            Key::Rank(r) => Some(Value::I16(*r)),
        };
        match (query.sort, key) {
            (SortField::DueDate, Some(k)) => {
                // Tasks without a due date come after every dated one, in either order.
                let k = arg(k);
                let id = arg(Value::I64(p.id));
                let _ = write!(
                    sql,
                    " and (due_date is null or (due_date, id) {cmp} (${k}, ${id}))"
                );
            }
            (_, Some(k)) => {
                let k = arg(k);
                let id = arg(Value::I64(p.id));
                let _ = write!(sql, " and ({column}, id) {cmp} (${k}, ${id})");
            }
            (_, None) => {
                let id = arg(Value::I64(p.id));
                let _ = write!(sql, " and due_date is null and id {cmp} ${id}");
            }
        }
    }
    let nulls = if query.sort == SortField::DueDate {
        " nulls last"
    } else {
        ""
    };
    let limit = arg(Value::I64(i64::from(query.limit.get()) + 1));
    let order = format!("{column} {dir}{nulls}, id {dir}");
    let _ = write!(sql, " order by {order} limit ${limit}");
    (sql, args)
}

/// A task as SQLite stores it: id, user id, title, description, completed, priority rank, then
/// due date, creation and update times in microseconds since the epoch, and version.
pub(crate) struct StoredTask(
    pub(crate) i64,
    pub(crate) String,
    pub(crate) String,
    pub(crate) Option<String>,
    pub(crate) bool,
    pub(crate) i16,
    pub(crate) Option<i64>,
    pub(crate) i64,
    pub(crate) i64,
    pub(crate) i64,
);

impl StoredTask {
    /// The task, or the unknown priority rank it holds.
    pub(crate) fn into_task(self) -> Result<Task, i16> {
        let Self(id, user_id, title, description, completed, rank, due, created, updated, version) =
            self;
        Ok(Task {
            id,
            user_id,
            title,
            description,
            completed,
            priority: crate::model::Priority::from_rank(rank).ok_or(rank)?,
            due_date: due.map(micros_to_time),
            created_at: micros_to_time(created),
            updated_at: micros_to_time(updated),
            version,
        })
    }
}

/// The decode error for a priority rank no migration defines.
pub(crate) fn unknown_rank(rank: i16) -> sqlx::Error {
    sqlx::Error::ColumnDecode {
        index: "priority".into(),
        source: format!("unknown priority rank {rank}").into(),
    }
}

/// The keyset position just after `task` in a list sorted by `sort`/`order`.
pub(crate) fn position_after(task: &Task, sort: SortField, order: SortOrder) -> Position {
    let key = match sort {
        SortField::Created => Key::Time(task.created_at.timestamp_micros()),
        SortField::Updated => Key::Time(task.updated_at.timestamp_micros()),
        SortField::Title => Key::Text(crate::model::fold_case(&task.title)),
        SortField::DueDate => Key::MaybeTime(task.due_date.map(|d| d.timestamp_micros())),
        SortField::Priority => Key::Rank(task.priority.rank()),
    };
    Position {
        sort,
        order,
        key,
        id: task.id,
    }
}

pub(crate) use super::statements::micros_to_time;

/// Generates a backend's [`Exec`] implementations for its pool and its transaction, from the
/// backend's bind function and row decoder, so both backends execute identically.
macro_rules! exec_impls {
    ($db:ty, $bind:path, $decode:path) => {
        /// The backend's connection pool.
        pub(crate) type Pool = $crate::store::pool::Pool<<$db as sqlx::Database>::Connection>;

        /// Runs single statements on a pool.
        pub(crate) struct PoolExec<'a>(pub(crate) &'a Pool);

        /// A write transaction on one pooled connection. It holds the connection from before
        /// `begin` is sent until `commit` has succeeded; leaving any other way (an error, or the
        /// caller's future dropped mid-statement, mid-`begin` or mid-`commit`) rolls back in the
        /// background before the connection can be taken again. A `rollback` where no
        /// transaction is open is harmless on both backends.
        pub(crate) struct TxExec(
            Option<$crate::store::pool::Conn<<$db as sqlx::Database>::Connection>>,
        );

        impl TxExec {
            /// Takes a connection and runs `begin` (the backend's begin statement) on it.
            pub(crate) async fn begin(pool: &Pool, begin: &'static str) -> sqlx::Result<Self> {
                use sqlx::Executor as _;
                let mut tx = Self(Some(pool.get_sqlx().await?));
                tx.conn()?.execute(begin).await?;
                Ok(tx)
            }

            /// The transaction's connection.
            fn conn(&mut self) -> sqlx::Result<&mut <$db as sqlx::Database>::Connection> {
                self.0.as_deref_mut().ok_or(sqlx::Error::PoolClosed)
            }
        }

        impl Drop for TxExec {
            fn drop(&mut self) {
                use sqlx::Executor as _;
                let Some(mut conn) = self.0.take() else {
                    return;
                };
                match tokio::runtime::Handle::try_current() {
                    Ok(runtime) => {
                        runtime.spawn(async move {
                            let result = (&mut *conn).execute("rollback").await.map(drop);
                            $crate::store::pool::settle(
                                conn,
                                result
                                    .as_ref()
                                    .err()
                                    .is_some_and($crate::store::pool::is_broken),
                            );
                        });
                    }
                    // No runtime (it is shutting down): the connection cannot be rolled back
                    // here, so it must not be reused; closing it rolls back.
                    Err(_) => drop(deadpool::managed::Object::take(conn)),
                }
            }
        }

        /// Runs one statement on a connection from the pool; a connection the statement broke
        /// does not go back.
        macro_rules! on_pool {
            ($pool:expr, $run:ident, $sql:expr, $args:expr) => {{
                let mut conn = $pool.get_sqlx().await?;
                let result = $run(&mut *conn, $sql, $args).await;
                $crate::store::pool::settle(
                    conn,
                    result
                        .as_ref()
                        .err()
                        .is_some_and($crate::store::pool::is_broken),
                );
                result
            }};
        }

        fn bound<'q>(
            sql: &'q str,
            args: &'q [$crate::store::sql::Value<'q>],
        ) -> sqlx::query::Query<'q, $db, <$db as sqlx::Database>::Arguments<'q>> {
            args.iter().fold(sqlx::query(sql), |q, v| $bind(q, *v))
        }

        async fn run_tasks<'e, E: sqlx::Executor<'e, Database = $db>>(
            e: E,
            sql: &'e str,
            args: &'e [$crate::store::sql::Value<'e>],
        ) -> sqlx::Result<Vec<$crate::model::Task>> {
            bound(sql, args)
                .try_map(|row| $decode(&row))
                .fetch_all(e)
                .await
        }

        async fn run_task<'e, E: sqlx::Executor<'e, Database = $db>>(
            e: E,
            sql: &'e str,
            args: &'e [$crate::store::sql::Value<'e>],
        ) -> sqlx::Result<Option<$crate::model::Task>> {
            bound(sql, args)
                .try_map(|row| $decode(&row))
                .fetch_optional(e)
                .await
        }

        async fn run_int<'e, E: sqlx::Executor<'e, Database = $db>>(
            e: E,
            sql: &'e str,
            args: &'e [$crate::store::sql::Value<'e>],
        ) -> sqlx::Result<Option<i64>> {
            use sqlx::Row as _;
            bound(sql, args)
                .try_map(|row| row.try_get::<i64, _>(0))
                .fetch_optional(e)
                .await
        }

        async fn run_texts<'e, E: sqlx::Executor<'e, Database = $db>>(
            e: E,
            sql: &'e str,
            args: &'e [$crate::store::sql::Value<'e>],
        ) -> sqlx::Result<Option<(String, Option<String>)>> {
            use sqlx::Row as _;
            bound(sql, args)
                .try_map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
                .fetch_optional(e)
                .await
        }

        async fn run_account<'e, E: sqlx::Executor<'e, Database = $db>>(
            e: E,
            sql: &'e str,
            args: &'e [$crate::store::sql::Value<'e>],
        ) -> sqlx::Result<Option<$crate::store::sql::AccountRow>> {
            use sqlx::Row as _;
            bound(sql, args)
                .try_map(|row| {
                    Ok($crate::store::sql::AccountRow {
                        id: row.try_get(0)?,
                        email: row.try_get(1)?,
                        name: row.try_get(2)?,
                        password_hash: row.try_get(3)?,
                    })
                })
                .fetch_optional(e)
                .await
        }

        async fn run_execute<'e, E: sqlx::Executor<'e, Database = $db>>(
            e: E,
            sql: &'e str,
            args: &'e [$crate::store::sql::Value<'e>],
        ) -> sqlx::Result<u64> {
            Ok(bound(sql, args).execute(e).await?.rows_affected())
        }

        #[async_trait::async_trait]
        impl $crate::store::sql::Read for PoolExec<'_> {
            async fn tasks(
                &mut self,
                sql: &str,
                args: &[$crate::store::sql::Value<'_>],
            ) -> sqlx::Result<Vec<$crate::model::Task>> {
                on_pool!(self.0, run_tasks, sql, args)
            }
            async fn task(
                &mut self,
                sql: &str,
                args: &[$crate::store::sql::Value<'_>],
            ) -> sqlx::Result<Option<$crate::model::Task>> {
                on_pool!(self.0, run_task, sql, args)
            }
            async fn int(
                &mut self,
                sql: &str,
                args: &[$crate::store::sql::Value<'_>],
            ) -> sqlx::Result<Option<i64>> {
                on_pool!(self.0, run_int, sql, args)
            }
            async fn texts(
                &mut self,
                sql: &str,
                args: &[$crate::store::sql::Value<'_>],
            ) -> sqlx::Result<Option<(String, Option<String>)>> {
                on_pool!(self.0, run_texts, sql, args)
            }
            async fn account(
                &mut self,
                sql: &str,
                args: &[$crate::store::sql::Value<'_>],
            ) -> sqlx::Result<Option<$crate::store::sql::AccountRow>> {
                on_pool!(self.0, run_account, sql, args)
            }
        }

        #[async_trait::async_trait]
        impl $crate::store::sql::Exec for PoolExec<'_> {
            async fn execute(
                &mut self,
                sql: &str,
                args: &[$crate::store::sql::Value<'_>],
            ) -> sqlx::Result<u64> {
                on_pool!(self.0, run_execute, sql, args)
            }
        }

        #[async_trait::async_trait]
        impl $crate::store::sql::Read for TxExec {
            async fn tasks(
                &mut self,
                sql: &str,
                args: &[$crate::store::sql::Value<'_>],
            ) -> sqlx::Result<Vec<$crate::model::Task>> {
                run_tasks(self.conn()?, sql, args).await
            }
            async fn task(
                &mut self,
                sql: &str,
                args: &[$crate::store::sql::Value<'_>],
            ) -> sqlx::Result<Option<$crate::model::Task>> {
                run_task(self.conn()?, sql, args).await
            }
            async fn int(
                &mut self,
                sql: &str,
                args: &[$crate::store::sql::Value<'_>],
            ) -> sqlx::Result<Option<i64>> {
                run_int(self.conn()?, sql, args).await
            }
            async fn texts(
                &mut self,
                sql: &str,
                args: &[$crate::store::sql::Value<'_>],
            ) -> sqlx::Result<Option<(String, Option<String>)>> {
                run_texts(self.conn()?, sql, args).await
            }
            async fn account(
                &mut self,
                sql: &str,
                args: &[$crate::store::sql::Value<'_>],
            ) -> sqlx::Result<Option<$crate::store::sql::AccountRow>> {
                run_account(self.conn()?, sql, args).await
            }
        }

        #[async_trait::async_trait]
        impl $crate::store::sql::Exec for TxExec {
            async fn execute(
                &mut self,
                sql: &str,
                args: &[$crate::store::sql::Value<'_>],
            ) -> sqlx::Result<u64> {
                run_execute(self.conn()?, sql, args).await
            }
        }

        #[async_trait::async_trait]
        impl $crate::store::sql::Commit for TxExec {
            async fn commit(mut self) -> sqlx::Result<()> {
                use sqlx::Executor as _;
                // On failure (or if this future is dropped) the connection stays in `self`,
                // and dropping `self` rolls back whatever is still open.
                self.conn()?.execute("commit").await?;
                if let Some(conn) = self.0.take() {
                    $crate::store::pool::settle(conn, false);
                }
                Ok(())
            }
        }
    };
}

pub(crate) use exec_impls;

/// Implements [`Read`] for an enum whose variants each hold a reader, by calling the variant's.
macro_rules! read_enum {
    ($enum:ident { $($variant:ident),+ }) => {
        #[async_trait::async_trait]
        impl $crate::store::sql::Read for $enum<'_> {
            async fn tasks(
                &mut self,
                sql: &str,
                args: &[$crate::store::sql::Value<'_>],
            ) -> sqlx::Result<Vec<$crate::model::Task>> {
                match self {
                    $(Self::$variant(e) => $crate::store::sql::Read::tasks(e, sql, args).await,)+
                }
            }
            async fn task(
                &mut self,
                sql: &str,
                args: &[$crate::store::sql::Value<'_>],
            ) -> sqlx::Result<Option<$crate::model::Task>> {
                match self {
                    $(Self::$variant(e) => $crate::store::sql::Read::task(e, sql, args).await,)+
                }
            }
            async fn int(
                &mut self,
                sql: &str,
                args: &[$crate::store::sql::Value<'_>],
            ) -> sqlx::Result<Option<i64>> {
                match self {
                    $(Self::$variant(e) => $crate::store::sql::Read::int(e, sql, args).await,)+
                }
            }
            async fn texts(
                &mut self,
                sql: &str,
                args: &[$crate::store::sql::Value<'_>],
            ) -> sqlx::Result<Option<(String, Option<String>)>> {
                match self {
                    $(Self::$variant(e) => $crate::store::sql::Read::texts(e, sql, args).await,)+
                }
            }
            async fn account(
                &mut self,
                sql: &str,
                args: &[$crate::store::sql::Value<'_>],
            ) -> sqlx::Result<Option<$crate::store::sql::AccountRow>> {
                match self {
                    $(Self::$variant(e) => $crate::store::sql::Read::account(e, sql, args).await,)+
                }
            }
        }
    };
}

pub(crate) use read_enum;
