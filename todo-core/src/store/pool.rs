//! The connection pool both backends use: deadpool around plain sqlx connections.
//!
//! sqlx's own pool pings every connection it takes back (one extra round trip to PostgreSQL, or
//! one extra trip through SQLite's worker thread, per query), and 0.8 has no switch for it. Here
//! a connection is checked only when it has sat idle ([`IDLE_BEFORE_CHECK`]), which is when a
//! server-side timeout or a restart may have closed it; a connection whose statement failed with
//! an I/O or protocol error is discarded instead of going back ([`settle`]). Transactions are
//! plain `begin`/`commit` on one pooled connection (`TxExec` in `store::sql`); one dropped
//! unfinished is rolled back before its connection is reused.

use std::time::{Duration, Instant};

use deadpool::managed::{self, Metrics, Object, PoolBuilder, PoolError, QueueMode, RecycleResult};
use sqlx::{ConnectOptions, Connection};

use crate::error::is_connection_lost;

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
pub(crate) struct Pool<C: Connection>(managed::Pool<Manager<C>>);

impl<C: Connection> Clone for Pool<C> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

/// A connection taken from a [`Pool`]; it goes back when dropped.
pub(crate) type Conn<C> = Object<Manager<C>>;

impl<C: Connection> Pool<C> {
    /// A pool of at most `max` connections opened with `options`; taking one waits at most
    /// `wait` (for a free connection, and again for a new one to open).
    pub(crate) fn new(options: C::Options, max: u32, wait: Duration) -> sqlx::Result<Self> {
        let builder = managed::Pool::builder(Manager { options })
            .create_timeout(Some(wait))
            .recycle_timeout(Some(wait));
        build(builder, max, wait).map(Self)
    }

    /// Takes a connection, opening one if none is free and the pool is not full.
    pub(crate) async fn get(&self) -> sqlx::Result<Conn<C>> {
        self.0.get().await.map_err(|e| pool_error(e, |e| e))
    }

    /// Closes idle connections cleanly, waits (a bounded time) for those in use to come back and
    /// closes them too; afterwards every [`Pool::get`] fails with `PoolClosed`.
    pub(crate) async fn close(&self) {
        let deadline = Instant::now() + CLOSE_WAIT;
        loop {
            for conn in self.0.retain(|_, _| false).removed {
                let _ = conn.close().await;
            }
            if self.0.status().size == 0 || Instant::now() >= deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        self.0.close();
    }
}

/// Finishes a deadpool of at most `max` objects, most recently returned first, where taking one
/// waits at most `wait` for a free one (shared by this pool and SQLite's rusqlite readers).
pub(crate) fn build<M: managed::Manager>(
    builder: PoolBuilder<M>,
    max: u32,
    wait: Duration,
) -> sqlx::Result<managed::Pool<M>> {
    builder
        .max_size(usize::try_from(max.max(1)).unwrap_or(usize::MAX))
        .queue_mode(QueueMode::Lifo)
        .wait_timeout(Some(wait))
        .runtime(deadpool::Runtime::Tokio1)
        .build()
        .map_err(|e| sqlx::Error::Configuration(e.to_string().into()))
}

/// A failure to take an object from a deadpool, in sqlx's terms; `backend` converts the
/// manager's own error.
pub(crate) fn pool_error<E: std::fmt::Display>(
    e: PoolError<E>,
    backend: impl FnOnce(E) -> sqlx::Error,
) -> sqlx::Error {
    match e {
        PoolError::Backend(e) => backend(e),
        PoolError::Timeout(_) => sqlx::Error::PoolTimedOut,
        PoolError::Closed => sqlx::Error::PoolClosed,
        other => sqlx::Error::Configuration(other.to_string().into()),
    }
}

/// Whether an error leaves the connection unusable (so it must not go back to the pool): I/O,
/// TLS, protocol and driver failures, and PostgreSQL's connection-level errors (class 08, and
/// 57P: the server is shutting the session down, as `pg_terminate_backend` or a restart do).
/// Anything else (a constraint, a bad value, a decode error) leaves it usable, which matters for
/// an in-memory SQLite database: it lives only as long as its one connection.
pub(crate) fn is_broken(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => db.code().is_some_and(|code| is_connection_lost(&code)),
        _ => false,
    }
}

/// Returns `conn` to its pool, unless `error` says it is broken, in which case it is dropped
/// (and the pool opens a fresh one when one is needed).
pub(crate) fn settle<C: Connection>(conn: Conn<C>, error: Option<&sqlx::Error>) {
    if error.is_some_and(is_broken) {
        drop(Object::take(conn));
    }
}
