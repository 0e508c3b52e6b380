//! Group commit for SQLite. Single-statement writes are queued to one writer task, which runs
//! whatever has queued up (up to [`MAX_BATCH`]) inside one `begin immediate ... commit` and only
//! then answers each caller. With `synchronous = FULL` that is one fsync per batch instead of
//! one per write, so every acknowledged write is still durable, at several times the rate.
//!
//! A statement that fails inside the batch is normally undone by SQLite on its own
//! (statement-level rollback) and reported to its caller; the others commit. Some failures (a
//! full database or disk, an I/O error, no memory, a constraint under `or rollback`) make SQLite
//! roll back the whole transaction instead, after which later statements would each commit on
//! their own. The writer does not guess which from the error code: SQLite's rollback hook tells
//! it. When the transaction has ended, or when a job failed after its statement ran (a row that
//! does not decode), the batch stops there, rolls back, reports that failure to its caller and
//! runs the other statements again in a new transaction: each failed write costs one more round,
//! so a batch takes at most as many rounds as it has jobs. If the commit itself fails, every
//! caller whose write had succeeded gets an error: nothing is acknowledged that was not
//! committed.

use std::sync::Arc;
#[cfg(test)]
use std::sync::atomic::AtomicUsize;
use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::{Executor, SqliteConnection};
use tokio::sync::{mpsc, oneshot};

use super::{run_account, run_execute, run_int, run_task, run_tasks, run_texts};
use crate::model::Task;
use crate::store::sql::{AccountRow, Exec, Read, Value};

/// Most writes committed together.
pub(crate) const MAX_BATCH: usize = 256;

/// An owned copy of a bind value, to cross the channel.
enum Owned {
    I64(i64),
    OptI64(Option<i64>),
    I16(i16),
    OptI16(Option<i16>),
    Bool(bool),
    OptBool(Option<bool>),
    Text(String),
    OptText(Option<String>),
    Time(DateTime<Utc>),
    OptTime(Option<DateTime<Utc>>),
}

impl Owned {
    fn from_value(v: &Value<'_>) -> Self {
        match *v {
            Value::I64(x) => Self::I64(x),
            Value::OptI64(x) => Self::OptI64(x),
            Value::I16(x) => Self::I16(x),
            Value::OptI16(x) => Self::OptI16(x),
            Value::Bool(x) => Self::Bool(x),
            Value::OptBool(x) => Self::OptBool(x),
            Value::Text(x) => Self::Text(x.to_owned()),
            Value::OptText(x) => Self::OptText(x.map(str::to_owned)),
            Value::Time(x) => Self::Time(x),
            Value::OptTime(x) => Self::OptTime(x),
        }
    }

    fn view(&self) -> Value<'_> {
        match self {
            Self::I64(x) => Value::I64(*x),
            Self::OptI64(x) => Value::OptI64(*x),
            Self::I16(x) => Value::I16(*x),
            Self::OptI16(x) => Value::OptI16(*x),
            Self::Bool(x) => Value::Bool(*x),
            Self::OptBool(x) => Value::OptBool(*x),
            Self::Text(x) => Value::Text(x),
            Self::OptText(x) => Value::OptText(x.as_deref()),
            Self::Time(x) => Value::Time(*x),
            Self::OptTime(x) => Value::OptTime(*x),
        }
    }
}

/// What the caller wants back.
#[derive(Clone, Copy)]
enum Want {
    Tasks,
    Task,
    Int,
    Texts,
    Account,
    Rows,
}

/// What the caller gets back.
enum Out {
    Tasks(Vec<Task>),
    Task(Option<Task>),
    Int(Option<i64>),
    Texts(Option<(String, Option<String>)>),
    Account(Option<AccountRow>),
    Rows(u64),
}

struct Job {
    sql: String,
    args: Vec<Owned>,
    want: Want,
    reply: oneshot::Sender<sqlx::Result<Out>>,
}

enum Msg {
    Job(Job),
    Close(oneshot::Sender<()>),
}

/// The handle to the writer task.
pub(crate) struct WriteQueue {
    tx: mpsc::Sender<Msg>,
    /// Transactions begun by the writer, for tests to tell a rerun from a single round.
    #[cfg(test)]
    rounds: Arc<AtomicUsize>,
}

fn batch_error(e: &sqlx::Error) -> sqlx::Error {
    // sqlx errors cannot be cloned; every caller of a failed batch gets the same I/O-class
    // error, which the store reports as "unavailable" (nothing of the batch was committed), or
    // as "out of space" when that is why it failed.
    let kind = if crate::error::is_out_of_space(e) {
        std::io::ErrorKind::StorageFull
    } else {
        std::io::ErrorKind::Other
    };
    sqlx::Error::Io(std::io::Error::new(
        kind,
        format!("batch not committed: {e}"),
    ))
}

impl WriteQueue {
    /// Starts the writer task on its own connection.
    pub(crate) fn start(conn: SqliteConnection) -> Self {
        let (tx, rx) = mpsc::channel(4 * MAX_BATCH);
        let writer = Writer::new(conn);
        #[cfg(test)]
        let rounds = Arc::clone(&writer.rounds);
        tokio::spawn(run(writer, rx));
        Self {
            tx,
            #[cfg(test)]
            rounds,
        }
    }

    async fn submit(&self, sql: &str, args: &[Value<'_>], want: Want) -> sqlx::Result<Out> {
        let (reply, answer) = oneshot::channel();
        let job = Job {
            sql: sql.to_owned(),
            args: args.iter().map(Owned::from_value).collect(),
            want,
            reply,
        };
        self.tx
            .send(Msg::Job(job))
            .await
            .map_err(|_| sqlx::Error::PoolClosed)?;
        answer.await.map_err(|_| sqlx::Error::WorkerCrashed)?
    }

    /// Finishes the queued writes, then closes the connection. Later writes fail as closed.
    pub(crate) async fn close(&self) {
        let (done, wait) = oneshot::channel();
        if self.tx.send(Msg::Close(done)).await.is_ok() {
            let _ = wait.await;
        }
    }
}

async fn run_job(conn: &mut SqliteConnection, job: &Job) -> sqlx::Result<Out> {
    let args: Vec<Value<'_>> = job.args.iter().map(Owned::view).collect();
    let sql = job.sql.as_str();
    Ok(match job.want {
        Want::Tasks => Out::Tasks(run_tasks(&mut *conn, sql, &args).await?),
        Want::Task => Out::Task(run_task(&mut *conn, sql, &args).await?),
        Want::Int => Out::Int(run_int(&mut *conn, sql, &args).await?),
        Want::Texts => Out::Texts(run_texts(&mut *conn, sql, &args).await?),
        Want::Account => Out::Account(run_account(&mut *conn, sql, &args).await?),
        Want::Rows => Out::Rows(run_execute(&mut *conn, sql, &args).await?),
    })
}

/// The queue's connection, and what SQLite's rollback hook has seen on it.
struct Writer {
    conn: SqliteConnection,
    /// Set by the rollback hook whenever a transaction on `conn` is rolled back: by SQLite
    /// itself after a failed statement, or by our own `rollback`. A statement-level rollback
    /// (a constraint error under the default `abort`) does not set it. Cleared as each round
    /// begins; the hook runs on sqlx's worker thread before the statement's answer is sent
    /// back, so the flag is up to date whenever a job's result arrives.
    rolled_back: Arc<AtomicBool>,
    /// Whether the hook is installed. If it could not be (the connection's thread is gone),
    /// no failure is trusted to have left the transaction intact.
    hooked: bool,
    #[cfg(test)]
    rounds: Arc<AtomicUsize>,
}

impl Writer {
    fn new(conn: SqliteConnection) -> Self {
        Self {
            conn,
            rolled_back: Arc::new(AtomicBool::new(false)),
            hooked: false,
            #[cfg(test)]
            rounds: Arc::new(AtomicUsize::new(0)),
        }
    }

    async fn install_rollback_hook(&mut self) {
        match self.conn.lock_handle().await {
            Ok(mut handle) => {
                let rolled_back = Arc::clone(&self.rolled_back);
                handle.set_rollback_hook(move || rolled_back.store(true, Ordering::Relaxed));
                self.hooked = true;
            }
            Err(e) => tracing::error!(error = %e, "cannot watch the write queue's rollbacks"),
        }
    }

    /// Begins a round's transaction. A connection left inside a transaction (by a `rollback`
    /// that failed) refuses to begin another: that one is rolled back, and the begin tried
    /// once more. Any other failure (the lock still held after the busy timeout) is final.
    async fn begin(&mut self) -> sqlx::Result<()> {
        let Err(e) = self.conn.execute("begin immediate").await else {
            return Ok(());
        };
        self.rolled_back.store(false, Ordering::Relaxed);
        let _ = self.conn.execute("rollback").await;
        if self.rolled_back.load(Ordering::Relaxed) {
            self.conn.execute("begin immediate").await.map(drop)
        } else {
            Err(e)
        }
    }

    /// Whether the round's transaction still holds every earlier job's write and nothing of
    /// this one's if it failed: SQLite did not roll the transaction back, and a failure was
    /// SQLite's own statement error, which it undoes alone (under the default `abort`; no
    /// queued statement uses `or fail`, which keeps a failed statement's earlier rows). A
    /// failure after the statement ran (a row that does not decode) leaves its write in place,
    /// so it ends the round too.
    fn transaction_intact(&self, result: &sqlx::Result<Out>) -> bool {
        let rolled_back = self.rolled_back.load(Ordering::Relaxed);
        match result {
            Ok(_) => !rolled_back,
            Err(sqlx::Error::Database(_)) => self.hooked && !rolled_back,
            Err(_) => false,
        }
    }

    async fn commit_batch(&mut self, batch: &mut Vec<Job>) {
        // Each round either commits or answers one job with the failure that ended it, so there
        // are at most as many rounds as jobs.
        while !batch.is_empty() {
            if let Err(e) = self.begin().await {
                for job in batch.drain(..) {
                    let _ = job.reply.send(Err(batch_error(&e)));
                }
                return;
            }
            #[cfg(test)]
            self.rounds.fetch_add(1, Ordering::Relaxed);
            self.rolled_back.store(false, Ordering::Relaxed);
            let mut results = Vec::with_capacity(batch.len());
            let mut ended = None;
            for (i, job) in batch.iter().enumerate() {
                let result = run_job(&mut self.conn, job).await;
                if !self.transaction_intact(&result) {
                    ended = Some((i, result));
                    break;
                }
                results.push(result);
            }
            if let Some((i, result)) = ended {
                // Roll back what is left of this round (nothing, if SQLite already did), answer
                // the job that ended it, and run the others again.
                let _ = self.conn.execute("rollback").await;
                let answer = result.and_then(|_| Err(ended_by_success()));
                let _ = batch.remove(i).reply.send(answer);
                continue;
            }
            match self.conn.execute("commit").await {
                Ok(_) => {
                    for (job, result) in batch.drain(..).zip(results) {
                        let _ = job.reply.send(result);
                    }
                }
                Err(e) => {
                    let _ = self.conn.execute("rollback").await;
                    // A job that failed on its own keeps its own error.
                    for (job, result) in batch.drain(..).zip(results) {
                        let _ = job.reply.send(result.and_then(|_| Err(batch_error(&e))));
                    }
                }
            }
        }
    }
}

/// The answer to a statement that succeeded while its transaction was rolled back, which no
/// single write of the store does: whether its write survived is unknown.
fn ended_by_success() -> sqlx::Error {
    sqlx::Error::Protocol("a queued statement ended its batch's transaction".into())
}

async fn run(mut writer: Writer, mut rx: mpsc::Receiver<Msg>) {
    writer.install_rollback_hook().await;
    let mut batch: Vec<Job> = Vec::with_capacity(MAX_BATCH);
    let mut closing = None;
    while let Some(first) = rx.recv().await {
        match first {
            Msg::Job(job) => batch.push(job),
            Msg::Close(done) => {
                closing = Some(done);
                break;
            }
        }
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(Msg::Job(job)) => batch.push(job),
                Ok(Msg::Close(done)) => {
                    closing = Some(done);
                    break;
                }
                Err(_) => break,
            }
        }
        writer.commit_batch(&mut batch).await;
        if closing.is_some() {
            break;
        }
    }
    rx.close();
    // Anything still queued after a close is refused rather than dropped silently.
    while let Ok(msg) = rx.try_recv() {
        if let Msg::Job(job) = msg {
            let _ = job.reply.send(Err(sqlx::Error::PoolClosed));
        }
    }
    let _ = sqlx::Connection::close(writer.conn).await;
    if let Some(done) = closing {
        let _ = done.send(());
    }
}

/// Runs single statements through the queue.
pub(crate) struct QueueExec<'a>(pub(crate) &'a WriteQueue);

fn unexpected() -> sqlx::Error {
    sqlx::Error::Protocol("write queue answered with the wrong shape".into())
}

#[async_trait]
impl Read for QueueExec<'_> {
    async fn tasks(&mut self, sql: &str, args: &[Value<'_>]) -> sqlx::Result<Vec<Task>> {
        match self.0.submit(sql, args, Want::Tasks).await? {
            Out::Tasks(v) => Ok(v),
            _ => Err(unexpected()),
        }
    }

    async fn task(&mut self, sql: &str, args: &[Value<'_>]) -> sqlx::Result<Option<Task>> {
        match self.0.submit(sql, args, Want::Task).await? {
            Out::Task(v) => Ok(v),
            _ => Err(unexpected()),
        }
    }

    async fn int(&mut self, sql: &str, args: &[Value<'_>]) -> sqlx::Result<Option<i64>> {
        match self.0.submit(sql, args, Want::Int).await? {
            Out::Int(v) => Ok(v),
            _ => Err(unexpected()),
        }
    }

    async fn texts(
        &mut self,
        sql: &str,
        args: &[Value<'_>],
    ) -> sqlx::Result<Option<(String, Option<String>)>> {
        match self.0.submit(sql, args, Want::Texts).await? {
            Out::Texts(v) => Ok(v),
            _ => Err(unexpected()),
        }
    }

    async fn account(&mut self, sql: &str, args: &[Value<'_>]) -> sqlx::Result<Option<AccountRow>> {
        match self.0.submit(sql, args, Want::Account).await? {
            Out::Account(v) => Ok(v),
            _ => Err(unexpected()),
        }
    }
}

#[async_trait]
impl Exec for QueueExec<'_> {
    async fn execute(&mut self, sql: &str, args: &[Value<'_>]) -> sqlx::Result<u64> {
        match self.0.submit(sql, args, Want::Rows).await? {
            Out::Rows(v) => Ok(v),
            _ => Err(unexpected()),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::Duration;

    use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};

    use super::*;
    use crate::error::is_out_of_space;

    /// How a test sees a job's answer.
    #[derive(Debug, PartialEq)]
    enum Answer {
        Rows(u64),
        Int(Option<i64>),
        /// Refused by a unique index.
        Unique,
        /// Refused as out of space.
        Full,
        /// Any other failure.
        Failed,
    }

    impl From<sqlx::Result<Out>> for Answer {
        fn from(result: sqlx::Result<Out>) -> Self {
            match result {
                Ok(Out::Rows(n)) => Self::Rows(n),
                Ok(Out::Int(v)) => Self::Int(v),
                Ok(_) => panic!("an answer of another shape"),
                Err(sqlx::Error::Database(e)) if e.is_unique_violation() => Self::Unique,
                Err(e) if is_out_of_space(&e) => Self::Full,
                Err(_) => Self::Failed,
            }
        }
    }

    /// The options the store opens a database file with (WAL, full sync), holding at most
    /// `max_pages` pages when given.
    fn file_options(path: &Path, max_pages: Option<u64>) -> SqliteConnectOptions {
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(5));
        match max_pages {
            Some(pages) => options.pragma("max_page_count", pages.to_string()),
            None => options,
        }
    }

    async fn queue_on(path: &Path, max_pages: Option<u64>) -> WriteQueue {
        let options = file_options(path, max_pages);
        WriteQueue::start(sqlx::ConnectOptions::connect(&options).await.unwrap())
    }

    /// Queues `jobs` together, then waits for their answers. Every job is queued before this
    /// task yields, so on the test's single-threaded runtime the writer finds them all
    /// waiting: they are one batch. Returns the answers and how many transactions the writer
    /// began for them.
    async fn batch(queue: &WriteQueue, jobs: &[(&str, Want)]) -> (Vec<Answer>, usize) {
        let rounds = queue.rounds.load(Ordering::Relaxed);
        let mut answers = Vec::new();
        for &(sql, want) in jobs {
            let (reply, answer) = oneshot::channel();
            let job = Job {
                sql: sql.to_owned(),
                args: Vec::new(),
                want,
                reply,
            };
            queue.tx.send(Msg::Job(job)).await.unwrap();
            answers.push(answer);
        }
        let mut results = Vec::new();
        for answer in answers {
            results.push(Answer::from(answer.await.unwrap()));
        }
        (results, queue.rounds.load(Ordering::Relaxed) - rounds)
    }

    /// Runs `statements` one after the other, each on its own.
    async fn setup(queue: &WriteQueue, statements: &[&str]) {
        for &statement in statements {
            let (answers, _) = batch(queue, &[(statement, Want::Rows)]).await;
            assert!(matches!(answers[..], [Answer::Rows(_)]), "{statement}");
        }
    }

    /// The integers `sql` selects from the file, read on a connection of its own.
    fn select(path: &Path, sql: &str) -> Vec<i64> {
        let conn = rusqlite::Connection::open(path).unwrap();
        let mut stmt = conn.prepare(sql).unwrap();
        let rows = stmt.query_map([], |row| row.get(0)).unwrap();
        rows.collect::<Result<_, _>>().unwrap()
    }

    fn integrity_check(path: &Path) -> String {
        let conn = rusqlite::Connection::open(path).unwrap();
        conn.query_row("pragma integrity_check", [], |row| row.get(0))
            .unwrap()
    }

    const KEYS: &str = "select k from t order by k";

    /// A write refused by a unique index is undone by SQLite alone (a statement-level
    /// rollback, which the rollback hook does not report): it fails, the writes queued around
    /// it commit in the same transaction, and nothing is run twice.
    #[tokio::test]
    async fn a_write_refused_by_a_unique_index_fails_alone_in_one_round() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let queue = queue_on(&path, None).await;
        setup(
            &queue,
            &[
                "create table t (k integer)",
                "create unique index t_k on t (k)",
                "insert into t values (2)",
            ],
        )
        .await;
        let (answers, rounds) = batch(
            &queue,
            &[
                ("insert into t values (1)", Want::Rows),
                ("insert into t values (2)", Want::Rows),
                ("insert into t values (3)", Want::Rows),
            ],
        )
        .await;
        assert_eq!(answers, [Answer::Rows(1), Answer::Unique, Answer::Rows(1)]);
        assert_eq!(rounds, 1, "the batch was run again");
        queue.close().await;
        assert_eq!(select(&path, KEYS), [1, 2, 3]);
    }

    /// A constraint under `or rollback` makes SQLite roll back the whole transaction, which no
    /// error code tells apart from a statement-level rollback: the rollback hook does. The
    /// write fails alone; the one before it, rolled back with the transaction, and the one
    /// after it, which would otherwise have committed on its own, are run again and committed.
    #[tokio::test]
    async fn a_write_that_rolls_back_its_transaction_fails_alone_and_the_others_run_again() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let queue = queue_on(&path, None).await;
        setup(
            &queue,
            &[
                "create table t (k integer)",
                "create unique index t_k on t (k)",
                "insert into t values (2)",
            ],
        )
        .await;
        let (answers, rounds) = batch(
            &queue,
            &[
                ("insert into t values (1)", Want::Rows),
                ("insert or rollback into t values (2)", Want::Rows),
                ("insert into t values (3)", Want::Rows),
            ],
        )
        .await;
        assert_eq!(answers, [Answer::Rows(1), Answer::Unique, Answer::Rows(1)]);
        assert_eq!(rounds, 2);
        queue.close().await;
        assert_eq!(select(&path, KEYS), [1, 2, 3]);
    }

    /// On a database that has run out of room, writes that need new pages (large rows in an
    /// indexed table, whose failure makes SQLite roll back the whole transaction) are refused
    /// as out of space, and small ones that fit in pages already there are acknowledged, all in
    /// one batch: each acknowledged write is in the file, each refused one is not, and the file
    /// passes `pragma integrity_check`.
    #[tokio::test]
    async fn writes_that_find_the_database_full_fail_alone_and_the_file_stays_sound() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        // 256 KiB of 4 KiB pages.
        let queue = queue_on(&path, Some(64)).await;
        setup(
            &queue,
            &[
                "create table notes (id integer primary key)",
                "create table blobs (id integer primary key, b blob)",
                "create index blobs_b on blobs (b)",
            ],
        )
        .await;
        let fill = [(
            "insert into blobs (b) values (randomblob(1000))",
            Want::Rows,
        )];
        loop {
            match &batch(&queue, &fill).await.0[..] {
                [Answer::Rows(1)] => {}
                [Answer::Full] => break,
                other => panic!("{other:?}"),
            }
        }

        let note = |i: i64| format!("insert into notes values ({i})");
        let big = |i: i64| format!("insert into blobs values ({}, zeroblob(100000))", 1000 + i);
        let statements = [note(1), big(2), note(3), note(4), big(5), note(6)];
        let jobs: Vec<_> = statements
            .iter()
            .map(|s| (s.as_str(), Want::Rows))
            .collect();
        let (answers, rounds) = batch(&queue, &jobs).await;
        use Answer::{Full, Rows};
        assert_eq!(answers, [Rows(1), Full, Rows(1), Rows(1), Full, Rows(1)]);
        // Each refused insert rolled back the whole transaction: the batch took a round more
        // for each.
        assert_eq!(rounds, 3);
        queue.close().await;

        let stored = select(
            &path,
            "select id from notes union all select id - 1000 from blobs where id > 1000 order by 1",
        );
        let acknowledged: Vec<i64> = (1..=6)
            .zip(&answers)
            .filter(|(_, answer)| **answer == Rows(1))
            .map(|(i, _)| i)
            .collect();
        assert_eq!(stored, acknowledged);
        assert_eq!(integrity_check(&path), "ok");
    }

    /// A failure after the statement ran (here its returned row does not decode as the caller
    /// asked) leaves its write in the transaction, where SQLite did not undo it: the round is
    /// rolled back and run again without it, so the caller told it failed finds nothing saved.
    #[tokio::test]
    async fn a_write_whose_answer_cannot_be_read_is_not_saved() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let queue = queue_on(&path, None).await;
        setup(&queue, &["create table t (k integer)"]).await;
        let (answers, rounds) = batch(
            &queue,
            &[
                ("insert into t values (1) returning k", Want::Int),
                ("insert into t values (2) returning 'two'", Want::Int),
                ("insert into t values (3)", Want::Rows),
            ],
        )
        .await;
        assert_eq!(
            answers,
            [Answer::Int(Some(1)), Answer::Failed, Answer::Rows(1)]
        );
        assert_eq!(rounds, 2);
        queue.close().await;
        assert_eq!(select(&path, KEYS), [1, 3]);
    }

    /// A connection left inside a transaction (as a failed `rollback` would leave it) cannot
    /// begin the next batch's: that transaction is rolled back, unsaved, and the batch begins
    /// and commits.
    #[tokio::test]
    async fn a_batch_begins_on_a_connection_left_inside_a_transaction() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let mut conn = sqlx::ConnectOptions::connect(&file_options(&path, None))
            .await
            .unwrap();
        conn.execute("create table t (k integer); begin; insert into t values (0)")
            .await
            .unwrap();
        let queue = WriteQueue::start(conn);
        let (answers, rounds) = batch(&queue, &[("insert into t values (1)", Want::Rows)]).await;
        assert_eq!(answers, [Answer::Rows(1)]);
        assert_eq!(rounds, 1);
        queue.close().await;
        assert_eq!(select(&path, KEYS), [1]);
    }
}
