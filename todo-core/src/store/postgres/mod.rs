//! The PostgreSQL backend: a pool for writes and transactions, reads pipelined on a few shared
//! connections (`postgres/pipeline.rs`), TLS through rustls (so `sslmode=require` URLs such as
//! Neon's work), statements prepared once per connection and cached; behind a transaction
//! pooler ([`Pooler::Transaction`]) statements unnamed instead, each in a transaction.

use std::str::FromStr;

use async_trait::async_trait;
use sqlx::Postgres;
use sqlx::postgres::{PgArguments, PgConnectOptions, PgConnection, PgRow};

use super::common::{self, Common};
use super::completing;
use super::keyed::{self, KeyedCreate};
use super::pool::{Pool, Tx, settle, settled};
use super::statements::{self, Stamp, insert_args, patch_args};
use super::{ListCounts, TAGS_LISTED_MAX, TagCount, TaskStats, TaskStore, retag};
use crate::accounts::{Account, AccountStore, Email, Registration, new_user_id};
use crate::error::{Error, Result};
use crate::model::{
    Created, IdempotencyKey, ListQuery, NewTask, Page, Tag, Task, TaskId, TaskPatch, now,
};
use crate::options::{Pooler, StoreOptions};
use crate::principal::Principal;
use error::{breaks_connection, from_migrate, from_sqlx, statements_lost_recently};
use group_commit::GroupInserts;
use pipeline::PipelinedReads;

pub(crate) mod error;
mod group_commit;
mod pipeline;
mod row;

/// The backend's name, for logs and diagnostics.
const NAME: &str = "postgres";

/// PostgreSQL's substring-position function, for list searches.
const POSITION_FN: &str = "strpos";

/// How many connections group-commit creates ([`GroupInserts`]): two, so one batch's commit
/// flush overlaps the next batch's inserts.
const INSERT_CONNECTIONS: usize = 2;

/// A transaction-scoped advisory lock on the user's id `$1` (the first key, `'todo'` as an
/// integer, keeps it apart from other applications' advisory locks): a user's quota-checked
/// writes that take it wait for each other, so a quota counted inside them cannot be overshot
/// by concurrent creates. Users whose ids hash alike share a lock, which only makes them take
/// turns.
const USER_LOCK: &str = "select pg_advisory_xact_lock(1953457263, hashtext($1))";

/// A sqlx statement with its arguments.
type Query<'q> = sqlx::query::Query<'q, Postgres, PgArguments>;

/// The PostgreSQL store.
pub(crate) struct PgStore {
    /// Writes, transactions, and reads when they are not pipelined.
    pool: Pool<PgConnection>,
    /// Where reads go, when the connection settings allow it (see [`PipelinedReads::new`]).
    reads: Option<PipelinedReads>,
    /// Creates without a quota or an idempotency key, group-committed on connections of their
    /// own; present exactly when `reads` is (same settings). Otherwise they run on the pool.
    inserts: Option<GroupInserts>,
    /// Cursors, hashing, turns and quotas.
    common: Common,
    /// What sits between the store and the database.
    pooler: Pooler,
}

impl PgStore {
    /// Opens the database at `url`, applies the migrations, and opens the pipelined reads
    /// `options` ask for; list cursors are signed with `cursor_secret`.
    pub(crate) async fn open(
        url: &str,
        cursor_secret: Vec<u8>,
        options: &StoreOptions,
    ) -> Result<Self> {
        let pooler = options.pooler_for(url);
        tracing::debug!(pooler = pooler.as_str(), "PostgreSQL pooler setting");
        let connect = connect_options(url, options)?;
        let connect = match pooler {
            Pooler::None => connect.statement_cache_capacity(256),
            // Nothing named, nothing kept (every statement is also marked not persistent), and
            // no `extra_float_digits` startup parameter, which PgBouncer refuses unless told to
            // ignore it (no column here is a float).
            Pooler::Transaction => connect.statement_cache_capacity(0).extra_float_digits(None),
        };
        // Connections are not pinged when taken or returned (see `store::pool`): a dead one
        // fails its statement (503) and is discarded, and the next one is fresh, so recovery
        // after a database restart is automatic.
        let pool = Pool::new(
            connect.clone(),
            options.max_connections.unwrap_or(16),
            options.acquire_timeout,
        )?;
        let pool = match pooler {
            Pooler::None => pool,
            Pooler::Transaction => pool.unnamed(),
        };
        migrate(&pool, pooler, options).await?;
        let unnamed = pooler == Pooler::Transaction;
        let reads = open_reads(&connect, options, unnamed).await;
        let inserts = match &reads {
            Some(_) => pipeline::config(&connect, false).map(|(config, tls)| {
                GroupInserts::start(
                    config,
                    tls,
                    INSERT_CONNECTIONS,
                    options.acquire_timeout,
                    unnamed,
                )
            }),
            None => None,
        };
        Ok(Self {
            pool,
            reads,
            inserts,
            // A quota takes the user's advisory lock ([`USER_LOCK`]).
            common: Common::new(cursor_secret, options, true),
            pooler,
        })
    }

    /// Whether statements run unnamed, each inside a transaction ([`Pooler::Transaction`]).
    fn unnamed(&self) -> bool {
        !self.pool.persistent()
    }

    /// Runs `query` alone in a transaction of its own (behind a transaction pooler, where a
    /// statement outside one may be parsed on one server session and bound on another): the
    /// rows it returned.
    async fn in_transaction(&self, query: Query<'_>) -> Result<Vec<PgRow>> {
        let mut tx = self.begin().await?;
        let rows = query
            .persistent(false)
            .fetch_all(tx.conn()?)
            .await
            .map_err(from_sqlx)?;
        tx.commit().await?;
        Ok(rows)
    }

    /// At most one row of `query`, run on a pooled connection.
    async fn row(&self, query: Query<'_>) -> Result<Option<PgRow>> {
        if self.unnamed() {
            return Ok(self.in_transaction(query).await?.into_iter().next());
        }
        let mut conn = self.pool.get().await?;
        let result = query.fetch_optional(&mut *conn).await;
        settled(conn, result, breaks_connection, from_sqlx)
    }

    /// Every row of `query`, run on a pooled connection.
    async fn rows(&self, query: Query<'_>) -> Result<Vec<PgRow>> {
        if self.unnamed() {
            return self.in_transaction(query).await;
        }
        let mut conn = self.pool.get().await?;
        let result = query.fetch_all(&mut *conn).await;
        settled(conn, result, breaks_connection, from_sqlx)
    }

    /// Runs `query` on a pooled connection: the rows it affected.
    async fn execute(&self, query: Query<'_>) -> Result<u64> {
        if self.unnamed() {
            let mut tx = self.begin().await?;
            let done = query
                .persistent(false)
                .execute(tx.conn()?)
                .await
                .map_err(from_sqlx)?;
            tx.commit().await?;
            return Ok(done.rows_affected());
        }
        let mut conn = self.pool.get().await?;
        let result = query.execute(&mut *conn).await;
        settled(conn, result, breaks_connection, from_sqlx).map(|done| done.rows_affected())
    }

    /// A write transaction on a pooled connection.
    async fn begin(&self) -> Result<Tx<PgConnection>> {
        Tx::begin(&self.pool, "begin", from_sqlx).await
    }

    /// Every row of the read `query()`, on a pooled connection (reads not pipelined). A read is
    /// safe to repeat, so one whose connection turns out to be broken (closed by a database
    /// restart or failover while it sat in the pool) runs once more on another: the first read
    /// after a restart succeeds.
    async fn read<'q>(&self, query: impl Fn() -> Query<'q>) -> Result<Vec<PgRow>> {
        if self.unnamed() {
            return match self.in_transaction(query()).await {
                Err(Error::Unavailable(_)) => self.in_transaction(query()).await,
                result => result,
            };
        }
        let mut conn = self.pool.get().await?;
        match query().fetch_all(&mut *conn).await {
            Err(e) if breaks_connection(&e) => {
                settle(conn, true);
                self.rows(query()).await
            }
            result => settled(conn, result, breaks_connection, from_sqlx),
        }
    }

    /// Task `id` of `user`: pipelined, or on the pool.
    async fn find(&self, id: TaskId, user: &str) -> Result<Option<Task>> {
        if let Some(reads) = &self.reads {
            return reads.task(id, user).await;
        }
        let rows = self
            .read(|| sqlx::query(&statements::GET_TASK).bind(id).bind(user))
            .await?;
        rows.first().map(row::task).transpose()
    }

    /// The version of task `id` of `user`: pipelined, or on the pool.
    async fn version(&self, id: TaskId, user: &str) -> Result<Option<i64>> {
        if let Some(reads) = &self.reads {
            return reads.version(id, user).await;
        }
        let rows = self
            .read(|| sqlx::query(statements::GET_VERSION).bind(id).bind(user))
            .await?;
        rows.first().map(|r| row::Columns::column(r, 0)).transpose()
    }

    /// The account of `email`: pipelined, or on the pool.
    async fn account(&self, email: &str) -> Result<Option<common::AccountRow>> {
        if let Some(reads) = &self.reads {
            return reads.account(email).await;
        }
        let rows = self
            .read(|| sqlx::query(statements::GET_ACCOUNT_BY_EMAIL).bind(email))
            .await?;
        rows.first().map(row::account).transpose()
    }

    /// The rows of the list page `list`: pipelined, or on the pool.
    async fn page_rows(&self, list: &statements::ListSql) -> Result<Vec<Task>> {
        if let Some(reads) = &self.reads {
            return reads.list(list).await;
        }
        let args = statements::to_sqlx::<PgArguments>(&list.args)?;
        let rows = self
            .read(|| sqlx::query_with(&list.text, args.clone()))
            .await?;
        rows.iter().map(row::task).collect()
    }

    /// Rewrites every task of the user that carries `from` in one statement
    /// ([`retag::PG_RETAG`]), on one of the user's turns: how many changed;
    /// [`Error::NotFound`] when none carries it.
    async fn retag(&self, who: &Principal, from: &Tag, to: Option<&Tag>) -> Result<u64> {
        let user = who.user_id().as_str();
        let _turn = self.common.tag_turn(user).await?;
        let args = retag::args::<PgArguments>(user, from, to, now(), 0, None)?;
        match self
            .execute(sqlx::query_with(retag::PG_RETAG, args))
            .await?
        {
            0 => Err(Error::NotFound),
            changed => Ok(changed),
        }
    }

    /// Takes the user's advisory lock ([`USER_LOCK`]) inside `tx` when a quota is on, so the
    /// counts a quota checks cannot change until `tx` ends.
    async fn lock_user_for_quota(&self, tx: &mut Tx<PgConnection>, user: &str) -> Result<()> {
        if self.common.max_tasks.is_some() || self.common.max_keys.is_some() {
            lock_user(tx, user).await?;
        }
        Ok(())
    }

    /// The answer for a write that matched no row: the task is missing (or not this user's), or
    /// it exists at another version than expected.
    async fn missing_or_stale(&self, who: &Principal, id: TaskId, expected: Option<i64>) -> Error {
        match self.version(id, who.user_id().as_str()).await {
            Ok(current) => common::stale_or_missing(current, expected),
            Err(e) => e,
        }
    }

    /// The task a write returned as a row, or why it returned none.
    async fn written(
        &self,
        who: &Principal,
        id: TaskId,
        expected: Option<i64>,
        row: Option<PgRow>,
    ) -> Result<Task> {
        let task = row.as_ref().map(row::task).transpose()?;
        self.returned(who, id, expected, task).await
    }

    /// Runs `query`, a write that may complete a task, in a transaction with the task's next
    /// occurrence when it repeats ([`completing::write`]): the task it returned, if any. A
    /// concurrent completion of the same task waits for this one's row lock, then finds the
    /// task marked as having created its next occurrence and creates none.
    async fn write_completing(&self, query: Query<'_>) -> Result<Option<Task>> {
        let spawn = &statements::SPAWN_NEXT_MARKING;
        completing::write(self.begin().await?, query, spawn, row::task, from_sqlx).await
    }

    /// The task a write returned, or why it returned none.
    async fn returned(
        &self,
        who: &Principal,
        id: TaskId,
        expected: Option<i64>,
        task: Option<Task>,
    ) -> Result<Task> {
        match task {
            Some(task) => Ok(task),
            None => Err(self.missing_or_stale(who, id, expected).await),
        }
    }

    /// A create with an idempotency key ([`keyed::create`]): with a quota on, the user's
    /// quota-checked writes take turns, then the user's lock inside the transaction.
    async fn create_idempotent(
        &self,
        who: &Principal,
        task: &NewTask,
        key: &IdempotencyKey,
    ) -> Result<Created> {
        let user = who.user_id().as_str();
        let _turn = self.common.quota_turn(user).await?;
        let mut tx = self.begin().await?;
        self.lock_user_for_quota(&mut tx, user).await?;
        let create = KeyedCreate::new(&self.common, user, task, key);
        keyed::create(tx, create, row::KEYED, from_sqlx).await
    }
}

/// Takes the user's advisory lock ([`USER_LOCK`]) inside `tx`.
async fn lock_user(tx: &mut Tx<PgConnection>, user: &str) -> Result<()> {
    sqlx::query(USER_LOCK)
        .bind(user)
        .persistent(tx.persistent())
        .execute(tx.conn()?)
        .await
        .map_err(from_sqlx)?;
    Ok(())
}

/// The insert of `task` for `user` at `now`; with `max_tasks`, the one that inserts only while
/// the user has fewer tasks than that.
fn insert_query(
    user: &str,
    task: &NewTask,
    now: chrono::DateTime<chrono::Utc>,
    max_tasks: Option<u64>,
) -> Result<Query<'static>> {
    let args = insert_args::<PgArguments>(user, task, now, max_tasks)?;
    Ok(match max_tasks {
        None => sqlx::query_with(&statements::INSERT_TASK, args),
        Some(_) => sqlx::query_with(&statements::INSERT_TASK_WITHIN_QUOTA, args),
    })
}

/// Inserts `task` for `user` inside `tx`; with `max_tasks`, only while the user has fewer tasks
/// than that, counted by the insert statement itself.
async fn insert(
    tx: &mut Tx<PgConnection>,
    user: &str,
    task: &NewTask,
    now: chrono::DateTime<chrono::Utc>,
    max_tasks: Option<u64>,
) -> Result<Task> {
    let row = insert_query(user, task, now, max_tasks)?
        .persistent(tx.persistent())
        .fetch_optional(tx.conn()?)
        .await
        .map_err(from_sqlx)?;
    common::inserted(row.as_ref().map(row::task).transpose()?, max_tasks)
}

/// sqlx's settings for `url` (without the parameters only a pooler reads) and `options`.
fn connect_options(url: &str, options: &StoreOptions) -> Result<PgConnectOptions> {
    Ok(
        PgConnectOptions::from_str(&Pooler::strip_url_parameters(url))
            .map_err(|e| Error::Config(format!("invalid PostgreSQL URL: {e}")))?
            .application_name(options.application_name.as_deref().unwrap_or("todo")),
    )
}

/// The embedded migrations.
static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// Applies the migrations: on [`StoreOptions::direct_url`] when set, else on `pool` without a
/// transaction pooler. Behind one without a direct URL nothing can be migrated (sqlx's migrator
/// holds a session-level advisory lock, and its own statements are named): the store opens if
/// every migration is already applied, saying once what it cannot do, and fails with
/// [`Error::Config`] naming the fix if one is pending.
async fn migrate(pool: &Pool<PgConnection>, pooler: Pooler, options: &StoreOptions) -> Result<()> {
    use sqlx::{ConnectOptions as _, Connection as _};
    if let Some(direct) = &options.direct_url {
        let mut conn = connect_options(direct, options)?
            .connect()
            .await
            .map_err(|e| Error::Unavailable(Box::new(e)))?;
        let result = MIGRATOR.run(&mut conn).await.map_err(from_migrate);
        let _ = conn.close().await;
        return result;
    }
    if pooler == Pooler::None {
        let mut conn = pool.get().await?;
        return MIGRATOR.run(&mut *conn).await.map_err(from_migrate);
    }
    let pending = pending_migrations(pool).await?;
    if let Some(first) = pending.first() {
        return Err(Error::Config(format!(
            "{} migration(s) of the schema are pending (the first: {first}) and the database \
             URL goes through a pooler in transaction mode, where they cannot run (sqlx's \
             migrator holds a session-level lock): set a direct URL to the database \
             (DATABASE_DIRECT_URL; StoreOptions::direct_url), or apply them once with the \
             server pointed at the database directly",
            pending.len()
        )));
    }
    tracing::warn!(
        "behind a transaction pooler without a direct URL: the schema is up to date, but a \
         later version's migrations will not be able to run through the pooler (sqlx's \
         migrator holds a session-level lock); set DATABASE_DIRECT_URL to the database's direct \
         URL (Neon: the host without -pooler; Supabase: port 5432) to apply them at start"
    );
    Ok(())
}

/// The versions of the embedded migrations that the database has not applied successfully,
/// read through `pool` in a transaction of its own (no session needed).
async fn pending_migrations(pool: &Pool<PgConnection>) -> Result<Vec<i64>> {
    let mut tx = Tx::begin(pool, "begin", from_sqlx).await?;
    let exists: Option<String> =
        sqlx::query_scalar(r"select to_regclass('_sqlx_migrations')::text")
            .persistent(false)
            .fetch_one(tx.conn()?)
            .await
            .map_err(from_sqlx)?;
    let applied: Vec<i64> = match exists {
        Some(_) => sqlx::query_scalar(r"select version from _sqlx_migrations where success")
            .persistent(false)
            .fetch_all(tx.conn()?)
            .await
            .map_err(from_sqlx)?,
        None => Vec::new(),
    };
    tx.commit().await?;
    Ok(MIGRATOR
        .iter()
        .filter(|m| !m.migration_type.is_down_migration() && !applied.contains(&m.version))
        .map(|m| m.version)
        .collect())
}

/// The pipelined reads `options` ask for (by default one connection per CPU, 2 to 8), or
/// `None` to read on the pool: when turned off, when the URL needs something only sqlx does,
/// or when a first pipelined connection cannot be opened although the pool's could (a setting
/// the two drivers read differently): reads then stay on the pool rather than fail.
async fn open_reads(
    connect: &PgConnectOptions,
    options: &StoreOptions,
    unnamed: bool,
) -> Option<PipelinedReads> {
    let connections = match options.read_connections {
        Some(0) => return None,
        Some(n) => n as usize,
        None => std::thread::available_parallelism()
            .map_or(2, std::num::NonZeroUsize::get)
            .clamp(2, 8),
    };
    let Some(reads) = PipelinedReads::new(connect, connections, options.acquire_timeout, unnamed)
    else {
        tracing::info!("reads run on the pool: the URL's TLS settings need sqlx");
        return None;
    };
    match reads.probe().await {
        Ok(()) => Some(reads),
        Err(e) => {
            tracing::warn!(error = %e, "reads run on the pool: a pipelined connection could not be opened");
            reads.close();
            None
        }
    }
}

#[async_trait]
impl TaskStore for PgStore {
    #[tracing::instrument(level = "debug", skip_all, fields(user_id = %who.user_id(), backend = NAME))]
    async fn create(
        &self,
        who: &Principal,
        task: NewTask,
        idempotency_key: Option<&IdempotencyKey>,
    ) -> Result<Created> {
        let user = who.user_id().as_str();
        let task = match (idempotency_key, self.common.max_tasks) {
            (Some(key), _) => return self.create_idempotent(who, &task, key).await,
            // The count and the insert are one statement; that alone does not stop concurrent
            // creates of the user from overshooting, so they take turns on the user's lock.
            (None, Some(limit)) => {
                let _turn = self.common.quota_turn(user).await?;
                let mut tx = self.begin().await?;
                lock_user(&mut tx, user).await?;
                let task = insert(&mut tx, user, &task, now(), Some(limit)).await?;
                tx.commit().await?;
                task
            }
            (None, None) => match &self.inserts {
                Some(inserts) => {
                    let values = statements::InsertValues::new(user, &task, now())?;
                    inserts.insert(values).await?
                }
                None => {
                    let row = self.row(insert_query(user, &task, now(), None)?).await?;
                    common::inserted(row.as_ref().map(row::task).transpose()?, None)?
                }
            },
        };
        Ok(Created {
            task,
            replayed: false,
        })
    }

    #[tracing::instrument(level = "debug", skip_all, fields(user_id = %who.user_id(), task_id = id))]
    async fn get(&self, who: &Principal, id: TaskId) -> Result<Task> {
        self.find(id, who.user_id().as_str())
            .await?
            .ok_or(Error::NotFound)
    }

    #[tracing::instrument(level = "debug", skip_all, fields(user_id = %who.user_id()))]
    async fn list(&self, who: &Principal, query: &ListQuery) -> Result<Page> {
        let after = self.common.after(who, query)?;
        let user = who.user_id().as_str();
        let list = statements::list(POSITION_FN, user, query, after.as_ref(), now())?;
        // A list that may read all the user's tasks waits for one of the user's turns.
        let _turn = self.common.scan_turn(who, query).await?;
        let rows = self.page_rows(&list).await?;
        Ok(self.common.page(who, query, rows))
    }

    #[tracing::instrument(level = "debug", skip_all, fields(user_id = %who.user_id(), task_id = id))]
    async fn patch(
        &self,
        who: &Principal,
        id: TaskId,
        patch: TaskPatch,
        expected_version: Option<i64>,
    ) -> Result<Task> {
        let user = who.user_id().as_str();
        let completes = patch.completed == Some(true);
        // A patch that sets a rule goes the way that can create an occurrence even when the
        // task did not repeat before it.
        let sets_rule = matches!(patch.recurrence, Some(Some(_)));
        let args = patch_args::<PgArguments>(id, user, patch, now(), expected_version)?;
        if !completes {
            let row = self
                .row(sqlx::query_with(&statements::PATCH_TASK, args))
                .await?;
            return self.written(who, id, expected_version, row).await;
        }
        // Most tasks do not repeat: their completion is one statement. A task that repeats (or
        // is missing, or stale) matches none, and goes the way that can create an occurrence.
        if !sets_rule {
            let fast = sqlx::query_with(&statements::PATCH_TASK_NOT_RECURRING, args.clone());
            if let Some(row) = self.row(fast).await? {
                return row::task(&row);
            }
        }
        let task = self
            .write_completing(sqlx::query_with(&statements::PATCH_TASK, args))
            .await?;
        self.returned(who, id, expected_version, task).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(user_id = %who.user_id(), task_id = id))]
    async fn set_completed(
        &self,
        who: &Principal,
        id: TaskId,
        completed: Option<bool>,
        expected_version: Option<i64>,
    ) -> Result<Task> {
        let query = |sql| {
            sqlx::query(sql)
                .bind(id)
                .bind(who.user_id().as_str())
                .bind(completed)
                .bind(Stamp(now()))
                .bind(expected_version)
        };
        if completed == Some(false) {
            let row = self.row(query(&statements::SET_COMPLETED)).await?;
            return self.written(who, id, expected_version, row).await;
        }
        // Most tasks do not repeat: their completion is one statement. A task that repeats (or
        // is missing, or stale) matches none, and goes the way that can create an occurrence.
        if let Some(row) = self
            .row(query(&statements::SET_COMPLETED_NOT_RECURRING))
            .await?
        {
            return row::task(&row);
        }
        let task = self
            .write_completing(query(&statements::SET_COMPLETED))
            .await?;
        self.returned(who, id, expected_version, task).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(user_id = %who.user_id(), task_id = id))]
    async fn delete(
        &self,
        who: &Principal,
        id: TaskId,
        expected_version: Option<i64>,
    ) -> Result<()> {
        let query = sqlx::query(&statements::DELETE_TASK)
            .bind(id)
            .bind(who.user_id().as_str())
            .bind(expected_version);
        self.written(who, id, expected_version, self.row(query).await?)
            .await
            .map(drop)
    }

    #[tracing::instrument(level = "debug", skip_all, fields(user_id = %who.user_id()))]
    async fn tags(&self, who: &Principal) -> Result<Vec<TagCount>> {
        let user = who.user_id().as_str();
        let _turn = self.common.tag_turn(user).await?;
        let limit = i64::from(TAGS_LISTED_MAX);
        let rows = self
            .read(|| sqlx::query(statements::TAG_COUNTS).bind(user).bind(limit))
            .await?;
        rows.iter().map(row::tag_count).collect()
    }

    #[tracing::instrument(level = "debug", skip_all, fields(user_id = %who.user_id()))]
    async fn count(&self, who: &Principal, query: &ListQuery) -> Result<ListCounts> {
        let user = who.user_id().as_str();
        let count = statements::count(POSITION_FN, user, query, now())?;
        let _turn = self.common.tag_turn(user).await?;
        let args = statements::to_sqlx::<PgArguments>(&count.args)?;
        let rows = self
            .read(|| sqlx::query_with(&count.text, args.clone()))
            .await?;
        rows.first()
            .map_or_else(|| Ok(ListCounts::default()), row::counts)
    }

    #[tracing::instrument(level = "debug", skip_all, fields(user_id = %who.user_id()))]
    async fn stats(&self, who: &Principal) -> Result<TaskStats> {
        let user = who.user_id().as_str();
        let _turn = self.common.tag_turn(user).await?;
        let now = Stamp(chrono::Utc::now());
        let rows = self
            .read(|| sqlx::query(statements::TASK_STATS).bind(user).bind(now))
            .await?;
        rows.first()
            .map_or_else(|| Ok(TaskStats::default()), row::stats)
    }

    #[tracing::instrument(level = "debug", skip_all, fields(user_id = %who.user_id()))]
    async fn rename_tag(&self, who: &Principal, from: &Tag, to: &Tag) -> Result<u64> {
        self.retag(who, from, Some(to)).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(user_id = %who.user_id()))]
    async fn delete_tag(&self, who: &Principal, tag: &Tag) -> Result<u64> {
        self.retag(who, tag, None).await
    }

    async fn ping(&self) -> Result<()> {
        if self.pooler == Pooler::None && statements_lost_recently() {
            return Err(Error::Unavailable(
                "prepared statements vanished from their sessions within the last minute: \
                 a pooler in transaction mode, and DATABASE_POOLER is not transaction"
                    .into(),
            ));
        }
        self.execute(sqlx::query("select 1")).await.map(drop)
    }

    async fn close(&self) {
        if let Some(inserts) = &self.inserts {
            inserts.close().await;
        }
        if let Some(reads) = &self.reads {
            reads.close();
        }
        self.pool.close().await;
    }

    fn backend(&self) -> &'static str {
        NAME
    }
}

#[async_trait]
impl AccountStore for PgStore {
    #[tracing::instrument(level = "debug", skip_all)]
    async fn register(&self, email: &str, password: &str, name: Option<&str>) -> Result<Account> {
        let reg = Registration::parse(email, password, name)?;
        let id = new_user_id()?;
        let hash = self.common.hasher.hash(reg.password).await?;
        let insert = sqlx::query(statements::INSERT_ACCOUNT)
            .bind(id.as_str())
            .bind(reg.email.as_str())
            .bind(reg.name.as_deref())
            .bind(&hash)
            .bind(Stamp(now()));
        match self.execute(insert).await {
            Ok(_) => Ok(Account {
                id,
                email: reg.email.as_str().to_owned(),
                name: reg.name,
            }),
            Err(e) if error::is_unique_violation(&e) => Err(Error::EmailTaken),
            Err(e) => Err(e),
        }
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn login(&self, email: &str, password: &str) -> Result<Account> {
        // A malformed email is just another unknown account: same answer, same time.
        let row = match Email::parse(email) {
            Ok(email) => self.account(email.as_str()).await?,
            Err(_) => None,
        };
        self.common.login(row, password).await
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;

    use sqlx::Row as _;

    use super::*;

    async fn store() -> Option<PgStore> {
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
        Some(PgStore::open(&url, vec![0; 32], &options).await.unwrap())
    }

    const COUNT: &str = "select count(*) from idempotency_keys where user_id = $1";

    /// How many idempotency keys `user` holds, as the store's one connection reads them.
    async fn claims(store: &PgStore, user: &str) -> i64 {
        let row = store.row(sqlx::query(COUNT).bind(user)).await.unwrap();
        row.unwrap().get(0)
    }

    /// Forgets `user`'s idempotency keys.
    async fn clear(store: &PgStore, user: &str) {
        let forget = sqlx::query("delete from idempotency_keys where user_id = $1").bind(user);
        store.execute(forget).await.unwrap();
    }

    /// Runs `sql` with `args` inside `tx`: the rows it affected.
    async fn run(tx: &mut Tx<PgConnection>, sql: &str, args: &[&str]) -> Result<u64> {
        let query = args.iter().fold(sqlx::query(sql), |q, a| q.bind(*a));
        let done = query.execute(tx.conn()?).await.map_err(from_sqlx)?;
        Ok(done.rows_affected())
    }

    /// With one connection, the next statement runs only after the dropped transaction's
    /// rollback gave it back: it must not see the dropped insert, and a new transaction begins.
    #[tokio::test]
    async fn a_transaction_dropped_unfinished_is_rolled_back_before_its_connection_is_reused() {
        let Some(store) = store().await else { return };
        let user = format!("pool-test-{}", std::process::id());
        let claim = "insert into idempotency_keys (user_id, key, fingerprint, created_at) values ($1, 'k', 'f', now())";
        clear(&store, &user).await;

        let mut tx = store.begin().await.unwrap();
        assert_eq!(run(&mut tx, claim, &[&user]).await.unwrap(), 1);
        drop(tx);
        assert_eq!(claims(&store, &user).await, 0);

        let mut tx = store.begin().await.unwrap();
        assert_eq!(run(&mut tx, claim, &[&user]).await.unwrap(), 1);
        tx.commit().await.unwrap();
        assert_eq!(claims(&store, &user).await, 1);
        store.close().await;
    }

    /// Callers that give up at every stage of a transaction leave nothing behind: the one
    /// connection always comes back out of any transaction, nothing they wrote is committed,
    /// and the next transaction begins and commits normally.
    #[tokio::test]
    async fn transactions_abandoned_at_any_point_leave_nothing_behind() {
        let Some(store) = store().await else { return };
        let user = format!("pool-abandon-{}", std::process::id());
        let claim = "insert into idempotency_keys (user_id, key, fingerprint, created_at) values ($1, $2, 'f', now())";
        for i in 0..200u64 {
            let key = format!("k{i}");
            let attempt = async {
                let mut tx = store.begin().await?;
                run(&mut tx, claim, &[&user, &key]).await?;
                Ok::<_, Error>(tx)
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
        let plain = sqlx::query(claim).bind(&user).bind("plain");
        store.execute(plain).await.unwrap();
        let url = std::env::var("TODO_TEST_DATABASE_URL").unwrap();
        let other = sqlx::PgPool::connect(&url).await.unwrap();
        let seen: i64 = sqlx::query_scalar(COUNT)
            .bind(&user)
            .fetch_one(&other)
            .await
            .unwrap();
        assert_eq!(seen, 1, "only the plain write is committed");
        let mut tx = store.begin().await.unwrap();
        run(&mut tx, claim, &[&user, "last"]).await.unwrap();
        tx.commit().await.unwrap();
        assert_eq!(claims(&store, &user).await, 2);
        clear(&store, &user).await;
        store.close().await;
    }
}
