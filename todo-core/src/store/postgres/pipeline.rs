//! PostgreSQL reads pipelined on a few shared connections, through tokio-postgres.
//!
//! On the pool, each read takes a connection of its own: one statement goes out, the backend
//! behind it wakes up, answers, and sleeps again. Under load that is one backend wake-up, two
//! system calls on each side and a scheduler hand-off per request, and on a small machine those
//! cost more than the query (`docs/benchmarks.md` has the measurements). tokio-postgres sends the statements of every caller sharing a connection
//! back to back without waiting for answers in between (pipelining), so one backend wake-up and
//! one read serve a whole batch of concurrent reads. sqlx cannot do that.
//!
//! Reads only (typed reads: a task, a version, an account, a list page): a pipeline is shared,
//! so it cannot hold a transaction, and a read lost with its connection may be repeated where a
//! write may not. Writes, transactions and migrations stay on the pool. Each statement is
//! prepared once per connection with the same parameter types sqlx declares for the same
//! values (`bigint`, `text`, `smallint`, `timestamptz`), so both drivers run the same plans.
//!
//! TLS follows the URL's `sslmode` as sqlx (and libpq) do: `prefer` encrypts when the server
//! offers it, `require` insists; neither checks the certificate. `verify-full` checks it against
//! the Web PKI roots. Settings only sqlx handles (`verify-ca`, a root certificate of one's own,
//! client certificates) keep reads on the pool.
//!
//! Behind a transaction pooler ([`Pooler::Transaction`](crate::Pooler::Transaction)) nothing
//! is prepared: each read is one unnamed statement (`query_typed`: parse, bind, describe,
//! execute and sync in one message), so it never depends on which server session the pooler
//! picks; and the sessions cannot be opened read-only (that takes a startup option poolers
//! refuse), so only statements that start with `select` are sent to them.
//!
//! A connection the server closed is replaced on its next use; a read that was in flight on it
//! when it died is run once more on another (reads are safe to repeat).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use sqlx::ConnectOptions as _;
use sqlx::postgres::{PgConnectOptions, PgSslMode};
use tokio_postgres::config::SslMode;
use tokio_postgres::tls::{MakeTlsConnect, TlsConnect};
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::{Client, NoTls, Row, Socket, Statement};
use tokio_postgres_rustls::MakeRustlsConnect;

use super::error::{from_pg, from_pg_connect, lost_connection};
use super::row;
use crate::error::{Error, Result};
use crate::model::{Task, TaskId};
use crate::store::common::AccountRow;
use crate::store::statements::{self, Bind, ListSql, Stamp};

/// A bound value and the type sqlx declares for it.
pub(crate) type Param<'a> = (&'a (dyn ToSql + Sync), Type);

/// How many prepared statements a connection keeps (list statements vary with the query).
const STATEMENT_CACHE: usize = 256;

/// Reads shared by all callers over a few pipelined connections.
pub(crate) struct PipelinedReads {
    config: tokio_postgres::Config,
    /// `None` with `sslmode` `disable` or `allow`.
    tls: Option<MakeRustlsConnect>,
    slots: Box<[Slot]>,
    next: AtomicUsize,
    closed: AtomicBool,
    wait: Duration,
    /// Behind a transaction pooler ([`Session::unnamed`]).
    unnamed: bool,
}

/// One connection, opened on first use and reopened after it closes.
#[derive(Default)]
struct Slot {
    current: Mutex<Option<Arc<Session>>>,
    /// Held while opening, so callers arriving meanwhile wait for that one connection.
    opening: tokio::sync::Mutex<()>,
}

impl Slot {
    fn current(&self) -> MutexGuard<'_, Option<Arc<Session>>> {
        self.current.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The open connection, if there is one.
    fn live(&self) -> Option<Arc<Session>> {
        self.current()
            .as_ref()
            .filter(|s| !s.client.is_closed())
            .cloned()
    }
}

/// An open connection and its prepared statements.
struct Session {
    client: Client,
    statements: Mutex<HashMap<String, Statement>>,
    /// Behind a transaction pooler: every statement unnamed, nothing prepared.
    unnamed: bool,
}

impl Session {
    /// `sql` prepared on this connection with `types` for its parameters.
    async fn statement(
        &self,
        sql: &str,
        types: &[Type],
    ) -> Result<Statement, tokio_postgres::Error> {
        let cached = self
            .statements
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(sql)
            .filter(|s| s.params() == types)
            .cloned();
        if let Some(statement) = cached {
            return Ok(statement);
        }
        let statement = self.client.prepare_typed(sql, types).await?;
        let mut cache = self
            .statements
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if cache.len() >= STATEMENT_CACHE {
            cache.clear();
        }
        cache.insert(sql.to_owned(), statement.clone());
        Ok(statement)
    }

    async fn query(
        &self,
        sql: &str,
        params: &[Param<'_>],
    ) -> Result<Vec<Row>, tokio_postgres::Error> {
        if self.unnamed {
            return self.client.query_typed(sql, params).await;
        }
        let (values, types): (Vec<_>, Vec<_>) = params.iter().cloned().unzip();
        let statement = self.statement(sql, &types).await?;
        self.client.query(&statement, &values).await
    }
}

impl PipelinedReads {
    /// Pipelined reads of the database `options` points at, over
    /// `connections` connections; opening one waits at most `wait`. `None` when the options
    /// need something only sqlx does (`verify-ca`, certificates of one's own), so reads stay on
    /// the pool.
    /// `unnamed`: behind a transaction pooler (nothing prepared, no startup option).
    pub(crate) fn new(
        options: &PgConnectOptions,
        connections: usize,
        wait: Duration,
        unnamed: bool,
    ) -> Option<Self> {
        let (config, tls) = config(options, !unnamed)?;
        Some(Self {
            config,
            tls,
            slots: (0..connections.max(1)).map(|_| Slot::default()).collect(),
            next: AtomicUsize::new(0),
            closed: AtomicBool::new(false),
            wait,
            unnamed,
        })
    }

    /// Drops every connection; later reads fail with [`Error::Unavailable`].
    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::Release);
        for slot in &*self.slots {
            slot.current().take();
        }
    }

    /// A connection: the slots are taken in turn.
    async fn session(&self) -> Result<(&Slot, Arc<Session>)> {
        let slot = &self.slots[self.next.fetch_add(1, Ordering::Relaxed) % self.slots.len()];
        Ok((slot, self.session_in(slot).await?))
    }

    /// The connection of `slot`, opened now if it is not open.
    async fn session_in(&self, slot: &Slot) -> Result<Arc<Session>> {
        if self.closed.load(Ordering::Acquire) {
            return Err(closed());
        }
        if let Some(session) = slot.live() {
            return Ok(session);
        }
        let _opening = tokio::time::timeout(self.wait, slot.opening.lock())
            .await
            .map_err(|e| Error::Unavailable(Box::new(e)))?;
        if let Some(session) = slot.live() {
            return Ok(session);
        }
        let client = tokio::time::timeout(self.wait, connect(&self.config, self.tls.as_ref()))
            .await
            .map_err(|e| Error::Unavailable(Box::new(e)))?
            .map_err(from_pg_connect)?;
        let session = Arc::new(Session {
            client,
            statements: Mutex::default(),
            unnamed: self.unnamed,
        });
        // Checked under the slot's lock, which `close` takes after setting the flag, so no
        // connection outlives a close.
        let mut current = slot.current();
        if self.closed.load(Ordering::Acquire) {
            return Err(closed());
        }
        *current = Some(Arc::clone(&session));
        drop(current);
        Ok(session)
    }

    /// Runs the read `f` on a connection. If that connection turns out to be gone (the server
    /// was restarted, or ended the session), it is forgotten and `f` runs once more on a new one.
    async fn run<T, F, Fut>(&self, f: F) -> Result<T>
    where
        F: Fn(Arc<Session>) -> Fut,
        Fut: Future<Output = Result<T, tokio_postgres::Error>>,
    {
        let (slot, session) = self.session().await?;
        match f(Arc::clone(&session)).await {
            Err(e) if lost_connection(&e) => {
                tracing::debug!(error = %describe(&e), "a pipelined read lost its connection; retrying");
                {
                    let mut current = slot.current();
                    if current.as_ref().is_some_and(|c| Arc::ptr_eq(c, &session)) {
                        current.take();
                    }
                }
                drop(session);
                f(self.session_in(slot).await?).await.map_err(from_pg)
            }
            other => other.map_err(from_pg),
        }
    }

    /// The rows `sql` reads with `params`. Behind a transaction pooler, where the sessions are
    /// not read-only ones, only a `select` is sent (a read may be repeated); elsewhere the
    /// session itself refuses a write (SQLSTATE 25006).
    pub(crate) async fn query(&self, sql: &str, params: &[Param<'_>]) -> Result<Vec<Row>> {
        if self.unnamed && !is_select(sql) {
            return Err(Error::Storage(
                "only a select is sent to the pipelined reads".into(),
            ));
        }
        self.run(|s| async move { s.query(sql, params).await })
            .await
    }

    /// Checks that a connection opens and answers.
    pub(crate) async fn probe(&self) -> Result<()> {
        self.query("select 1", &[]).await.map(drop)
    }

    /// Task `id` of `user` ([`statements::GET_TASK`]).
    pub(crate) async fn task(&self, id: TaskId, user: &str) -> Result<Option<Task>> {
        let params: [Param<'_>; 2] = [(&id, Type::INT8), (&user, Type::TEXT)];
        let rows = self.query(&statements::GET_TASK, &params).await?;
        rows.first().map(row::task).transpose()
    }

    /// The version of task `id` of `user` ([`statements::GET_VERSION`]).
    pub(crate) async fn version(&self, id: TaskId, user: &str) -> Result<Option<i64>> {
        let params: [Param<'_>; 2] = [(&id, Type::INT8), (&user, Type::TEXT)];
        let rows = self.query(statements::GET_VERSION, &params).await?;
        rows.first().map(|r| row::Columns::column(r, 0)).transpose()
    }

    /// The account of `email` ([`statements::GET_ACCOUNT_BY_EMAIL`]).
    pub(crate) async fn account(&self, email: &str) -> Result<Option<AccountRow>> {
        let params: [Param<'_>; 1] = [(&email, Type::TEXT)];
        let rows = self
            .query(statements::GET_ACCOUNT_BY_EMAIL, &params)
            .await?;
        rows.first().map(row::account).transpose()
    }

    /// The rows of a list page, `list`'s arguments bound in placeholder order with the types
    /// sqlx declares for them (`statements::to_sqlx`).
    pub(crate) async fn list(&self, list: &ListSql) -> Result<Vec<Task>> {
        let params: Vec<Param<'_>> = list
            .args
            .iter()
            .map(|bind| -> Param<'_> {
                match bind {
                    Bind::Text(s) => (s, Type::TEXT),
                    Bind::Stamp(Stamp(t)) => (t, Type::TIMESTAMPTZ),
                    Bind::Rank(r) => (r, Type::INT2),
                    Bind::Int(n) => (n, Type::INT8),
                }
            })
            .collect();
        let rows = self.query(&list.text, &params).await?;
        rows.iter().map(row::task).collect()
    }
}

/// Whether `sql` starts with `select` (after white space, in any case).
fn is_select(sql: &str) -> bool {
    sql.trim_start()
        .get(..6)
        .is_some_and(|word| word.eq_ignore_ascii_case("select"))
}

/// The error for a read after [`PipelinedReads::close`].
fn closed() -> Error {
    Error::Unavailable("the pipelined reads are closed".into())
}

/// Opens a connection with `config`, over `tls` when given ([`config`] says whether), and runs
/// its I/O on a task of its own until every handle to it is dropped.
pub(super) async fn connect(
    config: &tokio_postgres::Config,
    tls: Option<&MakeRustlsConnect>,
) -> Result<Client, tokio_postgres::Error> {
    match tls {
        Some(tls) => open(config, tls.clone()).await,
        None => open(config, NoTls).await,
    }
}

/// [`connect`] with the TLS connector `tls`.
async fn open<T>(config: &tokio_postgres::Config, tls: T) -> Result<Client, tokio_postgres::Error>
where
    T: MakeTlsConnect<Socket>,
    T::Stream: Send + 'static,
    T::TlsConnect: Send,
    <T::TlsConnect as TlsConnect<Socket>>::Future: Send,
{
    let (client, connection) = config.connect(tls).await?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!(error = %describe(&e), "a pipelined PostgreSQL connection closed");
        }
    });
    Ok(client)
}

/// TLS settings: with `verify`, the server's certificate must chain to a Web PKI root and name
/// the host; without, any certificate is accepted (the session is still encrypted, and its
/// signatures checked), which is what `sslmode=prefer` and `require` mean.
fn tls(verify: bool) -> Option<MakeRustlsConnect> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .ok()?;
    let config = if verify {
        let roots = rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        builder.with_root_certificates(roots).with_no_client_auth()
    } else {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
            .with_no_client_auth()
    };
    Some(MakeRustlsConnect::new(config))
}

/// Accepts whichever certificate the server shows, as libpq does below `verify-ca`.
#[derive(Debug)]
struct AnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _: &rustls::pki_types::CertificateDer<'_>,
        _: &[rustls::pki_types::CertificateDer<'_>],
        _: &rustls::pki_types::ServerName<'_>,
        _: &[u8],
        _: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// The connection settings sqlx would use, for tokio-postgres, with the TLS connector its
/// `sslmode` needs (`None`: plain); `None` when reads must stay on sqlx (see [`PipelinedReads::new`]).
pub(super) fn config(
    options: &PgConnectOptions,
    read_only: bool,
) -> Option<(tokio_postgres::Config, Option<MakeRustlsConnect>)> {
    // sqlx's own resolved settings: the password after `?password=`, `PGPASSWORD` and the
    // password file; certificate paths under any of their spellings or environment variables.
    // sqlx writes the host and user name into that URL unescaped, and panics on what it cannot
    // parse back (a socket directory given as the host, a bare IPv6 address): neither is read
    // from it here, so both are neutral there.
    let resolved = options
        .clone()
        .host("localhost")
        .username("user")
        .to_url_lossy();
    // Certificates of one's own: sqlx reads them, this reader does not.
    if resolved
        .query_pairs()
        .any(|(k, _)| matches!(&*k, "sslrootcert" | "sslcert" | "sslkey"))
    {
        return None;
    }
    let (ssl_mode, tls) = match options.get_ssl_mode() {
        PgSslMode::Disable | PgSslMode::Allow => (SslMode::Disable, None),
        PgSslMode::Prefer => (SslMode::Prefer, Some(tls(false)?)),
        PgSslMode::Require => (SslMode::Require, Some(tls(false)?)),
        PgSslMode::VerifyFull => (SslMode::Require, Some(tls(true)?)),
        PgSslMode::VerifyCa => return None,
    };
    let mut config = tokio_postgres::Config::new();
    match options.get_socket() {
        Some(dir) => {
            config.host_path(dir);
        }
        None => {
            // sqlx keeps an IPv6 address in its URL brackets and drops them when connecting.
            let host = options.get_host().trim_matches(['[', ']']);
            config.host(host);
            if let Ok(ip) = host.parse::<std::net::IpAddr>() {
                config.hostaddr(ip);
            }
        }
    }
    config
        .port(options.get_port())
        .user(options.get_username())
        .ssl_mode(ssl_mode)
        // A server that vanishes without closing the connection (a failover, a dropped NAT
        // entry) is noticed within about half a minute rather than the kernel's ~15 minutes.
        .keepalives(true)
        .keepalives_idle(Duration::from_secs(15))
        .keepalives_interval(Duration::from_secs(5))
        .keepalives_retries(3)
        .tcp_user_timeout(Duration::from_secs(30));
    if let Some(database) = options.get_database() {
        config.dbname(database);
    }
    if let Some(name) = options.get_application_name() {
        config.application_name(name);
    }
    // The server itself refuses writes on readers' sessions (SQLSTATE 25006), so a write sent
    // to a reader by mistake fails instead of possibly running twice when a read is repeated.
    let read_only = read_only.then_some("-c default_transaction_read_only=on");
    match (options.get_options(), read_only) {
        (Some(extra), Some(read_only)) => config.options(format!("{extra} {read_only}")),
        (Some(one), None) | (None, Some(one)) => config.options(one),
        (None, None) => &mut config,
    };
    if let Some(password) = resolved.password() {
        let password = percent_encoding::percent_decode_str(password)
            .decode_utf8()
            .ok()?;
        config.password(password.as_bytes());
    }
    Some((config, tls))
}

/// `e` with its causes, for logs: "error connecting to server: Connection refused (os error
/// 111)". No setting (and so no password) is part of any of them.
pub(super) fn describe(e: &tokio_postgres::Error) -> String {
    let mut text = e.to_string();
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;
    use std::str::FromStr;

    use super::*;

    fn test_url() -> Option<String> {
        let url = std::env::var("TODO_TEST_DATABASE_URL").ok();
        if url.is_none() {
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED: TODO_TEST_DATABASE_URL is not set, pipelined reader test not run"
            );
        }
        url
    }

    /// `url` with `sslmode` set to `mode`.
    fn with_sslmode(url: &str, mode: &str) -> String {
        let mut url = url::Url::parse(url).unwrap();
        let others: Vec<(String, String)> = url
            .query_pairs()
            .filter(|(k, _)| k != "sslmode")
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        url.query_pairs_mut()
            .clear()
            .extend_pairs(others)
            .append_pair("sslmode", mode);
        url.into()
    }

    /// Pipelined reads over `connections` connections named `app`.
    fn readers(url: &str, app: &str, connections: usize) -> PipelinedReads {
        let options = PgConnectOptions::from_str(url)
            .unwrap()
            .application_name(app);
        PipelinedReads::new(&options, connections, Duration::from_secs(5), false).unwrap()
    }

    /// The one `bigint` `sql` reads, if it reads a row.
    async fn int(reads: &PipelinedReads, sql: &str) -> Result<Option<i64>> {
        let rows = reads.query(sql, &[]).await?;
        Ok(rows.first().map(|r| r.get(0)))
    }

    fn app(prefix: &str) -> String {
        format!(
            "{prefix}-{}-{:x}",
            std::process::id(),
            rand::random::<u32>()
        )
    }

    async fn backends(url: &str, app: &str) -> i64 {
        let admin = sqlx::PgPool::connect(url).await.unwrap();
        sqlx::query_scalar("select count(*) from pg_stat_activity where application_name = $1")
            .bind(app)
            .fetch_one(&admin)
            .await
            .unwrap()
    }

    /// 500 concurrent reads on `readers`, each checked to get its own answer.
    async fn read_500_at_once(readers: &Arc<PipelinedReads>) {
        let mut reads = tokio::task::JoinSet::new();
        for i in 0..500_i64 {
            let readers = Arc::clone(readers);
            reads.spawn(async move {
                let params: [Param<'_>; 2] = [(&i, Type::INT8), (&"x", Type::TEXT)];
                let rows = readers
                    .query("select $2 || $1::text, null::text", &params)
                    .await
                    .unwrap();
                let got: Vec<(String, Option<String>)> =
                    rows.iter().map(|r| (r.get(0), r.get(1))).collect();
                assert_eq!(got, [(format!("x{i}"), None)]);
            });
        }
        while let Some(read) = reads.join_next().await {
            read.unwrap();
        }
    }

    /// Hundreds of concurrent reads share the few connections, and each gets its own answer.
    #[tokio::test]
    async fn behind_a_transaction_pooler_unnamed_pipelined_reads_each_get_their_own_answer() {
        let Ok(url) = std::env::var("TODO_TEST_POOLER_URL") else {
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED: TODO_TEST_POOLER_URL is not set, pooled reader test not run"
            );
            return;
        };
        let options = PgConnectOptions::from_str(&url)
            .unwrap()
            .application_name(&app("pipeline-pooled"));
        let readers =
            Arc::new(PipelinedReads::new(&options, 2, Duration::from_secs(5), true).unwrap());
        read_500_at_once(&readers).await;
        let refused = readers
            .query("update tasks set title = title where false", &[])
            .await;
        assert!(matches!(refused, Err(Error::Storage(_))), "{refused:?}");
        readers.close();
    }

    #[tokio::test]
    async fn concurrent_reads_share_two_connections_and_each_gets_its_own_answer() {
        let Some(url) = test_url() else { return };
        let app = app("pipeline-share");
        let readers = Arc::new(readers(&url, &app, 2));
        read_500_at_once(&readers).await;
        assert_eq!(backends(&url, &app).await, 2);
        readers.close();
    }

    /// A read in flight when the server ends its session is run again on a new connection.
    #[tokio::test]
    async fn a_read_whose_connection_dies_under_it_is_repeated_on_a_new_one() {
        let Some(url) = test_url() else { return };
        let app = app("pipeline-retry");
        let admin = sqlx::PgPool::connect(&url).await.unwrap();
        let readers = readers(&url, &app, 1);
        // The read answers with the process id of the backend that finished it.
        let slow = int(&readers, "select pg_backend_pid()::bigint from pg_sleep(1)");
        // Terminates that backend while it sleeps inside the read.
        let kill = async {
            let sleeping = "select pid::bigint from pg_stat_activity \
                where application_name = $1 and state = 'active' and wait_event = 'PgSleep'";
            for _ in 0..500 {
                let pid: Option<i64> = sqlx::query_scalar(sleeping)
                    .bind(&app)
                    .fetch_optional(&admin)
                    .await
                    .unwrap();
                if let Some(pid) = pid {
                    let killed: bool = sqlx::query_scalar("select pg_terminate_backend($1::int)")
                        .bind(pid)
                        .fetch_one(&admin)
                        .await
                        .unwrap();
                    assert!(killed);
                    return pid;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            panic!("the read never started sleeping");
        };
        let (read, killed) = tokio::join!(slow, kill);
        let answered = read.unwrap().unwrap();
        assert_ne!(answered, killed, "the read finished on a new connection");
        readers.close();
    }

    /// A write sent to a reader by mistake is refused by the server and changes nothing.
    #[tokio::test]
    async fn the_pipelined_sessions_refuse_writes() {
        let Some(url) = test_url() else { return };
        // A table of its own: the test must not depend on another test having migrated.
        let admin = sqlx::PgPool::connect(&url).await.unwrap();
        sqlx::query("create table if not exists pipeline_write_probe (id text)")
            .execute(&admin)
            .await
            .unwrap();
        let readers = readers(&url, &app("pipeline-read-only"), 1);
        let refused = int(
            &readers,
            "insert into pipeline_write_probe (id) values ('pipeline-write') returning 1::bigint",
        )
        .await;
        let code = match &refused {
            Err(Error::Storage(source)) => source
                .downcast_ref::<tokio_postgres::Error>()
                .and_then(tokio_postgres::Error::code)
                .map(|c| c.code().to_owned()),
            _ => None,
        };
        assert_eq!(code.as_deref(), Some("25006"), "{refused:?}");
        let written: i64 = sqlx::query_scalar("select count(*) from pipeline_write_probe")
            .fetch_one(&admin)
            .await
            .unwrap();
        assert_eq!(written, 0);
        readers.close();
    }

    async fn encrypted(url: &str, mode: &str) -> Option<i64> {
        let readers = readers(&with_sslmode(url, mode), &app("pipeline-tls"), 1);
        let ssl = int(
            &readers,
            "select count(*) from pg_stat_ssl where pid = pg_backend_pid() and ssl",
        )
        .await
        .unwrap();
        readers.close();
        ssl
    }

    /// `sslmode` means what it means to sqlx: `disable` is plain, `require` encrypted (the
    /// test server has TLS on, as Debian's PostgreSQL does), `prefer` encrypted when offered.
    #[tokio::test]
    async fn sslmode_decides_whether_the_session_is_encrypted() {
        let Some(url) = test_url() else { return };
        if PgConnectOptions::from_str(&url)
            .unwrap()
            .get_socket()
            .is_some()
        {
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED: TLS is never offered on a Unix socket"
            );
            return;
        }
        assert_eq!(encrypted(&url, "disable").await, Some(0));
        let offered = sqlx::PgPool::connect(&url).await.unwrap();
        let tls_on: String = sqlx::query_scalar("show ssl")
            .fetch_one(&offered)
            .await
            .unwrap();
        if tls_on == "on" {
            assert_eq!(encrypted(&url, "require").await, Some(1));
            assert_eq!(encrypted(&url, "prefer").await, Some(1));
        } else {
            let _ = writeln!(std::io::stderr(), "SKIPPED: the server has TLS off");
        }
    }

    #[tokio::test]
    async fn a_closed_reader_refuses_reads() {
        let Some(url) = test_url() else { return };
        let readers = readers(&url, &app("pipeline-closed"), 1);
        assert_eq!(int(&readers, "select 1::bigint").await.unwrap(), Some(1));
        readers.close();
        let refused = int(&readers, "select 1::bigint").await;
        assert!(matches!(refused, Err(Error::Unavailable(_))), "{refused:?}");
    }

    /// A server that cannot be reached is unavailable (503), not a storage error: the
    /// connection fails with an I/O error under tokio-postgres's.
    #[tokio::test]
    async fn a_server_that_cannot_be_reached_is_unavailable() {
        let options =
            PgConnectOptions::from_str("postgres://u@127.0.0.1:1/db?sslmode=disable").unwrap();
        let readers = PipelinedReads::new(&options, 1, Duration::from_secs(5), false).unwrap();
        let refused = int(&readers, "select 1::bigint").await;
        assert!(matches!(refused, Err(Error::Unavailable(_))), "{refused:?}");
        let Err(Error::Unavailable(source)) = refused else {
            unreachable!()
        };
        let pg = source.downcast_ref::<tokio_postgres::Error>().unwrap();
        assert!(lost_connection(pg), "{pg:?}");
    }

    /// `sslmode=require` where the server offers no TLS (PostgreSQL never does on its Unix
    /// socket) fails as a TLS error, unavailable, as it does with sqlx.
    #[tokio::test]
    async fn tls_required_but_not_offered_is_a_tls_error() {
        let Some(url) = test_url() else { return };
        let dir = "/var/run/postgresql";
        if !std::path::Path::new(dir).join(".s.PGSQL.5432").exists() {
            let _ = writeln!(std::io::stderr(), "SKIPPED: no PostgreSQL socket in {dir}");
            return;
        }
        let options = PgConnectOptions::from_str(&url)
            .unwrap()
            .socket(dir)
            .port(5432)
            .ssl_mode(PgSslMode::Require);
        let readers = PipelinedReads::new(&options, 1, Duration::from_secs(5), false).unwrap();
        let refused = int(&readers, "select 1::bigint").await;
        let Err(Error::Unavailable(source)) = &refused else {
            panic!("{refused:?}");
        };
        // tokio-postgres keeps its error kinds private: its message names the kind.
        let pg = source.downcast_ref::<tokio_postgres::Error>().unwrap();
        assert_eq!(pg.to_string(), "error performing TLS handshake", "{pg:?}");
        let by_sqlx = sqlx::ConnectOptions::connect(&options).await.map(drop);
        assert!(matches!(by_sqlx, Err(sqlx::Error::Tls(_))), "{by_sqlx:?}");
        assert!(matches!(
            super::super::error::from_sqlx(by_sqlx.unwrap_err()),
            Error::Unavailable(_)
        ));
    }

    fn parsed(url: &str) -> Option<tokio_postgres::Config> {
        config(&PgConnectOptions::from_str(url).unwrap(), true).map(|(config, _)| config)
    }

    #[test]
    fn the_settings_are_the_ones_sqlx_reads_from_the_url() {
        let c = parsed(
            "postgres://ann:p%40ss%2Fw@db.example:6543/tasks?sslmode=require&application_name=web",
        )
        .unwrap();
        assert_eq!(c.get_user(), Some("ann"));
        assert_eq!(c.get_password(), Some(&b"p@ss/w"[..]));
        assert_eq!(c.get_dbname(), Some("tasks"));
        assert_eq!(c.get_ports(), [6543]);
        assert_eq!(
            c.get_hosts(),
            [tokio_postgres::config::Host::Tcp("db.example".into())]
        );
        assert_eq!(c.get_ssl_mode(), SslMode::Require);
        assert_eq!(c.get_application_name(), Some("web"));

        let c =
            parsed("postgres://ann@db.example/tasks?password=se%26cret&sslmode=disable").unwrap();
        assert_eq!(c.get_password(), Some(&b"se&cret"[..]));
        assert_eq!(c.get_ssl_mode(), SslMode::Disable);
        // sqlx's default, unless the environment names another.
        if std::env::var_os("PGSSLMODE").is_none() {
            let c = parsed("postgres://ann@db.example/tasks").unwrap();
            assert_eq!(c.get_ssl_mode(), SslMode::Prefer);
        }
    }

    /// Settings sqlx accepts but cannot write back into a URL do not break the readers.
    #[test]
    fn hosts_and_user_names_sqlx_cannot_print_are_still_read() {
        let c = parsed("postgres://ann@db/todo?host=::1").unwrap();
        assert_eq!(
            c.get_hostaddrs(),
            ["::1".parse::<std::net::IpAddr>().unwrap()]
        );
        let c = parsed("postgres://a%3Ab%2Fc:pw@db/todo").unwrap();
        assert_eq!(c.get_user(), Some("a:b/c"));
        assert_eq!(c.get_password(), Some(&b"pw"[..]));
        let c = parsed("postgres://ann@db/todo?host=/var/run/postgresql").unwrap();
        assert_eq!(
            c.get_hosts(),
            [tokio_postgres::config::Host::Unix(
                "/var/run/postgresql".into()
            )]
        );
    }

    /// What this reader cannot do as sqlx does keeps reads on the pool.
    #[test]
    fn certificate_settings_only_sqlx_handles_keep_reads_on_the_pool() {
        assert!(parsed("postgres://ann@db.example/tasks?sslmode=verify-ca").is_none());
        assert!(
            parsed("postgres://ann@db.example/tasks?sslmode=verify-full&sslrootcert=/ca.pem")
                .is_none()
        );
        assert!(parsed("postgres://ann@db.example/tasks?sslcert=/c.pem&sslkey=/k.pem").is_none());
        assert!(
            parsed("postgres://ann@db.example/tasks?sslmode=verify-full&ssl-ca=/ca.pem").is_none()
        );
        if std::env::var_os("PGSSLROOTCERT").is_none() {
            assert!(parsed("postgres://ann@db.example/tasks?sslmode=verify-full").is_some());
        }
    }
}
