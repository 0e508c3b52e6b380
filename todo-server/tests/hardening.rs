//! The server's defences against slow, greedy and guessing clients, tested through the real
//! binary as an operator configures it (environment variables), over raw TCP where the timing of
//! single bytes matters: header, body and idle timeouts, the cap on open connections, the memory
//! held by request bodies and password hashes, rate limits on sign-in (and whom they count when
//! a proxy forwards), per-user quotas, a size cap on the SQLite file, and Better Auth's opaque
//! session tokens checked against its PostgreSQL `session` table.
#![cfg(unix)] // /proc, `kill`
#![allow(clippy::unwrap_used)] // test helpers panic on setup failures by design

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

mod support;
use support::{
    RssWatchdog, SECRET, Server, assert_body_timed_out, assert_closed_between, assert_rate_limited,
    bad_login, big_task, connect, cpu_time, create_task, expect_problem, fill_until_refused,
    header, http, idle_after_response, jwt, peak_rss_mib, pg_url, psql, raw_get, read_response,
    read_until_closed, run_to_exit, stall_body, start_with, token_with, trickle_headers, unique,
    write_all,
};

/// Held by the tests that load the machine (hundreds of connections, hundreds of password
/// hashes) or measure the server's CPU time, so that they do not run at the same time.
static HEAVY: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A server on a fresh SQLite file in `dir`, with the test secret and `envs`.
async fn server(dir: &std::path::Path, envs: &[(&str, &str)]) -> Server {
    let mut all: Vec<(&str, &str)> = vec![("BETTER_AUTH_SECRET", SECRET), ("RUST_LOG", "warn")];
    all.extend_from_slice(envs);
    start_with(dir, "server", &["--database-url", "sqlite://todo.db"], &all).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_trickling_its_headers_is_disconnected_after_the_header_read_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let server = server(dir.path(), &[("HEADER_READ_TIMEOUT_SECS", "2")]).await;
    // One byte every 300 ms: the headers would take about 20 s to arrive.
    let (got, since) = trickle_headers(server.addr, Duration::from_secs(8)).await;
    assert_closed_between(&got, since, 1.5, 4.5, "trickled headers");
    if let Some(resp) = got.response() {
        assert!(
            resp.status >= 400,
            "an incomplete request is never served: {resp:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_idle_for_the_idle_timeout_are_closed_but_active_ones_are_not() {
    let dir = tempfile::tempdir().unwrap();
    // A long header timeout, so that only the idle timeout can explain a close.
    let server = server(
        dir.path(),
        &[
            ("IDLE_TIMEOUT_SECS", "2"),
            ("HEADER_READ_TIMEOUT_SECS", "30"),
        ],
    )
    .await;
    let addr = server.addr;

    let silent = async move {
        let mut stream = connect(addr).await;
        let since = Instant::now();
        let got = read_until_closed(&mut stream, since + Duration::from_secs(8)).await;
        assert_closed_between(
            &got,
            since,
            1.5,
            4.5,
            "a connection that never sent anything",
        );
    };
    let kept_alive = async move {
        let (got, since) = idle_after_response(addr, Duration::from_secs(8)).await;
        assert_closed_between(&got, since, 1.5, 4.5, "an idle kept-alive connection");
    };
    // A connection that is never idle for 2 s lives longer than 2 s.
    let busy = async move {
        let mut stream = connect(addr).await;
        let since = Instant::now();
        while since.elapsed() < Duration::from_millis(3500) {
            let deadline = Instant::now() + Duration::from_secs(5);
            let resp = raw_get(&mut stream, "/healthz", deadline)
                .await
                .unwrap_or_else(|e| {
                    panic!(
                        "a connection used every 500 ms was dropped after {:.1} s: {e}",
                        since.elapsed().as_secs_f64()
                    )
                });
            assert_eq!(resp.status, 200);
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    };
    tokio::join!(silent, kept_alive, busy);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_slower_than_the_body_read_timeout_gets_a_408_problem_and_the_connection_closes() {
    let dir = tempfile::tempdir().unwrap();
    let server = server(dir.path(), &[("BODY_READ_TIMEOUT_SECS", "2")]).await;
    let (got, since) = stall_body(server.addr, &jwt("slow-body"), Duration::from_secs(8)).await;
    assert_body_timed_out(&got, since, 1.5, 4.5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_max_open_connections_wait_until_one_closes_without_busy_looping() {
    let _heavy = HEAVY.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let server = server(
        dir.path(),
        &[
            ("MAX_OPEN_CONNECTIONS", "20"),
            ("IDLE_TIMEOUT_SECS", "60"),
            ("HEADER_READ_TIMEOUT_SECS", "60"),
        ],
    )
    .await;
    // Let the server see the start-up probe's connection close.
    tokio::time::sleep(Duration::from_millis(300)).await;

    // 20 connections, each proven accepted by one answered request, then held idle.
    let mut held = Vec::new();
    for i in 0..20 {
        let mut stream = server.connect().await;
        let resp = raw_get(
            &mut stream,
            "/healthz",
            Instant::now() + Duration::from_secs(5),
        )
        .await
        .unwrap_or_else(|e| panic!("connection {} of 20 was not served: {e}", i + 1));
        assert_eq!(resp.status, 200);
        held.push(stream);
    }
    // Five more: the kernel completes their handshakes, the server must not take them.
    let mut waiting = Vec::new();
    for _ in 0..5 {
        let mut stream = server.connect().await;
        write_all(
            &mut stream,
            b"GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n",
            Instant::now() + Duration::from_secs(5),
        )
        .await
        .unwrap();
        waiting.push(stream);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let cpu_before = cpu_time(server.pid());
    let window = Instant::now();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let cpu_used = cpu_time(server.pid()).saturating_sub(cpu_before);
    let window = window.elapsed();
    for (i, stream) in waiting.iter_mut().enumerate() {
        let got = read_until_closed(stream, Instant::now() + Duration::from_millis(50)).await;
        assert!(
            got.bytes.is_empty() && !got.closed(),
            "connection {} beyond the cap of 20 was served (or closed) while 20 were open: {:?}",
            21 + i,
            String::from_utf8_lossy(&got.bytes)
        );
    }
    assert!(
        cpu_used < Duration::from_millis(300),
        "the server used {cpu_used:?} of CPU in {window:?} while holding 20 idle connections at \
         the cap (a busy loop?)"
    );

    drop(held);
    let deadline = Instant::now() + Duration::from_secs(5);
    for (i, stream) in waiting.iter_mut().enumerate() {
        let resp = read_response(stream, deadline).await.unwrap_or_else(|e| {
            panic!(
                "connection {} was not served after the 20 closed: {e}",
                21 + i
            )
        });
        assert_eq!(resp.status, 200, "{resp:?}");
    }
}

/// The largest body the server accepts (1 MiB), announced by each greedy connection.
const BIG_BODY: usize = 1 << 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_hundred_stalled_one_mib_bodies_stay_within_the_memory_budget_and_others_are_served()
{
    let _heavy = HEAVY.lock().await;
    let dir = tempfile::tempdir().unwrap();
    // The cap on connections is set high, so that the runner's open-files limit plays no part.
    let server = server(dir.path(), &[("MAX_OPEN_CONNECTIONS", "1000")]).await;
    let pid = server.pid();
    let watchdog = RssWatchdog::new(pid, 1024.0);
    let token = jwt("greedy");
    let head = format!(
        "POST /api/tasks HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nContent-Length: {BIG_BODY}\r\n\r\n"
    );
    let body: Arc<Vec<u8>> = Arc::new(vec![b' '; BIG_BODY - 1]);
    let addr = server.addr;

    let mut senders = tokio::task::JoinSet::new();
    for _ in 0..300 {
        let (head, body) = (head.clone(), body.clone());
        senders.spawn(async move {
            let mut stream = connect(addr).await;
            let deadline = Instant::now() + Duration::from_secs(15);
            let sent = match write_all(&mut stream, head.as_bytes(), deadline).await {
                Ok(()) => write_all(&mut stream, &body, deadline).await,
                Err(e) => Err(e),
            };
            (stream, sent)
        });
    }

    // Meanwhile another client lists its tasks, over and over; each answer must be prompt.
    let client = http();
    let reader = jwt("bystander");
    let mut latencies = Vec::new();
    for _ in 0..8 {
        tokio::time::sleep(Duration::from_millis(400)).await;
        let started = Instant::now();
        let resp = client
            .get(server.url("/api/tasks"))
            .bearer_auth(&reader)
            .send()
            .await;
        let took = started.elapsed();
        watchdog.assert_not_fired("300 stalled bodies");
        let resp = resp.unwrap_or_else(|e| panic!("GET /api/tasks failed during the flood: {e}"));
        assert_eq!(resp.status(), 200, "GET /api/tasks during the flood");
        latencies.push(took);
    }

    let mut streams = Vec::new();
    let mut write_failures = 0;
    while let Some(joined) = senders.join_next().await {
        let (stream, sent) = joined.unwrap();
        write_failures += usize::from(sent.is_err());
        streams.push(stream);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    watchdog.assert_not_fired("300 stalled bodies");
    let peak = peak_rss_mib(pid);

    // Whatever answers the greedy connections got so far: only "come back later".
    let mut answers = std::collections::BTreeMap::new();
    for stream in &mut streams {
        let got = read_until_closed(stream, Instant::now() + Duration::from_millis(5)).await;
        if let Some(resp) = got.response() {
            if resp.status == 503 {
                resp.assert_problem(503, "a body refused for lack of memory");
                assert!(resp.header("retry-after").is_some(), "{resp:?}");
            }
            *answers.entry(resp.status).or_insert(0) += 1;
        }
    }
    eprintln!(
        "300 stalled 1 MiB bodies: peak RSS {peak:.0} MiB, answers {answers:?}, \
         {write_failures} writes cut short, GET latencies {latencies:?}"
    );
    assert!(
        peak < 256.0,
        "the server's peak RSS reached {peak:.0} MiB with 300 stalled 1 MiB bodies (budget 32 MiB)"
    );
    let slowest = latencies.iter().max().copied().unwrap_or_default();
    assert!(
        slowest < Duration::from_secs(1),
        "a GET took {slowest:?} during the flood: {latencies:?}"
    );
    assert!(
        answers.keys().all(|s| *s == 503),
        "the stalled bodies may only be refused with 503: {answers:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_hundred_simultaneous_logins_stay_within_memory_and_get_200_or_503() {
    let _heavy = HEAVY.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let server = server(
        dir.path(),
        &[
            ("AUTH_RATE_PER_IP", "0"),
            ("AUTH_RATE_PER_ACCOUNT", "0"),
            ("MAX_OPEN_CONNECTIONS", "1000"),
        ],
    )
    .await;
    let pid = server.pid();
    let client = http();
    let account = json!({"email": "crowd@example.com", "password": "correct horse battery"});
    let resp = client
        .post(server.url("/api/auth/register"))
        .json(&account)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201, "{}", server.process.output());

    let watchdog = RssWatchdog::new(pid, 1024.0);
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let mut logins = tokio::task::JoinSet::new();
    for _ in 0..300 {
        let (client, url, account) = (
            client.clone(),
            server.url("/api/auth/login"),
            account.clone(),
        );
        logins.spawn(async move {
            let resp = client.post(url).json(&account).send().await?;
            let status = resp.status().as_u16();
            let retry_after = header(&resp, "retry-after");
            let content_type = header(&resp, "content-type").unwrap_or_default();
            let _ = resp.bytes().await;
            Ok::<_, reqwest::Error>((status, retry_after, content_type))
        });
    }
    let mut counts = std::collections::BTreeMap::new();
    let mut errors = Vec::new();
    while let Some(joined) = logins.join_next().await {
        match joined.unwrap() {
            Ok((status, retry_after, content_type)) => {
                if status == 503 {
                    assert!(
                        retry_after.is_some(),
                        "a 503 to a login carries Retry-After"
                    );
                    assert!(
                        content_type.starts_with("application/problem+json"),
                        "a 503 to a login is a problem document: {content_type}"
                    );
                }
                *counts.entry(status).or_insert(0) += 1;
            }
            Err(e) => errors.push(e.to_string()),
        }
    }
    watchdog.assert_not_fired("300 simultaneous logins");
    let peak = peak_rss_mib(pid);
    eprintln!("300 simultaneous logins: {counts:?}, peak RSS {peak:.0} MiB");
    assert!(errors.is_empty(), "logins without an answer: {errors:?}");
    assert!(
        counts.keys().all(|s| *s == 200 || *s == 503),
        "every login is 200 or 503: {counts:?}"
    );
    assert!(counts.contains_key(&200), "some logins succeed: {counts:?}");
    assert!(
        peak < 256.0,
        "the server's peak RSS reached {peak:.0} MiB during 300 simultaneous logins"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sixth_wrong_password_for_one_email_is_429_with_rate_limit_headers() {
    let dir = tempfile::tempdir().unwrap();
    let server = server(dir.path(), &[]).await;
    let client = http();
    for i in 1..=5 {
        let resp = bad_login(&client, &server.base, "victim@example.com", None).await;
        assert_eq!(resp.status(), 401, "attempt {i} of 5 allowed per minute");
    }
    let resp = bad_login(&client, &server.base, "victim@example.com", None).await;
    assert_rate_limited(resp, 5, "the 6th attempt on one email").await;
    // The limit is the account's: another email from the same address is still heard.
    let resp = bad_login(&client, &server.base, "someone-else@example.com", None).await;
    assert_eq!(resp.status(), 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_per_ip_limit_of_3_the_fourth_attempt_from_one_address_is_429() {
    let dir = tempfile::tempdir().unwrap();
    let server = server(
        dir.path(),
        &[("AUTH_RATE_PER_ACCOUNT", "0"), ("AUTH_RATE_PER_IP", "3")],
    )
    .await;
    let client = http();
    // Logins and registrations both count, each with another email.
    let resp = bad_login(&client, &server.base, "a@example.com", None).await;
    assert_eq!(resp.status(), 401);
    let register = |email: &str| {
        client
            .post(server.url("/api/auth/register"))
            .json(&json!({"email": email, "password": "correct horse battery"}))
            .send()
    };
    let resp = register("b@example.com").await.unwrap();
    assert_eq!(resp.status(), 201);
    let resp = bad_login(&client, &server.base, "c@example.com", None).await;
    assert_eq!(resp.status(), 401);
    let resp = register("d@example.com").await.unwrap();
    assert_rate_limited(resp, 3, "the 4th attempt from one address").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_trusted_proxies_x_forwarded_for_does_not_escape_the_per_ip_limit() {
    let dir = tempfile::tempdir().unwrap();
    let server = server(
        dir.path(),
        &[("AUTH_RATE_PER_ACCOUNT", "0"), ("AUTH_RATE_PER_IP", "3")],
    )
    .await;
    let client = http();
    for i in 1..=3 {
        let xff = format!("198.51.100.{i}");
        let resp = bad_login(
            &client,
            &server.base,
            &format!("u{i}@example.com"),
            Some(&xff),
        )
        .await;
        assert_eq!(resp.status(), 401);
    }
    let resp = bad_login(
        &client,
        &server.base,
        "u4@example.com",
        Some("198.51.100.4"),
    )
    .await;
    assert_rate_limited(resp, 3, "a 4th address claimed in X-Forwarded-For").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_a_trusted_proxy_each_forwarded_client_has_its_own_per_ip_limit() {
    let dir = tempfile::tempdir().unwrap();
    let server = server(
        dir.path(),
        &[
            ("AUTH_RATE_PER_ACCOUNT", "0"),
            ("AUTH_RATE_PER_IP", "2"),
            ("TRUSTED_PROXIES", "127.0.0.1"),
        ],
    )
    .await;
    let client = http();
    let mut n = 0;
    let mut attempt = |xff: &'static str| {
        n += 1;
        let email = format!("p{n}@example.com");
        let (client, server) = (&client, &server);
        async move { bad_login(client, &server.base, &email, Some(xff)).await }
    };
    assert_eq!(attempt("198.51.100.1").await.status(), 401);
    assert_eq!(attempt("198.51.100.1").await.status(), 401);
    assert_rate_limited(
        attempt("198.51.100.1").await,
        2,
        "the 3rd attempt of one forwarded client",
    )
    .await;
    // Another client behind the same proxy has its own allowance.
    assert_eq!(attempt("198.51.100.2").await.status(), 401);
    // The client is the rightmost address that is not a trusted proxy: what the client itself
    // put on the left of the list cannot make it someone else.
    assert_eq!(attempt("203.0.113.50, 198.51.100.2").await.status(), 401);
    assert_rate_limited(
        attempt("203.0.113.51, 198.51.100.2").await,
        2,
        "a spoofed left-hand X-Forwarded-For entry",
    )
    .await;
    assert_eq!(
        attempt("198.51.100.3, 127.0.0.1").await.status(),
        401,
        "a trusted hop on the right is skipped"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_user_quotas_on_tasks_and_idempotency_keys_are_403_problems() {
    let dir = tempfile::tempdir().unwrap();
    let server = server(
        dir.path(),
        &[
            ("MAX_TASKS_PER_USER", "3"),
            ("MAX_IDEMPOTENCY_KEYS_PER_USER", "2"),
        ],
    )
    .await;
    let client = http();

    let hoarder = jwt("hoarder");
    for i in 1..=3 {
        let resp = create_task(
            &client,
            &server.base,
            &hoarder,
            &json!({"title": format!("t{i}")}),
            None,
        )
        .await;
        assert_eq!(resp.status(), 201, "task {i} of 3");
    }
    let resp = create_task(
        &client,
        &server.base,
        &hoarder,
        &json!({"title": "t4"}),
        None,
    )
    .await;
    expect_problem(resp, 403, "a 4th task over a quota of 3").await;
    let other = jwt("neighbour");
    let resp = create_task(
        &client,
        &server.base,
        &other,
        &json!({"title": "mine"}),
        None,
    )
    .await;
    assert_eq!(resp.status(), 201, "the quota is per user");

    let keyed = jwt("retrier");
    let body = json!({"title": "keyed"});
    for key in ["k1", "k2"] {
        let resp = create_task(&client, &server.base, &keyed, &body, Some(key)).await;
        assert_eq!(resp.status(), 201, "key {key}");
    }
    let resp = create_task(&client, &server.base, &keyed, &body, Some("k3")).await;
    expect_problem(resp, 403, "a 3rd idempotency key over a quota of 2").await;
    let resp = create_task(&client, &server.base, &keyed, &body, Some("k1")).await;
    assert_eq!(resp.status(), 200, "a retry with a known key is a replay");
    let resp = create_task(&client, &server.base, &keyed, &body, None).await;
    assert_eq!(resp.status(), 201, "a create without a key needs no key");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_the_sqlite_file_is_full_plain_and_keyed_creates_get_507_problems() {
    let dir = tempfile::tempdir().unwrap();
    let server = server(
        dir.path(),
        &[
            ("SQLITE_MAX_SIZE_MB", "1"),
            ("SQLITE_SYNCHRONOUS", "normal"),
        ],
    )
    .await;
    let client = http();
    let token = jwt("filler");
    let (full, created) = fill_until_refused(&client, &server.base, &token, 400).await;
    expect_problem(full, 507, &format!("a create after {created} tasks")).await;
    let resp = create_task(&client, &server.base, &token, &big_task(), Some("full-key")).await;
    expect_problem(resp, 507, "a keyed create into a full file").await;
    let resp = client
        .get(server.url("/api/tasks?limit=1"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "reads still work");
}

#[test]
fn an_unreachable_session_database_stops_the_start_naming_session_database_url() {
    let dir = tempfile::tempdir().unwrap();
    let exit = run_to_exit(
        dir.path(),
        "unreachable-sessions",
        &["--database-url", "sqlite://todo.db"],
        &[
            ("BETTER_AUTH_SECRET", SECRET),
            (
                "SESSION_DATABASE_URL",
                "postgres://better:hunter2-in-the-url@127.0.0.1:1/auth",
            ),
        ],
        Duration::from_secs(20),
    );
    exit.assert_refused("unreachable SESSION_DATABASE_URL", "SESSION_DATABASE_URL");
    assert!(
        !exit.stderr.contains("hunter2-in-the-url"),
        "the password in the URL is not printed: {}",
        exit.report()
    );
}

/// A schema of the test database that exists for one test, and is dropped after it.
struct Schema {
    url: String,
    name: String,
}

impl Schema {
    fn create(url: &str) -> Self {
        let name = unique("todo_sessions_").to_lowercase();
        psql(url, &format!("create schema {name}"));
        Self {
            url: url.to_owned(),
            name,
        }
    }
}

impl Drop for Schema {
    fn drop(&mut self) {
        let _ = std::panic::catch_unwind(|| {
            psql(
                &self.url,
                &format!("drop schema if exists {} cascade", self.name),
            )
        });
    }
}

/// An opaque session token shaped like Better Auth's (32 letters and digits, no dots).
fn opaque_token() -> String {
    use rand::Rng;
    const CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::thread_rng();
    (0..32)
        .map(|_| CHARS[rng.gen_range(0..CHARS.len())] as char)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opaque_session_tokens_are_checked_against_better_auths_session_table() {
    let Some(pg) = pg_url("the session-table test") else {
        return;
    };
    let schema = Schema::create(&pg);
    let table = format!("{}.session", schema.name);
    psql(
        &pg,
        &format!(
            r#"create table {table} (
                 "id" text primary key, "expiresAt" timestamptz not null,
                 "token" text not null unique, "createdAt" timestamptz not null default now(),
                 "updatedAt" timestamptz not null default now(), "ipAddress" text,
                 "userAgent" text, "userId" text not null)"#
        ),
    );
    let (live, expired) = (opaque_token(), opaque_token());
    let user = unique("ba-user-");
    psql(
        &pg,
        &format!(
            r#"insert into {table} ("id", "token", "userId", "expiresAt") values
                 ('s1', '{live}', '{user}', now() + interval '1 hour'),
                 ('s2', '{expired}', '{user}', now() - interval '1 hour')"#
        ),
    );

    let dir = tempfile::tempdir().unwrap();
    let envs = [
        ("BETTER_AUTH_SECRET", SECRET),
        ("SESSION_DATABASE_URL", pg.as_str()),
        ("SESSION_TABLE", table.as_str()),
    ];
    let server = start_with(
        dir.path(),
        "server",
        &["--database-url", "sqlite://todo.db"],
        &envs,
    )
    .await;
    let client = http();

    let resp = create_task(
        &client,
        &server.base,
        &live,
        &json!({"title": "From a session"}),
        None,
    )
    .await;
    assert_eq!(resp.status(), 201, "{}", server.process.output());
    let task: Value = resp.json().await.unwrap();
    assert_eq!(task["user_id"], user.as_str());
    let resp = client
        .get(server.url("/api/tasks"))
        .bearer_auth(&live)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.json::<Value>().await.unwrap(), json!([task]));
    let resp = client
        .get(server.url(&format!("/api/{user}/tasks")))
        .bearer_auth(&live)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);

    for (what, token) in [
        ("an expired session", expired),
        ("an unknown token", opaque_token()),
    ] {
        let resp = client
            .get(server.url("/api/tasks"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        expect_problem(resp, 401, what).await;
    }

    let jwt = token_with(
        dir.path(),
        &["--database-url", "sqlite://todo.db"],
        &envs,
        "x",
    );
    let resp = client
        .get(server.url("/api/tasks"))
        .bearer_auth(&jwt)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "a JWT still goes to the JWT verifier");
}

#[test]
fn a_bad_session_table_setting_stops_the_start() {
    let Some(pg) = pg_url("the session-table start-up checks") else {
        return;
    };
    let schema = Schema::create(&pg);
    let table = format!("{}.session", schema.name);
    psql(
        &pg,
        &format!(
            r#"create table {table} ("token" text primary key, "userId" text not null,
                 "expiresAt" timestamptz not null)"#
        ),
    );
    let dir = tempfile::tempdir().unwrap();
    let refused = |name: &str, envs: &[(&str, &str)]| {
        let mut all = vec![
            ("BETTER_AUTH_SECRET", SECRET),
            ("SESSION_DATABASE_URL", pg.as_str()),
        ];
        all.extend_from_slice(envs);
        run_to_exit(
            dir.path(),
            name,
            &["--database-url", "sqlite://todo.db"],
            &all,
            Duration::from_secs(20),
        )
    };
    let exit = refused("injection", &[("SESSION_TABLE", "session; drop table x")]);
    exit.assert_refused("SESSION_TABLE with SQL in it", "SESSION_TABLE");

    let missing_table = format!("{}.no_such_table", schema.name);
    let exit = refused("no-table", &[("SESSION_TABLE", missing_table.as_str())]);
    assert!(
        !exit.status.success() && exit.status.code().is_some(),
        "a session table that does not exist: {}",
        exit.report()
    );
    for (var, column) in [
        ("SESSION_TOKEN_COLUMN", "no_such_token"),
        ("SESSION_USER_ID_COLUMN", "no_such_user"),
        ("SESSION_EXPIRES_AT_COLUMN", "no_such_expiry"),
    ] {
        let exit = refused(var, &[("SESSION_TABLE", table.as_str()), (var, column)]);
        assert!(
            !exit.status.success() && exit.status.code().is_some(),
            "{var}={column} names no column: {}",
            exit.report()
        );
    }
    // The same table with the right names is accepted (so the refusals above are about them).
    let envs = [
        ("BETTER_AUTH_SECRET", SECRET),
        ("SESSION_DATABASE_URL", pg.as_str()),
        ("SESSION_TABLE", table.as_str()),
    ];
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let _server = start_with(
            dir.path(),
            "accepted",
            &["--database-url", "sqlite://todo.db"],
            &envs,
        )
        .await;
    });
}

#[tokio::test]
async fn a_request_still_being_handled_is_never_cut_by_the_idle_timeout() {
    let _heavy = HEAVY.lock().await;
    let dir = tempfile::tempdir().unwrap();
    // One hash at a time and a 1 s idle timeout: the last of 120 simultaneous logins waits well
    // over a second for its turn while nothing moves on its connection (a hash takes ~20 ms).
    let server = server(
        dir.path(),
        &[
            ("AUTH_RATE_PER_IP", "0"),
            ("AUTH_RATE_PER_ACCOUNT", "0"),
            ("PASSWORD_HASH_CONCURRENCY", "1"),
            ("IDLE_TIMEOUT_SECS", "1"),
        ],
    )
    .await;
    let account = json!({"email": "patient@example.com", "password": "correct horse battery"});
    let resp = http()
        .post(server.url("/api/auth/register"))
        .json(&account)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let started = Instant::now();
    let mut logins = tokio::task::JoinSet::new();
    for _ in 0..120 {
        let (client, url, account) = (
            client.clone(),
            server.url("/api/auth/login"),
            account.clone(),
        );
        logins.spawn(async move {
            let resp = client.post(url).json(&account).send().await?;
            Ok::<_, reqwest::Error>(resp.status().as_u16())
        });
    }
    let mut statuses = std::collections::BTreeMap::new();
    while let Some(joined) = logins.join_next().await {
        let status = joined
            .unwrap()
            .unwrap_or_else(|e| panic!("a login waiting for its turn was cut off: {e}"));
        *statuses.entry(status).or_insert(0) += 1;
    }
    let took = started.elapsed();
    assert!(
        took > Duration::from_millis(1500),
        "the logins took {took:?}: too fast to show anything"
    );
    assert_eq!(statuses.get(&200), Some(&120), "{statuses:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heads_hyper_refuses_get_its_status_and_the_connection_closes() {
    use tokio::io::AsyncWriteExt;
    let dir = tempfile::tempdir().unwrap();
    let server = server(dir.path(), &[]).await;
    let big = |n: usize| {
        let mut head = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ".to_vec();
        head.extend(std::iter::repeat_n(b'a', n));
        head.extend_from_slice(b"\r\n\r\n");
        head
    };
    let mut long_url = b"GET /".to_vec();
    long_url.extend(std::iter::repeat_n(b'a', 100_000));
    long_url.extend_from_slice(b" HTTP/1.1\r\nHost: x\r\n\r\n");
    for (case, request, status) in [
        ("a 60 KB header", big(60_000), 200),
        ("a 70 KB header", big(70_000), 431),
        ("a 1 MB header", big(1 << 20), 431),
        ("a 100 KB URL", long_url, 431),
        (
            "a duplicate Content-Length",
            b"POST /api/tasks HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello"
                .to_vec(),
            400,
        ),
        (
            "a control byte in a header",
            b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Bad: a\x01b\r\n\r\n".to_vec(),
            400,
        ),
    ] {
        let mut stream = server.connect().await;
        // The server may answer and close before a long request is written in full.
        let _ = stream.write_all(&request).await;
        // A served request leaves the connection open: read it for a moment only.
        let wait = Duration::from_secs(if status == 200 { 1 } else { 5 });
        let got = read_until_closed(&mut stream, Instant::now() + wait).await;
        let resp = got
            .response()
            .unwrap_or_else(|| panic!("{case}: no answer"));
        assert_eq!(resp.status, status, "{case}");
        if status != 200 {
            assert!(got.closed(), "{case}: the connection stays open");
        }
    }
}
