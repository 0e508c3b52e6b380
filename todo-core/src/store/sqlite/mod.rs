//! The SQLite backend: on a WAL database file, one group-committing writer (plus one connection
//! for write transactions) and read-only connections, so reads never wait for writes and
//! writes never fight over the lock ("database is locked"). In memory, the database lives in
//! one connection, which serves everything.
//!
//! sqlx runs the schema, migrations, transactions and writes; rusqlite runs the reads on a file
//! (`file_reads.rs` says why). Both drivers' rows are read by one decoder (`row.rs`), and both
//! drivers' errors are mapped in one place (`error.rs`).

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::sqlite::{
    SqliteArguments, SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqliteRow,
    SqliteSynchronous,
};
use sqlx::{Execute as _, Sqlite};
use tokio::sync::OwnedMutexGuard;

use super::common::Common;
use super::completing;
use super::keyed::{self, KeyedCreate};
use super::pool::{Pool, Tx, settle, settled};
use super::statements::{self, Stamp};
use super::{ListCounts, TAGS_LISTED_MAX, TagCount, TaskStats, TaskStore, common, retag};
use crate::accounts::{Account, AccountStore, Email, Registration};
use crate::error::{Error, Result};
use crate::model::{
    Created, IdempotencyKey, ListQuery, NewTask, Page, Tag, Task, TaskId, TaskPatch, now,
};
use crate::options::StoreOptions;
use crate::principal::Principal;
use error::{breaks_connection, from_migrate, from_sqlx};
use file_reads::{FileReads, all, first, list_args};
use group_commit::{GroupCommit, WriteTurn};
use schedule::Placement;

mod error;
mod file_reads;
mod group_commit;
mod row;
mod schedule;

/// How long a statement waits for a lock another connection holds.
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a write may wait for the single writer connection.
const SQLITE_WRITE_QUEUE_TIMEOUT: Duration = Duration::from_secs(60);

/// SQLite's substring-position function, for searches.
const POSITION_FN: &str = "instr";

/// Owned arguments of a statement, as the write queue holds them.
type Args = SqliteArguments<'static>;

/// The SQLite store.
pub(crate) struct SqliteStore {
    conns: Conns,
    /// Cursors, hashing, turns and quotas, as both backends hold them.
    common: Common,
}

/// Where a SQLite store's statements run.
enum Conns {
    /// In memory: the database lives in this one connection, which serves everything.
    Memory(Pool<SqliteConnection>),
    /// On a file.
    File {
        /// Single-statement task writes, group-committed.
        queue: GroupCommit<Task>,
        /// Write transactions (keyed creates, tag renames) and account writes, on one
        /// connection.
        transactions: Pool<SqliteConnection>,
        /// Taken by `queue`'s rounds and by each write on `transactions`, in turn.
        turn: WriteTurn,
        /// Every read, on read-only rusqlite connections.
        reads: FileReads,
    },
}

/// The `max_page_count` that keeps a database of `page_size`-byte pages within `bytes`: at
/// least one page.
fn max_page_count(bytes: u64, page_size: i64) -> u64 {
    let page_size = u64::try_from(page_size).unwrap_or(4096).max(1);
    (bytes / page_size).max(1)
}

fn is_in_memory(url: &str) -> bool {
    url.contains(":memory:") || url.contains("mode=memory")
}

/// The arguments `query` holds ([`Error::Storage`] if one could not be encoded).
fn args_of(mut query: sqlx::query::Query<'static, Sqlite, Args>) -> Result<Args> {
    Ok(query
        .take_arguments()
        .map_err(Error::Storage)?
        .unwrap_or_default())
}

/// Runs `query` on a connection of `pool` and returns its first row, if any; a connection the
/// statement broke does not go back.
async fn fetch_first<'q>(
    pool: &Pool<SqliteConnection>,
    query: sqlx::query::Query<'q, Sqlite, SqliteArguments<'q>>,
) -> Result<Option<SqliteRow>> {
    let mut conn = pool.get().await?;
    let result = query.fetch_optional(&mut *conn).await;
    settled(conn, result, breaks_connection, from_sqlx)
}

impl SqliteStore {
    /// Opens (creating it if missing) and migrates the database at `url`.
    pub(crate) async fn open(
        url: &str,
        cursor_secret: Vec<u8>,
        options: &StoreOptions,
    ) -> Result<Self> {
        let mut connect = SqliteConnectOptions::from_str(url)
            .map_err(|e| Error::Config(format!("invalid SQLite URL: {e}")))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(if options.sqlite_synchronous_full {
                SqliteSynchronous::Full
            } else {
                SqliteSynchronous::Normal
            })
            // The group-commit writer and the transaction writer take turns on the write lock.
            .busy_timeout(SQLITE_BUSY_TIMEOUT)
            .foreign_keys(true)
            .pragma("temp_store", "memory")
            .statement_cache_capacity(256);
        // Writes queue for the one writer connection instead of failing: a local file cannot be
        // "down", so a burst of writes must wait its turn rather than surface as unavailable.
        let write_wait = options.acquire_timeout.max(SQLITE_WRITE_QUEUE_TIMEOUT);
        let common = Common::new(cursor_secret, options, false);
        let mut transactions = Pool::new(connect.clone(), 1, write_wait)?;
        let mut conn = transactions.get().await?;
        sqlx::migrate!("./migrations/sqlite")
            .run(&mut *conn)
            .await
            .map_err(from_migrate)?;
        let max_pages = match options.sqlite_max_size_bytes {
            Some(bytes) => {
                let page_size: i64 = sqlx::query_scalar("pragma page_size")
                    .fetch_one(&mut *conn)
                    .await
                    .map_err(from_sqlx)?;
                let pages = max_page_count(bytes, page_size);
                // This connection is the database in memory: it gets the cap directly; on a
                // file, every connection opened from here on gets it as it opens.
                sqlx::query(&format!("pragma max_page_count = {pages}"))
                    .execute(&mut *conn)
                    .await
                    .map_err(from_sqlx)?;
                connect = connect.pragma("max_page_count", pages.to_string());
                Some(pages)
            }
            None => None,
        };
        drop(conn);
        if is_in_memory(url) {
            return Ok(Self {
                conns: Conns::Memory(transactions),
                common,
            });
        }
        if max_pages.is_some() {
            // The writer is reopened with the cap, so a replacement connection has it too.
            transactions.close().await;
            transactions = Pool::new(connect.clone(), 1, write_wait)?;
        }
        // Each pool opens connections on demand, up to this many.
        let readers = options.max_connections.unwrap_or(8);
        let path = connect.get_filename().to_path_buf();
        let reads = FileReads::new(path, readers, write_wait, max_pages)?;
        let queue_conn = sqlx::ConnectOptions::connect(&connect)
            .await
            .map_err(from_sqlx)?;
        let turn = WriteTurn::default();
        Ok(Self {
            conns: Conns::File {
                queue: GroupCommit::start(queue_conn, row::task, Arc::clone(&turn)),
                turn,
                transactions,
                reads,
            },
            common,
        })
    }

    /// The connection write transactions run on.
    fn transactions(&self) -> &Pool<SqliteConnection> {
        match &self.conns {
            Conns::Memory(pool)
            | Conns::File {
                transactions: pool, ..
            } => pool,
        }
    }

    /// The turn to write on the transactions' connection: on a file, taken in order with the
    /// group commit's rounds ([`WriteTurn`]) and held until the guard is dropped; in memory
    /// nothing (the one connection is taken in order already).
    async fn write_turn(&self) -> Option<OwnedMutexGuard<()>> {
        match &self.conns {
            Conns::File { turn, .. } => Some(Arc::clone(turn).lock_owned().await),
            Conns::Memory(_) => None,
        }
    }

    /// A write transaction on the transactions' connection, and the turn it holds
    /// ([`SqliteStore::write_turn`]); keep the turn until the transaction has ended.
    async fn begin_write(&self) -> Result<(Option<OwnedMutexGuard<()>>, Tx<SqliteConnection>)> {
        let turn = self.write_turn().await;
        let tx = Tx::begin(self.transactions(), "begin immediate", from_sqlx).await?;
        Ok((turn, tx))
    }

    /// Runs one statement that writes and returns at most one task: group-committed on a file,
    /// on the one connection in memory.
    async fn write(&self, sql: &'static str, args: Args) -> Result<Option<Task>> {
        match &self.conns {
            Conns::File { queue, .. } => queue.write(sql, args).await,
            Conns::Memory(pool) => fetch_first(pool, sqlx::query_with(sql, args))
                .await?
                .map(|r| row::task(&r))
                .transpose(),
        }
    }

    /// Runs one statement that writes, may complete a task, and returns at most one task; with
    /// the task's next occurrence ([`statements::spawn_args`]) in the same transaction when the
    /// task repeats: group-committed on a file, in a transaction in memory.
    async fn write_completing(&self, sql: &'static str, args: Args) -> Result<Option<Task>> {
        match &self.conns {
            Conns::File { queue, .. } => queue.write_then(sql, args, Some(spawn_next)).await,
            Conns::Memory(pool) => {
                let tx = Tx::begin(pool, "begin immediate", from_sqlx).await?;
                let write = sqlx::query_with(sql, args);
                completing::write(tx, write, &statements::SPAWN_NEXT, row::task, from_sqlx).await
            }
        }
    }

    /// The version of task `id` of `user`, if it is there.
    async fn version(&self, id: TaskId, user: &str) -> Result<Option<i64>> {
        match &self.conns {
            Conns::File { reads, .. } => {
                let user = user.to_owned();
                reads
                    .inline(move |c| {
                        first(c, statements::GET_VERSION, &[&id, &user], |r| {
                            row::Columns::column(r, 0)
                        })
                    })
                    .await
            }
            Conns::Memory(pool) => {
                let query = sqlx::query(statements::GET_VERSION).bind(id).bind(user);
                fetch_first(pool, query)
                    .await?
                    .map(|r| row::Columns::column(&r, 0))
                    .transpose()
            }
        }
    }

    /// The answer for a write that matched no row: the task is missing (or not this user's), or
    /// it exists at another version than expected.
    async fn missing_or_stale(&self, who: &Principal, id: TaskId, expected: Option<i64>) -> Error {
        match self.version(id, who.user_id().as_str()).await {
            Ok(current) => common::stale_or_missing(current, expected),
            Err(e) => e,
        }
    }

    /// The rows of a statement [`statements::list`] or [`statements::count`] built, each
    /// decoded by `read` (from a file's connection) or `decode` (in memory): on a file where
    /// `placement` says, in memory on the one connection.
    async fn list_rows<T: Send + 'static>(
        &self,
        sql: statements::ListSql,
        placement: Placement,
        read: impl Fn(&rusqlite::Row<'_>) -> Result<T> + Send + Sync + Copy + 'static,
        decode: impl Fn(&SqliteRow) -> Result<T>,
    ) -> Result<Vec<T>> {
        match &self.conns {
            Conns::File { reads, .. } => {
                let run =
                    move |c: &rusqlite::Connection| all(c, &sql.text, &list_args(&sql.args), read);
                match placement {
                    Placement::Inline => reads.inline(run).await,
                    Placement::Blocking => reads.blocking(run).await,
                }
            }
            Conns::Memory(pool) => {
                let args: SqliteArguments<'_> = statements::to_sqlx(&sql.args)?;
                let mut conn = pool.get().await?;
                let result = sqlx::query_with(&sql.text, args)
                    .fetch_all(&mut *conn)
                    .await;
                settled(conn, result, breaks_connection, from_sqlx)?
                    .iter()
                    .map(decode)
                    .collect()
            }
        }
    }

    /// Rewrites every task of the user that carries `from`, [`retag::SQLITE_CHUNK`] tasks per
    /// write transaction ([`retag::SQLITE_RETAG`]), each in its write turn, so other writes run
    /// between them; on one of the user's scan turns. How many changed; [`Error::NotFound`]
    /// when none carries it. Each chunk is kept or not as a whole: a failure leaves the chunks
    /// before it done, and running the same request again finishes the rest.
    async fn retag(&self, who: &Principal, from: &Tag, to: Option<&Tag>) -> Result<u64> {
        let user = who.user_id().as_str();
        let _scan = self.common.tag_turn(user).await?;
        let mut changed = 0u64;
        let mut after = 0;
        loop {
            let chunk = Some(retag::SQLITE_CHUNK);
            let args = retag::args::<Args>(user, from, to, now(), after, chunk)?;
            let (_turn, mut tx) = self.begin_write().await?;
            let ids: Vec<i64> = sqlx::query_scalar_with(retag::SQLITE_RETAG, args)
                .fetch_all(tx.conn()?)
                .await
                .map_err(from_sqlx)?;
            tx.commit().await?;
            changed += ids.len() as u64;
            match ids.iter().max() {
                Some(&last) if ids.len() as i64 == retag::SQLITE_CHUNK => after = last,
                _ => break,
            }
        }
        match changed {
            0 => Err(Error::NotFound),
            changed => Ok(changed),
        }
    }

    /// A create with an idempotency key ([`keyed::create`]), in a transaction on the
    /// transactions' connection: writes run one at a time, so no quota needs a lock.
    async fn create_keyed(
        &self,
        user: &str,
        task: &NewTask,
        key: &IdempotencyKey,
    ) -> Result<Created> {
        let (_turn, tx) = self.begin_write().await?;
        let create = KeyedCreate::new(&self.common, user, task, key);
        keyed::create(tx, create, row::KEYED, from_sqlx).await
    }
}

/// The statement creating `task`'s next occurrence, if it calls for one.
fn spawn_next(task: &Task) -> Result<Option<(&'static str, Args)>> {
    Ok(statements::spawn_args(task, now())?.map(|args| (statements::SPAWN_NEXT.as_str(), args)))
}

#[async_trait]
impl TaskStore for SqliteStore {
    #[tracing::instrument(level = "debug", skip_all, fields(user_id = %who.user_id(), backend = "sqlite"))]
    async fn create(
        &self,
        who: &Principal,
        task: NewTask,
        idempotency_key: Option<&IdempotencyKey>,
    ) -> Result<Created> {
        let user = who.user_id().as_str();
        if let Some(key) = idempotency_key {
            return self.create_keyed(user, &task, key).await;
        }
        // Writes run one at a time: the count and the insert, one statement, cannot be
        // overshot by the user's concurrent creates.
        let max_tasks = self.common.max_tasks;
        let sql = match max_tasks {
            None => &statements::INSERT_TASK,
            Some(_) => &statements::INSERT_TASK_WITHIN_QUOTA,
        };
        let args = statements::insert_args(user, &task, now(), max_tasks)?;
        Ok(Created {
            task: common::inserted(self.write(sql, args).await?, max_tasks)?,
            replayed: false,
        })
    }

    #[tracing::instrument(level = "debug", skip_all, fields(user_id = %who.user_id(), task_id = id))]
    async fn get(&self, who: &Principal, id: TaskId) -> Result<Task> {
        let user = who.user_id().as_str();
        let task = match &self.conns {
            Conns::File { reads, .. } => {
                let user = user.to_owned();
                reads
                    .inline(move |c| {
                        first(c, &statements::GET_TASK, &[&id, &user], |r| row::task(r))
                    })
                    .await?
            }
            Conns::Memory(pool) => {
                let query = sqlx::query(&statements::GET_TASK).bind(id).bind(user);
                fetch_first(pool, query)
                    .await?
                    .map(|r| row::task(&r))
                    .transpose()?
            }
        };
        task.ok_or(Error::NotFound)
    }

    /// On a file, where [`schedule::placement`] says: a page proven to stop after its rows runs
    /// like a lookup, on the calling thread; every other list (a search, a filter, any shape not
    /// proven) on tokio's blocking threads, off the async workers, on connections of its own.
    #[tracing::instrument(level = "debug", skip_all, fields(user_id = %who.user_id()))]
    async fn list(&self, who: &Principal, query: &ListQuery) -> Result<Page> {
        let after = self.common.after(who, query)?;
        let sql = statements::list(
            POSITION_FN,
            who.user_id().as_str(),
            query,
            after.as_ref(),
            now(),
        )?;
        // A list that may read all the user's tasks waits for one of the user's turns.
        let _turn = self.common.scan_turn(who, query).await?;
        let rows = self
            .list_rows(sql, schedule::placement(query), |r| row::task(r), row::task)
            .await?;
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
        let args = statements::patch_args(id, user, patch, now(), expected_version)?;
        let written = if completes {
            self.write_completing(&statements::PATCH_TASK, args).await?
        } else {
            self.write(&statements::PATCH_TASK, args).await?
        };
        match written {
            Some(task) => Ok(task),
            None => Err(self.missing_or_stale(who, id, expected_version).await),
        }
    }

    #[tracing::instrument(level = "debug", skip_all, fields(user_id = %who.user_id(), task_id = id))]
    async fn set_completed(
        &self,
        who: &Principal,
        id: TaskId,
        completed: Option<bool>,
        expected_version: Option<i64>,
    ) -> Result<Task> {
        let args = args_of(
            sqlx::query(&statements::SET_COMPLETED)
                .bind(id)
                .bind(who.user_id().as_str().to_owned())
                .bind(completed)
                .bind(Stamp(now()))
                .bind(expected_version),
        )?;
        let written = if completed == Some(false) {
            self.write(&statements::SET_COMPLETED, args).await?
        } else {
            self.write_completing(&statements::SET_COMPLETED, args)
                .await?
        };
        match written {
            Some(task) => Ok(task),
            None => Err(self.missing_or_stale(who, id, expected_version).await),
        }
    }

    #[tracing::instrument(level = "debug", skip_all, fields(user_id = %who.user_id(), task_id = id))]
    async fn delete(
        &self,
        who: &Principal,
        id: TaskId,
        expected_version: Option<i64>,
    ) -> Result<()> {
        let args = args_of(
            sqlx::query(&statements::DELETE_TASK)
                .bind(id)
                .bind(who.user_id().as_str().to_owned())
                .bind(expected_version),
        )?;
        match self.write(&statements::DELETE_TASK, args).await? {
            Some(_) => Ok(()),
            None => Err(self.missing_or_stale(who, id, expected_version).await),
        }
    }

    #[tracing::instrument(level = "debug", skip_all, fields(user_id = %who.user_id()))]
    async fn tags(&self, who: &Principal) -> Result<Vec<TagCount>> {
        let user = who.user_id().as_str();
        let _turn = self.common.tag_turn(user).await?;
        let limit = i64::from(TAGS_LISTED_MAX);
        match &self.conns {
            Conns::File { reads, .. } => {
                let user = user.to_owned();
                reads
                    .blocking(move |c| {
                        all(c, statements::TAG_COUNTS, &[&user, &limit], |r| {
                            row::tag_count(r)
                        })
                    })
                    .await
            }
            Conns::Memory(pool) => {
                let query = sqlx::query(statements::TAG_COUNTS).bind(user).bind(limit);
                let mut conn = pool.get().await?;
                let result = query.fetch_all(&mut *conn).await;
                settled(conn, result, breaks_connection, from_sqlx)?
                    .iter()
                    .map(row::tag_count)
                    .collect()
            }
        }
    }

    #[tracing::instrument(level = "debug", skip_all, fields(user_id = %who.user_id()))]
    async fn count(&self, who: &Principal, query: &ListQuery) -> Result<ListCounts> {
        let user = who.user_id().as_str();
        let count = statements::count(POSITION_FN, user, query, now())?;
        let _turn = self.common.tag_turn(user).await?;
        let rows = self
            .list_rows(count, Placement::Blocking, |r| row::counts(r), row::counts)
            .await?;
        Ok(rows.into_iter().next().unwrap_or_default())
    }

    #[tracing::instrument(level = "debug", skip_all, fields(user_id = %who.user_id()))]
    async fn stats(&self, who: &Principal) -> Result<TaskStats> {
        let user = who.user_id().as_str();
        let _turn = self.common.tag_turn(user).await?;
        let now = Stamp(chrono::Utc::now());
        let rows = match &self.conns {
            Conns::File { reads, .. } => {
                let user = user.to_owned();
                reads
                    .blocking(move |c| {
                        all(c, statements::TASK_STATS, &[&user, &now], |r| row::stats(r))
                    })
                    .await?
            }
            Conns::Memory(pool) => {
                let query = sqlx::query(statements::TASK_STATS).bind(user).bind(now);
                let mut conn = pool.get().await?;
                let result = query.fetch_all(&mut *conn).await;
                settled(conn, result, breaks_connection, from_sqlx)?
                    .iter()
                    .map(row::stats)
                    .collect::<Result<Vec<_>>>()?
            }
        };
        Ok(rows.into_iter().next().unwrap_or_default())
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
        match &self.conns {
            Conns::File { reads, .. } => {
                reads
                    .inline(|c| first(c, "select 1", &[], |_| Ok(())))
                    .await?;
            }
            Conns::Memory(pool) => {
                fetch_first(pool, sqlx::query("select 1")).await?;
            }
        }
        Ok(())
    }

    async fn close(&self) {
        match &self.conns {
            Conns::File {
                queue,
                transactions,
                reads,
                turn: _,
            } => {
                queue.close().await;
                reads.close();
                transactions.close().await;
            }
            Conns::Memory(pool) => pool.close().await,
        }
    }

    fn backend(&self) -> &'static str {
        "sqlite"
    }
}

#[async_trait]
impl AccountStore for SqliteStore {
    #[tracing::instrument(level = "debug", skip_all)]
    async fn register(&self, email: &str, password: &str, name: Option<&str>) -> Result<Account> {
        let reg = Registration::parse(email, password, name)?;
        let id = crate::accounts::new_user_id()?;
        let hash = self.common.hasher.hash(reg.password).await?;
        let query = sqlx::query(statements::INSERT_ACCOUNT)
            .bind(id.as_str())
            .bind(reg.email.as_str())
            .bind(reg.name.as_deref())
            .bind(&hash)
            .bind(Stamp(now()));
        let _turn = self.write_turn().await;
        let mut conn = self.transactions().get().await?;
        let result = query.execute(&mut *conn).await;
        settle(conn, result.as_ref().err().is_some_and(breaks_connection));
        match result {
            Ok(_) => Ok(Account {
                id,
                email: reg.email.as_str().to_owned(),
                name: reg.name,
            }),
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => Err(Error::EmailTaken),
            Err(e) => Err(from_sqlx(e)),
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

impl SqliteStore {
    /// The account with `email`, if there is one.
    async fn account(&self, email: &str) -> Result<Option<common::AccountRow>> {
        match &self.conns {
            Conns::File { reads, .. } => {
                let email = email.to_owned();
                reads
                    .inline(move |c| {
                        first(c, statements::GET_ACCOUNT_BY_EMAIL, &[&email], |r| {
                            row::account(r)
                        })
                    })
                    .await
            }
            Conns::Memory(pool) => {
                let query = sqlx::query(statements::GET_ACCOUNT_BY_EMAIL).bind(email);
                fetch_first(pool, query)
                    .await?
                    .map(|r| row::account(&r))
                    .transpose()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::statements::task_columns;

    const CLAIM: &str = "insert into idempotency_keys (user_id, key, fingerprint, created_at) values ('u', $1, 'f', 0)";
    const COUNT: &str = "select count(*) from idempotency_keys";

    async fn open(url: &str, options: &StoreOptions) -> SqliteStore {
        SqliteStore::open(url, vec![0; 32], options).await.unwrap()
    }

    /// The idempotency keys stored, counted on the transactions' connection.
    async fn keys(store: &SqliteStore) -> i64 {
        let row = fetch_first(store.transactions(), sqlx::query(COUNT))
            .await
            .unwrap()
            .unwrap();
        sqlx::Row::get(&row, 0)
    }

    /// Claims key `key` inside `tx`.
    async fn claim(tx: &mut Tx<SqliteConnection>, key: &str) -> Result<()> {
        sqlx::query(CLAIM)
            .bind(key)
            .execute(tx.conn()?)
            .await
            .map_err(from_sqlx)?;
        Ok(())
    }

    /// In memory there is one connection: the next statement can only run once the dropped
    /// transaction's rollback has given it back, and must not see the dropped insert.
    #[tokio::test]
    async fn a_transaction_dropped_unfinished_is_rolled_back_before_its_connection_is_reused() {
        let store = open("sqlite::memory:", &StoreOptions::default()).await;
        let begin = || Tx::begin(store.transactions(), "begin immediate", from_sqlx);
        let mut tx = begin().await.unwrap();
        claim(&mut tx, "k").await.unwrap();
        drop(tx);
        assert_eq!(keys(&store).await, 0);

        // The connection is out of the transaction: a new one begins and commits.
        let mut tx = begin().await.unwrap();
        claim(&mut tx, "k").await.unwrap();
        tx.commit().await.unwrap();
        assert_eq!(keys(&store).await, 1);
    }

    /// Callers that give up at every point of a transaction (while taking the connection,
    /// while `begin` runs, mid-statement) leave nothing behind: the one connection always comes
    /// back out of any transaction, nothing they wrote is committed, and the next transaction
    /// begins and commits normally.
    #[tokio::test]
    async fn transactions_abandoned_at_any_point_leave_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        for url in [
            "sqlite::memory:".to_owned(),
            format!("sqlite://{}", dir.path().join("t.db").display()),
        ] {
            let store = open(&url, &StoreOptions::default()).await;
            let begin = || Tx::begin(store.transactions(), "begin immediate", from_sqlx);
            for i in 0..300u64 {
                let key = format!("k{i}");
                let attempt = async {
                    let mut tx = begin().await?;
                    claim(&mut tx, &key).await?;
                    Ok::<_, Error>(tx)
                };
                // Give up after a growing number of scheduler turns, so the attempts are cut
                // at every stage; finished or not, the transaction is dropped uncommitted.
                let give_up = async {
                    for _ in 0..i % 100 {
                        tokio::task::yield_now().await;
                    }
                };
                tokio::select! {
                    biased;
                    tx = attempt => drop(tx),
                    () = give_up => {}
                }
            }
            let mut tx = begin().await.unwrap();
            claim(&mut tx, "last").await.unwrap();
            tx.commit().await.unwrap();
            assert_eq!(keys(&store).await, 1, "{url}");
            store.close().await;
        }
    }

    /// The tasks table with the columns the store selects, for tests on a bare file; rows go
    /// in through [`INSERT_ROW`].
    fn tasks_table() -> String {
        let plain: String = crate::fields::FIELDS
            .iter()
            .map(|f| match f.kind {
                crate::fields::Kind::Text => format!(", {} text", f.name),
                _ => format!(", {} integer", f.name),
            })
            .collect();
        format!(
            "create table tasks (id integer primary key, user_id text, title text, \
             description text, completed integer, priority integer, due_date integer, \
             created_at integer, updated_at integer, version integer, completed_at integer, \
             tags text, recurrence text{plain});"
        )
    }

    /// An insert into [`tasks_table`] of the columns written by hand (the plain fields null).
    const INSERT_ROW: &str = "insert into tasks (id, user_id, title, description, completed, \
        priority, due_date, created_at, updated_at, version, completed_at, tags, recurrence) values";

    /// The tasks of user `$1`, with the columns the store selects.
    fn own_tasks() -> String {
        format!("select {} from tasks where user_id = $1", task_columns())
    }

    /// Read-only connections to the file at `path`: `n` in each pool, waiting up to 5 s for one.
    fn file_reads(path: &std::path::Path, n: u32) -> FileReads {
        FileReads::new(path.to_path_buf(), n, Duration::from_secs(5), None).unwrap()
    }

    /// Reads on a file never wait for a lock on the async workers (busy timeout 0). While
    /// another connection holds the file exclusively (here a rollback-journal database in the
    /// middle of a write; on a WAL database only another process can do that), a lookup (run
    /// inline) and a scan (run on a blocking thread) are both refused at once, run again on a
    /// blocking thread that waits for the lock, and answer once the file is free, with the
    /// committed row. (Timing-based one way only: were both reads to start after the release,
    /// it would pass without the retry; it fails without it whenever they start before, as
    /// they do.)
    #[tokio::test]
    async fn reads_on_a_locked_file_wait_on_a_blocking_thread_instead_of_failing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let holder = rusqlite::Connection::open(&path).unwrap();
        holder
            .execute_batch(&format!(
                "{} {INSERT_ROW} (1, 'u', 'a', null, 0, 1, null, 0, 0, 1, null, '[]', null); \
                 begin exclusive; {INSERT_ROW} (2, 'u', 'b', 'd', 1, 2, 5, 6, 7, 3, 7, '[\"x\"]', null);",
                tasks_table()
            ))
            .unwrap();
        let reads = file_reads(&path, 2);
        let release = tokio::task::spawn_blocking(move || {
            std::thread::sleep(Duration::from_millis(300));
            holder.execute_batch("commit").unwrap();
        });
        let in_order = format!("{} order by id", own_tasks());
        let (count, tasks) = tokio::join!(
            reads.inline(|c| first(c, "select count(*) from tasks", &[], |r| {
                r.get::<_, i64>(0).map_err(error::from_rusqlite)
            })),
            reads.blocking(move |c| all(c, &in_order, &[&"u"], |r| row::task(r))),
        );
        assert_eq!(count.unwrap(), Some(2));
        let versions: Vec<_> = tasks.unwrap().iter().map(|t| (t.id, t.version)).collect();
        assert_eq!(versions, [(1, 1), (2, 3)]);
        release.await.unwrap();
    }

    /// A search whose caller gives up (a client gone, a timeout) is stopped: its connection is
    /// free again well within the pool's 5 s wait. Without that, the statement below would
    /// hold the only scan connection for seconds (about 30 in a debug build), past the wait.
    #[tokio::test]
    async fn an_abandoned_scan_is_interrupted_and_frees_its_connection() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        rusqlite::Connection::open(&path)
            .unwrap()
            .execute_batch(&format!(
                "{} {INSERT_ROW} (1, 'u', 'a', null, 0, 1, null, 0, 0, 1, null, '[]', null);",
                tasks_table()
            ))
            .unwrap();
        let reads = file_reads(&path, 1);
        let slow = format!(
            "{} and (with recursive c(x) as (select 1 union all select x + 1 from c \
             where x < 200000000) select count(*) from c) > 0",
            own_tasks()
        );
        let abandoned = tokio::time::timeout(
            Duration::from_millis(200),
            reads.blocking(move |c| all(c, &slow, &[&"u"], |r| row::task(r))),
        )
        .await;
        assert!(abandoned.is_err(), "the slow scan finished: {abandoned:?}");
        let tasks = reads
            .blocking(|c| all(c, &own_tasks(), &[&"u"], |r| row::task(r)))
            .await
            .unwrap();
        assert_eq!(tasks.len(), 1);
    }

    /// A lock still held after the busy timeout is "unavailable" (503, retry), not a storage
    /// error (500), from either driver.
    #[tokio::test]
    async fn a_lock_held_past_the_busy_timeout_is_unavailable() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let holder = rusqlite::Connection::open(&path).unwrap();
        holder
            .execute_batch("create table t (x integer); begin exclusive; insert into t values (1);")
            .unwrap();
        let mut conn = sqlx::ConnectOptions::connect(
            &SqliteConnectOptions::new()
                .filename(&path)
                .busy_timeout(Duration::ZERO),
        )
        .await
        .unwrap();
        let err = sqlx::query("select count(*) from t")
            .execute(&mut conn)
            .await
            .unwrap_err();
        assert!(
            matches!(from_sqlx(err), Error::Unavailable(_)),
            "a busy database must be unavailable"
        );
        let reader = rusqlite::Connection::open(&path).unwrap();
        let err = reader
            .query_row("select count(*) from t", [], |r| r.get::<_, i64>(0))
            .unwrap_err();
        let err = error::from_rusqlite(err);
        assert!(matches!(err, Error::Unavailable(_)), "{err:?}");
        assert!(error::is_locked(&err));
        drop(holder);
    }

    /// A statement that finds the database full can make SQLite roll back the whole batch's
    /// transaction, not just itself (as this insert into an indexed table does), after which
    /// the statements queued behind it would each commit on their own while the batch's commit
    /// failed. Queued together, an update, an insert that does not fit and another update: the
    /// insert alone fails, as out of space, and is absent; both updates are acknowledged and
    /// committed; the file passes `pragma integrity_check`.
    #[tokio::test]
    async fn a_write_that_finds_the_database_full_fails_alone_and_its_batch_commits() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let url = format!("sqlite://{}", path.display());
        let options = StoreOptions {
            sqlite_max_size_bytes: Some(256 * 1024),
            ..StoreOptions::default()
        };
        let store = open(&url, &options).await;
        let write = |sql: &'static str| store.write(sql, Args::default());
        for statement in [
            "create table counter (n integer)",
            "insert into counter values (0)",
            "create table blobs (b blob)",
            "create index blobs_b on blobs (b)",
        ] {
            write(statement).await.unwrap();
        }
        let fill = "insert into blobs values (randomblob(1000))";
        let full = loop {
            if let Err(e) = write(fill).await {
                break e;
            }
        };
        assert!(matches!(full, Error::OutOfSpace(_)), "{full:?}");
        let blobs = "select count(*) from blobs";
        let count = |sql: &'static str| {
            let conn = rusqlite::Connection::open(&path).unwrap();
            conn.query_row(sql, [], |r| r.get::<_, i64>(0)).unwrap()
        };
        let before = count(blobs);

        // On this single-threaded runtime the three are queued before the writer task runs,
        // so they are one batch.
        let bump = "update counter set n = n + 1";
        let (first, big, last) = tokio::join!(
            write(bump),
            write("insert into blobs values (zeroblob(100000))"),
            write(bump),
        );
        assert!(matches!(first, Ok(None)), "{first:?}");
        assert!(matches!(big, Err(Error::OutOfSpace(_))), "{big:?}");
        assert!(matches!(last, Ok(None)), "{last:?}");
        store.close().await;
        assert_eq!(count("select n from counter"), 2);
        assert_eq!(count(blobs), before, "the refused insert is absent");
        let conn = rusqlite::Connection::open(&path).unwrap();
        let check: String = conn
            .query_row("pragma integrity_check", [], |r| r.get(0))
            .unwrap();
        assert_eq!(check, "ok");
    }

    /// A failed statement (a constraint, not a broken connection) keeps the connection: the
    /// in-memory database, which lives in that one connection, is still there.
    #[tokio::test]
    async fn a_statement_error_keeps_the_connection_and_its_data() {
        let store = open("sqlite::memory:", &StoreOptions::default()).await;
        let claim = || {
            let mut args = Args::default();
            sqlx::Arguments::add(&mut args, "k").unwrap();
            store.write(CLAIM, args)
        };
        claim().await.unwrap();
        let err = claim().await.unwrap_err();
        assert!(matches!(err, Error::Storage(_)), "{err:?}");
        assert_eq!(keys(&store).await, 1);
    }
}
