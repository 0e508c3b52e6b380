//! The PostgreSQL backend: one pool, TLS through rustls (so `sslmode=require` URLs such as Neon's
//! work), statements prepared once per connection and cached.

use std::str::FromStr;

use async_trait::async_trait;
use sqlx::postgres::{PgArguments, PgConnectOptions, PgPool, PgPoolOptions, PgRow};
use sqlx::{Postgres, Row};

use super::sql::{Db, Value, exec_impls};
use crate::error::{Error, Result};
use crate::model::{Priority, Task};
use crate::options::StoreOptions;

exec_impls!(Postgres, bind, decode);

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

fn decode(row: &PgRow) -> sqlx::Result<Task> {
    let rank: i16 = row.try_get(5)?;
    Ok(Task {
        id: row.try_get(0)?,
        user_id: row.try_get(1)?,
        title: row.try_get(2)?,
        description: row.try_get(3)?,
        completed: row.try_get(4)?,
        priority: Priority::from_rank(rank).ok_or_else(|| sqlx::Error::ColumnDecode {
            index: "priority".into(),
            source: format!("unknown priority rank {rank}").into(),
        })?,
        due_date: row.try_get(6)?,
        created_at: row.try_get(7)?,
        updated_at: row.try_get(8)?,
        version: row.try_get(9)?,
    })
}

/// The PostgreSQL backend.
pub(crate) struct PgDb {
    pool: PgPool,
}

impl PgDb {
    pub(crate) async fn open(url: &str, options: &StoreOptions) -> Result<Self> {
        let connect = PgConnectOptions::from_str(url)
            .map_err(|e| Error::Config(format!("invalid PostgreSQL URL: {e}")))?
            .application_name(options.application_name.as_deref().unwrap_or("todo"))
            .statement_cache_capacity(256);
        let pool = PgPoolOptions::new()
            .max_connections(options.max_connections.unwrap_or(16).max(1))
            // sqlx pings every connection it takes from the pool by default: one extra round
            // trip per query. A dead connection instead fails its query (503) and is discarded,
            // and the next one is fresh, so recovery after a database restart is automatic.
            .test_before_acquire(false)
            .acquire_timeout(options.acquire_timeout)
            .connect_with(connect)
            .await?;
        sqlx::migrate!("./migrations/postgres").run(&pool).await?;
        Ok(Self { pool })
    }
}

#[async_trait]
impl Db for PgDb {
    type Conn<'a> = PoolExec<'a>;
    type Tx = TxExec;
    const POSITION_FN: &'static str = "strpos";
    const NAME: &'static str = "postgres";

    fn reader(&self) -> PoolExec<'_> {
        PoolExec(&self.pool)
    }

    fn writer(&self) -> PoolExec<'_> {
        PoolExec(&self.pool)
    }

    async fn begin_write(&self) -> sqlx::Result<TxExec> {
        Ok(TxExec(self.pool.begin().await?))
    }

    async fn ping(&self) -> sqlx::Result<()> {
        sqlx::query("select 1").execute(&self.pool).await?;
        Ok(())
    }

    async fn close(&self) {
        self.pool.close().await;
    }
}
