//! Helpers for the tests that run the real `todo-server` binary as an operator would: on a free
//! port, from a temporary working directory, with none of the runner's own settings leaking in,
//! spoken to over real TCP. Every wait has a deadline, so a test can fail but never hang, and
//! every child process is killed when its guard is dropped.
//!
//! `TODO_SERVER_BIN=/path/to/todo-server` runs the tests against another build of the binary (a
//! release build, or an older commit's) instead of the one cargo built for this test.
#![allow(dead_code)] // each test crate uses its own subset
#![allow(clippy::unwrap_used)] // test helpers panic on setup failures by design

use std::fs::File;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long the server may take to answer `/healthz` after it is started.
pub const START_DEADLINE: Duration = Duration::from_secs(60);
/// How long the server may take to exit after SIGTERM (its graceful shutdown waits up to 10 s).
pub const STOP_DEADLINE: Duration = Duration::from_secs(20);
/// How long a command that should fail at start may run.
pub const FAIL_DEADLINE: Duration = Duration::from_secs(30);

/// The `BETTER_AUTH_SECRET` the tests give the servers they start (and sign tokens with).
pub const SECRET: &str = "binary-tests-secret-0123456789-abcdefghij";

pub mod backends;
#[allow(unused_imports)] // each test crate uses its own subset
pub use backends::{PG_ENV, POOLER_ENV};

/// The binary under test.
pub fn bin() -> PathBuf {
    std::env::var_os("TODO_SERVER_BIN")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_todo-server")))
}

/// A port that was free a moment ago.
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// Variables the server reads that are not options (so `--help` does not list them).
const EXTRA_ENV: [&str; 3] = ["RUST_LOG", "RUST_BACKTRACE", "NO_COLOR"];

/// Settings known to be read from the environment, in case `--help` cannot be run.
const KNOWN_ENV: [&str; 33] = [
    "HOST",
    "PORT",
    "DATABASE_URL",
    "BETTER_AUTH_SECRET",
    "JWKS_URL",
    "SESSION_DATABASE_URL",
    "SESSION_TABLE",
    "SESSION_TOKEN_COLUMN",
    "SESSION_USER_ID_COLUMN",
    "SESSION_EXPIRES_AT_COLUMN",
    "JWT_ISSUER",
    "JWT_AUDIENCE",
    "JWT_LEEWAY_SECONDS",
    "CORS_ALLOWED_ORIGINS",
    "BUILTIN_ACCOUNTS",
    "COOKIE_AUTH",
    "TOKEN_TTL_MINUTES",
    "SQLITE_SYNCHRONOUS",
    "DATABASE_MAX_CONNECTIONS",
    "DATABASE_READ_CONNECTIONS",
    "HEADER_READ_TIMEOUT_SECS",
    "IDLE_TIMEOUT_SECS",
    "BODY_READ_TIMEOUT_SECS",
    "MAX_OPEN_CONNECTIONS",
    "BODY_MEMORY_BUDGET_MIB",
    "PASSWORD_HASH_CONCURRENCY",
    "AUTH_RATE_PER_IP",
    "AUTH_RATE_PER_ACCOUNT",
    "TRUSTED_PROXIES",
    "MAX_TASKS_PER_USER",
    "MAX_IDEMPOTENCY_KEYS_PER_USER",
    "MAX_CONCURRENT_SEARCHES_PER_USER",
    "SQLITE_MAX_SIZE_MB",
];

/// The binary with none of the server's settings inherited from the test runner's environment.
fn bare_command() -> Command {
    let mut cmd = Command::new(bin());
    cmd.stdin(Stdio::null());
    for var in KNOWN_ENV.iter().chain(EXTRA_ENV.iter()) {
        cmd.env_remove(var);
    }
    cmd
}

/// One option as `--help` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HelpOption {
    /// `--flag`.
    pub flag: String,
    /// The environment variable in `[env: NAME...]`, if any.
    pub env: Option<String>,
}

/// Every option `todo-server --help` lists, parsed once per test process.
pub fn help_options() -> &'static [HelpOption] {
    static OPTIONS: OnceLock<Vec<HelpOption>> = OnceLock::new();
    OPTIONS.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let mut cmd = bare_command();
        cmd.current_dir(dir.path()).arg("--help");
        let mut process = Guard::spawn(cmd, dir.path(), "help");
        let status = process.wait(FAIL_DEADLINE);
        assert!(status.success(), "--help failed\n{}", process.output());
        parse_help(&process.stdout())
    })
}

/// Parses clap's help text: an option line is indented by at most 6 spaces and starts with `-`;
/// its environment variable is the `[env: NAME` that follows before the next option line.
pub fn parse_help(text: &str) -> Vec<HelpOption> {
    let mut out: Vec<HelpOption> = Vec::new();
    for line in text.lines() {
        let indent = line.len() - line.trim_start().len();
        let trimmed = line.trim_start();
        if trimmed.starts_with('-')
            && indent <= 6
            && let Some(flag) = trimmed
                .split_whitespace()
                .map(|t| t.trim_end_matches(','))
                .find(|t| t.starts_with("--"))
        {
            let flag = flag.split(['=', '<']).next().unwrap_or(flag).to_owned();
            out.push(HelpOption { flag, env: None });
        }
        if let (Some(last), Some(at)) = (out.last_mut(), line.find("[env: "))
            && last.env.is_none()
        {
            let name: String = line[at + 6..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            last.env = Some(name);
        }
    }
    out
}

/// The binary, run in `dir`, with a clean environment for its own settings.
pub fn command(dir: &Path) -> Command {
    let mut cmd = bare_command();
    cmd.current_dir(dir);
    for option in help_options() {
        if let Some(env) = &option.env {
            cmd.env_remove(env);
        }
    }
    cmd
}

/// A child process that is killed (and reaped) when dropped, so a failing assertion never leaves a
/// server running. Its stdout and stderr go to files, so it can never block on a full pipe and its
/// output can be shown when something fails.
pub struct Guard {
    /// The process.
    pub child: Child,
    stdout: PathBuf,
    stderr: PathBuf,
}

impl Guard {
    /// Spawns `cmd` with its output captured in `<dir>/<name>.stdout` and `.stderr`.
    pub fn spawn(mut cmd: Command, dir: &Path, name: &str) -> Self {
        let stdout = dir.join(format!("{name}.stdout"));
        let stderr = dir.join(format!("{name}.stderr"));
        let child = cmd
            .stdout(File::create(&stdout).unwrap())
            .stderr(File::create(&stderr).unwrap())
            .spawn()
            .unwrap();
        Self {
            child,
            stdout,
            stderr,
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// What it printed on stdout so far.
    pub fn stdout(&self) -> String {
        std::fs::read_to_string(&self.stdout).unwrap_or_default()
    }

    /// What it printed on stderr so far.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// Both outputs, for failure messages (the last 8 KiB of each).
    pub fn output(&self) -> String {
        fn tail(s: String) -> String {
            let cut = s.len().saturating_sub(8 << 10);
            let cut = (cut..=s.len())
                .find(|i| s.is_char_boundary(*i))
                .unwrap_or(s.len());
            s[cut..].to_owned()
        }
        format!(
            "--- stdout ---\n{}--- stderr ---\n{}",
            tail(self.stdout()),
            tail(self.stderr())
        )
    }

    /// Its exit status, if it has exited.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().unwrap()
    }

    /// Waits for the process to exit; kills it and panics after `deadline`.
    pub fn wait(&mut self, deadline: Duration) -> ExitStatus {
        let until = Instant::now() + deadline;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            if Instant::now() >= until {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!(
                    "the process did not exit within {deadline:?}\n{}",
                    self.output()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends SIGTERM.
    pub fn terminate(&self) {
        signal(self.pid(), "TERM");
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// Sends `sig` to the process `pid` (one this test started).
pub fn signal(pid: u32, sig: &str) {
    let status = Command::new("kill")
        .args([&format!("-{sig}"), &pid.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "kill -{sig} {pid} failed: {status}");
}

/// A running server and the address it answers on.
pub struct Server {
    /// The process.
    pub process: Guard,
    /// `http://host:port`.
    pub base: String,
    /// The address it listens on.
    pub addr: SocketAddr,
}

impl Server {
    /// The process id.
    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    /// `base` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Opens a raw TCP connection to the server (5 s deadline).
    pub async fn connect(&self) -> TcpStream {
        connect(self.addr).await
    }
}

/// Opens a raw TCP connection (5 s deadline).
pub async fn connect(addr: SocketAddr) -> TcpStream {
    tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(addr))
        .await
        .unwrap_or_else(|_| panic!("connecting to {addr} took more than 5 s"))
        .unwrap_or_else(|e| panic!("cannot connect to {addr}: {e}"))
}

/// Starts the server on `database_url` and a free port, and waits until `/healthz` answers.
pub async fn start(dir: &Path, database_url: &str, name: &str) -> Server {
    start_with(dir, name, &["--database-url", database_url], &[]).await
}

/// Starts the server in `dir` with `args` and `envs` on a free port (unless `args` name one
/// with `--port`), and waits until `/healthz` answers on `--host` (default 127.0.0.1).
pub async fn start_with(dir: &Path, name: &str, args: &[&str], envs: &[(&str, &str)]) -> Server {
    let value_of = |flag: &str| {
        args.iter()
            .position(|a| *a == flag)
            .and_then(|i| args.get(i + 1))
            .map(|v| (*v).to_owned())
    };
    let host = value_of("--host").unwrap_or_else(|| "127.0.0.1".to_owned());
    let mut cmd = command(dir);
    let port = match value_of("--port") {
        Some(p) => p.parse::<u16>().unwrap(),
        None => {
            let p = free_port();
            cmd.args(["--port", &p.to_string()]);
            p
        }
    };
    cmd.args(args);
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let mut process = Guard::spawn(cmd, dir, name);
    let addr: SocketAddr = format!("{host}:{port}").parse().unwrap();
    let base = format!("http://{addr}");
    wait_healthy(&mut process, &base).await;
    Server {
        process,
        base,
        addr,
    }
}

/// Waits until `base/healthz` answers 200 (the process must not exit meanwhile). The client that
/// polls is dropped before returning, so it keeps no connection open.
pub async fn wait_healthy(process: &mut Guard, base: &str) {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let until = Instant::now() + START_DEADLINE;
    loop {
        if let Ok(resp) = client.get(format!("{base}/healthz")).send().await
            && resp.status() == 200
        {
            let body: Value = resp.json().await.unwrap();
            assert_eq!(body, json!({"status": "ok"}));
            return;
        }
        if let Some(listening) = listening_url(&process.stdout()) {
            assert_eq!(
                listening,
                base,
                "the server listens elsewhere\n{}",
                process.output()
            );
        }
        if let Some(status) = process.exited() {
            panic!(
                "the server exited before answering /healthz ({status})\n{}",
                process.output()
            );
        }
        assert!(
            Instant::now() < until,
            "the server did not answer /healthz within {START_DEADLINE:?}\n{}",
            process.output()
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// The URL in the server's "todo-server listening on <url>" line, once it is printed.
pub fn listening_url(stdout: &str) -> Option<String> {
    stdout
        .lines()
        .find_map(|l| l.split("listening on ").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .map(str::to_owned)
}

/// How a start that should fail ended.
#[derive(Debug)]
pub struct Exit {
    /// The exit status.
    pub status: ExitStatus,
    /// Everything on stdout.
    pub stdout: String,
    /// Everything on stderr.
    pub stderr: String,
}

impl Exit {
    /// For failure messages.
    pub fn report(&self) -> String {
        format!(
            "{}\n--- stdout ---\n{}--- stderr ---\n{}",
            self.status, self.stdout, self.stderr
        )
    }

    /// Asserts a failed start (non-zero exit code, not a signal, no panic) whose stderr names
    /// `names`.
    pub fn assert_refused(&self, case: &str, names: &str) {
        assert!(
            !self.status.success() && self.status.code().is_some(),
            "{case}: the start must fail with an exit code: {}",
            self.report()
        );
        assert!(
            self.stderr.contains(names),
            "{case}: the error must name {names}: {}",
            self.report()
        );
        assert!(
            !self.stderr.contains("panicked"),
            "{case}: no panic: {}",
            self.report()
        );
    }
}

/// Runs the binary in `dir` with `args` and `envs` on a free port until it exits, and returns
/// how. Panics if it starts listening instead (that is, accepts a configuration it should
/// refuse), or if it neither exits nor listens within `deadline`.
pub fn run_to_exit(
    dir: &Path,
    name: &str,
    args: &[&str],
    envs: &[(&str, &str)],
    deadline: Duration,
) -> Exit {
    let mut cmd = command(dir);
    cmd.args(["--port", &free_port().to_string()]).args(args);
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let mut process = Guard::spawn(cmd, dir, name);
    let until = Instant::now() + deadline;
    loop {
        if let Some(status) = process.exited() {
            return Exit {
                status,
                stdout: process.stdout(),
                stderr: process.stderr(),
            };
        }
        assert!(
            !process.stdout().contains("listening on"),
            "{name}: the server started although the configuration should stop it\n{}",
            process.output()
        );
        assert!(
            Instant::now() < until,
            "{name}: the process neither exited nor listened within {deadline:?}\n{}",
            process.output()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs `token --user <user>` with the same database URL and returns the printed token.
pub fn token(dir: &Path, database_url: &str, user: &str) -> String {
    token_with(dir, &["--database-url", database_url], &[], user)
}

/// Runs `<args> token --user <user>` with `envs` and returns the printed token.
pub fn token_with(dir: &Path, args: &[&str], envs: &[(&str, &str)], user: &str) -> String {
    let mut cmd = command(dir);
    cmd.args(args).args(["token", "--user", user]);
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let mut process = Guard::spawn(cmd, dir, "token");
    let status = process.wait(FAIL_DEADLINE);
    assert!(status.success(), "token failed\n{}", process.output());
    let out = process.stdout();
    let token = out.trim();
    assert_eq!(
        token.split('.').count(),
        3,
        "not a JWT: {out:?}\n{}",
        process.output()
    );
    token.to_owned()
}

/// Seconds since the epoch.
pub fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// An HS256 token over `claims`, signed with `secret`.
pub fn sign(claims: &Value, secret: &str) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

/// A valid token for `user`, signed with [`SECRET`], for an hour.
pub fn jwt(user: &str) -> String {
    let now = now_secs();
    sign(
        &json!({"sub": user, "id": user, "iat": now, "exp": now + 3600}),
        SECRET,
    )
}

/// A user id no other test uses.
pub fn unique(prefix: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!(
        "{prefix}{}x{}x{nanos:x}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// An HTTP client with a 10 s timeout that keeps no idle connection open.
pub fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .pool_max_idle_per_host(0)
        .build()
        .unwrap()
}

/// A response header as text.
pub fn header(resp: &reqwest::Response, name: &str) -> Option<String> {
    resp.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// Asserts an RFC 9457 problem document with `status`, and returns its headers and body.
pub async fn expect_problem(
    resp: reqwest::Response,
    status: u16,
    what: &str,
) -> (reqwest::header::HeaderMap, Value) {
    let got = resp.status().as_u16();
    let headers = resp.headers().clone();
    let text = resp.text().await.unwrap_or_default();
    assert_eq!(got, status, "{what}: {text}");
    let content_type = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    assert!(
        content_type.starts_with("application/problem+json"),
        "{what}: content type {content_type:?}"
    );
    let body: Value =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{what}: not JSON ({e}): {text}"));
    assert_eq!(body["status"], status, "{what}: {body}");
    (headers, body)
}

// ---------------------------------------------------------------------------------------------
// Raw HTTP/1.1 over TCP.

/// A response read off a raw connection.
#[derive(Debug, Clone)]
pub struct RawResponse {
    /// The status code.
    pub status: u16,
    /// Headers, names lowercased, in order.
    pub headers: Vec<(String, String)>,
    /// The body (de-chunked).
    pub body: Vec<u8>,
}

impl RawResponse {
    /// The first header called `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body as JSON.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    /// Asserts a problem document with `status`.
    pub fn assert_problem(&self, status: u16, what: &str) {
        assert_eq!(self.status, status, "{what}: {self:?}");
        let content_type = self.header("content-type").unwrap_or("");
        assert!(
            content_type.starts_with("application/problem+json"),
            "{what}: content type {content_type:?}"
        );
        assert_eq!(self.json()["status"], status, "{what}");
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Parses one response from the start of `buf`: `None` while it is incomplete. `eof` says no
/// more bytes will come (a body without a length then ends there).
pub fn parse_response(buf: &[u8], eof: bool) -> Option<(RawResponse, usize)> {
    let end = find(buf, b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&buf[..end]);
    let mut lines = head.split("\r\n");
    let status = lines.next()?.split(' ').nth(1)?.parse::<u16>().ok()?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let get = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    let start = end + 4;
    let no_body = status == 204 || status == 304 || (100..200).contains(&status);
    let (body, used) = if no_body {
        (Vec::new(), start)
    } else if get("transfer-encoding").is_some_and(|t| t.to_ascii_lowercase().contains("chunked")) {
        let mut body = Vec::new();
        let mut at = start;
        loop {
            let line_end = at + find(&buf[at..], b"\r\n")?;
            let size_text = String::from_utf8_lossy(&buf[at..line_end]);
            let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
            at = line_end + 2;
            if size == 0 {
                let trailer_end = at + find(&buf[at..], b"\r\n")?;
                break (body, trailer_end + 2);
            }
            if buf.len() < at + size + 2 {
                return None;
            }
            body.extend_from_slice(&buf[at..at + size]);
            at += size + 2;
        }
    } else if let Some(len) = get("content-length").and_then(|l| l.parse::<usize>().ok()) {
        if buf.len() < start + len {
            return None;
        }
        (buf[start..start + len].to_vec(), start + len)
    } else if eof {
        (buf[start..].to_vec(), buf.len())
    } else {
        return None;
    };
    Some((
        RawResponse {
            status,
            headers,
            body,
        },
        used,
    ))
}

/// How reading a connection until it closed ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// The server closed it (read returned 0).
    Eof,
    /// The connection was reset or otherwise failed.
    Reset,
    /// Still open at the deadline.
    StillOpen,
}

/// What a connection received until it closed or `deadline` passed.
#[derive(Debug)]
pub struct Received {
    /// Every byte received.
    pub bytes: Vec<u8>,
    /// How it ended.
    pub ending: Ending,
    /// When it ended (or the deadline).
    pub at: Instant,
}

impl Received {
    /// The first response in what was received, if complete.
    pub fn response(&self) -> Option<RawResponse> {
        parse_response(&self.bytes, self.ending != Ending::StillOpen).map(|(r, _)| r)
    }

    /// Whether the server closed the connection.
    pub fn closed(&self) -> bool {
        self.ending != Ending::StillOpen
    }
}

/// Reads `stream` until the server closes it or `deadline` passes.
pub async fn read_until_closed<R: AsyncReadExt + Unpin>(
    stream: &mut R,
    deadline: Instant,
) -> Received {
    let mut bytes = Vec::new();
    let mut buf = vec![0u8; 16 << 10];
    loop {
        match tokio::time::timeout_at(deadline.into(), stream.read(&mut buf)).await {
            Err(_) => {
                return Received {
                    bytes,
                    ending: Ending::StillOpen,
                    at: Instant::now(),
                };
            }
            Ok(Ok(0)) => {
                return Received {
                    bytes,
                    ending: Ending::Eof,
                    at: Instant::now(),
                };
            }
            Ok(Ok(n)) => bytes.extend_from_slice(&buf[..n]),
            Ok(Err(_)) => {
                return Received {
                    bytes,
                    ending: Ending::Reset,
                    at: Instant::now(),
                };
            }
        }
    }
}

/// Reads one whole response from `stream` before `deadline`; `Err` says what happened instead.
pub async fn read_response<R: AsyncReadExt + Unpin>(
    stream: &mut R,
    deadline: Instant,
) -> Result<RawResponse, String> {
    let mut bytes = Vec::new();
    let mut buf = vec![0u8; 16 << 10];
    loop {
        if let Some((resp, _)) = parse_response(&bytes, false) {
            return Ok(resp);
        }
        match tokio::time::timeout_at(deadline.into(), stream.read(&mut buf)).await {
            Err(_) => {
                return Err(format!(
                    "no complete response before the deadline; got {:?}",
                    String::from_utf8_lossy(&bytes)
                ));
            }
            Ok(Ok(0)) => {
                return parse_response(&bytes, true).map(|(r, _)| r).ok_or_else(|| {
                    format!(
                        "closed before a complete response; got {:?}",
                        String::from_utf8_lossy(&bytes)
                    )
                });
            }
            Ok(Ok(n)) => bytes.extend_from_slice(&buf[..n]),
            Ok(Err(e)) => {
                return Err(format!(
                    "read failed ({e}); got {:?}",
                    String::from_utf8_lossy(&bytes)
                ));
            }
        }
    }
}

/// Writes `bytes` before `deadline`.
pub async fn write_all<W: AsyncWriteExt + Unpin>(
    stream: &mut W,
    bytes: &[u8],
    deadline: Instant,
) -> Result<(), String> {
    match tokio::time::timeout_at(deadline.into(), stream.write_all(bytes)).await {
        Err(_) => Err("the write did not finish before the deadline".to_owned()),
        Ok(Err(e)) => Err(format!("the write failed: {e}")),
        Ok(Ok(())) => Ok(()),
    }
}

/// `GET path` on a kept-alive raw connection: writes the request and reads the response.
pub async fn raw_get(
    stream: &mut TcpStream,
    path: &str,
    deadline: Instant,
) -> Result<RawResponse, String> {
    let request = format!("GET {path} HTTP/1.1\r\nHost: test\r\n\r\n");
    write_all(stream, request.as_bytes(), deadline).await?;
    read_response(stream, deadline).await
}

// ---------------------------------------------------------------------------------------------
// The server process, seen from /proc.

fn proc_status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|rest| rest.trim_start_matches(':').split_whitespace().next())
        .and_then(|n| n.parse().ok())
}

/// Peak resident memory (`VmHWM`) of a running process, in MiB.
pub fn peak_rss_mib(pid: u32) -> f64 {
    proc_status_kib(pid, "VmHWM").unwrap_or_else(|| panic!("no VmHWM for {pid}")) as f64 / 1024.0
}

/// Current resident memory (`VmRSS`) of a running process, in MiB.
pub fn rss_mib(pid: u32) -> Option<f64> {
    proc_status_kib(pid, "VmRSS").map(|k| k as f64 / 1024.0)
}

fn clock_ticks_per_second() -> f64 {
    static TICKS: OnceLock<f64> = OnceLock::new();
    *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(100.0)
    })
}

/// CPU time (user + system) a process has used so far.
pub fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after_name = &stat[stat.rfind(')').unwrap() + 1..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // After the name: state is field 3 of the whole line, utime 14, stime 15.
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    Duration::from_secs_f64(ticks / clock_ticks_per_second())
}

/// Kills a process (with SIGKILL, by its id) as soon as its resident memory passes a limit, so a
/// test of memory bounds cannot exhaust the machine's memory when the bound is missing. Stops
/// watching when dropped.
pub struct RssWatchdog {
    stop: Arc<AtomicBool>,
    fired: Arc<AtomicBool>,
    limit_mib: f64,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl RssWatchdog {
    /// Watches `pid` every 10 ms.
    pub fn new(pid: u32, limit_mib: f64) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let fired = Arc::new(AtomicBool::new(false));
        let thread = {
            let (stop, fired) = (stop.clone(), fired.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    match rss_mib(pid) {
                        Some(rss) if rss > limit_mib => {
                            fired.store(true, Ordering::Relaxed);
                            let _ = Command::new("kill")
                                .args(["-KILL", &pid.to_string()])
                                .status();
                            return;
                        }
                        Some(_) => {}
                        None => return,
                    }
                    std::thread::sleep(Duration::from_millis(10));
                }
            })
        };
        Self {
            stop,
            fired,
            limit_mib,
            thread: Some(thread),
        }
    }

    /// Panics if the watchdog had to kill the process.
    pub fn assert_not_fired(&self, what: &str) {
        assert!(
            !self.fired.load(Ordering::Relaxed),
            "{what}: the server's resident memory passed {} MiB, so it was killed",
            self.limit_mib
        );
    }
}

impl Drop for RssWatchdog {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

// ---------------------------------------------------------------------------------------------
// PostgreSQL, through `psql` (CI has it wherever it has the database).

/// The PostgreSQL test database URL, or `None` after printing why the caller skips.
pub fn pg_url(what: &str) -> Option<String> {
    match std::env::var(PG_ENV) {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            eprintln!("\n*** SKIPPING {what}: {PG_ENV} is not set ***\n");
            None
        }
    }
}

/// Runs `sql` with `psql` against `url` (stopping at the first error) and returns its output.
pub fn psql(url: &str, sql: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = Command::new("psql");
    cmd.args([
        url,
        "-v",
        "ON_ERROR_STOP=1",
        "-X",
        "-q",
        "-A",
        "-t",
        "-c",
        sql,
    ])
    .stdin(Stdio::null());
    let mut process = Guard::spawn(cmd, dir.path(), "psql");
    let status = process.wait(Duration::from_secs(30));
    assert!(
        status.success(),
        "psql failed on {sql}\n{}",
        process.output()
    );
    process.stdout()
}

// ---------------------------------------------------------------------------------------------
// Observations shared by the hardening tests and the option probes.

/// Sends a request's headers one byte every 300 ms and returns when the server closed the
/// connection (or `max_wait` passed), with the moment the connection was opened.
pub async fn trickle_headers(addr: SocketAddr, max_wait: Duration) -> (Received, Instant) {
    let stream = connect(addr).await;
    let since = Instant::now();
    let (mut rd, mut wr) = stream.into_split();
    let writer = tokio::spawn(async move {
        let request = b"GET /healthz HTTP/1.1\r\nHost: test\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n";
        for byte in request {
            if wr.write_all(&[*byte]).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    });
    let got = read_until_closed(&mut rd, since + max_wait).await;
    writer.abort();
    (got, since)
}

/// Serves one request on a kept-alive connection, then sends nothing; returns when the server
/// closed it (or `max_wait` passed), with the moment the response had been read.
pub async fn idle_after_response(addr: SocketAddr, max_wait: Duration) -> (Received, Instant) {
    let mut stream = connect(addr).await;
    let resp = raw_get(
        &mut stream,
        "/healthz",
        Instant::now() + Duration::from_secs(5),
    )
    .await
    .unwrap();
    assert_eq!(resp.status, 200, "{resp:?}");
    let since = Instant::now();
    (
        read_until_closed(&mut stream, since + max_wait).await,
        since,
    )
}

/// Sends `POST /api/tasks` announcing a 100-byte body, then only 13 bytes of it, and stalls;
/// returns what came back until the server closed the connection (or `max_wait` passed), with
/// the moment the bytes had been sent.
pub async fn stall_body(addr: SocketAddr, token: &str, max_wait: Duration) -> (Received, Instant) {
    let mut stream = connect(addr).await;
    let partial = br#"{"title": "ab"#;
    let mut request = format!(
        "POST /api/tasks HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nContent-Length: 100\r\n\r\n"
    )
    .into_bytes();
    request.extend_from_slice(partial);
    let since = Instant::now();
    write_all(&mut stream, &request, since + Duration::from_secs(5))
        .await
        .unwrap();
    (
        read_until_closed(&mut stream, since + max_wait).await,
        since,
    )
}

/// Asserts the connection was closed by the server between `min` and `max` seconds after `since`.
pub fn assert_closed_between(got: &Received, since: Instant, min: f64, max: f64, what: &str) {
    let after = got.at.duration_since(since).as_secs_f64();
    assert!(
        got.closed(),
        "{what}: still open {after:.1} s later (received {:?})",
        String::from_utf8_lossy(&got.bytes)
    );
    assert!(
        (min..=max).contains(&after),
        "{what}: closed after {after:.2} s, expected between {min} and {max} s ({:?})",
        got.ending
    );
}

/// The response to a stalled body: a complete 408 problem, then the connection closed, between
/// `min` and `max` seconds after the bytes were sent.
pub fn assert_body_timed_out(got: &Received, since: Instant, min: f64, max: f64) {
    let resp = got.response().unwrap_or_else(|| {
        panic!(
            "no complete response after {:.1} s ({:?}): {:?}",
            got.at.duration_since(since).as_secs_f64(),
            got.ending,
            String::from_utf8_lossy(&got.bytes)
        )
    });
    resp.assert_problem(408, "a stalled body");
    assert_closed_between(got, since, min, max, "after the 408");
}

/// `POST /api/auth/login` with a wrong password for `email`, claiming to be `forwarded_for` in
/// every forwarding header there is.
pub async fn bad_login(
    client: &reqwest::Client,
    base: &str,
    email: &str,
    forwarded_for: Option<&str>,
) -> reqwest::Response {
    let mut req = client
        .post(format!("{base}/api/auth/login"))
        .json(&json!({"email": email, "password": "wrong password!"}));
    if let Some(xff) = forwarded_for {
        req = req
            .header("x-forwarded-for", xff)
            .header("x-real-ip", xff)
            .header("forwarded", format!("for={xff}"));
    }
    req.send().await.unwrap()
}

/// One item of an RFC 8941 list such as `"auth-ip";q=20;w=60`: its name and parameters.
fn structured_items(value: &str) -> Vec<(String, Vec<(String, String)>)> {
    value
        .split(',')
        .map(|item| {
            let mut parts = item.trim().split(';');
            let name = parts
                .next()
                .unwrap_or("")
                .trim()
                .trim_matches('"')
                .to_owned();
            let params = parts
                .filter_map(|p| p.split_once('='))
                .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
                .collect();
            (name, params)
        })
        .collect()
}

fn param<'a>(params: &'a [(String, String)], key: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// Asserts a 429 problem with an integer `Retry-After` of at least 1 s, a `RateLimit-Policy`
/// naming a policy of `quota` per 60 s, and a `RateLimit` saying that policy has none left.
pub async fn assert_rate_limited(resp: reqwest::Response, quota: u32, what: &str) {
    let (headers, _) = expect_problem(resp, 429, what).await;
    let get = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
            .unwrap_or_else(|| panic!("{what}: no {name} header in {headers:?}"))
    };
    let retry_after: u64 = get("retry-after")
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("{what}: Retry-After is not whole seconds: {headers:?}"));
    assert!(
        (1..=60).contains(&retry_after),
        "{what}: Retry-After {retry_after}"
    );
    let policies = structured_items(&get("ratelimit-policy"));
    let policy = policies
        .iter()
        .find(|(_, p)| {
            param(p, "q") == Some(quota.to_string().as_str()) && param(p, "w") == Some("60")
        })
        .unwrap_or_else(|| panic!("{what}: no RateLimit-Policy of q={quota};w=60 in {policies:?}"));
    let states = structured_items(&get("ratelimit"));
    let state = states
        .iter()
        .find(|(name, _)| *name == policy.0)
        .unwrap_or_else(|| panic!("{what}: RateLimit {states:?} does not name {:?}", policy.0));
    assert_eq!(param(&state.1, "r"), Some("0"), "{what}: {states:?}");
    let reset: u64 = param(&state.1, "t")
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| panic!("{what}: no reset time t in {states:?}"));
    assert!((1..=60).contains(&reset), "{what}: t={reset}");
}

/// `POST /api/tasks` with `body`, and an `Idempotency-Key` when `key` is given.
pub async fn create_task(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    body: &Value,
    key: Option<&str>,
) -> reqwest::Response {
    let mut req = client
        .post(format!("{base}/api/tasks"))
        .bearer_auth(token)
        .json(body);
    if let Some(key) = key {
        req = req.header("idempotency-key", key);
    }
    req.send().await.unwrap()
}

/// A task of about 10 KB as stored (200 + 1000 four-byte characters, kept again lowercased for
/// search).
pub fn big_task() -> Value {
    json!({"title": "\u{1F600}".repeat(200), "description": "\u{1F4DD}".repeat(1000)})
}

/// Creates big tasks four at a time until a create is refused, and returns that refusal and how
/// many were created; panics if `most` were created.
pub async fn fill_until_refused(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    most: usize,
) -> (reqwest::Response, usize) {
    let body = big_task();
    let mut created = 0;
    loop {
        let mut batch = tokio::task::JoinSet::new();
        for _ in 0..4 {
            let (client, base, token, body) = (
                client.clone(),
                base.to_owned(),
                token.to_owned(),
                body.clone(),
            );
            batch.spawn(async move { create_task(&client, &base, &token, &body, None).await });
        }
        let mut refused = None;
        while let Some(resp) = batch.join_next().await {
            let resp = resp.unwrap();
            if resp.status() == 201 {
                created += 1;
            } else {
                refused = Some(resp);
            }
        }
        if let Some(resp) = refused {
            return (resp, created);
        }
        assert!(
            created < most,
            "{created} tasks of ~10 KB were created without a refusal"
        );
    }
}
