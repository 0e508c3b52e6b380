//! Every option `todo-server --help` lists is read by something. Each option has an entry in
//! [`PROBES`]: a function that starts the real binary with a chosen value of that option and
//! observes the effect from outside (answers, headers, the listening address, files, exit status
//! and message, the process's connections and busy threads, timing), where the default would
//! behave differently. A new option
//! without a probe fails `every_option_listed_by_help_has_a_probe`; an option read by nothing
//! fails its probe in `every_probe_sees_its_option_take_effect`.
//!
//! `OPTIONS_PROBE=--max-tasks cargo test -p todo-server --test options` runs only the probes
//! whose flag contains `--max-tasks`. Probes that need PostgreSQL read `TODO_TEST_DATABASE_URL`
//! and say so on stderr when it is not set.
#![cfg(unix)] // /proc, `kill`
#![allow(clippy::unwrap_used)] // test helpers panic on setup failures by design

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tempfile::TempDir;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

mod support;
use support::{
    Guard, SECRET, Server, assert_body_timed_out, assert_closed_between, assert_rate_limited,
    bad_login, big_task, command, create_task, expect_problem, fill_until_refused, header,
    help_options, http, idle_after_response, jwt, listening_url, now_secs, pg_url, psql, raw_get,
    read_response, read_until_closed, run_to_exit, sign, stall_body, start_with, trickle_headers,
    unique, write_all,
};

type ProbeFuture = Pin<Box<dyn Future<Output = ()> + Send>>;

/// An option and the probe that shows it is read.
struct Probe {
    /// The flag, as `--help` lists it.
    flag: &'static str,
    /// Its environment variable, as `--help` lists it.
    env: &'static str,
    /// Starts the binary with a value of the option and observes the effect.
    run: fn() -> ProbeFuture,
    /// Measures time or concurrency: runs while no other probe does.
    alone: bool,
}

macro_rules! probe {
    ($flag:literal, $env:literal, $f:ident) => {
        Probe {
            flag: $flag,
            env: $env,
            run: || Box::pin($f()),
            alone: false,
        }
    };
    ($flag:literal, $env:literal, $f:ident, alone) => {
        Probe {
            flag: $flag,
            env: $env,
            run: || Box::pin($f()),
            alone: true,
        }
    };
}

/// Runs only the probes whose flag contains this text (for working on one option).
const ONLY_ENV: &str = "OPTIONS_PROBE";

/// Flags that configure nothing.
const EXEMPT: [&str; 2] = ["--help", "--version"];

/// Every option and its probe. `alone`: the probe measures time or concurrency, so it runs while
/// no other probe does.
#[rustfmt::skip]
const PROBES: &[Probe] = &[
    probe!("--host",                            "HOST",                            host),
    probe!("--port",                            "PORT",                            port),
    probe!("--database-url",                    "DATABASE_URL",                    database_url),
    probe!("--better-auth-secret",              "BETTER_AUTH_SECRET",              better_auth_secret),
    probe!("--jwks-url",                        "JWKS_URL",                        jwks_url),
    probe!("--session-database-url",            "SESSION_DATABASE_URL",            session_database_url),
    probe!("--session-table",                   "SESSION_TABLE",                   session_table),
    probe!("--session-token-column",            "SESSION_TOKEN_COLUMN",            session_token_column),
    probe!("--session-user-id-column",          "SESSION_USER_ID_COLUMN",          session_user_id_column),
    probe!("--session-expires-at-column",       "SESSION_EXPIRES_AT_COLUMN",       session_expires_at_column),
    probe!("--jwt-issuer",                      "JWT_ISSUER",                      jwt_issuer),
    probe!("--jwt-audience",                    "JWT_AUDIENCE",                    jwt_audience),
    probe!("--jwt-leeway-seconds",              "JWT_LEEWAY_SECONDS",              jwt_leeway_seconds),
    probe!("--cors-allowed-origins",            "CORS_ALLOWED_ORIGINS",            cors_allowed_origins),
    probe!("--builtin-accounts",                "BUILTIN_ACCOUNTS",                builtin_accounts),
    probe!("--cookie-auth",                     "COOKIE_AUTH",                     cookie_auth),
    probe!("--token-ttl-minutes",               "TOKEN_TTL_MINUTES",               token_ttl_minutes),
    probe!("--sqlite-synchronous",              "SQLITE_SYNCHRONOUS",              sqlite_synchronous, alone),
    probe!("--database-max-connections",        "DATABASE_MAX_CONNECTIONS",        database_max_connections, alone),
    probe!("--database-read-connections",       "DATABASE_READ_CONNECTIONS",       database_read_connections),
    probe!("--database-pooler",                 "DATABASE_POOLER",                 database_pooler),
    probe!("--database-direct-url",             "DATABASE_DIRECT_URL",             database_direct_url),
    probe!("--header-read-timeout-secs",        "HEADER_READ_TIMEOUT_SECS",        header_read_timeout),
    probe!("--idle-timeout-secs",               "IDLE_TIMEOUT_SECS",               idle_timeout),
    probe!("--body-read-timeout-secs",          "BODY_READ_TIMEOUT_SECS",          body_read_timeout),
    probe!("--max-open-connections",            "MAX_OPEN_CONNECTIONS",            max_open_connections),
    probe!("--body-memory-budget-mib",          "BODY_MEMORY_BUDGET_MIB",          body_memory_budget),
    probe!("--password-hash-concurrency",       "PASSWORD_HASH_CONCURRENCY",       password_hash_concurrency, alone),
    probe!("--auth-rate-per-ip",                "AUTH_RATE_PER_IP",                auth_rate_per_ip),
    probe!("--auth-rate-per-account",           "AUTH_RATE_PER_ACCOUNT",           auth_rate_per_account),
    probe!("--trusted-proxies",                 "TRUSTED_PROXIES",                 trusted_proxies),
    probe!("--max-tasks-per-user",              "MAX_TASKS_PER_USER",              max_tasks_per_user),
    probe!("--max-idempotency-keys-per-user",   "MAX_IDEMPOTENCY_KEYS_PER_USER",   max_idempotency_keys),
    probe!("--max-concurrent-searches-per-user","MAX_CONCURRENT_SEARCHES_PER_USER",max_concurrent_searches, alone),
    probe!("--sqlite-max-size-mb",              "SQLITE_MAX_SIZE_MB",              sqlite_max_size_mb),
    probe!("--list-envelope",                   "LIST_ENVELOPE",                   list_envelope),
    probe!("--task-envelope",                   "TASK_ENVELOPE",                   task_envelope),
    probe!("--error-envelope",                  "ERROR_ENVELOPE",                  error_envelope),
    probe!("--json-case",                       "JSON_CASE",                       json_case),
    probe!("--enum-case",                       "ENUM_CASE",                       enum_case),
    probe!("--due-date-format",                 "DUE_DATE_FORMAT",                 due_date_format),
];

#[test]
fn every_option_listed_by_help_has_a_probe() {
    let listed = help_options();
    assert!(
        listed.iter().any(|o| o.flag == "--port"),
        "--help could not be parsed: {listed:?}"
    );
    let mut problems = Vec::new();
    for option in listed {
        if EXEMPT.contains(&option.flag.as_str()) {
            continue;
        }
        match PROBES.iter().find(|p| p.flag == option.flag) {
            None => problems.push(format!(
                "{} ({}) has no probe in options.rs: add one that starts the binary with it and \
                 observes its effect",
                option.flag,
                option.env.as_deref().unwrap_or("no environment variable")
            )),
            Some(p) if option.env.as_deref() != Some(p.env) => problems.push(format!(
                "{} is read from {:?}, expected {}",
                option.flag, option.env, p.env
            )),
            Some(_) => {}
        }
    }
    for p in PROBES {
        if !listed.iter().any(|o| o.flag == p.flag) {
            problems.push(format!("{} ({}) is not listed by --help", p.flag, p.env));
        }
    }
    assert!(problems.is_empty(), "\n{}\n", problems.join("\n"));
}

#[test]
fn help_text_is_read_as_flags_and_their_environment_variables() {
    let text = "Options:
      --host <HOST>
          Address to listen on [env: HOST=] [default: 127.0.0.1]
      --database-url <DATABASE_URL>
          Database URL: `sqlite://path.db` [env: DATABASE_URL]
      --cookie-auth
          Accept Better Auth's cookie
          [env: COOKIE_AUTH=]
  -h, --help
          Print help (see `--version`)
  -V, --version
          Print version
";
    let parsed: Vec<(String, Option<String>)> = support::parse_help(text)
        .into_iter()
        .map(|o| (o.flag, o.env))
        .collect();
    let some = |s: &str| Some(s.to_owned());
    assert_eq!(
        parsed,
        vec![
            ("--host".to_owned(), some("HOST")),
            ("--database-url".to_owned(), some("DATABASE_URL")),
            ("--cookie-auth".to_owned(), some("COOKIE_AUTH")),
            ("--help".to_owned(), None),
            ("--version".to_owned(), None),
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_probe_sees_its_option_take_effect() {
    const AT_ONCE: usize = 4;
    const PER_PROBE: Duration = Duration::from_secs(90);
    // A failing probe panics on a runtime worker; its message is reported below, once.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if std::thread::current().name() != Some("tokio-runtime-worker") {
            default_hook(info);
        }
    }));
    let started = Instant::now();
    let mut failures = Vec::new();
    let run = |batch: Vec<&'static Probe>| async move {
        let mut set = tokio::task::JoinSet::new();
        for p in batch {
            set.spawn(async move {
                let t = Instant::now();
                let mut probe = tokio::spawn((p.run)());
                let outcome = match tokio::time::timeout(PER_PROBE, &mut probe).await {
                    Err(_) => {
                        // Dropping the probe's future kills the servers it started.
                        probe.abort();
                        Err(format!("did not finish within {PER_PROBE:?}"))
                    }
                    Ok(Ok(())) => Ok(()),
                    Ok(Err(e)) if e.is_panic() => {
                        let payload = e.into_panic();
                        Err(payload
                            .downcast_ref::<String>()
                            .cloned()
                            .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                            .unwrap_or_else(|| "panicked".to_owned()))
                    }
                    Ok(Err(e)) => Err(e.to_string()),
                };
                (p, t.elapsed(), outcome)
            });
        }
        let mut out = Vec::new();
        while let Some(done) = set.join_next().await {
            out.push(done.unwrap());
        }
        out
    };
    let only = std::env::var(ONLY_ENV).unwrap_or_default();
    let chosen: Vec<&Probe> = PROBES.iter().filter(|p| p.flag.contains(&only)).collect();
    let mut results = Vec::new();
    let shared: Vec<&Probe> = chosen.iter().copied().filter(|p| !p.alone).collect();
    for chunk in shared.chunks(AT_ONCE) {
        results.extend(run(chunk.to_vec()).await);
    }
    for p in chosen.iter().copied().filter(|p| p.alone) {
        results.extend(run(vec![p]).await);
    }
    for (p, took, outcome) in &results {
        match outcome {
            Ok(()) => eprintln!("ok    {:<36} {:>6.2} s", p.flag, took.as_secs_f64()),
            Err(e) => {
                let first = e.lines().next().unwrap_or("");
                eprintln!(
                    "FAIL  {:<36} {:>6.2} s  {first}",
                    p.flag,
                    took.as_secs_f64()
                );
                failures.push(format!("{} ({}): {e}", p.flag, p.env));
            }
        }
    }
    eprintln!(
        "{} probes in {:.1} s",
        results.len(),
        started.elapsed().as_secs_f64()
    );
    assert!(
        failures.is_empty(),
        "{} of {} options showed no effect:\n\n{}",
        failures.len(),
        results.len(),
        failures.join("\n\n")
    );
}

// ---------------------------------------------------------------------------------------------
// Helpers.

/// A server on a fresh SQLite file in a fresh directory, with the test secret, quiet logs, and
/// `args` and `envs`.
async fn serve(args: &[&str], envs: &[(&str, &str)]) -> (TempDir, Server) {
    let dir = tempfile::tempdir().unwrap();
    let server = serve_in(dir.path(), args, envs).await;
    (dir, server)
}

async fn serve_in(dir: &Path, args: &[&str], envs: &[(&str, &str)]) -> Server {
    let mut all_args = vec!["--database-url", "sqlite://todo.db"];
    all_args.extend_from_slice(args);
    let mut all_envs = vec![("BETTER_AUTH_SECRET", SECRET), ("RUST_LOG", "warn")];
    all_envs.extend_from_slice(envs);
    start_with(dir, "server", &all_args, &all_envs).await
}

/// `GET /api/tasks` with `token`: its status.
async fn list_status(server: &Server, token: &str) -> u16 {
    http()
        .get(server.url("/api/tasks"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// Claims for `user` valid for an hour, plus `extra`.
fn claims(user: &str, extra: Value) -> Value {
    let now = now_secs();
    let mut c = json!({"sub": user, "id": user, "iat": now, "exp": now + 3600});
    if let (Some(c), Some(extra)) = (c.as_object_mut(), extra.as_object()) {
        c.extend(extra.clone());
    }
    c
}

/// The median of some durations.
fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

// ---------------------------------------------------------------------------------------------
// Where it listens, what it stores, whom it believes.

async fn host() {
    let port = support::free_port();
    let (_dir, server) = serve(&["--host", "127.0.0.2", "--port", &port.to_string()], &[]).await;
    assert_eq!(server.addr.ip().to_string(), "127.0.0.2");
    let elsewhere: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    assert!(
        std::net::TcpStream::connect_timeout(&elsewhere, Duration::from_secs(1)).is_err(),
        "--host 127.0.0.2 also listens on 127.0.0.1"
    );
}

async fn port() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = command(dir.path());
    cmd.args(["--port", "0", "--database-url", "sqlite://todo.db"])
        .env("BETTER_AUTH_SECRET", SECRET);
    let mut process = Guard::spawn(cmd, dir.path(), "port");
    let until = Instant::now() + Duration::from_secs(20);
    let url = loop {
        if let Some(url) = listening_url(&process.stdout()) {
            break url;
        }
        assert!(
            process.exited().is_none() && Instant::now() < until,
            "no listening line\n{}",
            process.output()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let port: u16 = url.rsplit(':').next().unwrap().parse().unwrap();
    assert!(
        port != 0 && port != 8000,
        "--port 0 picks a free port: {url}"
    );
    let resp = http().get(format!("{url}/healthz")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
}

async fn database_url() {
    let dir = tempfile::tempdir().unwrap();
    let _server = start_with(
        dir.path(),
        "server",
        &["--database-url", "sqlite://chosen.db"],
        &[],
    )
    .await;
    assert!(
        dir.path().join("chosen.db").is_file(),
        "chosen.db is created"
    );
    assert!(
        dir.path().join("chosen.db.secret").is_file(),
        "its secret sits next to it"
    );
    assert!(
        !dir.path().join("todo.db").exists(),
        "the default file is not used"
    );
}

async fn better_auth_secret() {
    let chosen = "a-secret-chosen-by-the-operator-0123456789";
    let dir = tempfile::tempdir().unwrap();
    let server = start_with(
        dir.path(),
        "server",
        &[
            "--database-url",
            "sqlite://todo.db",
            "--better-auth-secret",
            chosen,
        ],
        &[],
    )
    .await;
    assert_eq!(
        list_status(&server, &sign(&claims("s", json!({})), chosen)).await,
        200
    );
    assert_eq!(list_status(&server, &jwt("s")).await, 401, "another secret");
    assert!(
        !dir.path().join("todo.db.secret").exists(),
        "no secret is generated when one is given"
    );
}

/// An Ed25519 key for the JWKS probe (test-only), and its public half as a JWK `x`.
const ED25519_PEM: &str = "-----BEGIN PRIVATE KEY-----
MC4CAQAwBQYDK2VwBCIEIEdqogSVbsdqNjTcGJENXz42cpEy8v5nJFNR4IYQt5Pn
-----END PRIVATE KEY-----
";
const ED25519_X: &str = "yJBQ-f956Y2tZBEc54KXY3ZI0cQ5em54c8b-0kmzK9Q";

/// Serves `doc` as JSON to every request on a local port; counts the requests.
async fn serve_json(doc: String) -> (SocketAddr, Arc<AtomicUsize>, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    let task = tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            let doc = doc.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                let until = Instant::now() + Duration::from_secs(5);
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    match tokio::time::timeout_at(until.into(), stream.read(&mut chunk)).await {
                        Ok(Ok(n)) if n > 0 => buf.extend_from_slice(&chunk[..n]),
                        _ => return,
                    }
                }
                let resp = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
                     Connection: close\r\n\r\n{doc}",
                    doc.len()
                );
                let _ = stream.write_all(resp.as_bytes()).await;
                let _ = stream.shutdown().await;
            });
        }
    });
    (addr, hits, task)
}

async fn jwks_url() {
    let doc = json!({"keys": [{"kty": "OKP", "crv": "Ed25519", "x": ED25519_X,
                              "kid": "probe-key", "alg": "EdDSA"}]});
    let (addr, hits, task) = serve_json(doc.to_string()).await;
    let url = format!("http://{addr}/api/auth/jwks");
    let (_dir, server) = serve(&["--jwks-url", &url], &[]).await;
    let mut head = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::EdDSA);
    head.kid = Some("probe-key".to_owned());
    let key = jsonwebtoken::EncodingKey::from_ed_pem(ED25519_PEM.as_bytes()).unwrap();
    let token = jsonwebtoken::encode(&head, &claims("ed", json!({})), &key).unwrap();
    let status = list_status(&server, &token).await;
    task.abort();
    assert_eq!(status, 200, "an EdDSA token verified with the JWKS");
    assert!(hits.load(Ordering::SeqCst) > 0, "the JWKS was fetched");
}

async fn session_database_url() {
    let dir = tempfile::tempdir().unwrap();
    let exit = run_to_exit(
        dir.path(),
        "sessions",
        &[
            "--database-url",
            "sqlite://todo.db",
            "--session-database-url",
            "postgres://better:secret@127.0.0.1:1/auth",
        ],
        &[("BETTER_AUTH_SECRET", SECRET)],
        Duration::from_secs(20),
    );
    exit.assert_refused("an unreachable session database", "SESSION_DATABASE_URL");
}

/// Which of the session table's names a probe changes from Better Auth's.
#[derive(Clone, Copy, PartialEq, Eq)]
enum SessionName {
    Table,
    Token,
    UserId,
    ExpiresAt,
}

/// Creates a session table in a schema of its own with one name changed, and shows that a live
/// opaque token is accepted only because the option names it.
async fn session_probe(which: SessionName, flag: &str) {
    let Some(pg) = pg_url(&format!("the {flag} probe")) else {
        return;
    };
    let schema = unique("todo_probe_").to_lowercase();
    let pick = |this: SessionName, custom: &'static str, default: &'static str| {
        if which == this { custom } else { default }
    };
    let table = pick(SessionName::Table, "custom_sessions", "session");
    let token_col = pick(SessionName::Token, "tok", "token");
    let user_col = pick(SessionName::UserId, "owner", "userId");
    let expires_col = pick(SessionName::ExpiresAt, "valid_until", "expiresAt");
    let qualified = format!("{schema}.{table}");
    let token = unique("opaque-");
    psql(
        &pg,
        &format!(
            r#"create schema {schema};
               create table {qualified} ("{token_col}" text primary key, "{user_col}" text not null,
                                         "{expires_col}" timestamptz not null);
               insert into {qualified} values ('{token}', 'probe-user', now() + interval '1 hour')"#
        ),
    );
    let chosen = match which {
        SessionName::Table => None,
        SessionName::Token => Some(token_col),
        SessionName::UserId => Some(user_col),
        SessionName::ExpiresAt => Some(expires_col),
    };
    let mut args = vec![
        "--session-database-url",
        pg.as_str(),
        "--session-table",
        qualified.as_str(),
    ];
    if let Some(column) = chosen {
        args.extend([flag, column]);
    }
    let dir = tempfile::tempdir().unwrap();
    let outcome = tokio::spawn({
        let args: Vec<String> = args.iter().map(|s| (*s).to_owned()).collect();
        let dir = dir.path().to_owned();
        async move {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let server = serve_in(&dir, &args, &[]).await;
            list_status(&server, &token).await
        }
    })
    .await;
    psql(&pg, &format!("drop schema {schema} cascade"));
    match outcome {
        Ok(status) => assert_eq!(status, 200, "the session in {qualified} is accepted"),
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
}

async fn session_table() {
    session_probe(SessionName::Table, "--session-table").await;
}

async fn session_token_column() {
    session_probe(SessionName::Token, "--session-token-column").await;
}

async fn session_user_id_column() {
    session_probe(SessionName::UserId, "--session-user-id-column").await;
}

async fn session_expires_at_column() {
    session_probe(SessionName::ExpiresAt, "--session-expires-at-column").await;
}

async fn jwt_issuer() {
    let (_dir, server) = serve(&["--jwt-issuer", "https://auth.probe.test"], &[]).await;
    let ours = sign(
        &claims("i", json!({"iss": "https://auth.probe.test"})),
        SECRET,
    );
    let theirs = sign(
        &claims("i", json!({"iss": "https://elsewhere.test"})),
        SECRET,
    );
    assert_eq!(list_status(&server, &ours).await, 200);
    assert_eq!(list_status(&server, &theirs).await, 401, "another issuer");
}

async fn jwt_audience() {
    let (_dir, server) = serve(&["--jwt-audience", "https://app.probe.test"], &[]).await;
    let ours = sign(
        &claims("a", json!({"aud": "https://app.probe.test"})),
        SECRET,
    );
    let theirs = sign(
        &claims("a", json!({"aud": "https://elsewhere.test"})),
        SECRET,
    );
    assert_eq!(list_status(&server, &ours).await, 200);
    assert_eq!(list_status(&server, &theirs).await, 401, "another audience");
}

async fn jwt_leeway_seconds() {
    let (_dir, server) = serve(&["--jwt-leeway-seconds", "600"], &[]).await;
    let now = now_secs();
    let expired = |ago: i64| {
        sign(
            &json!({"sub": "l", "iat": now - 3600, "exp": now - ago}),
            SECRET,
        )
    };
    assert_eq!(
        list_status(&server, &expired(300)).await,
        200,
        "5 minutes late is within 10 minutes of leeway (the default is 1 minute)"
    );
    assert_eq!(list_status(&server, &expired(900)).await, 401);
}

async fn cors_allowed_origins() {
    let origin = "http://app.probe.test";
    let (_dir, server) = serve(&["--cors-allowed-origins", origin], &[]).await;
    let resp = http()
        .get(server.url("/healthz"))
        .header("origin", origin)
        .send()
        .await
        .unwrap();
    assert_eq!(
        header(&resp, "access-control-allow-origin").as_deref(),
        Some(origin)
    );
}

async fn builtin_accounts() {
    let (_dir, server) = serve(&["--builtin-accounts", "false"], &[]).await;
    let resp = http()
        .post(server.url("/api/auth/register"))
        .json(&json!({"email": "off@example.com", "password": "correct horse battery"}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.status(),
        404,
        "registration is off on SQLite when told"
    );
}

async fn cookie_auth() {
    let (_dir, server) = serve(&["--cookie-auth"], &[]).await;
    let resp = http()
        .get(server.url("/api/tasks"))
        .header(
            "cookie",
            format!("better-auth.session_data={}", jwt("cookie-user")),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "Better Auth's cookie is accepted");
}

async fn token_ttl_minutes() {
    let (_dir, server) = serve(&["--token-ttl-minutes", "7"], &[]).await;
    let resp = http()
        .post(server.url("/api/auth/register"))
        .json(&json!({"email": "ttl@example.com", "password": "correct horse battery"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["expires_in"], 420, "{body}");
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
    validation.validate_aud = false;
    let data = jsonwebtoken::decode::<Value>(
        body["token"].as_str().unwrap(),
        &jsonwebtoken::DecodingKey::from_secret(SECRET.as_bytes()),
        &validation,
    )
    .unwrap();
    let lifetime = data.claims["exp"].as_i64().unwrap() - data.claims["iat"].as_i64().unwrap();
    assert_eq!(lifetime, 420);
}

/// The median time of one `fsync` of a small write in `dir`.
fn fsync_cost(dir: &Path) -> Duration {
    use std::io::Write;
    let path = dir.join("fsync-probe");
    let mut file = std::fs::File::create(&path).unwrap();
    let times = (0..15)
        .map(|_| {
            file.write_all(&[0u8; 4096]).unwrap();
            let t = Instant::now();
            file.sync_data().unwrap();
            t.elapsed()
        })
        .collect();
    std::fs::remove_file(&path).unwrap();
    median(times)
}

async fn sqlite_synchronous() {
    // On the build's own disk (not a tmpfs), where an fsync costs something.
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let (full_dir, normal_dir) = (dir.path().join("full"), dir.path().join("normal"));
    std::fs::create_dir(&full_dir).unwrap();
    std::fs::create_dir(&normal_dir).unwrap();
    let full = serve_in(&full_dir, &["--sqlite-synchronous", "full"], &[]).await;
    let normal = serve_in(&normal_dir, &["--sqlite-synchronous", "normal"], &[]).await;
    let fsync = fsync_cost(dir.path());
    if fsync < Duration::from_micros(50) {
        eprintln!(
            "*** --sqlite-synchronous cannot be observed here: an fsync costs {fsync:?} on {} ***",
            dir.path().display()
        );
        return;
    }
    let client = http();
    let token = jwt("durable");
    let body = json!({"title": "t"});
    // Alternate, so both see the same machine; compare each pair.
    let (mut t_full, mut t_normal, mut extra) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..40 {
        let mut pair = [Duration::ZERO; 2];
        for (i, server) in [&full, &normal].into_iter().enumerate() {
            let t = Instant::now();
            let resp = create_task(&client, &server.base, &token, &body, None).await;
            pair[i] = t.elapsed();
            assert_eq!(resp.status(), 201);
        }
        t_full.push(pair[0]);
        t_normal.push(pair[1]);
        extra.push(pair[0].as_secs_f64() - pair[1].as_secs_f64());
    }
    extra.sort_by(f64::total_cmp);
    let extra = Duration::from_secs_f64(extra[extra.len() / 2].max(0.0));
    let (m_full, m_normal) = (median(t_full), median(t_normal));
    eprintln!(
        "sqlite-synchronous: create {m_full:?} (full) vs {m_normal:?} (normal), {extra:?} more \
         per pair; fsync {fsync:?}"
    );
    // What an fsync costs varies a lot from one call to the next: ask for half of it, and
    // never more than 150 us (two servers set alike differ by less than 100 us here).
    let expected = (fsync / 2).min(Duration::from_micros(150));
    assert!(
        extra >= expected,
        "a durable create should cost about one fsync more than with `normal`: {m_full:?} \
         against {m_normal:?} ({extra:?} more per pair); an fsync here costs {fsync:?}"
    );
}

/// Seeds `users` with `per_user` big tasks each, eight creates at a time.
async fn seed(server: &Server, users: &[String], per_user: usize) {
    let client = http();
    let mut set = tokio::task::JoinSet::new();
    for worker in 0..8 {
        let (client, base, users) = (client.clone(), server.base.clone(), users.to_vec());
        set.spawn(async move {
            let body = big_task();
            for user in &users {
                let token = jwt(user);
                for _ in (worker..per_user).step_by(8) {
                    let resp = create_task(&client, &base, &token, &body, None).await;
                    assert_eq!(resp.status(), 201);
                }
            }
        });
    }
    while let Some(done) = set.join_next().await {
        done.unwrap();
    }
}

/// A search that reads every big task of its user and matches none (`instr` compares the
/// 200-character needle at every position of every title and description).
fn slow_search() -> String {
    let needle = format!("{}x", "\u{1F4DD}".repeat(199));
    let mut q = String::new();
    for b in needle.bytes() {
        q.push_str(&format!("%{b:02X}"));
    }
    format!("/api/tasks?limit=1&q={q}")
}

/// `n` searches by `user` at once.
async fn concurrent_searches(server: &Server, user: &str, n: usize) {
    let client = http();
    let token = jwt(user);
    let url = server.url(&slow_search());
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..n {
        let (client, url, token) = (client.clone(), url.clone(), token.clone());
        set.spawn(async move {
            let resp = client.get(url).bearer_auth(token).send().await.unwrap();
            assert_eq!(resp.status(), 200, "a search");
        });
    }
    while let Some(done) = set.join_next().await {
        done.unwrap();
    }
}

/// How many threads of the process are running or waiting for a CPU (state `R`). Work that is
/// limited to one at a time keeps this near 1 whatever the number of CPUs, and work that is not
/// raises it to the number of requests even on a busy machine.
fn running_threads(pid: u32) -> usize {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0;
    };
    tasks
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("stat")).ok())
        .filter(|stat| {
            stat.rfind(')')
                .and_then(|i| stat[i + 1..].split_whitespace().next())
                == Some("R")
        })
        .count()
}

/// Samples [`running_threads`] every 2 ms while `work` runs; returns the mean and the maximum.
async fn running_threads_during<F: Future<Output = ()>>(pid: u32, work: F) -> (f64, usize) {
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = std::thread::spawn({
        let stop = stop.clone();
        move || {
            let mut samples = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                samples.push(running_threads(pid));
                std::thread::sleep(Duration::from_millis(2));
            }
            samples
        }
    });
    work.await;
    stop.store(true, Ordering::Relaxed);
    let samples = sampler.join().unwrap();
    let mean = samples.iter().sum::<usize>() as f64 / samples.len().max(1) as f64;
    (mean, samples.into_iter().max().unwrap_or(0))
}

/// How many files the process has open on its SQLite database file.
fn open_database_files(pid: u32, db: &Path) -> usize {
    let db = db.canonicalize().unwrap();
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter(|target| *target == db)
        .count()
}

async fn database_max_connections() {
    let users: Vec<String> = (0..4).map(|i| format!("reader{i}")).collect();
    let mut counts = Vec::new();
    for max in ["1", "8"] {
        let dir = tempfile::tempdir().unwrap();
        let server = serve_in(
            dir.path(),
            &["--database-max-connections", max],
            &[("MAX_CONCURRENT_SEARCHES_PER_USER", "16")],
        )
        .await;
        seed(&server, &users, 100).await;
        for _ in 0..3 {
            let mut set = tokio::task::JoinSet::new();
            for user in users.clone() {
                let (server_url, token) = (server.url(&slow_search()), jwt(&user));
                for _ in 0..2 {
                    let (url, token) = (server_url.clone(), token.clone());
                    set.spawn(async move {
                        let resp = http().get(url).bearer_auth(token).send().await.unwrap();
                        assert_eq!(resp.status(), 200);
                    });
                }
            }
            while let Some(done) = set.join_next().await {
                done.unwrap();
            }
        }
        counts.push(open_database_files(
            server.pid(),
            &dir.path().join("todo.db"),
        ));
    }
    eprintln!(
        "database-max-connections: files open on todo.db with 1: {}, with 8: {}",
        counts[0], counts[1]
    );
    assert!(
        counts[0] < counts[1],
        "8 concurrent searches opened as many SQLite connections with \
         --database-max-connections 1 ({}) as with 8 ({})",
        counts[0],
        counts[1]
    );
}

/// `url` with its database name replaced by `name`.
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = url.split_once('?').unwrap_or((url, ""));
    let (server, _) = base.rsplit_once('/').unwrap();
    if query.is_empty() {
        format!("{server}/{name}")
    } else {
        format!("{server}/{name}?{query}")
    }
}

/// A fresh, empty database on the test server: its URL, and the name to drop.
fn fresh_database(pg: &str, prefix: &str) -> (String, String) {
    let db = unique(prefix).to_lowercase();
    psql(pg, &format!("create database {db}"));
    (with_database(pg, &db), db)
}

async fn database_pooler() {
    let Some(pg) = pg_url("the --database-pooler probe") else {
        return;
    };
    // Told it is behind a transaction pooler, the server will not migrate through it: on an
    // empty database it refuses to start and names the setting that would.
    let (url, db) = fresh_database(&pg, "todo_probe_pooler_");
    let dir = tempfile::tempdir().unwrap();
    let exit = tokio::task::spawn_blocking({
        let url = url.clone();
        move || {
            run_to_exit(
                dir.path(),
                "pooler",
                &["--database-url", &url, "--database-pooler", "transaction"],
                &[("BETTER_AUTH_SECRET", SECRET)],
                Duration::from_secs(20),
            )
        }
    })
    .await;
    psql(&pg, &format!("drop database if exists {db} with (force)"));
    exit.unwrap()
        .assert_refused("pooler without a direct URL", "DATABASE_DIRECT_URL");
}

async fn database_direct_url() {
    let Some(pg) = pg_url("the --database-direct-url probe") else {
        return;
    };
    // The same empty database, with a direct URL: migrated there, then served.
    let (url, db) = fresh_database(&pg, "todo_probe_direct_");
    let outcome = tokio::spawn({
        let url = url.clone();
        async move {
            let dir = tempfile::tempdir().unwrap();
            let server = start_with(
                dir.path(),
                "direct",
                &[
                    "--database-url",
                    &url,
                    "--database-pooler",
                    "transaction",
                    "--database-direct-url",
                    &url,
                ],
                &[("BETTER_AUTH_SECRET", SECRET)],
            )
            .await;
            let resp = http()
                .post(server.url("/api/tasks"))
                .bearer_auth(jwt("direct"))
                .json(&json!({"title": "migrated on the direct URL"}))
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 201, "{}", server.process.output());
        }
    })
    .await;
    psql(&pg, &format!("drop database if exists {db} with (force)"));
    outcome.unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));
}

async fn database_read_connections() {
    let Some(pg) = pg_url("the --database-read-connections probe") else {
        return;
    };
    let db = unique("todo_probe_reads_").to_lowercase();
    psql(&pg, &format!("create database {db}"));
    let url = with_database(&pg, &db);
    let count = {
        let (pg, db) = (pg.clone(), db.clone());
        move || {
            psql(
                &pg,
                &format!("select count(*) from pg_stat_activity where datname = '{db}'"),
            )
            .trim()
            .parse::<usize>()
            .unwrap()
        }
    };
    let outcome = tokio::spawn({
        let url = url.clone();
        async move {
            let mut counts = Vec::new();
            for reads in ["3", "0"] {
                let dir = tempfile::tempdir().unwrap();
                let server = start_with(
                    dir.path(),
                    "server",
                    &[
                        "--database-url",
                        &url,
                        "--database-max-connections",
                        "1",
                        "--database-read-connections",
                        reads,
                    ],
                    &[("BETTER_AUTH_SECRET", SECRET), ("RUST_LOG", "warn")],
                )
                .await;
                let mut set = tokio::task::JoinSet::new();
                for i in 0..24 {
                    let url = server.url("/api/tasks");
                    set.spawn(async move {
                        let resp = http()
                            .get(url)
                            .bearer_auth(jwt(&format!("r{i}")))
                            .send()
                            .await
                            .unwrap();
                        assert_eq!(resp.status(), 200);
                    });
                }
                while let Some(done) = set.join_next().await {
                    done.unwrap();
                }
                // Creates: group-committed on two connections of their own while reads are
                // pipelined, on the pool otherwise.
                for i in 0..24 {
                    let url = server.url("/api/tasks");
                    set.spawn(async move {
                        let resp = http()
                            .post(url)
                            .bearer_auth(jwt(&format!("r{i}")))
                            .json(&json!({ "title": format!("t{i}") }))
                            .send()
                            .await
                            .unwrap();
                        assert_eq!(resp.status(), 201);
                    });
                }
                while let Some(done) = set.join_next().await {
                    done.unwrap();
                }
                counts.push(tokio::task::spawn_blocking(count.clone()).await.unwrap());
            }
            counts
        }
    })
    .await;
    psql(&pg, &format!("drop database if exists {db} with (force)"));
    let counts = outcome.unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));
    eprintln!(
        "database-read-connections: connections with 3: {}, with 0: {}",
        counts[0], counts[1]
    );
    assert!(
        counts[0] >= 5 && counts[1] <= 1,
        "3 read connections, 2 for creates and a pool of 1 should hold at least 5 connections \
         ({}); no read connections and a pool of 1 at most 1 ({})",
        counts[0],
        counts[1]
    );
}

// ---------------------------------------------------------------------------------------------
// The hardening options (see hardening.rs for the full observations).

async fn header_read_timeout() {
    let (_dir, server) = serve(&["--header-read-timeout-secs", "1"], &[]).await;
    let (got, since) = trickle_headers(server.addr, Duration::from_secs(6)).await;
    assert_closed_between(&got, since, 0.5, 3.0, "headers trickled for more than 1 s");
}

async fn idle_timeout() {
    let (_dir, server) = serve(
        &[
            "--idle-timeout-secs",
            "1",
            "--header-read-timeout-secs",
            "30",
        ],
        &[],
    )
    .await;
    let (got, since) = idle_after_response(server.addr, Duration::from_secs(6)).await;
    assert_closed_between(&got, since, 0.5, 3.0, "a connection idle for more than 1 s");
}

async fn body_read_timeout() {
    let (_dir, server) = serve(&["--body-read-timeout-secs", "1"], &[]).await;
    let (got, since) = stall_body(server.addr, &jwt("slow"), Duration::from_secs(6)).await;
    assert_body_timed_out(&got, since, 0.5, 3.0);
}

async fn max_open_connections() {
    let (_dir, server) = serve(
        &["--max-open-connections", "3", "--idle-timeout-secs", "30"],
        &[],
    )
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut held = Vec::new();
    for _ in 0..3 {
        let mut stream = server.connect().await;
        let resp = raw_get(
            &mut stream,
            "/healthz",
            Instant::now() + Duration::from_secs(5),
        )
        .await
        .unwrap();
        assert_eq!(resp.status, 200);
        held.push(stream);
    }
    let mut fourth = server.connect().await;
    let request = b"GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n";
    write_all(
        &mut fourth,
        request,
        Instant::now() + Duration::from_secs(5),
    )
    .await
    .unwrap();
    let got = read_until_closed(&mut fourth, Instant::now() + Duration::from_secs(1)).await;
    assert!(
        got.bytes.is_empty(),
        "a 4th connection was served while 3 were open: {:?}",
        String::from_utf8_lossy(&got.bytes)
    );
    held.pop();
    let resp = read_response(&mut fourth, Instant::now() + Duration::from_secs(3))
        .await
        .unwrap_or_else(|e| panic!("the 4th connection was not served after one closed: {e}"));
    assert_eq!(resp.status, 200);
}

async fn body_memory_budget() {
    const SIZE: usize = 700_000;
    let (_dir, server) = serve(&["--body-memory-budget-mib", "1"], &[]).await;
    let token = jwt("budget");
    let head = format!(
        "POST /api/tasks HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nContent-Length: {SIZE}\r\n\r\n"
    );
    let mut body = br#"{"title": "big"}"#.to_vec();
    body.resize(SIZE, b' ');
    // A holds most of the budget: all of its body but the last byte, then it stalls.
    let mut a = server.connect().await;
    let deadline = Instant::now() + Duration::from_secs(10);
    write_all(&mut a, head.as_bytes(), deadline).await.unwrap();
    write_all(&mut a, &body[..SIZE - 1], deadline)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    // B sends a whole valid body that would fit under the default budget (32 MiB).
    let b = server.connect().await;
    let (mut b_read, mut b_write) = b.into_split();
    let writer = tokio::spawn(async move {
        let deadline = Instant::now() + Duration::from_secs(10);
        if write_all(&mut b_write, head.as_bytes(), deadline)
            .await
            .is_ok()
        {
            let _ = write_all(&mut b_write, &body, deadline).await;
        }
        b_write
    });
    let resp = read_response(&mut b_read, Instant::now() + Duration::from_secs(6)).await;
    writer.abort();
    drop(a);
    let resp = resp.unwrap();
    resp.assert_problem(503, "a large body beyond a 1 MiB budget");
    assert!(resp.header("retry-after").is_some(), "{resp:?}");
}

async fn password_hash_concurrency() {
    let (_dir, server) = serve(
        &["--password-hash-concurrency", "1"],
        &[("AUTH_RATE_PER_IP", "0"), ("AUTH_RATE_PER_ACCOUNT", "0")],
    )
    .await;
    let client = http();
    let account = json!({"email": "hash@example.com", "password": "correct horse battery"});
    let resp = client
        .post(server.url("/api/auth/register"))
        .json(&account)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let logins = async {
        let mut set = tokio::task::JoinSet::new();
        for _ in 0..12 {
            let (client, url, account) = (
                client.clone(),
                server.url("/api/auth/login"),
                account.clone(),
            );
            set.spawn(async move {
                let resp = client.post(url).json(&account).send().await.unwrap();
                assert_eq!(resp.status(), 200, "a login");
            });
        }
        while let Some(done) = set.join_next().await {
            done.unwrap();
        }
    };
    let (mean, max) = running_threads_during(server.pid(), logins).await;
    eprintln!("password-hash-concurrency 1: 12 logins, running threads mean {mean:.2}, max {max}");
    assert!(
        mean <= 1.5,
        "12 logins at once kept {mean:.2} threads busy on average (at most {max}): one hash at \
         a time keeps about one"
    );
}

async fn auth_rate_per_ip() {
    let (_dir, server) = serve(
        &["--auth-rate-per-ip", "2", "--auth-rate-per-account", "0"],
        &[],
    )
    .await;
    let client = http();
    for email in ["a@example.com", "b@example.com"] {
        assert_eq!(
            bad_login(&client, &server.base, email, None).await.status(),
            401
        );
    }
    let resp = bad_login(&client, &server.base, "c@example.com", None).await;
    assert_rate_limited(resp, 2, "the 3rd attempt from one address").await;
}

async fn auth_rate_per_account() {
    let (_dir, server) = serve(
        &["--auth-rate-per-account", "2", "--auth-rate-per-ip", "0"],
        &[],
    )
    .await;
    let client = http();
    for _ in 0..2 {
        let resp = bad_login(&client, &server.base, "one@example.com", None).await;
        assert_eq!(resp.status(), 401);
    }
    let resp = bad_login(&client, &server.base, "one@example.com", None).await;
    assert_rate_limited(resp, 2, "the 3rd attempt on one email").await;
    let resp = bad_login(&client, &server.base, "two@example.com", None).await;
    assert_eq!(resp.status(), 401, "another email");
}

async fn trusted_proxies() {
    let (_dir, server) = serve(
        &[
            "--trusted-proxies",
            "127.0.0.1",
            "--auth-rate-per-ip",
            "1",
            "--auth-rate-per-account",
            "0",
        ],
        &[],
    )
    .await;
    let client = http();
    let attempt = |n: u32, xff: &'static str| {
        let (client, base) = (client.clone(), server.base.clone());
        async move { bad_login(&client, &base, &format!("x{n}@example.com"), Some(xff)).await }
    };
    assert_eq!(attempt(1, "198.51.100.1").await.status(), 401);
    assert_eq!(
        attempt(2, "198.51.100.2").await.status(),
        401,
        "another client behind the proxy"
    );
    assert_rate_limited(attempt(3, "198.51.100.1").await, 1, "the same client again").await;
}

async fn max_tasks_per_user() {
    let (_dir, server) = serve(&["--max-tasks-per-user", "1"], &[]).await;
    let (client, token) = (http(), jwt("quota"));
    let body = json!({"title": "t"});
    let resp = create_task(&client, &server.base, &token, &body, None).await;
    assert_eq!(resp.status(), 201);
    let resp = create_task(&client, &server.base, &token, &body, None).await;
    expect_problem(resp, 403, "a 2nd task over a quota of 1").await;
}

async fn max_idempotency_keys() {
    let (_dir, server) = serve(&["--max-idempotency-keys-per-user", "1"], &[]).await;
    let (client, token) = (http(), jwt("keys"));
    let body = json!({"title": "t"});
    let resp = create_task(&client, &server.base, &token, &body, Some("k1")).await;
    assert_eq!(resp.status(), 201);
    let resp = create_task(&client, &server.base, &token, &body, Some("k2")).await;
    expect_problem(resp, 403, "a 2nd key over a quota of 1").await;
}

async fn max_concurrent_searches() {
    let (_dir, server) = serve(&["--max-concurrent-searches-per-user", "1"], &[]).await;
    let user = "searcher".to_owned();
    seed(&server, std::slice::from_ref(&user), 1000).await;
    concurrent_searches(&server, &user, 1).await;
    let searches = concurrent_searches(&server, &user, 8);
    let (mean, max) = running_threads_during(server.pid(), searches).await;
    eprintln!(
        "max-concurrent-searches-per-user 1: 8 searches, running threads mean {mean:.2}, max {max}"
    );
    assert!(
        mean <= 1.5,
        "8 searches of one user at once kept {mean:.2} threads busy on average (at most {max}): \
         one search at a time keeps about one"
    );
}

async fn sqlite_max_size_mb() {
    let (_dir, server) = serve(
        &[
            "--sqlite-max-size-mb",
            "1",
            "--sqlite-synchronous",
            "normal",
        ],
        &[],
    )
    .await;
    let (full, created) = fill_until_refused(&http(), &server.base, &jwt("filler"), 400).await;
    expect_problem(full, 507, &format!("a create after {created} tasks")).await;
}

/// Starts the binary with `args`, creates a task `{"title": "t", "due_date": ...}` and returns
/// the create's body with the server.
async fn dialect_probe(args: &[&str]) -> (TempDir, Server, String, Value) {
    let (dir, server) = serve(args, &[]).await;
    let (client, token) = (http(), jwt("dialect"));
    let body = json!({"title": "t", "due_date": "2030-01-02T03:04:05Z"});
    let resp = create_task(&client, &server.base, &token, &body, None).await;
    assert_eq!(resp.status(), 201);
    let made: Value = resp.json().await.unwrap();
    (dir, server, token, made)
}

async fn list_envelope() {
    let (_dir, server, token, made) = dialect_probe(&[
        "--list-envelope",
        r#"{"items": "$tasks", "total": "$total"}"#,
    ])
    .await;
    let resp = http()
        .get(format!("{}/api/tasks", server.base))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body, json!({"items": [made], "total": 1}));
}

async fn task_envelope() {
    let (_dir, _server, _token, made) =
        dialect_probe(&["--task-envelope", r#"{"task": "$task"}"#]).await;
    assert_eq!(made["task"]["title"], "t", "{made}");
}

async fn error_envelope() {
    let (_dir, server, token, _) = dialect_probe(&[
        "--error-envelope",
        r#"{"error": "$code", "message": "$detail"}"#,
    ])
    .await;
    let resp = http()
        .get(format!("{}/api/tasks/424242", server.base))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    assert_eq!(
        header(&resp, "content-type").as_deref(),
        Some("application/json")
    );
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"], "not_found", "{body}");
}

async fn json_case() {
    let (_dir, _server, _token, made) = dialect_probe(&["--json-case", "camel"]).await;
    assert_eq!(made["dueDate"], "2030-01-02T03:04:05Z", "{made}");
    assert!(made.get("due_date").is_none(), "{made}");
}

async fn enum_case() {
    let (_dir, _server, _token, made) = dialect_probe(&["--enum-case", "upper"]).await;
    assert_eq!(
        (&made["priority"], &made["status"]),
        (&json!("MEDIUM"), &json!("PENDING"))
    );
}

async fn due_date_format() {
    let (_dir, _server, _token, made) = dialect_probe(&["--due-date-format", "date"]).await;
    assert_eq!(made["due_date"], "2030-01-02", "{made}");
}
