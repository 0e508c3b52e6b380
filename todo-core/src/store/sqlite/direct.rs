//! Reads on a SQLite file through rusqlite: on the calling thread when their work is bounded,
//! on tokio's blocking threads when it may grow with the user's data.
//!
//! sqlx-sqlite gives every connection its own thread: a statement is sent to it over a channel,
//! and its result comes back the same way, two thread wake-ups plus a copy of every value per
//! statement. Measured on the server (`docs/benchmarks.md`): a GET answered from SQLite cost
//! 36 µs of server CPU where the same request refused before the database (403) cost 12 µs, while
//! SQLite itself needs about 2 µs for the lookup. Such a lookup by key (a task, a version, an
//! account) is cheaper to run right where the request is than to hand over, so the store runs
//! those here, on read-only connections to the same WAL database (readers never wait for the
//! writer); each takes microseconds, well within what an async worker may spend between awaits.
//! So do list pages proven to stop after the page (`schedule::placement` says `Inline`). Every
//! other list (searches, filters, any shape not proven) runs on the same kind of connection on
//! tokio's blocking threads ([`DirectReader::scan`]), off the async workers; one whose request
//! is abandoned is stopped there (a read that met a locked file and went to sqlx is not).
//!
//! Writes, migrations and transactions stay on sqlx.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use deadpool::managed::{self, Metrics, RecycleResult};
use rusqlite::types::{ToSqlOutput, Value as SqlValue, ValueRef};
use rusqlite::{Connection, ErrorCode, OpenFlags, Row, Statement};

use crate::model::Task;
use crate::store::sql::{AccountRow, Read, StoredTask, Value};

/// Opens read-only connections to one database file.
pub(crate) struct Manager {
    path: PathBuf,
    /// `pragma max_page_count` for every connection ([`crate::StoreOptions::sqlite_max_size_bytes`]).
    max_pages: Option<u64>,
}

impl managed::Manager for Manager {
    type Type = Connection;
    type Error = rusqlite::Error;

    async fn create(&self) -> rusqlite::Result<Connection> {
        let conn = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        // Never wait for a lock here (on an async worker, or holding a scan connection): a WAL
        // reader is only refused in rare moments (another process holding the file
        // exclusively, a WAL being reset), and then the statement runs on sqlx's threads, which
        // may wait.
        conn.busy_timeout(Duration::ZERO)?;
        conn.set_prepared_statement_cache_capacity(64);
        if let Some(pages) = self.max_pages {
            conn.pragma_update(None, "max_page_count", pages)?;
        }
        Ok(conn)
    }

    async fn recycle(&self, _: &mut Connection, _: &Metrics) -> RecycleResult<rusqlite::Error> {
        // A local file does not drop connections.
        Ok(())
    }
}

/// A pool of read-only connections.
pub(crate) struct Readers(managed::Pool<Manager>);

impl Readers {
    /// At most `max` read-only connections to the file at `path`, capped at `max_pages` pages
    /// like the store's other connections. They never wait for a lock: a busy database fails at
    /// once, and [`DirectReader`] falls back to sqlx.
    pub(crate) fn new(
        path: PathBuf,
        max: u32,
        wait: Duration,
        max_pages: Option<u64>,
    ) -> sqlx::Result<Self> {
        let manager = Manager { path, max_pages };
        crate::store::pool::build(managed::Pool::builder(manager), max, wait)
            .map(Self)
            .map_err(|e| sqlx::Error::Configuration(Box::new(e)))
    }

    /// Drops every connection; later reads fail with `PoolClosed`.
    pub(crate) fn close(&self) {
        self.0.close();
    }

    /// Takes a connection and runs `f` on it on tokio's blocking threads, for reads whose cost
    /// may grow with the user's data: one hand-over per statement, rows decoded where they are
    /// read (sqlx-sqlite hands every row over a channel, value by value).
    async fn run_blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> sqlx::Result<T> {
        let conn = self
            .0
            .get()
            .await
            .map_err(|e| crate::store::pool::pool_error(e, to_sqlx))?;
        let abandoned = Arc::new(AtomicBool::new(false));
        let _abandon_on_drop = AbandonOnDrop(Arc::clone(&abandoned));
        let work = move || {
            let mut lent = Lent(conn);
            lent.0.progress_handler(
                STEPS_BETWEEN_CHECKS,
                Some(move || abandoned.load(Ordering::Relaxed)),
            );
            f(&mut lent.0)
        };
        match tokio::task::spawn_blocking(work).await {
            Ok(result) => result.map_err(to_sqlx),
            // A panic is a bug, not an outage: a storage error (500), not "retry" (503).
            Err(e) if e.is_panic() => Err(sqlx::Error::AnyDriverError(
                "a read on a blocking thread panicked".into(),
            )),
            // The runtime is shutting down.
            Err(_) => Err(sqlx::Error::WorkerCrashed),
        }
    }

    /// Takes a connection and runs `f` on it, here, without awaiting in between.
    async fn run<T>(
        &self,
        f: impl FnOnce(&mut Connection) -> rusqlite::Result<T> + Send,
    ) -> sqlx::Result<T> {
        let mut conn = self
            .0
            .get()
            .await
            .map_err(|e| crate::store::pool::pool_error(e, to_sqlx))?;
        f(&mut conn).map_err(to_sqlx)
    }
}

/// How many SQLite virtual-machine steps a read on a blocking thread runs between checks of
/// whether its request is still there (a few microseconds of work).
const STEPS_BETWEEN_CHECKS: std::ffi::c_int = 1000;

/// Marks a read on a blocking thread abandoned when its future is dropped (the request gone);
/// SQLite's progress handler then stops the statement at its next check
/// ([`STEPS_BETWEEN_CHECKS`]), so an expensive search does not keep its connection and thread
/// to the end. Unlike `sqlite3_interrupt`, the flag belongs to this one read: SQLite never
/// clears it, so it cannot be lost before the statement starts, and it cannot reach a later
/// statement on the same connection.
struct AbandonOnDrop(Arc<AtomicBool>);

impl Drop for AbandonOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// A pooled connection lent to a read on a blocking thread: its progress handler is removed
/// before it goes back to the pool, however the read ends (`drop` runs before the connection,
/// a field, is returned).
struct Lent(managed::Object<Manager>);

impl Drop for Lent {
    fn drop(&mut self) {
        self.0.progress_handler(0, None::<fn() -> bool>);
    }
}

/// rusqlite's errors in sqlx's terms, so the store classifies both drivers alike: a file that
/// cannot be read now is "unavailable", a full one "out of space" (an I/O error of kind
/// `StorageFull`), anything else (a corrupt file included) a storage error.
/// A busy or locked database becomes [`std::io::ErrorKind::WouldBlock`], which [`DirectReader`]
/// answers by running the statement on sqlx's threads instead (see [`Readers::new`]).
fn to_sqlx(e: rusqlite::Error) -> sqlx::Error {
    match e.sqlite_error_code() {
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => {
            sqlx::Error::Io(std::io::Error::new(std::io::ErrorKind::WouldBlock, e))
        }
        Some(ErrorCode::DiskFull) => {
            sqlx::Error::Io(std::io::Error::new(std::io::ErrorKind::StorageFull, e))
        }
        Some(ErrorCode::CannotOpen | ErrorCode::SystemIoFailure) => {
            sqlx::Error::Io(std::io::Error::other(e))
        }
        _ => sqlx::Error::AnyDriverError(Box::new(e)),
    }
}

/// Whether `e` is a lock this thread must not wait for (see [`to_sqlx`]).
fn is_busy(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Io(io) if io.kind() == std::io::ErrorKind::WouldBlock)
}

/// `v` as SQLite stores it: booleans as 0 and 1, times as microseconds since the epoch, text
/// borrowed.
pub(super) fn sqlite_value<'a>(v: &Value<'a>) -> ValueRef<'a> {
    fn or_null<T>(v: Option<T>, f: impl FnOnce(T) -> ValueRef<'static>) -> ValueRef<'static> {
        v.map_or(ValueRef::Null, f)
    }
    match *v {
        Value::I64(x) => ValueRef::Integer(x),
        Value::OptI64(x) => or_null(x, ValueRef::Integer),
        Value::I16(x) => ValueRef::Integer(x.into()),
        Value::OptI16(x) => or_null(x, |x| ValueRef::Integer(x.into())),
        Value::Bool(x) => ValueRef::Integer(x.into()),
        Value::OptBool(x) => or_null(x, |x| ValueRef::Integer(x.into())),
        Value::Text(x) => ValueRef::Text(x.as_bytes()),
        Value::OptText(x) => x.map_or(ValueRef::Null, |x| ValueRef::Text(x.as_bytes())),
        Value::Time(t) => ValueRef::Integer(t.timestamp_micros()),
        Value::OptTime(t) => or_null(t, |t| ValueRef::Integer(t.timestamp_micros())),
    }
}

/// Binds `$1..$n` by name (SQLite numbers named parameters by first appearance, which need not
/// follow their digits).
pub(super) fn bind<'a>(
    stmt: &mut Statement<'_>,
    args: impl IntoIterator<Item = ValueRef<'a>>,
) -> rusqlite::Result<()> {
    for (i, v) in args.into_iter().enumerate() {
        let name = format!("${}", i + 1);
        let index = stmt
            .parameter_index(&name)?
            .ok_or(rusqlite::Error::InvalidParameterName(name))?;
        stmt.raw_bind_parameter(index, ToSqlOutput::Borrowed(v))?;
    }
    Ok(())
}

/// Every row of `sql`, each read by `map`.
fn all<'a, T>(
    conn: &Connection,
    sql: &str,
    args: impl IntoIterator<Item = ValueRef<'a>>,
    mut map: impl FnMut(&Row<'_>) -> rusqlite::Result<T>,
) -> rusqlite::Result<Vec<T>> {
    let mut stmt = conn.prepare_cached(sql)?;
    bind(&mut stmt, args)?;
    let mut rows = stmt.raw_query();
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        out.push(map(row)?);
    }
    Ok(out)
}

/// The first row of `sql`, if any, read by `map`.
fn first<'a, T>(
    conn: &Connection,
    sql: &str,
    args: impl IntoIterator<Item = ValueRef<'a>>,
    map: impl FnOnce(&Row<'_>) -> rusqlite::Result<T>,
) -> rusqlite::Result<Option<T>> {
    let mut stmt = conn.prepare_cached(sql)?;
    bind(&mut stmt, args)?;
    let mut rows = stmt.raw_query();
    rows.next()?.map(map).transpose()
}

/// Reads a task row (the columns of `TASK_COLUMNS`, in order).
fn task(row: &Row<'_>) -> rusqlite::Result<Task> {
    StoredTask(
        row.get(0)?,
        row.get(1)?,
        row.get(2)?,
        row.get(3)?,
        row.get(4)?,
        row.get(5)?,
        row.get(6)?,
        row.get(7)?,
        row.get(8)?,
        row.get(9)?,
    )
    .into_task()
    .map_err(|rank| rusqlite::Error::IntegralValueOutOfRange(5, i64::from(rank)))
}

/// Runs statements on the calling thread ([`DirectReader::scan`]: on a blocking thread), or,
/// when the database is momentarily locked, on `fallback` (sqlx's threads, which may wait).
pub(crate) struct DirectReader<'a> {
    pub(crate) readers: &'a Readers,
    pub(crate) fallback: &'a super::Pool,
}

/// Runs `$direct`; if the database was locked, runs `$method` on the fallback pool instead.
macro_rules! or_fallback {
    ($self:ident, $method:ident, $sql:ident, $args:ident, $direct:expr) => {
        match $direct {
            Err(e) if is_busy(&e) => super::PoolExec($self.fallback).$method($sql, $args).await,
            other => other,
        }
    };
}

impl DirectReader<'_> {
    /// Runs a read whose cost may grow with the user's data (a filtered or searched list) on
    /// tokio's blocking threads ([`Readers::run_blocking`]), off the async workers.
    pub(crate) async fn scan(&mut self, sql: &str, args: &[Value<'_>]) -> sqlx::Result<Vec<Task>> {
        let owned_sql = sql.to_owned();
        let values: Vec<SqlValue> = args.iter().map(|v| sqlite_value(v).into()).collect();
        let direct = self
            .readers
            .run_blocking(move |conn| all(conn, &owned_sql, values.iter().map(Into::into), task))
            .await;
        or_fallback!(self, tasks, sql, args, direct)
    }
}

#[async_trait]
impl Read for DirectReader<'_> {
    async fn tasks(&mut self, sql: &str, args: &[Value<'_>]) -> sqlx::Result<Vec<Task>> {
        let direct = self
            .readers
            .run(|conn| all(conn, sql, args.iter().map(sqlite_value), task))
            .await;
        or_fallback!(self, tasks, sql, args, direct)
    }

    async fn task(&mut self, sql: &str, args: &[Value<'_>]) -> sqlx::Result<Option<Task>> {
        let direct = self
            .readers
            .run(|conn| first(conn, sql, args.iter().map(sqlite_value), task))
            .await;
        or_fallback!(self, task, sql, args, direct)
    }

    async fn int(&mut self, sql: &str, args: &[Value<'_>]) -> sqlx::Result<Option<i64>> {
        let direct = self
            .readers
            .run(|conn| first(conn, sql, args.iter().map(sqlite_value), |row| row.get(0)))
            .await;
        or_fallback!(self, int, sql, args, direct)
    }

    async fn texts(
        &mut self,
        sql: &str,
        args: &[Value<'_>],
    ) -> sqlx::Result<Option<(String, Option<String>)>> {
        let direct = self
            .readers
            .run(|conn| {
                first(conn, sql, args.iter().map(sqlite_value), |row| {
                    Ok((row.get(0)?, row.get(1)?))
                })
            })
            .await;
        or_fallback!(self, texts, sql, args, direct)
    }

    async fn account(&mut self, sql: &str, args: &[Value<'_>]) -> sqlx::Result<Option<AccountRow>> {
        let direct = self
            .readers
            .run(|conn| {
                first(conn, sql, args.iter().map(sqlite_value), |row| {
                    Ok(AccountRow {
                        id: row.get(0)?,
                        email: row.get(1)?,
                        name: row.get(2)?,
                        password_hash: row.get(3)?,
                    })
                })
            })
            .await;
        or_fallback!(self, account, sql, args, direct)
    }
}
