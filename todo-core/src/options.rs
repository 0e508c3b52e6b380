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
            .finish()
    }
}
