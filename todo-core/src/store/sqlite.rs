//! The SQLite backend: on a WAL database, one group-committing writer (plus one connection for
//! write transactions) and pools of read-only readers, so reads never wait for writes and
//! writes never fight over the lock ("database is locked").

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::sqlite::{
    SqliteArguments, SqliteConnectOptions, SqliteJournalMode, SqliteRow, SqliteSynchronous,
};
use sqlx::{Row, Sqlite};

use super::sql::{Db, Exec, Read, StoredTask, Value, exec_impls, read_enum, unknown_rank};
use crate::error::{Error, Result};
use crate::model::{ListQuery, Task};
use crate::options::StoreOptions;
use schedule::Placement;

mod batch;
mod direct;
mod schedule;

exec_impls!(Sqlite, bind, decode);

/// Runs reads: on a file, lookups by key and the list pages [`schedule::placement`] runs inline,
/// on read-only rusqlite connections; in memory, on the one sqlx connection.
pub(crate) enum SqliteReader<'a> {
    Pool(PoolExec<'a>),
    Direct(direct::DirectReader<'a>),
}

read_enum!(SqliteReader { Pool, Direct });

/// Runs writes: through the group-commit queue on a file, on the one connection in memory.
pub(crate) enum SqliteWriter<'a> {
    Pool(PoolExec<'a>),
    Queue(batch::QueueExec<'a>),
}

read_enum!(SqliteWriter { Pool, Queue });

#[async_trait]
impl Exec for SqliteWriter<'_> {
    async fn execute(&mut self, sql: &str, args: &[Value<'_>]) -> sqlx::Result<u64> {
        match self {
            Self::Pool(e) => e.execute(sql, args).await,
            Self::Queue(e) => e.execute(sql, args).await,
        }
    }
}

fn bind<'q>(
    q: sqlx::query::Query<'q, Sqlite, SqliteArguments<'q>>,
    v: Value<'q>,
) -> sqlx::query::Query<'q, Sqlite, SqliteArguments<'q>> {
    match v {
        Value::I64(x) => q.bind(x),
        Value::OptI64(x) => q.bind(x),
        Value::I16(x) => q.bind(x),
        Value::OptI16(x) => q.bind(x),
        Value::Bool(x) => q.bind(x),
        Value::OptBool(x) => q.bind(x),
        Value::Text(x) => q.bind(x),
        Value::OptText(x) => q.bind(x),
        Value::Time(t) => q.bind(t.timestamp_micros()),
        Value::OptTime(t) => q.bind(t.map(|t| t.timestamp_micros())),
    }
}

/// Reads a task row. The columns' types are fixed by our own migrations, so sqlx's per-column
/// type-compatibility check (a tenth of a list's decode time) is skipped; values still decode
/// with their own checks.
fn decode(row: &SqliteRow) -> sqlx::Result<Task> {
    StoredTask(
        row.try_get_unchecked(0)?,
        row.try_get_unchecked(1)?,
        row.try_get_unchecked(2)?,
        row.try_get_unchecked(3)?,
        row.try_get_unchecked(4)?,
        row.try_get_unchecked(5)?,
        row.try_get_unchecked(6)?,
        row.try_get_unchecked(7)?,
        row.try_get_unchecked(8)?,
        row.try_get_unchecked(9)?,
    )
    .into_task()
    .map_err(unknown_rank)
}

/// How long a statement waits for a lock another connection holds.
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a write may wait for the single writer connection.
const SQLITE_WRITE_QUEUE_TIMEOUT: Duration = Duration::from_secs(60);

/// The SQLite backend.
pub(crate) struct SqliteDb {
    /// Every read in memory; on a file, the reads the rusqlite connections were refused
    /// because the file was locked (sqlx's threads may wait for it), and `ping`.
    reader: Pool,
    /// Reads on a file through rusqlite (`sqlite/direct.rs`).
    direct: Option<FileReaders>,
    /// Multi-statement write transactions (keyed creates), and every write in memory.
    writer: Pool,
    /// Single-statement writes on a file, group-committed.
    queue: Option<batch::WriteQueue>,
}

/// The rusqlite read-only connections of a database file, in two pools so that lists which may
/// each read all of a user's tasks can never take every connection from the lookups and plain
/// pages that answer in microseconds.
struct FileReaders {
    /// Lookups by key and [`Placement::Inline`] list pages, run on the calling thread.
    inline: direct::Readers,
    /// [`Placement::Blocking`] list pages, run on tokio's blocking threads.
    blocking: direct::Readers,
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

impl SqliteDb {
    pub(crate) async fn open(url: &str, options: &StoreOptions) -> Result<Self> {
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
        // An in-memory database lives as long as its one connection: that one connection
        // serves everything. A file has the writers and three pools of readers.
        let mut writer = Pool::new(connect.clone(), 1, write_wait)?;
        let mut conn = writer.get().await?;
        sqlx::migrate!("./migrations/sqlite")
            .run(&mut *conn)
            .await?;
        let max_pages = match options.sqlite_max_size_bytes {
            Some(bytes) => {
                let page_size: i64 = sqlx::query_scalar("pragma page_size")
                    .fetch_one(&mut *conn)
                    .await?;
                let pages = max_page_count(bytes, page_size);
                // This connection is the database in memory: it gets the cap directly; on a
                // file, every connection opened from here on gets it as it opens.
                sqlx::query(&format!("pragma max_page_count = {pages}"))
                    .execute(&mut *conn)
                    .await?;
                connect = connect.pragma("max_page_count", pages.to_string());
                Some(pages)
            }
            None => None,
        };
        drop(conn);
        if max_pages.is_some() && !is_in_memory(url) {
            // The writer is reopened with the cap, so a replacement connection has it too.
            writer.close().await;
            writer = Pool::new(connect.clone(), 1, write_wait)?;
        }
        if is_in_memory(url) {
            return Ok(Self {
                reader: writer.clone(),
                direct: None,
                writer,
                queue: None,
            });
        }
        // Each pool opens connections on demand, up to `readers`. Eight sqlx readers served a
        // list of 50 about 30% faster than four under 64 connections, when lists ran there
        // (docs/benchmarks.md); more gained nothing.
        let readers = options.max_connections.unwrap_or(8);
        let reader = Pool::new(connect.clone().read_only(true), readers, write_wait)?;
        let path = connect.get_filename().to_path_buf();
        let direct = FileReaders {
            inline: direct::Readers::new(path.clone(), readers, write_wait, max_pages)?,
            blocking: direct::Readers::new(path, readers, write_wait, max_pages)?,
        };
        let queue_conn = sqlx::ConnectOptions::connect(&connect).await?;
        Ok(Self {
            reader,
            direct: Some(direct),
            writer,
            queue: Some(batch::WriteQueue::start(queue_conn)),
        })
    }
}

#[async_trait]
impl Db for SqliteDb {
    type Reader<'a> = SqliteReader<'a>;
    type Conn<'a> = SqliteWriter<'a>;
    type Tx = TxExec;
    const POSITION_FN: &'static str = "instr";
    const NAME: &'static str = "sqlite";
    const USER_LOCK: Option<&'static str> = None;

    fn reader(&self) -> SqliteReader<'_> {
        match &self.direct {
            Some(readers) => SqliteReader::Direct(direct::DirectReader {
                readers: &readers.inline,
                fallback: &self.reader,
            }),
            None => SqliteReader::Pool(PoolExec(&self.reader)),
        }
    }

    /// On a file, through rusqlite (`sqlite/direct.rs`), where [`schedule::placement`] says: a
    /// page proven to stop after its rows runs like a lookup, on the calling thread (a list of 50
    /// costs the server about 60 µs there against 100 on sqlx's threads; docs/benchmarks.md);
    /// every other list (a search, a filter, any shape not proven) runs on tokio's blocking
    /// threads, off the async workers, on connections of its own.
    async fn list(
        &self,
        sql: &str,
        args: &[Value<'_>],
        query: &ListQuery,
    ) -> sqlx::Result<Vec<Task>> {
        match (&self.direct, schedule::placement(query)) {
            (Some(readers), Placement::Blocking) => {
                direct::DirectReader {
                    readers: &readers.blocking,
                    fallback: &self.reader,
                }
                .scan(sql, args)
                .await
            }
            (Some(_), Placement::Inline) | (None, _) => self.reader().tasks(sql, args).await,
        }
    }

    fn writer(&self) -> SqliteWriter<'_> {
        match &self.queue {
            Some(queue) => SqliteWriter::Queue(batch::QueueExec(queue)),
            None => SqliteWriter::Pool(PoolExec(&self.writer)),
        }
    }

    async fn begin_write(&self) -> sqlx::Result<TxExec> {
        Ok(TxExec::begin(&self.writer, "begin immediate").await?)
    }

    async fn ping(&self) -> sqlx::Result<()> {
        PoolExec(&self.reader)
            .execute("select 1", &[])
            .await
            .map(drop)
    }

    async fn close(&self) {
        if let Some(queue) = &self.queue {
            queue.close().await;
        }
        if let Some(direct) = &self.direct {
            direct.inline.close();
            direct.blocking.close();
        }
        self.reader.close().await;
        self.writer.close().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::sql::Commit;
    use crate::store::statements::TASK_COLUMNS;

    const CLAIM: &str = "insert into idempotency_keys (user_id, key, fingerprint, created_at) values ('u', 'k', 'f', 0)";
    const COUNT: &str = "select count(*) from idempotency_keys";

    /// In memory there is one connection: the next statement can only run once the dropped
    /// transaction's rollback has given it back, and must not see the dropped insert.
    #[tokio::test]
    async fn a_transaction_dropped_unfinished_is_rolled_back_before_its_connection_is_reused() {
        let db = SqliteDb::open("sqlite::memory:", &StoreOptions::default())
            .await
            .unwrap();
        let mut tx = db.begin_write().await.unwrap();
        assert_eq!(tx.execute(CLAIM, &[]).await.unwrap(), 1);
        drop(tx);
        assert_eq!(db.reader().int(COUNT, &[]).await.unwrap(), Some(0));

        // The connection is out of the transaction: a new one begins and commits.
        let mut tx = db.begin_write().await.unwrap();
        assert_eq!(tx.execute(CLAIM, &[]).await.unwrap(), 1);
        tx.commit().await.unwrap();
        assert_eq!(db.reader().int(COUNT, &[]).await.unwrap(), Some(1));
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
            let db = SqliteDb::open(&url, &StoreOptions::default())
                .await
                .unwrap();
            for i in 0..300u64 {
                let key = format!("k{i}");
                let attempt = async {
                    let mut tx = db.begin_write().await?;
                    let claim = "insert into idempotency_keys (user_id, key, fingerprint, created_at) values ('u', $1, 'f', 0)";
                    tx.execute(claim, &[Value::Text(&key)]).await?;
                    Ok::<_, sqlx::Error>(tx)
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
            let mut tx = db.begin_write().await.unwrap();
            assert_eq!(tx.execute(CLAIM, &[]).await.unwrap(), 1, "{url}");
            tx.commit().await.unwrap();
            assert_eq!(db.reader().int(COUNT, &[]).await.unwrap(), Some(1), "{url}");
            db.close().await;
        }
    }

    /// The tasks table with the migrations' columns, for tests on a bare file.
    const TASKS_TABLE: &str = "create table tasks (id integer primary key, user_id text, \
        title text, description text, completed integer, priority integer, due_date integer, \
        created_at integer, updated_at integer, version integer);";

    /// The tasks of user `$1`, with the columns the store selects.
    fn own_tasks() -> String {
        format!("select {TASK_COLUMNS} from tasks where user_id = $1")
    }

    /// Read-only rusqlite readers of the file at `path`, and the sqlx pool they fall back to
    /// when it is locked: `n` connections each, waiting up to 5 s for one.
    fn file_readers(path: &std::path::Path, n: u32) -> (direct::Readers, Pool) {
        let wait = Duration::from_secs(5);
        let readers = direct::Readers::new(path.to_path_buf(), n, wait, None).unwrap();
        let options = SqliteConnectOptions::new()
            .filename(path)
            .busy_timeout(SQLITE_BUSY_TIMEOUT);
        (readers, Pool::new(options, n, wait).unwrap())
    }

    /// Reads on a file never wait for a lock on the async workers, nor on the blocking threads
    /// (busy timeout 0). While another connection holds the file exclusively (here a
    /// rollback-journal database in the middle of a write; on a WAL database only another
    /// process can do that), a lookup (run inline) and a scan (run on a blocking thread) are
    /// both refused at once, run on sqlx's threads instead (which wait, up to the busy timeout),
    /// and answer once the file is free, with the committed row. (Timing-based one way only:
    /// were both reads to start after the release, it would pass without the fallback; it
    /// fails without the fallback whenever they start before, as they do.)
    #[tokio::test]
    async fn reads_on_a_locked_file_wait_on_sqlx_threads_instead_of_failing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let holder = rusqlite::Connection::open(&path).unwrap();
        holder
            .execute_batch(&format!(
                "{TASKS_TABLE} insert into tasks values (1, 'u', 'a', null, 0, 1, null, 0, 0, 1); \
                 begin exclusive; insert into tasks values (2, 'u', 'b', 'd', 1, 2, 5, 6, 7, 3);"
            ))
            .unwrap();
        let (readers, fallback) = file_readers(&path, 2);
        let release = tokio::task::spawn_blocking(move || {
            std::thread::sleep(Duration::from_millis(300));
            holder.execute_batch("commit").unwrap();
        });
        let reader = || direct::DirectReader {
            readers: &readers,
            fallback: &fallback,
        };
        let (mut lookup, mut scan) = (reader(), reader());
        let in_order = format!("{} order by id", own_tasks());
        let (count, tasks) = tokio::join!(
            lookup.int("select count(*) from tasks", &[]),
            scan.scan(&in_order, &[Value::Text("u")]),
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
                "{TASKS_TABLE} insert into tasks values (1, 'u', 'a', null, 0, 1, null, 0, 0, 1);"
            ))
            .unwrap();
        let (readers, fallback) = file_readers(&path, 1);
        let mut reader = direct::DirectReader {
            readers: &readers,
            fallback: &fallback,
        };
        let slow = format!(
            "{} and (with recursive c(x) as (select 1 union all select x + 1 from c \
             where x < 200000000) select count(*) from c) > 0",
            own_tasks()
        );
        let abandoned = tokio::time::timeout(
            Duration::from_millis(200),
            reader.scan(&slow, &[Value::Text("u")]),
        )
        .await;
        assert!(abandoned.is_err(), "the slow scan finished: {abandoned:?}");
        let tasks = reader
            .scan(&own_tasks(), &[Value::Text("u")])
            .await
            .unwrap();
        assert_eq!(tasks.len(), 1);
    }

    /// SQLite reports extended result codes (`5` busy, `517` busy snapshot, `261` busy
    /// recovery, ...): a lock still held after the busy timeout is "unavailable" (503, retry),
    /// not a storage error (500).
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
            matches!(Error::from(err), Error::Unavailable(_)),
            "a busy database must be unavailable"
        );
        drop(holder);
    }

    /// A statement that finds the database full can make SQLite roll back the whole batch's
    /// transaction, not just itself (as this insert into an indexed table does), after which
    /// the statements queued behind it would each commit on their own while the batch's commit
    /// failed. Queued together, an update, an insert that does not fit and another update: the
    /// insert alone fails, as out of space, and both updates are acknowledged and committed.
    #[tokio::test]
    async fn a_write_that_finds_the_database_full_fails_alone_and_its_batch_commits() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("t.db").display());
        let options = StoreOptions {
            sqlite_max_size_bytes: Some(256 * 1024),
            ..StoreOptions::default()
        };
        let db = SqliteDb::open(&url, &options).await.unwrap();
        let mut w = db.writer();
        for statement in [
            "create table counter (n integer)",
            "insert into counter values (0)",
            "create table blobs (b blob)",
            "create index blobs_b on blobs (b)",
        ] {
            w.execute(statement, &[]).await.unwrap();
        }
        let fill = "insert into blobs values (randomblob(1000))";
        let full = loop {
            if let Err(e) = w.execute(fill, &[]).await {
                break e;
            }
        };
        assert!(matches!(Error::from(full), Error::OutOfSpace(_)));

        // On this single-threaded runtime the three are queued before the writer task runs,
        // so they are one batch.
        let bump = "update counter set n = n + 1";
        let (mut a, mut b, mut c) = (db.writer(), db.writer(), db.writer());
        let (first, big, last) = tokio::join!(
            a.execute(bump, &[]),
            b.execute("insert into blobs values (zeroblob(100000))", &[]),
            c.execute(bump, &[]),
        );
        assert_eq!(first.unwrap(), 1);
        assert!(matches!(
            Error::from(big.unwrap_err()),
            Error::OutOfSpace(_)
        ));
        assert_eq!(last.unwrap(), 1);
        let n = db.reader().int("select n from counter", &[]).await.unwrap();
        assert_eq!(n, Some(2));
        db.close().await;
    }

    /// A failed statement (a constraint, not a broken connection) keeps the connection: the
    /// in-memory database, which lives in that one connection, is still there.
    #[tokio::test]
    async fn a_statement_error_keeps_the_connection_and_its_data() {
        let db = SqliteDb::open("sqlite::memory:", &StoreOptions::default())
            .await
            .unwrap();
        db.writer().execute(CLAIM, &[]).await.unwrap();
        let err = db.writer().execute(CLAIM, &[]).await.unwrap_err();
        assert!(matches!(err, sqlx::Error::Database(_)), "{err:?}");
        assert_eq!(db.reader().int(COUNT, &[]).await.unwrap(), Some(1));
    }
}
