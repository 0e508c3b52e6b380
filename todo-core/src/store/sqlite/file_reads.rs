//! Reads on a SQLite file through rusqlite: on the calling thread when their work is bounded,
//! on tokio's blocking threads when it may grow with the user's data.
//!
//! sqlx-sqlite gives every connection its own thread: a statement is sent to it over a channel,
//! and its result comes back the same way, two thread wake-ups plus a copy of every value per
//! statement, which costs far more than SQLite's own lookup by key (`docs/benchmarks.md`). Such
//! a lookup (a task, a version, an account) is cheaper to run right where the request is than
//! to hand over, so the store runs those here ([`FileReads::inline`]), on read-only connections
//! to the same WAL database (readers never wait for the writer); each takes microseconds, well
//! within what an async worker may spend between awaits. So do list pages proven to stop after
//! the page (`schedule::placement` says `Inline`). Every other list (searches, filters, any
//! shape not proven) runs on connections of its own on tokio's blocking threads
//! ([`FileReads::blocking`]), off the async workers; one whose request is abandoned is stopped
//! there.
//!
//! These connections never wait for a lock (busy timeout 0): a WAL reader is only refused in
//! rare moments (another process holding the file exclusively, a WAL being reset), and then the
//! read runs again on a blocking thread, where it may wait for the lock.
//!
//! Writes, migrations and transactions stay on sqlx.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use deadpool::managed::{self, Metrics, RecycleResult};
use rusqlite::{Connection, OpenFlags, Row, Statement, ToSql};

use super::error::{from_rusqlite, is_locked};
use crate::error::{Error, Result};
use crate::store::pool::{build, unavailable};
use crate::store::statements::Bind;

/// How long a read that met a locked file waits for the lock, on a blocking thread.
const LOCKED_READ_WAIT: Duration = Duration::from_secs(30);

/// Opens read-only connections to one database file.
pub(crate) struct ReadOnlyOpener {
    path: PathBuf,
    /// `pragma max_page_count` for every connection ([`crate::StoreOptions::sqlite_max_size_bytes`]).
    max_pages: Option<u64>,
}

impl managed::Manager for ReadOnlyOpener {
    type Type = Connection;
    type Error = rusqlite::Error;

    async fn create(&self) -> rusqlite::Result<Connection> {
        let conn = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
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
pub(crate) struct ReadOnlyPool(managed::Pool<ReadOnlyOpener>);

impl ReadOnlyPool {
    /// At most `max` read-only connections to the file at `path`, capped at `max_pages` pages
    /// like the store's other connections; taking one waits at most `wait`.
    pub(crate) fn new(
        path: PathBuf,
        max: u32,
        wait: Duration,
        max_pages: Option<u64>,
    ) -> Result<Self> {
        let opener = ReadOnlyOpener { path, max_pages };
        build(managed::Pool::builder(opener), max, wait).map(Self)
    }

    async fn get(&self) -> Result<managed::Object<ReadOnlyOpener>> {
        self.0.get().await.map_err(unavailable)
    }

    /// Drops every connection; later reads fail as unavailable.
    pub(crate) fn close(&self) {
        self.0.close();
    }
}

/// The read-only connections of a database file, in two pools so that lists which may each
/// read all of a user's tasks can never take every connection from the lookups and plain pages
/// that answer in microseconds.
pub(crate) struct FileReads {
    /// Lookups by key and `Inline` list pages, run on the calling thread.
    inline: ReadOnlyPool,
    /// `Blocking` list pages (and reads that met a locked file), run on tokio's blocking
    /// threads.
    blocking: ReadOnlyPool,
}

impl FileReads {
    /// Two pools of at most `max` connections each (see [`ReadOnlyPool::new`]).
    pub(crate) fn new(
        path: PathBuf,
        max: u32,
        wait: Duration,
        max_pages: Option<u64>,
    ) -> Result<Self> {
        Ok(Self {
            inline: ReadOnlyPool::new(path.clone(), max, wait, max_pages)?,
            blocking: ReadOnlyPool::new(path, max, wait, max_pages)?,
        })
    }

    /// Runs `read` here, without awaiting in between: for reads whose cost does not grow with
    /// the user's data. If the file is locked, `read` runs on a blocking thread instead, where
    /// it waits for the lock.
    pub(crate) async fn inline<T: Send + 'static>(
        &self,
        read: impl Fn(&Connection) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let result = read(&*self.inline.get().await?);
        match result {
            Err(e) if is_locked(&e) => self.run_blocking(read, LOCKED_READ_WAIT).await,
            other => other,
        }
    }

    /// Runs `read` on tokio's blocking threads, for reads whose cost may grow with the user's
    /// data: one hand-over per statement, rows decoded where they are read. If the file is
    /// locked, `read` runs once more, waiting for the lock.
    pub(crate) async fn blocking<T: Send + 'static>(
        &self,
        read: impl Fn(&Connection) -> Result<T> + Send + Sync + 'static,
    ) -> Result<T> {
        let read = Arc::new(read);
        let first = Arc::clone(&read);
        match self.run_blocking(move |c| first(c), Duration::ZERO).await {
            Err(e) if is_locked(&e) => self.run_blocking(move |c| read(c), LOCKED_READ_WAIT).await,
            other => other,
        }
    }

    /// Takes a blocking connection and runs `read` on it on a blocking thread, waiting up to
    /// `lock_wait` for a lock another connection holds. A read whose caller gives up is stopped
    /// at SQLite's next progress check.
    async fn run_blocking<T: Send + 'static>(
        &self,
        read: impl FnOnce(&Connection) -> Result<T> + Send + 'static,
        lock_wait: Duration,
    ) -> Result<T> {
        let conn = self.blocking.get().await?;
        let abandoned = Arc::new(AtomicBool::new(false));
        let _abandon_on_drop = AbandonOnDrop(Arc::clone(&abandoned));
        let work = move || {
            let scan = ScanConnection(conn);
            scan.0.progress_handler(
                STEPS_BETWEEN_CHECKS,
                Some(move || abandoned.load(Ordering::Relaxed)),
            );
            if !lock_wait.is_zero() {
                scan.0.busy_timeout(lock_wait).map_err(from_rusqlite)?;
            }
            read(&scan.0)
        };
        match tokio::task::spawn_blocking(work).await {
            Ok(result) => result,
            // A panic is a bug, not an outage: a storage error (500), not "retry" (503).
            Err(e) if e.is_panic() => Err(Error::Storage(
                "a read on a blocking thread panicked".into(),
            )),
            // The runtime is shutting down.
            Err(e) => Err(Error::Unavailable(Box::new(e))),
        }
    }

    /// Drops every connection; later reads fail as unavailable.
    pub(crate) fn close(&self) {
        self.inline.close();
        self.blocking.close();
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

/// A pooled connection lent to a read on a blocking thread: its progress handler is removed and
/// its busy timeout reset before it goes back to the pool, however the read ends (`drop` runs
/// before the connection, a field, is returned).
struct ScanConnection(managed::Object<ReadOnlyOpener>);

impl Drop for ScanConnection {
    fn drop(&mut self) {
        self.0.progress_handler(0, None::<fn() -> bool>);
        // Setting a busy timeout cannot fail (SQLite's call always succeeds).
        let _ = self.0.busy_timeout(Duration::ZERO);
    }
}

/// Binds `$1..$n` by name (SQLite numbers named parameters by first appearance, which need not
/// follow their digits).
pub(super) fn bind(stmt: &mut Statement<'_>, args: &[&dyn ToSql]) -> Result<()> {
    for (i, v) in args.iter().enumerate() {
        let name = format!("${}", i + 1);
        let index = stmt
            .parameter_index(&name)
            .map_err(from_rusqlite)?
            .ok_or_else(|| from_rusqlite(rusqlite::Error::InvalidParameterName(name)))?;
        stmt.raw_bind_parameter(index, *v).map_err(from_rusqlite)?;
    }
    Ok(())
}

/// Every row of `sql` with `args`, each read by `map`.
pub(crate) fn all<T>(
    conn: &Connection,
    sql: &str,
    args: &[&dyn ToSql],
    mut map: impl FnMut(&Row<'_>) -> Result<T>,
) -> Result<Vec<T>> {
    let mut stmt = conn.prepare_cached(sql).map_err(from_rusqlite)?;
    bind(&mut stmt, args)?;
    let mut rows = stmt.raw_query();
    let mut out = Vec::new();
    while let Some(row) = rows.next().map_err(from_rusqlite)? {
        out.push(map(row)?);
    }
    Ok(out)
}

/// The first row of `sql` with `args`, if any, read by `map`.
pub(crate) fn first<T>(
    conn: &Connection,
    sql: &str,
    args: &[&dyn ToSql],
    map: impl FnOnce(&Row<'_>) -> Result<T>,
) -> Result<Option<T>> {
    let mut stmt = conn.prepare_cached(sql).map_err(from_rusqlite)?;
    bind(&mut stmt, args)?;
    let mut rows = stmt.raw_query();
    rows.next().map_err(from_rusqlite)?.map(map).transpose()
}

/// A list statement's arguments for rusqlite, in placeholder order.
pub(crate) fn list_args(args: &[Bind]) -> Vec<&dyn ToSql> {
    args.iter()
        .map(|bind| -> &dyn ToSql {
            match bind {
                Bind::Text(s) => s,
                Bind::Stamp(t) => t,
                Bind::Rank(r) => r,
                Bind::Int(n) => n,
            }
        })
        .collect()
}
