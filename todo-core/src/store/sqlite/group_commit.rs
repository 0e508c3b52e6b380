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

use sqlx::sqlite::{SqliteArguments, SqliteRow};
use sqlx::{Executor, SqliteConnection};
use tokio::sync::{mpsc, oneshot};

use super::error::from_sqlx;
use crate::error::{Error, Result};

/// Most writes committed together.
pub(crate) const MAX_BATCH: usize = 256;

/// The turn to hold a database file's write lock, shared by the writer and the store's
/// transactions' connection: each round of the writer and each write on that connection takes
/// it first, in the order they asked (tokio's mutex is fair). Without it, a connection that
/// takes the lock again at once after each short transaction would keep the other waiting in
/// SQLite's busy handler, which polls with growing sleeps and can miss every gap.
pub(crate) type WriteTurn = Arc<tokio::sync::Mutex<()>>;

/// How a queue reads the row a write returns (`returning ...`): for the store, a task.
pub(crate) type Decode<T> = fn(&SqliteRow) -> Result<T>;

/// What a write may call for once its row is read: another statement, run in the same
/// transaction, or nothing. The write and its follow-up are committed together or not at all.
pub(crate) type FollowUp<T> = fn(&T) -> Result<Option<(&'static str, SqliteArguments<'static>)>>;

/// One write: a statement that returns at most one row, its arguments, what it may call for,
/// and its caller.
struct Job<T> {
    sql: &'static str,
    /// Cloned for each round the write runs in.
    args: SqliteArguments<'static>,
    then: Option<FollowUp<T>>,
    reply: oneshot::Sender<Result<Option<T>>>,
}

enum Msg<T> {
    Job(Job<T>),
    Close(oneshot::Sender<()>),
}

/// The handle to the writer task.
pub(crate) struct GroupCommit<T> {
    tx: mpsc::Sender<Msg<T>>,
    /// Transactions begun by the writer, for tests to tell a rerun from a single round.
    #[cfg(test)]
    rounds: Arc<AtomicUsize>,
}

/// What every caller of a batch whose transaction could not begin or commit hears: nothing of
/// theirs was saved. Out of space when that is why; else unavailable (retry).
fn not_committed(e: &Error) -> Error {
    let text = format!("batch not committed: {e}");
    match e {
        Error::OutOfSpace(_) => Error::OutOfSpace(text.into()),
        _ => Error::Unavailable(text.into()),
    }
}

impl<T: Send + 'static> GroupCommit<T> {
    /// Starts the writer task on its own connection; `decode` reads the row each write returns;
    /// each round takes `turn` while it holds the write lock.
    pub(crate) fn start(conn: SqliteConnection, decode: Decode<T>, turn: WriteTurn) -> Self {
        let (tx, rx) = mpsc::channel(4 * MAX_BATCH);
        let writer = Writer::new(conn, decode, turn);
        #[cfg(test)]
        let rounds = Arc::clone(&writer.rounds);
        tokio::spawn(run(writer, rx));
        Self {
            tx,
            #[cfg(test)]
            rounds,
        }
    }

    /// Runs `sql` with `args` in the next batch; its row, decoded, once the batch committed.
    pub(crate) async fn write(
        &self,
        sql: &'static str,
        args: SqliteArguments<'static>,
    ) -> Result<Option<T>> {
        self.write_then(sql, args, None).await
    }

    /// Like [`GroupCommit::write`], and when the statement returns a row, runs the statement
    /// `then` makes of it, if any, in the same transaction: both are kept, or neither (and the
    /// caller hears the failure).
    pub(crate) async fn write_then(
        &self,
        sql: &'static str,
        args: SqliteArguments<'static>,
        then: Option<FollowUp<T>>,
    ) -> Result<Option<T>> {
        let (reply, answer) = oneshot::channel();
        let job = Job {
            sql,
            args,
            then,
            reply,
        };
        self.tx
            .send(Msg::Job(job))
            .await
            .map_err(|_| Error::Unavailable("the write queue is closed".into()))?;
        answer
            .await
            .map_err(|_| Error::Unavailable("the write queue stopped".into()))?
    }

    /// Finishes the queued writes, then closes the connection. Later writes fail as closed.
    pub(crate) async fn close(&self) {
        let (done, wait) = oneshot::channel();
        if self.tx.send(Msg::Close(done)).await.is_ok() {
            let _ = wait.await;
        }
    }
}

/// How one write of a round went.
enum Ran<T> {
    /// It ran; its row, decoded.
    Done(Option<T>),
    /// SQLite refused the statement: it undid the statement alone (under the default `abort`;
    /// no queued statement uses `or fail`, which keeps a failed statement's earlier rows),
    /// unless it rolled back the whole transaction, which the rollback hook tells.
    Refused(Error),
    /// It failed after its statement ran (its row does not decode), or its connection failed:
    /// its write may be in the transaction.
    Failed(Error),
}

impl<T> Ran<T> {
    fn into_result(self) -> Result<Option<T>> {
        match self {
            Self::Done(row) => Ok(row),
            Self::Refused(e) | Self::Failed(e) => Err(e),
        }
    }
}

/// The queue's connection, and what SQLite's rollback hook has seen on it.
struct Writer<T> {
    conn: SqliteConnection,
    decode: Decode<T>,
    /// Taken for each round, from before its `begin` until it has committed or rolled back.
    turn: WriteTurn,
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

impl<T> Writer<T> {
    fn new(conn: SqliteConnection, decode: Decode<T>, turn: WriteTurn) -> Self {
        Self {
            conn,
            decode,
            turn,
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
    async fn begin(&mut self) -> Result<()> {
        let Err(e) = self.conn.execute("begin immediate").await else {
            return Ok(());
        };
        self.rolled_back.store(false, Ordering::Relaxed);
        let _ = self.conn.execute("rollback").await;
        if self.rolled_back.load(Ordering::Relaxed) {
            self.conn
                .execute("begin immediate")
                .await
                .map(drop)
                .map_err(from_sqlx)
        } else {
            Err(from_sqlx(e))
        }
    }

    /// Runs `job`: its statement, then its follow-up if it calls for one. A follow-up that
    /// fails ends the round like a failed job (the round rolls back, the job hears the error,
    /// the others run again), so the write and its follow-up are kept together or not at all,
    /// without a savepoint on every job.
    async fn run_job(&mut self, job: &Job<T>) -> Ran<T> {
        let ran = self.run_statement(job).await;
        let (Some(then), Ran::Done(Some(value))) = (job.then, &ran) else {
            return ran;
        };
        match then(value) {
            Ok(None) => ran,
            Ok(Some((sql, args))) => match self.conn.execute(sqlx::query_with(sql, args)).await {
                Ok(_) => ran,
                Err(e) => Ran::Failed(from_sqlx(e)),
            },
            Err(e) => Ran::Failed(e),
        }
    }

    /// Runs `job`'s statement and decodes its row.
    async fn run_statement(&mut self, job: &Job<T>) -> Ran<T> {
        let query = sqlx::query_with(job.sql, job.args.clone());
        match self.conn.fetch_optional(query).await {
            Ok(None) => Ran::Done(None),
            Ok(Some(row)) => match (self.decode)(&row) {
                Ok(value) => Ran::Done(Some(value)),
                Err(e) => Ran::Failed(e),
            },
            Err(e @ sqlx::Error::Database(_)) => Ran::Refused(from_sqlx(e)),
            Err(e) => Ran::Failed(from_sqlx(e)),
        }
    }

    /// Whether the round's transaction still holds every earlier job's write and nothing of
    /// this one's if it failed.
    fn transaction_intact(&self, ran: &Ran<T>) -> bool {
        let rolled_back = self.rolled_back.load(Ordering::Relaxed);
        match ran {
            Ran::Done(_) => !rolled_back,
            Ran::Refused(_) => self.hooked && !rolled_back,
            Ran::Failed(_) => false,
        }
    }

    async fn commit_batch(&mut self, batch: &mut Vec<Job<T>>) {
        // Each round either commits or answers one job with the failure that ended it, so there
        // are at most as many rounds as jobs.
        while !batch.is_empty() {
            let turn = Arc::clone(&self.turn);
            let _turn = turn.lock().await;
            if let Err(e) = self.begin().await {
                for job in batch.drain(..) {
                    let _ = job.reply.send(Err(not_committed(&e)));
                }
                return;
            }
            #[cfg(test)]
            self.rounds.fetch_add(1, Ordering::Relaxed);
            self.rolled_back.store(false, Ordering::Relaxed);
            let mut results = Vec::with_capacity(batch.len());
            let mut ended = None;
            for (i, job) in batch.iter().enumerate() {
                let ran = self.run_job(job).await;
                if !self.transaction_intact(&ran) {
                    ended = Some((i, ran));
                    break;
                }
                results.push(ran.into_result());
            }
            if let Some((i, ran)) = ended {
                // Roll back what is left of this round (nothing, if SQLite already did), answer
                // the job that ended it, and run the others again.
                let _ = self.conn.execute("rollback").await;
                let answer = match ran {
                    // No single write of the store ends its transaction and succeeds: whether
                    // it survived is unknown.
                    Ran::Done(_) => Err(Error::Storage(
                        "a queued statement ended its batch's transaction".into(),
                    )),
                    other => other.into_result(),
                };
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
                    let e = from_sqlx(e);
                    // A job that failed on its own keeps its own error.
                    for (job, result) in batch.drain(..).zip(results) {
                        let _ = job.reply.send(result.and_then(|_| Err(not_committed(&e))));
                    }
                }
            }
        }
    }
}

async fn run<T>(mut writer: Writer<T>, mut rx: mpsc::Receiver<Msg<T>>) {
    writer.install_rollback_hook().await;
    let mut batch: Vec<Job<T>> = Vec::with_capacity(MAX_BATCH);
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
            let _ = job
                .reply
                .send(Err(Error::Unavailable("the write queue is closed".into())));
        }
    }
    let _ = sqlx::Connection::close(writer.conn).await;
    if let Some(done) = closing {
        let _ = done.send(());
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::Duration;

    use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};

    use super::*;

    /// How a test sees a job's answer.
    #[derive(Debug, PartialEq)]
    enum Answer {
        /// Written; the integer it returned, if any.
        Done(Option<i64>),
        /// Refused by a unique index.
        Unique,
        /// Refused as out of space.
        Full,
        /// Any other failure.
        Failed,
    }

    impl From<Result<Option<i64>>> for Answer {
        fn from(result: Result<Option<i64>>) -> Self {
            let unique = |e: &crate::error::BoxError| match e.downcast_ref::<sqlx::Error>() {
                Some(sqlx::Error::Database(db)) => db.is_unique_violation(),
                _ => false,
            };
            match result {
                Ok(v) => Self::Done(v),
                Err(Error::Storage(e)) if unique(&e) => Self::Unique,
                Err(Error::OutOfSpace(_)) => Self::Full,
                Err(_) => Self::Failed,
            }
        }
    }

    /// Reads the integer a write returns, checking its type (so a text fails to decode).
    fn integer(row: &SqliteRow) -> Result<i64> {
        sqlx::Row::try_get(row, 0).map_err(from_sqlx)
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

    async fn queue_on(path: &Path, max_pages: Option<u64>) -> GroupCommit<i64> {
        let options = file_options(path, max_pages);
        let conn = sqlx::ConnectOptions::connect(&options).await.unwrap();
        GroupCommit::start(conn, integer, WriteTurn::default())
    }

    /// Queues `jobs` together, then waits for their answers. Every job is queued before this
    /// task yields, so on the test's single-threaded runtime the writer finds them all
    /// waiting: they are one batch. Returns the answers and how many transactions the writer
    /// began for them.
    async fn batch(queue: &GroupCommit<i64>, jobs: &[&str]) -> (Vec<Answer>, usize) {
        let rounds = queue.rounds.load(Ordering::Relaxed);
        let mut answers = Vec::new();
        for &sql in jobs {
            let (reply, answer) = oneshot::channel();
            let job = Job {
                // Queued statements are the store's constants; a test's live as long.
                sql: Box::leak(sql.to_owned().into_boxed_str()),
                args: SqliteArguments::default(),
                then: None,
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
    async fn setup(queue: &GroupCommit<i64>, statements: &[&str]) {
        for &statement in statements {
            let (answers, _) = batch(queue, &[statement]).await;
            assert!(matches!(answers[..], [Answer::Done(_)]), "{statement}");
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
                "insert into t values (1)",
                "insert into t values (2)",
                "insert into t values (3)",
            ],
        )
        .await;
        assert_eq!(
            answers,
            [Answer::Done(None), Answer::Unique, Answer::Done(None)]
        );
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
                "insert into t values (1)",
                "insert or rollback into t values (2)",
                "insert into t values (3)",
            ],
        )
        .await;
        assert_eq!(
            answers,
            [Answer::Done(None), Answer::Unique, Answer::Done(None)]
        );
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
        let fill = ["insert into blobs (b) values (randomblob(1000))"];
        loop {
            match &batch(&queue, &fill).await.0[..] {
                [Answer::Done(None)] => {}
                [Answer::Full] => break,
                other => panic!("{other:?}"),
            }
        }

        let note = |i: i64| format!("insert into notes values ({i})");
        let big = |i: i64| format!("insert into blobs values ({}, zeroblob(100000))", 1000 + i);
        let statements = [note(1), big(2), note(3), note(4), big(5), note(6)];
        let jobs: Vec<_> = statements.iter().map(String::as_str).collect();
        let (answers, rounds) = batch(&queue, &jobs).await;
        use Answer::{Done, Full};
        assert_eq!(
            answers,
            [Done(None), Full, Done(None), Done(None), Full, Done(None)]
        );
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
            .filter(|(_, answer)| **answer == Done(None))
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
                "insert into t values (1) returning k",
                "insert into t values (2) returning 'two'",
                "insert into t values (3)",
            ],
        )
        .await;
        assert_eq!(
            answers,
            [Answer::Done(Some(1)), Answer::Failed, Answer::Done(None)]
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
        let queue = GroupCommit::start(conn, integer, WriteTurn::default());
        let (answers, rounds) = batch(&queue, &["insert into t values (1)"]).await;
        assert_eq!(answers, [Answer::Done(None)]);
        assert_eq!(rounds, 1);
        queue.close().await;
        assert_eq!(select(&path, KEYS), [1]);
    }
}
