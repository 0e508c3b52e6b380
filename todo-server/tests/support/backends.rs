//! The databases an in-process test run can reach, shared by the HTTP suite (`tests/api`) and the
//! MCP suite (`tests/mcp.rs`): SQLite in memory always; PostgreSQL when `TODO_TEST_DATABASE_URL`
//! is set; and the same PostgreSQL through a transaction pooler (PgBouncer in CI) when
//! `TODO_TEST_POOLER_URL` is set. A missing variable is said once per test binary on stderr.
#![allow(dead_code)] // each test crate uses its own subset

use std::sync::Once;

use todo_core::{Pooler, StoreOptions};

/// The PostgreSQL test database, when the run has one.
pub const PG_ENV: &str = "TODO_TEST_DATABASE_URL";
/// The same database through a pooler in transaction mode (`scripts/pgbouncer.sh start` prints
/// it), when the run has one.
pub const POOLER_ENV: &str = "TODO_TEST_POOLER_URL";

/// A database a test opens a store on.
pub struct Backend {
    /// `sqlite`, `postgres` or `postgres-pooler`, for assertion messages.
    pub name: &'static str,
    /// The URL to open.
    pub url: String,
    /// What the store is told: the defaults, or, through the pooler, [`Pooler::Transaction`]
    /// with the migrations on the direct URL.
    pub options: StoreOptions,
}

/// The value of `var` when set to something, else `None` after saying once that `what` is
/// skipped.
fn env_or_skip(var: &'static str, what: &str, once: &'static Once) -> Option<String> {
    match std::env::var(var) {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            once.call_once(|| eprintln!("\n*** SKIPPING {what}: {var} is not set ***\n"));
            None
        }
    }
}

/// Every backend this run can reach, in a fixed order (SQLite, PostgreSQL, PostgreSQL through
/// the pooler), so two calls give lists that pair up.
pub fn backends() -> Vec<Backend> {
    static NO_PG: Once = Once::new();
    static NO_POOLER: Once = Once::new();
    let mut out = vec![Backend {
        name: "sqlite",
        url: "sqlite::memory:".to_owned(),
        options: StoreOptions::default(),
    }];
    let direct = env_or_skip(PG_ENV, "the PostgreSQL runs", &NO_PG);
    if let Some(url) = &direct {
        out.push(Backend {
            name: "postgres",
            url: url.clone(),
            options: StoreOptions::default(),
        });
    }
    if let Some(url) = env_or_skip(POOLER_ENV, "the runs through the pooler", &NO_POOLER) {
        out.push(Backend {
            name: "postgres-pooler",
            url,
            options: StoreOptions {
                pooler: Some(Pooler::Transaction),
                direct_url: direct,
                ..StoreOptions::default()
            },
        });
    }
    out
}
