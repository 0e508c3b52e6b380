//! Group commit for SQLite. Single-statement writes are queued to one writer task, which runs
//! whatever has queued up (up to [`MAX_BATCH`]) inside one `begin immediate ... commit` and only
//! then answers each caller. With `synchronous = FULL` that is one fsync per batch instead of
//! one per write, so every acknowledged write is still durable, at several times the rate.
//!
//! A statement that fails inside the batch is rolled back by SQLite on its own (statement-level
//! rollback) and reported to its caller; the others commit. Some failures (a full database or
//! disk, an I/O error, no memory) may make SQLite roll back the whole transaction instead, after
//! which later statements would each commit on their own: the batch stops there, rolls back,
//! reports that failure to its caller and runs the other statements again in a new transaction.
//! If the commit itself fails, every caller in the batch gets an error: nothing is acknowledged
//! that was not committed.

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

/// Whether a failed statement may have ended the whole transaction rather than only itself:
/// SQLite may roll everything back on `SQLITE_FULL`, `IOERR`, `NOMEM`, `BUSY` and `INTERRUPT`
/// ("Response To Errors Within A Transaction"; a single-row insert that meets a full database
/// does). An error that is not SQLite's (the connection's thread gone) is treated alike.
fn may_end_transaction(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(db) => {
            let code = db.code();
            let primary = crate::error::sqlite_primary_code(code.as_deref().unwrap_or(""));
            matches!(primary, 5 | 7 | 9 | 10 | crate::error::SQLITE_FULL)
        }
        sqlx::Error::Io(_) | sqlx::Error::WorkerCrashed | sqlx::Error::Protocol(_) => true,
        _ => false,
    }
}

impl WriteQueue {
    /// Starts the writer task on its own connection.
    pub(crate) fn start(conn: SqliteConnection) -> Self {
        let (tx, rx) = mpsc::channel(4 * MAX_BATCH);
        tokio::spawn(run(conn, rx));
        Self { tx }
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

async fn run(mut conn: SqliteConnection, mut rx: mpsc::Receiver<Msg>) {
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
        commit_batch(&mut conn, &mut batch).await;
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
    let _ = sqlx::Connection::close(conn).await;
    if let Some(done) = closing {
        let _ = done.send(());
    }
}

async fn commit_batch(conn: &mut SqliteConnection, batch: &mut Vec<Job>) {
    // Each round either commits or answers one job with the failure that ended its
    // transaction, so there are at most as many rounds as jobs.
    while !batch.is_empty() {
        if let Err(e) = conn.execute("begin immediate").await {
            for job in batch.drain(..) {
                let _ = job.reply.send(Err(batch_error(&e)));
            }
            return;
        }
        let mut results = Vec::with_capacity(batch.len());
        let mut ended = None;
        for (i, job) in batch.iter().enumerate() {
            match run_job(conn, job).await {
                Err(e) if may_end_transaction(&e) => {
                    ended = Some((i, e));
                    break;
                }
                result => results.push(result),
            }
        }
        if let Some((i, e)) = ended {
            // Roll back what is left of this round (nothing, if SQLite already did), answer
            // the job that ended it, and run the others again.
            let _ = conn.execute("rollback").await;
            let _ = batch.remove(i).reply.send(Err(e));
            continue;
        }
        match conn.execute("commit").await {
            Ok(_) => {
                for (job, result) in batch.drain(..).zip(results) {
                    let _ = job.reply.send(result);
                }
            }
            Err(e) => {
                let _ = conn.execute("rollback").await;
                for job in batch.drain(..) {
                    let _ = job.reply.send(Err(batch_error(&e)));
                }
            }
        }
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
