//! How a store is opened.

use std::time::Duration;

/// Options for [`open`](crate::open). `StoreOptions::default()` suits most uses.
#[derive(Clone)]
pub struct StoreOptions {
    /// PostgreSQL: pool size (default 16). SQLite on a file: the most read connections of each
    /// kind, opened on demand (default 8; lookups and plain pages have their own, searches,
    /// filters and reads that met a locked file theirs); there is always exactly one writer.
    pub max_connections: Option<u32>,
    /// PostgreSQL: how many connections, shared by all callers, reads are pipelined on (default:
    /// the number of CPUs, at least 2 and at most 8). With them, creates without a quota or an
    /// idempotency key are group-committed on two more connections (many creates, one
    /// transaction, each acknowledged only once it committed). `Some(0)` runs reads and creates
    /// on the pool like the other writes. Pipelining needs only settings sqlx and tokio-postgres
    /// both understand; with `sslmode=verify-ca`, or certificates of one's own, reads and creates
    /// stay on the pool.
    pub read_connections: Option<u32>,
    /// How long a call waits for a free connection before failing with
    /// [`Error::Unavailable`](crate::Error::Unavailable) (default 3 s). It also bounds how long a
    /// call waits when the database is down.
    pub acquire_timeout: Duration,
    /// The key that signs list cursors. Give every replica of a service the same key so a cursor
    /// from one works on another; by default a random key is generated per store.
    pub cursor_secret: Option<Vec<u8>>,
    /// SQLite: `synchronous = FULL` (default `true`): every acknowledged write survives a power
    /// loss. `false` uses `NORMAL`, which survives a crash of the process but not of the machine.
    pub sqlite_synchronous_full: bool,
    /// PostgreSQL: the `application_name` the connections report (default `todo`), to find
    /// them in `pg_stat_activity`.
    pub application_name: Option<String>,
    /// SQLite: the largest the database file may grow to, in bytes (default: no limit but the
    /// disk's). Applied as `pragma max_page_count` (this size divided by the page size, at least
    /// one page) on every connection the store opens, so a write that needs more room fails with
    /// [`Error::OutOfSpace`](crate::Error::OutOfSpace), exactly as on a full disk, and changes
    /// nothing. A file already larger keeps its size: only writes needing new pages fail. The
    /// WAL file next to it is not counted (it is folded back into the database at checkpoints,
    /// every 1,000 pages by default). Ignored on PostgreSQL.
    pub sqlite_max_size_bytes: Option<u64>,
    /// How many password hashes and verifications (built-in accounts: register, login) run at
    /// once (default: the number of CPUs; at least 1). Each argon2id hash holds about 19 MiB
    /// and tens of milliseconds of a CPU, so this bounds both the memory and the blocking
    /// threads sign-ins take.
    pub password_hash_concurrency: Option<usize>,
    /// How long a registration or login waits for its turn to hash (default 5 s) before it
    /// fails with [`Error::Unavailable`](crate::Error::Unavailable).
    pub password_hash_wait: Option<Duration>,
    /// The most tasks one user may have (default `None`: unlimited). A create beyond it fails
    /// with [`Error::QuotaExceeded`](crate::Error::QuotaExceeded); the count is taken inside the
    /// write, so concurrent creates cannot overshoot it. Replaying an idempotency key creates
    /// nothing and still succeeds at the limit.
    pub max_tasks_per_user: Option<u64>,
    /// The most unexpired idempotency keys (they are kept 24 hours) one user may hold (default
    /// `None`: unlimited). A keyed create with a new key beyond it fails with
    /// [`Error::QuotaExceeded`](crate::Error::QuotaExceeded); a replay of a held key succeeds.
    pub max_idempotency_keys_per_user: Option<u64>,
    /// How many lists that may read all of a user's tasks (a search, a status filter, the
    /// due-date sort, pages over 100) one user may run at once (default 2; `None`: unlimited;
    /// at least 1). Further ones of the same user wait up to 10 s for a turn, then fail with
    /// [`Error::Busy`](crate::Error::Busy); other users' lists never wait for these turns (they still
    /// share the read connections).
    pub max_concurrent_scans_per_user: Option<usize>,
    /// PostgreSQL: what sits between the store and the database. `None` (the default) detects
    /// it from the URL ([`Pooler::detect`]): Neon's `-pooler.` hosts, Supabase's pooler hosts
    /// and the URL parameter `pgbouncer=true` mean [`Pooler::Transaction`], anything else
    /// [`Pooler::None`]. `Some(_)` decides, whatever the URL says. Ignored on SQLite.
    pub pooler: Option<Pooler>,
    /// PostgreSQL: a URL that reaches the database without a transaction pooler (Neon's and
    /// Prisma's "direct URL"). When set, migrations run on it (sqlx's migrator holds a
    /// session-level advisory lock while it works). Without it, behind a transaction pooler,
    /// no migration can run: the store opens if the schema is up to date and fails with
    /// [`Error::Config`](crate::Error::Config) naming this setting if a migration is pending.
    /// Never logged. Ignored on SQLite.
    pub direct_url: Option<String>,
}

/// A connection pooler in front of PostgreSQL, and so what a session may be relied on for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pooler {
    /// Each connection of the store is a session of its own on the server (a direct
    /// connection, or a pooler in session mode): named prepared statements are prepared once per
    /// connection and reused, and the pipelined readers are opened read-only at start.
    None,
    /// A pooler in transaction mode (PgBouncer `pool_mode = transaction`, Neon's pooled URL,
    /// Supabase's pooler on port 6543): consecutive transactions of one connection may run on
    /// different server sessions, so nothing relies on the session. Statements are unnamed and
    /// parsed in the transaction that runs them; a statement on the pool that is not in a
    /// transaction runs in one of its own (`begin` ... `commit`: two more round trips);
    /// pipelined reads and group-committed creates use unnamed statements too; no startup
    /// `options`, no session `SET`, no session advisory lock, no `LISTEN`. The pipelined
    /// readers are then not read-only sessions (that needed a startup option): only `select`
    /// statements are sent to them.
    Transaction,
}

impl Pooler {
    /// The pooler a PostgreSQL URL names: [`Pooler::Transaction`] for the URL parameter
    /// `pgbouncer=true` (Prisma's spelling), Neon's pooled hosts (`...-pooler.<region>...`) and
    /// Supabase's pooler hosts (`...pooler.supabase.com`) on any port but 5432 (Supavisor's
    /// session mode); otherwise [`Pooler::None`]. A URL that does not parse is `None`.
    pub fn detect(url: &str) -> Self {
        let Ok(parsed) = url::Url::parse(url) else {
            return Self::None;
        };
        let flagged = parsed
            .query_pairs()
            .any(|(k, v)| k == "pgbouncer" && v.eq_ignore_ascii_case("true"));
        let host = parsed.host_str().unwrap_or("").to_ascii_lowercase();
        let neon = host.ends_with(".neon.tech") && host.contains("-pooler.");
        let supabase = host.ends_with("pooler.supabase.com") && parsed.port() != Some(5432);
        if flagged || neon || supabase {
            Self::Transaction
        } else {
            Self::None
        }
    }

    /// The pooler a second URL of the same deployment (Better Auth's session database) is
    /// behind: [`Pooler::Transaction`] when [`Pooler::detect`] says so for `url`, or when
    /// `first` (the pooler `first_url` is behind, however that was decided) is
    /// [`Pooler::Transaction`] and both URLs name the same host and port (they then reach the
    /// same pooler); otherwise [`Pooler::None`].
    pub fn beside(url: &str, first_url: &str, first: Self) -> Self {
        if Self::detect(url) == Self::Transaction {
            return Self::Transaction;
        }
        let endpoint = |u: &str| {
            url::Url::parse(u).ok().map(|p| {
                (
                    p.host_str().map(str::to_ascii_lowercase),
                    p.port().unwrap_or(5432),
                )
            })
        };
        match (first, endpoint(url), endpoint(first_url)) {
            (Self::Transaction, Some(a), Some(b)) if a.0.is_some() && a == b => Self::Transaction,
            _ => Self::None,
        }
    }

    /// `url` without the parameters that only tell the pooler (`pgbouncer`), which neither
    /// driver knows. Any other parameter, and the rest of the URL, is kept as written.
    pub fn strip_url_parameters(url: &str) -> String {
        let Ok(mut parsed) = url::Url::parse(url) else {
            return url.to_owned();
        };
        if !parsed.query_pairs().any(|(k, _)| k == "pgbouncer") {
            return url.to_owned();
        }
        let kept: Vec<(String, String)> = parsed
            .query_pairs()
            .filter(|(k, _)| k != "pgbouncer")
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        if kept.is_empty() {
            parsed.set_query(None);
        } else {
            parsed.query_pairs_mut().clear().extend_pairs(kept);
        }
        parsed.into()
    }

    /// The setting's value as `DATABASE_POOLER` spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Transaction => "transaction",
        }
    }
}

impl std::str::FromStr for Pooler {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "none" => Ok(Self::None),
            "transaction" => Ok(Self::Transaction),
            other => Err(format!(
                "unknown pooler {other:?}: expected none or transaction"
            )),
        }
    }
}

impl StoreOptions {
    /// The pooler this store runs behind for `url`: [`StoreOptions::pooler`] when set, else
    /// [`Pooler::detect`].
    pub fn pooler_for(&self, url: &str) -> Pooler {
        self.pooler.unwrap_or_else(|| Pooler::detect(url))
    }
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            max_connections: None,
            read_connections: None,
            acquire_timeout: Duration::from_secs(3),
            cursor_secret: None,
            sqlite_synchronous_full: true,
            application_name: None,
            sqlite_max_size_bytes: None,
            password_hash_concurrency: None,
            password_hash_wait: None,
            max_tasks_per_user: None,
            max_idempotency_keys_per_user: None,
            max_concurrent_scans_per_user: Some(2),
            pooler: None,
            direct_url: None,
        }
    }
}

impl std::fmt::Debug for StoreOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreOptions")
            .field("max_connections", &self.max_connections)
            .field("read_connections", &self.read_connections)
            .field("acquire_timeout", &self.acquire_timeout)
            .field(
                "cursor_secret",
                &self.cursor_secret.as_ref().map(|_| "<redacted>"),
            )
            .field("sqlite_synchronous_full", &self.sqlite_synchronous_full)
            .field("application_name", &self.application_name)
            .field("sqlite_max_size_bytes", &self.sqlite_max_size_bytes)
            .field("password_hash_concurrency", &self.password_hash_concurrency)
            .field("password_hash_wait", &self.password_hash_wait)
            .field("max_tasks_per_user", &self.max_tasks_per_user)
            .field(
                "max_idempotency_keys_per_user",
                &self.max_idempotency_keys_per_user,
            )
            .field(
                "max_concurrent_scans_per_user",
                &self.max_concurrent_scans_per_user,
            )
            .field("pooler", &self.pooler)
            .field(
                "direct_url",
                &self.direct_url.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_url_is_behind_the_first_ones_transaction_pooler_when_it_names_the_same_host_and_port()
     {
        let pooled = "postgres://u@db.example.com:6432/app?pgbouncer=true";
        let t = Pooler::Transaction;
        let n = Pooler::None;
        let cases = [
            // Its own URL says so, whatever the first is behind.
            (
                "postgres://u@other:6432/auth?pgbouncer=true",
                "sqlite::memory:",
                n,
                t,
            ),
            // The same host and port as a pooled first URL, without the flag.
            ("postgres://v@DB.example.com:6432/auth", pooled, t, t),
            // The first was told (DATABASE_POOLER=transaction) rather than flagged.
            ("postgres://u@db:6432/app", "postgres://u@db:6432/app", t, t),
            // Another port (the direct one) or host, or a first URL not behind a pooler.
            ("postgres://u@db.example.com:5432/app", pooled, t, n),
            ("postgres://u@elsewhere:6432/app", pooled, t, n),
            ("postgres://u@db:6432/app", "postgres://u@db:6432/app", n, n),
            ("postgres://u@db/app", "sqlite::memory:", n, n),
        ];
        for (url, first_url, first, want) in cases {
            assert_eq!(
                Pooler::beside(url, first_url, first),
                want,
                "{url} beside {first_url}"
            );
        }
    }

    #[test]
    fn known_pooler_hosts_and_the_pgbouncer_parameter_mean_transaction_mode() {
        let transaction = [
            "postgres://u:p@ep-cool-123456-pooler.eu-central-1.aws.neon.tech/db?sslmode=require",
            "postgresql://u:p@aws-0-eu-west-1.pooler.supabase.com:6543/postgres",
            "postgres://u@127.0.0.1:6432/test?pgbouncer=true",
            "postgres://u@db/test?sslmode=require&pgbouncer=TRUE",
        ];
        for url in transaction {
            assert_eq!(Pooler::detect(url), Pooler::Transaction, "{url}");
        }
        let none = [
            "postgres://u:p@ep-cool-123456.eu-central-1.aws.neon.tech/db?sslmode=require",
            "postgresql://u:p@aws-0-eu-west-1.pooler.supabase.com:5432/postgres",
            "postgres://u@127.0.0.1:6432/test?pgbouncer=false",
            "postgres://u@127.0.0.1/test",
            "sqlite::memory:",
            "not a url",
        ];
        for url in none {
            assert_eq!(Pooler::detect(url), Pooler::None, "{url}");
        }
    }

    #[test]
    fn an_explicit_setting_wins_over_the_url() {
        let options = StoreOptions {
            pooler: Some(Pooler::None),
            ..StoreOptions::default()
        };
        assert_eq!(
            options.pooler_for("postgres://u@h/db?pgbouncer=true"),
            Pooler::None
        );
    }

    #[test]
    fn the_pgbouncer_parameter_is_stripped_and_the_rest_kept() {
        assert_eq!(
            Pooler::strip_url_parameters("postgres://u:p%40ss@h:6432/db?pgbouncer=true"),
            "postgres://u:p%40ss@h:6432/db"
        );
        assert_eq!(
            Pooler::strip_url_parameters("postgres://u@h/db?sslmode=require&pgbouncer=true"),
            "postgres://u@h/db?sslmode=require"
        );
        assert_eq!(
            Pooler::strip_url_parameters("postgres://u@h/db?sslmode=require"),
            "postgres://u@h/db?sslmode=require"
        );
    }

    #[test]
    fn pooler_names_parse_as_the_setting_spells_them() {
        assert_eq!("Transaction".parse::<Pooler>(), Ok(Pooler::Transaction));
        assert_eq!("none".parse::<Pooler>(), Ok(Pooler::None));
        assert!("session".parse::<Pooler>().is_err());
    }
}
