//! The backend-agnostic conformance suite: every test runs against SQLite (in memory and on file)
//! and, when `TODO_TEST_DATABASE_URL` is set, PostgreSQL.

mod concurrency;
mod crud;
mod helpers;
mod idempotency;
mod isolation;
mod paging;
