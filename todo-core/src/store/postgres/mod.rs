//! The PostgreSQL backend: a pool for writes and transactions, reads pipelined on a few shared
//! connections (`postgres/pipeline.rs`), TLS through rustls (so `sslmode=require` URLs such as
//! Neon's work), statements prepared once per connection and cached.

use std::str::FromStr;

use async_trait::async_trait;
use sqlx::postgres::{PgArguments, PgConnectOptions, PgRow};
use sqlx::{Postgres, Row};

use super::sql::{Db, Exec, Read as _, Value, exec_impls, read_enum, unknown_rank};
use crate::error::{Error, Result};
use crate::model::{Priority, Task};
use crate::options::StoreOptions;

mod pipeline;

exec_impls!(Postgres, bind, decode);

/// Runs reads on the pipelined connections, or on the pool.
pub(crate) enum PgReader<'a> {
    Pool(PoolExec<'a>),
    Pipe(pipeline::PipeReader<'a>),
}

read_enum!(PgReader { Pool, Pipe });

fn bind<'q>(
    q: sqlx::query::Query<'q, Postgres, PgArguments>,
    v: Value<'q>,
) -> sqlx::query::Query<'q, Postgres, PgArguments> {
    match v {
        Value::I64(x) => q.bind(x),
        Value::OptI64(x) => q.bind(x),
        Value::I16(x) => q.bind(x),
        Value::OptI16(x) => q.bind(x),
        Value::Bool(x) => q.bind(x),
        Value::OptBool(x) => q.bind(x),
        Value::Text(x) => q.bind(x),
        Value::OptText(x) => q.bind(x),
        Value::Time(t) => q.bind(t),
        Value::OptTime(t) => q.bind(t),
    }
}

/// Reads a task row. The columns' types are fixed by our own migrations, so sqlx's per-column
/// type-compatibility check (a tenth of a list's decode time) is skipped; values still decode
/// with their own checks.
fn decode(row: &PgRow) -> sqlx::Result<Task> {
    let rank: i16 = row.try_get_unchecked(5)?;
    Ok(Task {
        id: row.try_get_unchecked(0)?,
        user_id: row.try_get_unchecked(1)?,
        title: row.try_get_unchecked(2)?,
        description: row.try_get_unchecked(3)?,
        completed: row.try_get_unchecked(4)?,
        priority: Priority::from_rank(rank).ok_or_else(|| unknown_rank(rank))?,
        due_date: row.try_get_unchecked(6)?,
        created_at: row.try_get_unchecked(7)?,
        updated_at: row.try_get_unchecked(8)?,
        version: row.try_get_unchecked(9)?,
    })
}

/// The PostgreSQL backend.
pub(crate) struct PgDb {
    pool: Pool,
    /// Where reads go, when the connection settings allow it (see [`pipeline::Readers::new`]).
    readers: Option<pipeline::Readers>,
}

impl PgDb {
    pub(crate) async fn open(url: &str, options: &StoreOptions) -> Result<Self> {
        let connect = PgConnectOptions::from_str(url)
            .map_err(|e| Error::Config(format!("invalid PostgreSQL URL: {e}")))?
            .application_name(options.application_name.as_deref().unwrap_or("todo"))
            .statement_cache_capacity(256);
        // Connections are not pinged when taken or returned (see `store::pool`): a dead one
        // fails its statement (503) and is discarded, and the next one is fresh, so recovery
        // after a database restart is automatic.
        let pool = Pool::new(
            connect.clone(),
            options.max_connections.unwrap_or(16),
            options.acquire_timeout,
        )?;
        let mut conn = pool.get().await?;
        sqlx::migrate!("./migrations/postgres")
            .run(&mut *conn)
            .await?;
        drop(conn);
        let readers = open_readers(&connect, options).await;
        Ok(Self { pool, readers })
    }
}

/// The pipelined readers `options` ask for (by default one connection per CPU, 2 to 8), or
/// `None` to read on the pool: when turned off, when the URL needs something only sqlx does,
/// or when a first pipelined connection cannot be opened although the pool's could (a setting
/// the two drivers read differently): reads then stay on the pool rather than fail.
async fn open_readers(
    connect: &PgConnectOptions,
    options: &StoreOptions,
) -> Option<pipeline::Readers> {
    let connections = match options.read_connections {
        Some(0) => return None,
        Some(n) => n as usize,
        None => std::thread::available_parallelism()
            .map_or(2, std::num::NonZeroUsize::get)
            .clamp(2, 8),
    };
    let Some(readers) = pipeline::Readers::new(connect, connections, options.acquire_timeout)
    else {
        tracing::info!("reads run on the pool: the URL's TLS settings need sqlx");
        return None;
    };
    match pipeline::PipeReader(&readers)
        .int("select 1::bigint", &[])
        .await
    {
        Ok(_) => Some(readers),
        Err(e) => {
            tracing::warn!(error = %e, "reads run on the pool: a pipelined connection could not be opened");
            readers.close();
            None
        }
    }
}

#[async_trait]
impl Db for PgDb {
    type Reader<'a> = PgReader<'a>;
    type Conn<'a> = PoolExec<'a>;
    type Tx = TxExec;
    const POSITION_FN: &'static str = "strpos";
    const NAME: &'static str = "postgres";
    /// A transaction-scoped advisory lock on the user's id (the first key, `'todo'` as an
    /// integer, keeps it apart from other applications' advisory locks). Users whose ids hash
    /// alike share a lock, which only makes them take turns.
    const USER_LOCK: Option<&'static str> =
        Some("select pg_advisory_xact_lock(1953457263, hashtext($1))");

    fn reader(&self) -> PgReader<'_> {
        match &self.readers {
            Some(readers) => PgReader::Pipe(pipeline::PipeReader(readers)),
            None => PgReader::Pool(PoolExec(&self.pool)),
        }
    }

    fn writer(&self) -> PoolExec<'_> {
        PoolExec(&self.pool)
    }

    async fn begin_write(&self) -> sqlx::Result<TxExec> {
        Ok(TxExec::begin(&self.pool, "begin").await?)
    }

    async fn ping(&self) -> sqlx::Result<()> {
        PoolExec(&self.pool)
            .execute("select 1", &[])
            .await
            .map(drop)
    }

    async fn close(&self) {
        if let Some(readers) = &self.readers {
            readers.close();
        }
        self.pool.close().await;
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;

    use super::*;
    use crate::store::sql::Commit;

    async fn db() -> Option<PgDb> {
        let Ok(url) = std::env::var("TODO_TEST_DATABASE_URL") else {
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED: TODO_TEST_DATABASE_URL is not set, PostgreSQL pool test not run"
            );
            return None;
        };
        // One connection serves reads and writes alike: what a read sees is what the
        // connection a dropped transaction used is left with.
        let options = StoreOptions {
            max_connections: Some(1),
            read_connections: Some(0),
            ..StoreOptions::default()
        };
        Some(PgDb::open(&url, &options).await.unwrap())
    }

    const COUNT: &str = "select count(*) from idempotency_keys where user_id = $1";

    /// How many idempotency keys `user` holds, as the store reads them.
    async fn claims(db: &PgDb, user: &str) -> Option<i64> {
        db.reader().int(COUNT, &[Value::Text(user)]).await.unwrap()
    }

    /// Forgets `user`'s idempotency keys.
    async fn clear(db: &PgDb, user: &str) {
        db.writer()
            .execute(
                "delete from idempotency_keys where user_id = $1",
                &[Value::Text(user)],
            )
            .await
            .unwrap();
    }

    /// With one connection, the next statement runs only after the dropped transaction's
    /// rollback gave it back: it must not see the dropped insert, and a new transaction begins.
    #[tokio::test]
    async fn a_transaction_dropped_unfinished_is_rolled_back_before_its_connection_is_reused() {
        let Some(db) = db().await else { return };
        let user = format!("pool-test-{}", std::process::id());
        let claim = "insert into idempotency_keys (user_id, key, fingerprint, created_at) values ($1, 'k', 'f', now())";
        clear(&db, &user).await;

        let mut tx = db.begin_write().await.unwrap();
        assert_eq!(tx.execute(claim, &[Value::Text(&user)]).await.unwrap(), 1);
        drop(tx);
        assert_eq!(claims(&db, &user).await, Some(0));

        let mut tx = db.begin_write().await.unwrap();
        assert_eq!(tx.execute(claim, &[Value::Text(&user)]).await.unwrap(), 1);
        tx.commit().await.unwrap();
        assert_eq!(claims(&db, &user).await, Some(1));
        db.close().await;
    }

    /// Callers that give up at every stage of a transaction leave nothing behind: the one
    /// connection always comes back out of any transaction, nothing they wrote is committed,
    /// and the next transaction begins and commits normally.
    #[tokio::test]
    async fn transactions_abandoned_at_any_point_leave_nothing_behind() {
        let Some(db) = db().await else { return };
        let user = format!("pool-abandon-{}", std::process::id());
        let claim = "insert into idempotency_keys (user_id, key, fingerprint, created_at) values ($1, $2, 'f', now())";
        for i in 0..200u64 {
            let key = format!("k{i}");
            let attempt = async {
                let mut tx = db.begin_write().await?;
                tx.execute(claim, &[Value::Text(&user), Value::Text(&key)])
                    .await?;
                Ok::<_, sqlx::Error>(tx)
            };
            let give_up = async {
                for _ in 0..i % 50 {
                    tokio::task::yield_now().await;
                }
            };
            tokio::select! {
                biased;
                tx = attempt => drop(tx),
                () = give_up => {}
            }
        }
        // A plain write on the same connection commits by itself: another session sees it (it
        // would not if the connection had been left inside an abandoned transaction).
        db.writer()
            .execute(claim, &[Value::Text(&user), Value::Text("plain")])
            .await
            .unwrap();
        let url = std::env::var("TODO_TEST_DATABASE_URL").unwrap();
        let other = sqlx::PgPool::connect(&url).await.unwrap();
        let seen: i64 = sqlx::query_scalar(COUNT)
            .bind(&user)
            .fetch_one(&other)
            .await
            .unwrap();
        assert_eq!(seen, 1, "only the plain write is committed");
        let mut tx = db.begin_write().await.unwrap();
        tx.execute(claim, &[Value::Text(&user), Value::Text("last")])
            .await
            .unwrap();
        tx.commit().await.unwrap();
        assert_eq!(claims(&db, &user).await, Some(2));
        clear(&db, &user).await;
        db.close().await;
    }
}
