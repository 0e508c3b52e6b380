//! How a store is opened.

use std::time::Duration;

/// Options for [`open`](crate::open). `StoreOptions::default()` suits most uses.
#[derive(Clone)]
pub struct StoreOptions {
    /// PostgreSQL: pool size (default 16). SQLite on a file: the most read connections of each
    /// kind, opened on demand (default 8; lookups and plain pages, searches and filters, and
    /// reads that met a locked file each have their own); there is always exactly one writer.
    pub max_connections: Option<u32>,
    /// PostgreSQL: how many connections, shared by all callers, reads are pipelined on (default:
    /// the number of CPUs, at least 2 and at most 8). `Some(0)` runs reads on the pool like
    /// writes. Pipelining needs only settings sqlx and tokio-postgres both understand; with
    /// `sslmode=verify-ca`, or certificates of one's own, reads stay on the pool.
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
            .finish()
    }
}
