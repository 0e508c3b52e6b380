//! The connection pool both backends use: deadpool around plain sqlx connections.
//!
//! sqlx's own pool pings every connection it takes back (one extra round trip to PostgreSQL, or
//! one extra trip through SQLite's worker thread, per query), and 0.8 has no switch for it. Here
//! a connection is checked only when it has sat idle ([`IDLE_BEFORE_CHECK`]), which is when a
//! server-side timeout or a restart may have closed it; a connection whose statement failed with
//! an I/O or protocol error is discarded instead of going back ([`settle`]). Transactions are
//! plain `begin`/`commit` on one pooled connection ([`Tx`]); one dropped unfinished is rolled
//! back before its connection is reused.

use std::time::{Duration, Instant};

use deadpool::managed::{self, Metrics, Object, PoolBuilder, PoolError, QueueMode, RecycleResult};
use sqlx::{ConnectOptions, Connection, Executor};

use crate::error::Error;

/// A connection idle for this long is pinged before it is handed out again.
pub(crate) const IDLE_BEFORE_CHECK: Duration = Duration::from_secs(5);

/// How long [`Pool::close`] waits for connections still in use.
const CLOSE_WAIT: Duration = Duration::from_secs(5);

/// Opens and checks connections of one kind.
pub(crate) struct Manager<C: Connection> {
    options: C::Options,
}

impl<C: Connection> managed::Manager for Manager<C> {
    type Type = C;
    type Error = sqlx::Error;

    async fn create(&self) -> sqlx::Result<C> {
        self.options.connect().await
    }

    async fn recycle(&self, conn: &mut C, metrics: &Metrics) -> RecycleResult<sqlx::Error> {
        if metrics.last_used() >= IDLE_BEFORE_CHECK {
            conn.ping().await?;
        }
        Ok(())
    }
}

/// A pool of connections of one kind.
pub(crate) struct Pool<C: Connection> {
    inner: managed::Pool<Manager<C>>,
    /// Whether statements may be named and kept on the connection (sqlx's `persistent`):
    /// `false` behind a transaction pooler, where the next transaction may run on another
    /// server session ([`crate::Pooler::Transaction`]).
    persistent: bool,
}

impl<C: Connection> Clone for Pool<C> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            persistent: self.persistent,
        }
    }
}

/// A connection taken from a [`Pool`]; it goes back when dropped.
pub(crate) type Conn<C> = Object<Manager<C>>;

impl<C: Connection> Pool<C> {
    /// A pool of at most `max` connections opened with `options`; taking one waits at most
    /// `wait` (for a free connection, and again for a new one to open).
    pub(crate) fn new(options: C::Options, max: u32, wait: Duration) -> Result<Self, Error> {
        let builder = managed::Pool::builder(Manager { options })
            .create_timeout(Some(wait))
            .recycle_timeout(Some(wait));
        build(builder, max, wait).map(|inner| Self {
            inner,
            persistent: true,
        })
    }

    /// This pool with statements that are never named nor kept on a connection (sqlx's
    /// `persistent(false)`), for a transaction pooler: see [`Pool::persistent`].
    pub(crate) fn unnamed(self) -> Self {
        Self {
            persistent: false,
            ..self
        }
    }

    /// Whether statements on this pool's connections may be prepared once, named, and reused
    /// (`true`), or must be unnamed and parsed again in the transaction that runs them (`false`,
    /// behind a transaction pooler). Every statement given to sqlx on these connections is
    /// marked with `.persistent(pool.persistent())`.
    pub(crate) fn persistent(&self) -> bool {
        self.persistent
    }

    /// Takes a connection, opening one if none is free and the pool is not full;
    /// [`Error::Unavailable`] when none comes free in time, none can be opened, or the pool is
    /// closed.
    pub(crate) async fn get(&self) -> Result<Conn<C>, Error> {
        self.inner.get().await.map_err(unavailable)
    }

    /// Closes idle connections cleanly, waits (a bounded time) for those in use to come back and
    /// closes them too; afterwards every [`Pool::get`] fails with `PoolClosed`.
    pub(crate) async fn close(&self) {
        let deadline = Instant::now() + CLOSE_WAIT;
        loop {
            for conn in self.inner.retain(|_, _| false).removed {
                let _ = conn.close().await;
            }
            if self.inner.status().size == 0 || Instant::now() >= deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        self.inner.close();
    }
}

/// Finishes a deadpool of at most `max` objects, most recently returned first, where taking one
/// waits at most `wait` for a free one (shared by this pool and SQLite's rusqlite readers).
pub(crate) fn build<M: managed::Manager>(
    builder: PoolBuilder<M>,
    max: u32,
    wait: Duration,
) -> Result<managed::Pool<M>, Error> {
    builder
        .max_size(usize::try_from(max.max(1)).unwrap_or(usize::MAX))
        .queue_mode(QueueMode::Lifo)
        .wait_timeout(Some(wait))
        .runtime(deadpool::Runtime::Tokio1)
        .build()
        .map_err(|e| Error::Config(e.to_string()))
}

/// A failure to take an object from a deadpool: the database is unavailable (no object came
/// free in time, none could be opened, or the pool is closed).
pub(crate) fn unavailable<E: std::error::Error + Send + Sync + 'static>(e: PoolError<E>) -> Error {
    Error::Unavailable(Box::new(e))
}

/// Returns `conn` to its pool, unless it is `broken`, in which case it is dropped (and the pool
/// opens a fresh one when one is needed).
pub(crate) fn settle<C: Connection>(conn: Conn<C>, broken: bool) {
    if broken {
        drop(Object::take(conn));
    }
}

/// Returns `conn` to its pool after `result`, unless the backend's `breaks` says the error
/// broke the connection, and maps the error with the backend's `from_sqlx`.
pub(crate) fn settled<C: Connection, T>(
    conn: Conn<C>,
    result: sqlx::Result<T>,
    breaks: fn(&sqlx::Error) -> bool,
    from_sqlx: fn(sqlx::Error) -> Error,
) -> Result<T, Error> {
    settle(conn, result.as_ref().err().is_some_and(breaks));
    result.map_err(from_sqlx)
}

/// A write transaction on one pooled connection. It holds the connection from before `begin` is
/// sent until `commit` has succeeded; leaving any other way (an error, or the caller's future
/// dropped mid-statement, mid-`begin` or mid-`commit`) rolls back in the background before the
/// connection can be taken again, and a connection whose rollback fails is closed instead. A
/// `rollback` where no transaction is open is harmless on both backends.
pub(crate) struct Tx<C>
where
    C: Connection + 'static,
    for<'c> &'c mut C: Executor<'c, Database = C::Database>,
{
    /// `None` once committed.
    conn: Option<Conn<C>>,
    /// The pool's [`Pool::persistent`].
    persistent: bool,
    /// The backend's error mapping.
    from_sqlx: fn(sqlx::Error) -> Error,
}

impl<C> Tx<C>
where
    C: Connection + 'static,
    for<'c> &'c mut C: Executor<'c, Database = C::Database>,
{
    /// Takes a connection and runs `begin` (the backend's begin statement) on it.
    pub(crate) async fn begin(
        pool: &Pool<C>,
        begin: &'static str,
        from_sqlx: fn(sqlx::Error) -> Error,
    ) -> Result<Self, Error> {
        let mut tx = Self {
            conn: Some(pool.get().await?),
            persistent: pool.persistent(),
            from_sqlx,
        };
        tx.conn()?.execute(begin).await.map_err(from_sqlx)?;
        Ok(tx)
    }

    /// Whether statements in this transaction may be named and kept ([`Pool::persistent`]):
    /// each statement run on [`Tx::conn`] is marked `.persistent(tx.persistent())`.
    pub(crate) fn persistent(&self) -> bool {
        self.persistent
    }

    /// The transaction's connection (only `commit`, which consumes the transaction, and `drop`
    /// take it out).
    pub(crate) fn conn(&mut self) -> Result<&mut C, Error> {
        self.conn
            .as_deref_mut()
            .ok_or_else(|| Error::Storage("the transaction has ended".into()))
    }

    /// Commits. On failure (or if this future is dropped) the connection stays in `self`, and
    /// dropping `self` rolls back whatever is still open.
    pub(crate) async fn commit(mut self) -> Result<(), Error> {
        let from_sqlx = self.from_sqlx;
        self.conn()?.execute("commit").await.map_err(from_sqlx)?;
        if let Some(conn) = self.conn.take() {
            settle(conn, false);
        }
        Ok(())
    }
}

impl<C> Drop for Tx<C>
where
    C: Connection + 'static,
    for<'c> &'c mut C: Executor<'c, Database = C::Database>,
{
    fn drop(&mut self) {
        let Some(mut conn) = self.conn.take() else {
            return;
        };
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(async move {
                    let result = (&mut *conn).execute("rollback").await;
                    settle(conn, result.is_err());
                });
            }
            // No runtime (it is shutting down): the connection cannot be rolled back here, so
            // it must not be reused; closing it rolls back.
            Err(_) => drop(Object::take(conn)),
        }
    }
}
