//! The server's configuration: flags, each also read from the environment.

use std::fmt;
use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::dialect::{DialectSettings, DueDateFormat, EnumCase, JsonCase};

/// A secret value whose `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }

    /// The secret's bytes (its UTF-8 bytes are the HMAC key, as with Better Auth).
    pub fn expose(&self) -> &[u8] {
        self.0.as_bytes()
    }

    /// The secret as text (a URL with a password in it).
    pub fn expose_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl std::str::FromStr for Secret {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Self(s.to_owned()))
    }
}

/// `todo-server`: a drop-in REST backend for Next.js + Better Auth todo apps.
///
/// With nothing set it serves on http://127.0.0.1:8000 from a SQLite file in the working
/// directory, with built-in accounts and a generated secret kept next to the database.
#[derive(Debug, Clone, Parser)]
#[command(name = "todo-server", version, about, long_about = None)]
pub struct Config {
    /// Address to listen on.
    #[arg(long, env = "HOST", default_value = "127.0.0.1")]
    pub host: String,

    /// Port to listen on (the FastAPI backends' default).
    #[arg(long, env = "PORT", default_value_t = 8000)]
    pub port: u16,

    /// Database URL: `sqlite://path.db`, `sqlite::memory:`, or `postgres://...`
    /// (`?sslmode=require` for Neon). Default: `sqlite://todo.db` in the working directory.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,

    /// Shared secret for HS256/384/512 tokens (Better Auth's `BETTER_AUTH_SECRET`), at least 32
    /// bytes. Default: a generated secret kept next to the SQLite database.
    #[arg(long, env = "BETTER_AUTH_SECRET", hide_env_values = true)]
    pub better_auth_secret: Option<Secret>,

    /// Better Auth's JWKS endpoint (`<auth origin>/api/auth/jwks`): verify its EdDSA/RS256/PS256/
    /// ES256 tokens. Keys are cached and refetched when a token names a new `kid`.
    #[arg(long, env = "JWKS_URL")]
    pub jwks_url: Option<String>,

    /// Better Auth's PostgreSQL database, to accept its opaque session tokens
    /// (`better-auth.session_token`) checked against its `session` table. Treated as behind a
    /// transaction pooler when its URL names one (as for `DATABASE_POOLER`'s default) or has
    /// the host and port of a `DATABASE_URL` that is behind one.
    #[arg(long, env = "SESSION_DATABASE_URL", hide_env_values = true)]
    pub session_database_url: Option<String>,

    /// Better Auth's session table.
    #[arg(long, env = "SESSION_TABLE", default_value = "session")]
    pub session_table: String,

    /// The session table's token column.
    #[arg(long, env = "SESSION_TOKEN_COLUMN", default_value = "token")]
    pub session_token_column: String,

    /// The session table's user id column.
    #[arg(long, env = "SESSION_USER_ID_COLUMN", default_value = "userId")]
    pub session_user_id_column: String,

    /// The session table's expiry column.
    #[arg(long, env = "SESSION_EXPIRES_AT_COLUMN", default_value = "expiresAt")]
    pub session_expires_at_column: String,

    /// Accepted token issuer (`iss`), e.g. your Better Auth origin.
    #[arg(long, env = "JWT_ISSUER")]
    pub jwt_issuer: Option<String>,

    /// Accepted token audience (`aud`), e.g. your Better Auth origin.
    #[arg(long, env = "JWT_AUDIENCE")]
    pub jwt_audience: Option<String>,

    /// Clock skew tolerated on `exp` and `nbf`, in seconds.
    #[arg(long, env = "JWT_LEEWAY_SECONDS", default_value_t = 60)]
    pub jwt_leeway_seconds: u64,

    /// Frontend origins allowed by CORS, comma-separated (e.g. `http://localhost:3000`).
    #[arg(long, env = "CORS_ALLOWED_ORIGINS", value_delimiter = ',')]
    pub cors_allowed_origins: Vec<String>,

    /// Built-in accounts (`POST /api/auth/register`, `/api/auth/login`). Default: on for SQLite,
    /// off for PostgreSQL (where Better Auth usually runs).
    #[arg(long, env = "BUILTIN_ACCOUNTS")]
    pub builtin_accounts: Option<bool>,

    /// Accept Better Auth's cookie-cache JWT (`better-auth.session_data`, with or without the
    /// `__Secure-` prefix) when there is no `Authorization` header. Cookie credentials only ever
    /// authorise JSON requests.
    #[arg(long, env = "COOKIE_AUTH", default_value_t = false)]
    pub cookie_auth: bool,

    /// Lifetime of tokens issued by the built-in accounts, in minutes.
    #[arg(long, env = "TOKEN_TTL_MINUTES", default_value_t = 24 * 60)]
    pub token_ttl_minutes: u64,

    /// SQLite durability: `full` (default: an acknowledged write survives power loss; one fsync
    /// per batch of writes committed together) or `normal` (survives a crash of the process, not of the machine; several
    /// times more writes per second).
    #[arg(long, env = "SQLITE_SYNCHRONOUS", default_value = "full", value_parser = ["full", "normal"])]
    pub sqlite_synchronous: String,

    /// Database pool size (PostgreSQL) or reader connections (SQLite).
    #[arg(long, env = "DATABASE_MAX_CONNECTIONS")]
    pub database_max_connections: Option<u32>,

    /// PostgreSQL: connections that reads are pipelined on, shared by all requests (default:
    /// the number of CPUs, 2 to 8); creates are then group-committed on 2 more. 0 runs reads
    /// and creates on the pool.
    #[arg(long, env = "DATABASE_READ_CONNECTIONS")]
    pub database_read_connections: Option<u32>,

    /// PostgreSQL: the pooler between the server and the database: `none` (a direct connection
    /// or a session-mode pooler) or `transaction` (PgBouncer in transaction mode, Neon's pooled
    /// URL, Supabase's pooler on 6543). Default: `transaction` for Neon `-pooler.` hosts,
    /// Supabase pooler hosts and URLs with `pgbouncer=true`, else `none`.
    #[arg(long, env = "DATABASE_POOLER", value_parser = clap::value_parser!(todo_core::Pooler))]
    pub database_pooler: Option<todo_core::Pooler>,

    /// PostgreSQL: a URL to the database that bypasses the pooler (Neon's and Prisma's "direct
    /// URL"); migrations run on it at start.
    #[arg(long, env = "DATABASE_DIRECT_URL", hide_env_values = true)]
    pub database_direct_url: Option<Secret>,

    /// Seconds a client has to send a request's headers in full (and, on a kept-alive
    /// connection, to start its next request) before the connection is closed.
    #[arg(long, env = "HEADER_READ_TIMEOUT_SECS", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub header_read_timeout_secs: u64,

    /// Seconds a client has to send a request body in full; a slower one gets 408 and the
    /// connection is closed.
    #[arg(long, env = "BODY_READ_TIMEOUT_SECS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub body_read_timeout_secs: u64,

    /// Seconds a connection may stay open with no bytes moving either way.
    #[arg(long, env = "IDLE_TIMEOUT_SECS", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=86400))]
    pub idle_timeout_secs: u64,

    /// Connections open at once; further ones wait to be accepted. Default: the process's
    /// open-files limit minus 256 (at least 64).
    #[arg(long, env = "MAX_OPEN_CONNECTIONS", value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub max_open_connections: Option<u64>,

    /// Memory, in MiB, that request bodies larger than 16 KiB may hold at once, server-wide. A
    /// large body that cannot get its share within a second gets 503.
    #[arg(long, env = "BODY_MEMORY_BUDGET_MIB", default_value_t = 32, value_parser = clap::value_parser!(u64).range(1..=65536))]
    pub body_memory_budget_mib: u64,

    /// Password hashes (argon2id, ~19 MiB each) computed at once by the built-in accounts;
    /// logins beyond it queue for up to 5 s, then get 503. Default: the number of CPUs.
    #[arg(long, env = "PASSWORD_HASH_CONCURRENCY", value_parser = clap::value_parser!(u64).range(1..=1024))]
    pub password_hash_concurrency: Option<u64>,

    /// Login and registration attempts allowed per client address per minute (0: no limit).
    #[arg(long, env = "AUTH_RATE_PER_IP", default_value_t = 20)]
    pub auth_rate_per_ip: u32,

    /// Login and registration attempts allowed per email address per minute (0: no limit).
    #[arg(long, env = "AUTH_RATE_PER_ACCOUNT", default_value_t = 5)]
    pub auth_rate_per_account: u32,

    /// Reverse proxies (IPs or CIDRs, comma-separated) whose `X-Forwarded-For` names the client.
    /// Connections from anywhere else are identified by their socket address alone.
    #[arg(long, env = "TRUSTED_PROXIES", value_delimiter = ',')]
    pub trusted_proxies: Vec<String>,

    /// Tasks one user may hold (0: no limit). Creating beyond it is 403.
    #[arg(long, env = "MAX_TASKS_PER_USER", default_value_t = 0)]
    pub max_tasks_per_user: u64,

    /// Unexpired idempotency keys one user may hold (0: no limit). A new key beyond it is 403.
    #[arg(long, env = "MAX_IDEMPOTENCY_KEYS_PER_USER", default_value_t = 0)]
    pub max_idempotency_keys_per_user: u64,

    /// Searches and filtered lists (which may read all of a user's tasks) one user may run at
    /// once; more wait their turn (up to 10 s, then 429).
    #[arg(long, env = "MAX_CONCURRENT_SEARCHES_PER_USER", default_value_t = 2, value_parser = clap::value_parser!(u64).range(1..=1024))]
    pub max_concurrent_searches_per_user: u64,

    /// SQLite: largest size of the database file in MiB (0: no limit). Writes that would grow
    /// it further get 507.
    #[arg(long, env = "SQLITE_MAX_SIZE_MB", default_value_t = 0)]
    pub sqlite_max_size_mb: u64,

    /// A JSON template for list answers, e.g. `{"items": "$tasks", "total": "$total"}`: a
    /// string value that is exactly `"$tasks"`, `"$total"`, `"$completed_count"`,
    /// `"$pending_count"`, `"$skip"`, `"$limit"`, `"$has_more"` or `"$next_cursor"` is replaced
    /// by that value (counts of the list's filters, across all pages). Unset: the bare array.
    #[arg(long, env = "LIST_ENVELOPE")]
    pub list_envelope: Option<String>,

    /// A JSON template for single-task answers, e.g. `{"task": "$task"}`. Unset: the task.
    #[arg(long, env = "TASK_ENVELOPE")]
    pub task_envelope: Option<String>,

    /// A JSON template for error answers (then sent as `application/json`), e.g.
    /// `{"error": {"code": "$code", "message": "$detail"}}`; placeholders `"$status"`,
    /// `"$title"`, `"$detail"`, `"$code"` (`not_found`, `validation_error`, ...), `"$errors"`.
    /// Unset: RFC 9457 problem documents.
    #[arg(long, env = "ERROR_ENVELOPE")]
    pub error_envelope: Option<String>,

    /// The case of keys in answers: `snake` (`due_date`) or `camel` (`dueDate`). Requests are
    /// read in either.
    #[arg(long, env = "JSON_CASE", value_enum, default_value_t = JsonCase::Snake)]
    pub json_case: JsonCase,

    /// The case of enum values in answers (`priority`, `status`): `lower`, `capitalized`
    /// (`High`) or `upper`. Requests are read in any case.
    #[arg(long, env = "ENUM_CASE", value_enum, default_value_t = EnumCase::Lower)]
    pub enum_case: EnumCase,

    /// How a task's `due_date` is written: `datetime` (RFC 3339) or `date` (`YYYY-MM-DD`, the
    /// UTC date, as `<input type="date">` reads it).
    #[arg(long, env = "DUE_DATE_FORMAT", value_enum, default_value_t = DueDateFormat::Datetime)]
    pub due_date_format: DueDateFormat,

    /// Something to do instead of serving.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Subcommands.
#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// Print a bearer token for a user, signed with the server's secret (for trying the API).
    Token {
        /// The user id the token is for (`sub`).
        #[arg(long, default_value = "demo-user")]
        user: String,
        /// Lifetime in minutes.
        #[arg(long, default_value_t = 60)]
        minutes: u64,
    },
    /// Serve the MCP tools over stdin/stdout for one user, on the configured database (for a
    /// desktop assistant on this machine; whoever runs it is trusted as that user).
    Mcp {
        /// The user id the tools act for.
        #[arg(long)]
        user: String,
    },
}

/// The database URL used when none is configured.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://todo.db";

impl Config {
    /// The configured database URL, or the embedded default.
    pub fn database_url(&self) -> &str {
        self.database_url
            .as_deref()
            .filter(|u| !u.is_empty())
            .unwrap_or(DEFAULT_DATABASE_URL)
    }

    /// The accepted issuer, if set to something (an empty value means unset).
    pub fn issuer(&self) -> Option<&str> {
        self.jwt_issuer.as_deref().filter(|i| !i.is_empty())
    }

    /// The accepted audience, if set to something (an empty value means unset).
    pub fn audience(&self) -> Option<&str> {
        self.jwt_audience.as_deref().filter(|a| !a.is_empty())
    }

    /// The answer dialect's settings.
    pub fn dialect_settings(&self) -> DialectSettings {
        DialectSettings {
            list_envelope: self.list_envelope.clone(),
            task_envelope: self.task_envelope.clone(),
            error_envelope: self.error_envelope.clone(),
            json_case: self.json_case,
            enum_case: self.enum_case,
            due_date_format: self.due_date_format,
        }
    }

    /// Whether the built-in accounts are on.
    pub fn builtin_accounts_enabled(&self) -> bool {
        self.builtin_accounts
            .unwrap_or_else(|| self.database_url().starts_with("sqlite:"))
    }

    /// Where a generated secret is kept: next to the SQLite database file, or in the working
    /// directory for other databases.
    pub fn secret_file(&self) -> PathBuf {
        let url = self.database_url();
        let path = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
            .map(|p| p.split('?').next().unwrap_or(p))
            .filter(|p| !p.is_empty() && !p.contains(":memory:"));
        match path {
            Some(p) => {
                let mut file = PathBuf::from(p).into_os_string();
                file.push(".secret");
                PathBuf::from(file)
            }
            None => PathBuf::from("todo.secret"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_secret_file_sits_next_to_the_sqlite_database() {
        let c = Config::parse_from([
            "todo-server",
            "--database-url",
            "sqlite://data/x.db?mode=rwc",
        ]);
        assert_eq!(c.secret_file(), PathBuf::from("data/x.db.secret"));
        let c = Config::parse_from(["todo-server", "--database-url", "postgres://h/db"]);
        assert_eq!(c.secret_file(), PathBuf::from("todo.secret"));
    }

    #[test]
    fn secrets_are_redacted_in_debug_output() {
        let c = Config::parse_from(["todo-server", "--better-auth-secret", "hunter2-hunter2"]);
        assert!(!format!("{c:?}").contains("hunter2"));
    }
}
