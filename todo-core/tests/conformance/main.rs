//! The backend-agnostic conformance suite: every test runs against SQLite (in memory and on file)
//! and, when `TODO_TEST_DATABASE_URL` is set, PostgreSQL.
#![allow(clippy::unwrap_used)] // test helpers panic on setup failures by design

mod accounts;
mod concurrency;
mod crud;
mod helpers;
mod idempotency;
mod isolation;
mod out_of_space;
mod paging;
mod quotas;
mod recovery;
mod recurrence;
mod retag;
mod scans;
mod stats;
mod upgrade;
